"""CLI commands of the gallery stage: `gallery build/info/rebuild`, enroll, remove."""

from __future__ import annotations

from pathlib import Path

import typer

from flukeid.cli.common import checked_labels, cropped_photos, cropped_rows
from flukeid.progress import progress_bar, stdout

gallery_app = typer.Typer(help="Build and inspect galleries (searchable catalogues of embedded photos).")

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
    labels = cropped_rows(checked_labels(data), model, crop)
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
    from flukeid.data.catalogue import image_paths
    from flukeid.data.ids import check_id
    from flukeid.gallery import Gallery
    from flukeid.gallery.build import enroll_photos, gallery_model
    from flukeid.identify.identifier import model_matchers
    from flukeid.models.artifact import load_model

    check_id(id_, "--id")
    g = Gallery.open(gallery)
    artifact = load_model(gallery_model(gallery, model))
    g.check_model(artifact.model_id)  # before cropping
    photos = cropped_photos(image_paths(images), artifact.path)
    enrolled = enroll_photos(g, artifact, photos, id_, model_matchers(artifact.path))
    stdout.print(f"enrolled {enrolled} photo(s) as {id_}; gallery now has {len(g)} photos")


def remove(
    gallery: Path = typer.Argument(..., help="Gallery folder."),
    id_: str | None = typer.Option(None, "--id", help="Remove every photo of this individual."),
    image: list[str] = typer.Option([], help="Remove these photos (by image name)."),
) -> None:
    """Remove an individual or single photos from a gallery."""
    from flukeid.gallery import Gallery

    removed = Gallery.open(gallery).remove(individual=id_, images=image or None)
    stdout.print(f"removed {removed} photo(s)")
