"""Plots written as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from flukeid.data.stats import CatalogueStats


def plot_photos_per_id(stats: CatalogueStats, path: Path, title: str = "") -> Path:
    """Bar chart of the images-per-individual histogram."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    counts = list(stats.photos_per_id)
    ax.bar([str(c) for c in counts], [stats.photos_per_id[c] for c in counts], color="#2b6f9e")
    ax.set_xlabel("photos per individual")
    ax.set_ylabel("individuals")
    ax.set_title(
        title
        or f"{stats.individuals} individuals, {stats.images} photos, "
        f"{stats.singleton_share:.0%} singletons, {stats.new_whale_share:.0%} new_whale"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
