"""CLI commands of the identify stage: gallery, enroll, remove, identify, evaluate, verify, cluster, frozen."""

from __future__ import annotations

import math
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


_STORE_HELP = (
    "Vector store: faiss (embedded, one machine, up to a few million photos) or milvus (Milvus Lite in-process, or "
    "a Milvus server with --milvus-uri; needs pip install -e '.[scale]')."
)
_MILVUS_URI_HELP = (
    "Milvus for --store milvus: a Milvus Lite database path ending in .db (default: milvus.db in the gallery "
    "folder) or a server URI such as http://host:19530 (collection flukeid_<uid>, shown by `gallery info`)."
)


@gallery_app.command("build")
def gallery_build(
    model: Path = typer.Argument(..., help="Model directory (from flukeid train)."),
    data: Path = typer.Argument(..., help="Catalogue folder: its labelled photos are enrolled."),
    out: Path = typer.Option(Path("gallery"), help="Gallery folder to create."),
    index: str = typer.Option("flat", help="flat (exact), hnsw or ivf (large catalogues)."),
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
    replace: bool = typer.Option(False, help="Replace a complete gallery at --out (kept until the new one is done)."),
    store: str = typer.Option("faiss", help=_STORE_HELP),
    milvus_uri: str | None = typer.Option(None, help=_MILVUS_URI_HELP),
) -> None:
    """Embed a catalogue's labelled photos into a new gallery, built whole or not at all (an interrupted build's
    unfinished gallery is replaced)."""
    from flukeid.folders import leftover_folders
    from flukeid.gallery.build import build_gallery
    from flukeid.gallery.store import check_build_target
    from flukeid.gallery.vectors import StoreSpec
    from flukeid.identify.identifier import model_matchers
    from flukeid.models.artifact import load_model

    check_build_target(out, replace)  # before the long part
    StoreSpec.new(store, milvus_uri)
    labels = crop_rows(usable_labels(data), model, crop)
    matchers = model_matchers(model)
    with progress_bar("embedding catalogue, extracting local features") as update:
        built = build_gallery(
            load_model(model),
            labels,
            out,
            index=index,
            progress=update,
            replace=replace,
            matchers=matchers,
            store=store,
            milvus_uri=milvus_uri,
        )
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
    """Photos, individuals, index kind, vector store and model of a gallery."""
    from flukeid.gallery import Gallery

    g = Gallery.open(gallery)
    features = ", ".join(f"{key} {n}" for key, n in sorted(g.local_feature_counts().items())) or "none"
    stdout.print(
        f"{gallery}: {len(g)} photos, {len(g.individuals())} individuals, index {g.index_kind}, "
        f"store {g.store.describe()}, model {g.model_id}; stored local features: {features}"
    )


