"""Vector stores: the nearest-photo search behind a gallery, over its unit embeddings keyed by photo id.

``gallery.sqlite`` holds the truth; a vector store holds a copy of its vectors that can always be rebuilt from it
(``flukeid gallery rebuild``). Two kinds, chosen when a gallery is built and recorded in its info table:

    faiss    the embedded default: a FAISS index in the process's memory, cached in the gallery folder
             (index.faiss); one machine, up to a few million photos
    milvus   a Milvus collection through pymilvus (optional: ``pip install -e '.[scale]'``), for a catalogue that
             outgrows one machine or is shared by several services. A URI ending in ``.db`` runs Milvus Lite in
             this process (default: ``milvus.db`` inside the gallery folder); ``http://host:19530`` is a Milvus
             server or cluster. The collection is ``flukeid_<uid>``, the uid drawn when the gallery is created
             (``flukeid gallery info`` shows it).

Every store stamps which database version it holds, so a gallery notices one out of step (a write killed between
the database and the store, a store wiped) and rebuilds it from the database.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from flukeid.errors import FlukeidError
from flukeid.gallery.index import PhotoHits, SearchSettings

log = logging.getLogger(__name__)

STORE_KINDS: tuple[str, ...] = ("faiss", "milvus")
DEFAULT_MILVUS_DB = "milvus.db"
"""Milvus Lite's database of a gallery when no URI is given, inside the gallery folder (it moves with it)."""
_SERVER_SCHEMES = ("http://", "https://", "tcp://", "unix:")
INSTALL_HINT = "pip install -e '.[scale]'"


