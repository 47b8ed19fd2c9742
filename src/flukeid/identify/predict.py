"""Who is this whale? Embed query photos, search the gallery, rank individuals with new_whale inserted."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flukeid import NEW_WHALE
from flukeid.data.submission import write_submission
from flukeid.embed import Progress, embed_paths
from flukeid.gallery import Gallery
from flukeid.identify.calibration import Calibration, match_features
from flukeid.identify.ranking import Ranking, ScoreTable, rank
from flukeid.identify.rerank import FusionFit, Reranker
from flukeid.models.artifact import Artifact


@dataclass(frozen=True)
class Prediction:
    """One query's answer. ``probability``: calibrated P(the best individual is right); ``error``: why a photo
    could not be read (then ``ranking`` is just new_whale)."""

    image: str
    path: Path
    ranking: Ranking
    probability: float | None = None
    error: str | None = None


def predictions_from_table(
    paths: Sequence[Path], table: ScoreTable, threshold: float | None, calibration: Calibration | None, k: int = 5
) -> list[Prediction]:
    rankings = rank(table, k=k, threshold=threshold)
    probabilities = calibration.match(match_features(table)) if calibration and table.individuals else None
    return [
        Prediction(Path(p).name, Path(p), r, None if probabilities is None else float(probabilities[i]))
        for i, (p, r) in enumerate(zip(paths, rankings))
    ]


def identify(
    artifact: Artifact,
    gallery: Gallery,
    paths: Sequence[Path],
    k: int = 5,
    threshold: float | None = None,
    cache: Path | None = None,
    num_workers: int = 2,
    progress: Progress | None = None,
    reranker: Reranker | None = None,
) -> list[Prediction]:
    """Rank catalogue individuals for each photo; unreadable photos come back with their error.

    With ``reranker``, the top candidates are re-scored by local-feature matching with the fusion weight and
    threshold stored in the model folder (``rerank.json``, from ``tune_rerank``).
    """
    gallery.check_model(artifact.model_id)
    embedded = embed_paths(artifact, paths, cache=cache, num_workers=num_workers, progress=progress)
    table = gallery.score_table(embedded.vectors)
    default_threshold = artifact.threshold
    if reranker is not None:
        fusion = FusionFit.load(artifact.path / "rerank.json")
        table = reranker.fuse(table, reranker.inliers(table, embedded.paths), fusion.weight)
        default_threshold = fusion.threshold
    threshold = default_threshold if threshold is None else threshold
    # calibration was fitted on embedding scores: fused scores have no calibrated probability
    calibration = None if reranker else Calibration.load(artifact.path / "calibration.json")
    found = {
        p: pred
        for p, pred in zip(embedded.paths, predictions_from_table(embedded.paths, table, threshold, calibration, k))
    }
    failed = Ranking([NEW_WHALE], [float("nan")])
    return [
        found.get(Path(p)) or Prediction(Path(p).name, Path(p), failed, None, embedded.failed.get(Path(p), "unread"))
        for p in paths
    ]


def write_outputs(predictions: Sequence[Prediction], out: Path) -> dict[str, Path]:
    """Write ``submission.csv`` (Kaggle) and ``predictions.jsonl``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    submission, lines = out / "submission.csv", out / "predictions.jsonl"
    write_submission(submission, {p.image: p.ranking.ids for p in predictions})
    with lines.open("w") as handle:
        for p in predictions:
            record = {
                "image": p.image,
                "ids": p.ranking.ids,
                "scores": [None if np.isnan(s) else round(float(s), 5) for s in p.ranking.scores],
                "probability": p.probability,
                "error": p.error,
            }
            handle.write(json.dumps(record) + "\n")
    return {"submission": submission, "jsonl": lines}
