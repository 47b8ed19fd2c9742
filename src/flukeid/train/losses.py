"""Identity losses on embeddings: PML's metric-learning losses behind one call shape, plus center loss.

Every loss is an ``IdentityLoss``: ``loss(embeddings (B, D), labels (B,)) -> scalar``. Labels >= 0 are
catalogue individuals; labels < 0 are negatives-only photos (new_whale), never a positive of anything.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from pytorch_metric_learning.utils.distributed import (
    DistributedLossWrapper,
    DistributedMinerWrapper,
    is_distributed,
)
from torch import Tensor, nn

from flukeid.config import check_choice, choices
from flukeid.errors import ConfigError

_TUNABLE = ("margin", "scale", "temperature")

LossName = Literal[
    "arcface", "subcenter_arcface", "cosface", "softmax", "triplet", "contrastive", "ntxent", "npair", "margin"
]
"""The losses `build_loss` makes (`LOSSES`)."""
MinerName = Literal["semihard", "hard", "all", "pair_margin"]
"""Pair miners (`_miner`)."""


@dataclass(frozen=True)
class LossConfig:
    """Which loss and its settings; ``None`` keeps the loss's own default, in PML's units: ArcFace margin
    in degrees (28.6), CosFace 0.35, scale 64, triplet 0.05, contrastive margin = neg_margin (1.0)."""

    name: LossName = "arcface"
    margin: float | None = None
    scale: float | None = None
    miner: MinerName | None = None  # None: the loss's default
    subcenters: int = 3
    temperature: float | None = None
    center_weight: float = 0.0  # > 0 adds center_weight * center loss
    distributed: bool = False  # gather pair-loss batches across DDP ranks

    def __post_init__(self) -> None:
        if self.center_weight < 0:
            raise ConfigError(f"loss.center_weight must be >= 0, found {self.center_weight}")
        if self.subcenters < 1:
            raise ConfigError(f"loss.subcenters must be >= 1, found {self.subcenters}")
        for name in ("scale", "temperature"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"loss.{name} must be > 0, found {value}")


def _graph_anchor(module: nn.Module, like: Tensor) -> Tensor:
    """A zero that depends on every parameter, so DDP (find_unused_parameters=False) sees all of them even
    on a batch that leaves some unused (no triplets, only new_whale rows)."""
    return sum((p.sum() * 0.0 for p in module.parameters()), like.new_zeros(()))


class IdentityLoss(nn.Module):
    """Loss on L2-normalised embeddings (B, D) and int64 labels (B,); labels < 0 are negatives-only rows.

    Runs in float32 with autocast off: PML's classifier losses cast their weight ``W.data`` to the
    embeddings' dtype in place, which under mixed precision would silently turn the parameter to fp16.
    """

    uses_classes: bool = False

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Scalar loss; a zero that still carries gradients when the batch has nothing usable."""
        with torch.autocast(embeddings.device.type, enabled=False):
            loss = self.compute(embeddings.float(), labels)
        return loss + _graph_anchor(self, loss)

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        raise NotImplementedError

    def logits(self, embeddings: Tensor) -> Tensor | None:
        """(B, num_classes) class scores for classifier losses; None for pair losses."""
        return None


def _unique_negatives(labels: Tensor) -> Tensor:
    """Give each label < 0 a value unique across the batch and across DDP ranks (so gathered batches
    never pair two new_whale rows as positives)."""
    rank, world = (torch.distributed.get_rank(), torch.distributed.get_world_size()) if is_distributed() else (0, 1)
    index = torch.arange(len(labels), device=labels.device)
    return torch.where(labels < 0, -1 - index * world - rank, labels)


