"""Runtime configuration: device, AMP precision, memory format, batch, resolution, threads,
compile and mode, validated on construction."""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from cnnbench import choices
from cnnbench.errors import UsageError, check_bool

if TYPE_CHECKING:
    from cnnbench.results import Result

__all__ = ["PRECISIONS", "MEMORY_FORMATS", "MODES", "RuntimeConfig", "resolve_device"]

#: Precision name (:data:`cnnbench.choices.PRECISIONS`) -> autocast dtype (None: fp32).
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
#: Memory format name (:data:`cnnbench.choices.MEMORY_FORMATS`) -> torch memory format.
MEMORY_FORMATS: dict[str, torch.memory_format] = {
    "contiguous": torch.contiguous_format,
    "channels_last": torch.channels_last,
}
MODES = choices.MODES
_DEVICE_HELP = "use cpu, cuda, cuda:N or auto"
_DEFAULT_BUDGET_S = choices.DEFAULT_BUDGET_S
_MAX_BUDGET_S = choices.MAX_BUDGET_S  # one model's timing budget at most an hour


def _choices(table: Mapping[str, Any] | Sequence[str]) -> str:
    return ", ".join(table)


@dataclass(frozen=True)
class RuntimeConfig:
    """One runtime configuration. Values are checked on construction (UsageError, one line);
    whether the device and dtype exist on this machine is checked by :func:`resolve_device`
    and :func:`prepare`.

    ``resolution`` is H = W in pixels (None: the model's default). ``threads`` is the number of
    CPU intra-op threads (None: leave torch's setting; the value in effect is recorded).
    ``budget_s`` is the time budget per model and configuration in seconds (warm-up included:
    a configuration of k models takes about k x budget_s) and
    ``target_ci`` the relative half-width of the median's 95% CI at which timing stops.
    ``oom_backoff`` retries an out-of-memory configuration with half the batch, recording the
    batch that ran as ``effective_batch_size``. ``call_timeout_s`` bounds one call of the
    model (None: :meth:`call_limit_s`, derived from the budget): a call that does not return
    in time makes the row ``timeout`` and the run goes on.
    """

    device: str = "auto"
    precision: str = "fp32"
    memory_format: str = "contiguous"
    batch_size: int = 1
    resolution: int | None = None
    threads: int | None = None
    compile: bool = False
    mode: str = "inference"
    cudnn_benchmark: bool = True
    target_ci: float = 0.02
    budget_s: float = _DEFAULT_BUDGET_S
    oom_backoff: bool = False
    call_timeout_s: float | None = None

    def __post_init__(self) -> None:
        if self.precision not in choices.PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r}; use one of {_choices(choices.PRECISIONS)}"
            )
        if self.memory_format not in choices.MEMORY_FORMATS:
            raise UsageError(
                f"unknown memory format {self.memory_format!r}; "
                f"use one of {_choices(choices.MEMORY_FORMATS)}"
            )
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}; use one of {_choices(MODES)}")
        _parse_device(self.device)
        for name in ("compile", "cudnn_benchmark", "oom_backoff"):
            check_bool(getattr(self, name), name)
        if not _is_int(self.batch_size) or self.batch_size <= 0:
            raise UsageError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if self.resolution is not None and (not _is_int(self.resolution) or self.resolution <= 0):
            raise UsageError(
                f"resolution must be a positive integer (pixels, H = W), got {self.resolution!r}"
            )
        if self.threads is not None and (not _is_int(self.threads) or self.threads <= 0):
            raise UsageError(f"threads must be a positive integer, got {self.threads!r}")
        if not (isinstance(self.target_ci, (int, float)) and 0 < self.target_ci < 1):
            raise UsageError(
                f"target CI must be a fraction of the median in (0, 1), e.g. 0.02, "
                f"got {self.target_ci!r}"
            )
        if not (
            isinstance(self.budget_s, (int, float))
            and not isinstance(self.budget_s, bool)
            and 0 < self.budget_s <= _MAX_BUDGET_S
        ):
            raise UsageError(
                f"time budget must be a number of seconds in (0, {_MAX_BUDGET_S:g}], "
                f"got {self.budget_s!r}; e.g. --budget 3"
            )
        if self.call_timeout_s is not None and not (
            isinstance(self.call_timeout_s, (int, float))
            and not isinstance(self.call_timeout_s, bool)
            and 0 < self.call_timeout_s <= _MAX_BUDGET_S
        ):
            raise UsageError(
                f"call timeout must be a number of seconds in (0, {_MAX_BUDGET_S:g}], "
                f"got {self.call_timeout_s!r}; e.g. --call-timeout 60"
            )
        cpus = os.cpu_count() or 1
        if self.threads is not None and self.threads > 4 * cpus:
            raise UsageError(
                f"threads {self.threads} is more than 4x this machine's {cpus} CPUs; "
                f"use --threads 1..{cpus}"
            )

    @property
    def call_limit_s(self) -> float:
        """Seconds one call of the model may take: ``call_timeout_s``, else the larger of
        60 s and 10 budgets (the first call compiles, allocates and autotunes)."""
        if self.call_timeout_s is not None:
            return float(self.call_timeout_s)
        return max(60.0, 10.0 * self.budget_s)

    def stamp(self, result: Result, device: torch.device | None = None) -> Result:
        """``result`` with this configuration's fields set: the one place a configuration is
        mapped onto a row. ``device`` is the resolved device (``cpu``, ``cuda:N``); without
        it the row says the device as configured (``auto`` included)."""
        if device is None:
            label = self.device
        else:
            label = "cpu" if device.type == "cpu" else f"{device.type}:{device.index or 0}"
        return dataclasses.replace(
            result,
            batch_size=self.batch_size,
            device=label,
            precision=self.precision,
            memory_format=self.memory_format,
            compiled=self.compile,
            mode=self.mode,
        )

    @classmethod
    def grid(cls, **axes: Sequence[Any] | Any) -> list[RuntimeConfig]:
        """Every combination of the given axes, e.g. ``grid(batch_size=[1, 8],
        precision=["fp32", "bf16"], device="cpu")``; scalars are fixed values. Order: the
        last axis varies fastest."""
        names = list(axes)
        values = [
            list(v) if isinstance(v, (list, tuple)) else [v] for v in (axes[n] for n in names)
        ]
        return [cls(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*values)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_device(device: str) -> tuple[str, int | None]:
    """Split ``cpu``/``cuda``/``cuda:N``/``auto`` into (kind, index); UsageError otherwise."""
    if not isinstance(device, str):
        raise UsageError(f"unknown device {device!r}; {_DEVICE_HELP}")
    text = device.strip().lower()
    if text in ("cpu", "cuda", "auto"):
        return text, None
    kind, sep, index = text.partition(":")
    if kind == "cuda" and sep and index.isdigit():
        return "cuda", int(index)
    raise UsageError(f"unknown device {device!r}; {_DEVICE_HELP}")


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device``: ``auto`` is CUDA when present, else CPU; ``cuda`` is
    the current CUDA device. UsageError when CUDA is asked for and is not there."""
    kind, index = _parse_device(device)
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            f"device {device!r} asked but CUDA is not available on this machine "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    count = torch.cuda.device_count()
    if index is None:
        index = torch.cuda.current_device()
    if index >= count:
        raise UsageError(
            f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
            f"use cuda:0..cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)
