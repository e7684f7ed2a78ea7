"""Options shared by the commands, their closed choices (built from :mod:`cnnbench.choices`),
and the one path from the run options to a :class:`~cnnbench.request.RunRequest`. Parsing
only: nothing here measures.

Every knob has one definition here, used by ``profile``, ``compare`` and the ``gate``
commands; its default and its validation live in :mod:`cnnbench.request` and
:class:`~cnnbench.runtime.RuntimeConfig`, once.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cnnbench import choices
from cnnbench.errors import UsageError
from cnnbench.request import LAYER_BUDGET_FACTOR

if TYPE_CHECKING:
    from cnnbench.request import RunRequest

Precision = StrEnum("Precision", {p: p for p in choices.PRECISIONS})  # type: ignore[misc]
Counter = StrEnum("Counter", {c: c for c in choices.COUNTERS})  # type: ignore[misc]
MemoryFormat = StrEnum(  # type: ignore[misc]
    "MemoryFormat", {f: f for f in (*choices.MEMORY_FORMATS, choices.MEMORY_FORMAT_BOTH)}
)

# Help panels of `compare --help` and `profile --help`.
MODEL, CONFIG, TIMING, OUTPUT = "Model and input", "Configuration", "Timing", "Output"

# Shared options -------------------------------------------------------------------------------
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto.", rich_help_panel=CONFIG)
]
BatchOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--batch", "-b", help="Batch size(s): repeat or comma list, e.g. 1,8 (default 1).",
        rich_help_panel=CONFIG,
    ),
]  # fmt: skip
ResolutionOpt = Annotated[
    int | None,
    typer.Option(
        "--resolution", "-r", help="Input H = W in pixels (default: native).",
        rich_help_panel=MODEL,
    ),
]  # fmt: skip
PrecisionOpt = Annotated[
    list[Precision] | None,
    typer.Option(
        "--precision", "-p", help="fp32, or AMP fp16/bf16 (repeatable; default fp32).",
        rich_help_panel=CONFIG,
    ),
]  # fmt: skip
ChannelsLastOpt = Annotated[
    bool,
    typer.Option(
        "--channels-last/--no-channels-last", help="Model and input in channels_last.",
        rich_help_panel=CONFIG,
    ),
]  # fmt: skip
MemoryFormatOpt = Annotated[
    MemoryFormat | None,
    typer.Option(
        "--memory-format", help="'both' measures contiguous and channels_last.",
        rich_help_panel=CONFIG,
    ),
]  # fmt: skip
CompileOpt = Annotated[
    bool,
    typer.Option("--compile", help="Measure the torch.compile'd model.", rich_help_panel=CONFIG),
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", help="CPU intra-op threads (default: torch's).", rich_help_panel=CONFIG
    ),
]
TrainOpt = Annotated[
    bool,
    typer.Option(
        "--train", help="Time a training step instead of inference.", rich_help_panel=CONFIG
    ),
]
BudgetOpt = Annotated[
    float | None,
    typer.Option(
        "--budget",
        help=f"Seconds of timing per model and configuration, warm-up included "
        f"(default {choices.DEFAULT_BUDGET_S:g}; gate: the configuration's budget_s).",
        rich_help_panel=TIMING,
    ),
]
CallTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--call-timeout",
        help="Seconds one call of the model may take (default: max(60, 10 x budget)).",
        rich_help_panel=TIMING,
    ),
]
MemoryOpt = Annotated[
    bool | None,
    typer.Option(
        "--memory/--no-memory", help="Measure CPU peak memory in a child process (CUDA: always).",
        rich_help_panel=TIMING,
    ),
]  # fmt: skip
StaticOnlyOpt = Annotated[
    bool, typer.Option("--static-only", help="Count only; do not time.", rich_help_panel=TIMING)
]
CounterOpt = Annotated[
    Counter, typer.Option("--counter", help="MAC counter for the totals.", rich_help_panel=MODEL)
]
OutOpt = Annotated[
    Path,
    typer.Option(
        "--out", "-o", help="Directory for report files ('-': one format to stdout).",
        rich_help_panel=OUTPUT,
    ),
]  # fmt: skip
FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", "-f", help=f"Comma list of {', '.join(choices.FORMATS)}.",
        rich_help_panel=OUTPUT,
    ),
]  # fmt: skip
JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="Print the run as JSON to stdout (no table).", rich_help_panel=OUTPUT
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress or tables.", rich_help_panel=OUTPUT)
]
ModelArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg", help="Builder keyword, key=value (repeatable).", rich_help_panel=MODEL
    ),
]
InputSizeOpt = Annotated[
    str | None,
    typer.Option(
        "--input-size",
        help="One input as C,H,W or CxHxW (e.g. 1,28,28); default: the model's.",
        rich_help_panel=MODEL,
    ),
]
InputsOpt = Annotated[
    str | None,
    typer.Option(
        "--inputs",
        help="module:callable or file.py:callable returning example inputs at batch 1 "
        "(a tensor, a tuple or a dict of tensors).",
        rich_help_panel=MODEL,
    ),
]
DepthOpt = Annotated[
    int | None,
    typer.Option(
        "--depth",
        help="One row per module down to this depth (1 = top-level). profile/compare also "
        "time every row on its real input (not with --static-only): per-layer timing adds "
        f"about {LAYER_BUDGET_FACTOR} x --budget per model and configuration, plus this machine's roofs once "
        "(about 5 s, then cached).",
        rich_help_panel=OUTPUT,
    ),
]  # fmt: skip
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show tracebacks (also after the command).")
]


# Helpers --------------------------------------------------------------------------------------
def parse_batches(values: list[str] | None) -> list[int]:
    """``["1,8", "32"]`` -> ``[1, 8, 32]``; default ``[1]``. Positivity is RuntimeConfig's
    check."""
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
    """``"1,28,28"`` or ``"1x28x28"`` -> ``(1, 28, 28)``; the one bad-size UsageError
    (:func:`cnnbench.request.check_input_size`) otherwise."""
    from cnnbench.request import check_input_size

    return None if value is None else check_input_size(value)


def parse_formats(value: str) -> list[str]:
    """``"table,md"`` -> ``["table", "md"]``; UsageError naming unknown formats."""
    formats = [f.strip() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in choices.FORMATS]
    if bad:
        raise UsageError(
            f"--format {', '.join(bad)}: unknown; choose from {', '.join(choices.FORMATS)}"
        )
    return formats


def example_inputs(spec: str | None) -> Any:
    """``--inputs SPEC``: the example inputs the user's callable returns (None without it)."""
    if spec is None:
        return None
    from cnnbench.spec import load_inputs

    return load_inputs(spec)


