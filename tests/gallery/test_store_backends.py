"""Vector stores behind the gallery: FAISS (embedded) and Milvus (Lite in-process, or a server) answer the same
through the Gallery API; sparse per-individual scores equal a dense reference; a fault between the database
write and the store write is noticed and repaired; the store can be rebuilt, or moved to another one."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from flukeid import NEW_WHALE
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery, PhotoHits
from flukeid.gallery.faiss_store import FaissStore
from flukeid.gallery.store import rebuild_store, store_of
from flukeid.identify.ranking import rank
from flukeid.scores import ScoreTable, individual_scores

DIM = 16
Make = Callable[..., Gallery]


def unit_vectors(n: int, seed: int = 0, dim: int = DIM) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def enrol(gallery: Gallery, individuals: list[str], seed: int = 0, prefix: str = "p") -> np.ndarray:
    vectors = unit_vectors(len(individuals), seed, gallery.dim)
    gallery.add([f"{prefix}{i}.jpg" for i in range(len(individuals))], individuals, vectors)
    return vectors


@pytest.fixture(params=["faiss", "milvus"])
def store(request: pytest.FixtureRequest) -> str:
    if request.param == "milvus":
        pytest.importorskip("pymilvus")
    return request.param


@contextmanager
def maker(tmp_path: Path, store: str) -> Iterator[Make]:
    """Make (or open, with open=True) galleries of a store under tmp_path; all are closed afterwards."""
    made: list[Gallery] = []

    def making(name: str = "g", index: str = "flat", open: bool = False, **options: object) -> Gallery:
        path = tmp_path / name
        gallery = Gallery.open(path) if open else Gallery.create(path, "model-a", DIM, index, store=store, **options)
        made.append(gallery)
        return gallery

    try:
        yield making
    finally:
        for gallery in reversed(made):
            gallery.close()


@pytest.fixture
def make(tmp_path: Path, store: str) -> Iterator[Make]:
    """Galleries of each store in turn."""
    with maker(tmp_path, store) as making:
        yield making


@pytest.fixture
def make_lite(tmp_path: Path) -> Iterator[Make]:
    """Galleries of the milvus store, in Milvus Lite."""
    pytest.importorskip("pymilvus")
    with maker(tmp_path, "milvus") as making:
        yield making


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Milvus server on a local port (Milvus Lite's gRPC server): flukeid reaches it by http:// URI."""
    pytest.importorskip("pymilvus")
    from milvus_lite.adapter.grpc.server import start_server_in_thread

    server, db, port = start_server_in_thread(str(tmp_path_factory.mktemp("server") / "data"))
    yield f"http://127.0.0.1:{port}"
    server.stop(grace=0)
    db.close()


def held(gallery: Gallery) -> int:
    """How many vectors the gallery's store holds, as the gallery searches it now."""
    gallery._current()
    return gallery._vectors.count()


def top_ids(gallery: Gallery, queries: np.ndarray) -> list[int]:
    return gallery.search(queries, k=1).ids[:, 0].tolist()


# -- the same answers through the Gallery API ----------------------------------------------------------------------


def test_search_and_scores_match_brute_force(make: Make) -> None:
    gallery = make()
    names = [NEW_WHALE, *[f"w{i % 9}" for i in range(40)]]
    vectors = enrol(gallery, names)
    ids = np.array([p.id for p in gallery.photos()])
    queries = unit_vectors(6, seed=1)
    similarity = queries @ vectors.T
    hits = gallery.search(queries, k=10)
    np.testing.assert_array_equal(hits.ids, ids[np.argsort(-similarity, axis=1, kind="stable")[:, :10]])
    np.testing.assert_allclose(hits.similarity, -np.sort(-similarity, axis=1)[:, :10], atol=1e-5)
    for aggregate in ("max", "mean"):
        table = gallery.score_table(queries, k=50, aggregate=aggregate)
        expected = individual_scores(similarity, names, aggregate=aggregate)
        assert table.individuals == expected.individuals
        np.testing.assert_allclose(table.scores, expected.scores, atol=1e-5)
    assert held(gallery) == len(gallery) == 41


