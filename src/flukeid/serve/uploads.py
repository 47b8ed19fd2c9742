"""Uploaded photos: size and pixel limits, type sniffed from the bytes (never the name or the header the
client sent), stored under generated names; EXIF stripped from exported copies on request."""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from flukeid.serve.catalog import Limits
from flukeid.serve.errors import TooLarge, UnsupportedPhoto


@dataclass(frozen=True)
class StoredPhoto:
    path: Path
    image: str  # generated file name
    original_name: str
    width: int
    height: int
    sha1: str


def sniff(head: bytes) -> str | None:
    """The photo type from its first bytes: "jpg", "png", "webp", or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def read_limited(stream: BinaryIO, name: str, limits: Limits) -> bytes:
    """The bytes of ``stream``, read no further than one byte over the limit; TooLarge when over it."""
    data = stream.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise TooLarge(f"{name}: larger than the limit of {limits.max_bytes:,} bytes")
    return data


def check_photo(data: bytes, name: str, limits: Limits) -> tuple[str, int, int]:
    """(type, width, height) of an acceptable photo, or TooLarge / UnsupportedPhoto saying why not."""
    kind = sniff(data[:16])
    if kind is None:
        raise UnsupportedPhoto(f"{name}: not a JPEG, PNG or WebP photo (judged by its bytes)")
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only: pixels are checked before decoding
            width, height = img.size
            if width * height > limits.max_pixels:
                raise TooLarge(f"{name}: {width}x{height} is more than {limits.max_pixels:,} pixels")
            img.load()
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"{name}: too many pixels ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UnsupportedPhoto(f"{name}: the {kind} data cannot be decoded ({exc})") from exc
    return kind, width, height


def store_photo(data: bytes, name: str, folder: Path, limits: Limits) -> StoredPhoto:
    """Check ``data`` and write it under a generated name in ``folder``."""
    kind, width, height = check_photo(data, name, limits)
    image = f"{uuid.uuid4().hex}.{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / image
    path.write_bytes(data)
    return StoredPhoto(path, image, Path(name).name[:255] or image, width, height, hashlib.sha1(data).hexdigest())


def without_exif(path: Path) -> bytes:
    """The photo re-saved without its metadata (JPEG keeps its quantisation tables: no visible loss)."""
    with Image.open(path) as img:
        buffer = io.BytesIO()
        if img.format == "JPEG":
            img.save(buffer, "JPEG", quality="keep")
        else:
            img.save(buffer, img.format or "PNG")
        return buffer.getvalue()
