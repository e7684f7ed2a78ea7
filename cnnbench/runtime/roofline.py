"""A cache-aware roofline with an overhead floor: pure functions, no measurement.

Model. A row (a module's forward, per batch) that performs ``flops`` floating-point operations,
moves at least ``bytes`` bytes and issues ``ops`` operator calls cannot take less than any of

* the compute floor ``flops / peak`` (the matmul peak of the dtype that ran),
* the bandwidth floor ``bytes / bandwidth(working set)``, where the bandwidth is the measured
  roof of the smallest measured working-set size that holds ``bytes`` (the largest size, i.e.
  DRAM, when it exceeds every size; never below the roof of a larger size), and
* the overhead floor ``ops x call_overhead + calls x module_call_overhead`` (a row is
  ``calls`` module calls issuing ``ops`` operator calls).

Conventions:

* ``bytes`` is a stated lower bound on memory traffic: every input, output and parameter
  tensor read or written once (``numel x element_size`` at the dtype and layout that ran;
  channels-last and contiguous tensors of one shape have the same size). Re-reads the cache
  cannot hold, im2col buffers and write-allocate traffic are not counted, so achieved GB/s is
  a lower bound too.
* ``intensity = flops / bytes`` in FLOP per byte; one multiply-accumulate is two FLOPs.
* The bound of a row is ``overhead`` when the overhead floor is the highest of the three or
  its measured time is within :data:`OVERHEAD_FACTOR` overhead floors; otherwise ``compute``
  or ``bandwidth``, whichever floor is higher (the roof the row's intensity puts it under,
  not a guess from its time).
  ``roof_fraction`` is that floor over the measured time: 1.0 is the roof, 0.1 means the row
  ran ten times slower than the roof allows.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BOUNDS",
    "OVERHEAD_FACTOR",
    "RowBound",
    "bandwidth_for",
    "classify",
    "intensity",
    "traffic_bytes",
]

#: The bound names, in the order reports list them.
BOUNDS = ("compute", "bandwidth", "overhead")

#: A row whose time is at most this many overhead floors is overhead-bound.
OVERHEAD_FACTOR = 3.0


@dataclass(frozen=True)
class RowBound:
    """The roofline verdict of one row: ``bound`` (one of :data:`BOUNDS`), ``roof_fraction``
    (the applicable floor / measured time), the three floors in milliseconds, achieved
    ``gflops`` (GFLOP/s) and ``gbps`` (GB/s, of the traffic lower bound), ``intensity``
    (FLOP/byte, None without bytes) and the working-set size whose bandwidth roof applied."""

    bound: str
    roof_fraction: float
    compute_floor_ms: float
    bandwidth_floor_ms: float
    overhead_floor_ms: float
    gflops: float
    gbps: float
    intensity: float | None
    roof_size_bytes: int
    roof_gbps: float


def traffic_bytes(input_bytes: int, output_bytes: int, param_bytes: int) -> int:
    """The traffic lower bound: inputs + outputs + parameters, each moved once (bytes)."""
    if min(input_bytes, output_bytes, param_bytes) < 0:
        raise ValueError("byte counts must be >= 0")
    return input_bytes + output_bytes + param_bytes


def intensity(flops: float, nbytes: float) -> float | None:
    """Arithmetic intensity in FLOP/byte; None when no byte moved."""
    return flops / nbytes if nbytes > 0 else None


def bandwidth_for(nbytes: int, bandwidth_gbps: Mapping[int, float]) -> tuple[int, float]:
    """(size, GB/s) of the roof for a working set of ``nbytes``: the smallest measured size
    that holds it (else the largest size, DRAM), with the best bandwidth measured at that size
    or any larger one: data that fits a cache level streams at least as fast as a larger set,
    so a dip in the measurement (a busy machine) does not lower a cache roof below DRAM's."""
    if not bandwidth_gbps:
        raise ValueError("no bandwidth roofs")
    sizes = sorted(bandwidth_gbps)
    i = min(bisect.bisect_left(sizes, nbytes), len(sizes) - 1)
    size = sizes[i]
    return size, max(bandwidth_gbps[s] for s in sizes[i:])


def classify(
    time_ms: float,
    flops: float,
    nbytes: int,
    *,
    peak_gflops: float,
    bandwidth_gbps: Mapping[int, float],
    call_overhead_us: float,
    ops: int = 1,
    calls: int = 0,
    module_call_us: float = 0.0,
    overhead_factor: float = OVERHEAD_FACTOR,
) -> RowBound:
    """The bound of one row measured at ``time_ms`` (see the module docstring). ``flops`` and
    ``nbytes`` are per timed call (the whole batch); ``ops`` is the number of operator calls
    the row issues, ``calls`` the module calls around them (``module_call_us`` each)."""
    if time_ms <= 0:
        raise ValueError("time_ms must be > 0")
    if peak_gflops <= 0 or call_overhead_us <= 0:
        raise ValueError("peak_gflops and call_overhead_us must be > 0")
    size, gbps_roof = bandwidth_for(nbytes, bandwidth_gbps)
    compute_ms = flops / (peak_gflops * 1e9) * 1e3
    bandwidth_ms = nbytes / (gbps_roof * 1e9) * 1e3
    overhead_ms = (max(ops, 1) * call_overhead_us + max(calls, 0) * module_call_us) / 1e3
    if time_ms <= overhead_factor * overhead_ms or overhead_ms >= max(compute_ms, bandwidth_ms):
        bound, floor = "overhead", overhead_ms
    elif compute_ms >= bandwidth_ms:
        bound, floor = "compute", compute_ms
    else:
        bound, floor = "bandwidth", bandwidth_ms
    seconds = time_ms / 1e3
    return RowBound(
        bound=bound,
        roof_fraction=floor / time_ms,
        compute_floor_ms=compute_ms,
        bandwidth_floor_ms=bandwidth_ms,
        overhead_floor_ms=overhead_ms,
        gflops=flops / seconds / 1e9,
        gbps=nbytes / seconds / 1e9,
        intensity=intensity(flops, nbytes),
        roof_size_bytes=size,
        roof_gbps=gbps_roof,
    )
