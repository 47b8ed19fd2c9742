"""Plots as matplotlib figures, written as PNG files or embedded in a report as data: URIs.

Figures are made with `matplotlib.figure.Figure` (no pyplot): no display, no global backend switch, nothing left
open between calls.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from flukeid import NEW_WHALE
from flukeid.data.stats import CatalogueStats
from flukeid.report.summary import BucketScore, Novelty, ScoreSamples
from flukeid.scores import ScoreTable

SAME, DIFFERENT, NEW, THRESHOLD = "#2a9d57", "#b3261e", "#7a4bc4", "#1d2733"


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def png_data_uri(fig: Figure) -> str:
    """The figure as a data: URI of a PNG, for an <img> of a self-contained page."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig)).decode()


def save_png(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(fig))
    return path


def _figure(width: float = 5.0, height: float = 3.4) -> Figure:
    return Figure(figsize=(width, height), dpi=100, layout="tight")


def _threshold_line(ax, threshold: float | None) -> None:  # type: ignore[no-untyped-def]
    if threshold is not None and np.isfinite(threshold):
        ax.axvline(
            threshold, color=THRESHOLD, linestyle="--", linewidth=1.2, label=f"new_whale threshold {threshold:.3f}"
        )


def similarity_figure(samples: ScoreSamples, threshold: float | None) -> Figure:
    """Histograms of the candidates' scores: their true individual against other individuals, with the threshold."""
    fig = _figure()
    ax = fig.add_subplot()
    values = np.concatenate([samples.same, samples.different])
    bins = np.linspace(values.min(), values.max(), 31) if values.size and np.ptp(values) > 0 else 30
    for sample, colour, label in ((samples.different, DIFFERENT, "different individual"), (samples.same, SAME, "same")):
        if sample.size:
            ax.hist(sample, bins=bins, color=colour, alpha=0.6, density=True, label=f"{label} ({sample.size})")
    _threshold_line(ax, threshold)
    ax.set_xlabel("score of a top-5 candidate")
    ax.set_ylabel("density")
    ax.set_title("same vs different individuals")
    ax.legend(fontsize=8)
    return fig


def best_score_figure(scores: np.ndarray, threshold: float | None) -> Figure:
    """Histogram of each query's best individual score, with the threshold (answers unknown)."""
    fig = _figure()
    ax = fig.add_subplot()
    finite = scores[np.isfinite(scores)]
    if finite.size:
        ax.hist(finite, bins=30, color="#2b6f9e", alpha=0.8)
    _threshold_line(ax, threshold)
    ax.set_xlabel("best individual's score")
    ax.set_ylabel("queries")
    ax.set_title("best match of each query")
    if threshold is not None:
        ax.legend(fontsize=8)
    return fig


def novelty_pr_figure(novelty: Novelty, threshold: float | None = None) -> Figure:
    """Precision/recall of calling a query new as the threshold on its best score moves; the threshold's point."""
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    order = np.argsort(-novelty.scores, kind="stable")
    hits = np.cumsum(novelty.is_new[order])
    precision = hits / np.arange(1, len(order) + 1)
    recall = hits / max(1, int(novelty.is_new.sum()))
    ax.plot(recall, precision, color=NEW)
    if threshold is not None and novelty.scores.size:
        called = novelty.scores > -threshold  # the best score is under the threshold
        right = int((called & novelty.is_new).sum())
        point = (right / max(1, int(novelty.is_new.sum())), right / max(1, int(called.sum())))
        ax.plot(*point, "o", color=THRESHOLD, label=f"threshold {threshold:.3f}")
        ax.legend(fontsize=8, loc="lower left")
    ax.set_xlabel("recall of new individuals")
    ax.set_ylabel("precision")
    ax.set_title("calling new_whale: precision vs recall")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    return fig


def map5_by_photos_figure(buckets: Sequence[BucketScore]) -> Figure:
    """MAP@5 by how many catalogue photos the query's individual has, each bar with its number of queries."""
    fig = _figure(4.6, 3.4)
    ax = fig.add_subplot()
    labels = [b.label for b in buckets]
    bars = ax.bar(labels, [b.map5 for b in buckets], color=[NEW if b.label == "new" else "#2b6f9e" for b in buckets])
    ax.bar_label(bars, labels=[f"{b.queries} q" for b in buckets], fontsize=8)
    ax.set_xlabel("catalogue photos of the query's individual")
    ax.set_ylabel("MAP@5")
    ax.set_ylim(0, 1.1)
    ax.set_title("MAP@5 by photos per individual")
    return fig


def plot_photos_per_id(stats: CatalogueStats, path: Path, title: str = "") -> Path:
    """Bar chart of the images-per-individual histogram."""
    fig = _figure(7, 4)
    ax = fig.add_subplot()
    counts = list(stats.photos_per_id)
    ax.bar([str(c) for c in counts], [stats.photos_per_id[c] for c in counts], color="#2b6f9e")
    ax.set_xlabel("photos per individual")
    ax.set_ylabel("individuals")
    ax.set_title(
        title
        or f"{stats.individuals} individuals, {stats.images} photos, "
        f"{stats.singleton_share:.0%} singletons, {stats.new_whale_share:.0%} new_whale"
    )
    return save_png(fig, path)


def plot_novelty_pr(table: ScoreTable, truths: Sequence[str], path: Path, threshold: float | None = None) -> Path:
    """Precision/recall of calling a query new_whale as the threshold on its best score moves, as a PNG file."""
    scores = -table.scores.max(axis=1) if table.scores.shape[1] else np.zeros(len(truths))
    is_new = np.array([t == NEW_WHALE for t in truths], dtype=bool)
    return save_png(novelty_pr_figure(Novelty(scores.astype(np.float64), is_new), threshold), path)
