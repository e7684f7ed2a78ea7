"""The one report document: which sections a report of a run has, decided in one place.

:func:`build` turns a :class:`~cnnbench.results.Run` into a :class:`Document` of titled
:class:`Section` s holding display tables (:class:`~cnnbench.report.table.Table`), lines and
chart names. The terminal, Markdown and HTML renderers (:mod:`cnnbench.report.walkers`) only
walk it, so the three cannot disagree on what a report shows; the gate's Markdown summary is
a Document too.

Ratios (the ``×`` columns, :func:`relative_to`): params, MACs and peak memory divide a row's
value by the baseline model's row of the same configuration (every field of
:data:`~cnnbench.results.CONFIG_FIELDS`: device, precision, memory format, batch, input size,
mode, compile, machine); no such row, no ratio. Latency and throughput ratios are never
divided here: they are the engine's paired per-round ratios with their 95% CI
(``latency_ratio*``, ``throughput_ratio*`` on each row), shown only where the engine measured
them against the report's baseline model; elsewhere (e.g. rows of different runs) they read
``n/a``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cnnbench._version import __version__
from cnnbench.errors import UsageError
from cnnbench.report import format as fmt
from cnnbench.report.charts import all_charts, stage_results
from cnnbench.report.format import CONFIG_FIELDS, CONVENTIONS, config_label, varying_config
from cnnbench.report.table import Table, clean_text
from cnnbench.report.tables import layers_table
from cnnbench.report.time_goes import (
    attribution_table,
    disagreements,
    reconciliation_table,
    roofs_line,
    timed,
    where_time_goes_table,
)
from cnnbench.results import Result, Run

__all__ = [
    "Document",
    "RELATIVE_COLUMNS",
    "Section",
    "build",
    "machines_table",
    "relative_to",
    "stage_table",
]

#: Relative column -> the Result field it compares with the baseline's (latency and
#: throughput: through the engine's paired ratio, never a quotient of medians).
RELATIVE_COLUMNS: dict[str, str] = {
    "params_x": "params",
    "macs_x": "macs",
    "latency_x": "latency_ms_median",
    "throughput_x": "throughput_ips",
    "memory_x": "peak_memory_bytes",
}
_QUOTIENTS = ("params_x", "macs_x", "memory_x")


@dataclass
class Section:
    """One part of a report. ``key`` names it (HTML id and table class: ``results``,
    ``machines``, ``charts``, ``stages``, ``layers``, ``time``, ``environment``); ``subtitle`` says what
    the tables share; ``tables`` carry their own titles; ``lines`` are failures and notes, one
    per line; ``charts`` are :data:`~cnnbench.report.charts.CHARTS` names; ``note`` follows
    the tables. An ``appendix`` (the environment) is reference material for files: the
    terminal shows the environment in its header line instead."""

    key: str
    title: str
    subtitle: str = ""
    tables: list[Table] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    note: str = ""
    appendix: bool = False


@dataclass
class Document:
    """A whole report: ``title``, ``meta`` (where and when), ``roofs`` (the machine's measured
    roofs in one line, when the run measured them), ``conventions``, an optional
    ``banner`` (heading, text) such as an incomplete run, the sections, ``svgs`` (chart name
    -> SVG text for the charts the sections name), ``empty`` (no rows at all) and a
    ``footer``."""

    title: str
    meta: str = ""
    roofs: str = ""
    conventions: str = ""
    banner: tuple[str, str] | None = None
    sections: list[Section] = field(default_factory=list)
    svgs: dict[str, str] = field(default_factory=dict)
    empty: bool = False
    footer: str = ""


# --------------------------------------------------------------------------- ratios


def _baseline_model(results: Sequence[Result], baseline: str | None) -> str | None:
    models = list(dict.fromkeys(r.model for r in results))
    if baseline is None:
        return models[0] if models else None
    if baseline not in models:
        raise UsageError(
            f"baseline {baseline!r} is not in this run; its models are: {', '.join(models)}"
        )
    return baseline


def _paired_with(group: Sequence[Result], base: str | None) -> bool:
    """Whether the engine's ratios in one configuration (``group``: its rows, every model)
    divide by ``base``'s rows: the engine leaves its baseline's row without a ratio, so
    ``base`` must be the only timed model without one, and some row must carry one."""
    if not any(r.latency_ratio is not None for r in group):
        return False
    unpaired = {
        r.model for r in group if r.latency_ms_median is not None and r.latency_ratio is None
    }
    return unpaired == {base}


def relative_to(results: Sequence[Result], baseline: str | None = None) -> list[dict[str, Any]]:
    """For each result, ``{params_x, macs_x, latency_x, throughput_x, memory_x}`` relative to
    the ``baseline`` model (default: the first model; an unknown name raises UsageError).

    ``params_x``, ``macs_x``, ``memory_x``: the value divided by the baseline's row of the
    same configuration (every field of :data:`CONFIG_FIELDS`, resolution and machine
    included); None when either value is missing, the baseline's is 0, or the baseline has
    no row in that configuration. ``latency_x``, ``throughput_x``: the engine's paired
    per-round ratio (``latency_ratio``, ``throughput_ratio``) when it was measured against
    this baseline, 1.0 on the baseline's own timed rows, else None (never a quotient of two
    medians: rows of different runs or machines were not timed together)."""
    name = _baseline_model(results, baseline)
    base_rows: dict[tuple[Any, ...], Result] = {}
    groups: dict[tuple[Any, ...], list[Result]] = {}
    for r in results:
        key = r.config_key()
        groups.setdefault(key, []).append(r)
        if r.model == name:
            base_rows.setdefault(key, r)
    out = []
    for r in results:
        key = r.config_key()
        b = base_rows.get(key)
        row: dict[str, Any] = {}
        for col in _QUOTIENTS:
            attr = RELATIVE_COLUMNS[col]
            v, bv = getattr(r, attr), (getattr(b, attr) if b is not None else None)
            row[col] = None if v is None or bv is None or bv == 0 else v / bv
        timed = r.latency_ms_median is not None
        if r.model == name:
            row["latency_x"] = row["throughput_x"] = 1.0 if timed else None
        elif timed and _paired_with(groups[key], name):
            row["latency_x"], row["throughput_x"] = r.latency_ratio, r.throughput_ratio
        else:
            row["latency_x"] = row["throughput_x"] = None
        out.append({col: row[col] for col in RELATIVE_COLUMNS})
    return out


def _timed_ratio(r: Result, metric: str, value: float | None, is_base: bool) -> str:
    """A timed ratio cell: ``—`` without a measurement, ``1.00×`` on the baseline's row, the
    paired ratio with its CI (``≈`` and ``n.s.`` when the CI includes 1), or ``n/a`` when the
    row was not timed paired with the baseline."""
    if r.latency_ms_median is None:
        return fmt.MISSING
    if is_base:
        return fmt.ratio(value)
    if value is None:
        return fmt.NOT_PAIRED
    return fmt.ratio_ci(
        value,
        getattr(r, f"{metric}_ratio_ci_low"),
        getattr(r, f"{metric}_ratio_ci_high"),
        getattr(r, f"{metric}_ratio_significant"),
    )


# --------------------------------------------------------------------------- tables


def _results_table(results: Sequence[Result], base: str | None) -> Table:
    """The main table: one row per result, the baseline's rows marked."""
    vary = varying_config(results)
    failed = any(r.status != "ok" for r in results)
    headers = (
        ["Model"]
        + (["Config"] if vary else [])
        + ["Params", "MACs", "Latency (median ±CI)", "Throughput", "Memory"]
        + ["Params ×", "MACs ×", "Latency ×", "Throughput ×", "Memory ×"]
        + (["Status"] if failed else [])
    )
    text = [0, 1] if vary else [0]
    table = Table.of("", *headers, text=text + ([len(headers) - 1] if failed else []))
    for r, rel in zip(results, relative_to(results, base), strict=True):
        is_base = r.model == base
        cells = [r.model + (" (baseline)" if is_base else "")]
        if vary:
            cells.append(config_label(r, vary))
        cells += [
            fmt.count(r.params),
            fmt.macs(r.macs),
            fmt.latency(r.latency_ms_median, r.latency_ms_ci_low, r.latency_ms_ci_high, r.clock),
            fmt.ips(r.throughput_ips),
            fmt.nbytes(r.peak_memory_bytes),
            fmt.ratio(rel["params_x"]),
            fmt.ratio(rel["macs_x"]),
            _timed_ratio(r, "latency", rel["latency_x"], is_base),
            _timed_ratio(r, "throughput", rel["throughput_x"], is_base),
            fmt.ratio(rel["memory_x"]),
        ]
        if failed:
            cells.append(r.status)
        table.add(cells, mark="baseline" if is_base else "")
    return table


