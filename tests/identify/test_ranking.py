"""Ranking against hand-worked cases and plain reference loops (sorting, MAP@5 via metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from flukeid import NEW_WHALE
from flukeid.identify.ranking import Ranking, novelty_scores, rank, tune_threshold
from flukeid.metrics import map_at_k
from flukeid.scores import ScoreTable, individual_centroids, individual_scores

# Five gallery photos of individuals b, a, (new_whale), a, c; the new_whale photo scores highest
# for every query, so any leak of it shows.
GALLERY_IDS = ["b", "a", NEW_WHALE, "a", "c"]
SIMILARITY = np.array(
    [
        [0.1, 0.5, 0.99, 0.3, 0.2],
        [0.9, 0.2, 0.99, 0.4, 0.6],
        [0.3, -0.2, 0.99, 0.6, 0.3],
    ],
    dtype=np.float32,
)


def table_of(scores: list[list[float]], individuals: list[str] | None = None) -> ScoreTable:
    array = np.array(scores, dtype=np.float32).reshape(len(scores), -1)
    names = individuals if individuals is not None else [chr(ord("a") + i) for i in range(array.shape[1])]
    return ScoreTable(names, array)


def reference_rank(table: ScoreTable, k: int, threshold: float | None) -> list[list[str]]:
    """Plain loop: sort by (-score, name), insert new_whale before the first score < threshold."""
    answers = []
    for row in table.scores:
        pairs = sorted(zip(table.individuals, row.tolist(), strict=True), key=lambda p: (-p[1], p[0]))[:k]
        ids = [name for name, _ in pairs]
        if threshold is not None or not ids:
            below = [i for i, (_, s) in enumerate(pairs) if threshold is not None and s < threshold]
            ids.insert(below[0] if below else len(ids), NEW_WHALE)
        answers.append(ids[:k])
    return answers


def random_table(seed: int, n_queries: int = 60, n_individuals: int = 12) -> tuple[ScoreTable, list[str]]:
    """Scores rounded to 0.05 (many ties); a third of the truths are new_whale, some are absent names."""
    rng = np.random.default_rng(seed)
    scores = np.round(rng.uniform(0, 1, size=(n_queries, n_individuals)) * 20) / 20
    names = [f"w{i:02d}" for i in rng.permutation(n_individuals)]
    labels = [*names, NEW_WHALE, NEW_WHALE, NEW_WHALE, "unseen"]
    truths = [labels[i] for i in rng.integers(0, len(labels), size=n_queries)]
    return ScoreTable(names, scores.astype(np.float32)), truths


# --------------------------------------------------------------------------- individual_scores


def test_individual_scores_max_ignores_new_whale_photos() -> None:
    table = individual_scores(SIMILARITY, GALLERY_IDS)
    assert table.individuals == ["a", "b", "c"]
    assert table.scores.dtype == np.float32
    expected = [[0.5, 0.1, 0.2], [0.4, 0.9, 0.6], [0.6, 0.3, 0.3]]
    np.testing.assert_allclose(table.scores, expected, rtol=1e-6)


def test_individual_scores_mean() -> None:
    table = individual_scores(SIMILARITY, GALLERY_IDS, aggregate="mean")
    expected = [[0.4, 0.1, 0.2], [0.3, 0.9, 0.6], [0.2, 0.3, 0.3]]
    np.testing.assert_allclose(table.scores, expected, rtol=1e-6)


def test_individual_scores_empty_shapes() -> None:
    assert individual_scores(np.zeros((0, 5)), GALLERY_IDS).scores.shape == (0, 3)
    empty_gallery = individual_scores(np.zeros((3, 0)), [])
    assert empty_gallery.individuals == [] and empty_gallery.scores.shape == (3, 0)
    only_new = individual_scores(np.ones((2, 2)), [NEW_WHALE, NEW_WHALE])
    assert only_new.scores.shape == (2, 0)


def test_individual_scores_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="unknown aggregate 'median'"):
        individual_scores(SIMILARITY, GALLERY_IDS, aggregate="median")
    with pytest.raises(ValueError, match="shape"):
        individual_scores(SIMILARITY, GALLERY_IDS[:4])
    with pytest.raises(ValueError, match="NaN"):
        individual_scores(np.full((1, 5), np.nan), GALLERY_IDS)


def test_score_table_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="shape"):
        ScoreTable(["a"], np.zeros((2, 2)))
    with pytest.raises(ValueError, match="unique"):
        ScoreTable(["a", "a"], np.zeros((1, 2)))
    with pytest.raises(ValueError, match=NEW_WHALE):
        ScoreTable([NEW_WHALE], np.zeros((1, 1)))


# --------------------------------------------------------------------------- individual_centroids


def test_individual_centroids_mean_direction_without_new_whale() -> None:
    embeddings = np.array([[3.0, 0.0], [0.0, 1.0], [5.0, 5.0], [0.0, 2.0], [0.0, -4.0]])
    centroids = individual_centroids(embeddings, ["a", "b", NEW_WHALE, "a", "c"])
    assert centroids.individuals == ["a", "b", "c"]
    assert centroids.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(centroids.vectors, axis=1), 1.0, rtol=1e-6)
    # a: unit vectors (1, 0) and (0, 1) average to the diagonal whatever their lengths.
    expected = [[np.sqrt(0.5), np.sqrt(0.5)], [0.0, 1.0], [0.0, -1.0]]
    np.testing.assert_allclose(centroids.vectors, expected, atol=1e-6)


def test_individual_centroids_empty_and_mismatch() -> None:
    assert individual_centroids(np.zeros((0, 4)), []).vectors.shape == (0, 4)
    with pytest.raises(ValueError, match="shape"):
        individual_centroids(np.zeros((3, 4)), ["a"])


# --------------------------------------------------------------------------- rank


def test_rank_orders_and_cuts_to_k() -> None:
    table = table_of([[0.1, 0.7, 0.3, 0.9, 0.5, 0.2]])
    (ranking,) = rank(table, k=5)
    assert ranking.ids == ["d", "b", "e", "c", "f"]
    np.testing.assert_allclose(ranking.scores, [0.9, 0.7, 0.5, 0.3, 0.2], rtol=1e-6)
    assert rank(table, k=2)[0].ids == ["d", "b"]


def test_rank_breaks_ties_by_name() -> None:
    table = table_of([[0.5, 0.5, 0.5], [0.2, 0.9, 0.2]], individuals=["c", "a", "b"])
    assert [r.ids for r in rank(table)] == [["a", "b", "c"], ["a", "b", "c"]]
    # Ties across the k boundary (the partial-selection path): the smaller names win.
    boundary = table_of([[0.5, 0.5, 0.9, 0.5, 0.5]], individuals=["e", "d", "x", "b", "c"])
    assert rank(boundary, k=3)[0].ids == ["x", "b", "c"]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        (0.95, [NEW_WHALE, "d", "b", "e", "c"]),
        (0.4, ["d", "b", "e", NEW_WHALE, "c"]),
        (0.5, ["d", "b", "e", NEW_WHALE, "c"]),  # a score equal to the threshold stays above it
        (0.1, ["d", "b", "e", "c", "f"]),
    ],
)
def test_rank_inserts_new_whale_at_threshold(threshold: float, expected: list[str]) -> None:
    (ranking,) = rank(table_of([[0.1, 0.7, 0.3, 0.9, 0.5, 0.2]]), threshold=threshold)
    assert ranking.ids == expected
    if NEW_WHALE in expected:
        assert ranking.scores[expected.index(NEW_WHALE)] == threshold


def test_rank_appends_new_whale_when_fewer_individuals_than_k() -> None:
    table = table_of([[0.8, 0.6]])
    assert rank(table, threshold=0.1)[0].ids == ["a", "b", NEW_WHALE]
    assert rank(table)[0].ids == ["a", "b"]


def test_rank_empty_gallery_answers_new_whale() -> None:
    table = ScoreTable([], np.zeros((2, 0), dtype=np.float32))
    assert [r.ids for r in rank(table)] == [[NEW_WHALE], [NEW_WHALE]]
    assert rank(table, threshold=0.3) == [Ranking([NEW_WHALE], [0.3])] * 2
    assert rank(ScoreTable(["a"], np.zeros((0, 1), dtype=np.float32))) == []


def test_rank_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="k must be"):
        rank(table_of([[0.1]]), k=0)
    with pytest.raises(ValueError, match="NaN"):
        rank(table_of([[0.1]]), threshold=float("nan"))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("threshold", [None, 0.5, 0.62])
def test_rank_matches_reference_loop(seed: int, threshold: float | None) -> None:
    table, _ = random_table(seed, n_queries=2100)  # more than one block of queries
    assert [r.ids for r in rank(table, threshold=threshold)] == reference_rank(table, 5, threshold)


# --------------------------------------------------------------------------- tune_threshold


def separable_table() -> tuple[ScoreTable, list[str]]:
    """Known queries score 0.875 on their individual; unknown ones score at most 0.375."""
    rows, truths = [], []
    for q in range(10):
        row = [0.125] * 5
        if q % 2 == 0:
            row[q % 5] = 0.875
            truths.append(chr(ord("a") + q % 5))
        else:
            row[q % 5] = 0.375
            truths.append(NEW_WHALE)
        rows.append(row)
    return table_of(rows), truths


def test_tune_threshold_separates_known_from_new() -> None:
    table, truths = separable_table()
    fit = tune_threshold(table, truths)
    assert 0.375 < fit.threshold <= 0.875
    assert fit.map5 == 1.0
    assert fit.thresholds.shape == fit.map5s.shape
    predictions = [r.ids for r in rank(table, threshold=fit.threshold)]
    assert map_at_k(predictions, truths) == 1.0


def test_tune_threshold_picks_middle_of_best_plateau() -> None:
    table, truths = separable_table()
    fit = tune_threshold(table, truths, candidates=np.linspace(1.0, 0.0, 9))
    np.testing.assert_allclose(fit.thresholds, np.linspace(0.0, 1.0, 9))
    np.testing.assert_allclose(fit.map5s[4:8], 1.0)  # 0.5, 0.625, 0.75, 0.875
    assert fit.threshold == 0.625


@pytest.mark.parametrize("seed", range(5))
def test_tune_threshold_agrees_with_slow_path(seed: int) -> None:
    table, truths = random_table(seed)
    fit = tune_threshold(table, truths)
    for t, m in zip(fit.thresholds, fit.map5s, strict=True):
        slow = map_at_k([r.ids for r in rank(table, threshold=float(t))], truths)
        assert m == pytest.approx(slow, abs=1e-12)
    slow_best = map_at_k([r.ids for r in rank(table, threshold=fit.threshold)], truths)
    assert fit.map5 == pytest.approx(slow_best, abs=1e-12)
    assert fit.map5 >= map_at_k([r.ids for r in rank(table)], truths)
    assert fit.map5 == pytest.approx(fit.map5s.max(), abs=1e-12)


def test_tune_threshold_small_gallery_and_empty_gallery() -> None:
    table, truths = random_table(7, n_individuals=3)
    fit = tune_threshold(table, truths)
    assert fit.map5 >= map_at_k([r.ids for r in rank(table)], truths)
    empty = ScoreTable([], np.zeros((3, 0), dtype=np.float32))
    assert tune_threshold(empty, [NEW_WHALE, NEW_WHALE, "a"]).map5 == pytest.approx(2 / 3)


def test_tune_threshold_rejects_bad_truths() -> None:
    table, truths = separable_table()
    with pytest.raises(ValueError, match="truths"):
        tune_threshold(table, truths[:-1])
    with pytest.raises(ValueError, match="at least one query"):
        tune_threshold(ScoreTable(["a"], np.zeros((0, 1), dtype=np.float32)), [])


# --------------------------------------------------------------------------- novelty_scores


def test_novelty_scores_is_minus_best_score() -> None:
    np.testing.assert_allclose(novelty_scores(table_of([[0.2, 0.7], [0.4, 0.1]])), [-0.7, -0.4], rtol=1e-6)
    assert novelty_scores(ScoreTable([], np.zeros((3, 0), dtype=np.float32))).tolist() == [0, 0, 0]
