"""CUDA paths of cnnbench's runtime (issue 16): event timing, AMP, channels_last, peak memory,
out-of-memory back-off and cudnn.benchmark. All ``gpu``-marked and skipped without CUDA; run
with ``pytest -m gpu tests/`` (benchmarks/gpu_check.sh does)."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from cnnbench.models import ModelInfo, StagedNet, create_model
from cnnbench.runtime import RuntimeConfig, measure_model, prepare
from cnnbench.runtime.timing import measure

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def small_net() -> StagedNet:
    """A few convolutions on 3x32x32 (BN, ReLU, a Linear head): enough kernels to time."""
    stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
    stage1 = nn.Sequential(nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU())
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(64, 10))
    net = StagedNet(stem, [stage1], head, channels=[32, 64, 10])
    net.model_info = ModelInfo(name="test", family="test", paper="", input_size=(3, 32, 32))
    return net


class MemoryHog(nn.Module):
    """1x8x8 input (256 B per image) broadcast to 64x8x8 twice in the forward (32 KiB per image
    of activations): cheap elementwise work whose memory need is easy to make impossible."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(64, 1, 1))
        self.model_info = ModelInfo(name="test", family="test", paper="", input_size=(1, 8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale).relu().mean((2, 3))


class SeesCudnnBenchmark(nn.Module):
    """Records torch.backends.cudnn.benchmark at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.seen: list[bool] = []
        self.model_info = ModelInfo(name="test", family="test", paper="", input_size=(3, 16, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.backends.cudnn.benchmark)
        return self.conv(x)


def _bf16_ok() -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:
        return bool(torch.cuda.is_bf16_supported())


def test_event_time_matches_wall_time_over_a_block() -> None:
    a = torch.randn(2048, 2048, device="cuda")
    for _ in range(3):
        a @ a
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    n = 200
    t0 = time.perf_counter()
    start.record()
    for _ in range(n):
        a @ a
    end.record()
    torch.cuda.synchronize()
    wall_ms = (time.perf_counter() - t0) * 1000
    event_ms = start.elapsed_time(end)
    assert event_ms == pytest.approx(wall_ms, rel=0.05)
    # cnnbench's harness (events around each call, synchronised) agrees with the block's mean.
    stats = measure(lambda: a @ a, device="cuda", budget_s=0.5, target_ci=0.01)
    assert stats.median_ms == pytest.approx(event_ms / n, rel=0.15)


def test_harness_waits_for_the_work() -> None:
    """A sample covers the device work of the call, not just its (asynchronous) launch."""
    a = torch.randn(4096, 4096, device="cuda")

    def ten() -> None:
        for _ in range(10):
            a @ a

    one = measure(lambda: a @ a, device="cuda", budget_s=0.3).median_ms
    many = measure(ten, device="cuda", budget_s=0.5).median_ms
    assert many == pytest.approx(10 * one, rel=0.2)


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)]
)
def test_autocast_dtype_recorded_and_used(precision: str, dtype: torch.dtype) -> None:
    if precision == "bf16" and not _bf16_ok():
        pytest.skip("bf16 not supported on this GPU")
    cfg = RuntimeConfig(device="cuda", precision=precision, batch_size=4, budget_s=0.2)
    p = prepare(small_net(), cfg)
    with p.context():
        out = p.step()
        assert torch.is_autocast_enabled("cuda")
    assert out.device.type == "cuda" and out.dtype == dtype  # Linear ran in the AMP dtype
    r = measure_model(small_net(), cfg, name="small")
    assert r.status == "ok" and r.autocast_dtype == str(dtype).removeprefix("torch.")


def test_channels_last_on_for_model_and_input() -> None:
    cfg = RuntimeConfig(device="cuda", memory_format="channels_last", batch_size=4, budget_s=0.2)
    net = small_net()
    p = prepare(net, cfg)
    assert p.inputs.is_contiguous(memory_format=torch.channels_last)
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    with p.context():
        out = p.step()
    assert torch.isfinite(out).all()


def test_contiguous_after_channels_last_is_contiguous_again() -> None:
    net = small_net()
    prepare(net, RuntimeConfig(device="cuda", memory_format="channels_last"))
    prepare(net, RuntimeConfig(device="cuda", memory_format="contiguous"))
    convs = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert all(w.is_contiguous() for w in convs)


def test_peak_allocated_at_least_the_weights() -> None:
    model = create_model("resnet18")
    params = sum(p.numel() for p in model.parameters())
    r = measure_model(
        model, RuntimeConfig(device="cuda", batch_size=8, budget_s=0.3), name="resnet18"
    )
    assert r.status == "ok"
    assert r.peak_memory_bytes is not None and r.peak_memory_bytes >= 4 * params
    assert r.peak_reserved_bytes is not None and r.peak_reserved_bytes >= r.peak_memory_bytes


def test_peak_memory_is_per_configuration() -> None:
    """Max allocated is reset per configuration: a small batch after a large one reads small."""
    model = create_model("resnet18")
    big = measure_model(
        model, RuntimeConfig(device="cuda", batch_size=64, budget_s=0.3), name="r18"
    )
    small = measure_model(
        model, RuntimeConfig(device="cuda", batch_size=1, budget_s=0.3), name="r18"
    )
    assert big.status == small.status == "ok"
    assert small.peak_memory_bytes < big.peak_memory_bytes / 2


def test_peak_reserved_is_per_configuration() -> None:
    model = create_model("resnet18")
    big = measure_model(
        model, RuntimeConfig(device="cuda", batch_size=64, budget_s=0.3), name="r18"
    )
    small = measure_model(
        model, RuntimeConfig(device="cuda", batch_size=1, budget_s=0.3), name="r18"
    )
    assert small.peak_reserved_bytes < big.peak_reserved_bytes / 2


def test_oom_backoff_on_an_impossible_batch() -> None:
    total = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory
    per_image = 64 * 8 * 8 * 4  # one broadcast activation
    batch = 1 << (2 * total // per_image).bit_length()  # the activation alone needs > 2x the GPU
    cfg = RuntimeConfig(device="cuda", batch_size=batch, budget_s=0.2, oom_backoff=True)
    try:
        r = measure_model(MemoryHog(), cfg, name="hog")
        assert r.status == "ok", r.error
        assert r.effective_batch_size is not None and r.effective_batch_size < batch
        assert r.notes is not None and f"out of memory at batch {batch}" in r.notes
        assert r.latency_ms_median and r.latency_ms_median > 0
        # Without back-off the same configuration is an "oom" row, not an exception.
        plain = measure_model(
            MemoryHog(), RuntimeConfig(device="cuda", batch_size=batch, budget_s=0.2), name="hog"
        )
        assert plain.status == "oom" and "out of memory" in (plain.error or "")
    finally:
        torch.cuda.empty_cache()
    after = measure_model(
        MemoryHog(), RuntimeConfig(device="cuda", batch_size=2, budget_s=0.2), name="hog"
    )
    assert after.status == "ok"


@pytest.mark.parametrize("before", [False, True])
def test_cudnn_benchmark_applied_and_restored(before: bool) -> None:
    old = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = before
        net = SeesCudnnBenchmark()
        cfg = RuntimeConfig(device="cuda", cudnn_benchmark=not before, budget_s=0.2)
        r = measure_model(net, cfg, name="sees")
        assert r.status == "ok"
        assert net.seen and all(s is (not before) for s in net.seen)
        assert torch.backends.cudnn.benchmark is before
    finally:
        torch.backends.cudnn.benchmark = old


def test_per_layer_time_on_cuda_is_timed_by_events_and_reconciles() -> None:
    """Per-layer timing (--depth) on CUDA: every row timed (CUDA events through the engine's
    device loop), the depth-1 rows and the whole model in the same rounds."""
    from cnnbench.runtime.layer_timing import OTHER, time_layers

    net = small_net().cuda().eval()
    x = torch.randn(8, 3, 32, 32, device="cuda")
    times = time_layers(net, x, depth=1, budget_s=2.0, config=RuntimeConfig(device="cuda"))
    rows = {r.name: r for r in times.rows}
    assert {"stem", "stage1", "head", OTHER} <= set(rows)
    for name in ("stem", "stage1", "head"):
        r = rows[name]
        assert 0 < r.ci_low_ms <= r.median_ms <= r.ci_high_ms
    rec = times.reconciliation
    assert rec.clock == "wall" and rec.end_to_end_ms > 0 and rec.rounds >= 5
    # the rows are parts of the whole: together they cannot take many times the forward
    assert 0.2 < rec.rows_sum_ms / rec.end_to_end_ms < 5
