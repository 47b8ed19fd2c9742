"""The training config: one YAML file, every knob typed, unknown keys refused."""

from __future__ import annotations

from dataclasses import dataclass, field

from flukeid.data.transforms import AugmentConfig
from flukeid.models.artifact import ModelConfig
from flukeid.train.losses import LossConfig


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 1e-3  # head and loss parameters
    backbone_lr_scale: float = 0.1  # backbone lr = lr * this, once unfrozen
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0  # linear warm-up, then cosine decay to 0
    freeze_epochs: int = 1  # backbone frozen (head warms up) for the first epochs
    grad_clip: float = 1.0  # max gradient norm; 0 disables


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
    precision: str = "auto"  # "auto": 16-mixed on GPU, 32-true on CPU
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"  # "ddp" for several GPUs
    num_workers: int = 2
    seed: int = 0
