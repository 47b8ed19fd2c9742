"""CLI commands of the identify stage: gallery, enroll, remove, identify, evaluate, verify, cluster, frozen."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from flukeid.cli_detect import crop_queries, crop_rows
from flukeid.data.catalogue import IMAGE_SUFFIXES
from flukeid.errors import FlukeidError
from flukeid.progress import progress_bar, stdout

gallery_app = typer.Typer(help="Build and inspect galleries (searchable catalogues of embedded photos).")


def image_paths(items: list[Path]) -> list[Path]:
    """Files as given; folders expanded to their image files (sorted)."""
    paths: list[Path] = []
    for item in items:
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(item)
    if not paths:
        raise FlukeidError(f"no images found in {', '.join(map(str, items))}")
    return paths


def usable_labels(data: Path) -> pd.DataFrame:
    """Check a catalogue with a progress bar; its usable labelled rows, or a FlukeidError if none."""
    from flukeid.data.check import check_catalogue

    with progress_bar("checking images") as update:
        return check_catalogue(data, progress=update).require_usable()


def _model_of(gallery: Path, model: Path | None) -> Path:
    from flukeid.gallery.store import MODEL_LINK

    if model is not None:
        return model
    link = gallery / MODEL_LINK
    if not link.is_file():
        raise FlukeidError(f"{gallery}: no model recorded for this gallery; pass --model MODEL_DIR")
    return Path(link.read_text().strip())


@gallery_app.command("build")
def gallery_build(
    model: Path = typer.Argument(..., help="Model directory (from flukeid train)."),
    data: Path = typer.Argument(..., help="Catalogue folder: its labelled photos are enrolled."),
    out: Path = typer.Option(Path("gallery"), help="Gallery folder to create."),
    index: str = typer.Option("flat", help="flat (exact), hnsw or ivf (large catalogues)."),
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
    replace: bool = typer.Option(False, help="Replace a complete gallery at --out (kept until the new one is done)."),
) -> None:
    """Embed a catalogue's labelled photos into a new gallery, built whole or not at all (an interrupted build's
    unfinished gallery is replaced)."""
    from flukeid.folders import leftover_folders
    from flukeid.gallery.build import build_gallery
    from flukeid.gallery.store import check_build_target
    from flukeid.models.artifact import load_model

    check_build_target(out, replace)  # before the long part
    labels = crop_rows(usable_labels(data), model, crop)
    with progress_bar("embedding catalogue") as update:
        built = build_gallery(load_model(model), labels, out, index=index, progress=update, replace=replace)
    gallery = built.gallery
    if built.replaced:
        stdout.print(built.replaced)
    stdout.print(
        f"gallery {out}: {len(gallery)} photos of {len(gallery.individuals())} individuals "
        f"({len(built.failed)} unreadable skipped)"
    )
    for folder in leftover_folders(out):
        stdout.print(f"note: {folder} was left by an interrupted build (unless one is running now): delete it")


@gallery_app.command("info")
def gallery_info(gallery: Path = typer.Argument(..., help="Gallery folder.")) -> None:
    """Photos, individuals, index kind and model of a gallery."""
    from flukeid.gallery import Gallery

    g = Gallery.open(gallery)
    stdout.print(
        f"{gallery}: {len(g)} photos, {len(g.individuals())} individuals, index {g.index_kind}, model {g.model_id}"
    )


def enroll(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    images: list[Path] = typer.Argument(..., help="Photos (or folders) of one individual."),
    id_: str = typer.Option(..., "--id", help="The individual: a new ID or a known one."),
    model: Path | None = typer.Option(None, help="Model directory (default: the gallery's)."),
) -> None:
    """Add photos of an individual to a gallery, no retraining (atomic: all or nothing; if any photo cannot be
    read, none is enrolled)."""
    from flukeid.data.ids import check_id
    from flukeid.embed import embed_paths
    from flukeid.gallery import Gallery
    from flukeid.models.artifact import load_model

    check_id(id_, "--id")
    g = Gallery.open(gallery)
    artifact = load_model(_model_of(gallery, model))
    g.check_model(artifact.model_id)
    embedded = embed_paths(artifact, crop_queries(image_paths(images), artifact.path, None))
    if embedded.failed:
        raise FlukeidError(_unreadable(embedded.failed))
    g.add(
        [p.name for p in embedded.paths],
        [id_] * len(embedded.paths),
        embedded.vectors,
        paths=[str(p.resolve()) for p in embedded.paths],
    )
    stdout.print(f"enrolled {len(embedded.paths)} photo(s) as {id_}; gallery now has {len(g)} photos")


def _unreadable(failed: dict[Path, str], shown: int = 5) -> str:
    """One line naming the photos that cannot be read, and why."""
    reasons = [why if str(path) in why else f"{path}: {why}" for path, why in failed.items()]
    listed = "; ".join(reasons[:shown])
    more = f"; and {len(failed) - shown} more" if len(failed) > shown else ""
    return f"{len(failed)} photo(s) cannot be read, so none was enrolled ({listed}{more}); fix or leave them out"


def remove(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    id_: str | None = typer.Option(None, "--id", help="Remove every photo of this individual."),
    image: list[str] = typer.Option([], help="Remove these photos (by image name)."),
) -> None:
    """Remove an individual or single photos from a gallery."""
    from flukeid.gallery import Gallery

    removed = Gallery.open(gallery).remove(individual=id_, images=image or None)
    stdout.print(f"removed {removed} photo(s)")


def identify_command(
    model: Path = typer.Argument(..., help="Model directory."),
    gallery: Path = typer.Argument(..., help="Gallery folder (built with the same model)."),
    images: list[Path] = typer.Argument(..., help="Query photos or folders."),
    out: Path = typer.Option(Path("identify-out"), help="Folder for submission.csv, predictions.jsonl, report.html."),
    threshold: float | None = typer.Option(None, help="new_whale threshold (default: the model's tuned one)."),
    report: bool = typer.Option(True, help="Write the HTML report with thumbnails."),
    rerank: bool = typer.Option(False, help="Re-score the top candidates by RootSIFT matching (see `tune`)."),
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
) -> None:
    """Top-5 individuals (or new_whale) for each photo: Kaggle submission, JSON lines and an HTML report."""
    from flukeid.gallery import Gallery
    from flukeid.identify.predict import identify, write_outputs
    from flukeid.models.artifact import load_model
    from flukeid.report.html import write_report

    g = Gallery.open(gallery)
    from flukeid.identify.rerank import Reranker

    reranker = Reranker.for_gallery(g) if rerank else None
    with progress_bar("identifying") as update:
        queries = crop_queries(image_paths(images), model, crop)
        predictions = identify(load_model(model), g, queries, threshold=threshold, progress=update, reranker=reranker)
    written = write_outputs(predictions, out)
    if report:
        best = {p.individual: Path(p.path) for p in reversed(g.photos()) if p.path}
        written["report"] = write_report(predictions, best, out / "report.html")
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
    out: Path = typer.Option(Path("evaluate-out"), help="Folder for submission, report and PR curve."),
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
) -> None:
    """Split -> gallery -> identify -> score: MAP@5, top-1/5, BAKS, BAUS, new-individual AUC."""
    from flukeid.data.splits import make_split
    from flukeid.identify.evaluate import evaluate_split
    from flukeid.identify.predict import Prediction, write_outputs
    from flukeid.models.artifact import load_model
    from flukeid.report.plots import plot_novelty_pr

    parts = make_split(crop_rows(usable_labels(data), model, crop), split, seed=seed)
    evaluation = evaluate_split(load_model(model), parts)
    paths = list(parts.test["path"].map(Path))
    predictions = [Prediction(p.name, p, r) for p, r in zip(paths, evaluation.rankings)]
    write_outputs(predictions, out)
    curve = plot_novelty_pr(evaluation.table, evaluation.truths, out / "new_individual_pr.png")
    s = evaluation.scores
    stdout.print(
        f"{split} split seed {seed}: {len(paths)} queries\nMAP@5 {s.map5:.4f}  top-1 {s.top1:.4f}  "
        f"top-5 {s.top5:.4f}  BAKS {s.baks:.4f}  BAUS {s.baus:.4f}  new-individual AUC {s.auc:.4f}\n"
        f"threshold {evaluation.threshold}; oracle-threshold MAP@5 {evaluation.oracle_map5:.4f}\n"
        f"outputs in {out} (PR curve: {curve})"
    )


def verify(
    model: Path = typer.Argument(..., help="Model directory."),
    first: Path = typer.Argument(..., help="A photo."),
    second: Path = typer.Argument(..., help="Another photo."),
) -> None:
    """Same individual or not, with a calibrated probability."""
    from flukeid.embed import embed_paths
    from flukeid.identify.calibration import Calibration
    from flukeid.models.artifact import load_model

    artifact = load_model(model)
    embedded = embed_paths(artifact, crop_queries([first, second], model, None), num_workers=0)
    if embedded.failed:
        raise FlukeidError("; ".join(f"{p}: {why}" for p, why in embedded.failed.items()))
    cosine = float(embedded.vectors[0] @ embedded.vectors[1])
    calibration = Calibration.load(artifact.path / "calibration.json")
    probability = float(calibration.same([[cosine]])[0]) if calibration else None
    threshold = artifact.threshold if artifact.threshold is not None else 0.5
    same = probability >= 0.5 if probability is not None else cosine >= threshold
    detail = f"P(same) {probability:.3f}" if probability is not None else f"threshold {threshold:.3f}"
    stdout.print(f"{'same' if same else 'different'} individual: cosine {cosine:.4f}, {detail}")


def cluster(
    model: Path = typer.Argument(..., help="Model directory."),
    images: list[Path] = typer.Argument(..., help="Unlabelled photos or folders."),
    out: Path = typer.Option(Path("clusters.csv"), help="CSV of Image,Cluster."),
    threshold: float | None = typer.Option(None, help="Cosine above which photos join (default: the model's)."),
) -> None:
    """Group unlabelled photos into putative individuals (average-linkage on cosine distance)."""
    from flukeid.embed import embed_paths
    from flukeid.identify.cluster import cluster_embeddings
    from flukeid.models.artifact import load_model

    artifact = load_model(model)
    embedded = embed_paths(artifact, crop_queries(image_paths(images), model, None))
    cut = threshold if threshold is not None else (artifact.threshold or 0.5)
    labels = cluster_embeddings(embedded.vectors, cut)
    pd.DataFrame({"Image": [p.name for p in embedded.paths], "Cluster": labels}).to_csv(out, index=False)
    stdout.print(f"{len(embedded.paths)} photos in {len(set(labels))} clusters -> {out}")


def frozen(
    out: Path = typer.Argument(..., help="Model directory to write."),
    backbone: str = typer.Option("efficientnet_lite2", help="Backbone with offline ImageNet weights."),
    tune_on: Path | None = typer.Option(None, "--tune-on", help="Catalogue to tune the new_whale threshold on."),
    size: int | None = typer.Option(None, help="Square input size (default: the backbone's)."),
    crop: Path | None = typer.Option(None, help="Detector folder: the model crops every photo with it."),
    rerank: bool = typer.Option(False, help="Also fit local-feature re-ranking on --tune-on (flukeid's default)."),
) -> None:
    """A model of frozen ImageNet features (no training), optionally tuned on a catalogue."""
    from flukeid.identify.tune import frozen_model, tune_model, tune_rerank

    if rerank and tune_on is None:
        raise FlukeidError("--rerank fits the re-ranking on a catalogue: give it with --tune-on DATA")

    artifact = frozen_model(backbone, out, (size, size) if size else None)
    if crop is not None:
        from flukeid.detect.model import attach_detector

        attach_detector(out, crop)
    message = f"frozen {backbone} model -> {out}"
    if tune_on is not None:
        labels = crop_rows(usable_labels(tune_on), out, None)
        tuning = tune_model(artifact, labels)
        message += f"; threshold {tuning.threshold:.4f} (validation MAP@5 {tuning.map5:.3f})"
        if rerank:
            from flukeid.models.artifact import load_model

            fit = tune_rerank(load_model(out), labels)
            message += f"; re-ranking weight {fit.weight} (validation MAP@5 {fit.map5:.3f})"
    stdout.print(message)


def tune(
    model: Path = typer.Argument(..., help="Model directory."),
    data: Path = typer.Argument(..., help="Labelled catalogue to tune on (an open split of it)."),
    rerank: bool = typer.Option(False, help="Also fit the local-feature re-ranking weight (rerank.json)."),
    seed: int = typer.Option(0, help="Split seed."),
) -> None:
    """Re-fit a model's new_whale threshold and calibration (and re-ranking) on a catalogue."""
    from flukeid.identify.tune import tune_model, tune_rerank
    from flukeid.models.artifact import load_model

    labels = crop_rows(usable_labels(data), model, None)
    tuning = tune_model(load_model(model), labels, seed=seed)
    stdout.print(f"threshold {tuning.threshold:.4f} (validation MAP@5 {tuning.map5:.3f})")
    if rerank:
        fit = tune_rerank(load_model(model), labels, seed=seed)
        stdout.print(
            f"re-ranking: weight {fit.weight}, threshold {fit.threshold:.4f} (validation MAP@5 {fit.map5:.3f})"
        )


def register(app: typer.Typer) -> None:
    app.add_typer(gallery_app, name="gallery")
    app.command("enroll")(enroll)
    app.command("remove")(remove)
    app.command("identify")(identify_command)
    app.command("evaluate")(evaluate_command)
    app.command("verify")(verify)
    app.command("cluster")(cluster)
    app.command("frozen")(frozen)
    app.command("tune")(tune)
