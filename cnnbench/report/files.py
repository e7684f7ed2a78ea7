"""Reports of a saved or fresh run: terminal tables, CSV, Markdown, JSON and one HTML file.

Reporters never measure: each renderer is a pure function of a :class:`~cnnbench.results.Run`.
The terminal, Markdown and HTML reports are walks over one
:class:`~cnnbench.report.document.Document` (:func:`~cnnbench.report.document.build` decides
their sections); CSV and :func:`to_dataframe` write the records' flat fields,
:meth:`Result.flat_columns` in schema order; JSON is the run itself. :data:`FORMATS` is the
one registry of output formats (name -> file suffix and renderer), read by :func:`render`
(``--out -``) and :func:`write_reports` alike.

Units in reports: params in millions (M), MACs in billions per image (GMACs), latency in
milliseconds per batch (median with the larger distance to a CI bound as ``±``), throughput
in images per second, memory in MiB (2**20 bytes). Relative columns (``*_x``): see
:func:`~cnnbench.report.document.relative_to` (params, MACs and memory divided by the
baseline's row of the same configuration; latency and throughput the engine's paired ratios).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Console

from cnnbench.errors import UsageError
from cnnbench.report import walkers
from cnnbench.report.charts import all_charts
from cnnbench.report.document import RELATIVE_COLUMNS, build, machines_table, relative_to
from cnnbench.report.format import CONVENTIONS
from cnnbench.results import ENVIRONMENT_COLUMNS, Result, Run, atomic_write_text, results_frame

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONVENTIONS",
    "FORMATS",
    "FormatSpec",
    "RELATIVE_COLUMNS",
    "RenderContext",
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


# --------------------------------------------------------------------------- renderers


def render_table(run: Run, console: Console, baseline: str | None = None) -> None:
    """Print the run's report as rich tables (see :func:`cnnbench.report.walkers.to_terminal`):
    conventions, one row per result with units and relative columns (the baseline's rows
    marked), failures, latency per machine, stage and module tables."""
    walkers.to_terminal(build(run, baseline), console)


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
    """Markdown ready for a README or PR; ``chart_paths`` (chart name -> path relative to
    the Markdown file, e.g. ``{"latency-macs": "run-latency-macs.svg"}``) are referenced as
    images, other charts are left out."""
    return walkers.to_markdown(build(run, baseline), chart_paths)


def render_html(
    run: Run, baseline: str | None = None, charts: Mapping[str, str] | None = None
) -> str:
    """One self-contained HTML page (inline CSS, tables, inline SVG charts; no scripts and no
    external resources). ``charts`` (name -> SVG) defaults to :func:`all_charts`."""
    return walkers.to_html(build(run, baseline, charts))


# --------------------------------------------------------------------------- formats


class RenderContext(NamedTuple):
    """What a file renderer may use besides the run: the ``baseline`` model, the charts
    (name -> SVG; None: render them) and their file names (name -> path relative to the
    report; empty: no chart files)."""

    baseline: str | None = None
    charts: Mapping[str, str] | None = None
    chart_paths: Mapping[str, str] = {}


class FormatSpec(NamedTuple):
    """An output format: file ``suffix`` and ``render`` (None for both: printed to the
    terminal only); ``charts``: the report uses the charts (they are written beside it)."""

    suffix: str | None
    render: Callable[[Run, RenderContext], str] | None
    charts: bool = False


#: Output format name -> spec, in help order. :func:`render` and :func:`write_reports` read
#: it; a new format is one renderer and one line here.
FORMATS: dict[str, FormatSpec] = {
    "table": FormatSpec(None, None),
    "csv": FormatSpec(".csv", lambda run, _ctx: render_csv(run)),
    "md": FormatSpec(
        ".md", lambda run, ctx: render_markdown(run, ctx.chart_paths, ctx.baseline), charts=True
    ),
    "json": FormatSpec(".json", lambda run, _ctx: render_json(run)),
    "html": FormatSpec(
        ".html", lambda run, ctx: render_html(run, ctx.baseline, ctx.charts), charts=True
    ),
}


def render(run: Run, kind: str, baseline: str | None = None) -> str:
    """The text of one file format of the run (``--out -``); charts are inlined in HTML and
    left out of Markdown (there is no file to reference)."""
    spec = FORMATS.get(kind)
    if spec is None or spec.render is None:
        text = [name for name, s in FORMATS.items() if s.render is not None]
        raise UsageError(f"format {kind!r} cannot be rendered as text; choose {', '.join(text)}")
    return spec.render(run, RenderContext(baseline))


def write_reports(
    run: Run,
    out_dir: str | os.PathLike[str],
    formats: Sequence[str],
    name: str,
    *,
    baseline: str | None = None,
    console: Console | None = None,
) -> dict[str, Path]:
    """Write ``<name><suffix>`` for each file format in ``formats`` (:data:`FORMATS`) and,
    with a format that uses charts (md, html), the charts as ``<name>-<chart>.svg`` under
    ``out_dir``; ``table`` prints to ``console``.

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
    wanted = list(dict.fromkeys(formats))
    charts = all_charts(run.results) if any(FORMATS[f].charts for f in wanted) else {}
    chart_files = {key: f"{name}-{key}.svg" for key in charts}
    context = RenderContext(baseline, charts, chart_files)
    texts: dict[str, tuple[Path, str]] = {}
    for kind in wanted:
        spec = FORMATS[kind]
        if spec.suffix is not None and spec.render is not None:
            texts[kind] = (out / f"{name}{spec.suffix}", spec.render(run, context))
    for key, svg in charts.items():
        texts[f"chart:{key}"] = (out / chart_files[key], svg)
    paths = {key: atomic_write_text(path, text) for key, (path, text) in texts.items()}
    if "table" in formats:
        render_table(run, console or Console(), baseline=baseline)
    return paths
