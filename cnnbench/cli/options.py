"""Options shared by the commands, their closed choices, and the parsing helpers that turn
them into :class:`~cnnbench.runtime.RuntimeConfig` grids. Parsing only: nothing here
measures."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cnnbench.errors import UsageError
from cnnbench.report.files import FORMATS


class Precision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Counter(StrEnum):
    cnnbench = "cnnbench"
    torch = "torch"
    fvcore = "fvcore"
    thop = "thop"


# Shared options -------------------------------------------------------------------------------
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")]
BatchOpt = Annotated[
    list[str] | None, typer.Option("--batch", "-b", help="Batch size(s): repeat or comma list.")
]
ResolutionOpt = Annotated[
    int | None, typer.Option("--resolution", "-r", help="Input H = W in pixels (default: native).")
]
PrecisionOpt = Annotated[
    list[Precision] | None,
    typer.Option("--precision", "-p", help="fp32, or AMP fp16/bf16 (repeatable)."),
]
ChannelsLastOpt = Annotated[
    bool,
    typer.Option("--channels-last/--no-channels-last", help="Model and input in channels_last."),
]
MemoryFormatOpt = Annotated[
    str | None,
    typer.Option("--memory-format", help="'both' measures contiguous and channels_last."),
]
CompileOpt = Annotated[bool, typer.Option("--compile", help="Measure the torch.compile'd model.")]
ThreadsOpt = Annotated[
    int | None, typer.Option("--threads", help="CPU threads (default: torch's).")
]
TrainOpt = Annotated[
    bool, typer.Option("--train", help="Time a training step instead of inference.")
]
BudgetOpt = Annotated[
    float, typer.Option("--budget", help="Seconds of timing per configuration (warm-up included).")
]
CallTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--call-timeout",
        help="Seconds one call of the model may take (default: max(60, 10 x budget)).",
    ),
]
MemoryOpt = Annotated[
    bool,
    typer.Option(
        "--memory/--no-memory", help="Measure CPU peak memory in a child process (CUDA: always)."
    ),
]
StaticOnlyOpt = Annotated[bool, typer.Option("--static-only", help="Count only; do not time.")]
CounterOpt = Annotated[Counter, typer.Option("--counter", help="MAC counter for the totals.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Directory for report files.")]
FormatOpt = Annotated[
    str, typer.Option("--format", "-f", help=f"Comma list of {', '.join(FORMATS)}.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run as JSON to stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or tables.")]
ModelArgOpt = Annotated[
    list[str] | None, typer.Option("--model-arg", help="Builder keyword, key=value (repeatable).")
]
InputSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-size", help="One input as C,H,W or CxHxW (e.g. 1,28,28); default: the model's."
    ),
]
InputsOpt = Annotated[
    str | None,
    typer.Option(
        "--inputs",
        help="module:callable or file.py:callable returning example inputs at batch 1 "
        "(a tensor, a tuple or a dict of tensors).",
    ),
]
DepthOpt = Annotated[
    int | None,
    typer.Option("--depth", help="One row per module down to this depth (1 = top-level)."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


# Helpers --------------------------------------------------------------------------------------
def parse_batches(values: list[str] | None) -> list[int]:
    """``["1,8", "32"]`` -> ``[1, 8, 32]``; default ``[1]``."""
    if not values:
        return [1]
    out_: list[int] = []
    for v in values:
        for part in v.split(","):
            try:
                out_.append(int(part))
            except ValueError:
                raise UsageError(f"--batch {part!r}: not an integer; e.g. --batch 1,8") from None
    return out_


def parse_input_size(value: str | None) -> tuple[int, int, int] | None:
    """``"1,28,28"`` or ``"1x28x28"`` -> ``(1, 28, 28)``; UsageError otherwise."""
    if value is None:
        return None
    parts = value.lower().replace("x", ",").split(",")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 3 or min(size) <= 0 or max(size) > 65_536:
        raise UsageError(
            f"--input-size {value!r}: expected three positive integers C,H,W (at most 65536), "
            "e.g. --input-size 3,224,224"
        )
    return size  # type: ignore[return-value]


def parse_formats(value: str) -> list[str]:
    """``"table,md"`` -> ``["table", "md"]``; UsageError naming unknown formats."""
    formats = [f.strip() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UsageError(f"--format {', '.join(bad)}: unknown; choose from {', '.join(FORMATS)}")
    return formats


def runtime_configs(
    device: str,
    batch: list[str] | None,
    resolution: int | None,
    precision: list[Precision] | None,
    channels_last: bool,
    memory_format: str | None,
    compile_: bool,
    threads: int | None,
    train: bool,
    budget: float,
    call_timeout: float | None = None,
) -> list:
    """The grid of runtime configurations the shared options describe."""
    from cnnbench.runtime import RuntimeConfig

    if memory_format not in (None, "both", "contiguous", "channels_last"):
        raise UsageError(
            f"--memory-format {memory_format!r}: use both, contiguous or channels_last"
        )
    formats = (
        ["contiguous", "channels_last"]
        if memory_format == "both"
        else [memory_format]
        if memory_format
        else ["channels_last" if channels_last else "contiguous"]
    )
    return RuntimeConfig.grid(
        device=device,
        precision=[p.value for p in precision or [Precision.fp32]],
        memory_format=formats,
        batch_size=parse_batches(batch),
        resolution=resolution,
        threads=threads,
        compile=compile_,
        mode="train" if train else "inference",
        budget_s=budget,
        call_timeout_s=call_timeout,
    )
