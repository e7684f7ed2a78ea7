"""Cost cards and the accuracy-vs-cost chart."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cnnbench.card import build_card
from cnnbench.cli.main import app
from cnnbench.errors import UsageError
from cnnbench.models import get_model_info
from cnnbench.report.card import card_markdown
from cnnbench.report.charts import CHARTS, accuracy_vs_cost_svg
from cnnbench.results import Result


def test_card_costs_at_native_and_cited_resolution() -> None:
    card = build_card("efficientnet_b2", claims=False)
    info = get_model_info("efficientnet_b2")
    assert [c.resolution for c in card.costs] == [260, 288]
    native, cited = card.costs
    assert native.params == info.params and native.macs == info.macs  # stored, tested counts
    assert cited.params == native.params and cited.macs > native.macs
    assert cited.flops >= 2 * cited.macs and cited.activation_bytes > native.activation_bytes
    assert card.chosen is not None and card.chosen.resolution == 288


def test_card_of_se_resnet50_v1_has_cited_values_layout_and_claims() -> None:
    card = build_card("se_resnet50_v1")
    assert "first 1x1" in card.layout
    assert card.chosen is not None and card.chosen.value == 77.63
    ids = {v.claim.id: v for v in card.claims}
    assert "se_improves_resnet_top1" in ids and ids["se_improves_resnet_top1"].holds is None
    measured = [v for v in card.claims if v.claim.kind != "published"]
    assert measured and all(v.measured is not None for v in measured)
    md = card_markdown(card)
    assert md.startswith("# Cost card: se_resnet50_v1") and "77.63" in md and "| " in md
    data = json.loads(json.dumps(card.to_dict()))
    assert data["chosen_top1"]["source"].startswith("hujie-frank/SENet README")


def test_card_cli_formats_and_bad_model() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["card", "resnet50", "--format", "json", "--no-claims"])
    assert res.exit_code == 0
    assert json.loads(res.output)["costs"][0]["macs"] == get_model_info("resnet50").macs
    res = runner.invoke(app, ["card", "efficientnet_b2", "--no-claims"])
    assert res.exit_code == 0 and "evaluated at 288px, not the native 260px" in res.output
    res = runner.invoke(app, ["card", "no_such_model"])  # main() prints it, exit 2
    assert isinstance(res.exception, UsageError) and "unknown model" in str(res.exception)


def _row(model: str, ms: float, res: int | None = None) -> Result:
    info = get_model_info(model)
    size = res or info.input_size[1]
    return Result(
        model=model,
        params=info.params,
        macs=info.macs,
        input_size=[3, size, size],
        latency_ms_median=ms,
        latency_ms_ci_low=ms * 0.9,
        latency_ms_ci_high=ms * 1.1,
    )


def test_accuracy_chart_points_labels_and_front() -> None:
    rows = [
        _row("mobilenet_v3_small", 2.0),  # cheapest: on the front
        _row("resnet18", 5.0),
        _row("efficientnet_b2", 9.0),  # most accurate: on the front, cited at 288
        _row("alexnet", 6.0),  # dominated by resnet18 (faster, more accurate)
        _row("se_resnet50", 7.0),  # no cited value for its layout: left out
    ]
    svg = accuracy_vs_cost_svg(rows)
    assert svg is not None and "accuracy-cost" in CHARTS
    assert "efficientnet_b2 (torchvision IMAGENET1K_V1 @288px)" in svg
    assert "se_resnet50 " not in svg
    assert svg.count('class="errorbar"') == 4  # latency panel only
    # latency front: mobilenet_v3_small, resnet18, efficientnet_b2 (alexnet is dominated);
    # MACs front: mobilenet_v3_small, efficientnet_b2 (0.99 G beats resnet18's 1.81 G)
    assert svg.count('class="point pareto"') == 3 + 2
    one = [_row("resnet18", 5.0)]
    assert accuracy_vs_cost_svg(one) is None


def test_accuracy_chart_skips_a_changed_architecture() -> None:
    changed = _row("resnet18", 5.0)
    changed.params = (changed.params or 0) + 1
    assert accuracy_vs_cost_svg([changed, _row("alexnet", 6.0)]) is None
