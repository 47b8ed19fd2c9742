"""Load a photo-ID catalogue from one of four layouts into one shape.

Layouts:
- ``kaggle``: ``train.csv`` (Image,Id) + ``train/``; optional ``test/``, ``sample_submission.csv`` and a
  boxes file (``boxes.csv`` or ``boxes.txt``/``bounding_boxes.txt``...).
- ``csv``: ``labels.csv`` (Image,Id) + ``images/``.
- ``wildlife``: a wildlife-datasets metadata table (``identity``, ``path``, optional ``bbox``, ``date``...), the
  ``.csv``/``.parquet`` file itself or a folder holding ``metadata.csv`` or ``metadata.parquet``
  (`flukeid.data.wildlife`).
- ``folders``: one sub-folder per individual holding its photos.

A folder is read as the first of these it holds: ``train.csv``, ``labels.csv``, a metadata table, sub-folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath, PureWindowsPath

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.tables import read_csv_table
from flukeid.data.wildlife import TABLE_SUFFIXES, UNKNOWN_NAME, find_table, read_wildlife_table
from flukeid.errors import CatalogueError, FlukeidError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
BOXES_NAMES = ("boxes.csv", "boxes.txt", "bounding_boxes.csv", "bounding_boxes.txt", "cropping.txt")
LABEL_COLUMNS = ("Image", "Id")


class Layout(StrEnum):
    KAGGLE = "kaggle"
    CSV = "csv"
    WILDLIFE = "wildlife"
    FOLDERS = "folders"


@dataclass(frozen=True)
class Catalogue:
    """Labelled photos (``labels``: Image, Id, line, path) and unlabelled test photos (``test``: Image, path).

    ``line`` is the row's line number in ``labels_file`` (None for the folder layout; the row's index for a Parquet
    table). The wildlife layout's labels also hold image_id, date, box (x0, y0, x1, y1 or None) and box_problem;
    a Kaggle or CSV label file's optional ``date`` column is kept as ``date``.
    """

    root: Path
    layout: Layout
    labels: pd.DataFrame
    test: pd.DataFrame
    labels_file: Path | None = None
    boxes_file: Path | None = None
    sample_submission: Path | None = None

    @property
    def known(self) -> pd.DataFrame:
        """Labelled rows of named individuals (no ``new_whale``)."""
        return self.labels[self.labels["Id"] != NEW_WHALE]


def outside_catalogue(root: Path, name: str, path: Path) -> str | None:
    """Why the photo ``name`` (at ``path``) is not confined to the catalogue folder ``root``, or None: names are
    relative, without ``..``, and do not lead out of the folder through a symbolic link."""
    parts = PurePath(name).parts
    if PurePath(name).is_absolute() or PureWindowsPath(name).is_absolute():
        return f"{name}: absolute path; photos are named relative to the catalogue folder"
    if ".." in parts or ".." in PureWindowsPath(name).parts:
        return f"{name}: '..' in the name leads out of the catalogue folder"
    resolved, top = Path(path).resolve(), Path(root).resolve()
    if not resolved.is_relative_to(top):
        return f"{name}: a symbolic link leads out of the catalogue folder (to {resolved})"
    return None


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def image_paths(items: list[Path]) -> list[Path]:
    """Files as given; folders expanded to their image files (sorted), not their sub-folders'.
    FlukeidError when that leaves no path."""
    paths: list[Path] = []
    for item in items:
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(item)
    if not paths:
        raise FlukeidError(f"no images found in {', '.join(map(str, items))}")
    return paths


def read_labels(csv_path: Path, image_dir: Path) -> pd.DataFrame:
    """Read an ``Image,Id`` CSV; raise CatalogueError naming the file when columns are wrong."""
    frame = read_csv_table(csv_path)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in LABEL_COLUMNS if c not in frame.columns]
    if missing:
        raise CatalogueError(
            f"{csv_path}: missing column(s) {', '.join(missing)}; expected Image,Id, found {','.join(frame.columns)}"
        )
    kept = [*LABEL_COLUMNS, *(["date"] if "date" in frame.columns else [])]
    frame = frame[kept].apply(lambda col: col.str.strip())
    frame["line"] = frame.index + 2  # header is line 1
    frame["path"] = [image_dir / name for name in frame["Image"]]
    return frame.reset_index(drop=True)


def list_images(folder: Path) -> pd.DataFrame:
    """Image files directly inside ``folder`` as (Image, path), sorted by name."""
    paths = sorted(p for p in folder.iterdir() if is_image(p)) if folder.is_dir() else []
    return pd.DataFrame({"Image": [p.name for p in paths], "path": paths})


def _find_boxes(root: Path) -> Path | None:
    return next((root / n for n in BOXES_NAMES if (root / n).is_file()), None)


def _load_folders(root: Path) -> Catalogue:
    rows = [
        {"Image": f"{d.name}/{p.name}", "Id": d.name, "line": None, "path": p}
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and d.name not in ("test", "train")
        for p in sorted(d.iterdir())
        if is_image(p)
    ]
    if not rows:
        raise CatalogueError(
            f"{root}: no catalogue found: expected train.csv + train/ (Kaggle), labels.csv + images/, "
            "or one sub-folder of photos per individual"
        )
    labels = pd.DataFrame(rows, columns=["Image", "Id", "line", "path"])
    return Catalogue(root, Layout.FOLDERS, labels, list_images(root / "test"), boxes_file=_find_boxes(root))


def _load_wildlife(table: Path, unknown: str) -> Catalogue:
    labels = read_wildlife_table(table, unknown)
    no_test = pd.DataFrame({"Image": pd.Series(dtype=str), "path": pd.Series(dtype=object)})
    return Catalogue(table.parent, Layout.WILDLIFE, labels, no_test, table)


def load_catalogue(root: Path, unknown: str = UNKNOWN_NAME) -> Catalogue:
    """Detect the layout of ``root`` (a folder, or a wildlife-datasets table file) and load it. ``unknown`` is the
    identity a wildlife table gives unknown animals (read as ``new_whale``; '' for none). Row-level problems are
    left to ``check_catalogue``."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in TABLE_SUFFIXES:
        return _load_wildlife(root, unknown)
    if root.is_file():
        raise CatalogueError(f"{root}: not a catalogue folder nor a wildlife-datasets table (.csv, .parquet)")
    if not root.is_dir():
        raise CatalogueError(f"{root}: catalogue folder not found")
    test = list_images(root / "test")
    sample = root / "sample_submission.csv"
    sample_submission = sample if sample.is_file() else None
    if (root / "train.csv").is_file():
        labels = read_labels(root / "train.csv", root / "train")
        return Catalogue(root, Layout.KAGGLE, labels, test, root / "train.csv", _find_boxes(root), sample_submission)
    if (root / "labels.csv").is_file():
        labels = read_labels(root / "labels.csv", root / "images")
        return Catalogue(root, Layout.CSV, labels, test, root / "labels.csv", _find_boxes(root), sample_submission)
    if (table := find_table(root)) is not None:
        return _load_wildlife(table, unknown)
    return _load_folders(root)
