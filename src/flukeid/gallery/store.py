"""A gallery of catalogue photos on disk: SQLite holds the truth, a vector store (a rebuildable copy) searches it.

Layout of a gallery folder:
    gallery.sqlite   photos(id, image, individual, path, sha1, vector), local_features(sha1, matcher, data) and
                     info(key, value): model_id, dim, index kind, vector store (`flukeid.gallery.vectors`), state
                     ("building" until a build finishes, then "complete") and a version counter that every write
                     increments, in the same transaction
    index.faiss      the FAISS store's index of that version, index.version naming it (milvus.version for a Milvus
                     store, and milvus.db for its default Milvus Lite database)
    model_path.txt   the model folder `flukeid gallery build` used (so `enroll` needs no --model)

Writes go in one order: the SQLite transaction (all or nothing: a crash mid-write leaves the previous gallery
intact), then the vector store, then its stamp of the version it holds. A failure or crash between the commit and
the stamp leaves a store out of step with the database; opening the gallery (or its next use in the process
that failed) notices it (stamp or count differ) and rebuilds the store from the database, so the write counts as
done once committed. `flukeid gallery rebuild` rebuilds a store on demand, or moves the gallery to another store.

A gallery is built whole in a temporary sibling folder and renamed into place (`flukeid.gallery.build`); `open`
refuses an unfinished one (state "building", or an empty never-written gallery of an older flukeid without
model_path.txt) and `check_build_target` lets a new build replace it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flukeid import NEW_WHALE
from flukeid.config import check_choice
from flukeid.data.ids import id_problem
from flukeid.errors import FlukeidError
from flukeid.folders import leftover_folders
from flukeid.gallery.index import INDEX_KINDS, PhotoHits, SearchSettings, empty_hits
from flukeid.gallery.labels import Labels
from flukeid.gallery.vectors import StoreSpec, VectorStore, open_store
from flukeid.scores import AGGREGATES, ScoreTable, individual_centroids

log = logging.getLogger(__name__)

DATABASE_FILE = "gallery.sqlite"
MODEL_LINK = "model_path.txt"
BUILDING, COMPLETE = "building", "complete"  # info "state": a build under way (or killed), or a usable gallery
FORMAT = "1"
"""Layout version of gallery.sqlite, stored in info so a later flukeid can migrate or refuse old galleries."""

_CHUNK = 500  # names per `IN (...)` query, well under SQLite's limit on bound parameters
_SCHEMA = """
CREATE TABLE photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT, image TEXT NOT NULL UNIQUE, individual TEXT NOT NULL,
    path TEXT, sha1 TEXT, vector BLOB NOT NULL
);
CREATE INDEX photos_individual ON photos (individual);
CREATE TABLE info (key TEXT PRIMARY KEY, value TEXT);
"""
_FEATURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_features (
    sha1 TEXT NOT NULL, matcher TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (sha1, matcher)
);
CREATE TRIGGER IF NOT EXISTS photos_forget_local_features AFTER DELETE ON photos
WHEN NOT EXISTS (SELECT 1 FROM photos WHERE sha1 = OLD.sha1)
BEGIN DELETE FROM local_features WHERE sha1 = OLD.sha1; END;
"""
"""Local features of the photos, by content sha1 and matcher key; they leave with the last photo of that content
(a trigger, in the transaction that removes it). Galleries of older flukeid get the table when opened."""
_INSERT = "INSERT INTO photos (id, image, individual, path, sha1, vector) VALUES (?, ?, ?, ?, ?, ?)"


@dataclass(frozen=True)
class Photo:
    """One catalogue photo: its gallery id, image name (unique), individual, source path and content sha1."""

    id: int
    image: str
    individual: str
    path: str | None
    sha1: str | None = None


def _photo_row(
    photo_id: int, image: str, individual: str, path: str | None, sha1: str | None, vector: np.ndarray
) -> tuple:
    """One row of the photos table; the vector stored as little-endian float32 bytes."""
    return photo_id, image, individual, path, sha1, vector.astype("<f4").tobytes()


