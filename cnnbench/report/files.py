"""Reports of a saved or fresh run: terminal tables, CSV, Markdown, JSON and one HTML file.

Reporters never measure: each renderer is a pure function of a :class:`~cnnbench.results.Run`
(or a list of :class:`~cnnbench.results.Result`). CSV and Markdown go through
:func:`to_dataframe`, whose columns are exactly :meth:`Result.flat_columns` in schema order.

Units in reports: params in millions (M), MACs in billions per image (GMACs), latency in
milliseconds per batch (median with the larger distance to a CI bound as ``±``), throughput
in images per second, memory in MiB (2**20 bytes). Relative columns (``*_x``) divide a row's
value by the baseline model's value in the same configuration.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape as rich_escape

from cnnbench._version import __version__
from cnnbench.errors import UsageError
from cnnbench.report import format as fmt
from cnnbench.report.charts import CHARTS, all_charts, stage_results
from cnnbench.report.format import CONFIG_FIELDS, CONVENTIONS, config_label, varying_config
from cnnbench.report.table import Table, md_escape, to_html, to_markdown, to_rich
from cnnbench.report.tables import layers_table
from cnnbench.results import ENVIRONMENT_COLUMNS, Result, Run, atomic_write_text, results_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONVENTIONS",
    "FORMATS",
    "RELATIVE_COLUMNS",
    "relative_to",
    "render",
    "render_csv",
    "render_html",
    "render_json",
    "render_markdown",
    "render_table",
    "to_dataframe",
    "write_reports",
    "machines_table",
]

#: Relative column -> the Result field it divides by the baseline's.
RELATIVE_COLUMNS: dict[str, str] = {
    "params_x": "params",
    "macs_x": "macs",
    "latency_x": "latency_ms_median",
    "throughput_x": "throughput_ips",
    "memory_x": "peak_memory_bytes",
}

#: Output formats of :func:`write_reports` -> file suffix (None: printed, no file).
FORMATS: dict[str, str | None] = {
    "table": None,
    "csv": ".csv",
    "md": ".md",
    "json": ".json",
    "html": ".html",
}

# Configuration keys that pick the baseline row, most exact first.
_MATCH_KEYS = (
    ("machine", "batch_size", "precision", "memory_format", "device", "mode", "compiled"),
    ("machine", "batch_size", "precision", "memory_format", "device", "mode"),
)


# --------------------------------------------------------------------------- data


def _baseline_model(results: Sequence[Result], baseline: str | None) -> str | None:
    models = list(dict.fromkeys(r.model for r in results))
    if baseline is None:
        return models[0] if models else None
    if baseline not in models:
        raise UsageError(
            f"baseline {baseline!r} is not in this run; its models are: {', '.join(models)}"
        )
    return baseline


def _baseline_row(result: Result, candidates: Sequence[Result]) -> Result | None:
    """The baseline's row in the same configuration on the same machine (ratios never cross
    machines); else its first row on that machine; None when it has none there."""
    for keys in _MATCH_KEYS:
        for c in candidates:
            if all(getattr(c, k) == getattr(result, k) for k in keys):
                return c
    same_machine = [c for c in candidates if c.machine == result.machine]
    return same_machine[0] if same_machine else None


def relative_to(results: Sequence[Result], baseline: str | None = None) -> list[dict[str, Any]]:
    """For each result, ``{params_x, macs_x, latency_x, throughput_x, memory_x}``: its value
    divided by the baseline model's value in the same configuration (batch size, precision,
    memory format, device, mode; resolution and compile too when the baseline has a row
    that matches them; else the baseline's first row). None where
    either value is missing or the baseline's is 0. ``baseline`` defaults to the first model;
    an unknown name raises UsageError."""
    name = _baseline_model(results, baseline)
    base_rows = [r for r in results if r.model == name]
    out = []
    for r in results:
        b = _baseline_row(r, base_rows)
        row: dict[str, Any] = {}
        for col, attr in RELATIVE_COLUMNS.items():
            v, bv = getattr(r, attr), (getattr(b, attr) if b is not None else None)
            row[col] = None if v is None or bv is None or bv == 0 else v / bv
        out.append(row)
    return out


def to_dataframe(
    results: Run | Sequence[Result | dict[str, Any]],
    *,
    relative: bool = False,
    baseline: str | None = None,
) -> pd.DataFrame:
    """One flat row per result (a Run, records, or their dicts as saved in a run's JSON);
    columns exactly :meth:`Result.flat_columns` in schema order, plus the ``env_*`` columns
    for a Run. With ``relative``, the :data:`RELATIVE_COLUMNS` are appended (see
    :func:`relative_to`)."""
    import pandas as pd

    environment = results.environment if isinstance(results, Run) else None
    rows = results.results if isinstance(results, Run) else results
    records = [r if isinstance(r, Result) else Result.from_dict(dict(r)) for r in rows]
    df = results_frame(records, environment)
    if relative:
        rel = relative_to(records, baseline)
        for col in RELATIVE_COLUMNS:
            df[col] = pd.Series([row[col] for row in rel], index=df.index, dtype="float64")
    return df


# --------------------------------------------------------------------------- tables


def _results_table(run: Run, baseline: str | None) -> tuple[Table, str | None]:
    """The main table (one row per result, the baseline's rows marked) and the baseline."""
    results = run.results
    base = _baseline_model(results, baseline)
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
    for r, rel in zip(results, relative_to(results, baseline), strict=True):
        is_base = r.model == base
        cells = [r.model + (" (baseline)" if is_base else "")]
        if vary:
            cells.append(config_label(r, vary))
        cells += [
            fmt.count(r.params),
            fmt.macs(r.macs),
            fmt.latency(r.latency_ms_median, r.latency_ms_ci_low, r.latency_ms_ci_high),
            fmt.ips(r.throughput_ips),
            fmt.nbytes(r.peak_memory_bytes),
            fmt.ratio(rel["params_x"]),
            fmt.ratio(rel["macs_x"]),
            _measured_ratio(r, "latency", rel["latency_x"], is_base),
            _measured_ratio(r, "throughput", rel["throughput_x"], is_base),
            fmt.ratio(rel["memory_x"]),
        ]
        if failed:
            cells.append(r.status)
        table.add(cells, mark="baseline" if is_base else "")
    return table, base


def _measured_ratio(r: Result, metric: str, fallback: float | None, is_base: bool) -> str:
    """A timed ratio from the paired rounds with its CI (``≈`` and ``n.s.`` when the CI
    includes 1); a run without paired ratios shows the plain quotient."""
    point = getattr(r, f"{metric}_ratio")
    if point is None or is_base:
        return fmt.ratio(fallback)
    return fmt.ratio_ci(
        point,
        getattr(r, f"{metric}_ratio_ci_low"),
        getattr(r, f"{metric}_ratio_ci_high"),
        getattr(r, f"{metric}_ratio_significant"),
    )


def _stage_table(r: Result, title: str = "") -> Table:
    """Per-stage params, MACs, shares of MACs and time, and SE params of one result."""
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
                fmt.latency(row.latency_ms_median, row.latency_ms_ci_low, row.latency_ms_ci_high)
                if row is not None
                else fmt.MISSING
            )
        table.add([model, label, *cells])
    return table


def _stage_title(r: Result, vary: Sequence[str]) -> str:
    return f"{r.model} stages" + (f" ({config_label(r, vary)})" if vary else "")


def _common_config(results: Sequence[Result]) -> str:
    """The configuration shared by every row, e.g. ``cpu · bs1 · 224x224 · fp32 · NCHW``."""
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
    return "cnnbench: " + (" vs ".join(models) if models else "empty run")


def _failures(run: Run) -> list[str]:
    """One line per failed row (status and error) and per row with notes (unstable, not
    measured, ...)."""
    vary = varying_config(run.results)
    lines = []
    for r in run.results:
        label = f"{r.model} ({config_label(r, vary) or r.device})"
        if r.status != "ok":
            lines.append(f"{label}: {r.status}" + (f": {r.error}" if r.error else ""))
        if r.notes:
            lines.append(f"{label}: {r.notes}")
    return lines


# --------------------------------------------------------------------------- renderers


def render_table(run: Run, console: Console, baseline: str | None = None) -> None:
    """Print the run as rich tables: conventions, one row per result with units and relative
    columns (the baseline row marked), and per-stage share tables when stages were timed."""
    console.print(
        f"[bold]{rich_escape(_title(run))}[/]  [dim]{rich_escape(_environment_line(run))}[/]"
    )
    console.print(f"[dim]{rich_escape(CONVENTIONS)}[/]")
    if not run.complete:
        console.print("[bold red]Incomplete run:[/] interrupted; the rows below were measured.")
    if not run.results:
        console.print("No results.")
        return
    data, base = _results_table(run, baseline)
    data.caption = f"× columns: value / {base}'s in the same configuration"
    data.title = f"Configuration: {_common_config(run.results)}"
    table = to_rich(data)
    natural = console.measure(table, options=console.options.update_width(10**4)).maximum
    if natural > console.width:
        # too wide for the terminal: absolute values, then the relative columns
        n_rel = len(RELATIVE_COLUMNS)
        first = data.headers.index("Params ×")
        keys = [i for i, h in enumerate(data.headers) if h in ("Model", "Config")]
        absolute = [i for i in range(len(data.headers)) if not first <= i < first + n_rel]
        relative = keys + list(range(first, first + n_rel))
        absolute_table = data.select(absolute)
        absolute_table.caption = ""
        console.print(to_rich(absolute_table))
        table = to_rich(data.select(relative, title=f"Relative to {base}"))
    console.print(table)
    for line in _failures(run):
        console.print(f"[red]{rich_escape(line)}[/]")
    per_machine = machines_table(run.results)
    if per_machine is not None:
        console.print(to_rich(per_machine))
    vary = varying_config(run.results)
    for r in stage_results(run.results):
        if any(s.time_ms is not None for s in r.stages):
            console.print(to_rich(_stage_table(r, _stage_title(r, vary))))


def _csv_cell(value: Any) -> str:
    """A CSV cell: empty for a missing value; text that a spreadsheet would run as a formula
    (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return, and not a number) gets a
    leading apostrophe."""
    if value is None:
        return ""
    text = str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not isinstance(value, int | float):
        return "'" + text
    return text


def render_csv(run: Run) -> str:
    """One row per result, header = :meth:`Result.flat_columns` (fixed, schema order), then
    the run's environment as ``env_*`` columns (host, cpu, device, torch, threads, commit)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = Result.flat_columns()
    writer.writerow(columns + [f"env_{k}" for k in ENVIRONMENT_COLUMNS])
    env = [_csv_cell(run.environment.get(k)) for k in ENVIRONMENT_COLUMNS]
    for r in run.results:
        flat = r.flat()
        writer.writerow([_csv_cell(flat[c]) for c in columns] + env)
    return buffer.getvalue()


def render_json(run: Run) -> str:
    """The full run (envelope, environment, config, results with raw samples) as JSON."""
    return run.to_json()


def render_markdown(
    run: Run, chart_paths: Mapping[str, str] | None = None, baseline: str | None = None
) -> str:
    """Markdown tables ready for a README or PR; ``chart_paths`` (chart name -> path relative
    to the Markdown file, e.g. ``{"latency-macs": "run-latency-macs.svg"}``) are referenced
    as images."""
    out = [f"# {md_escape(_title(run))}", "", f"_{CONVENTIONS}_", ""]
    env = _environment_line(run)
    if env:
        out += [f"Environment: {md_escape(env)}", ""]
    if not run.complete:
        out += ["> **Incomplete run**: interrupted; the rows below were measured.", ""]
    if not run.results:
        return "\n".join(out + ["No results.", ""])
    data, base = _results_table(run, baseline)
    out += [f"## Results ({_common_config(run.results)})", ""]
    out += to_markdown(data)
    out += ["", f"× columns: value / **{md_escape(base or '')}**'s in the same configuration.", ""]
    out += [f"- {md_escape(line)}" for line in _failures(run)]
    per_machine = machines_table(run.results)
    if per_machine is not None:
        out += ["", "## Machines", ""] + to_markdown(per_machine) + [""]
    if chart_paths:
        out += ["## Charts", ""]
        for name, path in chart_paths.items():
            spec = CHARTS.get(name)
            out += [f"![{spec.title if spec else name}]({path})", ""]
            out += [spec.description, ""] if spec else []
    chosen = stage_results(run.results)
    if chosen:
        out += ["## Stages", ""]
        vary = varying_config(run.results)
        for r in chosen:
            out += [f"### {md_escape(_stage_title(r, vary))}", ""] + to_markdown(_stage_table(r))
            out.append("")
    layered = _layer_results(run.results)
    if layered:
        out += ["## Layers", ""]
        for r in layered:
            out += to_markdown(layers_table(r.layers, f"{r.model}: modules")) + [""]
    return "\n".join(out)


def _layer_results(results: Sequence[Result]) -> list[Result]:
    """The first row of each model that carries per-module rows (they are static)."""
    seen: dict[str, Result] = {}
    for r in results:
        if r.layers and r.model not in seen:
            seen[r.model] = r
    return list(seen.values())


_CSS = """
:root{--ink:#1f2328;--muted:#6b7280;--line:#e5e7eb;--base:#fff7dc}
*{box-sizing:border-box}
body{margin:0;background:#f4f5f7;color:var(--ink);
font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:24px 24px 48px}
h1{font-size:24px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 10px}
h3{font-size:14px;margin:0 0 8px}
.meta,.conv,.note{color:var(--muted);margin:2px 0}
.conv{font-size:13px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:14px 16px;
overflow-x:auto}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:13px}
th,td{padding:5px 9px;border-bottom:1px solid var(--line);white-space:nowrap;text-align:left}
th{font-size:12px;color:var(--muted);font-weight:600;border-bottom:2px solid var(--line);
white-space:normal;vertical-align:bottom}
.num{text-align:right}
tr.baseline td{background:var(--base);font-weight:600}
.tag{display:inline-block;margin-left:6px;padding:0 7px;border-radius:9px;background:#fcd34d;
color:#5b4300;font-size:11px;font-weight:600}
.banner{background:#fef2f2;border:1px solid #fecaca;color:#991b1b;padding:8px 12px;
border-radius:6px;margin:12px 0}
.fail{color:#b91c1c}
.charts{display:flex;flex-direction:column;gap:16px}
figure{margin:0}
figure svg{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{color:var(--muted);font-size:13px;max-width:90ch;margin:6px auto 0}
.grid{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}
.grid>.card{flex:0 1 auto}
details summary{cursor:pointer;color:var(--muted)}
footer{color:var(--muted);font-size:12px;margin-top:32px}
"""


def _kv_table(items: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>" for k, v in items.items()
    )
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def render_html(
    run: Run, baseline: str | None = None, charts: Mapping[str, str] | None = None
) -> str:
    """One self-contained HTML page (inline CSS, tables, inline SVG charts; no scripts and no
    external resources). ``charts`` (name -> SVG) defaults to :func:`all_charts`."""
    charts = all_charts(run.results) if charts is None else charts
    title = _title(run)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="meta">{escape(_environment_line(run))}</p>',
        f'<p class="conv">{escape(CONVENTIONS)}</p></header>',
    ]
    if not run.complete:
        parts.append(
            '<p class="banner"><b>Incomplete run</b>: interrupted; the rows below '
            "were measured.</p>"
        )
    if run.results:
        data, base = _results_table(run, baseline)
        parts += [
            f"<section><h2>Results</h2>"
            f'<p class="note">Configuration: {escape(_common_config(run.results))}</p>',
            f'<div class="card">{to_html(data, "results")}</div>',
            f'<p class="note">× columns: value / <b>{escape(base or "")}</b>\'s in the same '
            "configuration.</p>",
        ]
        parts += [f'<p class="fail">{escape(line)}</p>' for line in _failures(run)]
        parts.append("</section>")
        per_machine = machines_table(run.results)
        if per_machine is not None:
            parts.append(
                f'<section><h2>Machines</h2><div class="card">{to_html(per_machine)}</div>'
                "</section>"
            )
    else:
        parts.append("<p>No results.</p>")
    if charts:
        parts.append('<section><h2>Charts</h2><div class="charts">')
        for name, svg in charts.items():
            spec = CHARTS.get(name)
            caption = spec.description if spec else name
            parts.append(
                f'<figure class="card" id="chart-{escape(name)}">{svg}'
                f"<figcaption>{escape(caption)}</figcaption></figure>"
            )
        parts.append("</div></section>")
    chosen = stage_results(run.results)
    if chosen:
        vary = varying_config(run.results)
        parts.append('<section><h2>Stages</h2><div class="grid">')
        for r in chosen:
            parts.append(
                f'<div class="card"><h3>{escape(_stage_title(r, vary))}</h3>'
                f"{to_html(_stage_table(r), 'stages')}</div>"
            )
        parts.append("</div></section>")
    layered = _layer_results(run.results)
    if layered:
        parts.append('<section><h2>Layers</h2><div class="grid">')
        for r in layered:
            table = to_html(layers_table(r.layers, f"{r.model}: modules"), "layers")
            parts.append(f'<div class="card"><h3>{escape(r.model)}</h3>{table}</div>')
        parts.append("</div></section>")
    parts.append('<section><h2>Environment</h2><div class="card">')
    parts.append(_kv_table(run.environment) if run.environment else "<p>Not recorded.</p>")
    if run.config:
        parts.append(
            f"<details><summary>Run configuration</summary>{_kv_table(run.config)}</details>"
        )
    parts.append("</div></section>")
    parts.append(
        f"<footer>cnnbench {escape(__version__)} · schema v{run.schema_version} · "
        f"created {escape(run.created)}</footer></main></body></html>\n"
    )
    return "\n".join(parts)


# --------------------------------------------------------------------------- files


def render(run: Run, kind: str, baseline: str | None = None) -> str:
    """The text of one file format (``csv``, ``md``, ``json``, ``html``) of the run; charts
    are inlined in HTML and left out of Markdown (there is no file to reference)."""
    renderers = {
        "csv": lambda: render_csv(run),
        "md": lambda: render_markdown(run, baseline=baseline),
        "json": lambda: render_json(run),
        "html": lambda: render_html(run, baseline=baseline),
    }
    if kind not in renderers:
        raise UsageError(
            f"format {kind!r} cannot be rendered as text; choose csv, md, json or html"
        )
    return renderers[kind]()


def write_reports(
    run: Run,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str],
    name: str,
    *,
    baseline: str | None = None,
    console: Console | None = None,
) -> dict[str, Path]:
    """Write ``<name>.csv/.md/.json/.html`` (those in ``formats``) and, with md or html, the
    charts as ``<name>-<chart>.svg`` under ``out_dir``; ``table`` prints to ``console``.

    Everything is rendered before anything is written, and each file is written atomically,
    so a failure leaves earlier reports of the same name intact. Returns format (or
    ``chart:<name>``) -> path. Unknown formats or a name with a path separator: UsageError.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(
            f"unknown format {', '.join(map(repr, unknown))}; choose from {', '.join(FORMATS)}"
        )
    if not name or "/" in name or os.sep in name:
        raise UsageError(f"report name {name!r} must be a plain file name")
    out = Path(out_dir)
    charts = all_charts(run.results) if {"md", "html"} & set(formats) else {}
    chart_files = {key: f"{name}-{key}.svg" for key in charts}
    renderers = {
        "csv": lambda: render_csv(run),
        "md": lambda: render_markdown(run, chart_paths=chart_files, baseline=baseline),
        "json": lambda: render_json(run),
        "html": lambda: render_html(run, baseline=baseline, charts=charts),
    }
    texts: dict[str, tuple[Path, str]] = {}
    for kind in dict.fromkeys(formats):
        suffix = FORMATS[kind]
        if suffix is not None:
            texts[kind] = (out / f"{name}{suffix}", renderers[kind]())
    for key, svg in charts.items():
        texts[f"chart:{key}"] = (out / chart_files[key], svg)
    paths = {key: atomic_write_text(path, text) for key, (path, text) in texts.items()}
    if "table" in formats:
        render_table(run, console or Console(), baseline=baseline)
    return paths
