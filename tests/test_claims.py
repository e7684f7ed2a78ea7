"""The claims checker (cnnbench.claims): measures, decision rules, validation, default claims.

Hand-computed values used below:

* LeNet-5 (1x32x32): conv1 5x5 1->6 on 28x28, conv2 5x5 6->16 on 10x10, fc 400-120-84-10.
  Params 156 + 2,416 + 48,120 + 10,164 + 850 = 61,706. MACs 28*28*6*25 = 117,600,
  10*10*16*150 = 240,000, 400*120 + 120*84 + 84*10 = 58,920: 416,520 in all. FLOPs: 2 MACs + a
  bias add per output, 1 per ReLU output, 4 per 2x2 max-pool output: 852,370.
* A 5x5 conv against two 3x3 (C in = C out): 25 against 18 weights per in/out channel pair.
* SE-ResNet-50 (r = 16; C_s = 256/512/1024/2048, N_s = 3/4/6/3): SE weights (2/r) N_s C_s^2 =
  24,576 + 131,072 + 786,432 + 1,572,864 = 2,514,944, with biases N_s (C_s/r + C_s) more:
  25,392 / 133,248 / 792,960 / 1,579,392 = 2,530,992.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path

import pytest

from cnnbench.claims import (
    DEFAULT_CLAIMS,
    KINDS,
    MAX_FILE_BYTES,
    MEASURES,
    VARIANTS,
    Claim,
    MeasureError,
    Verdict,
    check_claim,
    check_claims,
    decide,
    load_claims,
    load_published,
    measure_help,
    statement_verdicts,
)
from cnnbench.errors import UsageError

SEED = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "seed_claims.md"
SE50_STAGES = [(3, 256), (4, 512), (6, 1024), (3, 2048)]


def m(name: str, **args):
    """A measure's value."""
    return MEASURES[name].evaluate(**args)[0]


def _claim(**fields) -> Claim:
    base = {"id": "x", "text": "t", "source": "s", "measure": "params", "expected": 1.0}
    return Claim(**{**base, **fields})


# --- every measure on a hand-computable case -----------------------------------------------


def test_every_measure_is_documented_in_one_line() -> None:
    for name, measure in MEASURES.items():
        assert measure.name == name
        assert measure.help and "\n" not in measure.help and len(measure.help) < 200, name
        assert measure.unit in ("count", "percent", "ratio", "GMACs"), name
    for help_, transform in VARIANTS.values():
        assert help_ and callable(transform)


def test_measure_help_lists_every_measure() -> None:
    rows = {name: (args, help_) for name, args, help_ in measure_help()}
    assert set(rows) == set(MEASURES)
    assert rows["conv_stack_ratio"][0] == (
        "numerator, denominator, [in_channels], [resolution], [metric]"
    )
    assert rows["se_final_stage_share"][1].startswith("Share of all SE parameters")


def test_plain_costs_of_lenet5() -> None:
    assert m("params", model="lenet5") == 61_706
    assert m("macs", model="lenet5") == 117_600 + 240_000 + 58_920
    assert m("gmacs", model="lenet5") == pytest.approx(416_520 / 1e9)
    flops = (2 * 117_600 + 4_704 + 4_704 + 1_176 * 4) + (2 * 240_000 + 1_600 + 1_600 + 400 * 4)
    flops += (2 * 48_000 + 120 + 120) + (2 * 10_080 + 84 + 84) + (2 * 840 + 10)
    assert m("flops", model="lenet5") == flops == 852_370
    # model_kwargs reach the builder: 20 classes add 84 * 10 weights and 10 biases
    assert m("params", model="lenet5", model_kwargs={"num_classes": 20}) == 61_706 + 850


def test_spec_ratio_and_root() -> None:
    ten, twenty = {"model": "lenet5"}, {"model": "lenet5", "model_kwargs": {"num_classes": 20}}
    assert m("spec_ratio", numerator=twenty, denominator=ten, metric="params") == pytest.approx(
        62_556 / 61_706
    )
    assert m("spec_ratio", numerator=twenty, denominator=ten, metric="params", root=2) == (
        pytest.approx(math.sqrt(62_556 / 61_706))
    )
    # a resolution in the spec: MobileNet v1's maps double per side at 448, so every conv costs
    # 4x; the classifier (1024 x 1000 MACs after global pooling) does not change
    fc = 1024 * 1000
    base = m("macs", model="mobilenet_v1")
    big = {"model": "mobilenet_v1", "resolution": 448}
    assert m("macs", **big) == 4 * (base - fc) + fc
    assert m("spec_ratio", numerator=big, denominator={"model": "mobilenet_v1"}) == (
        (4 * (base - fc) + fc) / base
    )