@gallery_app.command("rebuild")
def gallery_rebuild(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    store: str | None = typer.Option(None, help="Move the gallery to this vector store (faiss or milvus)."),
    milvus_uri: str | None = typer.Option(None, help=_MILVUS_URI_HELP),
) -> None:
    """Rebuild a gallery's vector store from its database (gallery.sqlite holds the truth), or move the gallery to
    another store with --store: the new store is filled first, then recorded, then the old one dropped."""
    from flukeid.gallery.store import Gallery, rebuild_store

    spec = rebuild_store(gallery, store, milvus_uri)
    g = Gallery.open(gallery)
    stdout.print(f"rebuilt the vector store of {gallery} from its database: {len(g)} photos, store {spec.describe()}")


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
    from flukeid.gallery.local import store_local_features
    from flukeid.identify.identifier import model_matchers
    from flukeid.models.artifact import load_model

    check_id(id_, "--id")
    g = Gallery.open(gallery)
    artifact = load_model(_model_of(gallery, model))
    g.check_model(artifact.model_id)
    embedded = embed_paths(artifact, crop_queries(image_paths(images), artifact.path, None))
    if embedded.failed:
        raise FlukeidError(_unreadable(embedded.failed))
    ids = g.add(
        [p.name for p in embedded.paths],
        [id_] * len(embedded.paths),
        embedded.vectors,
        paths=[str(p.resolve()) for p in embedded.paths],
    )
    store_local_features(g, model_matchers(artifact.path), list(g.photos_by_id(ids).values()))
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
    crop: Path | None = typer.Option(None, help="Detector folder to crop photos with (default: the model's own)."),
    ray: str | None = typer.Option(
        None,
        "--ray",
        metavar="ADDRESS",
        help="Crop and embed on Ray (the search and local matching run here): 'local' (a Ray on this machine), "
        "'auto' (the cluster this machine is a node of) or a cluster's address, e.g. ray://HEAD:10001.",
    ),
) -> None:
    """Top-5 individuals (or new_whale) for each photo with the model's pipeline (shortlist by the embedding, local
    matchers, calibrated fusion): Kaggle submission, JSON lines and an HTML report."""
    from flukeid.detect.model import load_detector
    from flukeid.gallery import Gallery
    from flukeid.identify.identifier import Identifier
    from flukeid.identify.predict import write_outputs
    from flukeid.report.html import write_report

    if threshold is not None and math.isnan(threshold):
        raise typer.BadParameter("a number is needed, found nan", param_hint="--threshold")
    g = Gallery.open(gallery)
    identifier = Identifier.load(model, g)
    if crop is not None:
        identifier.detector = load_detector(crop)
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
    """Split -> gallery -> identify (the model's pipeline) -> score: MAP@5, top-1/5, BAKS, BAUS, new-individual
    AUC."""
    from flukeid.data.splits import make_split
    from flukeid.identify.evaluate import evaluate_split
    from flukeid.identify.identifier import Prediction
    from flukeid.identify.predict import write_outputs
    from flukeid.models.artifact import load_model
    from flukeid.report.plots import plot_novelty_pr

    parts = make_split(crop_rows(usable_labels(data), model, crop), split, seed=seed)
    with progress_bar("identifying") as update:
        evaluation = evaluate_split(load_model(model), parts, progress=update)
    paths = evaluation.queries
    predictions = [Prediction(p.name, p, r) for p, r in zip(paths, evaluation.rankings)]
    write_outputs(predictions, out)
    curve = plot_novelty_pr(evaluation.table, evaluation.truths, out / "new_individual_pr.png")
    s = evaluation.scores
    stdout.print(
        f"{split} split seed {seed}: {len(paths)} queries\nMAP@5 {s.map5:.4f}  top-1 {s.top1:.4f}  "
        f"top-5 {s.top5:.4f}  BAKS {s.baks:.4f}  BAUS {s.baus:.4f}  new-individual AUC {s.auc:.4f}\n"
        f"threshold {evaluation.threshold}; oracle-threshold MAP@5 {evaluation.oracle_map5:.4f}; "
        f"{evaluation.seconds_per_query:.2f} s per query\noutputs in {out} (PR curve: {curve})"
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
    from flukeid.identify.cluster import cluster_photos
    from flukeid.identify.identifier import Identifier

    with progress_bar("clustering") as update:
        update(0, 1)
        paths, labels = cluster_photos(Identifier.load(model), image_paths(images), threshold)
    pd.DataFrame({"Image": [p.name for p in paths], "Cluster": labels}).to_csv(out, index=False)
    stdout.print(f"{len(paths)} photos in {len(set(labels))} clusters -> {out}")


def _settings_with(model: Path, matchers: str | None, shortlist: int | None):  # type: ignore[no-untyped-def]
    """The model's identify settings, with --matchers / --shortlist applied (None: as they are)."""
    import dataclasses

    from flukeid.identify.identifier import load_settings
    from flukeid.matchers import MatcherSettings

    settings = load_settings(model)
    if matchers is not None:
        current = {m.name: m for m in settings.matchers}
        names = [n.strip() for n in matchers.split(",") if n.strip()]
        chosen = tuple(current.get(n) or MatcherSettings(n) for n in names)  # type: ignore[arg-type]
        settings = dataclasses.replace(settings, matchers=chosen)
    if shortlist is not None:
        settings = dataclasses.replace(settings, shortlist=shortlist)
    return settings


MATCHERS_HELP = "Local matchers, comma-separated (sift, aliked, disk, xfeat; '' for none); default: the model's."


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
    from flukeid.identify.tune import frozen_model, tune_model

    artifact = frozen_model(backbone, out, (size, size) if size else None)
    if crop is not None:
        from flukeid.detect.model import attach_detector
        from flukeid.models.artifact import load_model

        attach_detector(out, crop)
        artifact = load_model(out)
    save_settings(out, _settings_with(out, matchers, shortlist))
    message = f"frozen {backbone} model -> {out}"
    if tune_on is not None:
        labels = crop_rows(usable_labels(tune_on), out, None)
        with progress_bar("tuning") as update:
            fusion = tune_model(artifact, labels, progress=update)
        message += f"; {_fusion_summary(fusion)}"
    stdout.print(message)


def _fusion_summary(fusion) -> str:  # type: ignore[no-untyped-def]
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
    labels = crop_rows(usable_labels(data), model, None)
    with progress_bar("tuning") as update:
        fusion = tune_model(load_model(model), labels, seed=seed, settings=settings, progress=update)
    stdout.print(_fusion_summary(fusion))


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
