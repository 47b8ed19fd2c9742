"""CLI commands of the identify stage: embed, identify, evaluate, verify, cluster, frozen, tune."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.markup import escape

from flukeid.cli.common import checked_labels, cropped_rows
from flukeid.embed_ray import RAY_HELP
from flukeid.progress import progress_bar, stdout

if TYPE_CHECKING:
    from flukeid.identify.fusion import Fusion
    from flukeid.identify.settings import IdentifySettings

RUNTIME_HELP = (
    "torch, or onnx: the model's ONNX export (and its detector's) under onnxruntime on CPU "
    "(write them first with `flukeid export MODEL --onnx`)."
)
MATCHERS_HELP = "Local matchers, comma-separated (sift, aliked, disk, xfeat; '' for none); default: the model's."


def embed_command(
    model: Path = typer.Argument(..., help="Model directory."),
    inputs: list[Path] = typer.Argument(..., help="Photos, folders of photos, or catalogue folders."),
    out: Path = typer.Option(..., "--out", help="Embeddings file (.npz); run again with it to resume or add photos."),
    ray: str | None = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Photos embedded per batch."),
    runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
) -> None:
    """Embed photos into an embeddings file (image, path, content sha1, individual, vector), cropped by the model's
    detector as identify crops them. Photos the file holds already (same path, content and model) are skipped;
    progress is kept as it goes, so an interrupted run resumes. Unreadable photos are reported and left out."""
    from contextlib import nullcontext

    from flukeid.detect.model import model_detector
    from flukeid.embed import check_embeddings_path, describe_failures, embed_to_file, local_batches, photo_inputs
    from flukeid.models.artifact import load_model

    check_embeddings_path(out)
    _check_runtime_here(runtime, ray)
    artifact = load_model(model, runtime=runtime)  # a wrong name: ConfigError from load_model
    photos = photo_inputs(inputs)
    detector = model_detector(model, runtime=runtime)
    if ray is None:
        batches, session = local_batches(artifact, detector, batch_size), nullcontext()
    else:
        from flukeid.embed_ray import ray_batches, ray_session

        batches, session = ray_batches(model, detector.path if detector else None, batch_size), ray_session(ray)
    with session, progress_bar("embedding") as update:
        run = embed_to_file(artifact.model_id, artifact.dim, photos, out, batches, progress=update)
    stdout.print(
        f"{run.embedded} photo(s) embedded, {run.skipped} already in {out} (skipped), {len(run.failed)} unreadable; "
        f"{out} holds {run.total} photo(s) of model {artifact.model_id}"
    )
    if run.failed:
        stdout.print(f"unreadable (tried again next run): {escape(describe_failures(run.failed))}", highlight=False)


def _check_runtime_here(runtime: str, ray: str | None) -> None:
    if runtime != "torch" and ray is not None:
        raise typer.BadParameter("--runtime onnx runs in this process; Ray actors embed with torch", param_hint="--ray")


def identify_command(
    model: Path = typer.Argument(..., help="Model directory."),
    gallery: Path = typer.Argument(..., help="Gallery folder (built with the same model)."),
    images: list[Path] = typer.Argument(..., help="Query photos or folders."),
    out: Path = typer.Option(Path("identify-out"), help="Folder for submission.csv, predictions.jsonl, report.html."),
    threshold: float | None = typer.Option(None, help="new_whale threshold (default: the model's tuned one)."),
    report: bool = typer.Option(True, help="Write the HTML report with thumbnails."),
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="Crop and embed on Ray (the search and local matching run here): 'local' (a Ray on this machine), "
        "'auto' (the cluster this machine is a node of) or a cluster's address, e.g. ray://HEAD:10001.",
    ),
    runtime: str = typer.Option("torch", "--runtime", help=RUNTIME_HELP),
) -> None:
    """Top-5 individuals (or new_whale) for each photo with the model's pipeline (shortlist by the embedding, local
    matchers, calibrated fusion): Kaggle submission, JSON lines and an HTML report."""
    from flukeid.data.catalogue import image_paths
    from flukeid.detect.model import load_detector
    from flukeid.gallery import Gallery
    from flukeid.identify.identifier import Identifier
    from flukeid.identify.predict import write_outputs
    from flukeid.report.html import write_report
    from flukeid.report.summary import ReportCatalogue

    if threshold is not None and math.isnan(threshold):
        raise typer.BadParameter("a number is needed, found nan", param_hint="--threshold")
    from flukeid.models.artifact import load_model

    _check_runtime_here(runtime, ray)
    g = Gallery.open(gallery)
    identifier = Identifier.load(load_model(model, runtime=runtime), g)
    if crop is not None:
        identifier.detector = load_detector(crop, runtime=runtime)
    paths = image_paths(images)
    if ray is None:
        with progress_bar("identifying") as update:
            predictions = identifier.identify(paths, threshold=threshold, progress=update)
    else:
        from flukeid.embed_ray import ray_embed, ray_session

        with ray_session(ray), progress_bar("embedding on Ray") as update:
            embedded = ray_embed(identifier, paths, progress=update)
        with progress_bar("identifying") as update:
            predictions = identifier.identify_embedded(paths, embedded, threshold=threshold, progress=update)
    written = write_outputs(predictions, out)
    if report:
        cut = identifier.threshold if threshold is None else threshold
        written["report"] = write_report(predictions, ReportCatalogue.of_gallery(g), out / "report.html", threshold=cut)
    failed = sum(p.error is not None for p in predictions)
    stdout.print(
        f"{len(predictions)} photos identified ({failed} unreadable); "
        + ", ".join(f"{k}: {v}" for k, v in written.items())
    )


def evaluate_command(
    model: Path = typer.Argument(..., help="Model directory."),
    data: Path = typer.Argument(..., help="Labelled catalogue folder."),
    split: str = typer.Option("whale", help="closed, open or whale."),
    seed: int = typer.Option(0, help="Split seed."),
    out: Path = typer.Option(Path("evaluate-out"), help="Folder for submission, report.html and PR curve."),
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
) -> None:
    """Split -> gallery -> identify (the model's pipeline) -> score: MAP@5, top-1/5, BAKS, BAUS, new-individual
    AUC."""
    from flukeid.data.splits import make_split
    from flukeid.identify.evaluate import evaluate_split
    from flukeid.identify.predict import write_outputs
    from flukeid.models.artifact import load_model
    from flukeid.report.html import write_report
    from flukeid.report.plots import plot_novelty_pr
    from flukeid.report.summary import ReportCatalogue

    parts = make_split(cropped_rows(checked_labels(data), model, crop), split, seed=seed)
    with progress_bar("identifying") as update:
        evaluation = evaluate_split(load_model(model), parts, progress=update)
    paths = evaluation.queries
    predictions = evaluation.predictions()
    write_outputs(predictions, out)
    curve = plot_novelty_pr(evaluation.table, evaluation.truths, out / "new_individual_pr.png", evaluation.threshold)
    report = write_report(
        predictions,
        ReportCatalogue.of_labels(parts.train),
        out / "report.html",
        truths={p.image: t for p, t in zip(predictions, evaluation.truths)},
        title=f"flukeid evaluation: {model.name} on {data.name} ({split} split, seed {seed})",
        threshold=evaluation.threshold,
    )
    s = evaluation.scores
    stdout.print(
        f"{split} split seed {seed}: {len(paths)} queries\nMAP@5 {s.map5:.4f}  top-1 {s.top1:.4f}  "
        f"top-5 {s.top5:.4f}  BAKS {s.baks:.4f}  BAUS {s.baus:.4f}  new-individual AUC {s.auc:.4f}\n"
        f"threshold {evaluation.threshold}; oracle-threshold MAP@5 {evaluation.oracle_map5:.4f}; "
        f"{evaluation.seconds_per_query:.2f} s per query\noutputs in {out} (report: {report}; PR curve: {curve})"
    )


def verify(
    model: Path = typer.Argument(..., help="Model directory."),
    first: Path = typer.Argument(..., help="A photo."),
    second: Path = typer.Argument(..., help="Another photo."),
) -> None:
    """Same individual or not: P(same) from the model's pipeline (embedding and local matchers, calibrated)."""
    from flukeid.identify.identifier import Identifier

    probability = Identifier.load(model).verify(first, second)
    same = "same" if probability >= 0.5 else "different"
    stdout.print(f"{same} individual: P(same) {probability:.3f}")


def cluster(
    model: Path = typer.Argument(..., help="Model directory."),
    images: list[Path] = typer.Argument(..., help="Unlabelled photos or folders."),
    out: Path = typer.Option(Path("clusters.csv"), help="CSV of Image,Cluster."),
    threshold: float | None = typer.Option(
        None, help="P(same) above which photos join (default 0.5; a model not tuned yet: its cosine threshold)."
    ),
) -> None:
    """Group unlabelled photos into putative individuals (average linkage on the pipeline's P(same))."""
    from flukeid.data.catalogue import image_paths
    from flukeid.identify.cluster import cluster_photos
    from flukeid.identify.identifier import Identifier

    with progress_bar("clustering") as update:
        update(0, 1)
        paths, labels = cluster_photos(Identifier.load(model), image_paths(images), threshold)
    pd.DataFrame({"Image": [p.name for p in paths], "Cluster": labels}).to_csv(out, index=False)
    stdout.print(f"{len(paths)} photos in {len(set(labels))} clusters -> {out}")


def _settings_with(model: Path, matchers: str | None, shortlist: int | None) -> IdentifySettings:
    """The model's identify settings, with --matchers (comma-separated names) / --shortlist applied."""
    from flukeid.identify.identifier import load_settings
    from flukeid.identify.settings import with_choices

    names = None if matchers is None else [n.strip() for n in matchers.split(",") if n.strip()]
    return with_choices(load_settings(model), names, shortlist)


def frozen(
    out: Path = typer.Argument(..., help="Model directory to write."),
    backbone: str = typer.Option("efficientnet_lite0", help="Backbone with offline ImageNet weights."),
    tune_on: Path | None = typer.Option(None, "--tune-on", help="Catalogue to tune the identification on."),
    size: int | None = typer.Option(224, min=0, help="Square input size (0: the backbone's)."),
    crop: Path | None = typer.Option(None, help="Detector folder: the model crops every photo with it."),
    matchers: str | None = typer.Option(None, help=MATCHERS_HELP),
    shortlist: int | None = typer.Option(None, help="Individuals matched locally per query (default: 30)."),
) -> None:
    """A model of frozen ImageNet features (no training), with flukeid's default local matchers; --tune-on fits
    their calibrated fusion and the new_whale threshold on a catalogue (flukeid's CPU default)."""
    from flukeid.identify.identifier import save_settings
    from flukeid.identify.tune import tune_model
    from flukeid.models.artifact import frozen_model, load_model

    artifact = frozen_model(backbone, out, (size, size) if size else None)
    if crop is not None:
        from flukeid.detect.model import attach_detector

        attach_detector(out, crop)
        artifact = load_model(out)
    save_settings(out, _settings_with(out, matchers, shortlist))
    message = f"frozen {backbone} model -> {out}"
    if tune_on is not None:
        labels = cropped_rows(checked_labels(tune_on), out)
        with progress_bar("tuning") as update:
            fusion = tune_model(artifact, labels, progress=update)
        message += f"; {_fusion_summary(fusion)}"
    stdout.print(message)


def _fusion_summary(fusion: Fusion) -> str:
    parts = ", ".join(fusion.components)
    return (
        f"fused {parts} over {fusion.pairs} calibration pairs; threshold {fusion.threshold:.4f} "
        f"(validation MAP@5 {fusion.map5:.3f})"
    )


def tune(
    model: Path = typer.Argument(..., help="Model directory."),
    data: Path = typer.Argument(..., help="Labelled catalogue to tune on (an open split of it)."),
    seed: int = typer.Option(0, help="Split seed."),
    matchers: str | None = typer.Option(None, help=MATCHERS_HELP),
    shortlist: int | None = typer.Option(None, help="Individuals matched locally per query."),
) -> None:
    """Fit a model's identification on a catalogue: each matcher's calibration, their fusion, the new_whale
    threshold and P(best match right) (changes of --matchers / --shortlist are stored in the model first)."""
    from flukeid.identify.tune import tune_model
    from flukeid.models.artifact import load_model

    settings = _settings_with(model, matchers, shortlist)
    labels = cropped_rows(checked_labels(data), model)
    with progress_bar("tuning") as update:
        fusion = tune_model(load_model(model), labels, seed=seed, settings=settings, progress=update)
    stdout.print(_fusion_summary(fusion))
