"""Plots written as PNG files (matplotlib, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from flukeid import NEW_WHALE
from flukeid.data.stats import CatalogueStats
from flukeid.scores import ScoreTable


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


def plot_novelty_pr(table: ScoreTable, truths: Sequence[str], path: Path) -> Path:
    """Precision/recall of calling a query new_whale as the threshold on its best score moves."""
    novelty = -table.scores.max(axis=1) if table.scores.shape[1] else np.zeros(len(truths))
    is_new = np.array([t == NEW_WHALE for t in truths])
    order = np.argsort(-novelty)
    hits = np.cumsum(is_new[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / max(1, is_new.sum())
    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    ax.plot(recall, precision, color="#7a4bc4")
    ax.set_xlabel("recall of new individuals")
    ax.set_ylabel("precision")
    ax.set_title("calling new_whale: precision vs recall")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
