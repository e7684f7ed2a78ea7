"""The gate's modes: save, check, compare_files and ab."""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnbench.api import describe
from cnnbench.environment import fingerprint
from cnnbench.errors import UsageError
from cnnbench.results import Result, Run
from cnnbench.runtime import RuntimeConfig, prepare, resolve_device

from .baseline import (
    _calibration,
    _calibration_name,
    _check_env,
    _find,
    _index,
    _is_calibration,
    key_label,
    load_baseline,
    result_key,
)
from .config import DETERMINISTIC_METRICS, GateConfig
from .measure import (
    Progress,
    _as_model,
    _Interleaved,
    _measure_calibrated,
    _Model,
    _peak_memory,
    _quiet,
)
from .stats import LatencySamples, decide_with_remeasure
from .verdicts import (
    GateReport,
    Verdict,
    _skipped,
    deterministic_verdict,
    latency_verdicts,
    memory_verdict,
)


def _metric_value(r: Result | None, metric: str) -> float | None:
    if r is None:
        return None
    if metric == "latency_ms":
        return r.latency_ms_median
    return getattr(r, metric)


def _deterministic(
    name: str, label: str, base: Result, cand: Result, cfg: GateConfig
) -> list[Verdict]:
    out = []
    for metric in DETERMINISTIC_METRICS:
        if metric not in cfg.metrics:
            continue
        b, c = getattr(base, metric), getattr(cand, metric)
        if b is None and c is None:
            continue
        out.append(deterministic_verdict(name, label, metric, b, c, cfg.tolerance(metric)))
    return out


def _timing_skipped(
    name: str, label: str, base: Result, cand: Result | None, cfg: GateConfig, reason: str
) -> list[Verdict]:
    return [
        _skipped(name, label, m, _metric_value(base, m), _metric_value(cand, m), reason)
        for m in ("latency_ms", "throughput_ips", "peak_memory_bytes")
        if m in cfg.metrics and (cfg.memory or m != "peak_memory_bytes")
    ]


def _environment(config: RuntimeConfig) -> dict[str, Any]:
    env = fingerprint(resolve_device(config.device))
    env["threads"] = config.threads if config.threads is not None else torch.get_num_threads()
    return env


def _wants_timing(cfg: GateConfig) -> bool:
    return any(m in cfg.metrics for m in ("latency_ms", "throughput_ips", "peak_memory_bytes"))


def _static_first(
    report: GateReport,
    name: str,
    label: str,
    base: Result,
    cand: Result,
    cfg: GateConfig,
    verb: str = "timed",
) -> bool:
    """Append the deterministic verdicts of one model configuration; return whether its timed
    metrics should be decided. Not when none is configured, nor when the structure regressed
    (then they are appended as skipped: a different network's latency says nothing new)."""
    verdicts = _deterministic(name, label, base, cand, cfg)
    report.verdicts += verdicts
    if not _wants_timing(cfg):
        return False
    structural = any(v.failed and v.metric in DETERMINISTIC_METRICS for v in verdicts)
    if cfg.skip_timing_on_structural_regression and structural:
        reason = f"not {verb}: the network's structure regressed (see deterministic metrics)"
        report.verdicts += _timing_skipped(name, label, base, cand, cfg, reason)
        return False
    return True


def save(cfg: GateConfig, path: str | os.PathLike[str], *, on_progress: Progress = _quiet) -> Run:
    """Measure every configured model and configuration and write the baseline to ``path``."""
    if not cfg.models:
        raise UsageError(
            "gate save: no models configured; add models = [...] to "
            "[tool.cnnbench.gate] or pass --model"
        )
    run = Run(
        results=[],
        environment=_environment(cfg.configs[0]),
        config={"command": "gate save", "gate": cfg.to_dict()},
    )
    for spec in cfg.models:
        on_progress(f"{spec}: building")
        model = _as_model(spec, cfg.model_args)
        for config in cfg.configs:
            if not _wants_timing(cfg):
                run.results.append(model.static(config))
                continue
            on_progress(f"{model.name}: {describe(config)}")
            result, cal = _measure_calibrated(
                model, config, cfg, memory=cfg.memory, calibrate=cfg.calibrate
            )
            run.results.append(result)
            if cal:
                run.results.append(_calibration_row(cal, result))
    run.save(path)
    return run


