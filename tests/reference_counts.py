"""Exact parameter counts of the reference implementations, keyed by cnnbench name.

Source: ../shared/reference/published_counts.md (torchvision 0.28, timm 1.0.31, or the code
quoted in the project's source texts). Counts NOT in that table are derived by hand and say how.
Each entry is (builder kwargs, exact parameter count).
"""

from __future__ import annotations

from typing import Any

# vgg*_bn that the table does not list: BatchNorm adds weight+bias per conv output channel.
_VGG_CHANNELS = {
    "vgg11": [64, 128, 256, 256, 512, 512, 512, 512],
    "vgg13": [64, 64, 128, 128, 256, 256, 512, 512, 512, 512],
    "vgg19": [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512],
}

REFERENCE: dict[str, list[tuple[dict[str, Any], int]]] = {
    "lenet5": [({}, 61_706)],
    "alexnet": [({}, 61_100_840)],
    "vgg11": [({}, 132_863_336)],
    "vgg13": [({}, 133_047_848)],
    "vgg16": [({}, 138_357_544)],
    "vgg19": [({}, 143_667_240)],
    "vgg16_bn": [({}, 138_365_992)],
    "vgg11_bn": [({}, 132_863_336 + 2 * sum(_VGG_CHANNELS["vgg11"]))],
    "vgg13_bn": [({}, 133_047_848 + 2 * sum(_VGG_CHANNELS["vgg13"]))],
    "vgg19_bn": [({}, 143_667_240 + 2 * sum(_VGG_CHANNELS["vgg19"]))],
    "googlenet": [({}, 6_624_904), ({"aux_logits": True}, 13_004_888)],
    "inception_v3": [({}, 23_834_568), ({"aux_logits": True}, 27_161_264)],
    "resnet18": [({}, 11_689_512)],
    "resnet34": [({}, 21_797_672)],
    "resnet50": [({}, 25_557_032)],
    "resnet50_v1": [({}, 25_557_032)],  # stride on the first 1x1: same weights as v1.5
    "resnet101": [({}, 44_549_160)],
    "resnet152": [({}, 60_192_808)],
    "resnext50_32x4d": [({}, 25_028_904)],
    "se_resnet50": [({}, 28_088_024)],
    "se_resnet50_v1": [({}, 28_088_024)],  # timm legacy_seresnet50
    "se_resnet101": [({}, 49_326_872)],
    "se_resnet152": [({}, 66_821_848)],
    "se_resnext50_32x4d": [({}, 27_559_896)],
    "senet154": [({}, 115_088_984)],
    "senet18": [({}, 11_260_354)],
    "densenet121": [({}, 7_978_856)],
    "densenet169": [({}, 14_149_480)],
    "densenet201": [({}, 20_013_928)],
    "efficientnet_b0": [({}, 5_288_548)],
    "efficientnet_b1": [({}, 7_794_184)],
    "efficientnet_b2": [({}, 9_109_994)],
    "efficientnet_b3": [({}, 12_233_232)],
    "efficientnet_b4": [({}, 19_341_616)],
    "efficientnet_b5": [({}, 30_389_784)],
    "efficientnet_b6": [({}, 43_040_704)],
    "efficientnet_b7": [({}, 66_347_960)],
    "mobilenet_v1": [({}, 4_231_976)],
    "mobilenet_v2": [({}, 3_504_872)],
    "mobilenet_v3_large": [({}, 5_483_032)],
    "mobilenet_v3_small": [({}, 2_542_856)],
    "shufflenet_v2_x1_0": [({}, 2_278_604)],
    "ghostnet": [({}, 5_182_508)],
    "sknet50": [({}, 27_479_784)],
    "sknet101": [({}, 48_736_040)],
}