def stage_table(r: Result, title: str = "") -> Table:
    """Per-stage params, MACs, shares of MACs and time, and SE params of one result (the
    time columns when its stages were timed, the SE columns when it has SE blocks)."""
    timed = any(s.time_ms is not None for s in r.stages)
    has_se = any(s.se_params for s in r.stages)
    headers = ["Stage", "Blocks", "Params", "MACs", "MACs %"]
    headers += ["Time", "Time %"] if timed else []
    headers += ["SE params", "SE % of stage"] if has_se else []
    table = Table.of(title, *headers)
    total_macs = sum(s.macs for s in r.stages)
    total_time = math.fsum(s.time_ms or 0.0 for s in r.stages)
    for s in r.stages:
        cells = [
            s.name,
            str(s.blocks),
            fmt.count(s.params),
            fmt.macs(s.macs),
            fmt.pct(s.macs / total_macs if total_macs else None),
        ]
        if timed:
            share = s.time_ms / total_time if s.time_ms is not None and total_time else None
            shown = share if s.time_stable is not False else None  # unstable: no share
            cells += [fmt.latency(s.time_ms, s.time_ci_low_ms, s.time_ci_high_ms), fmt.pct(shown)]
        if has_se:
            cells += [fmt.count(s.se_params), fmt.pct(s.se_params / s.params if s.params else None)]
        table.add(cells)
    return table


