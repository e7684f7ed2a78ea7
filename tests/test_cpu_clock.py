"""The engine's two clocks: wall time and CPU time per call, the rule that chooses which one a
latency comes from, and the label every report carries. No assertion on speed."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

import pytest

from cnnbench.report import format as fmt
from cnnbench.results import Result
from cnnbench.runtime import Entry, RuntimeConfig, Schedule, measure_config
from cnnbench.runtime.engine import Measurement, choose_clock


def _spin(seconds: float) -> None:
    """Busy work on the calling thread for ``seconds`` of its CPU time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def _measure(make: Callable[[], Callable[[], object]], rounds: int = 4) -> tuple[Entry, Result]:
    entry = Entry.of_callable("A", make, block_s=0.01)
    schedule = Schedule(order="alternating", rounds=rounds, warmup_s=0.01)
    config = RuntimeConfig(device="cpu", threads=1, budget_s=0.5)
    (row,) = measure_config([entry], config, cpu_memory=False, schedule=schedule)
    return entry, row


def test_a_block_records_wall_and_cpu_time_of_the_same_calls() -> None:
    entry, row = _measure(lambda: lambda: _spin(0.001))
    m = entry.measurement
    assert m.cpu_scope == "thread"
    assert len(m.cpu_blocks) == len(m.blocks) == 4
    assert [len(b) for b in m.cpu_blocks] == [len(b) for b in m.blocks]
    # the same calls: CPU time of a call never exceeds its wall time (the CPU clock is read
    # outside the wall interval, so allow its own read cost of a few microseconds)
    for c, w in zip(m.cpu_samples, m.wall_samples, strict=True):
        assert c >= 0.99  # 1 ms of thread CPU time spun per call
        assert c <= w + 0.05
    assert row.samples_ms == m.wall_samples
    assert row.cpu_samples_ms == m.cpu_samples
    assert row.cpu_scope == "thread"
    assert row.clock in ("wall", "cpu")
    saved = json.loads(json.dumps(row.to_dict()))
    assert Result.from_dict(saved).cpu_samples_ms == row.cpu_samples_ms


def test_a_sleeping_call_shows_cpu_time_far_below_wall_time_and_keeps_the_wall_clock() -> None:
    entry, row = _measure(lambda: lambda: time.sleep(0.005))
    m = entry.measurement
    for c, w in zip(m.cpu_samples, m.wall_samples, strict=True):
        assert w >= 5.0  # slept at least 5 ms
        assert c < 0.2 * w  # off the CPU while asleep: CPU time does not count it
    # the calls wait off the CPU: thread CPU time is not their latency, wall stays
    assert row.clock == "wall"
    assert row.latency_ms_median is not None and row.latency_ms_median >= 5.0
    assert "wall time kept" in (row.notes or "")


def _synthetic(
    wall: list[float], cpu: list[float], runqueue: float | None, scope: str = "thread"
) -> Measurement:
    """One block per value pair, one call each; ``runqueue`` ms waited per block."""
    return Measurement(
        blocks=[[w] for w in wall],
        cpu_blocks=[[c] for c in cpu],
        runqueue_ms=[runqueue] * len(wall),
        cpu_scope=scope,
    )


def test_quiet_machine_keeps_wall_time() -> None:
    quiet = _synthetic([10.0] * 8, [9.9] * 8, 0.05)
    assert choose_clock([quiet]) == ("wall", None)


def test_busy_machine_with_the_work_on_the_thread_uses_cpu_time() -> None:
    # 40% of the wall time waiting on a run queue, CPU time steady: descheduled, not sleeping
    busy = _synthetic([10.0, 20.0, 10.0, 25.0], [10.0] * 4, None)
    busy.runqueue_ms = [0.0, 10.0, 0.0, 15.0]
    other = _synthetic([12.0, 12.0, 30.0, 12.0], [12.0] * 4, None)
    other.runqueue_ms = [0.0, 0.0, 18.0, 0.0]
    clock, why = choose_clock([busy, other])
    assert clock == "cpu"
    assert why is not None and "not running" in why
    busy.clock = other.clock = clock
    assert busy.samples == [10.0] * 4
    assert busy.wall_samples == [10.0, 20.0, 10.0, 25.0]
    assert [o / b for o, b in zip(other.block_medians, busy.block_medians, strict=True)] == [
        1.2
    ] * 4


def test_busy_machine_with_time_off_the_cpu_not_on_a_run_queue_keeps_wall_time() -> None:
    sleeping = _synthetic([10.0] * 4, [2.0] * 4, 0.0)  # 8 ms per call neither running nor runnable
    clock, why = choose_clock([sleeping])
    assert clock == "wall" and why is not None and "off the CPU" in why


def test_without_schedstat_the_share_of_calls_near_full_cpu_decides() -> None:
    bursty = _synthetic([10.0] * 9 + [30.0], [10.0] * 10, None)  # one call descheduled
    assert choose_clock([bursty])[0] == "cpu"
    every_call_halved = _synthetic([20.0] * 10, [10.0] * 10, None)
    assert choose_clock([every_call_halved])[0] == "wall"