class PairLoss(IdentityLoss):
    """A PML pair/triplet loss with an optional miner; with ``distributed`` and an initialised process
    group, embeddings are gathered from all ranks (PML's wrappers; the loss comes back x world size)."""

    def __init__(
        self,
        loss: pml_losses.BaseMetricLossFunction,
        miner: pml_miners.BaseMiner | None,
        distributed: bool = False,
    ) -> None:
        super().__init__()
        self.loss = loss
        self.miner = miner
        self.distributed = distributed

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        labels = _unique_negatives(labels)
        loss_fn: nn.Module = self.loss
        miner: nn.Module | None = self.miner
        if self.distributed and is_distributed():
            # Wrapped per call, not stored: state_dict keys stay the same with or without DDP, and PML's
            # miner wrapper fails outright when no process group is initialised.
            loss_fn = DistributedLossWrapper(self.loss)
            miner = None if miner is None else DistributedMinerWrapper(miner)
        indices = None if miner is None else miner(embeddings, labels)
        return loss_fn(embeddings, labels, indices)


class ClassifierLoss(IdentityLoss):
    """A classifier head over catalogue IDs (PML ArcFace/CosFace or ``SoftmaxHead``): ``head(emb, labels)``
    gives the loss, ``head.get_logits(emb)`` the class scores. Rows with labels < 0 are left out."""

    uses_classes = True

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        keep = labels >= 0
        if not bool(keep.any()):
            return embeddings.sum() * 0.0
        return self.head(embeddings[keep], labels[keep])

    def logits(self, embeddings: Tensor) -> Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            return self.head.get_logits(embeddings.float())


class SoftmaxHead(nn.Module):
    """Baseline: a linear layer over embeddings + cross-entropy; PML's classifier call shape."""

    def __init__(self, embedding_dim: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(embedding_dim, num_classes)

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(self.fc(embeddings), labels)

    def get_logits(self, embeddings: Tensor) -> Tensor:
        """(B, num_classes) raw linear scores."""
        return self.fc(embeddings)


class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016): mean over rows with label >= 0 of 0.5 * ||x - c_y||^2.

    ``centers`` (num_classes, dim) is a plain parameter trained by the optimizer (no custom update);
    starts at zero. A batch with no usable row gives a zero that still reaches ``centers``.
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.centers = nn.Parameter(torch.zeros(num_classes, dim))

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        keep = labels >= 0
        diffs = embeddings - self.centers[labels.clamp(min=0)]
        per_row = 0.5 * diffs.pow(2).sum(dim=1) * keep
        return per_row.sum() / keep.sum().clamp(min=1)