def test_variant_without_1x1_reductions() -> None:
    # (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of GoogLeNet's nine modules
    modules = [
        (192, 64, 96, 128, 16, 32, 32),
        (256, 128, 128, 192, 32, 96, 64),
        (480, 192, 96, 208, 16, 48, 64),
        (512, 160, 112, 224, 24, 64, 64),
        (512, 128, 128, 256, 24, 64, 64),
        (512, 112, 144, 288, 32, 64, 64),
        (528, 256, 160, 320, 32, 128, 128),
        (832, 256, 160, 320, 32, 128, 128),
        (832, 384, 192, 384, 48, 128, 128),
    ]
    delta = 0
    for cin, _, r3, c3, r5, c5, _ in modules:  # conv weights + BN (2 per channel)
        reduced = cin * r3 + 2 * r3 + r3 * c3 * 9 + cin * r5 + 2 * r5 + r5 * c5 * 25
        naive = cin * c3 * 9 + cin * c5 * 25
        delta += naive - reduced
    paper = {"model": "googlenet", "model_kwargs": {"branch3_kernel": 5}}
    naive = {**paper, "variant": "no_1x1_reductions"}
    assert m("params", model="googlenet", model_kwargs={"branch3_kernel": 5}) == 7_005_832
    assert m("params", **naive) == 7_005_832 + delta
    assert m("spec_ratio", numerator=paper, denominator=naive, metric="params") == pytest.approx(
        7_005_832 / (7_005_832 + delta)
    )
    with pytest.raises(MeasureError, match="does not apply to lenet5"):
        m("params", model="lenet5", variant="no_1x1_reductions")


def test_stage_share() -> None:
    assert m("stage_share", model="lenet5", stage="stem") == pytest.approx(156 / 61_706)
    assert m("stage_share", model="lenet5") == pytest.approx(2_416 / 61_706)  # final = stage1
    assert m("stage_share", model="lenet5", stage="stem", metric="macs") == pytest.approx(
        117_600 / 416_520
    )
    with pytest.raises(MeasureError, match="no stage 'stage7'"):
        m("stage_share", model="lenet5", stage="stage7")


def test_layer_count_and_share() -> None:
    assert m("layer_count", model="lenet5", layer_type="conv") == 2
    assert m("layer_count", model="lenet5", layer_type="pool") == 2
    assert m("layer_count", model="lenet5", layer_type="fc") == 3
    assert m("layer_count", model="lenet5", layer_type="act") == 4
    assert m("layer_count", model="lenet5", layer_type="conv", kernel=5) == 2
    assert m("layer_count", model="lenet5", layer_type="conv", kernel=3) == 0
    assert m("layer_count", model="lenet5", layer_type="conv", grouped=True) == 0
    assert m("layer_count", model="alexnet", layer_type="conv", kernel=11) == 1
    # Inception-v3: 4 InceptionC x (1x7, 7x1, 7x1, 1x7, 7x1, 1x7) + InceptionD (1x7, 7x1)
    # + 2 InceptionE x (1x3, 3x1, 1x3, 3x1)
    assert m("layer_count", model="inception_v3", layer_type="conv", asymmetric=True) == 34
    assert m("layer_count", model="inception_v3", layer_type="conv", kernel=[1, 7]) == 4 * 3 + 1
    assert m("layer_share", model="lenet5", layer_type="conv", kernel=5) == 1.0
    fc_params = 48_120 + 10_164 + 850
    assert m(
        "layer_share", model="lenet5", layer_type="fc", metric="params", of="model"
    ) == pytest.approx(fc_params / 61_706)
    assert m(
        "layer_share", model="lenet5", layer_type="fc", metric="macs", of="model"
    ) == pytest.approx(58_920 / 416_520)
    # SE's own FC convs are "se_fc", not "conv": SENet-18 has 20 convs and 8 SE blocks
    assert m("layer_count", model="senet18", layer_type="conv") == 20
    assert m("layer_count", model="senet18", layer_type="se") == 8
    assert m("layer_count", model="senet18", layer_type="se_fc") == 16


def test_dense_equivalent_ratio() -> None:
    dense = 1 * 32 * 32 * 6 * 28 * 28 + 6 * 14 * 14 * 16 * 10 * 10
    assert m("dense_equivalent_ratio", model="lenet5") == pytest.approx(dense / (150 + 2_400))


def test_stage_structure() -> None:
    assert m("stage_blocks_mismatches", model="resnet50", blocks=[3, 4, 6, 3]) == 0
    assert m("stage_blocks_mismatches", model="resnet50", blocks=[3, 4, 5, 3]) == 1
    assert m("stage_blocks_mismatches", model="resnet50", blocks=[3, 4, 6]) == 1
    assert m("final_stage_width_ratio", model="lenet5") == pytest.approx(16 / 6)
    assert m("final_stage_width_ratio", model="resnet50") == 2.0  # 2048 against 1024
    good = {"stem": [6, 14, 14], "stage1": [16, 5, 5], "stem.0": [6, 28, 28]}
    assert m("shape_mismatches", model="lenet5", shapes=good) == 0
    assert m("shape_mismatches", model="lenet5", shapes={**good, "stage1": [16, 4, 4]}) == 1
    with pytest.raises(MeasureError, match="no module 'stage9'"):
        m("shape_mismatches", model="lenet5", shapes={"stage9": [1, 1, 1]})


