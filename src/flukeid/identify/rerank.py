"""Local-feature re-ranking: RootSIFT keypoints matched between a query and its top candidates' photos.

For each query, the K best individuals by embedding score are re-scored: their photos are matched to the query
(ratio test, one match per target keypoint, then a RANSAC homography: a fluke or a flank is
nearly planar), and the best inlier count of each individual is fused with
its embedding score: ``fused = score + weight * min(inliers, cap) / cap``. Runs on CPU threads (OpenCV releases
the GIL). An optional time budget per query (off by default: with it, answers depend on the machine's load)
leaves candidates not reached in time with their embedding score.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.images import read_image
from flukeid.errors import FlukeidError, ImageError
from flukeid.gallery import Gallery
from flukeid.identify.ranking import ScoreTable

MIN_MATCHES = 8  # fewer matches than this are never a reliable homography


@dataclass(frozen=True)
class Keypoints:
    points: np.ndarray  # (N, 2) float32 pixel positions
    descriptors: np.ndarray  # (N, 128) float32 RootSIFT


@dataclass(frozen=True)
class RerankConfig:
    top_k: int = 30  # candidate individuals re-scored per query
    weight: float = 0.5  # fused = score + weight * min(inliers, cap) / cap
    cap: int = 40
    max_side: int = 1024  # photos are matched at most this large (stripes and nicks need the detail)
    features: int = 3000
    ratio: float = 0.8
    budget_s: float | None = None  # per query; candidates not reached keep their embedding score
    workers: int = 2
    cache_photos: int = 1000  # keypoints kept in memory


def extract(path: Path, cfg: RerankConfig) -> Keypoints:
    """RootSIFT keypoints of a photo (empty when it cannot be read or has no texture)."""
    try:
        grey = np.asarray(read_image(path).convert("L"))
    except ImageError:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    scale = cfg.max_side / max(grey.shape)
    if scale < 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    keypoints, descriptors = cv2.SIFT_create(nfeatures=cfg.features).detectAndCompute(grey, None)
    if descriptors is None:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    descriptors = np.sqrt(descriptors / (descriptors.sum(axis=1, keepdims=True) + 1e-7)).astype(np.float32)
    return Keypoints(np.float32([k.pt for k in keypoints]), descriptors)


def count_inliers(a: Keypoints, b: Keypoints, ratio: float = 0.8) -> int:
    """Geometrically consistent matches between two photos (ratio test, unique targets, RANSAC homography)."""
    if len(a.descriptors) < 2 or len(b.descriptors) < 2:
        return 0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    unique = list({m.trainIdx: m for m in sorted(good, key=lambda m: -m.distance)}.values())  # one per target point
    if len(unique) < MIN_MATCHES:
        return 0
    source = a.points[[m.queryIdx for m in unique]]
    target = b.points[[m.trainIdx for m in unique]]
    _, mask = cv2.findHomography(source, target, cv2.RANSAC, 5.0)
    return int(mask.sum()) if mask is not None else 0


class Reranker:
    """Holds keypoints of gallery photos (extracted lazily, kept) and re-scores score tables."""

    def __init__(self, photos_by_individual: Mapping[str, Sequence[Path]], cfg: RerankConfig | None = None):
        self.photos = {k: [Path(p) for p in v] for k, v in photos_by_individual.items()}
        self.cfg = cfg or RerankConfig()
        self._cache: dict[Path, Keypoints] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_labels(cls, labels: pd.DataFrame, cfg: RerankConfig | None = None) -> Reranker:
        """Match against catalogue rows (Image, Id, path); ``new_whale`` photos are never candidates."""
        known = labels[labels["Id"] != NEW_WHALE]
        return cls({ident: [Path(p) for p in group["path"]] for ident, group in known.groupby("Id")}, cfg)

    @classmethod
    def for_gallery(cls, gallery: Gallery, cfg: RerankConfig | None = None) -> Reranker:
        """Match against the photos a gallery was built from (photos without a stored path are skipped)."""
        photos: dict[str, list[Path]] = {}
        for photo in gallery.photos():
            if photo.path:
                photos.setdefault(photo.individual, []).append(Path(photo.path))
        return cls(photos, cfg)

    def keypoints(self, path: Path) -> Keypoints:
        """A photo's keypoints, kept for the next use; the least recently used go beyond ``cfg.cache_photos``
        (3000 RootSIFT descriptors are 1.5 MB a photo)."""
        with self._lock:
            found = self._cache.pop(path, None)
        if found is None:
            found = extract(path, self.cfg)  # outside the lock: OpenCV works in parallel threads
        with self._lock:
            self._cache[path] = found  # dicts keep insertion order: the first key is the least recently used
            while len(self._cache) > self.cfg.cache_photos:
                self._cache.pop(next(iter(self._cache)))
        return found

    def inliers(self, table: ScoreTable, queries: Sequence[Path]) -> np.ndarray:
        """(Q, I) best inlier count of each query against each of its top-k individuals' photos (0 elsewhere)."""
        counts = np.zeros(table.scores.shape, dtype=np.float32)
        k = min(self.cfg.top_k, len(table.individuals))
        with ThreadPoolExecutor(self.cfg.workers) as pool:
            for q, path in enumerate(queries):
                query = self.keypoints(Path(path))
                deadline = time.monotonic() + (self.cfg.budget_s if self.cfg.budget_s is not None else float("inf"))
                top = np.argsort(-table.scores[q])[:k]

                def best(column: int, query: Keypoints = query, deadline: float = deadline) -> int:
                    photos = self.photos.get(table.individuals[column], [])
                    scores = [
                        count_inliers(query, self.keypoints(p), self.cfg.ratio)
                        for p in photos
                        if time.monotonic() < deadline
                    ]
                    return max(scores, default=0)

                for column, value in zip(top, pool.map(best, top)):
                    counts[q, column] = value
        return counts

    def fuse(self, table: ScoreTable, inliers: np.ndarray, weight: float | None = None) -> ScoreTable:
        w = self.cfg.weight if weight is None else weight
        bonus = np.minimum(inliers, self.cfg.cap) / self.cfg.cap
        return ScoreTable(table.individuals, (table.scores + w * bonus).astype(np.float32))


@dataclass(frozen=True)
class FusionFit:
    """Fusion weight and the new_whale threshold on fused scores, stored as ``rerank.json`` in a model folder."""

    weight: float
    threshold: float
    map5: float

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> FusionFit:
        if not path.is_file():
            raise FlukeidError(f"{path} not found: fit the re-ranking first with `flukeid tune MODEL DATA --rerank`")
        return cls(**json.loads(path.read_text()))


def fit_fusion(
    reranker: Reranker,
    table: ScoreTable,
    inliers: np.ndarray,
    truths: Sequence[str],
    weights: Sequence[float] = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0),
) -> FusionFit:
    """Choose the fusion weight and new_whale threshold that maximise MAP@5 on validation queries
    (weight 0, the embedding alone, is among the candidates)."""
    from flukeid.identify.ranking import tune_threshold

    best: FusionFit | None = None
    for weight in weights:
        fit = tune_threshold(reranker.fuse(table, inliers, weight), truths)
        if best is None or fit.map5 > best.map5 + 1e-12:
            best = FusionFit(weight, fit.threshold, fit.map5)
    assert best is not None
    return best
