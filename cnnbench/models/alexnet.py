"""AlexNet (Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks", NeurIPS 2012), in the single-tower layout of Krizhevsky's "One weird trick for
parallelizing convolutional neural networks" (2014) that torchvision uses: 61,100,840 parameters,
0.714 GMACs at 224.

Features: conv11x11/4 (pad 2) 64, maxpool 3/2; conv5x5 (pad 2) 192, maxpool 3/2; conv3x3 384,
256, 256, maxpool 3/2; every conv has a bias and a ReLU (no BatchNorm). Head: adaptive average
pool to 6x6, flatten, dropout, 9216->4096, ReLU, dropout, 4096->4096, ReLU, 4096->classes. No
softmax: the model returns logits.

Stages (each convolution block is conv + ReLU, plus the max pool that ends its group):

- ``stem``: conv1 + ReLU + max pool (64 channels, 55x55 -> 27x27 at 224)
- ``stage1``: conv2 block with its pool (192 channels, 13x13)
- ``stage2``: conv3, conv4, conv5; the pool is part of the conv5 block (256 channels, 6x6)
- ``head``: adaptive average pool 6x6 + classifier

Input size: the three unpadded 3x3/2 max pools need at least 63x63 input (conv1 gives 15x15,
then 7, 3, 1). At 62x62 and below (e.g. 32x32) the last max pool gets a map smaller than its 3x3
window (2x2 at 62, 1x1 at 32) and PyTorch raises ``RuntimeError: ... Output size is too small``. From 63x63 up, the adaptive pool
stretches whatever is left to 6x6, so any size >= 63 runs with the same classifier.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

from torch import nn

from ._layers import StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = ["AlexNetArgs", "MIN_INPUT_SIZE", "alexnet"]

_PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep Convolutional Neural Networks"

#: Smallest square input AlexNet runs on (see the module docstring).
MIN_INPUT_SIZE = 63


def _conv_relu(
    in_ch: int, out_ch: int, kernel_size: int, *, stride: int = 1, padding: int, pool: bool = False
) -> nn.Sequential:
    """Conv (with bias) + ReLU, optionally followed by the 3x3 stride-2 max pool of AlexNet."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(kernel_size=3, stride=2))
    return nn.Sequential(*layers)


class AlexNetArgs(TypedDict, total=False):
    """Keywords of ``alexnet``: ``dropout`` in the classifier (default 0.5)."""

    num_classes: int
    in_channels: int
    dropout: float


def _create_alexnet(variant: str, **kwargs: Unpack[AlexNetArgs]) -> StagedNet:
    return _build_alexnet(**registered_defaults(variant, kwargs, "num_classes", "in_channels"))


def _build_alexnet(*, num_classes: int, in_channels: int, dropout: float = 0.5) -> StagedNet:
    stem = _conv_relu(in_channels, 64, 11, stride=4, padding=2, pool=True)
    stage1 = nn.Sequential(_conv_relu(64, 192, 5, padding=2, pool=True))
    stage2 = nn.Sequential(
        _conv_relu(192, 384, 3, padding=1),
        _conv_relu(384, 256, 3, padding=1),
        _conv_relu(256, 256, 3, padding=1, pool=True),
    )
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d((6, 6)),
        nn.Flatten(1),
        nn.Dropout(dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )
    model = StagedNet(stem, [stage1, stage2], head, channels=[64, 192, 256, num_classes])
    init_weights(model)
    return model


@register_model(family="alexnet", paper=_PAPER)
def alexnet(**kwargs: Unpack[AlexNetArgs]) -> StagedNet:
    """AlexNet (torchvision's single-tower layout), 61,100,840 parameters; input >= 63x63."""
    return _create_alexnet("alexnet", **kwargs)