class WithCenterLoss(IdentityLoss):
    """``main(x, y) + weight * center(x, y)``; logits and ``uses_classes`` are the main loss's."""

    def __init__(self, main: IdentityLoss, center: CenterLoss, weight: float) -> None:
        super().__init__()
        self.main = main
        self.center = center
        self.weight = weight
        self.uses_classes = main.uses_classes

    def compute(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return self.main(embeddings, labels) + self.weight * self.center(embeddings, labels)

    def logits(self, embeddings: Tensor) -> Tensor | None:
        return self.main.logits(embeddings)


Builder = Callable[[LossConfig, int, int], IdentityLoss]  # (cfg, num_classes, embedding_dim) -> loss


def _options(cfg: LossConfig, **rename: str) -> dict[str, float]:
    """PML kwargs from the set (non-None) tunables; ``rename`` maps a cfg field to the PML argument.
    A set tunable the loss does not take is an error, not silently ignored."""
    unused = [f for f in _TUNABLE if getattr(cfg, f) is not None and f not in rename]
    if unused:
        takes = ", ".join(rename) or "none of " + ", ".join(_TUNABLE)
        raise ConfigError(f"loss {cfg.name!r} takes no {', '.join(unused)} (it takes {takes})")
    return {pml: getattr(cfg, f) for f, pml in rename.items() if getattr(cfg, f) is not None}


MINERS = choices(MinerName)


def _miner(name: str, margin: float | None) -> pml_miners.BaseMiner:
    """semihard (FaceNet): negatives farther than the positive but within the margin; hard: batch-hard
    (Hermans et al. 2017), the hardest positive and negative per anchor; all: every triplet violating the
    margin; pair_margin: positive pairs farther than 0.2, negative pairs closer than 0.8."""
    if name in ("semihard", "all"):
        kwargs = {} if margin is None else {"margin": margin}
        return pml_miners.TripletMarginMiner(type_of_triplets=name, **kwargs)
    if name == "hard":
        return pml_miners.BatchHardMiner()
    if name == "pair_margin":
        return pml_miners.PairMarginMiner()
    check_choice("loss.miner", name, MINERS)
    raise AssertionError(f"miner {name!r} is in MINERS but not built here")


def _pair(
    cfg: LossConfig,
    loss: pml_losses.BaseMetricLossFunction,
    default_miner: str | None = None,
    miner_margin: float | None = None,
) -> PairLoss:
    name = cfg.miner or default_miner
    miner = None if name is None else _miner(name, miner_margin)
    return PairLoss(loss, miner, distributed=cfg.distributed)


def _classifier(cfg: LossConfig, head: nn.Module) -> ClassifierLoss:
    if cfg.miner is not None:
        raise ConfigError(f"loss {cfg.name!r} takes no miner (found {cfg.miner!r}): it has no pairs")
    return ClassifierLoss(head)


def _margin_head(head_cls: type[pml_losses.LargeMarginSoftmaxLoss], **extra: int) -> Builder:
    """Builder for a PML angular-margin classifier (ArcFace family, CosFace)."""

    def build(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
        kwargs = _options(cfg, margin="margin", scale="scale")
        return _classifier(cfg, head_cls(num_classes=num_classes, embedding_size=dim, **kwargs, **extra))

    return build


def _subcenter_arcface(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    return _margin_head(pml_losses.SubCenterArcFaceLoss, sub_centers=cfg.subcenters)(cfg, num_classes, dim)


def _softmax(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    _options(cfg)
    return _classifier(cfg, SoftmaxHead(dim, num_classes))


def _triplet(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    loss = pml_losses.TripletMarginLoss(**_options(cfg, margin="margin"))
    return _pair(cfg, loss, default_miner="semihard", miner_margin=loss.margin)


def _contrastive(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    return _pair(cfg, pml_losses.ContrastiveLoss(**_options(cfg, margin="neg_margin")))


def _ntxent(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    return _pair(cfg, pml_losses.NTXentLoss(**_options(cfg, temperature="temperature")))


def _npair(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    return _pair(cfg, pml_losses.NPairsLoss(**_options(cfg)))


def _margin(cfg: LossConfig, num_classes: int, dim: int) -> IdentityLoss:
    """Margin loss (Wu et al. 2017) with one learnable boundary beta per class."""
    loss = pml_losses.MarginLoss(learn_beta=True, num_classes=num_classes, **_options(cfg, margin="margin"))
    return _pair(cfg, loss)


LOSSES: Mapping[LossName, Builder] = types.MappingProxyType(
    {
        "arcface": _margin_head(pml_losses.ArcFaceLoss),
        "subcenter_arcface": _subcenter_arcface,
        "cosface": _margin_head(pml_losses.CosFaceLoss),
        "softmax": _softmax,
        "triplet": _triplet,
        "contrastive": _contrastive,
        "ntxent": _ntxent,
        "npair": _npair,
        "margin": _margin,
    }
)


def build_loss(cfg: LossConfig, num_classes: int, embedding_dim: int) -> IdentityLoss:
    """The loss ``cfg.name`` for ``num_classes`` catalogue IDs and ``embedding_dim``-wide embeddings, plus
    ``center_weight * CenterLoss`` when center_weight > 0. All its parameters are in ``.parameters()``."""
    check_choice("loss.name", cfg.name, LOSSES)
    loss = LOSSES[cfg.name](cfg, num_classes, embedding_dim)
    if cfg.center_weight > 0:
        loss = WithCenterLoss(loss, CenterLoss(num_classes, embedding_dim), cfg.center_weight)
    return loss
