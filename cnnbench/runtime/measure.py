"""Runtime profiler: latency, throughput, memory and per-stage time of a model under one
configuration (device, AMP precision, memory format, batch, resolution, threads, compile, mode).

Conventions:

* Latency is per batch, in milliseconds, measured by :func:`cnnbench.runtime.timing.measure`;
  throughput is ``effective_batch_size / median latency`` in images per second.
* Inference runs the model in eval mode under ``torch.inference_mode``; training runs one
  step per call: forward, cross-entropy against fixed random labels (mean of squares for
  non-logit outputs), backward and an SGD step (lr 1e-3, momentum 0.9; fp16 uses a GradScaler).
* AMP is ``torch.autocast`` with the requested dtype; the dtype autocast actually reports
  inside the context is recorded. Inputs are created in fp32; autocast casts inside.
* ``channels_last`` converts both the model (in place) and the input.
* :func:`measure_model` moves the model to the device in place and, in training mode, updates
  its weights. It never counts FLOPs: ``flops_per_image`` comes from the static counter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnbench.errors import UsageError
from cnnbench.results import Result, StageCost
from cnnbench.runtime.config import RuntimeConfig, resolve_device
from cnnbench.runtime.memory import cpu_peak_memory, cuda_peak_memory
from cnnbench.runtime.peak import Peak
from cnnbench.runtime.prepare import (
    Prepared,
    _all_finite,
    _first_line,
    _free,
    _global_settings,
    _peak_for,
    _sync,
    is_oom,
    prepare,
)
from cnnbench.runtime.timing import TimingStats, measure

__all__ = ["measure_model", "stats_into", "stage_times", "with_stage_times", "time_vs_macs"]

_DEFAULT_STAGE_BUDGET_S = 0.5


def measure_model(
    model: nn.Module,
    config: RuntimeConfig,
    *,
    name: str,
    flops_per_image: int | None = None,
    stages: Sequence[StageCost] | None = None,
    peak: Peak | None = None,
    input_size: Sequence[int] | None = None,
    builder: Callable[[], nn.Module] | str | None = None,
    cpu_memory: bool = True,
    stage_budget_s: float = _DEFAULT_STAGE_BUDGET_S,
    row: Result | None = None,
) -> Result:
    """Measure ``model`` under ``config`` and return a Result with the runtime fields filled.

    * ``row``: the record to fill (typically the static profile's
      :meth:`~cnnbench.static.StaticProfile.to_result`); it is copied once, the configuration
      and runtime fields set on the copy. Without it a new record is made.

    * ``flops_per_image``: FLOPs of one image's work in this mode (from the static counter;
      for training pass the training estimate). Without it achieved/peak GFLOP/s stay None.
      With it, ``peak`` (or :func:`cnnbench.runtime.peak.machine_peak` in the autocast dtype) gives
      ``pct_of_peak``.
    * ``stages``: the static per-stage costs; when given, each stage is timed
      (:func:`stage_times`) and the Result carries copies with ``time_ms`` set.
    * Memory: on CUDA, peak allocated/reserved bytes of this configuration. On CPU, the peak
      RSS of a child process that rebuilds the model with ``builder`` (a picklable callable,
      e.g. :class:`cnnbench.spec.Rebuild`; without one the module itself is sent pickled; the
      display ``name`` is never looked up) and runs a few steps;
      ``peak_memory_bytes`` is that peak above the child's RSS after imports (weights, input,
      activations, workspaces: comparable to CUDA's max allocated), see
      :func:`cnnbench.runtime.memory.cpu_peak_memory`. ``cpu_memory=False`` skips it; a failed child
      leaves it None with the reason appended to ``error``.
    * Out of memory: status ``"oom"`` with the error text, or with ``config.oom_backoff`` a
      retry at half the batch down to 1; ``effective_batch_size`` is the batch that ran.
      Other runtime errors give status ``"error"``. Bad input raises UsageError.
    * Output containing NaN/inf: status ``"nonfinite"``; the row is still timed.
    """
    device = resolve_device(config.device)
    info = getattr(model, "model_info", None)
    result = dataclasses.replace(
        row or Result(model=name, family=getattr(info, "family", "") or ""),
        model=name,
        batch_size=config.batch_size,
        device=str(device) if device.type == "cpu" else f"cuda:{device.index}",
        precision=config.precision,
        memory_format=config.memory_format,
        compiled=config.compile,
        mode=config.mode,
    )
    batch = config.batch_size
    failed: list[int] = []
    with _global_settings(config, device):
        result.threads = torch.get_num_threads()
        while True:
            error = ""
            oom = False
            try:
                _measure_into(
                    result,
                    model,
                    config,
                    name=name,
                    batch=batch,
                    input_size=input_size,
                    stages=stages,
                    stage_budget_s=stage_budget_s,
                )
                break
            except UsageError:
                raise
            except (RuntimeError, MemoryError) as exc:
                oom = is_oom(exc)
                error = f"{'out of memory' if oom else type(exc).__name__}: {_first_line(exc)}"
            _free(device)
            if not oom or not config.oom_backoff or batch == 1:
                _clear_runtime(result)
                result.status = "oom" if oom else "error"
                notes = f" (after out of memory at batch {', '.join(map(str, failed))})"
                result.error = f"batch {batch}: {error}" + (notes if failed else "")
                return result
            failed.append(batch)
            batch = max(1, batch // 2)

    if failed:
        _note(
            result,
            f"out of memory at batch {', '.join(map(str, failed))}; measured at batch {batch}",
        )
    if flops_per_image is not None and result.latency_ms_median:
        achieved = flops_per_image * batch / (result.latency_ms_median / 1000.0) / 1e9
        result.achieved_gflops = achieved
        p = _peak_for(device, result_dtype(result), peak)
        result.peak_gflops = p.matmul_gflops
        result.pct_of_peak = 100.0 * achieved / p.matmul_gflops
    if device.type == "cpu" and cpu_memory:
        _cpu_memory_into(result, model, config, name, builder, batch, input_size)
    return result


def _note(result: Result, text: str) -> None:
    """Add ``text`` to the row's error/notes field (``; `` separated)."""
    result.error = text if not result.error else f"{result.error}; {text}"


