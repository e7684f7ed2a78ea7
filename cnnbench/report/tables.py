"""Rich tables for the static analyses: the zoo list, stages, counter comparison, SE overhead
and claims. Pure rendering: every function takes measured objects and returns a Table."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from cnnbench.claims import Verdict
from cnnbench.static import StaticProfile
from cnnbench.static.backends import CounterComparison
from cnnbench.static.se import SEOverhead

__all__ = [
    "CONVENTIONS",
    "human",
    "zoo_table",
    "stages_table",
    "counters_table",
    "uncounted_table",
    "se_table",
    "claims_table",
]

CONVENTIONS = (
    "MACs = multiply-accumulates of conv/linear/matmul, bias excluded; FLOPs = 2 x MACs + "
    "elementwise/norm/pool/activation ops per cnnbench's rule table; static counts per image"
)


def human(value: float | int | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    """``human(25_557_032, "M", 1e6)`` -> ``"25.56M"``; ``None`` -> ``"-"``."""
    if value is None:
        return "-"
    return f"{value / scale:,.{digits}f}{unit}"


def _table(title: str, *columns: str, caption: str | None = None) -> Table:
    table = Table(title=title, caption=caption, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    return table


def zoo_table(rows: Sequence[tuple[str, str, int, int | None, tuple[int, int, int], str]]) -> Table:
    """rows: (name, family, params, MACs at native size or None, input size, paper)."""
    table = _table(
        "cnnbench model zoo",
        "model",
        "family",
        "params",
        "GMACs",
        "input",
        "paper",
        caption="GMACs per image at the native input size",
    )
    table.columns[1].justify = "left"
    table.columns[5].justify = "left"
    for name, family, params, macs, size, paper in rows:
        table.add_row(
            name,
            family,
            human(params, "M", 1e6),
            human(macs, "", 1e9, 3),
            "x".join(map(str, size)),
            paper,
        )
    return table


def stages_table(profile: StaticProfile) -> Table:
    """Per-stage blocks, channels, output shape, params, MACs, FLOPs and output size."""
    c, h, w = profile.input_size
    table = _table(
        f"{profile.model}: stages at {c}x{h}x{w}",
        "stage",
        "blocks",
        "out ch",
        "output",
        "params",
        "MACs",
        "share",
        "FLOPs",
        "output MiB",
        caption=CONVENTIONS,
    )
    for s in profile.stages:
        table.add_row(
            s.name,
            str(s.blocks),
            str(s.out_channels),
            "x".join(map(str, s.output_shape)),
            human(s.params, "M", 1e6),
            human(s.macs, "G", 1e9, 3),
            f"{100 * s.macs / profile.macs:.1f}%" if profile.macs else "-",
            human(s.flops, "G", 1e9, 3),
            human(s.output_bytes, "", 2**20, 2),
        )
    table.add_row(
        "total",
        str(sum(s.blocks for s in profile.stages[1:-1])),
        "",
        "",
        human(profile.params, "M", 1e6),
        human(profile.macs, "G", 1e9, 3),
        "100%",
        human(profile.flops, "G", 1e9, 3),
        "",
        style="bold",
    )
    return table


def counters_table(comparison: CounterComparison, model: str) -> Table:
    """Each backend's count per operation category, in its own unit, and the MAC agreement."""
    reports = comparison.reports
    table = _table(
        f"{model}: counters side by side (per image)",
        "category",
        *(f"{name} [{r.unit}]" for name, r in reports.items()),
        caption="conv + matmul MACs must agree; the other rows are what each counter adds",
    )
    for category in comparison.categories():
        table.add_row(
            category, *(human(r.by_category.get(category), "", 1, 0) for r in reports.values())
        )
    table.add_row("total", *(human(r.total, "", 1, 0) for r in reports.values()), style="bold")
    table.add_row("conv+matmul as MACs", *(human(r.macs, "", 1, 0) for r in reports.values()))
    cnn = reports.get("cnnbench")
    if cnn is not None and cnn.flops is not None:
        table.add_row("cnnbench FLOPs", human(cnn.flops, "", 1, 0), *[""] * (len(reports) - 1))
    return table


def uncounted_table(comparison: CounterComparison, model: str) -> Table:
    """What each backend did not count: operator, calls, elements."""
    table = _table(
        f"{model}: not counted by each backend", "backend", "operator", "calls", "elements"
    )
    table.columns[1].justify = "left"
    for name, report in comparison.reports.items():
        if not report.uncounted:
            table.add_row(name, "(nothing)", "", "")
        for u in report.uncounted:
            table.add_row(
                name, u.name, str(u.calls) if u.calls else "-", human(u.elements, "", 1, 0)
            )
    return table


def se_table(overhead: SEOverhead) -> Table:
    """The per-stage SE overhead with the SENet formula beside the measurement."""
    o = overhead
    caption = (
        f"added params {o.added_params:,} (+{100 * o.params_increase:.2f}% over the same net "
        f"built without SE: {o.base_params:,}); MACs +{100 * o.macs_increase:.3f}%, "
        f"FLOPs +{100 * o.flops_increase:.3f}%. Formula = (2/r) N_s C_s^2, biases neglected."
    )
    table = _table(
        f"{o.model}: SE overhead per stage",
        "stage",
        "N_s",
        "C_s",
        "r",
        "formula",
        "weights",
        "+biases",
        "share",
        "FC1 MACs",
        "FC2 MACs",
        "pool+gate+scale FLOPs",
        caption=caption,
    )
    for r in o.rows:
        table.add_row(
            r.stage,
            str(r.se_blocks),
            str(r.channels),
            f"{r.reduction:g}",
            f"{r.formula_params:,}",
            f"{r.weight_params:,}",
            f"{r.params:,}",
            f"{100 * r.share:.1f}%",
            f"{r.fc1_macs:,}",
            f"{r.fc2_macs:,}",
            f"{r.gate_flops:,}",
        )
    table.add_row(
        "total",
        str(sum(r.se_blocks for r in o.rows)),
        "",
        "",
        f"{sum(r.formula_params for r in o.rows):,}",
        f"{sum(r.weight_params for r in o.rows):,}",
        f"{o.se_params:,}",
        "100%",
        f"{sum(r.fc1_macs for r in o.rows):,}",
        f"{sum(r.fc2_macs for r in o.rows):,}",
        f"{sum(r.gate_flops for r in o.rows):,}",
        style="bold",
    )
    return table


def _fmt(value: float, unit: str) -> str:
    if unit == "percent":
        return f"{100 * value:.3g}%"
    if unit == "count":
        return f"{value:,.0f}"
    return f"{value:.4g}"


def claims_table(verdicts: Sequence[Verdict]) -> Table:
    """Every claim with its expected and measured value and the verdict."""
    table = _table(
        "claims checked against measurement",
        "claim",
        "source",
        "expected",
        "measured",
        "tolerance",
        "verdict",
    )
    table.columns[0].justify = "left"
    table.columns[1].justify = "left"
    for v in verdicts:
        c = v.claim
        tol = {
            "relative": f"±{100 * c.tolerance:g}%",
            "absolute": f"±{_fmt(c.tolerance, c.unit)}",
            "at_least": ">=",
        }[c.kind]
        table.add_row(
            c.text,
            c.source,
            _fmt(c.expected, c.unit),
            _fmt(v.measured, c.unit),
            tol,
            "[green]holds[/]" if v.holds else "[red]does not hold[/]",
        )
    return table
