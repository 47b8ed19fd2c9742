"""A damaged model folder is refused naming the file at fault; files only some models have may be absent."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from flukeid.errors import FlukeidError
from flukeid.models.artifact import ModelConfig, build_model, load_model, save_model

TINY = ModelConfig(backbone="timm/test_efficientnet", pretrained=False, embedding_dim=16, image_size=(48, 96))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model_faults")
    return save_model(root / "model", build_model(TINY).eval(), TINY, labels=[], threshold=0.9)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:100])


def _other_architecture(path: Path) -> None:
    path.write_text(path.read_text().replace("embedding_dim: 16", "embedding_dim: 8"))


DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "empty weights": ("model.safetensors", lambda p: p.write_bytes(b""), "model.safetensors: damaged weights file"),
    "truncated weights": ("model.safetensors", _truncate, "model.safetensors: damaged weights file"),
    "other architecture": ("model.yaml", _other_architecture, "do not fit the architecture in"),
    "labels not JSON": ("labels.json", lambda p: p.write_text("{oops"), "labels.json: not valid JSON"),
    "threshold not JSON": ("threshold.json", lambda p: p.write_text("[1,"), "threshold.json: not valid JSON"),
    "threshold a list": ("threshold.json", lambda p: p.write_text("[1]"), "threshold.json: expected a JSON object"),
}


@pytest.mark.parametrize("case", DAMAGE, ids=list(DAMAGE))
def test_a_damaged_file_is_named_in_one_line(case: str, saved: Path, tmp_path: Path) -> None:
    name, damage, message = DAMAGE[case]
    model = Path(shutil.copytree(saved, tmp_path / "model"))
    damage(model / name)
    with pytest.raises(FlukeidError, match=message) as raised:
        load_model(model)
    assert "\n" not in str(raised.value)


def test_labels_json_is_optional(saved: Path, tmp_path: Path) -> None:
    model = Path(shutil.copytree(saved, tmp_path / "model"))
    (model / "labels.json").unlink()
    assert load_model(model).labels == []
