"""RootSIFT keypoints (OpenCV), matched by Lowe's ratio test with one match per target keypoint."""

from __future__ import annotations

import cv2
import numpy as np

from flukeid.matchers.base import Correspondences, LocalFeatures, LocalMatcher

RATIO = 0.8


class SiftMatcher(LocalMatcher):
    """RootSIFT (Arandjelovic & Zisserman 2012): SIFT descriptors L1-normalised and square-rooted, so that
    Euclidean distance compares them as the Hellinger kernel does."""

    dim = 128

    def extract(self, pixels: np.ndarray) -> LocalFeatures:
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        keypoints, descriptors = cv2.SIFT_create(nfeatures=self.settings.keypoints).detectAndCompute(grey, None)
        size = (pixels.shape[1], pixels.shape[0])
        if descriptors is None:
            return LocalFeatures(np.zeros((0, 2), np.float32), np.zeros((0, self.dim), np.float32), size)
        root = np.sqrt(descriptors / (descriptors.sum(axis=1, keepdims=True) + 1e-7)).astype(np.float32)
        return LocalFeatures(np.float32([k.pt for k in keypoints]), root, size)

    def correspond(self, a: LocalFeatures, b: LocalFeatures) -> Correspondences:
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(a.descriptors, b.descriptors, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < RATIO * m[1].distance]
        unique = list({m.trainIdx: m for m in sorted(good, key=lambda m: -m.distance)}.values())
        if not unique:
            return Correspondences.none()
        source = a.keypoints[[m.queryIdx for m in unique]]
        target = b.keypoints[[m.trainIdx for m in unique]]
        return Correspondences(source, target, np.ones(len(unique), np.float32))