def file_sha1(path: str | Path) -> str | None:
    """The content sha1 of a file, or None when it cannot be read."""
    try:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def _version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT value FROM info WHERE key = 'version'").fetchone()[0])


def _bump_version(conn: sqlite3.Connection) -> int:
    conn.execute("UPDATE info SET value = CAST(value AS INTEGER) + 1 WHERE key = 'version'")
    return _version(conn)


def _read_labels(conn: sqlite3.Connection) -> tuple[np.ndarray, list[str]]:
    rows = conn.execute("SELECT id, individual FROM photos ORDER BY id").fetchall()
    return np.array([row[0] for row in rows], dtype=np.int64), [row[1] for row in rows]


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


def _some(names: Sequence[str], shown: int = 5) -> str:
    listed = ", ".join(repr(name) for name in list(names)[:shown])
    return listed + (f" and {len(names) - shown} more" if len(names) > shown else "")


def _check_names(images: Sequence[str], individuals: Sequence[str], n: int) -> None:
    if len(images) != n or len(individuals) != n:
        raise FlukeidError(f"got {n} vectors, {len(images)} images and {len(individuals)} individuals; need one each")
    empty = [i for i, image in enumerate(images) if not image]
    if empty:
        raise FlukeidError(f"photo {empty[0]} has an empty image name; every photo needs one")
    check_individuals(images, individuals)
    repeated = [name for name, count in Counter(images).items() if count > 1]
    if repeated:
        raise FlukeidError(f"images {_some(repeated)} appear more than once in this batch; each image once only")


_CREATING = f".{DATABASE_FILE}.creating"  # the database while `create` writes it


def _holds_files(path: Path) -> bool:
    """Whether folder `path` holds anything besides an interrupted `create`'s temporary database."""
    return any(p.name != _CREATING for p in path.iterdir())


