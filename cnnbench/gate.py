"""The CI performance regression gate: catch real slowdowns, do not cry wolf.

Three modes, one decision procedure:

* :func:`save` measures the configured models and configurations and writes a baseline run
  (a :class:`~cnnbench.results.Run`: schema version, environment fingerprint, static counts,
  raw latency samples, peak memory, plus one calibration row per model configuration, named
  ``__calibration__/<model>``: the samples of a fixed workload timed in blocks alternating
  with the model's, so that both see the same machine state).
* :func:`check` measures the same set now and compares it with a baseline file (a cnnbench run
  or a pytest-benchmark JSON); :func:`compare_files` compares two saved files without
  measuring.
* :func:`ab` builds a baseline and a candidate model in the same process and times them
  interleaved in rounds (A B, B A, A B, ...): the most robust mode on a shared machine, since
  both see the same noise.

Per metric (rows of :class:`Verdict`):

* deterministic (``params``, ``macs``, ``flops``, ``activation_bytes``): the candidate may exceed
  the baseline by at most the configured relative tolerance (0: exact). These need no timing, so
  they are decided first; a model whose structure regressed is not timed (a different network's
  latency says nothing new), which makes an extra conv layer fail the gate in seconds.
* ``latency_ms`` (median per batch): the ratio candidate/baseline of medians, with
  (a) a one-sided Mann-Whitney U test on the raw samples (exact for small samples without
  ties, else the normal approximation with tie and continuity corrections) at level ``alpha``
  and (b) a seeded percentile-bootstrap CI of the median ratio at confidence ``1 - alpha``
  (in ``ab`` mode whole rounds are resampled, so the CI honours the correlation of samples
  taken close together). A regression needs BOTH a significant test AND an effect of at least
  ``min_effect`` (ratio >= 1 + min_effect). Ambiguous results (significant but the CI
  straddles the effect threshold, or a large effect that is not significant) are re-measured
  up to ``max_remeasure`` times, pooling samples, before the verdict. In ``check`` mode the
  candidate's samples are divided by the calibration ratio (candidate calibration median /
  baseline calibration median, each calibration timed interleaved with its model), so a
  uniformly slower or faster machine does not read as a change; the bootstrap resamples the
  calibration samples too.
* ``throughput_ips`` mirrors the latency decision (throughput = batch / median latency).
* ``peak_memory_bytes``: the candidate may exceed the baseline by the memory tolerance.

Ratios are candidate / baseline. Nothing here prints; progress goes to a callback. Bad input
(missing or corrupt baseline, schema or environment mismatch, bad configuration) raises
:class:`~cnnbench.errors.UsageError` with one line naming the problem and what would work.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import statistics
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .api import describe
from .environment import fingerprint
from .errors import UsageError
from .loading import load_model
from .results import Result, Run, SchemaError, load_run
from .runtime import Prepared, RuntimeConfig, prepare, resolve_device
from .timing import measure

__all__ = [
    "CALIBRATION_MODEL",
    "DETERMINISTIC_METRICS",
    "METRICS",
    "GateConfig",
    "load_config",
    "config_from_mapping",
    "config_from_dict",
    "MannWhitney",
    "mann_whitney_u",
    "bootstrap_ratio_ci",
    "LatencySamples",
    "Decision",
    "decide_latency",
    "decide_with_remeasure",
    "Verdict",
    "deterministic_verdict",
    "memory_verdict",
    "GateReport",
    "load_baseline",
    "read_pytest_benchmark",
    "environment_mismatches",
    "calibration_workload",
    "save",
    "check",
    "compare_files",
    "ab",
    "to_markdown",
    "to_junit_xml",
    "write_step_summary",
]

#: Model name of the calibration rows of a saved run.
CALIBRATION_MODEL = "__calibration__"
DETERMINISTIC_METRICS = ("params", "macs", "flops", "activation_bytes")
#: metric -> (kind, unit). Kinds: deterministic, latency, throughput, memory.
METRICS: dict[str, tuple[str, str]] = {
    "params": ("deterministic", ""),
    "macs": ("deterministic", ""),
    "flops": ("deterministic", ""),
    "activation_bytes": ("deterministic", "B"),
    "latency_ms": ("latency", "ms"),
    "throughput_ips": ("throughput", "img/s"),
    "peak_memory_bytes": ("memory", "B"),
}
_MAX_CHECK_S = 60.0  # worst-case seconds of timing for one model check (issue 6)
_GATE_TARGET_CI = 1e-3  # the harness runs to the budget: more samples, sharper decisions
_ENV_KEYS = {"torch": "torch", "device_name": "device", "cpu": "CPU", "threads": "threads"}
_CAL_STAGES = ((64, 56), (256, 14), (512, 7))  # calibration convs: (channels, H = W)
_CAL_BATCH = {"cpu": 1, "cuda": 32}
_MAX_WARMUP_S = 1.0

Progress = Callable[[str], None]


def _quiet(_msg: str) -> None:
    return None


# Configuration --------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateConfig:
    """What the gate measures and how it decides.

    ``budget_s`` is the timed seconds of one measurement of one model configuration (in ``ab``
    mode shared by baseline and candidate; a warm-up of at most ``min(1, budget_s / 10)`` s per
    model and, in ``save``/``check``, ``calibration_s`` come on top); a check may take up to
    ``(1 + max_remeasure) * budget_s`` of timing, which must stay <= 60 s. ``alpha`` is the significance
    level of the one-sided test (the bootstrap CI has confidence ``1 - alpha``), ``min_effect``
    the smallest latency ratio change that counts (0.05: 5% slower). ``tolerances`` holds the
    relative tolerances of the deterministic metrics (default 0: exact) and of
    ``peak_memory_bytes`` (default 0.10). ``rounds``: interleaved rounds per ``ab``
    measurement, and rounds of calibration/model blocks in ``save``/``check``.
    ``calibration_s``: seconds of calibration workload per measurement (``save``/``check``),
    spread over the rounds.
    ``memory``: measure peak memory (on CPU a child process per model configuration).
    ``metrics``: which metrics are decided. ``skip_timing_on_structural_regression``: do not
    time a model whose deterministic metrics regressed.
    """

    models: tuple[str, ...] = ()
    configs: tuple[RuntimeConfig, ...] = (RuntimeConfig(device="cpu"),)
    budget_s: float = 10.0
    max_remeasure: int = 2
    alpha: float = 0.01
    min_effect: float = 0.05
    tolerances: Mapping[str, float] = field(default_factory=dict)
    rounds: int = 10
    calibrate: bool = True
    calibration_s: float = 2.0
    memory: bool = True
    metrics: tuple[str, ...] = tuple(METRICS)
    n_boot: int = 2000
    seed: int = 0
    model_args: Mapping[str, Any] = field(default_factory=dict)
    skip_timing_on_structural_regression: bool = True

    def __post_init__(self) -> None:
        def bad(msg: str) -> UsageError:
            return UsageError(f"gate configuration: {msg}")

        if not (isinstance(self.budget_s, (int, float)) and self.budget_s > 0):
            raise bad(f"budget_s must be > 0 seconds, got {self.budget_s!r}")
        if not (isinstance(self.max_remeasure, int) and self.max_remeasure >= 0):
            raise bad(f"max_remeasure must be an integer >= 0, got {self.max_remeasure!r}")
        worst = self.budget_s * (1 + self.max_remeasure)
        if worst > _MAX_CHECK_S:
            raise bad(
                f"budget_s x (1 + max_remeasure) = {worst:g} s exceeds {_MAX_CHECK_S:g} s per "
                "model check; lower budget_s or max_remeasure"
            )
        if not 0 < self.alpha < 0.5:
            raise bad(f"alpha must be in (0, 0.5), e.g. 0.01, got {self.alpha!r}")
        if not 0 < self.min_effect < 1:
            raise bad(
                f"min_effect must be a fraction in (0, 1), e.g. 0.05, got {self.min_effect!r}"
            )
        if not (isinstance(self.rounds, int) and self.rounds >= 2):
            raise bad(f"rounds must be an integer >= 2, got {self.rounds!r}")
        if self.calibration_s <= 0:
            raise bad(f"calibration_s must be > 0 seconds, got {self.calibration_s!r}")
        if self.n_boot < 100:
            raise bad(f"n_boot must be >= 100 bootstrap resamples, got {self.n_boot!r}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise bad(f"unknown metric(s) {', '.join(unknown)}; use {', '.join(METRICS)}")
        for name, tol in self.tolerances.items():
            if name not in (*DETERMINISTIC_METRICS, "peak_memory_bytes"):
                raise bad(
                    f"tolerance for {name!r}: only {', '.join(DETERMINISTIC_METRICS)} and "
                    "peak_memory_bytes take a tolerance (latency uses min_effect)"
                )
            if not (isinstance(tol, (int, float)) and tol >= 0):
                raise bad(f"tolerance for {name} must be a fraction >= 0, got {tol!r}")
        if not self.configs:
            raise bad("no configuration to measure")

    def tolerance(self, metric: str) -> float:
        """Relative tolerance of a deterministic or memory metric."""
        default = 0.10 if metric == "peak_memory_bytes" else 0.0
        return float(self.tolerances.get(metric, default))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (stored in saved baselines)."""
        d = dataclasses.asdict(self)
        d["configs"] = [dataclasses.asdict(c) for c in self.configs]
        d["tolerances"] = dict(self.tolerances)
        d["model_args"] = dict(self.model_args)
        return d


