"""Reading baselines (cnnbench runs and pytest-benchmark JSON) and matching their rows."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnnbench.errors import UsageError
from cnnbench.results import Result, Run, SchemaError, load_run

from .config import CALIBRATION_MODEL

_ENV_KEYS = {"torch": "torch", "device_name": "device", "cpu": "CPU", "threads": "threads"}

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