def memory_formats(memory_format: MemoryFormat | str | None, channels_last: bool) -> str:
    """``--memory-format`` (``both`` included), else ``--channels-last``."""
    if memory_format is not None:
        return str(memory_format)
    return "channels_last" if channels_last else "contiguous"


@dataclass(frozen=True)
class RunArgs:
    """The shared run options of ``profile`` and ``compare`` as the command line gave them;
    :meth:`request` turns them into the one :class:`~cnnbench.request.RunRequest`."""

    device: str = "auto"
    batch: list[str] | None = None
    resolution: int | None = None
    precision: list[Precision] | None = None
    channels_last: bool = False
    memory_format: MemoryFormat | None = None
    compile_: bool = False
    threads: int | None = None
    train: bool = False
    budget: float | None = None
    call_timeout: float | None = None
    memory: bool = True
    static_only: bool = False
    counter: Counter = Counter("cnnbench")
    out_dir: Path = Path("reports")
    format_: str = "table"
    json_: bool = False
    quiet: bool = False
    model_arg: list[str] | None = None
    input_size: str | None = None
    inputs: str | None = None

    def request(
        self, models: list[str], *, baseline: str | None = None, depth: int | None = None
    ) -> RunRequest:
        """The RunRequest these options describe (every value checked; example inputs
        loaded), for ``models`` as given on the command line."""
        from cnnbench.request import RunRequest
        from cnnbench.spec import parse_model_args

        knobs: dict[str, Any] = {"budget": self.budget} if self.budget is not None else {}
        return RunRequest.of(
            models, device=self.device, batch=parse_batches(self.batch),
            precision=[str(p) for p in self.precision or [Precision("fp32")]],
            memory_format=memory_formats(self.memory_format, self.channels_last),
            resolution=self.resolution, threads=self.threads, compile=self.compile_,
            train=self.train, call_timeout=self.call_timeout,
            input_size=parse_input_size(self.input_size),
            example_inputs=example_inputs(self.inputs), counter=str(self.counter),
            static_only=self.static_only, cpu_memory=self.memory, depth=depth,
            baseline=baseline, model_args=parse_model_args(self.model_arg), **knobs,
        )  # fmt: skip

    def formats(self) -> list[str]:
        """``--format`` and every output checked (:func:`check_out`); the formats to write."""
        return check_out(self.out_dir, parse_formats(self.format_), json_stdout=self.json_)

    def replace(self, **changes: Any) -> RunArgs:
        return replace(self, **changes)


