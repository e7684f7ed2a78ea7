"""Published efficiency claims, checked against measurement.

Claims are data (``claims.toml`` beside this module, or a user's file of the same shape).
Each names a measurement from :data:`MEASURES`, its arguments, an expected value, a tolerance
and how to compare. The verdict is computed from what is measured, so changing the model
(``model_kwargs = { se_reduction = 8 }``) changes the number and possibly the verdict.
"""

from __future__ import annotations

import inspect
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnbench.errors import UsageError

__all__ = [
    "Claim",
    "Verdict",
    "MEASURES",
    "DEFAULT_CLAIMS",
    "load_claims",
    "check_claim",
    "check_claims",
]

DEFAULT_CLAIMS = Path(__file__).with_name("claims.toml")
_KINDS = ("relative", "absolute", "at_least")


@dataclass(frozen=True)
class Claim:
    """One claim as written in the claims file."""

    id: str
    text: str
    source: str
    measure: str
    expected: float
    kind: str = "relative"
    tolerance: float = 0.0
    unit: str = "count"
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """A claim with its measured value and whether it holds within its tolerance."""

    claim: Claim
    measured: float
    holds: bool
    deviation: float  # measured - expected (absolute) or measured/expected - 1 (relative)


def _freeze(kwargs: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))


@lru_cache(maxsize=32)
def _overhead(model: str, frozen: tuple) -> Any:
    from cnnbench.static.se import se_overhead

    return se_overhead(model, **dict(frozen))


def _se(fn: Callable[[Any], float]) -> Callable[..., float]:
    def measure(model: str, model_kwargs: dict[str, Any] | None = None) -> float:
        return fn(_overhead(model, _freeze(model_kwargs or {})))

    return measure


def _gmacs(model: str, model_kwargs: dict[str, Any] | None = None) -> float:
    from cnnbench.static import profile_static

    return profile_static(model, train_memory=False, **(model_kwargs or {})).macs / 1e9


def _count(module: nn.Module, resolution: int, in_channels: int, metric: str) -> int:
    from cnnbench.static.counting import count_dispatch

    if metric == "params":
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))
    x = torch.empty(1, in_channels, resolution, resolution, device="meta")
    return count_dispatch(module.to("meta").eval(), [x], track_memory=False).macs


def _ghost_module_reduction(
    in_channels: int, out_channels: int, ratio: int, resolution: int, metric: str = "macs"
) -> float:
    """Plain 1x1 conv cost / Ghost module cost (conv weights only for params; BN excluded)."""
    from cnnbench.models.ghostnet import GhostModule

    plain = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    ghost = GhostModule(in_channels, out_channels, ratio=ratio)
    return _count(plain, resolution, in_channels, metric) / _count(
        ghost, resolution, in_channels, metric
    )


def _depthwise_separable_ratio(
    in_channels: int, out_channels: int, kernel: int, resolution: int
) -> float:
    """MACs of depthwise kxk + pointwise 1x1 over MACs of a standard kxk conv."""
    pad = kernel // 2
    standard = nn.Conv2d(in_channels, out_channels, kernel, padding=pad, bias=False)
    separable = nn.Sequential(
        nn.Conv2d(in_channels, in_channels, kernel, padding=pad, groups=in_channels, bias=False),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
    )
    return _count(separable, resolution, in_channels, "macs") / _count(
        standard, resolution, in_channels, "macs"
    )


#: Measurement name -> function(**args) -> float. Extend to support new kinds of claims.
MEASURES: dict[str, Callable[..., float]] = {
    "se_added_params": _se(lambda o: float(o.added_params)),
    "se_params_increase": _se(lambda o: o.params_increase),
    "se_final_stage_share": _se(lambda o: o.rows[-1].share if o.rows else 0.0),
    "se_macs_increase": _se(lambda o: o.macs_increase),
    "se_flops_increase": _se(lambda o: o.flops_increase),
    "gmacs": _gmacs,
    "ghost_module_reduction": _ghost_module_reduction,
    "depthwise_separable_ratio": _depthwise_separable_ratio,
}


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Read claims from a TOML file (the built-in set by default)."""
    path = Path(path) if path is not None else DEFAULT_CLAIMS
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: no such claims file") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: not a readable TOML claims file ({exc})") from None
    claims = []
    for i, raw in enumerate(data.get("claim", []), start=1):
        try:
            claim = Claim(**raw)
        except TypeError as exc:
            raise UsageError(f"{path}: claim #{i} is malformed ({exc})") from None
        if claim.measure not in MEASURES:
            raise UsageError(
                f"{path}: claim {claim.id!r} uses unknown measure {claim.measure!r}; "
                f"known: {', '.join(MEASURES)}"
            )
        if claim.kind not in _KINDS:
            raise UsageError(f"{path}: claim {claim.id!r}: kind must be one of {', '.join(_KINDS)}")
        numbers = {"expected": claim.expected, "tolerance": claim.tolerance}
        for key, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{path}: claim {claim.id!r}: {key} must be a number")
        try:  # wrong or missing arguments fail here, naming the file, not at check time
            inspect.signature(MEASURES[claim.measure]).bind(**claim.args)
        except TypeError as exc:
            raise UsageError(
                f"{path}: claim {claim.id!r}: bad args for measure {claim.measure!r} ({exc})"
            ) from None
        claims.append(claim)
    if not claims:
        raise UsageError(f"{path}: no [[claim]] entries")
    return claims


def check_claim(claim: Claim) -> Verdict:
    """Measure and judge one claim."""
    measured = float(MEASURES[claim.measure](**claim.args))
    if claim.kind == "relative":
        deviation = measured / claim.expected - 1
        holds = abs(deviation) <= claim.tolerance
    elif claim.kind == "absolute":
        deviation = measured - claim.expected
        holds = abs(deviation) <= claim.tolerance
    else:  # at_least
        deviation = measured - claim.expected
        holds = measured >= claim.expected
    return Verdict(claim, measured, holds, deviation)


def check_claims(claims: list[Claim] | None = None) -> list[Verdict]:
    """Judge every claim (the built-in set by default)."""
    return [check_claim(c) for c in (claims if claims is not None else load_claims())]
