"""Fit a model's identification on an open-set split of a labelled catalogue: the calibration of every matcher,
their fusion, the new_whale threshold and P(best match right) (fusion.json), and the embedding's own threshold and
calibration (threshold.json, calibration.json).

Training does the embedding's part on its own validation split; ``tune_model`` does all of it for any model
directory (a frozen ImageNet model, or a trained one on another catalogue).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flukeid.data.splits import make_split
from flukeid.gallery.build import build_gallery
from flukeid.identify.calibration import Isotonic, Logistic, fit_calibration
from flukeid.identify.fusion import GLOBAL, Fusion
from flukeid.identify.identifier import Identifier, Progress, Scored, load_settings, save_settings
from flukeid.identify.ranking import ScoreTable, tune_threshold
from flukeid.identify.settings import IdentifySettings
from flukeid.models.artifact import Artifact, ModelConfig, build_model, load_model, save_model
from flukeid.models.folder import ModelFolder


@dataclass(frozen=True)
class Tuning:
    threshold: float
    map5: float


def write_tuning(model_dir: Path, table: ScoreTable, truths: list[str]) -> Tuning:
    """Store the embedding's own tuned threshold (threshold.json) and calibration (calibration.json)."""
    folder = ModelFolder(model_dir)
    fit = tune_threshold(table, truths)
    fit_calibration(table, truths).save(folder.calibration)
    info = json.loads(folder.threshold.read_text()) if folder.threshold.is_file() else {}
    info.update({"threshold": fit.threshold, "val_map5": fit.map5})
    folder.threshold.write_text(json.dumps(info, indent=2))
    return Tuning(fit.threshold, fit.map5)


def fit_fusion(scored: Scored, truths: Sequence[str], settings: IdentifySettings, model_id: str) -> Fusion:
    """Calibrate every component on the shortlisted pairs of validation queries (same individual or not), then fit
    the new_whale threshold and P(best match right) on the fused per-individual scores."""
    pairs = scored.pairs
    names = np.asarray(scored.table.individuals, dtype=object)
    same = names[pairs.column] == np.asarray(truths, dtype=object)[pairs.query] if len(pairs.query) else []
    alone = len(pairs.raw) == 1  # no local matcher: the embedding is all there is to fuse
    kept = {name: raw for name, raw in pairs.raw.items() if name != GLOBAL or settings.fuse_global or alone}
    components = {name: Isotonic.fit(raw, same) for name, raw in kept.items()}
    draft = Fusion(settings, model_id, components, 0.0, Logistic((0.0, 0.0), 0.0), 0.0, len(same))
    fused = draft.table(scored.cosine, pairs)
    fit = tune_threshold(fused, list(truths))
    match = fit_calibration(fused, list(truths)).match
    return Fusion(settings, model_id, components, fit.threshold, match, fit.map5, len(same))


def tune_model(
    artifact: Artifact,
    labels: pd.DataFrame,
    seed: int = 0,
    settings: IdentifySettings | None = None,
    progress: Progress | None = None,
) -> Fusion:
    """Split ``labels`` open-set (their photos as they are: crop them first if the model crops), search the queries
    against the catalogue part with the model's identify settings (or ``settings``, then stored), and store the
    fitted fusion and the embedding's own tuning in the model folder."""
    if settings is not None:
        save_settings(artifact.path, settings)
    settings = load_settings(artifact.path)
    split = make_split(labels, "open", seed=seed, query_share=0.2, unknown_share=0.2)
    with tempfile.TemporaryDirectory(prefix="flukeid-tune-") as tmp:
        gallery = build_gallery(artifact, split.train, Path(tmp) / "gallery").gallery
        identifier = Identifier(artifact, gallery, settings, local=True)
        scored = identifier.score(list(split.test["path"].map(Path)), progress)
    truths = list(split.test.set_index(split.test["path"].map(Path)).loc[scored.paths, "Id"])
    write_tuning(artifact.path, scored.cosine, truths)
    fusion = fit_fusion(scored, truths, settings, artifact.model_id)
    fusion.save(ModelFolder(artifact.path).fusion)
    return fusion


def frozen_model(
    backbone: str, out: Path, image_size: tuple[int, int] | None = None, detector: Path | None = None
) -> Artifact:
    """A model directory of pretrained ImageNet features (GeM-pooled, no neck, no training); with ``detector`` (a
    detector folder) the model keeps a copy of it and crops every photo with it."""
    cfg = ModelConfig(backbone=backbone, pretrained=True, embedding_dim=None, image_size=image_size)
    save_model(out, build_model(cfg).eval(), cfg, labels=[], threshold=None, extra={"frozen": True})
    if detector is not None:
        from flukeid.detect.model import attach_detector

        attach_detector(out, detector)
    return load_model(out)