def test_dense_structure() -> None:
    value, detail = MEASURES["stage_connections"].evaluate(model="densenet121", stage=1)
    assert value == 6 * 7 / 2 and "[1, 2, 3, 4, 5, 6]" in detail
    assert m("stage_connections", model="densenet121", stage=4) == 16 * 17 / 2
    assert m("stage_connections", model="resnet50", stage=1) == 3
    assert m("growth_rate", model="densenet121") == 32
    assert m("transition_share", model="densenet121") == 1.0
    assert m("transition_share", model="densenet121", compression=0.5) == 1.0
    assert m("transition_share", model="densenet121", compression=0.25) == 0.0
    assert m("transition_share", model="densenet121", kernel=3) == 0.0
    with pytest.raises(MeasureError, match="no transition layers"):
        m("transition_share", model="lenet5")


def test_sk_measures() -> None:
    # SKNet-50 widths C = 128/256/512/1024 (3/4/6/3 blocks): d = max(C // 16, 32) = 32/32/32/64
    assert m("sk_fuse_dim_mismatches", model="sknet50") == 0
    # r = 8 would give d = 64 at C = 512 (6 blocks) and 128 at C = 1024 (3 blocks)
    assert m("sk_fuse_dim_mismatches", model="sknet50", reduction=8) == 6 + 3
    # fuse = C*d (fc_reduce) + 2d (BN) + d*2C (fc_select): d = 128 against 64 doubles it
    fuse = {d: 1024 * d + 2 * d + d * 2 * 1024 for d in (64, 128)}
    assert fuse[128] / fuse[64] == 2.0
    assert m("sk_fuse_params_ratio", channels=1024, reduction=8) == 2.0
    assert m("sk_fuse_params_ratio", channels=128, reduction=8) == 1.0  # d = L = 32 both


def test_conv_stack_costs() -> None:
    five, two_threes = [{"kernel": 5}], [{"kernel": 3}, {"kernel": 3}]
    # 25 vs 18 weights per in/out channel pair, and the same per output pixel for MACs
    assert m("conv_stack_ratio", numerator=two_threes, denominator=five, in_channels=4) == 18 / 25
    value, detail = MEASURES["conv_stack_ratio"].evaluate(
        numerator=two_threes, denominator=five, in_channels=4, resolution=8, metric="macs"
    )
    assert value == 18 / 25 and detail == f"{2 * 8 * 8 * 16 * 9:,} / {8 * 8 * 16 * 25:,} macs"
    factored = [{"kernel": [1, 7]}, {"kernel": [7, 1]}]
    assert m("conv_stack_ratio", numerator=factored, denominator=[{"kernel": 7}]) == 14 / 49
    dilated = [{"kernel": 3, "dilation": 2}]
    assert m("conv_stack_ratio", numerator=dilated, denominator=five, metric="macs") == 9 / 25
    grouped = [{"kernel": 3, "groups": 2}]
    assert m("conv_stack_ratio", numerator=grouped, denominator=[{"kernel": 3}]) == 0.5
    dw = [{"kernel": 3, "groups": "depthwise"}, {"kernel": 1}]  # 9C + C^2 against 9C^2, C = 8
    assert m("conv_stack_ratio", numerator=dw, denominator=[{"kernel": 3}], in_channels=8) == (
        pytest.approx((9 * 8 + 64) / (9 * 64))
    )
    widths = [{"kernel": 1, "out": 16}]  # 8 -> 16 against 8 -> 8: twice the weights
    assert m("conv_stack_ratio", numerator=widths, denominator=[{"kernel": 1}], in_channels=8) == 2
    with pytest.raises(MeasureError, match="groups=3 does not divide"):
        m("conv_stack_ratio", numerator=[{"kernel": 3, "groups": 3}], denominator=five)
    assert m(
        "depthwise_separable_ratio", in_channels=8, out_channels=8, kernel=3, resolution=4
    ) == (pytest.approx(1 / 8 + 1 / 9))


def test_receptive_field() -> None:
    assert m("receptive_field", layers=[{"kernel": 3}, {"kernel": 3}]) == 5
    assert m("receptive_field", layers=[{"kernel": 3, "dilation": 2}]) == 5
    assert m("receptive_field", layers=[{"kernel": [1, 7]}, {"kernel": [7, 1]}]) == 7
    assert m("receptive_field", layers=[{"kernel": 3, "stride": 2}, {"kernel": 3}]) == 1 + 2 + 4


