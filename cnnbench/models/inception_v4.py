"""Inception-v4 and Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4,
Inception-ResNet and the Impact of Residual Connections on Learning", AAAI 2017), in the layout
of timm's ``inception_v4`` / ``inception_resnet_v2`` (ported from the TF-slim reference):
42,679,816 and 55,843,464 parameters at 3x299x299.

Every convolution is :class:`~cnnbench.models.inception.BasicConv2d` (conv without bias,
BatchNorm eps 0.001 momentum 0.1, ReLU), except the linear 1x1 "up" projection closing each
Inception-ResNet block, which has a bias and no BatchNorm (as in the reference). Average pools
inside the modules exclude the padding from the mean (``count_include_pad=False``).

Inception-v4 stages (grid at 299 input): ``stem`` = the paper's stem up to Mixed_5a (384 ch,
35x35) | ``stage1`` = 4 x Inception-A (384) | ``stage2`` = Reduction-A + 7 x Inception-B (1024,
17x17) | ``stage3`` = Reduction-B + 3 x Inception-C (1536, 8x8) | ``head`` = global average pool,
linear.

Inception-ResNet-v2 stages: ``stem`` = convolutions, pools and Mixed_5b (320 ch, 35x35) |
``stage1`` = 10 x Block35 (scale 0.17) | ``stage2`` = Mixed_6a + 20 x Block17 (scale 0.10,
1088 ch, 17x17) | ``stage3`` = Mixed_7a + 9 x Block8 (scale 0.20) + a final Block8 without ReLU
(scale 1.0, 2080 ch, 8x8) | ``head`` = conv 1x1 to 1536, global average pool, linear.

SE-Inception-ResNet-v2 (Hu et al., SENet): ``se_reduction=16`` puts the shared
:class:`SqueezeExcite` on the residual branch of every Inception-ResNet block -- after its 1x1
up-projection, before the scaling and the addition, C = the block's width (320, 1088, 2080) --
the same placement as SE-ResNet; ``se_stages`` (1-based, stages 1-3) selects where.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict, Unpack

import torch
from torch import Tensor, nn

from ._layers import SqueezeExcite, StagedNet, init_weights
from ._registry import register_model, registered_defaults
from .inception import BasicConv2d

__all__ = [
    "InceptionV4Args",
    "InceptionResNetV2Args",
    "Block35",
    "Block17",
    "Block8",
    "inception_v4",
    "inception_resnet_v2",
]

_PAPER = (
    "Szegedy et al. 2017, Inception-v4, Inception-ResNet and the Impact of Residual Connections "
    "on Learning"
)
_IRV2_SE_STAGES = (1, 2, 3)


def _avg_pool() -> nn.AvgPool2d:
    return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)


class _Branches(nn.Module):
    """Parallel branches applied to the same input, concatenated on channels."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


def _seq(*convs: tuple) -> nn.Sequential:
    """A chain of BasicConv2d from (in, out, kernel[, stride[, padding]]) tuples."""
    return nn.Sequential(*(BasicConv2d(*c) for c in convs))


# --------------------------------------------------------------------------------------------
# Inception-v4


def _v4_stem() -> nn.Sequential:
    """Stem to 384 x 35 x 35: three convs, Mixed_3a (pool | conv), Mixed_4a, Mixed_5a."""
    return nn.Sequential(
        BasicConv2d(3, 32, 3, stride=2),
        BasicConv2d(32, 32, 3),
        BasicConv2d(32, 64, 3, padding=1),
        _Branches(nn.MaxPool2d(3, stride=2), BasicConv2d(64, 96, 3, stride=2)),  # Mixed_3a
        _Branches(  # Mixed_4a
            _seq((160, 64, 1), (64, 96, 3)),
            _seq(
                (160, 64, 1),
                (64, 64, (1, 7), 1, (0, 3)),
                (64, 64, (7, 1), 1, (3, 0)),
                (64, 96, 3),
            ),
        ),
        _Branches(BasicConv2d(192, 192, 3, stride=2), nn.MaxPool2d(3, stride=2)),  # Mixed_5a
    )


