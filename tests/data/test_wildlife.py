"""wildlife-datasets metadata tables as catalogues, and `convert_catalogue` between them and the Kaggle layout."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import KaggleFactory, write_image
from PIL import Image

from flukeid import NEW_WHALE
from flukeid.data.boxes import read_boxes
from flukeid.data.catalogue import Layout, load_catalogue
from flukeid.data.check import check_catalogue, usable_labels
from flukeid.data.convert import convert_catalogue
from flukeid.data.problems import Severity
from flukeid.data.splits import flat_name, split_catalogue
from flukeid.data.wildlife import format_bbox, parse_bbox
from flukeid.detect.crop import crop_rows
from flukeid.detect.data import box_rows
from flukeid.errors import CatalogueError, ConfigError, FlukeidError


def wildlife(root: Path, rows: list[dict[str, object]], name: str = "metadata.csv") -> Path:
    """A table of ``rows`` at ``root/name``; every path a row names is written as a 64x48 photo (once)."""
    for i, row in enumerate(rows):
        path = root / str(row["path"])
        if row["path"] and not path.exists():
            write_image(path, seed=i, size=(64, 48))
    frame = pd.DataFrame(rows)
    table = root / name
    if name.endswith(".parquet"):
        frame.to_parquet(table)
    else:
        frame.to_csv(table, index=False)
    return table


ROWS: list[dict[str, object]] = [
    {"image_id": 10, "identity": "A", "path": "images/a/1.jpg", "bbox": "[4, 2, 30, 20]", "date": "2021-06-01"},
    {"image_id": 11, "identity": "A", "path": "images/a/2.jpg", "bbox": "", "date": "2021-06-02"},
    {"image_id": 12, "identity": "B", "path": "images/b/1.jpg", "bbox": "[0, 0, 64, 48]", "date": ""},
    {"image_id": 13, "identity": "unknown", "path": "images/u.jpg", "bbox": "", "date": ""},
]


def problems(report, severity: Severity) -> str:
    return "\n".join(str(p) for p in report.problems if p.severity is severity)


def test_a_table_file_or_its_folder_loads_as_labels(tmp_path: Path) -> None:
    table = wildlife(tmp_path / "wd", ROWS)
    for data in (table, tmp_path / "wd"):
        cat = load_catalogue(data)
        assert cat.layout is Layout.WILDLIFE and cat.labels_file == table and cat.test.empty
        labels = cat.labels
        assert list(labels["Image"]) == ["images/a/1.jpg", "images/a/2.jpg", "images/b/1.jpg", "images/u.jpg"]
        assert list(labels["Id"]) == ["A", "A", "B", NEW_WHALE]  # wildlife-datasets' "unknown" is new_whale
        assert list(labels["line"]) == [2, 3, 4, 5]
        assert list(labels["image_id"]) == ["10", "11", "12", "13"]
        assert list(labels["date"]) == ["2021-06-01", "2021-06-02", "", ""]
        assert list(labels["box"]) == [(4.0, 2.0, 34.0, 22.0), None, (0.0, 0.0, 64.0, 48.0), None]
        assert all(p.is_file() for p in labels["path"])
    report = check_catalogue(table)
    assert not report.problems
    assert len(report.usable_labels()) == 4


def test_parquet_tables_hold_lists_and_numbers(tmp_path: Path) -> None:
    rows = [
        {"image_id": 1, "identity": 7, "path": "x/1.jpg", "bbox": [1.0, 2.0, 10.0, 10.0]},
        {"image_id": 2, "identity": 7, "path": "x/2.jpg", "bbox": None},
        {"image_id": 3, "identity": 8, "path": "x/3.jpg", "bbox": [0.0, 0.0, 5.0, 5.0]},
    ]
    table = wildlife(tmp_path / "pq", rows, "metadata.parquet")
    cat = load_catalogue(tmp_path / "pq")
    assert cat.labels_file == table
    assert list(cat.labels["Id"]) == ["7", "7", "8"]
    assert list(cat.labels["line"]) == [0, 1, 2]  # Parquet rows are named by their index
    assert list(cat.labels["box"]) == [(1.0, 2.0, 11.0, 12.0), None, (0.0, 0.0, 5.0, 5.0)]
    assert not check_catalogue(table).problems
    frame = pd.DataFrame(rows).astype({"identity": "Int64"})
    frame.loc[1, "identity"] = pd.NA
    frame.to_parquet(table)
    assert list(load_catalogue(table).labels["Id"]) == ["7", "", "8"]
    assert "metadata.parquet:1: empty Id for x/2.jpg" in problems(check_catalogue(table), Severity.ERROR)


def test_bad_rows_name_file_and_line_and_good_rows_stay(tmp_path: Path) -> None:
    rows = [
        *ROWS,
        {"image_id": 20, "identity": "C", "path": "images/gone.jpg", "bbox": "", "date": ""},
        {"image_id": 21, "identity": "", "path": "images/c.jpg", "bbox": "", "date": ""},
        {"image_id": 22, "identity": "D", "path": "images/d.jpg", "bbox": "[1, 2, 3]", "date": ""},
        {"image_id": 23, "identity": "D", "path": "images/e.jpg", "bbox": "[1, 2, -3, 4]", "date": ""},
        {"image_id": 24, "identity": "D", "path": "images/f.jpg", "bbox": "ten by ten", "date": ""},
        {"image_id": 25, "identity": "D", "path": "images/g.jpg", "bbox": "[40, 30, 30, 20]", "date": ""},
    ]
    table = wildlife(tmp_path / "wd", rows)
    (tmp_path / "wd" / "images" / "gone.jpg").unlink()
    report = check_catalogue(table)
    errors = problems(report, Severity.ERROR)
    assert "metadata.csv:6: images/gone.jpg: file not found; skipped" in errors
    assert "metadata.csv:7: empty Id for images/c.jpg" in errors
    assert "metadata.csv:8: images/d.jpg: bbox [1, 2, 3] is not a list of 4 numbers" in errors
    assert "metadata.csv:9: images/e.jpg: bbox [1, 2, -3, 4]: width and height must be positive" in errors
    assert "metadata.csv:10: images/f.jpg: bbox 'ten by ten' is not a list [x, y, w, h]" in errors
    assert "metadata.csv:11: images/g.jpg: bbox [40, 30, 30, 20] lies outside the 64x48 image" in errors
    assert not report.fatal
    assert list(report.usable_labels()["Image"]) == [str(r["path"]) for r in ROWS]


def test_a_table_without_identity_or_path_is_fatal(tmp_path: Path) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "metadata.csv").write_text("image_id,label,file\n1,A,a.jpg\n")
    with pytest.raises(CatalogueError, match=r"metadata.csv: missing column\(s\) identity, path"):
        load_catalogue(tmp_path / "t")
    assert check_catalogue(tmp_path / "t" / "metadata.csv").fatal
    (tmp_path / "train.csv").write_text("Image,Id\na.jpg,A\n")
    with pytest.raises(CatalogueError, match=r"Kaggle train\.csv is read from its folder"):
        load_catalogue(tmp_path / "train.csv")
    (tmp_path / "t" / "metadata.parquet").write_bytes(b"")
    with pytest.raises(CatalogueError, match="holds both"):
        load_catalogue(tmp_path / "t")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(CatalogueError, match="nor a wildlife-datasets table"):
        load_catalogue(tmp_path / "notes.txt")


def test_unknown_marker_is_chosen_by_the_user(tmp_path: Path) -> None:
    rows = [
        {"identity": "A", "path": "a.jpg"},
        {"identity": "-1", "path": "b.jpg"},
        {"identity": "unknown", "path": "c.jpg"},
        {"identity": "new_whale", "path": "d.jpg"},
    ]
    table = wildlife(tmp_path, rows)
    assert list(load_catalogue(table).labels["Id"]) == ["A", "-1", NEW_WHALE, NEW_WHALE]
    assert list(load_catalogue(table, unknown="-1").labels["Id"]) == ["A", NEW_WHALE, "unknown", NEW_WHALE]
    assert list(load_catalogue(table, unknown="").labels["Id"]) == ["A", "-1", "unknown", NEW_WHALE]
    # a written table marks unknown animals as wildlife-datasets does; an individual of that name is refused
    with pytest.raises(FlukeidError, match="individual named 'unknown'"):
        convert_catalogue(check_catalogue(table, unknown="-1"), tmp_path / "clash", "wildlife", unknown="-1")
    rows[2]["identity"] = "C"
    table = wildlife(tmp_path, rows)
    convert_catalogue(check_catalogue(table, unknown="-1"), tmp_path / "standard", "wildlife", unknown="-1")
    written = pd.read_csv(tmp_path / "standard" / "metadata.csv", dtype=str)
    assert list(written["identity"]) == ["A", "unknown", "C", "unknown"]


def test_bbox_text_both_ways() -> None:
    assert parse_bbox("[10, 20, 30, 40]") == (10.0, 20.0, 40.0, 60.0)
    assert parse_bbox([10, 20, 30.5, 40]) == (10.0, 20.0, 40.5, 60.0)
    assert parse_bbox("") is None and parse_bbox(None) is None and parse_bbox(float("nan")) is None
    assert format_bbox((10.0, 20.0, 40.0, 60.0)) == "[10, 20, 30, 40]"
    assert format_bbox((1.5, 2.0, 4.0, 5.25)) == "[1.5, 2, 2.5, 3.25]"
    for bad in ("[1, 2, 3, inf]", "[1, 2, 0, 4]", "[-1, 2, 3, 4]", '["a", 2, 3, 4]', "{}"):
        with pytest.raises(ValueError, match="bbox"):
            parse_bbox(bad)


def test_given_boxes_become_crops_without_a_detector(tmp_path: Path) -> None:
    labels = usable_labels(wildlife(tmp_path / "wd", ROWS))
    calls: list[tuple[int, int]] = []
    cropped = crop_rows(labels, None, progress=lambda done, total: calls.append((done, total)))
    sizes = [Image.open(p).size for p in cropped["path"]]
    assert sizes[1] == sizes[3] == (64, 48)  # no box: the full frame, the photo itself
    assert cropped["path"][1] == labels["path"][1]
    assert sizes[0] == (36, 24)  # 30x20 plus the 10% margin each side
    assert sizes[2] == (64, 48)  # the whole photo, clipped to it
    assert cropped["path"][0] != labels["path"][0] and cropped["path"][0].name == "1.jpg"
    assert calls[-1] == (2, 2)
    again = crop_rows(labels, None)
    assert list(again["path"]) == list(cropped["path"])  # cached


def test_a_tables_boxes_train_the_detector(tmp_path: Path) -> None:
    rows = box_rows(wildlife(tmp_path / "wd", ROWS).parent)
    assert [p.name for p in rows.paths] == ["1.jpg", "1.jpg"]
    assert rows.boxes.tolist() == [[4, 2, 34, 22], [0, 0, 64, 48]]
    with pytest.raises(CatalogueError, match="no boxes file found"):
        box_rows(wildlife(tmp_path / "plain", [{"identity": "A", "path": "a.jpg"}]))


def test_kaggle_to_wildlife_to_kaggle_keeps_labels_and_boxes(kaggle: KaggleFactory, tmp_path: Path) -> None:
    root = kaggle([("a.jpg", "w_1"), ("b.jpg", "w_1"), ("c.jpg", "w_2"), ("d.jpg", NEW_WHALE)], 1)
    (root / "boxes.csv").write_text("Image,x0,y0,x1,y1\na.jpg,1,2,20,22\nc.jpg,0,0,32,24\n")
    wild = convert_catalogue(check_catalogue(root), tmp_path / "wild", "wildlife")
    assert (wild.photos, wild.individuals, wild.new_whale, wild.boxes, wild.skipped) == (4, 2, 1, 2, 0)
    table = pd.read_csv(tmp_path / "wild" / "metadata.csv", dtype=str, keep_default_na=False)
    assert list(table.columns) == ["image_id", "identity", "path", "bbox"]
    assert list(table["identity"]) == ["w_1", "w_1", "w_2", "unknown"]
    assert list(table["path"]) == ["train/a.jpg", "train/b.jpg", "train/c.jpg", "train/d.jpg"]
    assert list(table["image_id"]) == ["a", "b", "c", "d"]
    assert list(table["bbox"]) == ["[1, 2, 19, 20]", "", "[0, 0, 32, 24]", ""]
    back = convert_catalogue(check_catalogue(tmp_path / "wild"), tmp_path / "back", "kaggle")
    assert back.photos == 4
    before, after = load_catalogue(root).labels, load_catalogue(tmp_path / "back").labels
    assert list(after["Image"]) == list(before["Image"]) and list(after["Id"]) == list(before["Id"])
    assert read_boxes(tmp_path / "back" / "boxes.csv").boxes == read_boxes(root / "boxes.csv").boxes
    assert all(Path(p).read_bytes() == Path(q).read_bytes() for p, q in zip(before["path"], after["path"]))


def test_wildlife_to_kaggle_flattens_paths_and_keeps_dates(tmp_path: Path) -> None:
    rows = [*ROWS, {"image_id": 14, "identity": "B", "path": "images/b/2.jpg", "bbox": "", "date": ""}]
    rows[3] = {**rows[3], "path": "images/a/9.jpg"}
    report = check_catalogue(wildlife(tmp_path / "wd", rows))
    convert_catalogue(report, tmp_path / "kg", "kaggle")
    cat = load_catalogue(tmp_path / "kg")
    assert cat.layout is Layout.KAGGLE
    # 1.jpg is in two folders: every name carries its path
    assert list(cat.labels["Image"]) == [
        "images__a__1.jpg",
        "images__a__2.jpg",
        "images__b__1.jpg",
        "images__a__9.jpg",
        "images__b__2.jpg",
    ]
    assert list(cat.labels["Id"]) == ["A", "A", "B", NEW_WHALE, "B"]
    assert list(cat.labels["date"]) == ["2021-06-01", "2021-06-02", "", "", ""]
    assert read_boxes(tmp_path / "kg" / "boxes.csv").boxes == {
        "images__a__1.jpg": (4.0, 2.0, 34.0, 22.0),
        "images__b__1.jpg": (0.0, 0.0, 64.0, 48.0),
    }
    assert not check_catalogue(tmp_path / "kg").problems


def test_convert_refuses_a_non_empty_target_and_unknown_layouts(kaggle: KaggleFactory, tmp_path: Path) -> None:
    report = check_catalogue(kaggle([("a.jpg", "w_1")]))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FlukeidError, match="exists and is not empty"):
        convert_catalogue(report, tmp_path / "full", "kaggle")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(ConfigError, match="did you mean 'kaggle'"):
        convert_catalogue(report, tmp_path / "new", "kagle")
    (tmp_path / "empty").mkdir()
    convert_catalogue(report, tmp_path / "empty", "wildlife", unknown="")
    assert (tmp_path / "empty" / "metadata.csv").is_file()


def test_a_split_of_a_table_keeps_its_boxes(tmp_path: Path) -> None:
    rows = [{"identity": f"w_{i // 3}", "path": f"p/{i}.jpg", "bbox": f"[1, 1, {10 + i}, 10]"} for i in range(12)]
    split_catalogue(check_catalogue(wildlife(tmp_path / "wd", rows)), tmp_path / "split", "closed")
    boxes = read_boxes(tmp_path / "split" / "boxes.csv").boxes
    assert boxes == {flat_name(f"p/{i}.jpg"): (1.0, 1.0, 11.0 + i, 11.0) for i in range(12)}
