"""SKNet (Li et al., "Selective Kernel Networks", CVPR 2019): SK-ResNeXt-50 and -101.

ResNeXt bottlenecks (cardinality 32, inner widths 128/256/512/1024, expansion 2) whose grouped
3x3 convolution is replaced by a selective-kernel convolution (:class:`SKConv`) with M = 2
branches: a 3x3 conv with dilation 1 and a 3x3 conv with dilation 2 (the paper's 5x5 kernel),
both grouped (G = 32), each + BN + ReLU. The branches are summed, globally pooled and squeezed by
conv1x1(w -> d, no bias) + BN + ReLU with d = max(w // 16, 32); conv1x1(d -> M * w, no bias)
gives per-branch channel logits, a softmax across the M branches gives the attention weights,
and the output is the attention-weighted sum of the branches. The stride of a downsampling block
sits in the SK convolution. The classifier returns logits (no softmax).

Parameter counts: 27,479,784 (sknet50, [3, 4, 6, 3]) and 48,736,040 (sknet101, [3, 4, 23, 3]),
equal to timm's skresnext50_32x4d and the SKNet101 code of the SKNet text.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from torch import Tensor, nn

from ._layers import ConvBNAct, StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = ["SKNetArgs", "SKConv", "SKBlock", "sknet50", "sknet101"]

_PAPER = "Li et al. 2019, Selective Kernel Networks"


class SKConv(nn.Module):
    """Selective-kernel convolution: M grouped 3x3 branches with dilations 1..M, fused by a
    softmax attention across branches (per channel).

    ``softmax`` is an ``nn.Softmax(dim=1)`` over the (N, M, C, 1, 1) branch logits, so a forward
    hook on it sees the attention weights.
    """

    def __init__(
        self,
        channels: int,
        *,
        stride: int = 1,
        branches: int = 2,
        groups: int = 32,
        reduction: int = 16,
        min_dim: int = 32,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.num_branches = branches
        self.branches = nn.ModuleList(
            ConvBNAct(channels, channels, 3, stride=stride, groups=groups, dilation=i + 1)
            for i in range(branches)
        )
        d = max(channels // reduction, min_dim)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc_reduce = ConvBNAct(channels, d, 1)
        self.fc_select = nn.Conv2d(d, channels * branches, 1, bias=False)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [branch(x) for branch in self.branches]
        u = feats[0]
        for f in feats[1:]:
            u = u + f
        logits = self.fc_select(self.fc_reduce(self.pool(u)))
        attn = self.softmax(logits.view(x.shape[0], self.num_branches, self.channels, 1, 1))
        out = feats[0] * attn[:, 0]
        for i in range(1, self.num_branches):
            out = out + feats[i] * attn[:, i]
        return out


class SKBlock(nn.Module):
    """conv1x1(in->w)+BN+ReLU, SKConv(w, stride), conv1x1(w->2w)+BN, + shortcut, ReLU."""

    expansion = 2

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = ConvBNAct(in_channels, width, 1)
        self.sk = SKConv(width, stride=stride)
        self.conv3 = ConvBNAct(width, out_channels, 1, act=None)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = ConvBNAct(in_channels, out_channels, 1, stride=stride, act=None)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv3(self.sk(self.conv1(x)))
        return self.relu(out + self.shortcut(x))


class SKNetArgs(TypedDict, total=False):
    """Keywords of the SKNet builders."""

    num_classes: int
    in_channels: int


#: registered name -> SK blocks per stage
_LAYERS: dict[str, tuple[int, int, int, int]] = {"sknet50": (3, 4, 6, 3), "sknet101": (3, 4, 23, 3)}


def _create_sknet(variant: str, **kwargs: Unpack[SKNetArgs]) -> StagedNet:
    args = registered_defaults(variant, kwargs, "num_classes", "in_channels")
    return _build_sknet(_LAYERS[variant], **args)


def _build_sknet(
    layers: tuple[int, int, int, int], *, num_classes: int, in_channels: int
) -> StagedNet:
    stem = nn.Sequential(
        ConvBNAct(in_channels, 64, 7, stride=2),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    channels = [64]
    stages = []
    c = 64
    for i, (num_blocks, width) in enumerate(zip(layers, (128, 256, 512, 1024), strict=True)):
        blocks = []
        for j in range(num_blocks):
            block = SKBlock(c, width, stride=2 if i > 0 and j == 0 else 1)
            blocks.append(block)
            c = block.out_channels
        stages.append(nn.Sequential(*blocks))
        channels.append(c)
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(c, num_classes))
    model = StagedNet(stem, stages, head, channels=[*channels, num_classes])
    init_weights(model)
    return model


@register_model(family="sknet", paper=_PAPER)
def sknet50(**kwargs: Unpack[SKNetArgs]) -> StagedNet:
    """SK-ResNeXt-50 (32x4d), [3, 4, 6, 3] SK blocks."""
    return _create_sknet("sknet50", **kwargs)


@register_model(family="sknet", paper=_PAPER)
def sknet101(**kwargs: Unpack[SKNetArgs]) -> StagedNet:
    """SK-ResNeXt-101 (32x4d), [3, 4, 23, 3] SK blocks."""
    return _create_sknet("sknet101", **kwargs)
