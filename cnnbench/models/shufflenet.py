"""ShuffleNet V1 (Zhang et al., "ShuffleNet: An Extremely Efficient Convolutional Neural Network
for Mobile Devices", CVPR 2018) and ShuffleNet V2 (Ma et al., "ShuffleNet V2: Practical
Guidelines for Efficient CNN Architecture Design", ECCV 2018).

V1 (``shufflenet_v1_g3``: 1x, g = 3, the paper's Table 1): conv3x3/2 24 + max pool; three
stages of [4, 8, 4] units with 240, 480, 960 output channels; global pool, fc. A unit is
1x1 group conv (g groups; plain for the first unit of stage 2, whose input has only 24
channels) + BN + ReLU -> channel shuffle -> depthwise 3x3 (stride) + BN -> 1x1 group conv + BN,
bottleneck width = output / 4. Stride 1: ReLU(x + branch). Stride 2: concat(avgpool3x3/2(x),
ReLU(branch)), the branch producing output - input channels. 137.5 MMACs at 224 (paper: 140
MFLOPs, i.e. multiply-adds). SE is a switch (``se_reduction=16``: the SENet paper's
SE-ShuffleNet), placed like SE-ResNet's: on the branch after its last BN, before the addition or
concatenation, C = the branch's output channels.

V2:
Units split the channels in two (stride 1: one half passes through untouched, the other goes
through 1x1 -> depthwise 3x3 -> 1x1; stride 2: both halves are convolved from the full input),
concatenate and shuffle the channels between the two groups. Counts equal torchvision's
``shufflenet_v2_x1_0``.

Layout: ``stem`` (conv3x3 stride 2 + max pool; the paper's conv1 and max pool), ``stage1`` ..
``stage3`` (the paper's stages 2-4), ``head`` (conv5 1x1 + BN + ReLU, global pool, fc).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, SqueezeExcite, StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = [
    "ShuffleNetV1Args",
    "ShuffleNetV2Args",
    "channel_shuffle",
    "ShuffleV1Unit",
    "ShuffleUnit",
    "shufflenet_v1_g3",
    "shufflenet_v2_x1_0",
]

_PAPER = "Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"
_PAPER_V1 = (
    "Zhang et al. 2018, ShuffleNet: An Extremely Efficient Convolutional Neural Network for "
    "Mobile Devices"
)

_ReLU = partial(nn.ReLU, inplace=True)

# registered name: output channels of conv1, stages 2-4 and conv5 (paper Table 5)
_WIDTHS = {"shufflenet_v2_x1_0": (24, 116, 232, 464, 1024)}
_REPEATS = (4, 8, 4)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channel groups: (N, g*k, H, W) viewed as (N, g, k, H, W), transposed to
    (N, k, g, H, W) and flattened back, so output channel ``i*g + j`` is input ``j*k + i``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleV1Unit(nn.Module):
    """ShuffleNet V1 unit (paper Fig. 2b for stride 1, Fig. 2c for stride 2), optional SE on the
    branch before the merge."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        groups: int,
        *,
        first_groups: int | None = None,
        se_reduction: int | None = None,
    ) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        if stride == 1 and in_channels != out_channels:
            raise ValueError("a stride-1 unit needs in_channels == out_channels")
        self.stride = stride
        self.groups = groups
        mid = out_channels // 4
        branch_out = out_channels - in_channels if stride == 2 else out_channels
        g1 = groups if first_groups is None else first_groups
        self.gconv1 = nn.Sequential(
            nn.Conv2d(in_channels, mid, 1, groups=g1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
        )
        self.dwconv = ConvBNAct(mid, mid, 3, stride, groups=mid, act=None)
        self.gconv2 = nn.Sequential(
            nn.Conv2d(mid, branch_out, 1, groups=groups, bias=False), nn.BatchNorm2d(branch_out)
        )
        self.se: nn.Module = nn.Identity()
        if se_reduction is not None:
            if branch_out // se_reduction < 1:
                raise ValueError(f"se_reduction={se_reduction} leaves no channels")
            self.se = SqueezeExcite(branch_out, branch_out // se_reduction)
        self.pool: nn.Module | None = nn.AvgPool2d(3, stride=2, padding=1) if stride == 2 else None
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.gconv1(x)
        if self.groups > 1:
            out = channel_shuffle(out, self.groups)
        out = self.se(self.gconv2(self.dwconv(out)))
        if self.pool is None:
            return self.relu(out + x)
        return torch.cat((self.pool(x), self.relu(out)), dim=1)


# registered name: (groups, output channels of conv1 and stages 2-4) (paper Table 1, 1x)
_V1_VARIANTS = {"shufflenet_v1_g3": (3, (24, 240, 480, 960))}
_V1_SE_STAGES = (1, 2, 3)


class ShuffleNetV1Args(TypedDict, total=False):
    """Keywords of the ShuffleNet V1 builders: ``se_reduction`` (None = no SE, the default;
    16 = SE-ShuffleNet) and ``se_stages`` (1-based, 1-3)."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]


def _create_shufflenet_v1(variant: str, **kwargs: Unpack[ShuffleNetV1Args]) -> StagedNet:
    groups, widths = _V1_VARIANTS[variant]
    args = registered_defaults(variant, kwargs, "num_classes", "se_reduction", "se_stages")
    return _build_shufflenet_v1(groups, widths, **args)


def _build_shufflenet_v1(
    groups: int,
    widths: tuple[int, int, int, int],
    *,
    num_classes: int,
    se_reduction: int | None,
    se_stages: Sequence[int],
) -> StagedNet:
    se_stages = tuple(se_stages)
    bad = sorted(set(se_stages) - set(_V1_SE_STAGES))
    if bad:
        raise ValueError(f"se_stages must be in 1..3, got {bad}")
    stem = nn.Sequential(
        ConvBNAct(3, widths[0], 3, stride=2, act=_ReLU),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stages = []
    in_ch = widths[0]
    for index, (repeats, out_ch) in enumerate(zip(_REPEATS, widths[1:], strict=True), start=1):
        r = se_reduction if index in se_stages else None
        first_groups = 1 if index == 1 else None
        units = [ShuffleV1Unit(in_ch, out_ch, 2, groups, first_groups=first_groups, se_reduction=r)]
        units += [
            ShuffleV1Unit(out_ch, out_ch, 1, groups, se_reduction=r) for _ in range(repeats - 1)
        ]
        stages.append(nn.Sequential(*units))
        in_ch = out_ch
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(in_ch, num_classes))
    model = StagedNet(stem, stages, head, channels=[*widths, num_classes])
    init_weights(model)
    return model


class ShuffleUnit(nn.Module):
    """ShuffleNet V2 unit (paper Fig. 3c for stride 1, Fig. 3d for stride 2)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        branch = out_channels // 2
        if stride == 1 and in_channels != 2 * branch:
            raise ValueError("a stride-1 unit needs in_channels == out_channels (even)")
        self.stride = stride
        if stride == 2:
            self.branch1: nn.Module = nn.Sequential(
                ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=None),
                ConvBNAct(in_channels, branch, 1, act=_ReLU),
            )
        else:
            self.branch1 = nn.Identity()
        self.branch2 = nn.Sequential(
            ConvBNAct(in_channels if stride == 2 else branch, branch, 1, act=_ReLU),
            ConvBNAct(branch, branch, 3, stride, groups=branch, act=None),
            ConvBNAct(branch, branch, 1, act=_ReLU),
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class ShuffleNetV2Args(TypedDict, total=False):
    """Keywords of the ShuffleNet V2 builders."""

    num_classes: int


def _create_shufflenet_v2(variant: str, **kwargs: Unpack[ShuffleNetV2Args]) -> StagedNet:
    return _build_shufflenet_v2(
        _WIDTHS[variant], **registered_defaults(variant, kwargs, "num_classes")
    )


def _build_shufflenet_v2(widths: tuple[int, ...], *, num_classes: int) -> StagedNet:
    stem = nn.Sequential(
        ConvBNAct(3, widths[0], 3, stride=2, act=_ReLU),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    stages = []
    in_ch = widths[0]
    for repeats, out_ch in zip(_REPEATS, widths[1:4], strict=True):
        units = [ShuffleUnit(in_ch, out_ch, 2)]
        units += [ShuffleUnit(out_ch, out_ch, 1) for _ in range(repeats - 1)]
        stages.append(nn.Sequential(*units))
        in_ch = out_ch
    head = nn.Sequential(
        ConvBNAct(in_ch, widths[4], 1, act=_ReLU),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(widths[4], num_classes),
    )
    model = StagedNet(stem, stages, head, channels=[*widths[:4], num_classes])
    init_weights(model)
    return model


@register_model(family="shufflenet", paper=_PAPER_V1, se_stages=_V1_SE_STAGES)
def shufflenet_v1_g3(**kwargs: Unpack[ShuffleNetV1Args]) -> StagedNet:
    """ShuffleNet V1 1x, g = 3 (224x224): stages of [4, 8, 4] units, widths 240, 480, 960."""
    return _create_shufflenet_v1("shufflenet_v1_g3", **kwargs)


@register_model(family="shufflenet", paper=_PAPER)
def shufflenet_v2_x1_0(**kwargs: Unpack[ShuffleNetV2Args]) -> StagedNet:
    """ShuffleNet V2 1.0x (224x224): stages of [4, 8, 4] units, widths 116, 232, 464."""
    return _create_shufflenet_v2("shufflenet_v2_x1_0", **kwargs)
