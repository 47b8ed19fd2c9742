"""Synthetic fluke catalogue: determinism, Kaggle layout, box correctness, no trivial identity cues."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from flukeid import NEW_WHALE
from flukeid.errors import ConfigError
from flukeid.synth import (
    Individual,
    Patch,
    SynthConfig,
    SynthSummary,
    generate,
    render_photo,
    sample_individual,
)

TINY = SynthConfig(individuals=20, photos=(1, 5), size=(64, 96), train_new_whale=0.1, seed=3)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth") / "cat"
    return out, generate(out, TINY)


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    cfg = replace(TINY, individuals=6)
    generate(tmp_path / "a", cfg)
    generate(tmp_path / "b", cfg)
    generate(tmp_path / "c", replace(cfg, seed=4))
    first, second, other = (_hashes(tmp_path / k) for k in "abc")
    assert first == second
    assert len(first) > 4
    assert first != other


def test_layout_and_csvs(catalogue: tuple[Path, SynthSummary]) -> None:
    out, summary = catalogue
    train, sub = _read(out / "train.csv"), _read(out / "sample_submission.csv")
    answers, boxes = _read(out / "answers.csv"), _read(out / "boxes.csv")
    assert list(train[0]) == ["Image", "Id"] and list(sub[0]) == ["Image", "Id"]
    assert list(answers[0]) == ["Image", "Id", "Individual"]
    assert list(boxes[0]) == ["Image", "x0", "y0", "x1", "y1"]
    assert (summary.train_images, summary.test_images) == (len(train), len(sub))
    assert (summary.individuals, summary.new_individuals) == (20, 4)
    assert [r["Image"] for r in sub] == [r["Image"] for r in answers]
    names = [r["Image"] for r in train + sub]
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"[0-9a-f]{8}\.jpg", n) for n in names)
    assert sorted(p.name for p in (out / "train").iterdir()) == sorted(r["Image"] for r in train)
    assert sorted(p.name for p in (out / "test").iterdir()) == sorted(r["Image"] for r in sub)
    assert all(len(r["Id"].split()) == 5 and r["Id"].split()[0] == NEW_WHALE for r in sub)
    assert all(re.fullmatch(r"w_[0-9a-f]{7}", r["Individual"]) for r in answers)


def test_images_decode_and_boxes_fit(catalogue: tuple[Path, SynthSummary]) -> None:
    out, _ = catalogue
    split = {r["Image"]: "train" for r in _read(out / "train.csv")}
    split |= {r["Image"]: "test" for r in _read(out / "answers.csv")}
    boxes = _read(out / "boxes.csv")
    assert sorted(r["Image"] for r in boxes) == sorted(split)
    for row in boxes:
        with Image.open(out / split[row["Image"]] / row["Image"]) as im:
            im.load()
            width, height = im.size
        assert 64 <= width <= 96 and 0.5 * width <= height <= 0.85 * width
        x0, y0, x1, y1 = (int(row[k]) for k in ("x0", "y0", "x1", "y1"))
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert 0.01 < (x1 - x0) * (y1 - y0) / (width * height) <= 1.0


def test_labels_known_new_and_train_new_whale(catalogue: tuple[Path, SynthSummary]) -> None:
    out, _ = catalogue
    train, answers = _read(out / "train.csv"), _read(out / "answers.csv")
    train_ids = {r["Id"] for r in train}
    known = [r for r in answers if r["Id"] != NEW_WHALE]
    new = [r for r in answers if r["Id"] == NEW_WHALE]
    assert known and new
    assert all(r["Id"] in train_ids and r["Id"] == r["Individual"] for r in known)
    assert not {r["Individual"] for r in new} & train_ids
    assert len({r["Individual"] for r in new}) <= 4
    share = sum(r["Id"] == NEW_WHALE for r in train) / len(train)
    assert 0.03 < share < 0.2


def test_progress_reports_every_image(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    cfg = replace(TINY, individuals=4)
    summary = generate(tmp_path / "p", cfg, progress=lambda done, total: calls.append((done, total)))
    total = summary.train_images + summary.test_images
    assert calls == [(i, total) for i in range(1, total + 1)]


def test_refuses_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(tmp_path, TINY)


def test_individual_is_deterministic_and_kaggle_like() -> None:
    a, b = (sample_individual(np.random.default_rng(7)) for _ in range(2))
    assert a == b and isinstance(a, Individual)
    assert re.fullmatch(r"w_[0-9a-f]{7}", a.id)
    assert len(a.notches) >= 2 and all(-1 <= n.x <= 1 for n in a.notches)
    assert sample_individual(np.random.default_rng(8)) != a


def _pigment_variants(ind: Individual) -> tuple[Individual, Individual]:
    """The same fluke all white and all black (no scars, no rim)."""
    white = replace(ind, patches=(Patch(0.0, 0.5, 3.0, 3.0, 0.0, 1.0),), scars=(), margin=0.0)
    return white, replace(ind, patches=(), scars=(), margin=0.0)


def test_box_tightly_covers_the_fluke() -> None:
    """Pigment does not change the scene, so white-minus-black marks exactly the whale's pixels."""
    for i in range(12):
        white, black = _pigment_variants(sample_individual(np.random.default_rng(i)))
        size = (80 + 8 * i, 56 + 5 * i)
        a = render_photo(white, np.random.default_rng(100 + i), size, greyscale=0.0)
        b = render_photo(black, np.random.default_rng(100 + i), size, greyscale=0.0)
        assert a.box == b.box
        diff = np.abs(np.asarray(a.image, np.float32) - np.asarray(b.image, np.float32)).max(axis=2)
        ys, xs = np.nonzero(diff > 0.3 * diff.max())
        seen = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert max(abs(p - q) for p, q in zip(seen, a.box, strict=True)) <= 3, (i, seen, a.box)
        assert a.mask.shape == (size[1], size[0]) and a.mask[a.box[1] : a.box[3], a.box[0] : a.box[2]].any()
        assert a.mask.sum() == a.mask[a.box[1] : a.box[3], a.box[0] : a.box[2]].sum()


