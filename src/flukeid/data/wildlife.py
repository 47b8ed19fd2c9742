"""wildlife-datasets metadata tables, read and written without that (AGPL) package.

A table is the CSV or Parquet of its DataFrame: one row per photo with ``identity`` and ``path`` (relative to the
table's folder), and optionally ``image_id``, ``bbox`` (``[x, y, w, h]`` in pixels: a list in Parquet, a string like
``"[10, 20, 30, 40]"`` in CSV), ``date`` and other columns (``orientation``, ``species``...: not used here).
wildlife-datasets names unknown animals ``unknown`` (its ``unknown_name``); flukeid reads that identity as
``new_whale`` unless told another marker (or none).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.boxes import Box
from flukeid.data.tables import read_csv_table
from flukeid.errors import CatalogueError, FlukeidError

TABLE_NAMES = ("metadata.csv", "metadata.parquet")
"""The table a wildlife-layout catalogue folder holds."""
TABLE_SUFFIXES = (".csv", ".parquet")
REQUIRED_COLUMNS = ("identity", "path")
UNKNOWN_NAME = "unknown"
"""wildlife-datasets' identity of unknown animals (``WildlifeDataset.unknown_name``): read as ``new_whale``."""
LABEL_COLUMNS = ["Image", "Id", "line", "path", "image_id", "date", "box", "box_problem"]


def _read_frame(table: Path) -> pd.DataFrame:
    if table.suffix.lower() == ".parquet":
        try:
            return pd.read_parquet(table)
        except ImportError as exc:
            raise CatalogueError(f"{table}: reading Parquet needs pyarrow (pip install pyarrow)") from exc
        except (OSError, ValueError) as exc:
            raise CatalogueError(f"{table}: not a readable Parquet file ({exc})") from exc
    return read_csv_table(table)


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pd.NA (not a list: a bbox cell may be one)."""
    return value is None or (pd.api.types.is_scalar(value) and bool(pd.isna(value)))


def _text(value: Any) -> str:
    """A cell as text: missing (None, NaN, NaT, NA) as ''; 3.0 (an int column with gaps, in Parquet) as '3'."""
    if _missing(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_bbox(value: Any) -> Box | None:
    """A wildlife ``bbox`` cell ``[x, y, w, h]`` as a flukeid box (x0, y0, x1, y1); None for an empty cell.
    ValueError says what is wrong."""
    if isinstance(value, str):
        if not value.strip():
            return None
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"bbox {value!r} is not a list [x, y, w, h]") from None
    if _missing(value):
        return None
    if not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 4:
        raise ValueError(f"bbox {value!r} is not a list of 4 numbers [x, y, w, h]")
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"bbox {list(value)!r} holds something other than numbers") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise ValueError(f"bbox [{x:g}, {y:g}, {w:g}, {h:g}] holds a non-finite number")
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox [{x:g}, {y:g}, {w:g}, {h:g}]: width and height must be positive")
    if x < 0 or y < 0:
        raise ValueError(f"bbox [{x:g}, {y:g}, {w:g}, {h:g}]: negative corner")
    return (x, y, x + w, y + h)


def format_bbox(box: Box | None) -> str:
    """A flukeid box as the wildlife ``bbox`` text ``[x, y, w, h]`` (whole numbers without '.0'); '' for None."""
    if box is None:
        return ""
    x0, y0, x1, y1 = box
    values = [x0, y0, x1 - x0, y1 - y0]
    return json.dumps([int(v) if float(v).is_integer() else round(float(v), 3) for v in values])


def _box_cells(cells: Sequence[Any]) -> tuple[list[Box | None], list[str]]:
    boxes: list[Box | None] = []
    problems: list[str] = []
    for cell in cells:
        try:
            boxes.append(parse_bbox(cell))
            problems.append("")
        except ValueError as exc:
            boxes.append(None)
            problems.append(str(exc))
    return boxes, problems


def read_wildlife_table(table: Path, unknown: str = UNKNOWN_NAME) -> pd.DataFrame:
    """A wildlife-datasets table as flukeid's labelled rows: Image (the path as written, '/'-separated), Id,
    line (the CSV line; for Parquet the row's index), path (resolved against the table's folder), image_id,
    date (text, '' when none), box (x0, y0, x1, y1 or None) and box_problem ('' or why the bbox is unusable).

    Identity ``unknown`` (when not '') becomes ``new_whale``. CatalogueError when the table cannot be read or lacks
    identity/path; bad rows are left to ``check_catalogue``."""
    table = Path(table)
    frame = _read_frame(table)
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        hint = "; a Kaggle train.csv is read from its folder" if {"Image", "Id"} <= set(frame.columns) else ""
        raise CatalogueError(
            f"{table}: missing column(s) {', '.join(missing)}; a wildlife-datasets table has identity and path, "
            f"found {','.join(frame.columns)}{hint}"
        )
    is_csv = table.suffix.lower() == ".csv"
    lines = [i + 2 for i in range(len(frame))] if is_csv else _row_numbers(frame.index)
    images = [_text(p).replace("\\", "/") for p in frame["path"]]
    ids = [_text(v) for v in frame["identity"]]
    if unknown:
        ids = [NEW_WHALE if v == unknown else v for v in ids]
    boxes, box_problems = _box_cells(list(frame["bbox"]) if "bbox" in frame.columns else [None] * len(frame))
    labels = pd.DataFrame(
        {
            "Image": images,
            "Id": ids,
            "line": lines,
            "path": [table.parent / image for image in images],
            "image_id": [_text(v) for v in frame["image_id"]] if "image_id" in frame.columns else "",
            "date": [_text(v) for v in frame["date"]] if "date" in frame.columns else "",
            "box": pd.Series(boxes, dtype=object),
            "box_problem": box_problems,
        },
        columns=LABEL_COLUMNS,
    )
    return labels


def _row_numbers(index: pd.Index) -> list[int]:
    """The DataFrame's own row labels when they are whole numbers (as saved with the Parquet), else positions."""
    if pd.api.types.is_integer_dtype(index):
        return [int(i) for i in index]
    return list(range(len(index)))


