"""Rendering of one synthetic fluke photo: outline, pigment, pose, sea and sky, camera effects.

The individual's shape is in fluke-local coordinates (see flukeid.synth.individual); a random pose maps
them to pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from flukeid.synth.individual import (
    Individual,
    fluke_outline,
    margin_outline,
    patch_outline,
    stock_outline,
    trailing_edge,
)

SUPERSAMPLE = 3
"""Linear supersampling factor used to draw the whale (anti-aliasing)."""

_SEA = np.array([[0.04, 0.13, 0.28], [0.06, 0.22, 0.26], [0.17, 0.24, 0.22], [0.27, 0.3, 0.33]])
_TEXTS = (
    "{y}-{m:02d}-{d:02d}",
    "{d:02d}/{m:02d}/{y} {hh:02d}:{mm:02d}",
    "IMG_{n:04d}",
    "(c) Whale Watch {y}",
    "(c) Research Cruise",
    "DSC{n:05d}",
)


@dataclass(frozen=True, eq=False)
class RenderedPhoto:
    """One rendered photo and where the whale is in it.

    box: (x0, y0, x1, y1) tight box of the whale's visible pixels (fluke and tail stock above the
    water), PIL crop convention (x1, y1 exclusive), clipped to the frame.
    mask: (H, W) bool array, True on the whale's visible pixels.
    """

    image: Image.Image
    box: tuple[int, int, int, int]
    mask: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class _Pose:
    """Where the fluke lands in the frame: local -> pixel homography and the waterline point."""

    matrix: np.ndarray
    scale: float
    stock: float
    waterline: tuple[float, float]


# ----------------------------------------------------------------------------- projection


def _project(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to (N, 2) points."""
    h = np.concatenate([pts, np.ones((len(pts), 1))], axis=1) @ matrix.T
    return h[:, :2] / h[:, 2:3]


# ----------------------------------------------------------------------------- pose


def _place(ind: Individual, rng: np.random.Generator, width: int, height: int) -> _Pose:
    """Random pose: rotation, yaw/pitch foreshortening, shear, perspective, scale, position."""
    stock = rng.uniform(0.02, 0.5)
    theta = math.radians(rng.uniform(-15.0, 15.0))
    shape = np.array(
        [
            [math.cos(math.radians(rng.uniform(-40, 40))), rng.uniform(-0.15, 0.15), 0.0],
            [0.0, -rng.uniform(0.75, 1.1), 0.0],
            [0.0, 0.0, 1.0],
        ]
    )
    persp = np.array([[1.0, 0, 0], [0, 1.0, 0], [rng.uniform(-0.12, 0.12), rng.uniform(-0.1, 0.1), 1]])
    c, s = math.cos(theta), math.sin(theta)
    base = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ shape @ persp
    fluke = _project(base, fluke_outline(ind))
    every = np.concatenate([fluke, _project(base, stock_outline(ind, stock))])
    lo, hi = every.min(axis=0), every.max(axis=0)
    scale = rng.uniform(0.25, 0.9) * width / np.ptp(fluke[:, 0])
    scale = min(scale, 0.92 * height / (hi[1] - lo[1]), 0.95 * width / (hi[0] - lo[0]))
    lo, hi = lo * scale, hi * scale
    slack = 0.2 * (hi - lo) if rng.random() < 0.08 else np.zeros(2)
    tx = rng.uniform(-lo[0] - slack[0], width - hi[0] + slack[0])
    ty = rng.uniform(-lo[1] - slack[1], height - hi[1] + slack[1])
    matrix = np.array([[1.0, 0, tx], [0, 1.0, ty], [0, 0, 1]]) @ np.diag([scale, scale, 1.0]) @ base
    water = _project(matrix, np.array([[0.0, -stock]]))[0]
    return _Pose(matrix=matrix, scale=float(scale), stock=stock, waterline=(float(water[0]), float(water[1])))