def test_removal_model_check_and_another_handle(make: Make) -> None:
    gallery = make()
    other = make(open=True)
    vectors = enrol(gallery, ["a", "b", "c", "b", "d"])
    assert top_ids(other, vectors) == [p.id for p in gallery.photos()]  # the other handle sees the write
    assert gallery.remove(individual="b") == 2
    assert other.score_table(vectors).individuals == ["a", "c", "d"]
    hits = other.search(vectors, k=5)
    assert set(hits.ids[hits.ids >= 0].tolist()) == {p.id for p in gallery.photos()}
    assert held(gallery) == held(other) == 3
    gallery.check_model("model-a")
    with pytest.raises(FlukeidError, match="built with model model-a; this is model model-b"):
        other.check_model("model-b")


def dense_reference(hits: PhotoHits, names: dict[int, str], individuals: list[str], aggregate: str) -> np.ndarray:
    """Per-individual scores (Q, I) over every individual, from the hits, written plainly (what the gallery did
    before it kept them sparse)."""
    column = {name: i for i, name in enumerate(individuals)}
    found: list[list[list[float]]] = [[[] for _ in individuals] for _ in hits.ids]
    for q, (row_ids, row_similarity) in enumerate(zip(hits.ids.tolist(), hits.similarity.tolist())):
        for photo_id, similarity in zip(row_ids, row_similarity):
            if photo_id >= 0 and names[photo_id] != NEW_WHALE:
                found[q][column[names[photo_id]]].append(similarity)
    pick = max if aggregate == "max" else (lambda values: sum(values) / len(values))
    return np.array([[pick(values) if values else -1.0 for values in row] for row in found])


@pytest.mark.parametrize("index", ["flat", "hnsw"])
def test_sparse_scores_equal_a_dense_reference(make: Make, index: str) -> None:
    """Random data: every individual with hits scores as the dense reference says, the others (no column) are -1
    there, and the top-5 rankings are the same; for batches and single queries (FAISS's direct path)."""
    gallery = make(index=index)
    rng = np.random.default_rng(3)
    names = [NEW_WHALE if rng.random() < 0.1 else f"w{rng.integers(120):03d}" for _ in range(400)]
    enrol(gallery, names[:300])
    vectors = unit_vectors(100, seed=5)  # enrolled while open: new names among the old, batch by batch
    for start in range(0, 100, 10):
        batch = slice(start, start + 10)
        gallery.add([f"q{i}.jpg" for i in range(start, start + 10)], names[300:][batch], vectors[batch])
    by_id = {p.id: p.individual for p in gallery.photos()}
    individuals = gallery.individuals()
    queries = unit_vectors(25, seed=4)
    batches = [queries, queries[:1], queries[7:8]]
    for batch in batches:
        for aggregate in ("max", "mean"):
            hits = gallery.search(batch, k=30)
            table = gallery.score_table(batch, k=30, aggregate=aggregate)
            dense = dense_reference(hits, by_id, individuals, aggregate)
            columns = [individuals.index(name) for name in table.individuals]
            assert table.individuals == sorted(table.individuals)
            np.testing.assert_allclose(table.scores, dense[:, columns], atol=1e-6)
            assert (np.delete(dense, columns, axis=1) == -1).all()
            sparse_top = rank(table, k=5)
            dense_top = rank(ScoreTable(individuals, dense.astype(np.float32)), k=5)
            assert [r.ids for r in sparse_top] == [r.ids for r in dense_top]
        hits, table = gallery.search_scores(batch, k=30)
        np.testing.assert_allclose(table.scores, gallery.score_table(batch, k=30).scores, atol=1e-6)
    if index == "hnsw":
        return  # an HNSW graph rebuilt on opening may find other neighbours: compare exact search only
    reopened = make(open=True)  # the labels loaded afresh: the same tables
    for aggregate in ("max", "mean"):
        table, fresh = (g.score_table(queries, k=30, aggregate=aggregate) for g in (gallery, reopened))
        assert table.individuals == fresh.individuals
        np.testing.assert_allclose(table.scores, fresh.scores, atol=1e-6)


