"""Fluke box files: `fn x0 y0 x1 y1` (space-separated) or CSV `Image,x0,y0,x1,y1`."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from flukeid.data.problems import Problem, Severity
from flukeid.errors import CatalogueError

Box = tuple[float, float, float, float]
BOX_COLUMNS = ("Image", "x0", "y0", "x1", "y1")


@dataclass
class BoxTable:
    """Boxes by image name, plus the rows that could not be used."""

    boxes: dict[str, Box] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) for each non-empty line; CSV when the first line has commas."""
    text = path.read_text(encoding="utf-8-sig").splitlines()
    is_csv = bool(text) and "," in text[0]
    rows: list[tuple[int, list[str]]] = []
    if is_csv:
        for number, fields in enumerate(csv.reader(text), start=1):
            if fields:
                rows.append((number, [f.strip() for f in fields]))
        header = rows[0][1] if rows else []
        if [h.lower() for h in header] != [c.lower() for c in BOX_COLUMNS]:
            raise CatalogueError(f"{path}: expected CSV columns {','.join(BOX_COLUMNS)}, found {','.join(header)}")
        return rows[1:]
    return [(n, line.split()) for n, line in enumerate(text, start=1) if line.strip()]


def parse_box(fields: list[str]) -> Box:
    """Check one row's four coordinates; ValueError says what is wrong."""
    if len(fields) != 5:
        raise ValueError(f"expected 5 fields (image x0 y0 x1 y1), found {len(fields)}")
    try:
        x0, y0, x1, y1 = (float(v) for v in fields[1:])
    except ValueError:
        raise ValueError(f"coordinates must be numbers, found {' '.join(fields[1:])}") from None
    if not (x0 < x1 and y0 < y1):
        raise ValueError(f"need x0<x1 and y0<y1, found {x0:g} {y0:g} {x1:g} {y1:g}")
    if min(x0, y0) < 0:
        raise ValueError(f"negative coordinate in {x0:g} {y0:g} {x1:g} {y1:g}")
    return (x0, y0, x1, y1)


def read_boxes(path: Path) -> BoxTable:
    """Read a boxes file; bad rows are reported with their line number and skipped."""
    if not path.is_file():
        raise CatalogueError(f"{path}: boxes file not found")
    table = BoxTable()
    for line, fields in _rows(path):
        try:
            box = parse_box(fields)
        except ValueError as exc:
            table.problems.append(Problem(Severity.ERROR, path.name, str(exc), line))
            continue
        if fields[0] in table.boxes:
            table.problems.append(Problem(Severity.ERROR, path.name, f"second box for {fields[0]}", line))
            continue
        table.boxes[fields[0]] = box
    return table


def box_problem(box: Box, width: int, height: int) -> str | None:
    """Why a box does not fit its image, or None (a pixel of slack for inclusive coordinates)."""
    x0, y0, x1, y1 = box
    if x1 > width + 1 or y1 > height + 1:
        return f"box {x0:g} {y0:g} {x1:g} {y1:g} lies outside the {width}x{height} image"
    return None
