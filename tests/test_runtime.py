"""Runtime profiler: harness statistics and stopping rule, configurations, failure handling,
memory and peak. Tiny models only; no timing thresholds (speed targets live in benchmarks/)."""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterator

import pytest
import torch
from torch import Tensor, nn

from cnnbench.errors import UsageError
from cnnbench.models import ModelInfo, StagedNet, create_model
from cnnbench.results import Result, StageCost
from cnnbench.runtime import (
    RuntimeConfig,
    measure_model,
    prepare,
    resolve_device,
    stage_times,
    time_vs_macs,
    with_stage_times,
)
from cnnbench.runtime.memory import child_peak_rss, cpu_peak_memory
from cnnbench.runtime.peak import Peak, machine_peak
from cnnbench.runtime.timing import _median_ci_ranks, measure, median_ci, summarize

FAST = {"device": "cpu", "budget_s": 0.2, "threads": 1}  # 1 thread: robust on a busy machine
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def tiny_net(num_classes: int = 10) -> StagedNet:
    """Conv-BN-ReLU stem, one stride-2 stage, pool + linear head; 3x16x16 input, no padding in
    the stage so that inputs under 3x3 do not fit."""
    stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
    stage1 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 1))
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(16, num_classes))
    net = StagedNet(stem, [stage1], head, channels=[8, 16, num_classes])
    net.model_info = ModelInfo(name="tiny", family="tiny", paper="", input_size=(3, 16, 16))
    return net


