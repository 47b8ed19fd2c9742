"""Writing a synthetic catalogue: determinism, Kaggle layout, boxes that fit, labels, config errors."""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from flukeid import NEW_WHALE
from flukeid.errors import ConfigError
from flukeid.synth import SynthConfig, SynthSummary, generate

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
