"""A trained model is one directory; every later command loads it with ``load_model``.

Contents: ``model.safetensors`` (embedding model), ``head.safetensors`` (loss parameters such as ArcFace
weights, when the loss has any), ``model.yaml`` (architecture), ``train.yaml`` (full training config),
``labels.json`` (class index -> individual), ``threshold.json`` (tuned new_whale threshold + validation
scores), ``metrics.csv`` (training log), and ``model.onnx`` once exported (``flukeid export MODEL --onnx``).

torch is imported only where a network is built or weights are read: a folder with its ONNX export loads for
inference without it (`load_onnx_model`, and `load_model` when torch is not installed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flukeid.config import check_choice, load_config, save_config
from flukeid.errors import FlukeidError
from flukeid.folders import replacing_folder
from flukeid.models.folder import ModelFolder
from flukeid.models.onnx import RUNTIMES, OnnxNetwork, Runtime, check_exported_from, load_network, torch_installed

if TYPE_CHECKING:
    import torch

    from flukeid.models.head import EmbeddingModel

INPUTS_KEY = "flukeid_inputs"
"""ONNX metadata key of the network's `EmbeddingInputs` (JSON), written at export."""


@dataclass(frozen=True)
class ModelConfig:
    """The architecture: enough to rebuild the network before loading its weights."""

    backbone: str = "efficientnet_lite0"
    pretrained: bool = True
    embedding_dim: int | None = 512  # None: pooled backbone features, no neck
    dropout: float = 0.0
    image_size: tuple[int, int] | None = None  # (height, width); None: the backbone's own


@dataclass(frozen=True)
class EmbeddingInputs:
    """What an embedding network takes and gives: photos letterboxed to ``image_size`` (height, width), normalised
    with ``mean`` and ``std`` -> ``dim``-long vectors. Stored in its ONNX export, so it runs without torch."""

    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    dim: int

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EmbeddingInputs:
        data = json.loads(text)
        return cls(tuple(data["image_size"]), tuple(data["mean"]), tuple(data["std"]), int(data["dim"]))


@dataclass
class Artifact:
    """A loaded model directory: its torch ``model``, or its ONNX export alone (``model`` None) when loaded without
    torch (`load_onnx_model`)."""

    path: Path
    model: EmbeddingModel | None
    config: ModelConfig
    labels: list[str]
    threshold: float | None
    model_id: str  # see `model_identity`: equal ids embed a photo identically
    extra: dict[str, Any] = field(default_factory=dict)
    head_state: dict[str, torch.Tensor] = field(default_factory=dict)
    onnx: OnnxNetwork | None = None  # set: embeddings run with onnxruntime on CPU (model.onnx), not with ``model``
    onnx_inputs: EmbeddingInputs | None = None  # read from model.onnx when there is no torch ``model``

    @property
    def inputs(self) -> EmbeddingInputs:
        """Input size, normalisation and embedding size: of ``model``, or as stored in its ONNX export."""
        if self.model is None:
            assert self.onnx_inputs is not None, "an Artifact without a torch model carries its ONNX inputs"
            return self.onnx_inputs
        spec = self.model.backbone.spec
        return EmbeddingInputs(self.config.image_size or spec.input_size, spec.mean, spec.std, self.model.dim)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.inputs.image_size

    @property
    def dim(self) -> int:
        return self.inputs.dim

    @property
    def runtime(self) -> Runtime:
        return "torch" if self.onnx is None else "onnx"


def build_model(cfg: ModelConfig, pretrained: bool | None = None) -> EmbeddingModel:
    from flukeid.models.backbones import create_backbone
    from flukeid.models.head import EmbeddingModel

    backbone = create_backbone(cfg.backbone, cfg.pretrained if pretrained is None else pretrained)
    return EmbeddingModel(backbone, cfg.embedding_dim, cfg.dropout)


_NOT_IN_EMBEDDINGS = ("pretrained", "dropout")  # model.yaml fields that do not change an embedding once loaded


