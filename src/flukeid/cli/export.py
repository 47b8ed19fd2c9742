"""CLI command of the export stage: a model folder's networks for other runtimes (ONNX)."""

from __future__ import annotations

from pathlib import Path

import typer

from flukeid.progress import stdout


def export_command(
    model: Path = typer.Argument(..., help="Model directory."),
    onnx: bool = typer.Option(False, "--onnx", help="Write model.onnx (and detector/detector.onnx) for onnxruntime."),
    tolerance: float = typer.Option(1e-4, min=0, help="Largest accepted |ONNX - PyTorch| of the outputs."),
) -> None:
    """Export a model's embedding network (and its crop detector, when it carries one) into the model folder, each
    checked against PyTorch; then `flukeid embed` and `flukeid identify` run them with --runtime onnx."""
    from flukeid.detect.export import export_onnx

    if not onnx:
        raise typer.BadParameter("choose a format: --onnx (the only one so far)", param_hint="--onnx")
    done = export_onnx(model, tolerance)
    for name, check in (("embedding network", done.embedding), ("detector", done.detector)):
        if check is None:
            stdout.print(f"{name}: none attached to {model}")
        else:
            stdout.print(
                f"{name}: {check.path} (max abs diff vs PyTorch {check.max_abs_diff:.2e} on {check.inputs} random "
                f"batches, tolerance {tolerance:g})",
                highlight=False,
            )
