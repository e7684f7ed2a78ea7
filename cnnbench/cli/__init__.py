"""The ``cnnbench`` command line: shared options, the main app and the gate app. Commands only
parse options and call the library."""

from cnnbench.cli.main import app, main

__all__ = ["app", "main"]
