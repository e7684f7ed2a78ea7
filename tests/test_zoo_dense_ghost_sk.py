"""Family-specific checks for DenseNet, GhostNet and SKNet: the DenseNet transition (1x1, no
padding), SKNet's softmax attention (and no softmax on the logits), the Ghost module against the
plain conv it replaces, GhostNet's width multiplier and its SE switch, with hand-computed counts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import SqueezeExcite, create_model, get_model_info
from cnnbench.models.densenet import DenseLayer, DenseStage, Transition
from cnnbench.models.ghostnet import GhostBottleneck, GhostModule
from cnnbench.models.sknet import SKConv


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


# --- DenseNet ---------------------------------------------------------------------------------


def test_transition_is_unpadded_1x1_and_halves_the_spatial_size() -> None:
    t = Transition(64, 32).eval()
    conv = next(m for m in t if isinstance(m, nn.Conv2d))
    assert conv.kernel_size == (1, 1) and conv.padding == (0, 0) and conv.bias is None
    # A 1x1 conv with padding=1 would turn 16x16 into 18x18 and the pool into 9x9.
    assert t(torch.randn(1, 64, 16, 16)).shape == (1, 32, 8, 8)
    assert t(torch.randn(1, 64, 7, 7)).shape == (1, 32, 3, 3)


def test_every_densenet121_transition_is_unpadded_and_stages_halve_the_map() -> None:
    model = create_model("densenet121", num_classes=10).eval()
    transitions = [m for m in model.modules() if isinstance(m, Transition)]
    assert len(transitions) == 3
    for t in transitions:
        conv = t[2]
        assert isinstance(conv, nn.Conv2d) and conv.padding == (0, 0)
        assert conv.out_channels == conv.in_channels // 2
    sizes: dict[str, tuple[int, ...]] = {}
    for name in ("stem", "stage1", "stage2", "stage3", "stage4"):
        getattr(model, name).register_forward_hook(
            lambda _m, _i, out, n=name: sizes.__setitem__(n, tuple(out.shape[1:]))
        )
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert sizes == {
        "stem": (64, 16, 16),
        "stage1": (128, 8, 8),
        "stage2": (256, 4, 4),
        "stage3": (512, 2, 2),
        "stage4": (1024, 2, 2),  # no transition after the last dense block
    }


@pytest.mark.parametrize(
    ("name", "layers", "out"),
    [
        ("densenet121", (6, 12, 24, 16), (128, 256, 512, 1024)),
        ("densenet169", (6, 12, 32, 32), (128, 256, 640, 1664)),
        ("densenet201", (6, 12, 48, 32), (128, 256, 896, 1920)),
    ],
)
def test_densenet_stage_blocks_are_dense_layers(name: str, layers: tuple, out: tuple) -> None:
    model = _meta(name)
    stages = model.stages()[1:-1]
    assert tuple(s.blocks for s in stages) == layers
    assert tuple(s.out_channels for s in stages) == out
    for i, n in enumerate(layers, start=1):
        stage = getattr(model, f"stage{i}")
        assert isinstance(stage, DenseStage) and len(stage) == n
        assert all(isinstance(layer, DenseLayer) for layer in stage.layers)
        assert isinstance(stage.transition, Transition if i < 4 else nn.Identity)
    # The final BN + ReLU open the head (torchvision's features.norm5).
    assert isinstance(model.head[0], nn.BatchNorm2d) and model.head[0].num_features == out[-1]


def test_dense_layer_concatenates_growth_rate_new_maps() -> None:
    layer = DenseLayer(40, growth_rate=32, bn_size=4).eval()
    x = torch.randn(1, 40, 5, 5)
    y = layer(x)
    assert y.shape == (1, 72, 5, 5)
    assert torch.equal(y[:, :40], x)  # the input passes through untouched
    # BN(40) + conv1x1 40->128 + BN(128) + conv3x3 128->32, no conv biases.
    assert _params(layer) == 2 * 40 + 40 * 128 + 2 * 128 + 128 * 32 * 9


# --- SKNet ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sknet_run() -> tuple[torch.Tensor, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = create_model("sknet50").eval()
    attn: list[torch.Tensor] = []
    for m in model.modules():
        if isinstance(m, SKConv):
            m.softmax.register_forward_hook(lambda _m, _i, out: attn.append(out.detach()))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    return out, attn


def test_sknet_returns_logits_not_probabilities(sknet_run: tuple) -> None:
    out, _ = sknet_run
    assert out.shape == (2, 1000)
    assert (out < 0).any()
    assert not torch.allclose(out.sum(1), torch.ones(2), atol=1e-3)
    model = _meta("sknet50")
    assert isinstance(list(model.head.modules())[-1], nn.Linear)


def test_sknet_branch_attention_sums_to_one_per_channel(sknet_run: tuple) -> None:
    _, attn = sknet_run
    assert len(attn) == 3 + 4 + 6 + 3  # one SKConv per block
    for a in attn:
        n, m, c = a.shape[:3]
        assert (n, m) == (2, 2) and c in (128, 256, 512, 1024)
        assert a.shape[3:] == (1, 1)
        assert torch.allclose(a.sum(1), torch.ones(n, c, 1, 1), atol=1e-5)
        assert (a >= 0).all() and (a <= 1).all()


@pytest.mark.parametrize(("width", "d"), [(128, 32), (256, 32), (512, 32), (1024, 64)])
def test_skconv_structure_and_count(width: int, d: int) -> None:
    with torch.device("meta"):
        sk = SKConv(width, stride=2)
    convs = [b[0] for b in sk.branches]
    assert [c.dilation for c in convs] == [(1, 1), (2, 2)]
    assert [c.padding for c in convs] == [(1, 1), (2, 2)]
    assert all(c.groups == 32 and c.stride == (2, 2) and c.kernel_size == (3, 3) for c in convs)
    assert sk.fc_reduce[0].out_channels == d  # d = max(w // 16, 32)
    branches = 2 * (width * (width // 32) * 9 + 2 * width)
    fuse = width * d + 2 * d + d * 2 * width  # no conv biases; BN on the squeezed vector
    assert _params(sk) == branches + fuse


def test_skconv_stride_halves_and_keeps_channels() -> None:
    sk = SKConv(64, stride=2).eval()
    assert sk(torch.randn(1, 64, 9, 9)).shape == (1, 64, 5, 5)


# --- GhostNet ---------------------------------------------------------------------------------


@pytest.mark.parametrize("out", [128, 15])
def test_ghost_module_output_channels(out: int) -> None:
    g = GhostModule(64, out).eval()
    assert g(torch.randn(1, 64, 6, 6)).shape == (1, out, 6, 6)


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [
        # primary conv1x1 64->64, BN(64); cheap dw3x3 64->64, BN(64)
        (2, 64 * 64 + 2 * 64 + 64 * 9 + 2 * 64),
        # primary conv1x1 64->32, BN(32); cheap 3x3 with groups 32: 32->96, BN(96)
        (4, 64 * 32 + 2 * 32 + 96 * 9 + 2 * 96),
    ],
)
def test_ghost_module_params_vs_plain_conv(ratio: int, expected: int) -> None:
    g = GhostModule(64, 128, ratio=ratio)
    assert _params(g) == expected
    plain = 64 * 128 + 2 * 128  # the conv1x1 64->128 + BN it replaces
    assert _params(nn.Sequential(nn.Conv2d(64, 128, 1, bias=False), nn.BatchNorm2d(128))) == plain
    if ratio == 2:  # about half the conv weights: (4096 + 576) / 8192 = 0.57
        assert 0.5 < (64 * 64 + 64 * 9) / (64 * 128) < 0.6
    assert _params(g) < plain


def test_ghostnet_width_half_builds_and_runs() -> None:
    model = create_model("ghostnet", width=0.5, num_classes=10)
    assert [s.out_channels for s in model.stages()] == [8, 8, 12, 20, 56, 480, 10]
    model.train()
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    assert _params(_meta("ghostnet", width=0.5)) == 2_587_292


def test_ghostnet_se_layout_and_metadata() -> None:
    info = get_model_info("ghostnet")
    assert info.se_reduction == 4 and info.se_stages == (3, 4, 5)
    model = _meta("ghostnet")
    se = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    # (expanded width, make_divisible(exp * 0.25, 4)) of the 7 SE bottlenecks of Table 1
    assert [(m.channels, m.reduced_channels) for m in se] == [
        (72, 20),
        (120, 32),
        (480, 120),
        (672, 168),
        (672, 168),
        (960, 240),
        (960, 240),
    ]
    assert all(isinstance(m.gate, nn.Hardsigmoid) and isinstance(m.act, nn.ReLU) for m in se)


# Params of SqueezeExcite(C, R): conv C->R + bias, conv R->C + bias.
def _se(c: int, r: int) -> int:
    return c * r + r + r * c + c


_SE_BY_STAGE = {
    3: _se(72, 20) + _se(120, 32),
    4: _se(480, 120) + _se(672, 168),
    5: 2 * _se(960, 240) + _se(672, 168),
}


def test_ghostnet_without_se_drops_exactly_the_se_params() -> None:
    full = _params(_meta("ghostnet"))
    assert full == 5_182_508
    assert sum(_SE_BY_STAGE.values()) == 1_503_868
    no_se = _meta("ghostnet", se_stages=())
    assert not any(isinstance(m, SqueezeExcite) for m in no_se.modules())
    assert full - _params(no_se) == 1_503_868
    assert no_se.model_info.se_stages == ()
    assert _params(_meta("ghostnet", se_reduction=None)) == _params(no_se)
    only3 = _meta("ghostnet", se_stages=(3,))
    assert full - _params(only3) == _SE_BY_STAGE[4] + _SE_BY_STAGE[5]


def test_ghostnet_rejects_se_stages_without_se_blocks() -> None:
    with pytest.raises(ValueError, match="se_stages"):
        _meta("ghostnet", se_stages=(1,))


def test_ghost_bottleneck_residual() -> None:
    identity = GhostBottleneck(16, 48, 16).eval()
    assert isinstance(identity.shortcut, nn.Identity)
    # Zeroing the last BN of the projecting ghost module leaves only the residual: output == input.
    for m in identity.ghost2.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.zeros_(m.weight)
    x = torch.randn(1, 16, 6, 6)
    with torch.no_grad():
        assert torch.allclose(identity(x), x)
    down = GhostBottleneck(16, 48, 24, stride=2).eval()
    assert down(torch.randn(1, 16, 6, 6)).shape == (1, 24, 3, 3)
