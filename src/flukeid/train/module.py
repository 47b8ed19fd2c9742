"""The Lightning module: embedding model + identity loss, validated by open-set MAP@5 every epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch

from flukeid.identify.ranking import rank, tune_threshold
from flukeid.metrics import top_k_accuracy
from flukeid.models.head import EmbeddingModel
from flukeid.scores import ScoreTable, individual_scores
from flukeid.train.config import OptimConfig
from flukeid.train.losses import IdentityLoss
from flukeid.train.teacher import DistillLoss


@dataclass(frozen=True)
class ValidationSet:
    """Validation rows in order: the first ``len(gallery_ids)`` are the gallery, the rest are queries."""

    gallery_ids: list[str]
    truths: list[str]  # each query's correct answer (new_whale for unknown individuals)


@dataclass(frozen=True)
class ValidationResult:
    table: ScoreTable
    truths: list[str]
    map5: float
    top1: float
    threshold: float


def evaluate_embeddings(embeddings: np.ndarray, val: ValidationSet) -> ValidationResult:
    """Search queries against the gallery, tune the new_whale threshold, score MAP@5 and top-1 (known)."""
    gallery, queries = embeddings[: len(val.gallery_ids)], embeddings[len(val.gallery_ids) :]
    table = individual_scores(queries @ gallery.T, val.gallery_ids)
    fit = tune_threshold(table, val.truths)
    plain = [r.ids for r in rank(table, k=5)]
    top1 = top_k_accuracy(plain, val.truths, k=1, known_only=True)
    return ValidationResult(table, val.truths, fit.map5, top1, fit.threshold)


class IdentityModule(L.LightningModule):
    """Train ``model`` with ``loss``; AdamW with a lower backbone lr, warm-up + cosine, frozen first epochs."""

    def __init__(
        self,
        model: EmbeddingModel,
        loss: IdentityLoss,
        optim: OptimConfig,
        val: ValidationSet | None,
        distill: DistillLoss | None = None,
    ):
        super().__init__()
        self.model, self.loss, self.optim, self.val, self.distill = model, loss, optim, val, distill
        self._val_embeddings: list[torch.Tensor] = []
        self.last_validation: ValidationResult | None = None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)

    def _set_backbone_trainable(self, trainable: bool) -> None:
        for p in self.model.backbone.parameters():
            p.requires_grad_(trainable)
        self.model.backbone.train(trainable and self.training)  # frozen backbone keeps its BN statistics

    def on_train_epoch_start(self) -> None:
        self._set_backbone_trainable(self.current_epoch >= self.optim.freeze_epochs)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        images, labels, *index = batch  # the row index comes along when distilling
        embeddings = self.model(images)
        loss = self.loss(embeddings, labels)
        if self.distill is not None:
            teacher_term = self.distill(embeddings, self.loss.logits(embeddings), index[0])
            self.log("train/distill", teacher_term, on_step=False, on_epoch=True, batch_size=len(labels))
            loss = loss + teacher_term
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(labels))
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._val_embeddings.append(self.model(batch[0]).float().cpu())

    def on_validation_epoch_end(self) -> None:
        if not self._val_embeddings or self.val is None:
            return
        embeddings = torch.cat(self._val_embeddings).numpy()
        self._val_embeddings.clear()
        if self.trainer.sanity_checking or len(embeddings) != len(self.val.gallery_ids) + len(self.val.truths):
            return
        result = evaluate_embeddings(embeddings, self.val)
        self.last_validation = result
        self.log_dict(
            {"val/map5": result.map5, "val/top1": result.top1, "val/threshold": result.threshold},
            prog_bar=True,
        )

    def configure_optimizers(self) -> dict:
        backbone = list(self.model.backbone.parameters())
        backbone_ids = {id(p) for p in backbone}
        head = [p for p in self.parameters() if id(p) not in backbone_ids]
        groups = [
            {"params": head, "lr": self.optim.lr},
            {"params": backbone, "lr": self.optim.lr * self.optim.backbone_lr_scale},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=self.optim.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        per_epoch = total / max(1, self.trainer.max_epochs or 1)
        warmup = max(1, int(self.optim.warmup_epochs * per_epoch))

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
