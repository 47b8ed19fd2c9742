"""The box detector's network (torch): a backbone and a fully convolutional head whose cells vote for the box
(see `flukeid.detect.model`)."""

from __future__ import annotations

import torch
from torch import nn

from flukeid.models.backbones import Backbone


class BoxDetector(nn.Module):
    """``forward(x (B,3,H,W)) -> (B, 4)`` boxes x0, y0, x1, y1 in [0, 1] of the input's width and height."""

    def __init__(self, backbone: Backbone, hidden: int = 128):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Conv2d(backbone.spec.num_features + 2, hidden, 3, padding=1),  # + the cells' x, y (CoordConv)
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 5, 1),  # per cell: weight logit, centre offset x, y, box width, height
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        rows, cols = features.shape[-2:]
        ys = (torch.arange(rows, device=x.device, dtype=torch.float32) + 0.5) / rows
        xs = (torch.arange(cols, device=x.device, dtype=torch.float32) + 0.5) / cols
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        where = torch.stack([cx, cy]).to(features.dtype).expand(x.shape[0], -1, -1, -1)
        out = self.head(torch.cat([features, where], dim=1)).float()
        weights = torch.softmax(out[:, 0].flatten(1), dim=1)  # (B, cells): where the fluke is
        centre_x = cx + torch.tanh(out[:, 1]) / cols  # each cell's guess of the centre, within a cell of itself
        centre_y = cy + torch.tanh(out[:, 2]) / rows
        width, height = torch.sigmoid(out[:, 3]), torch.sigmoid(out[:, 4])  # and of the size

        def pool(value: torch.Tensor) -> torch.Tensor:
            return (value.flatten(1) * weights).sum(1)

        x, y, half_w, half_h = pool(centre_x), pool(centre_y), pool(width) / 2, pool(height) / 2
        return torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], dim=1).clamp(0, 1)