def test_a_query_batch_has_columns_only_for_individuals_among_its_hits(make: Make) -> None:
    gallery = make()
    vectors = enrol(gallery, [f"w{i}" for i in range(30)])
    table = gallery.score_table(vectors[:2], k=3)
    assert 2 <= len(table.individuals) <= 6 and {"w0", "w1"} <= set(table.individuals)
    assert table.scores.shape == (2, len(table.individuals))


# -- a fault between the two writes -----------------------------------------------------------------------------


def _store_class(gallery: Gallery) -> type:
    return type(gallery._vectors)


@pytest.mark.parametrize("write", ["add", "remove"])
def test_a_fault_between_database_and_store_is_repaired(
    make: Make, monkeypatch: pytest.MonkeyPatch, write: str
) -> None:
    gallery = make()
    first = enrol(gallery, ["a", "b", "c"])

    def fail(*args: object) -> bool:
        raise FlukeidError("injected: the store went away")

    monkeypatch.setattr(_store_class(gallery), write, fail)
    new = unit_vectors(2, seed=7)
    with pytest.raises(FlukeidError, match=r"saved in gallery\.sqlite.*rebuilt from the database"):
        if write == "add":
            gallery.add(["n0.jpg", "n1.jpg"], ["d", "d"], new)
        else:
            gallery.remove(individual="b")
    monkeypatch.undo()
    reopened = make(open=True)
    expected_individuals = ["a", "b", "c", "d"] if write == "add" else ["a", "c"]
    for g in (reopened, gallery):  # a new handle repairs the store at open; the failing one on its next use
        assert g.individuals() == expected_individuals
        assert held(g) == len(g)
        photos = {p.image: p.id for p in g.photos()}
        if write == "add":
            assert top_ids(g, new) == [photos["n0.jpg"], photos["n1.jpg"]]
        else:
            assert top_ids(g, first[[0, 2]]) == [photos["p0.jpg"], photos["p2.jpg"]]
            assert "b" not in g.score_table(first).individuals


KILLED_CHILD = """
import os, sys
import numpy as np
from flukeid.gallery import Gallery
from flukeid.gallery.milvus_store import MilvusStore

gallery = Gallery.open(sys.argv[1])
MilvusStore.add = lambda *args: os._exit(1)  # dies after the database commit, before the store hears of it
gallery.add(["q0.jpg", "q1.jpg"], ["c", "d"], np.eye(16, dtype=np.float32)[:2])
"""


def test_a_process_killed_between_the_writes_leaves_a_store_repaired_at_open(make_lite: Make) -> None:
    """(test_gallery.py kills a FAISS gallery's writer after its commit.)"""
    gallery = make_lite()
    enrol(gallery, ["a", "b"])
    gallery.close()  # Milvus Lite serves one process at a time
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(KILLED_CHILD), str(gallery.path)], check=False)
    assert child.returncode == 1
    reopened = make_lite(open=True)
    assert reopened.individuals() == ["a", "b", "c", "d"] and held(reopened) == 4
    photos = {p.image: p.id for p in reopened.photos()}
    assert top_ids(reopened, np.eye(DIM, dtype=np.float32)[:2]) == [photos["q0.jpg"], photos["q1.jpg"]]


