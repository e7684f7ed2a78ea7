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
