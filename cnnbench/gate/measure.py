"""Timing for the gate: the calibration workload, calibrated blocks (save/check) and
interleaved rounds (ab)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnbench.report.format import config_label as describe
from cnnbench.results import Result
from cnnbench.runtime import (
    Prepared,
    RuntimeConfig,
    measurement_settings,
    prepare,
    resolve_device,
    stats_into,
)
from cnnbench.runtime.guard import load_guarded
from cnnbench.runtime.timing import measure, summarize
from cnnbench.spec import Rebuild, ensure_info

from .config import _GATE_TARGET_CI, GateConfig
from .guard import model_code
from .stats import LatencySamples

_CAL_BATCH = {"cpu": 1, "cuda": 32}
_MAX_WARMUP_S = 1.0

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


def calibration_workload(device: str | torch.device = "cpu") -> Callable[[], Any]:
    """A fixed CNN workload timed next to the models, so that runs on machines of different
    speed, or on one machine whose speed drifts, can be compared.

    Self-contained (no zoo code, which a change under test could slow down too): the
    convolution shapes of ResNet-18 (the 7x7 stem, max-pool, sixteen 3x3 and three strided 1x1
    convolutions with ReLU), global pooling and a 512 -> 1000 linear layer, with fixed seeded
    fp32 weights (11.7 M, 47 MB) and input; about 1.8 GMAC per image. A whole network rather
    than a few layers, because it must slow down the way CNNs do: with a neighbour process
    competing for memory bandwidth, cache or compute, resnet18, mobilenet_v2 and resnet50
    divided by this stack stayed within 4.1% of their quiet values, divided by three small
    convolutions within 6.3% (benchmarks/results/calibration.md). Batch 1 on CPU, 32 on
    CUDA; runs once per call (synchronising on CUDA)."""
    dev = torch.device(device)
    batch = _CAL_BATCH.get(dev.type, 1)
    gen = torch.Generator().manual_seed(1234)

    def conv(c_in: int, c_out: int, k: int, stride: int) -> tuple[torch.Tensor, int, int]:
        w = torch.randn(c_out, c_in, k, k, generator=gen) * (2.0 / (c_in * k * k)) ** 0.5
        return w.to(dev), stride, k // 2

    stem = conv(3, 64, 7, 2)
    blocks = []  # (conv1, conv2, projection or None) per basic block
    c_in = 64
    for c_out, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for i in range(2):
            stride = first_stride if i == 0 else 1
            proj = conv(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else None
            blocks.append((conv(c_in, c_out, 3, stride), conv(c_out, c_out, 3, 1), proj))
            c_in = c_out
    fc = (torch.randn(1000, c_in, generator=gen) * 0.01).to(dev)
    x0 = torch.randn(batch, 3, 224, 224, generator=gen).to(dev)
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)
    F = torch.nn.functional

    def apply(x: torch.Tensor, c: tuple[torch.Tensor, int, int]) -> torch.Tensor:
        return F.conv2d(x, c[0], stride=c[1], padding=c[2])

    def run() -> Any:
        with torch.inference_mode():
            x = F.max_pool2d(torch.relu(apply(x0, stem)), 3, 2, 1)
            for c1, c2, proj in blocks:
                shortcut = apply(x, proj) if proj is not None else x
                x = torch.relu(apply(torch.relu(apply(x, c1)), c2) + shortcut)
            logits = x.mean((2, 3)) @ fc.T
        sync()
        return logits

    return run


@dataclass
class _Model:
    """A model under test: its display name, module and (when built from a spec) the spec."""

    name: str
    module: nn.Module
    spec: str | None = None  # as the user wrote it (report labels)
    rebuild: Rebuild | None = None  # how the memory child rebuilds it (None: no spec)
    statics: dict[int | None, Result] = field(default_factory=dict)

    def builder(self) -> Callable[[], nn.Module] | None:
        return self.rebuild

    def static(self, config: RuntimeConfig) -> Result:
        """Static counts (per image) at the config's resolution, as a Result skeleton.
        ModelCodeError when the model code raises."""
        from cnnbench.static import profile_static

        if config.resolution not in self.statics:
            with model_code(f"{self.name} ({describe(config)}): static profile"):
                prof = profile_static(
                    self.module, name=self.name, resolution=config.resolution, train_memory=False
                )
            self.statics[config.resolution] = prof.to_result()
        s = self.statics[config.resolution]
        return dataclasses.replace(
            s,
            stages=[],
            batch_size=config.batch_size,
            precision=config.precision,
            memory_format=config.memory_format,
            mode=config.mode,
            device=str(resolve_device(config.device)),
        )


def _as_model(
    obj: str | nn.Module | tuple[str, nn.Module], model_args: Mapping[str, Any]
) -> _Model:
    """A spec is loaded with :func:`cnnbench.spec.load` (UsageError when it does not
    resolve, ModelCodeError when the model's code raises, SystemExit included); a module
    without ``model_info`` gets the same default as a loaded one (family custom, input
    3x224x224)."""
    if isinstance(obj, str):
        with model_code(f"{obj}: building the model"):
            loaded = load_guarded(obj, dict(model_args))  # refused if it cannot fit
        return _Model(loaded.name, loaded.module, obj, loaded.rebuild)
    name, module = obj if isinstance(obj, tuple) else (type(obj).__name__, obj)
    return _Model(name, ensure_info(module, name))


def _time_block(step: Callable[[], Any], device: torch.device, budget_s: float) -> list[float]:
    """One short timed block: 1 untimed call to re-warm caches after other work ran, then
    timed calls for ``budget_s`` seconds (at least 3)."""
    stats = measure(
        step,
        device=device,
        target_ci=_GATE_TARGET_CI,
        budget_s=budget_s,
        min_iters=3,
        min_warmup=1,
        max_warmup=1,
    )
    return list(stats.samples_ms)


def _measure_calibrated(
    model: _Model,
    config: RuntimeConfig,
    cfg: GateConfig,
    *,
    memory: bool,
    calibrate: bool,
) -> tuple[Result, list[float], str | None]:
    """Time ``model`` under ``config`` in ``cfg.rounds`` rounds, each a block of the
    calibration workload (``calibration_s / rounds`` seconds, outside autocast) then a block of
    the model (``budget_s / rounds`` seconds), after a short warm-up of both. Returns the
    Result (static fields, latency statistics of the pooled samples, raw samples, peak memory
    when ``memory``), the calibration samples (empty without ``calibrate``) and why peak
    memory could not be measured (None when it was, or was not asked for). Whatever the
    model code raises becomes ModelCodeError."""

    static = model.static(config)
    with model_code(f"{model.name} ({describe(config)}): timing"):
        prepared = prepare(model.module, config, name=model.name)
        device = prepared.device
        samples: list[float] = []
        cal: list[float] = []
        with measurement_settings(config, device):
            threads = torch.get_num_threads()
            warm = min(_MAX_WARMUP_S, cfg.budget_s / 10)
            with prepared.context():
                warmup_iters = measure(prepared.step, device=device, budget_s=warm).warmup_iters
            if calibrate:
                measure(
                    calibration_workload(device),
                    device=device,
                    budget_s=min(warm, cfg.calibration_s / 4),
                )
            for _ in range(cfg.rounds):
                if calibrate:
                    # Fresh tensors each round: the speed of one allocation's placement is
                    # averaged out instead of biasing the whole run.
                    cal_fn = calibration_workload(device)
                    cal += _time_block(cal_fn, device, cfg.calibration_s / cfg.rounds)
                with prepared.context():
                    samples += _time_block(prepared.step, device, cfg.budget_s / cfg.rounds)
    peak, memory_error = _peak_memory(model, prepared) if memory else (None, None)
    result = dataclasses.replace(
        static,
        input_size=list(prepared.input_size),
        threads=threads,
        autocast_dtype=prepared.autocast_name,
        effective_batch_size=prepared.batch_size,
        peak_memory_bytes=peak,
    )
    stats = summarize(samples, warmup_iters=warmup_iters, stop_reason="budget")
    stats_into(result, stats, prepared.batch_size)
    return result, cal, memory_error


def _peak_memory(model: _Model, prepared: Prepared) -> tuple[int | None, str | None]:
    """Peak memory of a prepared model and why it is missing: CUDA max allocated over 3
    steps; on CPU the peak RSS of a child process that rebuilds the model from its spec
    (``(None, None)`` without a spec: not measurable; ``(None, reason)`` when the child
    failed, e.g. the model code exited)."""
    from cnnbench.runtime.memory import cpu_peak_memory, cuda_own_peak

    if prepared.device.type == "cuda":  # in ab mode both models stay on the GPU
        with model_code(f"{model.name}: peak memory"), prepared.context():
            allocated, _ = cuda_own_peak(
                prepared.model, prepared.inputs, prepared.step, prepared.device
            )
        return allocated, None
    builder = model.builder()
    if builder is None:
        return None, None
    result = cpu_peak_memory(builder, dataclasses.replace(prepared.config, compile=False))
    if result.error is not None:
        return None, f"peak memory not measured: {result.error}"
    return result.above_start_bytes, None


@dataclass
class _Interleaved:
    """Two prepared models timed in alternating blocks (round i: A B when i is even, B A when
    odd), one LatencySamples round per block pair."""

    a: Prepared
    b: Prepared
    block_s: float
    rounds: int
    label: str
    on_progress: Progress = _quiet

    @contextlib.contextmanager
    def _settings(self) -> Iterator[None]:
        with measurement_settings(self.a.config, self.a.device), self.a.context():
            yield

    def warm_up(self, budget_s: float) -> None:
        with self._settings():
            for p in (self.a, self.b):
                measure(p.step, device=p.device, budget_s=budget_s, min_iters=1)

    def measure(self, samples: LatencySamples) -> None:
        """Append ``rounds`` more rounds to ``samples``."""
        with self._settings():
            for _ in range(self.rounds):
                i = len(samples.baseline)
                self.on_progress(f"{self.label}: round {i + 1}")
                order = (self.a, self.b) if i % 2 == 0 else (self.b, self.a)
                blocks = {id(p): _time_block(p.step, p.device, self.block_s) for p in order}
                samples.baseline.append(blocks[id(self.a)])
                samples.candidate.append(blocks[id(self.b)])
