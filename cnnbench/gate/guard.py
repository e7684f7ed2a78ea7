"""Running model code under the gate: whatever it raises is reported, never obeyed.

Model code (a user's file, a factory, a forward pass) may raise anything, ``SystemExit`` and
``KeyboardInterrupt`` included. Left alone, ``sys.exit(0)`` in a forward pass would end
``cnnbench gate check`` with exit 0 and no verdict, which CI reads as a pass. Inside
:func:`model_code` every ``BaseException`` becomes a :class:`ModelCodeError` (exit 2, naming
what was being done and what was raised), except a real Ctrl-C: :func:`watch_sigint` installs
a SIGINT handler that records the signal before raising ``KeyboardInterrupt``, so an interrupt
that follows a real SIGINT stays an interrupt (exit 130) while one the model raised itself is
an error like any other. (A model that sends itself SIGINT cannot be told apart from a user.)
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from cnnbench.errors import CnnbenchError, one_line

__all__ = [
    "ModelCodeError",
    "Unmeasurable",
    "model_code",
    "watch_sigint",
    "interrupted",
]


class ModelCodeError(CnnbenchError):
    """Model code raised while the gate ran it: ``what`` was being done, ``exc`` the cause.
    Exit code 2: the gate could not measure what it was asked to."""

    exit_code = 2

    def __init__(self, what: str, exc: BaseException) -> None:
        self.what = what
        self.cause = one_line(exc)
        super().__init__(
            f"{what}: the model code raised {self.cause}; fix the model (or remove it from "
            "the gate) and re-run"
        )


class Unmeasurable(ModelCodeError):
    """The engine could not time a model: its row's ``status`` (``timeout``, ``oom``,
    ``nonfinite``) and the engine's one-line reason. Exit code 2, like any model code that
    stops a measurement."""

    _FIX = {
        "timeout": "fix the model's forward, or raise --call-timeout",
        "oom": "use a smaller batch or resolution",
        "nonfinite": "fix the model (its output must be finite to be compared)",
    }

    def __init__(self, what: str, status: str, reason: str) -> None:
        self.what = what
        self.status = status
        self.cause = reason
        fix = self._FIX.get(status, "fix the model (or remove it from the gate) and re-run")
        CnnbenchError.__init__(self, f"{what}: {status}: {reason}; {fix}")


class _Sigint:
    """State of the installed SIGINT watcher (main thread only)."""

    depth = 0
    received = False
    previous: Any = None


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    _Sigint.received = True
    previous = _Sigint.previous
    if previous is signal.SIG_IGN:
        return
    if callable(previous) and previous is not _on_sigint:
        previous(signum, frame)
        return
    raise KeyboardInterrupt


@contextlib.contextmanager
def watch_sigint() -> Iterator[None]:
    """Record real SIGINTs while the block runs (nestable; a no-op outside the main thread,
    where Python never raises KeyboardInterrupt for a signal)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if _Sigint.depth == 0:
        _Sigint.received = False
        _Sigint.previous = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, _on_sigint)
    _Sigint.depth += 1
    try:
        yield
    finally:
        _Sigint.depth -= 1
        if _Sigint.depth == 0:
            signal.signal(signal.SIGINT, _Sigint.previous or signal.default_int_handler)
            _Sigint.previous = None


def interrupted() -> bool:
    """Whether a real SIGINT arrived since the outermost :func:`watch_sigint` began."""
    return _Sigint.received


@contextlib.contextmanager
def model_code(what: str) -> Iterator[None]:
    """Run model code: cnnbench's own errors pass through, a KeyboardInterrupt after a real
    SIGINT passes through, anything else becomes :class:`ModelCodeError` naming ``what``."""
    try:
        yield
    except CnnbenchError:
        raise
    except KeyboardInterrupt as exc:
        if interrupted() or (
            _Sigint.depth == 0 and threading.current_thread() is threading.main_thread()
        ):
            raise  # a real Ctrl-C (or no watcher to tell): stop, exit 130
        raise ModelCodeError(what, exc) from None
    except BaseException as exc:  # noqa: BLE001 - model code: report, never obey
        raise ModelCodeError(what, exc) from None
