"""The catalogue exported in Kaggle layout: train.csv (Image,Id) alone, or a zip of train.csv and train/ with the
photos under safe, distinct file names that train.csv lists."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

from flukeid.serve.db import Photo
from flukeid.serve.errors import Conflict
from flukeid.serve.uploads import without_exif

_UNSAFE = re.compile(r"[^\w.-]+")


def kaggle_csv(rows: Iterable[tuple[str, str | None]]) -> str:
    """(image, individual) rows as a Kaggle train.csv (Image,Id)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Image", "Id"])
    writer.writerows(rows)
    return out.getvalue()


def safe_name(image: str, fallback: str) -> str:
    """The last part of an image name, with only letters, digits and ``._-`` (others become ``_``) and no leading
    dot: a file name that stays in the folder it is extracted to (never ``..``, absolute or in a subfolder)."""
    last = image.replace("\\", "/").rsplit("/", 1)[-1]
    return _UNSAFE.sub("_", last).lstrip(".") or fallback


def archive_names(photos: list[Photo]) -> dict[int, str]:
    """A distinct safe file name per photo id for the export's train/ folder: the image name where it is one
    already (uploads, usual imports); a name taken before (ignoring case) gets the photo id appended."""
    names: dict[int, str] = {}
    taken: set[str] = set()
    for photo in photos:
        name = safe_name(photo.image, f"photo-{photo.id}")
        stem, suffix = PurePosixPath(name).stem, PurePosixPath(name).suffix
        candidate, repeat = name, 1
        while candidate.casefold() in taken:
            candidate = f"{stem}-{photo.id}{'' if repeat == 1 else f'-{repeat}'}{suffix}"
            repeat += 1
        taken.add(candidate.casefold())
        names[photo.id] = candidate
    return names


def _missing_files(missing: list[tuple[Photo, Path]], shown: int = 10) -> str:
    """The first photos whose files are missing, for an error message."""
    listed = [f"photo {p.id} {p.image!r} ({path if p.path else 'no file recorded'})" for p, path in missing[:shown]]
    return "; ".join(listed) + (f" and {len(missing) - shown} more" if len(missing) > shown else "")


def catalogue_zip(rows: list[Photo], file_of: Callable[[Photo], Path], strip_exif: bool = False) -> bytes:
    """A zip of train.csv and train/ holding catalogue photos ``rows`` (their files found by ``file_of``);
    ``strip_exif`` removes photo metadata (GPS...). Conflict naming the photos whose files are missing: an export
    never leaves a catalogue photo out silently."""
    files = {p.id: file_of(p) for p in rows}
    missing = [(p, files[p.id]) for p in rows if not files[p.id].is_file()]
    if missing:
        raise Conflict(
            f"{len(missing)} catalogue photo file(s) are missing, so the export would lack them: "
            f"{_missing_files(missing)}; restore the files, then export again"
        )
    names = archive_names(rows)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("train.csv", kaggle_csv((names[p.id], p.individual_id) for p in rows))
        for p in rows:
            data = without_exif(files[p.id]) if strip_exif else files[p.id].read_bytes()
            archive.writestr(f"train/{names[p.id]}", data)
    return buffer.getvalue()
