"""FAISS inner-product indexes over gallery photos, keyed by photo id; per-individual scores from their hits;
and the versioned cache file of an index.

The index is a cache of the vectors in ``gallery.sqlite``: ``index.faiss`` holds it and ``index.version`` says
which database version it was built from (with a checksum of the index bytes), so a stale or damaged file is
noticed and rebuilt rather than trusted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from flukeid import NEW_WHALE
from flukeid.identify.ranking import ScoreTable

log = logging.getLogger(__name__)

INDEX_KINDS: tuple[str, ...] = ("flat", "hnsw", "ivf")
"""flat: exact search; hnsw: graph search (HNSW, 32 neighbours); ivf: inverted lists (k-means cells)."""

INDEX_FILE = "index.faiss"
VERSION_FILE = "index.version"

IVF_MIN_VECTORS = 1000
"""Below this many photos an "ivf" gallery is searched exactly (flat): k-means has too little to learn from."""

HNSW_NEIGHBOURS = 32
_IVF_POINTS_PER_CELL = 39  # faiss's k-means wants at least this many training points per cell


@dataclass(frozen=True)
class PhotoHits:
    """For each query, the k nearest catalogue photos, best first.

    ids: (Q, k) int64 photo ids, -1 where the gallery has fewer than k photos;
    similarity: (Q, k) float32 inner products (cosine similarities), -inf where ids is -1.
    """

    ids: np.ndarray
    similarity: np.ndarray


@dataclass(frozen=True)
class SearchSettings:
    """Speed/recall knobs: cells visited by "ivf" (nprobe) and candidate list size of "hnsw" (ef_search)."""

    nprobe: int = 16
    ef_search: int = 64


def ivf_cells(n_vectors: int) -> int:
    """Number of IVF cells for n vectors: about 4 sqrt(n), at most n / 39 so k-means has enough points."""
    return max(1, min(round(4 * math.sqrt(n_vectors)), n_vectors // _IVF_POINTS_PER_CELL))


def _factory_string(kind: str, n_vectors: int) -> str:
    if kind == "hnsw":
        return f"IDMap2,HNSW{HNSW_NEIGHBOURS}"
    if kind == "ivf" and n_vectors >= IVF_MIN_VECTORS:
        return f"IDMap2,IVF{ivf_cells(n_vectors)},Flat"
    if kind == "ivf":
        log.info("ivf gallery has %d photos (< %d): searching it exactly (flat) instead", n_vectors, IVF_MIN_VECTORS)
    return "IDMap2,Flat"


def build_index(kind: str, vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
    """An inner-product index of the given kind over vectors (N, D) float32, answering with ids (N,) int64."""
    if kind not in INDEX_KINDS:
        raise ValueError(f"unknown index kind {kind!r}; expected one of {', '.join(INDEX_KINDS)}")
    index = faiss.index_factory(vectors.shape[1], _factory_string(kind, len(vectors)), faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def _base(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(faiss.downcast_index(index).index)


def can_add(kind: str, index: faiss.Index, total_after: int) -> bool:
    """Whether adding photos in place gives the index build_index would make for total_after photos
    (near enough: an "ivf" index keeps its trained cells; it is rebuilt when it outgrows flat search)."""
    exact = isinstance(_base(index), faiss.IndexFlat)
    return kind != "ivf" or not exact or total_after < IVF_MIN_VECTORS


def can_remove(index: faiss.Index) -> bool:
    """Whether photos can be removed in place (exact indexes only; others are rebuilt)."""
    return isinstance(_base(index), faiss.IndexFlat)


def _search_parameters(index: faiss.Index, settings: SearchSettings) -> faiss.SearchParameters | None:
    base = _base(index)
    if isinstance(base, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=min(settings.nprobe, base.nlist))
    if isinstance(base, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=settings.ef_search)
    return None


_FEW_QUERIES = 8
"""Below this many queries, search the inner index and map ids with numpy: the id map's own OpenMP loop costs
milliseconds per call on a busy machine (10 ms against 0.4 ms for the HNSW search itself, 100k photos)."""


def search_index(
    index: faiss.Index, queries: np.ndarray, k: int, settings: SearchSettings, id_map: np.ndarray | None = None
) -> PhotoHits:
    """The k best photos for each unit query (Q, D) float32. ``id_map``: the index's ids in insertion order,
    when known, for the direct path."""
    params = _search_parameters(index, settings)
    if id_map is not None and len(queries) < _FEW_QUERIES:
        similarity, places = _base(index).search(queries, k, params=params)
        ids = np.where(places >= 0, id_map[np.maximum(places, 0)], -1)
    else:
        similarity, ids = index.search(queries, k, params=params)
    similarity[ids < 0] = -np.inf
    return PhotoHits(ids.astype(np.int64), similarity.astype(np.float32))


@dataclass(frozen=True)
class Searchable:
    """The gallery at one database version, as searched: the index over photo ids (G,) int64 ascending, each
    photo's individual (G,), the individuals sorted (I,) without `new_whale`, and each photo's column (G,) among
    them (-1 for `new_whale`)."""

    version: int
    index: faiss.Index
    ids: np.ndarray
    names: list[str]
    individuals: list[str]
    columns: np.ndarray
    ids_in_order: bool  # ids are the index's id map, position for position (the direct search path may map them)

    @classmethod
    def of(cls, version: int, index: faiss.Index, ids: np.ndarray, names: list[str]) -> Searchable:
        individuals = sorted(set(names) - {NEW_WHALE})
        column_of = {name: i for i, name in enumerate(individuals)}
        columns = np.array([column_of.get(name, -1) for name in names], dtype=np.intp)
        id_map = faiss.vector_to_array(faiss.downcast_index(index).id_map)
        return cls(version, index, ids, names, individuals, columns, bool(np.array_equal(id_map, ids)))

    def with_added(
        self, kind: str, version: int, ids: np.ndarray, names: list[str], vectors: np.ndarray
    ) -> Searchable | None:
        """This state with unit vectors (N, D) added in place (ids above all present), or None where the
        index kind needs a rebuild instead. The index object is changed: discard `self` afterwards."""
        if not can_add(kind, self.index, len(self.ids) + len(ids)):
            return None
        self.index.add_with_ids(vectors, ids)
        return Searchable.of(version, self.index, np.concatenate([self.ids, ids]), self.names + names)

    def with_removed(self, version: int, ids: np.ndarray) -> Searchable | None:
        """This state without the photo ids (N,), removed in place, or None where the index needs a rebuild."""
        if not can_remove(self.index):
            return None
        self.index.remove_ids(ids)
        kept = ~np.isin(self.ids, ids)
        return Searchable.of(version, self.index, self.ids[kept], [n for n, k in zip(self.names, kept) if k])

    def search(self, queries: np.ndarray, k: int, settings: SearchSettings) -> PhotoHits:
        """The k best photos for each unit query (Q, D) float32."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if len(self.ids) == 0 or len(queries) == 0:
            shape = (len(queries), k)
            return PhotoHits(np.full(shape, -1, np.int64), np.full(shape, -np.inf, np.float32))
        return search_index(self.index, queries, k, settings, self.ids if self.ids_in_order else None)

    def score_table(self, hits: PhotoHits, aggregate: str) -> ScoreTable:
        """Per-individual scores (Q, I) from photo hits (Q, k): best ("max") or mean similarity of the
        individual's hits, -1 where it has none; `new_whale` hits are left out."""
        rows, places = np.nonzero(hits.ids >= 0)
        columns = self.columns[np.searchsorted(self.ids, hits.ids[rows, places])]
        kept = columns >= 0
        rows, columns = rows[kept], columns[kept]
        values = hits.similarity[rows, places[kept]].astype(np.float64)
        shape = (hits.ids.shape[0], len(self.individuals))
        if aggregate == "max":
            scores = np.full(shape, -np.inf)
            np.maximum.at(scores, (rows, columns), values)
        else:
            sums, counts = np.zeros(shape), np.zeros(shape)
            np.add.at(sums, (rows, columns), values)
            np.add.at(counts, (rows, columns), 1.0)
            scores = np.divide(sums, counts, out=np.full(shape, -np.inf), where=counts > 0)
        scores[np.isneginf(scores)] = -1.0
        return ScoreTable(list(self.individuals), scores.astype(np.float32), names_checked=True)


