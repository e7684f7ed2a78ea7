"""Squeeze-and-Excitation overhead: per stage, by the SENet formula and by measurement.

For each stage s with N_s SE blocks on C_s channels and reduction r, the SENet paper's added
weights are ``(2 / r) * N_s * C_s**2`` (biases neglected). We report that formula, the SE
weights as measured (without and with biases), each stage's share of all SE parameters, and
the overhead relative to the same network **built** with SE switched off (``se_stages=()``),
not derived by formula. Compute is split into the two FC layers (MACs, bias excluded) and
the pooling + gate + scaling work (FLOPs under cnnbench's rule table). Counts per image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from cnnbench.errors import UsageError

if TYPE_CHECKING:
    from cnnbench.static.profile import StaticProfile

__all__ = ["SEStageRow", "SEOverhead", "se_overhead"]


@dataclass
class SEStageRow:
    """SE cost of one stage. ``channels`` is C_s (the largest if blocks differ), ``reduction``
    the effective C/R ratio (mean over the stage's SE blocks)."""

    stage: str
    se_blocks: int
    channels: int
    reduction: float
    formula_params: int
    weight_params: int
    params: int  # weights + biases
    share: float  # of all SE params (with biases)
    fc1_macs: int
    fc2_macs: int
    fc_flops: int
    gate_flops: int  # pooling + gate activation + scaling


@dataclass
class SEOverhead:
    """SE overhead of one model against the same model built without SE."""

    model: str
    input_size: tuple[int, ...]
    rows: list[SEStageRow]
    params: int
    base_params: int
    macs: int
    base_macs: int
    flops: int
    base_flops: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def se_params(self) -> int:
        return sum(r.params for r in self.rows)

    @property
    def added_params(self) -> int:
        return self.params - self.base_params

    @property
    def params_increase(self) -> float:
        return self.added_params / self.base_params

    @property
    def macs_increase(self) -> float:
        return (self.macs - self.base_macs) / self.base_macs

    @property
    def flops_increase(self) -> float:
        return (self.flops - self.base_flops) / self.base_flops

    def share_of(self, stage: str) -> float:
        return next((r.share for r in self.rows if r.stage == stage), 0.0)


def se_overhead(
    name: str,
    *,
    resolution: int | None = None,
    model: nn.Module | None = None,
    profile: StaticProfile | None = None,
    **model_kwargs: Any,
) -> SEOverhead:
    """Measure the SE overhead of zoo model ``name`` (built with ``model_kwargs``).

    The baseline is ``create_model(name, **model_kwargs, se_stages=())``, always built and
    counted. ``model``: the SE model already built with ``model_kwargs`` (any device, any mode),
    used instead of building it again; ``profile``: its static profile at ``resolution``
    (``profile_static``'s default counter), used instead of counting it again. Counts per image.
    """
    from cnnbench.models import get_model_info, se_block_types
    from cnnbench.request import check_input_size
    from cnnbench.static import build_model, profile_static

    info = get_model_info(name)
    if not info.has_se and not model_kwargs.get("se_reduction"):
        raise UsageError(
            f"{name}: has no SE blocks; try se_resnet50, efficientnet_b0, mobilenet_v3_large "
            "or ghostnet"
        )
    if (
        profile is not None
        and resolution is not None
        and profile.input_size[1:]
        != (
            resolution,
            resolution,
        )
    ):
        raise UsageError(
            f"{name}: the profile given is for {'x'.join(map(str, profile.input_size))}, "
            f"not resolution {resolution}"
        )
    if model is None:
        model = build_model(name, **model_kwargs)  # meta: shapes only
    prof = profile or profile_static(model, name=name, resolution=resolution, train_memory=False)
    base_kwargs = {**model_kwargs, "se_stages": ()}
    base = profile_static(
        build_model(name, **base_kwargs),
        name=name,
        input_size=check_input_size(prof.input_size),
        train_memory=False,
    )
    se_types = se_block_types()
    rows: list[SEStageRow] = []
    for stage in prof.stages:
        blocks = [m for m in getattr(model, stage.name).modules() if isinstance(m, se_types)]
        if not blocks:
            continue
        weight = sum(b.fc1.weight.numel() + b.fc2.weight.numel() for b in blocks)
        total = sum(p.numel() for b in blocks for p in b.parameters())
        formula = 0.0
        for b in blocks:
            ratio = b.channels / b.reduced_channels
            formula += 2 / ratio * b.channels**2
        fc1 = sum(b.channels * b.reduced_channels for b in blocks)  # 1x1 conv on a 1x1 map
        se_counts = prof.dispatch.se_by_scope.get(stage.name, {})
        fc = se_counts.get("fc", [0, 0])
        gate = se_counts.get("se_gate", [0, 0])
        if fc[0] != 2 * fc1:  # the measured FC MACs must match the layer shapes
            raise AssertionError(f"{name}/{stage.name}: SE FC MACs {fc[0]} != {2 * fc1}")
        rows.append(
            SEStageRow(
                stage=stage.name,
                se_blocks=len(blocks),
                channels=max(b.channels for b in blocks),
                reduction=sum(b.channels / b.reduced_channels for b in blocks) / len(blocks),
                formula_params=round(formula),
                weight_params=weight,
                params=total,
                share=0.0,
                fc1_macs=fc1,
                fc2_macs=fc1,
                fc_flops=fc[1],
                gate_flops=gate[1],
            )
        )
    all_se = sum(r.params for r in rows) or 1
    for r in rows:
        r.share = r.params / all_se
    return SEOverhead(
        model=name,
        input_size=prof.input_size,
        rows=rows,
        params=prof.params,
        base_params=base.params,
        macs=prof.dispatch.macs,
        base_macs=base.dispatch.macs,
        flops=prof.flops,
        base_flops=base.flops,
        model_kwargs=model_kwargs,
    )
