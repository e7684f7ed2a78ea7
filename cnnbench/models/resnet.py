"""ResNet, ResNeXt, SE-ResNet/SE-ResNeXt, SENet-154 and the CIFAR pre-activation SENet-18.

Papers: He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016); Xie et al.,
"Aggregated Residual Transformations for Deep Neural Networks" (CVPR 2017); Hu et al.,
"Squeeze-and-Excitation Networks" (CVPR 2018 / TPAMI 2019).

One code path builds every ImageNet variant: a ResNet is a stem, four stages of BasicBlocks or
Bottlenecks and a pooled linear head. SE is a switch on that same code, not a separate model:
``se_reduction`` (None = no SE) puts ``SqueezeExcite(C, C // r)`` on the residual branch of every
block, after the last BatchNorm and before the addition (C = the block's output channels), and
``se_stages`` (1-based) selects the stages that carry it. So ``create_model("resnet50",
se_reduction=16)`` *is* ``se_resnet50`` (28,088,024 parameters), and
``create_model("se_resnet50", se_stages=(1, 2, 3))`` is SE-ResNet-50 without the costly final-stage
SE blocks that the SENet paper discusses.

Where the stride of a downsampling bottleneck sits -- the ``stride_in_1x1`` trap
--------------------------------------------------------------------------------
The original (Caffe) ResNet puts the stride 2 of the first bottleneck of stages 2-4 on its first
1x1 convolution ("v1", ``stride_in_1x1=True``; registered as ``resnet50_v1`` and
``se_resnet50_v1``, the latter = timm's legacy_seresnet50). torchvision and timm put it on the 3x3
convolution ("v1.5", the default). The two layouts have *identical parameters* but different
compute: the 3x3 convolution runs at the higher resolution in v1.5, 4.089 vs 3.858 GMACs for
ResNet-50 at 224. The SENet paper quotes 3.86 G for ResNet-50 and 3.87 G for SE-ResNet-50, both
v1. Comparing an SE model of one layout against a plain model of the other (legacy_seresnet50 at
3.86 G against torchvision's resnet50 at 4.09 G) makes SE appear to *save* ~6% compute, when it
really costs ~0.1-0.3%. Always compare SE against no-SE on the same skeleton: build both from one
builder and flip ``se_reduction``.

SENet-154 is SE-ResNeXt-152 (64x4d) with the SENet appendix changes: a stem of three 3x3
convolutions (3->64 stride 2, 64->64, 64->128), the first 1x1 of each bottleneck at half the group
width, 3x3 stride-2 projection shortcuts in stages 2-4, dropout 0.2 before the classifier.

``resnext101_32x4d`` is timm's (v1.5 layout). ``se_resnext101_32x4d`` is the SENet reference
layout (timm's legacy_seresnext101_32x4d): the stride sits on the 3x3 as in v1.5, but the stem's
3x3/2 max pool has no padding and rounds up (``ceil_mode``), the Caffe convention; the 56x56 map
and every count are those of ResNeXt-101 32x4d + SE (48,955,416 parameters).

``preact_resnet18`` / ``preact_resnet50`` are the ImageNet pre-activation ResNets of He et al.,
"Identity Mappings in Deep Residual Networks" (ECCV 2016), in the layout of the authors'
fb.resnet.torch ``preresnet.lua``: BN-ReLU before every convolution, plain 1x1 projection
shortcuts fed with the pre-activated input, no ReLU after the addition, a final BN-ReLU before
the pool. Same convolutions (and MACs) as resnet18 / resnet50; 1,792 / 7,680 fewer BatchNorm
parameters.

``senet18`` is the CIFAR pre-activation SENet-18 (3x32x32, 10 classes) of the SENet tutorial
code: no ReLU after the addition, 1x1 shortcut without BN applied to ``relu(bn1(x))``. Its head
pools globally (the reference's 4x4 average pool is global at 32x32), so it also runs elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypedDict, Unpack

from torch import Tensor, nn

from ._layers import ConvBNAct, SqueezeExcite, StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = [
    "ResNetArgs",
    "BottleneckArgs",
    "BasicBlock",
    "Bottleneck",
    "PreActSEBlock",
    "PreActBasicBlock",
    "PreActBottleneck",
    "PreActResNetArgs",
    "preact_resnet18",
    "preact_resnet50",
    "resnext101_32x4d",
    "se_resnext101_32x4d",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet50_v1",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "se_resnet50",
    "se_resnet50_v1",
    "se_resnet101",
    "se_resnet152",
    "se_resnext50_32x4d",
    "senet154",
    "senet18",
]

_RESNET = "He et al. 2016, Deep Residual Learning for Image Recognition"
_RESNEXT = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks"
_SENET = "Hu et al. 2018, Squeeze-and-Excitation Networks"
_PREACT_PAPER = "He et al. 2016, Identity Mappings in Deep Residual Networks"

ALL_STAGES: tuple[int, ...] = (1, 2, 3, 4)


def _se(channels: int, se_reduction: int | None) -> nn.Module:
    """SqueezeExcite(C, C // r), or Identity when ``se_reduction`` is None."""
    if se_reduction is None:
        return nn.Identity()
    if se_reduction < 1 or channels // se_reduction < 1:
        raise ValueError(f"se_reduction={se_reduction} leaves no channels for C={channels}")
    return SqueezeExcite(channels, channels // se_reduction)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (ResNet-18/34); stride on the first; optional SE before the add."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        se_reduction: int | None = None,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.se = _se(planes, se_reduction)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.act2 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        return self.act2(out + shortcut)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (grouped) -> 1x1 x4, optional SE before the add.

    The 3x3 has ``width = int(planes * width_per_group / 64) * groups`` channels. The stride sits on
    the 3x3 (v1.5) or, with ``stride_in_1x1``, on the first 1x1 (v1). ``halve_first`` makes the
    first 1x1 produce ``width // 2`` channels (SENet-154).
    """

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        groups: int = 1,
        width_per_group: int = 64,
        stride_in_1x1: bool = False,
        halve_first: bool = False,
        se_reduction: int | None = None,
        downsample: nn.Module | None = None,
    ) -> None:
        super().__init__()
        width = int(planes * width_per_group / 64) * groups
        mid = width // 2 if halve_first else width
        out_channels = planes * self.expansion
        stride1, stride2 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = nn.Conv2d(in_channels, mid, 1, stride=stride1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, width, 3, stride=stride2, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.se = _se(out_channels, se_reduction)
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.act3 = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        shortcut = self.downsample(x)
        out = self.act1(self.bn1(self.conv1(x)))
        out = self.act2(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.act3(out + shortcut)


class PreActSEBlock(nn.Module):
    """Pre-activation basic block with SE (CIFAR SENet-18); no ReLU after the addition.

    The 1x1 shortcut projection (no BN) is applied to ``relu(bn1(x))``, the identity to ``x``.
    """

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, *, se_reduction: int | None = 16
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.act1 = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.se = _se(planes, se_reduction)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != planes:
            self.shortcut = nn.Conv2d(in_channels, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act2(self.bn2(out)))
        return self.se(out) + shortcut


PreAct = Literal["none", "both", "residual"]


class _PreActBlock(nn.Module):
    """Shared forward of the ImageNet pre-activation blocks (He et al. 2016, "Identity Mappings
    in Deep Residual Networks"; fb.resnet.torch ``preresnet.lua``).

    ``preact`` says where the block's leading BN-ReLU sits: ``"both"`` (first block of stages
    2-4) applies it to the input before the split, so the 1x1 projection shortcut (no BN) sees
    the pre-activated tensor; ``"residual"`` (the other blocks) applies it on the residual branch
    only, the identity shortcut carrying the raw sum; ``"none"`` (first block of stage 1) has
    none because the stem already ends in BN-ReLU. No activation after the addition.
    """

    def _setup(self, in_channels: int, out_channels: int, stride: int, preact: PreAct) -> None:
        self.preact = preact
        self.pre: nn.Module = nn.Identity()
        if preact != "none":
            self.pre = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=False))
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            if preact == "residual":
                raise ValueError("a projection shortcut needs preact 'both' or 'none'")
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def residual(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if self.preact == "both":
            x = self.pre(x)
            out = self.residual(x)
        else:
            out = self.residual(self.pre(x))
        shortcut = self.shortcut(x) if self.shortcut is not None else x
        return out + shortcut


class PreActBasicBlock(_PreActBlock):
    """[BN-ReLU] conv3x3 (stride) - BN-ReLU - conv3x3, + shortcut."""

    expansion = 1

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, preact: PreAct = "residual"
    ) -> None:
        super().__init__()
        self._setup(in_channels, planes, stride, preact)
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)

    def residual(self, x: Tensor) -> Tensor:
        return self.conv2(self.act1(self.bn1(self.conv1(x))))


class PreActBottleneck(_PreActBlock):
    """[BN-ReLU] conv1x1 - BN-ReLU - conv3x3 (stride) - BN-ReLU - conv1x1 x4, + shortcut."""

    expansion = 4

    def __init__(
        self, in_channels: int, planes: int, stride: int = 1, preact: PreAct = "residual"
    ) -> None:
        super().__init__()
        self._setup(in_channels, planes * 4, stride, preact)
        self.conv1 = nn.Conv2d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)

    def residual(self, x: Tensor) -> Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.conv3(self.act2(self.bn2(self.conv2(out))))


def _projection(in_channels: int, out_channels: int, stride: int, kernel_size: int) -> nn.Module:
    """Projection shortcut: conv (no bias) + BN."""
    return nn.Sequential(
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        ),
        nn.BatchNorm2d(out_channels),
    )


def _check_se_stages(se_stages: Sequence[int], num_stages: int) -> tuple[int, ...]:
    stages = tuple(int(s) for s in se_stages)
    bad = [s for s in stages if not 1 <= s <= num_stages]
    if bad:
        raise ValueError(f"se_stages must be 1-based stage indices in 1..{num_stages}, got {bad}")
    return stages


class ResNetArgs(TypedDict, total=False):
    """Keywords every ResNet-family builder accepts (defaults: the registration's, or the
    variant's). ``se_reduction`` None = no SE; ``se_stages`` 1-based; ``drop_rate`` is the
    dropout probability before the classifier."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]
    drop_rate: float


class BottleneckArgs(ResNetArgs, total=False):
    """ResNetArgs plus the bottleneck shape: ``groups`` x ``width_per_group`` channels in the 3x3
    (per 64 planes) and the stride placement (``stride_in_1x1``: original "v1" layout)."""

    groups: int
    width_per_group: int
    stride_in_1x1: bool


Block = type[BasicBlock] | type[Bottleneck]


@dataclass(frozen=True)
class _ResNetCfg:
    """One architecture. ``stem="deep"`` is SENet-154's three 3x3 convolutions (128 channels,
    ceil-mode max pool); ``stem="7x7_ceil"`` the SENet reference's (Caffe-derived) 7x7 stem whose
    3x3/2 max pool has no padding and rounds up (same 56x56 map at 224, shifted by a pixel);
    ``down_kernel`` is the kernel of stride-2 projection shortcuts (3 for
    SENet-154; a stride-1 projection is always 1x1)."""

    block: Block
    layers: tuple[int, int, int, int]
    groups: int = 1
    width_per_group: int = 64
    stride_in_1x1: bool = False
    halve_first: bool = False
    stem: Literal["7x7", "7x7_ceil", "deep"] = "7x7"
    down_kernel: int = 1
    drop_rate: float = 0.0


_R18, _R34, _R50 = (2, 2, 2, 2), (3, 4, 6, 3), (3, 4, 6, 3)
_R101, _R152 = (3, 4, 23, 3), (3, 8, 36, 3)
_VARIANTS: dict[str, _ResNetCfg] = {
    "resnet18": _ResNetCfg(BasicBlock, _R18),
    "resnet34": _ResNetCfg(BasicBlock, _R34),
    "resnet50": _ResNetCfg(Bottleneck, _R50),
    "resnet50_v1": _ResNetCfg(Bottleneck, _R50, stride_in_1x1=True),
    "resnet101": _ResNetCfg(Bottleneck, _R101),
    "resnet152": _ResNetCfg(Bottleneck, _R152),
    "resnext50_32x4d": _ResNetCfg(Bottleneck, _R50, groups=32, width_per_group=4),
    "se_resnet50": _ResNetCfg(Bottleneck, _R50),
    "se_resnet50_v1": _ResNetCfg(Bottleneck, _R50, stride_in_1x1=True),
    "se_resnet101": _ResNetCfg(Bottleneck, _R101),
    "se_resnet152": _ResNetCfg(Bottleneck, _R152),
    "se_resnext50_32x4d": _ResNetCfg(Bottleneck, _R50, groups=32, width_per_group=4),
    "resnext101_32x4d": _ResNetCfg(Bottleneck, _R101, groups=32, width_per_group=4),
    "se_resnext101_32x4d": _ResNetCfg(
        Bottleneck, _R101, groups=32, width_per_group=4, stem="7x7_ceil"
    ),
    "senet154": _ResNetCfg(
        Bottleneck,
        _R152,
        groups=64,
        width_per_group=4,
        halve_first=True,
        stem="deep",
        down_kernel=3,
        drop_rate=0.2,
    ),
}
_BOTTLENECK_ONLY = ("groups", "width_per_group", "stride_in_1x1")


def _create_resnet(variant: str, **kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """Build registered ResNet ``variant``: its table entry, updated by the shape keywords,
    with num_classes / se_reduction / se_stages defaulting to its registration."""
    cfg = _VARIANTS[variant]
    args = registered_defaults(variant, kwargs, "num_classes", "se_reduction", "se_stages")
    shape = {k: args.pop(k) for k in (*_BOTTLENECK_ONLY, "drop_rate") if k in args}
    if cfg.block is BasicBlock and set(shape) & set(_BOTTLENECK_ONLY):
        raise TypeError(f"{variant} has basic blocks: {sorted(shape)} apply to bottlenecks only")
    return _build_resnet(replace(cfg, **shape), **args)


def _build_resnet(
    cfg: _ResNetCfg,
    *,
    num_classes: int,
    se_reduction: int | None,
    se_stages: Sequence[int],
) -> StagedNet:
    """Stem, four stages of ``cfg.block`` with ``cfg.layers`` blocks, pooled linear head."""
    stages_with_se = _check_se_stages(se_stages, len(cfg.layers))
    if cfg.stem == "7x7":
        stem_module = nn.Sequential(
            ConvBNAct(3, 64, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1)
        )
        in_channels = 64
    elif cfg.stem == "7x7_ceil":
        stem_module = nn.Sequential(
            ConvBNAct(3, 64, 7, stride=2), nn.MaxPool2d(3, stride=2, ceil_mode=True)
        )
        in_channels = 64
    elif cfg.stem == "deep":
        stem_module = nn.Sequential(
            ConvBNAct(3, 64, 3, stride=2),
            ConvBNAct(64, 64, 3),
            ConvBNAct(64, 128, 3),
            nn.MaxPool2d(3, stride=2, ceil_mode=True),
        )
        in_channels = 128
    else:
        raise ValueError(f"unknown stem {cfg.stem!r}")

    def make_block(
        in_ch: int,
        planes: int,
        stride: int = 1,
        *,
        se_reduction: int | None,
        downsample: nn.Module | None = None,
    ) -> nn.Module:
        """One block of ``cfg.block``; a Bottleneck also takes the config's width options."""
        if cfg.block is Bottleneck:
            return Bottleneck(
                in_ch,
                planes,
                stride,
                groups=cfg.groups,
                width_per_group=cfg.width_per_group,
                stride_in_1x1=cfg.stride_in_1x1,
                halve_first=cfg.halve_first,
                se_reduction=se_reduction,
                downsample=downsample,
            )
        return cfg.block(in_ch, planes, stride, se_reduction=se_reduction, downsample=downsample)

    channels = [in_channels]
    stages: list[nn.Module] = []
    for index, (planes, blocks) in enumerate(
        zip((64, 128, 256, 512), cfg.layers, strict=True), start=1
    ):
        stride = 1 if index == 1 else 2
        out_channels = planes * cfg.block.expansion
        reduction = se_reduction if index in stages_with_se else None
        downsample = None
        if stride != 1 or in_channels != out_channels:
            kernel = cfg.down_kernel if stride != 1 else 1
            downsample = _projection(in_channels, out_channels, stride, kernel)
        stage = [
            make_block(in_channels, planes, stride, se_reduction=reduction, downsample=downsample)
        ]
        stage += [
            make_block(out_channels, planes, se_reduction=reduction) for _ in range(1, blocks)
        ]
        stages.append(nn.Sequential(*stage))
        channels.append(out_channels)
        in_channels = out_channels
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Dropout(cfg.drop_rate) if cfg.drop_rate > 0 else nn.Identity(),
        nn.Linear(in_channels, num_classes),
    )
    model = StagedNet(stem_module, stages, head, channels=[*channels, num_classes])
    init_weights(model)
    return model


class PreActResNetArgs(TypedDict, total=False):
    """Keywords of the pre-activation ResNet builders."""

    num_classes: int


PreActBlockClass = type[PreActBasicBlock] | type[PreActBottleneck]

_PREACT: dict[str, tuple[PreActBlockClass, tuple[int, int, int, int]]] = {
    "preact_resnet18": (PreActBasicBlock, _R18),
    "preact_resnet50": (PreActBottleneck, _R50),
}


def _create_preact_resnet(variant: str, **kwargs: Unpack[PreActResNetArgs]) -> StagedNet:
    block, layers = _PREACT[variant]
    return _build_preact_resnet(
        block, layers, **registered_defaults(variant, kwargs, "num_classes")
    )


def _build_preact_resnet(
    block: PreActBlockClass, layers: Sequence[int], *, num_classes: int
) -> StagedNet:
    """Stem conv7x7/2-BN-ReLU-maxpool, four stages of pre-activation blocks, and a head that
    opens with the final BN-ReLU (the last block's sum is not normalised otherwise)."""
    stem = nn.Sequential(ConvBNAct(3, 64, 7, stride=2), nn.MaxPool2d(3, stride=2, padding=1))
    in_channels = 64
    channels = [64]
    stages: list[nn.Module] = []
    for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True), 1):
        stride = 1 if index == 1 else 2
        first: PreAct = "none" if index == 1 else "both"
        out_channels = planes * block.expansion
        stage: list[_PreActBlock] = [block(in_channels, planes, stride, first)]
        stage += [block(out_channels, planes) for _ in range(1, blocks)]
        stages.append(nn.Sequential(*stage))
        channels.append(out_channels)
        in_channels = out_channels
    head = nn.Sequential(
        nn.BatchNorm2d(in_channels),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(in_channels, num_classes),
    )
    model = StagedNet(stem, stages, head, channels=[*channels, num_classes])
    init_weights(model)
    return model


class SENet18Args(TypedDict, total=False):
    """Keywords of ``senet18`` (defaults: its registration)."""

    num_classes: int
    se_reduction: int | None
    se_stages: Sequence[int]


def _create_senet18(variant: str, **kwargs: Unpack[SENet18Args]) -> StagedNet:
    args = registered_defaults(variant, kwargs, "num_classes", "se_reduction", "se_stages")
    num_classes: int = args["num_classes"]
    stages_with_se = _check_se_stages(args["se_stages"], 4)
    stem = ConvBNAct(3, 64, 3)
    stages: list[nn.Module] = []
    in_channels = 64
    for index, planes in enumerate((64, 128, 256, 512), start=1):
        stride = 1 if index == 1 else 2
        reduction = args["se_reduction"] if index in stages_with_se else None
        stages.append(
            nn.Sequential(
                PreActSEBlock(in_channels, planes, stride, se_reduction=reduction),
                PreActSEBlock(planes, planes, se_reduction=reduction),
            )
        )
        in_channels = planes
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(512, num_classes))
    model = StagedNet(stem, stages, head, channels=[64, 64, 128, 256, 512, num_classes])
    init_weights(model)
    return model


