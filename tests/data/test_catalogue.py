from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest
from conftest import KaggleFactory, write_image
from PIL import Image

from flukeid.data.catalogue import Layout, image_paths, load_catalogue
from flukeid.data.check import check_catalogue, usable_labels
from flukeid.data.images import read_image
from flukeid.data.problems import Severity
from flukeid.errors import CatalogueError, FlukeidError, ImageError


def messages(report, severity: Severity) -> list[str]:
    return [str(p) for p in report.problems if p.severity is severity]


def test_kaggle_layout_loads(kaggle: KaggleFactory) -> None:
    root = kaggle([("a.jpg", "w_1"), ("b.jpg", "w_1"), ("c.jpg", "new_whale")], 2)
    cat = load_catalogue(root)
    assert cat.layout is Layout.KAGGLE
    assert list(cat.labels["Image"]) == ["a.jpg", "b.jpg", "c.jpg"]
    assert list(cat.labels["line"]) == [2, 3, 4]
    assert list(cat.known["Id"]) == ["w_1", "w_1"]
    assert list(cat.test["Image"]) == ["t0.jpg", "t1.jpg"]


def test_csv_and_folder_layouts(tmp_path: Path) -> None:
    write_image(tmp_path / "csv" / "images" / "x.jpg", 1)
    (tmp_path / "csv" / "labels.csv").write_text("Image,Id\nx.jpg,n_1\n")
    assert load_catalogue(tmp_path / "csv").layout is Layout.CSV
    write_image(tmp_path / "folders" / "n_1" / "a.jpg", 1)
    write_image(tmp_path / "folders" / "n_2" / "b.png", 2)
    cat = load_catalogue(tmp_path / "folders")
    assert cat.layout is Layout.FOLDERS
    assert dict(zip(cat.labels["Image"], cat.labels["Id"])) == {"n_1/a.jpg": "n_1", "n_2/b.png": "n_2"}


def test_missing_columns_and_folder_are_fatal(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "train.csv").write_text("Picture,Whale\na.jpg,w_1\n")
    with pytest.raises(CatalogueError, match=r"train.csv: missing column\(s\) Image, Id"):
        load_catalogue(tmp_path / "c")
    report = check_catalogue(tmp_path / "c")
    assert report.fatal and "missing column" in str(report.problems[0])
    with pytest.raises(CatalogueError, match="not found"):
        load_catalogue(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogueError, match="no catalogue found"):
        load_catalogue(tmp_path / "empty")


