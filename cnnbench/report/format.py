"""The one vocabulary: how every human-readable number and configuration label is written.

Terminal tables, Markdown, HTML, charts and the gate's reports all format through here, so
the same value reads the same everywhere. Conventions:

* counts, MACs and FLOPs: three significant digits with an SI prefix and a space
  (``61.7 K``, ``4.09 GMACs``, ``417 KMACs``, ``25.6 M``); below 1,000 the plain number;
* bytes: binary prefixes (``97.7 MiB``);
* times in milliseconds, throughput in images per second, ratios as ``1.10×``, changes as
  ``+3.2%``; a missing value is ``—``, a timed ratio that was not measured paired with the
  baseline ``n/a``;
* a configuration label lists device, precision, memory format, batch and resolution, e.g.
  ``cpu fp32 channels_last b8 224px``, with ``train`` and ``compiled`` only when they apply.
  Machine-readable outputs (CSV, JSON) keep the raw fields; labels are for humans.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cnnbench.results import CONFIG_FIELDS

__all__ = [
    "CONVENTIONS",
    "MISSING",
    "NOT_PAIRED",
    "CONFIG_FIELDS",
    "is_missing",
    "sig",
    "si",
    "count",
    "macs",
    "flops",
    "nbytes",
    "ms",
    "latency",
    "ips",
    "ratio",
    "ratio_ci",
    "change",
    "pct",
    "exact",
    "p_value",
    "config_label",
    "varying_config",
]

#: Printed at the top of every human-readable report and static table.
CONVENTIONS = (
    "MACs = multiply-accumulates of conv/linear/matmul, bias excluded; "
    "FLOPs = 2×MACs + elementwise/norm/pool/activation ops per cnnbench's rule table; "
    "static counts per image, eval mode. Latency per batch: median ± distance to its "
    "confidence bound."
)
MISSING = "—"
#: A ratio that was not measured paired with the baseline (e.g. rows of different runs).
NOT_PAIRED = "n/a"
_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))
_BINARY = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def is_missing(value: Any) -> bool:
    """True for None, NaN and pandas' missing values."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and pd.NA compare unequal to themselves
    except (TypeError, ValueError):
        return True