_CONFIG_KEYS = {
    "models", "device", "batch_sizes", "batch_size", "precision", "memory_format",
    "resolution", "threads", "mode", "budget_s", "max_remeasure", "alpha", "min_effect",
    "tolerance", "tolerances", "rounds", "calibrate", "calibration_s", "memory", "metrics",
    "n_boot", "seed", "model_args", "skip_timing_on_structural_regression",
}  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def config_from_mapping(table: Mapping[str, Any], source: str = "config") -> GateConfig:
    """A GateConfig from a ``[tool.cnnbench.gate]`` table (see the README for the keys)."""
    unknown = sorted(set(table) - _CONFIG_KEYS)
    if unknown:
        raise UsageError(
            f"{source}: unknown key(s) {', '.join(unknown)} in [tool.cnnbench.gate]; "
            f"known: {', '.join(sorted(_CONFIG_KEYS))}"
        )
    models = table.get("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise UsageError(f"{source}: models must be a list of model specs, e.g. ['resnet18']")
    batches = _as_list(table.get("batch_sizes", table.get("batch_size", 1)))
    resolution = table.get("resolution")
    configs = RuntimeConfig.grid(
        device=table.get("device", "cpu"),
        precision=_as_list(table.get("precision", "fp32")),
        memory_format=_as_list(table.get("memory_format", "contiguous")),
        batch_size=batches,
        resolution=_as_list(resolution) if resolution is not None else None,
        threads=table.get("threads"),
        mode=table.get("mode", "inference"),
        target_ci=_GATE_TARGET_CI,
    )
    kwargs: dict[str, Any] = {
        k: table[k]
        for k in (
            "budget_s", "max_remeasure", "alpha", "min_effect", "rounds", "calibrate",
            "calibration_s", "memory", "n_boot", "seed", "skip_timing_on_structural_regression",
        )
        if k in table
    }  # fmt: skip
    if "metrics" in table:
        kwargs["metrics"] = tuple(_as_list(table["metrics"]))
    tolerances = table.get("tolerances", table.get("tolerance", {}))
    if not isinstance(tolerances, Mapping):
        raise UsageError(f"{source}: [tool.cnnbench.gate.tolerance] must be a table")
    return GateConfig(
        models=tuple(models),
        configs=tuple(configs),
        tolerances=dict(tolerances),
        model_args=dict(table.get("model_args", {})),
        **kwargs,
    )


def config_from_dict(data: Mapping[str, Any]) -> GateConfig:
    """The inverse of :meth:`GateConfig.to_dict` (used to re-run a saved baseline's set)."""
    d = dict(data)
    known = {f.name for f in dataclasses.fields(GateConfig)}
    d = {k: v for k, v in d.items() if k in known}
    d["configs"] = tuple(RuntimeConfig(**c) for c in d.get("configs", []))
    for name in ("models", "metrics"):
        if name in d:
            d[name] = tuple(d[name])
    return GateConfig(**d)


def load_config(path: str | os.PathLike[str] | None = None) -> GateConfig | None:
    """The gate configuration from ``path`` (a TOML file with a ``[tool.cnnbench.gate]`` table,
    or the table at top level), or from ``./pyproject.toml`` when ``path`` is None.

    Returns None when no path is given and ./pyproject.toml has no such table.
    """
    explicit = path is not None
    file = Path(path) if explicit else Path("pyproject.toml")
    if not file.is_file():
        if explicit:
            raise UsageError(f"--config {file}: no such file")
        return None
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{file}: not a readable TOML file ({exc})") from None
    table = data.get("tool", {}).get("cnnbench", {}).get("gate")
    if table is None and explicit and "gate" in data:
        table = data["gate"]
    if table is None:
        if explicit:
            raise UsageError(f"{file}: no [tool.cnnbench.gate] table")
        return None
    return config_from_mapping(table, str(file))


# Statistics -----------------------------------------------------------------------------------
def _phi(z: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


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
    p_greater = 1.0 - _phi((u - mean - 0.5) / sd)
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
    return f"{(ratio - 1.0) * 100:+.1f}%"


def decide_latency(
    samples: LatencySamples,
    *,
    alpha: float = 0.01,
    min_effect: float = 0.05,
    n_boot: int = 2000,
    seed: int = 0,
) -> Decision:
    """Decide one latency comparison (see the module docstring for the table)."""
    a, b = samples.pooled()
    if not a or not b:
        raise ValueError("latency decision needs samples on both sides")
    cal = samples.calibration_ratio
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
        return make("improvement", f"{_pct(ratio)}, significant (p={p:.2g}), {ci}", True)
    if slower:
        if lo >= up:
            return make(
                "regression",
                f"{_pct(ratio)}: significant (p={p:.2g}) and {ci} above +{min_effect:.0%}",
                True,
            )
        if hi < up:
            return make(
                "pass",
                f"{_pct(ratio)}: significant (p={p:.2g}) but {ci} below the minimum "
                f"effect +{min_effect:.0%}",
                True,
            )
        return make(
            "ambiguous",
            f"{_pct(ratio)}: significant (p={p:.2g}) but {ci} straddles +{min_effect:.0%}",
            True,
        )
    if ratio >= up:
        return make(
            "ambiguous", f"{_pct(ratio)} but not significant (p={p:.2g} >= {alpha:g})", False
        )
    return make("pass", f"{_pct(ratio)}, no significant slowdown (p={p:.2g}), {ci}", faster)


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
    kw = {"alpha": alpha, "min_effect": min_effect, "n_boot": n_boot, "seed": seed}
    decision = decide_latency(samples, **kw)
    done = 0
    while decision.outcome == "ambiguous" and done < max_remeasure:
        remeasure(samples)
        done += 1
        decision = decide_latency(samples, **kw)
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


# Verdicts -------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """The decision on one metric of one model configuration.

    ``decision``: pass | regression | improvement | skipped. ``ratio`` is candidate/baseline
    (latency: calibration-normalised; throughput: its inverse). ``p_value`` and the CI exist for
    latency and throughput only. ``remeasured``: re-measurements made because the first
    result was ambiguous.
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

    @property
    def unit(self) -> str:
        return METRICS[self.metric][1]

    @property
    def failed(self) -> bool:
        return self.decision == "regression"


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
    note = f" (calibration x{decision.calibration_ratio:.3f})" if decision.calibration_ratio else ""
    common = {
        "p_value": decision.p_value,
        "remeasured": remeasured,
        "n_baseline": len(a),
        "n_candidate": len(b),
        "calibration_ratio": decision.calibration_ratio,
    }
    lat = Verdict(
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
        **common,
    )
    tput = Verdict(
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
        **common,
    )
    return [lat, tput]


def _skipped(model: str, config: str, metric: str, base: Any, cand: Any, reason: str) -> Verdict:
    return Verdict(model, config, metric, base, cand, "skipped", reason)


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
    def exit_code(self) -> int:
        """0 pass, 1 regression."""
        return 1 if self.regressions else 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# Keys and labels ------------------------------------------------------------------------------
Key = tuple[str, str, str, str, int, int | None, str]


def result_key(r: Result) -> Key:
    """(model, device type, precision, memory format, batch, H, mode) of a result."""
    height = r.input_size[1] if len(r.input_size) == 3 else None
    return (
        r.model,
        r.device.split(":")[0],
        r.precision,
        r.memory_format,
        r.batch_size,
        height,
        r.mode,
    )


def key_label(key: Key) -> str:
    """``cpu fp32 contiguous b1 224px`` (the model excluded)."""
    _model, device, precision, fmt, batch, height, mode = key
    parts = [device, precision, fmt, f"b{batch}"]
    if height:
        parts.append(f"{height}px")
    if mode != "inference":
        parts.append(mode)
    return " ".join(parts)


def _index(results: Sequence[Result]) -> dict[Key, Result]:
    return {result_key(r): r for r in results if not _is_calibration(r)}


def _is_calibration(r: Result) -> bool:
    return r.model == CALIBRATION_MODEL or r.model.startswith(CALIBRATION_MODEL + "/")


def _calibration_name(model: str) -> str:
    return f"{CALIBRATION_MODEL}/{model}"


def _find(index: Mapping[Key, Result], key: Key) -> Result | None:
    """Exact key, else the only row of the same model (pytest-benchmark rows lack a config)."""
    if key in index:
        return index[key]
    same = [r for k, r in index.items() if k[0] == key[0]]
    return same[0] if len(same) == 1 else None


def _calibration(run: Run, row: Result) -> list[float] | None:
    """The calibration samples timed with ``row`` (its ``__calibration__/<model>`` row), or
    None when the run has none."""
    key = result_key(row)
    for r in run.results:
        if r.model == _calibration_name(row.model) and result_key(r)[1:] == key[1:]:
            return list(r.samples_ms) or None
    return None


# Baselines ------------------------------------------------------------------------------------
def read_pytest_benchmark(
    path: str | os.PathLike[str], data: Mapping[str, Any] | None = None
) -> Run:
    """A pytest-benchmark saved JSON (``--benchmark-json`` or ``--benchmark-autosave
    --benchmark-save-data``) as a Run: one Result per benchmark, ``samples_ms`` from
    ``stats.data`` (seconds per iteration) x 1000. Benchmarks recorded by cnnbench's pytest
    fixture carry the model and configuration in ``extra_info["cnnbench"]``; others are
    matched by benchmark name, batch 1."""
    path = Path(path)
    if data is None:
        data = _read_json(path)
    benches = data.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        raise SchemaError(f"{path}: pytest-benchmark file without benchmarks")
    results: list[Result] = []
    for bench in benches:
        name = str(bench.get("name") or bench.get("fullname") or "?")
        raw = (bench.get("stats") or {}).get("data")
        if not raw:
            raise SchemaError(
                f"{path}: benchmark {name!r} has no raw samples (stats.data); save with "
                "--benchmark-json FILE or --benchmark-autosave --benchmark-save-data"
            )
        extra = (bench.get("extra_info") or {}).get("cnnbench") or {}
        samples = [float(s) * 1000.0 for s in raw]
        median = statistics.median(samples)
        batch = int(extra.get("batch_size") or 1)
        results.append(
            Result(
                model=str(extra.get("model") or name),
                batch_size=batch,
                input_size=list(extra.get("input_size") or []),
                device=str(extra.get("device") or "cpu"),
                precision=str(extra.get("precision") or "fp32"),
                memory_format=str(extra.get("memory_format") or "contiguous"),
                threads=extra.get("threads"),
                latency_ms_median=median,
                throughput_ips=batch * 1000.0 / median if median > 0 else None,
                timed_iters=len(samples),
                samples_ms=samples,
            )
        )
    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    env: dict[str, Any] = {"source": "pytest-benchmark", "python": machine.get("python_version")}
    if isinstance(cpu, Mapping) and cpu.get("brand_raw"):
        env["cpu"] = cpu["brand_raw"]
    first_extra = (benches[0].get("extra_info") or {}).get("cnnbench") or {}
    for key in ("torch", "device_name", "threads"):
        if first_extra.get(key) is not None:
            env[key] = first_extra[key]
    return Run(
        results=results,
        environment=env,
        config={"source": "pytest-benchmark"},
        created=str(data.get("datetime", "")),
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(
            f"{path}: no such file; create a baseline with `cnnbench gate save`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: not a cnnbench run or pytest-benchmark file")
    return data


def load_baseline(path: str | os.PathLike[str]) -> Run:
    """A cnnbench run or a pytest-benchmark JSON; SchemaError (exit 2) for anything else."""
    path = Path(path)
    data = _read_json(path)
    if "schema_version" not in data and "benchmarks" in data:
        return read_pytest_benchmark(path, data)
    run = load_run(path)
    if not any(r.samples_ms for r in run.results if not _is_calibration(r)):
        raise SchemaError(
            f"{path}: the run holds no raw latency samples; save it with `cnnbench gate save`"
        )
    return run


def environment_mismatches(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``["torch 2.12.0 -> 2.13.0", ...]`` for the keys that matter to timing and are known
    on both sides (torch version, device name, CPU model, threads)."""
    out: list[str] = []
    for key, label in _ENV_KEYS.items():
        a, b = baseline.get(key), current.get(key)
        if a is not None and b is not None and a != b:
            out.append(f"{label} {a} -> {b}")
    return out


def _check_env(
    base_env: Mapping[str, Any], cur_env: Mapping[str, Any], allow: bool, source: str
) -> list[str]:
    diffs = environment_mismatches(base_env, cur_env)
    if diffs and not allow:
        raise UsageError(
            f"{source}: environment differs from the baseline ({'; '.join(diffs)}); re-save "
            "the baseline on this machine, or pass --allow-env-mismatch"
        )
    return [f"environment mismatch allowed: {'; '.join(diffs)}"] if diffs else []


# Measurement ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _threads(n: int | None) -> Iterator[None]:
    old = torch.get_num_threads()
    try:
        if n is not None:
            torch.set_num_threads(n)
        yield
    finally:
        torch.set_num_threads(old)


def calibration_workload(device: str | torch.device = "cpu") -> Callable[[], Any]:
    """A fixed CNN-like workload timed next to the models, so that runs on machines of
    different speed can be compared. Self-contained (no zoo code, which a change under test
    could slow down too): three 3x3 convolutions with ReLU at the shapes of a ResNet's stages,
    each about 116 MMAC per image but with growing weights (64 ch at 56 px, 144 KiB;
    256 ch at 14 px, 2.25 MiB; 512 ch at 7 px, 9 MiB), then global pooling and a 512 -> 1000
    linear layer: compute-bound and weight-streaming parts in a ResNet-18-like mix. Batch 1 on
    CPU, 32 on CUDA; fixed seeded fp32 inputs; runs once per call (synchronising on CUDA)."""
    dev = torch.device(device)
    batch = _CAL_BATCH.get(dev.type, 1)
    gen = torch.Generator().manual_seed(1234)

    def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=gen) * scale).to(dev)

    layers = [
        (rand(batch, c, hw, hw), rand(c, c, 3, 3, scale=(2.0 / (9 * c)) ** 0.5))
        for c, hw in _CAL_STAGES
    ]
    fc = rand(1000, _CAL_STAGES[-1][0], scale=0.01)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    conv2d, relu = torch.nn.functional.conv2d, torch.relu

    def run() -> Any:
        with torch.inference_mode():
            out = None
            for x, w in layers:
                out = relu(conv2d(x, w, padding=1))
            assert out is not None
            logits = out.mean((2, 3)) @ fc.T
        sync()
        return logits

    return run


def _build_spec(spec: str, model_args: Mapping[str, Any]) -> nn.Module:
    """Top-level (picklable) builder for the CPU memory child process."""
    return load_model(spec, dict(model_args))[1]


@dataclass
class _Model:
    """A model under test: its display name, module and (when built from a spec) the spec."""

    name: str
    module: nn.Module
    spec: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)
    statics: dict[int | None, Result] = field(default_factory=dict)

    def builder(self) -> Callable[[], nn.Module] | None:
        if self.spec is None:
            return None
        return functools.partial(_build_spec, self.spec, dict(self.model_args))

    def static(self, config: RuntimeConfig) -> Result:
        """Static counts (per image) at the config's resolution, as a Result skeleton."""
        from .static import profile_static

        if config.resolution not in self.statics:
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
    """A spec is loaded with :func:`cnnbench.loading.load_model`; a module without
    ``model_info`` gets the same default as a loaded one (family custom, input 3x224x224)."""
    if isinstance(obj, str):
        name, module = load_model(obj, dict(model_args))
        return _Model(name, module, obj, model_args)
    name, module = obj if isinstance(obj, tuple) else (type(obj).__name__, obj)
    if getattr(module, "model_info", None) is None:
        from cnnbench.models import ModelInfo

        module.model_info = ModelInfo(name=name, family="custom", paper="")
    return _Model(name, module)


_STATIC_FIELDS = (
    "family",
    "input_size",
    "params",
    "trainable_params",
    "buffers",
    "macs",
    "flops",
    "counter",
    "activation_bytes",
)


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
) -> tuple[Result, list[float]]:
    """Time ``model`` under ``config`` in ``cfg.rounds`` rounds, each a block of the
    calibration workload (``calibration_s / rounds`` seconds, outside autocast) then a block of
    the model (``budget_s / rounds`` seconds), after a short warm-up of both. Returns the
    Result (static fields, latency statistics of the pooled samples, raw samples, peak memory
    when ``memory``) and the calibration samples (empty without ``calibrate``)."""
    from .timing import summarize

    static = model.static(config)
    try:
        prepared = prepare(model.module, config, name=model.name)
        device = prepared.device
        samples: list[float] = []
        cal: list[float] = []
        with _threads(config.threads):
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
    except (RuntimeError, MemoryError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UsageError(f"{model.name} ({describe(config)}): could not be run: {first}") from None
    stats = summarize(samples, warmup_iters=warmup_iters, stop_reason="budget")
    result = dataclasses.replace(
        static,
        input_size=list(prepared.input_size),
        threads=threads,
        autocast_dtype=(
            str(prepared.autocast_dtype).removeprefix("torch.") if prepared.autocast_dtype else None
        ),
        effective_batch_size=prepared.batch_size,
        latency_ms_median=stats.median_ms,
        latency_ms_mean=stats.mean_ms,
        latency_ms_std=stats.std_ms,
        latency_ms_min=stats.min_ms,
        latency_ms_p90=stats.p90_ms,
        latency_ms_p99=stats.p99_ms,
        latency_ms_iqr=stats.iqr_ms,
        latency_ms_ci_low=stats.ci_low_ms,
        latency_ms_ci_high=stats.ci_high_ms,
        throughput_ips=prepared.batch_size * 1000.0 / stats.median_ms,
        warmup_iters=warmup_iters,
        timed_iters=stats.timed_iters,
        samples_ms=samples,
        peak_memory_bytes=_peak_memory(model, prepared) if memory else None,
    )
    return result, cal


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


def _structural(verdicts: Sequence[Verdict]) -> bool:
    return any(v.failed and v.metric in DETERMINISTIC_METRICS for v in verdicts)


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
            verdicts = _deterministic(model.name, label, base, skeleton, cfg)
            report.verdicts += verdicts
            if not _wants_timing(cfg):
                continue
            if cfg.skip_timing_on_structural_regression and _structural(verdicts):
                report.verdicts += _timing_skipped(
                    model.name,
                    label,
                    base,
                    None,
                    cfg,
                    "not timed: the network's structure regressed (see deterministic metrics)",
                )
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
        verdicts = _deterministic(cand.model, label, base, cand, cfg)
        report.verdicts += verdicts
        if cfg.skip_timing_on_structural_regression and _structural(verdicts):
            report.verdicts += _timing_skipped(
                cand.model,
                label,
                base,
                cand,
                cfg,
                "not compared: the network's structure regressed (see deterministic metrics)",
            )
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
def _peak_memory(model: _Model, prepared: Prepared) -> int | None:
    """Peak memory of a prepared model: CUDA max allocated over 3 steps; on CPU the peak RSS
    of a child process that rebuilds the model from its spec (None without a spec)."""
    from .memory import cpu_peak_memory, cuda_peak_memory

    if prepared.device.type == "cuda":
        with prepared.context(), cuda_peak_memory(prepared.device) as peak:
            for _ in range(3):
                prepared.step()
        return peak.allocated_bytes
    builder = model.builder()
    if builder is None:
        return None
    result = cpu_peak_memory(builder, dataclasses.replace(prepared.config, compile=False))
    return result.above_start_bytes if result.error is None else None


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
        with _threads(self.a.config.threads), self.a.context():
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
        verdicts = _deterministic(b.name, label, sa, sb, cfg)
        report.verdicts += verdicts
        if not _wants_timing(cfg):
            continue
        if cfg.skip_timing_on_structural_regression and _structural(verdicts):
            report.verdicts += _timing_skipped(
                b.name,
                label,
                sa,
                sb,
                cfg,
                "not timed: the network's structure regressed (see deterministic metrics)",
            )
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


# Reports ----------------------------------------------------------------------------------------
def format_value(metric: str, value: float | None) -> str:
    """Human text of a metric value (counts with thousands separators, bytes in MiB)."""
    if value is None:
        return "-"
    kind, unit = METRICS[metric]
    if unit == "B":
        return f"{value / 2**20:,.2f} MiB"
    if kind == "deterministic":
        return f"{int(value):,}"
    if metric == "latency_ms":
        return f"{value:.3f} ms"
    return f"{value:,.1f} {unit}"


def format_change(v: Verdict) -> str:
    return "-" if v.ratio is None or math.isinf(v.ratio) else _pct(v.ratio)


def format_ci(v: Verdict) -> str:
    if v.ci_low is None or v.ci_high is None:
        return "-"
    return f"[{_pct(v.ci_low)}, {_pct(v.ci_high)}]"


def format_p(v: Verdict) -> str:
    return "-" if v.p_value is None else f"{v.p_value:.2g}"


_ICONS = {
    "pass": "✅ pass",
    "regression": "❌ regression",
    "improvement": "🚀 improvement",
    "skipped": "⏭️ skipped",
}


def _summary_line(report: GateReport) -> str:
    counts = {
        d: sum(v.decision == d for v in report.verdicts)
        for d in ("regression", "improvement", "pass", "skipped")
    }
    head = "❌ **regression**" if report.regressions else "✅ **pass**"
    parts = [f"{n} {d}" for d, n in counts.items() if n]
    return f"{head}: {', '.join(parts) or 'nothing compared'}"


def to_markdown(report: GateReport) -> str:
    """A Markdown summary for a pull-request comment or ``$GITHUB_STEP_SUMMARY``."""
    s = report.settings
    lines = [
        f"## cnnbench gate ({report.mode})",
        "",
        _summary_line(report),
        "",
        f"Baseline `{report.baseline}`, candidate `{report.candidate}`. Latency: one-sided "
        f"Mann-Whitney U at alpha={s.get('alpha', '?')} AND a median ratio of at least "
        f"+{s.get('min_effect', 0):.0%} (bootstrap CI at {1 - s.get('alpha', 0):.0%}); "
        "deterministic metrics exact unless a tolerance is configured.",
        "",
        "| model | config | metric | baseline | candidate | change | p | CI | verdict | reason |",
        "|---|---|---|---:|---:|---:|---:|---|---|---|",
    ]
    for v in report.verdicts:
        reason = v.reason.replace("|", "\\|")
        if v.remeasured:
            reason += f" (re-measured {v.remeasured}x)"
        lines.append(
            f"| {v.model} | {v.config} | {v.metric} | {format_value(v.metric, v.baseline)} | "
            f"{format_value(v.metric, v.candidate)} | {format_change(v)} | {format_p(v)} | "
            f"{format_ci(v)} | {_ICONS.get(v.decision, v.decision)} | {reason} |"
        )
    if report.notes:
        lines += ["", *[f"- {n}" for n in report.notes]]
    lines += ["", f"_{len(report.verdicts)} checks in {report.elapsed_s:.1f} s_", ""]
    return "\n".join(lines)


def to_junit_xml(report: GateReport) -> str:
    """JUnit XML: one testcase per model/config/metric, a ``failure`` element on regression,
    ``skipped`` for metrics that could not be compared."""
    suite = ET.Element(
        "testsuite",
        name=f"cnnbench gate {report.mode}",
        tests=str(len(report.verdicts)),
        failures=str(len(report.regressions)),
        errors="0",
        skipped=str(sum(v.decision == "skipped" for v in report.verdicts)),
        time=f"{report.elapsed_s:.3f}",
    )
    for v in report.verdicts:
        case = ET.SubElement(
            suite, "testcase", classname=f"cnnbench.gate.{v.model}", name=f"{v.config} {v.metric}"
        )
        detail = (
            f"baseline {format_value(v.metric, v.baseline)}, candidate "
            f"{format_value(v.metric, v.candidate)}, change {format_change(v)}, "
            f"p {format_p(v)}, CI {format_ci(v)}: {v.reason}"
        )
        if v.failed:
            ET.SubElement(case, "failure", message=v.reason, type="regression").text = detail
        elif v.decision == "skipped":
            ET.SubElement(case, "skipped", message=v.reason)
        else:
            ET.SubElement(case, "system-out").text = detail
    root = ET.Element(
        "testsuites", tests=suite.get("tests", "0"), failures=suite.get("failures", "0")
    )
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_step_summary(
    report: GateReport, path: str | os.PathLike[str] | None = None
) -> Path | None:
    """Append the Markdown summary to ``path`` or to ``$GITHUB_STEP_SUMMARY`` when set.
    Returns the file written, or None when there is nowhere to write."""
    target = path or os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    target = Path(target)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(to_markdown(report) + "\n")
    return target