# ---------------------------------------------------------------------------------------------
# ResNet / ResNeXt (SE off by default, switchable)


@register_model(family="resnet", paper=_RESNET, se_stages=ALL_STAGES)
def resnet18(**kwargs: Unpack[ResNetArgs]) -> StagedNet:
    """ResNet-18 (BasicBlock, [2, 2, 2, 2])."""
    return _create_resnet("resnet18", **kwargs)


@register_model(family="resnet", paper=_RESNET, se_stages=ALL_STAGES)
def resnet34(**kwargs: Unpack[ResNetArgs]) -> StagedNet:
    """ResNet-34 (BasicBlock, [3, 4, 6, 3])."""
    return _create_resnet("resnet34", **kwargs)


@register_model(family="resnet", paper=_RESNET, se_stages=ALL_STAGES)
def resnet50(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """ResNet-50 (Bottleneck, [3, 4, 6, 3]), torchvision "v1.5" layout by default."""
    return _create_resnet("resnet50", **kwargs)


@register_model(family="resnet", paper=_RESNET, se_stages=ALL_STAGES)
def resnet50_v1(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """ResNet-50 in the original layout: stride on the first 1x1 (3.86 GMACs, not 4.09)."""
    return _create_resnet("resnet50_v1", **kwargs)


@register_model(family="resnet", paper=_RESNET, se_stages=ALL_STAGES)
def resnet101(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """ResNet-101 (Bottleneck, [3, 4, 23, 3])."""
    return _create_resnet("resnet101", **kwargs)


@register_model(family="resnet", paper=_RESNET, se_stages=ALL_STAGES)
def resnet152(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """ResNet-152 (Bottleneck, [3, 8, 36, 3])."""
    return _create_resnet("resnet152", **kwargs)


@register_model(family="resnet", paper=_RESNEXT, se_stages=ALL_STAGES)
def resnext50_32x4d(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """ResNeXt-50 32x4d (Bottleneck, [3, 4, 6, 3], 32 groups of width 4)."""
    return _create_resnet("resnext50_32x4d", **kwargs)


@register_model(family="resnet", paper=_RESNEXT, se_stages=ALL_STAGES)
def resnext101_32x4d(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """ResNeXt-101 32x4d (Bottleneck, [3, 4, 23, 3]; timm resnext101_32x4d, v1.5 layout)."""
    return _create_resnet("resnext101_32x4d", **kwargs)


# ---------------------------------------------------------------------------------------------
# Pre-activation ResNet (ImageNet)


@register_model(family="resnet", paper=_PREACT_PAPER)
def preact_resnet18(**kwargs: Unpack[PreActResNetArgs]) -> StagedNet:
    """Pre-activation ResNet-18 (ImageNet, 224x224): resnet18's convolutions, BN-ReLU before
    each convolution, BN-free projection shortcuts, a final BN-ReLU in the head."""
    return _create_preact_resnet("preact_resnet18", **kwargs)


@register_model(family="resnet", paper=_PREACT_PAPER)
def preact_resnet50(**kwargs: Unpack[PreActResNetArgs]) -> StagedNet:
    """Pre-activation ResNet-50 (ImageNet, 224x224; stride on the 3x3 as in fb.resnet.torch)."""
    return _create_preact_resnet("preact_resnet50", **kwargs)


# ---------------------------------------------------------------------------------------------
# SE-ResNet / SE-ResNeXt / SENet (SE r=16 in every stage by default, switchable)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def se_resnet50(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """SE-ResNet-50 on the v1.5 skeleton (timm seresnet50)."""
    return _create_resnet("se_resnet50", **kwargs)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def se_resnet50_v1(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """SE-ResNet-50 on the original skeleton, stride on the first 1x1 (the SENet paper's 3.87 G)."""
    return _create_resnet("se_resnet50_v1", **kwargs)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def se_resnet101(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """SE-ResNet-101 on the v1.5 skeleton (timm seresnet101)."""
    return _create_resnet("se_resnet101", **kwargs)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def se_resnet152(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """SE-ResNet-152 on the v1.5 skeleton (timm seresnet152)."""
    return _create_resnet("se_resnet152", **kwargs)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def se_resnext50_32x4d(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """SE-ResNeXt-50 32x4d (timm seresnext50_32x4d)."""
    return _create_resnet("se_resnext50_32x4d", **kwargs)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def se_resnext101_32x4d(**kwargs: Unpack[BottleneckArgs]) -> StagedNet:
    """SE-ResNeXt-101 32x4d in the SENet reference layout (timm legacy_seresnext101_32x4d):
    stride on the 3x3, unpadded ceil-mode stem pool, 1x1 projections."""
    return _create_resnet("se_resnext101_32x4d", **kwargs)


@register_model(family="senet", paper=_SENET, se_reduction=16, se_stages=ALL_STAGES)
def senet154(**kwargs: Unpack[ResNetArgs]) -> StagedNet:
    """SENet-154: SE-ResNeXt-152 64x4d, deep stem, halved first 1x1, 3x3 projections, dropout."""
    return _create_resnet("senet154", **kwargs)


@register_model(
    family="senet",
    paper=_SENET,
    input_size=(3, 32, 32),
    num_classes=10,
    se_reduction=16,
    se_stages=ALL_STAGES,
)
def senet18(**kwargs: Unpack[SENet18Args]) -> StagedNet:
    """Pre-activation SENet-18 for CIFAR (3x32x32, 10 classes)."""
    return _create_senet18("senet18", **kwargs)
