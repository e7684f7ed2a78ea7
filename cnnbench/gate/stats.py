"""The latency decision: Mann-Whitney U, a bootstrap CI of the median ratio, a minimum effect
size, and re-measurement while ambiguous. Pure functions of samples (ms); nothing is timed here."""

from __future__ import annotations

import dataclasses
import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cnnbench.errors import UsageError
from cnnbench.report import format as fmt

#: The calibration ratios (now / at save time) a check can correct for. Outside them the
#: machine changed too much for a ratio of medians to say anything about the model.
CALIBRATION_BOUNDS = (0.7, 1.4)


class CalibrationError(UsageError):
    """The calibration ratio is outside :data:`CALIBRATION_BOUNDS`: the check is unusable
    (exit 2), never a regression."""


def _phi(z: float) -> float:
    """Standard normal CDF (lower tail), accurate far into the tail."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _upper(z: float) -> float:
    """Standard normal survival function P(Z >= z), computed directly rather than as
    ``1 - cdf`` (which cancels to 0 beyond z ~ 8)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def p_text(p: float) -> str:
    """``p=0.0031`` or ``p<1e-6`` (through :func:`cnnbench.report.format.p_value`)."""
    text = fmt.p_value(p)
    return f"p{text}" if text.startswith("<") else f"p={text}"


def check_calibration(ratio: float | None) -> None:
    """CalibrationError when ``ratio`` (calibration now / at save time) is outside
    :data:`CALIBRATION_BOUNDS`."""
    low, high = CALIBRATION_BOUNDS
    if ratio is not None and not low <= ratio <= high:
        raise CalibrationError(
            f"calibration {fmt.ratio(ratio)} is outside {fmt.ratio(low)}-{fmt.ratio(high)}: "
            "the machine changed too much between save and check; re-save the baseline"
        )


@dataclass(frozen=True)
class MannWhitney:
    """Mann-Whitney U test of candidate ``b`` against baseline ``a``.

    ``u`` counts the pairs (a_i, b_j) with b_j > a_i (ties count 1/2). ``p_greater`` is the
    one-sided p-value for "b tends to be larger" (slower), ``p_less`` for "smaller";
    ``exact`` says whether the null distribution was enumerated (no ties, small samples) or
    approximated by the normal with tie and continuity corrections.
    """

    u: float
    n_a: int
    n_b: int
    z: float | None
    p_greater: float
    p_less: float
    exact: bool

    @property
    def p_two_sided(self) -> float:
        return min(1.0, 2.0 * min(self.p_greater, self.p_less))


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) of ``values`` and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties: list[int] = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = avg
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


@functools.cache
def _u_counts(n_b: int, n_a: int) -> tuple[int, ...]:
    """Number of orderings giving each U = 0..n_a*n_b (U = pairs with b > a), no ties."""
    if n_b == 0 or n_a == 0:
        return (1,)
    # The largest value is either a b (beating all n_a a's) or an a (beating no b).
    with_b = _u_counts(n_b - 1, n_a)
    with_a = _u_counts(n_b, n_a - 1)
    counts = [0] * (n_a * n_b + 1)
    for u, c in enumerate(with_b):
        counts[u + n_a] += c
    for u, c in enumerate(with_a):
        counts[u] += c
    return tuple(counts)


_EXACT_MAX_PAIRS = 400


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> MannWhitney:
    """Mann-Whitney U test of ``b`` (candidate) against ``a`` (baseline); see MannWhitney."""
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        raise ValueError("Mann-Whitney U needs samples on both sides")
    ranks, ties = _ranks([*a, *b])
    rank_sum_b = math.fsum(ranks[n_a:])
    u = rank_sum_b - n_b * (n_b + 1) / 2.0
    if not ties and n_a * n_b <= _EXACT_MAX_PAIRS:
        counts = _u_counts(n_b, n_a)
        total = math.comb(n_a + n_b, n_a)
        k = round(u)
        p_greater = sum(counts[k:]) / total
        p_less = sum(counts[: k + 1]) / total
        return MannWhitney(u, n_a, n_b, None, p_greater, p_less, True)
    n = n_a + n_b
    mean = n_a * n_b / 2.0
    tie_term = sum(t**3 - t for t in ties) / (n * (n - 1)) if n > 1 else 0.0
    var = n_a * n_b / 12.0 * ((n + 1) - tie_term)
    if var <= 0:  # every value equal: no evidence either way
        return MannWhitney(u, n_a, n_b, 0.0, 1.0, 1.0, False)
    sd = math.sqrt(var)
    z = (u - mean) / sd
    p_greater = _upper((u - mean - 0.5) / sd)
    p_less = _phi((u - mean + 0.5) / sd)
    return MannWhitney(u, n_a, n_b, z, min(1.0, p_greater), min(1.0, p_less), False)


