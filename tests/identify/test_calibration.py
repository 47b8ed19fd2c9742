"""Calibration: isotonic P(same) per matcher, and the logistic P(best match right)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flukeid import NEW_WHALE
from flukeid.identify.calibration import Calibration, Isotonic, fit_calibration, match_features
from flukeid.scores import ScoreTable


def test_isotonic_is_strictly_increasing_within_0_1_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    same = rng.random(400) < 0.5
    scores = np.where(same, rng.normal(2.0, 1.0, 400), rng.normal(0.0, 1.0, 400))
    curve = Isotonic.fit(scores, same)
    grid = np.linspace(-5, 7, 200)
    p = curve(grid)
    assert (np.diff(p) > 0).all() and p.min() >= 0 and p.max() <= 1
    assert curve(3.5) > 0.8 > 0.2 > curve(-1.5)  # well separated scores become confident probabilities
    np.testing.assert_array_equal(Isotonic.from_dict(curve.to_dict())(grid), p)


def test_isotonic_without_pairs_says_one_half() -> None:
    assert abs(float(Isotonic.fit([], [])(0.3)) - 0.5) < 1e-5


def test_match_features_are_top1_and_margin() -> None:
    table = ScoreTable(["a", "b", "c"], np.array([[0.9, 0.5, 0.7], [0.1, 0.2, 0.3]], np.float32))
    np.testing.assert_allclose(match_features(table), [[0.9, 0.2], [0.3, 0.1]], atol=1e-6)


def test_fitted_calibration_trusts_high_margins_more_and_saves(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    individuals = [f"i{n}" for n in range(20)]
    scores = rng.uniform(0, 0.5, (200, 20)).astype(np.float32)
    truths = []
    for q in range(200):
        if q % 4 == 0:
            truths.append(NEW_WHALE)  # unknown: no high score
        else:
            truth = q % 20
            scores[q, truth] = rng.uniform(0.6, 1.0)
            truths.append(individuals[truth])
    calibration = fit_calibration(ScoreTable(individuals, scores), truths)
    confident, unsure = calibration.match(np.array([[0.95, 0.5]])), calibration.match(np.array([[0.45, 0.02]]))
    assert confident[0] > 0.8 and unsure[0] < 0.5
    calibration.save(tmp_path / "calibration.json")
    assert Calibration.load(tmp_path / "calibration.json") == calibration
    assert Calibration.load(tmp_path / "missing.json") is None
