"""The distributed vector store: a Milvus collection through pymilvus (imported only when used; optional, from
``pip install -e '.[scale]'``).

A URI ending in ``.db`` runs Milvus Lite inside this process (one process at a time holds such a database); an
``http://host:19530`` URI talks to a Milvus server or cluster, which several processes and machines can share.
The collection holds (id INT64 primary key, vector FLOAT_VECTOR(dim)) rows searched by COSINE, with strong
consistency so a search sees every write before it; milvus.version in the gallery folder stamps the database
version it holds.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from flukeid.errors import FlukeidError
from flukeid.gallery.index import (
    HNSW_NEIGHBOURS,
    IVF_MIN_VECTORS,
    PhotoHits,
    SearchSettings,
    empty_hits,
    ivf_cells,
    replace_file,
)
from flukeid.gallery.vectors import INSTALL_HINT, is_lite

log = logging.getLogger(__name__)

STAMP_FILE = "milvus.version"
_BATCH = 5000  # rows per insert: 5 MB of 256-d vectors, well under gRPC's message limit
_HNSW_BUILD = 40  # candidate list while building, as FAISS's HNSW default
_CONNECT_TIMEOUT_S = 10.0
FLUSH_EVERY = 1024
"""Rows inserted since the last flush that make the next write flush: Milvus indexes sealed segments only, and a
search scans unsealed rows one by one (Milvus Lite, 100k photos: 3.2 s per query unflushed, 0.13 s flushed)."""


def _index_params(kind: str, n_vectors: int) -> tuple[str, dict[str, int]]:
    """Milvus index type and build parameters matching FAISS's index of that kind for n vectors."""
    if kind == "hnsw":
        return "HNSW", {"M": HNSW_NEIGHBOURS, "efConstruction": _HNSW_BUILD}
    if kind == "ivf" and n_vectors >= IVF_MIN_VECTORS:
        return "IVF_FLAT", {"nlist": ivf_cells(n_vectors)}
    return "FLAT", {}


def _search_params(kind: str, k: int, settings: SearchSettings) -> dict[str, Any]:
    """COSINE search parameters of an index kind (Milvus wants HNSW's candidate list at least k long)."""
    if kind == "hnsw":
        return {"metric_type": "COSINE", "params": {"ef": max(settings.ef_search, k)}}
    if kind == "ivf":
        return {"metric_type": "COSINE", "params": {"nprobe": settings.nprobe}}
    return {"metric_type": "COSINE", "params": {}}


def release_lite(path: str) -> None:
    """Stop this process's Milvus Lite server of database ``path``, if one runs (its folder can then move)."""
    import sys

    manager = sys.modules.get("milvus_lite.server_manager")
    if manager is not None:
        manager.server_manager_instance.release_server(path)


def drop_collection(uri: str, collection: str) -> None:
    """Drop ``collection`` at ``uri`` (a replaced gallery's), connecting for that alone."""
    store = MilvusStore(uri, collection, Path(uri).parent, 1, "flat", SearchSettings())
    try:
        store.drop_collection()
    finally:
        store.close()


