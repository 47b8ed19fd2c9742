"""Catalogue statistics: how many photos, individuals, singletons, unknowns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from flukeid import NEW_WHALE

if TYPE_CHECKING:
    from flukeid.data.catalogue import Catalogue


@dataclass(frozen=True)
class CatalogueStats:
    images: int
    test_images: int
    individuals: int
    singletons: int
    new_whale_images: int
    photos_per_id: dict[int, int]
    """Histogram: number of photos -> number of individuals with that many."""

    @property
    def new_whale_share(self) -> float:
        return self.new_whale_images / self.images if self.images else 0.0

    @property
    def singleton_share(self) -> float:
        return self.singletons / self.individuals if self.individuals else 0.0


def catalogue_stats(labels: pd.DataFrame, test_images: int = 0) -> CatalogueStats:
    """Statistics of labelled rows (columns Image, Id); a photo listed twice counts once (its first row)."""
    labels = labels.drop_duplicates("Image")
    known = labels[labels["Id"] != NEW_WHALE]
    per_id = known.groupby("Id").size()
    histogram = Counter(per_id.tolist())
    return CatalogueStats(
        images=len(labels),
        test_images=test_images,
        individuals=int(per_id.size),
        singletons=int((per_id == 1).sum()),
        new_whale_images=int((labels["Id"] == NEW_WHALE).sum()),
        photos_per_id=dict(sorted(histogram.items())),
    )


def labelled_stats(cat: Catalogue) -> CatalogueStats:
    """`catalogue_stats` of a catalogue's labelled rows (rows with an empty Id left out) and its test photos."""
    return catalogue_stats(cat.labels[cat.labels["Id"] != ""], test_images=len(cat.test))
