"""cnnbench: what a convolutional network costs, measured and explained.

``cnnbench.to_dataframe(results)`` turns result records into a pandas DataFrame (pandas is
imported on first use only).
"""

from __future__ import annotations

from typing import Any

from cnnbench._version import __version__
__all__ = ["__version__", "to_dataframe"]


def __getattr__(name: str) -> Any:
    if name == "to_dataframe":
        from cnnbench.report import to_dataframe

        return to_dataframe
    raise AttributeError(f"module 'cnnbench' has no attribute {name!r}")