def _inception_a() -> _Branches:
    """35x35 module, 384 -> 384: 1x1 96 | 1x1 64, 3x3 96 | 1x1 64, 3x3 96, 3x3 96 | pool, 1x1 96."""
    return _Branches(
        BasicConv2d(384, 96, 1),
        _seq((384, 64, 1), (64, 96, 3, 1, 1)),
        _seq((384, 64, 1), (64, 96, 3, 1, 1), (96, 96, 3, 1, 1)),
        nn.Sequential(_avg_pool(), BasicConv2d(384, 96, 1)),
    )


def _reduction_a() -> _Branches:
    """35 -> 17, 384 -> 1024 (k, l, m, n = 192, 224, 256, 384)."""
    return _Branches(
        BasicConv2d(384, 384, 3, stride=2),
        _seq((384, 192, 1), (192, 224, 3, 1, 1), (224, 256, 3, 2)),
        nn.MaxPool2d(3, stride=2),
    )


def _inception_b() -> _Branches:
    """17x17 module, 1024 -> 1024, with 1x7 / 7x1 factorised convolutions."""
    return _Branches(
        BasicConv2d(1024, 384, 1),
        _seq((1024, 192, 1), (192, 224, (1, 7), 1, (0, 3)), (224, 256, (7, 1), 1, (3, 0))),
        _seq(
            (1024, 192, 1),
            (192, 192, (7, 1), 1, (3, 0)),
            (192, 224, (1, 7), 1, (0, 3)),
            (224, 224, (7, 1), 1, (3, 0)),
            (224, 256, (1, 7), 1, (0, 3)),
        ),
        nn.Sequential(_avg_pool(), BasicConv2d(1024, 128, 1)),
    )


def _reduction_b() -> _Branches:
    """17 -> 8, 1024 -> 1536."""
    return _Branches(
        _seq((1024, 192, 1), (192, 192, 3, 2)),
        _seq(
            (1024, 256, 1),
            (256, 256, (1, 7), 1, (0, 3)),
            (256, 320, (7, 1), 1, (3, 0)),
            (320, 320, 3, 2),
        ),
        nn.MaxPool2d(3, stride=2),
    )


