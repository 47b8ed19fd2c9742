"""Build a gallery from a catalogue's labelled photos with a model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.embed import Progress, embed_paths
from flukeid.gallery.store import Gallery
from flukeid.models.artifact import Artifact


@dataclass(frozen=True)
class BuiltGallery:
    gallery: Gallery
    failed: dict[Path, str]  # unreadable photos and why, left out of the gallery


def build_gallery(
    artifact: Artifact, labels: pd.DataFrame, path: Path, index: str = "flat", progress: Progress | None = None
) -> BuiltGallery:
    """Embed labelled rows (Image, Id, path; ``new_whale`` rows skipped) into a new gallery at ``path``."""
    known = labels[labels["Id"] != NEW_WHALE]
    embedded = embed_paths(artifact, list(known["path"]), progress=progress)
    by_path = known.set_index(known["path"].map(Path))
    gallery = Gallery.create(path, artifact.model_id, artifact.model.dim, index=index)
    rows = by_path.loc[embedded.paths]
    gallery.add(
        list(rows["Image"]), list(rows["Id"]), embedded.vectors, paths=[str(p.resolve()) for p in embedded.paths]
    )
    return BuiltGallery(gallery, embedded.failed)
