"""Output files of the gate: checked before anything is measured, written without letting a
write failure change the verdict.

:func:`check_writable` refuses (UsageError, exit 2) an output path that cannot be written
before the first model is timed: a directory, a parent that is a file, a directory without
write permission. :func:`write_outputs` writes the verdict files atomically afterwards; a
failure there (disk full, a path that changed meanwhile) is a warning returned to the caller,
never an exception, so a pass stays a pass and a regression a regression.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from cnnbench.errors import UsageError

__all__ = ["check_writable", "write_outputs"]


def check_writable(path: str | os.PathLike[str], option: str) -> Path:
    """``path`` if a file could be written there (missing parent folders may be created);
    UsageError naming ``option`` and the fix otherwise. Nothing is created."""
    from cnnbench.results import write_problem

    path = Path(path)
    problem = write_problem(path)
    if problem is not None:
        raise UsageError(
            f"{option} {path}: {problem}; give {option} a file path in a writable folder"
        )
    return path


def write_outputs(
    items: Iterable[tuple[str, Path | None, Callable[[], str]]],
) -> tuple[list[Path], list[str]]:
    """Write each ``(option, path, render)`` whose path is set, atomically. Returns the files
    written and one warning per file that could not be (the temporary file is removed)."""
    from cnnbench.results import atomic_write_text

    written: list[Path] = []
    warnings: list[str] = []
    for option, path, render in items:
        if path is None:
            continue
        try:
            written.append(atomic_write_text(path, render()))
        except OSError as exc:
            warnings.append(
                f"could not write {option} {path} ({exc.strerror or exc}); the verdict stands"
            )
    return written, warnings
