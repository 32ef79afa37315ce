"""Configs are dataclasses; files (TOML or JSON) and ``key=value`` overrides fill them.

    cfg = load_config(DemoConfig, "experiments/configs/demo.toml", ["digits.size=small"])

Nested dataclass fields are TOML tables (``[digits]``) and dotted override keys.
Unknown keys and values of the wrong type are refused with a ConfigError that
names the key.
"""

from __future__ import annotations

import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from avkit.errors import ConfigError

T = TypeVar("T")


def _literal(value: Any) -> Any:
    """Free-form values (in ``dict`` fields): override strings become numbers/bools where they parse."""
    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from TOML/JSON or an override string) to the field type ``tp``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or value == "none" and type(None) in typing.get_args(tp):
            return None
        return _coerce(value, args[0], key)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin is dict or tp is dict:
        if isinstance(value, str) and value.strip().startswith("{"):  # an override: {"a": 1} (JSON)
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{key}: {value!r} is not a JSON object ({exc})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of settings, got {value!r}")
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is not Any:  # dict[str, X]: each value is an X
            return {k: _coerce(v, args[1], f"{key}.{k}") for k, v in value.items()}
        return {k: _literal(v) for k, v in value.items()}
    if origin in (tuple, list):
        if isinstance(value, str):  # an override: [1, 2] (JSON), [a,b] or a,b
            text = value.strip()
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = [v.strip() for v in text.removeprefix("[").removesuffix("]").split(",") if v.strip()]
            if not isinstance(value, list):  # one value: a list of one
                value = [text]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        items = [_coerce(v, item, key) for v in value] if item is not Any else list(value)
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float, str):
        try:
            if tp is int and isinstance(value, float) and not value.is_integer():
                raise ValueError
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from a dict, refusing unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {[prefix + u for u in unknown]}; known: {sorted(names)}")
    return cls(**{k: _coerce(v, hints[k], prefix + k) for k, v in data.items()})


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file to a dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist")
    if path.suffix not in (".toml", ".json"):
        raise ConfigError(f"{path}: unsupported config format; expected .toml or .json")
    try:
        text = path.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: invalid config ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: invalid config (a JSON {type(data).__name__}; expected an object of settings)")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``a.b=value`` strings onto a nested dict (values stay strings; coerced later)."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a table")
        node[parts[-1]] = value
    return data


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Defaults of ``cls``, updated by the file at ``path`` (if any), then by ``overrides``."""
    data = read_config_file(path) if path is not None else {}
    return from_dict(cls, apply_overrides(data, overrides))


def require_finite(cfg: Any) -> None:
    """ConfigError naming the field if a number of dataclass ``cfg`` (or of a list field) is NaN or infinite."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{f.name}: must be finite, got {value!r}")


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as plain JSON-able data (to record beside results)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))