def check_out(
    out_dir: Path, formats: list[str], name: str | None = None, json_stdout: bool = False
) -> list[str]:
    """Every output checked before measuring (:func:`cnnbench.report.files.check_outputs`:
    ``--out -`` takes exactly one file format, writable folders, file-name lengths, ...);
    returns the formats to write (``--out DIR`` with only ``table`` adds the run's JSON)."""
    get_current_context: Callable[..., Any]  # the same function in either package
    try:  # typer 0.2x carries its own click
        from typer._click.globals import get_current_context
    except ImportError:
        from click import get_current_context

    from cnnbench.report.files import check_outputs

    context = get_current_context(silent=True)
    source = context.get_parameter_source("out_dir") if context is not None else None
    given = getattr(source, "name", None) == "COMMANDLINE"  # --out given, not the default
    return check_outputs(out_dir, formats, name, out_given=given, json_stdout=json_stdout)


#: The shared run options: parameter name -> (annotated type, default), in --help order.
RUN_OPTIONS: dict[str, tuple[Any, Any]] = {
    "resolution": (ResolutionOpt, None),
    "input_size": (InputSizeOpt, None),
    "inputs": (InputsOpt, None),
    "model_arg": (ModelArgOpt, None),
    "counter": (CounterOpt, Counter("cnnbench")),
    "device": (DeviceOpt, "auto"),
    "batch": (BatchOpt, None),
    "precision": (PrecisionOpt, None),
    "channels_last": (ChannelsLastOpt, False),
    "memory_format": (MemoryFormatOpt, None),
    "compile_": (CompileOpt, False),
    "threads": (ThreadsOpt, None),
    "train": (TrainOpt, False),
    "budget": (BudgetOpt, None),
    "call_timeout": (CallTimeoutOpt, None),
    "memory": (MemoryOpt, True),
    "static_only": (StaticOnlyOpt, False),
    "out_dir": (OutOpt, Path("reports")),
    "format_": (FormatOpt, "table"),
    "json_": (JsonOpt, False),
    "quiet": (QuietOpt, False),
}


def with_run_options(command: Callable[..., None]) -> Callable[..., None]:
    """Decorator: the command's ``--help`` and parser get every shared run option
    (:data:`RUN_OPTIONS`) between its arguments and its own options, and the command is called with them
    gathered in one keyword, ``run: RunArgs``."""
    signature = inspect.signature(command, eval_str=True)
    own = [
        p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
        for p in signature.parameters.values()
        if p.name != "run"
    ]
    arguments = [p for p in own if p.default is inspect.Parameter.empty]
    options = [p for p in own if p.default is not inspect.Parameter.empty]
    shared = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
        for name, (kind, default) in RUN_OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        run = RunArgs(**{name: kwargs.pop(name) for name in RUN_OPTIONS})
        return command(run=run, **kwargs)

    parameters = arguments + shared + options
    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper
