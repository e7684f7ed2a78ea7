"""The ``cnnbench`` command line. Commands parse options and call the library; data goes to
stdout, diagnostics and progress to stderr. Exit codes: 0 success, 1 regression (gate),
2 bad usage or input, 130 interrupted, 143 terminated (results so far saved)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cnnbench._version import __version__
from cnnbench.cli.options import (
    DebugOpt,
    DepthOpt,
    FormatOpt,
    InputSizeOpt,
    InputsOpt,
    ModelArgOpt,
    OutOpt,
    QuietOpt,
    ResolutionOpt,
    RunArgs,
    check_out,
    example_inputs,
    parse_formats,
    parse_input_size,
    with_run_options,
)
from cnnbench.errors import (
    CnnbenchError,
    Terminated,
    UsageError,
    one_line,
    signals_as_exceptions,
)

if TYPE_CHECKING:
    from cnnbench.report.table import Table
    from cnnbench.request import RunRequest
    from cnnbench.results import Run

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


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"cnnbench {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """cnnbench: numbers you can trust about convolutional networks."""


def _print(table: Table) -> None:
    from cnnbench.report.table import to_rich

    out.print(to_rich(table))


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _run_name(command: str, models: list[str]) -> str:
    slug = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", m) for m in models)[:60]
    return f"{command}-{slug}"


def _progress_columns() -> tuple:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )


def _save_incomplete(run: Run, out_dir: Path, name: str) -> Path:
    """Save the results measured so far as ``<name>-incomplete.json`` in ``out_dir``, or in
    the temporary directory when that one is unusable."""
    from cnnbench.report.files import save_incomplete

    run.complete = False
    return save_incomplete(run, out_dir, name)


def _measure_and_report(command: str, request: RunRequest, run_args: RunArgs) -> None:
    """Measure every model of ``request`` under every configuration, with progress on
    stderr, then print and write the reports ``run_args`` asks for. Ctrl-C, SIGTERM or an
    error after the first result keep what was measured (``*-incomplete.json``)."""
    from rich.progress import Progress

    from cnnbench.api import new_run, run_request

    quiet, out_dir = run_args.quiet, run_args.out_dir
    run = new_run(command, request)
    name = _run_name(command, request.labels)
    total = len(request.models) * (
        len(request.resolutions()) if request.static_only else len(request.configs)
    )
    tty = err.is_terminal
    progress = Progress(*_progress_columns(), console=err, transient=True, disable=quiet or not tty)
    try:
        with progress, signals_as_exceptions():
            task = progress.add_task("starting", total=total)
            for result in run_request(
                request,
                on_progress=lambda msg: progress.update(task, description=escape(msg)),
                environment=run.environment,
            ):
                run.results.append(result)
                progress.advance(task)
                if not tty and not quiet:
                    err.print(
                        f"[{len(run.results)}/{total}] {_row_line(result)}",
                        markup=False,
                        highlight=False,
                    )
    except (KeyboardInterrupt, Terminated) as exc:
        from cnnbench.runtime import interrupted_rows

        run.results.extend(interrupted_rows(exc))  # the interrupted configuration's rows
        code, what = (143, "terminated") if isinstance(exc, Terminated) else (130, "interrupted")
        with _signals_held():
            path = _save_incomplete(run, out_dir, name)
        err.print(f"{what}: {len(run.results)} result(s) kept in {path}", markup=False)
        raise typer.Exit(code) from None
    except CnnbenchError as exc:
        if run.results:
            path = _save_incomplete(run, out_dir, name)
            exc.args = (f"{exc} ({len(run.results)} result(s) measured before kept in {path})",)
        raise
    _emit(
        run, run_args.formats(), out_dir, name, baseline=request.baseline, quiet=quiet,
        json_stdout=run_args.json_,
    )  # fmt: skip


def _loaded(request: RunRequest) -> RunRequest:
    """``request`` with its specs loaded (all resolved before anything is measured)."""
    import dataclasses

    kwargs = dict(request.model_args)
    return dataclasses.replace(
        request, models=tuple(_load_checked(spec, kwargs) for spec in request.models)
    )


def _emit(
    run: Run,
    formats: list[str],
    out_dir: Path,
    name: str,
    *,
    baseline: str | None,
    quiet: bool = False,
    json_stdout: bool = False,
) -> None:
    """Print the table and write the report files (``--out -``: the one format to stdout)."""
    from cnnbench import report as reporting
    from cnnbench.report.files import keep_run_on_write_failure

    files = [f for f in formats if f != "table"]
    to_stdout = str(out_dir) == "-"
    try:  # a failed write, or Ctrl-C / SIGTERM / SIGHUP while writing, keeps the run
        with signals_as_exceptions(), keep_run_on_write_failure(run, out_dir, name):
            if json_stdout:
                sys.stdout.write(run.to_json() + "\n")
            if "table" in formats and not quiet and not json_stdout and not to_stdout:
                reporting.render_table(run, out, baseline=baseline)
            if to_stdout:
                sys.stdout.write(reporting.render(run, files[0], baseline=baseline))
            elif files:
                paths = reporting.write_reports(run, out_dir, files, name, baseline=baseline)
                if not quiet:
                    err.print("wrote " + ", ".join(str(p) for p in paths.values()), markup=False)
    except (KeyboardInterrupt, Terminated) as exc:
        from cnnbench.report.files import save_incomplete

        code, what = (143, "terminated") if isinstance(exc, Terminated) else (130, "interrupted")
        with _signals_held():
            path = save_incomplete(run, out_dir, name)  # run.complete stays as it was
        err.print(f"{what} while writing the reports: the run is kept in {path}", markup=False)
        raise typer.Exit(code) from None


@contextmanager
def _signals_held() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP wait until the block (saving the run) is done."""
    import signal

    held = {signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])}
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    except (AttributeError, OSError, ValueError):  # no signal masks on this platform
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _load_checked(spec: str, kwargs: dict[str, Any]) -> Any:
    """Load a spec for measuring: a user's model is first built on the meta device, so that
    one whose weights cannot fit in memory is refused in one line before it is allocated."""
    from cnnbench.runtime.guard import check_buildable, stdout_to_stderr
    from cnnbench.spec import load

    load = stdout_to_stderr(load)  # the model's prints go to stderr, off the data stream
    if ":" in spec:
        probe = load(spec, kwargs, device="meta")
        if any(p.is_meta for p in probe.module.parameters()):
            check_buildable(probe.name, probe.module)
    return load(spec, kwargs)


