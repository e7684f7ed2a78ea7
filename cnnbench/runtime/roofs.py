"""This machine's roofs, measured: memory bandwidth per working-set size, per-call overhead, and
the compute peak per dtype. The whole measurement takes about 4-5 seconds on a quiet CPU
(fp32 only; each further dtype adds about a second).

Conventions:

* **Bandwidth** is measured through torch with two kernels at each working-set size ``S``
  (:data:`SIZES`, 32 KiB to 256 MiB, fp32): a copy ``b.copy_(a)`` over two arrays of ``S/2``
  bytes (moves ``S`` bytes: each array read or written once) and a triad
  ``torch.add(b, c, alpha=2, out=a)`` over three arrays of ``S/3`` bytes (moves ``S`` bytes).
  Write-allocate traffic is not counted (as in STREAM). A timed call repeats the kernel until
  it lasts about 0.2 ms, so the timer's own cost is amortised but torch's per-call overhead is
  not: small sizes report what one torch call over that much data reaches, the practical roof
  a layer of that working set meets. ``bandwidth_gbps[S]`` is the better of the two kernels,
  in GB/s (10^9 bytes/s) at the fastest call (a roof is the best the machine reaches; on a
  busy machine the median counts the time the kernel was descheduled).
* **Call overhead** is the median time of one ``torch.add`` of two one-element tensors with
  ``out=``, in microseconds: the framework's fixed cost of an operator call. The
  **module-call overhead** is the median time of calling an ``nn.Identity`` (no operator):
  what ``module(x)`` adds around the operators of a layer.
* **Compute peak** per dtype is :func:`cnnbench.runtime.peak.machine_peak` (a square matmul,
  ``2 n^3`` FLOPs), the better of two of its measurements (a roof is the best the machine
  reaches; a burst of load lowers one measurement).

Roofs are cached per machine fingerprint (host, CPU or GPU model, device, threads, torch
version) in ``roofs.json`` under the user's cache directory (``$XDG_CACHE_HOME/cnnbench``,
else ``~/.cache/cnnbench``). The file is data: it is parsed as JSON and checked against
:data:`SCHEMA`; an entry that does not match is ignored and measured again; writes go to a
temporary file renamed into place. Figures measured on a busy machine are cached as they came:
pass ``refresh=True`` to measure again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cnnbench.environment import fingerprint
from cnnbench.runtime.peak import machine_peak
from cnnbench.runtime.timing import measure

__all__ = [
    "Roofs",
    "SCHEMA",
    "SIZES",
    "bandwidth_table",
    "cache_path",
    "machine_key",
    "machine_roofs",
    "measure_bandwidth",
    "measure_call_overhead",
    "measure_module_overhead",
]

#: Version of the cached record; a cached entry with another version is measured again.
SCHEMA = 2

#: Working-set sizes in bytes at which bandwidth is measured (cache levels to DRAM).
SIZES: tuple[int, ...] = tuple(k << 10 for k in (32, 256, 1024, 4096, 16384, 65536, 262144))

_REPEAT_TARGET_S = 2e-4  # a timed call lasts about this long (kernel repeated)
_SIZE_BUDGET_S = 0.12  # per kernel and size
_DEFAULT_DTYPES = {"cpu": ("fp32",), "cuda": ("fp32", "fp16", "bf16")}
_KEY_FIELDS = ("host", "cpu", "device", "device_name", "threads", "torch", "cuda")


@dataclass(frozen=True)
class Roofs:
    """Measured roofs of one device: ``peak_gflops`` per dtype name (GFLOP/s),
    ``bandwidth_gbps`` per working-set size in bytes (GB/s, better of copy and triad),
    ``copy_gbps``/``triad_gbps`` per size, ``call_overhead_us`` (microseconds per operator
    call), ``module_call_us`` (microseconds per ``nn.Module`` call around its operators), when they were measured (``measured_at``, Unix seconds) and in how long
    (``measure_s``)."""

    device: str
    threads: int
    peak_gflops: dict[str, float]
    bandwidth_gbps: dict[int, float]
    copy_gbps: dict[int, float]
    triad_gbps: dict[int, float]
    call_overhead_us: float
    module_call_us: float = 0.0
    measured_at: float = 0.0
    measure_s: float = 0.0
    key: str = ""
    notes: list[str] = field(default_factory=list)

    def environment(self) -> dict[str, Any]:
        """The roofs as the run's ``environment`` records them (JSON-ready: size keys are
        byte counts as strings)."""
        return {
            "peak_gflops": dict(self.peak_gflops),
            "bandwidth_gbps": {str(k): v for k, v in sorted(self.bandwidth_gbps.items())},
            "call_overhead_us": self.call_overhead_us,
            "module_call_overhead_us": self.module_call_us,
        }


def bandwidth_table(environment: Mapping[str, Any]) -> dict[int, float]:
    """``bandwidth_gbps`` of a run's environment (string keys) as {bytes: GB/s}."""
    return {int(k): float(v) for k, v in environment.get("bandwidth_gbps", {}).items()}


