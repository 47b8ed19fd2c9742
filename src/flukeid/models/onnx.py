"""ONNX: export a network (images (B, 3, H, W) -> anything (B, ...)) with a dynamic batch axis, check it against
PyTorch, and run it with onnxruntime on CPU.

The file carries the id of what it was exported from (``flukeid_id`` in its metadata), so a stale export (the
weights changed since) is refused instead of silently embedding differently. Needs the ``onnx`` extra
(``pip install 'flukeid[onnx]'``: onnx, onnxruntime, onnxscript). Running an export needs numpy and onnxruntime
only; torch is imported by the export and the comparison.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from flukeid.errors import FlukeidError

if TYPE_CHECKING:
    import torch
    from torch import nn

Runtime = Literal["torch", "onnx"]
"""What runs a network at inference: its PyTorch module, or its ONNX export under onnxruntime (CPU)."""
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx")
OPSET = 18
TOLERANCE = 1e-4
"""Largest accepted |ONNX - PyTorch| of an export's outputs (unit embeddings, boxes in [0, 1])."""
ID_KEY = "flukeid_id"
EXTRA = "install the onnx extra: pip install 'flukeid[onnx]'"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxCheck:
    """An exported network: ``path``, and the largest |ONNX - PyTorch| over ``inputs`` random batches."""

    path: Path
    max_abs_diff: float
    inputs: int


def torch_installed() -> bool:
    """Whether torch imports here (where it does not, inference runs with onnxruntime alone)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _onnxruntime():  # type: ignore[no-untyped-def]
    try:
        import onnxruntime
    except ImportError as exc:
        raise FlukeidError(f"onnxruntime is not installed ({exc}); {EXTRA}") from exc
    return onnxruntime


class OnnxNetwork:
    """An ONNX file run by onnxruntime on CPU: ``__call__(images (B, 3, H, W) float32) -> (B, ...) float32``.
    ``threads``: onnxruntime's intra-op threads (None: its default, every core)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        ort = _onnxruntime()
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        if threads:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail / InvalidGraph types for damaged files
            raise FlukeidError(f"{path}: not a readable ONNX file ({' '.join(str(exc).split())[:200]})") from exc
        self.input = self.session.get_inputs()[0].name
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)

    @property
    def exported_from(self) -> str | None:
        """The id (model id, detector id) stored at export, or None for a file flukeid did not write."""
        return self.metadata.get(ID_KEY)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(images, dtype=np.float32)
        return self.session.run(None, {self.input: batch})[0]


def load_network(path: Path, expected_id: str, export_hint: str, threads: int | None = None) -> OnnxNetwork:
    """The ONNX export at ``path``, refused (FlukeidError saying to ``export_hint``) when missing or exported
    from other weights than those of ``expected_id``."""
    if not Path(path).is_file():
        raise FlukeidError(f"{path}: no ONNX export; {export_hint}")
    return check_exported_from(OnnxNetwork(path, threads), expected_id, export_hint)


def check_exported_from(network: OnnxNetwork, expected_id: str, export_hint: str) -> OnnxNetwork:
    """``network``, refused (FlukeidError saying to ``export_hint``) when exported from other weights."""
    if network.exported_from != expected_id:
        raise FlukeidError(
            f"{network.path} was exported from {network.exported_from or 'another network'}, not from these weights "
            f"({expected_id}); {export_hint}"
        )
    return network


def export_network(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    exported_from: str,
    names: tuple[str, str] = ("images", "outputs"),
    opset: int = OPSET,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``module`` (in eval mode) as ONNX at ``path`` (replaced whole), the batch axis dynamic, ``exported_from``
    and ``metadata`` in its metadata. FlukeidError with the exporter's reason when the network does not export."""
    import torch

    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        with _quiet(), torch.no_grad():
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=[names[0]],
                output_names=[names[1]],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                verbose=False,
            )
    except Exception as exc:  # torch.export / onnxscript raise many types; the message is what a user can act on
        reason = " ".join(str(exc).split())[:300]
        raise FlukeidError(f"{type(module).__name__} does not export to ONNX: {reason}") from exc
    if program is None:
        raise FlukeidError(f"{type(module).__name__} does not export to ONNX (the exporter returned nothing)")
    program.model.metadata_props.update({**(metadata or {}), ID_KEY: exported_from})
    tmp = Path(path).with_name(f".{Path(path).name}.{os.getpid()}.tmp")
    try:
        with _quiet():
            program.save(str(tmp), external_data=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return Path(path)


def compare(
    module: nn.Module,
    network: OnnxNetwork,
    shape: tuple[int, int, int],
    batches: tuple[int, ...] = (1, 3),
    seed: int = 0,
) -> float:
    """The largest |ONNX - PyTorch| over random inputs of ``shape`` (3, H, W), one batch of each size in
    ``batches`` (so the dynamic batch axis is exercised)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for size in batches:
        images = torch.randn(size, *shape, generator=generator)
        with torch.no_grad():
            expected = module.eval()(images).float().numpy()
        worst = max(worst, float(np.abs(network(images.numpy()) - expected).max()))
    return worst


def export_checked(
    module: nn.Module,
    shape: tuple[int, int, int],
    path: Path,
    exported_from: str,
    names: tuple[str, str] = ("images", "outputs"),
    tolerance: float = TOLERANCE,
    metadata: dict[str, str] | None = None,
) -> OnnxCheck:
    """`export_network` then `compare`: the export is kept only when ONNX and PyTorch agree within ``tolerance``
    (else it is deleted and FlukeidError says by how much they differ)."""
    import torch

    example = torch.zeros(2, *shape)
    export_network(module, example, path, exported_from, names, metadata=metadata)
    batches = (1, 3)
    diff = compare(module, OnnxNetwork(path), shape, batches)
    if not diff <= tolerance:
        Path(path).unlink(missing_ok=True)
        raise FlukeidError(
            f"{path}: ONNX and PyTorch outputs differ by up to {diff:.2e} (> {tolerance:g}); the export was "
            "deleted. Rerun with a larger --tolerance to keep it anyway"
        )
    return OnnxCheck(Path(path), diff, len(batches))


@contextlib.contextmanager
def _quiet():  # type: ignore[no-untyped-def]
    """The exporter's progress prints and warnings, silenced (logged at debug level)."""
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            if out.getvalue():
                log.debug("torch.onnx: %s", out.getvalue())
