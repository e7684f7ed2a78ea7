"""DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

ImageNet layout of the paper's Table 1 (DenseNet-BC: bottleneck layers and compression 0.5):
growth rate 32, bottleneck width 4 x 32, 64 initial features; stem conv7x7/2 + BN + ReLU +
maxpool 3x3/2; four dense blocks with transitions between them; final BN + ReLU, global average
pool and a linear classifier. Parameter counts equal torchvision's densenet121/169/201; densenet264 (not in torchvision)
is the paper's fourth configuration built the same way (33,337,704 parameters).

Each dense layer is BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k) and returns its input concatenated
with its k new feature maps, so a dense block is a plain chain of layers. A transition is
BN-ReLU-conv1x1 with padding 0 (a padded 1x1 conv would grow the feature map by 2 pixels: the
bug of the tutorial code this project started from) followed by 2x2 average pooling.

Stages: ``stage{i}`` is dense block i followed by the transition after it (stage4 has none; the
final BN + ReLU opens the head). A stage is a :class:`DenseStage` that holds its dense layers in
``layers`` (an ``nn.Sequential``) and the transition separately in ``transition``, so
``len(stage)`` and ``StagedNet.stages()`` count the dense layers only.
"""

from __future__ import annotations

from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from ._layers import Stage, StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = [
    "DenseNetArgs",
    "DenseLayer",
    "Transition",
    "DenseStage",
    "DenseNet",
    "densenet121",
    "densenet169",
    "densenet201",
    "densenet264",
]

_PAPER = "Huang et al. 2017, Densely Connected Convolutional Networks"


class DenseLayer(nn.Module):
    """BN-ReLU-conv1x1(bn_size*growth)-BN-ReLU-conv3x3(growth); output = cat(input, new)."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int) -> None:
        super().__init__()
        inner = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, inner, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(inner)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inner, growth_rate, 3, padding=1, bias=False)
        self.out_channels = in_channels + growth_rate

    def forward(self, x: Tensor) -> Tensor:
        # In-place ReLUs act on BatchNorm outputs, never on x, which is concatenated below.
        new = self.conv1(self.relu1(self.norm1(x)))
        new = self.conv2(self.relu2(self.norm2(new)))
        return torch.cat([x, new], 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1 (padding 0) - avgpool 2x2: halves channels (compression 0.5) and size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, padding=0, bias=False),
            nn.AvgPool2d(kernel_size=2, stride=2),
        )
        self.out_channels = out_channels


class DenseStage(nn.Module):
    """A dense block (``layers``) followed by an optional ``transition``.

    ``len(stage)`` is the number of dense layers; the transition is not counted as a block.
    """

    def __init__(self, layers: nn.Sequential, transition: nn.Module | None = None) -> None:
        super().__init__()
        self.layers = layers
        self.transition = transition if transition is not None else nn.Identity()

    def __len__(self) -> int:
        return len(self.layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.transition(self.layers(x))


class DenseNet(StagedNet):
    """StagedNet whose stages are :class:`DenseStage` modules (blocks = dense layers)."""

    def stages(self) -> list[Stage]:
        out = super().stages()
        return [
            Stage(s.name, len(getattr(self, s.name)), s.out_channels)
            if isinstance(getattr(self, s.name), DenseStage)
            else s
            for s in out
        ]


class DenseNetArgs(TypedDict, total=False):
    """Keywords of the DenseNet builders."""

    num_classes: int
    in_channels: int


#: registered name -> layers per dense block (growth rate 32, 64 initial features)
_BLOCKS: dict[str, tuple[int, int, int, int]] = {
    "densenet121": (6, 12, 24, 16),
    "densenet169": (6, 12, 32, 32),
    "densenet201": (6, 12, 48, 32),
    "densenet264": (6, 12, 64, 48),
}


def _create_densenet(variant: str, **kwargs: Unpack[DenseNetArgs]) -> DenseNet:
    args = registered_defaults(variant, kwargs, "num_classes", "in_channels")
    return _build_densenet(_BLOCKS[variant], **args)


def _build_densenet(
    block_config: tuple[int, int, int, int],
    *,
    num_classes: int,
    in_channels: int,
    growth_rate: int = 32,
    bn_size: int = 4,
    init_features: int = 64,
) -> DenseNet:
    stem = nn.Sequential(
        nn.Conv2d(in_channels, init_features, 7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(init_features),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    channels = [init_features]
    stages: list[DenseStage] = []
    c = init_features
    for i, num_layers in enumerate(block_config):
        layers = []
        for _ in range(num_layers):
            layer = DenseLayer(c, growth_rate, bn_size)
            layers.append(layer)
            c = layer.out_channels
        transition = None
        if i < len(block_config) - 1:
            transition = Transition(c, c // 2)
            c = c // 2
        stages.append(DenseStage(nn.Sequential(*layers), transition))
        channels.append(c)
    head = nn.Sequential(
        nn.BatchNorm2d(c),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(c, num_classes),
    )
    model = DenseNet(stem, stages, head, channels=[*channels, num_classes])
    init_weights(model)
    return model


@register_model(family="densenet", paper=_PAPER)
def densenet121(**kwargs: Unpack[DenseNetArgs]) -> DenseNet:
    """DenseNet-121: dense blocks of (6, 12, 24, 16) layers, growth rate 32."""
    return _create_densenet("densenet121", **kwargs)


@register_model(family="densenet", paper=_PAPER)
def densenet169(**kwargs: Unpack[DenseNetArgs]) -> DenseNet:
    """DenseNet-169: dense blocks of (6, 12, 32, 32) layers, growth rate 32."""
    return _create_densenet("densenet169", **kwargs)


@register_model(family="densenet", paper=_PAPER)
def densenet201(**kwargs: Unpack[DenseNetArgs]) -> DenseNet:
    """DenseNet-201: dense blocks of (6, 12, 48, 32) layers, growth rate 32."""
    return _create_densenet("densenet201", **kwargs)


@register_model(family="densenet", paper=_PAPER)
def densenet264(**kwargs: Unpack[DenseNetArgs]) -> DenseNet:
    """DenseNet-264 (the paper's Table 1): dense blocks of (6, 12, 64, 48) layers, growth 32."""
    return _create_densenet("densenet264", **kwargs)