def _file_sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MODEL_DETECTOR = "detector"  # an identity model trained on crops keeps its detector in this sub-folder
DETECTOR_WEIGHTS, DETECTOR_CONFIG = "detector.safetensors", "detector.yaml"  # a detector folder's files
CROP_MARGIN = 0.1  # share of the box's width/height added on each side of a crop
CROP_MIN_CONFIDENCE = 0.5  # below: the detector is unsure and the full frame is kept


def detector_identity(path: Path) -> str:
    """A short hex id of a detector folder's weights and settings (detector.yaml): what decides its boxes."""
    digest = hashlib.sha1()
    for name in (DETECTOR_WEIGHTS, DETECTOR_CONFIG):
        file = Path(path) / name
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b"") + b"\0")
    return digest.hexdigest()[:16]


def model_detector_identity(model_dir: Path) -> str | None:
    """The id of the crops an identity model's own detector makes (its weights, settings and the default crop
    margin and confidence), or None when the model carries no detector."""
    folder = Path(model_dir) / MODEL_DETECTOR
    if not (folder / DETECTOR_WEIGHTS).is_file():
        return None
    return f"{detector_identity(folder)}-m{CROP_MARGIN:g}-c{CROP_MIN_CONFIDENCE:g}"


def model_identity(path: Path, cfg: ModelConfig, model: EmbeddingModel) -> str:
    """A short hex id of everything that decides a photo's embedding: the weights, the architecture in
    model.yaml (input size resolved), the input normalisation, and the crop detector the model carries (its
    weights and settings). Embeddings of two models compare only when their ids are equal."""
    spec = model.backbone.spec
    inputs = EmbeddingInputs(cfg.image_size or spec.input_size, spec.mean, spec.std, model.dim)
    return inputs_identity(path, cfg, inputs)


def inputs_identity(path: Path, cfg: ModelConfig, inputs: EmbeddingInputs) -> str:
    """`model_identity` from the network's inputs as its ONNX export stores them (no torch network built)."""
    architecture = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_IN_EMBEDDINGS}
    architecture["image_size"] = list(inputs.image_size)
    parts = {
        "weights": _file_sha1(Path(path) / "model.safetensors"),
        "architecture": architecture,
        "normalise": {"mean": [float(v) for v in inputs.mean], "std": [float(v) for v in inputs.std]},
        "detector": model_detector_identity(Path(path)),
    }
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def state_file(module_state: dict[str, torch.Tensor], path: Path) -> None:
    """Save tensors as safetensors (detached, on CPU, contiguous)."""
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in module_state.items()}, path)


def save_model(
    path: Path,
    model: EmbeddingModel,
    cfg: ModelConfig,
    labels: list[str],
    threshold: float | None,
    extra: dict[str, Any] | None = None,
    head_state: dict[str, torch.Tensor] | None = None,
    files: dict[str, Path] | None = None,
) -> Path:
    """Write the model directory atomically (a temporary sibling renamed into place)."""
    with replacing_folder(path) as tmp:
        state_file(model.state_dict(), tmp / "model.safetensors")
        if head_state:
            state_file(head_state, tmp / "head.safetensors")
        save_config(cfg, tmp / "model.yaml")
        (tmp / "labels.json").write_text(json.dumps(labels))
        (tmp / "threshold.json").write_text(json.dumps({"threshold": threshold, **(extra or {})}, indent=2))
        for name, source in (files or {}).items():
            if source.is_file():
                shutil.copy2(source, tmp / name)
    return path


