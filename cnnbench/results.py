"""The one result record every reporter consumes, and the saved-run envelope.

Units are in the field names: ``*_ms`` milliseconds, ``*_bytes`` bytes, ``throughput_ips``
images per second, ``macs`` multiply-accumulates (bias excluded), ``flops`` floating-point
operations under cnnbench's rule table (2 x MACs plus elementwise work). A measurement that
could not be made is ``None`` with the reason in ``status``/``error``, never a silent zero.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cnnbench.errors import UsageError

SCHEMA_VERSION = 1

__all__ = [
    "SCHEMA_VERSION",
    "StageCost",
    "Result",
    "Run",
    "SchemaError",
    "atomic_write_text",
    "load_run",
]


class SchemaError(UsageError):
    """A saved run that cannot be read: the message names the file and the problem."""


@dataclass
class StageCost:
    """Static (and optionally timed) cost of one named stage."""

    name: str
    blocks: int
    out_channels: int
    params: int
    macs: int
    flops: int
    output_shape: list[int]
    output_bytes: int
    se_params: int = 0  # parameters of the SE blocks in this stage (weights + biases)
    se_flops: int = 0  # FLOPs done inside SE blocks (FCs, pooling, gate, scaling)
    time_ms: float | None = None


@dataclass
class Result:
    """One model under one configuration. Fixed schema: reporters never invent columns."""

    model: str
    family: str = ""
    # configuration
    batch_size: int = 1
    input_size: list[int] = field(default_factory=list)  # C, H, W
    device: str = "cpu"
    precision: str = "fp32"  # fp32 | fp16 | bf16 (AMP)
    autocast_dtype: str | None = None  # dtype autocast actually used, None without AMP
    memory_format: str = "contiguous"  # contiguous | channels_last
    compiled: bool = False
    mode: str = "inference"  # inference | train
    threads: int | None = None
    # static cost (per image, batch independent)
    params: int | None = None
    trainable_params: int | None = None
    buffers: int | None = None
    macs: int | None = None
    flops: int | None = None
    counter: str | None = None
    activation_bytes: int | None = None  # inference: peak of live activations, per image
    train_activation_bytes: int | None = None  # training: saved activations, per image
    # runtime (per batch)
    effective_batch_size: int | None = None
    latency_ms_median: float | None = None
    latency_ms_mean: float | None = None
    latency_ms_std: float | None = None
    latency_ms_min: float | None = None
    latency_ms_p90: float | None = None
    latency_ms_p99: float | None = None
    latency_ms_iqr: float | None = None
    latency_ms_ci_low: float | None = None
    latency_ms_ci_high: float | None = None
    throughput_ips: float | None = None
    warmup_iters: int | None = None
    timed_iters: int | None = None
    peak_memory_bytes: int | None = None  # CUDA max allocated, or CPU peak RSS of the run
    peak_reserved_bytes: int | None = None  # CUDA caching allocator peak
    achieved_gflops: float | None = None
    peak_gflops: float | None = None
    pct_of_peak: float | None = None
    # outcome
    status: str = "ok"  # ok | oom | error | nonfinite | skipped
    error: str | None = None
    samples_ms: list[float] = field(default_factory=list)
    stages: list[StageCost] = field(default_factory=list)

    @classmethod
    def flat_columns(cls) -> list[str]:
        """The scalar columns of CSV/table output, in schema order."""
        return [f.name for f in fields(cls) if f.name not in ("samples_ms", "stages")]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        d = self.to_dict()
        d["input_size"] = "x".join(str(v) for v in self.input_size)
        return {k: d[k] for k in self.flat_columns()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise SchemaError(f"unknown result fields: {', '.join(sorted(unknown))}")
        data = dict(data)
        data["stages"] = [StageCost(**s) for s in data.get("stages", [])]
        return cls(**data)


@dataclass
class Run:
    """A saved run: schema version, environment fingerprint, configuration and results.

    ``complete`` is False when the run was interrupted; the results it holds are still valid.
    """

    results: list[Result]
    environment: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    complete: bool = True
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    schema_version: int = SCHEMA_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_text(path, self.to_json())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file in the target directory, then rename it into place,
    so that a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a saved run; raises SchemaError naming the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, dict) or "schema_version" not in data or "results" not in data:
        raise SchemaError(f"{path}: not a cnnbench run (no schema_version/results)")
    version = data["schema_version"]
    if version != SCHEMA_VERSION:
        raise SchemaError(
            f"{path}: schema version {version!r}, this cnnbench reads version {SCHEMA_VERSION}"
        )
    try:
        results = [Result.from_dict(r) for r in data["results"]]
        return Run(
            results=results,
            environment=data.get("environment", {}),
            config=data.get("config", {}),
            complete=bool(data.get("complete", True)),
            created=data.get("created", ""),
            schema_version=version,
        )
    except (TypeError, SchemaError) as exc:
        raise SchemaError(f"{path}: malformed result record ({exc})") from None
