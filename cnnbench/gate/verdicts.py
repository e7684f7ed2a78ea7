"""Per-metric verdicts and the report of one gate run."""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from cnnbench.report import format as fmt

from .config import METRICS
from .stats import Decision, LatencySamples, _pct


@dataclass
class Verdict:
    """The decision on one metric of one model configuration.

    ``decision``: pass | regression | improvement | skipped | error (the metric could not be
    measured or compared: the model code raised, the calibration moved out of range, a sample
    is missing; the gate then exits 2, never passes). ``candidate`` is the raw value measured,
    ``calibrated`` the candidate after calibration (latency: divided by the calibration
    ratio; throughput: multiplied), when a calibration was applied. ``ratio`` is
    candidate/baseline (latency: calibration-normalised; throughput: its inverse). ``p_value``
    and the CI exist for latency and throughput only. ``remeasured``: re-measurements made
    because the first result was ambiguous.
    """

    model: str
    config: str
    metric: str
    baseline: float | None
    candidate: float | None
    decision: str
    reason: str
    ratio: float | None = None
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    remeasured: int = 0
    n_baseline: int | None = None
    n_candidate: int | None = None
    calibration_ratio: float | None = None
    calibrated: float | None = None

    @property
    def unit(self) -> str:
        return METRICS[self.metric][1]

    @property
    def failed(self) -> bool:
        return self.decision == "regression"

    @property
    def errored(self) -> bool:
        return self.decision == "error"


def _relative(
    metric: str, base: float | None, cand: float | None, tol: float, what: str
) -> tuple[str, str, float | None]:
    if base is None or cand is None:
        side = "baseline" if base is None else "candidate"
        return "skipped", f"not measured in the {side}", None
    if base == 0:
        ratio = 1.0 if cand == 0 else math.inf
    else:
        ratio = cand / base
    limit = f"tolerance {tol:.0%}" if tol else "exact"
    if cand > base * (1.0 + tol):
        return "regression", f"{what} grew {_pct(ratio)} ({limit})", ratio
    if cand < base * (1.0 - tol):
        return "improvement", f"{what} shrank {_pct(ratio)} ({limit}); re-save the baseline", ratio
    same = "unchanged" if cand == base else f"{_pct(ratio)}, within {limit}"
    return "pass", same, ratio


def deterministic_verdict(
    model: str, config: str, metric: str, base: float | None, cand: float | None, tol: float = 0.0
) -> Verdict:
    """Exact (``tol`` 0) or relative-tolerance comparison of a static count."""
    decision, reason, ratio = _relative(metric, base, cand, tol, metric)
    return Verdict(model, config, metric, base, cand, decision, reason, ratio=ratio)


def memory_verdict(
    model: str, config: str, base: int | None, cand: int | None, tol: float = 0.10
) -> Verdict:
    """Peak memory against a relative tolerance."""
    decision, reason, ratio = _relative("peak_memory_bytes", base, cand, tol, "peak memory")
    return Verdict(model, config, "peak_memory_bytes", base, cand, decision, reason, ratio=ratio)


def latency_verdicts(
    model: str,
    config: str,
    samples: LatencySamples,
    decision: Decision,
    remeasured: int,
    batch_base: int,
    batch_cand: int,
) -> list[Verdict]:
    """The latency row and the throughput row that mirrors it."""
    a, b = samples.pooled()
    med_a, med_b = statistics.median(a), statistics.median(b)
    cal = decision.calibration_ratio
    note = f" (calibration {fmt.ratio(cal)})" if cal else ""
    verdict = functools.partial(
        Verdict,
        p_value=decision.p_value,
        remeasured=remeasured,
        n_baseline=len(a),
        n_candidate=len(b),
        calibration_ratio=decision.calibration_ratio,
    )
    lat = verdict(
        model,
        config,
        "latency_ms",
        med_a,
        med_b,
        decision.outcome,
        decision.reason + note,
        ratio=decision.ratio,
        ci_low=decision.ci_low,
        ci_high=decision.ci_high,
        calibrated=med_b / cal if cal else None,
    )
    tput = verdict(
        model,
        config,
        "throughput_ips",
        batch_base * 1000.0 / med_a,
        batch_cand * 1000.0 / med_b,
        decision.outcome,
        "mirrors latency: " + decision.reason + note,
        ratio=1.0 / decision.ratio,
        ci_low=1.0 / decision.ci_high,
        ci_high=1.0 / decision.ci_low,
        calibrated=batch_cand * 1000.0 / med_b * cal if cal else None,
    )
    return [lat, tput]


def _skipped(model: str, config: str, metric: str, base: Any, cand: Any, reason: str) -> Verdict:
    return Verdict(model, config, metric, base, cand, "skipped", reason)


def error_verdict(
    model: str, config: str, metric: str, reason: str, base: Any = None, cand: Any = None
) -> Verdict:
    """A metric that could not be measured or compared (the gate exits 2 on it)."""
    return Verdict(model, config, metric, base, cand, "error", reason)


@dataclass
class GateReport:
    """Every verdict of one gate run, plus what a reader needs to trust it."""

    mode: str  # check | ab | compare
    baseline: str
    candidate: str
    verdicts: list[Verdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.failed]

    @property
    def errors(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.errored]

    @property
    def unusable(self) -> str | None:
        """Why this report cannot pass or fail anything (then the exit code is 2), else None:
        a metric that could not be measured, or nothing compared at all."""
        if self.errors:
            first = self.errors[0]
            more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
            where = f"{first.model} {first.config} {first.metric}: "
            if first.reason.startswith(f"{first.model} "):
                where = ""  # the reason names the model and configuration already
            return f"{len(self.errors)} check(s) could not be made: {where}{first.reason}{more}"
        if not any(v.decision != "skipped" for v in self.verdicts):
            return "nothing was compared; check the models, configurations and metrics"
        return None

    @property
    def exit_code(self) -> int:
        """0 pass, 1 regression, 2 when a requested check could not be made (which takes
        precedence: the gate never passes, or half-fails, what it did not measure)."""
        if self.unusable:
            return 2
        return 1 if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