# Reference GMACs at native resolution (published_counts.md), for the counter tests.
REFERENCE_GMACS: dict[str, float] = {
    "lenet5": 0.000417,
    "alexnet": 0.714,
    "vgg11": 7.609,
    "vgg13": 11.308,
    "vgg16": 15.470,
    "vgg16_bn": 15.470,
    "vgg19": 19.632,
    "googlenet": 1.498,
    "inception_v3": 5.713,
    "resnet18": 1.814,
    "resnet34": 3.664,
    "resnet50": 4.089,
    "resnet50_v1": 3.858,
    "resnet101": 7.801,
    "resnet152": 11.514,
    "resnext50_32x4d": 4.230,
    "se_resnet50": 4.092,
    "se_resnet50_v1": 3.860,
    "se_resnet101": 7.806,
    "se_resnet152": 11.520,
    "se_resnext50_32x4d": 4.233,
    "senet154": 20.688,
    "densenet121": 2.834,
    "densenet169": 3.360,
    "densenet201": 4.291,
    "efficientnet_b0": 0.386,
    "efficientnet_b1": 0.687,
    "efficientnet_b2": 0.994,
    "efficientnet_b3": 1.827,
    "efficientnet_b4": 4.394,
    "efficientnet_b5": 10.266,
    "efficientnet_b6": 19.068,
    "efficientnet_b7": 37.746,
    "mobilenet_v1": 0.569,
    "mobilenet_v2": 0.301,
    "mobilenet_v3_large": 0.217,
    "mobilenet_v3_small": 0.057,
    "shufflenet_v2_x1_0": 0.145,
    "ghostnet": 0.141,
    "sknet50": 4.463,
}


# --- Hand formulas for the models added in issue 14.3 ---------------------------------------
# Written from the papers' layer tables, independently of cnnbench/models; each formula is
# checked against a published figure of a sibling model in tests/test_zoo_new_models.py.