def test_compound_scaling_ratio() -> None:
    # MACs of a same-padded 3x3 stack grow as depth * width^2 * resolution^2
    assert m("compound_scaling_ratio", alpha=1, beta=1, gamma=1) == 1.0
    assert m("compound_scaling_ratio", alpha=2, beta=1, gamma=1) == 2.0
    assert m("compound_scaling_ratio", alpha=1, beta=2, gamma=1) == 4.0
    assert m("compound_scaling_ratio", alpha=1, beta=1, gamma=2) == 4.0
    # alpha 1.2, beta 1.1, gamma 1.15: depth 10 -> 12, width 80 -> 88, 224 -> 258 pixels
    assert m("compound_scaling_ratio", alpha=1.2, beta=1.1, gamma=1.15) == pytest.approx(
        1.2 * 1.1**2 * (258 / 224) ** 2
    )


def test_ghost_measures() -> None:
    # 16 -> 16, ratio 2: primary 1x1 16 -> 8 (128 weights) + depthwise 3x3 on 8 (72) = 200
    assert m("ghost_module_reduction", in_channels=16, out_channels=16, ratio=2, resolution=8) == (
        256 / 200
    )
    # ratio 4: primary 16 -> 4 (64) + depthwise 3x3 making 12 (108) = 172
    args = {"in_channels": 16, "out_channels": 16, "ratio": 4, "resolution": 8}
    assert m("ghost_module_reduction", metric="params", **args) == 256 / 172
    assert m("ghost_output_matches", **args) == 1
    assert m("ghost_intrinsic_channels", out_channels=16, ratio=2) == 8
    assert m("ghost_intrinsic_channels", out_channels=16, ratio=4) == 4
    assert m("ghost_intrinsic_channels", out_channels=15, ratio=2) == 8  # ceil(7.5)
    assert m("ghost_surplus_channels", out_channels=15, ratio=2) == 1  # 8 + 8 - 15
    assert m("ghost_surplus_channels", out_channels=16, ratio=2) == 0
    assert m("ghost_surplus_channels", out_channels=10, ratio=4) == 2  # 3 + 9 - 10
    with pytest.raises(MeasureError, match="ratio >= 2"):
        m("ghost_intrinsic_channels", out_channels=16, ratio=1)


