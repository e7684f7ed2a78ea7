"""``--depth`` on a timed run, end to end: every layer row timed on its real input, the roofs
in the run's environment, the "Where the time goes" section, the Roofline chart with the
measured roofs, and a compare's attribution of its latency difference.

The roofs are a cheap fake (injected where :func:`cnnbench.api.request_roofs` gets them), so
no test spends seconds measuring this machine; the per-layer times are real (lenet5, a small
budget, one thread, no memory child)."""

from __future__ import annotations

import json
import math

import pytest

from cnnbench import api
from cnnbench.report.files import render
from cnnbench.report.time_goes import attribution_table, roofs_line
from cnnbench.results import LayerCost, LayerReconciliation, Result, load_run
from cnnbench.runtime import roofs as roofs_module
from cnnbench.runtime.layer_timing import OTHER, LayerTiming, annotate_layers
from cnnbench.runtime.roofline import BOUNDS

FAKE_PEAK = 50.0
FAKE = roofs_module.Roofs(
    device="cpu",
    threads=1,
    peak_gflops={"fp32": FAKE_PEAK},
    bandwidth_gbps={32768: 40.0, 268435456: 8.0},
    copy_gbps={32768: 40.0, 268435456: 8.0},
    triad_gbps={32768: 30.0, 268435456: 7.0},
    call_overhead_us=3.0,
    module_call_us=1.0,
)
FAST = ("--budget", "0.2", "--threads", "1", "--no-memory", "--quiet")


@pytest.fixture
def fake_roofs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Replace the roofs measurement by :data:`FAKE`; the list records each call's dtypes."""
    calls: list[tuple[str, ...]] = []

    def fake(device: object = "cpu", dtypes: object = None, **_kw: object) -> object:
        calls.append(tuple(dtypes or ()))
        return FAKE

    monkeypatch.setattr(roofs_module, "machine_roofs", fake)
    return calls


def test_profile_depth_times_every_row(run_cli, fake_roofs, tmp_path) -> None:
    code, out, err = run_cli("profile", "lenet5", "--depth", "1", "--json", *FAST)
    assert code == 0, err
    data = json.loads(out)
    env = data["environment"]
    assert env["peak_gflops"] == {"fp32": FAKE_PEAK}
    assert env["bandwidth_gbps"] == {"32768": 40.0, "268435456": 8.0}
    assert env["call_overhead_us"] == 3.0
    assert fake_roofs == [("fp32",)]
    (row,) = data["results"]
    assert row["layer_timing"]["rounds"] >= 5
    by_name = {layer["name"]: layer for layer in row["layers"]}
    assert {"stem", "stage1", "head", OTHER} <= set(by_name)
    # independent truth for the traffic bound: the input, the output of the static count and
    # the parameters of each top-level module, fp32, batch 1
    model = api.resolve_model("lenet5").module
    shapes = {"stem": (1, 32, 32), "stage1": tuple(by_name["stem"]["output_shape"])}
    shapes["head"] = tuple(by_name["stage1"]["output_shape"])
    for name in ("stem", "stage1", "head"):
        layer = by_name[name]
        assert 0 < layer["time_ms_ci_low"] <= layer["time_ms"] <= layer["time_ms_ci_high"]
        state = [*getattr(model, name).parameters(), *getattr(model, name).buffers()]
        expected = 4 * (
            math.prod(shapes[name])
            + math.prod(layer["output_shape"])
            + sum(t.numel() for t in state)
        )
        assert layer["bytes"] == expected, name
        assert layer["intensity"] == pytest.approx(layer["flops"] / expected)
        assert layer["gflops_achieved"] == pytest.approx(
            layer["flops"] / (layer["time_ms"] / 1e3) / 1e9
        )
        assert layer["gbps_achieved"] == pytest.approx(expected / (layer["time_ms"] / 1e3) / 1e9)
        assert layer["bound"] in BOUNDS
        assert layer["roof_fraction"] > 0
    # the saved run loads back (every recorded number non-negative, the (other) row included)
    path = tmp_path / "run.json"
    path.write_text(out)
    assert load_run(path).results[0].layer_timing is not None


@pytest.mark.slow
def test_reports_show_where_the_time_goes_and_the_roofline(fake_roofs) -> None:
    run = api.profile("lenet5", depth=1, budget=0.2, threads=1, cpu_memory=False)
    markdown = render(run, "md")
    html = render(run, "html")
    for text in (markdown, html):
        assert "Where the time goes" in text
        assert "lenet5: where the time goes" in text
        assert "Reconciliation: depth-1 rows vs the whole model" in text
        assert roofs_line(run.environment).split(";")[0] in text  # the header line
    assert '<section id="time">' in html
    assert "<title>Roofline</title>" in html or ">Roofline<" in html
    # the chart draws the run's measured roofs: the fake peak and both bandwidth lines
    assert f"fp32 peak {FAKE_PEAK:g}" in html
    assert html.count('class="roof bandwidth"') == 2


