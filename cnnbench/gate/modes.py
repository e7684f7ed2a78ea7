"""The gate's modes: save, check, compare_files and ab.

Every mode validates before it measures: the configuration is type-checked on construction,
every model spec is resolved (built) and, in ``check``, every model configuration matched to
a baseline row before the first model is timed. Model code runs under
:func:`~cnnbench.gate.guard.model_code`: what it raises (``SystemExit`` and its own
``KeyboardInterrupt`` included) becomes an ``error`` verdict for the metrics it prevented
(``check``/``ab``; the report then exits 2) or a ModelCodeError (``save``: no baseline is
written). A calibration ratio outside the sane range is an ``error`` verdict too, never a
regression.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from cnnbench.environment import fingerprint
from cnnbench.errors import UsageError
from cnnbench.report.format import config_label as describe
from cnnbench.results import Result, Run
from cnnbench.runtime import RuntimeConfig, resolve_device
from cnnbench.spec import LoadedModel

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
from .guard import ModelCodeError, watch_sigint
from .measure import Progress, _quiet, as_model, measure_calibrated, measure_pair, static_row
from .outputs import check_writable
from .stats import CalibrationError, LatencySamples, decide_with_remeasure
from .verdicts import (
    GateReport,
    Verdict,
    _skipped,
    deterministic_verdict,
    error_verdict,
    latency_verdicts,
    memory_verdict,
)

_TIMED = ("latency_ms", "throughput_ips", "peak_memory_bytes")


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


def _timed_metrics(cfg: GateConfig, metrics: tuple[str, ...] = _TIMED) -> list[str]:
    """The timed metrics configured (peak memory only when memory is measured)."""
    return [m for m in metrics if m in cfg.metrics and (cfg.memory or m != "peak_memory_bytes")]


def _timing_skipped(
    name: str, label: str, base: Result, cand: Result | None, cfg: GateConfig, reason: str
) -> list[Verdict]:
    return [
        _skipped(name, label, m, _metric_value(base, m), _metric_value(cand, m), reason)
        for m in _timed_metrics(cfg)
    ]


def _errors(
    name: str,
    label: str,
    cfg: GateConfig,
    reason: str,
    metrics: tuple[str, ...] = _TIMED,
    base: Result | None = None,
    cand: Result | None = None,
) -> list[Verdict]:
    """Error verdicts for those of ``metrics`` that are configured (peak memory only when
    memory is measured): they were asked for and could not be measured or compared."""
    return [
        error_verdict(
            name, label, m, reason, base=_metric_value(base, m), cand=_metric_value(cand, m)
        )
        for m in metrics
        if m in cfg.metrics and (cfg.memory or m != "peak_memory_bytes")
    ]


def _config_label(name: str, config: RuntimeConfig) -> str:
    """The label of a configuration whose static profile could not be made."""
    kind = config.device.split(":")[0]
    if kind == "auto":
        kind = resolve_device("auto").type
    return describe(dataclasses.replace(config, device=kind))


def _environment(config: RuntimeConfig) -> dict[str, Any]:
    env = fingerprint(resolve_device(config.device))
    env["threads"] = config.threads if config.threads is not None else torch.get_num_threads()
    return env


def _wants_timing(cfg: GateConfig) -> bool:
    return bool(_timed_metrics(cfg))


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


def _build_all(cfg: GateConfig, on_progress: Progress) -> list[LoadedModel]:
    """Every configured model built before anything is timed (UsageError for a spec that
    does not resolve, ModelCodeError when building raises)."""
    models = []
    for spec in cfg.models:
        on_progress(f"{spec}: building")
        models.append(as_model(spec, cfg.model_args))
    return models


def save(cfg: GateConfig, path: str | os.PathLike[str], *, on_progress: Progress = _quiet) -> Run:
    """Measure every configured model and configuration and write the baseline to ``path``.

    Fails closed: the path is checked writable and every model built before timing starts;
    a model whose code raises (ModelCodeError) or whose peak memory cannot be measured
    (UsageError) stops the save with nothing written."""
    if not cfg.models:
        raise UsageError(
            "gate save: no models configured; add models = [...] to "
            "[tool.cnnbench.gate] or pass --model"
        )
    check_writable(path, "--out")
    run = Run(
        results=[],
        environment=_environment(cfg.configs[0]),
        config={"command": "gate save", "gate": cfg.to_dict()},
    )
    with watch_sigint():
        models = _build_all(cfg, on_progress)
        for model in models:
            for config in cfg.configs:
                if not _wants_timing(cfg):
                    run.results.append(static_row(model, config))
                    continue
                on_progress(f"{model.name}: {describe(config)}")
                result, cal, memory_error = measure_calibrated(
                    model, config, cfg, memory=cfg.memory, calibrate=cfg.calibrate
                )
                if memory_error:
                    raise UsageError(
                        f"{model.name} ({describe(config)}): {memory_error}; fix the model "
                        "or save with --no-memory"
                    )
                run.results.append(result)
                if cal:
                    run.results.append(_calibration_row(cal, result))
    try:
        run.save(path)
    except OSError as exc:
        raise UsageError(
            f"--out {path}: the baseline could not be written ({exc.strerror or exc}); "
            "nothing was saved"
        ) from None
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
        samples_ms=samples,  # in the row's clock (the engine chose one for both)
        clock=row.clock,
        cpu_samples_ms=samples if row.clock == "cpu" else None,
    )


def _clock_label(base: Result, cand: Result) -> str:
    """Which clock the latency samples of a pair come from: ``wall``, ``cpu``, or
    ``baseline wall / candidate cpu`` when they differ (a quiet baseline, a busy check)."""
    b, c = base.clock or "wall", cand.clock or "wall"
    return b if b == c else f"baseline {b} / candidate {c}"


def _decide_pair(
    name: str,
    label: str,
    base: Result,
    cand: Result,
    samples: LatencySamples,
    remeasure: Callable[[LatencySamples], None],
    cfg: GateConfig,
    memory_error: str | None = None,
    clock: str | None = None,
) -> list[Verdict]:
    clock = clock or _clock_label(base, cand)
    out: list[Verdict] = []
    latency = ("latency_ms", "throughput_ips")
    if any(m in cfg.metrics for m in latency):
        if not any(samples.baseline) or not any(samples.candidate):
            side = "baseline" if not any(samples.baseline) else "candidate"
            fix = "re-save the baseline" if side == "baseline" else "re-measure the candidate"
            out += _errors(
                name, label, cfg, f"no raw latency samples in the {side}; {fix}", latency, base
            )
        else:
            try:
                decision, n = decide_with_remeasure(
                    samples,
                    remeasure,
                    max_remeasure=cfg.max_remeasure,
                    alpha=cfg.alpha,
                    min_effect=cfg.min_effect,
                    n_boot=cfg.n_boot,
                    seed=cfg.seed,
                )
            except (CalibrationError, ModelCodeError) as exc:
                out += _errors(name, label, cfg, str(exc), latency, base, cand)
            else:
                rows = latency_verdicts(
                    name,
                    label,
                    samples,
                    decision,
                    n,
                    base.batch_size,
                    cand.effective_batch_size or cand.batch_size,
                )
                out += [
                    dataclasses.replace(v, reason=f"{v.reason}; clock {clock}")
                    for v in rows
                    if v.metric in cfg.metrics
                ]
    if "peak_memory_bytes" in cfg.metrics and memory_error:
        out += _errors(name, label, cfg, memory_error, ("peak_memory_bytes",), base)
    elif "peak_memory_bytes" in cfg.metrics and (
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
    """Measure the configured set now and decide every metric against the baseline file.

    Before the first model is timed: the baseline is read and validated, the environment
    compared, every model built and every model configuration matched to a baseline row
    (UsageError otherwise). Model code that raises while profiled or timed gives ``error``
    verdicts (exit 2) and the other models are still checked."""
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
    with watch_sigint():
        models = _build_all(cfg, on_progress)
        plan: list[tuple[LoadedModel, RuntimeConfig, Result, Result, str]] = []
        for model in models:
            for config in cfg.configs:
                try:
                    skeleton = static_row(model, config)
                except ModelCodeError as exc:
                    label = _config_label(model.name, config)
                    report.verdicts += _errors(
                        model.name, label, cfg, str(exc), (*DETERMINISTIC_METRICS, *_TIMED)
                    )
                    continue
                key = result_key(skeleton)
                label = key_label(key)
                base = _find(index, key)
                if base is None:
                    raise UsageError(
                        f"{baseline_path}: no baseline for {model.name} ({label}); re-save it "
                        "with `cnnbench gate save`"
                    )
                plan.append((model, config, skeleton, base, label))
        for model, config, skeleton, base, label in plan:
            report.verdicts += _check_one(
                model, config, skeleton, base, label, base_run, cfg, on_progress, report.notes
            )
    report.elapsed_s = time.perf_counter() - started
    return report


def _check_one(
    model: LoadedModel,
    config: RuntimeConfig,
    skeleton: Result,
    base: Result,
    label: str,
    base_run: Run,
    cfg: GateConfig,
    on_progress: Progress,
    notes: list[str],
) -> list[Verdict]:
    """The verdicts of one model configuration in ``check`` mode."""
    sub = GateReport("check", "", "")
    if not _static_first(sub, model.name, label, base, skeleton, cfg):
        return sub.verdicts
    base_cal = _calibration(base_run, base) if cfg.calibrate else None
    on_progress(f"{model.name}: {label}")
    try:
        cand, cal, memory_error = measure_calibrated(
            model, config, cfg, memory=cfg.memory, calibrate=bool(base_cal)
        )
    except ModelCodeError as exc:
        return sub.verdicts + _errors(model.name, label, cfg, str(exc), base=base)
    samples = LatencySamples(
        baseline=[base.clock_samples()],
        candidate=[cand.clock_samples()],
        baseline_calibration=base_cal or None,
        candidate_calibration=cal or None,
    )

    def remeasure(s: LatencySamples) -> None:
        on_progress(f"{model.name}: ambiguous, re-measuring")
        more, cal, _ = measure_calibrated(
            model, config, cfg, memory=False, calibrate=s.candidate_calibration is not None,
            clock=cand.clock,
        )  # fmt: skip
        s.candidate.append(more.clock_samples())
        if s.candidate_calibration is not None:
            s.candidate_calibration.extend(cal)

    verdicts = _decide_pair(model.name, label, base, cand, samples, remeasure, cfg, memory_error)
    if cfg.calibrate and not base_cal:
        notes.append(
            f"{model.name}: the baseline has no calibration rows; "
            "latency compared without normalisation"
        )
    return sub.verdicts + verdicts


def compare_files(
    cfg: GateConfig,
    baseline_path: str | os.PathLike[str],
    candidate_path: str | os.PathLike[str],
    *,
    allow_env_mismatch: bool = False,
) -> GateReport:
    """Decide every metric of a saved candidate against a saved baseline (no measuring).
    Either file may be a cnnbench run or a pytest-benchmark JSON; re-measuring is impossible
    here, so ambiguous latency results are finalised as they stand. A baseline row the
    candidate lacks is an ``error`` verdict: the candidate did not measure what the
    baseline holds."""
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
        base_run.environment,
        cand_run.environment,
        allow_env_mismatch,
        str(candidate_path),
        str(baseline_path),
    )
    index = _index(base_run.results)
    matched: set[int] = set()
    for cand in cand_run.results:
        if _is_calibration(cand):
            continue
        key = result_key(cand)
        label = key_label(key)
        base = _find(index, key)
        if base is None:
            report.notes.append(f"{cand.model} ({label}): not in the baseline, not compared")
            continue
        matched.add(id(base))
        if not _static_first(report, cand.model, label, base, cand, cfg, "compared"):
            continue
        base_cal = _calibration(base_run, base) if cfg.calibrate else None
        cand_cal = _calibration(cand_run, cand) if cfg.calibrate else None
        samples = LatencySamples(
            baseline=[base.clock_samples()],
            candidate=[cand.clock_samples()],
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
    for key, base in index.items():
        if id(base) not in matched:
            report.verdicts += _errors(
                base.model,
                key_label(key),
                cfg,
                f"not in the candidate {candidate_path}; measure it there too",
                (*DETERMINISTIC_METRICS, *_TIMED),
                base,
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
    block ``budget_s / (2 * rounds)`` seconds, through the engine
    (:func:`~cnnbench.gate.measure.measure_pair`). A re-measurement is another such measurement,
    its rounds added to the first's. The
    decision uses the pooled per-call samples (no calibration: both ran on the same machine at
    the same time) and a bootstrap over whole rounds. Both models are built before anything
    is timed; model code that raises later gives ``error`` verdicts (exit 2)."""
    started = time.perf_counter()
    with watch_sigint():
        a = as_model(baseline, cfg.model_args)
        b = as_model(candidate, cfg.model_args)
        label_b = b.name if b.name != a.name else f"{b.name} (candidate)"
        report = GateReport(
            "ab",
            baseline if isinstance(baseline, str) else a.name,
            candidate if isinstance(candidate, str) else label_b,
            environment=_environment(cfg.configs[0]),
            settings=cfg.to_dict(),
        )
        for config in cfg.configs:
            try:
                report.verdicts += _ab_one(a, b, config, cfg, on_progress)
            except ModelCodeError as exc:
                label = _config_label(b.name, config)
                done = {v.metric for v in report.verdicts if v.config == label}
                metrics = tuple(m for m in (*DETERMINISTIC_METRICS, *_TIMED) if m not in done)
                report.verdicts += _errors(b.name, label, cfg, str(exc), metrics)
    report.elapsed_s = time.perf_counter() - started
    return report