def result_dtype(result: Result) -> torch.dtype | None:
    """The torch dtype named by ``result.autocast_dtype`` (None without AMP)."""
    if result.autocast_dtype is None:
        return None
    return getattr(torch, result.autocast_dtype)


def _clear_runtime(result: Result) -> None:
    blank = Result(model=result.model)
    for f in dataclasses.fields(Result):
        if f.name.startswith("latency_ms_") or f.name in (
            "throughput_ips",
            "warmup_iters",
            "timed_iters",
            "effective_batch_size",
            "peak_memory_bytes",
            "peak_reserved_bytes",
            "samples_ms",
        ):
            setattr(result, f.name, getattr(blank, f.name))


def _measure_into(
    result: Result,
    model: nn.Module,
    config: RuntimeConfig,
    *,
    name: str,
    batch: int,
    input_size: Sequence[int] | None,
    stages: Sequence[StageCost] | None,
    stage_budget_s: float,
) -> None:
    prepared = prepare(model, config, name=name, input_size=input_size, batch_size=batch)
    device = prepared.device
    result.input_size = list(prepared.input_size)
    result.autocast_dtype = prepared.autocast_name
    result.effective_batch_size = batch
    with prepared.context():
        output = prepared.step()  # first call: compilation, lazy init, autotuning; checked
        _sync(device)
        finite = _all_finite(output)
        del output
        # CUDA peak of the steady state: reset after the first call (autotuning workspaces).
        peak_mem = cuda_peak_memory(device) if device.type == "cuda" else None
        with peak_mem or contextlib.nullcontext():
            stats = measure(
                prepared.step,
                device=device,
                target_ci=config.target_ci,
                budget_s=config.budget_s,
            )
    if peak_mem is not None:
        result.peak_memory_bytes = peak_mem.allocated_bytes
        result.peak_reserved_bytes = peak_mem.reserved_bytes
    stats_into(result, stats, batch)
    if not finite:
        result.status = "nonfinite"
        result.error = "model output contains NaN or inf"
    if stages is not None:
        if getattr(model, "stage_names", None) is None:
            _note(result, "per-stage time not measured: the model has no named stages")
        else:
            times = stage_times(prepared, budget_s=stage_budget_s)
            result.stages = with_stage_times(stages, times)


