"""Knowledge distillation: a small student (e.g. MobileNetV2 or EfficientNet-Lite0, for CPU users) learns from a
teacher model or an ensemble next to its own metric loss (targets and loss: `flukeid.train.teacher`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from flukeid import NEW_WHALE
from flukeid.data.splits import Split, make_split
from flukeid.embed import embed_paths
from flukeid.models.artifact import Artifact, load_model
from flukeid.train.config import TrainConfig
from flukeid.train.engine import train
from flukeid.train.module import ValidationSet, evaluate_embeddings
from flukeid.train.teacher import DistillConfig


@dataclass(frozen=True)
class DistillResult:
    model_dir: Path
    student_map5: float | None  # on the training run's validation split
    teacher_map5: float | None  # the teachers (ensemble) on the same split
    student_images_per_s: float  # CPU embedding throughput on the validation photos
    teacher_images_per_s: float


def _throughput(artifacts: Sequence[Artifact], paths: Sequence[Path]) -> float:
    start = time.perf_counter()
    for artifact in artifacts:
        embed_paths(artifact, paths, device="cpu", num_workers=0)
    return len(paths) / max(time.perf_counter() - start, 1e-9)


def _validation_map5(artifacts: Sequence[Artifact], split: Split) -> float | None:
    gallery = split.train[split.train["Id"] != NEW_WHALE]
    if split.test.empty or gallery.empty:
        return None
    paths = [Path(p) for p in [*gallery["path"], *split.test["path"]]]
    joint = []
    for artifact in artifacts:
        embedded = embed_paths(artifact, paths)
        if len(embedded.paths) != len(paths):
            return None
        joint.append(embedded.vectors / np.sqrt(len(artifacts)))
    val = ValidationSet(list(gallery["Id"]), list(split.test["Id"]))
    return evaluate_embeddings(np.concatenate(joint, axis=1), val).map5


def distill_model(
    teachers: Sequence[Path],
    labels: pd.DataFrame,
    cfg: TrainConfig,
    out: Path,
    distill: DistillConfig | None = None,
    progress: bool = True,
) -> DistillResult:
    """Train ``cfg.model`` (the student) on ``labels`` with its own loss plus the teachers' targets; compare
    student and teachers on the run's validation split (MAP@5) and in CPU images/s."""
    loaded = [load_model(t) for t in teachers]
    result = train(labels, cfg, out, resume=False, progress=progress, teachers=loaded, distill=distill)
    split = make_split(labels, "open", cfg.seed, cfg.val_query_share, cfg.val_unknown_share)
    student = load_model(result.model_dir)
    sample = [Path(p) for p in split.test["path"]][:64] or [Path(p) for p in labels["path"]][:64]
    return DistillResult(
        result.model_dir,
        result.val_map5,
        _validation_map5(loaded, split),
        _throughput([student], sample),
        _throughput(loaded, sample),
    )
