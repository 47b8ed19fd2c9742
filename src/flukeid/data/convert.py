"""Write a checked catalogue in another layout: Kaggle (``train.csv`` + ``train/`` + ``boxes.csv``) or a
wildlife-datasets table (``metadata.csv`` beside the photos).

Only the usable labelled rows travel (what ``flukeid check`` reports as skipped stays behind); test photos without
labels do not. Photos are hard-linked where the file system allows, copied otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.config import check_choice
from flukeid.data.boxes import BOX_COLUMNS, Box, read_boxes
from flukeid.data.catalogue import Catalogue
from flukeid.data.check import CheckReport
from flukeid.data.wildlife import TABLE_NAMES, UNKNOWN_NAME, wildlife_frame
from flukeid.errors import FlukeidError
from flukeid.folders import link_or_copy, replacing_folder
from flukeid.progress import Progress


class Target(StrEnum):
    KAGGLE = "kaggle"
    WILDLIFE = "wildlife"


@dataclass(frozen=True)
class Conversion:
    """What `convert_catalogue` wrote: ``photos`` labelled photos of ``individuals`` named individuals (plus
    ``new_whale`` ones), ``boxes`` of them with a box, ``skipped`` rows left behind as unusable."""

    out: Path
    target: Target
    photos: int
    individuals: int
    new_whale: int
    boxes: int
    skipped: int


def check_convert_target(out: Path) -> None:
    """FlukeidError unless ``out`` is a new or empty folder (a conversion never writes over files)."""
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise FlukeidError(f"{out}: exists and is not empty; convert writes a new folder")


def _boxes(cat: Catalogue, labels: pd.DataFrame) -> list[Box | None]:
    """Each usable row's box: its own (a wildlife table's bbox), else its line in the catalogue's boxes file."""
    if "box" in labels.columns:
        return [b if isinstance(b, tuple) else None for b in labels["box"]]
    table = read_boxes(cat.boxes_file).boxes if cat.boxes_file else {}
    return [table.get(name) for name in labels["Image"]]


def _kaggle_names(labels: pd.DataFrame) -> list[str]:
    """File names in a flat ``train/``: each photo's own name when those are unique, else its path with '__' for
    '/' (``ind_1/a.jpg`` -> ``ind_1__a.jpg``); FlukeidError if even those collide."""
    images = list(labels["Image"])
    names = [PurePosixPath(i).name for i in images]
    if len(set(names)) < len(names):
        names = ["__".join(PurePosixPath(i).parts) for i in images]
    if len(set(names)) < len(names):
        raise FlukeidError("two photos would get the same file name in train/; rename one of them")
    return names


def _write_kaggle(labels: pd.DataFrame, boxes: list[Box | None], out: Path, progress: Progress | None) -> None:
    names = _kaggle_names(labels)
    for done, (name, source) in enumerate(zip(names, labels["path"]), start=1):
        link_or_copy(Path(source), out / "train" / name)
        if progress:
            progress(done, len(names))
    table = pd.DataFrame({"Image": names, "Id": list(labels["Id"])})
    if "date" in labels.columns and (labels["date"] != "").any():
        table["date"] = list(labels["date"])
    table.to_csv(out / "train.csv", index=False)
    rows = [(name, *box) for name, box in zip(names, boxes) if box is not None]
    if rows:
        pd.DataFrame(rows, columns=list(BOX_COLUMNS)).to_csv(out / "boxes.csv", index=False)


def _write_wildlife(
    cat: Catalogue, labels: pd.DataFrame, boxes: list[Box | None], out: Path, unknown: str, progress: Progress | None
) -> None:
    paths = [Path(p).relative_to(cat.root).as_posix() for p in labels["path"]]
    for done, (relative, source) in enumerate(zip(paths, labels["path"]), start=1):
        link_or_copy(Path(source), out / relative)
        if progress:
            progress(done, len(paths))
    frame = wildlife_frame(labels.assign(box=pd.Series(boxes, index=labels.index, dtype=object)), paths, unknown)
    frame.to_csv(out / TABLE_NAMES[0], index=False)


def convert_catalogue(
    report: CheckReport,
    out: Path,
    to: Target | str,
    unknown: str = UNKNOWN_NAME,
    progress: Progress | None = None,
) -> Conversion:
    """Write the checked catalogue's usable labelled rows (FlukeidError if it has none) into the new folder ``out``
    in the ``to`` layout, whole or not at all. ``unknown`` is the marker the check read unknown animals by: a
    written wildlife table names ``new_whale`` photos ``unknown`` (wildlife-datasets' own marker), or keeps
    ``new_whale`` when ``unknown`` is '' (no marker). ``progress`` is called per photo placed."""
    check_choice("--to", str(to), [t.value for t in Target])
    out = Path(out)
    check_convert_target(out)
    labels = report.require_usable()
    cat = report.catalogue
    assert cat is not None  # require_usable raised otherwise
    boxes = _boxes(cat, labels)
    with replacing_folder(out) as tmp:
        if Target(to) is Target.KAGGLE:
            _write_kaggle(labels, boxes, tmp, progress)
        else:
            _write_wildlife(cat, labels, boxes, tmp, UNKNOWN_NAME if unknown else "", progress)
    known = labels[labels["Id"] != NEW_WHALE]
    return Conversion(
        out,
        Target(to),
        photos=len(labels),
        individuals=known["Id"].nunique(),
        new_whale=len(labels) - len(known),
        boxes=sum(b is not None for b in boxes),
        skipped=len(cat.labels) - len(labels),
    )
