"""Training on CPU with a tiny timm backbone and tiny synthetic flukes."""

from __future__ import annotations

import dataclasses
import signal
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from flukeid import NEW_WHALE
from flukeid.data.check import check_catalogue
from flukeid.data.dataset import PhotoDataset, encode_labels
from flukeid.data.sampler import IdentityBatchSampler
from flukeid.data.transforms import AugmentConfig, build_transform
from flukeid.errors import ConfigError, FlukeidError
from flukeid.models.artifact import ModelConfig, build_model, load_model
from flukeid.synth import SynthConfig, generate
from flukeid.train.config import TrainConfig
from flukeid.train.engine import Resume, train
from flukeid.train.losses import LOSSES, LossConfig, build_loss

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))


def tiny_config(**changes: object) -> TrainConfig:
    base = TrainConfig(model=TINY, epochs=1, batch_size=12, m_per_class=3, negatives_per_batch=2, num_workers=0)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def labels(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("flukes") / "cat"
    generate(root, SynthConfig(individuals=16, photos=(1, 4), size=(64, 96), seed=3, train_new_whale=0.1))
    return check_catalogue(root).usable_labels()


def test_every_batch_holds_positives_and_unique_negatives() -> None:
    labels = [0, 1, 1, 2, 3, 3, 3, 4, -1, -2, -3]  # singletons 0, 2, 4
    sampler = IdentityBatchSampler(labels, batch_size=10, m=4, negatives=2, batches_per_epoch=20, seed=1)
    batches = list(sampler)
    assert len(batches) == 20
    for batch in batches:
        counts = Counter(labels[i] for i in batch)
        assert all(n >= 2 for label, n in counts.items() if label >= 0)
        assert sum(1 for label in counts if label >= 0) == 2
        assert all(n == 1 for label, n in counts.items() if label < 0) and sum(label < 0 for label in counts) == 2
    assert list(IdentityBatchSampler(labels, 10, 4, 2, 20, seed=1)) == batches  # seeded
    assert list(sampler) != batches  # next epoch differs
    with pytest.raises(ValueError, match="at least 2 individuals"):
        IdentityBatchSampler([0, 0, -1], batch_size=4, m=2)


def test_labels_new_whale_and_flip_as_new_id() -> None:
    frame = pd.DataFrame({"Image": list("abcd"), "Id": ["w_b", "w_a", NEW_WHALE, "w_b"], "path": list("abcd")})
    rows = encode_labels(frame)
    assert rows.classes == ["w_a", "w_b"] and rows.labels == [1, 0, -1, 1]
    flipped = encode_labels(frame, flip_as_new_id=True)
    assert flipped.classes == ["w_a", "w_b", "w_a~flipped", "w_b~flipped"]
    assert flipped.labels == [1, 0, -1, 1, 3, 2, -5, 3] and flipped.flipped == [False] * 4 + [True] * 4


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_each_loss_trains_on_flukes(name: str, labels: pd.DataFrame) -> None:
    """A few steps on fixed batches of real (synthetic) photos: the loss falls."""
    torch.manual_seed(0)
    rows = encode_labels(labels)
    model = build_model(TINY)
    loss = build_loss(LossConfig(name=name), len(rows.classes), TINY.embedding_dim)
    spec = model.backbone.spec
    data = PhotoDataset(rows.paths, rows.labels, build_transform((48, 96), spec.mean, spec.std, AugmentConfig("none")))
    sampler = IdentityBatchSampler(rows.labels, batch_size=16, m=4, negatives=2, batches_per_epoch=2, seed=0)
    batches = [torch.utils.data.default_collate([data[i] for i in batch]) for batch in sampler]
    optimizer = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=3e-3)

    def mean_loss() -> float:
        with torch.no_grad():
            return float(np.mean([loss(model(images), targets).item() for images, targets in batches]))

    before = mean_loss()
    for step in range(12):
        images, targets = batches[step % len(batches)]
        value = loss(model(images), targets)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
    after = mean_loss()
    assert np.isfinite(after) and after < before, (before, after)


def test_train_writes_a_model_that_reloads_to_the_same_embeddings(labels: pd.DataFrame, tmp_path: Path) -> None:
    result = train(labels, tiny_config(epochs=2), tmp_path / "run", progress=False)
    assert result.val_map5 is not None and 0.0 <= result.val_map5 <= 1.0
    artifact = load_model(result.model_dir)
    assert artifact.threshold == pytest.approx(result.threshold)
    assert artifact.labels and set(artifact.labels) <= set(labels["Id"])
    assert (result.model_dir / "metrics.csv").is_file() and (result.model_dir / "head.safetensors").is_file()
    images = torch.randn(3, 3, 48, 96)
    again = load_model(result.model_dir)
    with torch.no_grad():
        assert torch.allclose(artifact.model(images), again.model(images))
    checkpoint = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    module_state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}
    assert module_state.keys() == artifact.model.state_dict().keys()


def test_resume_continues_from_the_saved_step(labels: pd.DataFrame, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=1, batches_per_epoch=3)
    train(labels, cfg, tmp_path / "run", progress=False)
    first = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["global_step"] == 3
    train(labels, dataclasses.replace(cfg, epochs=2), tmp_path / "run", progress=False)
    second = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert second["global_step"] == 6 and second["epoch"] == 1


