"""Where the time goes: each layer's share of the measured time next to its share of the MACs
and of the bytes moved, with its roofline bound.

The rows compared are a partition of the model cut at one depth (:func:`partition`): every
row at that depth, every shallower row with no listed child (a top-level ``conv1`` has no
children at depth 2), and ``(other)``. Shares are of the partition's sums; a row whose time
share exceeds its MAC share runs below the model's average efficiency. Reporters read the
measured fields of :class:`~cnnbench.results.LayerCost`; they never measure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnnbench.report import format as fmt
from cnnbench.report.table import Table
from cnnbench.results import LayerCost, Result

__all__ = [
    "OTHER",
    "attribution_table",
    "disagreements",
    "partition",
    "reconciliation_table",
    "roofs_line",
    "timed",
    "where_time_goes_table",
]

#: The row of work outside every listed child (functional ops in ``forward``, glue).
OTHER = "(other)"


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
            "time % above MACs % means below-average efficiency; bound: the roof the row's "
            "intensity puts it under (compute, or bandwidth of its working set) or overhead "
            "(per-call cost), with the % of that roof reached"
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


def timed(r: Result) -> bool:
    """Whether ``r``'s layer rows were timed (``--depth`` on a timed run)."""
    return r.layer_timing is not None and any(layer.time_ms is not None for layer in r.layers)


def _interval(median: float, low: float, high: float) -> str:
    return f"{fmt.ms(median)} [{fmt.ms(low)}, {fmt.ms(high)}]"


def _agree(r: Result) -> bool:
    t = r.layer_timing
    assert t is not None
    return t.rows_sum_ci_low <= t.end_to_end_ci_high and t.end_to_end_ci_low <= t.rows_sum_ci_high


def reconciliation_table(results: Sequence[tuple[str, Result]]) -> Table:
    """Per ``(label, row)`` with timed layers: the depth-1 rows summed per round (median and
    95% CI over rounds) against the whole model timed in the same rounds (median and CI),
    their difference (``(other)``: time outside the rows), the rows' share of the whole, and
    whether the two intervals overlap, with the clock of the samples."""
    table = Table.of(
        "Reconciliation: depth-1 rows vs the whole model",
        "model", "rows sum [95% CI]", "end-to-end [95% CI]", "difference", "rows / whole",
        "intervals", "clock", "rounds", "took",
        text=(0, 1, 2, 5, 6),
        caption=(
            "per forward of the batch; rows and the whole model timed in the same interleaved "
            "rounds; difference = end-to-end - rows sum (the (other) row)"
        ),
    )  # fmt: skip
    for label, r in results:
        t = r.layer_timing
        assert t is not None
        table.add(
            [
                label,
                _interval(t.rows_sum_ms, t.rows_sum_ci_low, t.rows_sum_ci_high),
                _interval(t.end_to_end_ms, t.end_to_end_ci_low, t.end_to_end_ci_high),
                _signed_ms(t.end_to_end_ms - t.rows_sum_ms),
                fmt.pct(t.rows_sum_ms / t.end_to_end_ms if t.end_to_end_ms > 0 else None),
                "overlap" if _agree(r) else "disagree",
                t.clock,
                str(t.rounds),
                f"{t.seconds:.1f} s",
            ]
        )
    return table


def disagreements(results: Sequence[tuple[str, Result]]) -> list[str]:
    """One line per row whose depth-1 sum and end-to-end intervals do not overlap, saying
    which way and what that usually means."""
    lines = []
    for label, r in results:
        t = r.layer_timing
        if t is None or _agree(r):
            continue
        sums = _interval(t.rows_sum_ms, t.rows_sum_ci_low, t.rows_sum_ci_high)
        whole = _interval(t.end_to_end_ms, t.end_to_end_ci_low, t.end_to_end_ci_high)
        why = (
            "time outside the rows (functional ops in forward, glue: the (other) row), or "
            "rows timed alone finding their inputs warm in cache"
            if t.rows_sum_ms < t.end_to_end_ms
            else "rows timed alone lose what the whole forward shares (caches warmed by the "
            "previous layer, threads kept busy)"
        )
        lines.append(
            f"{label}: the depth-1 rows sum to {sums}, the whole model takes {whole}: they "
            f"disagree beyond the intervals ({why})"
        )
    return lines


def _signed_ms(value: float) -> str:
    return ("+" if value > 0 else "-" if value < 0 else "") + fmt.ms(abs(value))


