"""MobileNet V1, V2 and V3.

- V1: Howard et al., "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision
  Applications", 2017. Thirteen depthwise-separable blocks; counts equal timm's
  ``mobilenetv1_100``; width multipliers 0.75, 0.5, 0.25 as ``mobilenet_v1_075`` etc. SE is a
  switch (``se_reduction=16``: the SENet paper's SE-MobileNet, SE on every block output).
- V2: Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018.
  Counts equal torchvision's ``mobilenet_v2``.
- V3: Howard et al., "Searching for MobileNetV3", ICCV 2019. Large and small; counts equal
  torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small``.

Stages: V1 and V3 blocks are grouped by output resolution (a new stage starts at each stride-2
block; the stride-1 block right after the stem is stage 1). V2 keeps the seven rows
``(t, c, n, s)`` of the paper's Table 2 as its seven stages. The head holds the last 1x1
convolution (V2, V3), global pooling and the classifier.

BatchNorm: V1 and V2 use PyTorch's defaults (eps 1e-5, momentum 0.1) like timm's
``mobilenetv1_100`` and torchvision's ``mobilenet_v2``; every V3 BatchNorm has eps 0.001 and
momentum 0.01, as torchvision's ``mobilenetv3.py`` builds them.

V3 SE: only some blocks carry SE in the reference table; SE squeezes the expanded width to
``make_divisible(expanded // se_reduction, 8)`` with a ReLU and a hard-sigmoid gate.
``se_stages`` can switch SE off per stage (``se_stages=()`` removes all of it) but cannot add
SE to a stage that has none in the reference table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TypedDict, Unpack

from torch import Tensor, nn

from ._layers import ConvBNAct, NormLayer, SqueezeExcite, StagedNet, init_weights, make_divisible
from ._registry import register_model, registered_defaults

__all__ = [
    "MobileNetV1Args",
    "MobileNetV2Args",
    "MobileNetV3Args",
    "InvertedResidual",
    "mobilenet_v1",
    "mobilenet_v1_075",
    "mobilenet_v1_050",
    "mobilenet_v1_025",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
]

_PAPER_V1 = "Howard et al. 2017, MobileNets: Efficient CNNs for Mobile Vision Applications"
_PAPER_V2 = "Sandler et al. 2018, MobileNetV2: Inverted Residuals and Linear Bottlenecks"
_PAPER_V3 = "Howard et al. 2019, Searching for MobileNetV3"

_ReLU = partial(nn.ReLU, inplace=True)
_ReLU6 = partial(nn.ReLU6, inplace=True)
_HSwish = partial(nn.Hardswish, inplace=True)
#: torchvision mobilenetv3.py builds every BatchNorm of V3 with eps 0.001, momentum 0.01; V1
#: (timm) and V2 (torchvision) keep PyTorch's defaults (eps 1e-5, momentum 0.1).
_BN_V3: NormLayer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)


class InvertedResidual(nn.Module):
    """[expand 1x1 + BN + act] -> depthwise kxk + BN + act -> [SE] -> project 1x1 + BN (linear),
    with an identity shortcut when ``stride == 1`` and ``in_channels == out_channels``.

    The expansion is skipped when ``mid_channels == in_channels``. ``se_channels`` is the SE
    squeeze width (None: no SE)."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        act: Callable[[], nn.Module] = _ReLU6,
        se_channels: int | None = None,
        norm: NormLayer = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if mid_channels != in_channels:
            layers.append(ConvBNAct(in_channels, mid_channels, 1, act=act, norm=norm))
        layers.append(
            ConvBNAct(
                mid_channels,
                mid_channels,
                kernel_size,
                stride,
                groups=mid_channels,
                act=act,
                norm=norm,
            )
        )
        if se_channels is not None:
            layers.append(SqueezeExcite(mid_channels, se_channels, act=_ReLU, gate=nn.Hardsigmoid))
        layers.append(ConvBNAct(mid_channels, out_channels, 1, act=None, norm=norm))
        self.block = nn.Sequential(*layers)
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