def stats_into(result: Result, stats: TimingStats, batch: int) -> None:
    """Copy timing statistics (ms per batch of ``batch`` images) into ``result``."""
    result.latency_ms_median = stats.median_ms
    result.latency_ms_mean = stats.mean_ms
    result.latency_ms_std = stats.std_ms
    result.latency_ms_min = stats.min_ms
    result.latency_ms_p90 = stats.p90_ms
    result.latency_ms_p99 = stats.p99_ms
    result.latency_ms_iqr = stats.iqr_ms
    result.latency_ms_ci_low = stats.ci_low_ms
    result.latency_ms_ci_high = stats.ci_high_ms
    result.warmup_iters = stats.warmup_iters
    result.timed_iters = stats.timed_iters
    result.samples_ms = list(stats.samples_ms)
    result.throughput_ips = batch * 1000.0 / stats.median_ms if stats.median_ms > 0 else None


@dataclass(frozen=True)
class _ModuleCopy:
    """A builder that returns the very module it was pickled with (weights included): the
    fallback for a module handed over without a spec to rebuild it from."""

    module: nn.Module

    def __call__(self) -> nn.Module:
        return self.module


def _cpu_memory_into(
    result: Result,
    model: nn.Module,
    config: RuntimeConfig,
    name: str,
    builder: Callable[[], nn.Module] | str | None,
    batch: int,
    input_size: Sequence[int] | None,
) -> None:
    """CPU peak memory of the model itself: rebuilt in the child from ``builder`` (the spec's
    rebuild recipe), or sent pickled when there is none; never looked up by display name."""
    cfg = dataclasses.replace(config, batch_size=batch, compile=False, threads=result.threads)
    peak = cpu_peak_memory(builder or _ModuleCopy(model), cfg, input_size=input_size)
    if peak.error is None:
        result.peak_memory_bytes = peak.above_start_bytes
    else:
        _note(result, f"cpu peak memory not measured: {peak.error}")


def stage_times(
    prepared: Prepared,
    *,
    budget_s: float = _DEFAULT_STAGE_BUDGET_S,
    target_ci: float | None = None,
) -> dict[str, float]:
    """Median forward time in ms of each named stage of a StagedNet (``stem``, ``stage1`` ..,
    ``head``), in order. Each stage gets the real output of the previous one and is timed with
    the same harness and a budget of ``budget_s`` seconds. Always inference (eval mode,
    inference_mode, the configuration's autocast and memory format), uncompiled modules."""
    model, name = prepared.model, prepared.name
    names_of = getattr(model, "stage_names", None)
    if names_of is None:
        raise UsageError(
            f"{name}: the model has no named stages (stage_names()); per-stage time needs a "
            "cnnbench StagedNet"
        )
    was_training = model.training
    model.eval()
    times: dict[str, float] = {}
    try:
        with torch.inference_mode(), prepared.autocast():
            x: Any = prepared.inputs
            for stage_name in names_of():
                module = getattr(model, stage_name)
                stats = measure(
                    lambda m=module, inp=x: m(inp),
                    device=prepared.device,
                    target_ci=target_ci or prepared.config.target_ci,
                    budget_s=budget_s,
                    min_iters=5,
                )
                times[stage_name] = stats.median_ms
                x = module(x)
    finally:
        model.train(was_training)
    return times


def with_stage_times(stages: Sequence[StageCost], times: Mapping[str, float]) -> list[StageCost]:
    """Copies of ``stages`` with ``time_ms`` from ``times`` (None where a stage has no time)."""
    return [dataclasses.replace(s, time_ms=times.get(s.name)) for s in stages]


def time_vs_macs(stages: Sequence[StageCost]) -> list[dict[str, Any]]:
    """Per stage: name, time_ms, time share and MAC share (percent of the stage totals), so that
    a stage that takes a larger share of time than of MACs stands out (``ratio`` > 1)."""
    total_time = math.fsum(s.time_ms or 0.0 for s in stages)
    total_macs = sum(s.macs for s in stages)
    rows: list[dict[str, Any]] = []
    for s in stages:
        time_pct = 100.0 * (s.time_ms or 0.0) / total_time if total_time > 0 else None
        mac_pct = 100.0 * s.macs / total_macs if total_macs > 0 else None
        ratio = time_pct / mac_pct if time_pct is not None and mac_pct else None
        rows.append(
            {
                "name": s.name,
                "time_ms": s.time_ms,
                "macs": s.macs,
                "time_pct": time_pct,
                "mac_pct": mac_pct,
                "ratio": ratio,
            }
        )
    return rows
