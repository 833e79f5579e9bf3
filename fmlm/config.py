"""Typed, frozen configuration: strict parsing, dotted command-line overrides, JSON.

Every concern owns a small frozen dataclass (``DataConfig``, ``DenoiserConfig``,
``TrainConfig``, ...). This module turns plain dictionaries and ``key=value``
strings into those dataclasses and back, and refuses anything it cannot map:
an unknown key or a value of the wrong type is a ``ConfigError`` that names the
dotted key. Nothing is read with a silent default.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or out of range.

    ``require`` also records ``key`` and ``detail`` (the message without the key), so that
    ``from_dict`` can restate a nested section's check under the full dotted path the user wrote.
    """

    def __init__(self, message: str, key: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.key = key
        self.detail = detail


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise ``ConfigError`` naming ``key``."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{key}: {value!r} does not fit {_type_name(tp)}")
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v != ""]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # key=3 on the command line is the one-item list [3]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        item = args[0] if args else Any
        out = [_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a section (mapping), got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        number = None
        if isinstance(value, (int, float, str)):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the float range
                number = math.inf
            except ValueError:
                pass
        if number is None:
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        # No config field means anything by inf or NaN; they would only fail later, inside training.
        if not math.isfinite(number):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    if tp is Path:
        return Path(value)
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types raise ``ConfigError``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or cls.__name__}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        close = ", ".join(sorted(fields))
        raise ConfigError(f"unknown config key {shown_key(prefix + str(unknown[0]))} (known in {cls.__name__}: {close})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if prefix and err.key is not None:  # a ``require`` in a nested section: name the full path
            raise _under(err, prefix) from None
        raise
    except TypeError as err:
        raise ConfigError(f"{prefix or cls.__name__}: {err}") from None


def _under(err: ConfigError, prefix: str) -> ConfigError:
    """``err`` with its key put under ``prefix``: a section checks itself as ``train.max_steps`` (or a
    bare ``row_len``), which within ``train_teacher.`` is ``train_teacher.max_steps``."""
    own = err.key.split(".", 1)[1] if "." in err.key else err.key
    key = err.key if err.key.startswith(prefix) else prefix + own
    return ConfigError(f"{key}: {err.detail}", key=key, detail=err.detail)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain JSON-ready dictionary of a (nested) config dataclass."""

    def convert(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: convert(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return convert(cfg)


def _parse_scalar(text: str) -> Any:
    """Read ``text`` as JSON where it parses (numbers, true/false, null, lists), else as a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def shown_key(key: str) -> str:
    """A key as typed, quoted when it holds characters that would break a one-line message."""
    return key if key.isprintable() else repr(key)


def apply_overrides(cfg: T, overrides: list[str] | tuple[str, ...]) -> T:
    """Return ``cfg`` with ``section.key=value`` overrides applied; bad keys raise ``ConfigError``."""
    data = to_dict(cfg)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
                raise ConfigError(f"unknown config key {shown_key('.'.join(parts[: i + 1]))}")
            node = node[part]
        if parts[-1] not in node:
            raise ConfigError(f"unknown config key {shown_key(key.strip())}")
        node[parts[-1]] = _parse_scalar(raw)
    return from_dict(type(cfg), data)


def check_unique_overrides(overrides: list[str] | tuple[str, ...]) -> None:
    """Refuse a command line that sets one key twice (``apply_overrides`` would silently keep the last)."""
    seen: set[str] = set()
    for item in overrides:
        key = str(item).split("=", 1)[0].strip()
        if key in seen:
            raise ConfigError(f"{shown_key(key)}: given twice; give each setting once")
        seen.add(key)


def require(condition: bool, key: str, message: str) -> None:
    """Raise ``ConfigError('key: message')`` unless ``condition``; for ``__post_init__`` checks."""
    if not condition:
        raise ConfigError(f"{key}: {message}", key=key, detail=message)
