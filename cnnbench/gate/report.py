"""Gate output: value formatting, the Markdown summary (``$GITHUB_STEP_SUMMARY``) and JUnit
XML. Reporters never measure."""

from __future__ import annotations

import math
import os
import xml.etree.ElementTree as ET
from pathlib import Path

from .config import METRICS
from .stats import _pct
from .verdicts import GateReport, Verdict


def format_value(metric: str, value: float | None) -> str:
    """Human text of a metric value (counts with thousands separators, bytes in MiB)."""
    if value is None:
        return "-"
    kind, unit = METRICS[metric]
    if unit == "B":
        return f"{value / 2**20:,.2f} MiB"
    if kind == "deterministic":
        return f"{int(value):,}"
    if metric == "latency_ms":
        return f"{value:.3f} ms"
    return f"{value:,.1f} {unit}"


def format_change(v: Verdict) -> str:
    return "-" if v.ratio is None or math.isinf(v.ratio) else _pct(v.ratio)


def format_ci(v: Verdict) -> str:
    if v.ci_low is None or v.ci_high is None:
        return "-"
    return f"[{_pct(v.ci_low)}, {_pct(v.ci_high)}]"


def format_p(v: Verdict) -> str:
    return "-" if v.p_value is None else f"{v.p_value:.2g}"


_ICONS = {
    "pass": "✅ pass",
    "regression": "❌ regression",
    "improvement": "🚀 improvement",
    "skipped": "⏭️ skipped",
}


def _summary_line(report: GateReport) -> str:
    counts = {
        d: sum(v.decision == d for v in report.verdicts)
        for d in ("regression", "improvement", "pass", "skipped")
    }
    head = "❌ **regression**" if report.regressions else "✅ **pass**"
    parts = [f"{n} {d}" for d, n in counts.items() if n]
    return f"{head}: {', '.join(parts) or 'nothing compared'}"


def to_markdown(report: GateReport) -> str:
    """A Markdown summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    s = report.settings
    lines = [
        f"## cnnbench gate ({report.mode})",
        "",
        _summary_line(report),
        "",
        f"Baseline `{report.baseline}`, candidate `{report.candidate}`. Latency: one-sided "
        f"Mann-Whitney U at alpha={s.get('alpha', '?')} AND a median ratio of at least "
        f"+{s.get('min_effect', 0):.0%} (bootstrap CI at {1 - s.get('alpha', 0):.0%}); "
        "deterministic metrics exact unless a tolerance is configured.",
        "",
        "| model | config | metric | baseline | candidate | change | p | CI | verdict | reason |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for v in report.verdicts:
        reason = v.reason.replace("|", "\\|")
        if v.remeasured:
            reason += f" (re-measured {v.remeasured}x)"
        lines.append(
            f"| {v.model} | {v.config} | {v.metric} | {format_value(v.metric, v.baseline)} | "
            f"{format_value(v.metric, v.candidate)} | {format_change(v)} | {format_p(v)} | "
            f"{format_ci(v)} | {_ICONS.get(v.decision, v.decision)} | {reason} |"
        )
    if report.notes:
        lines += ["", *[f"- {n}" for n in report.notes]]
    lines += ["", f"_{len(report.verdicts)} checks in {report.elapsed_s:.1f} s_", ""]
    return "\n".join(lines)


def to_junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per model/config/metric, a ``failure`` element on regression,
    ``skipped`` for metrics that could not be compared."""
    suite = ET.Element(
        "testsuite",
        name=f"cnnbench gate {report.mode}",
        tests=str(len(report.verdicts)),
        failures=str(len(report.regressions)),
        errors="0",
        skipped=str(sum(v.decision == "skipped" for v in report.verdicts)),
        time=f"{report.elapsed_s:.3f}",
    )
    for v in report.verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=f"cnnbench.gate.{v.model}", name=f"{v.config} {v.metric}"
        )
        detail = (
            f"baseline {format_value(v.metric, v.baseline)}, candidate "
            f"{format_value(v.metric, v.candidate)}, change {format_change(v)}, "
            f"p {format_p(v)}, CI {format_ci(v)}: {v.reason}"
        )
        if v.failed:
            ET.SubElement(case, "failure", message=v.reason, type="regression").text = detail
        elif v.decision == "skipped":
            ET.SubElement(case, "skipped", message=v.reason)
        else:
            ET.SubElement(case, "system-out").text = detail
    root = ET.Element(
        "testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0")
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_step_summary(
    report: GateReport, path: str | os.PathLike[str] | None = None
) -> Path | None:
    """Append the Markdown summary to ``path`` or to ``$GITHUB_STEP_SUMMARY`` when set.
    Returns the file written, or None when there is nowhere to write."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    target = Path(target)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(to_markdown(report) + "\n")
    return target