def test_se_measures() -> None:
    weights = sum(2 * n * c * c // 16 for n, c in SE50_STAGES)
    params = [2 * n * c * c // 16 + n * (c // 16 + c) for n, c in SE50_STAGES]
    assert weights == 2_514_944 and sum(params) == 2_530_992
    assert m("se_added_params", model="se_resnet50") == 2_530_992
    assert m("se_params_increase", model="se_resnet50") == pytest.approx(2_530_992 / 25_557_032)
    assert m("se_formula_ratio", model="se_resnet50") == 1.0
    assert m("se_added_over_formula", model="se_resnet50") == pytest.approx(2_530_992 / weights)
    assert m("se_final_stage_share", model="se_resnet50") == pytest.approx(1_579_392 / 2_530_992)
    # SE's FC MACs run on 1x1 maps: exactly its weights; ResNet-50 has 4,089,184,256 MACs
    assert m("se_macs_increase", model="se_resnet50") == pytest.approx(weights / 4_089_184_256)
    assert m("se_macs_increase", model="se_resnet50") < m("se_flops_increase", model="se_resnet50")
    assert m("se_block_weights", channels=256, reduction=16) == 2 * 256 * 256 / 16 == 8192
    assert m("se_block_weights", channels=64, reduction=4) == 2 * 64 * 16
    # SENet-18: 8 SE blocks (16 FC), 1 stem + 16 block + 3 projection convs
    assert m("se_fc_per_conv", model="senet18") == 16 / 20


def test_se_measures_against_published_counts() -> None:
    """The claims' SE numbers (from cached meta builds) against independent truth: the
    published parameter counts of SE-ResNet-50 and ResNet-50, and the hand-computed stage4 SE
    parameters: 3 blocks x (2048*128 + 128 + 128*2048 + 2048)."""
    assert m("se_added_params", model="se_resnet50") == 28_088_024 - 25_557_032
    stage4 = 3 * (2048 * 128 + 128 + 128 * 2048 + 2048)
    assert stage4 == 1_579_392
    share = m("se_final_stage_share", model="se_resnet50")
    assert share == pytest.approx(stage4 / 2_530_992)


def test_final_stage_share_means_the_final_stage() -> None:
    """Without SE in stage4 the final stage holds no SE weights; the last SE stage is stage3."""
    kwargs = {"model": "se_resnet50", "model_kwargs": {"se_stages": [1, 2, 3]}}
    assert m("se_final_stage_share", **kwargs) == 0.0
    assert m("se_last_se_stage_share", **kwargs) == pytest.approx(
        792_960 / (25_392 + 133_248 + 792_960)
    )
    assert m("se_last_se_stage_share", model="se_resnet50") == m(
        "se_final_stage_share", model="se_resnet50"
    )


def test_unmeasurable_claim_is_an_error_verdict() -> None:
    v = check_claim(_claim(args={"model": "no_such_model_here"}))
    assert v.holds is None and v.measured is None and v.status == "error"
    assert "unknown model 'no_such_model_here'" in v.error and "\n" not in v.error
    v = check_claim(_claim(args={"model": "lenet5", "model_kwargs": {"bogus": 1}}))
    assert v.status == "error" and "cannot be built" in v.error


# --- decision rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "measured", "expected", "tolerance", "holds", "deviation"),
    [
        ("relative", 5.0, 4.0, 0.25, True, 0.25),  # exactly on the edge
        ("relative", 5.0001, 4.0, 0.25, False, 0.250025),
        ("relative", 3.0, 4.0, 0.25, True, -0.25),
        ("relative", 3.0, -4.0, 0.25, False, -1.75),
        ("absolute", 0.5, 0.25, 0.25, True, 0.25),
        ("absolute", 0.5, 0.25, 0.125, False, 0.25),
        ("absolute", 0.0, 0.0, 0.0, True, 0.0),
        ("at_least", 2.0, 2.0, 0.0, True, 0.0),
        ("at_least", 1.5, 2.0, 0.0, False, -0.5),
        ("at_most", 2.0, 2.0, 0.0, True, 0.0),
        ("at_most", 2.5, 2.0, 0.0, False, 0.5),
        ("greater_than", 2.0, 2.0, 0.0, False, 0.0),
        ("greater_than", 2.5, 2.0, 0.0, True, 0.5),
        ("less_than", 2.0, 2.0, 0.0, False, 0.0),
        ("less_than", 1.5, 2.0, 0.0, True, -0.5),
    ],
)
def test_decision_rules(kind, measured, expected, tolerance, holds, deviation) -> None:
    got = decide(kind, measured, expected, tolerance)
    assert got[0] is holds and got[1] == pytest.approx(deviation)


@pytest.mark.parametrize(
    ("measured", "holds", "deviation"),
    [(1.0, True, 0.0), (2.0, True, 0.0), (1.5, True, 0.0), (0.5, False, -0.5), (3.0, False, 1.0)],
)
def test_between_rule(measured, holds, deviation) -> None:
    assert decide("between", measured, low=1.0, high=2.0) == (holds, deviation)


def test_kinds_are_all_covered() -> None:
    assert set(KINDS) == {
        "relative",
        "absolute",
        "at_least",
        "at_most",
        "greater_than",
        "less_than",
        "between",
    }
    with pytest.raises(UsageError, match="unknown kind 'roughly'"):
        decide("roughly", 1.0, 1.0)


def test_verdict_record() -> None:
    v = check_claim(
        _claim(
            source_id="Z1",
            reading="r",
            kind="between",
            expected=None,
            low=60_000,
            high=62_000,
            args={"model": "lenet5"},
        )
    )
    assert v.holds is True and v.measured == 61_706 and v.deviation == 0.0
    record = v.to_dict()
    json.dumps(record)  # JSON-ready
    assert {k: record[k] for k in ("id", "source_id", "reading", "kind", "low", "high")} == {
        "id": "x",
        "source_id": "Z1",
        "reading": "r",
        "kind": "between",
        "low": 60_000,
        "high": 62_000,
    }
    assert record["measure"] == "params" and record["args"] == {"model": "lenet5"}
    assert record["unit"] == "count" and record["verdict"] == "holds" and record["holds"] is True
    assert v.id == "x" and v.source_id == "Z1" and v.unit == "count"


# --- validation ----------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "claims.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _entry(**fields: str) -> str:
    base = {
        "id": '"c1"',
        "text": '"t"',
        "source": '"s"',
        "measure": '"params"',
        "args": '{ model = "lenet5" }',
        "expected": "61706",
    }
    base.update(fields)
    return "[[claim]]\n" + "".join(f"{k} = {v}\n" for k, v in base.items() if v is not None)


@pytest.mark.parametrize(
    ("text", "field", "match"),
    [
        (_entry(measure='"no_such"'), "measure", "unknown measure 'no_such'"),
        (_entry(args='{ modl = "lenet5" }'), "args.modl", "is not an argument of 'params'"),
        (_entry(args="{}"), "args.model", "is required"),
        (_entry(args="{ model = 3 }"), "args.model", "must be str"),
        (
            _entry(measure='"stage_connections"', args='{ model = "densenet121", stage = "1" }'),
            "args.stage",
            "must be an integer",
        ),
        (
            _entry(measure='"spec_ratio"', args='{ numerator = "lenet5", denominator = "x" }'),
            "args.numerator",
            "must be a table",
        ),
        (
            _entry(measure='"conv_stack_ratio"', args="{ numerator = [{}], denominator = [] }"),
            "args.numerator[0]",
            "needs a kernel",
        ),
        (
            _entry(
                measure='"conv_stack_ratio"',
                args="{ numerator = [{ kernel = 3, out = 0 }], denominator = [{ kernel = 3 }] }",
            ),
            "args.numerator[0].out",
            "must be an integer in 1..1,000,000",
        ),
        (
            _entry(
                measure='"compound_scaling_ratio"',
                args="{ alpha = -1.2, beta = 1.1, gamma = 1.15 }",
            ),
            "args.alpha",
            "must be a finite number in (0, 1e+06]",
        ),
        (
            _entry(measure='"layer_count"', args='{ model = "lenet5", layer_type = "convs" }'),
            "args.layer_type",
            "must be 'conv' or 'fc'",
        ),
        (_entry(expected='"3.8 G"'), "expected", "must be a number"),
        (_entry(expected="nan"), "expected", "must be finite"),
        (_entry(expected="inf"), "expected", "must be finite"),
        (_entry(expected="true"), "expected", "must be a number"),
        (_entry(expected="0"), "expected", "expected = 0 cannot be a relative claim"),
        (_entry(expected=None), "expected", "expected is required"),
        (_entry(kind='"roughly"'), "kind", "kind must be one of"),
        (_entry(kind='"between"', low="1"), "between", "needs both bounds, low and high"),
        (_entry(kind='"between"', low="2", high="1"), "low", "must not exceed high"),
        (_entry(kind='"between"', low="1", high='"x"'), "high", "must be a number"),
        (_entry(kind='"absolute"', low="1"), "low", "applies to kind 'between' only"),
        (_entry(kind='"at_most"', tolerance="0.1"), "tolerance", "applies to relative and"),
        (_entry(tolerance="-0.1"), "tolerance", "must be >= 0"),
        (_entry(kind='"published"'), "kind", "belongs in a [[published]] entry"),
        (_entry(text='""'), "text", "must be a non-empty string"),
        (_entry(source_id="7"), "source_id", "must be an id"),
        (_entry(args='"lenet5"'), "args", "args must be a table"),
        (
            _entry(args='{ model = "mypkg.models:build" }'),
            "args.model",
            "may only name zoo models, not module:callable",
        ),
        (
            _entry(args='{ model = "nets/my.py:Net" }'),
            "args.model",
            "may only name zoo models",
        ),
        (
            _entry(
                measure='"spec_ratio"',
                args='{ numerator = { model = "os:system" }, denominator = { model = "lenet5" } }',
            ),
            "args.numerator.model",
            "may only name zoo models",
        ),
        (
            _entry(
                measure='"spec_ratio"',
                args='{ numerator = { model = "lenet5", variant = "wider" }, '
                'denominator = { model = "lenet5" } }',
            ),
            "args.numerator.variant",
            "is unknown",
        ),
        (
            _entry(
                measure='"spec_ratio"',
                args='{ numerator = { model = "lenet5", weights = "x" }, '
                'denominator = { model = "lenet5" } }',
            ),
            "args.numerator.weights",
            "is not a field",
        ),
        (_entry(part_of='"Q9"'), "part_of", "names no claim's source_id"),
        (
            _entry(source_id='"Q1"') + _entry(id='"c2"', source_id='"Q1"'),
            "source_id",
            "already claim 'c1'",
        ),
        (_entry() + _entry(), "id", "id is duplicated"),
    ],
)
def test_validation_errors_name_claim_and_field(tmp_path, text: str, field: str, match) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError) as exc:
        load_claims(path)
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: claim '")
    assert re.search(r"claim 'c[12]'", message), message
    assert field in message and match in message, message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('[[claim]]\nid = "x"\nbogus = 1\n', "claim #1 is malformed ('x'): unknown field 'bogus'"),
        ("[[claim]]\nid = 3\n", "claim #1 is malformed (no id): id must be a string"),
        ('[[claim]]\nid = "a b"\n', "id 'a b' must be letters"),
        ('[[published]]\nid = "p"\ntext = "t"\nsource = "s"\nmeasure = "params"\n', "malformed"),
        ('[[published]]\nid = "p"\ntext = "t"\nsource = "s"\nkind = "relative"\n', "kind of a"),
        ('title = "mine"\n', "unknown top-level key 'title'"),
        ("claim = 3\n", "claim must be an array of tables"),
    ],
)
def test_malformed_files(tmp_path, text: str, match: str) -> None:
    with pytest.raises(UsageError, match=re.escape(match)) as exc:
        load_claims(_write(tmp_path, text))
    assert "\n" not in str(exc.value)


