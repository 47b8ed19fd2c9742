"""Bad inputs for bench/faults.py: damaged photos, odd CSVs, broken model and gallery folders.

Each function writes or damages files in a folder it is given; none reads or writes anything else.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

PhotoFault = Callable[[Path], Path]
"""Damage one photo in place (or replace it by another file); returns the photo's path (same name)."""


def truncated(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def zero_bytes(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def png_named_jpg(path: Path) -> Path:
    with Image.open(path) as img:
        img.convert("RGB").save(path, "PNG")
    return path


def bomb(path: Path, side: int = 100_000) -> Path:
    """A valid small PNG whose header claims side x side pixels (a decompression bomb's header)."""
    buffer = _png_bytes(Image.new("L", (8, 8), 0))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    patched = buffer[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + buffer[33:]
    path.write_bytes(patched)
    return path


def _png_bytes(img: Image.Image) -> bytes:
    import io

    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def greyscale(path: Path) -> Path:
    with Image.open(path) as img:
        grey = img.convert("L")
    grey.save(path, "JPEG")
    return path


def cmyk(path: Path) -> Path:
    with Image.open(path) as img:
        converted = img.convert("CMYK")
    converted.save(path, "JPEG")
    return path


def sixteen_bit(path: Path) -> Path:
    """A 16-bit greyscale PNG under the photo's own (.jpg) name."""
    with Image.open(path) as img:
        grey = np.asarray(img.convert("L"), dtype=np.uint16) * 257
    Image.fromarray(grey).save(path, "PNG")
    return path


PHOTO_FAULTS: dict[str, tuple[PhotoFault, bool]] = {
    # name: (damage, whether the photo stays usable)
    "truncated": (truncated, False),
    "zero-byte": (zero_bytes, False),
    "png-as-jpg": (png_named_jpg, True),
    "bomb-header": (bomb, False),
    "greyscale": (greyscale, True),
    "cmyk": (cmyk, True),
    "16-bit": (sixteen_bit, True),
}


def copy_catalogue(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def first_photo(catalogue: Path) -> Path:
    """The first labelled photo of a Kaggle-layout catalogue (by train.csv order)."""
    line = (catalogue / "train.csv").read_text().splitlines()[1]
    return catalogue / "train" / line.split(",")[0]


def labelled_rows(catalogue: Path) -> list[tuple[str, str]]:
    return labelled_rows_of(catalogue / "train.csv")


def labelled_rows_of(csv_file: Path) -> list[tuple[str, str]]:
    """(Image, Id) of a plain CSV whose first two columns are Image,Id."""
    lines = csv_file.read_text().splitlines()[1:]
    return [(line.split(",")[0], line.split(",")[1]) for line in lines if line]


def rewrite_csv(catalogue: Path, text: str | bytes) -> None:
    target = catalogue / "train.csv"
    target.write_bytes(text if isinstance(text, bytes) else text.encode())


def csv_variants(rows: list[tuple[str, str]]) -> dict[str, tuple[bytes, int | None]]:
    """train.csv variants: name -> (bytes, usable labelled photos expected, or None when it should be refused)."""
    body = "".join(f"{image},{ident}\n" for image, ident in rows)
    n = len(rows)
    first_image, first_id = rows[0]
    return {
        "bom": (("\ufeffImage,Id\n" + body).encode(), n),
        "crlf": (("Image,Id\n" + body).replace("\n", "\r\n").encode(), n),
        "extra-columns": (("Image,Id,Notes\n" + "".join(f"{i},{d},x\n" for i, d in rows)).encode(), n),
        "columns-swapped": (("Id,Image\n" + "".join(f"{d},{i}\n" for i, d in rows)).encode(), n),
        "no-header": (body.encode(), None),
        "header-twice": (("Image,Id\nImage,Id\n" + body).encode(), n),
        "duplicated-column": (("Image,Id,Id\n" + "".join(f"{i},{d},{d}\n" for i, d in rows)).encode(), n),
        "quoted-comma-id": (
            ("Image,Id\n" + f'{first_image},"w,comma"\n' + "".join(f"{i},{d}\n" for i, d in rows[1:])).encode(),
            n,
        ),
        "unicode-ids": (("Image,Id\n" + "".join(f"{i},{_unicode(d)}\n" for i, d in rows)).encode(), n),
        "empty-file": (b"", None),
        "header-only": (b"Image,Id\n", None),
        "one-row": (f"Image,Id\n{first_image},{first_id}\n".encode(), 1),
        "short-row": (("Image,Id\n" + f"{first_image}\n" + "".join(f"{i},{d}\n" for i, d in rows[1:])).encode(), n - 1),
        "long-row": (("Image,Id\n" + f"{first_image},{first_id},extra\n" + body).encode(), None),
        "semicolons": (("Image;Id\n" + "".join(f"{i};{d}\n" for i, d in rows)).encode(), None),
        "utf16": (("Image,Id\n" + body).encode("utf-16"), None),
        "blank-lines": (("Image,Id\n\n" + body.replace("\n", "\n\n")).encode(), n),
        "nul-in-id": (
            ("Image,Id\n" + f"{first_image},w\x00x\n" + "".join(f"{i},{d}\n" for i, d in rows[1:])).encode(),
            n - 1,
        ),
    }


def _unicode(ident: str) -> str:
    """A non-ASCII ID for a named individual (new_whale stays new_whale)."""
    return ident if ident == "new_whale" else f"валь_{ident}_é"


def submission_variants(answers: list[tuple[str, str]], known: list[str]) -> dict[str, tuple[str, bool]]:
    """submission.csv variants: name -> (text, whether `score` should accept it)."""
    ids = " ".join(known[:5])
    good = "".join(f"{image},{ids}\n" for image, _ in answers)
    first = answers[0][0]
    return {
        "six-predictions": ("Image,Id\n" + f"{first},{' '.join(known[:6])}\n" + good.split("\n", 1)[1], False),
        "duplicate-image-row": ("Image,Id\n" + good + f"{first},{known[0]}\n", False),
        "missing-image": ("Image,Id\n" + good.split("\n", 1)[1], False),
        "extra-image": ("Image,Id\n" + good + f"nobody.jpg,{known[0]}\n", False),
        "bom-crlf": (("\ufeffImage,Id\n" + good).replace("\n", "\r\n"), True),
        "lowercase-header": ("image,id\n" + good, False),
        "extra-column": ("Image,Id,Score\n" + good.replace("\n", ",1\n"), False),
        "blank-id": ("Image,Id\n" + f"{first},   \n" + good.split("\n", 1)[1], False),
        "tabs-between-ids": ("Image,Id\n" + good.replace(" ", "\t"), True),
        "quoted-fields": ("Image,Id\n" + "".join(f'"{image}","{ids}"\n' for image, _ in answers), True),
        "huge-field": ("Image,Id\n" + f"{first},{'x' * 200_000}\n" + good.split("\n", 1)[1], False),
        "header-only": ("Image,Id\n", False),
    }


def damage_model(model: Path, kind: str) -> None:
    """Break one file of a copied model folder."""
    actions: dict[str, Callable[[], None]] = {
        "no-weights": lambda: (model / "model.safetensors").unlink(),
        "empty-weights": lambda: (model / "model.safetensors").write_bytes(b""),
        "truncated-weights": lambda: truncated(model / "model.safetensors"),
        "garbage-weights": lambda: (model / "model.safetensors").write_bytes(
            b"\x10\x00\x00\x00\x00\x00\x00\x00{bad json"
        ),
        "no-model-yaml": lambda: (model / "model.yaml").unlink(),
        "bad-model-yaml": lambda: (model / "model.yaml").write_text("backbone: [unclosed\n"),
        "wrong-backbone": lambda: (model / "model.yaml").write_text(
            (model / "model.yaml").read_text().replace("test_efficientnet", "resnet18")
        ),
        "no-labels-json": lambda: (model / "labels.json").unlink(),
        "bad-labels-json": lambda: (model / "labels.json").write_text("{not json"),
        "bad-threshold-json": lambda: (model / "threshold.json").write_text("[1, 2"),
        "bad-identify-yaml": lambda: (model / "identify.yaml").write_text("matchers: [{name: nope}]\n"),
    }
    actions[kind]()


def damage_gallery(gallery: Path, kind: str) -> None:
    """Break a copied gallery folder."""
    database = gallery / "gallery.sqlite"
    index_files = [gallery / "index.faiss", gallery / "index.version"]
    actions: dict[str, Callable[[], None]] = {
        "garbage-sqlite": lambda: database.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16),
        "empty-sqlite": lambda: database.write_bytes(b""),
        "truncated-sqlite": lambda: truncated(database),
        "no-index": lambda: [p.unlink() for p in index_files],
        "garbage-index": lambda: [p.write_bytes(b"not an index") for p in index_files],
        "no-model-link": lambda: (gallery / "model_path.txt").unlink(),
    }
    actions[kind]()
