"""The CLI on a wildlife-datasets metadata table: check, stats, convert and a tiny gallery build."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import write_image

from flukeid.cli import main
from flukeid.gallery import Gallery
from flukeid.models.artifact import ModelConfig, build_model, save_model

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    """Three individuals of two photos each, one unknown photo (-1), one row naming a missing photo."""
    rows = []
    for i, (ident, bbox) in enumerate([("A", "[2, 2, 40, 30]"), ("A", ""), ("B", ""), ("B", "[0, 0, 20, 20]")]):
        rows.append({"image_id": i, "identity": ident, "path": f"photos/{ident}/{i}.png", "bbox": bbox})
    rows += [
        {"image_id": 8, "identity": "C", "path": "photos/C/8.png", "bbox": ""},
        {"image_id": 9, "identity": "C", "path": "photos/C/9.png", "bbox": ""},
        {"image_id": 10, "identity": "-1", "path": "photos/u.png", "bbox": ""},
        {"image_id": 11, "identity": "C", "path": "photos/gone.png", "bbox": ""},
    ]
    for i, row in enumerate(rows[:-1]):
        write_image(tmp_path / "wd" / row["path"], seed=i, size=(64, 48))
    pd.DataFrame(rows).to_csv(tmp_path / "wd" / "metadata.csv", index=False)
    return tmp_path / "wd" / "metadata.csv"


def test_check_stats_and_convert_a_table(table: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(table), "--unknown", "-1"]) == 0
    out = capsys.readouterr().out
    assert "metadata.csv:9: photos/gone.png: file not found; skipped" in out
    assert "(wildlife layout): 7 usable labelled photos" in out
    assert main(["stats", str(table.parent), "--unknown", "-1", "--plot", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert "new_whale images │ 1" in out and "individuals      │ 3" in out
    assert main(["convert", str(table), str(tmp_path / "kg"), "--to", "kaggle", "--unknown", "-1"]) == 0
    out = capsys.readouterr().out
    assert "7 photos of 3 individuals (1 new_whale, 2 with a box)" in out and "1 unusable row(s)" in out
    train = pd.read_csv(tmp_path / "kg" / "train.csv")
    assert (train["Id"] == "new_whale").sum() == 1 and len(train) == 7
    assert len(pd.read_csv(tmp_path / "kg" / "boxes.csv")) == 2
    assert main(["check", str(tmp_path / "kg")]) == 0
    assert main(["convert", str(tmp_path / "kg"), str(tmp_path / "kg"), "--to", "wildlife"]) == 1
    assert "exists and is not empty" in capsys.readouterr().err
    assert main(["convert", str(table), str(tmp_path / "x"), "--to", "coco"]) == 1
    assert "--to 'coco' is not one of kaggle, wildlife" in capsys.readouterr().err


def test_gallery_build_from_a_table_crops_to_its_boxes(table: Path, tmp_path: Path) -> None:
    save_model(tmp_path / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)
    assert main(["gallery", "build", str(tmp_path / "model"), str(table), "--out", str(tmp_path / "g")]) == 0
    gallery = Gallery.open(tmp_path / "g")
    assert gallery.individuals() == ["-1", "A", "B", "C"]  # the default marker is "unknown", not -1
    photos = {p.image: p for p in gallery.photos()}
    assert set(photos) == {
        f"photos/{r}" for r in ["A/0.png", "A/1.png", "B/2.png", "B/3.png", "C/8.png", "C/9.png", "u.png"]
    }
    assert Path(photos["photos/A/0.png"].path).parent.parent.name == "given-m0.1"  # cropped to its bbox
    assert Path(photos["photos/A/1.png"].path) == table.parent / "photos" / "A" / "1.png"  # no bbox: as it is