def _ab_one(
    a: LoadedModel, b: LoadedModel, config: RuntimeConfig, cfg: GateConfig, on_progress: Progress
) -> list[Verdict]:
    """The verdicts of one configuration in ``ab`` mode (ModelCodeError when a model's code
    raises before its timing is decided)."""
    sub = GateReport("ab", "", "")
    sa, sb = static_row(a, config), static_row(b, config)
    label = key_label(result_key(sb))
    if not _static_first(sub, b.name, label, sa, sb, cfg):
        return sub.verdicts
    on_progress(f"{a.name} vs {b.name}: {label}: timing")
    memory = cfg.memory and "peak_memory_bytes" in cfg.metrics
    try:
        ea, eb = measure_pair(a, b, config, cfg, memory=memory)
    except ModelCodeError as exc:
        return sub.verdicts + _errors(b.name, label, cfg, str(exc), base=sa)
    clock = ea.measurement.clock  # one clock for both sides (the engine chooses per config)
    samples = LatencySamples(
        baseline=list(ea.measurement.timed_blocks),
        candidate=list(eb.measurement.timed_blocks),
        paired=True,
    )
    memory_error = (ea.memory_error or eb.memory_error) if memory else None
    base = dataclasses.replace(
        sa,
        peak_memory_bytes=ea.result.peak_memory_bytes if memory else None,
        effective_batch_size=ea.result.effective_batch_size,
    )
    cand = dataclasses.replace(
        sb,
        peak_memory_bytes=eb.result.peak_memory_bytes if memory else None,
        effective_batch_size=eb.result.effective_batch_size,
    )

    def remeasure(s: LatencySamples) -> None:
        on_progress(f"{a.name} vs {b.name}: {label}: ambiguous, re-measuring")
        more_a, more_b = measure_pair(a, b, config, cfg, memory=False, clock=clock)
        s.baseline += more_a.measurement.timed_blocks
        s.candidate += more_b.measurement.timed_blocks

    return sub.verdicts + _decide_pair(
        b.name, label, base, cand, samples, remeasure, cfg, memory_error, clock
    )
