"""Top-k rankings of score tables (`flukeid.scores`) with a `new_whale` threshold, and the threshold's tuning."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flukeid import NEW_WHALE
from flukeid.scores import ScoreTable

_ROW_BLOCK = 2048
"""Queries ranked at once, bounding the memory of top-k selection to a few (block, I) arrays."""

_PLATEAU_TOLERANCE = 1e-12


@dataclass(frozen=True)
class Ranking:
    """Up to k labels for one query, best first (may include `new_whale`), with their scores.

    The score of `new_whale` is the threshold that placed it (-inf when the gallery is empty
    and no threshold was given).
    """

    ids: list[str]
    scores: list[float]


@dataclass(frozen=True)
class ThresholdFit:
    """The `new_whale` threshold with the best MAP@k, and MAP@k of every candidate (C,) tried."""

    threshold: float
    map5: float
    thresholds: np.ndarray
    map5s: np.ndarray


@dataclass(frozen=True)
class _TopK:
    """Column indices (Q, K') of the best individuals, best first, and their scores (Q, K')."""

    columns: np.ndarray
    scores: np.ndarray


def _top_k_block(scores: np.ndarray, k: int) -> np.ndarray:
    """Columns (Q, k) of the k highest scores per row (k < I), lower column first among ties."""
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    above = scores > kth
    tied = scores == kth
    room = k - above.sum(axis=1)
    crowded = np.flatnonzero(tied.sum(axis=1) > room)
    tied[crowded] &= np.cumsum(tied[crowded], axis=1) <= room[crowded, None]
    return np.nonzero(above | tied)[1].reshape(scores.shape[0], k)


def _top_k(table: ScoreTable, k: int) -> _TopK:
    """The min(k, I) best individuals of each query, best first; ties go to the smaller name."""
    n_queries, n_individuals = table.scores.shape
    by_name = np.argsort(np.asarray(table.individuals, dtype=str), kind="stable")
    scores = table.scores[:, by_name]
    kept = min(k, n_individuals)
    columns = np.zeros((n_queries, kept), dtype=np.intp)
    for start in range(0, n_queries, _ROW_BLOCK):
        block = scores[start : start + _ROW_BLOCK]
        columns[start : start + _ROW_BLOCK] = (
            np.broadcast_to(np.arange(kept), (len(block), kept)) if kept == n_individuals else _top_k_block(block, kept)
        )
    top = np.take_along_axis(scores, columns, axis=1)
    order = np.argsort(-top, axis=1, kind="stable")
    columns = np.take_along_axis(columns, order, axis=1)
    return _TopK(by_name[columns], np.take_along_axis(top, order, axis=1))


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")


def rank(table: ScoreTable, k: int = 5, threshold: float | None = None) -> list[Ranking]:
    """The k best answers of each query (one Ranking per row of the table), best first.

    With a threshold, `new_whale` goes before the first individual scoring below it and the list
    is cut to k (so it is absent when all k scores reach the threshold, and appended when fewer
    than k individuals exist). With no individuals at all every query gets [`new_whale`].
    """
    _check_k(k)
    if threshold is not None and np.isnan(threshold):
        raise ValueError("threshold must be a number, got NaN")
    top = _top_k(table, k)
    names = np.asarray(table.individuals, dtype=object)
    if threshold is None and names.size > 0:
        return [Ranking(names[c].tolist(), s.tolist()) for c, s in zip(top.columns, top.scores, strict=True)]
    cut = np.float64(-np.inf if threshold is None else threshold)  # compared exactly, not in float32
    before_new = (top.scores >= cut).sum(axis=1)
    rankings = []
    for columns, scores, p in zip(top.columns, top.scores, before_new, strict=True):
        ids, values = names[columns].tolist(), scores.tolist()
        if p < k:
            ids, values = [*ids[:p], NEW_WHALE, *ids[p:]][:k], [*values[:p], float(cut), *values[p:]][:k]
        rankings.append(Ranking(ids, values))
    return rankings


def _default_candidates(top: np.ndarray, n: int = 200) -> np.ndarray:
    """About n thresholds (C,): midpoints between quantiles of the finite top-1 scores, one below
    every top-k score and one above every top-1 score."""
    finite_top1 = top[:, 0][np.isfinite(top[:, 0])] if top.shape[1] else np.zeros(0)
    if finite_top1.size == 0:
        return np.zeros(1)
    levels = np.unique(np.quantile(finite_top1.astype(np.float64), np.linspace(0.0, 1.0, n - 1)))
    lowest = np.nextafter(top[np.isfinite(top)].min().astype(np.float64), -np.inf)
    highest = np.nextafter(levels[-1], np.inf)
    return np.concatenate(([lowest], (levels[:-1] + levels[1:]) / 2.0, [highest]))


def _average_precisions(
    top: np.ndarray, true_rank: np.ndarray, is_new: np.ndarray, thresholds: np.ndarray, k: int
) -> np.ndarray:
    """AP@k (C, Q) of each query for each threshold (C,), from the top scores (Q, K') without
    `new_whale`, the 1-based rank (Q,) of the true individual among them (0: absent) and whether
    the truth is `new_whale` (Q,)."""
    before_new = (top[None, :, :] >= thresholds[:, None, None]).sum(axis=2)
    new_position = np.where(before_new < k, before_new + 1, 0)
    shifted = np.where(true_rank <= before_new, true_rank, true_rank + 1)
    individual_position = np.where((true_rank > 0) & (shifted <= k), shifted, 0)
    position = np.where(is_new, new_position, individual_position)
    return np.where(position > 0, 1.0 / np.maximum(position, 1), 0.0)


def _true_ranks(top: _TopK, individuals: list[str], truths: Sequence[str]) -> np.ndarray:
    """1-based rank (Q,) of each query's true individual in its top list, 0 when absent."""
    column_of = {name: i for i, name in enumerate(individuals)}
    truth_columns = np.array([column_of.get(t, -1) for t in truths], dtype=np.intp)
    hits = top.columns == truth_columns[:, None]  # at most one hit per row: individuals are unique
    return (hits * np.arange(1, hits.shape[1] + 1)).sum(axis=1)


def _plateau_middle(values: np.ndarray) -> int:
    """Index of the middle of the longest run of values equal to the maximum (first if several)."""
    on_top = (values >= values.max() - _PLATEAU_TOLERANCE).astype(np.int8)
    edges = np.diff(np.concatenate(([0], on_top, [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = int(np.argmax(ends - starts))
    return int((starts[longest] + ends[longest] - 1) // 2)


def tune_threshold(
    table: ScoreTable, truths: Sequence[str], k: int = 5, candidates: np.ndarray | None = None
) -> ThresholdFit:
    """The `new_whale` threshold of `rank` with the best MAP@k against the true labels (Q,).

    Candidates (C,) default to about 200 points spanning the top-1 scores; they are sorted and the
    middle of the longest plateau of best MAP@k is chosen. `map5` is MAP@k for the chosen k.
    """
    _check_k(k)
    if len(truths) != table.scores.shape[0]:
        raise ValueError(f"got {len(truths)} truths for {table.scores.shape[0]} queries; need one each")
    if len(truths) == 0:
        raise ValueError("tune_threshold needs at least one query, got none")
    top = _top_k(table, k)
    thresholds = _default_candidates(top.scores) if candidates is None else np.asarray(candidates, float)
    if thresholds.ndim != 1 or thresholds.size == 0 or np.isnan(thresholds).any():
        raise ValueError("candidates must be a non-empty 1-D array of numbers (no NaN)")
    thresholds = np.unique(thresholds)
    is_new = np.array([t == NEW_WHALE for t in truths], dtype=bool)
    true_rank = _true_ranks(top, table.individuals, truths)
    map5s = _average_precisions(top.scores, true_rank, is_new, thresholds, k).mean(axis=1)
    best = _plateau_middle(map5s)
    return ThresholdFit(float(thresholds[best]), float(map5s[best]), thresholds, map5s)


def novelty_scores(table: ScoreTable) -> np.ndarray:
    """How likely each query (Q,) shows a new individual: minus its best score (zeros if I=0)."""
    if table.scores.shape[1] == 0:
        return np.zeros(table.scores.shape[0], dtype=np.float32)
    return -table.scores.max(axis=1)
