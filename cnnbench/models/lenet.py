"""LeNet-5 (LeCun et al., "Gradient-based learning applied to document recognition", 1998).

Classic layout on 1x32x32 input: conv5x5 6, pool, conv5x5 16, pool, fc 120, 84, 10; ReLU and
max pooling as in the common modern rendering. 61,706 parameters.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from torch import nn

from ._layers import StagedNet
from ._registry import register_model, registered_defaults

__all__ = ["LeNetArgs", "lenet5"]

_PAPER = "LeCun et al. 1998, Gradient-Based Learning Applied to Document Recognition"


def _conv_pool(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class LeNetArgs(TypedDict, total=False):
    """Keywords of ``lenet5`` (defaults: 10 classes, 1 input channel, from its registration)."""

    num_classes: int
    in_channels: int


def _build_lenet5(*, num_classes: int, in_channels: int) -> StagedNet:
    stem = _conv_pool(in_channels, 6)
    stage1 = nn.Sequential(_conv_pool(6, 16))
    head = nn.Sequential(
        nn.Flatten(1),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(inplace=True),
        nn.Linear(120, 84),
        nn.ReLU(inplace=True),
        nn.Linear(84, num_classes),
    )
    return StagedNet(stem, [stage1], head, channels=[6, 16, num_classes])


@register_model(family="lenet", paper=_PAPER, input_size=(1, 32, 32), num_classes=10)
def lenet5(**kwargs: Unpack[LeNetArgs]) -> StagedNet:
    """LeNet-5 for 32x32 single-channel input."""
    return _build_lenet5(**registered_defaults("lenet5", kwargs, "num_classes", "in_channels"))
