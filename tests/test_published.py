"""Cited accuracies: provenance fields, the choice rule, the layout coupling, and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cnnbench.cli.main import app
from cnnbench.models import CitedAccuracy, chosen_top1, get_model_info, list_models


def _c(value: float, res: int, *, metric: str = "top-1", matches: bool = True) -> CitedAccuracy:
    return CitedAccuracy(value, metric, "w", res, "crop", "layout", "src", matches)


def test_every_cited_value_carries_its_provenance() -> None:
    for name in list_models():
        for c in get_model_info(name).cited:
            assert c.metric in ("top-1", "top-5"), name
            assert 40.0 < c.value < 100.0, name
            assert c.weights and c.crop and c.layout and c.source, name
            assert 200 <= c.resolution <= 600, name
            assert "measured" not in c.source.lower(), name


def test_choice_rule_layout_first_then_native_resolution_then_table_order() -> None:
    other_layout = _c(99.0, 224, matches=False)
    top5 = _c(95.0, 224, metric="top-5")
    at_288, at_224, second_224 = _c(80.6, 288), _c(79.0, 224), _c(81.0, 224)
    assert chosen_top1([other_layout, top5, at_288, at_224, second_224], 224) is at_224
    assert chosen_top1([other_layout, at_288], 224) is at_288  # other size, still this layout
    assert chosen_top1([other_layout, top5], 224) is None


def test_efficientnet_b2_is_cited_at_288_not_its_native_260() -> None:
    info = get_model_info("efficientnet_b2")
    chosen = info.chosen_top1()
    assert info.input_size[1] == 260
    assert chosen is not None and chosen.value == 80.608 and chosen.resolution == 288
    assert "IMAGENET1K_V1" in chosen.weights and "acc@1" in chosen.source


def test_senet_release_accuracy_belongs_to_the_original_layout() -> None:
    # hujie-frank/SENet README, Table 1: SE-ResNet-50 top-1 error 22.37, top-5 error 6.36.
    v1 = get_model_info("se_resnet50_v1")
    assert v1.published_top1 == pytest.approx(100 - 22.37)
    top5 = [c for c in v1.cited if c.metric == "top-5"]
    assert top5 and top5[0].value == pytest.approx(100 - 6.36)
    v15 = get_model_info("se_resnet50")
    assert v15.published_top1 is None and v15.chosen_top1() is None
    assert v15.cited and not any(c.layout_matches for c in v15.cited)
    assert all("se_resnet50_v1" in c.note for c in v15.cited)


def test_added_values_equal_their_sources() -> None:
    # 100 - top-1 error as printed in each README (see _published.py for the sources).
    expected = {
        "se_resnet101": None,  # v1.5 in the zoo: cited, not chosen
        "se_resnext50_32x4d": 100 - 20.97,
        "se_resnext101_32x4d": 100 - 19.81,
        "senet154": 100 - 18.68,
        "sknet50": 100 - 20.79,
        "sknet101": 100 - 20.19,
        "resnet50_v1": 100 - 24.7,
        "resnext101_32x4d": 100 - 21.2,
        "shufflenet_v1_g3": 100 - 32.2,
    }
    for name, top1 in expected.items():
        got = get_model_info(name).published_top1
        assert got == (None if top1 is None else pytest.approx(top1)), name


def test_torchvision_v2_weights_are_listed_but_v1_is_chosen() -> None:
    info = get_model_info("resnet50")
    tags = {c.weights: c.value for c in info.cited if c.metric == "top-1"}
    assert tags["torchvision IMAGENET1K_V1"] == 76.13
    assert tags["torchvision IMAGENET1K_V2"] == 80.858
    assert info.published_top1 == 76.13


def test_list_shows_chosen_top1_and_json_carries_provenance() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["list", "efficientnet_b2"])
    assert res.exit_code == 0 and "80.608 @288px" in res.output
    res = runner.invoke(app, ["list", "se_resnet50*", "--json"])
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert rows["se_resnet50"]["top1"] is None
    assert rows["se_resnet50_v1"]["top1_chosen"]["weights"] == "SENet Caffe release"
    assert rows["se_resnet50_v1"]["cited"][0]["resolution"] == 224
    assert rows["se_resnet50"]["cited"][0]["layout_matches"] is False


def test_info_lists_every_cited_value() -> None:
    res = CliRunner().invoke(app, ["info", "resnet50"])
    assert res.exit_code == 0
    for text in ("76.13", "80.858", "IMAGENET1K_V2", "75.3", "MSRA"):
        assert text in res.output, text
