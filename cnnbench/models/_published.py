"""Published ImageNet accuracies, cited, never measured, each tied to what it was measured on.

cnnbench has no weights and measures no accuracy. A :class:`CitedAccuracy` is one number as a
source reports it for its own trained weights, with what makes it comparable to a cost: the
metric (top-1 or top-5 accuracy, %), the weights it belongs to (a release tag such as
``torchvision IMAGENET1K_V2``, or ``paper``), the evaluation resolution and crop, the layout or
variant that was evaluated, and the source (paper and table, or package and metadata field).

``layout_matches`` says whether that layout is the one the zoo builds under the model's name:
the SENet release's SE-ResNet-50 puts the stride on the first 1x1 (its prototxt), so its number
is cited for ``se_resnet50_v1`` and listed, never chosen, for ``se_resnet50`` (stride on 3x3).

The chosen top-1 of a model (:func:`chosen_top1`, what ``cnnbench list`` and reports print):

1. only top-1 entries whose ``layout_matches``;
2. of those, the first (in the table's order) evaluated at the model's native resolution;
3. else the first of them at any resolution, which reports then name (``@288px``) and the
   card costs at that resolution;
4. else none.

The table's order is the preference: the paper's or the original authors' release first where
it is listed, then torchvision's IMAGENET1K_V1 weights (the original training recipe), then
IMAGENET1K_V2 (torchvision's later, stronger recipe).

Each value was read from its source: torchvision 0.28's ``Weights.meta["_metrics"]
["ImageNet-1K"]`` and the ``transforms`` preset (crop_size, resize_size, default resize 256),
the papers' tables, and the READMEs of the authors' releases named in ``source``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["CitedAccuracy", "CITED", "chosen_top1"]


@dataclass(frozen=True)
class CitedAccuracy:
    """One published accuracy: ``value`` in percent for ``metric`` ("top-1" or "top-5").

    ``resolution`` is the side of the evaluated square crop in pixels and ``crop`` how it was
    taken; ``weights`` is the release tag or "paper"; ``layout`` what was evaluated;
    ``layout_matches`` whether the zoo model of this name is that layout; ``source`` where the
    number is printed; ``note`` anything a reader comparing costs must know.
    """

    value: float
    metric: str
    weights: str
    resolution: int
    crop: str
    layout: str
    source: str
    layout_matches: bool = True
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def label(self) -> str:
        """Short provenance: ``80.608 top-1 (torchvision IMAGENET1K_V1, 288px)``."""
        return f"{self.value:g} {self.metric} ({self.weights}, {self.resolution}px)"


_TV_FIELD = "torchvision 0.28 {enum}.{tag}: meta['_metrics']['ImageNet-1K']['acc@{k}']"


def _tv(
    name: str,
    enum: str,
    tag: str,
    acc1: float,
    acc5: float,
    crop: int = 224,
    resize: int = 256,
    layout: str = "",
    note: str = "",
) -> tuple[CitedAccuracy, ...]:
    """torchvision weights: top-1 and top-5, single center crop after a resize."""
    how = f"center {crop} from resize {resize} (torchvision transforms preset)"
    where = layout or f"torchvision {name}"
    return tuple(
        CitedAccuracy(
            acc,
            f"top-{k}",
            f"torchvision {tag}",
            crop,
            how,
            where,
            _TV_FIELD.format(enum=enum, tag=tag, k=k),
            note=note,
        )
        for k, acc in ((1, acc1), (5, acc5))
    )


_V15 = "torchvision layout (v1.5: stride on the 3x3)"
_EFF_PORT = "weights ported from rwightman's timm training, not the paper's"
_MOBILENET_T6 = "Howard et al. 2017, MobileNets, Table 6"
_GHOST_T7 = "Han et al. 2020, GhostNet, Table 7"
_INC4_T2 = "Szegedy et al. 2017, Inception-v4, Table 2 (single crop, top-1 error {err})"
_SENET = (
    "hujie-frank/SENet README, Table 1 (single-crop validation error, top-{k} {err}), Caffe release"
)
_SENET_CROP = "center 224 from resize 256 (shorter side)"
_SENET_V1 = "SENet Caffe release: stride on the first 1x1 (SE-ResNet-50/101 prototxt)"


def _senet(
    top1_err: float, top5_err: float, layout: str, matches: bool, note: str = ""
) -> tuple[CitedAccuracy, ...]:
    return tuple(
        CitedAccuracy(
            round(100 - err, 2),
            f"top-{k}",
            "SENet Caffe release",
            224,
            _SENET_CROP,
            layout,
            _SENET.format(k=k, err=err),
            matches,
            note,
        )
        for k, err in ((1, top1_err), (5, top5_err))
    )


def _paper(
    value: float, source: str, layout: str, resolution: int = 224, crop: str = "single crop"
) -> tuple[CitedAccuracy, ...]:
    return (CitedAccuracy(value, "top-1", "paper", resolution, crop, layout, source),)


#: The original (MSRA Caffe) ResNet-50: cited for resnet50_v1, and listed for resnet50.
_RESNET50_V1_MSRA = CitedAccuracy(
    75.3,
    "top-1",
    "MSRA Caffe release",
    224,
    "center 224 from resize 256 (shorter side)",
    "original ResNet-50: stride on the first 1x1",
    "KaimingHe/deep-residual-networks README, 1-crop validation error 24.7%",
)

CITED: dict[str, tuple[CitedAccuracy, ...]] = {
    "alexnet": _tv("alexnet", "AlexNet_Weights", "IMAGENET1K_V1", 56.522, 79.066),
    "vgg11": _tv("vgg11", "VGG11_Weights", "IMAGENET1K_V1", 69.02, 88.628),
    "vgg11_bn": _tv("vgg11_bn", "VGG11_BN_Weights", "IMAGENET1K_V1", 70.37, 89.81),
    "vgg13": _tv("vgg13", "VGG13_Weights", "IMAGENET1K_V1", 69.928, 89.246),
    "vgg13_bn": _tv("vgg13_bn", "VGG13_BN_Weights", "IMAGENET1K_V1", 71.586, 90.374),
    "vgg16": _tv("vgg16", "VGG16_Weights", "IMAGENET1K_V1", 71.592, 90.382),
    "vgg16_bn": _tv("vgg16_bn", "VGG16_BN_Weights", "IMAGENET1K_V1", 73.36, 91.516),
    "vgg19": _tv("vgg19", "VGG19_Weights", "IMAGENET1K_V1", 72.376, 90.876),
    "vgg19_bn": _tv("vgg19_bn", "VGG19_BN_Weights", "IMAGENET1K_V1", 74.218, 91.842),
    "googlenet": _tv("googlenet", "GoogLeNet_Weights", "IMAGENET1K_V1", 69.778, 89.53),
    "inception_v3": _tv(
        "inception_v3", "Inception_V3_Weights", "IMAGENET1K_V1", 77.294, 93.45, 299, 342
    ),
    "resnet18": _tv("resnet18", "ResNet18_Weights", "IMAGENET1K_V1", 69.758, 89.078),
    "resnet34": _tv("resnet34", "ResNet34_Weights", "IMAGENET1K_V1", 73.314, 91.42),
    "resnet50": (
        *_tv("resnet50", "ResNet50_Weights", "IMAGENET1K_V1", 76.13, 92.862, layout=_V15),
        *_tv("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", 80.858, 95.434, 224, 232, _V15),
        replace(
            _RESNET50_V1_MSRA,
            layout_matches=False,
            note="belongs to resnet50_v1 (stride on the first 1x1)",
        ),
    ),
    "resnet50_v1": (
        _RESNET50_V1_MSRA,
        CitedAccuracy(
            92.2,
            "top-5",
            "MSRA Caffe release",
            224,
            "center 224 from resize 256 (shorter side)",
            "original ResNet-50: stride on the first 1x1",
            "KaimingHe/deep-residual-networks README, 1-crop validation error 7.8% (top-5)",
        ),
    ),
    "resnet101": (
        *_tv("resnet101", "ResNet101_Weights", "IMAGENET1K_V1", 77.374, 93.546, layout=_V15),
        *_tv("resnet101", "ResNet101_Weights", "IMAGENET1K_V2", 81.886, 95.78, 224, 232, _V15),
    ),
    "resnet152": (
        *_tv("resnet152", "ResNet152_Weights", "IMAGENET1K_V1", 78.312, 94.046, layout=_V15),
        *_tv("resnet152", "ResNet152_Weights", "IMAGENET1K_V2", 82.284, 96.002, 224, 232, _V15),
    ),
    "resnext50_32x4d": (
        *_tv("resnext50_32x4d", "ResNeXt50_32X4D_Weights", "IMAGENET1K_V1", 77.618, 93.698),
        *_tv(
            "resnext50_32x4d", "ResNeXt50_32X4D_Weights", "IMAGENET1K_V2", 81.198, 95.34, 224, 232
        ),
    ),
    "resnext101_32x4d": (
        CitedAccuracy(
            78.8,
            "top-1",
            "facebookresearch/ResNeXt release",
            224,
            "single crop 224",
            "ResNeXt-101 (32x4d), fb.resnet.torch code (stride on the 3x3)",
            "facebookresearch/ResNeXt README, single-crop (224x224) top-1 error 21.2",
        ),
    ),
    "densenet121": _tv("densenet121", "DenseNet121_Weights", "IMAGENET1K_V1", 74.434, 91.972),
    "densenet169": _tv("densenet169", "DenseNet169_Weights", "IMAGENET1K_V1", 75.6, 92.806),
    "densenet201": _tv("densenet201", "DenseNet201_Weights", "IMAGENET1K_V1", 76.896, 93.37),
    "mobilenet_v2": (
        *_tv("mobilenet_v2", "MobileNet_V2_Weights", "IMAGENET1K_V1", 71.878, 90.286),
        *_tv("mobilenet_v2", "MobileNet_V2_Weights", "IMAGENET1K_V2", 72.154, 90.822, 224, 232),
    ),
    "mobilenet_v3_large": (
        *_tv("mobilenet_v3_large", "MobileNet_V3_Large_Weights", "IMAGENET1K_V1", 74.042, 91.34),
        *_tv(
            "mobilenet_v3_large",
            "MobileNet_V3_Large_Weights",
            "IMAGENET1K_V2",
            75.274,
            92.566,
            224,
            232,
        ),
    ),
    "mobilenet_v3_small": _tv(
        "mobilenet_v3_small", "MobileNet_V3_Small_Weights", "IMAGENET1K_V1", 67.668, 87.402
    ),
    "shufflenet_v2_x1_0": _tv(
        "shufflenet_v2_x1_0", "ShuffleNet_V2_X1_0_Weights", "IMAGENET1K_V1", 69.362, 88.316
    ),
    "shufflenet_v1_g3": (
        CitedAccuracy(
            67.8,
            "top-1",
            "megvii-model ShuffleNet-Series release",
            224,
            "224 input (crop procedure not stated in the README)",
            "ShuffleNetV1 1.0x, group=3 (README: 138 MFLOPs, 1.9M params)",
            "megvii-model/ShuffleNet-Series ShuffleNetV1/README.md, Results: top-1 error 32.2",
        ),
        CitedAccuracy(
            87.7,
            "top-5",
            "megvii-model ShuffleNet-Series release",
            224,
            "224 input (crop procedure not stated in the README)",
            "ShuffleNetV1 1.0x, group=3 (README: 138 MFLOPs, 1.9M params)",
            "megvii-model/ShuffleNet-Series ShuffleNetV1/README.md, Results: top-5 error 12.3",
        ),
    ),
    "efficientnet_b0": _tv(
        "efficientnet_b0",
        "EfficientNet_B0_Weights",
        "IMAGENET1K_V1",
        77.692,
        93.532,
        note=_EFF_PORT,
    ),
    "efficientnet_b1": (
        *_tv(
            "efficientnet_b1",
            "EfficientNet_B1_Weights",
            "IMAGENET1K_V1",
            78.642,
            94.186,
            240,
            256,
            note=_EFF_PORT,
        ),
        *_tv(
            "efficientnet_b1", "EfficientNet_B1_Weights", "IMAGENET1K_V2", 79.838, 94.934, 240, 255
        ),
    ),
    "efficientnet_b2": _tv(
        "efficientnet_b2",
        "EfficientNet_B2_Weights",
        "IMAGENET1K_V1",
        80.608,
        95.31,
        288,
        288,
        note=_EFF_PORT + "; evaluated at 288 px, above the native 260",
    ),
    "efficientnet_b3": _tv(
        "efficientnet_b3",
        "EfficientNet_B3_Weights",
        "IMAGENET1K_V1",
        82.008,
        96.054,
        300,
        320,
        note=_EFF_PORT,
    ),
    "efficientnet_b4": _tv(
        "efficientnet_b4",
        "EfficientNet_B4_Weights",
        "IMAGENET1K_V1",
        83.384,
        96.594,
        380,
        384,
        note=_EFF_PORT,
    ),
    "efficientnet_b5": _tv(
        "efficientnet_b5",
        "EfficientNet_B5_Weights",
        "IMAGENET1K_V1",
        83.444,
        96.628,
        456,
        456,
        note="weights ported by lukemelas from the TensorFlow release",
    ),
    "efficientnet_b6": _tv(
        "efficientnet_b6",
        "EfficientNet_B6_Weights",
        "IMAGENET1K_V1",
        84.008,
        96.916,
        528,
        528,
        note="weights ported by lukemelas from the TensorFlow release",
    ),
    "efficientnet_b7": _tv(
        "efficientnet_b7",
        "EfficientNet_B7_Weights",
        "IMAGENET1K_V1",
        84.122,
        96.908,
        600,
        600,
        note="weights ported by lukemelas from the TensorFlow release",
    ),
    "mobilenet_v1": _paper(70.6, _MOBILENET_T6, "MobileNet 1.0, 224"),
    "mobilenet_v1_075": _paper(68.4, _MOBILENET_T6, "MobileNet 0.75, 224"),
    "mobilenet_v1_050": _paper(63.7, _MOBILENET_T6, "MobileNet 0.5, 224"),
    "mobilenet_v1_025": _paper(50.6, _MOBILENET_T6, "MobileNet 0.25, 224"),
    "ghostnet_050": _paper(66.2, _GHOST_T7, "GhostNet 0.5x"),
    "ghostnet": _paper(73.9, _GHOST_T7, "GhostNet 1.0x"),
    "ghostnet_130": _paper(75.7, _GHOST_T7, "GhostNet 1.3x"),
    "inception_v4": _paper(80.0, _INC4_T2.format(err=20.0), "Inception-v4", 299),
    "inception_resnet_v2": _paper(80.1, _INC4_T2.format(err=19.9), "Inception-ResNet-v2", 299),
    # SENet release (hujie-frank/SENet): SE-ResNets in the original layout.
    "se_resnet50_v1": _senet(22.37, 6.36, _SENET_V1, True),
    "se_resnet50": _senet(
        22.37, 6.36, _SENET_V1, False, "belongs to se_resnet50_v1 (stride on the first 1x1)"
    ),
    "se_resnet101": _senet(
        21.75, 5.72, _SENET_V1, False, "the zoo's se_resnet101 is v1.5 (stride on the 3x3)"
    ),
    "se_resnet152": _senet(
        21.34,
        5.54,
        "SENet Caffe release (stride placement of the 152 prototxt not read here)",
        False,
        "the zoo's se_resnet152 is v1.5 (stride on the 3x3); the release's layout is "
        "assumed to be that of its SE-ResNet-50/101",
    ),
    "se_resnext50_32x4d": _senet(
        20.97,
        5.54,
        "SENet Caffe release SE-ResNeXt-50 (32x4d)",
        True,
        "stride placement of the release's prototxt not read here",
    ),
    "se_resnext101_32x4d": _senet(19.81, 4.96, "SENet Caffe release SE-ResNeXt-101 (32x4d)", True),
    "senet154": _senet(18.68, 4.47, "SENet-154 (ILSVRC 2017 entry model)", True),
    # SKNet release (implus/SKNet): single crop, 224 and 320.
    "sknet50": tuple(
        CitedAccuracy(
            round(100 - err, 2),
            "top-1",
            "SKNet Caffe release",
            res,
            f"center {res} from resize 256 (shorter side)",
            "SKNet-50 (SK-ResNeXt-50 32x4d)",
            f"implus/SKNet README, Table 2, top-1 error {err} at {res}x{res}",
        )
        for err, res in ((20.79, 224), (19.32, 320))
    ),
    "sknet101": tuple(
        CitedAccuracy(
            round(100 - err, 2),
            "top-1",
            "SKNet Caffe release",
            res,
            f"center {res} from resize 256 (shorter side)",
            "SKNet-101",
            f"implus/SKNet README, Table 2, top-1 error {err} at {res}x{res}",
        )
        for err, res in ((20.19, 224), (18.4, 320))
    ),
}


def chosen_top1(cited: Sequence[CitedAccuracy], native_resolution: int) -> CitedAccuracy | None:
    """The top-1 a report prints among a model's ``cited`` values (module docstring: the
    rule), or None."""
    candidates = [c for c in cited if c.metric == "top-1" and c.layout_matches]
    for c in candidates:
        if c.resolution == native_resolution:
            return c
    return candidates[0] if candidates else None
