"""Model registry: ``@register_model`` builders with metadata, ``create_model`` and ``list_models``.

Every builder is registered under its function name. Metadata travels with the built model as
``model.model_info`` so that the profiler never has to guess input size or SE layout.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "ModelInfo",
    "UnknownModelError",
    "register_model",
    "create_model",
    "list_models",
    "get_model_info",
]


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a registered model.

    ``input_size`` is (channels, height, width) of one image at the model's native resolution.
    ``se_reduction`` is the SE reduction ratio r (None for models without SE) and ``se_stages``
    the 1-based indices of the stages whose blocks carry SE.
    """

    name: str
    family: str
    paper: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000
    se_reduction: int | None = None
    se_stages: tuple[int, ...] = ()
    builder: Callable[..., nn.Module] | None = field(default=None, repr=False, compare=False)

    @property
    def has_se(self) -> bool:
        return self.se_reduction is not None and len(self.se_stages) > 0


class UnknownModelError(KeyError):
    """Raised for a model name that is not registered; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


_REGISTRY: dict[str, ModelInfo] = {}

F = TypeVar("F", bound=Callable[..., nn.Module])


def register_model(
    *,
    family: str,
    paper: str,
    input_size: tuple[int, int, int] = (3, 224, 224),
    num_classes: int = 1000,
    se_reduction: int | None = None,
    se_stages: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Register a builder under its function name. Registering a name twice raises ValueError."""

    def decorator(fn: F) -> F:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelInfo(
            name=name,
            family=family,
            paper=paper,
            input_size=tuple(input_size),  # type: ignore[arg-type]
            num_classes=num_classes,
            se_reduction=se_reduction,
            se_stages=tuple(se_stages),
            builder=fn,
        )
        return fn

    return decorator


def _unknown(name: str) -> UnknownModelError:
    close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `cnnbench list` for all names"
    return UnknownModelError(f"unknown model {name!r}{hint}")


def get_model_info(name: str) -> ModelInfo:
    """The registered metadata of ``name``; raises UnknownModelError with suggestions."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keyword arguments go to its builder.

    The returned module carries ``model_info`` (a ModelInfo; num_classes and the SE fields follow
    the keyword arguments actually passed).
    """
    info = get_model_info(name)
    assert info.builder is not None
    model = info.builder(**kwargs)
    overrides: dict[str, Any] = {}
    if "num_classes" in kwargs:
        overrides["num_classes"] = kwargs["num_classes"]
    for key in ("se_reduction", "se_stages"):
        if key in kwargs:
            overrides[key] = tuple(kwargs[key]) if key == "se_stages" else kwargs[key]
    if overrides.get("se_reduction", info.se_reduction) is None:
        overrides["se_stages"] = ()
    model.model_info = ModelInfo(**{**info.__dict__, **overrides})  # type: ignore[assignment]
    return model


def list_models(pattern: str | None = None) -> list[str]:
    """Sorted registered names, optionally filtered by a shell-style pattern (``"resnet*"``)."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names