def _machines(results: Sequence[Result]) -> list[str]:
    return list(dict.fromkeys(r.machine for r in results if r.machine))


def machines_table(results: Sequence[Result]) -> Table | None:
    """Latency per model (and configuration) per machine, for a merge of several machines'
    runs; None for one machine."""
    machines = _machines(results)
    if len(machines) < 2:
        return None
    fields_ = [f for f in varying_config(results) if f != "machine"]
    keys = list(dict.fromkeys((r.model, config_label(r, fields_)) for r in results))
    table = Table.of("Latency per machine", "Model", "Config", *machines, text=(0, 1))
    for model, label in keys:
        cells = []
        for m in machines:
            row = next(
                (r for r in results
                 if r.model == model and r.machine == m and config_label(r, fields_) == label),
                None,
            )  # fmt: skip
            cells.append(
                fmt.latency(
                    row.latency_ms_median, row.latency_ms_ci_low, row.latency_ms_ci_high, row.clock
                )
                if row is not None
                else fmt.MISSING
            )
        table.add([model, label, *cells])
    return table


def _layer_results(results: Sequence[Result]) -> list[Result]:
    """The first row of each model that carries per-module rows (they are static)."""
    seen: dict[str, Result] = {}
    for r in results:
        if r.layers and r.model not in seen:
            seen[r.model] = r
    return list(seen.values())


def _common_config(results: Sequence[Result]) -> str:
    """The configuration shared by every row, e.g. ``cpu fp32 contiguous b1 224px``."""
    if not results:
        return ""
    vary = set(varying_config(results))
    return config_label(results[0], [f for f in CONFIG_FIELDS if f not in vary])


def _environment_line(run: Run) -> str:
    env = run.environment
    parts = [
        str(env.get("device_name") or env.get("device") or ""),
        f"torch {env['torch']}" if env.get("torch") else "",
        f"{env['threads']} threads" if env.get("threads") else "",
        f"commit {env['commit']}" if env.get("commit") else "",
        run.created[:19].replace("T", " ") if run.created else "",
    ]
    return " · ".join(p for p in parts if p)


def _title(run: Run) -> str:
    models = list(dict.fromkeys(r.model for r in run.results))
    return "cnnbench: " + (" vs ".join(map(shown_name, models)) if models else "empty run")


#: The longest model name running text (titles, notes) shows; table cells cut at their own.
MAX_NAME_CHARS = 80


def shown_name(name: str) -> str:
    """A model name as running text shows it: control characters removed, cut to
    :data:`MAX_NAME_CHARS` (a 100 KB name from a file must not fill the terminal)."""
    return clean_text(name, MAX_NAME_CHARS)


def _failures(results: Sequence[Result]) -> list[str]:
    """One line per failed row (status and error) and per row with notes (unstable, not
    measured, ...)."""
    vary = varying_config(results)
    lines = []
    for r in results:
        label = f"{shown_name(r.model)} ({config_label(r, vary) or r.device})"
        if r.status != "ok":
            lines.append(f"{label}: {r.status}" + (f": {r.error}" if r.error else ""))
        if r.notes:
            lines.append(f"{label}: {r.notes}")
    return lines


