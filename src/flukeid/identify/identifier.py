"""One identification pipeline, used by identify, evaluate, tune, verify, cluster, pseudo-labels, the demo and the
curator service alike (in the spirit of wildlife-tools' SimilarityPipeline / WildFusion):

    query photo -> (crop) -> embedding -> gallery search: the best individuals by cosine (the shortlist)
    -> local matchers score (query, catalogue photo) pairs of the shortlist: verified inliers
    -> each score calibrated to P(same individual) -> mean over matchers -> per individual: the best pair
    -> ranking with new_whale at the tuned threshold, and P(best match right)

A model not tuned yet (no fusion.json) ranks by the embedding's cosine alone, with its own threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flukeid import NEW_WHALE
from flukeid.detect.model import Detector, model_detector
from flukeid.embed import Embedded, PhotoEmbedder
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery, PhotoHits
from flukeid.gallery.local import FeatureCache
from flukeid.identify.calibration import Calibration, match_features
from flukeid.identify.fusion import GLOBAL, Fusion, PairScores
from flukeid.identify.ranking import Ranking, rank
from flukeid.identify.settings import IdentifySettings
from flukeid.matchers import LocalFeatures, LocalMatcher, create_matcher
from flukeid.models.artifact import Artifact, load_model
from flukeid.models.folder import ModelFolder
from flukeid.progress import Progress
from flukeid.scores import ScoreTable

log = logging.getLogger(__name__)
SEARCH_K = 200
"""Catalogue photos searched per query: the shortlist and its photos come from these hits."""


@dataclass(frozen=True)
class Prediction:
    """One query's answer. ``probability``: calibrated P(the best individual is right); ``error``: why a photo
    could not be read (then ``ranking`` is just new_whale); ``probabilities``: calibrated P(each answer of the
    ranking is right), as its ids (see `Identifier.answer_probabilities`); None where the model has no calibration."""

    image: str
    path: Path
    ranking: Ranking
    probability: float | None = None
    error: str | None = None
    probabilities: list[float] | None = None


@dataclass(frozen=True)
class Scored:
    """Queries scored against the gallery: ``paths`` (the readable ones, as given, one per row), ``table`` (Q, I)
    fused per-individual scores (cosine when the model is not tuned), ``cosine`` (Q, I) the embedding's own,
    ``pairs`` the shortlisted pairs with raw scores, ``failed`` unreadable photos and why."""

    paths: list[Path]
    table: ScoreTable
    cosine: ScoreTable
    pairs: PairScores
    failed: dict[Path, str] = field(default_factory=dict)


def _scores(
    pool: ThreadPoolExecutor,
    matcher: LocalMatcher,
    query: LocalFeatures,
    catalogue: Sequence[LocalFeatures | None],
    deadline: float,
) -> list[int]:
    """The matcher's score of the query against each catalogue photo (0 where missing or past the deadline)."""

    def one(found: LocalFeatures | None) -> int:
        if found is None or time.monotonic() > deadline:
            return 0
        return matcher.score(query, found)

    return list(pool.map(one, catalogue))


def load_settings(model: Path) -> IdentifySettings:
    """The model's identify.yaml, or the defaults when it has none."""
    from flukeid.config import load_config

    path = ModelFolder(Path(model)).identify
    return load_config(IdentifySettings, path) if path.is_file() else IdentifySettings()


def model_matchers(model: Path) -> list[LocalMatcher]:
    """The local matchers of a model's identify settings, loaded (their features are stored with galleries)."""
    return [create_matcher(m) for m in load_settings(model).matchers]


def save_settings(model: Path, settings: IdentifySettings) -> None:
    from flukeid.config import save_config

    save_config(settings, ModelFolder(Path(model)).identify)


def load_fusion(artifact: Artifact, settings: IdentifySettings) -> Fusion | None:
    """The model's fitted fusion; FlukeidError when it was fitted with other settings or for another model."""
    folder = ModelFolder(artifact.path)
    fusion = Fusion.load(folder.fusion)
    if fusion is None:
        return None
    retune = f"re-tune it: `flukeid tune {artifact.path} DATA`"
    if fusion.settings != settings:
        raise FlukeidError(
            f"{folder.fusion} was fitted with other identify settings than {folder.identify} holds now "
            f"({fusion.settings} vs {settings}); {retune}"
        )
    if fusion.model_id != artifact.model_id:
        raise FlukeidError(f"{folder.fusion} was fitted for model {fusion.model_id}, not {artifact.model_id}; {retune}")
    return fusion


