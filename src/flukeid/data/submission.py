"""Read, check, write and score Kaggle-style submission files (columns Image,Id)."""

from __future__ import annotations

import codecs
import csv
import io
import os
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from flukeid.errors import SubmissionError
from flukeid.metrics import map_at_k

MAX_EXAMPLES = 5
"""How many offending lines or images an error message shows."""


@dataclass(frozen=True)
class Answers:
    """Ground truth per image: `ids` the expected label (`new_whale` for unknown individuals),
    `identities` the real, hidden identity (equal to the label for known individuals)."""

    ids: dict[str, str]
    identities: dict[str, str]


def _examples(items: Sequence[str]) -> str:
    """The first few items, and how many there are in all when some are left out."""
    shown = ", ".join(items[:MAX_EXAMPLES])
    return shown if len(items) <= MAX_EXAMPLES else f"{shown}, ... ({len(items)} in all)"


def _read_text(path: Path) -> str:
    """The file's text, refused with the reason when it is missing, a folder, empty, binary or not UTF-8."""
    if path.is_dir():
        raise SubmissionError(f"{path}: is a folder, not a CSV file")
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SubmissionError(f"{path}: cannot read the file ({exc.strerror or exc})") from exc
    if not data:
        raise SubmissionError(f"{path}: the file is empty (0 bytes); expected a CSV with a header line")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SubmissionError(f"{path}: is UTF-16 text: save it as UTF-8 CSV")
    if b"\0" in data:
        line = data.count(b"\n", 0, data.index(b"\0")) + 1
        raise SubmissionError(f"{path}: holds NUL bytes (first on line {line}): a binary file, not a text CSV")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SubmissionError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}): save it as UTF-8 CSV"
        ) from exc


def _read_rows(
    path: Path, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV as (line number, cells by column), after checking the header."""
    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    try:
        header = [name.strip() for name in next(reader, [])]
        columns = set(header)
        if not set(required) <= columns <= {*required, *optional} or len(columns) != len(header):
            expected = ",".join(required) + (f" (optional: {','.join(optional)})" if optional else "")
            found = ",".join(header) or "nothing"
            raise SubmissionError(f"{path}: header must be the columns {expected}; found {found[:200]}")
        rows, bad_width = [], []
        for cells in reader:
            if not cells:
                continue
            if len(cells) != len(header):
                bad_width.append(f"line {reader.line_num}")
                continue
            rows.append((reader.line_num, {n: c.strip() for n, c in zip(header, cells, strict=True)}))
    except csv.Error as exc:
        raise SubmissionError(f"{path}: not a readable CSV at line {reader.line_num} ({exc})") from exc
    if bad_width:
        raise SubmissionError(f"{path}: rows need {len(header)} cells ({','.join(header)}): {_examples(bad_width)}")
    return rows


def _check_rows(path: Path, rows: list[tuple[int, dict[str, str]]], k: int) -> None:
    """Refuse empty images, duplicate images, empty Id cells and more than k labels."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    empty_image, duplicates, empty_id, too_many = [], [], [], []
    for line, row in rows:
        image, labels = row["Image"], row["Id"].split()
        if not image:
            empty_image.append(f"line {line}")
        elif image in seen:
            duplicates.append(f"{image} (lines {seen[image]} and {line})")
        else:
            seen[image] = line
        if not labels:
            empty_id.append(f"line {line}")
        elif len(labels) > k:
            too_many.append(f"line {line} ({len(labels)} labels)")
    for items, reason in [
        (empty_image, "empty Image"),
        (duplicates, "duplicate images"),
        (empty_id, "empty Id (at least one label needed)"),
        (too_many, f"too many labels (at most {k})"),
    ]:
        if items:
            problems.append(f"{reason}: {_examples(items)}")
    if problems:
        raise SubmissionError(f"{path}: " + "; ".join(problems))


def _check_images(path: Path, images: Collection[str], expected: Collection[str]) -> None:
    """Refuse a submission that lacks expected images or has images nobody asked for."""
    expected_set, found = set(expected), set(images)
    missing = sorted(expected_set - found)
    extra = sorted(found - expected_set)
    problems = []
    if missing:
        problems.append(f"{len(missing)} expected images missing: {_examples(missing)}")
    if extra:
        problems.append(f"{len(extra)} images not in the expected set: {_examples(extra)}")
    if problems:
        raise SubmissionError(f"{path}: " + "; ".join(problems))


def read_submission(path: Path, expected_images: Collection[str] | None = None, k: int = 5) -> dict[str, list[str]]:
    """Labels per image, best first, from a submission CSV with columns Image,Id.

    Raises SubmissionError naming the file and the offending lines or images when the header,
    an image or its labels (1 to k, space-separated) are wrong, or when images are missing from
    or not in `expected_images` (if given).
    """
    path = Path(path)
    rows = _read_rows(path, ("Image", "Id"))
    _check_rows(path, rows, k)
    predictions = {row["Image"]: row["Id"].split() for _, row in rows}
    if expected_images is not None:
        _check_images(path, predictions.keys(), expected_images)
    return predictions


def read_answers(path: Path) -> Answers:
    """Ground truth from a CSV with columns Image,Id and optional Individual (defaults to Id)."""
    path = Path(path)
    rows = _read_rows(path, ("Image", "Id"), ("Individual", "Source"))
    _check_rows(path, rows, k=1)
    ids = {row["Image"]: row["Id"] for _, row in rows}
    identities = {row["Image"]: row.get("Individual") or row["Id"] for _, row in rows}
    return Answers(ids=ids, identities=identities)


def _check_labels(image: str, labels: Sequence[str]) -> None:
    if isinstance(labels, str):
        raise SubmissionError(f"labels of image {image!r} must be a list of labels, not the string {labels!r}")
    if not labels:
        raise SubmissionError(f"image {image!r} has no labels; give at least one (e.g. new_whale)")
    for label in labels:
        if not label or any(c.isspace() for c in label):
            raise SubmissionError(f"label {label!r} of image {image!r} is empty or contains whitespace")


def write_submission(path: Path, predictions: Mapping[str, Sequence[str]]) -> None:
    """Write a submission CSV (Image, space-separated labels best first) in the mapping's order.

    The file is written to a temporary file beside `path`, then moved over it, so a reader never
    sees half a file.
    """
    path = Path(path)
    for image, labels in predictions.items():
        _check_labels(image, labels)
    temporary: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False, newline=""
        ) as handle:
            temporary = Path(handle.name)
            writer = csv.writer(handle)
            writer.writerow(["Image", "Id"])
            writer.writerows([image, " ".join(labels)] for image, labels in predictions.items())
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            temporary.unlink(missing_ok=True)
        raise


def score_submission(submission: Path, answers: Path, k: int = 5) -> float:
    """MAP@k of a submission file against an answers file (every answer image must be predicted)."""
    truth = read_answers(answers)
    if not truth.ids:
        raise SubmissionError(f"{answers}: no answer rows after the header: nothing to score")
    predictions = read_submission(submission, expected_images=truth.ids.keys(), k=k)
    images = list(truth.ids)
    return map_at_k([predictions[image] for image in images], [truth.ids[image] for image in images], k)
