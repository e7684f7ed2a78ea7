"""Gate output: value formatting, the verdict table, the Markdown summary
(``$GITHUB_STEP_SUMMARY``) and JUnit XML. Reporters never measure.

Numbers are written by :mod:`cnnbench.report.format` and tables built as one
:class:`cnnbench.report.table.Table` (rendered for the terminal by the CLI); the Markdown
summary is a :class:`cnnbench.report.document.Document` written by the run reports' Markdown
walker, so the gate reads like every other cnnbench report. Deterministic metrics are exact integers
(a one-parameter change must be visible); latency, throughput and memory use the shared
units. The table shows the candidate's raw value next to its calibrated value, so a change
that comes from the calibration rather than the model can be seen.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

from cnnbench.report import format as fmt
from cnnbench.report import walkers
from cnnbench.report.document import Document, Section
from cnnbench.report.table import Table, clean_text

from .config import METRICS
from .verdicts import GateReport, Verdict

__all__ = [
    "format_value",
    "format_change",
    "format_ci",
    "format_p",
    "verdict_table",
    "to_markdown",
    "to_junit_xml",
    "write_step_summary",
]


def format_value(metric: str, value: float | None) -> str:
    """Human text of a metric value: exact counts (``25,557,032``, ``65,536 B``), latency in
    ms, throughput in img/s, peak memory with a binary prefix; ``—`` when missing."""
    if fmt.is_missing(value):
        return fmt.MISSING
    assert value is not None
    kind, unit = METRICS[metric]
    if kind == "deterministic":
        return f"{fmt.exact(value)} B" if unit == "B" else fmt.exact(value)
    if kind == "latency":
        return fmt.ms(value)
    if kind == "throughput":
        return fmt.ips(value)
    return fmt.nbytes(value)


def format_change(v: Verdict) -> str:
    """The change candidate/baseline (calibrated where a calibration applied): ``+3.2%``."""
    return fmt.change(v.ratio)


def format_ci(v: Verdict) -> str:
    """The bootstrap CI of the change: ``[+1.0%, +4.1%]``."""
    if v.ci_low is None or v.ci_high is None:
        return fmt.MISSING
    return f"[{fmt.change(v.ci_low)}, {fmt.change(v.ci_high)}]"


def format_p(v: Verdict) -> str:
    """The one-sided p-value: ``0.0031``, ``<1e-6``."""
    return fmt.p_value(v.p_value)


_ICONS = {
    "pass": "✅ pass",
    "regression": "❌ regression",
    "improvement": "🚀 improvement",
    "skipped": "⏭️ skipped",
    "error": "⛔ error",
}
_STYLES = {
    "regression": "bold red",
    "error": "bold red",
    "improvement": "cyan",
    "skipped": "dim",
}
_COLUMNS = (
    "model",
    "config",
    "metric",
    "baseline",
    "candidate",
    "calibrated",
    "change",
    "p",
    "CI",
    "verdict",
    "reason",
)


def verdict_table(report: GateReport, *, icons: bool = False, title: str = "") -> Table:
    """One row per model/config/metric: baseline, the candidate's raw and calibrated values,
    change, p, CI, verdict and reason. ``icons``: verdicts with emoji (Markdown)."""
    table = Table.of(title, *_COLUMNS, text=(0, 1, 2, 8, 9, 10))
    for v in report.verdicts:
        verdict = _ICONS.get(v.decision, v.decision) if icons else v.decision
        if v.remeasured:
            verdict += f" (re-measured {v.remeasured}x)"
        table.add(
            [
                v.model,
                v.config,
                v.metric,
                format_value(v.metric, v.baseline),
                format_value(v.metric, v.candidate),
                format_value(v.metric, v.calibrated),
                format_change(v),
                format_p(v),
                format_ci(v),
                verdict,
                v.reason,
            ],
            style=_STYLES.get(v.decision, ""),
        )
    return table


def _summary_line(report: GateReport) -> str:
    counts = {
        d: sum(v.decision == d for v in report.verdicts)
        for d in ("error", "regression", "improvement", "pass", "skipped")
    }
    if report.unusable:
        head = "⛔ **error**"
    elif report.regressions:
        head = "❌ **regression**"
    else:
        head = "✅ **pass**"
    parts = [f"{n} {d}" for d, n in counts.items() if n]
    return f"{head}: {', '.join(parts) or 'nothing compared'}"


def to_markdown(report: GateReport) -> str:
    """A Markdown summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``: a
    :class:`~cnnbench.report.document.Document` (heading level 2, so that summaries append)
    written by the report's Markdown walker, which escapes every cell (model names and
    reasons come from user files)."""
    s = report.settings
    alpha = s.get("alpha", 0.01)
    doc = Document(
        title=f"cnnbench gate ({report.mode})",
        meta=_summary_line(report),
        conventions=(
            f"Baseline `{report.baseline}`, candidate `{report.candidate}`. Latency: one-sided "
            f"Mann-Whitney U at alpha={alpha:g} AND a median ratio of at least "
            f"{fmt.change(1 + s.get('min_effect', 0.05))} (bootstrap CI at "
            f"{fmt.pct(1 - alpha, 0)}), after calibration; deterministic metrics exact unless "
            "a tolerance is configured."
        ),
        banner=("error", report.unusable) if report.unusable else None,
        sections=[
            Section("verdicts", "", tables=[verdict_table(report, icons=True)], lines=report.notes)
        ],
        footer=f"{len(report.verdicts)} checks in {report.elapsed_s:.1f} s",
    )
    return walkers.to_markdown(doc, level=2)


def to_junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per model/config/metric, a ``failure`` element on regression,
    an ``error`` element for a check that could not be made, ``skipped`` for metrics that
    could not be compared."""
    suite = ET.Element(
        "testsuite",
        name=f"cnnbench gate {report.mode}",
        tests=str(len(report.verdicts)),
        failures=str(len(report.regressions)),
        errors=str(len(report.errors)),
        skipped=str(sum(v.decision == "skipped" for v in report.verdicts)),
        time=f"{report.elapsed_s:.3f}",
    )
    for v in report.verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=f"cnnbench.gate.{v.model}", name=f"{v.config} {v.metric}"
        )
        calibrated = (
            f" (calibrated {format_value(v.metric, v.calibrated)})"
            if v.calibrated is not None
            else ""
        )
        detail = (
            f"baseline {format_value(v.metric, v.baseline)}, candidate "
            f"{format_value(v.metric, v.candidate)}{calibrated}, change {format_change(v)}, "
            f"p {format_p(v)}, CI {format_ci(v)}: {v.reason}"
        )
        if v.failed:
            ET.SubElement(case, "failure", message=v.reason, type="regression").text = detail
        elif v.errored:
            ET.SubElement(case, "error", message=v.reason, type="unusable").text = detail
        elif v.decision == "skipped":
            ET.SubElement(case, "skipped", message=v.reason)
        else:
            ET.SubElement(case, "system-out").text = detail
    root = ET.Element(
        "testsuites",
        tests=suite.get("tests", "0"),
        failures=suite.get("failures", "0"),
        errors=suite.get("errors", "0"),
    )
    root.append(suite)
    for element in root.iter():  # names and reasons come from files: well-formed XML always
        element.attrib = {k: clean_text(v) for k, v in element.attrib.items()}
        if element.text:
            element.text = clean_text(element.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_step_summary(
    report: GateReport, path: str | os.PathLike[str] | None = None
) -> Path | None:
    """Append the Markdown summary to ``path`` or to ``$GITHUB_STEP_SUMMARY`` when set.
    Returns the file written, or None when there is nowhere to write. OSError when the file
    cannot be written (the CLI reports it as a warning; the verdict stands)."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    target = Path(target)
    text = to_markdown(report) + "\n"
    with target.open("a", encoding="utf-8") as fh:
        fh.write(text)
    return target
