"""ShuffleNet V2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
Design", ECCV 2018).

Units split the channels in two (stride 1: one half passes through untouched, the other goes
through 1x1 -> depthwise 3x3 -> 1x1; stride 2: both halves are convolved from the full input),
concatenate and shuffle the channels between the two groups. Counts equal torchvision's
``shufflenet_v2_x1_0``.

Layout: ``stem`` (conv3x3 stride 2 + max pool; the paper's conv1 and max pool), ``stage1`` ..
``stage3`` (the paper's stages 2-4), ``head`` (conv5 1x1 + BN + ReLU, global pool, fc).
"""

from __future__ import annotations

from functools import partial
from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from ._layers import ConvBNAct, StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = ["ShuffleNetV2Args", "channel_shuffle", "ShuffleUnit", "shufflenet_v2_x1_0"]

_PAPER = "Ma et al. 2018, ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design"

_ReLU = partial(nn.ReLU, inplace=True)

# registered name: output channels of conv1, stages 2-4 and conv5 (paper Table 5)
_WIDTHS = {"shufflenet_v2_x1_0": (24, 116, 232, 464, 1024)}
_REPEATS = (4, 8, 4)


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """Interleave the channel groups: (N, g*k, H, W) viewed as (N, g, k, H, W), transposed to
    (N, k, g, H, W) and flattened back, so output channel ``i*g + j`` is input ``j*k + i``."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


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


@register_model(family="shufflenet", paper=_PAPER)
def shufflenet_v2_x1_0(**kwargs: Unpack[ShuffleNetV2Args]) -> StagedNet:
    """ShuffleNet V2 1.0x (224x224): stages of [4, 8, 4] units, widths 116, 232, 464."""
    return _create_shufflenet_v2("shufflenet_v2_x1_0", **kwargs)