def sig(value: float, digits: int = 3) -> str:
    """``value`` with ``digits`` significant digits, no exponent; whole numbers of ``digits``
    or more digits are written in full with separators: ``12.34`` -> ``12.3``,
    ``0.01234`` -> ``0.0123``, ``1234.5`` -> ``1,234``."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    if abs(value) >= 10 ** (digits - 1) - 0.5:
        return f"{value:,.0f}"
    rounded = float(f"{value:.{digits}g}")
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(rounded))))
    return f"{rounded:,.{decimals}f}"


def si(value: float | None, unit: str = "") -> str:
    """Three significant digits with an SI prefix: ``si(61706)`` -> ``61.7 K``,
    ``si(4.089e9, "MACs")`` -> ``4.09 GMACs``, ``si(612, "MACs")`` -> ``612 MACs``."""
    if is_missing(value):
        return MISSING
    assert value is not None
    for scale, prefix in _SI:
        # 999,600 rounds to 1.00 M, not 1,000 K
        if abs(value) >= scale * 0.9995:
            return f"{sig(value / scale)} {prefix}{unit}"
    text = f"{value:.0f}" if float(value).is_integer() else sig(value)
    return f"{text} {unit}".rstrip()


def count(value: float | None) -> str:
    """A parameter or element count: ``25.6 M``, ``61.7 K``, ``612``."""
    return si(value)


def macs(value: float | None) -> str:
    """Multiply-accumulates: ``4.09 GMACs``."""
    return si(value, "MACs")


def flops(value: float | None) -> str:
    """Floating-point operations: ``8.21 GFLOPs``."""
    return si(value, "FLOPs")


def nbytes(value: float | None) -> str:
    """Bytes with a binary prefix: ``97.7 MiB``, ``512 B``."""
    if is_missing(value):
        return MISSING
    assert value is not None
    for scale, unit in _BINARY:
        if abs(value) >= scale * 0.9995:
            return f"{sig(value / scale)} {unit}"
    return f"{value:.0f} B"


def _time_unit(value_ms: float) -> tuple[float, str]:
    """Milliseconds, or microseconds below 0.1 ms."""
    return (1000.0, "µs") if abs(value_ms) < 0.1 else (1.0, "ms")


def ms(value: float | None) -> str:
    """A time given in milliseconds: ``41.1 ms``; below 0.1 ms in microseconds, ``9.57 µs``."""
    if is_missing(value):
        return MISSING
    assert value is not None
    scale, unit = _time_unit(value)
    return f"{sig(value * scale)} {unit}"


def latency(
    median: float | None,
    low: float | None = None,
    high: float | None = None,
    clock: str | None = None,
) -> str:
    """A median with the distance to its farther confidence bound (two significant digits,
    same unit), and the clock it comes from when known: ``41.1 ms ±0.52 wall``, ``37.1 ms
    ±0.2 cpu`` (the calling thread's CPU time)."""
    if is_missing(median):
        return MISSING
    assert median is not None
    text = ms(median)
    if not is_missing(low) and not is_missing(high):
        scale, _ = _time_unit(median)
        half = max(median - low, high - median) * scale  # type: ignore[operator]
        text += f" ±{sig(half, 2)}"
    return f"{text} {clock}" if clock else text


def ips(value: float | None) -> str:
    """Images per second: ``24.3 img/s``."""
    return MISSING if is_missing(value) else f"{sig(value)} img/s"  # type: ignore[arg-type]


def ratio(value: float | None) -> str:
    """A ratio: ``1.10×``."""
    return MISSING if is_missing(value) or math.isinf(value) else f"{value:.2f}×"  # type: ignore[arg-type]


def ratio_ci(
    value: float | None, low: float | None, high: float | None, significant: bool | None
) -> str:
    """A measured ratio with its 95% CI: ``1.12× [1.10, 1.14]``; when the CI includes 1 the
    difference is not significant: ``≈1.00× n.s. [0.97, 1.03]``."""
    if is_missing(value):
        return MISSING
    interval = "" if is_missing(low) or is_missing(high) else f" [{low:.2f}, {high:.2f}]"
    if significant is False:
        return f"≈{value:.2f}× n.s.{interval}"
    return f"{ratio(value)}{interval}"


def change(value: float | None) -> str:
    """A ratio as a signed change: ``1.032`` -> ``+3.2%``."""
    if is_missing(value) or math.isinf(value):  # type: ignore[arg-type]
        return MISSING
    return f"{(value - 1.0) * 100:+.1f}%"  # type: ignore[operator]


def pct(share: float | None, digits: int = 1) -> str:
    """A share (0..1) as a percentage: ``0.123`` -> ``12.3%``."""
    return MISSING if is_missing(share) else f"{100 * share:.{digits}f}%"  # type: ignore[operator]


def exact(value: float | None) -> str:
    """An exact integer with thousands separators: ``25,557,032``."""
    return MISSING if is_missing(value) else f"{int(value):,}"  # type: ignore[arg-type]


def p_value(value: float | None) -> str:
    """A p-value: two significant digits, ``p<1e-6`` below one in a million."""
    if is_missing(value):
        return MISSING
    assert value is not None
    return "<1e-6" if value < 1e-6 else f"{value:.2g}"


def _resolution(input_size: Sequence[int] | None) -> str:
    if not input_size:
        return "?px"
    h, w = input_size[-2], input_size[-1]
    return f"{h}px" if h == w else f"{h}x{w}px"


def config_label(config: Any, fields: Sequence[str] = CONFIG_FIELDS) -> str:
    """The label of a configuration: ``cpu fp32 channels_last b8 224px``.

    ``config`` is a :class:`~cnnbench.results.Result` (fields: :data:`CONFIG_FIELDS`, the one
    definition of a configuration's identity, from :mod:`cnnbench.results`) or a
    :class:`~cnnbench.runtime.RuntimeConfig` (whose ``resolution`` may be None: then no
    resolution is written). ``fields`` picks the parts (those of :data:`CONFIG_FIELDS`);
    ``mode`` and ``compiled`` appear only when not the default (inference, eager).
    """
    parts: list[str] = []
    for name in fields:
        if name == "batch_size":
            parts.append(f"b{config.batch_size}")
        elif name == "input_size":
            if hasattr(config, "input_size"):
                parts.append(_resolution(config.input_size))
            elif getattr(config, "resolution", None):
                parts.append(f"{config.resolution}px")
        elif name == "mode":
            if config.mode != "inference":
                parts.append(config.mode)
        elif name == "compiled":
            if getattr(config, "compiled", getattr(config, "compile", False)):
                parts.append("compiled")
        elif name == "machine":
            if getattr(config, "machine", None):
                parts.append(f"@ {config.machine}")
        else:
            parts.append(str(getattr(config, name)))
    return " ".join(parts)


def varying_config(results: Sequence[Any]) -> list[str]:
    """The configuration fields (of :data:`CONFIG_FIELDS`) whose value differs between rows."""
    return [name for name in CONFIG_FIELDS if len({repr(getattr(r, name)) for r in results}) > 1]
