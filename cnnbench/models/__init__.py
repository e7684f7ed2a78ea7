"""The cnnbench model zoo, importable as ``cnnbench.models``.

Importing this package imports every family module, which registers its builders.
"""

from ._layers import SqueezeExcite, Stage, StagedNet, make_divisible, se_block_types, staged_net
from ._published import CitedAccuracy, chosen_top1
from ._registry import (
    ModelInfo,
    UnknownModelError,
    create_model,
    get_model_info,
    info_of,
    list_models,
    register_model,
    set_model_info,
)

# Family modules register their builders on import.
from . import (  # noqa: E402,F401  isort: skip
    alexnet,
    densenet,
    efficientnet,
    ghostnet,
    inception,
    inception_v4,
    lenet,
    mobilenet,
    resnet,
    shufflenet,
    sknet,
    vgg,
)

__all__ = [
    "CitedAccuracy",
    "ModelInfo",
    "SqueezeExcite",
    "Stage",
    "StagedNet",
    "UnknownModelError",
    "chosen_top1",
    "create_model",
    "get_model_info",
    "info_of",
    "list_models",
    "se_block_types",
    "staged_net",
    "make_divisible",
    "register_model",
    "set_model_info",
]
