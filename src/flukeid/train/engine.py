"""``train(data, cfg, out)``: catalogue in, model directory out (Lightning does the loop)."""

from __future__ import annotations

import logging
import shutil
import signal
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader

from flukeid import NEW_WHALE
from flukeid.config import load_config, save_config, to_dict
from flukeid.data.dataset import LabelledRows, PhotoDataset, encode_labels
from flukeid.data.sampler import IdentityBatchSampler
from flukeid.data.splits import Split, make_split
from flukeid.data.transforms import build_transform
from flukeid.errors import FlukeidError
from flukeid.identify.tune import write_tuning
from flukeid.models.artifact import Artifact, ModelConfig, build_model, save_model
from flukeid.models.head import EmbeddingModel
from flukeid.train.config import TrainConfig
from flukeid.train.losses import build_loss
from flukeid.train.module import IdentityModule, ValidationSet
from flukeid.train.teacher import DistillConfig, DistillLoss, teacher_targets

log = logging.getLogger(__name__)
logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # set at import by lightning; its tips are noise
for _noise in (r".*ckpt_path.*", r".*LeafSpec.*", r".*does not have many workers.*", r".*deterministic.*"):
    warnings.filterwarnings("ignore", message=_noise)


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    val_map5: float | None
    threshold: float | None
    epochs: int


def check_trainable(labels: pd.DataFrame, cfg: TrainConfig) -> None:
    """Refuse, before any GPU work, a catalogue that cannot fill a batch with positives (the config's own ranges,
    batch_size >= 2 x m_per_class + negatives_per_batch included, are checked when it is built)."""
    known = labels[labels["Id"] != NEW_WHALE]
    individuals = known["Id"].nunique()
    if individuals < 2:
        raise FlukeidError(f"the catalogue has {individuals} individual(s): training needs at least 2")
    if len(known) < cfg.m_per_class * 2:
        raise FlukeidError(f"only {len(known)} labelled photos: too few for batches of {cfg.batch_size}")


def _image_size(cfg: ModelConfig, model: EmbeddingModel) -> tuple[int, int]:
    return cfg.image_size or model.backbone.spec.input_size


def _loaders(
    split: Split, rows: LabelledRows, cfg: TrainConfig, model: EmbeddingModel, with_index: bool = False
) -> tuple[DataLoader, DataLoader | None, ValidationSet | None]:
    size, spec = _image_size(cfg.model, model), model.backbone.spec
    train_tf = build_transform(size, spec.mean, spec.std, cfg.augment, flip_is_new_id=cfg.flip_as_new_id, seed=cfg.seed)
    plain_tf = build_transform(size, spec.mean, spec.std)
    sampler = IdentityBatchSampler(
        rows.labels,
        cfg.batch_size,
        cfg.m_per_class,
        cfg.negatives_per_batch,
        cfg.batches_per_epoch,
        seed=cfg.seed,
    )
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    photos = PhotoDataset(rows.paths, rows.labels, train_tf, rows.flipped, with_index=with_index)
    train = DataLoader(photos, batch_sampler=sampler, **workers)
    if split.test.empty:
        return train, None, None
    gallery = split.train[split.train["Id"] != NEW_WHALE]
    paths = list(gallery["path"]) + list(split.test["path"])
    val_set = ValidationSet(list(gallery["Id"]), list(split.test["Id"]))
    val = DataLoader(PhotoDataset(paths, [0] * len(paths), plain_tf), batch_size=cfg.batch_size, **workers)
    return train, val, val_set


