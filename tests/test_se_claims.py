"""SE overhead (cnnbench.se) and the claims checker (cnnbench.claims).

Hand-computed SENet formula per stage of SE-ResNet-50 (r = 16, C_s = 256/512/1024/2048,
N_s = 3/4/6/3): (2/r) * N_s * C_s^2 = 24,576 / 131,072 / 786,432 / 1,572,864.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from cnnbench.claims import (
    DEFAULT_CLAIMS,
    MEASURES,
    Claim,
    Verdict,
    check_claim,
    check_claims,
    load_claims,
)
from cnnbench.errors import UsageError
from cnnbench.static.se import se_overhead

STAGES = [("stage1", 3, 256), ("stage2", 4, 512), ("stage3", 6, 1024), ("stage4", 3, 2048)]


def _formula(r: int) -> list[int]:
    return [2 * n * c * c // r for _, n, c in STAGES]


@pytest.fixture(scope="module")
def se50():
    return se_overhead("se_resnet50")


@pytest.fixture(scope="module")
def se50_r8():
    return se_overhead("se_resnet50", se_reduction=8)


def test_formula_per_stage(se50) -> None:
    assert _formula(16) == [24_576, 131_072, 786_432, 1_572_864]
    assert [r.stage for r in se50.rows] == [s for s, _, _ in STAGES]
    assert [r.se_blocks for r in se50.rows] == [n for _, n, _ in STAGES]
    assert [r.channels for r in se50.rows] == [c for _, _, c in STAGES]
    assert [r.reduction for r in se50.rows] == [16.0] * 4
    assert [r.formula_params for r in se50.rows] == _formula(16)
    # the formula neglects biases: it is exactly the measured SE weights
    assert [r.weight_params for r in se50.rows] == _formula(16)
    # with biases: + N_s * (C_s/r + C_s)
    assert [r.params for r in se50.rows] == [
        f + n * (c // 16 + c) for f, (_, n, c) in zip(_formula(16), STAGES, strict=True)
    ]


def test_added_params_and_shares(se50) -> None:
    assert se50.params == 28_088_024
    assert se50.base_params == 25_557_032  # the same network built with SE switched off
    assert se50.added_params == 2_530_992 == se50.se_params
    assert se50.params_increase == pytest.approx(2_530_992 / 25_557_032)
    assert se50.share_of("stage4") == pytest.approx(1_579_392 / 2_530_992)
    assert 0.624 < se50.share_of("stage4") < 0.625
    assert math.isclose(sum(r.share for r in se50.rows), 1.0)
    assert se50.share_of("stem") == 0.0


def test_compute_split_into_fc_and_gate(se50) -> None:
    for row, (_, n, c) in zip(se50.rows, STAGES, strict=True):
        assert row.fc1_macs == row.fc2_macs == n * c * (c // 16)  # 1x1 convs on a 1x1 map
        assert row.fc_flops == 2 * (row.fc1_macs + row.fc2_macs) + n * (c // 16 + c)  # + biases
        assert row.gate_flops > 0
    # SE's own MACs are the whole MAC difference to the SE-free network
    assert se50.macs - se50.base_macs == sum(r.fc1_macs + r.fc2_macs for r in se50.rows)
    assert 0 < se50.macs_increase < se50.flops_increase < 0.01


def test_reduction_8_doubles_the_formula(se50, se50_r8) -> None:
    assert [r.formula_params for r in se50_r8.rows] == _formula(8)
    assert [r.formula_params for r in se50_r8.rows] == [2 * f for f in _formula(16)]
    assert [r.reduction for r in se50_r8.rows] == [8.0] * 4
    assert se50_r8.base_params == se50.base_params
    assert se50_r8.added_params > 1.99 * se50.added_params
    assert se50_r8.macs_increase > 1.99 * se50.macs_increase


def test_se_stages_without_the_final_stage() -> None:
    overhead = se_overhead("se_resnet50", se_stages=(1, 2, 3))
    assert [r.stage for r in overhead.rows] == ["stage1", "stage2", "stage3"]
    assert overhead.added_params == 25_392 + 133_248 + 792_960
    assert overhead.params_increase == pytest.approx(0.0372, abs=5e-5)  # the paper's "~4%"


def test_model_without_se_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="resnet50: has no SE blocks"):
        se_overhead("resnet50")


@pytest.mark.parametrize("name", ["ghostnet", "mobilenet_v3_large", "efficientnet_b0"])
def test_other_se_families(name: str) -> None:
    overhead = se_overhead(name)
    assert overhead.rows and overhead.added_params == overhead.se_params > 0
    assert math.isclose(sum(r.share for r in overhead.rows), 1.0)


# --- claims ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verdicts() -> list[Verdict]:
    return check_claims()


def test_every_default_claim_has_a_verdict(verdicts) -> None:
    claims = load_claims()
    assert len(claims) >= 8
    assert [v.claim for v in verdicts] == claims
    for v in verdicts:
        assert isinstance(v.holds, bool)
        assert math.isfinite(v.measured) and math.isfinite(v.deviation)
        assert v.claim.source and v.claim.text and v.claim.measure in MEASURES


def test_verdicts_follow_the_measurements(verdicts) -> None:
    by_id = {v.claim.id: v for v in verdicts}
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


def _write(tmp_path, text: str):
    path = tmp_path / "claims.toml"
    path.write_text(text, encoding="utf-8")
    return path


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