def _key_values(title: str, items: Mapping[str, Any]) -> Table:
    table = Table.of(title, "Key", "Value", text=(0, 1))
    for key, value in items.items():
        table.add([str(key), str(value)])
    return table


def _time_section(
    results: Sequence[Result], base: str | None, vary: Sequence[str]
) -> Section | None:
    """ "Where the time goes" (``--depth`` on a timed run): per row with timed layers, its
    time/MACs/bytes shares and bounds; the reconciliation of the depth-1 rows with the whole
    model; and, per other model of a configuration, which rows explain its latency ratio to
    the baseline. None when no layer was timed."""
    rows = [r for r in results if timed(r)]
    if not rows:
        return None

    def label(r: Result) -> str:
        return shown_name(r.model) + (f" ({config_label(r, vary)})" if vary else "")

    tables = [
        where_time_goes_table(
            r.layers,
            f"{label(r)}: where the time goes",
            batch_size=r.effective_batch_size or r.batch_size,
        )
        for r in rows
    ]
    labelled = [(label(r), r) for r in rows]
    tables.append(reconciliation_table(labelled))
    groups: dict[tuple[Any, ...], list[Result]] = {}
    for r in rows:
        groups.setdefault(r.config_key(), []).append(r)
    for group in groups.values():
        first = next((r for r in group if r.model == base), None)
        if first is None:
            continue
        for r in group:
            table = attribution_table(first, r) if r is not first else None
            if table is not None:
                tables.append(table)
    return Section(
        "time",
        "Where the time goes",
        tables=tables,
        lines=disagreements(labelled),
    )


# --------------------------------------------------------------------------- the document


def build(
    run: Run, baseline: str | None = None, charts: Mapping[str, str] | None = None
) -> Document:
    """The report of ``run``: results (ratios to ``baseline``, default the first model;
    UsageError for a model not in the run), failures and notes, latency per machine (merged
    runs), charts (``charts``: name -> SVG; default every chart of
    :data:`~cnnbench.report.charts.CHARTS` that applies), a stage table per model with
    stages, a module table per model with ``--depth`` rows, and the environment."""
    results = run.results
    doc = Document(
        title=_title(run),
        meta=_environment_line(run),
        roofs=roofs_line(run.environment),
        conventions=CONVENTIONS,
        banner=None
        if run.complete
        else ("Incomplete run", "interrupted; the rows below were measured."),
        empty=not results,
        footer=f"cnnbench {__version__} · schema v{run.schema_version} · created {run.created}",
    )
    if results:
        base = _baseline_model(results, baseline)
        assert base is not None  # some result names a model
        doc.sections.append(
            Section(
                "results",
                "Results",
                subtitle=f"Configuration: {_common_config(results)}",
                tables=[_results_table(results, base)],
                lines=_failures(results),
                note=(
                    f"× columns: params, MACs and memory divided by {shown_name(base)}'s in the "
                    f"same configuration; latency and throughput: paired per-round ratios to "
                    f"{shown_name(base)} "
                    "with their 95% CI (n/a: not timed together with it)."
                ),
            )
        )
    per_machine = machines_table(results)
    if per_machine is not None:
        doc.sections.append(Section("machines", "Machines", tables=[per_machine]))
    doc.svgs = dict(all_charts(results, run.environment) if charts is None else charts)
    if doc.svgs:
        doc.sections.append(Section("charts", "Charts", charts=list(doc.svgs)))
    vary = varying_config(results)
    staged = stage_results(results)
    if staged:
        tables = [
            stage_table(
                r, f"{shown_name(r.model)} stages" + (f" ({config_label(r, vary)})" if vary else "")
            )
            for r in staged
        ]
        doc.sections.append(Section("stages", "Stages", tables=tables))
    layered = _layer_results(results)
    if layered:
        tables = [layers_table(r.layers, f"{shown_name(r.model)}: modules") for r in layered]
        doc.sections.append(Section("layers", "Layers", tables=tables))
    time_section = _time_section(results, base if results else None, vary)
    if time_section is not None:
        doc.sections.append(time_section)
    environment = Section("environment", "Environment", appendix=True)
    environment.tables.append(
        _key_values("Machine", run.environment or {"environment": "not recorded"})
    )
    if run.config:
        environment.tables.append(_key_values("Run configuration", run.config))
    doc.sections.append(environment)
    return doc