def _row_line(result: Any) -> str:
    """One plain progress line for a finished row (non-TTY stderr, e.g. a CI log)."""
    from cnnbench.report import format as fmt

    label = f"{result.model} {fmt.config_label(result)}"
    if result.status != "ok":
        return f"{label}: {result.status}" + (f" ({result.error})" if result.error else "")
    if result.latency_ms_median is None:
        return f"{label}: {fmt.count(result.params)} params, {fmt.macs(result.macs)}"
    lat = fmt.latency(result.latency_ms_median, result.latency_ms_ci_low, result.latency_ms_ci_high)
    return f"{label}: {lat}"


# Commands -------------------------------------------------------------------------------------
@app.command("list")
def list_cmd(
    pattern: Annotated[str | None, typer.Argument(help="Shell pattern, e.g. 'se_*'.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
) -> None:
    """The zoo as a table: name, family, params, MACs at native size, input, paper."""
    from cnnbench.models import get_model_info, list_models
    from cnnbench.report.tables import zoo_table

    names = list_models(pattern)
    if not names:
        raise UsageError(f"no model matches {pattern!r}; try `cnnbench list` for all names")
    infos = [get_model_info(n) for n in names]
    rows = [
        (i.name, i.family, _stored(i, "params"), _stored(i, "macs"), i.input_size, i.paper)
        for i in infos
    ]
    if json_:
        keys = ("name", "family", "params", "macs", "input_size", "paper")
        _json(
            [
                {
                    **dict(zip(keys, row, strict=True)),
                    "top1": i.published_top1,
                    "top1_chosen": c.to_dict() if (c := i.chosen_top1()) else None,
                    "cited": [x.to_dict() for x in i.cited],
                }
                for row, i in zip(rows, infos, strict=True)
            ]
        )
        return
    from cnnbench.report.card import chosen_label

    top1 = [chosen_label(i.chosen_top1(), i.input_size[1]) for i in infos]
    _print(zoo_table(rows, top1))


def _stored(info: Any, field: str) -> int | None:
    """The native-size count the registry stores with a model (measured when absent)."""
    value = getattr(info, field, None)
    if value is None:
        from cnnbench.static import profile_static

        prof = profile_static(info.name, train_memory=False)
        value = prof.params if field == "params" else prof.macs
    return value


@app.command()
def info(
    model: Annotated[str, typer.Argument(help="Zoo name or module:factory spec.")],
    resolution: ResolutionOpt = None,
    model_arg: ModelArgOpt = None,
    input_size: InputSizeOpt = None,
    inputs: InputsOpt = None,
    depth: DepthOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
) -> None:
    """Stages with blocks, channels, params and MACs per stage (``--depth``: per module)."""
    from cnnbench.api import layer_rows, static_profile
    from cnnbench.report.tables import layers_table, stages_table
    from cnnbench.runtime.guard import stdout_to_stderr
    from cnnbench.spec import load, parse_model_args

    loaded = stdout_to_stderr(load)(model, parse_model_args(model_arg), device="meta")
    size = parse_input_size(input_size)
    example = example_inputs(inputs)
    prof = static_profile(loaded, resolution, input_size=size, example_inputs=example)
    row = prof.to_result()
    if depth is not None:
        row.layers = layer_rows(loaded, depth, resolution, size, example)
    from cnnbench.models import info_of

    info_ = info_of(loaded.module)
    if json_:
        cited = [c.to_dict() for c in getattr(info_, "cited", ())]
        _json({**row.to_dict(), "cited": cited} if info_ is not None else row.to_dict())
        return
    _print(stages_table(prof))
    if row.layers:
        _print(layers_table(row.layers, f"{loaded.name}: modules down to depth {depth}"))
    if info_ is not None and info_.cited:
        from cnnbench.report.card import cited_table

        native = info_.input_size[1]
        _print(cited_table(loaded.name, info_.cited, native, info_.chosen_top1()))


class CardFormat(StrEnum):
    """Output of ``cnnbench card``."""

    terminal = "terminal"
    md = "md"
    json = "json"


@app.command()
def card(
    model: Annotated[str, typer.Argument(help="Zoo model name.")],
    format_: Annotated[
        CardFormat, typer.Option("--format", "-f", help="terminal, md (Markdown) or json.")
    ] = CardFormat.terminal,
    no_claims: Annotated[
        bool, typer.Option("--no-claims", help="Leave out the claims (they are measured).")
    ] = False,
) -> None:
    """A model's cost card: costs at its native and cited resolutions, cited accuracies with
    their provenance, the zoo layout, and the claims about it with their verdicts."""
    from cnnbench.card import build_card
    from cnnbench.report.card import card_markdown, card_tables

    built = build_card(model, claims=not no_claims)
    if format_ is CardFormat.json:
        _json(built.to_dict())
    elif format_ is CardFormat.md:
        sys.stdout.write(card_markdown(built) + "\n")
    else:
        lines, tables = card_tables(built)
        for line in lines:
            out.print(line, markup=False, highlight=False)
        for table in tables:
            _print(table)


@app.command()
@with_run_options
def profile(
    model: Annotated[str, typer.Argument(help="Zoo name or module:factory spec.")],
    depth: DepthOpt = None,
    *,
    run: RunArgs,
) -> None:
    """The full static + runtime profile of one model."""
    run.formats()  # checked before anything is loaded
    request = _loaded(run.request([model], depth=depth))
    if not run.quiet and not run.json_ and str(run.out_dir) != "-":  # stdout carries data
        _print_profile(request)
    _measure_and_report("profile", request, run)


def _print_profile(request: RunRequest) -> None:
    """What ``profile`` prints before timing: the static tables (the per-module rows of
    ``--depth`` come in the report's Layers section)."""
    from cnnbench.api import static_profile

    loaded, size, example = request.models[0], request.inputs.size, request.inputs.example
    resolution = request.configs[0].resolution
    prof = static_profile(
        loaded, resolution, request.counter, input_size=size, example_inputs=example
    )
    _print_static(loaded, prof, dict(request.model_args), resolution, example)


def _print_static(
    loaded: Any, prof: Any, kwargs: dict[str, Any], resolution: int | None, example: Any = None
) -> None:
    """The static part of ``profile``: stages, the four counters, memory and SE overhead."""
    import torch

    from cnnbench.report import format as fmt
    from cnnbench.report.tables import counters_table, se_table, stages_table, uncounted_table
    from cnnbench.runtime.guard import check_fits, estimate_bytes
    from cnnbench.static.backends import compare_counters

    _print(stages_table(prof))
    # fvcore and thop count on real tensors: one image's input and activations must fit
    parts = estimate_bytes(
        loaded.module, batch=1, input_size=prof.input_size, activation_bytes=prof.activation_bytes
    )
    check_fits(loaded.name, "the counters' real-tensor pass, b1", parts, torch.device("cpu"))
    if example is not None and (example.kwargs or len(example.args) != 1):
        err.print("note: the four-counter comparison takes one input tensor; skipped")
    else:
        first = example.first if example is not None else torch.randn(1, *prof.input_size)
        comparison = compare_counters(loaded.module, [first], dispatch=prof.dispatch_for([first]))
        _print(counters_table(comparison, loaded.name))
        _print(uncounted_table(comparison, loaded.name))
        for line in comparison.warnings:
            err.print(f"[yellow]warning:[/] {escape(line)}")
    out.print(
        f"activation memory per image: inference peak {fmt.nbytes(prof.activation_bytes)} "
        f"(sum of outputs, upper bound {fmt.nbytes(prof.activation_sum_bytes)}); "
        f"training saved {fmt.nbytes(prof.train_activation_bytes)}",
        markup=False,
    )
    from cnnbench.models import info_of

    info = info_of(loaded.module)
    if info is not None and info.has_se and ":" not in loaded.rebuild.spec:
        from cnnbench.static.se import se_overhead

        overhead = se_overhead(
            loaded.rebuild.spec, resolution=resolution, model=loaded.module, profile=prof, **kwargs
        )
        _print(se_table(overhead))


@app.command()
@with_run_options
def compare(
    models: Annotated[list[str], typer.Argument(help="Two or more models (zoo names or specs).")],
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", help="Model the x-columns are relative to.", rich_help_panel="Output"
        ),
    ] = None,
    depth: DepthOpt = None,
    *,
    run: RunArgs,
) -> None:
    """One row per model and configuration, relative to the baseline (first model by default)."""
    if baseline is not None and baseline not in models:
        raise UsageError(f"--baseline {baseline!r} is not among the compared models")
    run.formats()  # checked before anything is loaded
    request = run.request(models, baseline=baseline, depth=depth)
    _measure_and_report("compare", _loaded(request), run)


