"""Family-specific checks for the classic networks: AlexNet, VGG (+BN), GoogLeNet, Inception v3.

Generic checks (default-kwarg counts, shapes, stage channels) live in test_zoo.py; this file pins
the auxiliary classifiers, the VGG-BN bias exception, the minimum input sizes and the absence of a
softmax. Counts and shape-only checks run on the meta device; real forwards use tiny inputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.models import create_model
from cnnbench.models.alexnet import MIN_INPUT_SIZE as ALEXNET_MIN
from cnnbench.models.inception import GoogLeNetOutputs, InceptionOutputs


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _runs(model: nn.Module, size: int, batch: int = 1, channels: int = 3) -> bool:
    """True if a forward at size x size works; False if PyTorch rejects the size."""
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.zeros(batch, channels, size, size, device=device))
    except RuntimeError:
        return False
    return True


# ------------------------------------------------------------------------------------------
# Auxiliary classifiers
# ------------------------------------------------------------------------------------------


def _linear(i: int, o: int) -> int:
    return i * o + o


def _conv_bn(i: int, o: int, k: int) -> int:  # BasicConv2d: no conv bias, BN weight + bias
    return i * o * k * k + 2 * o


@pytest.mark.parametrize(
    ("name", "without", "with_aux", "aux_by_hand"),
    [
        (
            "googlenet",
            6_624_904,
            13_004_888,
            # aux1 on 4a (512 ch), aux2 on 4d (528 ch): conv1x1 128, fc 2048->1024, fc 1024->1000
            sum(
                _conv_bn(c, 128, 1) + _linear(2048, 1024) + _linear(1024, 1000) for c in (512, 528)
            ),
        ),
        (
            "inception_v3",
            23_834_568,
            27_161_264,
            # aux on 6e (768 ch): conv1x1 128, conv5x5 768, fc 768->1000
            _conv_bn(768, 128, 1) + _conv_bn(128, 768, 5) + _linear(768, 1000),
        ),
    ],
)
def test_aux_heads_on_and_off_counts(
    name: str, without: int, with_aux: int, aux_by_hand: int
) -> None:
    off = _meta(name)
    on = _meta(name, aux_logits=True)
    assert _params(off) == without
    assert _params(on) == with_aux
    assert with_aux - without == aux_by_hand
    assert off.aux_names == ()
    aux_params = sum(_params(getattr(on, a)) for a in on.aux_names)
    assert aux_params == aux_by_hand


def test_aux_heads_live_outside_the_stages() -> None:
    model = _meta("googlenet", aux_logits=True)
    assert model.aux_names == ("aux1", "aux2")
    children = [n for n, _ in model.named_children()]
    assert children == ["stem", "stage1", "stage2", "stage3", "head", "aux1", "aux2"]
    in_stages = {
        id(m)
        for s in ("stem", "stage1", "stage2", "stage3", "head")
        for m in getattr(model, s).modules()
    }
    assert all(id(m) not in in_stages for a in model.aux_names for m in getattr(model, a).modules())
    v3 = _meta("inception_v3", aux_logits=True)
    assert v3.aux_names == ("aux",)
    assert [n for n, _ in v3.named_children()][-1] == "aux"


def test_googlenet_aux_outputs_only_in_training_mode() -> None:
    model = create_model("googlenet", aux_logits=True, num_classes=7)
    taps: dict[str, int] = {}
    for a in model.aux_names:
        getattr(model, a).register_forward_hook(
            lambda _m, inp, _out, a=a: taps.__setitem__(a, inp[0].shape[1])
        )
    x = torch.randn(2, 3, 64, 64)
    model.train()
    out = model(x)
    assert isinstance(out, GoogLeNetOutputs)
    assert out._fields == ("logits", "aux2", "aux1")
    for t in out:
        assert t.shape == (2, 7) and torch.isfinite(t).all()
    assert taps == {"aux1": 512, "aux2": 528}  # tapped after 4a and after 4d
    taps.clear()
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
    assert taps == {}  # aux heads are not even run in eval mode


def test_no_aux_means_a_plain_tensor_in_training_mode_too() -> None:
    model = _meta("googlenet").train()
    out = model(torch.empty(2, 3, 64, 64, device="meta"))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 1000)


def test_inception_v3_aux_outputs_only_in_training_mode() -> None:
    model = _meta("inception_v3", aux_logits=True, num_classes=5)
    x = torch.empty(2, 3, 299, 299, device="meta")
    out = model.train()(x)
    assert isinstance(out, InceptionOutputs)
    assert out.logits.shape == (2, 5) and out.aux.shape == (2, 5)
    out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5)


def test_inception_v3_aux_needs_native_299_in_training_only() -> None:
    model = _meta("inception_v3", aux_logits=True).train()
    assert _runs(model, 299, batch=2)
    assert not _runs(model, 298, batch=2)  # the aux 5x5 conv gets a 4x4 map
    assert _runs(model.eval(), 80)  # eval skips the aux head


def test_no_conv_bias_before_batchnorm_in_inception_nets() -> None:
    for name in ("googlenet", "inception_v3"):
        model = _meta(name, aux_logits=True)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(c.bias is None for c in convs)
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert len(bns) == len(convs) and all(b.eps == pytest.approx(1e-3) for b in bns)


def test_googlenet_branch3_is_3x3_by_default_and_5x5_on_request() -> None:
    default = _meta("googlenet")
    paper = _meta("googlenet", branch3_kernel=5)
    assert default.stage1[0].branch3[1][0].kernel_size == (3, 3)
    assert paper.stage1[0].branch3[1][0].kernel_size == (5, 5)
    # 16 extra weights per (in, out) pair of every branch-3 kxk conv
    extra = sum(
        16 * m.branch3[1][0].in_channels * m.branch3[1][0].out_channels
        for m in default.modules()
        if hasattr(m, "branch3")
    )
    assert _params(paper) - _params(default) == extra == 380_928


# ------------------------------------------------------------------------------------------
# VGG
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [11, 13, 16, 19])
def test_vgg_bn_count_is_plain_plus_bn_weight_and_bias_per_conv_channel(depth: int) -> None:
    plain = _meta(f"vgg{depth}")
    bn = _meta(f"vgg{depth}_bn")
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == depth - 3  # VGG-n has n - 3 convolutions and 3 linears
    assert not any(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert _params(bn) == _params(plain) + 2 * sum(c.out_channels for c in convs)


def test_vgg_bn_keeps_the_conv_bias_like_the_reference() -> None:
    # The documented exception to "no conv bias before BN": torchvision's counts include it.
    model = _meta("vgg16_bn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is not None for c in convs)
    assert _params(model) == 138_365_992


def test_vgg_stages_are_the_five_pooling_groups() -> None:
    model = _meta("vgg16")
    groups = [model.stem, model.stage1, model.stage2, model.stage3, model.stage4]
    assert [len(g) for g in groups] == [2, 2, 3, 3, 3]
    for g in groups:  # exactly one max pool per group, at its end
        pools = [m for m in g.modules() if isinstance(m, nn.MaxPool2d)]
        assert len(pools) == 1 and isinstance(g[-1][-1], nn.MaxPool2d)


def test_vgg_minimum_input_is_32() -> None:
    model = _meta("vgg11").eval()
    assert _runs(model, 32)
    assert not _runs(model, 31)


# ------------------------------------------------------------------------------------------
# Minimum input sizes
# ------------------------------------------------------------------------------------------


def test_alexnet_minimum_input_is_63_and_32_fails_clearly() -> None:
    assert ALEXNET_MIN == 63
    model = _meta("alexnet").eval()
    assert _runs(model, 63)
    assert not _runs(model, 62)
    with pytest.raises(RuntimeError, match="too small"):
        model(torch.empty(1, 3, 32, 32, device="meta"))


def test_alexnet_runs_for_real_at_its_minimum() -> None:
    model = create_model("alexnet", num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, ALEXNET_MIN, ALEXNET_MIN))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "minimum"), [("googlenet", 15), ("inception_v3", 75)])
def test_inception_minimum_input(name: str, minimum: int) -> None:
    model = _meta(name).eval()
    assert _runs(model, minimum)
    assert not _runs(model, minimum - 1)


def test_googlenet_with_aux_trains_at_its_minimum_for_real() -> None:
    model = create_model("googlenet", aux_logits=True, num_classes=4).train()
    out = model(torch.randn(2, 3, 15, 15))
    assert isinstance(out, GoogLeNetOutputs)
    assert all(t.shape == (2, 4) and torch.isfinite(t).all() for t in out)


# ------------------------------------------------------------------------------------------
# No softmax at the end
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"), [("alexnet", 63), ("vgg11_bn", 32), ("googlenet", 32), ("inception_v3", 75)]
)
def test_outputs_are_logits_not_probabilities(name: str, size: int) -> None:
    model = create_model(name, num_classes=10).eval()
    assert isinstance(model.head[-1], nn.Linear)
    assert not any(isinstance(m, (nn.Softmax, nn.LogSoftmax)) for m in model.modules())
    torch.manual_seed(1)
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size) * 3)
    assert (out < 0).any()
    assert not torch.allclose(out.sum(dim=1), torch.ones(2))
