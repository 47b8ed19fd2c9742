"""A one-fluke box detector: a pretrained backbone and a fully convolutional box head.

Every cell of the backbone's feature map votes for the fluke's centre (near the cell) and size, with a weight
(softmax over cells); the box is the weighted mean of the votes (a soft-argmax of the centre, so cells far from
the fluke do not stretch the box). One box per photo, any input
size, trained end to end with GIoU + L1 on coordinates normalised to the letterboxed input.

A detector folder holds ``detector.safetensors`` and ``detector.yaml`` (the `DetectorConfig`), plus
``metrics.json`` from training, and ``detector.onnx`` once exported (``flukeid export MODEL --onnx``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from flukeid.config import check_choice, load_config, save_config
from flukeid.errors import FlukeidError
from flukeid.folders import replacing_folder
from flukeid.models.artifact import (
    DETECTOR_CONFIG as CONFIG,
)
from flukeid.models.artifact import (
    DETECTOR_WEIGHTS as WEIGHTS,
)
from flukeid.models.artifact import (
    MODEL_DETECTOR,
    detector_identity,
    state_file,
)
from flukeid.models.backbones import Backbone, create_backbone
from flukeid.models.onnx import RUNTIMES, OnnxNetwork, Runtime, load_network

METRICS = "metrics.json"
ONNX_FILE = "detector.onnx"


@dataclass(frozen=True)
class DetectorConfig:
    """The architecture: enough to rebuild the network before loading its weights."""

    backbone: str = "mobilenetv2"
    pretrained: bool = True
    image_size: tuple[int, int] = (160, 320)  # (height, width) of the letterboxed input
    hidden: int = 128


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


@dataclass
class Detector:
    """A loaded detector folder."""

    path: Path
    model: BoxDetector
    config: DetectorConfig
    detector_id: str
    metrics: dict[str, Any]
    onnx: OnnxNetwork | None = None  # set: boxes are found with onnxruntime on CPU (detector.onnx), not ``model``


def build_detector(cfg: DetectorConfig, pretrained: bool | None = None) -> BoxDetector:
    return BoxDetector(create_backbone(cfg.backbone, cfg.pretrained if pretrained is None else pretrained), cfg.hidden)


def save_detector(path: Path, model: BoxDetector, cfg: DetectorConfig, metrics: dict[str, Any]) -> Path:
    """Write the detector folder atomically (a temporary sibling renamed into place)."""
    with replacing_folder(path) as tmp:
        state_file(model.state_dict(), tmp / WEIGHTS)
        save_config(cfg, tmp / CONFIG)
        (tmp / METRICS).write_text(json.dumps(metrics, indent=2))
    return path


def load_detector(path: Path, device: str | torch.device = "cpu", runtime: Runtime = "torch") -> Detector:
    """Load a folder written by ``save_detector`` (no network: the weights are in the folder). With
    ``runtime="onnx"`` it finds boxes with its ONNX export (refused when missing or of other weights)."""
    check_choice("runtime", runtime, RUNTIMES)
    path = Path(path)
    weights = path / WEIGHTS
    if not weights.is_file():
        raise FlukeidError(f"{path}: not a flukeid detector (no {WEIGHTS}); train one with `flukeid detect train`")
    cfg = load_config(DetectorConfig, path / CONFIG)
    model = build_detector(cfg, pretrained=False)
    model.load_state_dict(load_file(weights))
    model.to(device).eval()
    metrics = json.loads((path / METRICS).read_text()) if (path / METRICS).is_file() else {}
    detector_id = detector_identity(path)
    onnx = None
    if runtime == "onnx":
        hint = "export it with the model it belongs to: `flukeid export MODEL --onnx`"
        onnx = load_network(path / ONNX_FILE, detector_id, hint)
    return Detector(path, model, cfg, detector_id, metrics, onnx)


def attach_detector(model_dir: Path, detector_dir: Path) -> None:
    """Keep a copy of a detector inside an identity model's folder, so every later use crops the same way
    (copied whole or not at all). The model's id changes with it: galleries built before must be rebuilt."""
    with replacing_folder(Path(model_dir) / MODEL_DETECTOR) as tmp:
        shutil.copytree(detector_dir, tmp, dirs_exist_ok=True)


def model_detector(model_dir: Path | None, crop: Path | None = None, runtime: Runtime = "torch") -> Detector | None:
    """The detector to crop with: ``crop`` if given, else the one an identity model carries, else None (loaded to
    run with ``runtime``)."""
    if crop is not None:
        return load_detector(crop, runtime=runtime)
    if model_dir is not None and (Path(model_dir) / MODEL_DETECTOR / WEIGHTS).is_file():
        return load_detector(Path(model_dir) / MODEL_DETECTOR, runtime=runtime)
    return None