def test_oversized_file_is_refused_unread(tmp_path) -> None:
    path = _write(tmp_path, "# " + "x" * MAX_FILE_BYTES + "\n")
    with pytest.raises(UsageError, match="larger than the 1 MiB"):
        load_claims(path)


def test_check_claim_validates_args_of_code_built_claims() -> None:
    with pytest.raises(UsageError, match="claim 'x': bad args for measure 'params': args.mdl"):
        check_claim(_claim(args={"mdl": "lenet5"}))
    with pytest.raises(UsageError, match="may only name zoo models"):
        check_claim(_claim(args={"model": "evil.module:build"}))


def test_published_entries_never_get_a_verdict(tmp_path) -> None:
    path = _write(
        tmp_path,
        _entry()
        + '[[published]]\nid = "acc"\nsource_id = "A1"\ntext = "90% top-1"\nsource = "paper"\n'
        'published = "90%"\n',
    )
    assert [c.id for c in load_claims(path)] == ["c1"]
    (pub,) = load_published(path)
    assert pub.kind == "published" and pub.measure == "" and pub.expected is None
    verdicts = check_claims(load_claims(path, published=True))
    assert [v.status for v in verdicts] == ["holds", "published"]
    record = verdicts[1].to_dict()
    assert record["holds"] is None and record["measured"] is None
    assert record["verdict"] == "published" and record["source_id"] == "A1"


