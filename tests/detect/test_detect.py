"""Fluke box detector: box files, boxes that follow augmentations, a tiny trained detector, crops, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from flukeid.cli import main
from flukeid.data.transforms import AugmentConfig, build_transform
from flukeid.detect.crop import CropSettings, check_crop_target, crop_catalogue, crop_photos, crop_queries, crop_rows
from flukeid.detect.data import BoxRows, Letterbox, box_rows
from flukeid.detect.model import DetectorConfig, load_detector
from flukeid.detect.train import DetectTrainConfig, train_detector
from flukeid.errors import CatalogueError, FlukeidError
from flukeid.metrics import iou
from flukeid.synth import SynthConfig, generate

TINY = DetectorConfig(backbone="timm/test_efficientnet", pretrained=False, image_size=(48, 96), hidden=8)


@pytest.fixture(scope="module")
def flukes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flukes") / "cat"
    generate(root, SynthConfig(individuals=120, photos=(1, 3), size=(128, 256), seed=1))
    return root


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("small") / "cat"
    generate(root, SynthConfig(individuals=8, photos=(1, 2), size=(64, 96), seed=2))
    return root


def _white_box_photo(box: tuple[int, int, int, int], size: tuple[int, int] = (120, 200)) -> np.ndarray:
    image = np.zeros((*size, 3), np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255
    return image


def _extent(tensor: torch.Tensor) -> np.ndarray:
    """Pixel extent x0, y0, x1, y1 of the bright region of a (3, H, W) tensor in [0, 1]."""
    ys, xs = np.nonzero(tensor.numpy().mean(0) > 0.5)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)


# --------------------------------------------------------------------------- box files


def test_box_rows_read_both_formats_and_report_bad_rows(
    small: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    names = sorted(p.name for p in (small / "train").iterdir())[:3]
    text = tmp_path / "boxes.txt"
    text.write_text(f"{names[0]} 1 2 30 20\n{names[1]} 9 9 3 20\n{names[2]} 4 5 40 30\nnot_here.jpg 1 1 5 5\n")
    rows = box_rows(small, text)
    assert [p.name for p in rows.paths] == [names[0], names[2]]
    np.testing.assert_allclose(rows.boxes, [[1, 2, 30, 20], [4, 5, 40, 30]])
    assert "boxes.txt:2: need x0<x1 and y0<y1" in caplog.text
    assert "not_here.jpg" in caplog.text
    csv_rows = box_rows(small)  # the catalogue's own boxes.csv, test photos included
    assert len(csv_rows) == len(list((small / "train").iterdir())) + len(list((small / "test").iterdir()))
    empty = tmp_path / "none.txt"
    empty.write_text("nobody.jpg 1 1 5 5\n")
    with pytest.raises(CatalogueError, match="no box names a photo"):
        box_rows(small, empty)


# --------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("seed", range(5))
def test_augmentations_move_the_box_with_the_fluke(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    box = (40, 30, 130, 80)
    no_rotation = AugmentConfig("strong", rotate=0, motion_blur=0, downscale=0, clahe=0, color=0)
    transform = build_transform((64, 128), (0, 0, 0), (1, 1, 1), no_rotation, bboxes=True)
    for _ in range(10):
        out = transform(image=_white_box_photo(box), bboxes=[box], labels=[0])
        np.testing.assert_allclose(out["bboxes"][0], _extent(out["image"]), atol=1.5)
    rotating = AugmentConfig("strong", rotate=15, motion_blur=0, downscale=0, clahe=0, color=0)
    transform = build_transform((64, 128), (0, 0, 0), (1, 1, 1), rotating, bboxes=True)
    for _ in range(10):
        out = transform(image=_white_box_photo(box), bboxes=[box], labels=[0])
        moved, seen = np.asarray(out["bboxes"][0]), _extent(out["image"])
        assert (moved[:2] <= seen[:2] + 1.5).all() and (moved[2:] >= seen[2:] - 1.5).all()  # it encloses the fluke


@pytest.mark.parametrize("photo", [(100, 300), (300, 100), (64, 128), (37, 53)])
def test_letterbox_maps_input_boxes_back_to_photo_pixels(photo: tuple[int, int]) -> None:
    size = (64, 128)
    height, width = photo
    box = [0.2 * width, 0.3 * height, 0.7 * width, 0.9 * height]
    out = build_transform(size, (0, 0, 0), (1, 1, 1), bboxes=True)(
        image=np.zeros((height, width, 3), np.uint8), bboxes=[box], labels=[0]
    )
    normalised = np.asarray(out["bboxes"][0]) / [size[1], size[0], size[1], size[0]]
    back = Letterbox.fit(height, width, size).to_photo(normalised, size)
    np.testing.assert_allclose(back, box, atol=1.0 / Letterbox.fit(height, width, size).scale + 0.5)


# --------------------------------------------------------------------------- training


def test_tiny_detector_finds_synthetic_flukes(flukes: Path, tmp_path: Path) -> None:
    """MobileNetV2 (offline ImageNet weights) at 96x192, six epochs: a minute or less on two CPU cores."""
    cfg = DetectTrainConfig(
        model=DetectorConfig(backbone="mobilenetv2", image_size=(96, 192)), epochs=6, num_workers=0, seed=0
    )
    result = train_detector(box_rows(flukes), cfg, tmp_path / "det", progress=False)
    assert result.evaluation is not None and len(result.held_out) >= 40
    assert result.evaluation.scores.mean_iou >= 0.6
    saved = json.loads((tmp_path / "det" / "metrics.json").read_text())
    assert saved["mean_iou"] == pytest.approx(result.evaluation.scores.mean_iou)
    detector = load_detector(tmp_path / "det")
    assert detector.config == cfg.model


def _tiny_detector(data: Path, out: Path) -> Path:
    train_detector(box_rows(data), DetectTrainConfig(model=TINY, epochs=1, num_workers=0), out, progress=False)
    return out


# --------------------------------------------------------------------------- crops


def test_crops_keep_names_follow_boxes_and_are_cached(small: Path, tmp_path: Path) -> None:
    detector = load_detector(_tiny_detector(small, tmp_path / "det"))
    photos = sorted((small / "train").iterdir())[:4]
    crops = crop_photos(detector, [*photos, tmp_path / "missing.jpg"], CropSettings(margin=0.1, min_confidence=0))
    assert [c.source for c in crops[:4]] == photos and "file not found" in (crops[4].fallback or "")
    for crop in crops[:4]:
        assert crop.fallback is None and crop.path.name == crop.source.name and crop.path != crop.source
        x0, y0, x1, y1 = crop.box
        assert Image.open(crop.path).size == (round(x1) - round(x0), round(y1) - round(y0))
    stamps = [c.path.stat().st_mtime_ns for c in crops[:4]]
    again = crop_photos(detector, photos, CropSettings(margin=0.1, min_confidence=0))
    assert [c.path.stat().st_mtime_ns for c in again] == stamps  # served from the cache, not re-cropped
    unsure = crop_photos(detector, photos, CropSettings(min_confidence=1.01))
    assert all(c.path == c.source and "detector unsure" in (c.fallback or "") for c in unsure)


def test_crop_catalogue_keeps_layout_and_labels(small: Path, tmp_path: Path) -> None:
    detector = load_detector(_tiny_detector(small, tmp_path / "det"))
    table = crop_catalogue(detector, small, tmp_path / "out", CropSettings(min_confidence=0))
    assert (tmp_path / "out" / "train.csv").read_text() == (small / "train.csv").read_text()
    assert not (tmp_path / "out" / "boxes.csv").exists()  # old boxes no longer fit the crops
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.jpg"))
    assert written == sorted(table["Image"]) and len(written) == len(list(small.rglob("*.jpg")))
    assert (pd.read_csv(tmp_path / "out" / "crops.csv")["x1"] > 0).all()


def test_box_rows_subset_and_truths() -> None:
    rows = BoxRows([Path("a.jpg"), Path("b.jpg")], np.array([[0, 0, 2, 2], [1, 1, 3, 3]], np.float32))
    assert rows.subset([1]).paths == [Path("b.jpg")]
    assert iou(rows.truths()["b.jpg"][0], [1, 1, 3, 3]) == pytest.approx(1.0)


# --------------------------------------------------------------------------- CLI


def test_detect_cli_train_eval_crop_and_cropped_identity_model(small: Path, tmp_path: Path) -> None:
    det = tmp_path / "det"
    tiny = ["--set", "model.backbone=timm/test_efficientnet", "--set", "model.pretrained=false"]
    tiny += ["--set", "model.image_size=[48,96]", "--set", "num_workers=0"]
    assert main(["detect", "train", str(small), "--out", str(det), "--epochs", "1", *tiny]) == 0
    assert main(["detect", "eval", str(det), str(small), "--out", str(tmp_path / "ev")]) == 0
    assert (tmp_path / "ev" / "boxes.png").is_file()
    assert len(pd.read_csv(tmp_path / "ev" / "boxes_iou.csv")) == len(box_rows(small))
    assert main(["crop", str(det), str(small), str(tmp_path / "cropped"), "--min-confidence", "0"]) == 0
    assert (tmp_path / "cropped" / "crops.csv").is_file()
    assert main(["crop", str(det), str(small), str(small / "inside")]) == 1
    model = tmp_path / "frozen"
    assert main(["frozen", str(model), "--backbone", "mobilenetv2", "--size", "64", "--crop", str(det)]) == 0
    assert (model / "detector" / "detector.safetensors").is_file()
    gallery = tmp_path / "gallery"
    assert main(["gallery", "build", str(model), str(small), "--out", str(gallery)]) == 0
    out = tmp_path / "ident"
    assert main(["identify", str(model), str(gallery), str(small / "test"), "--out", str(out), "--no-report"]) == 0
    submission = pd.read_csv(out / "submission.csv")
    assert sorted(submission["Image"]) == sorted(p.name for p in (small / "test").iterdir())
    assert main(["detect", "eval", str(tmp_path / "nothing"), str(small)]) == 1


def test_without_a_detector_rows_and_queries_are_unchanged(tmp_path: Path) -> None:
    """No ``crop`` folder and a model that carries no detector (or no model): nothing is cropped or reported."""
    labels = pd.DataFrame({"Image": ["a.jpg"], "Id": ["w_1"], "path": [tmp_path / "a.jpg"]})
    photos = [tmp_path / "q.jpg"]
    model = tmp_path / "model"  # a model folder without detector/
    model.mkdir()

    def progress(done: int, total: int) -> None:
        raise AssertionError("nothing to crop, nothing to report")

    for owner in (None, model):
        assert crop_rows(labels, owner, progress=progress) is labels
        assert crop_queries(photos, owner, progress=progress) is photos


def test_crops_are_written_outside_the_catalogue(tmp_path: Path) -> None:
    check_crop_target(tmp_path / "cat", tmp_path / "crops")
    for inside in (tmp_path / "cat", tmp_path / "cat" / "crops"):
        with pytest.raises(FlukeidError, match="write the crops outside"):
            check_crop_target(tmp_path / "cat", inside)