def test_more_than_one_thread_or_no_cpu_clock_keeps_wall_time() -> None:
    pool = _synthetic([10.0, 30.0], [20.0, 20.0], 0.0, scope="process")
    assert choose_clock([pool]) == ("wall", None)
    gpu = Measurement(blocks=[[1.0]])
    assert choose_clock([gpu]) == ("wall", None)
    # one entry without thread CPU time: one clock for all, so wall for all
    busy = _synthetic([10.0, 30.0], [10.0, 10.0], 20.0)
    assert choose_clock([busy, pool])[0] == "wall"


def test_a_forced_clock_is_kept_where_available() -> None:
    quiet = _synthetic([10.0] * 4, [10.0] * 4, 0.0)
    assert choose_clock([quiet], forced="cpu") == ("cpu", None)
    busy = _synthetic([10.0, 30.0], [10.0, 10.0], 20.0)
    assert choose_clock([busy], forced="wall") == ("wall", None)
    pool = _synthetic([10.0], [20.0], 0.0, scope="process")
    assert choose_clock([pool], forced="cpu")[0] == "wall"


def test_a_dropped_entry_has_no_cpu_blocks_left_to_report() -> None:
    m = _synthetic([10.0, 30.0], [10.0, 10.0], 20.0)
    m.clock = "cpu"
    m.blocks.clear()  # what the engine does to a failed entry
    assert m.samples == [] and m.cpu_samples == []


def test_the_report_labels_the_clock_and_csv_has_the_column() -> None:
    assert fmt.latency(37.1, 36.9, 37.4, "cpu") == "37.1 ms ±0.30 cpu"
    assert fmt.latency(37.1, 36.9, 37.4, "wall") == "37.1 ms ±0.30 wall"
    assert fmt.latency(37.1, 36.9, 37.4) == "37.1 ms ±0.30"  # old files without the field
    assert "clock" in Result.flat_columns()
    assert "cpu_samples_ms" not in Result.flat_columns()
    row = Result(model="m", clock="cpu", samples_ms=[40.0, 80.0], cpu_samples_ms=[37.0, 38.0])
    assert row.clock_samples() == [37.0, 38.0]
    assert Result(model="m", clock="wall", samples_ms=[40.0]).clock_samples() == [40.0]


@pytest.mark.parametrize("threads", [2])
def test_more_threads_record_process_cpu_time(threads: int) -> None:
    entry = Entry.of_callable("A", lambda: lambda: _spin(0.001), block_s=0.01)
    schedule = Schedule(order="alternating", rounds=2, warmup_s=0.01)
    config = RuntimeConfig(device="cpu", threads=threads, budget_s=0.5)
    (row,) = measure_config([entry], config, cpu_memory=False, schedule=schedule)
    assert entry.measurement.cpu_scope == "process"
    assert row.cpu_scope == "process" and row.clock == "wall"


def test_a_forced_cpu_clock_gives_the_latency_of_the_cpu_samples() -> None:
    entry = Entry.of_callable("A", lambda: lambda: _spin(0.001), block_s=0.01)
    schedule = Schedule(order="alternating", rounds=3, warmup_s=0.01, clock="cpu")
    config = RuntimeConfig(device="cpu", threads=1, budget_s=0.5)
    (row,) = measure_config([entry], config, cpu_memory=False, schedule=schedule)
    assert row.clock == "cpu"
    assert row.cpu_samples_ms is not None
    assert row.latency_ms_median == pytest.approx(statistics.median(row.cpu_samples_ms))
    assert row.samples_ms == entry.measurement.wall_samples  # the wall samples kept beside


def test_the_gate_says_which_clock_its_latency_verdicts_use() -> None:
    from torch import nn

    from cnnbench import gate
    from cnnbench.gate import GateConfig

    cfg = GateConfig(
        configs=(RuntimeConfig(device="cpu", resolution=16, threads=1),),
        budget_s=0.3,
        rounds=4,
        memory=False,
        n_boot=100,
        max_remeasure=0,
        metrics=("latency_ms",),
    )
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    report = gate.ab(("net", net), ("net", net), cfg)
    (verdict,) = report.verdicts
    assert verdict.reason.endswith(("; clock wall", "; clock cpu"))


def test_a_busy_machine_at_several_threads_says_what_holds_and_suggests_one_thread() -> None:
    from cnnbench.runtime import engine

    pool = Result(model="m", device="cpu", threads=2, latency_ms_median=50.0, stable=True)
    one = Result(model="m", device="cpu", threads=1, latency_ms_median=50.0, stable=True)
    engine._noise_into([pool, one], load=1.0, not_running=0.4)
    assert pool.notes is not None
    assert "not the quiet latency" in pool.notes and "--threads 1" in pool.notes
    assert "ratios pair rounds" in pool.notes
    assert one.notes is None  # 1 thread: the CPU clock handles it, nothing to warn about
    quiet = Result(model="m", device="cpu", threads=2, latency_ms_median=50.0, stable=True)
    engine._noise_into([quiet], load=0.5, not_running=0.01)
    assert quiet.notes is None
