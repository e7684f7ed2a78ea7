"""The schema checker for data files: a JSON value checked against a type annotation.

Saved runs, baselines and pytest-benchmark files are data: every field read from them goes
through :func:`check` against its annotation, and a value that does not fit is refused with
:class:`SchemaError`, one line naming the field (``results[3].latency_ms_median: expected a
number, got 'fast'``); callers prefix the file. Numbers must be finite (NaN and infinity are
refused), an integer-valued float is accepted as an integer, a bool is never a number.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Callable
from typing import Any

from cnnbench.errors import UsageError

__all__ = [
    "MAX_DEPTH",
    "check_depth",
    "MAX_INT",
    "SchemaError",
    "check",
    "describe",
    "record_from_dict",
]


class SchemaError(UsageError):
    """A data file that cannot be read: the message names the file (or field) and the
    problem."""


def describe(value: Any) -> str:
    """``repr(value)`` cut to 40 characters, for error messages."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


#: The deepest nesting of lists and objects a data file may have (a saved run needs 4:
#: results, a stage, its output shape; a configuration's model arguments a few more). A
#: deeper file is refused at load rather than breaking a writer's recursion later.
MAX_DEPTH = 32


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """SchemaError when the lists and objects in ``value`` nest deeper than ``limit``
    (counted without recursion, so any depth is measured safely)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                raise SchemaError(
                    f"{where}: nested more than {limit} levels deep; a cnnbench file is not"
                )
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


#: The largest integer a data file may hold (any count, byte size or index cnnbench writes is
#: far below it); a larger one is refused at load, not left to overflow a report.
MAX_INT = 2**63 - 1


def check(value: Any, hint: Any, where: str) -> Any:
    """``value`` checked against the type annotation ``hint`` (int, float, str, bool, None,
    ``list[...]``, dict, a dataclass, unions of these; ``Any`` and other hints pass); returns
    the value to store (an integer-valued float as int, an int as float where a float is
    expected, a dataclass built from its object), else SchemaError naming ``where``.
    Integers beyond :data:`MAX_INT` in magnitude are refused."""
    return _checker(hint, False)(value, where)


Checker = Callable[[Any, str], Any]


def _pass(value: Any, where: str) -> Any:
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(f"{where}: expected true or false, got {describe(value)}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise SchemaError(f"{where}: expected an integer, got {describe(value)}")
    if not -MAX_INT <= value <= MAX_INT:
        raise SchemaError(f"{where}: {describe(value)} is out of range (at most 2**63-1)")
    return value


def _float(value: Any, where: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise SchemaError(f"{where}: expected a number, got {describe(value)}")
    if isinstance(value, int) and not -MAX_INT <= value <= MAX_INT:
        raise SchemaError(f"{where}: {describe(value)} is out of range (at most 2**63-1)")
    if not math.isfinite(value):
        raise SchemaError(f"{where}: {value!r} is not a finite number")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SchemaError(f"{where}: expected a string, got {describe(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800" in JSON: no report could be written in UTF-8
            raise SchemaError(f"{where}: {describe(value)} is not valid Unicode text") from None
    return value


def _dict(value: Any, where: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected an object, got {describe(value)}")
    return value


_SCALARS: dict[Any, Checker] = {bool: _bool, int: _int, float: _float, str: _str, dict: _dict}


def _at_least_zero(number: Checker) -> Checker:
    def checked(value: Any, where: str) -> Any:
        out = number(value, where)
        if out < 0:
            raise SchemaError(f"{where}: {out!r} is negative; a recorded value never is")
        return out

    return checked


_NON_NEGATIVE: dict[Any, Checker] = {
    **_SCALARS,
    int: _at_least_zero(_int),
    float: _at_least_zero(_float),
}


@functools.cache
def _checker(hint: Any, non_negative: bool) -> Checker:
    """The checking function of one annotation, built once per annotation; with
    ``non_negative`` every number in it (lists and nested records included) must be >= 0."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = typing.get_args(hint)
        nullable = type(None) in arms
        checkers = [_checker(arm, non_negative) for arm in arms if arm is not type(None)]

        def union(value: Any, where: str) -> Any:
            if value is None and nullable:
                return None
            if len(checkers) == 1:
                return checkers[0](value, where)
            for arm in checkers:
                try:
                    return arm(value, where)
                except SchemaError:
                    pass
            raise SchemaError(f"{where}: unexpected value {describe(value)}")

        return union
    if hint is Any:
        return _pass
    if hint in _SCALARS:
        return (_NON_NEGATIVE if non_negative else _SCALARS)[hint]
    if origin is list or hint is list:
        (item_hint,) = typing.get_args(hint) or (Any,)
        item = _checker(item_hint, non_negative)

        def items(value: Any, where: str) -> list[Any]:
            if not isinstance(value, list):
                raise SchemaError(f"{where}: expected a list, got {describe(value)}")
            return [item(v, f"{where}[{i}]") for i, v in enumerate(value)]

        return items
    if origin is dict:
        return _dict
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return functools.partial(_record, hint, non_negative)
    return _pass


def _record(cls: Any, non_negative: bool, value: Any, where: str) -> Any:
    return record_from_dict(cls, value, where, non_negative=non_negative)


@functools.cache
def _field_types(cls: Any) -> dict[str, Any]:
    """The resolved annotation of each field of the dataclass ``cls``, computed once per class
    (``typing.get_type_hints`` costs milliseconds: per row it made a 10^6-row run take an
    hour to load); a field whose annotation cannot be resolved here is checked as ``Any``
    rather than breaking reads."""
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


@functools.cache
def _field_sets(cls: Any) -> tuple[frozenset[str], tuple[str, ...]]:
    """The field names of the dataclass ``cls`` and those without a default (once per class)."""
    known = dataclasses.fields(cls)
    required = tuple(
        f.name
        for f in known
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    )
    return frozenset(f.name for f in known), required


def record_from_dict(cls: Any, data: Any, where: str, *, non_negative: bool = False) -> Any:
    """An instance of the dataclass ``cls`` from a JSON object, each field checked by
    :func:`check` against its annotation; unknown and missing fields are refused. With
    ``non_negative``, a negative number anywhere in it is refused too (every number cnnbench
    records, counts, bytes, times, ratios, is >= 0: a negative one is a damaged file)."""
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: expected an object, got {describe(data)}")
    hints = _field_types(cls)
    known, required = _field_sets(cls)
    if not known.issuperset(data):
        unknown = sorted(map(str, set(data) - known))
        raise SchemaError(f"{where}: unknown result field(s) {', '.join(unknown)}")
    missing = [name for name in required if name not in data]
    if missing:
        raise SchemaError(f"{where}: missing field(s) {', '.join(missing)}")
    values = {
        k: _checker(hints.get(k, Any), non_negative)(v, f"{where}.{k}") for k, v in data.items()
    }
    return cls(**values)
