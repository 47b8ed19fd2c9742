"""Group unlabelled photos into putative individuals."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering


def cluster_embeddings(vectors: np.ndarray, threshold: float) -> list[int]:
    """Average-linkage clusters of unit vectors (N, D): photos join while their mean cosine is >= threshold.

    Returns one cluster number per photo, numbered by first appearance.
    """
    if len(vectors) == 0:
        return []
    if len(vectors) == 1:
        return [0]
    model = AgglomerativeClustering(
        n_clusters=None, metric="cosine", linkage="average", distance_threshold=max(1e-6, 1.0 - threshold)
    )
    raw = model.fit_predict(vectors)
    order: dict[int, int] = {}
    return [order.setdefault(int(c), len(order)) for c in raw]
