"""Identification: from query-to-gallery similarities to ranked answers.

Per-individual scores and centroids, top-k rankings with a `new_whale` threshold and its tuning
for MAP@5, novelty scores; later calibration, ensembles, verification and re-ranking.
"""