def _rows(n: int) -> str:
    return f"{n} row" + ("" if n == 1 else "s")


def _time_cell(value: float) -> str:
    return fmt.ms(value) if value >= 0 else "-" + fmt.ms(-value)


def _end_to_end(r: Result) -> float | None:
    if r.layer_timing is not None:
        return r.layer_timing.end_to_end_ms
    return r.latency_ms_median


def _row_times(r: Result, depth: int, end_to_end: float) -> dict[str, float]:
    """Time per row of the partition at ``depth`` with a measured time, and ``(other)`` as
    the end-to-end time minus those rows (signed), so that the rows add up to the whole."""
    rows = {
        x.name: x.time_ms
        for x in partition(r.layers, depth)
        if x.name != OTHER and x.time_ms is not None
    }
    return {**rows, OTHER: end_to_end - sum(rows.values())}


def attribution_table(a: Result, b: Result, *, depth: int = 1) -> Table | None:
    """Which rows explain the latency ratio of ``b`` to ``a`` (two rows of one configuration
    with timed layers): per row name present in both partitions at ``depth``, its time in
    each model, the difference and its share of the end-to-end difference (both from the
    per-layer timing's whole-model medians), largest difference first; rows present in one
    model only are summed into one line each. None when either has no timed layers."""
    if not (timed(a) and timed(b)):
        return None
    e2e_a, e2e_b = _end_to_end(a), _end_to_end(b)
    assert e2e_a is not None and e2e_b is not None
    times_a = _row_times(a, depth, e2e_a)
    times_b = _row_times(b, depth, e2e_b)
    total = e2e_b - e2e_a
    ratio = e2e_b / e2e_a if e2e_a > 0 else None
    table = Table.of(
        f"Which rows explain {b.model} / {a.model}",
        "row", f"{a.model}", f"{b.model}", "difference", "share of difference",
        text=(0,),
        caption=(
            f"end-to-end (per-layer timing) {fmt.ms(e2e_a)} vs {fmt.ms(e2e_b)}: "
            f"{fmt.ratio(ratio)}, difference {_signed_ms(total)}; rows of the same name "
            f"at depth {depth}, per forward of the batch; (other) = end-to-end - the listed "
            "rows (signed: negative when rows timed alone sum to more than the whole), so the "
            "shares sum to 100%"
        ),
    )  # fmt: skip
    lines: list[tuple[str, float | None, float | None, float]] = [
        (name, ta, times_b[name], times_b[name] - ta)
        for name, ta in times_a.items()
        if name in times_b
    ]
    only_a = [n for n in times_a if n not in times_b]
    only_b = [n for n in times_b if n not in times_a]
    if only_a:
        only_ms = sum(times_a[n] for n in only_a)
        lines.append((f"(only in {a.model}: {_rows(len(only_a))})", only_ms, None, -only_ms))
    if only_b:
        only_ms = sum(times_b[n] for n in only_b)
        lines.append((f"(only in {b.model}: {_rows(len(only_b))})", None, only_ms, only_ms))
    for name, ta, tb, diff in sorted(lines, key=lambda x: -abs(x[3])):
        table.add(
            [
                name,
                fmt.MISSING if ta is None else _time_cell(ta),
                fmt.MISSING if tb is None else _time_cell(tb),
                _signed_ms(diff),
                fmt.pct(diff / total if total else None),
            ]
        )
    return table


def roofs_line(environment: Mapping[str, Any]) -> str:
    """This machine's measured roofs in one line (empty when the run has none): compute peak
    per dtype, bandwidth per working-set size, per-call and module-call overhead."""
    peaks = environment.get("peak_gflops")
    bandwidth = environment.get("bandwidth_gbps")
    if not isinstance(peaks, Mapping) or not isinstance(bandwidth, Mapping):
        return ""
    try:
        peak = ", ".join(f"{k} {fmt.sig(float(v))}" for k, v in peaks.items())
        sizes = sorted((int(k), float(v)) for k, v in bandwidth.items())
        call = float(environment.get("call_overhead_us", 0.0))
        module = float(environment.get("module_call_overhead_us", 0.0))
    except (TypeError, ValueError):
        return ""
    bw = " · ".join(f"{fmt.nbytes(size)} {fmt.sig(gbps)}" for size, gbps in sizes)
    return (
        f"measured roofs: peak GFLOP/s {peak}; bandwidth GB/s by working set: {bw}; "
        f"call {fmt.sig(call)} µs, module call {fmt.sig(module)} µs"
    )