def check_individuals(images: Sequence[str], individuals: Sequence[str]) -> None:
    """Raise unless every individual name follows flukeid's ID rule (`flukeid.data.ids`), naming the photos
    that break it. `new_whale` is allowed: such photos are stored but never score as an individual."""
    bad = [(image, problem) for image, name in zip(images, individuals) if (problem := id_problem(name, True))]
    if bad:
        listed = "; ".join(f"{image!r}: {problem}" for image, problem in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise FlukeidError(f"{len(bad)} photo(s) have an unusable individual ID ({listed}{more}); nothing was added")


def _check_new_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise FlukeidError(f"{path} is a file; a gallery is a folder: give a new or empty folder")
    if (path / DATABASE_FILE).exists():
        raise FlukeidError(f"{path} already holds a flukeid gallery: open it, or delete the folder to start again")
    if path.exists() and _holds_files(path):
        raise FlukeidError(f"{path} is not empty; give a new or empty folder for the gallery")


def _rebuild_hint(path: Path) -> str:
    return f"`flukeid gallery build MODEL DATA --out {path}`"


def _missing_gallery(path: Path) -> FlukeidError:
    leftovers = leftover_folders(path)
    if leftovers:
        return FlukeidError(
            f"{path}: no gallery there; a build of it was interrupted (or is still running), leaving "
            f"{', '.join(p.name for p in leftovers)} beside it: build it again with {_rebuild_hint(path)}, "
            "and delete what the interrupted build left"
        )
    return FlukeidError(f"{path}: not a flukeid gallery (no {DATABASE_FILE}); build one with {_rebuild_hint(path)}")


def _read_info(path: Path) -> dict[str, str]:
    """The info table of the gallery in folder `path`; FlukeidError if there is no readable gallery."""
    database = path / DATABASE_FILE
    if not database.is_file():
        raise _missing_gallery(path)
    try:
        conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=rw", uri=True)
        try:
            info = dict(conn.execute("SELECT key, value FROM info").fetchall())
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise FlukeidError(f"{path}: not a flukeid gallery ({database}: {exc})") from exc
    missing = {"format", "model_id", "dim", "index", "version"} - info.keys()
    if missing:
        raise FlukeidError(f"{path}: not a flukeid gallery ({database} lacks {', '.join(sorted(missing))})")
    if info["format"] != FORMAT:
        raise FlukeidError(f"{database} has layout {info['format']}; this flukeid reads {FORMAT}: rebuild it")
    return info


def _unfinished(path: Path, info: dict[str, str]) -> str | None:
    """Why the gallery with this info table is unfinished, or None when it is usable."""
    state = info.get("state")
    if state == BUILDING:
        return "its build was interrupted before it finished"
    if state is None and info["version"] == "0" and not (path / MODEL_LINK).exists():
        return "it was never written to, as an interrupted `flukeid gallery build` of an older flukeid leaves it"
    return None


def _finished_info(path: Path) -> dict[str, str]:
    """The info table of the gallery in folder `path`; FlukeidError unless it is a finished gallery."""
    info = _read_info(path)
    reason = _unfinished(path, info)
    if reason is not None:
        raise FlukeidError(
            f"{path}: an unfinished gallery ({reason}); build it again with {_rebuild_hint(path)}, which replaces it"
        )
    return info


def check_build_target(path: Path, replace: bool = False) -> str | None:
    """Raise unless a new gallery may be built at `path`; what the build will replace there, if anything.

    A build may go to a new or empty folder, or replace an unfinished gallery (an interrupted build); it replaces
    a complete gallery only with `replace`, and never a folder of other files."""
    path = Path(path)
    if not path.exists():
        return None
    if not path.is_dir():
        raise FlukeidError(f"{path} is a file; a gallery is a folder: give a new or empty folder")
    if not (path / DATABASE_FILE).exists():
        if _holds_files(path):
            raise FlukeidError(f"{path} is not empty and holds no gallery; give a new or empty folder")
        return None
    info = _read_info(path)
    reason = _unfinished(path, info)
    if reason is not None:
        return f"replacing the unfinished gallery in {path} ({reason})"
    if not replace:
        raise FlukeidError(
            f"{path} already holds a flukeid gallery: give another folder, or replace it (`--replace` on the "
            "command line, replace=True in Python); the old gallery stays until the new one is complete"
        )
    return f"replacing the gallery in {path}"


def store_of(path: Path) -> StoreSpec:
    """The vector store recorded by the gallery in folder ``path`` (opened or not)."""
    return StoreSpec.of_info(_read_info(Path(path)))


def rebuild_store(path: Path, store: str | None = None, milvus_uri: str | None = None) -> StoreSpec:
    """Rebuild the vector store of the gallery in folder `path` from its database, or move the gallery to `store`
    (at `milvus_uri`; a URI alone means "milvus"), as `Gallery.rebuild`, without opening the store it has first
    (it may be out of reach: a Milvus server gone). Returns the store the gallery now uses."""
    path = Path(path)
    gallery = Gallery(path, _finished_info(path))
    wanted = None if store is None and milvus_uri is None else StoreSpec.new(store or "milvus", milvus_uri)
    try:
        gallery.rebuild(wanted)
        return gallery.store
    finally:
        gallery.close()


class _VersionWatch:
    """Whether anything was committed to a database since the last look, in microseconds: SQLite's data_version
    on one connection kept open for it (opening a connection to read the version costs about 0.5 ms a search).
    A database file replaced by another (a gallery rebuilt in its place) counts as a change too."""

    def __init__(self, database: Path) -> None:
        self._database = database
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int, int] | None = None  # the file watched, and by which process
        self._seen: int | None = None

    def _identity_now(self) -> tuple[int, int, int] | None:
        try:
            stat = os.stat(self._database)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino, os.getpid()

    def moved(self) -> bool:
        """True when the database may have changed since the previous call (always on the first)."""
        identity = self._identity_now()
        try:
            if self._conn is None or identity != self._identity:
                self.close()
                self._conn = sqlite3.connect(
                    f"{self._database.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
                )
                self._identity = identity
            seen = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            self.close()
            return True
        moved, self._seen = seen != self._seen, seen
        return moved

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn, self._identity, self._seen = None, None, None


