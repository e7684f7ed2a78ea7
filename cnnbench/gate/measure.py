"""Timing for the gate, through the engine (:func:`cnnbench.runtime.measure_config`): the
calibration workload, calibration and model blocks (save/check) and interleaved rounds (ab),
both in alternating rounds of a fixed count. The gate so gets the engine's call timeout,
out-of-memory and non-finite statuses, noise notes and CUDA event timing; a row that is not
``ok`` stops the decision with :class:`~cnnbench.gate.guard.Unmeasurable` (exit 2)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from cnnbench.api import static_profile
from cnnbench.report.format import config_label as describe
from cnnbench.results import Result
from cnnbench.runtime import Entry, RuntimeConfig, Schedule, measure_config, resolve_device
from cnnbench.runtime.guard import load_guarded
from cnnbench.spec import LoadedModel, ensure_info

from .config import CALIBRATION_MODEL, GateConfig
from .guard import ModelCodeError, Unmeasurable, model_code

_CAL_BATCH = {"cpu": 1, "cuda": 32}
_MAX_WARMUP_S = 1.0
_MIN_BLOCK_CALLS = 3

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


def static_row(model: LoadedModel, config: RuntimeConfig) -> Result:
    """Static counts (per image) at the config's resolution, as a Result skeleton, counted
    the way every command counts (:func:`cnnbench.api.static_profile`: a time limit, and real
    tensors when the meta device cannot run the model). ModelCodeError when the model code
    raises; UsageError when counting does not finish."""
    with model_code(f"{model.name} ({describe(config)}): static profile"):
        # --call-timeout bounds the count too (at most api.STATIC_CALL_LIMIT_S)
        prof = static_profile(model, resolution=config.resolution, limit_s=config.call_limit_s)
    return dataclasses.replace(
        prof.to_result(),
        stages=[],
        batch_size=config.batch_size,
        precision=config.precision,
        memory_format=config.memory_format,
        mode=config.mode,
        device=str(resolve_device(config.device)),
    )


def as_model(
    obj: str | nn.Module | tuple[str, nn.Module], model_args: Mapping[str, Any]
) -> LoadedModel:
    """A spec is loaded with :func:`cnnbench.spec.load` (UsageError when it does not
    resolve, ModelCodeError when the model's code raises, SystemExit included); a module
    without ``model_info`` gets the same default as a loaded one (family custom, input
    3x224x224)."""
    if isinstance(obj, str):
        with model_code(f"{obj}: building the model"):
            return load_guarded(obj, dict(model_args))  # refused if it cannot fit
    name, module = obj if isinstance(obj, tuple) else (type(obj).__name__, obj)
    return LoadedModel(name, ensure_info(module, name))


def _schedule(cfg: GateConfig, clock: str | None = None) -> Schedule:
    """The gate's rounds: ``cfg.rounds`` alternating rounds, one re-warm call per block;
    ``clock`` forces the latency clock (a re-measurement pooled with a first one)."""
    return Schedule(
        clock=clock,
        order="alternating",
        rounds=cfg.rounds,
        rewarm=True,
        warmup_s=min(_MAX_WARMUP_S, cfg.budget_s / 10),
        min_block_calls=_MIN_BLOCK_CALLS,
        stop_on_failure=True,
    )


def _entry(model: LoadedModel, row: Result | None, block_s: float) -> Entry:
    return Entry(
        name=model.name, module=model.module, row=row, builder=model.rebuild, block_s=block_s
    )


def _check_timed(*checks: tuple[Entry, str]) -> None:
    """ModelCodeError when an entry's code raised (SystemExit included), Unmeasurable when
    the engine could not time it otherwise (timeout, out of memory, non-finite output); the
    entry that failed first is named, not one skipped because of it."""
    for entry, what in sorted(checks, key=lambda c: c[0].result.status == "skipped"):
        r = entry.result
        if r.status == "error" and entry.failure is not None:
            raise ModelCodeError(what, entry.failure)
        if r.status != "ok" or not entry.measurement.blocks:
            raise Unmeasurable(what, r.status, r.error or "no samples were taken")


def measure_calibrated(
    model: LoadedModel,
    config: RuntimeConfig,
    cfg: GateConfig,
    *,
    memory: bool,
    calibrate: bool,
    clock: str | None = None,
) -> tuple[Result, list[float], str | None]:
    """Time ``model`` under ``config`` in ``cfg.rounds`` alternating rounds of a block of the
    calibration workload (``calibration_s / rounds`` seconds, outside autocast) and a block of
    the model (``budget_s / rounds`` seconds), after a short warm-up of both. Returns the
    Result (static fields, latency statistics of the pooled samples, raw samples, peak memory
    when ``memory``), the calibration samples (empty without ``calibrate``; in the row's
    ``clock``, chosen for both by the engine, or ``clock`` when given) and why peak
    memory could not be measured (None when it was, or was not asked for). Model code that
    raises becomes ModelCodeError; a row the engine marks timeout, oom, nonfinite or error
    becomes Unmeasurable."""
    static = static_row(model, config)
    device = resolve_device(config.device)
    entries = []
    if calibrate:
        entries.append(
            Entry.of_callable(
                f"{CALIBRATION_MODEL}/{model.name}",
                lambda: calibration_workload(device),
                block_s=cfg.calibration_s / cfg.rounds,
            )
        )
    entry = _entry(model, static, cfg.budget_s / cfg.rounds)
    entries.append(entry)
    what = f"{model.name} ({describe(config)}): timing"
    with model_code(what):
        measure_config(entries, config, cpu_memory=memory, schedule=_schedule(cfg, clock))
    checks = [(entry, what)]
    if calibrate:
        checks.append((entries[0], f"{model.name} ({describe(config)}): calibration workload"))
    _check_timed(*checks)
    cal = entries[0].measurement.samples if calibrate else []
    result = entry.result
    return result, cal, entry.memory_error if memory else None


def measure_pair(
    a: LoadedModel,
    b: LoadedModel,
    config: RuntimeConfig,
    cfg: GateConfig,
    *,
    memory: bool,
    clock: str | None = None,
) -> tuple[Entry, Entry]:
    """Baseline ``a`` and candidate ``b`` timed in ``cfg.rounds`` alternating rounds (A B,
    B A, ...), each block ``budget_s / (2 * rounds)`` seconds; both entries come back with
    their rows and per-round blocks. ModelCodeError or Unmeasurable as for
    :func:`measure_calibrated`."""
    block_s = cfg.budget_s / (2 * cfg.rounds)
    ea, eb = _entry(a, None, block_s), _entry(b, None, block_s)
    what = f"{a.name} vs {b.name} ({describe(config)}): timing"
    with model_code(what):
        measure_config([ea, eb], config, cpu_memory=memory, schedule=_schedule(cfg, clock))
    _check_timed(
        (ea, f"{a.name} ({describe(config)}): timing"),
        (eb, f"{b.name} ({describe(config)}): timing"),
    )
    return ea, eb
