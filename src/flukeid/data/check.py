"""Validate a catalogue: report every problem with its file and row, and go on where it safely can."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from flukeid.data.boxes import box_problem, read_boxes
from flukeid.data.catalogue import Catalogue, Layout, list_images, load_catalogue, outside_catalogue
from flukeid.data.ids import id_problem
from flukeid.data.images import DEFAULT_MAX_PIXELS, ImageInfo, inspect_image
from flukeid.data.problems import Problem, Severity
from flukeid.data.wildlife import UNKNOWN_NAME, format_bbox
from flukeid.errors import CatalogueError, FlukeidError, ImageError
from flukeid.progress import Progress

log = logging.getLogger(__name__)
NEAR_DUPLICATE_BITS = 4
"""Photos whose 64-bit difference hashes differ in at most this many bits are near-duplicates."""


@dataclass
class CheckReport:
    """Everything ``check_catalogue`` found. ``infos`` holds the images that decoded, by path."""

    catalogue: Catalogue | None
    problems: list[Problem] = field(default_factory=list)
    infos: dict[Path, ImageInfo] = field(default_factory=dict)
    skipped_rows: set[int] = field(default_factory=set)

    @property
    def fatal(self) -> bool:
        return any(p.severity is Severity.FATAL for p in self.problems)

    def count(self, severity: Severity) -> int:
        return sum(p.severity is severity for p in self.problems)

    def usable_labels(self) -> pd.DataFrame:
        """Labelled rows that passed: decodable image, non-empty Id, no conflicting duplicate."""
        if self.catalogue is None:
            return pd.DataFrame(columns=["Image", "Id", "line", "path"])
        labels = self.catalogue.labels
        keep = labels["path"].map(lambda p: p in self.infos) & ~labels.index.isin(list(self.skipped_rows))
        return labels[keep].reset_index(drop=True)

    def require_usable(self) -> pd.DataFrame:
        """``usable_labels()``, or FlukeidError with the fatal problems; skipped rows are logged as a warning."""
        if self.fatal or self.catalogue is None:
            raise FlukeidError("; ".join(str(p) for p in self.problems if p.severity is Severity.FATAL))
        usable = self.usable_labels()
        if skipped := len(self.catalogue.labels) - len(usable):
            log.warning("%d labelled row(s) skipped: run `flukeid check %s` for details", skipped, self.catalogue.root)
        return usable


def _inspect_all(paths: list[Path], max_pixels: int, progress: Progress | None) -> dict[Path, ImageInfo | str]:
    """Inspect images on a small thread pool (PIL releases the GIL while decoding)."""
    results: dict[Path, ImageInfo | str] = {}

    def one(path: Path) -> tuple[Path, ImageInfo | str]:
        try:
            return path, inspect_image(path, max_pixels)
        except ImageError as exc:
            return path, str(exc).removeprefix(f"{path}: ")

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done, (path, result) in enumerate(pool.map(one, paths), start=1):
            results[path] = result
            if progress:
                progress(done, len(paths))
    return results


def _row_problems(cat: Catalogue, report: CheckReport) -> None:
    """Empty fields, IDs flukeid cannot write, paths leaving the catalogue folder and duplicate rows."""
    labels, name = cat.labels, cat.labels_file.name if cat.labels_file else cat.root.name
    first_seen: dict[str, tuple[int, str, int | None]] = {}
    for idx, row in labels.iterrows():
        line = row["line"] if pd.notna(row["line"]) else None

        def skip(message: str, line: int | None = line, idx: object = idx) -> None:
            report.problems.append(Problem(Severity.ERROR, name, message, line))
            report.skipped_rows.add(idx)

        if not row["Image"]:
            skip("empty Image")
        elif not row["Id"]:
            skip(f"empty Id for {row['Image']}")
        elif (why := id_problem(row["Id"], allow_new_whale=True)) is not None:
            skip(f"{row['Image']}: {why}; skipped")
        elif (why := outside_catalogue(cat.root, row["Image"], row["path"])) is not None:
            skip(f"{why}; skipped")
        elif why := row.get("box_problem", ""):
            skip(f"{row['Image']}: {why}; skipped")
        elif row["Image"] in first_seen:
            _, first_id, first_line = first_seen[row["Image"]]
            same = first_id == row["Id"]
            message = (
                f"duplicate row for {row['Image']} (first at line {first_line})"
                if same
                else f"{row['Image']} labelled {row['Id']} here but {first_id} at line {first_line}"
            )
            report.problems.append(Problem(Severity.WARNING if same else Severity.ERROR, name, message, line))
            report.skipped_rows.add(idx)
        else:
            first_seen[row["Image"]] = (idx, row["Id"], line)


def _image_problems(
    rows: Iterable[tuple[str, Path, int | None]], file_of: str, results: dict[Path, ImageInfo | str]
) -> list[Problem]:
    problems = []
    for image, path, line in rows:
        result = results.get(path)
        where = file_of if line is not None else image
        if isinstance(result, str):
            problems.append(Problem(Severity.ERROR, where, f"{image}: {result}; skipped", line))
        elif result is not None:
            if result.mode not in ("RGB",):
                problems.append(
                    Problem(Severity.WARNING, where, f"{image}: mode {result.mode}, converted to RGB", line)
                )
            if result.exif_rotated:
                problems.append(Problem(Severity.WARNING, where, f"{image}: rotated upright per EXIF", line))
    return problems


def _duplicate_problems(cat: Catalogue, report: CheckReport) -> None:
    """Byte-identical photos inside the catalogue, and train/test duplicates (exact or near)."""
    usable = report.usable_labels()
    by_hash: dict[str, tuple[str, str]] = {}
    name = cat.labels_file.name if cat.labels_file else cat.root.name
    for _, row in usable.iterrows():
        info = report.infos[row["path"]]
        if info.sha1 in by_hash:
            other, other_id = by_hash[info.sha1]
            same = other_id == row["Id"]
            severity = Severity.WARNING if same else Severity.ERROR
            detail = "same individual" if same else f"labelled {other_id} there and {row['Id']} here"
            report.problems.append(
                Problem(severity, name, f"{row['Image']} is byte-identical to {other} ({detail})", row["line"])
            )
        else:
            by_hash[info.sha1] = (row["Image"], row["Id"])
    test_infos = [(img, report.infos[p]) for img, p in zip(cat.test["Image"], cat.test["path"]) if p in report.infos]
    if not test_infos or usable.empty:
        return
    train_hashes = np.array([report.infos[p].dhash for p in usable["path"]], dtype=np.uint64)
    for image, info in test_infos:
        if info.sha1 in by_hash:
            other, other_id = by_hash[info.sha1]
            report.problems.append(
                Problem(
                    Severity.WARNING,
                    f"test/{image}",
                    f"byte-identical to catalogue photo {other} ({other_id})",
                )
            )
            continue
        distance = np.bitwise_count(train_hashes ^ np.uint64(info.dhash))
        nearest = int(distance.argmin())
        if distance[nearest] <= NEAR_DUPLICATE_BITS:
            other = usable.iloc[nearest]
            report.problems.append(
                Problem(
                    Severity.WARNING,
                    f"test/{image}",
                    f"near-duplicate of catalogue photo {other['Image']} ({other['Id']}), "
                    f"{int(distance[nearest])} of 64 hash bits differ",
                )
            )


def _box_problems(cat: Catalogue, report: CheckReport) -> None:
    if cat.boxes_file is None:
        return
    try:
        table = read_boxes(cat.boxes_file)
    except CatalogueError as exc:
        report.problems.append(Problem(Severity.ERROR, cat.boxes_file.name, str(exc)))
        return
    report.problems.extend(table.problems)
    sizes = {p.name: (i.width, i.height) for p, i in report.infos.items()}
    sizes.update(
        {
            img: (report.infos[p].width, report.infos[p].height)
            for img, p in zip(cat.labels["Image"], cat.labels["path"])
            if p in report.infos
        }
    )
    for image, box in table.boxes.items():
        if image not in sizes:
            report.problems.append(Problem(Severity.WARNING, cat.boxes_file.name, f"box for unknown image {image}"))
        elif (why := box_problem(box, *sizes[image])) is not None:
            report.problems.append(Problem(Severity.ERROR, cat.boxes_file.name, f"{image}: {why}"))


def _given_box_problems(cat: Catalogue, report: CheckReport) -> None:
    """A wildlife table's boxes that do not fit their decoded photo: the row is skipped (the box says which animal
    the row is about)."""
    if "box" not in cat.labels.columns:
        return
    name = cat.labels_file.name if cat.labels_file else cat.root.name
    for idx, row in cat.labels.iterrows():
        info = report.infos.get(row["path"])
        if not isinstance(row["box"], tuple) or info is None or idx in report.skipped_rows:
            continue
        if box_problem(row["box"], info.width, info.height) is not None:
            why = f"bbox {format_bbox(row['box'])} lies outside the {info.width}x{info.height} image"
            report.problems.append(Problem(Severity.ERROR, name, f"{row['Image']}: {why}; skipped", row["line"]))
            report.skipped_rows.add(idx)


def _unlisted_images(cat: Catalogue) -> list[Problem]:
    if cat.labels_file is None or cat.layout is Layout.WILDLIFE:  # a table's photos may lie in any sub-folder
        return []
    folder = cat.labels["path"].iloc[0].parent if len(cat.labels) else cat.root / "train"
    listed = set(cat.labels["Image"])
    unlisted = [name for name in list_images(folder)["Image"] if name not in listed]
    if not unlisted:
        return []
    examples = ", ".join(unlisted[:5]) + (" ..." if len(unlisted) > 5 else "")
    return [
        Problem(
            Severity.WARNING,
            f"{folder.name}/",
            f"{len(unlisted)} image(s) not in {cat.labels_file.name}: {examples}",
        )
    ]


def check_catalogue(
    root: Path, max_pixels: int = DEFAULT_MAX_PIXELS, progress: Progress | None = None, unknown: str = UNKNOWN_NAME
) -> CheckReport:
    """Load and validate the catalogue at ``root`` (``unknown``: as `load_catalogue` takes it). Never raises for bad
    data: problems go in the report."""
    try:
        cat = load_catalogue(root, unknown)
    except CatalogueError as exc:
        return CheckReport(None, [Problem(Severity.FATAL, str(root), str(exc))])
    report = CheckReport(cat)
    _row_problems(cat, report)
    rows = [(r.Image, r.path, r.line) for i, r in enumerate(cat.labels.itertuples()) if i not in report.skipped_rows]
    test_rows = []
    for image, path in zip(cat.test["Image"], cat.test["path"]):
        if (why := outside_catalogue(cat.root, f"test/{image}", path)) is not None:
            report.problems.append(Problem(Severity.ERROR, "test", f"{why}; skipped"))
        else:
            test_rows.append((f"test/{image}", path, None))
    results = _inspect_all([p for _, p, _ in rows + test_rows], max_pixels, progress)
    report.infos = {p: r for p, r in results.items() if isinstance(r, ImageInfo)}
    file_of = cat.labels_file.name if cat.labels_file else cat.root.name
    report.problems += _image_problems(rows, file_of, results) + _image_problems(test_rows, "test", results)
    report.problems += _unlisted_images(cat)
    _given_box_problems(cat, report)
    _duplicate_problems(cat, report)
    _box_problems(cat, report)
    if report.usable_labels().empty:
        report.problems.append(Problem(Severity.FATAL, file_of, "no usable labelled photo in the catalogue"))
    return report


def usable_labels(root: Path, progress: Progress | None = None) -> pd.DataFrame:
    """The usable labelled rows (Image, Id, line, path) of the catalogue at ``root``, checked as by
    ``check_catalogue``; FlukeidError naming the fatal problems if there are none."""
    return check_catalogue(root, progress=progress).require_usable()
