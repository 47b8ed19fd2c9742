"""A curated catalogue folder: the model, the gallery it searches, the service database and the uploads.

    CATALOG_DIR/catalog.json     model and gallery folders, database URL, upload limits
    CATALOG_DIR/catalog.sqlite   the default database (individuals, photos, encounters, decisions, users)
    CATALOG_DIR/uploads/         uploaded photos under generated names (the database stores "uploads/NAME")

``init_catalog`` makes one from a model and a gallery (``flukeid gallery build``); the gallery's photos become
the catalogue's photos. ``Matcher`` turns an encounter's photos into proposals.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from shlex import quote

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from flukeid import NEW_WHALE
from flukeid.data.ids import id_problem
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery
from flukeid.gallery import Photo as GalleryPhoto
from flukeid.identify.fusion import GLOBAL, PairScores
from flukeid.identify.identifier import Identifier
from flukeid.identify.ranking import rank
from flukeid.models.artifact import load_model
from flukeid.scores import ScoreTable
from flukeid.serve.db import Individual, Photo, PhotoStatus, sessions

SETTINGS_FILE = "catalog.json"
UPLOADS = "uploads"


@dataclass(frozen=True)
class Limits:
    """What an upload may be: bytes per file, pixels per photo, photos per encounter."""

    max_bytes: int = 20 * 2**20
    max_pixels: int = 40_000_000
    max_files: int = 20


@dataclass(frozen=True)
class CatalogSettings:
    model: str
    gallery: str
    database: str
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def load(cls, folder: Path) -> CatalogSettings:
        path = Path(folder) / SETTINGS_FILE
        if not path.is_file():
            raise FlukeidError(f"{folder}: not a flukeid catalogue (no {SETTINGS_FILE}); run `flukeid catalog init`")
        raw = json.loads(path.read_text())
        missing = {"model", "gallery", "database"} - raw.keys()
        if missing:
            raise FlukeidError(f"{path} lacks {', '.join(sorted(missing))}")
        return cls(raw["model"], raw["gallery"], raw["database"], Limits(**raw.get("limits", {})))

    def save(self, folder: Path) -> None:
        (Path(folder) / SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")


def default_database(folder: Path) -> str:
    return f"sqlite:///{(Path(folder) / 'catalog.sqlite').resolve()}"


def init_catalog(folder: Path, model: Path, gallery: Path, database: str | None = None) -> CatalogSettings:
    """Create a catalogue folder searching ``gallery`` with ``model``; the gallery's photos are imported."""
    folder = Path(folder)
    if (folder / SETTINGS_FILE).exists():
        raise FlukeidError(f"{folder} is already a catalogue ({SETTINGS_FILE} exists)")
    artifact, store = load_model(model), Gallery.open(gallery)
    store.check_model(artifact.model_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / UPLOADS).mkdir(exist_ok=True)
    settings = CatalogSettings(
        str(Path(model).resolve()), str(Path(gallery).resolve()), database or default_database(folder)
    )
    make_session = sessions(settings.database)
    with make_session.begin() as session:
        import_gallery(session, store)
    settings.save(folder)
    return settings


def photo_file(folder: Path, stored: str) -> Path:
    """The file of a photo whose database ``path`` is ``stored``: absolute as imported from a gallery, else
    relative to the catalogue ``folder`` (uploads). Uploads stored before paths were relative to the folder
    hold the server's working directory at the time (``catalog/uploads/NAME``): they are found in uploads/."""
    path = Path(stored)
    if path.is_absolute() or not stored:
        return path
    inside = folder / path
    if not inside.is_file() and (folder / UPLOADS / path.name).is_file():
        return folder / UPLOADS / path.name
    return inside


def _check_individual(gallery: Gallery, photo: GalleryPhoto) -> None:
    """FlukeidError when the gallery photo's individual breaks the ID rule (``new_whale`` is allowed: it stays
    out of the individuals)."""
    problem = id_problem(photo.individual, allow_new_whale=True)
    if problem is not None:
        raise FlukeidError(
            f"gallery {gallery.path}: photo {photo.image!r} has individual {photo.individual!r}, not a usable ID "
            f"({problem}); nothing was imported: remove it (`flukeid remove {quote(str(gallery.path))} --image "
            f"{quote(photo.image)}`), then enrol it again with a usable --id"
        )


