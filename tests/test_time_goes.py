"""The "where the time goes" table and the roofline chart, from hand-made layer rows."""

from __future__ import annotations

from cnnbench.report.charts import CHARTS, roofline_svg
from cnnbench.report.table import to_markdown
from cnnbench.report.time_goes import partition, where_time_goes_table
from cnnbench.results import LayerCost, Result


def _row(name: str, depth: int, macs: int, time_ms: float | None, nbytes: int | None, **kw):
    return LayerCost(
        name, kw.pop("type", "Conv2d"), depth, [], params=0, macs=macs, flops=2 * macs,
        time_ms=time_ms, time_ms_ci_low=None if time_ms is None else time_ms * 0.9,
        time_ms_ci_high=None if time_ms is None else time_ms * 1.1, bytes=nbytes, **kw,
    )  # fmt: skip


LAYERS = [
    _row("conv1", 1, 100, 1.0, 100, intensity=2.0, gflops_achieved=0.2, bound="compute",
         roof_fraction=0.5),
    _row("stage1", 1, 700, 6.0, 500, type="Sequential", intensity=2.8, gflops_achieved=0.23,
         bound="bandwidth", roof_fraction=0.25),
    _row("stage1.0", 2, 600, 2.0, 200, intensity=6.0, gflops_achieved=0.6, bound="compute",
         roof_fraction=0.8),
    _row("stage1.1", 2, 100, 3.5, 300, intensity=0.67, gflops_achieved=0.057,
         bound="overhead", roof_fraction=0.1),
    _row("head", 1, 200, 2.0, 400, intensity=1.0, gflops_achieved=0.2, bound="bandwidth",
         roof_fraction=0.4),
    _row("(other)", 1, 0, 1.0, None, type=""),
]  # fmt: skip


def test_partition_cuts_the_tree_once() -> None:
    assert [r.name for r in partition(LAYERS, 1)] == ["conv1", "stage1", "head", "(other)"]
    assert [r.name for r in partition(LAYERS)] == [
        "conv1", "stage1.0", "stage1.1", "head", "(other)"
    ]  # fmt: skip
    assert partition([]) == []


def test_table_shares_sorted_by_time() -> None:
    table = where_time_goes_table(LAYERS, "toy", depth=1)
    assert [row[0] for row in table.rows] == ["stage1", "head", "conv1", "(other)"]
    by_name = {row[0]: row for row in table.rows}
    # times 1 + 6 + 2 + 1 = 10 ms; MACs 100 + 700 + 200 = 1000; bytes 100 + 500 + 400 = 1000
    assert by_name["stage1"][3:6] == ["60.0%", "70.0%", "50.0%"]
    assert by_name["conv1"][3:6] == ["10.0%", "10.0%", "10.0%"]
    assert by_name["(other)"][3:6] == ["10.0%", "0.0%", "—"]
    assert by_name["stage1"][2] == "6.00 ms ±0.60"
    assert by_name["stage1"][8] == "bandwidth 25%"
    assert by_name["(other)"][8] == "—"
    assert "10.0 ms in the rows" in table.caption
    assert to_markdown(table)[0] == "**toy**"


def test_table_at_depth_two_uses_the_leaves() -> None:
    table = where_time_goes_table(LAYERS, "toy", depth=2)
    # ties keep the rows' order
    assert [row[0] for row in table.rows] == ["stage1.1", "stage1.0", "head", "conv1", "(other)"]
    # 1 + 2 + 3.5 + 2 + 1 = 9.5 ms
    assert {row[0]: row[3] for row in table.rows}["stage1.1"] == f"{100 * 3.5 / 9.5:.1f}%"


def test_roofline_chart_draws_points_and_measured_roofs() -> None:
    result = Result(model="toy", layers=LAYERS, peak_gflops=5.0)
    roofs = {"peak_gflops": {"fp32": 5.0}, "bandwidth_gbps": {"32768": 0.5, "268435456": 0.1}}
    svg = roofline_svg([result], roofs)
    assert svg is not None and svg.startswith("<svg") and "<title>Roofline</title>" in svg
    assert svg.count('class="point"') == 4  # the finest partition, (other) has no bytes
    assert svg.count('class="roof compute"') == 1
    assert svg.count('class="roof bandwidth"') == 2
    assert "fp32 peak 5" in svg
    # without roofs the rows' own peak is the only line
    plain = CHARTS["roofline"].render([result])
    assert plain is not None and plain.count('class="roof compute"') == 1
    assert 'class="roof bandwidth"' not in plain
    assert roofline_svg([Result(model="x")]) is None