def _precision(cfg: TrainConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    return "16-mixed" if torch.cuda.is_available() and cfg.accelerator in ("auto", "gpu", "cuda") else "32-true"


def _resume_checkpoint(checkpoints: Path) -> Path | None:
    """The newest of last.ckpt and the checkpoint written when a run was interrupted."""
    found = [p for p in (checkpoints / "last.ckpt", checkpoints / "interrupted.ckpt") if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _prepare_run_folder(out: Path, cfg: TrainConfig, resume: bool) -> Path:
    """Write the config; refuse to resume a run of another architecture; start afresh without resume."""
    checkpoints = out / "checkpoints"
    previous = out / "train.yaml"
    if resume and previous.is_file() and _resume_checkpoint(checkpoints):
        old = load_config(TrainConfig, previous)
        if old.model != cfg.model or old.loss != cfg.loss:
            raise FlukeidError(
                f"{out} holds a run with another model or loss ({previous}): use another --out, or --no-resume "
                "to start afresh there"
            )
    if not resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, previous)
    return checkpoints


def train(
    labels: pd.DataFrame,
    cfg: TrainConfig,
    out: Path,
    resume: bool = True,
    progress: bool = True,
    teachers: Sequence[Artifact] = (),
    distill: DistillConfig | None = None,
) -> TrainResult:
    """Train on labelled rows (Image, Id, path) and write the model directory ``out/model``.

    With ``teachers``, the model also learns from them (`flukeid.train.teacher`, weights in ``distill``).
    """
    check_trainable(labels, cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    split = make_split(labels, "open", cfg.seed, cfg.val_query_share, cfg.val_unknown_share)
    rows = encode_labels(split.train, cfg.flip_as_new_id)
    model = build_model(cfg.model)
    loss = build_loss(cfg.loss, len(rows.classes), model.dim)
    train_loader, val_loader, val_set = _loaders(split, rows, cfg, model, with_index=bool(teachers))
    teacher = None
    if teachers:
        targets = teacher_targets(teachers, rows.paths, rows.classes, rows.flipped)
        teacher = DistillLoss(targets, distill or DistillConfig())
    module = IdentityModule(model, loss, cfg.optim, val_set, teacher)
    checkpoints = _prepare_run_folder(out, cfg, resume)
    best = ModelCheckpoint(
        checkpoints,
        filename="best",
        monitor="val/map5" if val_set else None,
        mode="max",
        save_last=True,
        enable_version_counter=False,
    )
    callbacks = [best, OnExceptionCheckpoint(checkpoints, filename="interrupted")]
    if progress:
        callbacks.append(RichProgressBar())
    trainer = L.Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=_precision(cfg),
        gradient_clip_val=cfg.optim.grad_clip or None,
        callbacks=callbacks,
        logger=CSVLogger(out, name="logs", version=""),
        deterministic="warn",
        use_distributed_sampler=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, len(train_loader))),
    )
    ckpt = _resume_checkpoint(checkpoints) if resume else None
    if ckpt:
        log.info("resuming from %s", ckpt)
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt)
    except SystemExit as exc:  # Lightning turns Ctrl-C into a checkpoint and exit(1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise FlukeidError(
            f"training interrupted; checkpoints kept in {checkpoints}: run the same command again to resume"
        ) from exc
    return _export(trainer, module, best, cfg, rows, val_loader, out)


def _export(
    trainer: L.Trainer,
    module: IdentityModule,
    best: ModelCheckpoint,
    cfg: TrainConfig,
    rows: LabelledRows,
    val_loader: DataLoader | None,
    out: Path,
) -> TrainResult:
    """Reload the best checkpoint, re-validate it, and write the model directory."""
    if best.best_model_path:
        state = torch.load(best.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
        module.load_state_dict(state)
    result = None
    if val_loader is not None:
        trainer.validate(module, val_loader, verbose=False)
        result = module.last_validation
    extra = {"val_map5": result.map5, "val_top1": result.top1} if result else {}
    if result is not None:
        np.savez_compressed(
            out / "validation.npz",
            scores=result.table.scores,
            individuals=np.array(result.table.individuals),
            truths=np.array(result.truths),
        )
    model_dir = save_model(
        out / "model",
        module.model,
        cfg.model,
        rows.classes,
        result.threshold if result else None,
        extra={**extra, "train": to_dict(cfg)},
        head_state=dict(module.loss.state_dict()),
        files={"metrics.csv": out / "logs" / "metrics.csv", "validation.npz": out / "validation.npz"},
    )
    if result is not None:
        write_tuning(model_dir, result.table, result.truths)
    return TrainResult(
        model_dir,
        result.map5 if result else None,
        result.threshold if result else None,
        trainer.current_epoch,
    )
