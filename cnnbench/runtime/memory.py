"""Peak memory of a configuration, measured so that tensor memory is seen.

* CUDA (:class:`cuda_peak_memory`): ``torch.cuda.reset_peak_memory_stats`` on entry, then
  ``max_memory_allocated`` (bytes of live tensors at their peak: weights, activations,
  gradients, workspaces allocated through PyTorch) and ``max_memory_reserved`` (what the caching
  allocator held from the driver at its peak). The CUDA context itself is in neither.
* CPU (:func:`cpu_peak_memory`): tracemalloc cannot see tensor memory, so the work runs in a
  fresh child Python process and its resident set size (RSS) is read from
  ``/proc/self/status`` (``VmRSS``, and the high-water mark ``VmHWM``; ``ru_maxrss`` where
  there is no /proc). The child reports:

  - ``start_rss_bytes``: RSS after the interpreter, torch and cnnbench are imported;
  - ``baseline_rss_bytes``: RSS after the model is built and converted and its input created
    (the point where :func:`mark_baseline` is called); the high-water mark is reset there
    when the kernel allows it (``/proc/self/clear_refs``), see ``hwm_reset``;
  - ``peak_rss_bytes``: the highest RSS reached (since the reset when there was one).

  ``above_start_bytes = peak - start`` is what cnnbench reports as the CPU peak memory of a
  configuration: weights, input, activations, gradients and optimizer state, allocator and
  library workspaces, comparable to CUDA's max allocated (which also includes the weights).
  ``above_baseline_bytes = peak - baseline`` leaves the weights and input out. The child runs
  a few steps only (default 3), not the timing.
"""

from __future__ import annotations

import gc
import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch

from cnnbench.errors import one_line

if TYPE_CHECKING:
    from torch import nn

    from cnnbench.runtime.config import RuntimeConfig

__all__ = [
    "cuda_peak_memory",
    "cuda_own_peak",
    "CpuPeak",
    "cpu_peak_memory",
    "child_peak_rss",
    "current_rss_bytes",
    "peak_rss_bytes",
    "reset_peak_rss",
    "mark_baseline",
]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
_RESULT_TAG = "CNNBENCH-MEMORY-RESULT "
_DEFAULT_TIMEOUT_S = 300.0


class cuda_peak_memory:  # noqa: N801  (used like a function: ``with cuda_peak_memory(dev) as m``)
    """Context manager: reset CUDA peak statistics on entry, read them on exit.

    After the block, ``allocated_bytes`` and ``reserved_bytes`` hold the peaks in bytes.
    """

    def __init__(self, device: torch.device | str | int | None = None) -> None:
        self.device = (
            torch.device("cuda", torch.cuda.current_device())
            if device is None
            else (
                torch.device(device)
                if not isinstance(device, int)
                else torch.device("cuda", device)
            )
        )
        self.allocated_bytes: int | None = None
        self.reserved_bytes: int | None = None

    def __enter__(self) -> cuda_peak_memory:
        torch.cuda.synchronize(self.device)
        # Return cached blocks first, or the reserved peak would carry an earlier, larger
        # configuration's cache (a batch-1 row after a batch-64 row).
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            torch.cuda.synchronize(self.device)
        self.allocated_bytes = int(torch.cuda.max_memory_allocated(self.device))
        self.reserved_bytes = int(torch.cuda.max_memory_reserved(self.device))


def _status_field(name: str) -> int | None:
    """A ``kB`` field of /proc/self/status in bytes, or None where there is no /proc."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def current_rss_bytes() -> int | None:
    """This process's resident set size in bytes (None where it cannot be read)."""
    return _status_field("VmRSS")


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size in bytes (VmHWM, else ru_maxrss)."""
    value = _status_field("VmHWM")
    if value is not None:
        return value
    try:
        import resource
    except ImportError:
        return None
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss) if sys.platform == "darwin" else int(maxrss) * 1024


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark to the current RSS (Linux >= 4.0); False when
    the kernel does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


# State of the child process (set by mark_baseline, read by _child_main).
_MARK: dict[str, Any] = {}


def mark_baseline() -> None:
    """In a measuring child: record the current RSS as the baseline and reset the high-water
    mark, so the peak counts only what comes after. Harmless elsewhere."""
    _MARK["rss"] = current_rss_bytes()
    _MARK["reset"] = reset_peak_rss()


def cuda_own_peak(
    model: nn.Module, inputs: Any, run: Callable[[], Any], device: torch.device, steps: int = 3
) -> tuple[int, int]:
    """(peak allocated, peak reserved) bytes of ``steps`` calls of ``run`` charged to this
    model alone: the peak above what was allocated on entry (other models and tensors that
    stay on the GPU are not its cost), plus the model's own weights, buffers and input."""
    before = torch.cuda.memory_allocated(device)
    own = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if isinstance(inputs, torch.Tensor):
        own += inputs.numel() * inputs.element_size()
    with cuda_peak_memory(device) as peak:
        for _ in range(steps):
            run()
    allocated, reserved = peak.allocated_bytes, peak.reserved_bytes
    assert allocated is not None and reserved is not None  # set when the block exits
    return max(0, allocated - before) + own, reserved


@dataclass(frozen=True)
class CpuPeak:
    """Resident memory of a child process, in bytes (see the module docstring). ``error`` is
    the reason when the child failed (then the byte fields are None)."""

    start_rss_bytes: int | None
    baseline_rss_bytes: int | None
    peak_rss_bytes: int | None
    hwm_reset: bool = False
    error: str | None = None

    @property
    def above_start_bytes(self) -> int | None:
        if self.peak_rss_bytes is None or self.start_rss_bytes is None:
            return None
        return max(0, self.peak_rss_bytes - self.start_rss_bytes)

    @property
    def above_baseline_bytes(self) -> int | None:
        if self.peak_rss_bytes is None or self.baseline_rss_bytes is None:
            return None
        return max(0, self.peak_rss_bytes - self.baseline_rss_bytes)


