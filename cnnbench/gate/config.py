"""Gate configuration: what is measured and how it is decided, from ``[tool.cnnbench.gate]``
in a TOML file or from keyword arguments."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import UsageError
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
