"""The one result record every reporter consumes, and the saved-run envelope.

Units are in the field names: ``*_ms`` milliseconds, ``*_bytes`` bytes, ``throughput_ips``
images per second, ``macs`` multiply-accumulates (bias excluded), ``flops`` floating-point
operations under cnnbench's rule table (2 x MACs plus elementwise work). A measurement that
could not be made is ``None`` with the reason in ``status``/``error``, never a silent zero.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnnbench.errors import one_line
from cnnbench.schema import (
    MAX_DEPTH,
    SchemaError,
    check_depth,
    describe,
    record_from_dict,
)

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 2
#: Saved-run versions this cnnbench reads (older ones are upgraded on load).
READABLE_VERSIONS = (1, 2)

__all__ = [
    "SCHEMA_VERSION",
    "StageCost",
    "LayerCost",
    "LayerReconciliation",
    "Result",
    "Run",
    "SchemaError",
    "CONFIG_FIELDS",
    "atomic_write_text",
    "clean_orphan_temp_files",
    "write_problem",
    "results_frame",
    "machine_label",
    "merge_runs",
    "ENVIRONMENT_COLUMNS",
    "load_run",
    "read_toml_capped",
    "MAX_DEPTH",
]


#: The :class:`Result` fields that identify a configuration, in label order: two rows of one
#: model with equal values here were measured under the same setting. The one definition
#: behind report labels (:func:`cnnbench.report.format.config_label`), the report's baseline
#: matching and the gate's row matching (:meth:`Result.config_key`).
CONFIG_FIELDS = (
    "device",
    "precision",
    "memory_format",
    "batch_size",
    "input_size",
    "mode",
    "compiled",
    "machine",
)


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
    time_ms: float | None = None  # median forward time of the stage alone, ms per batch
    time_ci_low_ms: float | None = None  # 95% CI of that median
    time_ci_high_ms: float | None = None
    time_stable: bool | None = None  # the CI reached the target: the time share is shown


@dataclass
class LayerCost:
    """Static cost of one module (per image; children included), see
    :func:`cnnbench.static.layers.layer_costs`."""

    name: str  # module path, e.g. stage1.0.conv2
    type: str  # module class
    depth: int  # 1 for a top-level child
    output_shape: list[int]  # of the first call, without the batch dimension
    params: int
    macs: int
    flops: int
    activation_bytes: int = 0  # bytes of its outputs, all calls
    calls: int = 0
    # measured (per-layer timing, runtime.layer_timing.annotate_layers): per forward of the batch
    time_ms: float | None = None
    time_ms_ci_low: float | None = None
    time_ms_ci_high: float | None = None
    bytes: int | None = None  # traffic lower bound: inputs + outputs + parameters once
    intensity: float | None = None  # FLOP per byte
    gflops_achieved: float | None = None
    gbps_achieved: float | None = None
    bound: str | None = None  # compute | bandwidth | overhead
    roof_fraction: float | None = None  # the applicable roof's floor / measured time


@dataclass
class LayerReconciliation:
    """Per-layer timing of one row (``--depth``), checked against the whole model: the rows at
    depth 1 summed per round (median over rounds, 95% CI), the whole model timed in the same
    rounds (median of its block medians, 95% CI), the rounds, and the seconds the capture and
    timing took (ms per forward of the batch), and the clock of the samples (``wall``, or
    ``cpu``: the thread's CPU time, chosen on a busy machine at 1 thread)."""

    rows_sum_ms: float
    rows_sum_ci_low: float
    rows_sum_ci_high: float
    end_to_end_ms: float
    end_to_end_ci_low: float
    end_to_end_ci_high: float
    rounds: int
    seconds: float = 0.0
    clock: str = "wall"


_NESTED = ("samples_ms", "cpu_samples_ms", "stages", "layers", "layer_timing")  # not flat columns


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
    machine: str | None = None  # set when runs of several machines are merged
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
    # comparison with the baseline model in the same configuration, from paired rounds (each
    # round times every model once, in a shuffled order): median of the per-round ratios and
    # its distribution-free 95% CI; significant when the CI excludes 1; None on the baseline's row
    latency_ratio: float | None = None
    latency_ratio_ci_low: float | None = None
    latency_ratio_ci_high: float | None = None
    latency_ratio_significant: bool | None = None
    throughput_ratio: float | None = None
    throughput_ratio_ci_low: float | None = None
    throughput_ratio_ci_high: float | None = None
    throughput_ratio_significant: bool | None = None
    # measurement quality
    stable: bool | None = None  # the median's CI reached the target (None: not timed)
    stop_reason: str | None = None  # ci | budget | max_rounds
    rounds: int | None = None  # interleaved rounds the samples come from
    load_avg: float | None = None  # 1-minute load average after the measurement
    not_running_share: float | None = None  # share of wall time the process was not running
    # which clock the latency_* fields and ratios come from: "wall" (perf_counter, or CUDA
    # events) or "cpu" (the calling thread's CPU time, on a busy machine at 1 thread)
    clock: str | None = None
    cpu_scope: str | None = None  # cpu_samples_ms are the "thread"'s or the "process"'s
    # outcome
    status: str = "ok"  # ok | oom | error | timeout | nonfinite | skipped
    error: str | None = None
    notes: str | None = None  # what the reader should know: unstable, not measured, ...
    samples_ms: list[float] = field(default_factory=list)  # wall ms per call, always
    cpu_samples_ms: list[float] | None = None  # CPU ms of the same calls (CPU device)
    stages: list[StageCost] = field(default_factory=list)
    layers: list[LayerCost] = field(default_factory=list)  # with --depth: one row per module
    layer_timing: LayerReconciliation | None = None  # with --depth, when the layers were timed

    @classmethod
    def flat_columns(cls) -> list[str]:
        """The scalar columns of CSV/table output, in schema order."""
        return [f.name for f in fields(cls) if f.name not in _NESTED]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def clock_samples(self) -> list[float]:
        """The per-call samples (ms) the latency fields come from: ``cpu_samples_ms`` when
        ``clock`` is ``"cpu"``, else ``samples_ms`` (wall)."""
        if self.clock == "cpu" and self.cpu_samples_ms:
            return list(self.cpu_samples_ms)
        return list(self.samples_ms)

    def config_key(self, *, device_type: bool = False) -> tuple[Any, ...]:
        """The values of :data:`CONFIG_FIELDS`, hashable (``input_size`` as a tuple).
        ``device_type``: ``cuda:1`` reads as ``cuda`` (the gate matches a baseline saved on
        another GPU index of the same machine)."""
        values = []
        for name in CONFIG_FIELDS:
            value = getattr(self, name)
            if name == "input_size":
                value = tuple(value)
            elif name == "device" and device_type:
                value = value.split(":")[0]
            values.append(value)
        return tuple(values)

    def flat(self) -> dict[str, Any]:
        d = self.to_dict()
        d["input_size"] = "x".join(str(v) for v in self.input_size)
        return {k: d[k] for k in self.flat_columns()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "result") -> Result:
        """A Result from its JSON form, every field checked against its annotation (numbers
        finite, no strings where numbers belong, stages well-formed). SchemaError names the
        field: ``results[3].latency_ms_median: expected a finite number, got 'fast'``.
        Every number must be >= 0 (stages and samples included)."""
        return record_from_dict(cls, data, where, non_negative=True)


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

    def to_dataframe(self) -> pd.DataFrame:
        """The results as a pandas DataFrame (see :func:`results_frame`)."""
        return results_frame(self.results)

    def save(self, path: str | os.PathLike[str]) -> Path:
        return atomic_write_text(path, self.to_json())


#: Environment fingerprint keys repeated on every CSV/DataFrame row (as ``env_<key>``), so a
#: merged table still says where each row was measured.
ENVIRONMENT_COLUMNS = ("host", "cpu", "device_name", "torch", "threads", "commit")


def _int_columns() -> list[str]:
    return [
        f.name
        for f in fields(Result)
        if f.name in Result.flat_columns() and str(f.type).split("|")[0].strip() == "int"
    ]


def results_frame(
    results: Sequence[Result | dict[str, Any]], environment: dict[str, Any] | None = None
) -> pd.DataFrame:
    """One flat row per result (records or their dicts, e.g. ``json.load(f)["results"]``);
    columns exactly :meth:`Result.flat_columns` in schema order (``input_size`` as
    ``"3x224x224"``; integer fields as nullable ``Int64``), then ``env_*`` columns when an
    environment is given. pandas is imported on first use."""
    import pandas as pd

    records = [r if isinstance(r, Result) else Result.from_dict(dict(r)) for r in results]
    columns = Result.flat_columns()
    df = pd.DataFrame([r.flat() for r in records], columns=columns)
    for col in _int_columns():
        df[col] = df[col].astype("Int64")
    if environment is not None:
        for key in ENVIRONMENT_COLUMNS:
            df[f"env_{key}"] = environment.get(key)
    return df


def machine_label(environment: dict[str, Any]) -> str:
    """A machine as reports name it: host, device (CPU or GPU name) and torch version."""
    parts = [environment.get("host"), environment.get("device_name") or environment.get("cpu")]
    parts.append(f"torch {environment['torch']}" if environment.get("torch") else None)
    return " · ".join(str(p) for p in parts if p) or "unknown machine"


def merge_runs(runs: Sequence[Run], sources: Sequence[str] = ()) -> Run:
    """One run from runs measured on (possibly) different machines: every result carries its
    ``machine`` label (a result that already has one keeps it), the environment lists each
    machine's fingerprint under ``machines``, and the merge is complete only when every run
    was. The merged run saves and loads like any other."""
    results: list[Result] = []
    machines: dict[str, Any] = {}
    for run in runs:
        for label, env in (run.environment.get("machines") or {}).items():
            machines[label] = env
        label = machine_label(run.environment)
        if "machines" not in run.environment:
            machines.setdefault(label, run.environment)
        for result in run.results:
            results.append(dataclasses.replace(result, machine=result.machine or label))
    return Run(
        results=results,
        environment={"machines": machines},
        config={"merged_from": list(sources) or [r.created for r in runs]},
        complete=all(r.complete for r in runs),
    )


#: Temporary files of :func:`atomic_write_text`: ``.cnnbench-<pid>-<random>.tmp`` beside the
#: target. One left by a killed writer (its process is gone) is removed by the next write to
#: the same directory.
_TEMP_PREFIX = ".cnnbench-"
_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\.cnnbench-(\d+)-[a-z0-9_]{8}\.tmp$")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def clean_orphan_temp_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed :func:`atomic_write_text` calls left in
    ``directory`` (the writer's process no longer exists); returns what was removed. Only
    files named by cnnbench's own pattern are touched; errors are ignored."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        if not entry.is_file(follow_symlinks=False) or _process_alive(int(match.group(1))):
            continue
        try:
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to a temporary file in the target directory, then rename it into place,
    so that a reader never sees a half-written file. Orphan temporary files of earlier,
    killed writes to that directory are removed first (:func:`clean_orphan_temp_files`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_orphan_temp_files(path.parent)
    fd, tmp = tempfile.mkstemp(
        prefix=f"{_TEMP_PREFIX}{os.getpid()}-", suffix=_TEMP_SUFFIX, dir=path.parent
    )
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


def _name_max(directory: Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def write_problem(path: str | os.PathLike[str], *, directory: bool = False) -> str | None:
    """Why a file (``directory``: a folder to write files into) could not be written at
    ``path``, in a few words, or None when it can. Missing parent folders are fine (they
    are created on writing); nothing is created here: writability is probed with a
    temporary file in the nearest existing folder, removed at once (``os.access`` says yes
    to root even on a read-only folder)."""
    path = Path(path)
    text = os.fspath(path)
    if "\x00" in text:
        return "the path contains a NUL character"
    missing: list[str] = []
    probe = path
    while True:
        try:
            info = os.stat(probe)
        except FileNotFoundError:
            if os.path.islink(probe):
                return f"{probe} is a broken symbolic link"
            missing.append(probe.name)
            if probe.parent == probe:
                return f"{probe} does not exist"
            probe = probe.parent
            continue
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return f"{probe} goes through a symbolic link loop"
            if exc.errno == errno.ENAMETOOLONG:
                return "the path is longer than the file system allows"
            if exc.errno == errno.ENOTDIR:
                return f"a part of {probe} is not a directory"
            return f"{probe} cannot be examined ({exc.strerror or exc})"
        break
    import stat

    if probe == path:
        if directory and not stat.S_ISDIR(info.st_mode):
            return f"{path} exists and is not a directory"
        if not directory and stat.S_ISDIR(info.st_mode):
            return f"{path} is a directory"
    elif not stat.S_ISDIR(info.st_mode):
        return f"{probe} is not a directory"
    folder = probe if stat.S_ISDIR(info.st_mode) else probe.parent
    limit = _name_max(folder)
    for name in missing:
        if len(os.fsencode(name)) > limit:
            return f"the name {name[:20]!r}... is {len(os.fsencode(name))} bytes, the file system allows {limit}"
    try:
        fd, tmp = tempfile.mkstemp(
            prefix=f"{_TEMP_PREFIX}{os.getpid()}-", suffix=_TEMP_SUFFIX, dir=folder
        )
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return f"{folder} is not writable ({exc.strerror or exc})"
    return None


#: The largest saved file (run, baseline, pytest-benchmark JSON) cnnbench reads, in bytes.
MAX_FILE_BYTES = 64 * 2**20


def read_text_capped(
    path: str | os.PathLike[str],
    *,
    limit: int = MAX_FILE_BYTES,
    missing: str = "no such file",
    kind: str = "a saved JSON file",
) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes. A device (``/dev/zero``),
    directory or pipe is refused before it is opened, a larger file before it is read, and
    the read itself is capped (a file that grows meanwhile is refused too). SchemaError names
    the file; ``missing`` is the message for a file that does not exist, ``kind`` what the
    file should have been."""
    import stat

    path = Path(path)
    mib = f"{limit / 2**20:g} MiB"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise SchemaError(f"{path}: not a regular file; give the path of {kind}")
        if info.st_size > limit:
            raise SchemaError(
                f"{path}: {info.st_size:,} bytes, larger than the {mib} a saved file may have"
            )
        with path.open("rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise SchemaError(f"{path}: not a regular file; give the path of {kind}")
            raw = fh.read(limit + 1)
    except FileNotFoundError:
        raise SchemaError(f"{path}: {missing}") from None
    except OSError as exc:
        raise SchemaError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if len(raw) > limit:
        raise SchemaError(f"{path}: larger than the {mib} a saved file may have")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def read_json_capped(path: str | os.PathLike[str], *, missing: str = "no such file") -> Any:
    """:func:`read_text_capped` parsed as JSON; SchemaError (naming the file) when it is not
    JSON. NaN and Infinity literals parse here; the schema checks refuse them by field."""
    text = read_text_capped(path, missing=missing)
    try:
        data = json.loads(text)
    except RecursionError:
        raise SchemaError(f"{path}: not a readable JSON file (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise SchemaError(f"{path}: not a readable JSON file ({exc})") from None
    check_depth(data, str(path))
    return data


def read_toml_capped(
    path: str | os.PathLike[str],
    *,
    limit: int = MAX_FILE_BYTES,
    missing: str = "no such file",
    kind: str = "a TOML file",
) -> dict[str, Any]:
    """A TOML file (sweep, claims, gate configuration) as a dict: read by
    :func:`read_text_capped`, parsed by tomllib, nested at most :data:`MAX_DEPTH` levels.
    SchemaError (one line naming the file) for anything else, a file nested thousands of
    levels deep included (tomllib itself would raise RecursionError)."""
    import tomllib

    text = read_text_capped(path, limit=limit, missing=missing, kind=kind)
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise SchemaError(f"{path}: not {kind} (nested too deeply)") from None
    except tomllib.TOMLDecodeError as exc:
        first = one_line(exc, with_type=False)
        raise SchemaError(f"{path}: not a readable {kind.split(' ', 1)[-1]} ({first})") from None
    check_depth(data, str(path))
    return data


def _results_from_dicts(rows: list[Any]) -> list[Result]:
    """Each row checked and built (:meth:`Result.from_dict`). The cyclic garbage collector
    is paused meanwhile: the records hold no cycles, and its passes over a growing heap of
    10^6 new records would cost a quarter of the load."""
    import gc

    paused = gc.isenabled()
    gc.disable()
    try:
        return [Result.from_dict(r, f"results[{i}]") for i, r in enumerate(rows)]
    finally:
        if paused:
            gc.enable()


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read a saved run; raises SchemaError naming the file and the problem.

    The file must be a regular file of at most :data:`MAX_FILE_BYTES`; every field is checked
    against the schema (types, finite numbers, stage records), so a malformed run is refused
    in one line naming the file and the field, never half-read."""
    path = Path(path)
    data = read_json_capped(path)
    if not isinstance(data, dict) or "schema_version" not in data or "results" not in data:
        raise SchemaError(f"{path}: not a cnnbench run (no schema_version/results)")
    version = data["schema_version"]
    if type(version) is not int or version not in READABLE_VERSIONS:
        raise SchemaError(
            f"{path}: schema version {version!r}, this cnnbench reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    # version 1 -> 2 only added optional fields (ratios with CIs, stability, load): the
    # missing ones take their defaults, so the upgrade is reading it as it is
    if not isinstance(data["results"], list):
        raise SchemaError(f"{path}: results: expected a list of result records")
    envelope = {"environment": dict, "config": dict, "complete": bool, "created": str}
    for key, kind in envelope.items():
        if key in data and not isinstance(data[key], kind):
            raise SchemaError(f"{path}: {key}: expected {kind.__name__}, got {describe(data[key])}")
    try:
        results = _results_from_dicts(data["results"])
        return Run(
            results=results,
            environment=data.get("environment", {}),
            config=data.get("config", {}),
            complete=data.get("complete", True),
            created=data.get("created", ""),
            schema_version=SCHEMA_VERSION,
        )
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None
    except (TypeError, ValueError) as exc:  # a dataclass's own check of a field
        raise SchemaError(f"{path}: malformed result record ({exc})") from None
