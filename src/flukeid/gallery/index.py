"""FAISS inner-product indexes over gallery photos, keyed by photo id, and the versioned cache file of an index;
what every vector store answers a search with (`PhotoHits`) and its speed/recall knobs (`SearchSettings`).

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
from typing import Literal

import faiss
import numpy as np

from flukeid.config import check_choice, choices

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "hnsw", "ivf"]
"""flat: exact search; hnsw: graph search (HNSW, 32 neighbours); ivf: inverted lists (k-means cells)."""
INDEX_KINDS = choices(IndexKind)

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
    check_choice("index kind", kind, INDEX_KINDS)
    index = faiss.index_factory(vectors.shape[1], _factory_string(kind, len(vectors)), faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    if len(vectors):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def inner_index(index: faiss.Index) -> faiss.Index:
    """The index inside an id map, downcast to its own class."""
    return faiss.downcast_index(faiss.downcast_index(index).index)


def can_add(kind: str, index: faiss.Index, total_after: int) -> bool:
    """Whether adding photos in place gives the index build_index would make for total_after photos
    (near enough: an "ivf" index keeps its trained cells; it is rebuilt when it outgrows flat search)."""
    exact = isinstance(inner_index(index), faiss.IndexFlat)
    return kind != "ivf" or not exact or total_after < IVF_MIN_VECTORS


def can_remove(index: faiss.Index) -> bool:
    """Whether photos can be removed in place (exact indexes only; others are rebuilt)."""
    return isinstance(inner_index(index), faiss.IndexFlat)


def search_parameters(index: faiss.Index, settings: SearchSettings) -> faiss.SearchParameters | None:
    base = inner_index(index)
    if isinstance(base, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=min(settings.nprobe, base.nlist))
    if isinstance(base, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=settings.ef_search)
    return None


def empty_hits(n_queries: int, k: int) -> PhotoHits:
    """Hits (Q, k) of a search that found nothing: ids -1, similarity -inf."""
    shape = (n_queries, k)
    return PhotoHits(np.full(shape, -1, np.int64), np.full(shape, -np.inf, np.float32))


def replace_file(path: Path, data: bytes) -> None:
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
    replace_file(directory / INDEX_FILE, data)
    stamp = {"version": version, "ntotal": int(index.ntotal), "sha1": hashlib.sha1(data).hexdigest()}
    replace_file(directory / VERSION_FILE, json.dumps(stamp).encode())


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