class MilvusStore:
    """Photo vectors (dim,) keyed by photo id in the Milvus collection ``collection`` at ``uri``, for the gallery
    in ``directory`` (which keeps the stamp). Connects when first used."""

    shared = True

    def __init__(
        self, uri: str, collection: str, directory: Path, dim: int, kind: str, settings: SearchSettings
    ) -> None:
        self.uri, self.collection, self.directory = uri, collection, Path(directory)
        self.dim, self.kind, self.settings = dim, kind, settings
        self._client: Any = None
        self._verified = False  # the collection was found to hold the database's version (or was written so)
        self._unflushed = 0  # rows this handle inserted since its last flush

    # -- connection ----------------------------------------------------------------------------------------------

    def _where(self) -> str:
        return f"Milvus Lite database {self.uri}" if is_lite(self.uri) else f"Milvus at {self.uri}"

    @contextmanager
    def _calls(self, what: str) -> Iterator[None]:
        """Turn pymilvus errors into one line saying what failed; the store is checked again on next use."""
        from pymilvus.exceptions import MilvusException

        try:
            yield
        except MilvusException as exc:
            self._verified = False
            raise FlukeidError(f"{self._where()}: cannot {what} ({exc.message}); {self._advice()}") from exc

    def _advice(self) -> str:
        if is_lite(self.uri):
            return (
                "Milvus Lite serves one process at a time: stop the other process using it, or move the gallery to "
                "a Milvus server (`flukeid gallery rebuild GALLERY --store milvus --milvus-uri http://host:19530`)"
            )
        return "check that the server is running and reachable from here"

    def _connected(self) -> Any:
        if self._client is not None:
            return self._client
        try:
            from pymilvus import MilvusClient
        except ImportError as exc:
            raise FlukeidError(f"the milvus vector store needs pymilvus and milvus-lite: {INSTALL_HINT}") from exc
        if is_lite(self.uri):
            # Milvus Lite serves gRPC in this process without AllocTimestamp, which pymilvus calls while it waits for
            # an index to be built: gRPC would log that harmless refusal with a traceback at every gallery build
            logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
        with self._calls("connect"):
            self._client = MilvusClient(uri=self.uri, timeout=_CONNECT_TIMEOUT_S)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            if self._unflushed:
                try:
                    self._flush()
                except FlukeidError as exc:  # the rows are stored: unflushed, they are only slower to search
                    log.warning("%s", exc)
            self._client.close()
            self._client = None
        if is_lite(self.uri):
            release_lite(self.uri)
        self._verified = False

    # -- stamp and repair ----------------------------------------------------------------------------------------

    def _stamp(self) -> dict | None:
        try:
            stamp = json.loads((self.directory / STAMP_FILE).read_text())
        except (OSError, ValueError):
            return None
        return stamp if isinstance(stamp, dict) else None

    def mark(self, version: int) -> None:
        stamp = {"version": version, "collection": self.collection}
        replace_file(self.directory / STAMP_FILE, json.dumps(stamp).encode())
        self._verified = True

    def count(self) -> int:
        client = self._connected()
        with self._calls(f"count the photos of collection {self.collection}"):
            if not client.has_collection(self.collection):
                return 0
            return int(client.query(self.collection, filter="", output_fields=["count(*)"])[0]["count(*)"])

    def sync(self, version: int, count: int) -> bool:
        """Check once per handle (and after a failed write) that the collection holds database version ``version``
        with ``count`` photos; other processes' writes keep a shared collection in step themselves."""
        if self._verified:
            return True
        stamp = self._stamp()
        if stamp != {"version": version, "collection": self.collection}:
            log.info("%s: the milvus store is missing or stale (database version %d); rebuilding it", self.uri, version)
            return False
        client = self._connected()
        with self._calls(f"load collection {self.collection}"):
            if not client.has_collection(self.collection):
                log.info("%s: collection %s is missing; rebuilding it", self.uri, self.collection)
                return False
            client.load_collection(self.collection)
        held = self.count()
        if held != count:
            log.info(
                "%s: collection %s holds %d photos, the database %d; rebuilding it",
                self.uri,
                self.collection,
                held,
                count,
            )
            return False
        self._verified = True
        return True

    # -- writing -------------------------------------------------------------------------------------------------

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        from pymilvus import DataType

        client = self._connected()
        self._verified = False
        index_type, build = _index_params(self.kind, len(ids))
        with self._calls(f"rebuild collection {self.collection}"):
            if client.has_collection(self.collection):
                client.drop_collection(self.collection)
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
            index = client.prepare_index_params()
            index.add_index(field_name="vector", index_type=index_type, metric_type="COSINE", params=build)
            client.create_collection(
                self.collection, schema=schema, index_params=index, consistency_level="Strong"
            )  # loaded for search once it has an index
        self._insert(ids, vectors)
        if self._unflushed:
            self._flush()

    def _insert(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        client = self._connected()
        with self._calls(f"insert into collection {self.collection}"):
            for start in range(0, len(ids), _BATCH):
                rows = zip(ids[start : start + _BATCH].tolist(), vectors[start : start + _BATCH])
                client.insert(self.collection, [{"id": i, "vector": v} for i, v in rows])
        self._unflushed += len(ids)
        if self._unflushed >= FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        """Seal the inserted rows into indexed segments (`FLUSH_EVERY`)."""
        client = self._connected()
        with self._calls(f"flush collection {self.collection}"):
            client.flush(self.collection)
        self._unflushed = 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> bool:
        self._verified = False  # until marked: a failure part way leaves it to be checked
        self._insert(ids, np.asarray(vectors, dtype=np.float32))
        return True

    def remove(self, ids: np.ndarray) -> bool:
        self._verified = False
        client = self._connected()
        with self._calls(f"delete from collection {self.collection}"):
            client.delete(self.collection, ids=[int(i) for i in ids])
        return True

    def drop_collection(self) -> None:
        """Drop the collection, if there is one."""
        client = self._connected()
        with self._calls(f"drop collection {self.collection}"):
            if client.has_collection(self.collection):
                client.drop_collection(self.collection)
        self._unflushed = 0

    def drop(self) -> None:
        """Drop the collection and the stamp; a Milvus Lite database inside the gallery folder goes too."""
        self.drop_collection()
        if (self._stamp() or {}).get("collection") == self.collection:  # not a newer store's stamp
            (self.directory / STAMP_FILE).unlink(missing_ok=True)
        self.close()
        lite = Path(self.uri)
        if is_lite(self.uri) and lite.parent == self.directory.resolve():
            shutil.rmtree(lite, ignore_errors=True)

    # -- searching -----------------------------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int) -> PhotoHits:
        if len(queries) == 0:
            return empty_hits(0, k)
        client = self._connected()
        with self._calls(f"search collection {self.collection}"):
            found = client.search(
                self.collection,
                data=np.ascontiguousarray(queries, dtype=np.float32),
                limit=k,
                output_fields=["id"],
                search_params=_search_params(self.kind, k, self.settings),
            )
        hits = empty_hits(len(queries), k)
        for q, answer in enumerate(found):
            n = len(answer.ids)
            hits.ids[q, :n] = answer.ids
            hits.similarity[q, :n] = answer.distances
        return hits
