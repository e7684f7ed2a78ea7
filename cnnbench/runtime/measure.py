"""Runtime profiler: latency, throughput, memory and per-stage time of a model under one
configuration (device, AMP precision, memory format, batch, resolution, threads, compile, mode).

Conventions:

* Latency is per batch, in milliseconds, measured by :mod:`cnnbench.runtime.engine`;
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

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from cnnbench.results import Result, StageCost
from cnnbench.runtime.config import RuntimeConfig
from cnnbench.runtime.engine import Entry, measure_config, stage_samples, stats_into
from cnnbench.runtime.peak import Peak
from cnnbench.runtime.prepare import Prepared
from cnnbench.runtime.timing import percentile

__all__ = ["measure_model", "stats_into", "stage_times", "with_stage_times", "time_vs_macs"]


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
    stage_budget_s: float | None = None,
    row: Result | None = None,
) -> Result:
    """Measure one model under ``config`` with the engine
    (:func:`cnnbench.runtime.engine.measure_config`) and return its Result.

    * ``row``: the record to fill (typically the static profile's
      :meth:`~cnnbench.static.StaticProfile.to_result`); copied once, the configuration and
      runtime fields set on the copy. Without it a new record is made.
    * ``flops_per_image``: FLOPs of one image's work in this mode (from the static counter);
      with ``peak`` (default: this machine's measured matmul peak in the autocast dtype) it
      gives achieved GFLOP/s and ``pct_of_peak``.
    * ``stages``: the static per-stage costs; each stage is then timed and the Result carries
      copies with ``time_ms`` and its CI set.
    * ``builder``: a picklable callable that rebuilds the model for the CPU memory child, e.g.
      :class:`cnnbench.spec.Rebuild`; without one the module itself is sent pickled (the
      display ``name`` is never looked up). ``cpu_memory=False`` skips the child.
    * Out of memory, errors in the model's code and non-finite outputs become the row's
      ``status`` (``oom``, ``error``, ``nonfinite``) with the reason in ``error``; bad input
      raises UsageError.
    """
    entry = Entry(
        name=name, module=model, row=row, builder=builder, stages=stages,
        flops_per_image=flops_per_image, input_size=input_size,
    )  # fmt: skip
    return measure_config(
        [entry], config, peak=peak, cpu_memory=cpu_memory, stage_budget_s=stage_budget_s
    )[0]


def stage_times(
    prepared: Prepared, *, budget_s: float = 0.5, target_ci: float | None = None
) -> dict[str, float]:
    """Median forward time in ms of each named stage of a StagedNet, in order (see
    :func:`cnnbench.runtime.engine.stage_samples`)."""
    samples = stage_samples(
        prepared, budget_s=budget_s, target_ci=target_ci or prepared.config.target_ci
    )
    return {name: percentile(sorted(s), 50) for name, s in samples.items()}


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
