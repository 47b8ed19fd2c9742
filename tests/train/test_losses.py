"""Identity losses: one contract over every registered loss, center loss against a plain loop, errors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import Tensor, nn

from flukeid.errors import ConfigError
from flukeid.train.losses import LOSSES, CenterLoss, LossConfig, build_loss

NUM_CLASSES, DIM, IN_DIM = 8, 16, 32
CLASSIFIERS = {"arcface", "subcenter_arcface", "cosface", "softmax"}


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: OpenMP threads only add contention (steps ran 20-40x slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def clustered_data(gen: torch.Generator) -> tuple[list[Tensor], Tensor]:
    """Per class a pool of inputs around a random centre (classes 6 and 7 have one photo), plus
    negatives-only inputs that belong to no class. Classes overlap at first, so every loss has work."""
    sizes = [5, 4, 4, 3, 3, 2, 1, 1]
    pools = [0.3 * torch.randn(IN_DIM, generator=gen) + 0.5 * torch.randn(n, IN_DIM, generator=gen) for n in sizes]
    return pools, 0.3 * torch.randn(6, IN_DIM, generator=gen)


def m_per_class_batch(
    pools: list[Tensor], negatives: Tensor, gen: torch.Generator, classes: int = 4, m: int = 2
) -> tuple[Tensor, Tensor]:
    """``classes`` x ``m`` photos drawn with replacement (+ noise, as augmentation) and 2 new_whale rows."""
    chosen = torch.randperm(NUM_CLASSES, generator=gen)[:classes]
    rows, labels = [], []
    for c in chosen.tolist():
        picks = torch.randint(len(pools[c]), (m,), generator=gen)
        rows.append(pools[c][picks])
        labels += [c] * m
    rows.append(negatives[torch.randperm(len(negatives), generator=gen)[:2]])
    labels += [-1, -2]
    x = torch.cat(rows)
    return x + 0.05 * torch.randn(x.shape, generator=gen), torch.tensor(labels)


def embed(model: nn.Module, x: Tensor) -> Tensor:
    return F.normalize(model(x), dim=1)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_trains_a_tiny_model(name: str) -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    pools, negatives = clustered_data(gen)
    model = nn.Linear(IN_DIM, DIM)
    loss_fn = build_loss(LossConfig(name=name), NUM_CLASSES, DIM)
    opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=1e-2)
    history = []
    for _ in range(60):
        x, labels = m_per_class_batch(pools, negatives, gen)
        loss = loss_fn(embed(model, x), labels)
        assert loss.ndim == 0 and torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    first, last = sum(history[:10]) / 10, sum(history[-10:]) / 10
    assert last < 0.9 * first, (first, last)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_logits_only_for_classifier_losses(name: str) -> None:
    loss_fn = build_loss(LossConfig(name=name), NUM_CLASSES, DIM)
    logits = loss_fn.logits(F.normalize(torch.randn(5, DIM), dim=1))
    assert loss_fn.uses_classes == (name in CLASSIFIERS)
    if name in CLASSIFIERS:
        assert logits is not None and logits.shape == (5, NUM_CLASSES)
    else:
        assert logits is None


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_batch_of_only_new_whales_gives_a_finite_loss_with_gradients(name: str) -> None:
    """Classifier and center terms have nothing to use (0); pair losses may still push new_whales apart."""
    loss_fn = build_loss(LossConfig(name=name, center_weight=0.1), NUM_CLASSES, DIM)
    x = torch.randn(6, DIM, requires_grad=True)
    loss = loss_fn(F.normalize(x, dim=1), -torch.arange(1, 7))
    assert torch.isfinite(loss)
    if name in CLASSIFIERS:
        assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None
    assert all(p.grad is not None for p in loss_fn.parameters())  # DDP needs every parameter used


def test_new_whale_rows_never_act_as_positives() -> None:
    """Two rows with the same negative label (e.g. from two DDP ranks) are still not a positive pair."""
    loss_fn = build_loss(LossConfig(name="contrastive"), NUM_CLASSES, DIM)
    opposite = F.normalize(torch.ones(1, DIM), dim=1) * torch.tensor([[1.0], [-1.0]])
    assert loss_fn(opposite, torch.tensor([-1, -1])).item() == 0.0  # as positives: distance 2 -> loss 2
    assert loss_fn(opposite, torch.tensor([3, 3])).item() == pytest.approx(2.0)


def reference_center_loss(x: Tensor, labels: Tensor, centers: Tensor) -> float:
    terms = []
    for row, label in zip(x.tolist(), labels.tolist(), strict=True):
        if label >= 0:
            terms.append(0.5 * sum((a - b) ** 2 for a, b in zip(row, centers[label].tolist(), strict=True)))
    return sum(terms) / len(terms)


def test_center_loss_matches_a_plain_loop() -> None:
    torch.manual_seed(1)
    center = CenterLoss(4, 3)
    with torch.no_grad():
        center.centers.copy_(torch.randn(4, 3))
    x, labels = torch.randn(7, 3), torch.tensor([0, 2, 2, -1, 3, -5, 0])
    assert center(x, labels).item() == pytest.approx(reference_center_loss(x, labels, center.centers))


def test_center_loss_centers_move_toward_their_class() -> None:
    center = CenterLoss(2, 3)
    x, labels = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), torch.tensor([0, 1])
    center(x, labels).backward()
    with torch.no_grad():
        center.centers -= 0.5 * center.centers.grad
    assert center(x, labels).item() < 0.5


@pytest.mark.parametrize("name", ["arcface", "triplet"])
def test_center_weight_adds_exactly_weight_times_center_loss(name: str) -> None:
    x, labels = F.normalize(torch.randn(8, DIM), dim=1), torch.tensor([0, 0, 1, 1, 2, 2, -1, -2])
    torch.manual_seed(0)
    plain = build_loss(LossConfig(name=name), NUM_CLASSES, DIM)
    torch.manual_seed(0)
    with_center = build_loss(LossConfig(name=name, center_weight=0.3), NUM_CLASSES, DIM)
    expected = 0.3 * CenterLoss(NUM_CLASSES, DIM)(x, labels)  # fresh centers start at zero, as built
    assert (with_center(x, labels) - plain(x, labels)).item() == pytest.approx(expected.item(), abs=1e-5)
    centers = [p for p in with_center.parameters() if p.shape == (NUM_CLASSES, DIM)]
    assert len(centers) == 1 and centers[0].requires_grad


def test_unknown_loss_names_valid_ones_and_suggests() -> None:
    with pytest.raises(ConfigError, match=r"loss\.name: unknown 'arcfce'") as err:
        build_loss(LossConfig(name="arcfce"), NUM_CLASSES, DIM)
    assert "did you mean 'arcface'" in str(err.value)
    assert all(name in str(err.value) for name in LOSSES)


def test_unknown_miner_names_valid_ones_and_suggests() -> None:
    with pytest.raises(ConfigError, match=r"loss\.miner: unknown 'semihrd'") as err:
        build_loss(LossConfig(name="triplet", miner="semihrd"), NUM_CLASSES, DIM)
    assert "did you mean 'semihard'" in str(err.value)
    assert "semihard, hard, all" in str(err.value)


@pytest.mark.parametrize(
    "cfg",
    [
        LossConfig(name="arcface", miner="hard"),
        LossConfig(name="triplet", scale=30.0),
        LossConfig(name="softmax", margin=0.5),
        LossConfig(name="arcface", temperature=0.1),
    ],
)
def test_settings_a_loss_does_not_take_are_refused(cfg: LossConfig) -> None:
    with pytest.raises(ConfigError, match=f"loss '{cfg.name}' takes no"):
        build_loss(cfg, NUM_CLASSES, DIM)


@pytest.mark.parametrize("bad", [{"center_weight": -1.0}, {"subcenters": 0}, {"scale": 0.0}])
def test_invalid_config_values_are_refused(bad: dict) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        LossConfig(**bad)


@pytest.mark.parametrize("miner", ["semihard", "hard", "all", "pair_margin"])
def test_every_miner_plugs_into_pair_losses(miner: str) -> None:
    x, labels = F.normalize(torch.randn(8, DIM), dim=1), torch.tensor([0, 0, 1, 1, 2, 2, -1, -2])
    for name in ("triplet", "contrastive", "ntxent"):
        assert torch.isfinite(build_loss(LossConfig(name=name, miner=miner), NUM_CLASSES, DIM)(x, labels))


def test_settings_reach_the_pml_loss() -> None:
    arcface = build_loss(LossConfig(name="arcface", scale=30.0), NUM_CLASSES, DIM)
    default = build_loss(LossConfig(name="arcface"), NUM_CLASSES, DIM)
    x = F.normalize(torch.randn(3, DIM), dim=1)
    default.load_state_dict(arcface.state_dict())
    assert torch.allclose(arcface.logits(x) * 64 / 30, default.logits(x), atol=1e-4)


def test_classifier_losses_own_their_weights_pair_losses_need_none() -> None:
    arcface = build_loss(LossConfig(name="arcface"), NUM_CLASSES, DIM)
    assert [p.shape for p in arcface.parameters() if p.requires_grad] == [(DIM, NUM_CLASSES)]
    subcenter = build_loss(LossConfig(name="subcenter_arcface", subcenters=2), NUM_CLASSES, DIM)
    assert [p.shape for p in subcenter.parameters()] == [(DIM, 2 * NUM_CLASSES)]
    assert list(build_loss(LossConfig(name="triplet"), NUM_CLASSES, DIM).parameters()) == []
    margin = build_loss(LossConfig(name="margin"), NUM_CLASSES, DIM)
    assert [p.shape for p in margin.parameters() if p.requires_grad] == [(NUM_CLASSES,)]


@pytest.mark.parametrize("name", ["triplet", "contrastive", "margin"])
def test_distributed_loss_without_process_group_is_the_plain_loss(name: str) -> None:
    x, labels = F.normalize(torch.randn(8, DIM), dim=1), torch.tensor([0, 0, 1, 1, 2, 2, -1, -2])
    plain = build_loss(LossConfig(name=name), NUM_CLASSES, DIM)
    distributed = build_loss(LossConfig(name=name, distributed=True), NUM_CLASSES, DIM)
    assert distributed.state_dict().keys() == plain.state_dict().keys()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert distributed(x, labels).item() == pytest.approx(plain(x, labels).item())


def _rank_loss(rank: int, x: Tensor, labels: Tensor, name: str, out: Path) -> None:
    torch.set_num_threads(1)  # a forked child cannot use the parent's OpenMP pool: it would hang
    torch.distributed.init_process_group("gloo", init_method=f"file://{out}/pg", rank=rank, world_size=2)
    try:
        half = len(labels) // 2
        mine = slice(rank * half, (rank + 1) * half)
        loss_fn = build_loss(LossConfig(name=name, distributed=True), NUM_CLASSES, DIM)
        torch.save(loss_fn(x[mine], labels[mine]).detach(), out / f"rank{rank}.pt")
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.skipif(
    not torch.distributed.is_available() or "fork" not in mp.get_all_start_methods(),
    reason="needs torch.distributed and fork (a spawned rank re-imports torch: too slow here)",
)
@pytest.mark.parametrize("name", ["triplet", "contrastive"])
def test_distributed_loss_gathers_both_ranks(name: str, tmp_path: Path) -> None:
    """Each of 2 ranks sees the whole batch (x world size, PML's convention); new_whale labels -1 on both
    ranks are not paired as positives."""
    x = F.normalize(torch.randn(12, DIM, generator=torch.Generator().manual_seed(3)), dim=1)
    labels = torch.tensor([0, 1, 2, 3, -1, -2, 0, 1, 2, 3, -1, -2])
    mp.start_processes(_rank_loss, args=(x, labels, name, tmp_path), nprocs=2, start_method="fork")
    unique = torch.tensor([0, 1, 2, 3, -1, -2, 0, 1, 2, 3, -3, -4])
    whole = build_loss(LossConfig(name=name), NUM_CLASSES, DIM)(x, unique).item()
    for rank in range(2):
        assert torch.load(tmp_path / f"rank{rank}.pt").item() == pytest.approx(2 * whole, rel=1e-5)


@pytest.mark.parametrize("name", ["arcface", "softmax", "margin"])
def test_mixed_precision_keeps_loss_parameters_float32(name: str) -> None:
    """PML casts ArcFace's W.data to the embeddings' dtype in place; the loss must not let that happen."""
    loss_fn = build_loss(LossConfig(name=name), NUM_CLASSES, DIM)
    x, labels = F.normalize(torch.randn(8, DIM), dim=1), torch.tensor([0, 0, 1, 1, 2, 2, -1, -2])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = loss_fn(x.bfloat16(), labels)
    assert loss.dtype == torch.float32
    assert all(p.dtype == torch.float32 for p in loss_fn.parameters())