class OomAbove(nn.Module):
    """Raises the CUDA out-of-memory error for batches larger than ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.conv = nn.Conv2d(3, 4, 3)
        self.model_info = ModelInfo(name="fake", family="fake", paper="", input_size=(3, 8, 8))

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {x.shape[0]} GiB (fake)"
            )
        return self.conv(x)


class NanNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.model_info = ModelInfo(name="fake", family="fake", paper="", input_size=(3, 8, 8))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x) * float("nan")


def _allocate_200mb() -> float:
    """Child-process work: a 200 MB tensor, touched (ones) so its pages are resident."""
    t = torch.ones(50_000_000, dtype=torch.float32)
    return float(t[-1])


def _fake_clock(deltas_ns: Iterator[int]) -> Callable[[], int]:
    now = [0]

    def clock() -> int:
        now[0] += next(deltas_ns)
        return now[0]

    return clock


# --- harness -------------------------------------------------------------------------------


def test_stats_are_consistent() -> None:
    x = torch.randn(64, 64)
    stats = measure(lambda: x @ x, budget_s=0.2)
    assert stats.timed_iters == len(stats.samples_ms) >= 10
    assert stats.warmup_iters >= 2
    assert stats.min_ms <= stats.median_ms <= stats.p90_ms <= stats.p99_ms <= stats.max_ms
    assert stats.ci_low_ms <= stats.median_ms <= stats.ci_high_ms
    assert stats.iqr_ms >= 0 and stats.std_ms >= 0
    assert stats.stop_reason in ("ci", "budget", "max_iters")
    assert math.isclose(stats.mean_ms, sum(stats.samples_ms) / stats.timed_iters)


def test_stopping_rule_stops_on_constant_time_function() -> None:
    clock = _fake_clock(iter(lambda: 500_000, None))  # every call reads 0.5 ms later
    stats = measure(lambda: None, clock=clock, budget_s=100, min_iters=10, target_ci=0.02)
    assert stats.stop_reason == "ci" and stats.converged
    assert stats.timed_iters == 10
    assert stats.median_ms == pytest.approx(0.5)
    assert stats.ci_rel_halfwidth <= 0.02
    assert stats.warmup_settled


def test_stopping_rule_respects_budget_and_max_iters() -> None:
    rng = random.Random(0)
    noisy = _fake_clock(iter(lambda: rng.randint(1, 100) * 1_000_000, None))
    stats = measure(lambda: None, clock=noisy, budget_s=2.0, target_ci=0.001)
    assert stats.stop_reason == "budget"
    assert stats.timed_iters >= 10
    assert stats.elapsed_s <= 2.0 + 0.2  # at most one call past the budget
    rng2 = random.Random(1)
    noisy2 = _fake_clock(iter(lambda: rng2.randint(1, 100) * 1_000_000, None))
    capped = measure(lambda: None, clock=noisy2, budget_s=1e6, max_iters=40, target_ci=0.001)
    assert capped.stop_reason == "max_iters" and capped.timed_iters == 40


def test_median_ci_matches_exact_binomial() -> None:
    def exact(n: int) -> int:
        best = 0
        for j in range(n // 2 + 1):
            if sum(math.comb(n, i) for i in range(j + 1)) / 2**n <= 0.025:
                best = j
        return best

    for n in (6, 7, 10, 25, 100, 401):
        assert _median_ci_ranks(n, 0.95)[0] == exact(n)
        assert _median_ci_ranks(n, 0.95)[2] >= 0.95
    lo, hi, cov = _median_ci_ranks(5, 0.95)  # too few samples: min..max, coverage reported
    assert (lo, hi) == (0, 4) and cov < 0.95
    assert median_ci(list(range(100))) == (39, 60)
    big = _median_ci_ranks(5000, 0.95)
    assert big[0] < 2500 < big[1]


def test_summarize_percentiles() -> None:
    s = summarize([float(v) for v in range(1, 101)])
    assert s.median_ms == 50.5 and s.min_ms == 1 and s.max_ms == 100
    assert s.p90_ms == pytest.approx(90.1) and s.iqr_ms == pytest.approx(49.5)


# --- configuration and validation ----------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"device": "tpu"}, ["tpu", "cpu, cuda, cuda:N or auto"]),
        ({"device": "cuda:x"}, ["cuda:x"]),
        ({"precision": "fp8"}, ["fp8", "fp32, fp16, bf16"]),
        ({"memory_format": "nhwc"}, ["nhwc", "channels_last"]),
        ({"mode": "eval"}, ["eval", "inference, train"]),
        ({"batch_size": 0}, ["batch size", "positive", "0"]),
        ({"batch_size": -4}, ["batch size", "-4"]),
        ({"resolution": 0}, ["resolution", "positive"]),
        ({"threads": 0}, ["threads"]),
        ({"target_ci": 2.0}, ["target CI"]),
        ({"budget_s": 0}, ["budget"]),
    ],
)
def test_bad_config_is_one_clear_line(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(UsageError) as info:
        RuntimeConfig(**kwargs)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_cuda_is_usage_error() -> None:
    for device in ("cuda", "cuda:1"):
        with pytest.raises(UsageError, match="CUDA is not available.*use --device cpu"):
            measure_model(tiny_net(), RuntimeConfig(device=device), name="tiny")
    assert resolve_device("auto") == torch.device("cpu")


def test_resolution_too_small_names_model_shape_and_fix() -> None:
    with pytest.raises(UsageError) as info:
        measure_model(tiny_net(), RuntimeConfig(resolution=2, **FAST), name="tiny")
    message = str(info.value)
    assert "\n" not in message
    assert "tiny" in message and "3x2x2" in message and "smallest that works is 3x3x3" in message

    # one text for every door (cnnbench.static.input_error): the same as the static count's
    with pytest.raises(UsageError, match=r"lenet5: forward failed on input 1x8x8 .*1x32x32"):
        prepare(create_model("lenet5"), RuntimeConfig(resolution=8, **FAST), name="lenet5")
    with pytest.raises(UsageError, match=r"lenet5: forward failed on input 1x64x64 .*1x32x32"):
        prepare(create_model("lenet5"), RuntimeConfig(resolution=64, **FAST), name="lenet5")


def test_bf16_unsupported_is_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "is_autocast_enabled", lambda *a: False)
    with pytest.raises(UsageError, match="bf16 is not supported on cpu; use fp32"):
        prepare(tiny_net(), RuntimeConfig(precision="bf16", **FAST))


def test_model_without_input_size_needs_one() -> None:
    with pytest.raises(UsageError, match="input_size"):
        prepare(nn.Conv2d(3, 3, 1), RuntimeConfig(**FAST), name="bare")
    p = prepare(nn.Conv2d(3, 3, 1), RuntimeConfig(**FAST), name="bare", input_size=(3, 4, 4))
    assert tuple(p.inputs.shape) == (1, 3, 4, 4)


def test_grid_expands_axes() -> None:
    configs = RuntimeConfig.grid(device="cpu", batch_size=[1, 8], precision=["fp32", "bf16"])
    assert [(c.batch_size, c.precision) for c in configs] == [
        (1, "fp32"),
        (1, "bf16"),
        (8, "fp32"),
        (8, "bf16"),
    ]


# --- measuring models ----------------------------------------------------------------------


def test_measure_model_fills_runtime_fields() -> None:
    config = RuntimeConfig(batch_size=2, resolution=12, **FAST)
    r = measure_model(tiny_net(), config, name="tiny", cpu_memory=False)
    assert isinstance(r, Result) and r.status == "ok" and r.error is None
    assert r.model == "tiny" and r.family == "tiny" and r.device == "cpu"
    assert r.input_size == [3, 12, 12] and r.batch_size == r.effective_batch_size == 2
    assert r.timed_iters == len(r.samples_ms) and r.warmup_iters and r.warmup_iters > 0
    assert r.latency_ms_ci_low <= r.latency_ms_median <= r.latency_ms_ci_high
    assert r.latency_ms_min <= r.latency_ms_median <= r.latency_ms_p90 <= r.latency_ms_p99
    assert r.throughput_ips == pytest.approx(2 * 1000 / r.latency_ms_median)
    assert r.autocast_dtype is None and r.precision == "fp32"
    assert r.achieved_gflops is None and r.pct_of_peak is None  # no FLOPs given
    assert r.peak_memory_bytes is None  # cpu_memory=False: no child run


@pytest.mark.slow
def test_cpu_memory_is_measured_on_the_users_model_not_a_zoo_namesake() -> None:
    """A module displayed as ``resnet18`` is measured as itself (sent pickled to the memory
    child), never as the zoo's resnet18 looked up by name: the zoo model's fp32 weights alone
    are 11,689,512 x 4 bytes = 46.8 MB, the tiny net's a few KB."""
    config = RuntimeConfig(batch_size=1, resolution=32, **FAST)
    mine = measure_model(tiny_net(), config, name="resnet18")
    zoo = measure_model(create_model("resnet18"), config, name="resnet18")
    assert mine.peak_memory_bytes is not None and zoo.peak_memory_bytes is not None, mine.notes
    # the same child overhead in both; the zoo model's 46.8 MB of weights make the difference
    assert zoo.peak_memory_bytes - mine.peak_memory_bytes > 0.8 * 11_689_512 * 4