def _calibration_row(samples: list[float], row: Result) -> Result:
    """The ``__calibration__/<model>`` row timed with ``row``: ms per call of
    :func:`calibration_workload`, with ``row``'s configuration fields (for matching)."""
    return Result(
        model=_calibration_name(row.model),
        family="calibration",
        batch_size=row.batch_size,
        input_size=list(row.input_size),
        device=row.device,
        precision=row.precision,
        memory_format=row.memory_format,
        mode=row.mode,
        threads=row.threads,
        latency_ms_median=statistics.median(samples),
        timed_iters=len(samples),
        samples_ms=samples,
    )


def _decide_pair(
    name: str,
    label: str,
    base: Result,
    cand: Result,
    samples: LatencySamples,
    remeasure: Callable[[LatencySamples], None],
    cfg: GateConfig,
) -> list[Verdict]:
    out: list[Verdict] = []
    if any(m in cfg.metrics for m in ("latency_ms", "throughput_ips")):
        if not samples.baseline or not any(samples.baseline) or not any(samples.candidate):
            side = "baseline" if not any(samples.baseline) else "candidate"
            skipped = _timing_skipped(name, label, base, cand, cfg, f"no raw samples in the {side}")
            out += [v for v in skipped if v.metric != "peak_memory_bytes"]
        else:
            decision, n = decide_with_remeasure(
                samples,
                remeasure,
                max_remeasure=cfg.max_remeasure,
                alpha=cfg.alpha,
                min_effect=cfg.min_effect,
                n_boot=cfg.n_boot,
                seed=cfg.seed,
            )
            rows = latency_verdicts(
                name,
                label,
                samples,
                decision,
                n,
                base.batch_size,
                cand.effective_batch_size or cand.batch_size,
            )
            out += [v for v in rows if v.metric in cfg.metrics]
    if "peak_memory_bytes" in cfg.metrics and (
        base.peak_memory_bytes is not None or cand.peak_memory_bytes is not None
    ):
        out.append(
            memory_verdict(
                name,
                label,
                base.peak_memory_bytes,
                cand.peak_memory_bytes,
                cfg.tolerance("peak_memory_bytes"),
            )
        )
    return out


def check(
    cfg: GateConfig,
    baseline_path: str | os.PathLike[str],
    *,
    allow_env_mismatch: bool = False,
    on_progress: Progress = _quiet,
) -> GateReport:
    """Measure the configured set now and decide every metric against the baseline file."""
    started = time.perf_counter()
    base_run = load_baseline(baseline_path)
    if not cfg.models:
        raise UsageError(
            "gate check: no models configured; add models = [...] to "
            "[tool.cnnbench.gate] or pass --model"
        )
    env = _environment(cfg.configs[0])
    report = GateReport(
        "check", str(baseline_path), "measured now", environment=env, settings=cfg.to_dict()
    )
    report.notes += _check_env(base_run.environment, env, allow_env_mismatch, str(baseline_path))
    index = _index(base_run.results)
    for spec in cfg.models:
        on_progress(f"{spec}: building")
        model = _as_model(spec, cfg.model_args)
        for config in cfg.configs:
            skeleton = model.static(config)
            key = result_key(skeleton)
            label = key_label(key)
            base = _find(index, key)
            if base is None:
                raise UsageError(
                    f"{baseline_path}: no baseline for {model.name} ({label}); re-save it with "
                    "`cnnbench gate save`"
                )
            if not _static_first(report, model.name, label, base, skeleton, cfg):
                continue
            base_cal = _calibration(base_run, base) if cfg.calibrate else None
            on_progress(f"{model.name}: {label}")
            cand, cal = _measure_calibrated(
                model, config, cfg, memory=cfg.memory, calibrate=bool(base_cal)
            )
            samples = LatencySamples(
                baseline=[list(base.samples_ms)],
                candidate=[list(cand.samples_ms)],
                baseline_calibration=base_cal or None,
                candidate_calibration=cal or None,
            )

            def remeasure(
                s: LatencySamples, model: _Model = model, config: RuntimeConfig = config
            ) -> None:
                on_progress(f"{model.name}: ambiguous, re-measuring")
                more, cal = _measure_calibrated(
                    model, config, cfg, memory=False, calibrate=s.candidate_calibration is not None
                )
                s.candidate.append(list(more.samples_ms))
                if s.candidate_calibration is not None:
                    s.candidate_calibration.extend(cal)

            report.verdicts += _decide_pair(model.name, label, base, cand, samples, remeasure, cfg)
            if cfg.calibrate and not base_cal:
                report.notes.append(
                    f"{model.name}: the baseline has no calibration rows; "
                    "latency compared without normalisation"
                )
    report.elapsed_s = time.perf_counter() - started
    return report


