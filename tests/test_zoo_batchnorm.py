"""BatchNorm eps and momentum of every zoo model, pinned against its reference implementation.

Each family's values are read off the reference source named in the comment next to it; a
model whose reference has no BatchNorm must have none. Shapes only: models are built on the
meta device.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import create_model, list_models

DEFAULT = (1e-5, 0.1)  # nn.BatchNorm2d's own defaults
NO_BN = None

# model name -> (eps, momentum) of every BatchNorm, or NO_BN.
BN_SETTINGS: dict[str, tuple[float, float] | None] = {
    # LeNet-5 (1998) and AlexNet (torchvision/models/alexnet.py) have no normalisation.
    "lenet5": NO_BN,
    "alexnet": NO_BN,
    # torchvision/models/vgg.py: nn.BatchNorm2d(v) with defaults in make_layers(batch_norm=True).
    **{f"vgg{d}": NO_BN for d in (11, 13, 16, 19)},
    **{f"vgg{d}_bn": DEFAULT for d in (11, 13, 16, 19)},
    # torchvision/models/googlenet.py and inception.py: BasicConv2d has
    # nn.BatchNorm2d(out_channels, eps=0.001), momentum left at 0.1.
    "googlenet": (1e-3, 0.1),
    "inception_v3": (1e-3, 0.1),
    # timm/models/inception_v4.py and inception_resnet_v2.py (from Cadene's port of TF-slim):
    # BasicConv2d has nn.BatchNorm2d(out_planes, eps=0.001), momentum 0.1.
    "inception_v4": (1e-3, 0.1),
    "inception_resnet_v2": (1e-3, 0.1),
    # torchvision/models/resnet.py: norm_layer = nn.BatchNorm2d (defaults); timm's
    # seresnet*/legacy_senet154 (timm/models/resnet.py, senet.py) likewise; the SENet-18
    # CIFAR code of the SENet text uses nn.BatchNorm2d(planes).
    **{
        n: DEFAULT
        for n in (
            "resnet18",
            "resnet34",
            "resnet50",
            "resnet50_v1",
            "resnet101",
            "resnet152",
            "resnext50_32x4d",
            "resnext101_32x4d",
            "se_resnext101_32x4d",  # timm/models/senet.py (legacy): nn.BatchNorm2d defaults
            "se_resnet50",
            "se_resnet50_v1",
            "se_resnet101",
            "se_resnet152",
            "se_resnext50_32x4d",
            "senet154",
            "senet18",
        )
    },
    # torchvision/models/densenet.py: nn.BatchNorm2d(num_features) with defaults.
    **{f"densenet{d}": DEFAULT for d in (121, 169, 201, 264)},
    # fb.resnet.torch models/preresnet.lua: SpatialBatchNormalization with Torch's defaults
    # (eps 1e-5, momentum 0.1), the pre-activation ResNet code of He et al.
    "preact_resnet18": DEFAULT,
    "preact_resnet50": DEFAULT,
    # torchvision/models/efficientnet.py: B0-B4 norm_layer = nn.BatchNorm2d (defaults);
    # efficientnet_b5/b6/b7 pass norm_layer=partial(nn.BatchNorm2d, eps=0.001, momentum=0.01).
    **{f"efficientnet_b{i}": DEFAULT for i in range(5)},
    **{f"efficientnet_b{i}": (1e-3, 0.01) for i in (5, 6, 7)},
    # timm/models/mobilenetv1.py (mobilenetv1_100): timm's BatchNormAct2d defaults (1e-5, 0.1).
    **{n: DEFAULT for n in ("mobilenet_v1", "mobilenet_v1_075", "mobilenet_v1_050")},
    "mobilenet_v1_025": DEFAULT,
    # torchvision/models/mobilenetv2.py: norm_layer = nn.BatchNorm2d (defaults).
    "mobilenet_v2": DEFAULT,
    # torchvision/models/mobilenetv3.py: norm_layer = partial(nn.BatchNorm2d, eps=0.001,
    # momentum=0.01) for both large and small.
    "mobilenet_v3_large": (1e-3, 0.01),
    "mobilenet_v3_small": (1e-3, 0.01),
    # torchvision/models/shufflenetv2.py: nn.BatchNorm2d(...) with defaults.
    "shufflenet_v2_x1_0": DEFAULT,
    # megvii-model/ShuffleNet-Series ShuffleNetV1/blocks.py: nn.BatchNorm2d with defaults.
    "shufflenet_v1_g3": DEFAULT,
    # huawei-noah ghostnet_pytorch/ghostnet.py and timm/models/ghostnet.py: nn.BatchNorm2d
    # with defaults.
    "ghostnet": DEFAULT,
    "ghostnet_050": DEFAULT,
    "ghostnet_130": DEFAULT,
    # timm/models/sknet.py (skresnext50_32x4d) and the SKNet text's code: defaults.
    "sknet50": DEFAULT,
    "sknet101": DEFAULT,
}


def test_every_model_has_a_pinned_setting() -> None:
    assert set(BN_SETTINGS) == set(list_models())


@pytest.mark.parametrize("name", sorted(BN_SETTINGS))
def test_batchnorm_eps_and_momentum_follow_the_reference(name: str) -> None:
    kwargs = {"aux_logits": True} if name in ("googlenet", "inception_v3") else {}
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    expected = BN_SETTINGS[name]
    if expected is NO_BN:
        assert bns == []
        return
    assert bns, name
    eps, momentum = expected
    wrong = {
        (m.eps, m.momentum)
        for m in bns
        if m.eps != pytest.approx(eps, rel=1e-9) or m.momentum != pytest.approx(momentum)
    }
    assert wrong == set(), f"{name}: expected eps={eps}, momentum={momentum}"
