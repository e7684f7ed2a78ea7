"""When the engine's rounds stop: every median known to the target, and in a comparison every
paired ratio too (the ratio is what a comparison reports)."""

from __future__ import annotations

import time

import pytest

from cnnbench.runtime import Entry, RuntimeConfig, measure_config
from cnnbench.runtime.engine import Measurement, _converged, paired_ratio


def _entry(name: str, blocks: list[list[float]]) -> Entry:
    entry = Entry.of_callable(name, lambda: lambda: None)
    entry.measurement = Measurement(blocks=blocks)
    return entry


def _swinging(sign: int, step: float) -> list[list[float]]:
    """20 rounds of 30 identical calls each, at 100 ms + sign * step * (-2..2) by round."""
    return [[100.0 + sign * step * (r % 5 - 2)] * 30 for r in range(20)]


def test_ratios_that_swing_keep_the_rounds_going_though_every_median_is_known() -> None:
    # A and B swing in opposite directions round by round: each pooled median sits in the
    # middle clump of 120 calls at exactly 100 ms (CI of zero width), while the paired ratios
    # run from 0.94 to 1.06, so their 95% CI over 20 rounds is about +-3%
    a, b = _entry("A", _swinging(+1, 1.5)), _entry("B", _swinging(-1, 1.5))
    _, low, high = paired_ratio(b.measurement.block_medians, a.measurement.block_medians)
    assert low < 0.98 and high > 1.02  # independent check of the premise
    assert _converged([a, b], None, 0.02)  # medians alone: converged
    assert not _converged([a, b], a, 0.02)  # the ratio is not known to 2% yet
    assert _converged([a, b], a, 0.05)  # but it is to 5%


def test_ratios_that_hold_round_by_round_stop_the_rounds() -> None:
    a = _entry("A", _swinging(+1, 1.5))
    b = _entry("B", [[1.5 * v for v in block] for block in _swinging(+1, 1.5)])
    assert _converged([a, b], a, 0.02)
    # a baseline that was dropped (its code failed) no longer holds the others back
    assert _converged([b], a, 0.02)


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_comparison_stopped_for_its_ci_has_its_ratio_within_the_target() -> None:
    entries = [
        Entry.of_callable("A", lambda: lambda: _spin(0.001)),
        Entry.of_callable("B", lambda: lambda: _spin(0.0015)),
    ]
    config = RuntimeConfig(device="cpu", threads=1, budget_s=1.5, target_ci=0.05)
    a, b = measure_config(entries, config, cpu_memory=False)
    assert b.latency_ratio is not None and b.latency_ratio_ci_low is not None
    assert b.latency_ratio_ci_high is not None
    if a.stop_reason != "ci":
        pytest.skip("the budget ran out before the target (a busy machine): nothing promised")
    half = max(b.latency_ratio - b.latency_ratio_ci_low, b.latency_ratio_ci_high - b.latency_ratio)
    assert half <= 0.05 * b.latency_ratio
