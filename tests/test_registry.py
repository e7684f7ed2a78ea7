"""The registry: names, metadata, errors."""

from __future__ import annotations

import pytest
from torch import nn

from cnnbench.models import (
    UnknownModelError,
    create_model,
    get_model_info,
    list_models,
    register_model,
)


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(UnknownModelError, match="did you mean resnet50"):
        create_model("resnet5O")


def test_unknown_name_without_close_match_points_to_the_list() -> None:
    with pytest.raises(UnknownModelError, match="cnnbench list"):
        get_model_info("zzzzzzzz")


def test_duplicate_registration_raises() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @register_model(family="lenet", paper="x")
        def lenet5() -> nn.Module:  # noqa: F811 - the point is the clash
            return nn.Identity()


def test_list_models_pattern() -> None:
    assert list_models("lenet*") == ["lenet5"]
    assert "resnet50" in list_models("resnet*")
    assert all(n.startswith("efficientnet_b") for n in list_models("efficientnet_b*"))
    assert len(list_models("efficientnet_b*")) == 8


def test_metadata_and_model_info_travel_with_the_model() -> None:
    model = create_model("lenet5")
    assert model.model_info.input_size == (1, 32, 32)
    assert model.model_info.num_classes == 10
    assert model.model_info.family == "lenet"
    assert create_model("lenet5", num_classes=7).model_info.num_classes == 7


def test_se_metadata() -> None:
    info = get_model_info("se_resnet50")
    assert info.se_reduction == 16 and info.se_stages == (1, 2, 3, 4) and info.has_se
    assert not get_model_info("resnet50").has_se
    m = create_model("se_resnet50", se_stages=(1, 2, 3))
    assert m.model_info.se_stages == (1, 2, 3)
    m = create_model("se_resnet50", se_reduction=None)
    assert not m.model_info.has_se