def compare_files(
    cfg: GateConfig,
    baseline_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    *,
    allow_env_mismatch: bool = False,
) -> GateReport:
    """Decide every metric of a saved candidate against a saved baseline (no measuring).
    Either file may be a cnnbench run or a pytest-benchmark JSON; re-measuring is impossible
    here, so ambiguous latency results are finalised as they stand."""
    started = time.perf_counter()
    base_run, cand_run = load_baseline(baseline_path), load_baseline(candidate_path)
    report = GateReport(
        "compare",
        str(baseline_path),
        str(candidate_path),
        environment=cand_run.environment,
        settings=cfg.to_dict(),
    )
    report.notes += _check_env(
        base_run.environment, cand_run.environment, allow_env_mismatch, str(candidate_path)
    )
    index = _index(base_run.results)
    matched = 0
    for cand in cand_run.results:
        if _is_calibration(cand):
            continue
        key = result_key(cand)
        label = key_label(key)
        base = _find(index, key)
        if base is None:
            report.notes.append(f"{cand.model} ({label}): not in the baseline, not compared")
            continue
        matched += 1
        if not _static_first(report, cand.model, label, base, cand, cfg, "compared"):
            continue
        base_cal = _calibration(base_run, base) if cfg.calibrate else None
        cand_cal = _calibration(cand_run, cand) if cfg.calibrate else None
        samples = LatencySamples(
            baseline=[list(base.samples_ms)],
            candidate=[list(cand.samples_ms)],
            baseline_calibration=base_cal if cand_cal else None,
            candidate_calibration=cand_cal if base_cal else None,
        )
        report.verdicts += _decide_pair(
            cand.model,
            label,
            base,
            cand,
            samples,
            lambda _s: None,
            dataclasses.replace(cfg, max_remeasure=0),
        )
    if not matched:
        raise UsageError(
            f"{candidate_path}: no result matches a baseline row in {baseline_path} "
            "(models are matched by name and configuration)"
        )
    report.elapsed_s = time.perf_counter() - started
    return report


# A/B interleaved ---------------------------------------------------------------------------------
def ab(
    baseline: str | nn.Module | tuple[str, nn.Module],
    candidate: str | nn.Module | tuple[str, nn.Module],
    cfg: GateConfig,
    *,
    on_progress: Progress = _quiet,
) -> GateReport:
    """Baseline and candidate models (specs, modules, or (name, module) pairs) built in this
    process and timed interleaved: per configuration, a short warm-up of each, then
    ``cfg.rounds`` rounds, each a timed block of A and of B (order alternating A B / B A), each
    block ``budget_s / (2 * rounds)`` seconds. Re-measurements add as many rounds again. The
    decision uses the pooled per-call samples (no calibration: both ran on the same machine at
    the same time) and a bootstrap over whole rounds."""
    started = time.perf_counter()
    a = _as_model(baseline, cfg.model_args)
    b = _as_model(candidate, cfg.model_args)
    label_b = b.name if b.name != a.name else f"{b.name} (candidate)"
    report = GateReport(
        "ab",
        a.spec or a.name,
        b.spec or label_b,
        environment=_environment(cfg.configs[0]),
        settings=cfg.to_dict(),
    )
    for config in cfg.configs:
        sa, sb = a.static(config), b.static(config)
        label = key_label(result_key(sb))
        if not _static_first(report, b.name, label, sa, sb, cfg):
            continue
        on_progress(f"{a.name} vs {b.name}: {label}: preparing")
        runs = _Interleaved(
            prepare(a.module, config, name=a.name),
            prepare(b.module, config, name=b.name),
            block_s=cfg.budget_s / (2 * cfg.rounds),
            rounds=cfg.rounds,
            label=f"{a.name} vs {b.name}: {label}",
            on_progress=on_progress,
        )
        samples = LatencySamples(baseline=[], candidate=[], paired=True)
        runs.warm_up(min(1.0, cfg.budget_s / 10))
        runs.measure(samples)
        mem_a = mem_b = None
        if cfg.memory and "peak_memory_bytes" in cfg.metrics:
            on_progress(f"{runs.label}: peak memory")
            mem_a = _peak_memory(a, runs.a)
            mem_b = _peak_memory(b, runs.b)
        base = dataclasses.replace(
            sa, peak_memory_bytes=mem_a, effective_batch_size=runs.a.batch_size
        )
        cand = dataclasses.replace(
            sb, peak_memory_bytes=mem_b, effective_batch_size=runs.b.batch_size
        )
        remeasure = runs.measure
        report.verdicts += _decide_pair(b.name, label, base, cand, samples, remeasure, cfg)
    report.elapsed_s = time.perf_counter() - started
    return report
