"""cnnbench: what a convolutional network costs, measured and explained.

The Python API (nothing is printed unless asked)::

    import cnnbench
    run = cnnbench.compare(["resnet50", "se_resnet50", my_module], budget=2)
    run.to_dataframe()            # pandas, one row per model and configuration
    run.save("run.json")          # a saved run: schema version, environment, results
    cnnbench.load_run("run.json")
    cnnbench.profile("net.py:make", input_size=(1, 28, 28), static_only=True)

Heavy imports (torch, pandas) happen on first use of these names.
"""

from __future__ import annotations

from typing import Any

from cnnbench._version import __version__

__all__ = ["__version__", "profile", "compare", "load_run", "to_dataframe", "Run", "Result"]

_LAZY = {
    "profile": ("cnnbench.api", "profile"),
    "compare": ("cnnbench.api", "compare"),
    "load_run": ("cnnbench.results", "load_run"),
    "Run": ("cnnbench.results", "Run"),
    "Result": ("cnnbench.results", "Result"),
    "to_dataframe": ("cnnbench.report", "to_dataframe"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
