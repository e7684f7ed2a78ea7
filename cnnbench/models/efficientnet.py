"""EfficientNet B0-B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
Networks", ICML 2019).

The B0 baseline is seven stages of MBConv blocks (inverted bottlenecks with depthwise
convolutions and Squeeze-and-Excitation); B1-B7 scale its widths by ``width`` (rounded to a
multiple of 8) and its block counts by ``depth`` (rounded up), at a larger input resolution.
Parameter counts equal torchvision's ``efficientnet_b0`` .. ``efficientnet_b7`` exactly.

Each MBConv keeps its residual connection whenever it has stride 1 and equal input and output
widths; the residual branch is dropped per sample by stochastic depth in training mode only,
with a drop probability that grows linearly from 0 to ``stochastic_depth_prob`` over the blocks.
SE squeezes to ``max(1, block_input_channels // se_reduction)`` channels (the reference uses
``se_reduction=4``, i.e. a 0.25 ratio of the block *input* width, not of the expanded width).

BatchNorm as in torchvision: B0-B4 use PyTorch's defaults (eps 1e-5, momentum 0.1), B5-B7
eps 1e-3 and momentum 0.01 (torchvision's ``efficientnet_b5`` .. ``b7`` pass that norm layer).

Layout: ``stem`` (conv3x3 stride 2), ``stage1`` .. ``stage7`` (the seven MBConv stages of the
B0 table), ``head`` (conv1x1 to 4x the last stage width, global pool, dropout, linear).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypedDict, TypeVar, Unpack

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, NormLayer, SqueezeExcite, StagedNet, init_weights, make_divisible
from ._registry import register_model, registered_defaults

__all__ = [
    "EfficientNetArgs",
    "StochasticDepth",
    "MBConv",
    "efficientnet_b0",
    "efficientnet_b1",
    "efficientnet_b2",
    "efficientnet_b3",
    "efficientnet_b4",
    "efficientnet_b5",
    "efficientnet_b6",
    "efficientnet_b7",
]

_PAPER = "Tan & Le 2019, EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks"

_SiLU = partial(nn.SiLU, inplace=True)
_F = TypeVar("_F", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class _StageCfg:
    expand_ratio: int
    kernel: int
    stride: int
    in_channels: int
    out_channels: int
    layers: int


# The B0 table (paper Table 1, stages 2-8): expand ratio, kernel, stride, in, out, layers.
_B0_STAGES = (
    _StageCfg(1, 3, 1, 32, 16, 1),
    _StageCfg(6, 3, 2, 16, 24, 2),
    _StageCfg(6, 5, 2, 24, 40, 2),
    _StageCfg(6, 3, 2, 40, 80, 3),
    _StageCfg(6, 5, 1, 80, 112, 3),
    _StageCfg(6, 5, 2, 112, 192, 4),
    _StageCfg(6, 3, 1, 192, 320, 1),
)
_ALL_STAGES = tuple(range(1, len(_B0_STAGES) + 1))

# BatchNorm of the reference (torchvision efficientnet.py): B0-B4 keep nn.BatchNorm2d's defaults
# (eps 1e-5, momentum 0.1); B5-B7 use eps 1e-3, momentum 0.01 (the TF reference's settings).
_BN_B0_B4: NormLayer = nn.BatchNorm2d
_BN_B5_B7: NormLayer = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.01)

# name: (width multiplier, depth multiplier, resolution, dropout before the classifier, BatchNorm)
_VARIANTS: dict[str, tuple[float, float, int, float, NormLayer]] = {
    "efficientnet_b0": (1.0, 1.0, 224, 0.2, _BN_B0_B4),
    "efficientnet_b1": (1.0, 1.1, 240, 0.2, _BN_B0_B4),
    "efficientnet_b2": (1.1, 1.2, 260, 0.3, _BN_B0_B4),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3, _BN_B0_B4),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4, _BN_B0_B4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4, _BN_B5_B7),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5, _BN_B5_B7),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5, _BN_B5_B7),
}


class EfficientNetArgs(TypedDict, total=False):
    """Keywords of the EfficientNet builders. ``se_reduction`` divides the block *input* width
    (4 in the reference; None = no SE); ``se_stages`` 1-based over the seven MBConv stages;
    ``dropout`` before the classifier (default: the variant's); ``stochastic_depth_prob`` the
    drop probability of the last block (default 0.2)."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]
    dropout: float
    stochastic_depth_prob: float


class StochasticDepth(nn.Module):
    """Drop the whole residual branch of a sample with probability ``p`` ("row" mode), scaling
    the kept ones by 1/(1-p). Identity in eval mode or when ``p == 0``."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MBConv(nn.Module):
    """Mobile inverted bottleneck: [expand 1x1 + BN + SiLU] -> depthwise kxk + BN + SiLU ->
    [SE] -> project 1x1 + BN (linear), plus the identity shortcut when ``stride == 1`` and
    ``in_channels == out_channels`` (through stochastic depth)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        expand_ratio: int,
        se_reduction: int | None = 4,
        drop_path: float = 0.0,
        norm: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        mid = make_divisible(in_channels * expand_ratio, 8)
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if mid != in_channels:
            layers.append(ConvBNAct(in_channels, mid, 1, act=_SiLU, norm=norm))
        layers.append(
            ConvBNAct(mid, mid, kernel_size, stride=stride, groups=mid, act=_SiLU, norm=norm)
        )
        if se_reduction is not None:
            squeeze = max(1, in_channels // se_reduction)
            layers.append(SqueezeExcite(mid, squeeze, act=_SiLU, gate=nn.Sigmoid))
        layers.append(ConvBNAct(mid, out_channels, 1, act=None, norm=norm))
        self.block = nn.Sequential(*layers)
        self.drop_path = StochasticDepth(drop_path) if self.use_residual else nn.Identity()
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        if self.use_residual:
            out = self.drop_path(out) + x
        return out


def _create_efficientnet(variant: str, **kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """Build registered EfficientNet ``variant`` (defaults: its registration and table row)."""
    args = registered_defaults(variant, kwargs, "num_classes", "se_reduction", "se_stages")
    width, depth, _, dropout, norm = _VARIANTS[variant]
    return _build_efficientnet(width, depth, norm, **{"dropout": dropout, **args})


def _build_efficientnet(
    width: float,
    depth: float,
    norm: NormLayer,
    *,
    num_classes: int,
    se_reduction: int | None,
    se_stages: Sequence[int],
    dropout: float,
    stochastic_depth_prob: float = 0.2,
) -> StagedNet:
    se_stages = tuple(se_stages)
    unknown = set(se_stages) - set(_ALL_STAGES)
    if unknown:
        raise ValueError(f"se_stages {sorted(unknown)} out of range 1..{len(_B0_STAGES)}")

    def ch(c: int) -> int:
        return make_divisible(c * width, 8)

    cfgs = [(cfg, math.ceil(cfg.layers * depth)) for cfg in _B0_STAGES]
    total_blocks = sum(n for _, n in cfgs)

    stem_out = ch(_B0_STAGES[0].in_channels)
    stem = ConvBNAct(3, stem_out, 3, stride=2, act=_SiLU, norm=norm)

    stages: list[nn.Sequential] = []
    channels = [stem_out]
    block_id = 0
    in_ch = stem_out
    for index, (cfg, n) in enumerate(cfgs, start=1):
        out_ch = ch(cfg.out_channels)
        reduction = se_reduction if index in se_stages else None
        blocks = []
        for i in range(n):
            drop = stochastic_depth_prob * block_id / total_blocks
            stride = cfg.stride if i == 0 else 1
            blocks.append(
                MBConv(in_ch, out_ch, cfg.kernel, stride, cfg.expand_ratio, reduction, drop, norm)
            )
            in_ch = out_ch
            block_id += 1
        stages.append(nn.Sequential(*blocks))
        channels.append(out_ch)

    last = 4 * in_ch
    head = nn.Sequential(
        ConvBNAct(in_ch, last, 1, act=_SiLU, norm=norm),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Dropout(dropout, inplace=True),
        nn.Linear(last, num_classes),
    )
    model = StagedNet(stem, stages, head, channels=[*channels, num_classes])
    init_weights(model)
    return model


def _register(name: str) -> Callable[[_F], _F]:
    """Register an EfficientNet under ``name``; its input size is the variant's resolution."""
    resolution = _VARIANTS[name][2]
    return register_model(
        family="efficientnet",
        paper=_PAPER,
        input_size=(3, resolution, resolution),
        se_reduction=4,
        se_stages=_ALL_STAGES,
    )


@_register("efficientnet_b0")
def efficientnet_b0(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B0 (width 1.0, depth 1.0, 224x224, dropout 0.2)."""
    return _create_efficientnet("efficientnet_b0", **kwargs)


@_register("efficientnet_b1")
def efficientnet_b1(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B1 (width 1.0, depth 1.1, 240x240, dropout 0.2)."""
    return _create_efficientnet("efficientnet_b1", **kwargs)


@_register("efficientnet_b2")
def efficientnet_b2(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B2 (width 1.1, depth 1.2, 260x260, dropout 0.3)."""
    return _create_efficientnet("efficientnet_b2", **kwargs)


@_register("efficientnet_b3")
def efficientnet_b3(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B3 (width 1.2, depth 1.4, 300x300, dropout 0.3)."""
    return _create_efficientnet("efficientnet_b3", **kwargs)


@_register("efficientnet_b4")
def efficientnet_b4(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B4 (width 1.4, depth 1.8, 380x380, dropout 0.4)."""
    return _create_efficientnet("efficientnet_b4", **kwargs)


@_register("efficientnet_b5")
def efficientnet_b5(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B5 (width 1.6, depth 2.2, 456x456, dropout 0.4)."""
    return _create_efficientnet("efficientnet_b5", **kwargs)


@_register("efficientnet_b6")
def efficientnet_b6(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B6 (width 1.8, depth 2.6, 528x528, dropout 0.5)."""
    return _create_efficientnet("efficientnet_b6", **kwargs)


@_register("efficientnet_b7")
def efficientnet_b7(**kwargs: Unpack[EfficientNetArgs]) -> StagedNet:
    """EfficientNet-B7 (width 2.0, depth 3.1, 600x600, dropout 0.5)."""
    return _create_efficientnet("efficientnet_b7", **kwargs)
