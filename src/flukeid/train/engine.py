"""``train(data, cfg, out)``: catalogue in, model directory out (Lightning does the loop)."""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint, RichProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from flukeid import NEW_WHALE
from flukeid.config import load_config, save_config, to_dict
from flukeid.data.dataset import LabelledRows, PhotoDataset, encode_labels
from flukeid.data.sampler import IdentityBatchSampler
from flukeid.data.splits import Split, make_split
from flukeid.data.transforms import build_transform
from flukeid.errors import ConfigError, FlukeidError
from flukeid.identify.tune import write_tuning
from flukeid.models.artifact import Artifact, ModelConfig, build_model, save_model
from flukeid.models.head import EmbeddingModel
from flukeid.progress import quiet_lightning
from flukeid.train.config import TrainConfig
from flukeid.train.losses import build_loss
from flukeid.train.module import IdentityModule, ValidationSet
from flukeid.train.teacher import DistillConfig, DistillLoss, teacher_targets

log = logging.getLogger(__name__)
LOGS, METRICS = "logs", "metrics.csv"
"""out/logs/metrics.csv: every run's logged rows (a resumed run's after the earlier ones), copied into the model."""
SEGMENT, EARLIER_METRICS = "current", "before-resume.csv"
"""Lightning logs this run to logs/current/metrics.csv; logs/before-resume.csv keeps the earlier runs' rows."""


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


