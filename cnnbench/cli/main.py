"""The ``cnnbench`` command line. Commands parse options and call the library; data goes to
stdout, diagnostics and progress to stderr. Exit codes: 0 success, 1 regression (gate),
2 bad usage or input, 130 interrupted (results so far saved)."""

from __future__ import annotations

import re
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cnnbench.errors import CnnbenchError, UsageError

# Piped output gets a wide console so tables are not squeezed to 80 columns.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

app = typer.Typer(
    name="cnnbench",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="What a convolutional network costs: params, MACs/FLOPs, memory, latency, throughput.",
)


class Precision(StrEnum):
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class Counter(StrEnum):
    cnnbench = "cnnbench"
    torch = "torch"
    fvcore = "fvcore"
    thop = "thop"


FORMATS = ("table", "csv", "md", "json", "html")

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
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]


@app.callback()
def _root(debug: DebugOpt = False) -> None:
    """cnnbench: numbers you can trust about convolutional networks."""


# Helpers --------------------------------------------------------------------------------------
def _batches(values: list[str] | None) -> list[int]:
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


def _formats(value: str) -> list[str]:
    formats = [f.strip() for f in value.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise UsageError(f"--format {', '.join(bad)}: unknown; choose from {', '.join(FORMATS)}")
    return formats


def _configs(
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
) -> list:
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
        batch_size=_batches(batch),
        resolution=resolution,
        threads=threads,
        compile=compile_,
        mode="train" if train else "inference",
        budget_s=budget,
    )


def _run_name(command: str, models: list[str]) -> str:
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", m) for m in models)[:60]
    return f"{command}-{slug}"


def _measure_and_report(
    command: str,
    specs: list[str],
    configs: list,
    *,
    counter: Counter,
    static_only: bool,
    model_args: list[str] | None,
    out_dir: Path,
    formats: list[str],
    json_stdout: bool,
    quiet: bool,
    baseline: str | None,
) -> None:
    from cnnbench import report as reporting
    from cnnbench.api import run_models
    from cnnbench.environment import fingerprint
    from cnnbench.results import Run
    from cnnbench.spec import parse_model_args

    config = {
        "command": command,
        "models": specs,
        "counter": counter.value,
        "static_only": static_only,
        "configs": [vars(c) for c in configs],
        "model_args": model_args or [],
    }
    from cnnbench.runtime import resolve_device

    run = Run(results=[], environment=fingerprint(resolve_device(configs[0].device)), config=config)
    name = _run_name(command, specs)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet,
    )
    total = len(specs) * (1 if static_only else len(configs))
    try:
        with progress:
            task = progress.add_task("starting", total=total)
            for result in run_models(
                specs,
                configs,
                counter=counter.value,
                static_only=static_only,
                model_args=parse_model_args(model_args),
                on_progress=lambda msg: progress.update(task, description=msg),
            ):
                run.results.append(result)
                progress.advance(task)
    except KeyboardInterrupt:
        run.complete = False
        path = run.save(out_dir / f"{name}-incomplete.json")
        err.print(f"interrupted: {len(run.results)} result(s) kept in {path}")
        raise typer.Exit(130) from None
    if json_stdout:
        sys.stdout.write(run.to_json() + "\n")
    if "table" in formats and not quiet and not json_stdout:
        reporting.render_table(run, out, baseline=baseline)
    files = [f for f in formats if f != "table"]
    if files:
        paths = reporting.write_reports(run, out_dir, files, name, baseline=baseline)
        if not quiet:
            err.print("wrote " + ", ".join(str(p) for p in paths.values()))


