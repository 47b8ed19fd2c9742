from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from flukeid.config import load_config, parse_overrides, save_config
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


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epochs=[1", r"--set 'epochs=\[1': the value is not valid YAML \(expected ',' or '\]'.*column 3\)"),
        ("size={a: 1", r"--set 'size=\{a: 1': the value is not valid YAML"),
        ("epochs", r"--set expects KEY=VALUE, found 'epochs'"),
        ("=3", r"--set expects KEY=VALUE, found '=3'"),
        (" =3", r"--set expects KEY=VALUE"),
        ("optim..lr=1", r"--set 'optim..lr=1': the key 'optim..lr' has an empty part"),
        ("optim.=1", r"has an empty part"),
    ],
)
def test_malformed_overrides_name_the_override(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_overrides([item])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"unknown.key": 1}, r"override 'unknown.key': unknown key 'unknown'; valid keys: backbone, epochs"),
        ({"optim.lr_rate": 1}, r"override 'optim.lr_rate': unknown key 'lr_rate' \(did you mean 'lr'\?\)"),
        ({"epochs.x": 1}, r"override 'epochs.x': 'epochs' is a value, not a section with keys"),
        ({"optim.lr.x": 1}, r"override 'optim.lr.x': 'optim.lr' is a value, not a section"),
    ],
)
def test_overrides_of_unknown_keys_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Example, None, overrides)


def test_override_inside_a_value_the_file_set(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("optim: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml.optim: expected a mapping, found 3 \(override 'optim.lr'\)"):
        load_config(Example, path, {"optim.lr": 1})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "holds NUL bytes: a binary file, not a YAML config"),
        (b"epochs: 3\nbackbone: caf\xe9\n", r"not UTF-8 text \(byte 0xe9 at offset 23\)"),
        (b"epochs: [1\n", r"not valid YAML \(expected ',' or '\]', but got '<stream end>' at line 2, column 1\)"),
        (b"- 1\n- 2\n", "expected a mapping of keys at the top level, found list"),
        (b"1: 2\n", "unknown key 1; valid keys"),
    ],
    ids=["binary", "latin-1", "broken", "list", "int-key"],
)
def test_unreadable_config_files_are_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(Example, path)
    assert "\n" not in str(caught.value)


def test_a_folder_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_config(Example, tmp_path)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("epochs", -1, r"epochs must be an integer >= 1, found -1"),
        ("epochs", 0, r"epochs must be an integer >= 1, found 0"),
        ("num_nodes", 0, r"num_nodes must be an integer >= 1, found 0"),
        ("batch_size", 0, r"batch_size must be at least 12 \(2 individuals x m_per_class 4"),
        ("m_per_class", 1, r"m_per_class must be an integer >= 2"),
        ("negatives_per_batch", -1, r"negatives_per_batch must be an integer >= 0"),
        ("batches_per_epoch", 0, r"batches_per_epoch must be an integer >= 1 or null"),
        ("val_query_share", 1, r"val_query_share must be in \[0, 1\), found 1.0"),
        ("val_unknown_share", -0.1, r"val_unknown_share must be in \[0, 1\)"),
        ("num_workers", -1, r"num_workers must be an integer >= 0"),
        ("seed", -1, r"seed must be in \[0, 4294967295\]"),
        ("seed", 2**40, r"seed must be in \[0, 4294967295\]"),
        ("precision", "17-mixed", r"precision: unknown '17-mixed' \(did you mean '16-mixed'\?\); valid: auto, 32-true"),
        ("optim.lr", 0, r"optim.lr must be a finite number > 0, found 0.0"),
        ("optim.lr", float("nan"), r"optim.lr must be a finite number > 0, found nan"),
        ("optim.lr", float("inf"), r"optim.lr must be a finite number > 0, found inf"),
        ("optim.weight_decay", -1, r"optim.weight_decay must be a finite number >= 0"),
        ("optim.freeze_epochs", -1, r"optim.freeze_epochs must be a finite number >= 0"),
        ("model.embedding_dim", 0, r"model.embedding_dim must be a positive integer or null"),
        ("model.image_size", [0, 64], r"model.image_size must be \[height, width\] in positive pixels"),
        ("model.dropout", 1, r"model.dropout must be in \[0, 1\)"),
        ("augment.hflip", 1.5, r"augment.hflip must be a probability in \[0, 1\] or null"),
        ("augment.scale", 1, r"augment.scale must be in \[0, 1\)"),
        ("augment.rotate", -5, r"augment.rotate must be degrees in \[0, 180\]"),
        ("augment.preset", "strnog", r"augment.preset: unknown 'strnog' \(did you mean 'strong'\?\)"),
        ("loss.name", "arcfase", r"loss.name: unknown 'arcfase' \(did you mean 'arcface'\?\)"),
    ],
)
def test_train_config_refuses_out_of_range_values(key: str, value: object, message: str) -> None:
    from flukeid.train.config import TrainConfig

    with pytest.raises(ConfigError, match=message):
        load_config(TrainConfig, None, {key: value})


def test_train_config_checks_values_built_in_code_too() -> None:
    from flukeid.train.config import OptimConfig, TrainConfig

    with pytest.raises(ConfigError, match="epochs must be an integer >= 1, found -1"):
        TrainConfig(epochs=-1)
    with pytest.raises(ConfigError, match=r"optim\.lr must be a finite number > 0"):
        OptimConfig(lr=-1e-3)
    assert load_config(TrainConfig, None, {"batches_per_epoch": None, "model.embedding_dim": None}).epochs == 10


def test_devices_take_a_count_or_text() -> None:
    """`--set devices=2` is YAML's integer 2; Lightning takes a count, "auto" or a list such as "0,1"."""
    from flukeid.train.config import TrainConfig

    assert load_config(TrainConfig, None, parse_overrides(["devices=2", "num_nodes=2"])).devices == 2
    assert load_config(TrainConfig, None, parse_overrides(["devices=0,1"])).devices == "0,1"
