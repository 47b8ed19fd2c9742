"""Safe image reading: pixel limit before decoding, EXIF rotation, every mode converted to RGB."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from flukeid.errors import ImageError

DEFAULT_MAX_PIXELS = 50_000_000
"""Images above this many pixels are refused before decoding (a 7000x7000 photo passes)."""

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    """What validation learns from one image file without keeping its pixels."""

    width: int
    height: int
    mode: str
    exif_rotated: bool
    sha1: str
    dhash: int


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open lazily and refuse oversize images from the header alone."""
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    try:
        img = Image.open(path)
    except Image.DecompressionBombError as exc:  # Pillow's own limit, checked before ours from the same header
        raise ImageError(f"{path}: refused, its header claims more pixels than Pillow decodes ({exc})") from exc
    except (OSError, ValueError) as exc:
        if "truncated" in str(exc).lower():
            raise ImageError(f"{path}: image data is damaged or truncated ({exc})") from exc
        raise ImageError(f"{path}: not a readable image ({exc})") from exc
    pixels = img.width * img.height
    if pixels > max_pixels:
        img.close()
        raise ImageError(
            f"{path}: refused, {img.width}x{img.height} = {pixels:,} pixels is over the limit of "
            f"{max_pixels:,} (raise --max-pixels to accept it)"
        )
    return img


def _decode(img: Image.Image, path: Path) -> Image.Image:
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{path}: image data is damaged or truncated ({exc})") from exc
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Apply EXIF orientation and convert greyscale, palette, RGBA (on white) or CMYK to RGB."""
    img = ImageOps.exif_transpose(img) or img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "I;16" or img.mode == "I":
        arr = np.asarray(img, dtype=np.float32)
        scale = 255.0 / max(float(arr.max()), 1.0)
        return Image.fromarray((arr * scale).astype(np.uint8)).convert("RGB")
    return img.convert("RGB") if img.mode != "RGB" else img


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read an image as upright RGB; raise ImageError naming the file when it cannot be used."""
    with _open_checked(path, max_pixels) as img:
        return to_rgb(_decode(img, path)).copy()


def dhash(img: Image.Image, size: int = 8) -> int:
    """64-bit difference hash: near-identical photos (resized, re-encoded) differ in few bits."""
    grey = img.convert("L").resize((size + 1, size), Image.Resampling.BILINEAR)
    arr = np.asarray(grey, dtype=np.int16)
    bits = (arr[:, 1:] > arr[:, :-1]).flatten()
    return int("".join("1" if b else "0" for b in bits), 2)


def inspect_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Decode fully (to catch truncation) and describe one image file."""
    with _open_checked(path, max_pixels) as img:
        mode = img.mode
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        rgb = to_rgb(_decode(img, path))
    digest = hashlib.sha1(path.read_bytes()).hexdigest()
    return ImageInfo(
        width=rgb.width,
        height=rgb.height,
        mode=mode,
        exif_rotated=orientation not in (0, 1),
        sha1=digest,
        dhash=dhash(rgb),
    )