def load_model(path: Path, device: str | torch.device = "cpu", runtime: Runtime = "torch") -> Artifact:
    """Load a model directory written by ``save_model`` (no network: the weights are in the directory). With
    ``runtime="onnx"`` it embeds with its ONNX export under onnxruntime (CPU), refused when there is none or when it
    was exported from other weights. Where torch is not installed, it loads the ONNX export (`load_onnx_model`)
    whatever ``runtime`` says, and refuses a folder without one."""
    check_choice("runtime", runtime, RUNTIMES)
    path = Path(path)
    weights = _weights(path)
    if not torch_installed():
        if not ModelFolder(path).onnx.is_file():
            raise FlukeidError(
                f"torch is not installed and {path} has no model.onnx: run `flukeid export {path} --onnx` where "
                "torch is installed"
            )
        return load_onnx_model(path)
    cfg = load_config(ModelConfig, path / "model.yaml")
    model = build_model(cfg, pretrained=False)
    try:
        model.load_state_dict(_tensors(weights))
    except RuntimeError as exc:  # torch lists every missing and unexpected key over many lines
        raise FlukeidError(
            f"{weights}: the weights do not fit the architecture in {path / 'model.yaml'} ({cfg.backbone}); "
            "was one of them replaced?"
        ) from exc
    model.to(device).eval()
    info = _threshold_info(path)
    head = path / "head.safetensors"
    model_id = model_identity(path, cfg, model)
    onnx = None
    if runtime == "onnx":
        onnx = load_network(ModelFolder(path).onnx, model_id, f"export it: `flukeid export {path} --onnx`")
    return Artifact(
        path=path,
        model=model,
        config=cfg,
        labels=_json(path / "labels.json", []),  # written by every flukeid, but only models with a classifier use it
        threshold=info.pop("threshold", None),
        model_id=model_id,
        extra=info,
        head_state=_tensors(head) if head.is_file() else {},
        onnx=onnx,
    )


def load_onnx_model(path: Path) -> Artifact:
    """A model directory for inference with its ONNX export under onnxruntime, without torch: the input settings
    come from the export, the id from the folder's files (refused when the export is missing, of other weights, or
    written by a flukeid that stored no input settings). ``model`` is None and no head is loaded."""
    path = Path(path)
    _weights(path)
    folder, hint = ModelFolder(path), f"export it where torch is installed: `flukeid export {path} --onnx`"
    if not folder.onnx.is_file():
        raise FlukeidError(f"{folder.onnx}: no ONNX export; {hint}")
    network = OnnxNetwork(folder.onnx)
    if INPUTS_KEY not in network.metadata:
        raise FlukeidError(f"{folder.onnx} does not record its input settings (an older export); {hint}")
    inputs = EmbeddingInputs.from_json(network.metadata[INPUTS_KEY])
    cfg = load_config(ModelConfig, folder.architecture)
    model_id = inputs_identity(path, cfg, inputs)
    check_exported_from(network, model_id, hint)
    info = _threshold_info(path)
    labels, threshold = _json(folder.labels, []), info.pop("threshold", None)
    return Artifact(path, None, cfg, labels, threshold, model_id, info, onnx=network, onnx_inputs=inputs)


def _weights(path: Path) -> Path:
    weights = ModelFolder(path).weights
    if not weights.is_file():
        raise FlukeidError(f"{path}: not a flukeid model directory (no model.safetensors)")
    return weights


def _threshold_info(path: Path) -> dict[str, Any]:
    info = _json(ModelFolder(path).threshold, {})
    if not isinstance(info, dict):
        raise FlukeidError(f"{path / 'threshold.json'}: expected a JSON object with a threshold, found {info!r:.60}")
    return info


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file, or FlukeidError naming it when it is damaged (empty, truncated, not safetensors)."""
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as exc:  # safetensors raises its own SafetensorError (not an OSError) for damaged files
        raise FlukeidError(f"{path}: damaged weights file ({' '.join(str(exc).split())})") from exc


def _json(path: Path, missing: Any) -> Any:
    """A JSON file of the model folder (``missing`` when there is none), or FlukeidError naming it."""
    if not path.is_file():
        return missing
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FlukeidError(f"{path}: not valid JSON ({exc})") from exc


def frozen_model(backbone: str, out: Path, image_size: tuple[int, int] | None = None) -> Artifact:
    """A model directory of pretrained ImageNet features (GeM-pooled, no neck, no training)."""
    cfg = ModelConfig(backbone=backbone, pretrained=True, embedding_dim=None, image_size=image_size)
    save_model(out, build_model(cfg).eval(), cfg, labels=[], threshold=None, extra={"frozen": True})
    return load_model(out)