def find_table(folder: Path) -> Path | None:
    """The wildlife table in ``folder`` (``metadata.csv`` or ``metadata.parquet``), or None; CatalogueError when
    it holds both (which one is meant is not for flukeid to guess)."""
    found = [folder / name for name in TABLE_NAMES if (folder / name).is_file()]
    if len(found) > 1:
        raise CatalogueError(f"{folder}: holds both {' and '.join(TABLE_NAMES)}; pass the one to use as DATA")
    return found[0] if found else None


def wildlife_frame(labels: pd.DataFrame, paths: Sequence[str], unknown: str = UNKNOWN_NAME) -> pd.DataFrame:
    """A wildlife-datasets table of flukeid rows (Image, Id and optional image_id, date, box) whose photos lie at
    ``paths`` (relative to the table's folder): image_id, identity, path, then bbox and date when any row has one.
    ``new_whale`` is written as ``unknown`` (when not ''; FlukeidError if an individual has that name)."""
    if unknown and (clash := (labels["Id"] == unknown).sum()):
        raise FlukeidError(f"{clash} photo(s) of an individual named {unknown!r}, the name unknown animals get")
    image_ids = _image_ids(labels)
    identity = [unknown if (unknown and i == NEW_WHALE) else i for i in labels["Id"]]
    frame = pd.DataFrame({"image_id": image_ids, "identity": identity, "path": list(paths)})
    boxes = list(labels["box"]) if "box" in labels.columns else []
    if any(isinstance(b, tuple) for b in boxes):
        frame["bbox"] = [format_bbox(b if isinstance(b, tuple) else None) for b in boxes]
    if "date" in labels.columns and (labels["date"] != "").any():
        frame["date"] = list(labels["date"])
    return frame


def _image_ids(labels: pd.DataFrame) -> list[str]:
    """The rows' own image_id where all have one, else each photo's name without its suffix (``a.jpg`` -> ``a``),
    else the name itself when that is not unique."""
    if "image_id" in labels.columns and (labels["image_id"] != "").all() and labels["image_id"].is_unique:
        return list(labels["image_id"])
    stems = [PurePosixPath(name).with_suffix("").as_posix() for name in labels["Image"]]
    return stems if len(set(stems)) == len(stems) else list(labels["Image"])