def test_check_reports_each_bad_row_and_goes_on(kaggle: KaggleFactory) -> None:
    rows = [
        ("a.jpg", "w_1"),
        ("b.jpg", ""),
        ("", "w_2"),
        ("a.jpg", "w_1"),
        ("c.jpg", "w_3"),
        ("missing.jpg", "w_4"),
        ("d.jpg", "w_5"),
        ("e.jpg", "w_6"),
    ]
    root = kaggle(rows)
    (root / "train" / "missing.jpg").unlink()
    data = (root / "train" / "d.jpg").read_bytes()
    (root / "train" / "d.jpg").write_bytes(data[: len(data) // 2])  # truncated
    (root / "train" / "c.jpg").write_bytes((root / "train" / "a.jpg").read_bytes())  # same photo, other Id
    report = check_catalogue(root)
    errors = "\n".join(messages(report, Severity.ERROR))
    assert "train.csv:3: empty Id for b.jpg" in errors
    assert "train.csv:4: empty Image" in errors
    assert "train.csv:7: missing.jpg: file not found" in errors
    assert "train.csv:8: d.jpg: image data is damaged or truncated" in errors
    assert "c.jpg is byte-identical to a.jpg (labelled w_1 there and w_3 here)" in errors
    assert "train.csv:5: duplicate row for a.jpg (first at line 2)" in "\n".join(messages(report, Severity.WARNING))
    assert not report.fatal
    assert sorted(report.usable_labels()["Image"]) == ["a.jpg", "c.jpg", "e.jpg"]


def test_conflicting_duplicate_row_is_an_error(kaggle: KaggleFactory) -> None:
    report = check_catalogue(kaggle([("a.jpg", "w_1"), ("a.jpg", "w_2")]))
    assert "a.jpg labelled w_2 here but w_1 at line 2" in "\n".join(messages(report, Severity.ERROR))


def test_modes_exif_and_pixel_limit(tmp_path: Path, kaggle: KaggleFactory) -> None:
    root = kaggle([("g.png", "w_1"), ("r.png", "w_2"), ("k.jpg", "w_3"), ("e.jpg", "w_4"), ("big.png", "w_5")])
    write_image(root / "train" / "g.png", 1, mode="L")
    write_image(root / "train" / "r.png", 2, mode="RGBA")
    write_image(root / "train" / "k.jpg", 3, mode="CMYK")
    img = Image.open(write_image(root / "train" / "e.jpg", 4, size=(40, 20)))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(root / "train" / "e.jpg", exif=exif)
    write_image(root / "train" / "big.png", 5, size=(200, 100))
    report = check_catalogue(root, max_pixels=10_000)
    warnings = "\n".join(messages(report, Severity.WARNING))
    for name, mode in (("g.png", "L"), ("r.png", "RGBA"), ("k.jpg", "CMYK")):
        assert f"{name}: mode {mode}, converted to RGB" in warnings
    assert "e.jpg: rotated upright per EXIF" in warnings
    assert "big.png: refused, 200x100 = 20,000 pixels is over the limit of 10,000" in "\n".join(
        messages(report, Severity.ERROR)
    )
    upright = read_image(root / "train" / "e.jpg")
    assert upright.size == (20, 40) and upright.mode == "RGB"
    assert read_image(root / "train" / "k.jpg").mode == "RGB"
    with pytest.raises(ImageError, match=r"big\.png: refused"):
        read_image(root / "train" / "big.png", max_pixels=10_000)


def test_train_test_duplicates_and_near_duplicates(kaggle: KaggleFactory) -> None:
    root = kaggle([("a.jpg", "w_1"), ("b.jpg", "w_2")], 1)
    (root / "test" / "same.jpg").write_bytes((root / "train" / "a.jpg").read_bytes())
    Image.open(root / "train" / "b.jpg").resize((64, 48)).save(root / "test" / "near.jpg", quality=70)
    report = check_catalogue(root)
    warnings = "\n".join(messages(report, Severity.WARNING))
    assert "test/same.jpg: byte-identical to catalogue photo a.jpg (w_1)" in warnings
    assert "test/near.jpg: near-duplicate of catalogue photo b.jpg (w_2)" in warnings
    assert "t0.jpg" not in warnings


def test_no_usable_photo_is_fatal(kaggle: KaggleFactory) -> None:
    root = kaggle([("a.jpg", "w_1")])
    (root / "train" / "a.jpg").write_bytes(b"not an image")
    report = check_catalogue(root)
    assert report.fatal
    assert "a.jpg: not a readable image" in "\n".join(messages(report, Severity.ERROR))


def test_bad_boxes_are_reported_with_line_numbers(kaggle: KaggleFactory) -> None:
    root = kaggle([("a.jpg", "w_1"), ("b.jpg", "w_2")])
    (root / "boxes.txt").write_text("a.jpg 1 2 20 20\nb.jpg 5 5 3 9\nb.jpg x 1 2 3\nb.jpg 1 1 90 10\n")
    errors = "\n".join(messages(check_catalogue(root), Severity.ERROR))
    assert "boxes.txt:2: need x0<x1 and y0<y1" in errors
    assert "boxes.txt:3: coordinates must be numbers" in errors
    assert "b.jpg: box 1 1 90 10 lies outside the 32x24 image" in errors
    assert "a.jpg" not in errors


def test_require_usable_raises_on_fatal_and_warns_on_skipped_rows(
    kaggle: KaggleFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = kaggle([("a.jpg", "w_1"), ("b.jpg", "")])
    assert list(check_catalogue(root).require_usable()["Image"]) == ["a.jpg"]
    assert "1 labelled row(s) skipped" in caplog.text
    with pytest.raises(FlukeidError, match="catalogue folder not found"):
        check_catalogue(tmp_path / "nowhere").require_usable()


def test_ids_flukeid_cannot_write_are_reported_with_their_line(kaggle: KaggleFactory) -> None:
    rows = [("a.jpg", "w_1"), ("b.jpg", '"w with spaces"'), ("c.jpg", "new_whale"), ("d.jpg", "x" * 129)]
    root = kaggle(rows)
    (root / "train.csv").write_text((root / "train.csv").read_text() + "e.jpg,w\tq\n")
    write_image(root / "train" / "e.jpg", 9)
    report = check_catalogue(root)
    errors = "\n".join(messages(report, Severity.ERROR))
    assert "train.csv:3: b.jpg: ID 'w with spaces' contains whitespace" in errors
    assert "train.csv:5: d.jpg: ID of 129 characters (at most 128)" in errors
    assert "train.csv:6: e.jpg: ID 'w\\tq' contains whitespace" in errors
    assert sorted(report.usable_labels()["Image"]) == ["a.jpg", "c.jpg"]  # new_whale is a label, not a name


def test_photos_outside_the_catalogue_folder_are_refused(kaggle: KaggleFactory, tmp_path: Path) -> None:
    elsewhere = write_image(tmp_path / "elsewhere" / "x.jpg", 7)
    rows = [("a.jpg", "w_1"), ("inside.jpg", "w_2")]
    root = kaggle(rows, 1)
    (root / "train" / "inside.jpg").unlink()
    (root / "train" / "inside.jpg").symlink_to(root / "train" / "a.jpg")  # a link within the folder is fine
    (root / "train" / "link.jpg").symlink_to(elsewhere)
    (root / "test" / "out.jpg").symlink_to(elsewhere)
    extra = f"../../elsewhere/x.jpg,w_3\n{elsewhere},w_4\nlink.jpg,w_5\n"
    (root / "train.csv").write_text((root / "train.csv").read_text() + extra)
    report = check_catalogue(root)
    errors = "\n".join(messages(report, Severity.ERROR))
    assert "train.csv:4: ../../elsewhere/x.jpg: '..' in the name leads out of the catalogue folder" in errors
    assert f"train.csv:5: {elsewhere}: absolute path" in errors
    assert "train.csv:6: link.jpg: a symbolic link leads out of the catalogue folder" in errors
    assert "test: test/out.jpg: a symbolic link leads out of the catalogue folder" in errors
    assert sorted(report.usable_labels()["Image"]) == ["a.jpg", "inside.jpg"]
    assert not any("out.jpg" in str(p) for p in report.infos)


def test_stats_count_a_photo_listed_twice_once(kaggle: KaggleFactory) -> None:
    from flukeid.data.stats import catalogue_stats

    cat = load_catalogue(kaggle([("a.jpg", "w_1"), ("a.jpg", "w_1"), ("b.jpg", "w_2"), ("c.jpg", "new_whale")]))
    stats = catalogue_stats(cat.labels)
    assert (stats.images, stats.individuals, stats.singletons, stats.new_whale_images) == (3, 2, 2, 1)


@pytest.mark.parametrize("rows", ["a.jpg,w_1,x\nb.jpg,w_2,y\n", "a.jpg,w_1,x\nb.jpg,w_2\n", "a.jpg,w_1\nb.jpg,w_2,y\n"])
def test_rows_longer_than_the_header_are_refused_not_shifted(rows: str, tmp_path: Path) -> None:
    """pandas would take a first column without a header as the index and shift Image and Id by one."""
    write_image(tmp_path / "c" / "train" / "a.jpg", seed=0)
    (tmp_path / "c" / "train.csv").write_text("Image,Id\n" + rows)
    with pytest.raises(CatalogueError, match=r"train.csv: (a row has more cells than the header|not a readable CSV)"):
        load_catalogue(tmp_path / "c")


def test_decompression_bomb_header_is_refused_by_name_and_pillow_is_left_as_found(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", 100_000, 100_000)  # IHDR width, height: 10^10 pixels claimed
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    for limit in (10**12, 50_000_000):  # above Pillow's own limit, which stays in force, and flukeid's default
        with pytest.raises(ImageError, match=r"bomb\.png: refused, .*10000000000 pixels"):
            read_image(path, max_pixels=limit)
    assert Image.MAX_IMAGE_PIXELS is not None  # importing flukeid changes no process-wide Pillow setting


def test_image_paths_expand_folders_to_their_images_and_keep_files(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for name in ("b.JPG", "a.png", "deeper/c.jpg"):
        write_image(folder / name, seed=0)
    (folder / "notes.txt").write_text("not a photo")
    given = tmp_path / "given.txt"  # a file is taken as it is named, whatever its suffix
    assert image_paths([folder, given]) == [folder / "a.png", folder / "b.JPG", given]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FlukeidError, match=r"no images found in .*empty"):
        image_paths([tmp_path / "empty"])


def test_usable_labels_are_the_checked_rows_or_the_fatal_problems(kaggle: KaggleFactory, tmp_path: Path) -> None:
    root = kaggle([("a.jpg", "w_1"), ("b.jpg", "w_2"), ("missing.jpg", "w_2")])
    (root / "train" / "missing.jpg").unlink()
    calls: list[tuple[int, int]] = []
    labels = usable_labels(root, lambda done, total: calls.append((done, total)))
    assert sorted(labels["Image"]) == ["a.jpg", "b.jpg"]
    assert calls and calls[-1][0] == calls[-1][1]
    with pytest.raises(FlukeidError, match="catalogue folder not found"):
        usable_labels(tmp_path / "nowhere")
