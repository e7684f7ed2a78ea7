"""GhostNet (Han et al., "GhostNet: More Features from Cheap Operations", CVPR 2020).

The MobileNetV3-like layout of the paper's Table 1, as in the official GhostNet code (and timm's
ghostnet_100): 5,182,508 parameters and 141 MMACs at 1.0x, 224x224.

- :class:`GhostModule` (ratio s, dw size d): a primary conv1x1 producing ceil(out / s) channels
  (+ BN, + optional ReLU), a cheap depthwise d x d conv producing (s - 1) times as many from them
  (+ BN, + optional ReLU); both are concatenated and the first ``out`` channels kept.
- :class:`GhostBottleneck`: ghost module (expand, ReLU), depthwise conv + BN when stride 2,
  optional SE, ghost module (project, no ReLU), plus the shortcut: identity, or depthwise conv +
  BN + conv1x1 + BN when the shape changes. No activation after the addition.
- SE is the shared :class:`SqueezeExcite` on the expanded width with reduced width
  make_divisible(exp / se_reduction, 4) (exp * 0.25 in the paper), ReLU and hard-sigmoid gate.
- Stem conv3x3/2 to 16 + BN + ReLU; 16 bottlenecks; conv1x1 to 960 + BN + ReLU; head: global
  average pool, conv1x1(960 -> 1280, with bias) + ReLU, flatten, dropout 0.2, linear.

Stages (a new stage at each stride-2 bottleneck group, i.e. grouped by output resolution at
224 input): stem 112x112 (16); stage1 112 (1 bottleneck, 16); stage2 56 (2, 24); stage3 28
(2, 40, SE); stage4 14 (6, 112, SE in its last two); stage5 7 (4 + 1 bottlenecks, 160, SE in
three of them) closed by the conv1x1 to 960, which counts as a sixth block of stage5. The
channels of a width multiplier w are make_divisible(c * w, 4).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, SqueezeExcite, StagedNet, init_weights, make_divisible
from ._registry import register_model, registered_defaults

__all__ = [
    "GhostNetArgs",
    "GhostModule",
    "GhostBottleneck",
    "ghostnet",
    "ghostnet_050",
    "ghostnet_130",
]

_PAPER = "Han et al. 2020, GhostNet: More Features from Cheap Operations"

# Bottleneck config per cnnbench stage: (kernel, expansion width, out channels, SE ratio, stride).
_STAGES: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    ((3, 16, 16, 0, 1),),
    ((3, 48, 24, 0, 2), (3, 72, 24, 0, 1)),
    ((5, 72, 40, 0.25, 2), (5, 120, 40, 0.25, 1)),
    (
        (3, 240, 80, 0, 2),
        (3, 200, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ),
    (
        (5, 672, 160, 0.25, 2),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 0.25, 1),
        (5, 960, 160, 0, 1),
        (5, 960, 160, 0.25, 1),
    ),
)
_SE_STAGES = tuple(i for i, cfg in enumerate(_STAGES, start=1) if any(b[3] > 0 for b in cfg))
_LAST_CHANNELS = 960
_HEAD_CHANNELS = 1280


class GhostModule(nn.Module):
    """Ghost module: conv1x1 to ceil(out / ratio) "intrinsic" maps, a cheap depthwise
    ``dw_size`` x ``dw_size`` conv making (ratio - 1) "ghost" maps from each, concatenate, keep
    the first ``out_channels``. Both convs are followed by BN and, if ``relu``, ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        ratio: int = 2,
        dw_size: int = 3,
        relu: bool = True,
    ) -> None:
        super().__init__()
        if ratio < 2:
            raise ValueError(f"ratio must be >= 2, got {ratio}")
        self.out_channels = out_channels
        init_channels = math.ceil(out_channels / ratio)
        new_channels = init_channels * (ratio - 1)
        act = nn.ReLU if relu else None
        self.primary_conv = ConvBNAct(in_channels, init_channels, 1, act=act)
        self.cheap_operation = ConvBNAct(
            init_channels, new_channels, dw_size, groups=init_channels, act=act
        )

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        return torch.cat([x1, x2], 1)[:, : self.out_channels]


