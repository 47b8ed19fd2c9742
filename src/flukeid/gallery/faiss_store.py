"""The embedded vector store: a FAISS inner-product index in this process's memory, cached in the gallery folder
(index.faiss, with index.version naming the database version it holds)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import faiss
import numpy as np

from flukeid.gallery.index import (
    INDEX_FILE,
    VERSION_FILE,
    PhotoHits,
    SearchSettings,
    build_index,
    can_add,
    can_remove,
    empty_hits,
    inner_index,
    load_index,
    save_index,
    search_parameters,
)

log = logging.getLogger(__name__)

FEW_QUERIES = 8
"""Below this many queries, search the inner index and map ids with numpy: the id map's own OpenMP loop costs
milliseconds per call on a busy machine (10 ms against 0.4 ms for the HNSW search itself, 100k photos)."""

SAVE_SHARE = 0.1
LAZY_FROM = 10_000
"""From LAZY_FROM photos, a run of writes spends at most SAVE_SHARE of its time writing the index file: after a save
that took s seconds, the next waits 10 s (writes in between leave the file stale; `close` writes it), so that each
enrolment stops costing a whole file (100k photos, HNSW: 0.5 s a save). A smaller gallery's file follows every write.
A stale file is safe: the version stamp tells, and the index is rebuilt from the database."""


class FaissStore:
    """A FAISS index of kind flat/hnsw/ivf over photo vectors (dim,), keyed by photo id (`flukeid.gallery.index`).

    Each process searches its own copy, loaded from index.faiss when that file holds the database's version and
    rebuilt from the database otherwise. Adds and removals change the index in place where its kind allows (else
    the gallery rebuilds it)."""

    shared = False

    def __init__(self, directory: Path, dim: int, kind: str, settings: SearchSettings) -> None:
        self.directory, self.dim, self.kind, self.settings = Path(directory), dim, kind, settings
        self._index: faiss.Index | None = None
        self._version: int | None = None
        self._inner: faiss.Index | None = None
        self._params: faiss.SearchParameters | None = None
        self._order = np.zeros(0, np.int64)  # the id map: photo id of each inner position
        self._unsaved = False  # the index holds a version the file does not
        self._next_save = 0.0  # time.monotonic() before which a write leaves the file stale

    def _use(self, index: faiss.Index | None) -> None:
        """Search ``index`` from now on, with what a search needs of it worked out once."""
        self._index = index
        if index is None:
            self._inner, self._params, self._order = None, None, np.zeros(0, np.int64)
            return
        self._inner = inner_index(index)
        self._params = search_parameters(index, self.settings)
        self._order = faiss.vector_to_array(faiss.downcast_index(index).id_map).astype(np.int64)

    def count(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def sync(self, version: int, count: int) -> bool:
        if self._index is not None and self._version == version and self._index.ntotal == count:
            return True
        index = load_index(self.directory, version, count, self.dim)
        self._use(index)
        self._version = version if index is not None else None
        return index is not None

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._version = None
        self._use(build_index(self.kind, vectors, ids))

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> bool:
        if self._index is None or not can_add(self.kind, self._index, self.count() + len(ids)):
            return False
        self._version = None
        self._index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
        self._use(self._index)
        return True

    def remove(self, ids: np.ndarray) -> bool:
        if self._index is None or not can_remove(self._index):
            return False
        self._version = None
        self._index.remove_ids(ids.astype(np.int64))
        self._use(self._index)
        return True

    def mark(self, version: int) -> None:
        """Hold ``version``; write the index file for it unless the last save was too recent (`LAZY_FROM`)."""
        self._version = version
        self._unsaved = self._index is not None
        if self._unsaved and (self.count() < LAZY_FROM or time.monotonic() >= self._next_save):
            self._save()

    def _save(self) -> None:
        """Write the index file (a failure to write leaves a stale file, rebuilt at next open)."""
        started = time.monotonic()
        try:
            save_index(self.directory, self._index, self._version)
        except OSError as exc:
            log.warning(
                "%s: cannot write the index file (%s); it is rebuilt when the gallery is opened", self.directory, exc
            )
        self._unsaved = False
        self._next_save = time.monotonic() + (time.monotonic() - started) / SAVE_SHARE

    def search(self, queries: np.ndarray, k: int) -> PhotoHits:
        if self._index is None or self._index.ntotal == 0 or len(queries) == 0:
            return empty_hits(len(queries), k)
        if len(queries) < FEW_QUERIES:
            similarity, places = self._inner.search(queries, k, params=self._params)
            ids = np.where(places >= 0, self._order[np.maximum(places, 0)], -1)
        else:
            similarity, ids = self._index.search(queries, k, params=self._params)
        similarity[ids < 0] = -np.inf
        return PhotoHits(ids.astype(np.int64, copy=False), similarity.astype(np.float32, copy=False))

    def close(self) -> None:
        if self._unsaved and self._index is not None and self._version is not None:
            self._save()
        self._use(None)
        self._version, self._unsaved, self._next_save = None, False, 0.0

    def drop(self) -> None:
        self._unsaved = False
        self.close()
        for name in (INDEX_FILE, VERSION_FILE):
            (self.directory / name).unlink(missing_ok=True)
