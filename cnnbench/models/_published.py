"""Published ImageNet top-1 accuracies, cited, never measured: name -> (top-1 %, source).

Filled per model from its paper or the reference implementation's documentation; a model
without an entry has ``published_top1 = None``. cnnbench has no weights and measures no
accuracy: these numbers are what the source reports for its own trained weights.
"""

from __future__ import annotations

PUBLISHED_TOP1: dict[str, tuple[float, str]] = {
    # torchvision's documented acc@1 of its IMAGENET1K_V1 weights (single crop).
    "alexnet": (56.522, "torchvision docs: alexnet IMAGENET1K_V1 acc@1"),
    "vgg11": (69.02, "torchvision docs: vgg11 IMAGENET1K_V1 acc@1"),
    "vgg11_bn": (70.37, "torchvision docs: vgg11_bn IMAGENET1K_V1 acc@1"),
    "vgg13": (69.928, "torchvision docs: vgg13 IMAGENET1K_V1 acc@1"),
    "vgg13_bn": (71.586, "torchvision docs: vgg13_bn IMAGENET1K_V1 acc@1"),
    "vgg16": (71.592, "torchvision docs: vgg16 IMAGENET1K_V1 acc@1"),
    "vgg16_bn": (73.36, "torchvision docs: vgg16_bn IMAGENET1K_V1 acc@1"),
    "vgg19": (72.376, "torchvision docs: vgg19 IMAGENET1K_V1 acc@1"),
    "vgg19_bn": (74.218, "torchvision docs: vgg19_bn IMAGENET1K_V1 acc@1"),
    "googlenet": (69.778, "torchvision docs: googlenet IMAGENET1K_V1 acc@1"),
    "inception_v3": (77.294, "torchvision docs: inception_v3 IMAGENET1K_V1 acc@1"),
    "resnet18": (69.758, "torchvision docs: resnet18 IMAGENET1K_V1 acc@1"),
    "resnet34": (73.314, "torchvision docs: resnet34 IMAGENET1K_V1 acc@1"),
    "resnet50": (76.13, "torchvision docs: resnet50 IMAGENET1K_V1 acc@1"),
    "resnet101": (77.374, "torchvision docs: resnet101 IMAGENET1K_V1 acc@1"),
    "resnet152": (78.312, "torchvision docs: resnet152 IMAGENET1K_V1 acc@1"),
    "resnext50_32x4d": (77.618, "torchvision docs: resnext50_32x4d IMAGENET1K_V1 acc@1"),
    "densenet121": (74.434, "torchvision docs: densenet121 IMAGENET1K_V1 acc@1"),
    "densenet169": (75.6, "torchvision docs: densenet169 IMAGENET1K_V1 acc@1"),
    "densenet201": (76.896, "torchvision docs: densenet201 IMAGENET1K_V1 acc@1"),
    "mobilenet_v2": (71.878, "torchvision docs: mobilenet_v2 IMAGENET1K_V1 acc@1"),
    "mobilenet_v3_large": (74.042, "torchvision docs: mobilenet_v3_large IMAGENET1K_V1 acc@1"),
    "mobilenet_v3_small": (67.668, "torchvision docs: mobilenet_v3_small IMAGENET1K_V1 acc@1"),
    "shufflenet_v2_x1_0": (69.362, "torchvision docs: shufflenet_v2_x1_0 IMAGENET1K_V1 acc@1"),
    "efficientnet_b0": (77.692, "torchvision docs: efficientnet_b0 IMAGENET1K_V1 acc@1"),
    "efficientnet_b1": (78.642, "torchvision docs: efficientnet_b1 IMAGENET1K_V1 acc@1"),
    "efficientnet_b2": (80.608, "torchvision docs: efficientnet_b2 IMAGENET1K_V1 acc@1"),
    "efficientnet_b3": (82.008, "torchvision docs: efficientnet_b3 IMAGENET1K_V1 acc@1"),
    "efficientnet_b4": (83.384, "torchvision docs: efficientnet_b4 IMAGENET1K_V1 acc@1"),
    "efficientnet_b5": (83.444, "torchvision docs: efficientnet_b5 IMAGENET1K_V1 acc@1"),
    "efficientnet_b6": (84.008, "torchvision docs: efficientnet_b6 IMAGENET1K_V1 acc@1"),
    "efficientnet_b7": (84.122, "torchvision docs: efficientnet_b7 IMAGENET1K_V1 acc@1"),
    # MobileNet paper (Howard et al. 2017), Table 6: width multiplier at 224.
    "mobilenet_v1": (70.6, "Howard et al. 2017, MobileNets, Table 6"),
    "mobilenet_v1_075": (68.4, "Howard et al. 2017, MobileNets, Table 6"),
    "mobilenet_v1_050": (63.7, "Howard et al. 2017, MobileNets, Table 6"),
    "mobilenet_v1_025": (50.6, "Howard et al. 2017, MobileNets, Table 6"),
    # GhostNet paper (Han et al. 2020), Table 7.
    "ghostnet_050": (66.2, "Han et al. 2020, GhostNet, Table 7"),
    "ghostnet": (73.9, "Han et al. 2020, GhostNet, Table 7"),
    "ghostnet_130": (75.7, "Han et al. 2020, GhostNet, Table 7"),
    # Inception-v4 paper (Szegedy et al. 2017), Table 2: single-crop top-1 error 20.0 / 19.9.
    "inception_v4": (80.0, "Szegedy et al. 2017, Inception-v4, Table 2 (single crop)"),
    "inception_resnet_v2": (80.1, "Szegedy et al. 2017, Inception-v4, Table 2 (single crop)"),
}
