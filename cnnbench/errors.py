"""Errors that the CLI turns into one line on stderr and an exit code (no traceback)."""

from __future__ import annotations

__all__ = ["CnnbenchError", "UsageError"]


class CnnbenchError(Exception):
    """Base class of cnnbench's expected errors. ``exit_code`` is what the CLI returns."""

    exit_code = 2


class UsageError(CnnbenchError):
    """Bad input from the user (unknown device, batch <= 0, input too small, ...): exit code 2.

    The message is one line naming the problem and what would work.
    """
