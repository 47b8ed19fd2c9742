"""Per-individual score tables: the scores of queries against individuals, and how photo similarities become them
(best or mean over an individual's photos; unit mean embeddings per individual). The one place of per-individual
aggregation: the gallery (sparse, over search hits), training's validation and identification (ranking) use it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from flukeid import NEW_WHALE

AGGREGATES: tuple[str, ...] = ("max", "mean")
"""Ways to turn the similarities to one individual's photos into one score."""


@dataclass(frozen=True)
class ScoreTable:
    """Per-individual scores for each query: scores[q, i] = similarity of query q to individuals[i].

    scores has shape (Q, I); individuals are unique and never `new_whale`; scores are never NaN.
    """

    individuals: list[str]
    scores: np.ndarray
    names_checked: bool = field(default=False, repr=False, compare=False)
    """True where the maker guarantees unique names without `new_whale` (a gallery's sorted individuals): skips
    an O(I) check that costs milliseconds per query on large catalogues."""

    def __post_init__(self) -> None:
        if self.scores.ndim != 2 or self.scores.shape[1] != len(self.individuals):
            raise ValueError(
                f"scores must have shape (Q, {len(self.individuals)}) for {len(self.individuals)} "
                f"individuals, got {self.scores.shape}"
            )
        if not self.names_checked:
            self._check_names()
        if np.isnan(self.scores).any():
            raise ValueError("scores contain NaN; check the similarities or embeddings they came from")

    def _check_names(self) -> None:
        if len(set(self.individuals)) != len(self.individuals):
            raise ValueError("individuals must be unique, found repeated names")
        if NEW_WHALE in self.individuals:
            raise ValueError(f"{NEW_WHALE!r} is not an individual; remove it from the table")


@dataclass(frozen=True)
class Centroids:
    """One unit-length mean embedding per individual: vectors (I, D) float32, rows as individuals."""

    individuals: list[str]
    vectors: np.ndarray


@dataclass(frozen=True)
class _Groups:
    """Gallery photos grouped by individual: photo indices (G',) sorted by individual name,
    where each individual's run starts (I,) and how long it is (I,)."""

    individuals: list[str]
    photos: np.ndarray
    starts: np.ndarray
    counts: np.ndarray


def _group(gallery_ids: Sequence[str]) -> _Groups:
    """Group photos by individual name (sorted), leaving out `new_whale` photos."""
    labels = np.asarray(gallery_ids, dtype=str).reshape(-1)
    kept = np.flatnonzero(labels != NEW_WHALE)
    names, inverse, counts = np.unique(labels[kept], return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    starts = np.cumsum(counts) - counts
    return _Groups(names.tolist(), kept[order], starts.astype(np.intp), counts)


def individual_scores(similarity: np.ndarray, gallery_ids: Sequence[str], aggregate: str = "max") -> ScoreTable:
    """Score of each query (Q, G similarities to gallery photos) for each individual: (Q, I) float32.

    "max": the best similarity over the individual's photos; "mean": their mean.
    Photos labelled `new_whale` are ignored; individuals come sorted by name.
    """
    if aggregate not in AGGREGATES:
        raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {', '.join(AGGREGATES)}")
    if similarity.ndim != 2 or similarity.shape[1] != len(gallery_ids):
        raise ValueError(
            f"similarity must have shape (Q, {len(gallery_ids)}) for {len(gallery_ids)} gallery ids, "
            f"got {similarity.shape}"
        )
    groups = _group(gallery_ids)
    if not groups.individuals:
        return ScoreTable([], np.zeros((similarity.shape[0], 0), dtype=np.float32))
    by_photo = similarity[:, groups.photos]
    if aggregate == "max":
        scores = np.maximum.reduceat(by_photo, groups.starts, axis=1)
    else:
        scores = np.add.reduceat(by_photo, groups.starts, axis=1) / groups.counts
    return ScoreTable(groups.individuals, scores.astype(np.float32))


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows (N, D) scaled to unit L2 norm; all-zero rows stay zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def individual_centroids(embeddings: np.ndarray, gallery_ids: Sequence[str]) -> Centroids:
    """One mean embedding per individual from gallery embeddings (G, D): vectors (I, D) float32.

    Each photo's embedding is L2-normalised before averaging (every photo weighs the same), and
    the mean is L2-normalised again. Photos labelled `new_whale` are ignored.
    """
    if embeddings.ndim != 2 or embeddings.shape[0] != len(gallery_ids):
        raise ValueError(
            f"embeddings must have shape ({len(gallery_ids)}, D) for {len(gallery_ids)} gallery ids, "
            f"got {embeddings.shape}"
        )
    groups = _group(gallery_ids)
    if not groups.individuals:
        return Centroids([], np.zeros((0, embeddings.shape[1]), dtype=np.float32))
    unit = _unit_rows(embeddings[groups.photos].astype(np.float64))
    sums = np.add.reduceat(unit, groups.starts, axis=0)
    return Centroids(groups.individuals, _unit_rows(sums).astype(np.float32))


def hit_scores(
    columns: np.ndarray, similarity: np.ndarray, individuals: np.ndarray, aggregate: str, names_sorted: bool = True
) -> ScoreTable:
    """Per-individual scores (Q, P) from each query's hits: the individual's column (Q, k) intp among
    ``individuals`` (I,) (sorted names unless ``names_sorted`` is False; -1 for a hit to leave out: none, or a
    `new_whale` photo) and the hit's similarity (Q, k). Over the P individuals with a hit for some query (sorted by
    name), never a dense row over all I: best ("max") or mean similarity of the individual's hits, -1 where a query
    has none of its photos among its hits. Vectorised over the batch."""
    rows, places = np.nonzero(columns >= 0)
    present, inverse = np.unique(columns[rows, places], return_inverse=True)
    if not names_sorted:  # sort the P names found, not the I names
        by_name = np.argsort(individuals[present].astype(str))
        present, inverse = present[by_name], np.argsort(by_name)[inverse]
    n_queries, n_present = columns.shape[0], len(present)
    cells = rows * n_present + inverse.reshape(-1)
    values = similarity[rows, places]
    if aggregate == "max":
        scores = np.full(n_queries * n_present, -np.inf, dtype=np.float32)
        np.maximum.at(scores, cells, values)
    else:
        sums = np.bincount(cells, weights=values.astype(np.float64), minlength=n_queries * n_present)
        counts = np.bincount(cells, minlength=n_queries * n_present)
        scores = np.divide(sums, counts, out=np.full(len(sums), -np.inf), where=counts > 0).astype(np.float32)
    scores[np.isneginf(scores)] = -1.0
    names = individuals[present].tolist()
    return ScoreTable(names, scores.reshape(n_queries, n_present), names_checked=True)
