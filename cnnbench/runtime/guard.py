"""Resource guard: refuse, before any real tensor is allocated, a configuration whose memory
cannot fit.

The estimate is the model's weights and buffers plus, per image, the input and the peak of live
activations that the meta-device pass measured (training: the tensors autograd saves, and the
gradients and momentum buffers of the weights). It is compared with the memory available now:
``MemAvailable`` of ``/proc/meminfo`` on CPU, the free memory the CUDA driver reports on a GPU.
Allocator overheads and workspaces come on top, so the guard only refuses what clearly cannot
fit (more than :data:`FIT_SHARE` of what is available).

:func:`stdout_to_stderr` guards the data stream: while the model's own code runs, its prints
go to stderr, so ``--json`` and ``--out -`` stay parseable.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import torch
from torch import nn

from cnnbench.errors import UsageError

__all__ = [
    "FIT_SHARE",
    "available_bytes",
    "weight_bytes",
    "estimate_bytes",
    "check_fits",
    "check_buildable",
    "stdout_to_stderr",
    "load_guarded",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")

#: A configuration is refused when its estimate exceeds this share of the available memory.
FIT_SHARE = 0.9
_FP32 = 4


def available_bytes(device: torch.device) -> int | None:
    """Bytes that can be allocated now on ``device`` (None when unknown)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def weight_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers in fp32 (a meta-built model has no
    storage, but its shapes say what building it for real will allocate)."""
    return sum(t.numel() for t in (*model.parameters(), *model.buffers())) * _FP32


def estimate_bytes(
    model: nn.Module,
    *,
    batch: int,
    input_size: tuple[int, ...] | list[int],
    activation_bytes: int | None,
    train_activation_bytes: int | None = None,
    train: bool = False,
) -> dict[str, int]:
    """The parts of a configuration's memory estimate in bytes (fp32): weights (and in
    training their gradients and SGD momentum), input, activations."""
    weights = weight_bytes(model)
    per_image_input = _FP32
    for v in input_size:
        per_image_input *= int(v)
    per_image_act = (train_activation_bytes if train else activation_bytes) or 0
    return {
        "weights": weights * (3 if train else 1),
        "input": batch * per_image_input,
        "activations": batch * per_image_act,
    }


def check_fits(
    name: str,
    label: str,
    parts: dict[str, int],
    device: torch.device,
    fix: str = "use a smaller --batch, --resolution or --input-size",
) -> None:
    """UsageError (one line, with the estimate and ``fix``) when ``parts`` cannot fit on
    ``device``."""
    available = available_bytes(device)
    total = sum(parts.values())
    if available is None or total <= FIT_SHARE * available:
        return
    from cnnbench.report.format import nbytes

    detail = ", ".join(f"{k} {nbytes(v)}" for k, v in parts.items())
    raise UsageError(
        f"{name} ({label}) needs about {nbytes(total)} ({detail}), more than the "
        f"{nbytes(available)} available on {device}; {fix}"
    )


def check_buildable(name: str, probe: nn.Module) -> None:
    """UsageError when building for real the model ``probe`` (built on the meta device)
    describes would not fit in CPU memory."""
    check_fits(
        name, "building it", {"weights": weight_bytes(probe)}, torch.device("cpu"),
        fix="build a smaller model (its --model-arg options), or count it with `info`",
    )  # fmt: skip


def load_guarded(spec: str, model_args: dict[str, Any] | None = None) -> Any:
    """:func:`cnnbench.spec.load` for a model named by a data file (a gate baseline's
    configuration, say): built first on the meta device, and refused by
    :func:`check_buildable` (UsageError, one line) when its weights could not fit in memory,
    before anything is allocated. Returns the :class:`~cnnbench.spec.LoadedModel`."""
    from cnnbench.spec import load

    probe = load(spec, dict(model_args or {}), device="meta")
    if any(p.is_meta for p in probe.module.parameters()):
        check_buildable(probe.name, probe.module)
    return load(spec, dict(model_args or {}))


def stdout_to_stderr(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Decorator: while ``fn`` runs (and, when it returns a generator, while that generator
    runs, but not while it is suspended at a ``yield``), writes to ``sys.stdout`` go to
    ``sys.stderr``: a model's ``print`` never lands in the data cnnbench writes to stdout.

    Python-level only: ``print``, ``sys.stdout.write`` and anything else that looks up
    ``sys.stdout`` are moved; a C extension's ``printf``, ``os.write(1, ...)`` and child
    processes the model starts write to file descriptor 1 as before. (The CPU-memory child
    is separate: its stdout is captured and only cnnbench's tagged line is read.)"""

    @functools.wraps(fn)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with contextlib.redirect_stdout(sys.stderr):
            result = fn(*args, **kwargs)
        if isinstance(result, types.GeneratorType):
            return cast(_R, _redirected(result))  # a generator stands in for a generator
        return result

    return wrapper


def _redirected(gen: Generator[Any, None, Any]) -> Generator[Any, None, Any]:
    """``gen`` re-yielded, each step of it run with stdout sent to stderr."""
    try:
        while True:
            with contextlib.redirect_stdout(sys.stderr):
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
            yield item
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            gen.close()
