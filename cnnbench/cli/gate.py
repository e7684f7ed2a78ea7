"""``cnnbench gate``: the CI performance regression gate on the command line.

Commands are thin calls into :mod:`cnnbench.gate`: the verdict table goes to stdout,
progress and notes to stderr. Exit codes: 0 pass, 1 regression, 2 unusable input (raised as
UsageError and turned into one line by :func:`cnnbench.cli.main`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from cnnbench.cli.options import (
    BatchOpt,
    BudgetOpt,
    CallTimeoutOpt,
    DeviceOpt,
    MemoryOpt,
    QuietOpt,
    ResolutionOpt,
    ThreadsOpt,
    parse_batches,
)
from cnnbench.errors import UsageError
from cnnbench.report.table import clean_text

if TYPE_CHECKING:
    from cnnbench.gate import GateConfig
    from cnnbench.results import Run

__all__ = ["gate_app", "verdict_table"]

out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)

gate_app = typer.Typer(
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Performance regression gate for CI: save a baseline, check against it, or A/B two "
        "models interleaved. Exit 0 pass, 1 regression, 2 unusable input."
    ),
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="TOML file with a \\[tool.cnnbench.gate] table (default: ./pyproject.toml).",
    ),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Model spec to gate (repeatable; replaces the config's)."),
]
JunitOpt = Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")]
MarkdownOpt = Annotated[
    Path | None,
    typer.Option(
        "--markdown",
        help="Write the Markdown summary here "
        "(it is also appended to $GITHUB_STEP_SUMMARY when that is set).",
    ),
]
# In the gate family --json takes a file, like --junit and --markdown ('-': stdout, which is
# what the flag --json does in the other commands).
JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", help="Write the verdicts as JSON to this file ('-': stdout)."),
]
AllowEnvOpt = Annotated[
    bool,
    typer.Option(
        "--allow-env-mismatch",
        help="Compare even when torch, device, CPU or threads "
        "differ from the baseline (calibration normalises speed).",
    ),
]


def _shown(text: object) -> str:
    """Text from data (model names, claim texts, paths) as the terminal shows it: control
    characters and escape sequences stripped (:func:`cnnbench.report.table.clean_text`),
    Rich markup escaped."""
    return escape(clean_text(text))


def verdict_table(report: object):  # -> rich.table.Table
    """The verdict table of a GateReport for the terminal (one row per model/config/metric;
    the candidate's raw and calibrated values side by side), built by
    :func:`cnnbench.gate.report.verdict_table` and rendered by
    :func:`cnnbench.report.table.to_rich`."""
    from cnnbench.gate import GateReport
    from cnnbench.gate.report import verdict_table as build
    from cnnbench.report.table import to_rich

    assert isinstance(report, GateReport)
    title = f"cnnbench gate {report.mode}: {report.baseline} -> {report.candidate}"
    return to_rich(build(report, title=title))


def _config(
    config: Path | None,
    *,
    models: list[str] | None = None,
    budget: float | None = None,
    batch: list[str] | None = None,
    device: str | None = None,
    threads: int | None = None,
    resolution: int | None = None,
    call_timeout: float | None = None,
    memory: bool | None = None,
    rounds: int | None = None,
    baseline: tuple[Run, Path] | None = None,
    need_models: bool = True,
) -> GateConfig:
    """The user's configuration file (``--config`` or ./pyproject.toml) with CLI overrides
    (the shared options of :mod:`cnnbench.cli.options`: ``--batch 1,8`` as in ``compare``).

    Without one, a check falls back on the settings stored in the ``baseline`` (a loaded Run
    and its path): a baseline is data, so only zoo model names are taken from it, never a
    ``module:callable`` or ``file.py:Name`` spec (see :func:`cnnbench.gate.baseline_config`);
    ``need_models`` False (comparing files) takes no models from it at all."""
    from cnnbench.gate import GateConfig, baseline_config, load_config

    cfg = load_config(config)
    if cfg is None:
        if baseline is not None:
            run, path = baseline
            cfg = baseline_config(run, path, models or (), take_models=need_models)
        else:
            cfg = GateConfig()
    changes = _given(budget_s=budget, memory=memory, rounds=rounds)
    if models:
        changes["models"] = tuple(models)
    configs = list(cfg.configs)
    fields = _given(
        device=device, threads=threads, resolution=resolution, call_timeout_s=call_timeout
    )
    if fields:
        configs = [dataclasses.replace(c, **fields) for c in configs]
    if batch:
        batches = parse_batches(batch)
        configs = list(
            dict.fromkeys(dataclasses.replace(c, batch_size=b) for c in configs for b in batches)
        )
    changes["configs"] = tuple(configs)
    return dataclasses.replace(cfg, **changes)


def _given(**values: Any) -> dict[str, Any]:
    """The values given (not None), by field name."""
    return {name: value for name, value in values.items() if value is not None}


def _check_outputs(junit: Path | None, markdown: Path | None, json_out: Path | None) -> None:
    """Refuse an unwritable output path before anything is measured (exit 2)."""
    from cnnbench.gate.outputs import check_writable

    for option, path in (("--junit", junit), ("--markdown", markdown), ("--json", json_out)):
        if path is not None and str(path) != "-":
            check_writable(path, option)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """A real Ctrl-C ends the command with one line and exit 130: nothing was decided."""
    try:
        yield
    except KeyboardInterrupt:
        err.print("gate: interrupted; nothing was decided", highlight=False)
        raise typer.Exit(130) from None


def _progress(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,  # no spinner frames in CI logs
    )


def _finish(
    report: object, *, junit: Path | None, markdown: Path | None, json_out: Path | None, quiet: bool
) -> None:
    """Render and write every output, then exit 1 on a regression, 2 when a requested check
    could not be made. A file that cannot be written is a warning: the verdict stands."""
    from cnnbench.gate import GateReport, to_junit_xml, to_markdown, write_step_summary
    from cnnbench.gate.outputs import write_outputs

    assert isinstance(report, GateReport)
    to_stdout = json_out is not None and str(json_out) == "-"
    if to_stdout:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        json_out = None
    elif not quiet:
        out.print(verdict_table(report))
        for note in report.notes:
            err.print(f"[yellow]note:[/] {_shown(note)}", highlight=False)
    written, warnings = write_outputs(
        [
            ("--junit", junit, lambda: to_junit_xml(report)),
            ("--markdown", markdown, lambda: to_markdown(report)),
            ("--json", json_out, lambda: json.dumps(report.to_dict(), indent=2, default=str)),
        ]
    )
    try:
        summary = write_step_summary(report)
    except OSError as exc:
        summary = None
        target = os.environ.get("GITHUB_STEP_SUMMARY")
        warnings.append(
            f"could not append to $GITHUB_STEP_SUMMARY {target} ({exc.strerror or exc}); "
            "the verdict stands"
        )
    if summary is not None:
        written.append(summary)
    for warning in warnings:
        err.print(f"[yellow]warning:[/] {_shown(warning)}", highlight=False)
    if written and not quiet:
        err.print("wrote " + _shown(", ".join(map(str, written))), highlight=False)
    regressions = report.regressions
    timing = f"({len(report.verdicts)} checks, {report.elapsed_s:.1f} s)"
    if report.unusable:
        err.print(f"gate: error: {_shown(report.unusable)} {timing}", highlight=False)
    elif regressions:
        names = ", ".join(f"{v.model} {v.config} {v.metric}" for v in regressions)
        err.print(
            f"gate: {len(regressions)} regression(s): {_shown(names)} {timing}", highlight=False
        )
    else:
        err.print(f"gate: pass {timing}", highlight=False)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


@gate_app.command("save")
def save_cmd(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Baseline file to write.")] = Path(
        "cnnbench-baseline.json"
    ),
    config: ConfigOpt = None,
    model: ModelOpt = None,
    budget: BudgetOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    resolution: ResolutionOpt = None,
    call_timeout: CallTimeoutOpt = None,
    memory: MemoryOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Measure the configured models and write a baseline: raw samples, environment, calibration."""
    from cnnbench import gate
    from cnnbench.gate.outputs import check_writable

    check_writable(out_file, "--out")
    cfg = _config(
        config,
        models=model,
        budget=budget,
        batch=batch,
        device=device,
        threads=threads,
        resolution=resolution,
        call_timeout=call_timeout,
        memory=memory,
    )
    with _interruptible(), _progress(quiet) as progress:
        task = progress.add_task("starting")
        run = gate.save(
            cfg, out_file, on_progress=lambda m: progress.update(task, description=_shown(m))
        )
    rows = [r for r in run.results if not r.model.startswith(gate.CALIBRATION_MODEL)]
    err.print(
        f"wrote baseline {_shown(out_file)}: {len(rows)} model configuration(s)", highlight=False
    )


@gate_app.command("check")
def check_cmd(
    baseline: Annotated[
        Path,
        typer.Option("--baseline", help="Baseline: a `gate save` file or a pytest-benchmark JSON."),
    ],
    candidate: Annotated[
        Path | None,
        typer.Option("--candidate", help="Compare this saved file instead of measuring now."),
    ] = None,
    config: ConfigOpt = None,
    model: ModelOpt = None,
    budget: BudgetOpt = None,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    resolution: ResolutionOpt = None,
    call_timeout: CallTimeoutOpt = None,
    memory: MemoryOpt = None,
    allow_env_mismatch: AllowEnvOpt = False,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Measure the configured set now (or read --candidate) and decide each metric vs the baseline."""
    from cnnbench import gate

    _check_outputs(junit, markdown, json_out)  # exit 2 before anything is measured
    base_run = gate.load_baseline(baseline)  # exit 2 early on a missing or corrupt file
    cfg = _config(
        config,
        models=model,
        budget=budget,
        batch=batch,
        device=device,
        threads=threads,
        resolution=resolution,
        call_timeout=call_timeout,
        memory=memory,
        baseline=(base_run, baseline),
        need_models=candidate is None,
    )
    if candidate is not None:
        report = gate.compare_files(cfg, baseline, candidate, allow_env_mismatch=allow_env_mismatch)
    else:
        with _interruptible(), _progress(quiet) as progress:
            task = progress.add_task("starting")
            report = gate.check(
                cfg,
                baseline,
                allow_env_mismatch=allow_env_mismatch,
                on_progress=lambda m: progress.update(task, description=_shown(m)),
            )
    _finish(report, junit=junit, markdown=markdown, json_out=json_out, quiet=quiet)


@gate_app.command("ab")
def ab_cmd(
    baseline: Annotated[
        str,
        typer.Option(
            "--baseline", help="Baseline model spec (or a saved JSON: compared without measuring)."
        ),
    ],
    candidate: Annotated[
        str, typer.Option("--candidate", help="Candidate model spec (or a saved JSON).")
    ],
    config: ConfigOpt = None,
    budget: BudgetOpt = None,
    rounds: Annotated[
        int | None, typer.Option("--rounds", help="Interleaved rounds per measurement.")
    ] = None,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    resolution: ResolutionOpt = None,
    call_timeout: CallTimeoutOpt = None,
    memory: MemoryOpt = None,
    allow_env_mismatch: AllowEnvOpt = False,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Time two models interleaved in one process (A B, B A, ...): the most robust mode."""
    from cnnbench import gate

    is_file = [s.endswith(".json") for s in (baseline, candidate)]
    if any(is_file) and not all(is_file):
        raise UsageError("gate ab: give two model specs, or two saved JSON files to compare")
    _check_outputs(junit, markdown, json_out)
    cfg = _config(
        config,
        budget=budget,
        batch=batch,
        device=device,
        threads=threads,
        resolution=resolution,
        call_timeout=call_timeout,
        memory=memory,
        rounds=rounds,
    )
    if all(is_file):
        report = gate.compare_files(cfg, baseline, candidate, allow_env_mismatch=allow_env_mismatch)
    else:
        with _interruptible(), _progress(quiet) as progress:
            task = progress.add_task("starting")
            report = gate.ab(
                baseline,
                candidate,
                cfg,
                on_progress=lambda m: progress.update(task, description=_shown(m)),
            )
    _finish(report, junit=junit, markdown=markdown, json_out=json_out, quiet=quiet)
