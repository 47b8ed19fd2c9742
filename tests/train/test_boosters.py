"""Boosters: pseudo-labels (noisy student) and knowledge distillation, on tiny models and synthetic flukes."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from flukeid.cli import main
from flukeid.data.check import check_catalogue
from flukeid.embed import embed_paths
from flukeid.identify.tune import tune_model
from flukeid.models.artifact import ModelConfig, frozen_model, load_model
from flukeid.synth import SynthConfig, generate
from flukeid.train.config import OptimConfig, TrainConfig
from flukeid.train.distill import distill_model
from flukeid.train.engine import train
from flukeid.train.pseudo import PSEUDO_FILE, pseudo_label, train_with_pseudo_labels
from flukeid.train.teacher import DistillConfig, DistillLoss, TeacherTargets, teacher_targets

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=32, image_size=(48, 96))
STUDENT = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(32, 64))


def tiny_config(**changes: object) -> TrainConfig:
    base = TrainConfig(model=TINY, epochs=1, batch_size=12, m_per_class=3, negatives_per_batch=2, num_workers=0)
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("flukes") / "cat"
    generate(root, SynthConfig(individuals=16, photos=(2, 4), size=(64, 96), seed=5, new_share=0.2))
    return root


@pytest.fixture(scope="module")
def teacher(catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    labels = check_catalogue(catalogue).usable_labels()
    return train(labels, tiny_config(epochs=2), tmp_path_factory.mktemp("teacher"), progress=False).model_dir


@pytest.fixture(scope="module")
def labeller(catalogue: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Frozen EfficientNet-Lite0 features with a calibration fitted on the catalogue."""
    out = tmp_path_factory.mktemp("labeller") / "model"
    tune_model(frozen_model("efficientnet_lite0", out, (96, 96)), check_catalogue(catalogue).usable_labels())
    return out


def _similarities(model: Path, paths: list[Path]) -> np.ndarray:
    vectors = embed_paths(load_model(model), paths, num_workers=0).vectors
    return (vectors @ vectors.T)[np.triu_indices(len(paths), 1)]


# --------------------------------------------------------------------------- pseudo-labels


def test_pseudo_labels_keep_only_photos_above_the_threshold(catalogue: Path, labeller: Path) -> None:
    labels = check_catalogue(catalogue).usable_labels()
    unlabelled = sorted((catalogue / "test").iterdir())
    everything = pseudo_label(load_model(labeller), labels, unlabelled, 1e-9, 1)
    assert len(everything) == len(unlabelled) and set(everything["Id"]) <= set(labels["Id"]) - {"new_whale"}
    threshold = float(np.median(everything["probability"]))
    confident = pseudo_label(load_model(labeller), labels, unlabelled, threshold, 1)
    assert (confident["probability"] >= threshold).all()
    assert 0 < len(confident) == int((everything["probability"] >= threshold).sum()) < len(unlabelled)


def test_pseudo_label_rounds_are_recorded_apart_from_the_catalogue(catalogue: Path, tmp_path: Path) -> None:
    labels = check_catalogue(catalogue).usable_labels()
    unlabelled = sorted((catalogue / "test").iterdir())
    threshold = 0.01
    before = {p: p.read_bytes() for p in catalogue.glob("*.csv")}
    run = train_with_pseudo_labels(labels, unlabelled, tiny_config(), tmp_path / "run", 1, threshold, progress=False)
    recorded = pd.read_csv(tmp_path / "run" / PSEUDO_FILE)
    assert list(recorded.columns) == ["Image", "path", "Id", "probability", "round"]
    assert (recorded["round"] == 1).all() and (recorded["probability"] >= threshold).all()
    assert set(recorded["Image"]) <= {p.name for p in unlabelled}
    assert {p: p.read_bytes() for p in catalogue.glob("*.csv")} == before  # the catalogue is untouched
    assert run.model_dir == tmp_path / "run" / "model" and len(run.rounds) == 2
    assert load_model(run.model_dir).model_id == load_model(run.rounds[-1].model_dir).model_id


def test_train_cli_pseudo_rounds_need_unlabelled_photos(catalogue: Path, tmp_path: Path) -> None:
    assert main(["train", str(catalogue), "--out", str(tmp_path / "r"), "--pseudo-rounds", "1"]) == 1


