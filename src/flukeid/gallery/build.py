"""Build a gallery from a catalogue's labelled photos with a model, and enroll more photos into it.

The gallery is built whole in a temporary sibling folder, marked unfinished until its photos are in, then renamed
into place: an interrupted build (Ctrl-C, a killed process) leaves the destination as it was, never an empty
gallery that looks valid. A build replaces an unfinished gallery, and a complete one only when asked to. The
gallery records the model folder it was built with (`gallery_model` reads it back), so enrolling needs no model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.embed import describe_failures, embed_paths
from flukeid.errors import FlukeidError
from flukeid.folders import replacing_folder
from flukeid.gallery.local import store_local_features
from flukeid.gallery.store import MODEL_LINK, Gallery, check_build_target, check_individuals, store_of
from flukeid.gallery.vectors import StoreSpec, forget_store, release_store
from flukeid.matchers import LocalMatcher
from flukeid.models.artifact import Artifact
from flukeid.progress import Progress

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuiltGallery:
    gallery: Gallery
    failed: dict[Path, str]  # unreadable photos and why, left out of the gallery
    replaced: str | None = None  # what the build replaced at its destination, said in words


def build_gallery(
    artifact: Artifact,
    labels: pd.DataFrame,
    path: Path,
    index: str = "flat",
    progress: Progress | None = None,
    replace: bool = False,
    matchers: Sequence[LocalMatcher] = (),
    store: str = "faiss",
    milvus_uri: str | None = None,
) -> BuiltGallery:
    """Embed labelled rows (Image, Id, path; ``new_whale`` rows skipped) into a new gallery at ``path``, which
    records the model's folder, with the photos' local features for ``matchers``, searched through the vector
    ``store`` ("faiss", or "milvus" at ``milvus_uri``: `flukeid.gallery.vectors`). ``path`` must be new, an empty
    folder or an unfinished gallery; with ``replace`` a complete gallery there is replaced too (it stays until the
    new one is complete; a Milvus collection of the old one is dropped afterwards)."""
    path = Path(path)
    replaced = check_build_target(path, replace)
    StoreSpec.new(store, milvus_uri)  # refuses a store that cannot be used before the long part
    old_store = _store_of(path) if replaced else None
    known = labels[labels["Id"] != NEW_WHALE]
    check_individuals(list(known["Image"]), list(known["Id"]))  # before the long part: embedding
    embedded = embed_paths(artifact, list(known["path"]), progress=progress)
    by_path = known.set_index(known["path"].map(Path))
    rows = by_path.loc[embedded.paths]
    with replacing_folder(path) as folder:
        gallery = Gallery.create(
            folder, artifact.model_id, artifact.dim, index, building=True, store=store, milvus_uri=milvus_uri
        )
        try:
            gallery.add(
                list(rows["Image"]),
                list(rows["Id"]),
                embedded.vectors,
                paths=[str(p.resolve()) for p in embedded.paths],
            )
            _record_model(folder, artifact.path)
            store_local_features(gallery, matchers, progress=progress)
            gallery.finish()
            check_build_target(path, replace)  # what was there may have changed during the build
        except BaseException:
            gallery.discard()  # a Milvus server keeps no collection of a build that did not finish
            raise
        gallery.close()  # an in-process Milvus Lite server lets go of the folder before it is renamed
        if old_store is not None:
            release_store(old_store, path)
    if old_store is not None:
        forget_store(old_store, path)
    if replaced:
        log.info("%s", replaced)
    return BuiltGallery(Gallery.open(path, gallery.settings), embedded.failed, replaced)


def _store_of(path: Path) -> StoreSpec | None:
    """The vector store of the gallery a build replaces, None where it cannot be read."""
    try:
        return store_of(path)
    except FlukeidError:
        return None


def _record_model(gallery: Path, model: Path) -> None:
    (gallery / MODEL_LINK).write_text(str(Path(model).resolve()))


def gallery_model(gallery: Path, model: Path | None = None) -> Path:
    """The model folder to embed photos for ``gallery`` with: ``model`` when given, else the one its build
    recorded; FlukeidError when there is neither."""
    if model is not None:
        return model
    link = Path(gallery) / MODEL_LINK
    if not link.is_file():
        raise FlukeidError(f"{gallery}: no model recorded for this gallery; pass --model MODEL_DIR")
    return Path(link.read_text().strip())


def enroll_photos(
    gallery: Gallery, artifact: Artifact, photos: list[Path], individual: str, matchers: Sequence[LocalMatcher] = ()
) -> int:
    """Add ``photos`` of one individual to ``gallery`` with their local features for ``matchers``: all of them
    or, when one cannot be read, none (FlukeidError naming them). Photos are used as they are: crop them first if
    the model crops (`flukeid.detect.crop.crop_queries`). The gallery must have been built with ``artifact``.
    Returns how many were added."""
    gallery.check_model(artifact.model_id)
    embedded = embed_paths(artifact, photos)
    if embedded.failed:
        raise FlukeidError(
            f"{len(embedded.failed)} photo(s) cannot be read, so none was enrolled "
            f"({describe_failures(embedded.failed)}); fix or leave them out"
        )
    ids = gallery.add(
        [p.name for p in embedded.paths],
        [individual] * len(embedded.paths),
        embedded.vectors,
        paths=[str(p.resolve()) for p in embedded.paths],
    )
    store_local_features(gallery, matchers, list(gallery.photos_by_id(ids).values()))
    return len(embedded.paths)
