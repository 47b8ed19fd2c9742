"""Ensembles: several models' per-individual score tables combined by weighted soft voting."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from flukeid.identify.ranking import tune_threshold
from flukeid.scores import ScoreTable

MISSING_SCORE = -1.0
"""Score of an individual that one model's table does not hold (the lowest cosine)."""


@dataclass(frozen=True)
class EnsembleFit:
    weights: tuple[float, ...]
    threshold: float
    map5: float


def combine(tables: Sequence[ScoreTable], weights: Sequence[float] | None = None) -> ScoreTable:
    """Weighted mean of aligned tables (same queries in the same order); individuals are the union."""
    if not tables:
        raise ValueError("combine needs at least one score table")
    queries = {t.scores.shape[0] for t in tables}
    if len(queries) != 1:
        raise ValueError(f"tables cover different numbers of queries: {sorted(queries)}")
    weights = np.full(len(tables), 1.0 / len(tables)) if weights is None else np.asarray(weights, dtype=np.float64)
    if len(weights) != len(tables) or weights.sum() <= 0:
        raise ValueError(f"need {len(tables)} non-negative weights with a positive sum, found {list(weights)}")
    weights = weights / weights.sum()
    individuals = sorted(set().union(*(t.individuals for t in tables)))
    column = {name: i for i, name in enumerate(individuals)}
    total = np.zeros((queries.pop(), len(individuals)), dtype=np.float64)
    for table, weight in zip(tables, weights):
        aligned = np.full_like(total, MISSING_SCORE)
        aligned[:, [column[n] for n in table.individuals]] = table.scores
        total += weight * aligned
    return ScoreTable(individuals, total.astype(np.float32))


def fit_ensemble(tables: Sequence[ScoreTable], truths: Sequence[str], steps: int = 5) -> EnsembleFit:
    """Choose weights (a grid over the simplex, single models included) and re-tune the threshold on
    validation queries; the fit is never worse than the best single model on those queries."""
    grid = np.linspace(0.0, 1.0, steps)
    best: EnsembleFit | None = None
    for weights in itertools.product(grid, repeat=len(tables)):
        if not np.isclose(sum(weights), 1.0):
            continue
        fit = tune_threshold(combine(tables, weights), truths)
        if best is None or fit.map5 > best.map5 + 1e-12:
            best = EnsembleFit(tuple(float(w) for w in weights), fit.threshold, fit.map5)
    assert best is not None
    return best
