"""Strict typed loading of nested dataclasses from YAML-like mappings (torch-free; used by `pgpo.config` and
the `sde` study files, sde.studyfile).

    build(Cls, mapping, "where")   # every key checked against Cls's fields ("did you mean ...?"), every value
                                    # coerced to the field's annotation (bool, int, float, str, Literal, Optional,
                                    # list[...], dict, nested dataclass), required fields present; errors are
                                    # ConfigError naming the dotted field

Float fields accept every float literal a Python user writes, including the ones YAML 1.1 reads as strings
(`1e-5`). Range checks are the dataclasses' own `validate(where)` methods, with `positive` and `unit` here.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration problem, with the dotted name of the offending field in the message."""


def positive(where, name, v):
    if not v > 0:
        raise ConfigError(f"{where}.{name}: must be positive, got {v}")


def unit(where, name, v):
    if not 0.0 <= v <= 1.0:
        raise ConfigError(f"{where}.{name}: must be in [0, 1], got {v}")


def coerce(value: Any, tp, where: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):                  # YAML 1.1 reads `1e-5` (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    raise ConfigError(f"{where}: unsupported type {tp}")  # pragma: no cover


def unknown_key(path: str, key, names, otherwise: str | None = None) -> ConfigError:
    """The one-line error for a key that is not among `names`: the closest name ("did you mean"), else `otherwise`
    (default: the known keys)."""
    close = difflib.get_close_matches(str(key), list(names), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else (otherwise or f"; known keys: {', '.join(names)}")
    return ConfigError(f"{path}: unknown key{hint}")


def build(cls, data, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise unknown_key(path, key, names)
        kwargs[key] = coerce(value, hints[key], path)
    required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING and f.name not in kwargs]
    if required:
        raise ConfigError(f"{where or 'config'}: missing {', '.join(repr(r) for r in required)}")
    return cls(**kwargs)


def read_yaml(path: str, what: str = "config"):
    """The document of a YAML file; ConfigError in one line: the file cannot be read, or `path:line:column: what is
    wrong` for a syntax error (PyYAML's own message spans several lines)."""
    import yaml
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path!r}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context = getattr(e, "context", None)
        raise ConfigError(f"{where}: not valid YAML: {problem}" + (f" ({context})" if context else "")) from None
