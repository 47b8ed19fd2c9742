"""Export a model folder for other runtimes: its embedding network and, when it carries one, its crop detector, as
ONNX files inside the folder (``model.onnx``, ``detector/detector.onnx``), each checked against PyTorch.

It lives with the detector because a model folder's detector is this layer's (`model_detector`); the export of
one network is `flukeid.models.onnx`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from flukeid.detect.model import ONNX_FILE as DETECTOR_ONNX
from flukeid.detect.model import model_detector
from flukeid.models.artifact import INPUTS_KEY, load_model
from flukeid.models.folder import ModelFolder
from flukeid.models.onnx import TOLERANCE, OnnxCheck, export_checked


@dataclass(frozen=True)
class OnnxExport:
    """What `export_onnx` wrote: the embedding network, and the detector (None when the model carries none)."""

    embedding: OnnxCheck
    detector: OnnxCheck | None


def export_onnx(model_dir: Path, tolerance: float = TOLERANCE) -> OnnxExport:
    """Write ``model_dir``'s embedding network as ``model.onnx`` (dynamic batch axis, input (B, 3, H, W) at the
    model's input size, output (B, D) unit vectors) and its detector as ``detector/detector.onnx`` (output (B, 4)
    boxes); each is compared with PyTorch on random batches and refused beyond ``tolerance`` (FlukeidError)."""
    artifact = load_model(Path(model_dir))
    shape = (3, *artifact.image_size)
    embedding = export_checked(
        artifact.model,
        shape,
        ModelFolder(artifact.path).onnx,
        artifact.model_id,
        ("images", "vectors"),
        tolerance,
        metadata={INPUTS_KEY: artifact.inputs.to_json()},  # what `load_onnx_model` needs to run it without torch
    )
    detector = model_detector(artifact.path)
    checked = None
    if detector is not None:
        checked = export_checked(
            detector.model,
            (3, *detector.config.image_size),
            detector.path / DETECTOR_ONNX,
            detector.detector_id,
            ("images", "boxes"),
            tolerance,
        )
    return OnnxExport(embedding, checked)