def test_statement_verdicts_need_every_part(tmp_path) -> None:
    path = _write(
        tmp_path,
        _entry(source_id='"Q1"')
        + _entry(id='"c2"', part_of='"Q1"', expected="5", kind='"absolute"')
        + _entry(id='"c3"', source_id='"Q2"'),
    )
    statements = statement_verdicts(check_claims(load_claims(path)))
    assert statements["Q1"][0] is False and [v.id for v in statements["Q1"][1]] == ["c1", "c2"]
    assert statements["Q2"][0] is True


# --- the default claims file ---------------------------------------------------------------


def _seed_ids() -> list[str]:
    return re.findall(r"^\| ([A-Z]\d+) \|", SEED.read_text(encoding="utf-8"), flags=re.M)


@pytest.mark.skipif(not SEED.is_file(), reason="../shared/reference/seed_claims.md not present")
def test_every_seed_statement_is_claimed_exactly_once() -> None:
    ids = _seed_ids()
    assert len(ids) == 40 and len(set(ids)) == 40
    tagged = [c.source_id for c in load_claims(published=True) if c.source_id]
    assert sorted(tagged) == sorted(ids)  # each exactly once, nothing else tagged


def test_default_claims_cover_the_seed_ids() -> None:
    """The same without the reference file: C1-C8, G1-G4, D1-D15, S1-S6, K1-K4, P1-P3."""
    expected = [f"C{i}" for i in range(1, 9)] + [f"G{i}" for i in range(1, 5)]
    expected += [f"D{i}" for i in range(1, 16)] + [f"S{i}" for i in range(1, 7)]
    expected += [f"K{i}" for i in range(1, 5)] + [f"P{i}" for i in range(1, 4)]
    claims = load_claims()
    assert sorted(c.source_id for c in claims if c.source_id) == sorted(expected)
    for c in claims:
        assert c.text and c.source and c.measure in MEASURES
    published = load_published()
    assert published and all(c.kind == "published" and c.source_id is None for c in published)


def _by_id(claim_id: str) -> Claim:
    return next(c for c in load_claims() if c.id == claim_id)


def test_known_verdicts_from_the_brief() -> None:
    ten_pct = check_claim(_by_id("se_resnet50_params_increase"))
    assert ten_pct.source_id == "C3" and ten_pct.holds  # "SE adds ~10% parameters"
    assert ten_pct.measured == pytest.approx(2_530_992 / 25_557_032)
    assert check_claim(_by_id("se_resnet50_r16_params_increase")).holds  # S3
    final = check_claim(_by_id("se_resnet50_final_stage_96pct"))
    assert final.source_id == "C5" and final.holds is False  # "96% in the final stage"
    assert final.measured == pytest.approx(1_579_392 / 2_530_992)
    assert final.to_dict()["verdict"] == "does not hold"


def test_false_claims_are_judged_false() -> None:
    fc = check_claim(_by_id("senet18_fc_per_conv"))  # C7: one SE per block, not per conv
    assert fc.source_id == "C7" and fc.measured == 0.8 and fc.holds is False
    g4 = check_claim(_by_id("se_every_block_10pct_compute_efficientnet_b0"))
    assert g4.source_id == "G4" and g4.measured < 0.01 and g4.holds is False


def test_moved_se_stages_follow_the_model() -> None:
    claim = _by_id("se_resnet50_final_stage_96pct")
    moved = dataclasses.replace(
        claim, args={**claim.args, "model_kwargs": {"se_stages": [1, 2, 3]}}
    )
    assert check_claim(moved).measured == 0.0  # the final stage has no SE now


# --- moved from test_se_claims.py ----------------------------------------------------------


@pytest.fixture(scope="module")
def verdicts() -> list[Verdict]:
    return check_claims()


_FOLLOWED = (
    "se_resnet50_added_params",
    "se_resnet50_final_stage_96pct",
    "se_resnet50_final_stage_majority",
    "se_resnet50_without_final_stage",
    "depthwise_separable_cost",
)