# --------------------------------------------------------------------------- distillation


def test_distill_loss_is_zero_when_the_student_agrees_with_the_teacher() -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    logits = rng.normal(size=(6, 3)).astype(np.float32)
    targets = TeacherTargets(vectors, logits, np.array([2, 0, 1]), np.ones(6, dtype=bool))
    loss = DistillLoss(targets, DistillConfig(similarity_weight=1.0, kl_weight=1.0, temperature=2.0))
    index = torch.arange(6)
    student_logits = torch.from_numpy(logits[:, [1, 2, 0]].copy())  # student class c = teacher column of c
    assert loss(torch.from_numpy(vectors), student_logits, index).item() == pytest.approx(0.0, abs=1e-6)
    shuffled = torch.from_numpy(vectors[::-1].copy())
    assert loss(shuffled, student_logits, index).item() > 0.01
    assert loss(torch.from_numpy(vectors), -student_logits, index).item() > 0.01


def test_an_ensemble_teacher_averages_its_members_similarities(catalogue: Path, teacher: Path) -> None:
    paths = sorted((catalogue / "train").iterdir())[:6]
    one = load_model(teacher)
    single = teacher_targets([one], paths, ["x"], [False] * len(paths))
    double = teacher_targets([one, one], paths, ["x"], [False] * len(paths))
    np.testing.assert_allclose(double.vectors @ double.vectors.T, single.vectors @ single.vectors.T, atol=1e-5)
    assert single.logits is None  # the teacher's classes are catalogue IDs, none is "x"


def test_distilled_student_similarities_move_to_the_teacher(catalogue: Path, labeller: Path, tmp_path: Path) -> None:
    """The teacher: frozen EfficientNet-Lite0 features (a tiny trained model's similarities are all near 1). The
    student sees the teacher's input size. What distillation does reliably at this budget is pull the student's
    similarities to the teacher's values (squared gap 3-6x smaller over seeds 0-2); their correlation with the
    teacher's does not move reliably with a tiny random-init student (see bench/RESULTS.md, boosters)."""
    labels = check_catalogue(catalogue).usable_labels()
    optim = OptimConfig(lr=3e-3, backbone_lr_scale=1.0, freeze_epochs=0, warmup_epochs=0)
    student = dataclasses.replace(STUDENT, embedding_dim=64, image_size=(96, 96))
    cfg = tiny_config(  # no validation split: both students keep their last epoch, not a noisy "best"
        model=student,
        epochs=30,
        optim=optim,
        batches_per_epoch=10,
        m_per_class=2,
        val_query_share=0.0,
        val_unknown_share=0.0,
    )
    own = train(labels, cfg, tmp_path / "own", progress=False).model_dir
    taught = distill_model([labeller], labels, cfg, tmp_path / "taught", DistillConfig(similarity_weight=300.0))
    paths = [Path(p) for p in labels["path"]]
    target = _similarities(labeller, paths)
    alone, distilled = _similarities(own, paths), _similarities(taught.model_dir, paths)
    gap_alone, gap_distilled = np.mean((alone - target) ** 2), np.mean((distilled - target) ** 2)
    agree_alone, agree_distilled = np.corrcoef(alone, target)[0, 1], np.corrcoef(distilled, target)[0, 1]
    print(
        f"vs the teacher's similarities: squared gap {gap_alone:.3f} -> {gap_distilled:.3f}, "
        f"correlation {agree_alone:.3f} -> {agree_distilled:.3f}"
    )
    assert gap_distilled < 0.5 * gap_alone
    assert taught.student_images_per_s > 0 and taught.teacher_images_per_s > 0


def test_distill_cli_reports_what_the_student_keeps(
    catalogue: Path, teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = ["--set", "model.pretrained=false", "--set", "model.embedding_dim=16", "--set", "model.image_size=[32,64]"]
    tiny += ["--set", "epochs=1", "--set", "batch_size=12", "--set", "m_per_class=3", "--set", "num_workers=0"]
    tiny += ["--set", "negatives_per_batch=2"]
    args = ["distill", str(teacher), str(catalogue), "--student", "timm/test_efficientnet", *tiny]
    assert main([*args, "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert "validation MAP@5: student" in printed and "% kept" in printed and "img/s" in printed
    assert (tmp_path / "s" / "model" / "model.safetensors").is_file()
