"""The closed choices of cnnbench's knobs, in one torch-free place: the CLI builds its enums
from these tuples, :class:`~cnnbench.runtime.RuntimeConfig` validates against them, and the
runtime keeps the one name -> torch object map (:mod:`cnnbench.runtime.config`)."""

from __future__ import annotations

__all__ = [
    "PRECISIONS",
    "MEMORY_FORMATS",
    "MEMORY_FORMAT_BOTH",
    "MODES",
    "COUNTERS",
    "FORMATS",
    "DEFAULT_BUDGET_S",
    "MAX_BUDGET_S",
]

#: ``fp32``, or AMP (autocast) in fp16 / bf16.
PRECISIONS = ("fp32", "fp16", "bf16")
#: The memory formats of the model and its input.
MEMORY_FORMATS = ("contiguous", "channels_last")
#: Shorthand accepted where a list of memory formats is: every one of them.
MEMORY_FORMAT_BOTH = "both"
#: What one timed call does: a forward pass, or a training step.
MODES = ("inference", "train")
#: MAC counters (:mod:`cnnbench.static.backends`).
COUNTERS = ("cnnbench", "torch", "fvcore", "thop")
#: Report formats (``table`` is printed; the others are files, see ``cnnbench.report.FORMATS``).
FORMATS = ("table", "csv", "md", "json", "html")

#: Seconds of timing per model and configuration (warm-up included), for every door.
DEFAULT_BUDGET_S = 3.0
#: The largest budget (and call timeout) accepted: an hour.
MAX_BUDGET_S = 3600.0
