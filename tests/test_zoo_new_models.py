"""The architectures of issue 14.3: Inception-v4, Inception-ResNet-v2 (+ SE), ResNeXt-101 32x4d,
the legacy SE-ResNeXt-101 32x4d, DenseNet-264, GhostNet 0.5x / 1.3x, MobileNet V1 width
multipliers (+ SE), ShuffleNet V1 g=3 (+ SE) and the ImageNet pre-activation ResNets.

Exact parameter counts of every default configuration are checked in test_zoo.py against
tests/reference_counts.py (published counts or the hand formulas there); this file checks the
hand formulas themselves against published figures of sibling models, the structure, and the SE
overheads against the SENet paper's mobile table (seed_claims.md, P1 and P2). Shapes only: models
are built on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from cnnbench.models import SqueezeExcite, create_model, get_model_info
from cnnbench.models.resnet import PreActBasicBlock, PreActBottleneck
from cnnbench.models.shufflenet import ShuffleV1Unit
from cnnbench.static import profile_static
from tests import reference_counts as ref


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _macs(model: nn.Module) -> int:
    return profile_static(model, meta=True, train_memory=False).macs


def _se_blocks(model: nn.Module) -> list[SqueezeExcite]:
    return [m for m in model.modules() if isinstance(m, SqueezeExcite)]


# --- the hand formulas reproduce published figures of their sibling models --------------------


def test_resnet_mac_formula_reproduces_torchvision() -> None:
    assert round(ref.resnet_macs((3, 4, 6, 3)) / 1e9, 3) == 4.089  # resnet50
    assert round(ref.resnet_macs((2, 2, 2, 2), basic=True) / 1e9, 3) == 1.814  # resnet18
    assert round(ref.resnet_macs((3, 4, 6, 3), groups=32, width_per_group=4) / 1e9, 3) == 4.230
    assert round(ref.resnet_macs((3, 4, 6, 3), se=16) / 1e9, 3) == 4.092  # timm seresnet50


def test_densenet_mac_formula_reproduces_torchvision() -> None:
    assert round(ref.densenet_macs((6, 12, 24, 16)) / 1e9, 3) == 2.834
    assert round(ref.densenet_macs((6, 12, 32, 32)) / 1e9, 3) == 3.360
    assert round(ref.densenet_macs((6, 12, 48, 32)) / 1e9, 3) == 4.291


def test_ghostnet_mac_formula_reproduces_the_paper() -> None:
    assert round(ref.ghostnet_macs(1.0) / 1e9, 3) == 0.141  # GhostNet 1.0x: 141 MFLOPs
    # GhostNet paper Table 7: 0.5x 42 M and 1.3x 226 M FLOPs (multiply-adds), rounded to 1 M.
    assert abs(ref.ghostnet_macs(0.5) / 1e6 - 42) < 1.0
    assert abs(ref.ghostnet_macs(1.3) / 1e6 - 226) < 1.5


def test_mobilenet_v1_param_formula() -> None:
    """Depthwise-separable MobileNet V1 with BatchNorm, width w, channels c_i = w * (32, 64, 128,
    128, 256, 256, 512 x 6, 1024, 1024):
        params = 27 c_0 + 2 c_0 + sum_i (9 c_{i-1} + 2 c_{i-1} + c_{i-1} c_i + 2 c_i)
                 + 1000 c_13 + 1000
    (stem conv + BN; per block depthwise 3x3 + BN and pointwise 1x1 + BN; classifier)."""
    assert ref.mobilenet_v1_params(1.0) == 4_231_976  # timm mobilenetv1_100
    # MobileNet paper Table 6: 4.2 M, 2.6 M, 1.3 M, 0.5 M parameters.
    for width, paper in ((1.0, 4.2), (0.75, 2.6), (0.5, 1.3), (0.25, 0.5)):
        assert round(ref.mobilenet_v1_params(width) / 1e6, 1) == paper


@pytest.mark.parametrize(
    ("name", "paper_mmacs"),
    [("mobilenet_v1", 569), ("mobilenet_v1_075", 325), ("mobilenet_v1_050", 149)]
    + [("mobilenet_v1_025", 41)],
)
def test_mobilenet_v1_widths_match_the_paper(name: str, paper_mmacs: int) -> None:
    model = _meta(name)
    assert round(_macs(model) / 1e6) == paper_mmacs  # Table 6, rounded to 1 M mult-adds
    width = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75}.get(name)
    width = width or {"mobilenet_v1_050": 0.5, "mobilenet_v1_025": 0.25}[name]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs[-1].out_channels == int(1024 * width)


# --- ShuffleNet V1 --------------------------------------------------------------------------


def test_shufflenet_v1_macs_within_2_percent_of_the_paper() -> None:
    # ShuffleNet paper, Table 2: ShuffleNet 1x (g = 3) 140 MFLOPs, its FLOPs being multiply-adds.
    macs = _meta("shufflenet_v1_g3").model_info.macs
    assert macs == _macs(_meta("shufflenet_v1_g3")) == ref.shufflenet_v1_macs()
    assert abs(macs / 140e6 - 1) <= 0.02


def test_shufflenet_v1_structure() -> None:
    model = _meta("shufflenet_v1_g3")
    assert [len(getattr(model, f"stage{i}")) for i in (1, 2, 3)] == [4, 8, 4]
    assert [s.out_channels for s in model.stages()] == [24, 240, 480, 960, 1000]
    units = [u for i in (1, 2, 3) for u in getattr(model, f"stage{i}")]
    assert all(isinstance(u, ShuffleV1Unit) for u in units)
    # No group convolution on the first pointwise layer of stage 2 (24 input channels).
    assert units[0].gconv1[0].groups == 1
    assert all(u.gconv1[0].groups == 3 and u.gconv2[0].groups == 3 for u in units[1:])
    assert all(u.dwconv[0].groups == u.dwconv[0].in_channels for u in units)
    firsts = [getattr(model, f"stage{i}")[0] for i in (1, 2, 3)]
    assert [u.gconv2[0].out_channels for u in firsts] == [240 - 24, 480 - 240, 960 - 480]


def test_shufflenet_v1_units_merge_as_in_the_paper() -> None:
    unit = ShuffleV1Unit(24, 48, 1 + 1, groups=3, first_groups=1).eval()
    x = torch.randn(1, 24, 8, 8)
    out = unit(x)
    assert out.shape == (1, 48, 4, 4)
    # Stride 2: the first 24 channels are the 3x3/2 average pool of the input, untouched.
    pooled = nn.functional.avg_pool2d(x, 3, stride=2, padding=1)
    torch.testing.assert_close(out[:, :24], pooled)
    same = ShuffleV1Unit(48, 48, 1, groups=3).eval()
    with torch.no_grad():
        nn.init.zeros_(same.gconv2[1].weight)
        nn.init.zeros_(same.gconv2[1].bias)
        y = torch.randn(1, 48, 4, 4)
        torch.testing.assert_close(same(y), torch.relu(y))  # stride 1: ReLU(x + branch)


# --- SE overheads against the SENet paper's mobile table (seed_claims.md P1, P2) --------------
# The paper's figures are rounded (params to 0.1 M, MFLOPs to 1 M), so a difference of two of
# them is known to +-0.1 M and +-1 M. The paper's "FLOPs" of SE blocks include the channel-wise
# scaling multiplies (C*H*W per block); cnnbench's MACs (conv / linear / matmul) do not, so the
# MAC overhead is compared with the paper's only after adding those multiplies (counted by hand).


def test_se_mobilenet_overheads_match_p1() -> None:
    plain, se = _meta("mobilenet_v1"), _meta("mobilenet_v1", se_reduction=16)
    assert len(_se_blocks(se)) == 13
    assert all(m.reduced_channels == m.channels // 16 for m in _se_blocks(se))
    extra = _params(se) - _params(plain)
    assert extra == ref.mobilenet_v1_se_params() == 486_068
    assert round(_params(plain) / 1e6, 1) == 4.2 and round(_params(se) / 1e6, 1) == 4.7
    assert abs(extra / 1e6 - (4.7 - 4.2)) <= 0.1
    mac_extra = _macs(se) - _macs(plain)
    assert mac_extra == 2 * sum(c * (c // 16) for c in ref.mobilenet_v1_channels(1.0)[1:])
    paper_extra = (572 - 569) * 1e6
    with_gate = mac_extra + ref.mobilenet_v1_se_gate_muls()
    assert abs(with_gate - paper_extra) <= 1e6  # 3.19 M against 3 +- 1 M
    assert mac_extra < 1e6  # the SE fc layers alone cost under 0.2% of MobileNet's MACs


def test_se_shufflenet_overheads_match_p2() -> None:
    plain, se = _meta("shufflenet_v1_g3"), _meta("shufflenet_v1_g3", se_reduction=16)
    assert len(_se_blocks(se)) == 16
    extra = _params(se) - _params(plain)
    assert extra == ref.shufflenet_v1_params(se=16) - ref.shufflenet_v1_params() == 618_805
    assert abs(extra / 1e6 - (2.4 - 1.8)) <= 0.1
    # The paper's 1.8 M / 2.4 M sit 0.07 M / 0.08 M below these counts (1.87 M / 2.48 M), within
    # one unit of their last digit: truncated, or counted without BN / classifier bias.
    for count, paper in ((_params(plain), 1.8), (_params(se), 2.4)):
        assert 0 <= count / 1e6 - paper < 0.1
    mac_extra = _macs(se) - _macs(plain)
    with_gate = mac_extra + ref.shufflenet_v1_se_gate_muls()
    assert abs(with_gate - (142 - 140) * 1e6) <= 1e6  # 2.21 M against 2 +- 1 M
    # SE sits on the branch, before the merge: its width is the branch's.
    first = se.stage1[0]
    assert first.se.channels == first.gconv2[0].out_channels == 216


def test_se_inception_resnet_v2() -> None:
    plain, se = _meta("inception_resnet_v2"), _meta("inception_resnet_v2", se_reduction=16)
    blocks = _se_blocks(se)
    assert [m.channels for m in blocks] == [320] * 10 + [1088] * 20 + [2080] * 10
    assert _params(se) - _params(plain) == ref.IRV2_SE_PARAMS == 8_543_980
    # Compute: two 1x1 convs on a 1x1 map per block, 2 C^2 / 16 MACs: under 0.1% of the net.
    mac_extra = _macs(se) - _macs(plain)
    assert mac_extra == 2 * (10 * 320 * 20 + 20 * 1088 * 68 + 10 * 2080 * 130)
    assert mac_extra / _macs(plain) < 1e-3
    only_last = _meta("inception_resnet_v2", se_reduction=16, se_stages=(3,))
    assert len(_se_blocks(only_last)) == 10
    with pytest.raises(ValueError, match="se_stages"):
        _meta("inception_resnet_v2", se_reduction=16, se_stages=(4,))


@pytest.mark.parametrize("name", ["mobilenet_v1", "shufflenet_v1_g3", "inception_resnet_v2"])
def test_se_switch_metadata(name: str) -> None:
    assert not get_model_info(name).has_se
    info = _meta(name, se_reduction=16).model_info
    assert info.has_se and info.se_reduction == 16 and info.params is None
    assert _params(_meta(name, se_reduction=16, se_stages=())) == get_model_info(name).params


def test_se_residual_placement_in_inception_resnet_blocks() -> None:
    from cnnbench.models.inception_v4 import Block35

    block = Block35(se_reduction=16).eval()
    with torch.no_grad():
        block.se.fc2.bias.fill_(-100.0)  # gate ~ 0: only the identity survives
        x = torch.randn(1, 320, 5, 5)
        torch.testing.assert_close(block(x), torch.relu(x), atol=1e-5, rtol=0)


# --- Inception-v4 / Inception-ResNet-v2 ------------------------------------------------------


def test_inception_v4_and_resnet_v2_layout() -> None:
    v4 = _meta("inception_v4")
    assert [s.blocks for s in v4.stages()[1:-1]] == [4, 8, 4]
    assert [s.out_channels for s in v4.stages()] == [384, 384, 1024, 1536, 1000]
    irv2 = _meta("inception_resnet_v2")
    assert [s.blocks for s in irv2.stages()[1:-1]] == [10, 21, 11]
    assert [s.out_channels for s in irv2.stages()] == [320, 320, 1088, 2080, 1000]
    for model in (v4, irv2):
        assert model.model_info.input_size == (3, 299, 299)
        pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d)]
        assert pools and all(p.count_include_pad is False for p in pools)
    scales = [b.scale for i in (1, 2, 3) for b in getattr(irv2, f"stage{i}") if hasattr(b, "scale")]
    assert scales == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    assert isinstance(irv2.stage3[-1].act, nn.Identity)  # the final Block8 has no ReLU


def test_inception_v4_gmacs_match_timm() -> None:
    # timm model cards: inception_v4 12.3 GMACs, inception_resnet_v2 13.2 GMACs (one decimal).
    assert round(_meta("inception_v4").model_info.macs / 1e9, 1) == 12.3
    assert round(_meta("inception_resnet_v2").model_info.macs / 1e9, 1) == 13.2


# --- ResNeXt-101 / legacy SE-ResNeXt-101 / DenseNet-264 / GhostNet widths ---------------------


def test_se_resnext101_legacy_layout() -> None:
    model = _meta("se_resnext101_32x4d")
    pool = model.stem[-1]
    assert isinstance(pool, nn.MaxPool2d) and pool.padding == 0 and pool.ceil_mode
    first = model.stage2[0]
    assert first.conv1.stride == (1, 1) and first.conv2.stride == (2, 2)  # stride on the 3x3
    assert first.downsample[0].kernel_size == (1, 1) and first.downsample[0].padding == (0, 0)
    assert len(_se_blocks(model)) == 3 + 4 + 23 + 3
    # Same weights as ResNeXt-101 32x4d plus one SE (r = 16) per block.
    plain = _params(_meta("resnext101_32x4d"))
    extra = sum(n * ref.se_params(c) for c, n in ((256, 3), (512, 4), (1024, 23), (2048, 3)))
    assert _params(model) == plain + extra == 48_955_416
    assert _params(_meta("resnext101_32x4d", se_reduction=16)) == _params(model)


def test_densenet264_blocks() -> None:
    model = _meta("densenet264")
    assert [s.blocks for s in model.stages()[1:-1]] == [6, 12, 64, 48]
    assert [s.out_channels for s in model.stages()] == [
        64,
        128,
        256,
        1152,
        2688,
        1000,
    ]  # 256 + 64 * 32 = 2304 -> 1152; + 48 * 32


@pytest.mark.parametrize(("name", "width"), [("ghostnet_050", 0.5), ("ghostnet_130", 1.3)])
def test_ghostnet_widths_are_the_width_switch(name: str, width: float) -> None:
    assert _params(_meta(name)) == _params(_meta("ghostnet", width=width))
    assert _meta(name).model_info.se_stages == get_model_info("ghostnet").se_stages


# --- Pre-activation ResNets -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "plain", "expected"),
    [
        ("preact_resnet18", "resnet18", ref.PREACT_RESNET18),
        ("preact_resnet50", "resnet50", ref.PREACT_RESNET50),
    ],
)
def test_preact_resnet_counts_and_macs(name: str, plain: str, expected: int) -> None:
    model = _meta(name)
    assert _params(model) == expected
    # Same convolutions and classifier as the post-activation network: weights differ only by
    # the BatchNorms (see reference_counts.py), MACs not at all.
    conv = [m.weight.shape for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    base = _meta(plain)
    assert sorted(conv) == sorted(
        m.weight.shape for m in base.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    )
    assert model.model_info.macs == base.model_info.macs


def test_preact_structure() -> None:
    model = _meta("preact_resnet50")
    blocks = [b for i in (1, 2, 3, 4) for b in getattr(model, f"stage{i}")]
    assert all(isinstance(b, PreActBottleneck) for b in blocks)
    assert [b.preact for b in blocks[:4]] == ["none", "residual", "residual", "both"]
    assert isinstance(blocks[0].pre, nn.Identity)
    for b in blocks:
        if b.shortcut is not None:
            assert isinstance(b.shortcut, nn.Conv2d) and b.shortcut.bias is None  # no BN
        last = list(b.children())[-1]
        assert isinstance(last, nn.Conv2d)  # the block ends in a conv, not a BN
    assert isinstance(model.head[0], nn.BatchNorm2d) and model.head[0].num_features == 2048
    r18 = _meta("preact_resnet18")
    assert all(isinstance(b, PreActBasicBlock) for b in r18.stage1)


def test_preact_identity_block_adds_the_raw_input() -> None:
    block = PreActBasicBlock(8, 8).eval()
    with torch.no_grad():
        nn.init.zeros_(block.conv2.weight)  # residual branch -> 0
        x = torch.randn(1, 8, 5, 5)
        torch.testing.assert_close(block(x), x)  # no ReLU after the addition


def test_preact_projection_sees_the_preactivated_input() -> None:
    block = PreActBasicBlock(8, 16, stride=2, preact="both").eval()
    with torch.no_grad():
        bn = block.pre[0]
        nn.init.zeros_(bn.weight)
        nn.init.zeros_(bn.bias)  # pre-activation -> 0: shortcut and residual both see zeros
        out = block(torch.randn(1, 8, 6, 6))
    residual = block.residual(torch.zeros(1, 8, 6, 6))
    torch.testing.assert_close(out, residual)
    assert math.prod(out.shape) == 16 * 3 * 3
