"""Tiny generated catalogues: a few 32x24 images, written fresh for each test."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, seed: int, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> Path:
    """A random-noise image (distinct per seed) saved in the format its suffix names."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr).convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Crops and other caches go to the test's own folder, never the user's ~/.cache."""
    monkeypatch.setenv("FLUKEID_CACHE", str(tmp_path / "cache"))


KaggleFactory = Callable[[Sequence[tuple[str, str]], int], Path]


@pytest.fixture
def kaggle(tmp_path: Path) -> KaggleFactory:
    """Build a Kaggle-layout catalogue from (Image, Id) rows plus ``n_test`` test images."""

    def build(rows: Sequence[tuple[str, str]], n_test: int = 0) -> Path:
        root = tmp_path / "cat"
        (root / "train").mkdir(parents=True)
        lines = ["Image,Id"]
        for i, (image, ident) in enumerate(rows):
            lines.append(f"{image},{ident}")
            if image and not (root / "train" / image).exists():
                write_image(root / "train" / image, seed=i)
        (root / "train.csv").write_text("\n".join(lines) + "\n")
        for j in range(n_test):
            write_image(root / "test" / f"t{j}.jpg", seed=1000 + j)
        return root

    return build
