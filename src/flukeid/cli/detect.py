"""CLI commands of the detect stage: `detect train`, `detect eval` and `crop`."""

from __future__ import annotations

from pathlib import Path

import typer

from flukeid.progress import progress_bar, stdout

detect_app = typer.Typer(help="Train and evaluate the fluke box detector.")


@detect_app.command("train")
def detect_train(
    data: Path = typer.Argument(..., help="Catalogue folder (labelled and test photos can have boxes)."),
    boxes: Path | None = typer.Option(None, help="Boxes file `fn x0 y0 x1 y1` or CSV (default: the catalogue's)."),
    out: Path = typer.Option(Path("detector"), help="Detector folder to write."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML of detector training settings."),
    set_: list[str] = typer.Option([], "--set", help="Override a setting: --set epochs=20."),
    epochs: int | None = typer.Option(None, help="Override epochs."),
) -> None:
    """Train a one-fluke box detector; a held-out share of the boxes is scored at the end."""
    from flukeid.config import load_config, parse_overrides
    from flukeid.detect.data import box_rows
    from flukeid.detect.train import DetectTrainConfig, train_detector

    overrides = parse_overrides(set_) | ({"epochs": epochs} if epochs is not None else {})
    cfg = load_config(DetectTrainConfig, config, overrides)
    rows = box_rows(data, boxes)
    result = train_detector(rows, cfg, out)
    message = f"detector -> {out} ({len(rows) - len(result.held_out)} boxes trained on"
    if result.evaluation is not None:
        s = result.evaluation.scores
        message += f", {len(result.held_out)} held out: mean IoU {s.mean_iou:.3f}, AP@0.5 {s.ap50:.3f}"
        message += f", mAP@[.5:.95] {s.map50_95:.3f}"
    stdout.print(message + ")")


@detect_app.command("eval")
def detect_eval(
    detector: Path = typer.Argument(..., help="Detector folder."),
    data: Path = typer.Argument(..., help="Catalogue folder with held-out photos."),
    boxes: Path | None = typer.Option(None, help="True boxes (default: the catalogue's boxes file)."),
    out: Path = typer.Option(Path("detect-eval"), help="Folder for the picture grid and per-photo CSV."),
) -> None:
    """Mean IoU, AP@0.5 and mAP@[.5:.95] against true boxes, and a grid of predicted (red) vs true (green)."""
    from flukeid.detect.data import box_rows
    from flukeid.detect.model import load_detector
    from flukeid.detect.predict import evaluate_detector, write_evaluation

    rows = box_rows(data, boxes)
    with progress_bar("detecting") as update:
        evaluation = evaluate_detector(load_detector(detector), rows, progress=update)
    files = write_evaluation(evaluation, rows.truths(), out)
    s = evaluation.scores
    stdout.print(
        f"{len(rows)} photos: mean IoU {s.mean_iou:.3f}, AP@0.5 {s.ap50:.3f}, mAP@[.5:.95] {s.map50_95:.3f}\n"
        f"grid: {files.grid}; per photo: {files.table}"
    )


def crop(
    detector: Path = typer.Argument(..., help="Detector folder."),
    data: Path = typer.Argument(..., help="Catalogue (or any folder of photos) to crop."),
    out: Path = typer.Argument(..., help="Folder for the cropped copy (same layout) and crops.csv."),
    margin: float = typer.Option(0.1, help="Share of the box's width/height added on each side."),
    min_confidence: float = typer.Option(0.5, help="Below this the full frame is kept (and said so in crops.csv)."),
) -> None:
    """Write a cropped copy of a catalogue: same file layout and label files, plus crops.csv of boxes."""
    from flukeid.detect.crop import CropSettings, check_crop_target, crop_catalogue
    from flukeid.detect.model import load_detector

    check_crop_target(data, out)  # before loading the detector
    with progress_bar("cropping") as update:
        table = crop_catalogue(load_detector(detector), data, out, CropSettings(margin, min_confidence), update)
    kept = int((table["fallback"] != "").sum())
    stdout.print(f"{len(table)} photos -> {out} ({kept} kept their full frame); boxes: {out / 'crops.csv'}")
