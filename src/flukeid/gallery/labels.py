"""Who each gallery photo shows, and per-individual scores from a search's photo hits, kept sparse.

A query's k hits name at most k individuals, so its scores are gathered over those only: a batch's table has a
column for each individual found among the batch's hits, never a dense row over every individual of the gallery
(33,334 of them for 100,000 photos cost more than the HNSW search itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flukeid import NEW_WHALE
from flukeid.gallery.index import PhotoHits
from flukeid.scores import ScoreTable, hit_scores


def _column_map(individuals: np.ndarray) -> dict[str, int]:
    return {name: i for i, name in enumerate(individuals.tolist())}


@dataclass(frozen=True)
class Labels:
    """The gallery's photos at one database version, as searched: photo ids (G,) int64 ascending; each photo's
    column (G,) intp among the individuals, -1 for `new_whale`; the individuals (I,) (an object array, never
    `new_whale`): sorted by name when loaded (`names_sorted`), an enrolment's new individuals appended after them,
    so that enrolling into a large gallery never renumbers every column. An individual whose photos were all removed
    keeps its column: it has no hits, so it never appears in a table."""

    version: int
    ids: np.ndarray
    columns: np.ndarray
    individuals: np.ndarray
    column_of: dict[str, int]
    names_sorted: bool = True

    @classmethod
    def of(cls, version: int, ids: np.ndarray, names: Sequence[str]) -> Labels:
        """Labels of photos ids (G,) ascending with their individuals' names (G,)."""
        individuals = np.array(sorted(set(names) - {NEW_WHALE}), dtype=object)
        column_of = _column_map(individuals)
        columns = np.fromiter((column_of.get(name, -1) for name in names), dtype=np.intp, count=len(names))
        return cls(version, np.asarray(ids, dtype=np.int64), columns, individuals, column_of)

    def with_added(self, version: int, ids: np.ndarray, names: Sequence[str]) -> Labels:
        """These labels with photos ids (N,) (above all present) of individuals names (N,) added."""
        new = sorted(set(names) - {NEW_WHALE} - self.column_of.keys())
        individuals, column_of = self.individuals, self.column_of
        if new:
            individuals = np.concatenate([individuals, np.array(new, dtype=object)])
            column_of = {**column_of, **{name: len(self.individuals) + i for i, name in enumerate(new)}}
        added = np.fromiter((column_of.get(name, -1) for name in names), dtype=np.intp, count=len(names))
        ids = np.concatenate([self.ids, np.asarray(ids, dtype=np.int64)])
        columns = np.concatenate([self.columns, added])
        still_sorted = self.names_sorted and (not new or not len(self.individuals) or new[0] > self.individuals[-1])
        return Labels(version, ids, columns, individuals, column_of, still_sorted)

    def with_removed(self, version: int, ids: np.ndarray) -> Labels:
        """These labels without the photos ids (N,)."""
        kept = ~np.isin(self.ids, np.asarray(ids, dtype=np.int64))
        return Labels(version, self.ids[kept], self.columns[kept], self.individuals, self.column_of, self.names_sorted)

    def _places(self, photo_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each photo id (any shape) sits in `ids` (0 when absent), and whether it is there (same shape)."""
        if len(self.ids) == 0:
            return np.zeros(photo_ids.shape, np.intp), np.zeros(photo_ids.shape, bool)
        places = np.minimum(np.searchsorted(self.ids, photo_ids), len(self.ids) - 1)
        return places, self.ids[places] == photo_ids

    def columns_at(self, photo_ids: np.ndarray) -> np.ndarray:
        """The column of each photo id (any shape, int64): -1 for -1, an unknown id or a `new_whale` photo."""
        places, found = self._places(photo_ids)
        if len(self.ids) == 0:
            return np.full(photo_ids.shape, -1, np.intp)
        return np.where(found, self.columns[places], -1)

    def names_of(self, photo_ids: Sequence[int]) -> list[str | None]:
        """The individual of each photo id (`new_whale` included), None for an id these labels do not hold."""
        wanted = np.asarray(photo_ids, dtype=np.int64).reshape(-1)
        _, found = self._places(wanted)
        columns = self.columns_at(wanted)
        return [
            (self.individuals[c] if c >= 0 else NEW_WHALE) if f else None
            for c, f in zip(columns.tolist(), found.tolist())
        ]

    def score_table(self, hits: PhotoHits, aggregate: str) -> ScoreTable:
        """Per-individual scores (Q, P) from photo hits (Q, k), over the P individuals (sorted) with a hit for some
        query (`flukeid.scores.hit_scores`); `new_whale` hits are left out."""
        columns = self.columns_at(hits.ids)
        return hit_scores(columns, hits.similarity, self.individuals, aggregate, self.names_sorted)