@app.command("se")
def se_cmd(
    model: Annotated[str, typer.Argument(help="A zoo model with SE blocks.")],
    resolution: ResolutionOpt = None,
    model_arg: ModelArgOpt = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print overhead and claims as JSON.")
    ] = False,
) -> None:
    """The per-stage SE overhead table and the claims that concern the model."""
    from dataclasses import asdict

    from cnnbench.claims import check_claim, load_claims
    from cnnbench.models import UnknownModelError
    from cnnbench.report.tables import claims_table, se_table
    from cnnbench.spec import parse_model_args
    from cnnbench.static.se import se_overhead

    if ":" in model:
        raise UsageError(
            f"se {model!r}: the SE analysis needs a zoo model (it rebuilds it without SE); "
            "try se_resnet50, or `cnnbench info` for any model"
        )
    kwargs = parse_model_args(model_arg)
    try:
        overhead = se_overhead(model, resolution=resolution, **kwargs)
    except UnknownModelError as exc:
        raise UsageError(str(exc)) from None
    related = [c for c in load_claims() if c.args.get("model") == model]
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
    verdicts = [check_claim(c) for c in related]
    if json_:
        derived = (
            "se_params",
            "added_params",
            "params_increase",
            "macs_increase",
            "flops_increase",
        )
        summary = {**asdict(overhead), **{k: getattr(overhead, k) for k in derived}}
        _json({"overhead": summary, "claims": [v.to_dict() for v in verdicts]})
        return
    _print(se_table(overhead))
    if verdicts:
        _print(claims_table(verdicts))