def import_gallery(session: Session, gallery: Gallery) -> int:
    """Add the gallery's photos (and their individuals) that the database does not hold yet; a photo whose
    individual ID breaks the ID rule (flukeid.data.ids) raises FlukeidError naming it, importing nothing."""
    known = set(session.scalars(select(Photo.gallery_id).where(Photo.gallery_id.is_not(None))))
    individuals = set(session.scalars(select(Individual.id)))
    added = 0
    new = [photo for photo in gallery.photos() if photo.id not in known]
    for photo in new:
        _check_individual(gallery, photo)
    for photo in new:
        if photo.individual not in individuals and photo.individual != NEW_WHALE:
            session.add(Individual(id=photo.individual))
            individuals.add(photo.individual)
        session.add(
            Photo(
                image=photo.image,
                original_name=photo.image,
                path=photo.path or "",
                status=PhotoStatus.CATALOGUE,
                individual_id=None if photo.individual == NEW_WHALE else photo.individual,
                gallery_id=photo.id,
                sha1=photo.sha1,
            )
        )
        added += 1
    return added


@dataclass(frozen=True)
class Candidate:
    individual: str
    score: float
    probability: float  # P(the encounter shows this individual)
    photos: list[int]  # gallery ids of its catalogue photos most like the encounter, best first


@dataclass(frozen=True)
class Proposals:
    candidates: list[Candidate]
    new_probability: float  # P(none of the catalogue's individuals: a new one)
    new_rank: int  # 0-based place of the new-individual option among the candidates (threshold rule)


class Matcher:
    """Proposals for an encounter from the catalogue model's `Identifier`: the same pipeline, settings, fusion
    and threshold as `flukeid identify`, so the service proposes what the command line answers."""

    def __init__(self, identifier: Identifier, photos_per_candidate: int = 3) -> None:
        self.identifier, self.photos_per_candidate = identifier, photos_per_candidate

    @classmethod
    def of(cls, settings: CatalogSettings) -> Matcher:
        return cls(Identifier.load(Path(settings.model), Gallery.open(Path(settings.gallery))))

    @property
    def gallery(self) -> Gallery:
        return self.identifier.gallery

    def embed(self, paths: list[Path]) -> dict[Path, np.ndarray]:
        """Unit embeddings of the readable photos, cropped first by the model's detector as its gallery was."""
        embedded = self.identifier.embed(paths)
        return dict(zip(embedded.photos, embedded.vectors))

    def proposals(self, paths: list[Path], k: int = 5) -> Proposals:
        """The k individuals most like an encounter's photos: each individual's score is its best score for any of
        them; the new-individual option is placed by the tuned threshold."""
        scored = self.identifier.score(paths)
        if not scored.table.individuals or not scored.paths:
            return Proposals([], 1.0, 0)
        combined = ScoreTable(scored.table.individuals, scored.table.scores.max(axis=0, keepdims=True))
        ranking = rank(combined, k=k + 1, threshold=self.identifier.threshold)[0]
        names = [name for name in ranking.ids if name != NEW_WHALE][:k]
        new_rank = ranking.ids.index(NEW_WHALE) if NEW_WHALE in ranking.ids else len(names)
        scores = np.array([s for name, s in zip(ranking.ids, ranking.scores) if name != NEW_WHALE][:k])
        best_right = self.identifier.probabilities(combined)
        same = self._probability_same(scores)
        p_best = float(best_right[0]) if best_right is not None else float(same[0])
        best = self._best_photos(scored.pairs, scored.table.individuals, set(names))
        candidates = [
            Candidate(name, float(score), float(p), best.get(name, [])) for name, score, p in zip(names, scores, same)
        ]
        return Proposals(candidates, 1.0 - p_best if math.isfinite(p_best) else 1.0, min(new_rank, len(names)))

    def _probability_same(self, scores: np.ndarray) -> np.ndarray:
        """P(same individual) of candidates' scores, calibrated by the Identifier; a model with no calibration yet
        (neither trained nor tuned) gets a logistic around its threshold, so curators still see a number."""
        same = self.identifier.same_probabilities(scores)
        if same is not None:
            return same
        centre = self.identifier.threshold if self.identifier.threshold is not None else 0.5
        return 1.0 / (1.0 + np.exp(-(scores - centre) / 0.05))

    def _best_photos(self, pairs: PairScores, individuals: list[str], names: set[str]) -> dict[str, list[int]]:
        """Each candidate's catalogue photos that scored best against the encounter (its shortlisted pairs)."""
        score = (
            pairs.raw[GLOBAL] if self.identifier.fusion is None else self.identifier.fusion.pair_probability(pairs.raw)
        )
        best: dict[str, list[int]] = {name: [] for name in names}
        for row in np.argsort(-score, kind="stable").tolist():
            name, photo_id = individuals[int(pairs.column[row])], int(pairs.photo[row])
            if name in best and photo_id not in best[name] and len(best[name]) < self.photos_per_candidate:
                best[name].append(photo_id)
        return best
