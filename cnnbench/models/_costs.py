"""Stored native-size costs of every zoo model: name -> (params, MACs).

``params`` is the exact parameter count of the default configuration; ``macs`` the
multiply-accumulates of convolutions, linear layers and matmuls for one image at the
registered ``input_size`` (bias excluded), as counted by ``cnnbench.static.profile_static`` on
the meta device. ``cnnbench list`` reads them instead of building every model. A test
recomputes every entry and compares exactly (``tests/test_zoo_metadata.py``); after changing an
architecture, regenerate with ``python tests/test_zoo_metadata.py`` and paste the printed
table here. (The zoo never imports the counters: the numbers are data.)
"""

from __future__ import annotations

NATIVE_COSTS: dict[str, tuple[int, int]] = {
    "alexnet": (61_100_840, 714_188_480),
    "densenet121": (7_978_856, 2_834_161_664),
    "densenet169": (14_149_480, 3_359_843_328),
    "densenet201": (20_013_928, 4_291_365_888),
    "densenet264": (33_337_704, 5_751_653_376),
    "efficientnet_b0": (5_288_548, 385_814_752),
    "efficientnet_b1": (7_794_184, 686_802_832),
    "efficientnet_b2": (9_109_994, 993_561_872),
    "efficientnet_b3": (12_233_232, 1_827_141_392),
    "efficientnet_b4": (19_341_616, 4_393_771_024),
    "efficientnet_b5": (30_389_784, 10_266_384_752),
    "efficientnet_b6": (43_040_704, 19_067_593_536),
    "efficientnet_b7": (66_347_960, 37_745_884_192),
    "ghostnet": (5_182_508, 141_150_512),
    "ghostnet_050": (2_587_292, 42_328_152),
    "ghostnet_130": (7_358_820, 227_003_256),
    "googlenet": (6_624_904, 1_498_376_192),
    "inception_resnet_v2": (55_843_464, 13_155_794_016),
    "inception_v3": (23_834_568, 5_713_216_096),
    "inception_v4": (42_679_816, 12_253_974_624),
    "lenet5": (61_706, 416_520),
    "mobilenet_v1": (4_231_976, 568_740_352),
    "mobilenet_v1_025": (470_072, 41_030_272),
    "mobilenet_v1_050": (1_331_592, 149_497_088),
    "mobilenet_v1_075": (2_585_560, 325_400_448),
    "mobilenet_v2": (3_504_872, 300_774_272),
    "mobilenet_v3_large": (5_483_032, 216_589_760),
    "mobilenet_v3_small": (2_542_856, 56_510_400),
    "preact_resnet18": (11_687_720, 1_814_073_344),
    "preact_resnet50": (25_549_352, 4_089_184_256),
    "resnet101": (44_549_160, 7_801_405_440),
    "resnet152": (60_192_808, 11_513_626_624),
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet34": (21_797_672, 3_663_761_408),
    "resnet50": (25_557_032, 4_089_184_256),
    "resnet50_v1": (25_557_032, 3_857_973_248),
    "resnext101_32x4d": (44_177_704, 7_969_996_800),
    "resnext50_32x4d": (25_028_904, 4_230_479_872),
    "se_resnet101": (49_326_872, 7_806_148_608),
    "se_resnet152": (66_821_848, 11_520_204_800),
    "se_resnet50": (28_088_024, 4_091_699_200),
    "se_resnet50_v1": (28_088_024, 3_860_488_192),
    "se_resnext101_32x4d": (48_955_416, 7_974_739_968),
    "se_resnext50_32x4d": (27_559_896, 4_232_994_816),
    "senet154": (115_088_984, 20_688_363_520),
    "senet18": (11_260_354, 555_509_760),
    "shufflenet_v1_g3": (1_865_728, 137_460_672),
    "shufflenet_v2_x1_0": (2_278_604, 144_907_992),
    "sknet101": (48_736_040, 8_448_724_992),
    "sknet50": (27_479_784, 4_462_710_784),
    "vgg11": (132_863_336, 7_609_090_048),
    "vgg11_bn": (132_868_840, 7_609_090_048),
    "vgg13": (133_047_848, 11_308_466_176),
    "vgg13_bn": (133_053_736, 11_308_466_176),
    "vgg16": (138_357_544, 15_470_264_320),
    "vgg16_bn": (138_365_992, 15_470_264_320),
    "vgg19": (143_667_240, 19_632_062_464),
    "vgg19_bn": (143_678_248, 19_632_062_464),
}
