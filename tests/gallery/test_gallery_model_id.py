"""A model's id covers everything that changes its embeddings, so a gallery refuses a model that embeds differently
even with the same weights: input size, normalisation, the crop detector it carries."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import torch

from flukeid.cli import main
from flukeid.detect.model import DetectorConfig, attach_detector, build_detector, load_detector, save_detector
from flukeid.gallery import Gallery
from flukeid.models.artifact import ModelConfig, build_model, load_model, model_identity, save_model
from flukeid.synth import SynthConfig, generate

SMALL = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))
LARGE = dataclasses.replace(SMALL, image_size=(64, 128))
TINY_DETECTOR = DetectorConfig(backbone="timm/test_efficientnet", pretrained=False, image_size=(48, 96), hidden=8)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same weights saved at two input sizes, and a detector."""
    root = tmp_path_factory.mktemp("model_id")
    torch.manual_seed(0)
    network = build_model(SMALL).eval()
    save_model(root / "small", network, SMALL, labels=[], threshold=0.9)
    save_model(root / "large", network, LARGE, labels=[], threshold=0.9)
    torch.manual_seed(0)
    save_detector(root / "detector", build_detector(TINY_DETECTOR).eval(), TINY_DETECTOR, metrics={})
    return {"root": root, "small": root / "small", "large": root / "large", "detector": root / "detector"}


def test_the_id_is_a_short_hex_string_that_does_not_depend_on_the_folder(
    models: dict[str, Path], tmp_path: Path
) -> None:
    shutil.copytree(models["small"], tmp_path / "copy")
    model_id = load_model(models["small"]).model_id
    assert re.fullmatch(r"[0-9a-f]{16}", model_id)
    assert load_model(tmp_path / "copy").model_id == model_id


def test_the_same_weights_at_another_input_size_are_another_model(models: dict[str, Path]) -> None:
    small, large = models["small"], models["large"]
    assert (small / "model.safetensors").read_bytes() == (large / "model.safetensors").read_bytes()
    assert load_model(small).model_id != load_model(large).model_id


def test_the_input_normalisation_is_part_of_the_id(models: dict[str, Path]) -> None:
    artifact = load_model(models["small"])
    spec = artifact.model.backbone.spec
    assert model_identity(artifact.path, artifact.config, artifact.model) == artifact.model_id
    artifact.model.backbone.spec = dataclasses.replace(spec, mean=(0.5, 0.5, 0.5))
    assert model_identity(artifact.path, artifact.config, artifact.model) != artifact.model_id


def test_the_crop_detector_and_its_settings_are_part_of_the_id(models: dict[str, Path], tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(models["small"], model)
    plain = load_model(model).model_id
    attach_detector(model, models["detector"])
    cropping = load_model(model).model_id
    assert cropping != plain
    config = model / "detector" / "detector.yaml"
    config.write_text(config.read_text().replace("- 48", "- 64").replace("- 96", "- 128"))
    assert load_detector(model / "detector").config.image_size == (64, 128)  # same weights, another input size
    assert load_model(model).model_id not in (plain, cropping)
    shutil.rmtree(model / "detector")
    assert load_model(model).model_id == plain


def test_a_gallery_refuses_the_same_weights_at_another_input_size(
    models: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    root = models["root"]
    generate(root / "cat", SynthConfig(individuals=4, photos=(2, 2), size=(64, 96), seed=1, train_new_whale=0.0))
    gallery = root / "gallery"
    assert main(["gallery", "build", str(models["small"]), str(root / "cat"), "--out", str(gallery)]) == 0
    photo = sorted((root / "cat" / "test").iterdir())[0]
    enrolled = len(Gallery.open(gallery))
    small, large = load_model(models["small"]).model_id, load_model(models["large"]).model_id
    capsys.readouterr()
    assert main(["identify", str(models["large"]), str(gallery), str(photo), "--out", str(root / "out")]) == 1
    message = capsys.readouterr().err
    assert small in message and large in message
    assert f"flukeid gallery build MODEL DATA --out {gallery} --replace" in " ".join(message.split())
    assert main(["enroll", str(gallery), str(photo), "--id", "w_new", "--model", str(models["large"])]) == 1
    assert len(Gallery.open(gallery)) == enrolled