# --------------------------------------------------------------------------- measuring


def _sync_fn(device: torch.device) -> Callable[[], None] | None:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return None


def _repeated(kernel: Callable[[], Any], device: torch.device) -> tuple[Callable[[], None], int]:
    """``kernel`` repeated so that one call lasts about :data:`_REPEAT_TARGET_S`."""
    sync = _sync_fn(device)
    for _ in range(3):
        kernel()
    if sync:
        sync()
    t0 = time.perf_counter()
    for _ in range(10):
        kernel()
    if sync:
        sync()
    one = max((time.perf_counter() - t0) / 10, 1e-8)
    reps = max(1, min(1000, round(_REPEAT_TARGET_S / one)))

    def run() -> None:
        for _ in range(reps):
            kernel()

    return run, reps


def _gbps(kernel: Callable[[], Any], moved: int, device: torch.device) -> float:
    run, reps = _repeated(kernel, device)
    stats = measure(
        run, device=device, budget_s=_SIZE_BUDGET_S, min_iters=5, max_warmup=10, target_ci=0.03
    )
    return moved * reps / (stats.min_ms / 1000.0) / 1e9


def measure_bandwidth(
    device: str | torch.device = "cpu", sizes: Sequence[int] = SIZES
) -> tuple[dict[int, float], dict[int, float]]:
    """(copy GB/s, triad GB/s) per working-set size in bytes (fp32; see module docstring)."""
    dev = torch.device(device)
    copy, triad = {}, {}
    with torch.inference_mode():
        for size in sizes:
            n2 = max(1, size // 2 // 4)
            a = torch.ones(n2, device=dev)
            b = torch.empty(n2, device=dev)
            copy[size] = _gbps(functools.partial(b.copy_, a), 2 * n2 * 4, dev)
            n3 = max(1, size // 3 // 4)
            x, y, z = (torch.ones(n3, device=dev) for _ in range(3))
            triad[size] = _gbps(
                functools.partial(torch.add, y, z, alpha=2.0, out=x), 3 * n3 * 4, dev
            )
            del a, b, x, y, z
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return copy, triad


def measure_call_overhead(device: str | torch.device = "cpu") -> float:
    """Median microseconds of one ``torch.add`` of one-element tensors (``out=`` given)."""
    dev = torch.device(device)
    with torch.inference_mode():
        a, b, c = (torch.ones(1, device=dev) for _ in range(3))
        stats = measure(
            lambda: torch.add(a, b, out=c),
            device=dev,
            budget_s=0.15,
            min_iters=50,
            max_warmup=200,
            target_ci=0.02,
        )
    return stats.median_ms * 1000.0


def measure_module_overhead(device: str | torch.device = "cpu") -> float:
    """Median microseconds of one call of an ``nn.Identity`` (the module machinery alone)."""
    dev = torch.device(device)
    module = torch.nn.Identity()
    with torch.inference_mode():
        x = torch.ones(1, device=dev)
        stats = measure(lambda: module(x), device=dev, budget_s=0.1, min_iters=50, max_warmup=200)
    return stats.median_ms * 1000.0


# --------------------------------------------------------------------------- cache


def cache_path() -> Path:
    """``roofs.json`` under ``$XDG_CACHE_HOME/cnnbench`` (default ``~/.cache/cnnbench``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnnbench" / "roofs.json"


def machine_key(device: str | torch.device = "cpu") -> str:
    """A short hash of the fingerprint fields a roof depends on (see :data:`_KEY_FIELDS`)."""
    env = fingerprint(device)
    text = json.dumps({k: env.get(k) for k in _KEY_FIELDS}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _finite_map(value: Any, *, int_keys: bool) -> dict[Any, float] | None:
    if not isinstance(value, dict):
        return None
    out: dict[Any, float] = {}
    for k, v in value.items():
        if not isinstance(k, str) or not isinstance(v, (int, float)) or isinstance(v, bool):
            return None
        if not math.isfinite(v) or v <= 0:
            return None
        if int_keys:
            if not k.isdigit():
                return None
            out[int(k)] = float(v)
        else:
            out[k] = float(v)
    return out


def _from_record(record: Any) -> Roofs | None:
    """A Roofs from a cached JSON record, or None when it does not match :data:`SCHEMA`."""
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        return None
    peak = _finite_map(record.get("peak_gflops"), int_keys=False)
    bandwidth, copy, triad = (
        _finite_map(record.get(name), int_keys=True)
        for name in ("bandwidth_gbps", "copy_gbps", "triad_gbps")
    )
    overhead = record.get("call_overhead_us")
    device, threads = record.get("device"), record.get("threads")
    if peak is None or bandwidth is None or copy is None or triad is None:
        return None
    if not isinstance(device, str):
        return None
    if not isinstance(overhead, (int, float)) or not math.isfinite(overhead) or overhead <= 0:
        return None
    if not isinstance(threads, int):
        return None
    module_us = record.get("module_call_us")
    if not isinstance(module_us, (int, float)) or not math.isfinite(module_us) or module_us < 0:
        return None
    notes = record.get("notes", [])
    return Roofs(
        device=device,
        threads=threads,
        peak_gflops=peak,
        bandwidth_gbps=bandwidth,
        copy_gbps=copy,
        triad_gbps=triad,
        call_overhead_us=float(overhead),
        module_call_us=float(module_us),
        measured_at=float(record.get("measured_at", 0.0) or 0.0),
        measure_s=float(record.get("measure_s", 0.0) or 0.0),
        key=str(record.get("key", "")),
        notes=[str(n) for n in notes] if isinstance(notes, list) else [],
    )


def _to_record(roofs: Roofs) -> dict[str, Any]:
    record = asdict(roofs)
    for name in ("bandwidth_gbps", "copy_gbps", "triad_gbps"):
        record[name] = {str(k): v for k, v in record[name].items()}
    record["schema"] = SCHEMA
    return record


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".roofs-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def machine_roofs(
    device: str | torch.device = "cpu",
    dtypes: Sequence[str] | None = None,
    *,
    refresh: bool = False,
    cache: Path | None = None,
) -> Roofs:
    """This machine's roofs for ``device`` (cached per machine fingerprint; see the module
    docstring). ``dtypes`` default to fp32 on CPU (pass the run's AMP dtype too), fp32/fp16/
    bf16 on CUDA; a dtype missing from a cached entry is measured and added. ``cache``
    replaces the cache file (tests); an unwritable cache is not an error (the roofs are
    returned, not stored)."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    names = tuple(dtypes) if dtypes is not None else _DEFAULT_DTYPES.get(dev.type, ("fp32",))
    path = cache if cache is not None else cache_path()
    key = machine_key(dev)
    data = _read_cache(path)
    cached = None if refresh else _from_record(data.get(key))
    if cached is not None and all(n in cached.peak_gflops for n in names):
        return cached
    started = time.perf_counter()
    peaks = dict(cached.peak_gflops) if cached else {}
    for name in names:
        if name not in peaks:
            # the better of two measurements: a burst of load on a shared machine lowers one
            peaks[name] = max(
                machine_peak(dev, name, refresh=refresh or k > 0).matmul_gflops for k in range(2)
            )
    if cached is not None:
        roofs = Roofs(**{**asdict(cached), "peak_gflops": peaks})
    else:
        copy, triad = measure_bandwidth(dev)
        roofs = Roofs(
            device=str(dev),
            threads=torch.get_num_threads(),
            peak_gflops=peaks,
            bandwidth_gbps={s: max(copy[s], triad[s]) for s in copy},
            copy_gbps=copy,
            triad_gbps=triad,
            call_overhead_us=measure_call_overhead(dev),
            module_call_us=measure_module_overhead(dev),
            measured_at=time.time(),
            measure_s=time.perf_counter() - started,
            key=key,
        )
    data[key] = _to_record(roofs)
    with contextlib.suppress(OSError):
        _write_cache(path, data)
    return roofs