class Identifier:
    """Ranks a gallery's individuals for query photos (see the module's docstring). ``fusion`` None: no local
    matcher is fused (raw pair scores are still computed for the matchers of ``settings`` with ``local=True``,
    which is what tuning fits the fusion on)."""

    def __init__(
        self,
        artifact: Artifact,
        gallery: Gallery | None,
        settings: IdentifySettings | None = None,
        fusion: Fusion | None = None,
        detector: Detector | None = None,
        local: bool | None = None,
    ) -> None:
        if gallery is not None:
            gallery.check_model(artifact.model_id)
        self._gallery, self.artifact, self.detector = gallery, artifact, detector
        self.settings = settings or IdentifySettings()
        self.fusion = fusion
        local = fusion is not None if local is None else local
        wanted = set(fusion.components) if fusion is not None else {m.key for m in self.settings.matchers}
        self.matchers: list[LocalMatcher] = (
            [create_matcher(m) for m in self.settings.matchers if m.key in wanted] if local else []
        )
        self.features = FeatureCache(gallery) if gallery is not None else None
        self.calibration = Calibration.load(ModelFolder(artifact.path).calibration)

    @property
    def gallery(self) -> Gallery:
        if self._gallery is None:
            raise FlukeidError("this identifier was made without a gallery: give one to search")
        return self._gallery

    @classmethod
    def load(cls, model: Path | Artifact, gallery: Gallery | None = None) -> Identifier:
        """The model's own pipeline: its identify settings, its fitted fusion and its crop detector, run like the
        model (an artifact loaded with ``runtime="onnx"`` crops with the detector's ONNX export too). No gallery:
        only `verify` and `pair_probabilities`, which compare photos with each other."""
        artifact = model if isinstance(model, Artifact) else load_model(Path(model))
        settings = load_settings(artifact.path)
        fusion = load_fusion(artifact, settings)
        if fusion is None and settings.matchers:
            log.info(
                "%s is not tuned: it ranks by its embedding alone; `flukeid tune %s DATA` fits local matching",
                artifact.path,
                artifact.path,
            )
        return cls(artifact, gallery, settings, fusion, model_detector(artifact.path, runtime=artifact.runtime))

    def _cache(self) -> FeatureCache:
        if self.features is None:
            raise FlukeidError("this identifier was made without a gallery: give one to search")
        return self.features

    @property
    def threshold(self) -> float | None:
        return self.fusion.threshold if self.fusion is not None else self.artifact.threshold

    # -- scoring -----------------------------------------------------------------------------------------------

    def crops(self, paths: Sequence[Path]) -> list[Path]:
        """What the model embeds and matches of each photo: its crop by the detector, or the photo itself."""
        return self._embedder().crops(paths)

    def _embedder(self) -> PhotoEmbedder:
        return PhotoEmbedder(self.artifact, self.detector)

    def score(self, paths: Sequence[Path], progress: Progress | None = None) -> Scored:
        """Crop, embed and score photos against the gallery."""
        return self._score(self.embed(paths), progress)

    def _score(self, embedded: Embedded, progress: Progress | None) -> Scored:
        scored = self.score_embedded(embedded.vectors, embedded.crops, progress)
        return Scored(embedded.photos, scored.table, scored.cosine, scored.pairs, embedded.failed)

    def score_embedded(self, vectors: np.ndarray, paths: Sequence[Path], progress: Progress | None = None) -> Scored:
        """Score queries already embedded (Q, D), each with its photo (as matched locally)."""
        hits, cosine = self.gallery.search_scores(vectors, k=SEARCH_K)
        pairs = self._shortlist(hits, cosine)
        raw = {GLOBAL: pairs.raw[GLOBAL]} | self._match(pairs, [Path(p) for p in paths], progress)
        pairs = PairScores(pairs.query, pairs.photo, pairs.column, raw)
        return Scored(list(paths), self.fuse(cosine, pairs), cosine, pairs)

    def _shortlist(self, hits: PhotoHits, cosine: ScoreTable) -> PairScores:
        """The best ``shortlist`` individuals of each query and, of each, its ``photos_per_individual`` photos most
        similar to the query (among the search hits), with their cosine."""
        column_of = {name: i for i, name in enumerate(cosine.individuals)}
        found_ids = hits.ids[hits.ids >= 0]
        individual_of = dict(zip(found_ids.tolist(), self.gallery.photo_individuals(found_ids.tolist())))
        rows: list[tuple[int, int, int, float]] = []  # query, photo id, column, cosine
        for q in range(len(hits.ids)):
            top = np.argsort(-cosine.scores[q], kind="stable")[: self.settings.shortlist]
            room = dict.fromkeys(top.tolist(), self.settings.photos_per_individual)
            for photo_id, value in zip(hits.ids[q].tolist(), hits.similarity[q].tolist()):
                c = column_of.get(individual_of.get(photo_id) or NEW_WHALE, -1)
                if photo_id >= 0 and room.get(c, 0) > 0:
                    room[c] -= 1
                    rows.append((q, photo_id, c, value))
        query, photo, column, similarity = (np.array(v) for v in zip(*rows)) if rows else ([], [], [], [])
        as_int = {"dtype": np.int64}
        return PairScores(
            np.asarray(query, **as_int),
            np.asarray(photo, **as_int),
            np.asarray(column, **as_int),
            {GLOBAL: np.asarray(similarity, np.float64)},
        )

    def _match(self, pairs: PairScores, queries: list[Path], progress: Progress | None) -> dict[str, np.ndarray]:
        """Verified inliers of every shortlisted pair, for each local matcher (0 for pairs past the budget)."""
        raw = {m.key: np.zeros(len(pairs.query)) for m in self.matchers}
        if not self.matchers:
            return raw
        photos = self.gallery.photos_by_id(pairs.photo.tolist())
        with ThreadPoolExecutor(self.settings.workers) as pool:
            for q, path in enumerate(queries):
                rows = np.flatnonzero(pairs.query == q)
                deadline = time.monotonic() + (self.settings.budget_s or float("inf"))
                for matcher in self.matchers:
                    wanted = [photos[i] for i in pairs.photo[rows].tolist() if i in photos]
                    catalogue = self._cache().features(matcher, wanted)
                    found = [catalogue.get(i) for i in pairs.photo[rows].tolist()]
                    raw[matcher.key][rows] = _scores(pool, matcher, matcher.features(path), found, deadline)
                if progress:
                    progress(q + 1, len(queries))
        return raw

    def fuse(self, cosine: ScoreTable, pairs: PairScores) -> ScoreTable:
        """Per-individual fused scores (Q, I) (see `Fusion.table`); without a fusion, the cosine table."""
        return cosine if self.fusion is None else self.fusion.table(cosine, pairs)

    # -- answers -----------------------------------------------------------------------------------------------

    def probabilities(self, table: ScoreTable) -> np.ndarray | None:
        """Calibrated P(the best individual is right) (Q,), None when the model has no calibration for it."""
        if not table.individuals:
            return None
        if self.fusion is not None:
            return self.fusion.match(match_features(table))
        return self.calibration.match(match_features(table)) if self.calibration else None

    def same_probabilities(self, scores: np.ndarray) -> np.ndarray | None:
        """Calibrated P(same individual) of per-individual scores (any shape): fused scores are that already; the
        cosine scores of a model not tuned yet go through its own calibration; None when it has none."""
        values = np.asarray(scores, dtype=np.float64)
        if self.fusion is not None:
            return np.clip(values, 0.0, 1.0)
        if self.calibration is None:
            return None
        return self.calibration.same(values.reshape(-1, 1)).reshape(values.shape)

    def answer_probabilities(self, table: ScoreTable, rankings: Sequence[Ranking]) -> list[list[float]] | None:
        """P(each answer is right), one list per ranking (a row of ``table``), as its ids: an individual's
        calibrated P(same individual), new_whale's 1 - P(the best individual is right). None when the model has
        no calibration (a model neither trained nor tuned)."""
        flat = [(n, s) for r in rankings for n, s in zip(r.ids, r.scores)]
        same = self.same_probabilities(np.array([0.0 if n == NEW_WHALE else s for n, s in flat], dtype=np.float64))
        if same is None:
            return None
        best = self.probabilities(table)
        answers, start = [], 0
        for q, ranking in enumerate(rankings):
            new = 1.0 - float(best[q]) if best is not None else 1.0
            answers.append([new if n == NEW_WHALE else float(same[start + i]) for i, n in enumerate(ranking.ids)])
            start += len(ranking.ids)
        return answers

    def identify(
        self, paths: Sequence[Path], k: int = 5, threshold: float | None = None, progress: Progress | None = None
    ) -> list[Prediction]:
        """The k most likely individuals (or new_whale) of each photo, in the order given; unreadable photos come
        back with their error."""
        return self.identify_embedded(paths, self.embed(paths), k, threshold, progress)

    def identify_embedded(
        self,
        paths: Sequence[Path],
        embedded: Embedded,
        k: int = 5,
        threshold: float | None = None,
        progress: Progress | None = None,
    ) -> list[Prediction]:
        """As `identify`, for photos already cropped and embedded (by `embed`, or elsewhere, e.g. on a Ray
        cluster): the gallery search and local matching run here."""
        scored = self._score(embedded, progress)
        cut = self.threshold if threshold is None else threshold
        rankings = rank(scored.table, k=k, threshold=cut)
        probabilities = self.probabilities(scored.table)
        answers = self.answer_probabilities(scored.table, rankings)
        found = {
            p: Prediction(
                p.name,
                p,
                r,
                None if probabilities is None else float(probabilities[i]),
                probabilities=None if answers is None else answers[i],
            )
            for i, (p, r) in enumerate(zip(scored.paths, rankings))
        }
        failed = Ranking([NEW_WHALE], [float("nan")])
        return [
            found.get(Path(p)) or Prediction(Path(p).name, Path(p), failed, None, scored.failed.get(Path(p), "unread"))
            for p in paths
        ]

    def embed(self, paths: Sequence[Path]) -> Embedded:
        """Crop and embed photos (the readable ones; the others are in ``failed``)."""
        return self._embedder().embed(paths)

    def pair_probabilities(self, paths: Sequence[Path], pairs: np.ndarray) -> np.ndarray:
        """P(same individual) (P,) of photo pairs (P, 2) (rows of ``paths``, all readable): the fused calibration
        of each pair, or the embedding's own calibration when the model is not tuned."""
        embedded = self.embed(paths)
        if embedded.failed:
            raise FlukeidError("; ".join(f"{p}: {why}" for p, why in embedded.failed.items()))
        return self.embedded_pair_probabilities(embedded.crops, embedded.vectors, pairs)

    def embedded_pair_probabilities(self, paths: Sequence[Path], vectors: np.ndarray, pairs: np.ndarray) -> np.ndarray:
        """As `pair_probabilities`, for photos already cropped and embedded (N, D); only ``pairs`` are matched
        locally (``pairs`` empty: no local matching, the fused score of unmatched pairs for every pair asked)."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        cosine = np.einsum("pd,pd->p", vectors[pairs[:, 0]], vectors[pairs[:, 1]])
        if self.fusion is None:
            if self.calibration is None:
                raise FlukeidError(f"{self.artifact.path} is not tuned: `flukeid tune {self.artifact.path} DATA`")
            return self.calibration.same(cosine[:, None])
        raw = {GLOBAL: cosine}
        needed = sorted(set(pairs.reshape(-1).tolist()))
        for matcher in self.matchers:
            features = {i: matcher.features(Path(paths[i])) for i in needed}
            raw[matcher.key] = np.array([matcher.score(features[a], features[b]) for a, b in pairs.tolist()])
        return self.fusion.pair_probability(raw)

    def verify(self, first: Path, second: Path) -> float:
        """P(the two photos show one individual)."""
        return float(self.pair_probabilities([first, second], np.array([[0, 1]]))[0])
