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
from typing import TYPE_CHECKING, Any

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
from flukeid.models.onnx import RUNTIMES, OnnxNetwork, Runtime, load_network, torch_installed

if TYPE_CHECKING:
    import torch

    from flukeid.detect.network import BoxDetector

METRICS = "metrics.json"
ONNX_FILE = "detector.onnx"


@dataclass(frozen=True)
class DetectorConfig:
    """The architecture: enough to rebuild the network before loading its weights."""

    backbone: str = "mobilenetv2"
    pretrained: bool = True
    image_size: tuple[int, int] = (160, 320)  # (height, width) of the letterboxed input
    hidden: int = 128


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
    from flukeid.detect.network import BoxDetector
    from flukeid.models.backbones import create_backbone

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
    if not torch_installed():
        raise FlukeidError(f"torch is not installed: cropping with the detector {path} still needs it")
    from safetensors.torch import load_file

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