# ----------------------------------------------------------------------------- backdrop


def _noise(rng: np.random.Generator, height: int, width: int, cell: float, aspect: float = 1.0) -> np.ndarray:
    """Smooth noise (height, width), roughly unit variance; features about cell px (x aspect wide)."""
    gh, gw = max(2, int(height / cell) + 3), max(2, int(width / (cell * aspect)) + 3)
    grid = rng.standard_normal((gh, gw), np.float32)
    big = cv2.resize(grid, (int(gw * cell * aspect), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    return big[:height, :width] * 1.3


def _tile_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise (size, size) that wraps around seamlessly (for cv2.BORDER_WRAP lookups)."""
    grid = np.tile(rng.standard_normal((cells, cells), np.float32), (3, 3))
    big = cv2.resize(grid, (3 * size, 3 * size), interpolation=cv2.INTER_CUBIC)
    return big[size : 2 * size, size : 2 * size] * 1.3


def _sky(rng: np.random.Generator, height: int, width: int, horizon: float) -> np.ndarray:
    """Sky (height, width, 3): vertical gradient towards a pale horizon, with soft clouds."""
    overcast = rng.uniform(0.0, 1.0)
    top = (1 - overcast) * np.array([0.35, 0.52, 0.78]) + overcast * np.array([0.68, 0.70, 0.73])
    low = np.minimum(top + rng.uniform(0.1, 0.3), 0.97)
    ys = np.arange(height, dtype=np.float32)[:, None, None]
    t = np.clip((ys - (horizon - height)) / max(height, 1.0), 0.0, 1.0) ** 1.5
    sky = (1 - t) * top + t * low
    clouds = np.clip(_noise(rng, height, width, height / 4, 2.5) * 0.5 + rng.uniform(-0.4, 0.2), 0, 1)
    return (sky + clouds[..., None] * rng.uniform(0.0, 0.35)).astype(np.float32)


def _sea(rng: np.random.Generator, height: int, width: int, horizon: float, sky: np.ndarray) -> np.ndarray:
    """Sea (height, width, 3): waves that shrink towards the horizon, sky reflection, whitecaps."""
    base = (rng.dirichlet(np.ones(len(_SEA))) @ _SEA * rng.uniform(0.7, 1.3)).astype(np.float32)
    d_bottom = max(height - horizon, 4.0)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = np.maximum(ys - horizon, 1.0)
    tex = _tile_noise(rng, 160, 27)
    ripple = _tile_noise(rng, 160, 53)
    kx, ky = rng.uniform(25, 60) * d_bottom / width, rng.uniform(60, 160) * d_bottom**2 / height
    u = (xs - width / 2) * kx / depth + rng.uniform(0, 160)
    v = ky / depth + rng.uniform(0, 160)
    waves = cv2.remap(tex, u, v % 160, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    fine = cv2.remap(ripple, 2.3 * u, (2.3 * v) % 160, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    near = np.clip(depth / d_bottom, 0.0, 1.0) ** 0.6
    rough = rng.uniform(0.15, 0.45)
    shade = 1.0 + rough * near * (0.8 * waves + 0.4 * fine)
    far = np.exp(-depth / (0.25 * d_bottom))[..., None]
    haze = sky[np.clip(int(horizon) - 1, 0, height - 1)]
    sea = base * shade[..., None] * (1 - 0.6 * far) + 0.6 * far * haze
    caps = np.clip((fine + 0.3 * waves - rng.uniform(1.8, 3.5)) * 2.0, 0.0, 1.0) * near
    return (sea + caps[..., None] * 0.7).astype(np.float32)


def _coast(rng: np.random.Generator, img: np.ndarray, horizon: float) -> None:
    """Paint a hazy distant coastline on the horizon, in place."""
    height, width = img.shape[:2]
    peak = rng.uniform(0.03, 0.15) * height
    prof = horizon - peak * np.clip(0.6 + 0.6 * _noise(rng, 1, width, width / 5.0)[0], 0.05, 1.5)
    ys = np.arange(height, dtype=np.float32)[:, None]
    land = ((ys >= prof[None, :]) & (ys < horizon)).astype(np.float32)
    colour = rng.uniform(0.25, 0.5) * rng.uniform([0.85, 0.95, 0.95], [1.0, 1.1, 1.2])
    img[:] = img * (1 - land[..., None]) + colour * land[..., None]


def _backdrop(rng: np.random.Generator, width: int, height: int, horizon: float) -> np.ndarray:
    """Sky above the horizon row, sea below: (height, width, 3) float32 in [0, 1]."""
    sky = _sky(rng, height, width, horizon)
    sea = _sea(rng, height, width, horizon, sky)
    ys = np.arange(height, dtype=np.float32)[:, None, None]
    blend = np.clip(ys - horizon + 0.5, 0.0, 1.0)
    img = sky * (1 - blend) + sea * blend
    if horizon > 3 and rng.random() < 0.3:
        _coast(rng, img, horizon)
    return img


# ----------------------------------------------------------------------------- whale


def _whale_layers(ind: Individual, pose: _Pose, region: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Coverage and pigment of the whale inside region (x0, y0, x1, y1): two (h, w) float32 in [0, 1]."""
    x0, y0, x1, y1 = region
    ss, shift = SUPERSAMPLE, np.array([x0, y0], dtype=float)
    size = ((x1 - x0) * ss, (y1 - y0) * ss)

    def pixels(pts: np.ndarray) -> list[tuple[float, float]]:
        return [tuple(p) for p in ((_project(pose.matrix, pts) - shift) * ss).tolist()]

    cover, pigment = Image.new("L", size, 0), Image.new("L", size, 0)
    draw = ImageDraw.Draw(cover)
    draw.polygon(pixels(fluke_outline(ind)), fill=255)
    draw.polygon(pixels(stock_outline(ind, pose.stock)), fill=255)
    paint, unit = ImageDraw.Draw(pigment), pose.scale * ss
    for p in ind.patches:
        paint.polygon(pixels(patch_outline(p)), fill=round(255 * p.shade))
    for scar in ind.scars:
        width = max(1, round(scar.width * unit))
        paint.line(pixels(np.asarray(scar.points)), fill=235, width=width, joint="curve")
    paint.polygon(pixels(margin_outline(ind)), fill=0)
    alpha = np.asarray(cover.reduce(ss), dtype=np.float32) / 255.0
    pig = np.asarray(pigment.reduce(ss), dtype=np.float32) / 255.0
    return alpha, cv2.GaussianBlur(pig, (0, 0), 0.6)


def _whale_rgb(rng: np.random.Generator, pigment: np.ndarray) -> np.ndarray:
    """Skin colour (h, w, 3) from pigment (h, w): dark skin, light patches, texture and shading."""
    h, w = pigment.shape
    dark = rng.uniform(0.04, 0.16) * rng.uniform([0.9, 0.95, 1.0], [1.0, 1.05, 1.15])
    light = rng.uniform(0.7, 0.92) * rng.uniform([0.95, 0.97, 0.97], [1.0, 1.0, 1.03])
    mottle = 1.0 + 0.08 * _noise(rng, h, w, max(2.0, w / 25)) + 0.03 * rng.standard_normal((h, w), np.float32)
    ang = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    light_dir = (xs / max(w, 1) - 0.5) * math.cos(ang) + (ys / max(h, 1) - 0.5) * math.sin(ang)
    shade = mottle * (1.0 + rng.uniform(0.0, 0.4) * light_dir)
    rgb = dark + (light - dark) * pigment[..., None]
    return (rgb * shade[..., None]).astype(np.float32)


def _draw_whale(ind: Individual, rng: np.random.Generator, pose: _Pose, img: np.ndarray) -> np.ndarray:
    """Composite the whale onto img in place; return its coverage over the frame, (H, W) float32."""
    height, width = img.shape[:2]
    pts = _project(pose.matrix, np.concatenate([fluke_outline(ind), stock_outline(ind, pose.stock)]))
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    full = np.zeros((height, width), np.float32)
    if x1 <= x0 or y1 <= y0:
        return full
    alpha, pigment = _whale_layers(ind, pose, (x0, y0, x1, y1))
    rgb = _whale_rgb(rng, pigment)
    patch = img[y0:y1, x0:x1]
    img[y0:y1, x0:x1] = patch * (1 - alpha[..., None]) + rgb * alpha[..., None]
    full[y0:y1, x0:x1] = alpha
    return full


# ----------------------------------------------------------------------------- water and extras


def _foam(rng: np.random.Generator, pose: _Pose, width: int, height: int) -> np.ndarray:
    """Foam opacity (H, W) around the waterline where the tail stock enters the sea."""
    cx, cy = pose.waterline
    rx = pose.scale * rng.uniform(0.2, 0.7)
    ry = rx * rng.uniform(0.1, 0.25)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
    lumps = _noise(rng, height, width, max(1.5, ry / 4))
    lumps += 0.5 * _noise(rng, height, width, max(1.5, ry / 1.5))
    return np.clip((1.0 - r2) * 1.2 + 0.7 * lumps - 0.3, 0.0, 1.0) * rng.uniform(0.5, 0.95)


def _streams(rng: np.random.Generator, ind: Individual, pose: _Pose, width: int, height: int) -> np.ndarray:
    """Opacity (H, W) of thin water streams falling from the trailing edge and tips."""
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    xs = rng.uniform(-1.0, 1.0, rng.integers(1, 7))
    tops = _project(pose.matrix, np.stack([xs, trailing_edge(ind, xs)], axis=1))
    for x, y in tops.tolist():
        drift = rng.uniform(-0.05, 0.05) * pose.scale
        fill = int(rng.uniform(40, 100))
        draw.line([(x, y), (x + drift, pose.waterline[1])], fill=fill, width=int(rng.integers(1, 3)))
    drips = np.clip(_noise(rng, height, width, max(2.0, height / 30), 0.2) + 0.6, 0.0, 1.0)
    return cv2.GaussianBlur(np.asarray(layer, np.float32) / 255.0 * drips, (0, 0), 0.7)


def _boat(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int], horizon: float) -> None:
    """Paint a small distant boat somewhere that does not overlap box, in place (may skip)."""
    height, width = img.shape[:2]
    bw = rng.uniform(0.05, 0.14) * width
    bh = bw * rng.uniform(0.2, 0.35)
    for _ in range(10):
        x = rng.uniform(0.0, width - bw)
        y = horizon if horizon > 2 * bh else rng.uniform(max(horizon, 0.0) + 2 * bh, height)
        if x + bw < box[0] - 4 or x > box[2] + 4 or y < box[1] - 4 or y - 2 * bh > box[3] + 4:
            break
    else:
        return
    hull = [(x, y - bh), (x + bw, y - bh), (x + 0.85 * bw, y), (x + 0.1 * bw, y)]
    cabin = [(x + a * bw, y - b * bh) for a, b in ((0.25, 1.9), (0.6, 1.9), (0.6, 1.0), (0.25, 1.0))]
    for poly, colour in ((hull, rng.uniform(0.03, 0.2)), (cabin, rng.uniform(0.5, 0.9))):
        layer = Image.new("L", (2 * width, 2 * height), 0)
        ImageDraw.Draw(layer).polygon([(2 * a, 2 * b) for a, b in poly], fill=255)
        a = np.asarray(layer.reduce(2), np.float32)[..., None] / 255.0
        img[:] = img * (1 - a) + colour * a


def _camera(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Exposure, contrast, gamma, colour cast, vignette, blur and sensor noise; returns a new array."""
    height, width = img.shape[:2]
    mean = img.mean()
    out = (img - mean) * rng.uniform(0.65, 1.35) + mean
    gain = (rng.uniform(0.6, 1.35) * rng.uniform(0.92, 1.08, 3)).astype(np.float32)
    out = np.power(np.clip(out * gain, 0.0, 1.0), np.float32(rng.uniform(0.7, 1.45)))
    if rng.random() < 0.3:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        r2 = ((xs - width / 2) / width) ** 2 + ((ys - height / 2) / height) ** 2
        out = out * (1.0 - rng.uniform(0.3, 0.9) * r2)[..., None]
    if rng.random() < 0.35:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.2) * width / 256)
    return out + np.float32(rng.uniform(0.003, 0.03)) * rng.standard_normal(out.shape, np.float32)


def _stamp_text(rng: np.random.Generator, img: np.ndarray) -> None:
    """Overlay a date stamp or watermark in a corner, in place."""
    height, width = img.shape[:2]
    font = ImageFont.load_default(size=max(7, round(height * rng.uniform(0.045, 0.08))))
    fmt = _TEXTS[int(rng.integers(len(_TEXTS)))]
    when = rng.integers([2005, 1, 1, 0, 0, 0], [2019, 13, 29, 24, 60, 10000])
    text = fmt.format(y=when[0], m=when[1], d=when[2], hh=when[3], mm=when[4], n=when[5])
    layer = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(layer)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = round(0.03 * width)
    x = pad if rng.random() < 0.5 else width - pad - (right - left)
    y = pad if rng.random() < 0.3 else height - pad - (bottom - top)
    draw.text((x - left, y - top), text, font=font, fill=255)
    colours = np.array([[1.0, 1.0, 1.0], [1.0, 0.62, 0.1], [1.0, 0.95, 0.3], [0.05, 0.05, 0.05]])
    a = np.asarray(layer, np.float32)[..., None] / 255.0 * rng.uniform(0.5, 1.0)
    img[:] = img * (1 - a) + colours[int(rng.integers(len(colours)))] * a


def _tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the True pixels of mask, x1/y1 exclusive; (0, 0, 1, 1) if none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return (0, 0, 1, 1)
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def render_photo(
    ind: Individual,
    rng: np.random.Generator,
    size: tuple[int, int],
    *,
    greyscale: float = 0.2,
    text: float = 0.15,
) -> RenderedPhoto:
    """Render one photo of ind's raised fluke, (width, height) = size, pose and scene drawn from rng.

    greyscale / text: probabilities that the photo is single-channel ("L") / has a date or watermark.
    """
    width, height = size
    if width < 16 or height < 16:
        raise ValueError(f"render_photo: size must be at least 16x16 pixels, got {size}")
    pose = _place(ind, rng, width, height)
    top = min(0.6 * height, pose.waterline[1] - 0.06 * height)
    horizon = rng.uniform(min(-0.3 * height, top - 1.0), top)
    img = _backdrop(rng, width, height, horizon)
    cover = _draw_whale(ind, rng, pose, img)
    foam = _foam(rng, pose, width, height)
    if rng.random() < 0.5:
        foam = np.maximum(foam, _streams(rng, ind, pose, width, height))
    img = img * (1 - foam[..., None]) + rng.uniform(0.8, 1.0) * foam[..., None]
    visible = cover * (1 - foam) > 0.5
    if not visible.any():
        visible = cover > 0.5
    box = _tight_box(visible)
    if rng.random() < 0.1:
        _boat(rng, img, box, horizon)
    img = _camera(rng, img)
    if rng.random() < text:
        _stamp_text(rng, img)
    image = Image.fromarray((np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))
    if rng.random() < greyscale:
        image = image.convert("L")
    return RenderedPhoto(image=image, box=box, mask=visible)