def _medians(
    rng: np.random.Generator, x: np.ndarray, n_boot: int, chunk: int = 1 << 20
) -> np.ndarray:
    """Medians of ``n_boot`` resamples (with replacement, same size) of ``x``."""
    n = len(x)
    per = max(1, chunk // max(n, 1))
    out = np.empty(n_boot)
    for start in range(0, n_boot, per):
        stop = min(n_boot, start + per)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = np.median(x[idx], axis=1)
    return out


def _paired_round_medians(
    rng: np.random.Generator,
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    n_boot: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled medians of A and B over ``n_boot`` resamples of whole rounds (same rounds for A
    and B: a cluster bootstrap that keeps each round's A and B together)."""
    rounds = len(a)
    a_arr = [np.asarray(r, dtype=float) for r in a]
    b_arr = [np.asarray(r, dtype=float) for r in b]
    med_a = np.empty(n_boot)
    med_b = np.empty(n_boot)
    picks = rng.integers(0, rounds, size=(n_boot, rounds))
    for i, pick in enumerate(picks):
        med_a[i] = np.median(np.concatenate([a_arr[j] for j in pick]))
        med_b[i] = np.median(np.concatenate([b_arr[j] for j in pick]))
    return med_a, med_b


def bootstrap_ratio_ci(
    baseline: Sequence[Sequence[float]],
    candidate: Sequence[Sequence[float]],
    *,
    paired: bool = False,
    baseline_calibration: Sequence[float] | None = None,
    candidate_calibration: Sequence[float] | None = None,
    confidence: float = 0.99,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(candidate) / median(baseline).

    Samples come in blocks (lists of lists). ``paired``: blocks are interleaved rounds of equal
    number, resampled whole (round i's A and B together); otherwise the pooled samples of each
    side are resampled independently. With calibration samples the ratio is divided by
    median(candidate_calibration) / median(baseline_calibration), each resampled too. The RNG
    is ``numpy.random.default_rng(seed)``: the same data and seed give the same CI.
    """
    rng = np.random.default_rng(seed)
    if paired:
        if len(baseline) != len(candidate) or len(baseline) < 2:
            raise ValueError("paired bootstrap needs the same number (>= 2) of rounds per side")
        med_a, med_b = _paired_round_medians(rng, baseline, candidate, n_boot)
    else:
        med_a = _medians(rng, np.asarray([v for blk in baseline for v in blk], float), n_boot)
        med_b = _medians(rng, np.asarray([v for blk in candidate for v in blk], float), n_boot)
    ratios = med_b / med_a
    if baseline_calibration and candidate_calibration:
        cal_a = _medians(rng, np.asarray(baseline_calibration, float), n_boot)
        cal_b = _medians(rng, np.asarray(candidate_calibration, float), n_boot)
        ratios = ratios / (cal_b / cal_a)
    tail = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(ratios, [tail, 1.0 - tail])
    return float(lo), float(hi)


@dataclass
class LatencySamples:
    """Raw per-call latencies in ms, in blocks. ``paired``: blocks are interleaved rounds (``ab``
    mode). Calibration samples (ms per call of :func:`calibration_workload`) are optional."""

    baseline: list[list[float]]
    candidate: list[list[float]]
    paired: bool = False
    baseline_calibration: list[float] | None = None
    candidate_calibration: list[float] | None = None

    def pooled(self) -> tuple[list[float], list[float]]:
        return [v for b in self.baseline for v in b], [v for b in self.candidate for v in b]

    @property
    def calibration_ratio(self) -> float | None:
        """median(candidate calibration) / median(baseline calibration), or None."""
        if not self.baseline_calibration or not self.candidate_calibration:
            return None
        return statistics.median(self.candidate_calibration) / statistics.median(
            self.baseline_calibration
        )


@dataclass(frozen=True)
class Decision:
    """A latency decision. ``outcome``: regression | improvement | pass | ambiguous.

    ``ratio`` is the (calibration-normalised) median ratio candidate/baseline, ``ci_low`` /
    ``ci_high`` its bootstrap CI, ``p_value`` the one-sided Mann-Whitney p for "the candidate is
    slower" (for an improvement: for "faster").
    """

    outcome: str
    ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool
    reason: str
    calibration_ratio: float | None = None
    n_baseline: int = 0
    n_candidate: int = 0


def _pct(ratio: float) -> str:
    """A ratio as a signed change, ``+3.2%`` (:func:`cnnbench.report.format.change`)."""
    return fmt.change(ratio)


def decide_latency(
    samples: LatencySamples,
    *,
    alpha: float = 0.01,
    min_effect: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> Decision:
    """Decide one latency comparison (see the module docstring for the table).
    CalibrationError when the calibration ratio is outside :data:`CALIBRATION_BOUNDS`."""
    a, b = samples.pooled()
    if not a or not b:
        raise ValueError("latency decision needs samples on both sides")
    cal = samples.calibration_ratio
    check_calibration(cal)
    scale = 1.0 / cal if cal else 1.0
    b_norm = [v * scale for v in b]
    test = mann_whitney_u(a, b_norm)
    ratio = statistics.median(b_norm) / statistics.median(a)
    lo, hi = bootstrap_ratio_ci(
        samples.baseline,
        samples.candidate,
        paired=samples.paired,
        baseline_calibration=samples.baseline_calibration,
        candidate_calibration=samples.candidate_calibration,
        confidence=1.0 - alpha,
        n_boot=n_boot,
        seed=seed,
    )
    up = 1.0 + min_effect
    down = 1.0 / up
    slower = test.p_greater < alpha
    faster = test.p_less < alpha
    p = test.p_greater  # the test of interest: is the candidate slower?
    ci = f"CI [{_pct(lo)}, {_pct(hi)}]"

    def make(outcome: str, reason: str, significant: bool) -> Decision:
        return Decision(outcome, ratio, lo, hi, p, significant, reason, cal, len(a), len(b))

    if faster and ratio <= down:
        p = test.p_less
        return make("improvement", f"{_pct(ratio)}, significant ({p_text(p)}), {ci}", True)
    if slower:
        if lo >= up:
            return make(
                "regression",
                f"{_pct(ratio)}: significant ({p_text(p)}) and {ci} above +{min_effect:.0%}",
                True,
            )
        if hi < up:
            return make(
                "pass",
                f"{_pct(ratio)}: significant ({p_text(p)}) but {ci} below the minimum "
                f"effect +{min_effect:.0%}",
                True,
            )
        return make(
            "ambiguous",
            f"{_pct(ratio)}: significant ({p_text(p)}) but {ci} straddles +{min_effect:.0%}",
            True,
        )
    if ratio >= up:
        return make(
            "ambiguous", f"{_pct(ratio)} but not significant ({p_text(p)} >= {alpha:g})", False
        )
    return make("pass", f"{_pct(ratio)}, no significant slowdown ({p_text(p)}), {ci}", faster)


def decide_with_remeasure(
    samples: LatencySamples,
    remeasure: Callable[[LatencySamples], None],
    *,
    max_remeasure: int = 2,
    alpha: float = 0.01,
    min_effect: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> tuple[Decision, int]:
    """Decide; while ambiguous, call ``remeasure(samples)`` (which appends more samples) up to
    ``max_remeasure`` times. Returns the final decision and the number of re-measurements.

    A result still ambiguous at the end is a regression only when the test is significant and
    the median ratio reaches the minimum effect (both say so); otherwise it passes.
    """

    def decide() -> Decision:
        return decide_latency(samples, alpha=alpha, min_effect=min_effect, n_boot=n_boot, seed=seed)

    decision = decide()
    done = 0
    while decision.outcome == "ambiguous" and done < max_remeasure:
        remeasure(samples)
        done += 1
        decision = decide()
    if decision.outcome == "ambiguous":
        outcome = (
            "regression" if decision.significant and decision.ratio >= 1.0 + min_effect else "pass"
        )
        decision = dataclasses.replace(
            decision,
            outcome=outcome,
            reason=f"still ambiguous after {done} re-measurement(s): {decision.reason}",
        )
    return decision, done