app.command("se-overhead", hidden=True)(se_cmd)


@app.command()
def claims(
    file: Annotated[
        Path | None, typer.Option("--file", help="A claims TOML file (default: built-in).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON.")] = False,
    measures: Annotated[
        bool, typer.Option("--measures", help="List the measures a claim can use.")
    ] = False,
) -> None:
    """Every claim with its verdict and measured value (published entries without one)."""
    from cnnbench.claims import check_claims, load_claims, measure_help
    from cnnbench.report.tables import claims_table

    if measures:
        for name, args, text in measure_help():
            out.print(f"{name}({args}): {text}", markup=False, highlight=False)
        return
    verdicts = check_claims(load_claims(file, published=True))
    if json_:
        _json([v.to_dict() for v in verdicts])
        return
    _print(claims_table(verdicts))


@app.command()
def report(
    run_files: Annotated[
        list[Path], typer.Argument(help="Saved runs (JSON); several are merged into one report.")
    ],
    out_dir: OutOpt = Path("reports"),
    format_: FormatOpt = "table",
    baseline: Annotated[str | None, typer.Option("--baseline")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Report file name (default: from the runs).")
    ] = None,
) -> None:
    """Re-render saved runs without re-measuring. Runs from several machines are merged: a
    machine column, ratios within one machine and configuration, a latency-per-machine table
    and chart; the merged JSON is a run of its own."""
    from cnnbench.results import load_run, merge_runs

    formats = parse_formats(format_)
    formats = check_out(
        out_dir, formats, name or (run_files[0].stem if len(run_files) == 1 else "merged")
    )
    runs = [load_run(f) for f in run_files]  # each validated; one line names a bad file
    for f, run in zip(run_files, runs, strict=True):
        if not run.complete:
            err.print(f"note: {f} is an incomplete run ({len(run.results)} results)")
    if len(runs) == 1:
        run, stem = runs[0], run_files[0].stem
    else:
        run, stem = merge_runs(runs, [str(f) for f in run_files]), "merged"
    _emit(run, formats, out_dir, name or stem, baseline=baseline)


