"""Display tables of the static analyses: the zoo list, stages, counter comparison, SE overhead
and claims. Pure rendering: every function takes measured objects and returns a
:class:`~cnnbench.report.table.Table`; numbers are written through
:mod:`cnnbench.report.format`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cnnbench.report import format as fmt
from cnnbench.report.format import CONVENTIONS
from cnnbench.report.table import Table

if TYPE_CHECKING:
    from cnnbench.static import StaticProfile
    from cnnbench.static.backends import CounterComparison
    from cnnbench.static.se import SEOverhead

__all__ = [
    "layers_table",
    "zoo_table",
    "stages_table",
    "counters_table",
    "uncounted_table",
    "se_table",
    "claims_table",
]


def zoo_table(
    rows: Sequence[tuple[str, str, int | None, int | None, Sequence[int], str]],
    top1: Sequence[str] | None = None,
) -> Table:
    """rows: (name, family, params, MACs at native size or None, input size, paper); ``top1``:
    one cited top-1 cell per row (a "top-1" column appears when given)."""
    headers = ["model", "family", "params", "MACs", "input"]
    headers += ["top-1", "paper"] if top1 is not None else ["paper"]
    table = Table.of(
        "cnnbench model zoo",
        *headers,
        text=(0, 1, 4, len(headers) - 1),
        caption="MACs per image at the native input size"
        + ("; top-1: cited, not measured (`cnnbench info MODEL` lists all)" if top1 else ""),
    )
    for k, (name, family, params, macs, size, paper) in enumerate(rows):
        cells = [name, family, fmt.count(params), fmt.macs(macs), "x".join(map(str, size))]
        cells += [top1[k], paper] if top1 is not None else [paper]
        table.add(cells)
    return table


def stages_table(profile: StaticProfile) -> Table:
    """Per-stage blocks, channels, output shape, params, MACs, FLOPs and output size."""
    c, h, w = profile.input_size
    table = Table.of(
        f"{profile.model}: stages at {c}x{h}x{w}",
        "stage",
        "blocks",
        "out ch",
        "output",
        "params",
        "MACs",
        "share",
        "FLOPs",
        "output",
        text=(0, 3),
        caption=CONVENTIONS,
    )
    for s in profile.stages:
        table.add(
            [
                s.name,
                str(s.blocks),
                str(s.out_channels),
                "x".join(map(str, s.output_shape)),
                fmt.count(s.params),
                fmt.macs(s.macs),
                fmt.pct(s.macs / profile.macs if profile.macs else None),
                fmt.flops(s.flops),
                fmt.nbytes(s.output_bytes),
            ]
        )
    table.add(
        [
            "total",
            str(sum(s.blocks for s in profile.stages[1:-1])),
            "",
            "",
            fmt.count(profile.params),
            fmt.macs(profile.macs),
            "100%",
            fmt.flops(profile.flops),
            "",
        ],
        mark="total",
    )
    return table


def layers_table(layers: Sequence[Any], title: str) -> Table:
    """One row per module (``LayerCost``), indented by depth, with type, output shape,
    params, MACs, FLOPs and output bytes."""
    table = Table.of(
        title, "layer", "type", "output", "params", "MACs", "FLOPs", "output", text=(0, 1, 2)
    )
    for layer in layers:
        table.add(
            [
                "  " * (layer.depth - 1) + layer.name,
                layer.type,
                "x".join(map(str, layer.output_shape)),
                fmt.count(layer.params),
                fmt.macs(layer.macs),
                fmt.flops(layer.flops),
                fmt.nbytes(layer.activation_bytes),
            ]
        )
    return table


def counters_table(comparison: CounterComparison, model: str) -> Table:
    """Each backend's count per operation category, exact and in its own unit, and the MAC
    agreement."""
    reports = comparison.reports
    table = Table.of(
        f"{model}: counters side by side (per image, eval mode)",
        "category",
        *(f"{name} [{r.unit}]" for name, r in reports.items()),
        caption="conv + matmul MACs must agree; the other rows are what each counter adds",
    )
    for category in comparison.categories():
        table.add([category, *(fmt.exact(r.by_category.get(category)) for r in reports.values())])
    table.add(["total", *(fmt.exact(r.total) for r in reports.values())], mark="total")
    table.add(["conv+matmul as MACs", *(fmt.exact(r.macs) for r in reports.values())])
    cnn = reports.get("cnnbench")
    if cnn is not None and cnn.flops is not None:
        table.add(["cnnbench FLOPs", fmt.exact(cnn.flops), *[""] * (len(reports) - 1)])
    return table


def uncounted_table(comparison: CounterComparison, model: str) -> Table:
    """What each backend did not count: operator, calls, elements."""
    table = Table.of(
        f"{model}: not counted by each backend",
        "backend",
        "operator",
        "calls",
        "elements",
        text=(0, 1),
    )
    for name, report in comparison.reports.items():
        if not report.uncounted:
            table.add([name, "(nothing)", "", ""])
        for u in report.uncounted:
            table.add([name, u.name, fmt.exact(u.calls or None), fmt.exact(u.elements)])
    return table


def se_table(overhead: SEOverhead) -> Table:
    """The per-stage SE overhead with the SENet formula beside the measurement."""
    o = overhead
    caption = (
        f"added params {fmt.exact(o.added_params)} (+{fmt.pct(o.params_increase, 2)} over the "
        f"same net built without SE: {fmt.exact(o.base_params)}); MACs "
        f"+{fmt.pct(o.macs_increase, 3)}, FLOPs +{fmt.pct(o.flops_increase, 3)}. "
        "Formula = (2/r) N_s C_s^2, biases neglected."
    )
    table = Table.of(
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
        table.add(
            [
                r.stage,
                str(r.se_blocks),
                str(r.channels),
                f"{r.reduction:g}",
                fmt.exact(r.formula_params),
                fmt.exact(r.weight_params),
                fmt.exact(r.params),
                fmt.pct(r.share),
                fmt.exact(r.fc1_macs),
                fmt.exact(r.fc2_macs),
                fmt.exact(r.gate_flops),
            ]
        )
    table.add(
        [
            "total",
            str(sum(r.se_blocks for r in o.rows)),
            "",
            "",
            fmt.exact(sum(r.formula_params for r in o.rows)),
            fmt.exact(sum(r.weight_params for r in o.rows)),
            fmt.exact(o.se_params),
            "100%",
            fmt.exact(sum(r.fc1_macs for r in o.rows)),
            fmt.exact(sum(r.fc2_macs for r in o.rows)),
            fmt.exact(sum(r.gate_flops for r in o.rows)),
        ],
        mark="total",
    )
    return table


def _claim_value(value: float, unit: str) -> str:
    if unit == "percent":
        return fmt.pct(value, 2)
    if unit == "count":
        return fmt.exact(value)
    return fmt.sig(value, 4)


_ONE_SIDED = {"at_least": ">=", "at_most": "<=", "greater_than": ">", "less_than": "<"}


def claims_table(verdicts: Sequence[Any]) -> Table:
    """Every claim with its source id, expected and measured value, rule and verdict;
    published entries (no verdict) show the published figure."""
    table = Table.of(
        "claims checked against measurement",
        "id",
        "claim",
        "source",
        "expected",
        "measured",
        "rule",
        "verdict",
        text=(0, 1, 2, 5, 6),
    )
    for v in verdicts:
        c, unit = v.claim, v.unit
        if c.kind == "published":
            expected, rule = c.published, "published"
        elif c.kind == "between":
            expected = f"{_claim_value(c.low, unit)} .. {_claim_value(c.high, unit)}"
            rule = "between"
        else:
            expected = _claim_value(c.expected, unit)
            rule = {
                "relative": f"±{100 * c.tolerance:g}%",
                "absolute": f"±{_claim_value(c.tolerance, unit)}",
            }.get(c.kind) or _ONE_SIDED[c.kind]
        measured = "" if v.measured is None else _claim_value(v.measured, unit)
        verdict = v.status if v.error is None else f"error: {v.error}"
        style = {"holds": "green", "does not hold": "red"}.get(v.status, "")
        sid = c.source_id or (f"({c.part_of})" if c.part_of else "")
        table.add([sid, c.text, c.source, expected, measured, rule, verdict], style=style)
    return table
