"""The measurement harness: settle, then time until the median is known well enough.

Conventions:

* Every sample is the wall time of one call of ``fn`` in milliseconds. On CPU it is taken with
  ``time.perf_counter_ns`` around the call (plus ``sync()`` when one is given); on CUDA with a
  pair of CUDA events recorded around the call and a synchronisation after it, so a sample is
  the device time of one call and calls never overlap.
* Warm-up runs until timings settle: the median of the last window of ``w`` iterations is within
  ``warmup_tol`` of the median of the window before it (``w`` is chosen so that a window lasts
  about 20 ms, between 3 and 50 iterations), capped by ``max_warmup`` iterations and a share of
  the budget. Warm-up samples are discarded.
* Timed iterations run until the distribution-free 95% confidence interval of the median (order
  statistics of a Binomial(n, 1/2)) lies within ``target_ci`` of the median on both sides, or
  the budget (``budget_s``, warm-up included) runs out, or ``max_iters`` is reached, whichever
  comes first; at least ``min_iters`` are always taken, even past the budget.
* Inside the timed loop there is a clock read before and after the call and a list append; the
  stopping rule is evaluated only at checkpoints (every ``check_every`` iterations, growing
  geometrically with the sample count), never per iteration.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "TimingStats",
    "cpu_loop_two_clocks",
    "measure",
    "median_ci",
    "percentile",
    "summarize",
    "warm_up",
]

Clock = Callable[[], int]

_WINDOW_S = 0.02  # a warm-up window lasts about this long
_MIN_WINDOW, _MAX_WINDOW = 3, 50
_WARMUP_SHARE = 0.3  # default share of the budget that warm-up may use


@dataclass(frozen=True)
class TimingStats:
    """Latency statistics of one measured callable, all in milliseconds per call.

    ``ci_low_ms``/``ci_high_ms`` bound the median with ``confidence`` (distribution-free; with
    fewer than 6 samples no 95% interval exists and the bounds are min and max, with the
    coverage actually reached in ``ci_coverage``). ``stop_reason`` is ``"ci"`` (target reached),
    ``"budget"`` or ``"max_iters"``.
    """

    median_ms: float
    mean_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    p90_ms: float
    p99_ms: float
    iqr_ms: float
    ci_low_ms: float
    ci_high_ms: float
    ci_coverage: float
    warmup_iters: int
    timed_iters: int
    warmup_settled: bool
    stop_reason: str
    elapsed_s: float
    samples_ms: list[float] = field(repr=False)

    @property
    def ci_rel_halfwidth(self) -> float:
        """The larger distance from the median to a CI bound, as a fraction of the median."""
        if self.median_ms <= 0:
            return 0.0
        return max(self.median_ms - self.ci_low_ms, self.ci_high_ms - self.median_ms) / (
            self.median_ms
        )

    @property
    def converged(self) -> bool:
        return self.stop_reason == "ci"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, linear interpolation between
    order statistics (numpy's default ``linear`` method)."""
    n = len(sorted_values)
    if n == 0:
        raise ValueError("percentile of no values")
    pos = (n - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * frac


def _median_ci_ranks(n: int, confidence: float) -> tuple[int, int, float]:
    """0-based ranks (lo, hi) of the order statistics bounding the median, and the coverage.

    The interval ``[x_(j), x_(n-1-j)]`` (0-based) covers the population median with probability
    ``1 - 2 P(B <= j)``, B ~ Binomial(n, 1/2); ``j`` is the largest rank keeping that at least
    ``confidence``. Exact up to 1000 samples, normal approximation with continuity correction
    above. With too few samples (n < 6 at 95%) the bounds are min and max and the coverage
    returned is below ``confidence``.
    """
    if n < 1:
        raise ValueError("no samples")
    alpha_half = (1.0 - confidence) / 2.0
    if n > 1000:
        z = _z_two_sided(confidence)
        j = max(0, math.floor(n / 2.0 - 0.5 - z * math.sqrt(n) / 2.0))
        return j, n - 1 - j, confidence
    pmf = 0.5**n
    cdf = pmf
    if cdf > alpha_half:
        return 0, n - 1, max(0.0, 1.0 - 2.0 * cdf)
    j = 0
    while True:
        pmf *= (n - j) / (j + 1)
        if cdf + pmf > alpha_half:
            break
        cdf += pmf
        j += 1
    return j, n - 1 - j, 1.0 - 2.0 * cdf


def _z_two_sided(confidence: float) -> float:
    """The standard normal quantile z with P(|Z| <= z) = confidence (bisection on erf)."""
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2.0
        if math.erf(mid / math.sqrt(2.0)) < confidence:
            lo = mid
        else:
            hi = mid
    return hi


def median_ci(sorted_values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Distribution-free confidence interval of the median of already sorted values."""
    lo, hi, _ = _median_ci_ranks(len(sorted_values), confidence)
    return sorted_values[lo], sorted_values[hi]


def summarize(
    samples_ms: Sequence[float],
    *,
    confidence: float = 0.95,
    warmup_iters: int = 0,
    warmup_settled: bool = True,
    stop_reason: str = "max_iters",
    elapsed_s: float = 0.0,
) -> TimingStats:
    """Statistics of per-call samples in milliseconds (std is the sample std, ddof=1)."""
    values = sorted(samples_ms)
    n = len(values)
    if n == 0:
        raise ValueError("no samples to summarize")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    lo_rank, hi_rank, coverage = _median_ci_ranks(n, confidence)
    return TimingStats(
        median_ms=percentile(values, 50),
        mean_ms=mean,
        std_ms=std,
        min_ms=values[0],
        max_ms=values[-1],
        p90_ms=percentile(values, 90),
        p99_ms=percentile(values, 99),
        iqr_ms=percentile(values, 75) - percentile(values, 25),
        ci_low_ms=values[lo_rank],
        ci_high_ms=values[hi_rank],
        ci_coverage=coverage,
        warmup_iters=warmup_iters,
        timed_iters=n,
        warmup_settled=warmup_settled,
        stop_reason=stop_reason,
        elapsed_s=elapsed_s,
        samples_ms=list(samples_ms),
    )


# ---------------------------------------------------------------------------------------------
# Timed loops. Each runs up to ``count`` calls, appending one raw sample per call, and stops
# early (after at least one call) once the clock passes ``deadline_ns`` (None: no deadline).
# Returns the clock reading after the last call. Raw units: ns on CPU, ms on CUDA.


def _cpu_loop(
    fn: Callable[[], Any],
    count: int,
    out: list[float],
    deadline_ns: int | None,
    clock: Clock,
    sync: Callable[[], Any] | None,
) -> int:
    append = out.append
    t1 = clock()
    if sync is None:
        if deadline_ns is None:
            for _ in range(count):
                t0 = clock()
                fn()
                t1 = clock()
                append(t1 - t0)
        else:
            for _ in range(count):
                t0 = clock()
                fn()
                t1 = clock()
                append(t1 - t0)
                if t1 > deadline_ns:
                    break
    else:
        for _ in range(count):
            t0 = clock()
            fn()
            sync()
            t1 = clock()
            append(t1 - t0)
            if deadline_ns is not None and t1 > deadline_ns:
                break
    return t1


def cpu_loop_two_clocks(
    fn: Callable[[], Any],
    count: int,
    wall_out: list[float],
    cpu_out: list[float],
    deadline_ns: int | None,
    cpu_clock: Clock,
) -> int:
    """The CPU loop with a second clock: per call, wall ns (``perf_counter_ns``) into
    ``wall_out`` and ``cpu_clock`` ns (thread or process CPU time) into ``cpu_out``. The CPU
    clock is read outside the wall interval, so its cost (a system call, microseconds on a
    busy machine) never lands in a wall sample. Returns the wall clock after the last call."""
    wall = time.perf_counter_ns
    t1 = wall()
    for _ in range(count):
        c0 = cpu_clock()
        t0 = wall()
        fn()
        t1 = wall()
        c1 = cpu_clock()
        wall_out.append(t1 - t0)
        cpu_out.append(c1 - c0)
        if deadline_ns is not None and t1 > deadline_ns:
            break
    return t1


def _make_cuda_loop(device: torch.device) -> Callable[..., int]:
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    stream = torch.cuda.current_stream(device)

    def loop(
        fn: Callable[[], Any],
        count: int,
        out: list[float],
        deadline_ns: int | None,
        clock: Clock,
        sync: Callable[[], Any] | None,
    ) -> int:
        append = out.append
        torch.cuda.synchronize(device)
        t1 = clock()
        for _ in range(count):
            start.record(stream)
            fn()
            end.record(stream)
            end.synchronize()
            append(start.elapsed_time(end))
            if deadline_ns is not None:
                t1 = clock()
                if t1 > deadline_ns:
                    break
        return clock()

    return loop


_RAW_TO_MS = {"cpu": 1e-6, "cuda": 1.0}


def _loop_for(device: torch.device) -> Callable[..., int]:
    factories: dict[str, Callable[[torch.device], Callable[..., int]]] = {
        "cpu": lambda _d: _cpu_loop,
        "cuda": _make_cuda_loop,
    }
    try:
        return factories[device.type](device)
    except KeyError:
        raise ValueError(f"no timer for device type {device.type!r}; use cpu or cuda") from None


def _median(values: Sequence[float]) -> float:
    return percentile(sorted(values), 50)


def _warm_up(
    loop: Callable[..., int],
    fn: Callable[[], Any],
    *,
    clock: Clock,
    sync: Callable[[], Any] | None,
    raw_to_ms: float,
    min_warmup: int,
    max_warmup: int,
    tol: float,
    deadline_ns: int,
) -> tuple[int, bool]:
    """Run ``fn`` until two consecutive windows have medians within ``tol``; returns the number
    of warm-up calls and whether the timings settled before a cap was hit."""
    raw: list[float] = []
    if max_warmup <= 0:
        return 0, False
    probe = min(max(min_warmup, 3), max_warmup)
    t = loop(fn, probe, raw, deadline_ns, clock, sync)
    estimate_s = max(min(raw[1:] or raw) * raw_to_ms / 1000.0, 1e-9)
    window = int(min(_MAX_WINDOW, max(_MIN_WINDOW, math.ceil(_WINDOW_S / estimate_s))))
    while True:
        n = len(raw)
        if n >= max(min_warmup, 2 * window):
            last = _median(raw[n - window :])
            prev = _median(raw[n - 2 * window : n - window])
            if abs(last - prev) <= tol * prev:
                return n, True
        if n >= max_warmup or t > deadline_ns:
            return n, False
        t = loop(fn, min(window, max_warmup - n), raw, deadline_ns, clock, sync)


def warm_up(
    fn: Callable[[], Any],
    *,
    device: str | torch.device = "cpu",
    budget_s: float = 1.0,
    min_warmup: int = 2,
    max_warmup: int = 500,
    tol: float = 0.05,
    clock: Clock = time.perf_counter_ns,
) -> tuple[int, bool, float]:
    """Warm ``fn`` up as :func:`measure` does (until two consecutive windows agree within
    ``tol``, or ``budget_s`` / ``max_warmup`` run out). Returns (calls, settled, estimate of
    one call in ms from a final short probe)."""
    dev = torch.device(device)
    loop = _loop_for(dev)
    raw_to_ms = _RAW_TO_MS[dev.type]
    started = clock()
    iters, settled = _warm_up(
        loop, fn, clock=clock, sync=None, raw_to_ms=raw_to_ms, min_warmup=min_warmup,
        max_warmup=max_warmup, tol=tol, deadline_ns=started + int(budget_s * 1e9),
    )  # fmt: skip
    probe: list[float] = []
    loop(fn, 3, probe, None, clock, None)
    return iters, settled, _median(probe) * raw_to_ms


def measure(
    fn: Callable[[], Any],
    *,
    device: str | torch.device = "cpu",
    sync: Callable[[], Any] | None = None,
    target_ci: float = 0.02,
    budget_s: float = 5.0,
    min_iters: int = 10,
    max_iters: int = 100_000,
    min_warmup: int = 2,
    max_warmup: int = 500,
    warmup_tol: float = 0.05,
    warmup_budget_s: float | None = None,
    check_every: int = 10,
    confidence: float = 0.95,
    clock: Clock = time.perf_counter_ns,
) -> TimingStats:
    """Warm ``fn`` up, then time it call by call until the median is known to ``target_ci``.

    ``budget_s`` is the wall-clock budget of warm-up plus timing (seconds); warm-up may use
    ``warmup_budget_s`` of it (default 30%). ``sync`` is called after each call inside the timed
    region on CPU (for work that ``fn`` leaves running asynchronously). ``clock`` returns
    nanoseconds and is replaceable for tests; on CUDA samples come from events and ``clock``
    only enforces the budget. See the module docstring for the rules.
    """
    if target_ci <= 0:
        raise ValueError("target_ci must be > 0 (a fraction of the median, e.g. 0.02)")
    if budget_s <= 0:
        raise ValueError("budget_s must be > 0 seconds")
    if min_iters < 1 or max_iters < min_iters:
        raise ValueError("need 1 <= min_iters <= max_iters")
    dev = torch.device(device)
    loop = _loop_for(dev)
    raw_to_ms = _RAW_TO_MS[dev.type]
    budget_ns = int(budget_s * 1e9)
    warm_ns = int(
        (warmup_budget_s if warmup_budget_s is not None else budget_s * _WARMUP_SHARE) * 1e9
    )

    started = clock()
    warmup_iters, settled = _warm_up(
        loop,
        fn,
        clock=clock,
        sync=sync,
        raw_to_ms=raw_to_ms,
        min_warmup=min_warmup,
        max_warmup=max_warmup,
        tol=warmup_tol,
        deadline_ns=started + min(warm_ns, budget_ns),
    )

    deadline = started + budget_ns
    raw: list[float] = []
    t = loop(fn, min_iters, raw, None, clock, sync)  # min_iters are taken whatever the budget
    stop_reason = "max_iters"
    while True:
        n = len(raw)
        values = sorted(raw)
        med = percentile(values, 50)
        lo_rank, hi_rank, coverage = _median_ci_ranks(n, confidence)
        if coverage >= confidence and max(med - values[lo_rank], values[hi_rank] - med) <= (
            target_ci * med
        ):
            stop_reason = "ci"
            break
        if n >= max_iters:
            stop_reason = "max_iters"
            break
        if t > deadline:
            stop_reason = "budget"
            break
        step = min(max(check_every, n // 8), max_iters - n)
        t = loop(fn, step, raw, deadline, clock, sync)
    elapsed_s = (clock() - started) / 1e9
    return summarize(
        [v * raw_to_ms for v in raw],
        confidence=confidence,
        warmup_iters=warmup_iters,
        warmup_settled=settled,
        stop_reason=stop_reason,
        elapsed_s=elapsed_s,
    )