def _loo_accuracy(x: np.ndarray, labels: np.ndarray, centroid: bool) -> float:
    """Leave-one-out accuracy of nearest centroid (or 1-NN) on rows of x."""
    hits = 0
    for k in range(len(x)):
        rest = np.arange(len(x)) != k
        if centroid:
            classes = np.unique(labels)
            refs = np.stack([x[rest & (labels == c)].mean(axis=0) for c in classes])
        else:
            classes, refs = labels[rest], x[rest]
        hits += classes[((refs - x[k]) ** 2).sum(axis=1).argmin()] == labels[k]
    return hits / len(x)


def test_identity_not_given_away_by_colour_or_size() -> None:
    """Mean colour and image size predict identity near chance; the normalised box crop does far better."""
    n_ind, n_photos = 30, 4
    stats, patterns, labels = [], [], []
    for i in range(n_ind):
        ind = sample_individual(np.random.default_rng([11, i]))
        for j in range(n_photos):
            rng = np.random.default_rng([11, i, j])
            width = int(rng.integers(64, 97))
            photo = render_photo(ind, rng, (width, round(width * rng.uniform(0.55, 0.8))))
            rgb = np.asarray(photo.image.convert("RGB"), np.float32) / 255
            stats.append([*rgb.reshape(-1, 3).mean(axis=0), rgb.shape[1] / 96, rgb.shape[0] / 96])
            x0, y0, x1, y1 = photo.box
            crop = cv2.resize(rgb.mean(axis=2)[y0:y1, x0:x1], (32, 16), interpolation=cv2.INTER_AREA)
            patterns.append(((crop - crop.mean()) / (crop.std() + 1e-6)).ravel())
            labels.append(i)
    stats_z = (np.array(stats) - np.mean(stats, axis=0)) / np.std(stats, axis=0)
    y = np.array(labels)
    chance = 1 / n_ind
    colour_nn = _loo_accuracy(stats_z[:, :3], y, centroid=False)
    colour_size_centroid = _loo_accuracy(stats_z, y, centroid=True)
    pattern_nn = _loo_accuracy(np.array(patterns), y, centroid=False)
    seen = f"colour {colour_nn:.3f}, colour+size {colour_size_centroid:.3f}, pattern {pattern_nn:.3f}"
    assert colour_nn < 3 * chance and colour_size_centroid < 3 * chance, seen
    assert pattern_nn > max(5 * chance, 2 * colour_nn, 2 * colour_size_centroid), seen


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("individuals", 1),
        ("photos", (0, 3)),
        ("photos", (4, 2)),
        ("new_share", 1.5),
        ("test_share", -0.1),
        ("train_new_whale", 2.0),
        ("size", (16, 64)),
        ("size", (128, 64)),
        ("greyscale", -1.0),
        ("jpeg_quality", 0),
        ("seed", -1),
        ("individuals", 2.5),
    ],
)
def test_config_errors_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"SynthConfig\.{field}\b"):
        SynthConfig(**{field: value})