# Commands -------------------------------------------------------------------------------------
@app.command("list")
def list_cmd(
    pattern: Annotated[str | None, typer.Argument(help="Shell pattern, e.g. 'se_*'.")] = None,
    macs: Annotated[bool, typer.Option("--macs/--no-macs", help="Count GMACs (slower).")] = True,
) -> None:
    """The zoo as a table: name, family, params, GMACs at native size, input, paper."""
    from cnnbench.models import get_model_info, list_models
    from cnnbench.static import build_model, profile_static

    names = list_models(pattern)
    if not names:
        raise UsageError(f"no model matches {pattern!r}; try `cnnbench list` for all names")
    rows = []
    with Progress(TextColumn("{task.description}"), console=err, transient=True) as progress:
        task = progress.add_task("counting", total=len(names))
        for name in names:
            progress.update(task, description=f"counting {name}")
            info = get_model_info(name)
            if macs:
                p = profile_static(name, train_memory=False)
                params, gmacs = p.params, p.macs
            else:
                params = sum(t.numel() for t in build_model(name).parameters())
                gmacs = None
            rows.append((name, info.family, params, gmacs, info.input_size, info.paper))
            progress.advance(task)
    from cnnbench.report.tables import zoo_table

    out.print(zoo_table(rows))


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="Zoo name or module:factory spec.")],
    resolution: ResolutionOpt = None,
    model_arg: ModelArgOpt = None,
) -> None:
    """Stages with blocks, channels, params and MACs per stage."""
    from cnnbench.report.tables import stages_table
    from cnnbench.spec import load_model, parse_model_args
    from cnnbench.static import profile_static

    name, module = load_model(model, parse_model_args(model_arg))
    out.print(stages_table(profile_static(module, name=name, resolution=resolution)))


@app.command()
def profile(
    model: Annotated[str, typer.Argument(help="Zoo name or module:factory spec.")],
    device: DeviceOpt = "auto",
    batch: BatchOpt = None,
    resolution: ResolutionOpt = None,
    precision: PrecisionOpt = None,
    channels_last: ChannelsLastOpt = False,
    memory_format: MemoryFormatOpt = None,
    compile_: CompileOpt = False,
    threads: ThreadsOpt = None,
    train: TrainOpt = False,
    budget: BudgetOpt = 5.0,
    static_only: StaticOnlyOpt = False,
    counter: CounterOpt = Counter.cnnbench,
    out_dir: OutOpt = Path("reports"),
    format_: FormatOpt = "table",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    model_arg: ModelArgOpt = None,
) -> None:
    """The full static + runtime profile of one model."""
    from cnnbench.report.tables import counters_table, stages_table, uncounted_table
    from cnnbench.spec import load_model, parse_model_args
    from cnnbench.static import profile_static
    from cnnbench.static.backends import compare_counters

    formats = _formats(format_)
    name, module = load_model(model, parse_model_args(model_arg))
    if not quiet and not json_:
        prof = profile_static(module, name=name, resolution=resolution)
        out.print(stages_table(prof))
        import torch

        comparison = compare_counters(module, [torch.randn(1, *prof.input_size)])
        out.print(counters_table(comparison, name))
        out.print(uncounted_table(comparison, name))
        out.print(
            f"activation memory per image: inference peak {prof.activation_bytes / 2**20:.1f} MiB "
            f"(sum of outputs, upper bound {prof.activation_sum_bytes / 2**20:.1f} MiB); "
            f"training saved {(prof.train_activation_bytes or 0) / 2**20:.1f} MiB"
        )
        for line in comparison.warnings:
            err.print(f"[yellow]warning:[/] {line}")
        if getattr(module, "model_info", None) is not None and module.model_info.has_se:
            from cnnbench.report.tables import se_table
            from cnnbench.static.se import se_overhead

            if ":" not in model:
                out.print(
                    se_table(
                        se_overhead(model, resolution=resolution, **parse_model_args(model_arg))
                    )
                )
    configs = _configs(
        device,
        batch,
        resolution,
        precision,
        channels_last,
        memory_format,
        compile_,
        threads,
        train,
        budget,
    )
    _measure_and_report(
        "profile",
        [model],
        configs,
        counter=counter,
        static_only=static_only,
        model_args=model_arg,
        out_dir=out_dir,
        formats=formats,
        json_stdout=json_,
        quiet=quiet,
        baseline=None,
    )