@pytest.mark.slow
def test_compare_depth_attributes_the_difference(run_cli, fake_roofs) -> None:
    code, out, err = run_cli("compare", "lenet5", "lenet5", "--depth", "1", "--json", *FAST)
    assert code == 0, err
    run = load_run_text(out)
    assert all(r.layer_timing is not None for r in run.results)
    markdown = render(run, "md")
    assert "Which rows explain lenet5 / lenet5" in markdown


def load_run_text(text: str):  # noqa: ANN201 - a Run
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.json"
        path.write_text(text)
        return load_run(path)


def test_default_profile_measures_no_roofs(run_cli, monkeypatch) -> None:
    def refuse(*_a: object, **_kw: object) -> None:
        raise AssertionError("roofs measured without --depth")

    monkeypatch.setattr(roofs_module, "machine_roofs", refuse)
    code, out, err = run_cli("profile", "lenet5", "--json", *FAST)
    assert code == 0, err
    data = json.loads(out)
    assert "peak_gflops" not in data["environment"]
    assert data["results"][0]["layer_timing"] is None


def test_static_only_depth_times_nothing(run_cli, monkeypatch) -> None:
    monkeypatch.setattr(roofs_module, "machine_roofs", lambda *a, **k: pytest.fail("measured"))
    code, out, err = run_cli("profile", "lenet5", "--depth", "1", "--static-only", "--json")
    assert code == 0, err
    (row,) = json.loads(out)["results"]
    assert row["layers"] and all(layer["time_ms"] is None for layer in row["layers"])


# --------------------------------------------------------------------------- hand-made rows


def _timed(model: str, times: dict[str, float], end_to_end: float) -> Result:
    layers = [
        LayerCost(name, "Conv2d", 1, [], params=0, macs=0, flops=0, time_ms=t)
        for name, t in times.items()
    ]
    total = sum(times.values())
    rec = LayerReconciliation(total, total, total, end_to_end, end_to_end, end_to_end, 5)
    return Result(model=model, layers=layers, layer_timing=rec)


def test_attribution_shares_of_the_difference() -> None:
    a = _timed("a", {"conv": 1.0, "pool": 2.0, OTHER: 1.0}, 4.0)
    b = _timed("b", {"conv": 4.0, "pool": 2.0, "se": 1.0, OTHER: 1.0}, 8.0)
    table = attribution_table(a, b)
    assert table is not None
    rows = {row[0]: row for row in table.rows}
    # difference 4 ms: conv +3 (75%), se only in b +1 (25%), pool and (other) 0
    assert rows["conv"][3:] == ["+3.00 ms", "75.0%"]
    assert rows["(only in b: 1 row)"][2:] == ["1.00 ms", "+1.00 ms", "25.0%"]
    assert rows["pool"][4] == "0.0%"
    assert [row[0] for row in table.rows][0] == "conv"  # largest difference first
    assert "2.00×" in table.caption
    assert attribution_table(a, Result(model="c")) is None


def test_negative_other_is_left_without_a_time() -> None:
    cost = [LayerCost("conv", "Conv2d", 1, [], params=0, macs=10, flops=20)]
    timings = [
        LayerTiming("conv", "Conv2d", 1, calls=1, ops=1, input_bytes=8, output_bytes=8,
                    median_ms=1.0, ci_low_ms=0.9, ci_high_ms=1.1),
        LayerTiming(OTHER, "", 1, median_ms=-0.05, ci_low_ms=-0.1, ci_high_ms=0.02),
    ]  # fmt: skip
    rows = annotate_layers(cost, timings, FAKE)
    other = rows[-1]
    assert other.name == OTHER and other.time_ms is None and other.time_ms_ci_low is None
    positive = [*timings[:1], LayerTiming(OTHER, "", 1, median_ms=0.01, ci_low_ms=-0.02,
                                          ci_high_ms=0.03)]  # fmt: skip
    other = annotate_layers(cost, positive, FAKE)[-1]
    assert (other.time_ms, other.time_ms_ci_low, other.time_ms_ci_high) == (0.01, 0.0, 0.03)


def test_roofs_line_is_empty_without_roofs() -> None:
    assert roofs_line({"host": "x"}) == ""
    assert roofs_line(FAKE.environment()) == (
        "measured roofs: peak GFLOP/s fp32 50.0; bandwidth GB/s by working set: "
        "32.0 KiB 40.0 · 256 MiB 8.00; call 3.00 µs, module call 1.00 µs"
    )
