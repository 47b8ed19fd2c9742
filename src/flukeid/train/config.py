"""The training config: one YAML file, every knob typed and range-checked, unknown keys refused."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from flukeid.config import check_choice, check_value, choices
from flukeid.data.transforms import PRESETS, AugmentConfig
from flukeid.models.artifact import ModelConfig
from flukeid.train.losses import LOSSES, MINERS, LossConfig

Precision = Literal["auto", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"]
"""``auto`` (16-mixed on GPU, 32-true on CPU) and Lightning's precision names."""
PRECISIONS = choices(Precision)
MAX_SEED = 2**32 - 1
"""numpy (and so Lightning) accepts seeds 0 to 2**32 - 1."""
_PROBABILITIES = ("hflip", "color", "clahe", "motion_blur", "downscale", "grey")


def _non_negative(key: str, value: float) -> None:
    check_value(key, value, 0 <= value < math.inf, "a finite number >= 0")


def _share(key: str, value: float) -> None:
    check_value(key, value, 0 <= value < 1, "in [0, 1)")


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3  # head and loss parameters
    backbone_lr_scale: float = 0.1  # backbone lr = lr * this, once unfrozen
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to 0
    freeze_epochs: int = 1  # backbone frozen (head warms up) for the first epochs
    grad_clip: float = 1.0  # max gradient norm; 0 disables

    def __post_init__(self) -> None:
        check_value("optim.lr", self.lr, 0 < self.lr < math.inf, "a finite number > 0")
        for name in ("backbone_lr_scale", "weight_decay", "warmup_epochs", "freeze_epochs", "grad_clip"):
            _non_negative(f"optim.{name}", getattr(self, name))


def check_model(cfg: ModelConfig) -> None:
    """Range checks of the architecture's numbers (``model.*`` keys)."""
    dim = cfg.embedding_dim
    check_value("model.embedding_dim", dim, dim is None or dim >= 1, "a positive integer or null (no neck)")
    check_value("model.dropout", cfg.dropout, 0 <= cfg.dropout < 1, "in [0, 1)")
    size = cfg.image_size
    check_value("model.image_size", size, size is None or min(size) >= 1, "[height, width] in positive pixels or null")


def check_augment(cfg: AugmentConfig) -> None:
    """The preset exists, probabilities are in [0, 1], geometry is in range (``augment.*`` keys)."""
    check_choice("augment.preset", cfg.preset, PRESETS)
    for name in _PROBABILITIES:
        value = getattr(cfg, name)
        check_value(f"augment.{name}", value, value is None or 0 <= value <= 1, "a probability in [0, 1] or null")
    for name, high, allowed in [
        ("rotate", 180, "degrees in [0, 180]"),
        ("scale", 0.99, "in [0, 1) (relative zoom)"),
        ("shift", 1, "in [0, 1] (share of the frame)"),
    ]:
        value = getattr(cfg, name)
        check_value(f"augment.{name}", value, value is None or 0 <= value <= high, f"{allowed} or null")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    batch_size: int = 32
    m_per_class: int = 4  # photos per individual in a batch (singletons repeat, augmented)
    negatives_per_batch: int = 4  # new_whale photos per batch, used only as negatives
    batches_per_epoch: int | None = None  # None: about one pass over the labelled photos
    flip_as_new_id: bool = False  # a mirrored photo is another individual (no flip augmentation then)
    val_query_share: float = 0.2  # share of each validation individual's photos used as queries
    val_unknown_share: float = 0.2  # share of individuals held out whole as new_whale queries
    precision: Precision = "auto"  # "auto": 16-mixed on GPU, 32-true on CPU
    accelerator: str = "auto"
    devices: str | int = "auto"  # Lightning devices: "auto", a count (2) or "0,1"
    strategy: str = "auto"  # "ddp" for several GPUs
    num_nodes: int = 1  # machines in a multi-node run (torchrun or a cluster's environment variables)
    num_workers: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse out-of-range values when the config is built (from YAML, --set or code), before any training."""
        check_value("epochs", self.epochs, self.epochs >= 1, "an integer >= 1")
        check_value("num_nodes", self.num_nodes, self.num_nodes >= 1, "an integer >= 1")
        check_value("m_per_class", self.m_per_class, self.m_per_class >= 2, "an integer >= 2 (positive pairs)")
        check_value("negatives_per_batch", self.negatives_per_batch, self.negatives_per_batch >= 0, "an integer >= 0")
        smallest = 2 * self.m_per_class + self.negatives_per_batch
        check_value(
            "batch_size",
            self.batch_size,
            self.batch_size >= smallest,
            f"at least {smallest} (2 individuals x m_per_class {self.m_per_class} "
            f"+ negatives_per_batch {self.negatives_per_batch})",
        )
        batches = self.batches_per_epoch
        check_value("batches_per_epoch", batches, batches is None or batches >= 1, "an integer >= 1 or null")
        _share("val_query_share", self.val_query_share)
        _share("val_unknown_share", self.val_unknown_share)
        check_choice("precision", self.precision, PRECISIONS)
        check_value("num_workers", self.num_workers, self.num_workers >= 0, "an integer >= 0")
        check_value("seed", self.seed, 0 <= self.seed <= MAX_SEED, f"in [0, {MAX_SEED}]")
        check_choice("loss.name", self.loss.name, LOSSES)
        if self.loss.miner is not None:
            check_choice("loss.miner", self.loss.miner, MINERS)
        check_model(self.model)
        check_augment(self.augment)
