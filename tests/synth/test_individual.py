"""Synthetic individuals: deterministic per generator, Kaggle-style ids."""

from __future__ import annotations

import re

import numpy as np

from flukeid.synth import Individual, sample_individual


def test_individual_is_deterministic_and_kaggle_like() -> None:
    a, b = (sample_individual(np.random.default_rng(7)) for _ in range(2))
    assert a == b and isinstance(a, Individual)
    assert re.fullmatch(r"w_[0-9a-f]{7}", a.id)
    assert len(a.notches) >= 2 and all(-1 <= n.x <= 1 for n in a.notches)
    assert sample_individual(np.random.default_rng(8)) != a