def test_contiguous_after_channels_last_is_contiguous_again() -> None:
    """One module serves every configuration: its weights follow each one's memory format."""
    net = tiny_net()
    prepare(net, RuntimeConfig(memory_format="channels_last", **FAST))
    assert not net.stem[0].weight.is_contiguous()
    prepare(net, RuntimeConfig(memory_format="contiguous", **FAST))
    assert all(m.weight.is_contiguous() for m in net.modules() if isinstance(m, nn.Conv2d))


def test_channels_last_applies_to_model_and_input() -> None:
    net = tiny_net()
    p = prepare(net, RuntimeConfig(memory_format="channels_last", batch_size=2, **FAST))
    assert p.inputs.is_contiguous(memory_format=torch.channels_last)
    assert not p.inputs.is_contiguous()
    assert net.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    r = measure_model(
        net, RuntimeConfig(memory_format="channels_last", **FAST), name="t", cpu_memory=False
    )
    assert r.memory_format == "channels_last" and r.status == "ok"


def test_bf16_records_autocast_dtype() -> None:
    r = measure_model(
        tiny_net(), RuntimeConfig(precision="bf16", **FAST), name="tiny", cpu_memory=False
    )
    assert r.status == "ok" and r.precision == "bf16" and r.autocast_dtype == "bfloat16"


def test_threads_are_set_recorded_and_restored() -> None:
    before = torch.get_num_threads()
    assert FAST["threads"] == 1
    r = measure_model(tiny_net(), RuntimeConfig(**FAST), name="tiny", cpu_memory=False)
    assert r.threads == 1
    assert torch.get_num_threads() == before


def test_train_mode_changes_weights() -> None:
    net = tiny_net()
    w0 = net.stage1[0].weight.detach().clone()
    r = measure_model(
        net, RuntimeConfig(mode="train", batch_size=2, **FAST), name="tiny", cpu_memory=False
    )
    assert r.status == "ok" and r.mode == "train"
    assert not torch.equal(w0, net.stage1[0].weight.detach())
    assert net.training