@pytest.fixture(scope="module")
def some_verdicts() -> list[Verdict]:
    """The verdicts test_verdicts_follow_the_measurements reads (fast: five claims)."""
    return check_claims([c for c in load_claims() if c.id in _FOLLOWED])


def test_every_default_claim_has_a_verdict(verdicts) -> None:
    claims = load_claims()
    assert len(claims) >= 8
    assert [v.claim for v in verdicts] == claims
    for v in verdicts:
        assert isinstance(v.holds, bool)
        assert math.isfinite(v.measured) and math.isfinite(v.deviation)
        assert v.claim.source and v.claim.text and v.claim.measure in MEASURES


def test_verdicts_follow_the_measurements(some_verdicts) -> None:
    by_id = {v.claim.id: v for v in some_verdicts}
    added = by_id["se_resnet50_added_params"]
    assert added.measured == 2_530_992 and added.holds  # ~2.5M within 5%
    share = by_id["se_resnet50_final_stage_96pct"]
    assert share.measured == pytest.approx(1_579_392 / 2_530_992)
    assert not share.holds  # 62%, not 96%
    assert by_id["se_resnet50_final_stage_majority"].holds
    assert by_id["se_resnet50_without_final_stage"].measured == pytest.approx(0.0372, abs=5e-5)
    assert by_id["se_resnet50_without_final_stage"].holds
    dw = by_id["depthwise_separable_cost"]
    assert dw.measured == pytest.approx(1 / 256 + 1 / 9) and dw.holds


def test_changing_the_model_changes_the_measurement() -> None:
    claim = next(c for c in load_claims() if c.id == "se_resnet50_added_params")
    base = check_claim(claim)
    r8 = check_claim(
        dataclasses.replace(claim, args={**claim.args, "model_kwargs": {"se_reduction": 8}})
    )
    assert base.measured == 2_530_992
    assert r8.measured == 5_046_880  # weights double, biases of the wider FC1 grow
    assert base.holds and not r8.holds
    assert r8.deviation == pytest.approx(5_046_880 / 2_500_000 - 1)


def test_user_claims_file(tmp_path) -> None:
    path = _write(
        tmp_path,
        """
[[claim]]
id = "resnet18_gmacs"
text = "ResNet-18 needs 1.8 G multiply-adds"
source = "ResNet paper"
measure = "gmacs"
args = { model = "resnet18" }
expected = 1.814
tolerance = 0.001
kind = "absolute"
unit = "GMACs"

[[claim]]
id = "dw_5x5"
text = "A depthwise-separable 5x5 conv costs 1/N + 1/25"
source = "MobileNet paper"
measure = "depthwise_separable_ratio"
args = { in_channels = 64, out_channels = 128, kernel = 5, resolution = 8 }
expected = 0.0478125
tolerance = 0.001
""",
    )
    claims = load_claims(path)
    assert [c.id for c in claims] == ["resnet18_gmacs", "dw_5x5"]
    assert claims[1].kind == "relative"  # the default
    resnet18, dw = check_claims(claims)
    assert resnet18.holds and resnet18.measured == pytest.approx(1.814, abs=0.001)
    assert dw.measured == pytest.approx(1 / 128 + 1 / 25) and dw.holds


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[[claim]\nid = 1", "not a readable TOML claims file"),
        ('[[claim]]\nid = "x"\nbogus = 1\n', "claim #1 is malformed"),
        (
            '[[claim]]\nid = "x"\ntext = "t"\nsource = "s"\nmeasure = "no_such"\nexpected = 1\n',
            "unknown measure 'no_such'",
        ),
        (
            '[[claim]]\nid = "x"\ntext = "t"\nsource = "s"\nmeasure = "gmacs"\nexpected = 1\n'
            'kind = "roughly"\n',
            "kind must be one of",
        ),
        ("# nothing here\n", "no \\[\\[claim\\]\\] entries"),
        (
            '[[claim]]\nid = "x"\ntext = "t"\nsource = "s"\nmeasure = "gmacs"\nexpected = 1\n'
            'args = { modl = "resnet18" }\n',
            "claim 'x': bad args for measure 'gmacs'",
        ),
        (
            '[[claim]]\nid = "x"\ntext = "t"\nsource = "s"\nmeasure = "gmacs"\n'
            'expected = "3.8 G"\nargs = { model = "resnet18" }\n',
            "claim 'x': expected must be a number",
        ),
    ],
)
def test_bad_claims_file_names_the_file(tmp_path, text: str, match: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(UsageError, match=match) as exc:
        load_claims(path)
    assert str(exc.value).startswith(str(path))
    assert "\n" not in str(exc.value)


def test_missing_claims_file(tmp_path) -> None:
    with pytest.raises(UsageError, match="no such claims file"):
        load_claims(tmp_path / "absent.toml")


def test_default_claims_file_ships_with_the_package() -> None:
    assert DEFAULT_CLAIMS.is_file()
    assert all(isinstance(c, Claim) for c in load_claims(DEFAULT_CLAIMS))