def check_hardware(cfg: TrainConfig) -> None:
    """Raise a ConfigError unless Lightning can train with the config's accelerator, devices, strategy and nodes
    here (checked by building a bare Trainer, before the run folder is written)."""
    try:
        L.Trainer(
            accelerator=cfg.accelerator,
            devices=cfg.devices,
            strategy=cfg.strategy,
            num_nodes=cfg.num_nodes,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
    except (MisconfigurationException, ValueError, ImportError) as exc:
        raise ConfigError(
            f"accelerator {cfg.accelerator!r}, devices {cfg.devices!r}, strategy {cfg.strategy!r}, num_nodes "
            f"{cfg.num_nodes}: Lightning cannot train with these on this machine ({exc})"
        ) from exc


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


RESUME_KEYS = ("state_dict", "optimizer_states", "loops", "epoch", "global_step")
"""What Lightning reads from a checkpoint to continue a run."""


@dataclass(frozen=True)
class Resume:
    """The checkpoint a run continues from, and its global step (later logged rows are redone)."""

    path: Path
    step: int


def _candidates(checkpoints: Path) -> list[Path]:
    """Checkpoints to resume from, best first: the newest of last.ckpt and interrupted.ckpt (written when a run
    was interrupted), the other one, then best.ckpt (epochs after it are trained again)."""
    recent = [p for p in (checkpoints / "last.ckpt", checkpoints / "interrupted.ckpt") if p.is_file()]
    recent.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    best = checkpoints / "best.ckpt"
    return recent + ([best] if best.is_file() else [])


def _checkpoint_step(path: Path) -> int:
    """The global step of a checkpoint that loads on CPU and holds what resuming needs; ValueError says why not."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated zip, pickle garbage, a file of another kind: all mean unusable
        raise ValueError(f"does not load ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from exc
    if not isinstance(state, dict):
        raise ValueError(f"holds a {type(state).__name__}, not a Lightning checkpoint")
    missing = [key for key in RESUME_KEYS if key not in state]
    if missing:
        raise ValueError(f"lacks {', '.join(missing)} (not a full training checkpoint)")
    return int(state["global_step"])


def _resume_checkpoint(checkpoints: Path) -> Resume | None:
    """The first usable checkpoint of `_candidates` (one warning names the unusable ones skipped); None when there
    are none. Refuses, rather than silently starting afresh, when checkpoints exist but none is usable."""
    problems = []
    for path in _candidates(checkpoints):
        try:
            step = _checkpoint_step(path)
        except ValueError as exc:
            problems.append(f"{path.name} {exc}")
            continue
        if problems:
            again = "; the epochs after it are trained again" if path.name == "best.ckpt" else ""
            log.warning(
                "unusable checkpoint: %s; resuming from %s (step %d) instead%s", "; ".join(problems), path, step, again
            )
        return Resume(path, step)
    if problems:
        raise FlukeidError(
            f"cannot resume from {checkpoints}: {'; '.join(problems)}. Rerun with --no-resume to start afresh "
            "(this deletes those checkpoints), or put a good last.ckpt there"
        )
    return None


def _prepare_run_folder(out: Path, cfg: TrainConfig, resume: bool) -> tuple[Path, Resume | None]:
    """Write the config; refuse to resume a run of another architecture or from unusable checkpoints; start afresh
    without resume. Returns the checkpoint folder and the checkpoint to resume from."""
    checkpoints = out / "checkpoints"
    previous = out / "train.yaml"
    if resume and previous.is_file() and _candidates(checkpoints):
        old = load_config(TrainConfig, previous)
        if old.model != cfg.model or old.loss != cfg.loss:
            raise FlukeidError(
                f"{out} holds a run with another model or loss ({previous}): use another --out, or --no-resume "
                "to start afresh there"
            )
    start = _resume_checkpoint(checkpoints) if resume else None
    if not resume and checkpoints.exists():
        shutil.rmtree(checkpoints)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, previous)
    if rank_zero_only.rank == 0:  # DDP starts the other ranks by running this again
        _fold_metrics(out / LOGS, start.step if start else None)
    return checkpoints, start


def _read_metrics(path: Path) -> pd.DataFrame:
    """A metrics CSV; empty when absent; an unreadable one is set aside (``.unreadable``) with a warning."""
    if not path.is_file():
        return pd.DataFrame()
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (ValueError, OSError) as exc:  # ParserError and UnicodeDecodeError are ValueErrors
        aside = path.with_name(path.name + ".unreadable")
        log.warning("%s is unreadable (%s): set aside as %s, its rows left out", path, exc, aside.name)
        os.replace(path, aside)
        return pd.DataFrame()


def _write_metrics(rows: pd.DataFrame, path: Path) -> None:
    """Write atomically: a reader (or a crash) never sees half a log."""
    temporary = path.with_name(f".{path.name}.tmp")
    rows.to_csv(temporary, index=False)
    os.replace(temporary, path)


def _rows(*paths: Path) -> pd.DataFrame:
    frames = [frame for frame in map(_read_metrics, paths) if not frame.empty]
    if not frames:
        return pd.DataFrame()
    rows = pd.concat(frames, ignore_index=True)
    return rows.sort_values("step", kind="stable") if "step" in rows else rows


def _fold_metrics(logs: Path, resumed_step: int | None) -> None:
    """Before a run. Lightning's CSVLogger rewrites its metrics.csv each run, so it writes to logs/current/, and
    the rows of earlier runs up to the resumed step go to logs/before-resume.csv (`_merge_metrics` joins them).
    A fresh run drops the earlier rows, as it drops the checkpoints."""
    earlier, merged, current = logs / EARLIER_METRICS, logs / METRICS, logs / SEGMENT / METRICS
    if resumed_step is None:
        for path in (earlier, merged, current):
            path.unlink(missing_ok=True)
        return
    rows = _rows(earlier, merged, current).drop_duplicates()  # merged repeats the other two unless a run was killed
    if "step" in rows:
        rows = rows[rows["step"] < resumed_step]  # rows after the checkpoint are logged again
    logs.mkdir(parents=True, exist_ok=True)
    _write_metrics(rows, earlier)
    current.unlink(missing_ok=True)


def _merge_metrics(trainer: L.Trainer, logs: Path) -> None:
    """logs/metrics.csv: the earlier runs' rows, then this run's (after training, interrupted or not)."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        logger.save()
    rows = _rows(logs / EARLIER_METRICS, logs / SEGMENT / METRICS)
    if rows.empty:
        return
    try:
        _write_metrics(rows, logs / METRICS)
    except OSError as exc:  # the log is worth less than the training it follows (and than its error)
        log.warning("could not write %s (%s); the rows are in %s and %s", logs / METRICS, exc, EARLIER_METRICS, SEGMENT)


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
    with quiet_lightning():
        return _train(labels, cfg, out, resume, progress, teachers, distill)


def _train(
    labels: pd.DataFrame,
    cfg: TrainConfig,
    out: Path,
    resume: bool = True,
    progress: bool = True,
    teachers: Sequence[Artifact] = (),
    distill: DistillConfig | None = None,
) -> TrainResult:

    check_trainable(labels, cfg)
    check_hardware(cfg)
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
    checkpoints, start = _prepare_run_folder(out, cfg, resume)
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
        num_nodes=cfg.num_nodes,
        precision=_precision(cfg),
        gradient_clip_val=cfg.optim.grad_clip or None,
        callbacks=callbacks,
        logger=CSVLogger(out, name=LOGS, version=SEGMENT),
        deterministic="warn",
        use_distributed_sampler=False,
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=max(1, min(50, len(train_loader))),
    )
    if start:
        log.info("resuming from %s", start.path)
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=start.path if start else None)
    except SystemExit as exc:  # Lightning turns Ctrl-C into a checkpoint and exit(1)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise FlukeidError(
            f"training interrupted; checkpoints kept in {checkpoints}: run the same command again to resume"
        ) from exc
    finally:
        _merge_metrics(trainer, out / LOGS)
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
        _merge_metrics(trainer, out / LOGS)  # with the re-validation's row
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
        files={METRICS: out / LOGS / METRICS, "validation.npz": out / "validation.npz"},
    )
    if result is not None:
        write_tuning(model_dir, result.table, result.truths)
    return TrainResult(
        model_dir,
        result.map5 if result else None,
        result.threshold if result else None,
        trainer.current_epoch,
    )
