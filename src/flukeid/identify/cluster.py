"""Group unlabelled photos into putative individuals."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from flukeid.identify.fusion import GLOBAL
from flukeid.identify.identifier import Identifier


def _numbered(raw: np.ndarray) -> list[int]:
    """Cluster numbers by first appearance."""
    order: dict[int, int] = {}
    return [order.setdefault(int(c), len(order)) for c in raw]


def cluster_embeddings(vectors: np.ndarray, threshold: float) -> list[int]:
    """Average-linkage clusters of unit vectors (N, D): photos join while their mean cosine is >= threshold.

    Returns one cluster number per photo, numbered by first appearance.
    """
    if len(vectors) < 2:
        return [0] * len(vectors)
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=max(1e-6, 1.0 - threshold)
    )
    return _numbered(model.fit_predict(vectors))


def cluster_probabilities(same: np.ndarray, threshold: float = 0.5) -> list[int]:
    """Average-linkage clusters of a symmetric matrix (N, N) of P(same individual): photos join while their mean
    probability is >= threshold."""
    if len(same) < 2:
        return [0] * len(same)
    distance = 1.0 - np.clip((same + same.T) / 2, 0.0, 1.0)
    np.fill_diagonal(distance, 0.0)
    model = AgglomerativeClustering(
        n_clusters=None, metric="precomputed", linkage="average", distance_threshold=max(1e-6, 1.0 - threshold)
    )
    return _numbered(model.fit_predict(distance))


def cluster_photos(
    identifier: Identifier, paths: Sequence[Path], threshold: float | None = None
) -> tuple[list[Path], list[int]]:
    """Cluster photos with the model's pipeline: each photo is matched locally with its ``shortlist`` nearest
    photos by embedding, every pair gets a fused P(same) (unmatched pairs as no local match verified), and photos
    join while their mean P(same) is >= ``threshold`` (default 0.5). A model not tuned yet clusters on cosine
    at its own threshold. Returns the readable photos and their cluster numbers."""
    embedded = identifier.embed(paths)
    kept, vectors = embedded.photos, embedded.vectors
    if identifier.fusion is None:
        cut = threshold if threshold is not None else (identifier.artifact.threshold or 0.5)
        return kept, cluster_embeddings(vectors, cut)
    n = len(kept)
    cosine = vectors @ vectors.T
    np.fill_diagonal(cosine, -np.inf)
    near = np.argsort(-cosine, axis=1)[:, : identifier.settings.shortlist]
    matched = sorted({(min(i, j), max(i, j)) for i in range(n) for j in near[i].tolist() if i != j})
    everything = np.array([(i, j) for i in range(n) for j in range(i + 1, n)], dtype=np.int64).reshape(-1, 2)
    same = np.zeros((n, n))
    if len(everything):
        unmatched = identifier.fusion.pair_probability(
            {name: np.zeros(len(everything)) for name in identifier.fusion.components}
            | {GLOBAL: np.einsum("pd,pd->p", vectors[everything[:, 0]], vectors[everything[:, 1]])}
        )
        same[everything[:, 0], everything[:, 1]] = unmatched
    if matched:
        pairs = np.array(matched, dtype=np.int64)
        same[pairs[:, 0], pairs[:, 1]] = identifier.embedded_pair_probabilities(embedded.crops, vectors, pairs)
    return kept, cluster_probabilities(same + same.T, 0.5 if threshold is None else threshold)
