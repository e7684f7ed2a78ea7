"""``cnnbench gate``: the CI performance regression gate on the command line.

Commands are thin calls into :mod:`cnnbench.gate`: the verdict table goes to stdout,
progress and notes to stderr. Exit codes: 0 pass, 1 regression, 2 unusable input (raised as
UsageError and turned into one line by :func:`cnnbench.cli.main`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from cnnbench.errors import UsageError

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
        "--config", help="TOML file with a [tool.cnnbench.gate] table (default: ./pyproject.toml)."
    ),
]
ModelOpt = Annotated[
    list[str] | None,
    typer.Option("--model", "-m", help="Model spec to gate (repeatable; replaces the config's)."),
]
BudgetOpt = Annotated[
    float | None, typer.Option("--budget", help="Seconds of timing per model configuration.")
]
BatchOpt = Annotated[
    list[int] | None, typer.Option("--batch", "-b", help="Batch size(s) (repeatable).")
]
DeviceOpt = Annotated[str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto.")]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", help="CPU intra-op threads.")]
ResolutionOpt = Annotated[
    int | None, typer.Option("--resolution", "-r", help="Input H = W in pixels.")
]
MemoryOpt = Annotated[
    bool | None,
    typer.Option("--memory/--no-memory", help="Measure peak memory (CPU: a child process)."),
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
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write the verdicts as JSON here.")]
AllowEnvOpt = Annotated[
    bool,
    typer.Option(
        "--allow-env-mismatch",
        help="Compare even when torch, device, CPU or threads "
        "differ from the baseline (calibration normalises speed).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or table.")]

_STYLES = {"pass": "green", "regression": "bold red", "improvement": "cyan", "skipped": "dim"}


def verdict_table(report: object) -> Table:
    """The verdict table of a GateReport (one row per model/config/metric)."""
    from cnnbench.gate import GateReport, format_change, format_ci, format_p, format_value

    assert isinstance(report, GateReport)
    table = Table(
        title=f"cnnbench gate {report.mode}: {report.baseline} -> {report.candidate}",
        title_justify="left",
    )
    for col, justify in (
        ("model", "left"),
        ("config", "left"),
        ("metric", "left"),
        ("baseline", "right"),
        ("candidate", "right"),
        ("change", "right"),
        ("p", "right"),
        ("CI", "left"),
        ("verdict", "left"),
        ("reason", "left"),
    ):
        table.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for v in report.verdicts:
        style = _STYLES.get(v.decision, "")
        verdict = v.decision + (f" (re-measured {v.remeasured}x)" if v.remeasured else "")
        table.add_row(
            v.model,
            v.config,
            v.metric,
            format_value(v.metric, v.baseline),
            format_value(v.metric, v.candidate),
            format_change(v),
            format_p(v),
            format_ci(v),
            f"[{style}]{verdict}[/]" if style else verdict,
            v.reason,
        )
    return table


def _config(
    config: Path | None,
    *,
    models: list[str] | None = None,
    budget: float | None = None,
    batch: list[int] | None = None,
    device: str | None = None,
    threads: int | None = None,
    resolution: int | None = None,
    memory: bool | None = None,
    rounds: int | None = None,
    fallback: dict | None = None,
):  # -> GateConfig
    """The configuration file (or the baseline's stored set, or defaults) with CLI overrides."""
    from cnnbench.gate import GateConfig, config_from_dict, load_config

    cfg = load_config(config)
    if cfg is None:
        cfg = config_from_dict(fallback) if fallback else GateConfig()
    changes: dict = {}
    if models:
        changes["models"] = tuple(models)
    if budget is not None:
        changes["budget_s"] = budget
    if memory is not None:
        changes["memory"] = memory
    if rounds is not None:
        changes["rounds"] = rounds
    configs = list(cfg.configs)
    fields = {
        k: v
        for k, v in (("device", device), ("threads", threads), ("resolution", resolution))
        if v is not None
    }
    if fields:
        configs = [dataclasses.replace(c, **fields) for c in configs]
    if batch:
        configs = list(
            dict.fromkeys(dataclasses.replace(c, batch_size=b) for c in configs for b in batch)
        )
    changes["configs"] = tuple(configs)
    return dataclasses.replace(cfg, **changes)


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
    """Render and write every output, then exit 1 on a regression."""
    from cnnbench.gate import GateReport, to_junit_xml, to_markdown, write_step_summary
    from cnnbench.results import atomic_write_text

    assert isinstance(report, GateReport)
    if not quiet:
        out.print(verdict_table(report))
        for note in report.notes:
            err.print(f"[yellow]note:[/] {note}")
    if junit is not None:
        atomic_write_text(junit, to_junit_xml(report))
    if markdown is not None:
        atomic_write_text(markdown, to_markdown(report))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(report.to_dict(), indent=2, default=str))
    summary = write_step_summary(report)
    written = [str(p) for p in (junit, markdown, json_out, summary) if p is not None]
    if written and not quiet:
        err.print("wrote " + ", ".join(written))
    regressions = report.regressions
    line = (
        (
            f"{len(regressions)} regression(s): "
            + ", ".join(f"{v.model} {v.config} {v.metric}" for v in regressions)
        )
        if regressions
        else "pass"
    )
    err.print(
        f"gate: {line} ({len(report.verdicts)} checks, {report.elapsed_s:.1f} s)", highlight=False
    )
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
    memory: MemoryOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Measure the configured models and write a baseline: raw samples, environment, calibration."""
    from cnnbench import gate

    cfg = _config(
        config,
        models=model,
        budget=budget,
        batch=batch,
        device=device,
        threads=threads,
        resolution=resolution,
        memory=memory,
    )
    with _progress(quiet) as progress:
        task = progress.add_task("starting")
        run = gate.save(cfg, out_file, on_progress=lambda m: progress.update(task, description=m))
    rows = [r for r in run.results if not r.model.startswith(gate.CALIBRATION_MODEL)]
    err.print(f"wrote baseline {out_file}: {len(rows)} model configuration(s)", highlight=False)


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
    memory: MemoryOpt = None,
    allow_env_mismatch: AllowEnvOpt = False,
    junit: JunitOpt = None,
    markdown: MarkdownOpt = None,
    json_out: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Measure the configured set now (or read --candidate) and decide each metric vs the baseline."""
    from cnnbench import gate

    base_run = gate.load_baseline(baseline)  # exit 2 early on a missing or corrupt file
    cfg = _config(
        config,
        models=model,
        budget=budget,
        batch=batch,
        device=device,
        threads=threads,
        resolution=resolution,
        memory=memory,
        fallback=base_run.config.get("gate"),
    )
    if candidate is not None:
        report = gate.compare_files(cfg, baseline, candidate, allow_env_mismatch=allow_env_mismatch)
    else:
        with _progress(quiet) as progress:
            task = progress.add_task("starting")
            report = gate.check(
                cfg,
                baseline,
                allow_env_mismatch=allow_env_mismatch,
                on_progress=lambda m: progress.update(task, description=m),
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
    cfg = _config(
        config,
        budget=budget,
        batch=batch,
        device=device,
        threads=threads,
        resolution=resolution,
        memory=memory,
        rounds=rounds,
    )
    if all(is_file):
        report = gate.compare_files(cfg, baseline, candidate, allow_env_mismatch=allow_env_mismatch)
    else:
        with _progress(quiet) as progress:
            task = progress.add_task("starting")
            report = gate.ab(
                baseline, candidate, cfg, on_progress=lambda m: progress.update(task, description=m)
            )
    _finish(report, junit=junit, markdown=markdown, json_out=json_out, quiet=quiet)