def test_oom_is_recorded_and_the_caller_goes_on() -> None:
    r = measure_model(
        OomAbove(limit=2), RuntimeConfig(batch_size=8, **FAST), name="big", cpu_memory=False
    )
    assert r.status == "oom"
    assert "out of memory" in r.error and "batch 8" in r.error
    assert r.latency_ms_median is None and r.samples_ms == [] and r.effective_batch_size is None
    ok = measure_model(
        OomAbove(limit=2), RuntimeConfig(batch_size=2, **FAST), name="big", cpu_memory=False
    )
    assert ok.status == "ok"


@pytest.mark.slow
def test_oom_backoff_halves_and_says_so() -> None:
    cfg = RuntimeConfig(batch_size=8, oom_backoff=True, **FAST)
    r = measure_model(OomAbove(limit=2), cfg, name="big", cpu_memory=False)
    assert r.status == "ok"
    assert r.batch_size == 8 and r.effective_batch_size == 2
    assert "8, 4" in r.notes and "batch 2" in r.notes  # it ran: a note, not an error
    assert r.throughput_ips == pytest.approx(2 * 1000 / r.latency_ms_median)
    none_fit = measure_model(OomAbove(limit=0), cfg, name="big", cpu_memory=False)
    assert none_fit.status == "oom" and "8, 4, 2" in none_fit.error


def test_nonfinite_output_is_flagged_and_timed() -> None:
    r = measure_model(NanNet(), RuntimeConfig(**FAST), name="nan", cpu_memory=False)
    assert r.status == "nonfinite" and "NaN" in r.error
    assert r.latency_ms_median is not None and r.timed_iters


def test_flops_and_peak_give_efficiency() -> None:
    peak = Peak("cpu", "fp32", 100.0, 1024, 10.0, 1 << 26, 1, False)
    r = measure_model(
        tiny_net(),
        RuntimeConfig(**FAST),
        name="t",
        flops_per_image=10**6,
        peak=peak,
        cpu_memory=False,
    )
    assert r.achieved_gflops == pytest.approx(1e6 / (r.latency_ms_median / 1000) / 1e9)
    assert r.peak_gflops == 100.0
    assert r.pct_of_peak == pytest.approx(r.achieved_gflops)


@pytest.mark.slow
def test_stage_times_follow_stage_names() -> None:
    net = tiny_net()
    p = prepare(net, RuntimeConfig(**FAST))
    times = stage_times(p, budget_s=0.05)
    assert list(times) == net.stage_names() and all(t > 0 for t in times.values())
    costs = [
        StageCost(n, 1, 8, 0, macs, 2 * macs, [1], 4)
        for n, macs in zip(net.stage_names(), (100, 300, 0), strict=True)
    ]
    timed = with_stage_times(costs, times)
    assert [s.time_ms for s in timed] == list(times.values())
    rows = time_vs_macs(timed)
    assert sum(r["time_pct"] for r in rows) == pytest.approx(100)
    assert sum(r["mac_pct"] for r in rows) == pytest.approx(100)
    r = measure_model(
        tiny_net(), RuntimeConfig(**FAST), name="t", stages=costs, stage_budget_s=0.05
    )
    assert [s.name for s in r.stages] == net.stage_names()
    assert all(s.time_ms and s.time_ms > 0 for s in r.stages)