class Executor(StrEnum):
    local = "local"
    ray = "ray"


@app.command()
def sweep(
    file: Annotated[Path, typer.Argument(help="A sweep TOML file (your own config).")],
    executor: Annotated[
        Executor, typer.Option("--executor", help="local: this process; ray: a Ray cluster.")
    ] = Executor.local,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="Ray cluster address, HOST:PORT or ray://HOST:PORT (default: a local cluster "
            "on 127.0.0.1 only). One that does not answer within 30 s ends the sweep (exit 2).",
        ),
    ] = None,
    out_dir: OutOpt = Path("reports"),
    format_: FormatOpt = "table,json",
    quiet: QuietOpt = False,
) -> None:
    """Many models x configurations: one task per model and hardware pool, merged into one
    run and its report in --out (failed tasks are error rows; Ctrl-C, SIGTERM or SIGHUP keep
    every finished row in *-incomplete.json, exit 130 or 143)."""
    from cnnbench.sweep import load_sweep, run_local, run_ray

    formats = parse_formats(format_)
    formats = check_out(out_dir, formats, f"sweep-{file.stem}")
    spec = load_sweep(file)
    total = len(spec.tasks())
    done: list[int] = []

    def on_run(run: Any, task: Any) -> None:
        done.append(1)
        if not quiet:
            for r in run.results:
                err.print(f"[{len(done)}/{total} tasks] {_row_line(r)}", markup=False)

    with signals_as_exceptions():
        if executor == Executor.ray:
            run, stopped = run_ray(spec, address=address, on_run=on_run)
        else:
            run, stopped = run_local(spec, on_run=on_run)
    name = f"sweep-{file.stem}"
    if stopped is not None:
        code, what = (
            (143, "terminated") if isinstance(stopped, Terminated) else (130, "interrupted")
        )
        path = _save_incomplete(run, out_dir, name)
        err.print(f"{what}: {len(run.results)} row(s) kept in {path}", markup=False)
        raise typer.Exit(code)
    _emit(run, formats, out_dir, name, baseline=None, quiet=quiet)


def _debug_first(args: list[str]) -> tuple[list[str], bool]:
    """``--debug`` is accepted anywhere before a ``--`` (and ``CNNBENCH_DEBUG=1``): it is
    moved in front of the command, where the root callback takes it."""
    import os

    end = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:end] or os.environ.get("CNNBENCH_DEBUG", "") not in ("", "0")
    rest = [a for a in args[:end] if a != "--debug"] + args[end:]
    return (["--debug", *rest] if debug else rest), debug


def main() -> None:
    """Console entry point: expected errors become one line on stderr and an exit code."""
    args, debug = _debug_first(sys.argv[1:])
    try:
        app(args=args, prog_name="cnnbench")
    except CnnbenchError as exc:
        if debug:
            raise
        from cnnbench.report.table import clean_text  # one line, no escape sequences

        err.print(f"[red]error:[/] {escape(clean_text(exc, 4000))}", highlight=False)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - a bug in cnnbench: exit 3, never the gate's 1
        if debug:
            raise
        err.print(
            f"[red]internal error:[/] {escape(one_line(exc))} "
            "(a cnnbench bug; rerun with --debug for the traceback)",
            highlight=False,
        )
        sys.exit(3)


from cnnbench.cli.gate import gate_app  # noqa: E402

app.add_typer(gate_app, name="gate", help="CI performance regression gate: save, check, ab.")