def _replace(path: Path, data: bytes) -> None:
    """Write data to a unique temporary file beside path, then move it over path in one step."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_index(directory: Path, index: faiss.Index, version: int) -> None:
    """Write index.faiss, then index.version naming the database version it holds and its checksum."""
    data = faiss.serialize_index(index).tobytes()
    _replace(directory / INDEX_FILE, data)
    stamp = {"version": version, "ntotal": int(index.ntotal), "sha1": hashlib.sha1(data).hexdigest()}
    _replace(directory / VERSION_FILE, json.dumps(stamp).encode())


def _read_stamp(directory: Path) -> dict | None:
    try:
        stamp = json.loads((directory / VERSION_FILE).read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def load_index(directory: Path, version: int, ntotal: int, dim: int) -> faiss.Index | None:
    """The cached index if it was built from this database version (ntotal photos of dim dims), else None."""
    stamp = _read_stamp(directory)
    if stamp is None or stamp.get("version") != version or stamp.get("ntotal") != ntotal:
        if ntotal:  # an empty gallery simply has no index yet
            log.info("%s: index file missing or stale (database version %d); rebuilding it", directory, version)
        return None
    try:
        data = (directory / INDEX_FILE).read_bytes()
        if hashlib.sha1(data).hexdigest() != stamp.get("sha1"):
            raise ValueError("checksum differs from index.version")
        index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
    except (OSError, ValueError, RuntimeError) as exc:
        log.warning("%s: cannot read %s (%s); rebuilding it", directory, INDEX_FILE, exc)
        return None
    if index.ntotal != ntotal or index.d != dim:
        log.warning("%s: %s does not match the database; rebuilding it", directory, INDEX_FILE)
        return None
    return index