def _depthwise_separable(
    in_channels: int, out_channels: int, stride: int, se_reduction: int | None = None
) -> nn.Sequential:
    """MobileNet V1 block: depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU (no shortcut),
    then, with ``se_reduction``, ``SqueezeExcite(out, out // r)`` on the block output (the
    SENet paper's SE-MobileNet)."""
    layers: list[nn.Module] = [
        ConvBNAct(in_channels, in_channels, 3, stride, groups=in_channels, act=_ReLU),
        ConvBNAct(in_channels, out_channels, 1, act=_ReLU),
    ]
    if se_reduction is not None:
        if out_channels // se_reduction < 1:
            raise ValueError(f"se_reduction={se_reduction} leaves no channels for {out_channels}")
        layers.append(SqueezeExcite(out_channels, out_channels // se_reduction))
    return nn.Sequential(*layers)


def _classifier(in_features: int, num_classes: int, dropout: float = 0.0) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten(1)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(in_features, num_classes))
    return layers


# ---------------------------------------------------------------------------------------------
# V1

# Per stage: (out channels, number of blocks); the first block of stages 2-5 has stride 2.
_V1_STAGES = ((64, 1), (128, 2), (256, 2), (512, 6), (1024, 2))


_V1_SE_STAGES = tuple(range(1, len(_V1_STAGES) + 1))
#: registered name -> width multiplier (channels make_divisible(c * width, 8))
_V1_WIDTHS = {
    "mobilenet_v1": 1.0,
    "mobilenet_v1_075": 0.75,
    "mobilenet_v1_050": 0.5,
    "mobilenet_v1_025": 0.25,
}


class MobileNetV1Args(TypedDict, total=False):
    """Keywords of the MobileNet V1 builders: ``se_reduction`` (None = no SE, the default; 16 =
    the SENet paper's SE-MobileNet, SE on every block output) and ``se_stages`` (1-based, 1-5)."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]


def _create_mobilenet_v1(variant: str, **kwargs: Unpack[MobileNetV1Args]) -> StagedNet:
    args = registered_defaults(variant, kwargs, "num_classes", "se_reduction", "se_stages")
    return _build_mobilenet_v1(_V1_WIDTHS[variant], **args)


def _build_mobilenet_v1(
    width: float, *, num_classes: int, se_reduction: int | None, se_stages: Sequence[int]
) -> StagedNet:
    se_stages = tuple(se_stages)
    bad = sorted(set(se_stages) - set(_V1_SE_STAGES))
    if bad:
        raise ValueError(f"se_stages must be in 1..{len(_V1_STAGES)}, got {bad}")

    def ch(c: int) -> int:
        return make_divisible(c * width, 8)

    stem_out = ch(32)
    stem = ConvBNAct(3, stem_out, 3, stride=2, act=_ReLU)
    stages = []
    in_ch = stem_out
    for index, (out_c, n) in enumerate(_V1_STAGES):
        out_ch = ch(out_c)
        reduction = se_reduction if index + 1 in se_stages else None
        blocks = []
        for i in range(n):
            stride = 2 if index > 0 and i == 0 else 1
            blocks.append(_depthwise_separable(in_ch, out_ch, stride, reduction))
            in_ch = out_ch
        stages.append(nn.Sequential(*blocks))
    head = nn.Sequential(*_classifier(in_ch, num_classes))
    channels = [stem_out, *(ch(c) for c, _ in _V1_STAGES), num_classes]
    model = StagedNet(stem, stages, head, channels=channels)
    init_weights(model)
    return model


# ---------------------------------------------------------------------------------------------
# V2

# Paper Table 2: expansion t, output channels c, repeats n, stride s of the first repeat.
_V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2Args(TypedDict, total=False):
    """Keywords of ``mobilenet_v2``: ``dropout`` before the classifier (default 0.2)."""

    num_classes: int
    dropout: float


def _create_mobilenet_v2(variant: str, **kwargs: Unpack[MobileNetV2Args]) -> StagedNet:
    return _build_mobilenet_v2(**registered_defaults(variant, kwargs, "num_classes"))


def _build_mobilenet_v2(*, num_classes: int, dropout: float = 0.2) -> StagedNet:
    stem = ConvBNAct(3, 32, 3, stride=2, act=_ReLU6)
    stages = []
    in_ch = 32
    for t, c, n, s in _V2_STAGES:
        blocks = []
        for i in range(n):
            mid = round(in_ch * t)
            blocks.append(InvertedResidual(in_ch, mid, c, 3, s if i == 0 else 1, act=_ReLU6))
            in_ch = c
        stages.append(nn.Sequential(*blocks))
    last = 1280
    head = nn.Sequential(
        ConvBNAct(in_ch, last, 1, act=_ReLU6), *_classifier(last, num_classes, dropout)
    )
    channels = [32, *(c for _, c, _, _ in _V2_STAGES), num_classes]
    model = StagedNet(stem, stages, head, channels=channels)
    init_weights(model)
    return model


# ---------------------------------------------------------------------------------------------
# V3

# Per block: kernel, expanded width, output width, SE, activation ("RE" ReLU, "HS" hard-swish),
# stride. Paper Tables 1 and 2.
_V3_LARGE = (
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
)
_V3_SMALL = (
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
)
# variant: (block table, classifier hidden width)
_V3_VARIANTS = {"large": (_V3_LARGE, 1280), "small": (_V3_SMALL, 1024)}
_V3_ACTS: dict[str, Callable[[], nn.Module]] = {"RE": _ReLU, "HS": _HSwish}


def _v3_stage_of_blocks(table: tuple) -> list[int]:
    """1-based stage index of each block: a new stage starts at every stride-2 block, except
    that the first block always opens stage 1."""
    stage, out = 1, []
    for i, row in enumerate(table):
        if i > 0 and row[5] == 2:
            stage += 1
        out.append(stage)
    return out


def _v3_default_se_stages(variant: str) -> tuple[int, ...]:
    table = _V3_VARIANTS[variant][0]
    stages = _v3_stage_of_blocks(table)
    return tuple(sorted({s for s, row in zip(stages, table, strict=True) if row[3]}))


_V3_SE_STAGES = {v: _v3_default_se_stages(v) for v in _V3_VARIANTS}


class MobileNetV3Args(TypedDict, total=False):
    """Keywords of the MobileNet V3 builders: ``se_reduction`` divides the expanded width
    (4 in the reference; None = no SE), ``se_stages`` can only switch SE off where the reference
    table has it, ``dropout`` before the classifier (default 0.2)."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]
    dropout: float


def _create_mobilenet_v3(name: str, **kwargs: Unpack[MobileNetV3Args]) -> StagedNet:
    args = registered_defaults(name, kwargs, "num_classes", "se_reduction", "se_stages")
    return _build_mobilenet_v3(name.removeprefix("mobilenet_v3_"), **args)


def _build_mobilenet_v3(
    variant: str,
    *,
    num_classes: int,
    se_reduction: int | None,
    se_stages: Sequence[int],
    dropout: float = 0.2,
) -> StagedNet:
    table, hidden = _V3_VARIANTS[variant]
    default_se = _V3_SE_STAGES[variant]
    se_stages = tuple(se_stages)
    extra = set(se_stages) - set(default_se)
    if extra:
        raise ValueError(
            f"mobilenet_v3_{variant} has SE only in stages {default_se} of its reference table; "
            f"se_stages can switch SE off there but cannot add it to stages {sorted(extra)}"
        )
    block_stage = _v3_stage_of_blocks(table)

    stem = ConvBNAct(3, 16, 3, stride=2, act=_HSwish, norm=_BN_V3)
    stages: list[list[InvertedResidual]] = [[] for _ in range(block_stage[-1])]
    channels = [16]
    in_ch = 16
    for stage, (k, mid, out_ch, use_se, act, stride) in zip(block_stage, table, strict=True):
        se = None
        if use_se and se_reduction is not None and stage in se_stages:
            se = make_divisible(mid // se_reduction, 8)
        stages[stage - 1].append(
            InvertedResidual(
                in_ch, mid, out_ch, k, stride, act=_V3_ACTS[act], se_channels=se, norm=_BN_V3
            )
        )
        in_ch = out_ch
    channels += [stage[-1].out_channels for stage in stages]

    last = 6 * in_ch
    head = nn.Sequential(
        ConvBNAct(in_ch, last, 1, act=_HSwish, norm=_BN_V3),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(last, hidden),
        _HSwish(),
        nn.Dropout(dropout, inplace=True),
        nn.Linear(hidden, num_classes),
    )
    model = StagedNet(
        stem, [nn.Sequential(*s) for s in stages], head, channels=[*channels, num_classes]
    )
    init_weights(model)
    return model


# ---------------------------------------------------------------------------------------------
# Builders


@register_model(family="mobilenet", paper=_PAPER_V1, se_stages=_V1_SE_STAGES)
def mobilenet_v1(**kwargs: Unpack[MobileNetV1Args]) -> StagedNet:
    """MobileNet V1 (width 1.0, 224x224): 13 depthwise-separable blocks, no dropout;
    ``se_reduction=16`` gives the SENet paper's SE-MobileNet."""
    return _create_mobilenet_v1("mobilenet_v1", **kwargs)


@register_model(family="mobilenet", paper=_PAPER_V1, se_stages=_V1_SE_STAGES)
def mobilenet_v1_075(**kwargs: Unpack[MobileNetV1Args]) -> StagedNet:
    """MobileNet V1 with width multiplier 0.75 (224x224)."""
    return _create_mobilenet_v1("mobilenet_v1_075", **kwargs)


@register_model(family="mobilenet", paper=_PAPER_V1, se_stages=_V1_SE_STAGES)
def mobilenet_v1_050(**kwargs: Unpack[MobileNetV1Args]) -> StagedNet:
    """MobileNet V1 with width multiplier 0.5 (224x224)."""
    return _create_mobilenet_v1("mobilenet_v1_050", **kwargs)


@register_model(family="mobilenet", paper=_PAPER_V1, se_stages=_V1_SE_STAGES)
def mobilenet_v1_025(**kwargs: Unpack[MobileNetV1Args]) -> StagedNet:
    """MobileNet V1 with width multiplier 0.25 (224x224)."""
    return _create_mobilenet_v1("mobilenet_v1_025", **kwargs)


@register_model(family="mobilenet", paper=_PAPER_V2)
def mobilenet_v2(**kwargs: Unpack[MobileNetV2Args]) -> StagedNet:
    """MobileNet V2 (width 1.0, 224x224): inverted residuals with ReLU6, last conv 1280."""
    return _create_mobilenet_v2("mobilenet_v2", **kwargs)


@register_model(
    family="mobilenet", paper=_PAPER_V3, se_reduction=4, se_stages=_V3_SE_STAGES["large"]
)
def mobilenet_v3_large(**kwargs: Unpack[MobileNetV3Args]) -> StagedNet:
    """MobileNet V3 large (224x224): 15 bottlenecks, SE in stages 3-5, head 960 -> 1280."""
    return _create_mobilenet_v3("mobilenet_v3_large", **kwargs)


@register_model(
    family="mobilenet", paper=_PAPER_V3, se_reduction=4, se_stages=_V3_SE_STAGES["small"]
)
def mobilenet_v3_small(**kwargs: Unpack[MobileNetV3Args]) -> StagedNet:
    """MobileNet V3 small (224x224): 11 bottlenecks, SE in stages 1, 3, 4, head 576 -> 1024."""
    return _create_mobilenet_v3("mobilenet_v3_small", **kwargs)
