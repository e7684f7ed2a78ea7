"""Family pins for EfficientNet, MobileNet V1/V2/V3 and ShuffleNet V2: residual connections,
stochastic depth, SE widths and gates, the SE switch, channel shuffle, hand-computed counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import SqueezeExcite, create_model
from cnnbench.models.efficientnet import MBConv, StochasticDepth
from cnnbench.models.mobilenet import InvertedResidual
from cnnbench.models.shufflenet import ShuffleUnit, channel_shuffle


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _zero_last_bn(block: nn.Module) -> None:
    """Make the residual branch output exactly zero in eval mode."""
    last_bn = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    nn.init.zeros_(last_bn.weight)
    nn.init.zeros_(last_bn.bias)


# --- EfficientNet -------------------------------------------------------------------------------


def test_mbconv_keeps_its_residual_connection() -> None:
    block = MBConv(16, 16, 3, stride=1, expand_ratio=6, drop_path=0.2).eval()
    _zero_last_bn(block)
    x = torch.randn(2, 16, 8, 8)
    assert block.use_residual
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


@pytest.mark.parametrize(("cin", "cout", "stride"), [(16, 24, 1), (16, 16, 2)])
def test_mbconv_has_no_residual_when_shape_changes(cin: int, cout: int, stride: int) -> None:
    block = MBConv(cin, cout, 3, stride=stride, expand_ratio=6).eval()
    _zero_last_bn(block)
    assert not block.use_residual
    assert torch.count_nonzero(block(torch.randn(1, cin, 8, 8))) == 0


def test_efficientnet_b0_residual_blocks_are_the_stride1_same_width_ones() -> None:
    model = _meta("efficientnet_b0")
    flags = [b.use_residual for i in range(1, 8) for b in getattr(model, f"stage{i}")]
    # B0 repeats [1, 2, 2, 3, 3, 4, 1]: every block but the first of a stage is residual; the
    # first block of each stage changes width (stage 1: 32 -> 16, stage 5: 80 -> 112 at stride 1).
    expected = [r > 0 for n in (1, 2, 2, 3, 3, 4, 1) for r in range(n)]
    assert flags == expected
    assert sum(flags) == 9


def test_stochastic_depth_only_in_training() -> None:
    drop = StochasticDepth(0.5)
    x = torch.ones(256, 3, 2, 2)
    assert torch.equal(drop.eval()(x), x)
    out = drop.train()(x)
    rows = out.flatten(1)
    # Whole samples are dropped (row mode) and the kept ones are rescaled by 1 / (1 - p).
    assert set(rows.unique().tolist()) == {0.0, 2.0}
    assert torch.equal(rows.min(1).values, rows.max(1).values)
    assert 64 < int((rows[:, 0] == 0).sum()) < 192


def test_stochastic_depth_probability_grows_linearly_over_the_blocks() -> None:
    model = _meta("efficientnet_b0")
    blocks = [b for i in range(1, 8) for b in getattr(model, f"stage{i}")]
    probs = [b.drop_path.p for b in blocks if b.use_residual]
    ids = [i for i, b in enumerate(blocks) if b.use_residual]
    assert probs == pytest.approx([0.2 * i / 16 for i in ids])


def test_efficientnet_eval_output_does_not_depend_on_stochastic_depth() -> None:
    a = create_model("efficientnet_b0", stochastic_depth_prob=0.9, num_classes=10).eval()
    b = create_model("efficientnet_b0", stochastic_depth_prob=0.0, num_classes=10).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)


def test_efficientnet_se_squeezes_the_block_input_width() -> None:
    model = _meta("efficientnet_b0")
    first = model.stage2[0]  # 16 -> 24, expanded to 96
    se = [m for m in first.modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == 1
    assert (se[0].channels, se[0].reduced_channels) == (96, 16 // 4)
    assert isinstance(se[0].act, nn.SiLU) and isinstance(se[0].gate, nn.Sigmoid)
    se6 = next(m for m in model.stage6[0].modules() if isinstance(m, SqueezeExcite))
    assert (se6.channels, se6.reduced_channels) == (672, 112 // 4)


def test_mbconv_hand_computed_parameter_count() -> None:
    # 16 -> 24, expand 6 (96), k3, stride 2, SE squeeze 4:
    #   expand 1x1  16*96 + BN 2*96 = 1728
    #   dw 3x3      96*9  + BN 2*96 = 1056
    #   SE          96*4 + 4 + 4*96 + 96 = 868
    #   project     96*24 + BN 2*24 = 2352
    assert _params(MBConv(16, 24, 3, stride=2, expand_ratio=6)) == 6004
    # Expand ratio 1 has no expansion conv: dw 32*9+64, SE 32*8+8+8*32+32, project 32*16+32.
    block = MBConv(32, 16, 3, stride=1, expand_ratio=1)
    assert _params(block) == 352 + 552 + 544
    assert sum(isinstance(m, nn.Conv2d) for m in block.modules()) == 4  # dw, 2 SE, project


# Per-block SE parameters of B0 (2 * expanded * squeeze + squeeze + expanded), by stage.
_B0_SE_BY_STAGE = {
    1: 552,  # in 32, mid 32, squeeze 8
    2: 868 + 1878,  # (16, 96, 4), (24, 144, 6)
    3: 1878 + 5050,  # (24, 144, 6), (40, 240, 10)
    4: 5050 + 2 * 19700,  # (40, 240, 10), 2 x (80, 480, 20)
    5: 19700 + 2 * 38332,  # (80, 480, 20), 2 x (112, 672, 28)
    6: 38332 + 3 * 111792,  # (112, 672, 28), 3 x (192, 1152, 48)
    7: 111792,  # (192, 1152, 48)
}


def test_efficientnet_se_switch_removes_exactly_the_se_parameters() -> None:
    full = _meta("efficientnet_b0")
    assert sum(_B0_SE_BY_STAGE.values()) == 636_540
    no_se = _meta("efficientnet_b0", se_stages=())
    assert _params(no_se) == _params(full) - 636_540 == 4_652_008
    assert not any(isinstance(m, SqueezeExcite) for m in no_se.modules())
    assert not no_se.model_info.has_se
    only_1_7 = _meta("efficientnet_b0", se_stages=(1, 7))
    assert _params(only_1_7) == 4_652_008 + 552 + 111792
    assert only_1_7.model_info.se_stages == (1, 7)
    off = _meta("efficientnet_b0", se_reduction=None)
    assert _params(off) == 4_652_008 and off.model_info.se_stages == ()


def test_efficientnet_rejects_unknown_se_stage() -> None:
    with pytest.raises(ValueError, match="se_stages"):
        _meta("efficientnet_b0", se_stages=(8,))


# --- MobileNet ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "n_se"), [("mobilenet_v3_large", 8), ("mobilenet_v3_small", 9)])
def test_mobilenet_v3_se_uses_relu_and_hardsigmoid(name: str, n_se: int) -> None:
    se = [m for m in _meta(name).modules() if isinstance(m, SqueezeExcite)]
    assert len(se) == n_se
    for m in se:
        assert isinstance(m.act, nn.ReLU)
        assert isinstance(m.gate, nn.Hardsigmoid)
        assert m.reduced_channels % 8 == 0 and m.reduced_channels >= m.channels // 4


def test_mobilenet_v3_small_se_switch_hand_computed() -> None:
    # SE blocks (expanded, squeeze = make_divisible(expanded // 4, 8)): (16, 8) in stage 1;
    # (96, 24), 2 x (240, 64), (120, 32), (144, 40) in stage 3; (288, 72), 2 x (576, 144) in
    # stage 4. Each costs 2 * exp * sq + sq + exp.
    stage1 = 280
    stage3 = 4728 + 2 * 31024 + 7832 + 11704
    stage4 = 41832 + 2 * 166608
    full = _meta("mobilenet_v3_small")
    assert full.model_info.se_stages == (1, 3, 4)
    assert _params(_meta("mobilenet_v3_small", se_stages=())) == 2_542_856 - (
        stage1 + stage3 + stage4
    )
    assert _params(_meta("mobilenet_v3_small", se_stages=(4,))) == 2_542_856 - stage1 - stage3


def test_mobilenet_v3_se_stages_cannot_add_se_where_the_reference_has_none() -> None:
    assert _meta("mobilenet_v3_large").model_info.se_stages == (3, 4, 5)
    with pytest.raises(ValueError, match="cannot add"):
        _meta("mobilenet_v3_large", se_stages=(1, 3))


def test_mobilenet_v3_large_stage4_mixes_se_and_plain_blocks() -> None:
    stage4 = _meta("mobilenet_v3_large").stage4
    has_se = [any(isinstance(m, SqueezeExcite) for m in b.modules()) for b in stage4]
    assert has_se == [False, False, False, False, True, True]


def test_inverted_residual_keeps_its_residual_connection() -> None:
    block = InvertedResidual(24, 144, 24, 3, stride=1).eval()
    _zero_last_bn(block)
    x = torch.randn(1, 24, 6, 6)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)
    v2 = _meta("mobilenet_v2")
    # Repeats [1, 2, 3, 4, 3, 3, 1]: all but the first block of each row are residual.
    assert sum(b.use_residual for i in range(1, 8) for b in getattr(v2, f"stage{i}")) == 10


@pytest.mark.parametrize(
    "name",
    [
        "efficientnet_b0",
        "mobilenet_v1",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "mobilenet_v3_small",
        "shufflenet_v2_x1_0",
    ],
)
def test_no_conv_bias_before_batchnorm(name: str) -> None:
    model = _meta(name)
    for module in model.modules():
        children = list(module.children())
        for conv, nxt in zip(children, children[1:], strict=False):
            if isinstance(conv, nn.Conv2d) and isinstance(nxt, nn.BatchNorm2d):
                assert conv.bias is None, name


def test_mobilenet_v1_has_13_depthwise_separable_blocks_without_shortcut() -> None:
    model = _meta("mobilenet_v1")
    blocks = [b for i in range(1, 6) for b in getattr(model, f"stage{i}")]
    assert len(blocks) == 13
    depthwise = [
        m for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups == m.in_channels > 1
    ]
    assert len(depthwise) == 13
    assert all(isinstance(b, nn.Sequential) for b in blocks)  # plain chain, no residual add


# --- ShuffleNet V2 ------------------------------------------------------------------------------


def test_channel_shuffle_hand_computed() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]
    y = torch.arange(8.0).view(1, 4, 1, 2)
    assert channel_shuffle(y, 2)[0, :, 0].tolist() == [[0, 1], [4, 5], [2, 3], [6, 7]]


def test_shuffle_unit_passes_half_the_channels_through() -> None:
    unit = ShuffleUnit(8, 8, stride=1).eval()
    x = torch.randn(1, 8, 5, 5)
    out = unit(x)
    # The untouched first half lands on the even channels after the shuffle.
    torch.testing.assert_close(out[:, 0::2], x[:, :4], rtol=0, atol=0)
    assert out.shape == x.shape
    down = ShuffleUnit(8, 16, stride=2).eval()
    assert down(x).shape == (1, 16, 3, 3)


def test_shufflenet_stage_layout() -> None:
    model = _meta("shufflenet_v2_x1_0")
    assert [len(getattr(model, f"stage{i}")) for i in (1, 2, 3)] == [4, 8, 4]
    assert isinstance(model.stem[-1], nn.MaxPool2d)
    assert model.head[0][0].out_channels == 1024