#: The child starts in isolated mode (``-I``: no working directory or script directory on
#: ``sys.path``, no PYTHON* variables, no user site): a ``pickle.py`` or ``torch.py`` lying in
#: the working directory is never imported. It then takes the parent's absolute ``sys.path``
#: entries (see :func:`_child_sys_path`), so it imports what the parent can, and the user's
#: model file is loaded by its absolute path (:class:`cnnbench.spec.Rebuild`).
_CHILD_CODE = (
    "import pickle, sys\n"
    "data = pickle.load(sys.stdin.buffer)\n"
    "sys.path[:0] = [p for p in data['sys_path'] if p not in sys.path]\n"
    "from cnnbench.runtime.memory import _child_main\n"
    "_child_main(data['fn'])\n"
)


def _child_sys_path() -> list[str]:
    """The parent's ``sys.path`` for the child: absolute entries only. A relative entry
    (``''`` of ``python -c``/an interactive session, ``'.'``) means "the working directory
    at import time", which in the child would make a module lying there importable."""
    return [p for p in sys.path if isinstance(p, str) and p and os.path.isabs(p)]


def child_peak_rss(fn: Callable[[], Any], *, timeout_s: float = _DEFAULT_TIMEOUT_S) -> CpuPeak:
    """Run the picklable callable ``fn`` in a fresh Python process and return its RSS figures.

    ``fn`` may call :func:`mark_baseline` once its set-up is done. A child that fails, is
    killed or exceeds ``timeout_s`` gives a CpuPeak with ``error`` set; nothing is raised.
    """
    try:
        payload = pickle.dumps({"sys_path": _child_sys_path(), "fn": pickle.dumps(fn)})
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        return CpuPeak(None, None, None, error=f"cannot send the work to a child process: {exc}")
    try:
        proc = subprocess.run(
            [sys.executable, "-I", "-c", _CHILD_CODE],
            input=payload,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CpuPeak(None, None, None, error=f"memory child timed out after {timeout_s:g} s")
    except OSError as exc:
        return CpuPeak(None, None, None, error=f"cannot start a child process: {exc}")
    for line in reversed(proc.stdout.decode("utf-8", "replace").splitlines()):
        if line.startswith(_RESULT_TAG):
            return CpuPeak(**json.loads(line[len(_RESULT_TAG) :]))
    tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()
    reason = tail[-1] if tail else f"exit code {proc.returncode}"
    return CpuPeak(None, None, None, error=f"memory child failed: {reason}")


def _child_main(fn_bytes: bytes) -> None:
    """Entry point of the child process (stdout carries one tagged JSON line)."""
    import cnnbench.models  # noqa: F401  imports before the start mark
    import cnnbench.runtime.prepare  # noqa: F401

    start = current_rss_bytes()
    try:
        fn = pickle.loads(fn_bytes)
        fn()
        peak = peak_rss_bytes()
        result = CpuPeak(
            start_rss_bytes=start,
            baseline_rss_bytes=_MARK.get("rss", start),
            peak_rss_bytes=peak,
            hwm_reset=bool(_MARK.get("reset", False)),
        )
    except Exception as exc:  # reported to the parent as text, never raised there
        result = CpuPeak(None, None, None, error=one_line(exc))
    sys.stdout.write("\n" + _RESULT_TAG + json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()


@dataclass(frozen=True)
class _ModelRun:
    """Picklable work for the child: build, prepare, mark the baseline, run a few steps."""

    builder: str | Callable[[], nn.Module]
    config: RuntimeConfig
    iters: int
    input_size: tuple[int, ...] | None
    example_inputs: Any = None  # cnnbench.spec.ExampleInputs (tensors travel pickled)

    def __call__(self) -> None:
        from cnnbench.runtime.prepare import prepare

        if self.config.threads is not None:
            torch.set_num_threads(self.config.threads)
        if isinstance(self.builder, str):
            from cnnbench.models import create_model

            model = create_model(self.builder)
            name = self.builder
        else:
            model = self.builder()
            name = getattr(self.builder, "__name__", "model")
        prepared = prepare(
            model,
            self.config,
            name=name,
            input_size=self.input_size,
            check_input=False,
            example_inputs=self.example_inputs,
        )
        mark_baseline()
        with prepared.context():
            for _ in range(self.iters):
                prepared.step()


def cpu_peak_memory(
    builder: str | Callable[[], nn.Module],
    config: RuntimeConfig,
    *,
    iters: int = 3,
    input_size: Sequence[int] | None = None,
    timeout_s: float = _DEFAULT_TIMEOUT_S,
    example_inputs: Any = None,
) -> CpuPeak:
    """Peak RSS of ``iters`` steps of a model under ``config`` on CPU, in a child process.

    ``builder`` is a registered model name or a picklable zero-argument callable returning the
    model (a top-level function or a ``functools.partial`` of one). Set-up (build, conversion,
    input) happens before :func:`mark_baseline`; the steps after it.
    """
    work = _ModelRun(
        builder=builder,
        config=config,
        iters=max(1, iters),
        input_size=tuple(input_size) if input_size is not None else None,
        example_inputs=example_inputs,
    )
    return child_peak_rss(work, timeout_s=timeout_s)
