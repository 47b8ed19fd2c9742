"""Frozen dataclass configs loaded from YAML or dicts; unknown keys are refused with a suggestion."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from flukeid.errors import ConfigError

T = TypeVar("T")


def suggest(name: str, valid: typing.Iterable[str]) -> str:
    """' (did you mean x?)' when a close valid name exists, else ''."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=1) or [v for v in valid if name.startswith(v)][:1]
    return f" (did you mean {close[0]!r}?)" if close else ""


def choices(literal: Any) -> tuple[Any, ...]:
    """The values a ``Literal[...]`` type allows."""
    return typing.get_args(literal)


def check_choice(key: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    """Raise ConfigError ``key: unknown <value> (did you mean ...?); valid: ...`` unless ``value`` is allowed: the
    one refusal of a choice (a Literal field, a name in a registry), from the loader or a config built in code."""
    allowed = tuple(allowed)
    if value not in allowed:
        hint = suggest(value, map(str, allowed)) if isinstance(value, str) else ""
        raise ConfigError(f"{key}: unknown {value!r}{hint}; valid: {', '.join(map(str, allowed))}")


def _convert(value: Any, hint: Any, where: str) -> Any:
    """Convert a YAML value to the annotated type, or raise ConfigError naming the field."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(value, option, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, found {value!r}")
        return from_dict(hint, value, where)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, found {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, found {len(value)}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is typing.Literal:
        check_choice(where, value, typing.get_args(hint))
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is Path and isinstance(value, str):
        return Path(value)
    if (isinstance(hint, type) and not isinstance(value, hint)) or (hint is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, found {value!r}")
    return value


def check_value(key: str, value: Any, ok: bool, allowed: str) -> None:
    """Raise ConfigError ``key must be <allowed>, found <value>`` unless ``ok`` (write ``ok`` so NaN fails it)."""
    if not ok:
        raise ConfigError(f"{key} must be {allowed}, found {value!r}")


def from_dict(cls: type[T], values: Mapping[str, Any], where: str = "config") -> T:
    """Build dataclass ``cls`` from a mapping; nested dataclasses are built from nested mappings."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if not isinstance(key, str) or key not in fields:
            hint = suggest(key, fields) if isinstance(key, str) else ""
            raise ConfigError(f"{where}: unknown key {key!r}{hint}; valid keys: {', '.join(fields)}")
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}")
    missing = [name for name, f in fields.items() if name not in kwargs and _required(f)]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**kwargs)


def _required(field: dataclasses.Field[Any]) -> bool:
    return field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line from a YAML error: the problem and where it is (PyYAML's own text spans several lines)."""
    problem, mark = getattr(exc, "problem", None), getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def parse_overrides(items: typing.Iterable[str]) -> dict[str, Any]:
    """``["loss.name=triplet", "epochs=3"]`` -> ``{"loss.name": "triplet", "epochs": 3}`` (values read as YAML)."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, found {item!r}")
        if not all(part.strip() for part in key.split(".")):
            raise ConfigError(f"--set {item!r}: the key {key!r} has an empty part (write a.b=VALUE)")
        try:
            overrides[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({_yaml_problem(exc)}); quote text values"
            ) from exc
    return overrides


def _dataclass_in(hint: Any) -> type | None:
    """The dataclass a field holds (``X`` or ``X | None``), or None for a plain value."""
    for option in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(option) and isinstance(option, type):
            return option
    return None


def _check_override(cls: type, dotted: str) -> None:
    """Refuse an override whose dotted key names no field of ``cls`` (or goes inside a plain value)."""
    node: type | None = cls
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        section = ".".join(parts[:depth])
        if node is None:
            raise ConfigError(f"override {dotted!r}: {section!r} is a value, not a section with keys")
        fields = [f.name for f in dataclasses.fields(node)]
        if part not in fields:
            within = f" of {section!r}" if section else ""
            raise ConfigError(
                f"override {dotted!r}: unknown key {part!r}{suggest(part, fields)}; valid keys{within}: "
                + ", ".join(fields)
            )
        node = _dataclass_in(typing.get_type_hints(node)[part])


def _read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file, refused with the reason when it cannot be one."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from exc
    if b"\0" in data:
        raise ConfigError(f"{path}: holds NUL bytes: a binary file, not a YAML config")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}): is it a YAML config?"
        ) from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(exc)})") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, found {type(loaded).__name__}")
    return loaded


def load_config(cls: type[T], path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> T:
    """Load ``cls`` from a YAML file (missing keys keep their defaults), then apply dotted overrides."""
    where = str(path) if path else "config"
    values = _read_yaml(path) if path is not None else {}
    for dotted, value in (overrides or {}).items():
        _check_override(cls, dotted)
        node = values
        *parents, leaf = dotted.split(".")
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                section = ".".join(parents[: depth + 1])
                raise ConfigError(f"{where}.{section}: expected a mapping, found {node!r} (override {dotted!r})")
        node[leaf] = value
    return from_dict(cls, values, where=where)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain YAML-ready dict (tuples as lists, paths as strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def save_config(config: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False), encoding="utf-8")
