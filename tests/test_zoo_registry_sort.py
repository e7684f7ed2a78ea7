"""`list_models` orders names naturally, as a person reads them."""

from cnnbench.models import list_models


def test_list_models_sorts_digit_runs_by_value() -> None:
    names = list_models("resnet*")
    assert names.index("resnet18") < names.index("resnet34") < names.index("resnet50")
    assert names.index("resnet50") < names.index("resnet101") < names.index("resnet152")