class _SplitPair(nn.Module):
    """A 1x3 and a 3x1 convolution on the same input, concatenated (Inception-C)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv_1x3 = BasicConv2d(in_ch, out_ch, (1, 3), padding=(0, 1))
        self.conv_3x1 = BasicConv2d(in_ch, out_ch, (3, 1), padding=(1, 0))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv_1x3(x), self.conv_3x1(x)], 1)


def _inception_c() -> _Branches:
    """8x8 module, 1536 -> 1536 (256 | 2 x 256 | 2 x 256 | 256)."""
    return _Branches(
        BasicConv2d(1536, 256, 1),
        nn.Sequential(BasicConv2d(1536, 384, 1), _SplitPair(384, 256)),
        nn.Sequential(
            _seq((1536, 384, 1), (384, 448, (3, 1), 1, (1, 0)), (448, 512, (1, 3), 1, (0, 1))),
            _SplitPair(512, 256),
        ),
        nn.Sequential(_avg_pool(), BasicConv2d(1536, 256, 1)),
    )


class InceptionV4Args(TypedDict, total=False):
    """Keywords of ``inception_v4``: ``dropout`` before the classifier (default 0, as timm)."""

    num_classes: int
    dropout: float


def _head(in_ch: int, num_classes: int, dropout: float, *pre: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = [*pre, nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(in_ch, num_classes))
    return nn.Sequential(*layers)


def _create_inception_v4(variant: str, **kwargs: Unpack[InceptionV4Args]) -> StagedNet:
    return _build_inception_v4(**registered_defaults(variant, kwargs, "num_classes"))


def _build_inception_v4(*, num_classes: int, dropout: float = 0.0) -> StagedNet:
    stages = [
        nn.Sequential(*(_inception_a() for _ in range(4))),
        nn.Sequential(_reduction_a(), *(_inception_b() for _ in range(7))),
        nn.Sequential(_reduction_b(), *(_inception_c() for _ in range(3))),
    ]
    head = _head(1536, num_classes, dropout)
    model = StagedNet(_v4_stem(), stages, head, channels=[384, 384, 1024, 1536, num_classes])
    init_weights(model)
    return model


# --------------------------------------------------------------------------------------------
# Inception-ResNet-v2


class _InceptionResNetBlock(nn.Module):
    """Residual Inception block: branches -> concat -> 1x1 up-projection (bias, no BN) ->
    [SE] -> x + scale * residual -> [ReLU]."""

    def __init__(
        self,
        channels: int,
        branches: _Branches,
        concat_channels: int,
        scale: float,
        se_reduction: int | None,
        relu: bool = True,
    ) -> None:
        super().__init__()
        self.scale = scale
        self.branches = branches
        self.up = nn.Conv2d(concat_channels, channels, 1, bias=True)
        self.se: nn.Module = nn.Identity()
        if se_reduction is not None:
            if channels // se_reduction < 1:
                raise ValueError(f"se_reduction={se_reduction} leaves no channels for {channels}")
            self.se = SqueezeExcite(channels, channels // se_reduction)
        self.act: nn.Module = nn.ReLU(inplace=True) if relu else nn.Identity()
        self.out_channels = channels

    def forward(self, x: Tensor) -> Tensor:
        residual = self.se(self.up(self.branches(x)))
        return self.act(x + self.scale * residual)


class Block35(_InceptionResNetBlock):
    """35x35 Inception-ResNet-A, 320 channels: 1x1 32 | 1x1 32, 3x3 32 | 1x1 32, 3x3 48, 3x3 64."""

    def __init__(self, scale: float = 0.17, se_reduction: int | None = None) -> None:
        branches = _Branches(
            BasicConv2d(320, 32, 1),
            _seq((320, 32, 1), (32, 32, 3, 1, 1)),
            _seq((320, 32, 1), (32, 48, 3, 1, 1), (48, 64, 3, 1, 1)),
        )
        super().__init__(320, branches, 128, scale, se_reduction)


class Block17(_InceptionResNetBlock):
    """17x17 Inception-ResNet-B, 1088 channels: 1x1 192 | 1x1 128, 1x7 160, 7x1 192."""

    def __init__(self, scale: float = 0.10, se_reduction: int | None = None) -> None:
        branches = _Branches(
            BasicConv2d(1088, 192, 1),
            _seq((1088, 128, 1), (128, 160, (1, 7), 1, (0, 3)), (160, 192, (7, 1), 1, (3, 0))),
        )
        super().__init__(1088, branches, 384, scale, se_reduction)


class Block8(_InceptionResNetBlock):
    """8x8 Inception-ResNet-C, 2080 channels: 1x1 192 | 1x1 192, 1x3 224, 3x1 256."""

    def __init__(
        self, scale: float = 0.20, se_reduction: int | None = None, relu: bool = True
    ) -> None:
        branches = _Branches(
            BasicConv2d(2080, 192, 1),
            _seq((2080, 192, 1), (192, 224, (1, 3), 1, (0, 1)), (224, 256, (3, 1), 1, (1, 0))),
        )
        super().__init__(2080, branches, 448, scale, se_reduction, relu)


def _irv2_stem() -> nn.Sequential:
    """Convolutions and pools to 192 x 35 x 35, then Mixed_5b (-> 320)."""
    return nn.Sequential(
        BasicConv2d(3, 32, 3, stride=2),
        BasicConv2d(32, 32, 3),
        BasicConv2d(32, 64, 3, padding=1),
        nn.MaxPool2d(3, stride=2),
        BasicConv2d(64, 80, 1),
        BasicConv2d(80, 192, 3),
        nn.MaxPool2d(3, stride=2),
        _Branches(  # Mixed_5b
            BasicConv2d(192, 96, 1),
            _seq((192, 48, 1), (48, 64, 5, 1, 2)),
            _seq((192, 64, 1), (64, 96, 3, 1, 1), (96, 96, 3, 1, 1)),
            nn.Sequential(_avg_pool(), BasicConv2d(192, 64, 1)),
        ),
    )


def _mixed_6a() -> _Branches:
    """35 -> 17, 320 -> 1088."""
    return _Branches(
        BasicConv2d(320, 384, 3, stride=2),
        _seq((320, 256, 1), (256, 256, 3, 1, 1), (256, 384, 3, 2)),
        nn.MaxPool2d(3, stride=2),
    )


def _mixed_7a() -> _Branches:
    """17 -> 8, 1088 -> 2080."""
    return _Branches(
        _seq((1088, 256, 1), (256, 384, 3, 2)),
        _seq((1088, 256, 1), (256, 288, 3, 2)),
        _seq((1088, 256, 1), (256, 288, 3, 1, 1), (288, 320, 3, 2)),
        nn.MaxPool2d(3, stride=2),
    )


class InceptionResNetV2Args(TypedDict, total=False):
    """Keywords of ``inception_resnet_v2``: ``se_reduction`` (None = no SE; 16 = the SENet
    paper's SE-Inception-ResNet-v2), ``se_stages`` (1-based, 1-3), ``dropout`` before the
    classifier (default 0, as timm)."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]
    dropout: float


def _create_inception_resnet_v2(variant: str, **kwargs: Unpack[InceptionResNetV2Args]) -> StagedNet:
    args = registered_defaults(variant, kwargs, "num_classes", "se_reduction", "se_stages")
    return _build_inception_resnet_v2(**args)


def _build_inception_resnet_v2(
    *,
    num_classes: int,
    se_reduction: int | None,
    se_stages: Sequence[int],
    dropout: float = 0.0,
) -> StagedNet:
    se_stages = tuple(se_stages)
    bad = sorted(set(se_stages) - set(_IRV2_SE_STAGES))
    if bad:
        raise ValueError(f"se_stages must be in 1..3 (the residual stages), got {bad}")

    def r(stage: int) -> int | None:
        return se_reduction if stage in se_stages else None

    stages = [
        nn.Sequential(*(Block35(se_reduction=r(1)) for _ in range(10))),
        nn.Sequential(_mixed_6a(), *(Block17(se_reduction=r(2)) for _ in range(20))),
        nn.Sequential(
            _mixed_7a(),
            *(Block8(se_reduction=r(3)) for _ in range(9)),
            Block8(scale=1.0, se_reduction=r(3), relu=False),
        ),
    ]
    head = _head(1536, num_classes, dropout, BasicConv2d(2080, 1536, 1))
    model = StagedNet(_irv2_stem(), stages, head, channels=[320, 320, 1088, 2080, num_classes])
    init_weights(model)
    return model


@register_model(family="inception", paper=_PAPER, input_size=(3, 299, 299))
def inception_v4(**kwargs: Unpack[InceptionV4Args]) -> StagedNet:
    """Inception-v4 (timm layout), 299x299: 42,679,816 parameters."""
    return _create_inception_v4("inception_v4", **kwargs)


@register_model(
    family="inception", paper=_PAPER, input_size=(3, 299, 299), se_stages=_IRV2_SE_STAGES
)
def inception_resnet_v2(**kwargs: Unpack[InceptionResNetV2Args]) -> StagedNet:
    """Inception-ResNet-v2 (timm layout), 299x299: 55,843,464 parameters; ``se_reduction=16``
    gives SE-Inception-ResNet-v2."""
    return _create_inception_resnet_v2("inception_resnet_v2", **kwargs)
