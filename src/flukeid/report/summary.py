"""The numbers of a report: what the catalogue holds, MAP@5 overall and by photos per individual, the score
samples of same and different individuals, and the most confident mistakes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flukeid import NEW_WHALE
from flukeid.gallery import Gallery
from flukeid.identify.identifier import Prediction
from flukeid.metrics import map_at_k

PHOTO_BUCKETS: tuple[tuple[str, int, int], ...] = (
    ("new", 0, 0),
    ("1", 1, 1),
    ("2", 2, 2),
    ("3-4", 3, 4),
    ("5-9", 5, 9),
    ("10+", 10, 1 << 62),
)
"""Groups of queries by how many catalogue photos their true individual has (label, fewest, most); "new": none
(new_whale, or an individual the catalogue does not hold)."""


@dataclass(frozen=True)
class ReportCatalogue:
    """What a report shows of the catalogue: a photo of each individual (``best_photos``), how many photos each
    has and how many photos in all (``new_whale`` photos counted there only)."""

    best_photos: dict[str, Path]
    photos_per_individual: dict[str, int]
    photos: int

    @property
    def individuals(self) -> int:
        return len(self.photos_per_individual)

    @classmethod
    def of_gallery(cls, gallery: Gallery) -> ReportCatalogue:
        photos = gallery.photos()
        best = {p.individual: Path(p.path) for p in reversed(photos) if p.path and p.individual != NEW_WHALE}
        counts = Counter(p.individual for p in photos if p.individual != NEW_WHALE)
        return cls(best, dict(counts), len(photos))

    @classmethod
    def of_labels(cls, labels: pd.DataFrame) -> ReportCatalogue:
        """From labelled rows (Id, path), as a split's catalogue part holds them."""
        known = labels[labels["Id"] != NEW_WHALE]
        best = {str(i): Path(p) for i, p in zip(known["Id"][::-1], known["path"][::-1])}
        return cls(best, {str(k): int(v) for k, v in known["Id"].value_counts().items()}, len(labels))


@dataclass(frozen=True)
class BucketScore:
    """MAP@5 of the queries whose individual has ``label`` catalogue photos, and how many queries that is."""

    label: str
    map5: float
    queries: int


@dataclass(frozen=True)
class ScoreSamples:
    """Scores among the queries' candidates: of their true individual (``same``) and of other ones
    (``different``), each (N,)."""

    same: np.ndarray
    different: np.ndarray


@dataclass(frozen=True)
class Novelty:
    """How new each query looks (Q,) (higher: newer) and whether it is new (Q,)."""

    scores: np.ndarray
    is_new: np.ndarray


@dataclass(frozen=True)
class Mistake:
    """A query whose first answer (``wrong``) is not its individual (``truth``), and how sure the first answer
    was (its probability where the model is calibrated, else its score)."""

    prediction: Prediction
    truth: str
    wrong: str
    confidence: float


def answered(predictions: Sequence[Prediction], truths: Mapping[str, str] | None) -> list[tuple[Prediction, str]]:
    """The predictions whose answer is known, each with it."""
    if not truths:
        return []
    return [(p, truths[p.image]) for p in predictions if p.image in truths]


def map5(pairs: Sequence[tuple[Prediction, str]]) -> float | None:
    """Kaggle MAP@5 of predictions with known answers (None without any)."""
    if not pairs:
        return None
    return map_at_k([p.ranking.ids for p, _ in pairs], [truth for _, truth in pairs])


def map5_by_photos(
    pairs: Sequence[tuple[Prediction, str]], photos_per_individual: Mapping[str, int]
) -> list[BucketScore]:
    """MAP@5 by the number of catalogue photos of the query's individual (`PHOTO_BUCKETS`; empty groups left out)."""
    scores = []
    for label, fewest, most in PHOTO_BUCKETS:
        group = [(p, t) for p, t in pairs if fewest <= photos_per_individual.get(t, 0) <= most]
        value = map5(group)
        if value is not None:
            scores.append(BucketScore(label, value, len(group)))
    return scores


def score_samples(pairs: Sequence[tuple[Prediction, str]]) -> ScoreSamples:
    """The scores of the candidates (never new_whale) of readable queries, split by whether they are the truth."""
    same, different = [], []
    for p, truth in pairs:
        if p.error:
            continue
        for name, score in zip(p.ranking.ids, p.ranking.scores):
            if name != NEW_WHALE:
                (same if name == truth else different).append(score)
    return ScoreSamples(np.array(same, dtype=np.float64), np.array(different, dtype=np.float64))


def first_confidence(p: Prediction) -> float:
    """How sure the first answer is: its calibrated probability, else its score."""
    if p.probabilities:
        return float(p.probabilities[0])
    return float(p.ranking.scores[0]) if p.ranking.scores else float("nan")


def worst_mistakes(pairs: Sequence[tuple[Prediction, str]], n: int = 6) -> list[Mistake]:
    """The ``n`` readable queries whose wrong first answer was the surest, surest first."""
    wrong = [
        Mistake(p, truth, p.ranking.ids[0], first_confidence(p))
        for p, truth in pairs
        if not p.error and p.ranking.ids and p.ranking.ids[0] != truth
    ]
    wrong.sort(key=lambda m: -m.confidence if np.isfinite(m.confidence) else np.inf)
    return wrong[:n]


def novelty(pairs: Sequence[tuple[Prediction, str]]) -> Novelty:
    """How new each readable query looks: minus its best individual's score (+inf without one)."""
    values, is_new = [], []
    for p, truth in pairs:
        if p.error:
            continue
        scores = [s for name, s in zip(p.ranking.ids, p.ranking.scores) if name != NEW_WHALE]
        values.append(-max(scores) if scores else np.inf)
        is_new.append(truth == NEW_WHALE)
    return Novelty(np.array(values, dtype=np.float64), np.array(is_new, dtype=bool))
