"""A model folder and the files it owns, by what they hold: one place that knows their names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelFolder:
    """The files of a model directory (``flukeid train``, ``frozen``, ``distill``); only ``weights`` and
    ``architecture`` are always there, the others once the step that writes them has run."""

    path: Path

    @property
    def weights(self) -> Path:
        """model.safetensors: the embedding network."""
        return self.path / "model.safetensors"

    @property
    def head(self) -> Path:
        """head.safetensors: the loss's parameters (e.g. ArcFace class centres), when it has any."""
        return self.path / "head.safetensors"

    @property
    def architecture(self) -> Path:
        """model.yaml: enough to rebuild the network before loading its weights."""
        return self.path / "model.yaml"

    @property
    def onnx(self) -> Path:
        """model.onnx: the embedding network exported for onnxruntime (`flukeid export MODEL --onnx`)."""
        return self.path / "model.onnx"

    @property
    def labels(self) -> Path:
        """labels.json: class index -> individual, for models with a classifier head."""
        return self.path / "labels.json"

    @property
    def threshold(self) -> Path:
        """threshold.json: the new_whale threshold of the embedding alone and the training's validation scores."""
        return self.path / "threshold.json"

    @property
    def calibration(self) -> Path:
        """calibration.json: probabilities from the embedding's cosine scores alone (models not tuned yet)."""
        return self.path / "calibration.json"

    @property
    def identify(self) -> Path:
        """identify.yaml: the local matchers, shortlist and time budget the model identifies with."""
        return self.path / "identify.yaml"

    @property
    def fusion(self) -> Path:
        """fusion.json: calibration of every matcher, the new_whale threshold of the fused scores, and the
        settings they were fitted with (``flukeid tune``)."""
        return self.path / "fusion.json"

    @property
    def detector(self) -> Path:
        """detector/: the fluke detector a model trained on crops keeps, so every use crops alike."""
        return self.path / "detector"

    @property
    def metrics(self) -> Path:
        """metrics.csv: the training log."""
        return self.path / "metrics.csv"
