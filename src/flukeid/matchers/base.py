"""What every local matcher shares: its settings, the features it stores per photo, and geometric verification.

A matcher turns a photo into keypoints with descriptors (``extract``), pairs two photos' keypoints
(``correspond``), and scores a pair by the correspondences a MAGSAC++ homography verifies (``score``): a fluke
or a flank is close to planar, and only geometrically consistent matches survive background clutter.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from flukeid.data.images import read_image
from flukeid.errors import ImageError

MIN_CORRESPONDENCES = 8
"""Fewer correspondences than this never make a reliable homography: the pair scores 0."""

FORMAT = 1
"""Version of the stored features: part of every matcher key, so a change of format is never read as the old."""


@dataclass(frozen=True)
class MatcherSettings:
    """One local matcher as a model runs it: ``name`` (sift, aliked, disk, xfeat), photos matched at most
    ``max_side`` pixels on their longest side, at most ``keypoints`` keypoints per photo."""

    name: Literal["sift", "aliked", "disk", "xfeat"]
    max_side: int = 512
    keypoints: int = 1024

    @property
    def key(self) -> str:
        """Names the features these settings extract (stored features are looked up by it)."""
        return f"{self.name}-{self.max_side}px-{self.keypoints}kp-v{FORMAT}"


@dataclass(frozen=True)
class LocalFeatures:
    """Keypoints (N, 2) float32 in pixels of the photo as matched, descriptors (N, D) float32, and that photo's
    (width, height)."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.keypoints)

    @classmethod
    def empty(cls, dim: int) -> LocalFeatures:
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, dim), np.float32), (0, 0))

    def to_bytes(self) -> bytes:
        """Compressed npz; descriptors kept as float16 (half the bytes, no measurable loss for matching)."""
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            keypoints=self.keypoints.astype(np.float32),
            descriptors=self.descriptors.astype(np.float16),
            size=np.array(self.size, np.int32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> LocalFeatures:
        with np.load(io.BytesIO(data)) as arrays:
            size = arrays["size"].tolist()
            return cls(arrays["keypoints"], arrays["descriptors"].astype(np.float32), (int(size[0]), int(size[1])))


@dataclass(frozen=True)
class Correspondences:
    """Matched keypoint positions of two photos, (M, 2) each, with the matcher's confidence (M,) in [0, 1]."""

    source: np.ndarray
    target: np.ndarray
    confidence: np.ndarray

    @classmethod
    def none(cls) -> Correspondences:
        return cls(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), np.zeros(0, np.float32))


def verified_inliers(pairs: Correspondences, threshold: float) -> int:
    """Correspondences consistent with one MAGSAC++ homography (``threshold``: reprojection error in pixels)."""
    if len(pairs.source) < MIN_CORRESPONDENCES:
        return 0
    try:
        _, mask = cv2.findHomography(
            pairs.source.astype(np.float32),
            pairs.target.astype(np.float32),
            cv2.USAC_MAGSAC,
            threshold,
            None,
            2000,
            0.999,
        )
    except cv2.error:  # MAGSAC++ asserts on some degenerate point sets (no model): nothing is verified
        return 0
    return int(mask.sum()) if mask is not None else 0


def photo_pixels(path: Path, max_side: int) -> np.ndarray | None:
    """The photo as RGB uint8 (H, W, 3), shrunk to at most ``max_side`` on its longest side; None if unreadable."""
    try:
        pixels = np.asarray(read_image(Path(path)))
    except ImageError:
        return None
    scale = max_side / max(pixels.shape[:2])
    if scale < 1:
        pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return np.array(pixels)  # a writable copy: torch refuses read-only arrays


class LocalMatcher:
    """Base of the matchers: subclasses give ``extract`` and ``correspond`` (and ``dim``, their descriptor size)."""

    dim: int = 128
    threshold: float = 8.0  # MAGSAC++ reprojection threshold in pixels of photos at ``max_side``

    def __init__(self, settings: MatcherSettings) -> None:
        self.settings = settings

    @property
    def key(self) -> str:
        return self.settings.key

    def extract(self, pixels: np.ndarray) -> LocalFeatures:
        """Keypoints and descriptors of an RGB uint8 photo (H, W, 3) already at its matching size."""
        raise NotImplementedError

    def correspond(self, a: LocalFeatures, b: LocalFeatures) -> Correspondences:
        """Tentative matches between two photos' features, each with a confidence."""
        raise NotImplementedError

    def features(self, path: Path) -> LocalFeatures:
        """The features of the photo at ``path`` (none when it cannot be read: it then matches nothing)."""
        pixels = photo_pixels(path, self.settings.max_side)
        return self.extract(pixels) if pixels is not None else LocalFeatures.empty(self.dim)

    def score(self, a: LocalFeatures, b: LocalFeatures) -> int:
        """Verified inliers between two photos: the raw score the model calibrates to P(same individual)."""
        if len(a) < 2 or len(b) < 2:
            return 0
        return verified_inliers(self.correspond(a, b), self.threshold)
