"""Gallery: SQLite + FAISS round trips, search against numpy brute force, removal, and crash safety."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import flukeid.gallery.faiss_store as faiss_store
import flukeid.gallery.store as store
from flukeid import NEW_WHALE
from flukeid.errors import FlukeidError
from flukeid.gallery import Gallery, Photo
from flukeid.scores import individual_centroids, individual_scores

DIM = 8
INDIVIDUALS = ["b", "a", NEW_WHALE, "a", "c"]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def enrol(gallery: Gallery, individuals: list[str], seed: int = 0, prefix: str = "p") -> np.ndarray:
    """Add one random photo per individual, named <prefix><i>.jpg; returns their vectors (N, dim)."""
    vectors = unit_vectors(len(individuals), gallery.dim, seed)
    gallery.add([f"{prefix}{i}.jpg" for i in range(len(individuals))], individuals, vectors)
    return vectors


@pytest.fixture
def gallery(tmp_path: Path) -> Gallery:
    return Gallery.create(tmp_path / "gallery", "model-a", DIM)


def brute_force_ids(queries: np.ndarray, vectors: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]]


# -- storing -------------------------------------------------------------------------------------------------------


def test_round_trip_keeps_photos_vectors_and_settings(gallery: Gallery) -> None:
    vectors = unit_vectors(5)
    paths = [f"/cat/p{i}.jpg" for i in range(5)]
    ids = gallery.add([f"p{i}.jpg" for i in range(5)], INDIVIDUALS, vectors, paths=paths, sha1s=["x"] * 5)
    reopened = Gallery.open(gallery.path)
    assert (reopened.model_id, reopened.dim, reopened.index_kind) == ("model-a", DIM, "flat")
    assert len(reopened) == 5
    assert reopened.individuals() == ["a", "b", "c"]
    expected = [Photo(i, f"p{n}.jpg", name, paths[n], "x") for n, (i, name) in enumerate(zip(ids, INDIVIDUALS))]
    assert reopened.photos() == expected
    assert reopened.photos("a") == [expected[1], expected[3]]
    np.testing.assert_allclose(reopened.all_vectors(), vectors, atol=1e-6)


def test_vectors_are_renormalised(gallery: Gallery) -> None:
    gallery.add(["p.jpg"], ["a"], 3.0 * unit_vectors(1))
    np.testing.assert_allclose(np.linalg.norm(gallery.all_vectors(), axis=1), 1.0, atol=1e-6)


def test_create_refuses_a_gallery_or_a_non_empty_folder(tmp_path: Path) -> None:
    Gallery.create(tmp_path / "g", "m", DIM)
    with pytest.raises(FlukeidError, match="already holds a flukeid gallery"):
        Gallery.create(tmp_path / "g", "m", DIM)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "x.jpg").write_bytes(b"")
    with pytest.raises(FlukeidError, match="not empty"):
        Gallery.create(tmp_path / "photos", "m", DIM)
    (tmp_path / "empty").mkdir()
    assert len(Gallery.create(tmp_path / "empty", "m", DIM)) == 0
    with pytest.raises(FlukeidError, match="index kind: unknown 'annoy'"):
        Gallery.create(tmp_path / "other", "m", DIM, index="annoy")


def test_open_refuses_what_is_not_a_gallery(tmp_path: Path) -> None:
    with pytest.raises(FlukeidError, match="not a flukeid gallery"):
        Gallery.open(tmp_path / "missing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "gallery.sqlite").write_text("not a database, just text " * 100)
    with pytest.raises(FlukeidError, match="junk: not a flukeid gallery"):
        Gallery.open(tmp_path / "junk")


def test_duplicate_images_are_refused_and_nothing_is_added(gallery: Gallery) -> None:
    enrol(gallery, ["a", "b"])
    with pytest.raises(FlukeidError, match=r"already holds images 'p1.jpg'.*remove them first") as refused:
        gallery.add(["new.jpg", "p1.jpg"], ["c", "c"], unit_vectors(2))
    assert f"`flukeid remove {gallery.path} --image NAME`" in str(refused.value)  # words for the command line too
    with pytest.raises(FlukeidError, match="more than once in this batch"):
        gallery.add(["x.jpg", "x.jpg"], ["c", "c"], unit_vectors(2))
    assert [p.image for p in gallery.photos()] == ["p0.jpg", "p1.jpg"]


def test_individual_ids_follow_the_one_id_rule(gallery: Gallery) -> None:
    with pytest.raises(FlukeidError, match=r"'p1.jpg': ID 'w with spaces' contains whitespace.*nothing was added"):
        gallery.add(["p0.jpg", "p1.jpg"], ["a", "w with spaces"], unit_vectors(2))
    with pytest.raises(FlukeidError, match=r"'p.jpg': empty ID"):
        gallery.add(["p.jpg"], [""], unit_vectors(1))
    with pytest.raises(FlukeidError, match=r"'p.jpg': ID of 129 characters"):
        gallery.add(["p.jpg"], ["w" * 129], unit_vectors(1))
    assert len(gallery) == 0
    gallery.add(["p.jpg"], [NEW_WHALE], unit_vectors(1))  # stored, never scored (the service keeps such photos)
    assert len(gallery) == 1 and gallery.individuals() == []


def test_wrong_dimension_and_bad_values_are_refused(gallery: Gallery) -> None:
    with pytest.raises(FlukeidError, match=r"shape \(N, 8\) for gallery .* \(model model-a\), got \(1, 4\)"):
        gallery.add(["p.jpg"], ["a"], unit_vectors(1, dim=4))
    with pytest.raises(FlukeidError, match="row 1 holds NaN"):
        gallery.add(["p.jpg", "q.jpg"], ["a", "a"], np.array([[1.0] * DIM, [np.nan] * DIM]))
    with pytest.raises(FlukeidError, match="row 0 is all zeros"):
        gallery.add(["p.jpg"], ["a"], np.zeros((1, DIM)))
    with pytest.raises(FlukeidError, match=r"shape \(N, 8\)"):
        gallery.search(unit_vectors(1, dim=4))
    assert len(gallery) == 0


def test_check_model_refuses_another_model(gallery: Gallery) -> None:
    gallery.check_model("model-a")
    with pytest.raises(FlukeidError, match="built with model model-a; this is model model-b") as refused:
        gallery.check_model("model-b")
    assert f"rebuild the gallery with `flukeid gallery build MODEL DATA --out {gallery.path} --replace`" in str(
        refused.value
    )


def test_photo_ids_are_never_reused(gallery: Gallery) -> None:
    first = gallery.add(["p.jpg", "q.jpg"], ["a", "b"], unit_vectors(2))
    gallery.remove(images=["q.jpg"])
    assert gallery.add(["r.jpg"], ["c"], unit_vectors(1)) == [first[-1] + 1]


# -- searching -----------------------------------------------------------------------------------------------------


def test_flat_search_matches_brute_force(gallery: Gallery) -> None:
    vectors = enrol(gallery, [f"w{i % 13}" for i in range(60)])
    ids = np.array([p.id for p in gallery.photos()])
    queries = unit_vectors(7, seed=1)
    hits = gallery.search(queries, k=10)
    np.testing.assert_array_equal(hits.ids, brute_force_ids(queries, vectors, ids, 10))
    np.testing.assert_allclose(hits.similarity, -np.sort(-(queries @ vectors.T), axis=1)[:, :10], atol=1e-6)


def test_search_pads_with_minus_one_when_gallery_is_small(gallery: Gallery) -> None:
    enrol(gallery, ["a", "b", "c"])
    hits = gallery.search(unit_vectors(2, seed=1), k=5)
    assert hits.ids.shape == (2, 5) and (hits.ids[:, 3:] == -1).all() and (hits.ids[:, :3] > 0).all()
    assert np.isneginf(hits.similarity[:, 3:]).all()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_search_recall(tmp_path: Path, kind: str) -> None:
    gallery = Gallery.create(tmp_path / "g", "m", 16, index=kind)
    vectors = enrol(gallery, [f"w{i}" for i in range(2000)])
    queries = unit_vectors(100, dim=16, seed=1)
    hits = Gallery.open(gallery.path).search(queries, k=10)
    truth = brute_force_ids(queries, vectors, np.array([p.id for p in gallery.photos()]), 10)
    recall = np.mean([len(set(h) & set(t)) / 10 for h, t in zip(hits.ids, truth)])
    assert recall >= 0.9


def test_small_ivf_gallery_is_searched_exactly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="flukeid.gallery"):
        gallery = Gallery.create(tmp_path / "g", "m", DIM, index="ivf")
        vectors = enrol(gallery, [f"w{i}" for i in range(300)])
    assert "searching it exactly (flat)" in caplog.text
    queries = unit_vectors(20, seed=1)
    truth = brute_force_ids(queries, vectors, np.array([p.id for p in gallery.photos()]), 10)
    np.testing.assert_array_equal(gallery.search(queries, k=10).ids, truth)


@pytest.mark.parametrize("aggregate", ["max", "mean"])
def test_flat_score_table_equals_individual_scores(gallery: Gallery, aggregate: str) -> None:
    enrol(gallery, [NEW_WHALE, *[f"w{i % 9}" for i in range(40)]])
    queries = unit_vectors(6, seed=1)
    table = gallery.score_table(queries, k=50, aggregate=aggregate)
    names = [p.individual for p in gallery.photos()]
    expected = individual_scores(queries @ gallery.all_vectors().T, names, aggregate=aggregate)
    assert table.individuals == expected.individuals
    np.testing.assert_allclose(table.scores, expected.scores, rtol=0, atol=1e-6)


def test_score_table_uses_only_the_top_k_hits(gallery: Gallery) -> None:
    vectors = enrol(gallery, [f"w{i % 9}" for i in range(40)])
    names = np.array([p.individual for p in gallery.photos()])
    queries = unit_vectors(5, seed=1)
    table = gallery.score_table(queries, k=6, aggregate="mean")
    for q, similarity in enumerate(queries @ vectors.T):
        top = np.argsort(-similarity)[:6]
        for column, name in enumerate(table.individuals):
            mine = [similarity[i] for i in top if names[i] == name]
            assert table.scores[q, column] == pytest.approx(np.mean(mine) if mine else -1.0, abs=1e-6)


def test_new_whale_photos_are_found_but_never_scored(gallery: Gallery) -> None:
    vectors = enrol(gallery, INDIVIDUALS)
    query = vectors[2:3]  # the new_whale photo itself
    assert gallery.search(query, k=1).ids[0, 0] == gallery.photos()[2].id
    assert gallery.score_table(query).individuals == ["a", "b", "c"]
    assert gallery.centroid_table(query).individuals == ["a", "b", "c"]


def test_empty_gallery_gives_empty_tables(gallery: Gallery) -> None:
    queries = unit_vectors(3)
    for table in (gallery.score_table(queries), gallery.centroid_table(queries)):
        assert table.individuals == [] and table.scores.shape == (3, 0)
    assert (gallery.search(queries, k=4).ids == -1).all()


def test_centroid_table_scores_against_unit_mean_embeddings(gallery: Gallery) -> None:
    vectors = enrol(gallery, INDIVIDUALS * 3)
    queries = unit_vectors(4, seed=1)
    centroids = individual_centroids(vectors, INDIVIDUALS * 3)
    table = gallery.centroid_table(queries)
    assert table.individuals == centroids.individuals == ["a", "b", "c"]
    np.testing.assert_allclose(table.scores, queries @ centroids.vectors.T, atol=1e-6)


# -- removing ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_removed_photos_leave_search_and_tables_for_good(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    gallery = Gallery.create(tmp_path / "g", "m", DIM, index=kind)
    vectors = enrol(gallery, ["a", "b", "c", "b", "d"])
    assert gallery.remove(individual="b") == 2
    assert gallery.remove(images=["p4.jpg"]) == 1
    gallery.close()  # writes the index file, if the removals came too close together to write it each time
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flukeid.gallery"):
        reopened = Gallery.open(gallery.path)
    assert "rebuilding" not in caplog.text  # the index file is current
    for g in (gallery, reopened):
        hits = g.search(vectors, k=5)
        kept = {p.id for p in g.photos()}
        assert set(hits.ids[hits.ids >= 0].tolist()) == kept and len(kept) == 2
        assert g.score_table(vectors).individuals == ["a", "c"] == g.individuals()


def test_remove_refuses_unknown_names_and_removes_nothing(gallery: Gallery) -> None:
    enrol(gallery, ["a", "b"])
    with pytest.raises(FlukeidError, match="no photos of 'zed'"):
        gallery.remove(individual="zed")
    with pytest.raises(FlukeidError, match=r"no images 'nope\.jpg'"):
        gallery.remove(images=["p0.jpg", "nope.jpg"])
    with pytest.raises(FlukeidError, match="needs an individual or images"):
        gallery.remove()
    assert len(gallery) == 2


def test_another_handle_sees_writes(gallery: Gallery) -> None:
    other = Gallery.open(gallery.path)
    vectors = enrol(gallery, ["a", "b"])
    assert other.search(vectors, k=1).ids[:, 0].tolist() == [p.id for p in gallery.photos()]
    gallery.remove(individual="a")
    assert other.score_table(vectors).individuals == ["b"]


# -- crash safety --------------------------------------------------------------------------------------------------


def test_damaged_index_file_is_rebuilt(gallery: Gallery) -> None:
    vectors = enrol(gallery, ["a", "b", "c"])
    (gallery.path / "index.faiss").write_bytes(b"garbage")
    assert Gallery.open(gallery.path).search(vectors, k=1).ids[:, 0].tolist() == [p.id for p in gallery.photos()]


def test_writes_close_together_save_the_index_file_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(faiss_store, "LAZY_FROM", 0)
    monkeypatch.setattr(faiss_store, "SAVE_SHARE", 1e-12)  # after the first save (the empty index), none until close
    gallery = Gallery.create(tmp_path / "g", "m", DIM)
    saved = (gallery.path / "index.faiss").read_bytes()
    vectors = enrol(gallery, ["a", "b"])
    assert (gallery.path / "index.faiss").read_bytes() == saved  # stale (a reader would rebuild the index)
    gallery.close()
    with caplog.at_level(logging.INFO, logger="flukeid.gallery"):
        assert Gallery.open(gallery.path).search(vectors, k=1).ids[:, 0].tolist() == [1, 2]
    assert "stale" not in caplog.text and "rebuilding" not in caplog.text  # the file closing wrote was used


def test_failure_before_commit_keeps_previous_photos(gallery: Gallery, monkeypatch: pytest.MonkeyPatch) -> None:
    enrol(gallery, ["a", "b"])
    real_row, calls = store._photo_row, []

    def failing_row(*row: object) -> tuple:
        calls.append(row)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real_row(*row)

    monkeypatch.setattr(store, "_photo_row", failing_row)
    with pytest.raises(RuntimeError, match="disk on fire"):
        enrol(gallery, ["c", "d", "e", "f"], seed=1, prefix="q")
    monkeypatch.undo()
    for g in (gallery, Gallery.open(gallery.path)):
        assert [p.image for p in g.photos()] == ["p0.jpg", "p1.jpg"]
        hits = g.search(unit_vectors(1), k=5).ids[0]
        assert sorted(hits[:2].tolist()) == [p.id for p in g.photos()] and (hits[2:] == -1).all()
    enrol(gallery, ["c"], prefix="q")  # the gallery takes writes again
    assert gallery.individuals() == ["a", "b", "c"]


def test_failure_after_commit_leaves_a_stale_index_that_is_rebuilt(
    gallery: Gallery, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    enrol(gallery, ["a", "b"])

    def crash(*args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(faiss_store, "save_index", crash)
    vectors = unit_vectors(2, seed=1)
    with pytest.raises(RuntimeError, match="power cut"):
        gallery.add(["q0.jpg", "q1.jpg"], ["c", "d"], vectors)
    monkeypatch.undo()
    with caplog.at_level(logging.INFO, logger="flukeid.gallery"):
        reopened = Gallery.open(gallery.path)
    assert "stale" in caplog.text
    new_ids = [p.id for p in reopened.photos() if p.individual in ("c", "d")]
    assert reopened.search(vectors, k=1).ids[:, 0].tolist() == new_ids


CHILD = """
import os, sys
import numpy as np
import flukeid.gallery.faiss_store as faiss_store
import flukeid.gallery.faiss_store as faiss_store
import flukeid.gallery.store as store
from flukeid.gallery import Gallery

