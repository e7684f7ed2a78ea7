"""Published ImageNet top-1 accuracies, cited, never measured: name -> (top-1 %, source).

Filled per model from its paper or the reference implementation's documentation; a model
without an entry has ``published_top1 = None``. cnnbench has no weights and measures no
accuracy: these numbers are what the source reports for its own trained weights.
"""

from __future__ import annotations

PUBLISHED_TOP1: dict[str, tuple[float, str]] = {}
