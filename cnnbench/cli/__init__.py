"""The ``cnnbench`` command line: shared options, the main app and the gate app. Commands only
parse options and call the library."""

from cnnbench.report.files import guard_stdio

guard_stdio()  # before the consoles exist: a closed stdout or an ascii-only encoding is safe

from cnnbench.cli.main import app, main  # noqa: E402

__all__ = ["app", "main"]
