"""A sandbox of torch's process-wide state around a model's own code.

A model's code (its constructor, its forward, its stages) runs in the same process as the
other models of a comparison, and torch keeps some settings process-wide: one model calling
``torch.set_num_threads(1)`` or ``torch.set_default_dtype(torch.float64)`` would make every
later row run with one thread or in float64 while its label says otherwise.
:func:`torch_state` snapshots these settings before the model's code runs, restores them
after it, and reports what the code changed, so the offender's row can say so and no other
row is touched.

The knobs (what ``torch_state`` watches and restores):

- ``threads``: ``torch.get_num_threads()`` (intra-op CPU threads);
- ``interop_threads``: ``torch.get_num_interop_threads()`` (watched only: torch allows it to
  be set once per process, so a change is reported, never undone);
- ``default_dtype``: ``torch.get_default_dtype()``;
- ``grad_enabled``: ``torch.is_grad_enabled()``;
- ``cudnn_benchmark``, ``cudnn_deterministic``, ``cudnn_enabled``, ``cudnn_allow_tf32``:
  ``torch.backends.cudnn``'s flags;
- ``float32_matmul_precision``: ``torch.get_float32_matmul_precision()`` (what
  ``torch.backends.cuda.matmul.allow_tf32`` also sets);
- ``deterministic_algorithms``: ``torch.are_deterministic_algorithms_enabled()`` with its
  warn-only flag;
- ``autocast_<device>`` (cpu, cuda): whether autocast is on and its dtype, outside any
  ``torch.autocast`` block cnnbench enters itself.

cnnbench sets flush-denormal only inside per-layer timing (:mod:`cnnbench.runtime.layer_timing`),
which restores it itself; torch offers no way to read it, so it is not watched here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["StateChanges", "torch_state", "snapshot", "describe_changes"]

_AUTOCAST_DEVICES = ("cpu", "cuda")


def _autocast(device: str) -> tuple[bool, str]:
    return torch.is_autocast_enabled(device), str(torch.get_autocast_dtype(device))


def _set_autocast(device: str, value: tuple[bool, str]) -> None:
    enabled, dtype = value
    torch.set_autocast_enabled(device, enabled)
    torch.set_autocast_dtype(device, getattr(torch, dtype.removeprefix("torch.")))


def _set_deterministic(value: tuple[bool, bool]) -> None:
    torch.use_deterministic_algorithms(value[0], warn_only=value[1])


def _set_grad_enabled(value: bool) -> None:
    torch.set_grad_enabled(value)  # a function call as well as a context manager


def _autocast_knob(device: str) -> tuple[Callable[[], Any], Callable[[Any], None]]:
    def read() -> Any:
        return _autocast(device)

    def restore(value: Any) -> None:
        _set_autocast(device, value)

    return read, restore


def _set_cudnn(name: str) -> Callable[[Any], None]:
    return lambda value: setattr(torch.backends.cudnn, name, value)


#: knob name -> (read, restore; None: cannot be restored)
_KNOBS: dict[str, tuple[Callable[[], Any], Callable[[Any], None] | None]] = {
    "threads": (torch.get_num_threads, torch.set_num_threads),
    "interop_threads": (torch.get_num_interop_threads, None),
    "default_dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "grad_enabled": (torch.is_grad_enabled, _set_grad_enabled),
    "cudnn_benchmark": (lambda: torch.backends.cudnn.benchmark, _set_cudnn("benchmark")),
    "cudnn_deterministic": (
        lambda: torch.backends.cudnn.deterministic,
        _set_cudnn("deterministic"),
    ),
    "cudnn_enabled": (lambda: torch.backends.cudnn.enabled, _set_cudnn("enabled")),
    "cudnn_allow_tf32": (lambda: torch.backends.cudnn.allow_tf32, _set_cudnn("allow_tf32")),
    "float32_matmul_precision": (
        torch.get_float32_matmul_precision,
        torch.set_float32_matmul_precision,
    ),
    "deterministic_algorithms": (
        lambda: (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        ),
        _set_deterministic,
    ),
    **{f"autocast_{d}": _autocast_knob(d) for d in _AUTOCAST_DEVICES},
}


_UNREADABLE = "unreadable"


def _read(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - torch refuses to tell (mixed legacy and new TF32 APIs)
        return _UNREADABLE


def snapshot() -> dict[str, Any]:
    """The current value of every knob (see the module docstring)."""
    return {name: _read(read) for name, (read, _) in _KNOBS.items()}


def _show(value: Any) -> str:
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):
        on, extra = value
        if isinstance(extra, str):  # autocast: (enabled, dtype)
            return f"on ({extra.removeprefix('torch.')})" if on else "off"
        return ("on (warn only)" if extra else "on") if on else "off"
    return str(value)


@dataclass
class StateChanges:
    """What a model's code changed in torch's global state: knob -> (before, after), the
    first change seen for each knob (``before`` is what cnnbench had set), and the knobs that
    could not be put back."""

    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    not_restored: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.changed)

    def merge(self, other: StateChanges) -> None:
        """Add ``other``'s changes (a knob already seen keeps its first change)."""
        for name, change in other.changed.items():
            self.changed.setdefault(name, change)
        self.not_restored |= other.not_restored

    def after(self, name: str) -> Any:
        """The value the model's code set for knob ``name`` (KeyError when it did not)."""
        return self.changed[name][1]

    def describe(self, where: str) -> str:
        """One note: ``the model's code changed torch global state during <where>: ...``."""
        return describe_changes(self, where)


def describe_changes(changes: StateChanges, where: str) -> str:
    """The note a row carries for ``changes`` made during ``where`` (e.g. ``its build``)."""
    parts = []
    for name, (before, after) in changes.changed.items():
        text = f"{name} {_show(before)} -> {_show(after)}"
        if name in changes.not_restored:
            text += " (could not be restored: later rows ran with it)"
        parts.append(text)
    return (
        f"the model's code changed torch global state during {where}: {', '.join(parts)} "
        "(undone after it: the other rows ran with cnnbench's settings)"
    )


@contextmanager
def torch_state() -> Iterator[StateChanges]:
    """Run the block (a model's own code) in a sandbox of torch's global state: every knob
    (module docstring) is read before, compared after and put back; the yielded
    :class:`StateChanges` is filled on exit, also when the block raises."""
    before = snapshot()
    changes = StateChanges()
    try:
        yield changes
    finally:
        for name, (read, restore) in _KNOBS.items():
            now = _read(read)
            if now == before[name]:
                continue
            changes.changed[name] = (before[name], now)
            if restore is None or before[name] is _UNREADABLE:
                changes.not_restored.add(name)
                continue
            try:
                restore(before[name])
            except Exception:  # noqa: BLE001 - torch refuses (e.g. threads once work began)
                changes.not_restored.add(name)
