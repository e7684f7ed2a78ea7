"""VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015): configurations A (vgg11), B (vgg13), D (vgg16) and E (vgg19), each with
an optional BatchNorm variant (``*_bn``), in torchvision's layout.

Every convolution is 3x3, stride 1, padding 1, followed by ReLU (``*_bn``: BatchNorm then ReLU);
five groups of convolutions each end in a 2x2 stride-2 max pool. Head: adaptive average pool to
7x7, flatten, 25088->4096, ReLU, dropout, 4096->4096, ReLU, dropout, 4096->classes. No softmax.

Conv bias in the ``*_bn`` variants -- the one deliberate exception to "no bias before BN"
----------------------------------------------------------------------------------------
A bias right before BatchNorm is redundant (BN subtracts the batch mean, cancelling it), and
the rest of the zoo leaves it out. torchvision's vgg*_bn nevertheless keeps the conv bias, and the
reference parameter counts include it (vgg16_bn = 138,365,992 = vgg16 + 2 x 4,224 BN weights and
biases, the conv biases already being part of vgg16). To match those counts exactly the ``*_bn``
builders here keep the bias too; it costs sum(conv channels) parameters (4,224 for vgg16) and no
MACs worth mentioning.

Stages: one per pooling group. ``stem`` = group 1 (64 channels), ``stage1``..``stage4`` = groups 2-5
(128, 256, 512, 512 channels); a block is conv (+ BN) + ReLU and the last block of each group also
holds the max pool. ``head`` = adaptive average pool + classifier.

Input size: the five pools need at least 32x32 input (32 -> 1x1 after group 5; the adaptive pool
then replicates the single value to 7x7).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

from torch import nn

from ._layers import StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = [
    "VGGArgs",
    "VGG_CONFIGS",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
]

_PAPER = (
    "Simonyan & Zisserman 2015, Very Deep Convolutional Networks for Large-Scale Image Recognition"
)

#: Output channels of the convolutions of each of the five pooling groups, per configuration.
VGG_CONFIGS: dict[str, tuple[tuple[int, ...], ...]] = {
    "vgg11": ((64,), (128,), (256, 256), (512, 512), (512, 512)),
    "vgg13": ((64, 64), (128, 128), (256, 256), (512, 512), (512, 512)),
    "vgg16": ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)),
    "vgg19": (
        (64, 64),
        (128, 128),
        (256, 256, 256, 256),
        (512, 512, 512, 512),
        (512, 512, 512, 512),
    ),
}


def _conv_block(in_ch: int, out_ch: int, *, batch_norm: bool, pool: bool) -> nn.Sequential:
    """conv3x3 (with bias, see the module docstring) [+ BN] + ReLU [+ max pool 2x2/2]."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=True)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.ReLU(inplace=True))
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def _group(in_ch: int, widths: Sequence[int], *, batch_norm: bool) -> nn.Sequential:
    blocks = []
    for i, out_ch in enumerate(widths):
        blocks.append(_conv_block(in_ch, out_ch, batch_norm=batch_norm, pool=i == len(widths) - 1))
        in_ch = out_ch
    return nn.Sequential(*blocks)


class VGGArgs(TypedDict, total=False):
    """Keywords of the VGG builders: ``dropout`` in the classifier (default 0.5)."""

    num_classes: int
    in_channels: int
    dropout: float


def _create_vgg(variant: str, **kwargs: Unpack[VGGArgs]) -> StagedNet:
    """``variant`` is a registered name: ``vgg16`` or ``vgg16_bn`` (with BatchNorm)."""
    args = registered_defaults(variant, kwargs, "num_classes", "in_channels")
    config = variant.removesuffix("_bn")
    return _build_vgg(VGG_CONFIGS[config], batch_norm=variant.endswith("_bn"), **args)


def _build_vgg(
    groups: tuple[tuple[int, ...], ...],
    *,
    batch_norm: bool,
    num_classes: int,
    in_channels: int,
    dropout: float = 0.5,
) -> StagedNet:
    modules = []
    channels = []
    in_ch = in_channels
    for widths in groups:
        modules.append(_group(in_ch, widths, batch_norm=batch_norm))
        in_ch = widths[-1]
        channels.append(in_ch)
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d((7, 7)),
        nn.Flatten(1),
        nn.Linear(in_ch * 7 * 7, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(4096, num_classes),
    )
    model = StagedNet(modules[0], modules[1:], head, channels=[*channels, num_classes])
    init_weights(model)
    return model


@register_model(family="vgg", paper=_PAPER)
def vgg11(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-11 (configuration A), 132,863,336 parameters."""
    return _create_vgg("vgg11", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg11_bn(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-11 with BatchNorm, 132,868,840 parameters."""
    return _create_vgg("vgg11_bn", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg13(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-13 (configuration B), 133,047,848 parameters."""
    return _create_vgg("vgg13", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg13_bn(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-13 with BatchNorm, 133,053,736 parameters."""
    return _create_vgg("vgg13_bn", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg16(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-16 (configuration D), 138,357,544 parameters."""
    return _create_vgg("vgg16", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg16_bn(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-16 with BatchNorm, 138,365,992 parameters."""
    return _create_vgg("vgg16_bn", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg19(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-19 (configuration E), 143,667,240 parameters."""
    return _create_vgg("vgg19", **kwargs)


@register_model(family="vgg", paper=_PAPER)
def vgg19_bn(**kwargs: Unpack[VGGArgs]) -> StagedNet:
    """VGG-19 with BatchNorm, 143,678,248 parameters."""
    return _create_vgg("vgg19_bn", **kwargs)
