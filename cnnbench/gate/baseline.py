"""Reading baselines (cnnbench runs and pytest-benchmark JSON) and matching their rows."""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from cnnbench.errors import UsageError
from cnnbench.report.format import config_label
from cnnbench.results import CONFIG_FIELDS, Result, Run, load_run, read_json_capped
from cnnbench.schema import SchemaError, check

from .config import CALIBRATION_MODEL, GateConfig, config_from_dict

_ENV_KEYS = {"torch": "torch", "device_name": "device", "cpu": "CPU", "threads": "threads"}

# Keys and labels ------------------------------------------------------------------------------
#: A row's identity in the gate: the model name, then the values of
#: :data:`cnnbench.results.CONFIG_FIELDS` (the device by its type, see :meth:`Result.config_key`).
Key = tuple[Any, ...]


def result_key(r: Result) -> Key:
    """(model, *configuration) of a result: its configuration by the one definition of a
    configuration's identity, the device by its type (``cuda:1`` reads as ``cuda``)."""
    return (r.model, *r.config_key(device_type=True))


def key_label(key: Key) -> str:
    """``cpu fp32 contiguous b1 224px`` (the model excluded), written by
    :func:`cnnbench.report.format.config_label`; no resolution when the row records none."""
    config = SimpleNamespace(**dict(zip(CONFIG_FIELDS, key[1:], strict=True)))
    fields = [f for f in CONFIG_FIELDS if config.input_size or f != "input_size"]
    return config_label(config, fields)


def _index(results: Sequence[Result]) -> dict[Key, Result]:
    return {result_key(r): r for r in results if not _is_calibration(r)}


def _is_calibration(r: Result) -> bool:
    return r.model == CALIBRATION_MODEL or r.model.startswith(CALIBRATION_MODEL + "/")


def _calibration_name(model: str) -> str:
    return f"{CALIBRATION_MODEL}/{model}"


def _find(index: Mapping[Key, Result], key: Key) -> Result | None:
    """Exact key, else the only row of the same model that records no configuration (a
    pytest-benchmark row without cnnbench's extra info). A row saved under another
    configuration never stands in for this one."""
    if key in index:
        return index[key]
    same = [r for k, r in index.items() if k[0] == key[0] and not r.input_size]
    return same[0] if len(same) == 1 else None


def _calibration(run: Run, row: Result) -> list[float] | None:
    """The calibration samples timed with ``row`` (its ``__calibration__/<model>`` row), or
    None when the run has none."""
    key = result_key(row)
    for r in run.results:
        if r.model == _calibration_name(row.model) and result_key(r)[1:] == key[1:]:
            return r.clock_samples() or None
    return None


# Baselines ------------------------------------------------------------------------------------
_NO_BASELINE = "no such file; create a baseline with `cnnbench gate save`"


def _check(value: Any, hint: Any, where: str, path: Path) -> Any:
    """``value`` checked against the type ``hint`` (see :func:`cnnbench.schema.check`);
    SchemaError naming the file and field."""
    try:
        return check(value, hint, where)
    except SchemaError as exc:
        raise SchemaError(f"{path}: {exc}") from None


def _check_samples(samples: Sequence[float], where: str, path: Path, fix: str) -> None:
    """Raw latency samples must be non-negative with a positive median (finite numbers are
    checked by the schema); SchemaError naming the file and the field otherwise."""
    for i, v in enumerate(samples):
        if not (isinstance(v, (int, float)) and math.isfinite(v)) or v < 0:
            raise SchemaError(f"{path}: {where}[{i}]: {v!r} is not a time >= 0; {fix}")
    if samples and statistics.median(samples) <= 0:
        zero = "all zero" if not any(samples) else "a median of zero"
        raise SchemaError(f"{path}: {where}: the samples are {zero}, not timings; {fix}")


_PB_EXTRA: dict[str, Any] = {
    "model": str,
    "batch_size": int,
    "input_size": list[int],
    "device": str,
    "precision": str,
    "memory_format": str,
    "threads": int | None,
    "torch": str,
    "device_name": str,
}


