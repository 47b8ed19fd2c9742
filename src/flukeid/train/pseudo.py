"""Pseudo-labels (noisy student): a trained model labels unlabelled photos it is sure of; the next round trains
on catalogue + those labels with strong augmentation; repeat.

Pseudo-labels live only in the run folder (``pseudo_labels.csv``: photo, individual, probability, round); the
curated catalogue is never written to.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.transforms import AugmentConfig
from flukeid.embed import embed_paths
from flukeid.errors import FlukeidError
from flukeid.identify.calibration import Calibration, match_features
from flukeid.identify.ranking import individual_scores, rank
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
    """Label ``photos`` whose calibrated P(best match right) >= ``min_probability`` (never ``new_whale``)."""
    calibration = Calibration.load(artifact.path / "calibration.json")
    if calibration is None:
        raise FlukeidError(f"{artifact.path}: no calibration.json; tune the model first (`flukeid tune`)")
    known = catalogue[catalogue["Id"] != NEW_WHALE]
    gallery = embed_paths(artifact, list(known["path"]))
    ids = list(known.set_index(known["path"].map(Path)).loc[gallery.paths, "Id"])
    queries = embed_paths(artifact, photos)
    if not len(queries.paths) or not ids:
        return pd.DataFrame(columns=COLUMNS)
    table = individual_scores(queries.vectors @ gallery.vectors.T, ids)
    probability = calibration.match(match_features(table))
    best = [r.ids[0] for r in rank(table, k=1)]
    keep = [i for i, p in enumerate(probability) if p >= min_probability and best[i] != NEW_WHALE]
    return pd.DataFrame(
        {
            "Image": [queries.paths[i].name for i in keep],
            "path": [queries.paths[i] for i in keep],
            "Id": [best[i] for i in keep],
            "probability": [round(float(probability[i]), 4) for i in keep],
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
