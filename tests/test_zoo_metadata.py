"""Zoo metadata declared once: one-line keyword-only builders whose defaults are the
registration's, stored native-size params/MACs recomputed for every model, and the metadata of
built models following the keyword overrides (stored costs dropped when the architecture may
have changed)."""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest
import torch
from torch import nn

from cnnbench.models import create_model, get_model_info, list_models
from cnnbench.static import profile_static
from tests.reference_counts import REFERENCE, REFERENCE_GMACS

# MACs recomputation of models above this many stored GMACs runs in the slow suite only (the
# counter's time grows with the number of layers, which grows with the depth of these nets).
_FAST_MAC_LIMIT = 5e9


def _meta(name: str, **kwargs: object) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs)


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- builders -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_builder_is_keyword_only_and_declares_no_defaults_of_its_own(name: str) -> None:
    """Every default lives in the registration or the family's variant table: a builder's
    signature is ``(**kwargs: Unpack[...]) -> ...``, so it cannot repeat (and drift from) the
    registered num_classes / se_reduction / se_stages / input size."""
    builder = get_model_info(name).builder
    assert builder is not None
    params = list(inspect.signature(builder).parameters.values())
    assert [p.kind for p in params] == [inspect.Parameter.VAR_KEYWORD], name
    hints = builder.__annotations__
    assert hints["kwargs"].startswith("Unpack[") and "return" in hints, name
    assert builder.__doc__, name


@pytest.mark.parametrize("name", ["lenet5", "senet18", "resnet50", "inception_v3"])
def test_builder_defaults_are_the_registered_metadata(name: str) -> None:
    info = get_model_info(name)
    model = _meta(name).eval()
    out = model(torch.empty(1, *info.input_size, device="meta"))
    assert out.shape == (1, info.num_classes)
    with torch.device("meta"):
        direct = info.builder()  # type: ignore[misc]  # the builder alone, no create_model
    assert _count(direct) == _count(model)


def test_registered_defaults_reject_unknown_keys() -> None:
    from cnnbench.models._registry import registered_defaults

    with pytest.raises(ValueError, match="no registered default"):
        registered_defaults("resnet50", {}, "width")


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        _meta("resnet50", widht=2)
    with pytest.raises(TypeError, match="bottlenecks only"):
        _meta("resnet18", groups=32)


# --- stored native-size costs -----------------------------------------------------------------


@pytest.mark.parametrize("name", list_models())
def test_stored_params_equal_a_fresh_count_and_the_reference(name: str) -> None:
    info = get_model_info(name)
    assert info.params is not None and info.macs is not None, f"{name}: no stored costs"
    assert info.params == _count(_meta(name))
    assert info.params == REFERENCE[name][0][1]  # independent: published / hand-derived


def _mac_cases() -> list:
    cases = []
    for name in list_models():
        macs = get_model_info(name).macs or 0
        marks = [pytest.mark.slow] if macs > _FAST_MAC_LIMIT else []
        cases.append(pytest.param(name, marks=marks, id=name))
    return cases


@pytest.mark.parametrize("name", _mac_cases())
def test_stored_macs_equal_a_fresh_static_profile(name: str) -> None:
    prof = profile_static(_meta(name), meta=True, train_memory=False)
    assert get_model_info(name).macs == prof.macs


@pytest.mark.parametrize("name", sorted(REFERENCE_GMACS))
def test_stored_macs_round_to_the_published_gmacs(name: str) -> None:
    """The stored figure agrees with the reference table at the table's own precision."""
    ref = REFERENCE_GMACS[name]
    decimals = -Decimal(repr(ref)).as_tuple().exponent
    macs = get_model_info(name).macs
    assert macs is not None
    if name == "mobilenet_v3_small":  # 0.057 has two significant figures: 0.0565 rounds up
        assert abs(macs / 1e9 - ref) <= 0.0005
    else:
        assert round(macs / 1e9, decimals) == ref


# --- metadata of built models ---------------------------------------------------------------


def test_defaults_keep_the_stored_costs() -> None:
    info = get_model_info("resnet50")
    built = _meta("resnet50").model_info
    assert (built.params, built.macs) == (info.params, info.macs) == (25_557_032, info.macs)


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("resnet50", {"num_classes": 10}),
        ("resnet50", {"se_reduction": 16}),
        ("se_resnet50", {"se_stages": (1, 2, 3)}),
        ("se_resnet50", {"se_reduction": 8}),
        ("resnet50", {"stride_in_1x1": True}),
        ("ghostnet", {"width": 0.5}),
        ("vgg11", {"in_channels": 1}),
        ("googlenet", {"aux_logits": True}),
    ],
)
def test_architectural_overrides_drop_the_stored_costs(name: str, kwargs: dict) -> None:
    info = _meta(name, **kwargs).model_info
    assert info.params is None and info.macs is None


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("efficientnet_b0", {"dropout": 0.5, "stochastic_depth_prob": 0.0}),
        ("senet154", {"drop_rate": 0.0}),
        ("se_resnet50", {"se_reduction": 16, "se_stages": (1, 2, 3, 4)}),
        ("lenet5", {"num_classes": 10, "in_channels": 1}),
        ("resnet50", {"se_reduction": None}),
    ],
)
def test_overrides_equal_to_the_defaults_or_cost_neutral_keep_them(name: str, kwargs: dict) -> None:
    model = _meta(name, **kwargs)
    info = model.model_info
    assert info.params == get_model_info(name).params == _count(model)
    assert info.macs == get_model_info(name).macs


def test_overrides_update_the_metadata() -> None:
    m = _meta("resnet50", num_classes=10, se_reduction=16, se_stages=(2, 3))
    assert (m.model_info.num_classes, m.model_info.se_reduction) == (10, 16)
    assert m.model_info.se_stages == (2, 3) and m.model_info.has_se
    m = _meta("vgg11", in_channels=1)
    assert m.model_info.input_size == (1, 224, 224)
    assert get_model_info("vgg11").input_size == (3, 224, 224)  # the registry is untouched


# --- published accuracy (cited, never measured) -------------------------------------------


def test_published_top1_is_cited() -> None:
    info = get_model_info("resnet50")
    assert info.published_top1 == 76.13 and "torchvision" in info.top1_source
    assert get_model_info("mobilenet_v1").published_top1 == 70.6  # MobileNet paper, Table 6
    cited = 0
    for name in list_models():
        info = get_model_info(name)
        if info.published_top1 is None:
            assert info.top1_source == "", name
            continue
        cited += 1
        assert 40.0 < info.published_top1 < 90.0 and info.top1_source, name
        assert "measured" not in info.top1_source.lower()
    assert cited >= 30
    assert get_model_info("lenet5").published_top1 is None  # no ImageNet figure exists


def test_published_top1_is_dropped_with_the_architecture() -> None:
    assert _meta("resnet50").model_info.published_top1 == 76.13
    assert _meta("resnet50", se_reduction=16).model_info.published_top1 is None
    assert _meta("resnet50", num_classes=10).model_info.published_top1 is None


def _measure(name: str) -> tuple[int, int]:
    """(params, MACs) of zoo model ``name`` at its native size, counted on the meta device."""
    with torch.device("meta"):
        model = create_model(name)
    params = sum(p.numel() for p in model.parameters())
    return params, profile_static(model, meta=True, train_memory=False).macs


if __name__ == "__main__":  # regenerate cnnbench/models/_costs.py's table
    print("NATIVE_COSTS: dict[str, tuple[int, int]] = {")
    for _name in list_models():
        _params, _macs = _measure(_name)
        print(f'    "{_name}": ({_params:_}, {_macs:_}),')
    print("}")