def read_pytest_benchmark(
    path: str | os.PathLike[str], data: Mapping[str, Any] | None = None
) -> Run:
    """A pytest-benchmark saved JSON (``--benchmark-json`` or ``--benchmark-autosave
    --benchmark-save-data``) as a Run: one Result per benchmark, ``samples_ms`` from
    ``stats.data`` (seconds per iteration) x 1000. Benchmarks recorded by cnnbench's pytest
    fixture carry the model and configuration in ``extra_info["cnnbench"]``; others are
    matched by benchmark name, batch 1. The file is data: every field used is type-checked
    and a malformed one refused (SchemaError naming the file and the field)."""
    path = Path(path)
    if data is None:
        data = _read_json(path)
    benches = data.get("benchmarks")
    if not isinstance(benches, list) or not benches:
        raise SchemaError(f"{path}: pytest-benchmark file without benchmarks")
    fix = "re-run the benchmarks and save them again"
    results: list[Result] = []
    first_extra: Mapping[str, Any] = {}
    for i, bench in enumerate(benches):
        where = f"benchmarks[{i}]"
        if not isinstance(bench, dict):
            raise SchemaError(f"{path}: {where}: expected an object, got {type(bench).__name__}")
        name = bench.get("name") or bench.get("fullname") or "?"
        _check(name, str, f"{where}.name", path)
        stats = _check(bench.get("stats") or {}, dict, f"{where}.stats", path)
        raw = stats.get("data")
        if not raw:
            raise SchemaError(
                f"{path}: benchmark {name!r} has no raw samples (stats.data); save with "
                "--benchmark-json FILE or --benchmark-autosave --benchmark-save-data"
            )
        seconds = _check(raw, list[float], f"{where}.stats.data", path)
        _check_samples(seconds, f"{where}.stats.data", path, fix)
        info = _check(bench.get("extra_info") or {}, dict, f"{where}.extra_info", path)
        extra = _check(info.get("cnnbench") or {}, dict, f"{where}.extra_info.cnnbench", path)
        for key, hint in _PB_EXTRA.items():
            if extra.get(key) is not None:
                _check(extra[key], hint, f"{where}.extra_info.cnnbench.{key}", path)
        if extra.get("batch_size") is not None and extra["batch_size"] < 1:
            raise SchemaError(
                f"{path}: {where}.extra_info.cnnbench.batch_size: {extra['batch_size']} is "
                f"not >= 1; {fix}"
            )
        if extra and not first_extra:  # the fixture's rows carry the fingerprint,
            first_extra = extra  # wherever they are among the file's benchmarks
        samples = [s * 1000.0 for s in seconds]
        median = statistics.median(samples)
        batch = extra.get("batch_size") or 1
        try:
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
                    throughput_ips=batch * 1000.0 / median,
                    timed_iters=len(samples),
                    samples_ms=samples,
                )
            )
        except (TypeError, ValueError) as exc:
            raise SchemaError(f"{path}: {where}: malformed benchmark ({exc})") from None
    machine = _check(data.get("machine_info") or {}, dict, "machine_info", path)
    cpu = machine.get("cpu") or {}
    env: dict[str, Any] = {"source": "pytest-benchmark", "python": machine.get("python_version")}
    if isinstance(cpu, Mapping) and cpu.get("brand_raw"):
        env["cpu"] = _check(cpu["brand_raw"], str, "machine_info.cpu.brand_raw", path)
    for key in ("torch", "device_name", "threads"):
        if first_extra.get(key) is not None:
            env[key] = first_extra[key]
    created = data.get("datetime", "")
    return Run(
        results=results,
        environment=env,
        config={"source": "pytest-benchmark"},
        created=created if isinstance(created, str) else "",
    )


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON object from a regular file of at most 64 MiB (SchemaError otherwise)."""
    data = read_json_capped(path, missing=_NO_BASELINE)
    if not isinstance(data, dict):
        raise SchemaError(f"{path}: not a cnnbench run or pytest-benchmark file")
    return data


def _check_run(run: Run, path: Path) -> None:
    """What the gate relies on beyond the schema: positive batches, non-negative counts and
    memory, timings that are times, a well-formed stored configuration."""
    fix = "re-save the baseline with `cnnbench gate save`"
    for i, r in enumerate(run.results):
        where = f"results[{i}]"
        if r.batch_size < 1:
            raise SchemaError(f"{path}: {where}.batch_size: {r.batch_size} is not >= 1; {fix}")
        if r.input_size and (len(r.input_size) != 3 or min(r.input_size) < 1):
            raise SchemaError(f"{path}: {where}.input_size: {r.input_size} is not [C, H, W]; {fix}")
        for name in ("params", "macs", "flops", "activation_bytes", "peak_memory_bytes"):
            value = getattr(r, name)
            if value is not None and value < 0:
                raise SchemaError(f"{path}: {where}.{name}: {value} is negative; {fix}")
        _check_samples(r.samples_ms, f"{where}.samples_ms", path, fix)
    stored = run.config.get("gate")
    if stored is not None:
        config_from_dict(stored, f"{path}: config.gate")


def load_baseline(path: str | os.PathLike[str]) -> Run:
    """A cnnbench run or a pytest-benchmark JSON; SchemaError (exit 2) for anything else:
    a missing, oversized or non-regular file, a malformed record, NaN, inf, strings or
    all-zero timings, a malformed stored configuration."""
    path = Path(path)
    data = _read_json(path)
    if "schema_version" not in data and "benchmarks" in data:
        return read_pytest_benchmark(path, data)
    run = load_run(path)
    _check_run(run, path)
    if not any(r.samples_ms for r in run.results if not _is_calibration(r)):
        raise SchemaError(
            f"{path}: the run holds no raw latency samples; save it with `cnnbench gate save`"
        )
    return run


def _is_zoo_name(spec: str) -> bool:
    """A registered zoo model name (no module, no file: nothing is imported for it)."""
    from cnnbench.models import list_models

    return ":" not in spec and spec in list_models()


def baseline_config(
    run: Run, path: str | os.PathLike[str], models: Sequence[str] = (), *, take_models: bool = True
) -> GateConfig:
    """The gate settings stored in a baseline, for a check run without a configuration file.

    A baseline is data, never code: its measurement settings are used (type-checked), but
    models are taken from it only when every stored model is a zoo name (zoo names are not
    code: nothing is imported for them, and their builder arguments are plain JSON values).
    A stored ``module:callable`` or ``file.py:Name`` spec is refused (UsageError): pass it
    with ``--model`` or list it in ``[tool.cnnbench.gate]`` if you trust it. When ``models``
    (from the command line) are given, they replace the stored ones and the stored
    ``model_args`` (which belong to the stored models) are dropped; ``take_models`` False
    (comparing saved files: nothing is built) takes the settings only."""
    stored = run.config.get("gate")
    source = f"{path}: config.gate"
    cfg = config_from_dict(stored, source) if stored is not None else GateConfig()
    if models or not take_models:
        return dataclasses.replace(cfg, models=tuple(models), model_args={})
    code = [m for m in cfg.models if not _is_zoo_name(m)]
    if code:
        raise UsageError(
            f"{path}: the baseline names model {code[0]!r}; a baseline is data and cnnbench "
            f"never imports or calls code it names: pass --model {code[0]} or list it under "
            "[tool.cnnbench.gate] models if you trust it"
        )
    return cfg


def environment_mismatches(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """``["torch 2.12.0 -> 2.13.0", ...]`` for the keys that matter to timing and are known
    on both sides (torch version, device name, CPU model, threads)."""
    out: list[str] = []
    for key, label in _ENV_KEYS.items():
        a, b = baseline.get(key), current.get(key)
        if a is not None and b is not None and a != b:
            out.append(f"{label} {a} -> {b}")
    return out


def missing_environment(env: Mapping[str, Any]) -> list[str]:
    """The fingerprint keys that matter to timing (torch, device, CPU, threads) and are
    absent (or null) in ``env``, as ``"torch (torch)"`` labels."""
    return [f"{label} ({key})" for key, label in _ENV_KEYS.items() if env.get(key) in (None, "")]


def _check_env(
    base_env: Mapping[str, Any],
    cur_env: Mapping[str, Any],
    allow: bool,
    source: str,
    base_source: str | None = None,
) -> list[str]:
    """Notes about the environment; UsageError (unless ``allow``) when a fingerprint key is
    missing on either side, or differs. ``source`` names the candidate (or the baseline when
    measuring now), ``base_source`` the baseline file."""
    base_source = base_source or source
    notes: list[str] = []
    for env, where in ((base_env, base_source), (cur_env, source)):
        missing = missing_environment(env)
        if not missing:
            continue
        if not allow:
            fix = (
                "record the benchmarks with the cnnbench_latency fixture"
                if env.get("source") == "pytest-benchmark"
                else "re-save it with `cnnbench gate save`"
            )
            raise UsageError(
                f"{where}: the environment fingerprint lacks {', '.join(missing)}, so the "
                f"machines cannot be compared; {fix}, or pass --allow-env-mismatch"
            )
        notes.append(f"{where}: environment fingerprint lacks {', '.join(missing)} (allowed)")
    diffs = environment_mismatches(base_env, cur_env)
    if diffs and not allow:
        raise UsageError(
            f"{source}: environment differs from the baseline ({'; '.join(diffs)}); re-save "
            "the baseline on this machine, or pass --allow-env-mismatch"
        )
    if diffs:
        notes.append(f"environment mismatch allowed: {'; '.join(diffs)}")
    return notes
