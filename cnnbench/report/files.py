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
import errno
import io
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from rich.console import Console

from cnnbench.errors import UsageError
from cnnbench.report import walkers
from cnnbench.report.charts import CHARTS, all_charts
from cnnbench.report.document import RELATIVE_COLUMNS, build, machines_table, relative_to
from cnnbench.report.format import CONVENTIONS
from cnnbench.results import (
    ENVIRONMENT_COLUMNS,
    Result,
    Run,
    atomic_write_text,
    results_frame,
    write_problem,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CONVENTIONS",
    "DEFAULT_OUT_FORMATS",
    "check_outputs",
    "guard_stdio",
    "keep_run_on_write_failure",
    "save_incomplete",
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
    wants_charts = any(FORMATS[f].charts for f in wanted)
    charts = all_charts(run.results, run.environment) if wants_charts else {}
    chart_files = {key: f"{name}-{key}.svg" for key in charts}
    context = RenderContext(baseline, charts, chart_files)
    texts: dict[str, tuple[Path, str]] = {}
    for kind in wanted:
        spec = FORMATS[kind]
        if spec.suffix is not None and spec.render is not None:
            texts[kind] = (out / f"{name}{spec.suffix}", spec.render(run, context))
    for key, svg in charts.items():
        texts[f"chart:{key}"] = (out / chart_files[key], svg)
    paths = {}
    for key, (path, text) in texts.items():
        try:
            paths[key] = atomic_write_text(path, text)
        except OSError as exc:  # name the report, not the temporary file
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from None
    if "table" in formats:
        render_table(run, console or Console(), baseline=baseline)
    return paths


# --------------------------------------------------------------------------- outputs

#: The file formats written when ``--out DIR`` is given with no file format (only ``table``):
#: the run itself, which ``cnnbench report`` renders to any other format later.
DEFAULT_OUT_FORMATS = ("json",)

#: The longest file name suffix a report of ``name`` gets (``-incomplete.json`` and the
#: chart files are the longest), so a name that fits gives files that fit.
_LONGEST_SUFFIX = max(["-incomplete.json", *(f"-{key}.svg" for key in CHARTS)], key=len)

_STDIO = {"stdout_closed": False}


def guard_stdio() -> None:
    """Make the standard streams safe to write before a command runs: a closed stdout
    (``>&-``) is pointed at /dev/null (and remembered, so :func:`check_outputs` refuses
    to send data there), and a stream whose encoding cannot write every character
    (``PYTHONIOENCODING=ascii``) writes backslash escapes instead of raising."""
    try:
        os.fstat(1)
        closed = sys.stdout is None
    except OSError:
        closed = True
    if closed:
        _STDIO["stdout_closed"] = True
        null = os.open(os.devnull, os.O_WRONLY)
        if null != 1:
            os.dup2(null, 1)
            os.close(null)
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        if reconfigure is not None and encoding not in ("utf8", "utf_8"):
            reconfigure(errors="backslashreplace")


def _stdout_problem() -> str | None:
    if _STDIO["stdout_closed"]:
        return "stdout is closed"
    stream = sys.stdout
    if stream is None or getattr(stream, "closed", False):
        return "stdout is closed"
    return None


def check_outputs(
    out_dir: str | os.PathLike[str],
    formats: Sequence[str],
    name: str | None = None,
    *,
    out_given: bool = True,
    json_stdout: bool = False,
) -> list[str]:
    """Check every output of a command before anything is measured; returns the formats to
    write. UsageError (one line: the problem and the fix, exit 2) for: no format
    (``--format ''``), an unknown one, ``--out -`` with other than one file format, data
    for a closed stdout, a report ``name`` that is not a plain file name or whose files
    would be longer than the file system allows, an ``--out`` that exists and is not a
    directory, cannot be created, is not writable or is a symbolic link loop, and a report
    file that is a directory.

    ``out_given``: ``--out DIR`` was given on the command line. With only the ``table``
    format it then also writes :data:`DEFAULT_OUT_FORMATS` (the run as JSON) there, rather
    than silently writing nothing; the default ``--out`` with ``table`` writes no file."""
    formats = list(formats)
    choose = ", ".join(FORMATS)
    if not formats:
        raise UsageError(f"--format is empty; choose one or more of {choose}, e.g. -f table,csv")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise UsageError(f"--format {', '.join(unknown)}: unknown; choose from {choose}")
    files = [f for f in formats if FORMATS[f].suffix is not None]
    to_stdout = os.fspath(out_dir) == "-"
    if to_stdout and len(files) != 1:
        raise UsageError(
            f"--out - writes one format to stdout, got {', '.join(files) or 'none'}; "
            "e.g. --out - --format csv"
        )
    problem = _stdout_problem()
    if problem and (to_stdout or json_stdout or not (files or out_given)):
        raise UsageError(f"{problem}: nothing could be written; give --out DIR --format csv,json")
    if to_stdout:
        return formats
    if not files and out_given:
        formats += DEFAULT_OUT_FORMATS
        files = list(DEFAULT_OUT_FORMATS)
    if not files:
        return formats
    out = Path(out_dir)
    problem = write_problem(out, directory=True)
    if problem is not None:
        raise UsageError(f"--out {out}: {problem}; give --out a writable directory")
    if name is not None:
        _check_name(out, name)
        for kind in files:
            target = out / f"{name}{FORMATS[kind].suffix}"
            if target.is_dir():
                raise UsageError(f"{target} is a directory; remove it or choose another --name")
    return formats


def _check_name(out: Path, name: str) -> None:
    """A report name: a plain file name whose longest file still fits the file system."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or "\x00" in name:
        raise UsageError(f"report name {name[:40]!r} must be a plain file name")
    folder = out
    while not folder.is_dir() and folder.parent != folder:
        folder = folder.parent
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    longest = len(os.fsencode(name + _LONGEST_SUFFIX))
    if longest > limit:
        allowed = limit - len(_LONGEST_SUFFIX)
        raise UsageError(
            f"report name of {len(os.fsencode(name))} bytes is too long: its files would be "
            f"{longest} bytes, the file system allows {limit}; use --name of at most {allowed}"
        )


def save_incomplete(run: Run, out_dir: str | os.PathLike[str] | None, name: str) -> Path:
    """Keep ``run`` as ``<name>-incomplete.json``: in ``out_dir`` when it can be written
    there, else in the system temporary directory (:func:`tempfile.gettempdir`), else in
    the working directory. Returns the path; OSError when none of the three can be
    written (the last error)."""
    places = [Path(out_dir)] if out_dir is not None and os.fspath(out_dir) != "-" else []
    places += [Path(tempfile.gettempdir()), Path.cwd()]
    error: OSError | None = None
    for place in places:
        try:
            return run.save(place / f"{name}-incomplete.json")
        except OSError as exc:
            error = exc
    assert error is not None
    raise error


def _detach_stdout() -> None:
    """After a failed write to stdout: send what is still buffered to /dev/null, so the
    interpreter's own flush at exit does not fail a second time (with a traceback)."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


@contextmanager
def keep_run_on_write_failure(
    run: Run, out_dir: str | os.PathLike[str] | None, name: str
) -> Iterator[None]:
    """Around the writing of a measured run's outputs (files and stdout, flushed at the end
    of the block): a write that fails (disk full, a folder gone read-only, a closed pipe)
    keeps the run as ``<name>-incomplete.json`` (:func:`save_incomplete`: ``out_dir``, else
    the temporary directory, else the working directory) and raises UsageError, one line
    naming what failed and where the run is. The name says the reports are incomplete; the
    run's own ``complete`` flag is left as it was."""
    try:
        yield
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        what = exc.filename if exc.filename else "stdout"
        if what == "stdout":
            _detach_stdout()
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        try:
            kept = save_incomplete(run, out_dir, name)
        except OSError as again:
            raise UsageError(
                f"could not write {what} ({reason}), nor keep the run anywhere "
                f"({again.strerror or again}); free some space and measure again"
            ) from None
        raise UsageError(
            f"could not write {what} ({reason}); the run is kept in {kept}: "
            f"`cnnbench report {kept}` writes the reports from it"
        ) from None
