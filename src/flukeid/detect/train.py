"""Train the fluke box detector with Lightning: GIoU + L1 loss, augmentations that move the box, a held-out
share of the boxes scored at the end (mean IoU, AP@0.5, mAP@[.5:.95])."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import RichProgressBar
from torch.utils.data import DataLoader
from torchvision.ops import box_iou, generalized_box_iou_loss

from flukeid.data.transforms import AugmentConfig, build_transform
from flukeid.detect.data import BoxDataset, BoxRows
from flukeid.detect.model import Detector, DetectorConfig, build_detector, save_detector
from flukeid.detect.network import BoxDetector
from flukeid.detect.predict import DetectorEvaluation, evaluate_detector
from flukeid.errors import ConfigError
from flukeid.progress import quiet_lightning

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectTrainConfig:
    """Everything `flukeid detect train` can set (YAML or ``--set key=value``)."""

    model: DetectorConfig = field(default_factory=DetectorConfig)
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig("light", rotate=5))
    epochs: int = 15
    batch_size: int = 16
    lr: float = 3e-3
    backbone_lr_scale: float = 0.3
    weight_decay: float = 1e-4
    l1_weight: float = 2.0
    val_share: float = 0.2  # boxes held out and scored at the end
    num_workers: int = 2
    seed: int = 0
    accelerator: str = "auto"


class BoxModule(L.LightningModule):
    def __init__(self, model: BoxDetector, cfg: DetectTrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, targets = batch
        boxes = self.model(images)
        giou = generalized_box_iou_loss(boxes, targets, reduction="mean")
        loss = giou + self.cfg.l1_weight * torch.nn.functional.l1_loss(boxes, targets)
        iou = box_iou(boxes.detach(), targets).diagonal().mean()
        self.log_dict({"loss": loss, "train_iou": iou}, prog_bar=True, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self) -> dict[str, object]:
        groups = [
            {"params": self.model.backbone.parameters(), "lr": self.cfg.lr * self.cfg.backbone_lr_scale},
            {"params": self.model.head.parameters(), "lr": self.cfg.lr},
        ]
        optimizer = torch.optim.AdamW(groups, weight_decay=self.cfg.weight_decay)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=[g["lr"] for g in groups],
            total_steps=int(self.trainer.estimated_stepping_batches),
            pct_start=0.15,
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@dataclass(frozen=True)
class DetectorTraining:
    path: Path
    evaluation: DetectorEvaluation | None  # on the held-out boxes (None when val_share is 0)
    held_out: BoxRows


def _split(rows: BoxRows, share: float, seed: int) -> tuple[BoxRows, BoxRows]:
    if not 0 <= share < 1:
        raise ConfigError(f"val_share must be in [0, 1), got {share}")
    order = np.random.default_rng(seed).permutation(len(rows))
    held = round(share * len(rows))
    if len(rows) - held < 2:
        raise ConfigError(f"need at least 2 training boxes, have {len(rows)} with {held} held out")
    return rows.subset(order[held:]), rows.subset(order[:held])


def train_detector(rows: BoxRows, cfg: DetectTrainConfig, out: Path, progress: bool = True) -> DetectorTraining:
    """Train on ``rows`` (less the held-out share), save to ``out``, score on the held-out boxes."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    train_rows, held_out = _split(rows, cfg.val_share, cfg.seed)
    model = build_detector(cfg.model)
    spec, size = model.backbone.spec, cfg.model.image_size
    dataset = BoxDataset(
        train_rows,
        build_transform(size, spec.mean, spec.std, cfg.augment, bboxes=True, seed=cfg.seed),
        build_transform(size, spec.mean, spec.std, bboxes=True),
    )
    loader = DataLoader(
        dataset,
        batch_size=min(cfg.batch_size, len(dataset)),
        shuffle=True,
        drop_last=True,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )
    cuda = torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda")
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=1,
        precision="16-mixed" if cuda else "32-true",
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        callbacks=[RichProgressBar()] if progress else [],
    )
    with quiet_lightning():
        trainer.fit(BoxModule(model, cfg), loader)
    counts = {"trained_on": len(train_rows), "held_out": len(held_out)}
    if len(held_out) == 0:
        save_detector(out, model, cfg.model, counts)
        return DetectorTraining(out, None, held_out)
    trained = Detector(out, model.cpu().eval(), cfg.model, detector_id="", metrics=counts)  # scored before saving
    evaluation = evaluate_detector(trained, held_out, num_workers=cfg.num_workers)
    save_detector(out, model, cfg.model, counts | dataclasses.asdict(evaluation.scores))
    log.info("held-out boxes: mean IoU %.3f, AP@0.5 %.3f", evaluation.scores.mean_iou, evaluation.scores.ap50)
    return DetectorTraining(out, evaluation, held_out)
