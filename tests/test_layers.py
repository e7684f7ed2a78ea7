"""Per-layer rows (--depth): hand-computed LeNet-5 rows, totals equal the model's, the
(other) row for work outside every child, JSON round trip, and the depth bounds."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from cnnbench.errors import UsageError
from cnnbench.models import create_model
from cnnbench.static.layers import MAX_DEPTH, layer_costs


def test_lenet5_rows_are_the_hand_counts() -> None:
    rows = {r.name: r for r in layer_costs(create_model("lenet5"), (1, 32, 32), depth=1)}
    assert rows["stem"].macs == 6 * 28 * 28 * 5 * 5  # conv 1->6, 5x5, 28x28 output
    assert rows["stage1"].macs == 16 * 10 * 10 * 6 * 5 * 5  # conv 6->16 on 14x14
    assert rows["head"].macs == 400 * 120 + 120 * 84 + 84 * 10
    assert rows["stem"].output_shape == [6, 14, 14] and rows["head"].output_shape == [10]
    assert sum(r.params for r in rows.values()) == 61_706


def test_depth_two_of_resnet50_sums_to_the_published_totals() -> None:
    rows = layer_costs(create_model("resnet50"), (3, 224, 224), depth=2)
    top = [r for r in rows if r.depth == 1]
    assert sum(r.params for r in top) == 25_557_032
    assert sum(r.macs for r in top) == 4_089_184_256  # torchvision's 4.09 GFLOPS (v1.5)
    assert [r.name for r in rows if r.depth == 2][:3] == ["stem.0", "stem.1", "stage1.0"]
    # the 16 bottlenecks and the stage containers are all there, each with its own output
    assert sum(r.type == "Bottleneck" for r in rows) == 3 + 4 + 6 + 3
    stage4 = next(r for r in rows if r.name == "stage4")
    assert stage4.macs == sum(r.macs for r in rows if r.name.startswith("stage4."))


class Outside(nn.Module):
    """A matmul in the model's own forward, outside its only child."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1, bias=False)
        self.register_buffer("w", torch.ones(4 * 8 * 8, 5))

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.conv(x).flatten(1) @ self.w


def test_work_outside_every_child_is_an_other_row() -> None:
    rows = {r.name: r for r in layer_costs(Outside(), (3, 8, 8), depth=1)}
    assert rows["conv"].macs == 4 * 8 * 8 * 3
    assert rows["(other)"].macs == 4 * 8 * 8 * 5  # the matmul, hand-counted


@pytest.mark.parametrize("depth", [0, MAX_DEPTH + 1, "2"])
def test_depth_is_checked(depth: object) -> None:
    with pytest.raises(UsageError, match="--depth"):
        layer_costs(create_model("lenet5"), (1, 32, 32), depth=depth)  # type: ignore[arg-type]


def test_info_and_profile_depth_in_json(run_cli, tmp_path) -> None:
    code, stdout, stderr = run_cli("info", "lenet5", "--depth", "2", "--json")
    assert code == 0, stderr
    layers = json.loads(stdout)["layers"]
    assert {k for k in layers[0]} >= {"name", "type", "depth", "output_shape", "params", "macs"}
    assert sum(r["macs"] for r in layers if r["depth"] == 1) == 416_520
    code, _, stderr = run_cli(
        "profile", "lenet5", "--static-only", "--depth", "1", "-q", "--out", str(tmp_path),
        "-f", "json,md,html",
    )  # fmt: skip
    assert code == 0, stderr
    saved = json.loads((tmp_path / "profile-lenet5.json").read_text())
    assert [r["name"] for r in saved["results"][0]["layers"]] == ["stem", "stage1", "head"]
    assert "## Layers" in (tmp_path / "profile-lenet5.md").read_text()
    assert "<h2>Layers</h2>" in (tmp_path / "profile-lenet5.html").read_text()
