"""CLI commands of the train stage: train (with noisy-student rounds) and distill."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from flukeid.cli.common import checked_labels, cropped_photos, cropped_rows
from flukeid.errors import FlukeidError
from flukeid.progress import stdout


def train_command(
    data: Path = typer.Argument(..., help="Catalogue folder."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training YAML (see configs/)."),
    out: Path = typer.Option(Path("runs/model"), help="Run folder: checkpoints, logs, and model/."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set loss.name=triplet."),
    epochs: int | None = typer.Option(None, help="Override epochs."),
    devices: str | None = typer.Option(None, help="Lightning devices, e.g. 2."),
    strategy: str | None = typer.Option(None, help="Lightning strategy, e.g. ddp."),
    resume: bool = typer.Option(True, help="Continue from the run folder's last checkpoint if there is one."),
    seed: int | None = typer.Option(None, help="Random seed."),
    crop: Path | None = typer.Option(None, help="Detector folder: train on fluke crops (the model keeps it)."),
    pseudo_rounds: int = typer.Option(0, min=0, help="Noisy-student rounds: label --unlabelled photos, retrain."),
    unlabelled: list[Path] = typer.Option([], help="Unlabelled photos or folders for --pseudo-rounds."),
    pseudo_threshold: float = typer.Option(0.9, help="Keep a pseudo-label when P(best match right) >= this."),
) -> None:
    """Train an identity embedding model on a catalogue; writes OUT/model (load with one call)."""
    from flukeid.config import load_config, parse_overrides
    from flukeid.detect.model import attach_detector
    from flukeid.train.config import TrainConfig
    from flukeid.train.engine import train

    options = {"epochs": epochs, "devices": devices, "strategy": strategy, "seed": seed}
    overrides = {k: v for k, v in options.items() if v is not None} | parse_overrides(set_)
    cfg = load_config(TrainConfig, config, overrides)
    labels = cropped_rows(checked_labels(data), None, crop)
    if pseudo_rounds > 0:
        if not unlabelled:
            raise FlukeidError("--pseudo-rounds needs --unlabelled photos or folders")
        from flukeid.data.catalogue import image_paths
        from flukeid.train.pseudo import PSEUDO_FILE, train_with_pseudo_labels

        photos = cropped_photos(image_paths(unlabelled), None, crop)
        run = train_with_pseudo_labels(labels, photos, cfg, out, pseudo_rounds, pseudo_threshold)
        result = run.rounds[-1]
        stdout.print(f"{len(run.labels)} pseudo-labels over {pseudo_rounds} round(s): {out / PSEUDO_FILE}")
        result = dataclasses.replace(result, model_dir=run.model_dir)
    else:
        result = train(labels, cfg, out, resume=resume)
    if crop is not None:
        attach_detector(result.model_dir, crop)
    score = f"validation MAP@5 {result.val_map5:.3f}, " if result.val_map5 is not None else ""
    stdout.print(f"{score}new_whale threshold {result.threshold}; model: {result.model_dir}")


def distill_command(
    teacher: Path = typer.Argument(..., help="Teacher model directory."),
    data: Path = typer.Argument(..., help="Catalogue folder to distil on."),
    student: str = typer.Option("mobilenetv2", help="Student backbone (e.g. mobilenetv2, efficientnet_lite0)."),
    ensemble_with: list[Path] = typer.Option([], help="More teacher models: the student learns from the ensemble."),
    config: Path | None = typer.Option(None, "--config", "-c", help="Training YAML for the student's own loss."),
    out: Path = typer.Option(Path("runs/student"), help="Run folder: checkpoints, logs, and model/."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key: --set epochs=5."),
    similarity_weight: float = typer.Option(10.0, min=0, help="Weight of matching the teachers' cosine similarities."),
    kl_weight: float = typer.Option(1.0, min=0, help="Weight of the soft-label KL (teachers with a classifier head)."),
    temperature: float = typer.Option(4.0, help="Soft-label temperature."),
) -> None:
    """Distil a teacher (or an ensemble) into a small student; report kept MAP@5 and CPU speed-up."""
    from flukeid.config import load_config, parse_overrides
    from flukeid.detect.model import attach_detector, model_detector
    from flukeid.train.config import TrainConfig
    from flukeid.train.distill import distill_model
    from flukeid.train.teacher import DistillConfig

    if not temperature > 0:
        raise typer.BadParameter(f"must be > 0, found {temperature}", param_hint="--temperature")
    cfg = load_config(TrainConfig, config, {"model.backbone": student} | parse_overrides(set_))
    labels = cropped_rows(checked_labels(data), teacher)  # the student sees what the teacher saw
    weights = DistillConfig(similarity_weight, kl_weight, temperature)
    result = distill_model([teacher, *ensemble_with], labels, cfg, out, weights)
    detector = model_detector(teacher)
    if detector is not None:
        attach_detector(result.model_dir, detector.path)

    def show(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    kept = f" ({100 * result.student_map5 / result.teacher_map5:.0f}% kept)" if result.teacher_map5 else ""
    stdout.print(
        f"validation MAP@5: student {show(result.student_map5)}, teacher {show(result.teacher_map5)}{kept}\n"
        f"CPU embedding: student {result.student_images_per_s:.1f} img/s, teacher {result.teacher_images_per_s:.1f}"
        f" img/s ({result.student_images_per_s / max(result.teacher_images_per_s, 1e-9):.1f}x)\n"
        f"student model: {result.model_dir}"
    )
