"""Per-layer timing on a toy model whose children cost a known time (a busy loop)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import Tensor, nn

from cnnbench.errors import CallTimeout
from cnnbench.results import LayerCost
from cnnbench.runtime import RuntimeConfig
from cnnbench.runtime.engine import time_steps
from cnnbench.runtime.layer_timing import (
    END_TO_END,
    OTHER,
    Reconciliation,
    annotate_layers,
    time_layers,
)


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


class Spin(nn.Module):
    """Returns its input after busy-waiting ``ms`` milliseconds."""

    def __init__(self, ms: float) -> None:
        super().__init__()
        self.ms = ms

    def forward(self, x: Tensor) -> Tensor:
        _spin(self.ms / 1000.0)
        return x + 0


class Toy(nn.Module):
    """a (1 ms) -> b (two children: 0.5 ms + 1 ms) -> a again (shared) -> 0.5 ms in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.a = Spin(1.0)
        self.b = nn.Sequential(Spin(0.5), Spin(1.0))
        self.unused = nn.Linear(2, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.a(x)
        x = self.b(x)
        x = self.a(x)
        _spin(0.0005)  # outside every child: (other)
        return x


@pytest.fixture(scope="module")
def toy_times():
    torch.manual_seed(0)
    return time_layers(Toy(), torch.randn(4, 8), depth=2, budget_s=1.5, target_ci=0.05)


def test_rows_capture_every_call_and_the_known_costs(toy_times) -> None:
    names = [r.name for r in toy_times.rows]
    assert names == ["a", "b", "b.0", "b.1", OTHER]  # `unused` was never called: no row
    a, b, b0, b1, other = toy_times.rows
    assert (a.calls, b.calls, b0.calls, a.depth, b0.depth) == (2, 1, 1, 1, 2)
    # busy loops: a median is at least the spin time (in ms, not s or us); the upper bounds
    # only catch unit errors, because a loaded machine preempts a spinning process past its
    # deadline (5x at a load of 7 on 2 cores)
    for row, ms in ((a, 2.0), (b, 1.5), (b0, 0.5), (b1, 1.0)):
        assert ms <= row.median_ms < ms * 50, (row.name, row.median_ms)
        assert row.ci_low_ms <= row.median_ms <= row.ci_high_ms
    assert 4.0 <= toy_times.end_to_end.median_ms < 4.0 * 50
    assert other.ci_low_ms <= other.median_ms <= other.ci_high_ms


def test_bytes_and_ops_of_a_row(toy_times) -> None:
    a = toy_times.row("a")
    # two calls, each reads a 4x8 fp32 input and writes a 4x8 output; no parameters
    assert (a.input_bytes, a.output_bytes, a.param_bytes) == (2 * 128, 2 * 128, 0)
    assert a.ops == 2  # one add per call
    # a parent counts its children's calls, not the copies the capture makes of their inputs
    assert toy_times.row("b").ops == 2
    assert toy_times.end_to_end.ops == 4
    assert not a.in_place


def test_reconciliation_sums_the_depth_one_rows(toy_times) -> None:
    rec = toy_times.reconciliation
    assert rec.rounds == toy_times.rounds >= 5
    assert 3.5 <= rec.rows_sum_ms < 3.5 * 50  # a twice + b
    # (other) is the median over rounds of end-to-end minus the depth-1 rows of that round
    a, b, whole = toy_times.row("a"), toy_times.row("b"), toy_times.end_to_end
    per_round = sorted(
        e - x - y
        for e, x, y in zip(
            whole.round_medians_ms, a.round_medians_ms, b.round_medians_ms, strict=True
        )
    )
    n = len(per_round)
    middle = (per_round[(n - 1) // 2] + per_round[n // 2]) / 2
    assert rec.other_ms == pytest.approx(middle)
    assert toy_times.row(OTHER).median_ms == rec.other_ms
    assert rec.rows_sum_ci[0] <= rec.rows_sum_ms <= rec.rows_sum_ci[1]
    assert rec.end_to_end_ci[0] <= rec.end_to_end_ms <= rec.end_to_end_ci[1]
    assert toy_times.capture_s >= 0 and toy_times.timing_s > 0


def test_reconciliation_agrees_when_the_intervals_overlap() -> None:
    def rec(rows: tuple[float, float], whole: tuple[float, float]) -> Reconciliation:
        return Reconciliation(1.0, rows, 1.0, whole, 0.0, (0.0, 0.0), rounds=5)

    assert rec((1.0, 2.0), (1.9, 3.0)).agree
    assert rec((1.9, 3.0), (1.0, 2.0)).agree
    assert not rec((1.0, 2.0), (2.1, 3.0)).agree
    assert not rec((2.1, 3.0), (1.0, 2.0)).agree


def test_in_place_module_is_flagged_and_replayable() -> None:
    model = nn.Sequential(nn.Linear(16, 16), nn.SiLU(inplace=True))
    t = time_layers(model, torch.randn(8, 16), depth=1, budget_s=0.5)
    linear, silu = t.row("0"), t.row("1")
    assert silu.in_place and not linear.in_place
    assert linear.param_bytes == (16 * 16 + 16) * 4
    assert silu.input_bytes == silu.output_bytes == 8 * 16 * 4


def test_time_steps_keeps_rounds_per_row() -> None:
    timed, rounds, reason = time_steps(
        [("x", lambda: _spin(2e-4)), ("y", lambda: None)],
        RuntimeConfig(device="cpu"),
        budget_s=0.3,
        target_ci=0.5,
    )
    assert rounds >= 5 and reason in ("ci", "budget", "max_rounds")
    assert len(timed["x"].blocks) == len(timed["y"].blocks) == rounds
    assert all(len(b) >= 1 for b in timed["x"].blocks)
    assert min(timed["x"].wall_samples) >= 0.2  # ms: the 0.2 ms spin
    assert len(timed["x"].cpu_samples) == len(timed["x"].wall_samples)  # both clocks on CPU


def test_a_failing_step_is_raised_and_ends_the_timing() -> None:
    calls = {"ok": 0, "bad": 0}

    def ok() -> None:
        calls["ok"] += 1

    def bad() -> None:
        calls["bad"] += 1
        if calls["bad"] > 20:  # its 21st call fails, wherever it falls
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        time_steps([("ok", ok), ("bad", bad)], RuntimeConfig(), budget_s=5.0, target_ci=1e-9)
    assert calls["bad"] == 21  # not called again after it failed


def test_a_layer_that_hangs_meets_the_call_limit() -> None:
    """Per-layer timing runs under the configuration's call limit, as every engine block."""
    calls = []

    def slow() -> None:
        calls.append(1)
        if len(calls) > 3:  # the warm-up's first calls are quick; then one call hangs
            _spin(5.0)

    started = time.perf_counter()
    with pytest.raises(CallTimeout):
        time_steps(
            [("slow", slow)], RuntimeConfig(call_timeout_s=0.3), budget_s=0.5, target_ci=0.01
        )
    assert time.perf_counter() - started < 4.0


def test_annotate_layers_fills_the_measured_fields(toy_times) -> None:
    costs = [
        LayerCost("a", "Spin", 1, [8], params=0, macs=0, flops=32),
        LayerCost("b", "Sequential", 1, [8], params=0, macs=0, flops=32),
        LayerCost(OTHER, "", 1, [], params=0, macs=0, flops=0),
        LayerCost("missing", "X", 1, [], params=0, macs=0, flops=0),
    ]
    env = {"peak_gflops": {"fp32": 100.0}, "bandwidth_gbps": {"1024": 10.0}, "call_overhead_us": 5}
    out = annotate_layers(costs, toy_times, env, batch_size=4)
    a = out[0]
    t = toy_times.row("a")
    assert a.time_ms == t.median_ms and a.time_ms_ci_low == t.ci_low_ms
    assert a.bytes == 512
    assert a.intensity == pytest.approx(4 * 32 / 512)
    assert a.gflops_achieved == pytest.approx(4 * 32 / (t.median_ms / 1e3) / 1e9)
    assert a.gbps_achieved == pytest.approx(512 / (t.median_ms / 1e3) / 1e9)
    # floors: 2 calls x 5 us = 10 us of overhead, 51 ns of traffic, 1.3 ns of compute
    assert a.bound == "overhead"
    assert a.roof_fraction == pytest.approx(0.010 / t.median_ms)
    assert out[2].time_ms is not None and out[2].bytes is None  # (other): time only
    assert out[3].time_ms is None  # no timing row
    assert costs[0].time_ms is None  # the inputs are not modified
    # without a static (other) row, the measured one is added
    added = annotate_layers(costs[:2], toy_times, env, batch_size=4)
    assert [r.name for r in added] == ["a", "b", OTHER]
    assert added[2].time_ms == toy_times.row(OTHER).median_ms
    with pytest.raises(ValueError, match="bf16"):
        annotate_layers(costs, toy_times, env, dtype="bf16")


def test_end_to_end_row_is_the_whole_model(toy_times) -> None:
    whole = toy_times.end_to_end
    assert whole.name == END_TO_END and whole.calls == 1
    assert whole.param_bytes == (2 * 2 + 2) * 4  # the unused Linear's weights are still read
