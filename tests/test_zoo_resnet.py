"""ResNet / ResNeXt / SE-ResNet / SENet family: the SE switch, hand-computed SE costs, the
stride_in_1x1 layout, SENet-154 and the pre-activation CIFAR SENet-18."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import SqueezeExcite, create_model, list_models
from cnnbench.models.resnet import Bottleneck, PreActSEBlock

RESNET50_STAGES = [(256, 3), (512, 4), (1024, 6), (2048, 3)]  # (block output channels C, blocks)
FAMILY = sorted({*list_models("resnet*"), *list_models("resnext*"), *list_models("se*")})


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(name: str, **kwargs: object) -> int:
    return sum(p.numel() for p in _meta(name, **kwargs).parameters())


def _se_params(c: int, r: int) -> int:
    """One SE block: conv C->C/r and C/r->C, both with bias."""
    return 2 * c * (c // r) + c // r + c


def _conv_macs(model: nn.Module, size: int = 224) -> int:
    total = 0

    def hook(mod: nn.Module, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total += out[0].numel() * mod.in_channels // mod.groups * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    model.eval()(torch.empty(1, 3, size, size, device="meta"))
    for h in handles:
        h.remove()
    return total


# --- the SE switch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plain", "se"),
    [
        ("resnet50", "se_resnet50"),
        ("resnet101", "se_resnet101"),
        ("resnet152", "se_resnet152"),
        ("resnext50_32x4d", "se_resnext50_32x4d"),
        ("resnet50_v1", "se_resnet50_v1"),
    ],
)
def test_se_switch_turns_plain_into_se_and_back(plain: str, se: str) -> None:
    assert _params(plain, se_reduction=16) == _params(se)
    assert _params(se, se_reduction=None) == _params(plain)
    assert _params(se, se_stages=()) == _params(plain)
    assert _params(se) > _params(plain)


def test_se_switch_metadata_follows_the_keywords() -> None:
    assert _meta("resnet50", se_reduction=16).model_info.has_se
    assert _meta("resnet50", se_reduction=16).model_info.se_stages == (1, 2, 3, 4)
    assert not _meta("resnet50").model_info.has_se
    assert _meta("se_resnet50", se_reduction=8).model_info.se_reduction == 8
    assert _meta("se_resnet50", se_stages=(1, 2, 3)).model_info.se_stages == (1, 2, 3)


@pytest.mark.parametrize("r", [16, 8])
def test_se_param_delta_is_the_hand_computed_sum(r: int) -> None:
    expected = sum(n * _se_params(c, r) for c, n in RESNET50_STAGES)
    assert _params("se_resnet50", se_reduction=r) - _params("resnet50") == expected
    assert _params("resnet50", se_reduction=r) - _params("resnet50") == expected
    if r == 16:
        assert expected == 28_088_024 - 25_557_032


def test_se_reduction_8_places_c_over_8_in_every_block() -> None:
    model = _meta("se_resnet50", se_reduction=8)
    ses = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert len(ses) == 16
    assert all(m.reduced_channels == m.channels // 8 for m in ses)


def test_basic_block_supports_se() -> None:
    basic = [(64, 2), (128, 2), (256, 2), (512, 2)]
    expected = sum(n * _se_params(c, 16) for c, n in basic)
    assert _params("resnet18", se_reduction=16) - _params("resnet18") == expected
    model = _meta("resnet18", se_reduction=16)
    assert sum(isinstance(m, SqueezeExcite) for m in model.modules()) == 8


def test_se_stages_without_stage4_removes_exactly_the_stage4_se() -> None:
    full = _params("se_resnet50")
    no_last = _params("se_resnet50", se_stages=(1, 2, 3))
    assert full - no_last == 3 * _se_params(2048, 16)
    model = _meta("se_resnet50", se_stages=(1, 2, 3))
    assert not any(isinstance(m, SqueezeExcite) for m in model.stage4.modules())
    for stage in (model.stage1, model.stage2, model.stage3):
        assert all(isinstance(block.se, SqueezeExcite) for block in stage)
    # The SENet paper: the final stage holds most of the added weights.
    share = 3 * _se_params(2048, 16) / (full - _params("resnet50"))
    assert 0.6 < share < 0.65


@pytest.mark.parametrize("bad", [(0,), (5,), (1, 2, 3, 4, 5)])
def test_invalid_se_stages_raise(bad: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="se_stages"):
        _meta("se_resnet50", se_stages=bad)


def test_se_sits_on_the_residual_branch_before_the_addition() -> None:
    block = Bottleneck(64, 16, se_reduction=16).eval()  # 64 -> 64, identity shortcut
    assert isinstance(block.se, SqueezeExcite) and block.se.channels == 64
    with torch.no_grad():
        block.se.fc2.bias.fill_(-100.0)  # gate ~ 0: the residual branch vanishes
        x = torch.randn(2, 64, 8, 8)
        assert torch.allclose(block(x), torch.relu(x), atol=1e-6)


# --- stride placement (v1 vs v1.5) --------------------------------------------------------------


def test_stride_in_1x1_same_params_different_stride_placement() -> None:
    v15 = _meta("resnet50")
    v1 = _meta("resnet50", stride_in_1x1=True)
    assert sum(p.numel() for p in v1.parameters()) == sum(p.numel() for p in v15.parameters())
    assert _params("resnet50_v1") == _params("resnet50")
    assert _params("se_resnet50_v1") == _params("se_resnet50")
    for name, first in (("v1", v1.stage2[0]), ("v1_registered", _meta("resnet50_v1").stage2[0])):
        assert first.conv1.stride == (2, 2), name
        assert first.conv2.stride == (1, 1), name
    assert v15.stage2[0].conv1.stride == (1, 1)
    assert v15.stage2[0].conv2.stride == (2, 2)
    assert _meta("se_resnet50_v1").stage3[0].conv1.stride == (2, 2)


def test_stride_in_1x1_changes_compute_not_weights() -> None:
    v15 = _conv_macs(_meta("resnet50"))
    v1 = _conv_macs(_meta("resnet50_v1"))
    assert round(v15 / 1e9, 3) == 4.087  # convs only; + 2.048 M of the linear = 4.089 G
    assert round(v1 / 1e9, 3) == 3.856
    # The trap: an SE model on v1 looks cheaper than a plain model on v1.5.
    assert _conv_macs(_meta("se_resnet50_v1")) < v15


# --- structure -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FAMILY)
def test_no_conv_bias_before_batchnorm(name: str) -> None:
    model = _meta(name)
    se_convs = {id(c) for m in model.modules() if isinstance(m, SqueezeExcite) for c in m.modules()}
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs
    for conv in convs:
        if id(conv) in se_convs:
            assert conv.bias is not None  # SE convs carry biases (reference counts)
        else:
            assert conv.bias is None


@pytest.mark.parametrize(
    ("name", "blocks"),
    [
        ("resnet18", [2, 2, 2, 2]),
        ("resnet34", [3, 4, 6, 3]),
        ("resnet50", [3, 4, 6, 3]),
        ("resnet101", [3, 4, 23, 3]),
        ("resnet152", [3, 8, 36, 3]),
        ("senet154", [3, 8, 36, 3]),
        ("senet18", [2, 2, 2, 2]),
    ],
)
def test_blocks_per_stage(name: str, blocks: list[int]) -> None:
    stages = _meta(name).stages()
    assert [s.blocks for s in stages[1:-1]] == blocks


def test_resnet50_stage_channels() -> None:
    stages = _meta("resnet50").stages()
    assert [s.out_channels for s in stages] == [64, 256, 512, 1024, 2048, 1000]


def test_resnext_grouped_width() -> None:
    conv2 = _meta("resnext50_32x4d").stage1[0].conv2
    assert (conv2.groups, conv2.in_channels, conv2.out_channels) == (32, 128, 128)


def test_senet154_structure() -> None:
    model = _meta("senet154")
    convs = [m for m in model.stem.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (3, 64, (3, 3), (2, 2)),
        (64, 64, (3, 3), (1, 1)),
        (64, 128, (3, 3), (1, 1)),
    ]
    for i, planes in enumerate((64, 128, 256, 512), start=1):
        first = getattr(model, f"stage{i}")[0]
        assert first.conv1.out_channels == planes * 2  # halved first 1x1
        assert first.conv2.out_channels == planes * 4 and first.conv2.groups == 64
        assert first.se.reduced_channels == planes * 4 // 16
        proj = first.downsample[0]
        assert proj.kernel_size == ((1, 1) if i == 1 else (3, 3))
        assert proj.stride == ((1, 1) if i == 1 else (2, 2))
    dropouts = [m for m in model.head.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 1 and dropouts[0].p == 0.2
    assert _params("senet154", se_reduction=None) < _params("senet154")


# --- senet18 (pre-activation, CIFAR) ---------------------------------------------------------


def test_senet18_output_at_32x32() -> None:
    model = create_model("senet18").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert model.model_info.input_size == (3, 32, 32)


def test_senet18_has_no_relu_after_the_addition() -> None:
    model = create_model("senet18").eval()
    seen: list[torch.Tensor] = []
    model.stage2[1].register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(torch.randn(2, 3, 32, 32))
    assert seen[0].min() < 0  # a ReLU after the add could never give a negative value
    block = PreActSEBlock(64, 64).eval()
    with torch.no_grad():
        assert block(torch.randn(2, 64, 8, 8)).min() < 0


def test_senet18_shortcut_is_a_plain_1x1_on_the_preactivation() -> None:
    model = _meta("senet18")
    assert model.stage1[0].shortcut is None  # 64 -> 64, stride 1: identity
    for i in (2, 3, 4):
        sc = getattr(model, f"stage{i}")[0].shortcut
        assert isinstance(sc, nn.Conv2d) and sc.kernel_size == (1, 1) and sc.stride == (2, 2)
        assert sc.bias is None
    # Projection sees relu(bn1(x)): with bn1 gated to zero output, the shortcut sees zeros.
    block = PreActSEBlock(8, 16, stride=2, se_reduction=None).eval()
    with torch.no_grad():
        block.bn1.weight.zero_()
        block.bn1.bias.zero_()
        assert torch.count_nonzero(block(torch.randn(1, 8, 8, 8))) == 0


def test_senet18_se_switch() -> None:
    expected = 2 * sum(_se_params(c, 16) for c in (64, 128, 256, 512))
    assert _params("senet18") - _params("senet18", se_reduction=None) == expected
    assert _params("senet18") == 11_260_354