class Gallery:
    """Catalogue photos with their unit embeddings (dim,), searchable by inner product (cosine similarity).

    Make one with `Gallery.create`, or load one with `Gallery.open`. Reads see other processes' writes (the index
    is reloaded when the database version moves); methods are safe to call from several threads.
    """

    def __init__(self, path: Path, info: dict[str, str], settings: SearchSettings | None = None) -> None:
        """Use `Gallery.create` or `Gallery.open`; `info` is the info table of gallery.sqlite."""
        self.path = Path(path)
        self.model_id = info["model_id"]
        self.dim = int(info["dim"])
        self.index_kind = info["index"]
        self.store = StoreSpec.of_info(info)
        self.settings = settings or SearchSettings()
        self._database = self.path / DATABASE_FILE
        self._lock = threading.RLock()
        self._state: Labels | None = None
        self._vectors: VectorStore = open_store(self.store, self.path, self.dim, self.index_kind, self.settings)
        self._watch = _VersionWatch(self._database)

    def __repr__(self) -> str:
        return (
            f"Gallery({str(self.path)!r}, model_id={self.model_id!r}, dim={self.dim}, index={self.index_kind!r}, "
            f"store={self.store.kind!r})"
        )

    @classmethod
    def create(
        cls,
        path: Path,
        model_id: str,
        dim: int,
        index: str = "flat",
        settings: SearchSettings | None = None,
        building: bool = False,
        store: str = "faiss",
        milvus_uri: str | None = None,
    ) -> Gallery:
        """A new empty gallery in `path` (a new or empty folder) for `dim`-dimensional embeddings of `model_id`,
        searched through the vector `store` ("faiss", or "milvus" at `milvus_uri`: see `flukeid.gallery.vectors`).
        With `building`, it is marked unfinished (`open` refuses it) until `finish` is called."""
        path = Path(path)
        check_choice("index kind", index, INDEX_KINDS)
        if dim < 1 or not model_id:
            raise FlukeidError(f"a gallery needs a model id and dim >= 1, got model {model_id!r} and dim {dim}")
        spec = StoreSpec.new(store, milvus_uri)
        _check_new_folder(path)
        path.mkdir(parents=True, exist_ok=True)
        temporary = path / f".{DATABASE_FILE}.creating"
        temporary.unlink(missing_ok=True)
        info = {
            "format": FORMAT,
            "model_id": model_id,
            "dim": str(dim),
            "index": index,
            "version": "0",
            "state": BUILDING if building else COMPLETE,
        } | spec.info()
        conn = sqlite3.connect(temporary)
        try:
            conn.executescript(_SCHEMA + _FEATURES_SCHEMA)
            conn.executemany("INSERT INTO info (key, value) VALUES (?, ?)", info.items())
            conn.commit()
            conn.execute("PRAGMA journal_mode=WAL")
        finally:
            conn.close()
        os.replace(temporary, path / DATABASE_FILE)  # the gallery appears whole or not at all
        gallery = cls(path, info, settings)
        gallery._current()
        return gallery

    @classmethod
    def open(cls, path: Path, settings: SearchSettings | None = None) -> Gallery:
        """The gallery in folder `path`; its index is rebuilt from the database if missing or stale. An unfinished
        gallery (its build was interrupted) is refused: build it again."""
        gallery = cls(path, _finished_info(Path(path)), settings)
        gallery._current()
        gallery._add_features_table()
        return gallery

    def _add_features_table(self) -> None:
        with self._transaction() as conn:
            present = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'photos_forget_local_features'").fetchone()
        if not present:
            with self._transaction(write=True) as conn:
                conn.executescript(_FEATURES_SCHEMA)

    def finish(self) -> None:
        """Mark a gallery made with `create(building=True)` complete, so that `open` accepts it."""
        with self._transaction(write=True) as conn:
            conn.execute("INSERT OR REPLACE INTO info (key, value) VALUES ('state', ?)", (COMPLETE,))

    # -- database access ---------------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction on a fresh connection: committed when the block ends, rolled back if it raises."""
        try:
            conn = sqlite3.connect(f"{self._database.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        except sqlite3.Error as exc:
            raise FlukeidError(f"{self._database}: cannot open the gallery database ({exc})") from exc
        conn.isolation_level = None  # transactions are begun and ended below, explicitly
        try:
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise FlukeidError(f"{self._database}: {exc}") from exc
        finally:
            conn.close()

    def _read_vectors(self, conn: sqlite3.Connection) -> np.ndarray:
        rows = conn.execute("SELECT id, vector FROM photos ORDER BY id").fetchall()
        for photo_id, blob in rows:
            if len(blob) != 4 * self.dim:
                raise FlukeidError(
                    f"{self._database}: photo {photo_id} has {len(blob) // 4} values, expected {self.dim}; "
                    "the gallery is damaged: rebuild it"
                )
        return np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(-1, self.dim).astype(np.float32)

    def _current(self, rebuild: bool = False) -> Labels:
        """The labels of the database's current version, with the vector store brought to that version when it
        moved: reloaded or checked (`VectorStore.sync`), and rebuilt from the database when out of step (or
        anyway, with `rebuild`)."""
        with self._lock:
            state = self._state
            if not rebuild and state is not None and not self._watch.moved():
                return state
            self._state = None  # nothing half-updated survives an error below
            with self._transaction() as conn:
                version = _version(conn)
                if not rebuild and state is not None and state.version == version:
                    self._state = state
                    return state
                ids, names = _read_labels(conn)
                fresh = rebuild or not self._vectors.sync(version, len(ids))
                vectors = self._read_vectors(conn) if fresh else None
            if vectors is not None:
                self._vectors.rebuild(ids, vectors)
                self._vectors.mark(version)
            self._state = Labels.of(version, ids, names)
            return self._state

    def _after_write(
        self, version: int, change: Callable[[VectorStore], bool], relabel: Callable[[Labels], Labels]
    ) -> None:
        """Bring the vector store and labels to `version`, just committed: the store changed in place where it can
        and is in step (a shared store, checked before the write, always is), else rebuilt from the database;
        then stamped with the version."""
        previous, self._state = self._state, None  # nothing half-updated survives an error below
        in_step = previous is not None and previous.version == version - 1
        try:
            if (in_step or self._vectors.shared) and change(self._vectors):
                self._vectors.mark(version)
                self._state = relabel(previous) if in_step and previous is not None else None
            else:
                self._current(rebuild=True)
        except FlukeidError as exc:
            raise FlukeidError(
                f"gallery {self.path}: the change is saved in {DATABASE_FILE}, but its {self.store.kind} vector store "
                f"could not follow ({exc}); the store is rebuilt from the database when the gallery is next used, or "
                f"now with `flukeid gallery rebuild {self.path}`"
            ) from exc

    def rebuild(self, store: StoreSpec | None = None) -> None:
        """Rebuild the vector store from the database (to repair it, or retrain an "ivf" index after the gallery has
        grown); or, given another `store`, move the gallery to it: the new store is filled first, then recorded in
        the info table, then the old one dropped (left behind with a warning where that fails)."""
        with self._lock:
            if store is None or (store.kind, store.milvus_uri) == (self.store.kind, self.store.milvus_uri):
                self._current(rebuild=True)
                return
            new = open_store(store, self.path, self.dim, self.index_kind, self.settings)
            with self._transaction() as conn:
                version = _version(conn)
                ids, _ = _read_labels(conn)
                vectors = self._read_vectors(conn)
            new.rebuild(ids, vectors)
            new.mark(version)
            with self._transaction(write=True) as conn:
                conn.execute("DELETE FROM info WHERE key IN ('store', 'milvus_uri', 'milvus_collection')")
                conn.executemany("INSERT INTO info (key, value) VALUES (?, ?)", store.info().items())
            old, old_spec = self._vectors, self.store
            self._vectors, self.store, self._state = new, store, None
            try:
                old.drop()
            except FlukeidError as exc:
                log.warning("%s: the previous store (%s) is left behind: %s", self.path, old_spec.describe(), exc)

    def close(self) -> None:
        """Let go of the vector store and the database handle; the next call opens them again. An in-process Milvus
        Lite server stops too, for every handle of this process on that database."""
        with self._lock:
            self._vectors.close()
            self._watch.close()
            self._state = None

    def discard(self) -> None:
        """Drop what the vector store keeps (a Milvus collection, the FAISS index file) and close: for a gallery
        being thrown away, such as an interrupted build's. Best effort: a failure is logged, not raised."""
        with self._lock:
            try:
                self._vectors.drop()
            except Exception as exc:  # the caller is already failing for a reason of its own
                log.warning("%s: cannot drop the vector store (%s)", self.path, exc)
            self.close()

    # -- reading -----------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._transaction() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM photos").fetchone()[0])

    def individuals(self) -> list[str]:
        """Names of the individuals with photos, sorted; never `new_whale`."""
        with self._transaction() as conn:
            rows = conn.execute("SELECT DISTINCT individual FROM photos WHERE individual != ?", (NEW_WHALE,))
            return sorted(row[0] for row in rows)

    def photos(self, individual: str | None = None) -> list[Photo]:
        """The photos (of one individual, or all), in id order: row i of `all_vectors()` is photos()[i]."""
        query = "SELECT id, image, individual, path, sha1 FROM photos"
        where, args = (" WHERE individual = ?", (individual,)) if individual is not None else ("", ())
        with self._transaction() as conn:
            return [Photo(*row) for row in conn.execute(query + where + " ORDER BY id", args)]

    def photos_by_id(self, photo_ids: Sequence[int]) -> dict[int, Photo]:
        """The photos of those ids the gallery holds, by id."""
        found: dict[int, Photo] = {}
        with self._transaction() as conn:
            for chunk in _chunks(sorted({int(i) for i in photo_ids})):
                marks = ", ".join("?" * len(chunk))
                query = f"SELECT id, image, individual, path, sha1 FROM photos WHERE id IN ({marks})"
                found.update((row[0], Photo(*row)) for row in conn.execute(query, chunk))
        return found

    def photo_individuals(self, photo_ids: Sequence[int]) -> list[str | None]:
        """The individual of each photo id, as searched now (None for an id the gallery does not hold)."""
        return self._current().names_of(photo_ids)

    def all_vectors(self) -> np.ndarray:
        """The unit embeddings (G, dim) float32 of all photos, in id order (as `photos()`)."""
        with self._transaction() as conn:
            return self._read_vectors(conn)

    def check_model(self, model_id: str) -> None:
        """Refuse to mix embeddings of different models: raise unless the gallery was built with `model_id`."""
        if model_id != self.model_id:
            raise FlukeidError(
                f"gallery {self.path} was built with model {self.model_id}; this is model {model_id} (its weights, "
                "input size, normalisation or crop detector differ, or the gallery predates this way of naming "
                "models), so their embeddings do not compare: rebuild the gallery with "
                f"`flukeid gallery build MODEL DATA --out {self.path} --replace`"
            )

    # -- writing -----------------------------------------------------------------------------------------------

    def _unit(self, vectors: np.ndarray, what: str, allow_zero: bool = False) -> np.ndarray:
        """Rows (N, dim) as unit-length float32, after checking shape and values."""
        array = np.asarray(vectors)
        if array.ndim != 2 or array.shape[1] != self.dim:
            raise FlukeidError(
                f"{what} must have shape (N, {self.dim}) for gallery {self.path} (model {self.model_id}), "
                f"got {array.shape}; embed them with that model"
            )
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            bad = np.flatnonzero(~np.isfinite(array).all(axis=1))[0]
            raise FlukeidError(f"{what} row {bad} holds NaN or infinite values; check the embedding of that photo")
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        if not allow_zero and (norms == 0).any():
            raise FlukeidError(f"{what} row {np.flatnonzero(norms == 0)[0]} is all zeros; it has no direction")
        return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0).astype(np.float32)

    def _refuse_enrolled(self, conn: sqlite3.Connection, images: Sequence[str]) -> None:
        enrolled: list[str] = []
        for chunk in _chunks(images):
            marks = ", ".join("?" * len(chunk))
            enrolled += [row[0] for row in conn.execute(f"SELECT image FROM photos WHERE image IN ({marks})", chunk)]
        if enrolled:
            raise FlukeidError(
                f"gallery {self.path} already holds images {_some(enrolled)}; nothing was added: "
                f"remove them first (`flukeid remove {self.path} --image NAME`, or Gallery.remove(images=...) in "
                "Python) to enrol them again"
            )

    def add(
        self,
        images: Sequence[str],
        individuals: Sequence[str],
        vectors: np.ndarray,
        paths: Sequence[str | None] | None = None,
        sha1s: Sequence[str | None] | None = None,
    ) -> list[int]:
        """Enrol photos (image names unique in the gallery) with embeddings (N, dim), re-normalised; one
        transaction, all or nothing. `new_whale` photos are stored but never score as an individual. A photo's
        content sha1 is read from its path when not given (local features are stored by it).
        Returns the new photo ids (N,), never reused after removal."""
        unit = self._unit(vectors, "vectors")
        n = len(unit)
        paths = [None] * n if paths is None else list(paths)
        sha1s = [None] * n if sha1s is None else list(sha1s)
        sha1s = [sha1 or (file_sha1(path) if path else None) for sha1, path in zip(sha1s, paths)]
        _check_names(images, individuals, n)
        if len(paths) != n or len(sha1s) != n:
            raise FlukeidError(f"got {n} vectors, {len(paths)} paths and {len(sha1s)} sha1s; need one each")
        if n == 0:
            return []
        with self._lock:
            self._current()  # the store in step before it is changed
            with self._transaction(write=True) as conn:
                self._refuse_enrolled(conn, images)
                last = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'photos'").fetchone()
                ids = np.arange(1, n + 1, dtype=np.int64) + (last[0] if last else 0)
                rows = zip(ids.tolist(), images, individuals, paths, sha1s, unit)
                conn.executemany(_INSERT, (_photo_row(*row) for row in rows))
                version = _bump_version(conn)
            self._after_write(
                version,
                lambda store: store.add(ids, unit),
                lambda labels: labels.with_added(version, ids, list(individuals)),
            )
        return ids.tolist()

    def _ids_to_remove(self, conn: sqlite3.Connection, individual: str | None, images: Sequence[str]) -> list[int]:
        ids: list[int] = []
        if individual is not None:
            ids += [row[0] for row in conn.execute("SELECT id FROM photos WHERE individual = ?", (individual,))]
            if not ids:
                raise FlukeidError(f"gallery {self.path} has no photos of {individual!r}; nothing was removed")
        found: dict[str, int] = {}
        for chunk in _chunks(images):
            marks = ", ".join("?" * len(chunk))
            found.update(conn.execute(f"SELECT image, id FROM photos WHERE image IN ({marks})", chunk).fetchall())
        unknown = [image for image in images if image not in found]
        if unknown:
            raise FlukeidError(f"gallery {self.path} has no images {_some(unknown)}; nothing was removed")
        return sorted(set(ids) | set(found.values()))

    def remove(self, individual: str | None = None, images: Sequence[str] | None = None) -> int:
        """Remove all photos of `individual` and/or the named images, in one transaction; returns how many.
        An unknown individual or image raises and removes nothing."""
        if individual is None and images is None:
            raise FlukeidError("Gallery.remove needs an individual or images; nothing was removed")
        with self._lock:
            self._current()  # the store in step before it is changed
            with self._transaction(write=True) as conn:
                ids = self._ids_to_remove(conn, individual, list(images or []))
                conn.executemany("DELETE FROM photos WHERE id = ?", ((i,) for i in ids))
                version = _bump_version(conn) if ids else None
            if version is not None:
                gone = np.array(ids, np.int64)
                self._after_write(
                    version, lambda store: store.remove(gone), lambda labels: labels.with_removed(version, gone)
                )
        return len(ids)

    # -- local features ----------------------------------------------------------------------------------------

    def local_features(self, matcher: str, sha1s: Sequence[str]) -> dict[str, bytes]:
        """The stored local features of the ``matcher`` key (serialised) for those of ``sha1s`` that have them."""
        found: dict[str, bytes] = {}
        with self._transaction() as conn:
            for chunk in _chunks(sorted(set(sha1s))):
                marks = ", ".join("?" * len(chunk))
                query = f"SELECT sha1, data FROM local_features WHERE matcher = ? AND sha1 IN ({marks})"
                found.update(conn.execute(query, [matcher, *chunk]).fetchall())
        return found

    def store_local_features(self, matcher: str, features: dict[str, bytes]) -> int:
        """Keep serialised local features by content sha1 for the ``matcher`` key; features of content no photo
        holds (removed meanwhile) are not kept. Returns how many were stored."""
        stored = 0
        with self._transaction(write=True) as conn:
            for sha1, data in features.items():
                cursor = conn.execute(
                    "INSERT OR REPLACE INTO local_features (sha1, matcher, data) "
                    "SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM photos WHERE sha1 = ?)",
                    (sha1, matcher, data, sha1),
                )
                stored += cursor.rowcount
        return stored

    def local_feature_counts(self) -> dict[str, int]:
        """How many photos' features are stored, by matcher key."""
        with self._transaction() as conn:
            return dict(conn.execute("SELECT matcher, COUNT(*) FROM local_features GROUP BY matcher").fetchall())

    # -- searching ---------------------------------------------------------------------------------------------

    def _search(self, unit: np.ndarray, k: int) -> tuple[Labels, PhotoHits]:
        """The labels searched and the k best photos (Q, k) of unit queries (Q, dim), from the store in step."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        with self._lock:
            labels = self._current()
            if len(labels.ids) == 0 or len(unit) == 0:
                return labels, empty_hits(len(unit), k)
            return labels, self._vectors.search(unit, k)

    def search(self, queries: np.ndarray, k: int = 100) -> PhotoHits:
        """The k photos most similar to each query (Q, dim) (re-normalised), best first."""
        return self._search(self._unit(queries, "queries", allow_zero=True), k)[1]

    def score_table(self, queries: np.ndarray, k: int = 200, aggregate: str = "max") -> ScoreTable:
        """Per-individual scores (Q, P) from each query's (Q, dim) k best photos, over the P individuals (sorted)
        with a photo among the hits of some query of the batch: "max" takes an individual's best hit, "mean" the
        mean of its photos among the hits. An individual with no photo among a query's hits scores -1 there (the
        lowest cosine); individuals with no hit at all have no column (as if scored -1); `new_whale` photos are
        left out. Costs about the search itself: no row over every individual of the gallery."""
        if aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {aggregate!r}; expected one of {', '.join(AGGREGATES)}")
        labels, hits = self._search(self._unit(queries, "queries", allow_zero=True), k)
        return labels.score_table(hits, aggregate)

    def search_scores(self, queries: np.ndarray, k: int = 200) -> tuple[PhotoHits, ScoreTable]:
        """Both the k best photos of each query (Q, dim) and the per-individual best scores (Q, P) they give, from
        one search (as `search` and `score_table` with "max")."""
        labels, hits = self._search(self._unit(queries, "queries", allow_zero=True), k)
        return hits, labels.score_table(hits, "max")

    def centroid_table(self, queries: np.ndarray) -> ScoreTable:
        """Cosine (Q, I) of each query to each individual's centroid: the unit mean of its unit embeddings."""
        unit = self._unit(queries, "queries", allow_zero=True)
        with self._transaction() as conn:
            _, names = _read_labels(conn)
            vectors = self._read_vectors(conn)
        centroids = individual_centroids(vectors, names)
        return ScoreTable(centroids.individuals, (unit @ centroids.vectors.T).astype(np.float32))
