"""Embedding head: GeM pooling, BN/linear neck, L2-normalised output."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flukeid.models.backbones import Backbone


class GeM(nn.Module):
    """Generalised mean pooling (Radenovic et al.): (B, C, h, w) -> (B, C); p is learnt, p=1 is average."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = F.avg_pool2d(x.clamp(min=self.eps).pow(self.p), kernel_size=x.shape[-2:])
        return pooled.pow(1.0 / self.p).flatten(1)


class EmbeddingModel(nn.Module):
    """Backbone + GeM + (dropout, Linear, BatchNorm) neck: images (B,3,H,W) -> unit vectors (B, dim).

    ``dim=None`` keeps the pooled backbone features (no neck): frozen ImageNet features for retrieval.
    """

    def __init__(self, backbone: Backbone, dim: int | None = 512, dropout: float = 0.0):
        super().__init__()
        self.backbone = backbone
        self.pool = GeM()
        features = backbone.spec.num_features
        self.neck: nn.Module = (
            nn.Sequential(nn.Dropout(dropout), nn.Linear(features, dim, bias=False), nn.BatchNorm1d(dim))
            if dim
            else nn.Identity()
        )
        self.dim = dim or features

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, C) before the neck."""
        return self.pool(self.backbone(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.neck(self.forward_features(images)), dim=1)
