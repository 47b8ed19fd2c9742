"""Calibrated probabilities from raw cosine scores, fitted on validation queries.

- ``match``: P(the best-scoring catalogue individual is the query's individual | top-1 score, margin to the
  second), a logistic regression on validation queries.
- ``same``: P(same individual | cosine score of a query to an individual), for ``flukeid verify``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from flukeid.identify.ranking import ScoreTable


@dataclass(frozen=True)
class Logistic:
    """sigmoid(bias + weights . features)."""

    weights: tuple[float, ...]
    bias: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(features, dtype=np.float64) @ np.array(self.weights) + self.bias)))


@dataclass(frozen=True)
class Calibration:
    match: Logistic
    same: Logistic

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Calibration | None:
        if not path.is_file():
            return None
        raw = json.loads(path.read_text())
        return cls(
            Logistic(tuple(raw["match"]["weights"]), raw["match"]["bias"]),
            Logistic(tuple(raw["same"]["weights"]), raw["same"]["bias"]),
        )


def match_features(table: ScoreTable) -> np.ndarray:
    """(Q, 2): top-1 score and its margin over the second individual (0 margin with one individual)."""
    if table.scores.shape[1] == 0:
        return np.zeros((table.scores.shape[0], 2))
    ordered = -np.sort(-table.scores, axis=1)
    second = ordered[:, 1] if ordered.shape[1] > 1 else ordered[:, 0]
    return np.stack([ordered[:, 0], ordered[:, 0] - second], axis=1)


def _fit(features: np.ndarray, target: np.ndarray) -> Logistic:
    """Logistic regression; a constant predictor when validation holds one class only."""
    if target.min() == target.max():
        rate = float(np.clip(target.mean(), 1e-3, 1 - 1e-3))
        return Logistic((0.0,) * features.shape[1], float(np.log(rate / (1 - rate))))
    model = LogisticRegression(C=10.0).fit(features, target)
    return Logistic(tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]))


def fit_calibration(table: ScoreTable, truths: Sequence[str]) -> Calibration:
    """Fit both probabilities on validation queries (``truths``: correct label, ``new_whale`` if unknown)."""
    best = [table.individuals[i] for i in table.scores.argmax(axis=1)] if table.individuals else []
    correct = np.array([b == t for b, t in zip(best, truths)], dtype=int)
    match = _fit(match_features(table), correct) if len(correct) else Logistic((0.0, 0.0), 0.0)
    index = {name: i for i, name in enumerate(table.individuals)}
    same_target = np.zeros_like(table.scores, dtype=int)
    for q, truth in enumerate(truths):
        if truth in index:
            same_target[q, index[truth]] = 1
    same = _fit(table.scores.reshape(-1, 1), same_target.reshape(-1)) if table.scores.size else Logistic((0.0,), 0.0)
    return Calibration(match, same)