def test_open_repairs_a_collection_changed_behind_its_back(make_lite: Make) -> None:
    """(test_gallery.py damages a FAISS gallery's index file.)"""
    gallery = make_lite()
    vectors = enrol(gallery, ["a", "b", "c"])
    ids = [p.id for p in gallery.photos()]
    gallery._vectors.remove(np.array(ids[:1]))  # the same stamp, one vector fewer
    gallery.close()
    assert top_ids(make_lite(open=True), vectors) == ids


# -- rebuilding, and moving between stores -----------------------------------------------------------------------


def test_rebuild_and_move_between_stores(tmp_path: Path) -> None:
    pytest.importorskip("pymilvus")
    path = tmp_path / "g"
    gallery = Gallery.create(path, "model-a", DIM, "hnsw")
    vectors = enrol(gallery, [f"w{i % 5}" for i in range(30)])
    expected = gallery.search(vectors, k=3).ids
    gallery.close()
    assert rebuild_store(path).kind == "faiss"
    assert rebuild_store(path, "milvus").kind == "milvus" and not (path / "index.faiss").exists()
    moved = Gallery.open(path)
    assert moved.store.kind == "milvus" and held(moved) == 30
    np.testing.assert_array_equal(moved.search(vectors, k=3).ids, expected)
    moved.close()
    assert rebuild_store(path, "faiss").kind == "faiss"
    assert not (path / "milvus.db").exists() and not (path / "milvus.version").exists()
    back = Gallery.open(path)
    np.testing.assert_array_equal(back.search(vectors, k=3).ids, expected)
    assert isinstance(back._vectors, FaissStore)


def test_a_milvus_server_by_uri(tmp_path: Path, milvus_server: str) -> None:
    gallery = Gallery.create(tmp_path / "g", "model-a", DIM, "hnsw", store="milvus", milvus_uri=milvus_server)
    spec = store_of(tmp_path / "g")
    assert spec.milvus_uri == milvus_server and spec.collection is not None
    assert spec.collection.startswith("flukeid_") and "Milvus server" in spec.describe()
    vectors = enrol(gallery, ["a", "b", "c", "a"])
    gallery.remove(images=["p1.jpg"])
    reopened = Gallery.open(tmp_path / "g")
    assert reopened.score_table(vectors).individuals == ["a", "c"] and held(reopened) == 3
    assert rebuild_store(tmp_path / "g").collection == spec.collection
    assert top_ids(Gallery.open(tmp_path / "g"), vectors[[0, 2]]) == top_ids(reopened, vectors[[0, 2]])


# -- refusals ------------------------------------------------------------------------------------------------------


def test_milvus_without_pymilvus_fails_with_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pymilvus", None)  # as if not installed
    with pytest.raises(FlukeidError, match=r"^the milvus vector store needs pymilvus.*pip install -e '\.\[scale\]'$"):
        Gallery.create(tmp_path / "g", "model-a", DIM, store="milvus")
    assert not (tmp_path / "g").exists()


def test_store_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(FlukeidError, match="unknown vector store 'annoy'"):
        Gallery.create(tmp_path / "g", "model-a", DIM, store="annoy")
    with pytest.raises(FlukeidError, match="--milvus-uri is for the milvus store"):
        Gallery.create(tmp_path / "g", "model-a", DIM, milvus_uri="x.db")
    pytest.importorskip("pymilvus")
    with pytest.raises(FlukeidError, match="neither a Milvus Lite database"):
        Gallery.create(tmp_path / "g", "model-a", DIM, store="milvus", milvus_uri="ftp://somewhere")


def test_a_milvus_lite_database_held_elsewhere_is_named(make_lite: Make) -> None:
    gallery = make_lite()
    enrol(gallery, ["a"])
    gallery.close()
    with open(gallery.path / "milvus.db" / "LOCK", "a+") as lock:  # as another process holding it
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(FlukeidError, match=r"milvus\.db: cannot connect.*one process at a time"):
            Gallery.open(gallery.path)
        fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    assert len(make_lite(open=True)) == 1 and os.path.isdir(gallery.path / "milvus.db")
