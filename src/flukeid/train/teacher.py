"""What a student learns from its teachers (`flukeid.train.distill`): targets and the distillation loss.

Teacher targets are computed once, offline, on the un-augmented photos:
- relational: the student's cosine similarities between the different photos of a batch are pulled towards
  the teacher's (an ensemble's similarity is the mean of its members': their unit embeddings are concatenated,
  scaled 1/sqrt(n));
- soft labels: where teachers have a classifier head (ArcFace, softmax...), KL divergence between the student's
  and the teachers' class distributions at temperature T (mean of the teachers' logits), on the classes both know.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from flukeid.config import from_dict
from flukeid.embed import embed_paths
from flukeid.errors import FlukeidError
from flukeid.models.artifact import Artifact
from flukeid.train.losses import LossConfig, build_loss

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    similarity_weight: float = 10.0
    kl_weight: float = 1.0
    temperature: float = 4.0


def _teacher_logits(teacher: Artifact, vectors: np.ndarray) -> np.ndarray | None:
    """(N, teacher classes) logits of the teacher's classifier head, or None when it has none."""
    settings = teacher.extra.get("train", {}).get("loss")
    if not teacher.head_state or settings is None:
        return None
    head = build_loss(from_dict(LossConfig, settings, f"{teacher.path} loss"), len(teacher.labels), vectors.shape[1])
    head.load_state_dict(teacher.head_state)
    with torch.no_grad():
        logits = head.logits(torch.from_numpy(vectors))
    return None if logits is None else logits.numpy()


@dataclass(frozen=True)
class TeacherTargets:
    """Per training row: the teachers' joint embedding; soft-label logits on ``columns`` of the student's classes."""

    vectors: np.ndarray  # (N, sum of teacher dims), rows of norm 1
    logits: np.ndarray | None  # (N, K) mean teacher logits
    columns: np.ndarray | None  # (K,) student class index of each logit column
    usable: np.ndarray  # (N,) False where the teacher could not see the row (unreadable, mirrored)


def teacher_targets(
    teachers: Sequence[Artifact], paths: Sequence[Path], classes: Sequence[str], flipped: Sequence[bool]
) -> TeacherTargets:
    """Embed the training rows with every teacher (cached by content hash) and collect their targets."""
    if not teachers:
        raise FlukeidError("distillation needs at least one teacher model")
    unique = sorted({Path(p) for p in paths})
    joint, logit_sets = [], []
    seen = np.ones(len(paths), dtype=bool)
    for teacher in teachers:
        embedded = embed_paths(teacher, unique)
        where = {p: i for i, p in enumerate(embedded.paths)}
        seen &= np.array([Path(p) in where for p in paths])
        rows = np.array([where.get(Path(p), 0) for p in paths])
        vectors = embedded.vectors[rows] if len(embedded.paths) else np.zeros((len(paths), teacher.model.dim))
        joint.append(vectors / np.sqrt(len(teachers)))
        logits = _teacher_logits(teacher, vectors.astype(np.float32))
        if logits is not None:
            logit_sets.append((teacher.labels, logits))
    logits, columns = None, None
    shared = [c for c in classes if all(c in labels for labels, _ in logit_sets)] if logit_sets else []
    if shared:
        columns = np.array([list(classes).index(c) for c in shared])
        logits = np.mean([lg[:, [labels.index(c) for c in shared]] for labels, lg in logit_sets], axis=0)
    elif logit_sets:
        log.warning("the teachers' classifiers share no class with the student: soft labels are off")
    usable = seen & ~np.asarray(flipped, dtype=bool)
    return TeacherTargets(np.concatenate(joint, axis=1).astype(np.float32), logits, columns, usable)


class DistillLoss(nn.Module):
    """``forward(student embeddings (B, D), student logits (B, C) or None, row index (B,)) -> scalar``."""

    def __init__(self, targets: TeacherTargets, cfg: DistillConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("vectors", torch.from_numpy(targets.vectors), persistent=False)
        self.register_buffer("usable", torch.from_numpy(targets.usable), persistent=False)
        self.logits: Tensor | None
        self.columns: Tensor | None
        has_logits = targets.logits is not None and targets.columns is not None
        self.register_buffer("logits", torch.from_numpy(targets.logits).float() if has_logits else None, False)
        self.register_buffer("columns", torch.from_numpy(targets.columns) if has_logits else None, False)

    def forward(self, embeddings: Tensor, student_logits: Tensor | None, index: Tensor) -> Tensor:
        keep = self.usable[index]
        embeddings, index = embeddings.float()[keep], index[keep]
        if len(index) < 2:
            return embeddings.sum() * 0.0
        teacher = self.vectors[index]
        # pairs of two different photos: a batch repeats photos (singletons are drawn m times), and a photo's
        # similarity to its own augmented copy is the identity loss's business, not the teacher's
        pairs = index[:, None] != index[None, :]
        if not pairs.any():
            return embeddings.sum() * 0.0
        gap = (embeddings @ embeddings.T - teacher @ teacher.T)[pairs]
        loss = self.cfg.similarity_weight * gap.pow(2).mean()
        if self.logits is not None and self.columns is not None and student_logits is not None:
            t = self.cfg.temperature
            student = torch.log_softmax(student_logits.float()[keep][:, self.columns] / t, dim=1)
            target = torch.softmax(self.logits[index] / t, dim=1)
            loss = loss + self.cfg.kl_weight * t * t * nn.functional.kl_div(student, target, reduction="batchmean")
        return loss
