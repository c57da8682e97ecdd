"""Type checks for config dataclasses, so a wrong override fails with a message
naming the option (``method.n_iterations must be int, got 'ten'``)."""
from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from bench.errors import ConfigError

_SCALARS = (bool, int, float, str)


def _accepts(tp: Any, value: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp in _SCALARS:
        return isinstance(value, tp)
    if origin in (list, tuple, typing.Sequence) or tp in (list, tuple):
        return isinstance(value, (list, tuple))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True  # other annotations are checked by the class itself


def check_fields(obj: Any, prefix: str) -> None:
    """Raise ConfigError naming ``<prefix>.<field>`` for a value of the wrong type."""
    if not dataclasses.is_dataclass(obj):
        return
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.name in hints and not _accepts(hints[f.name], value):
            raise ConfigError(f"{prefix}.{f.name} must be {_describe(hints[f.name])}, got {value!r}")


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