@app.command()
def compare(
    models: Annotated[list[str], typer.Argument(help="Two or more models (zoo names or specs).")],
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="Model the x-columns are relative to.")
    ] = None,
    device: DeviceOpt = "auto",
    batch: BatchOpt = None,
    resolution: ResolutionOpt = None,
    precision: PrecisionOpt = None,
    channels_last: ChannelsLastOpt = False,
    memory_format: MemoryFormatOpt = None,
    compile_: CompileOpt = False,
    threads: ThreadsOpt = None,
    train: TrainOpt = False,
    budget: BudgetOpt = 3.0,
    static_only: StaticOnlyOpt = False,
    counter: CounterOpt = Counter.cnnbench,
    out_dir: OutOpt = Path("reports"),
    format_: FormatOpt = "table",
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    model_arg: ModelArgOpt = None,
) -> None:
    """One row per model and configuration, relative to the baseline (first model by default)."""
    if baseline is not None and baseline not in models:
        raise UsageError(f"--baseline {baseline!r} is not among the compared models")
    formats = _formats(format_)
    configs = _configs(
        device,
        batch,
        resolution,
        precision,
        channels_last,
        memory_format,
        compile_,
        threads,
        train,
        budget,
    )
    _measure_and_report(
        "compare",
        models,
        configs,
        counter=counter,
        static_only=static_only,
        model_args=model_arg,
        out_dir=out_dir,
        formats=formats,
        json_stdout=json_,
        quiet=quiet,
        baseline=baseline,
    )


@app.command("se")
def se_cmd(
    model: Annotated[str, typer.Argument(help="A zoo model with SE blocks.")],
    resolution: ResolutionOpt = None,
    model_arg: ModelArgOpt = None,
) -> None:
    """The per-stage SE overhead table and the claims that concern the model."""
    from cnnbench.claims import check_claim, load_claims
    from cnnbench.report.tables import claims_table, se_table
    from cnnbench.spec import parse_model_args
    from cnnbench.static.se import se_overhead

    kwargs = parse_model_args(model_arg)
    out.print(se_table(se_overhead(model, resolution=resolution, **kwargs)))
    related = [c for c in load_claims() if c.args.get("model") == model]
    if related:
        if kwargs:  # the claims follow the model the user built
            related = [
                type(c)(
                    **{
                        **vars(c),
                        "args": {
                            **c.args,
                            "model_kwargs": {**c.args.get("model_kwargs", {}), **kwargs},
                        },
                    }
                )
                for c in related
            ]
        out.print(claims_table([check_claim(c) for c in related]))


app.command("se-overhead", hidden=True)(se_cmd)


@app.command()
def claims(
    file: Annotated[
        Path | None, typer.Option("--file", help="A claims TOML file (default: built-in).")
    ] = None,
) -> None:
    """Every claim with its verdict and measured value."""
    from cnnbench.claims import check_claims, load_claims
    from cnnbench.report.tables import claims_table

    out.print(claims_table(check_claims(load_claims(file))))


@app.command()
def report(
    run_file: Annotated[Path, typer.Argument(help="A saved run (JSON).")],
    out_dir: OutOpt = Path("reports"),
    format_: FormatOpt = "table",
    baseline: Annotated[str | None, typer.Option("--baseline")] = None,
) -> None:
    """Re-render a saved run in any format without re-measuring."""
    from cnnbench import report as reporting
    from cnnbench.results import load_run

    run = load_run(run_file)
    formats = _formats(format_)
    if not run.complete:
        err.print(f"note: {run_file} is an incomplete run ({len(run.results)} results)")
    if "table" in formats:
        reporting.render_table(run, out, baseline=baseline)
    files = [f for f in formats if f != "table"]
    if files:
        paths = reporting.write_reports(run, out_dir, files, run_file.stem, baseline=baseline)
        err.print("wrote " + ", ".join(str(p) for p in paths.values()))


def main() -> None:
    """Console entry point: expected errors become one line on stderr and an exit code."""
    debug = "--debug" in sys.argv
    try:
        app()
    except CnnbenchError as exc:
        if debug:
            raise
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


from cnnbench.cli.gate import gate_app  # noqa: E402

app.add_typer(gate_app, name="gate", help="CI performance regression gate: save, check, ab.")
