"""Pseudo-labels (noisy student): a trained model labels unlabelled photos it is sure of; the next round trains
on catalogue + those labels with strong augmentation; repeat.

Pseudo-labels live only in the run folder (``pseudo_labels.csv``: photo, individual, probability, round); the
curated catalogue is never written to.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.transforms import AugmentConfig
from flukeid.errors import FlukeidError
from flukeid.gallery.build import build_gallery
from flukeid.identify.identifier import Identifier, load_fusion, load_settings
from flukeid.models.artifact import Artifact, load_model
from flukeid.train.config import TrainConfig
from flukeid.train.engine import TrainResult, train

log = logging.getLogger(__name__)
PSEUDO_FILE = "pseudo_labels.csv"
COLUMNS = ["Image", "path", "Id", "probability", "round"]


@dataclass(frozen=True)
class PseudoRun:
    model_dir: Path  # a copy of the last round's model in out/model
    rounds: list[TrainResult]  # round 0 is the catalogue alone
    labels: pd.DataFrame  # every pseudo-label kept: Image, path, Id, probability, round


def pseudo_label(
    artifact: Artifact, catalogue: pd.DataFrame, photos: Sequence[Path], min_probability: float, round_: int
) -> pd.DataFrame:
    """Label ``photos`` whose calibrated P(best match right) >= ``min_probability`` (never ``new_whale``), as
    `flukeid identify` answers them: the model's own pipeline against a gallery of ``catalogue``."""
    settings = load_settings(artifact.path)
    with tempfile.TemporaryDirectory(prefix="flukeid-pseudo-") as tmp:
        gallery = build_gallery(artifact, catalogue, Path(tmp) / "gallery").gallery
        identifier = Identifier(artifact, gallery, settings, load_fusion(artifact, settings))
        if identifier.fusion is None and identifier.calibration is None:
            raise FlukeidError(f"{artifact.path}: not calibrated; tune the model first (`flukeid tune`)")
        predictions = identifier.identify(photos, k=1, threshold=-np.inf) if len(gallery) else []
    keep = [
        p
        for p in predictions
        if p.error is None
        and p.probability is not None
        and p.probability >= min_probability
        and p.ranking.ids[0] != NEW_WHALE
    ]
    return pd.DataFrame(
        {
            "Image": [p.path.name for p in keep],
            "path": [p.path for p in keep],
            "Id": [p.ranking.ids[0] for p in keep],
            "probability": [round(float(p.probability or 0.0), 4) for p in keep],
            "round": round_,
        },
        columns=COLUMNS,
    )


def train_with_pseudo_labels(
    labels: pd.DataFrame,
    unlabelled: Sequence[Path],
    cfg: TrainConfig,
    out: Path,
    rounds: int,
    min_probability: float = 0.9,
    student: TrainConfig | None = None,
    progress: bool = True,
) -> PseudoRun:
    """Round 0 trains on ``labels``; each later round pseudo-labels ``unlabelled`` with the previous model and
    trains ``student`` (default: ``cfg`` with strong augmentation) on catalogue + pseudo-labels."""
    if rounds < 0 or not 0 < min_probability <= 1:
        raise FlukeidError(f"need rounds >= 0 and 0 < min_probability <= 1, got {rounds} and {min_probability}")
    student = student or dataclasses.replace(cfg, augment=AugmentConfig("strong"))
    results = [train(labels, cfg, out / "round0", resume=False, progress=progress)]
    history = [pd.DataFrame(columns=COLUMNS)]
    for r in range(1, rounds + 1):  # each round's model relabels every unlabelled photo afresh
        found = pseudo_label(load_model(results[-1].model_dir), labels, unlabelled, min_probability, r)
        log.info("round %d: %d of %d unlabelled photos pseudo-labelled", r, len(found), len(unlabelled))
        history.append(found)
        pd.concat(history, ignore_index=True).to_csv(out / PSEUDO_FILE, index=False)
        rows = pd.concat([labels[["Image", "Id", "path"]], found[["Image", "Id", "path"]]], ignore_index=True)
        results.append(train(rows, student, out / f"round{r}", resume=False, progress=progress))
    final = out / "model"  # the last round's model, where `flukeid train` always puts it
    if final.exists():
        shutil.rmtree(final)
    shutil.copytree(results[-1].model_dir, final)
    return PseudoRun(final, results, pd.concat(history, ignore_index=True))