class GhostBottleneck(nn.Module):
    """Ghost bottleneck (Fig. 3 of the paper) with optional SE on the expanded width."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        se_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.ghost1 = GhostModule(in_channels, mid_channels, relu=True)
        self.conv_dw: nn.Module = nn.Identity()
        if stride > 1:
            self.conv_dw = ConvBNAct(
                mid_channels,
                mid_channels,
                kernel_size,
                stride=stride,
                groups=mid_channels,
                act=None,
            )
        self.se: nn.Module = nn.Identity()
        if se_channels is not None:
            self.se = SqueezeExcite(mid_channels, se_channels, act=nn.ReLU, gate=nn.Hardsigmoid)
        self.ghost2 = GhostModule(mid_channels, out_channels, relu=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                ConvBNAct(
                    in_channels,
                    in_channels,
                    kernel_size,
                    stride=stride,
                    groups=in_channels,
                    act=None,
                ),
                ConvBNAct(in_channels, out_channels, 1, act=None),
            )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.ghost2(self.se(self.conv_dw(self.ghost1(x))))
        return out + self.shortcut(x)


class GhostNetArgs(TypedDict, total=False):
    """Keywords of the GhostNet builders: ``width`` multiplier (default: the variant's),
    ``se_reduction`` of the expanded width (4; None = no SE), ``se_stages`` (only stages with SE
    in Table 1), ``dropout`` before the classifier (0.2)."""

    num_classes: int
    in_channels: int
    width: float
    se_reduction: int | None
    se_stages: Sequence[int]
    dropout: float


#: registered name -> width multiplier
_WIDTHS = {"ghostnet": 1.0, "ghostnet_050": 0.5, "ghostnet_130": 1.3}


def _create_ghostnet(variant: str, **kwargs: Unpack[GhostNetArgs]) -> StagedNet:
    args = registered_defaults(
        variant, kwargs, "num_classes", "in_channels", "se_reduction", "se_stages"
    )
    return _build_ghostnet(**{"width": _WIDTHS[variant], **args})


def _build_ghostnet(
    *,
    num_classes: int,
    in_channels: int,
    width: float,
    se_reduction: int | None,
    se_stages: Sequence[int],
    dropout: float = 0.2,
) -> StagedNet:
    se_stages = tuple(se_stages)
    unknown = sorted(set(se_stages) - set(_SE_STAGES))
    if unknown:
        raise ValueError(
            f"se_stages {unknown} carry no SE in GhostNet; choose from {list(_SE_STAGES)}"
        )
    c = make_divisible(16 * width, 4)
    stem = ConvBNAct(in_channels, c, 3, stride=2)
    channels = [c]
    stages = []
    for index, cfg in enumerate(_STAGES, start=1):
        blocks: list[nn.Module] = []
        for k, exp, out, se_ratio, stride in cfg:
            mid = make_divisible(exp * width, 4)
            out_c = make_divisible(out * width, 4)
            se_channels = None
            if se_ratio > 0 and se_reduction is not None and index in se_stages:
                se_channels = make_divisible(mid / se_reduction, 4)
            blocks.append(GhostBottleneck(c, mid, out_c, k, stride, se_channels))
            c = out_c
        if index == len(_STAGES):
            last = make_divisible(_LAST_CHANNELS * width, 4)
            blocks.append(ConvBNAct(c, last, 1))
            c = last
        stages.append(nn.Sequential(*blocks))
        channels.append(c)
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(c, _HEAD_CHANNELS, 1, bias=True),
        nn.ReLU(inplace=True),
        nn.Flatten(1),
        nn.Dropout(dropout),
        nn.Linear(_HEAD_CHANNELS, num_classes),
    )
    model = StagedNet(stem, stages, head, channels=[*channels, num_classes])
    init_weights(model)
    return model


@register_model(family="ghostnet", paper=_PAPER, se_reduction=4, se_stages=_SE_STAGES)
def ghostnet(**kwargs: Unpack[GhostNetArgs]) -> StagedNet:
    """GhostNet 1.0x (5.18M params); ``width`` scales it. ``se_stages=()`` or
    ``se_reduction=None`` builds it without SE; SE sits only where the paper puts it."""
    return _create_ghostnet("ghostnet", **kwargs)


@register_model(family="ghostnet", paper=_PAPER, se_reduction=4, se_stages=_SE_STAGES)
def ghostnet_050(**kwargs: Unpack[GhostNetArgs]) -> StagedNet:
    """GhostNet 0.5x (timm ghostnet_050): 2,587,292 parameters."""
    return _create_ghostnet("ghostnet_050", **kwargs)


@register_model(family="ghostnet", paper=_PAPER, se_reduction=4, se_stages=_SE_STAGES)
def ghostnet_130(**kwargs: Unpack[GhostNetArgs]) -> StagedNet:
    """GhostNet 1.3x (timm ghostnet_130): 7,358,820 parameters."""
    return _create_ghostnet("ghostnet_130", **kwargs)
