"""Model registry: ``@register_model`` builders with metadata, ``create_model`` and ``list_models``.

Every builder is registered under its function name. Metadata travels with the built model as
``model.model_info`` so that the profiler never has to guess input size or SE layout.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from torch import nn

from ._published import CitedAccuracy, chosen_top1

__all__ = [
    "ModelInfo",
    "UnknownModelError",
    "register_model",
    "create_model",
    "list_models",
    "get_model_info",
    "registered_defaults",
    "set_model_info",
]


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of a registered model.

    ``input_size`` is (channels, height, width) of one image at the model's native resolution.
    ``se_reduction`` is the SE reduction ratio r (None for models without SE) and ``se_stages``
    the 1-based indices of the stages whose blocks carry SE. ``num_classes``, ``se_reduction``,
    ``se_stages`` and ``input_size[0]`` (as ``in_channels``) are also the builder's defaults:
    they are declared once, at registration, and the builders read them from here.

    ``params`` (exact parameter count) and ``macs`` (multiply-accumulates of conv, linear and
    matmul for one image at ``input_size``, bias excluded) describe the registered default
    configuration only, so listings need not build the model; they are None when unknown, and
    on a built model whose keyword overrides may have changed the architecture.

    ``cited`` holds every published accuracy of the model with its provenance (weights,
    evaluation resolution and crop, layout, source: :class:`CitedAccuracy`); cnnbench never
    measures accuracy. ``published_top1`` (%) and ``top1_source`` are the chosen top-1 among
    them, by the rule of :func:`cnnbench.models.chosen_top1` (the layout the zoo builds, the
    native resolution first); :meth:`chosen_top1` returns the whole record.
    """

    name: str
    family: str
    paper: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    num_classes: int = 1000
    se_reduction: int | None = None
    se_stages: tuple[int, ...] = ()
    params: int | None = None
    macs: int | None = None
    published_top1: float | None = None
    top1_source: str = ""
    cited: tuple[CitedAccuracy, ...] = ()
    builder: Callable[..., nn.Module] | None = field(default=None, repr=False, compare=False)

    def chosen_top1(self) -> CitedAccuracy | None:
        """The cited top-1 that reports print (None when none applies to this model)."""
        return chosen_top1(self.cited, self.input_size[1])

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
    """Register a builder under its function name. Registering a name twice raises ValueError.

    The values given here are the builder's defaults (see :func:`registered_defaults`). The
    stored native-size costs and published accuracy of zoo models come from the tables in
    ``_costs.py`` and ``_published.py``, keyed by name.
    """
    from ._costs import NATIVE_COSTS
    from ._published import CITED

    def decorator(fn: F) -> F:
        name = fn.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        params, macs = NATIVE_COSTS.get(name, (None, None))
        cited = CITED.get(name, ())
        chosen = chosen_top1(cited, input_size[1])
        _REGISTRY[name] = ModelInfo(
            name=name,
            family=family,
            paper=paper,
            input_size=(*input_size,),
            num_classes=num_classes,
            se_reduction=se_reduction,
            se_stages=tuple(se_stages),
            params=params,
            macs=macs,
            published_top1=chosen.value if chosen else None,
            top1_source=chosen.source if chosen else "",
            cited=cited,
            builder=fn,
        )
        return fn

    return decorator


_DEFAULT_KEYS = ("num_classes", "in_channels", "se_reduction", "se_stages")


def registered_defaults(name: str, kwargs: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """``kwargs`` over the defaults declared by the registration of ``name``.

    ``keys`` picks which of ``num_classes``, ``in_channels`` (= ``input_size[0]``),
    ``se_reduction`` and ``se_stages`` the builder takes; the registration is their only source,
    so the builder's defaults and the listed metadata cannot drift apart.
    """
    unknown = set(keys) - set(_DEFAULT_KEYS)
    if unknown:
        raise ValueError(f"no registered default for {sorted(unknown)}")
    info = get_model_info(name)
    values = {
        "num_classes": info.num_classes,
        "in_channels": info.input_size[0],
        "se_reduction": info.se_reduction,
        "se_stages": info.se_stages,
    }
    return {**{k: values[k] for k in keys}, **kwargs}


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


#: Builder keywords that change neither parameters nor MACs (regularisation only).
COST_NEUTRAL_KWARGS = frozenset({"dropout", "aux_dropout", "drop_rate", "stochastic_depth_prob"})


def _same_as_registered(info: ModelInfo, key: str, value: Any) -> bool:
    if key == "se_stages":
        return tuple(value) == info.se_stages
    if key == "in_channels":
        return value == info.input_size[0]
    if key in ("num_classes", "se_reduction"):
        return value == getattr(info, key)
    return False  # any other architectural keyword: assume it changes the network


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a registered model. Keyword arguments go to its builder.

    The returned module carries ``model_info`` (a ModelInfo): num_classes, the SE fields and
    the input channels follow the keyword arguments actually passed, and the stored ``params``,
    ``macs``, ``published_top1`` and ``cited`` are kept only when no keyword may have changed the
    architecture (else None).
    """
    info = get_model_info(name)
    assert info.builder is not None
    model = info.builder(**kwargs)
    overrides: dict[str, Any] = {}
    if "num_classes" in kwargs:
        overrides["num_classes"] = kwargs["num_classes"]
    if "in_channels" in kwargs:
        overrides["input_size"] = (kwargs["in_channels"], *info.input_size[1:])
    for key in ("se_reduction", "se_stages"):
        if key in kwargs:
            overrides[key] = tuple(kwargs[key]) if key == "se_stages" else kwargs[key]
    if overrides.get("se_reduction", info.se_reduction) is None:
        overrides["se_stages"] = ()
    changed = [
        k
        for k, v in kwargs.items()
        if k not in COST_NEUTRAL_KWARGS and not _same_as_registered(info, k, v)
    ]
    if changed:  # costs and published accuracy describe the registered configuration only
        overrides["params"] = overrides["macs"] = overrides["published_top1"] = None
        overrides["top1_source"], overrides["cited"] = "", ()
    set_model_info(model, replace(info, **overrides))
    return model


def info_of(model: object) -> ModelInfo | None:
    """The model's cnnbench metadata: its ``model_info`` when that is a :class:`ModelInfo`
    (cnnbench's protocol), None otherwise (a foreign attribute of that name is ignored)."""
    info = getattr(model, "model_info", None)
    return info if isinstance(info, ModelInfo) else None


def set_model_info(model: nn.Module, info: ModelInfo) -> None:
    """Attach ``info`` as ``model.model_info`` (the attribute every command reads)."""
    # nn.Module.__setattr__ is typed for tensors and modules only; a plain attribute is fine.
    model.model_info = info  # type: ignore[assignment]


def _natural_key(name: str) -> list[int | str]:
    """Sort key that orders digit runs by value: ``resnet18`` before ``resnet101``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str | None = None) -> list[str]:
    """Registered names in natural order (``resnet18`` before ``resnet101``), optionally
    filtered by a shell-style pattern (``"resnet*"``)."""
    names = sorted(_REGISTRY, key=_natural_key)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names