def test_a_stage_that_fails_while_timed_is_a_note_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The whole model was measured; a stage failing alone (its code, or the call limit)
    leaves the row measured, without stage times, and says why."""
    from cnnbench.runtime import engine

    def boom(*_args: object, **_kwargs: object) -> dict[str, list[float]]:
        raise RuntimeError("stage boom")

    monkeypatch.setattr(engine, "stage_samples", boom)
    net = tiny_net()
    costs = [StageCost(n, 1, 8, 0, 1, 2, [1], 4) for n in net.stage_names()]
    r = measure_model(net, RuntimeConfig(**FAST), name="t", stages=costs, stage_budget_s=0.05)
    assert r.status == "ok" and r.latency_ms_median is not None
    assert "per-stage time not measured: RuntimeError: stage boom" in (r.notes or "")
    assert all(s.time_ms is None for s in r.stages or [])


def test_stage_times_needs_a_staged_net() -> None:
    p = prepare(nn.Conv2d(3, 3, 1), RuntimeConfig(**FAST), name="bare", input_size=(3, 4, 4))
    with pytest.raises(UsageError, match="bare: the model has no named stages"):
        stage_times(p)


@pytest.mark.slow
def test_compile_is_measured_and_recorded() -> None:
    r = measure_model(
        tiny_net(), RuntimeConfig(compile=True, **FAST), name="tiny", cpu_memory=False
    )
    assert r.status == "ok" and r.compiled and r.latency_ms_median


# --- memory and peak -----------------------------------------------------------------------


@pytest.mark.slow
def test_child_peak_rss_sees_tensor_memory() -> None:
    peak = child_peak_rss(_allocate_200mb)
    assert peak.error is None
    assert peak.above_start_bytes is not None and peak.above_start_bytes >= 200_000_000


@pytest.mark.slow
def test_cpu_peak_memory_of_a_model_and_its_failures() -> None:
    builder = functools.partial(tiny_net, num_classes=10)
    peak = cpu_peak_memory(builder, RuntimeConfig(batch_size=2, device="cpu"), iters=2)
    assert peak.error is None and peak.above_start_bytes is not None
    assert peak.peak_rss_bytes >= peak.baseline_rss_bytes >= peak.start_rss_bytes
    bad = cpu_peak_memory(lambda: tiny_net(), RuntimeConfig(device="cpu"))  # not picklable
    assert bad.error and bad.above_start_bytes is None


def test_machine_peak_is_cached_and_positive() -> None:
    p = machine_peak("cpu", "fp32")
    assert p.matmul_gflops > 0 and p.copy_gbps > 0 and p.matmul_n >= 256
    assert machine_peak("cpu", torch.float32) is p


# --- CUDA (skipped without it) -------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_cuda_measure_with_events() -> None:
    x = torch.randn(256, 256, device="cuda")
    stats = measure(lambda: x @ x, device="cuda", budget_s=0.3)
    assert stats.timed_iters == len(stats.samples_ms) and stats.median_ms > 0
    assert stats.ci_low_ms <= stats.median_ms <= stats.ci_high_ms


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("fmt", ["contiguous", "channels_last"])
def test_cuda_measure_model(precision: str, fmt: str) -> None:
    try:
        bf16_ok = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:
        bf16_ok = torch.cuda.is_bf16_supported()
    if precision == "bf16" and not bf16_ok:
        with pytest.raises(UsageError, match="bf16 is not supported"):
            prepare(tiny_net(), RuntimeConfig(device="cuda", precision=precision))
        return
    cfg = RuntimeConfig(device="cuda", precision=precision, memory_format=fmt, budget_s=0.3)
    r = measure_model(tiny_net(), cfg, name="tiny", flops_per_image=10**6)
    assert r.status == "ok" and r.device.startswith("cuda:")
    assert r.peak_memory_bytes and r.peak_reserved_bytes >= r.peak_memory_bytes
    expected = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}[precision]
    assert r.autocast_dtype == expected
    assert r.pct_of_peak is not None and r.pct_of_peak > 0


@pytest.mark.gpu
@needs_cuda
def test_cuda_real_oom_is_recorded() -> None:
    cfg = RuntimeConfig(device="cuda", batch_size=1 << 16, resolution=512, budget_s=0.3)  # ~200 GB
    r = measure_model(tiny_net(), cfg, name="tiny")
    assert r.status == "oom" and "out of memory" in r.error
    after = measure_model(tiny_net(), RuntimeConfig(device="cuda", budget_s=0.3), name="tiny")
    assert after.status == "ok"


@pytest.mark.gpu
@needs_cuda
def test_cuda_train_and_peak() -> None:
    net = tiny_net()
    w0 = net.stage1[0].weight.detach().clone()
    cfg = RuntimeConfig(device="cuda", mode="train", precision="fp16", batch_size=4, budget_s=0.3)
    r = measure_model(net, cfg, name="tiny")
    assert r.status == "ok" and not torch.equal(w0.cuda(), net.stage1[0].weight.detach())
    p = machine_peak("cuda", "fp16")
    assert p.matmul_gflops > 0 and p.copy_gbps > 0
