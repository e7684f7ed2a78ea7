"""Gate configuration: what is measured and how it is decided, from ``[tool.cnnbench.gate]``
in a TOML file or from keyword arguments."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import UsageError
from cnnbench.request import check_keys, runtime_configs
from cnnbench.runtime import RuntimeConfig

#: Model name prefix of the calibration rows of a saved run (``__calibration__/<model>``).
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
_GATE_TARGET_CI = 1e-3  # the harness runs to the budget: more samples, sharper decisions
_MAX_CHECK_S = 60.0  # worst-case seconds of timing for one model check (issue 6)
_MAX_BOOT = 100_000  # bootstrap resamples: more only costs time


def _is_real(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_spec(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _positive(name: str, value: Any, unit: str) -> None:
    if not (_is_real(value) and value > 0):
        raise UsageError(f"gate configuration: {name} must be > 0 {unit}, got {value!r}")


def _integer(name: str, value: Any, low: int, high: int | None = None, what: str = "") -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        limit = f">= {low}" if high is None else f"in {low}..{high:,}"
        noun = f" {what}" if what else ""
        raise UsageError(
            f"gate configuration: {name} must be an integer {limit}{noun}, got {value!r}"
        )


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

        if not (isinstance(self.models, tuple) and all(_is_spec(m) for m in self.models)):
            raise bad(
                f"models must be a list of model specs, e.g. ['resnet18'], got {self.models!r}"
            )
        if not (
            isinstance(self.configs, tuple)
            and all(isinstance(c, RuntimeConfig) for c in self.configs)
        ):
            raise bad("configs must be RuntimeConfig objects")
        _positive("budget_s", self.budget_s, "seconds")
        _integer("max_remeasure", self.max_remeasure, 0)
        worst = self.budget_s * (1 + self.max_remeasure)
        if worst > _MAX_CHECK_S:
            raise bad(
                f"budget_s x (1 + max_remeasure) = {worst:g} s exceeds {_MAX_CHECK_S:g} s per "
                "model check; lower budget_s or max_remeasure"
            )
        if not (_is_real(self.alpha) and 0 < self.alpha < 0.5):
            raise bad(f"alpha must be a number in (0, 0.5), e.g. 0.01, got {self.alpha!r}")
        if not (_is_real(self.min_effect) and 0 < self.min_effect < 1):
            raise bad(
                f"min_effect must be a fraction in (0, 1), e.g. 0.05, got {self.min_effect!r}"
            )
        _integer("rounds", self.rounds, 2)
        for name in ("calibrate", "memory", "skip_timing_on_structural_regression"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise bad(f"{name} must be true or false, got {value!r}")
        _positive("calibration_s", self.calibration_s, "seconds")
        if self.calibration_s > _MAX_CHECK_S:
            raise bad(
                f"calibration_s must be at most {_MAX_CHECK_S:g} s, got {self.calibration_s!r}"
            )
        _integer("n_boot", self.n_boot, 100, _MAX_BOOT, "bootstrap resamples")
        _integer("seed", self.seed, 0)
        if not (isinstance(self.metrics, tuple) and all(isinstance(m, str) for m in self.metrics)):
            raise bad(f"metrics must be a list of metric names, got {self.metrics!r}")
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise bad(f"unknown metric(s) {', '.join(unknown)}; use {', '.join(METRICS)}")
        if not self.metrics:
            raise bad(
                f"metrics is empty: nothing would be checked; use some of {', '.join(METRICS)}"
            )
        if not isinstance(self.tolerances, Mapping):
            raise bad(f"tolerances must be a table of metric = fraction, got {self.tolerances!r}")
        for name, tol in self.tolerances.items():
            if name not in (*DETERMINISTIC_METRICS, "peak_memory_bytes"):
                raise bad(
                    f"tolerance for {name!r}: only {', '.join(DETERMINISTIC_METRICS)} and "
                    "peak_memory_bytes take a tolerance (latency uses min_effect)"
                )
            if not (_is_real(tol) and tol >= 0):
                raise bad(f"tolerance for {name} must be a fraction >= 0, got {tol!r}")
        if not isinstance(self.model_args, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in self.model_args
        ):
            raise bad(
                "model_args must be a table of builder keywords, e.g. "
                f"{{ se_reduction = 8 }}, got {self.model_args!r}"
            )
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
    "resolution", "threads", "mode", "call_timeout", "budget_s", "max_remeasure", "alpha", "min_effect",
    "tolerance", "tolerances", "rounds", "calibrate", "calibration_s", "memory", "metrics",
    "n_boot", "seed", "model_args", "skip_timing_on_structural_regression",
}  # fmt: skip


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _source_error(source: str, exc: UsageError) -> UsageError:
    """``exc`` re-raised with ``source`` (a file and table) in front, one line."""
    text = str(exc).removeprefix("gate configuration: ")
    return type(exc)(f"{source}: {text}")


def config_from_mapping(table: Mapping[str, Any], source: str = "config") -> GateConfig:
    """A GateConfig from a ``[tool.cnnbench.gate]`` table (see the README for the keys).
    Every value is type-checked here, before anything is measured; UsageError names the
    file (``source``) and the key."""
    if not isinstance(table, Mapping):
        raise UsageError(f"{source}: [tool.cnnbench.gate] must be a table")
    check_keys(table, _CONFIG_KEYS, source, "tool.cnnbench.gate")
    models = table.get("models", [])
    if not isinstance(models, list) or not all(_is_spec(m) for m in models):
        raise UsageError(f"{source}: models must be a list of model specs, e.g. ['resnet18']")
    model_args = table.get("model_args", {})
    if not isinstance(model_args, Mapping):
        raise UsageError(
            f"{source}: model_args must be a table of builder keywords, e.g. "
            "[tool.cnnbench.gate.model_args] se_reduction = 8"
        )
    tolerances = table.get("tolerances", table.get("tolerance", {}))
    if not isinstance(tolerances, Mapping):
        raise UsageError(f"{source}: [tool.cnnbench.gate.tolerance] must be a table")
    batches = _as_list(table.get("batch_sizes", table.get("batch_size", 1)))
    resolution = table.get("resolution")
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
    try:
        configs = runtime_configs(  # the configurations compare would measure
            device=table.get("device", "cpu"),
            batch=batches,
            precision=_as_list(table.get("precision", "fp32")),
            memory_format=_as_list(table.get("memory_format", "contiguous")),
            resolution=_as_list(resolution) if resolution is not None else None,
            threads=table.get("threads"),
            call_timeout=table.get("call_timeout"),
            mode=table.get("mode", "inference"),
            target_ci=_GATE_TARGET_CI,
        )
        return GateConfig(
            models=tuple(models),
            configs=tuple(configs),
            tolerances=dict(tolerances),
            model_args=dict(model_args),
            **kwargs,
        )
    except UsageError as exc:
        raise _source_error(source, exc) from None


_RUNTIME_FIELDS = {f.name for f in dataclasses.fields(RuntimeConfig)}


def config_from_dict(data: Mapping[str, Any], source: str = "stored gate config") -> GateConfig:
    """The inverse of :meth:`GateConfig.to_dict` (used to re-run a saved baseline's set).
    The stored form is data: every field is type-checked and a malformed one refused with
    UsageError naming ``source`` and the field (unknown top-level keys are ignored)."""
    if not isinstance(data, Mapping):
        raise UsageError(f"{source}: expected an object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(GateConfig)}
    d = {k: v for k, v in data.items() if k in known}
    stored = d.get("configs", [])
    if not isinstance(stored, (list, tuple)) or not all(isinstance(c, Mapping) for c in stored):
        raise UsageError(f"{source}: configs must be a list of configuration objects")
    for i, c in enumerate(stored):
        extra = sorted(set(c) - _RUNTIME_FIELDS)
        if extra:
            raise UsageError(f"{source}: configs[{i}]: unknown field(s) {', '.join(extra)}")
    for name in ("models", "metrics"):
        if name in d:
            if not isinstance(d[name], (list, tuple)):
                raise UsageError(f"{source}: {name} must be a list, got {d[name]!r}")
            d[name] = tuple(d[name])
    try:
        configs = []
        for i, c in enumerate(stored):
            try:
                configs.append(RuntimeConfig(**c))
            except UsageError as exc:
                raise UsageError(f"configs[{i}]: {exc}") from None
        d["configs"] = tuple(configs)
        return GateConfig(**d)
    except UsageError as exc:
        raise _source_error(source, exc) from None


def load_config(path: str | os.PathLike[str] | None = None) -> GateConfig | None:
    """The gate configuration from ``path`` (a TOML file with a ``[tool.cnnbench.gate]`` table,
    or the table at top level), or from ``./pyproject.toml`` when ``path`` is None.

    Returns None when no path is given and ./pyproject.toml has no such table. The file must
    be a regular file of at most 64 MiB (read with a cap).
    """
    from cnnbench.results import read_toml_capped

    explicit = path is not None
    file = Path("pyproject.toml") if path is None else Path(path)
    if not explicit and not file.is_file():
        return None
    try:  # size, depth and syntax checked by the shared reader
        data = read_toml_capped(file, missing="no such file", kind="a TOML file")
    except UsageError as exc:
        raise UsageError(f"--config {exc}" if explicit else str(exc)) from None
    tool = data.get("tool", {})
    table = (
        tool.get("cnnbench", {}).get("gate")
        if isinstance(tool, dict) and isinstance(tool.get("cnnbench", {}), dict)
        else None
    )
    if table is None and explicit and "gate" in data:
        table = data["gate"]
    if table is None:
        if explicit:
            raise UsageError(f"{file}: no [tool.cnnbench.gate] table")
        return None
    return config_from_mapping(table, str(file))
