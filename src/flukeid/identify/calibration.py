"""Calibrated probabilities from raw scores, fitted on labelled validation queries.

- ``Isotonic``: P(same individual | a pair's raw score) of one matcher (cosine of embeddings, verified inliers of a
  local matcher), an isotonic regression on same/different pairs made strictly increasing (WildFusion's
  calibration, Cermak et al. 2024): scores of different matchers become comparable, so they can be averaged.
- ``Calibration.match``: P(the best-scoring catalogue individual is the query's individual | top-1 score, margin
  to the second), a logistic regression on validation queries.
- ``Calibration.same``: P(same individual | cosine score of a query to an individual), for models not tuned yet.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from flukeid.scores import ScoreTable


@dataclass(frozen=True)
class Logistic:
    """sigmoid(bias + weights . features)."""

    weights: tuple[float, ...]
    bias: float

    def __call__(self, features: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(np.asarray(features, dtype=np.float64) @ np.array(self.weights) + self.bias)))


_STRICT = 1e-6
"""Weight of the strictly increasing term added to an isotonic curve: ties within a step of the curve keep the
order of their raw scores, without moving any probability by more than a millionth."""


@dataclass(frozen=True)
class Isotonic:
    """A strictly increasing map from raw scores to P(same individual): linear between the knots ``x`` (K,)
    ascending and ``y`` (K,) non-decreasing in [0, 1], flat beyond them, plus a tiny strictly increasing term."""

    x: tuple[float, ...]
    y: tuple[float, ...]

    def __call__(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        values = np.asarray(scores, dtype=np.float64)
        curve = np.interp(values, self.x, self.y)
        return np.clip(curve * (1 - _STRICT) + _STRICT * (0.5 + np.arctan(values) / np.pi), 0.0, 1.0)

    @classmethod
    def fit(cls, scores: np.ndarray | Sequence[float], same: np.ndarray | Sequence[bool]) -> Isotonic:
        """Fit on pairs: raw ``scores`` (N,) and whether each pair shows one individual (N,)."""
        values, target = np.asarray(scores, dtype=np.float64), np.asarray(same, dtype=np.float64)
        if values.size == 0:
            return cls((0.0,), (0.5,))
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(values, target)
        return cls(tuple(float(v) for v in model.X_thresholds_), tuple(float(v) for v in model.y_thresholds_))

    def to_dict(self) -> dict[str, list[float]]:
        return {"x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_dict(cls, raw: dict[str, list[float]]) -> Isotonic:
        return cls(tuple(float(v) for v in raw["x"]), tuple(float(v) for v in raw["y"]))


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