gallery = Gallery.open(sys.argv[1])
if sys.argv[2] == "mid-insert":
    real_row, calls = store._photo_row, []
    def dying_row(*row):
        calls.append(row)
        if len(calls) == 3:
            os._exit(1)
        return real_row(*row)
    store._photo_row = dying_row
else:
    faiss_store.save_index = lambda *args: os._exit(1)
vectors = np.eye(8, dtype=np.float32)[:4]
gallery.add([f"q{i}.jpg" for i in range(4)], ["c", "c", "d", "d"], vectors)
"""


@pytest.mark.parametrize(("moment", "expected"), [("mid-insert", ["a", "b"]), ("after-commit", ["a", "b", "c", "d"])])
def test_killed_process_leaves_a_consistent_gallery(gallery: Gallery, moment: str, expected: list[str]) -> None:
    enrol(gallery, ["a", "b"])
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(CHILD), str(gallery.path), moment], check=False)
    assert child.returncode == 1
    reopened = Gallery.open(gallery.path)
    assert reopened.individuals() == expected
    if moment == "after-commit":
        hits = reopened.search(np.eye(DIM, dtype=np.float32)[:4], k=1)
        assert hits.ids[:, 0].tolist() == [p.id for p in reopened.photos()[2:]]


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_few_query_search_maps_ids_like_faiss_after_adds_and_removals(tmp_path: Path, kind: str) -> None:
    """Single queries take the direct path (inner index + numpy id map); batches go through FAISS's id map."""
    gallery = Gallery.create(tmp_path / kind, "model-a", DIM, index=kind)
    vectors = enrol(gallery, [f"w{i % 7}" for i in range(60)])
    enrol(gallery, ["x"] * 10, seed=1, prefix="q")
    gallery.remove(images=[f"p{i}.jpg" for i in range(0, 60, 3)])
    enrol(gallery, ["y"] * 5, seed=2, prefix="r")
    queries = np.concatenate([vectors[:4], unit_vectors(4, seed=9)])
    batch = gallery.search(queries, k=12)  # 8 queries: FAISS's own id map
    for q in range(len(queries)):
        single = gallery.search(queries[q : q + 1], k=12)
        np.testing.assert_array_equal(single.ids[0], batch.ids[q])
        np.testing.assert_allclose(single.similarity[0], batch.similarity[q], atol=1e-6)
    assert not set(batch.ids.reshape(-1).tolist()) & {1, 4, 7}  # removed photos never come back
