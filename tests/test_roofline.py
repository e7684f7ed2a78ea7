"""Roofs (structure, plausibility, the cache as data) and the roofline arithmetic (by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnnbench.runtime import roofs as roofs_mod
from cnnbench.runtime.roofline import bandwidth_for, classify, intensity, traffic_bytes
from cnnbench.runtime.roofs import (
    SCHEMA,
    Roofs,
    bandwidth_table,
    machine_roofs,
    measure_bandwidth,
    measure_call_overhead,
    measure_module_overhead,
)

# --------------------------------------------------------------------------- roofline math

BW = {32 << 10: 100.0, 1 << 20: 50.0, 256 << 20: 10.0}  # GB/s per working-set size


def test_traffic_and_intensity_by_hand() -> None:
    # conv 3x3, 64->64 channels, 56x56, fp32, batch 1: in = out = 64*56*56*4 bytes,
    # weights 64*64*9*4 bytes; MACs 64*64*9*56*56 -> FLOPs twice that.
    act = 64 * 56 * 56 * 4
    w = 64 * 64 * 9 * 4
    nbytes = traffic_bytes(act, act, w)
    assert nbytes == 802_816 + 802_816 + 147_456 == 1_753_088
    flops = 2 * 64 * 64 * 9 * 56 * 56
    assert flops == 231_211_008
    assert intensity(flops, nbytes) == pytest.approx(131.889, rel=1e-4)
    assert intensity(10, 0) is None
    with pytest.raises(ValueError):
        traffic_bytes(-1, 0, 0)


def test_bandwidth_for_picks_the_smallest_size_that_holds_the_working_set() -> None:
    assert bandwidth_for(1, BW) == (32 << 10, 100.0)
    assert bandwidth_for(32 << 10, BW) == (32 << 10, 100.0)  # exactly fits
    assert bandwidth_for((32 << 10) + 1, BW) == (1 << 20, 50.0)
    assert bandwidth_for(1 << 30, BW) == (256 << 20, 10.0)  # beyond every size: DRAM
    with pytest.raises(ValueError):
        bandwidth_for(1, {})
    # a dip at 1 MiB (a busy machine) does not put that roof below the larger sizes'
    dip = {32 << 10: 100.0, 1 << 20: 2.0, 256 << 20: 10.0}
    assert bandwidth_for(40_000, dip) == (1 << 20, 10.0)


def test_compute_bound_row() -> None:
    # 2 GFLOP over 10 MB in 25 ms, peak 100 GFLOP/s: compute floor 20 ms, bandwidth floor
    # 10e6 / 10e9 = 1 ms (DRAM roof, 10 MB > 1 MiB), overhead 0.005 ms -> compute, 0.8.
    b = classify(25.0, 2e9, 10_000_000, peak_gflops=100.0, bandwidth_gbps=BW, call_overhead_us=5.0)
    assert b.bound == "compute"
    assert b.compute_floor_ms == pytest.approx(20.0)
    assert b.bandwidth_floor_ms == pytest.approx(1.0)
    assert b.overhead_floor_ms == pytest.approx(0.005)
    assert b.roof_fraction == pytest.approx(0.8)
    assert b.gflops == pytest.approx(80.0)
    assert b.gbps == pytest.approx(0.4)
    assert b.intensity == pytest.approx(200.0)
    assert (b.roof_size_bytes, b.roof_gbps) == (256 << 20, 10.0)


def test_bandwidth_bound_row() -> None:
    # an add of two 100 MB tensors into a third: 25e6 FLOPs, 300 MB, 40 ms. Floors: compute
    # 0.25 ms, bandwidth 300e6 / 10e9 = 30 ms -> bandwidth, 30 / 40 = 0.75; 7.5 GB/s.
    b = classify(
        40.0, 25e6, 300_000_000, peak_gflops=100.0, bandwidth_gbps=BW, call_overhead_us=5.0
    )
    assert b.bound == "bandwidth"
    assert b.roof_fraction == pytest.approx(0.75)
    assert b.gbps == pytest.approx(7.5)


def test_overhead_bound_row_and_cache_roof() -> None:
    # 3 ops at 5 us = 15 us floor; measured 40 us <= 3 x 15 us -> overhead, 15/40.
    b = classify(
        0.040, 1000.0, 4096, peak_gflops=100.0, bandwidth_gbps=BW, call_overhead_us=5.0, ops=3
    )
    assert b.bound == "overhead"
    assert b.roof_fraction == pytest.approx(0.375)
    assert b.roof_gbps == 100.0  # 4 KiB fits the 32 KiB roof
    # the same row at 1 ms is far beyond 3 overhead floors, but its compute (10 ns) and
    # bandwidth (41 ns) floors are lower still: overhead remains the highest floor
    b = classify(
        1.0, 1000.0, 4096, peak_gflops=100.0, bandwidth_gbps=BW, call_overhead_us=5.0, ops=3
    )
    assert b.bound == "overhead" and b.roof_fraction == pytest.approx(0.015)
    # 1 MB at 100 us: bandwidth floor 1e6 / 50e9 s = 20 us beats the 15 us overhead floor
    b = classify(
        0.100, 1000.0, 1_000_000, peak_gflops=100.0, bandwidth_gbps=BW, call_overhead_us=5.0,
        ops=3,
    )  # fmt: skip
    assert b.bound == "bandwidth" and b.roof_fraction == pytest.approx(0.2)


def test_module_calls_add_to_the_overhead_floor() -> None:
    # 1 op at 2 us + 2 module calls at 3 us = 8 us; 20 us <= 3 x 8 us -> overhead, 8/20
    b = classify(
        0.020, 1.0, 8, peak_gflops=100.0, bandwidth_gbps=BW, call_overhead_us=2.0,
        ops=1, calls=2, module_call_us=3.0,
    )  # fmt: skip
    assert b.overhead_floor_ms == pytest.approx(0.008)
    assert b.bound == "overhead" and b.roof_fraction == pytest.approx(0.4)


def test_classify_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        classify(0.0, 1.0, 1, peak_gflops=1.0, bandwidth_gbps=BW, call_overhead_us=1.0)
    with pytest.raises(ValueError):
        classify(1.0, 1.0, 1, peak_gflops=0.0, bandwidth_gbps=BW, call_overhead_us=1.0)


# --------------------------------------------------------------------------- roofs


def test_call_overhead_is_plausible() -> None:
    us = measure_call_overhead("cpu")
    assert 0.1 < us < 1000.0  # a torch call costs microseconds, not nano- or milliseconds
    assert 0.05 < measure_module_overhead("cpu") < 1000.0


def test_bandwidth_structure_and_plausibility() -> None:
    sizes = (32 << 10, 1 << 20)
    copy, triad = measure_bandwidth("cpu", sizes)
    assert set(copy) == set(triad) == set(sizes)
    for table in (copy, triad):
        for gbps in table.values():
            assert 0.05 < gbps < 5000.0  # GB/s: between a floppy disk and an HBM stack


def _fake_measurements(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    def bandwidth(device: object, sizes: object = None) -> tuple[dict, dict]:
        calls.append("bandwidth")
        return {1024: 10.0, 2048: 5.0}, {1024: 12.0, 2048: 4.0}

    class _Peak:
        def __init__(self, gflops: float) -> None:
            self.matmul_gflops = gflops

    def peak(device: object, dtype: str, refresh: bool = False) -> _Peak:
        calls.append(f"peak:{dtype}")
        return _Peak({"fp32": 50.0, "bf16": 20.0}[dtype])

    monkeypatch.setattr(roofs_mod, "measure_bandwidth", bandwidth)
    monkeypatch.setattr(roofs_mod, "measure_call_overhead", lambda device: 4.0)
    monkeypatch.setattr(roofs_mod, "measure_module_overhead", lambda device: 1.5)
    monkeypatch.setattr(roofs_mod, "machine_peak", peak)


def test_roofs_are_cached_per_machine_as_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    _fake_measurements(monkeypatch, calls)
    path = tmp_path / "sub" / "roofs.json"
    r = machine_roofs("cpu", ["fp32"], cache=path)
    assert r.bandwidth_gbps == {1024: 12.0, 2048: 5.0}  # the better kernel per size
    assert r.environment() == {
        "peak_gflops": {"fp32": 50.0},
        "bandwidth_gbps": {"1024": 12.0, "2048": 5.0},
        "call_overhead_us": 4.0,
        "module_call_overhead_us": 1.5,
    }
    assert bandwidth_table(r.environment()) == r.bandwidth_gbps
    record = json.loads(path.read_text())[r.key]
    assert record["schema"] == SCHEMA
    assert not list(path.parent.glob(".roofs-*"))  # no temporary file left behind
    # second call: from the cache; a new dtype adds only its peak
    again = machine_roofs("cpu", ["fp32"], cache=path)
    assert again == r
    both = machine_roofs("cpu", ["fp32", "bf16"], cache=path)
    assert both.peak_gflops == {"fp32": 50.0, "bf16": 20.0}
    assert calls == ["peak:fp32", "peak:fp32", "bandwidth", "peak:bf16", "peak:bf16"]


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda rec: rec.update(schema=SCHEMA + 1),
        lambda rec: rec.update(call_overhead_us="__import__('os').system('false')"),
        lambda rec: rec["bandwidth_gbps"].update({"1024": -1.0}),
        lambda rec: rec["bandwidth_gbps"].update({"big": 1.0}),
        lambda rec: rec.update(peak_gflops=[1, 2]),
        lambda rec: rec.pop("module_call_us"),
    ],
)
def test_a_cache_entry_that_does_not_match_the_schema_is_measured_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: object
) -> None:
    calls: list[str] = []
    _fake_measurements(monkeypatch, calls)
    path = tmp_path / "roofs.json"
    r = machine_roofs("cpu", ["fp32"], cache=path)
    data = json.loads(path.read_text())
    corrupt(data[r.key])  # type: ignore[operator]
    path.write_text(json.dumps(data))
    calls.clear()
    machine_roofs("cpu", ["fp32"], cache=path)
    assert "bandwidth" in calls


def test_unreadable_cache_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    _fake_measurements(monkeypatch, calls)
    path = tmp_path / "roofs.json"
    path.write_text("not json {")
    r = machine_roofs("cpu", ["fp32"], cache=path)
    assert isinstance(r, Roofs) and calls == ["peak:fp32", "peak:fp32", "bandwidth"]
    assert json.loads(path.read_text())[r.key]["call_overhead_us"] == 4.0