def se_params(c: int, r: int = 16) -> int:
    """One SE block on C channels: conv C -> C//r and C//r -> C, both with bias."""
    return 2 * c * (c // r) + c // r + c


def mobilenet_v1_channels(width: float) -> list[int]:
    """Stem and the 13 block output channels of MobileNet V1 (all exact multiples of 8 here)."""
    base = [32, 64, 128, 128, 256, 256, *[512] * 6, 1024, 1024]
    return [int(c * width) for c in base]


def mobilenet_v1_params(width: float, classes: int = 1000) -> int:
    """Depthwise-separable MobileNet V1 with BatchNorm (weight + bias per channel), no conv bias:
    stem 3x3 conv 27*c0 + BN 2*c0; each block c_in -> c_out: depthwise 9*c_in + BN 2*c_in,
    pointwise c_in*c_out + BN 2*c_out; classifier c_last*classes + classes."""
    ch = mobilenet_v1_channels(width)
    total = 27 * ch[0] + 2 * ch[0]
    for cin, cout in zip(ch, ch[1:], strict=False):
        total += 9 * cin + 2 * cin + cin * cout + 2 * cout
    return total + ch[-1] * classes + classes


def mobilenet_v1_se_params(width: float = 1.0, r: int = 16) -> int:
    """SE-MobileNet's extra weights: one SE block on every block output."""
    return sum(se_params(c, r) for c in mobilenet_v1_channels(width)[1:])


def mobilenet_v1_se_gate_muls(width: float = 1.0) -> int:
    """Channel-wise SE scaling multiplies of SE-MobileNet at 224: C*H*W of every block output."""
    ch = mobilenet_v1_channels(width)[1:]
    res = [112, 56, 56, 28, 28, *[14] * 6, 7, 7]
    return sum(c * s * s for c, s in zip(ch, res, strict=True))


def _shufflenet_v1_units(groups: int = 3) -> list[tuple[int, int, int, int, int, int]]:
    """(in, branch out, mid, groups of the first 1x1, input grid, output grid) per unit of
    ShuffleNet V1 1x at 224 (stages of 4, 8, 4 units, 240 / 480 / 960 channels; the first unit
    of a stage has stride 2 and a branch of out - in channels, concatenated to the pooled x)."""
    widths, repeats = (240, 480, 960), (4, 8, 4)
    units, c, s = [], 24, 56
    for i, (w, n) in enumerate(zip(widths, repeats, strict=True)):
        for j in range(n):
            first = j == 0
            so = s // 2 if first else s
            g1 = 1 if i == 0 and first else groups
            units.append((c, w - c if first else w, w // 4, g1, s, so))
            c, s = w, so
    return units


def shufflenet_v1_params(groups: int = 3, se: int | None = None) -> int:
    """ShuffleNet V1 1x: conv3x3 3->24 + BN; per unit gconv1 (in/g1)*mid + BN, depthwise 9*mid
    + BN, gconv2 (mid/g)*branch + BN [+ SE on the branch]; fc 960*1000 + 1000."""
    total = 27 * 24 + 2 * 24
    for cin, branch, mid, g1, _, _ in _shufflenet_v1_units(groups):
        total += cin // g1 * mid + 2 * mid + 9 * mid + 2 * mid + mid // groups * branch
        total += 2 * branch + (se_params(branch, se) if se else 0)
    return total + 960 * 1000 + 1000


def shufflenet_v1_macs(groups: int = 3, se: int | None = None) -> int:
    """MACs at 224 of the same network: conv1 at 112x112; per unit gconv1 at its input grid,
    depthwise and gconv2 at its output grid; SE 2 * branch * (branch // r) (two 1x1 convs on a
    1x1 map); fc."""
    total = 112 * 112 * 27 * 24
    for cin, branch, mid, g1, s, so in _shufflenet_v1_units(groups):
        total += s * s * (cin // g1) * mid + so * so * (9 * mid + mid // groups * branch)
        total += 2 * branch * (branch // se) if se else 0
    return total + 960 * 1000


def shufflenet_v1_se_gate_muls(groups: int = 3) -> int:
    """SE-ShuffleNet's channel-wise scaling multiplies: branch channels x output grid."""
    return sum(b * so * so for _, b, _, _, _, so in _shufflenet_v1_units(groups))


def resnet_macs(
    layers: tuple[int, ...],
    *,
    basic: bool = False,
    groups: int = 1,
    width_per_group: int = 64,
    se: int | None = None,
) -> int:
    """MACs at 224 of a torchvision-layout ("v1.5") ResNet/ResNeXt: 7x7/2 stem conv at 112x112,
    max pool to 56; bottleneck conv1 at the block's input grid, the (grouped) 3x3 carrying the
    stride, conv3 and the 1x1 projection at the output grid; SE 2*C*(C//r) per block; fc."""
    total = 112 * 112 * 147 * 64
    c, s = 64, 56
    for i, (planes, n) in enumerate(zip((64, 128, 256, 512), layers, strict=False)):
        for j in range(n):
            so = s // 2 if i > 0 and j == 0 else s
            if basic:
                out = planes
                total += so * so * (c * planes * 9 + planes * planes * 9)
            else:
                w = planes * width_per_group // 64 * groups
                out = planes * 4
                total += s * s * c * w + so * so * (w * (w // groups) * 9 + w * out)
            if so != s or c != out:
                total += so * so * c * out
            total += 2 * out * (out // se) if se else 0
            c, s = out, so
    return total + c * 1000


def densenet_macs(blocks: tuple[int, ...], growth: int = 32, init: int = 64) -> int:
    """MACs at 224 of a DenseNet-BC: stem 7x7/2 conv at 112x112, pool to 56; each dense layer
    on c inputs at grid s: conv1x1 c -> 4k, conv3x3 4k -> k; transitions conv1x1 c -> c/2 at the
    block's grid before the 2x2 pool; fc."""
    total = 112 * 112 * 147 * init
    c, s = init, 56
    for i, n in enumerate(blocks):
        for _ in range(n):
            total += s * s * (c * 4 * growth + 4 * growth * 9 * growth)
            c += growth
        if i < len(blocks) - 1:
            total += s * s * c * (c // 2)
            c, s = c // 2, s // 2
    return total + c * 1000


def _make_divisible(v: float, d: int) -> int:
    """The TF MobileNet rounding rule: nearest multiple of d, never below 90% of v."""
    new = max(d, int(v + d / 2) // d * d)
    return new + d if new < 0.9 * v else new


# GhostNet Table 1 rows: kernel, expansion, output, SE, stride.
_GHOST_ROWS = [
    (3, 16, 16, 0, 1),
    (3, 48, 24, 0, 2),
    (3, 72, 24, 0, 1),
    (5, 72, 40, 1, 2),
    (5, 120, 40, 1, 1),
    (3, 240, 80, 0, 2),
    (3, 200, 80, 0, 1),
    (3, 184, 80, 0, 1),
    (3, 184, 80, 0, 1),
    (3, 480, 112, 1, 1),
    (3, 672, 112, 1, 1),
    (5, 672, 160, 1, 2),
    (5, 960, 160, 0, 1),
    (5, 960, 160, 1, 1),
    (5, 960, 160, 0, 1),
    (5, 960, 160, 1, 1),
]


def ghostnet_macs(width: float) -> int:
    """MACs at 224 of GhostNet at ``width`` (channels _make_divisible(c * width, 4)): a ghost
    module in -> out at grid s costs s^2 * (in * m + 9 * m) with m = ceil(out / 2) (primary 1x1,
    cheap depthwise 3x3); a bottleneck adds its stride-2 depthwise k x k on the expanded width, SE
    2 * exp * se (se = _make_divisible(exp / 4, 4)), and a depthwise k x k + 1x1 shortcut when the
    shape changes; stem 3x3/2, last 1x1 to 960w, head conv 960w -> 1280 and fc on 1x1 maps."""

    def ghost(cin: int, cout: int, s: int) -> int:
        m = -(-cout // 2)
        return s * s * (cin * m + 9 * m)

    c = _make_divisible(16 * width, 4)
    total, s = 112 * 112 * 27 * c, 112
    for k, exp, out, se, stride in _GHOST_ROWS:
        mid, o = _make_divisible(exp * width, 4), _make_divisible(out * width, 4)
        so = s // stride
        total += ghost(c, mid, s) + ghost(mid, o, so)
        total += so * so * mid * k * k if stride == 2 else 0
        total += 2 * mid * _make_divisible(mid / 4, 4) if se else 0
        if stride != 1 or c != o:
            total += so * so * (c * k * k + c * o)
        c, s = o, so
    last = _make_divisible(960 * width, 4)
    return total + s * s * c * last + last * 1280 + 1280 * 1000


# Pre-activation ResNets (He et al. 2016, "Identity Mappings"; fb.resnet.torch preresnet.lua):
# the same convolutions and classifier as resnet18 / resnet50, only the BatchNorms move.
#   resnet (torchvision): BN after every conv, on every projection shortcut and in the stem.
#   preact: stem BN kept; one BN before each block's residual branch (on its input width) except
#   the first block of stage 1 (the stem's BN-ReLU serves it); no BN after the last conv of a
#   block; projection shortcuts are plain 1x1 convs; one final BN on the last stage's output.
# Counted in BN channels (2 parameters each):
#   resnet18: stem 64 + blocks 2*(2*64 + 2*128 + 2*256 + 2*512) + projections 128+256+512
#             = 64 + 3840 + 896 = 4800
#   preact18: stem 64 + stage1 (64) + (64+64) + stage2 (64+128) + (128+128) + stage3 (128+256)
#             + (256+256) + stage4 (256+512) + (512+512) + final 512 = 3904
#   resnet50: stem 64 + bottlenecks 3*384 + 4*768 + 6*1536 + 3*3072 + projections
#             256+512+1024+2048 = 26,560
#   preact50: stem 64 + stage1 (64+64) + 2*(256+64+64) + stage2 (256+128+128) + 3*(512+256)
#             + stage3 (512+256+256) + 5*(1024+512) + stage4 (1024+512+512) + 2*(2048+1024)
#             + final 2048 = 22,720
PREACT_RESNET18 = 11_689_512 - 2 * (4800 - 3904)  # 11,687,720
PREACT_RESNET50 = 25_557_032 - 2 * (26_560 - 22_720)  # 25,549,352

# SE-Inception-ResNet-v2: one SE (r = 16) per Inception-ResNet block: 10 x Block35 (320 ch),
# 20 x Block17 (1088), 10 x Block8 (2080, the final one without ReLU included).
IRV2_SE_PARAMS = 10 * se_params(320) + 20 * se_params(1088) + 10 * se_params(2080)

REFERENCE.update(
    {
        "inception_v4": [({}, 42_679_816)],  # timm inception_v4
        "inception_resnet_v2": [  # timm inception_resnet_v2
            ({}, 55_843_464),
            ({"se_reduction": 16}, 55_843_464 + IRV2_SE_PARAMS),
        ],
        "resnext101_32x4d": [({}, 44_177_704)],  # timm resnext101_32x4d
        "se_resnext101_32x4d": [({}, 48_955_416)],  # timm legacy_seresnext101_32x4d
        "densenet264": [({}, 33_337_704)],
        "ghostnet_050": [({}, 2_587_292)],  # timm ghostnet_050
        "ghostnet_130": [({}, 7_358_820)],  # timm ghostnet_130
        "mobilenet_v1_075": [({}, mobilenet_v1_params(0.75))],
        "mobilenet_v1_050": [({}, mobilenet_v1_params(0.5))],
        "mobilenet_v1_025": [({}, mobilenet_v1_params(0.25))],
        "shufflenet_v1_g3": [
            ({}, shufflenet_v1_params()),
            ({"se_reduction": 16}, shufflenet_v1_params(se=16)),
        ],
        "preact_resnet18": [({}, PREACT_RESNET18)],
        "preact_resnet50": [({}, PREACT_RESNET50)],
    }
)
REFERENCE["mobilenet_v1"].append(({"se_reduction": 16}, 4_231_976 + mobilenet_v1_se_params()))

REFERENCE_GMACS.update(
    {
        # timm model cards (huggingface.co/timm/inception_v4.tf_in1k, .../inception_resnet_v2.*)
        "inception_v4": 12.3,
        "inception_resnet_v2": 13.2,
        # MobileNet paper, Table 6 (width multiplier at 224): 325, 149, 41 million mult-adds.
        "mobilenet_v1_075": 0.325,
        "mobilenet_v1_050": 0.149,
        "mobilenet_v1_025": 0.041,
        # Pre-activation: the very convolutions of resnet18 / resnet50 (torchvision's figures).
        "preact_resnet18": 1.814,
        "preact_resnet50": 4.089,
        # Hand formulas above (exact integers, so compared at 1e-9 G); each formula reproduces
        # published sibling figures (resnet50 4.089, resnext50 4.230, densenet121 2.834,
        # ghostnet 0.141), see tests/test_zoo_new_models.py.
        "resnext101_32x4d": resnet_macs((3, 4, 23, 3), groups=32, width_per_group=4) / 1e9,
        "se_resnext101_32x4d": resnet_macs((3, 4, 23, 3), groups=32, width_per_group=4, se=16)
        / 1e9,
        "densenet264": densenet_macs((6, 12, 64, 48)) / 1e9,
        "ghostnet_050": ghostnet_macs(0.5) / 1e9,
        "ghostnet_130": ghostnet_macs(1.3) / 1e9,
        "shufflenet_v1_g3": shufflenet_v1_macs() / 1e9,
    }
)
