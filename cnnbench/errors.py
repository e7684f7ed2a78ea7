"""Errors that the CLI turns into one line on stderr and an exit code (no traceback), and the
interrupts that cnnbench tells apart from a model's own exceptions."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "CnnbenchError",
    "UsageError",
    "Interrupted",
    "Terminated",
    "signals_as_exceptions",
    "is_user_interrupt",
    "CallTimeout",
    "call_limit",
    "one_line",
]


def one_line(exc: BaseException, *, with_type: bool = True) -> str:
    """An exception as one line: ``ValueError: bad shape`` (the first line of its message),
    ``SystemExit(0)``, or the bare type name when the message is empty. ``with_type=False``
    gives the message's first line alone (still the type name when the message is empty)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit({exc.code!r})"
    lines = str(exc).strip().splitlines()
    name = type(exc).__name__
    if not lines:
        return name
    return f"{name}: {lines[0]}" if with_type else lines[0]


class CnnbenchError(Exception):
    """Base class of cnnbench's expected errors. ``exit_code`` is what the CLI returns."""

    exit_code = 2


class UsageError(CnnbenchError):
    """Bad input from the user (unknown device, batch <= 0, input too small, ...): exit code 2.

    The message is one line naming the problem and what would work.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) caught by cnnbench's handler: exit code 130, results kept."""


class Terminated(BaseException):
    """SIGTERM or SIGHUP caught by cnnbench's handler: exit code 143, results kept."""


_ACTIVE = [False]


@contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Within the block SIGINT raises :class:`Interrupted`, SIGTERM and SIGHUP (terminal
    closed, ssh dropped) :class:`Terminated`,
    so a KeyboardInterrupt or SystemExit raised by a model's own code can be told apart from
    the user stopping the run (see :func:`is_user_interrupt`). Outside the main thread this
    does nothing."""

    def on_int(signum: int, frame: object) -> None:
        raise Interrupted()

    def on_term(signum: int, frame: object) -> None:
        raise Terminated()

    handlers = {signal.SIGINT: on_int, signal.SIGTERM: on_term}
    if hasattr(signal, "SIGHUP"):  # not on Windows
        handlers[signal.SIGHUP] = on_term
    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    except ValueError:  # not the main thread
        yield
        return
    _ACTIVE[0] = True
    try:
        yield
    finally:
        _ACTIVE[0] = False
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def is_user_interrupt(exc: BaseException) -> bool:
    """True when ``exc`` is the user stopping the run (Ctrl-C, SIGTERM), False when it is a
    model's own code raising (any other exception, SystemExit, or a KeyboardInterrupt raised
    while cnnbench's signal handlers are active, which only the model can have raised)."""
    if isinstance(exc, Interrupted | Terminated):
        return True
    return isinstance(exc, KeyboardInterrupt) and not _ACTIVE[0]


class CallTimeout(BaseException):
    """A call of the model's code did not return within its limit (see :func:`call_limit`)."""


@contextmanager
def call_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`CallTimeout` in the block once ``seconds`` have passed (SIGALRM; only in
    the main thread, elsewhere no limit). A call stuck inside one native kernel is interrupted
    when that kernel returns to Python; Python code (a loop, a sleep) at once."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise CallTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
