"""Uploaded photos, without the service: type judged by the bytes, the size and pixel limits, storing under a
generated name, EXIF stripped from exported copies."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from PIL import Image

from flukeid.serve.catalog import Limits
from flukeid.serve.errors import TooLarge, UnsupportedPhoto
from flukeid.serve.uploads import check_photo, read_limited, sniff, store_photo, without_exif

LIMITS = Limits(max_bytes=50_000, max_pixels=100 * 100, max_files=2)


def encoded(kind: str, size: tuple[int, int] = (40, 30), **options: object) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (90, 120, 200)).save(buffer, kind, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("kind", "expected"), [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", None), ("GIF", None)]
)
def test_the_type_is_judged_by_the_first_bytes(kind: str, expected: str | None) -> None:
    assert sniff(encoded(kind)[:16]) == expected


def test_read_limited_takes_the_limit_and_refuses_one_byte_more() -> None:
    assert read_limited(io.BytesIO(bytes(LIMITS.max_bytes)), "ok.jpg", LIMITS) == bytes(LIMITS.max_bytes)
    with pytest.raises(TooLarge, match=r"big\.jpg: larger than the limit of 50,000 bytes"):
        read_limited(io.BytesIO(bytes(LIMITS.max_bytes + 1)), "big.jpg", LIMITS)


def test_check_photo_gives_type_and_size_or_says_why_not() -> None:
    assert check_photo(encoded("PNG", (40, 30)), "a.png", LIMITS) == ("png", 40, 30)
    with pytest.raises(UnsupportedPhoto, match=r"b\.jpg: not a JPEG, PNG or WebP"):
        check_photo(encoded("BMP"), "b.jpg", LIMITS)  # whatever its name says
    with pytest.raises(TooLarge, match=r"c\.png: 101x100 is more than 10,000 pixels"):
        check_photo(encoded("PNG", (101, 100)), "c.png", LIMITS)
    truncated = encoded("JPEG")[:40]
    with pytest.raises(UnsupportedPhoto, match=r"d\.jpg: the jpg data cannot be decoded"):
        check_photo(truncated, "d.jpg", LIMITS)


def test_store_photo_writes_under_a_generated_name_and_keeps_the_last_part_of_the_original(tmp_path: Path) -> None:
    data = encoded("JPEG")
    stored = store_photo(data, "../../secret/boat.jpg", tmp_path / "uploads", LIMITS)
    assert stored.path.parent == tmp_path / "uploads" and stored.path.read_bytes() == data
    assert stored.image == stored.path.name and stored.image.endswith(".jpg") and "boat" not in stored.image
    assert stored.original_name == "boat.jpg" and (stored.width, stored.height) == (40, 30)
    assert stored.sha1 == hashlib.sha1(data).hexdigest()
    with pytest.raises(UnsupportedPhoto):
        store_photo(b"not a photo", "x.jpg", tmp_path / "uploads", LIMITS)
    assert list((tmp_path / "uploads").iterdir()) == [stored.path]  # nothing written for the refused one


def test_without_exif_drops_metadata_and_keeps_format_and_jpeg_tables(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    for kind in ("JPEG", "PNG"):
        path = tmp_path / f"photo.{kind.lower()}"
        path.write_bytes(encoded(kind, exif=exif.tobytes()))
        assert b"SecretCam" in path.read_bytes()
        stripped = without_exif(path)
        assert b"SecretCam" not in stripped
        with Image.open(io.BytesIO(stripped)) as copy, Image.open(path) as original:
            assert copy.format == kind and copy.size == original.size
            if kind == "JPEG":
                assert copy.quantization == original.quantization  # re-saved without a new quantisation
