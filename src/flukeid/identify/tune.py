"""Fit a model's new_whale threshold and calibration on an open-set split of a labelled catalogue.

Training does this on its own validation split; ``tune_model`` does it for any model directory (a frozen
ImageNet model, or a trained one on another catalogue).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid.data.splits import make_split
from flukeid.identify.calibration import fit_calibration
from flukeid.identify.evaluate import evaluate_split
from flukeid.identify.ranking import ScoreTable, tune_threshold
from flukeid.identify.rerank import FusionFit, RerankConfig, Reranker, fit_fusion
from flukeid.models.artifact import Artifact, ModelConfig, build_model, load_model, save_model


@dataclass(frozen=True)
class Tuning:
    threshold: float
    map5: float


def write_tuning(model_dir: Path, table: ScoreTable, truths: list[str]) -> Tuning:
    """Store the tuned threshold (threshold.json) and calibration (calibration.json) in the model directory."""
    fit = tune_threshold(table, truths)
    fit_calibration(table, truths).save(model_dir / "calibration.json")
    path = model_dir / "threshold.json"
    info = json.loads(path.read_text()) if path.is_file() else {}
    info.update({"threshold": fit.threshold, "val_map5": fit.map5})
    path.write_text(json.dumps(info, indent=2))
    return Tuning(fit.threshold, fit.map5)


def tune_model(artifact: Artifact, labels: pd.DataFrame, seed: int = 0, unknown_share: float = 0.2) -> Tuning:
    """Split ``labels`` open-set, search its queries against its catalogue part, fit and store the results."""
    split = make_split(labels, "open", seed=seed, query_share=0.2, unknown_share=unknown_share)
    evaluation = evaluate_split(artifact, split)
    return write_tuning(artifact.path, evaluation.table, evaluation.truths)


def tune_rerank(artifact: Artifact, labels: pd.DataFrame, seed: int = 0, cfg: RerankConfig | None = None) -> FusionFit:
    """Fit the local-feature fusion weight and its threshold on an open split of ``labels``; store rerank.json."""
    split = make_split(labels, "open", seed=seed, query_share=0.2, unknown_share=0.2)
    evaluation = evaluate_split(artifact, split)
    reranker = Reranker.for_labels(split.train, cfg)
    inliers = reranker.inliers(evaluation.table, evaluation.queries)
    fit = fit_fusion(reranker, evaluation.table, inliers, evaluation.truths)
    fit.save(artifact.path / "rerank.json")
    return fit


def frozen_model(backbone: str, out: Path, image_size: tuple[int, int] | None = None) -> Artifact:
    """A model directory of pretrained ImageNet features (GeM-pooled, no neck, no training)."""
    cfg = ModelConfig(backbone=backbone, pretrained=True, embedding_dim=None, image_size=image_size)
    save_model(out, build_model(cfg).eval(), cfg, labels=[], threshold=None, extra={"frozen": True})
    return load_model(out)
