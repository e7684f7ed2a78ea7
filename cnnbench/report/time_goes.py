"""Where the time goes: each layer's share of the measured time next to its share of the MACs
and of the bytes moved, with its roofline bound.

The rows compared are a partition of the model cut at one depth (:func:`partition`): every
row at that depth, every shallower row with no listed child (a top-level ``conv1`` has no
children at depth 2), and ``(other)``. Shares are of the partition's sums; a row whose time
share exceeds its MAC share runs below the model's average efficiency. Reporters read the
measured fields of :class:`~cnnbench.results.LayerCost`; they never measure.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnnbench.report import format as fmt
from cnnbench.report.table import Table
from cnnbench.results import LayerCost

__all__ = ["partition", "where_time_goes_table"]


def partition(layers: Sequence[LayerCost], depth: int | None = None) -> list[LayerCost]:
    """The rows that cover the model once when it is cut at ``depth`` (default: the deepest
    listed): rows at ``depth``, shallower rows without a listed descendant, and ``(other)``."""
    if not layers:
        return []
    cut = depth if depth is not None else max(r.depth for r in layers)
    names = [r.name for r in layers if r.depth <= cut]
    out = []
    for r in layers:
        if r.depth > cut:
            continue
        prefix = r.name + "."
        has_child = any(n.startswith(prefix) for n in names)
        if r.depth == cut or not has_child:
            out.append(r)
    return out


def _share(value: float | None, total: float) -> float | None:
    return None if value is None or total <= 0 else value / total


def where_time_goes_table(
    layers: Sequence[LayerCost],
    title: str,
    *,
    depth: int | None = None,
    batch_size: int = 1,
) -> Table:
    """One row per layer of the partition at ``depth``, sorted by measured time (slowest
    first; rows without a time last): time with its 95% CI, time share, MAC share, bytes
    share, intensity (FLOP/byte), achieved GFLOP/s and the bound with the fraction of its
    roof reached. MACs are per image in the rows and multiplied by ``batch_size`` only for
    the caption's total."""
    rows = partition(layers, depth)
    total_time = sum(r.time_ms for r in rows if r.time_ms is not None and r.time_ms > 0)
    total_macs = sum(r.macs for r in rows)
    total_bytes = sum(r.bytes for r in rows if r.bytes is not None)
    table = Table.of(
        title,
        "layer",
        "type",
        "time",
        "time %",
        "MACs %",
        "bytes %",
        "FLOP/B",
        "GFLOP/s",
        "bound",
        text=(0, 1, 8),
        caption=(
            f"per forward of batch {batch_size}: {fmt.ms(total_time)} in the rows, "
            f"{fmt.macs(total_macs * batch_size)}, {fmt.nbytes(total_bytes)} moved at least; "
            "time % above MACs % means below-average efficiency"
        ),
    )
    ordered = sorted(rows, key=lambda r: (r.time_ms is None, -(r.time_ms or 0.0)))
    for r in ordered:
        bound = "" if r.bound is None else f"{r.bound} {fmt.pct(r.roof_fraction, 0)}"
        table.add(
            [
                r.name,
                r.type,
                fmt.latency(r.time_ms, r.time_ms_ci_low, r.time_ms_ci_high),
                fmt.pct(_share(max(r.time_ms, 0.0), total_time) if r.time_ms is not None else None),
                fmt.pct(_share(r.macs, total_macs)),
                fmt.pct(_share(r.bytes, total_bytes)),
                fmt.MISSING if r.intensity is None else fmt.sig(r.intensity),
                fmt.MISSING if r.gflops_achieved is None else fmt.sig(r.gflops_achieved),
                bound or fmt.MISSING,
            ]
        )
    return table