def test_resume_keeps_the_earlier_epochs_metrics(labels: pd.DataFrame, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=1, batches_per_epoch=3)
    train(labels, cfg, tmp_path / "run", progress=False)
    result = train(labels, dataclasses.replace(cfg, epochs=2), tmp_path / "run", progress=False)
    for path in (tmp_path / "run" / "logs" / "metrics.csv", result.model_dir / "metrics.csv"):
        rows = pd.read_csv(path)
        assert sorted(rows.dropna(subset=["train/loss_epoch"])["epoch"]) == [0, 1], path
        assert rows["step"].is_monotonic_increasing and not rows.duplicated().any()
    train(labels, dataclasses.replace(cfg, epochs=1), tmp_path / "run", resume=False, progress=False)
    rows = pd.read_csv(tmp_path / "run" / "logs" / "metrics.csv")  # afresh: the earlier runs' rows are gone
    assert sorted(rows.dropna(subset=["train/loss_epoch"])["epoch"]) == [0]


def _checkpoint(path: Path, step: int, **drop: bool) -> Path:
    state = {"state_dict": {}, "optimizer_states": [], "loops": {}, "epoch": 0, "global_step": step}
    torch.save({k: v for k, v in state.items() if not drop.get(k)}, path)
    return path


def test_resume_skips_unusable_checkpoints_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import os

    from flukeid.train.engine import _resume_checkpoint

    assert _resume_checkpoint(tmp_path) is None  # nothing to resume: start afresh
    good = _checkpoint(tmp_path / "last.ckpt", 6)
    assert _resume_checkpoint(tmp_path) == Resume(good, 6)
    _checkpoint(tmp_path / "interrupted.ckpt", 4)
    os.utime(good, (0, 0))  # interrupted.ckpt is newer: it is tried first
    assert _resume_checkpoint(tmp_path) == Resume(tmp_path / "interrupted.ckpt", 4)
    (tmp_path / "interrupted.ckpt").write_bytes(good.read_bytes()[:100])  # truncated
    assert _resume_checkpoint(tmp_path) == Resume(good, 6)
    assert len(caplog.records) == 1 and "unusable checkpoint: interrupted.ckpt does not load" in caplog.text
    assert f"resuming from {good} (step 6) instead" in caplog.text
    good.write_bytes(b"\x00garbage")
    _checkpoint(tmp_path / "best.ckpt", 3)
    caplog.clear()
    assert _resume_checkpoint(tmp_path) == Resume(tmp_path / "best.ckpt", 3)
    assert "last.ckpt does not load" in caplog.text and "the epochs after it are trained again" in caplog.text
    _checkpoint(tmp_path / "best.ckpt", 3, optimizer_states=True, loops=True)
    with pytest.raises(FlukeidError) as caught:
        _resume_checkpoint(tmp_path)
    message = str(caught.value)
    assert "best.ckpt lacks optimizer_states, loops" in message and "last.ckpt does not load" in message
    assert "Rerun with --no-resume to start afresh" in message and "\n" not in message


def test_resume_from_a_truncated_last_checkpoint(labels: pd.DataFrame, tmp_path: Path) -> None:
    cfg = tiny_config(epochs=1, batches_per_epoch=3)
    train(labels, cfg, tmp_path / "run", progress=False)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    result = train(labels, dataclasses.replace(cfg, epochs=2), tmp_path / "run", progress=False)
    assert result.epochs == 2
    assert torch.load(last, weights_only=False)["global_step"] == 6  # continued from best.ckpt (step 3)
    for name in ("last.ckpt", "best.ckpt"):
        (tmp_path / "run" / "checkpoints" / name).write_bytes(b"")
    with pytest.raises(FlukeidError, match=r"cannot resume from .*last.ckpt does not load.*--no-resume"):
        train(labels, dataclasses.replace(cfg, epochs=3), tmp_path / "run", progress=False)
    assert "epochs: 2" in (tmp_path / "run" / "train.yaml").read_text()  # the refused run changed nothing
    assert train(labels, cfg, tmp_path / "run", resume=False, progress=False).epochs == 1


class _CtrlC(L.Callback):
    def on_train_batch_end(self, trainer: L.Trainer, *args: object) -> None:
        if trainer.global_step == 2:
            raise KeyboardInterrupt


def test_ctrl_c_leaves_a_loadable_checkpoint(labels: pd.DataFrame, tmp_path: Path, monkeypatch) -> None:
    original = L.Trainer.__init__

    def with_ctrl_c(self, *args, callbacks=(), **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, callbacks=[*callbacks, _CtrlC()], **kwargs)

    monkeypatch.setattr(L.Trainer, "__init__", with_ctrl_c)
    try:
        with pytest.raises(FlukeidError, match="interrupted"):
            train(labels, tiny_config(batches_per_epoch=5), tmp_path / "run", progress=False)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    saved = torch.load(tmp_path / "run" / "checkpoints" / "interrupted.ckpt", weights_only=False)
    assert saved["global_step"] == 2
    monkeypatch.setattr(L.Trainer, "__init__", original)
    result = train(labels, tiny_config(batches_per_epoch=5), tmp_path / "run", progress=False)
    assert load_model(result.model_dir).model is not None


def test_bad_input_fails_before_training(labels: pd.DataFrame) -> None:
    one = labels[labels["Id"] == labels["Id"].iloc[0]]
    with pytest.raises(FlukeidError, match="training needs at least 2"):
        train(one, tiny_config(), Path("unused"))
    with pytest.raises(ConfigError, match=r"batch_size must be at least 8 \(2 individuals x m_per_class 3"):
        train(labels, tiny_config(batch_size=4), Path("unused"))
    with pytest.raises(ConfigError, match=r"loss.name: unknown 'arcfase' \(did you mean 'arcface'\?\)"):
        build_loss(LossConfig(name="arcfase"), 3, 8)
    with pytest.raises(ConfigError, match=r"unknown backbone 'efficientnet_lite9'.*valid: efficientnet_lite0"):
        build_model(dataclasses.replace(TINY, backbone="efficientnet_lite9"))
