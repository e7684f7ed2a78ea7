"""This machine's practical peak, measured in the same run as the models it is compared with.

* Compute: a square matmul ``C = A @ B`` of size n in the configuration's dtype counts
  ``2 n^3`` floating-point operations; n starts at 256 and doubles while one matmul takes
  under 10 ms (capped at 2048 on CPU, 8192 on CUDA). The figure is GFLOP/s at the fastest
  call, the best of the size search's probes and the final measurement: a peak is what the
  machine reaches, and on a busy machine the median would count the time it was taken away.
* Memory bandwidth: ``dst.copy_(src)`` of a buffer larger than the last-level cache (64 MiB on
  CPU, 512 MiB on CUDA); it reads and writes the buffer once each, so it moves ``2 x bytes``.
  The figure is GB/s (10^9 bytes per second) at the fastest call.

Both are cached per (device, dtype, CPU threads, TF32 setting) for the life of the process. On
CPU the whole measurement takes about a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from cnnbench.runtime.timing import measure

__all__ = ["Peak", "machine_peak", "clear_cache", "DTYPES"]

DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}

_MATMUL_MAX_N = {"cpu": 2048, "cuda": 8192}
_COPY_BYTES = {"cpu": 64 << 20, "cuda": 512 << 20}
_SIZE_TARGET_S = 0.01
_MATMUL_BUDGET_S = {"cpu": 0.4, "cuda": 0.5}
_COPY_BUDGET_S = {"cpu": 0.3, "cuda": 0.3}


@dataclass(frozen=True)
class Peak:
    """Practical peak of one device in one dtype, at the fastest call: ``matmul_gflops`` in
    GFLOP/s (10^9 FLOP/s, 2 n^3 per matmul of size ``matmul_n``) and ``copy_gbps`` in GB/s
    (10^9 bytes/s, read plus write of ``copy_bytes``)."""

    device: str
    dtype: str
    matmul_gflops: float
    matmul_n: int
    copy_gbps: float
    copy_bytes: int
    threads: int
    tf32: bool


_CACHE: dict[tuple[str, str, int, bool], Peak] = {}


def clear_cache() -> None:
    """Forget cached peaks (the next call measures again)."""
    _CACHE.clear()


def _dtype_name(dtype: str | torch.dtype) -> str:
    if isinstance(dtype, torch.dtype):
        for name, value in DTYPES.items():
            if value == dtype:
                return name
        raise ValueError(f"no peak for dtype {dtype}; use fp32, fp16 or bf16")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; use fp32, fp16 or bf16")
    return dtype


def _sync_for(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _matmul_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, int]:
    """(GFLOP/s, n) of the fastest matmul seen: the size search's probes and the final
    measurement at the size it chose."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    n = 256
    cap = _MATMUL_MAX_N[device.type]
    best = (0.0, n)
    while True:
        a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        torch.mm(a, b, out=out)  # first call: library initialisation
        _sync_for(device)
        probe = measure(
            partial(torch.mm, a, b, out=out),
            device=device,
            budget_s=0.05,
            min_iters=1,
            max_iters=3,
            max_warmup=1,
        )
        best = max(best, (_gflops(n, probe.min_ms), n))
        if probe.min_ms / 1000.0 >= _SIZE_TARGET_S or n * 2 > cap:
            break
        n *= 2
    stats = measure(
        lambda: torch.mm(a, b, out=out),
        device=device,
        budget_s=_MATMUL_BUDGET_S[device.type],
        min_iters=5,
        max_warmup=20,
    )
    return max(best, (_gflops(n, stats.min_ms), n))


def _gflops(n: int, ms: float) -> float:
    return 2.0 * n**3 / (ms / 1000.0) / 1e9


def _copy_peak(device: torch.device, dtype: torch.dtype) -> tuple[float, int]:
    nbytes = _COPY_BYTES[device.type]
    numel = nbytes // torch.empty((), dtype=dtype).element_size()
    src = torch.ones(numel, device=device, dtype=dtype)
    dst = torch.zeros(numel, device=device, dtype=dtype)
    stats = measure(
        lambda: dst.copy_(src),
        device=device,
        budget_s=_COPY_BUDGET_S[device.type],
        min_iters=5,
        max_warmup=20,
    )
    moved = 2 * numel * src.element_size()
    return moved / (stats.min_ms / 1000.0) / 1e9, moved // 2


def machine_peak(
    device: str | torch.device = "cpu", dtype: str | torch.dtype = "fp32", *, refresh: bool = False
) -> Peak:
    """Measured matmul GFLOP/s and copy GB/s of ``device`` in ``dtype`` (cached; see module
    docstring). ``device`` is ``cpu``, ``cuda`` or ``cuda:N``; ``dtype`` is fp32/fp16/bf16 or
    the torch dtype."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    if dev.type not in _MATMUL_MAX_N:
        raise ValueError(f"no peak for device {str(dev)!r}; use cpu or cuda")
    name = _dtype_name(dtype)
    # fp32 convolutions use TF32 when cuDNN allows it (PyTorch's default): the peak they are
    # compared with is the matmul peak under the same rule, or fp32 rows exceed 100%.
    tf32 = bool(
        dev.type == "cuda"
        and (torch.backends.cuda.matmul.allow_tf32 or torch.backends.cudnn.allow_tf32)
    )
    key = (str(dev), name, torch.get_num_threads(), tf32)
    if not refresh and key in _CACHE:
        return _CACHE[key]
    torch_dtype = DTYPES[name]
    old_tf32 = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32 or old_tf32
        with torch.inference_mode():
            gflops, n = _matmul_peak(dev, torch_dtype)
            gbps, nbytes = _copy_peak(dev, torch_dtype)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_tf32
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    peak = Peak(
        device=str(dev),
        dtype=name,
        matmul_gflops=gflops,
        matmul_n=n,
        copy_gbps=gbps,
        copy_bytes=nbytes,
        threads=torch.get_num_threads(),
        tf32=tf32,
    )
    _CACHE[key] = peak
    return peak
