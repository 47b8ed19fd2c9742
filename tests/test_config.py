from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flukeid.config import load_config, save_config
from flukeid.errors import ConfigError


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-3
    schedule: str = "cosine"


@dataclass(frozen=True)
class Example:
    backbone: str = "tiny"
    epochs: int = 3
    size: tuple[int, int] = (64, 64)
    optim: Optim = field(default_factory=Optim)
    crop: Path | None = None


def test_yaml_round_trip_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 5\nsize: [32, 48]\noptim:\n  lr: 1\n")
    cfg = load_config(Example, path, overrides={"optim.schedule": "step"})
    assert cfg == Example(epochs=5, size=(32, 48), optim=Optim(lr=1.0, schedule="step"))
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Example, tmp_path / "out.yaml") == cfg


def test_unknown_key_gets_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epocs: 5\n")
    with pytest.raises(ConfigError, match=r"unknown key 'epocs' \(did you mean 'epochs'\?\)"):
        load_config(Example, path)
    path.write_text("optim:\n  lr_rate: 1\n")
    with pytest.raises(ConfigError, match=r"c.yaml.optim: unknown key 'lr_rate' \(did you mean 'lr'\?\)"):
        load_config(Example, path)


def test_wrong_types_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("epochs: many\n")
    with pytest.raises(ConfigError, match=r"epochs: expected int, found 'many'"):
        load_config(Example, path)
    path.write_text("size: [1, 2, 3]\n")
    with pytest.raises(ConfigError, match=r"size: expected 2 values"):
        load_config(Example, path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(Example, tmp_path / "missing.yaml")