class VectorStore(Protocol):
    """Search over photo vectors (unit rows, dim D) keyed by photo ids (int64), as a gallery uses it.

    ``shared``: whether several processes search the same copy (a Milvus collection) rather than each its own (a
    FAISS index in memory), so another process's writes need no reload here."""

    shared: bool

    def count(self) -> int:
        """How many vectors the store holds."""
        ...

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> bool:
        """Add vectors (N, D) under new ids (N,); False (nothing changed) where the store must be rebuilt instead."""
        ...

    def remove(self, ids: np.ndarray) -> bool:
        """Remove the vectors of ids (N,); False (nothing changed) where the store must be rebuilt instead."""
        ...

    def search(self, queries: np.ndarray, k: int) -> PhotoHits:
        """The k nearest photos (Q, k) of unit queries (Q, D) by cosine, best first."""
        ...

    def rebuild(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace everything the store holds with vectors (N, D) under ids (N,)."""
        ...

    def sync(self, version: int, count: int) -> bool:
        """Make this handle search what is kept of database version ``version`` (``count`` photos); False when the
        kept copy is missing, stale or damaged (then rebuild it)."""
        ...

    def mark(self, version: int) -> None:
        """Record that the store now holds database version ``version``."""
        ...

    def close(self) -> None:
        """Let go of memory, connections and in-process servers (a later call opens them again)."""
        ...

    def drop(self) -> None:
        """Delete what the store keeps (its file or collection), when the gallery moves to another store."""
        ...


def require_pymilvus() -> None:
    """Raise one clear line unless pymilvus can be imported (the milvus store's optional dependency)."""
    try:
        import pymilvus  # noqa: F401
    except ImportError as exc:
        raise FlukeidError(f"the milvus vector store needs pymilvus and milvus-lite: {INSTALL_HINT}") from exc


@dataclass(frozen=True)
class StoreSpec:
    """Which vector store a gallery uses, as recorded in its info table: the kind, and for "milvus" the URI (a
    ``.db`` path, relative to the gallery folder when not absolute, or a server URI) and the collection."""

    kind: str = "faiss"
    milvus_uri: str | None = None
    collection: str | None = None

    @classmethod
    def new(cls, kind: str = "faiss", milvus_uri: str | None = None) -> StoreSpec:
        """The store of a new gallery: a ``.db`` path given is made absolute (from the working folder); without
        one, Milvus Lite keeps ``milvus.db`` in the gallery folder. The collection name is drawn fresh."""
        if kind not in STORE_KINDS:
            raise FlukeidError(f"unknown vector store {kind!r}; expected one of {', '.join(STORE_KINDS)}")
        if kind == "faiss":
            if milvus_uri is not None:
                raise FlukeidError("--milvus-uri is for the milvus store: add --store milvus, or leave the URI out")
            return cls()
        require_pymilvus()
        return cls("milvus", _recorded_uri(milvus_uri), f"flukeid_{uuid.uuid4().hex[:16]}")

    @classmethod
    def of_info(cls, info: dict[str, str]) -> StoreSpec:
        """The store named by a gallery's info table (galleries of older flukeid have none: FAISS)."""
        kind = info.get("store", "faiss")
        if kind not in STORE_KINDS:
            raise FlukeidError(f"the gallery's vector store {kind!r} is unknown to this flukeid; update flukeid")
        if kind == "milvus" and not (info.get("milvus_uri") and info.get("milvus_collection")):
            raise FlukeidError("the gallery names the milvus store without its URI or collection: rebuild it")
        return cls(kind, info.get("milvus_uri"), info.get("milvus_collection"))

    def info(self) -> dict[str, str]:
        """The info-table rows that record this store."""
        rows = {"store": self.kind}
        if self.kind == "milvus":
            rows |= {"milvus_uri": str(self.milvus_uri), "milvus_collection": str(self.collection)}
        return rows

    def uri(self, directory: Path) -> str:
        """The URI to connect to for the gallery in ``directory`` (a relative ``.db`` path lies inside it)."""
        uri = str(self.milvus_uri)
        if is_lite(uri) and not Path(uri).is_absolute():
            return str(Path(directory).resolve() / uri)
        return uri

    def inside(self) -> bool:
        """Whether the store lives in the gallery folder (FAISS's file, the default Milvus Lite database)."""
        return self.kind == "faiss" or (is_lite(str(self.milvus_uri)) and not Path(str(self.milvus_uri)).is_absolute())

    def describe(self) -> str:
        """The store in words, for `flukeid gallery info`."""
        if self.kind == "faiss":
            return "faiss (embedded)"
        where = "Milvus Lite" if is_lite(str(self.milvus_uri)) else "Milvus server"
        return f"milvus ({where} {self.milvus_uri}, collection {self.collection})"


def is_lite(uri: str) -> bool:
    """Whether a Milvus URI names a Milvus Lite database run in this process (a path ending in ``.db``)."""
    return uri.endswith(".db")


def _recorded_uri(uri: str | None) -> str:
    if uri is None:
        return DEFAULT_MILVUS_DB
    if is_lite(uri):
        return str(Path(uri).expanduser().resolve())
    if uri.startswith(_SERVER_SCHEMES):
        return uri
    raise FlukeidError(
        f"--milvus-uri {uri!r} is neither a Milvus Lite database (a path ending in .db) nor a server URI "
        "(http://host:19530)"
    )


def open_store(spec: StoreSpec, directory: Path, dim: int, index: str, settings: SearchSettings) -> VectorStore:
    """The vector store a gallery's info names, for the gallery in ``directory`` (connected when first used)."""
    if spec.kind == "milvus":
        from flukeid.gallery.milvus_store import MilvusStore

        return MilvusStore(spec.uri(directory), str(spec.collection), directory, dim, index, settings)
    from flukeid.gallery.faiss_store import FaissStore

    return FaissStore(directory, dim, index, settings)


def release_store(spec: StoreSpec, directory: Path) -> None:
    """Stop this process's Milvus Lite server of the gallery in ``directory``, if one runs, before that folder is
    replaced (a server left running would go on serving the replaced folder's database)."""
    if spec.kind == "milvus" and is_lite(str(spec.milvus_uri)):
        from flukeid.gallery.milvus_store import release_lite

        release_lite(spec.uri(directory))


def forget_store(spec: StoreSpec, directory: Path) -> None:
    """Once the gallery in ``directory`` has been replaced: drop its Milvus collection where that outlives the folder
    (on a server, or in a Milvus Lite database elsewhere); a warning where that fails."""
    if spec.inside():
        return
    from flukeid.gallery.milvus_store import drop_collection

    try:
        drop_collection(spec.uri(directory), str(spec.collection))
    except FlukeidError as exc:
        log.warning("%s: the replaced gallery's collection %s is left behind: %s", directory, spec.collection, exc)
