"""The schema checker for data files: a JSON value checked against a type annotation.

Saved runs, baselines and pytest-benchmark files are data: every field read from them goes
through :func:`check` against its annotation, and a value that does not fit is refused with
:class:`SchemaError`, one line naming the field (``results[3].latency_ms_median: expected a
number, got 'fast'``); callers prefix the file. Numbers must be finite (NaN and infinity are
refused), an integer-valued float is accepted as an integer, a bool is never a number.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from typing import Any

from cnnbench.errors import UsageError

__all__ = ["SchemaError", "check", "describe", "record_from_dict"]


class SchemaError(UsageError):
    """A data file that cannot be read: the message names the file (or field) and the
    problem."""


def describe(value: Any) -> str:
    """``repr(value)`` cut to 40 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the type annotation ``hint`` (int, float, str, bool, None,
    ``list[...]``, dict, a dataclass, unions of these; ``Any`` and other hints pass); returns
    the value to store (an integer-valued float as int, an int as float where a float is
    expected, a dataclass built from its object), else SchemaError naming ``where``."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        if value is None and type(None) in arms:
            return None
        errors = []
        for arm in arms:
            if arm is type(None):
                continue
            try:
                return check(value, arm, where)
            except SchemaError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise SchemaError(f"{where}: unexpected value {describe(value)}")
    if hint is Any:
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise SchemaError(f"{where}: expected true or false, got {describe(value)}")
        return value
    if hint is int:
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise SchemaError(f"{where}: expected an integer, got {describe(value)}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SchemaError(f"{where}: expected a number, got {describe(value)}")
        if not math.isfinite(value):
            raise SchemaError(f"{where}: {value!r} is not a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SchemaError(f"{where}: expected a string, got {describe(value)}")
        return value
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where}: expected a list, got {describe(value)}")
        (item,) = typing.get_args(hint) or (Any,)
        return [check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where}: expected an object, got {describe(value)}")
        return value
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return record_from_dict(hint, value, where)
    return value


def _field_types(cls: Any) -> dict[str, Any]:
    """The resolved annotation of each field of the dataclass ``cls``; a field whose
    annotation cannot be resolved here is checked as ``Any`` rather than breaking reads."""
    try:
        return typing.get_type_hints(cls)
    except (NameError, TypeError):
        namespace = vars(sys.modules[cls.__module__])
        hints: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            try:
                hints[f.name] = (
                    eval(f.type, namespace) if isinstance(f.type, str) else f.type  # noqa: S307
                )
            except Exception:  # noqa: BLE001 - an annotation only for type checkers
                hints[f.name] = Any
        return hints


def record_from_dict(cls: Any, data: Any, where: str) -> Any:
    """An instance of the dataclass ``cls`` from a JSON object, each field checked by
    :func:`check` against its annotation; unknown and missing fields are refused."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object, got {describe(data)}")
    hints = _field_types(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise SchemaError(f"{where}: unknown result field(s) {', '.join(map(str, unknown))}")
    missing = [
        name
        for name, f in known.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {k: check(v, hints.get(k, Any), f"{where}.{k}") for k, v in data.items()}
    return cls(**values)
