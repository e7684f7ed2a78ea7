"""SE overhead (cnnbench.static.se); the claims checker's tests are in test_claims.py.

Hand-computed SENet formula per stage of SE-ResNet-50 (r = 16, C_s = 256/512/1024/2048,
N_s = 3/4/6/3): (2/r) * N_s * C_s^2 = 24,576 / 131,072 / 786,432 / 1,572,864.
"""

from __future__ import annotations

import math

import pytest

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
