"""The measurements a claim can name: one function per measure, each documented in one line.

Conventions: counts are per image (batch 1) at the model's native input size unless a claim
gives ``resolution``; ``params`` are all parameters (weights, biases, BatchNorm) unless a
measure says "weights"; MACs are multiply-accumulates of convolutions and linear layers
(cnnbench's rule table), FLOPs everything the rule table counts. Ratios and shares are plain
fractions (0.25, not 25). Zoo models are built on the meta device (shapes only) and cached per
(model, keyword arguments, variant, resolution) until :func:`clear_cache`.

Claims files are data: a measure's arguments are checked against its signature and types
(:func:`check_args`) before anything runs, and model specs may only name zoo models.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnbench.errors import UsageError, one_line
from cnnbench.models import info_of
from cnnbench.static.se import SEOverhead, se_overhead

if TYPE_CHECKING:
    from cnnbench.models import StagedNet

__all__ = [
    "Measure",
    "MeasureError",
    "MEASURES",
    "VARIANTS",
    "LAYER_TYPES",
    "check_args",
    "clear_cache",
    "measure_help",
]


class MeasureError(UsageError):
    """A measurement that cannot be made (unknown zoo model, bad model arguments, a module
    path the model lacks); the message is one line."""


# --- argument types ------------------------------------------------------------------------

_ZOO = "zoo model name"
_SPEC = "model spec table"
_LAYERS = "list of conv layer tables"
_PATHS = "table of module path -> [C, H, W]"

#: A zoo model name (``resnet50``); ``module:callable`` and file specs are refused.
ZooName = Annotated[str, _ZOO]
#: ``{ model = "efficientnet_b0", model_kwargs = {...}, resolution = 240, variant = "..." }``.
ModelSpec = Annotated[dict[str, Any], _SPEC]
#: ``[{ kernel = 3 }, { kernel = [1, 7], out = 64, groups = "depthwise", dilation = 2 }]``.
ConvLayers = Annotated[list[dict[str, Any]], _LAYERS]
#: ``{ "stem.0" = [32, 149, 149], "stage3" = [2048, 8, 8] }``.
ShapeTable = Annotated[dict[str, list[int]], _PATHS]

#: Numeric measure arguments (sizes, ratios, factors) must lie in (0, _LIMIT].
_LIMIT = 1_000_000
_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")
_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*")
_SPEC_KEYS = {"model": ZooName, "model_kwargs": dict[str, Any], "resolution": int, "variant": str}
_LAYER_KEYS = {
    "kernel": int | list[int],
    "out": int,
    "groups": int | Literal["depthwise"],
    "dilation": int,
    "stride": int,
}


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return typing.get_args(tp)[1]
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "table"
    return getattr(tp, "__name__", str(tp))


def _problem(value: Any, tp: Any, where: str) -> str | None:
    """Why ``value`` (parsed TOML) is not of type ``tp``; None if it is."""
    if tp is Any:
        return None
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, marker = typing.get_args(tp)[:2]
        return _problem(value, base, where) or _marker_problem(value, marker, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None) and _problem(value, option, where) is None:
                return None
        return f"{where} must be {_type_name(tp)}, got {value!r}"
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return None
        return f"{where} must be {_type_name(tp)}, got {value!r}"
    if origin is list:
        if not isinstance(value, list):
            return f"{where} must be {_type_name(tp)}, got {value!r}"
        (item,) = typing.get_args(tp)
        for i, v in enumerate(value):
            if p := _problem(v, item, f"{where}[{i}]"):
                return p
        return None
    if origin is dict:
        if not isinstance(value, dict):
            return f"{where} must be a table, got {value!r}"
        _, item = typing.get_args(tp)
        for k, v in value.items():
            if p := _problem(v, item, f"{where}.{k}"):
                return p
        return None
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{where} must be a number, got {value!r}"
        if not math.isfinite(value) or not 0 < value <= _LIMIT:
            return f"{where} must be a finite number in (0, {_LIMIT:g}], got {value!r}"
        return None
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where} must be an integer, got {value!r}"
        if not 1 <= value <= _LIMIT:
            return f"{where} must be an integer in 1..{_LIMIT:,}, got {value!r}"
        return None
    if tp in (str, bool):
        return None if isinstance(value, tp) else f"{where} must be {tp.__name__}, got {value!r}"
    raise TypeError(f"unsupported argument type {tp!r}")  # a bug in a measure's annotations


def _fields_problem(table: dict[str, Any], keys: dict[str, Any], where: str) -> str | None:
    for key, value in table.items():
        if key not in keys:
            return f"{where}.{key} is not a field (fields: {', '.join(keys)})"
        if p := _problem(value, keys[key], f"{where}.{key}"):
            return p
    return None


def _marker_problem(value: Any, marker: str, where: str) -> str | None:
    if marker == _ZOO:
        if ":" in value or "/" in value or "\\" in value:
            return (
                f"{where} = {value!r}: claims files may only name zoo models, "
                "not module:callable or file specs"
            )
        if not _NAME_RE.fullmatch(value):
            return f"{where} = {value!r} is not a zoo model name"
        return None
    if marker == _SPEC:
        if "model" not in value:
            return f"{where} needs a model field"
        if p := _fields_problem(value, _SPEC_KEYS, where):
            return p
        variant = value.get("variant")
        if variant is not None and variant not in VARIANTS:
            return f"{where}.variant {variant!r} is unknown (known: {', '.join(VARIANTS)})"
        return None
    if marker == _LAYERS:
        if not value:
            return f"{where} must list at least one layer"
        for i, layer in enumerate(value):
            if "kernel" not in layer:
                return f"{where}[{i}] needs a kernel field"
            if p := _fields_problem(layer, _LAYER_KEYS, f"{where}[{i}]"):
                return p
            kernel = layer["kernel"]
            if isinstance(kernel, list) and len(kernel) != 2:
                return f"{where}[{i}].kernel must be k or [kh, kw]"
        return None
    if marker == _PATHS:
        for path, shape in value.items():
            if not _PATH_RE.fullmatch(path):
                return f"{where}: {path!r} is not a module path (names joined by dots)"
            if len(shape) != 3:
                return f"{where}.{path} must be [C, H, W]"
        return None
    raise TypeError(f"unknown argument marker {marker!r}")


# --- the registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """A named measurement: ``fn(**args)`` returns the value (or ``(value, detail)``), ``help``
    is its one-line description and ``unit`` the default unit of claims that use it."""

    name: str
    fn: Callable[..., Any]
    help: str
    unit: str

    def evaluate(self, **args: Any) -> tuple[float, str]:
        """(value, detail): detail says what was counted, '' when the value says it all."""
        out = self.fn(**args)
        value, detail = out if isinstance(out, tuple) else (out, "")
        return float(value), detail

    def __call__(self, **args: Any) -> float:
        return self.evaluate(**args)[0]

    def parameters(self) -> dict[str, tuple[Any, bool]]:
        """Argument name -> (type, required)."""
        hints = typing.get_type_hints(self.fn, include_extras=True)
        sig = inspect.signature(self.fn)
        return {
            name: (hints.get(name, Any), p.default is p.empty) for name, p in sig.parameters.items()
        }


#: Measure name -> Measure. Each measure's ``help`` is one line for ``cnnbench claims``.
MEASURES: dict[str, Measure] = {}


def _measure(name: str, unit: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        doc = (fn.__doc__ or "").strip().split("\n\n")[0]
        MEASURES[name] = Measure(name, fn, " ".join(doc.split()), unit)
        return fn

    return register


def measure_help() -> list[tuple[str, str, str]]:
    """(name, arguments, one-line help) of every measure, for ``cnnbench claims`` to list;
    optional arguments are shown in brackets."""
    rows = []
    for name, measure in MEASURES.items():
        params = measure.parameters()
        args = ", ".join(k if required else f"[{k}]" for k, (_, required) in params.items())
        rows.append((name, args, measure.help))
    return rows


def check_args(measure: str, args: dict[str, Any]) -> str | None:
    """Why ``args`` do not fit ``measure`` (names, required arguments, types); None if they
    do. The message names the argument as ``args.NAME``."""
    params = MEASURES[measure].parameters()
    for key in args:
        if key not in params:
            return f"args.{key} is not an argument of {measure!r} (takes: {', '.join(params)})"
    for key, (tp, required) in params.items():
        if key not in args:
            if required:
                return f"args.{key} is required by {measure!r}"
            continue
        if p := _problem(args[key], tp, f"args.{key}"):
            return p
    return None


# --- building and caching ------------------------------------------------------------------


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw_kwargs(frozen: tuple) -> dict[str, Any]:
    return {k: (dict(v) if _is_frozen_table(v) else v) for k, v in frozen}


def _is_frozen_table(v: Any) -> bool:
    return (
        isinstance(v, tuple)
        and bool(v)
        and all(isinstance(i, tuple) and len(i) == 2 and isinstance(i[0], str) for i in v)
    )


def _without_reductions(model: nn.Module) -> int:
    """GoogLeNet's Inception modules with the 1x1 reductions before the 3x3 and the kxk
    branch removed (those convs read the module input); the pool projection is kept, so every
    module keeps its output width. Returns the number of modules changed."""
    from cnnbench.models.inception import BasicConv2d, Inception

    changed = 0
    for module in model.modules():
        if isinstance(module, Inception):
            in_ch = _conv_at(module, "branch1.0").in_channels
            conv3 = _conv_at(module, "branch2.1.0")
            convk = _conv_at(module, "branch3.1.0")
            k = convk.kernel_size[0]
            module.branch2 = BasicConv2d(in_ch, conv3.out_channels, 3, padding=1)
            module.branch3 = BasicConv2d(in_ch, convk.out_channels, k, padding=k // 2)
            changed += 1
    return changed


def _conv_at(module: nn.Module, path: str) -> nn.Conv2d:
    """The Conv2d at submodule ``path`` of ``module`` (TypeError if something else is there)."""
    conv = module.get_submodule(path)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{path}: expected a Conv2d, found {type(conv).__name__}")
    return conv


#: Named configurations the zoo builders do not expose: name -> (one-line help, transform).
VARIANTS: dict[str, tuple[str, Callable[[nn.Module], int]]] = {
    "no_1x1_reductions": (
        "Inception modules without the 1x1 reductions before their 3x3 and kxk convolutions "
        "(pool projection kept)",
        _without_reductions,
    ),
}


# torch.nn.init's functions and the in-place ops they are made of: on meta tensors there is
# nothing to initialise, and PyTorch's meta decompositions of them are slow (the first one
# imports dynamo).
_INIT_OPS = frozenset(
    {"normal_", "uniform_", "zero_", "fill_", "erfinv_", "mul_", "add_", "sub_", "div_"}
    | {"clamp_", "exponential_", "random_", "bernoulli_", "copy_"}
)


class _SkipMetaInit(TorchFunctionMode):
    """While building a module on the meta device: make in-place initialisers of meta tensors
    no-ops. Only for construction, never around a forward pass (a counted in-place add would
    vanish from the count)."""

    def __torch_function__(
        self,
        func: Any,
        types: Sequence[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        init = getattr(func, "__module__", "") == "torch.nn.init"
        init = init or getattr(func, "__name__", "") in _INIT_OPS
        target = args[0] if args else kwargs.get("tensor")  # nn.init passes tensor=...
        if init and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


@contextmanager
def _building() -> Iterator[None]:
    """Build modules on the meta device, without running their (meaningless) initialisation."""
    with torch.device("meta"), _SkipMetaInit():
        yield


@cache
def _model(name: str, frozen: tuple, variant: str | None) -> StagedNet:
    """The zoo model on the meta device (shared: measures must not change it)."""
    from cnnbench.models import UnknownModelError, create_model, staged_net

    kwargs = _thaw_kwargs(frozen)
    try:
        with _building():
            model = create_model(name, **kwargs)
            if variant is not None:
                if VARIANTS[variant][1](model) == 0:
                    raise MeasureError(f"variant {variant!r} does not apply to {name}")
    except UnknownModelError as exc:
        raise MeasureError(f"{exc} (not in the zoo yet?)") from None
    except (TypeError, ValueError) as exc:
        raise MeasureError(f"{name}: cannot be built with {kwargs} ({exc})") from None
    staged = staged_net(model)
    if staged is None:
        raise MeasureError(f"{name}: is not a StagedNet (cnnbench's stage protocol)")
    return staged.eval()


def _spec_key(
    model: str,
    model_kwargs: dict[str, Any] | None = None,
    resolution: int | None = None,
    variant: str | None = None,
) -> tuple[str, tuple, str | None, int | None]:
    return model, _freeze(model_kwargs or {}), variant, resolution


@cache
def _profile(name: str, frozen: tuple, variant: str | None, resolution: int | None) -> Any:
    from cnnbench.static import profile_static

    label = name if variant is None else f"{name}[{variant}]"
    return profile_static(
        _model(name, frozen, variant), name=label, resolution=resolution, train_memory=False
    )


@dataclass
class _SEOverhead(SEOverhead):
    """The static SE analysis (:func:`cnnbench.static.se.se_overhead`) of a cached build, and
    the model's number of stages (its final stage is ``stage{num_stages}``)."""

    num_stages: int = 0


@cache
def _overhead(name: str, frozen: tuple, resolution: int | None) -> _SEOverhead:
    model = _model(name, frozen, None)
    try:
        o = se_overhead(
            name,
            resolution=resolution,
            model=model,
            profile=_profile(name, frozen, None, resolution),
            **_thaw_kwargs(frozen),
        )
    except UsageError as exc:
        raise MeasureError(str(exc)) from None
    values = {f.name: getattr(o, f.name) for f in dataclasses.fields(o)}
    return _SEOverhead(**values, num_stages=model.num_stages)


@dataclass(frozen=True)
class _Layer:
    """One conv/linear/pool/norm/SE module seen in a forward pass (batch 1)."""

    path: str
    type: str  # one of LAYER_TYPES
    kernel: tuple[int, int]
    dilation: tuple[int, int]
    groups: int
    in_channels: int
    out_channels: int
    params: int
    macs: int


#: Layer types a structural measure can count (SE FC layers are not "conv" or "fc").
LAYER_TYPES = ("conv", "fc", "pool", "norm", "act", "se", "se_fc")
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_NORMS = (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)
_ACTS = (nn.ReLU, nn.ReLU6, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.GELU)


def _layer_type(module: nn.Module, in_se: bool) -> str | None:
    from cnnbench.models import SqueezeExcite

    if isinstance(module, SqueezeExcite):
        return "se"
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        return "se_fc" if in_se else ("conv" if isinstance(module, nn.Conv2d) else "fc")
    if in_se:
        return None
    if isinstance(module, _POOLS):
        return "pool"
    if isinstance(module, _NORMS):
        return "norm"
    if isinstance(module, _ACTS):
        return "act"
    return None


@cache
def _trace(
    name: str, frozen: tuple, variant: str | None, resolution: int | None
) -> tuple[tuple[_Layer, ...], dict[str, tuple[tuple[int, ...], tuple[int, ...]]]]:
    """Every typed layer in forward order, and (input shape, output shape) of every module
    that ran, by module path (one meta forward with hooks; shapes without the batch dim)."""
    from cnnbench.models import ModelInfo, SqueezeExcite
    from cnnbench.static.counting import count_dispatch

    model = _model(name, frozen, variant)
    info = info_of(model)
    if not isinstance(info, ModelInfo):
        raise MeasureError(f"{name}: the built model carries no model_info")
    c, h, w = info.input_size
    if resolution is not None:
        h = w = resolution
    se_paths = [p for p, m in model.named_modules() if isinstance(m, SqueezeExcite)]
    shapes: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    layers: list[_Layer] = []

    def first(t: Any) -> tuple[int, ...]:
        t = t[0] if isinstance(t, (tuple, list)) and t else t
        return tuple(t.shape[1:]) if isinstance(t, torch.Tensor) else ()

    def hook(path: str, module: nn.Module) -> Callable[..., None]:
        in_se = any(path.startswith(p + ".") for p in se_paths)
        kind = _layer_type(module, in_se)

        def record(_m: nn.Module, args: tuple, out: Any) -> None:
            in_shape, out_shape = first(args), first(out)
            shapes.setdefault(path, (in_shape, out_shape))
            if kind is None:
                return
            k: tuple[int, int] = (1, 1)
            d: tuple[int, int] = (1, 1)
            g = 1
            macs = 0
            cin = in_shape[0] if in_shape else 0
            cout = out_shape[0] if out_shape else 0
            if isinstance(module, nn.Conv2d):
                (kh, kw), (dh, dw) = module.kernel_size, module.dilation
                k, d, g = (kh, kw), (dh, dw), module.groups
                macs = math.prod(out_shape) * (module.in_channels // g) * k[0] * k[1]
            elif isinstance(module, nn.Linear):
                cin, cout = module.in_features, module.out_features
                macs = math.prod(out_shape) * module.in_features
            elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
                ks = module.kernel_size
                k = (ks, ks) if isinstance(ks, int) else (ks[0], ks[1])
            layers.append(
                _Layer(
                    path,
                    kind,
                    k,
                    d,
                    g,
                    cin,
                    cout,
                    sum(p.numel() for p in module.parameters(recurse=kind != "se")),
                    macs,
                )
            )

        return record

    handles = [m.register_forward_hook(hook(p, m)) for p, m in model.named_modules() if p]
    try:  # under the counter: its shape-only meta kernels are faster than PyTorch's
        count_dispatch(model, [torch.empty(1, c, h, w, device="meta")], track_memory=False)
    except Exception as exc:  # noqa: BLE001 - a failing forward becomes one line
        cause = one_line(exc, with_type=False)
        raise MeasureError(f"{name}: forward failed at {c}x{h}x{w} ({cause})") from None
    finally:
        for handle in handles:
            handle.remove()
    return tuple(layers), shapes


def clear_cache() -> None:
    """Forget every built model, profile and trace (the next check builds them again)."""
    for cached in (_model, _profile, _overhead, _trace, _conv_stack_cost):
        cached.cache_clear()


# --- plain model costs ---------------------------------------------------------------------

Metric = Literal["params", "macs", "flops"]


def _cost(metric: str, **spec: Any) -> int:
    prof = _profile(*_spec_key(**spec))
    return int(getattr(prof, metric))


@_measure("params", unit="count")
def _params(
    model: ZooName,
    model_kwargs: dict[str, Any] | None = None,
    variant: str | None = None,
) -> int:
    """Parameters of a zoo model (weights, biases, BatchNorm affine), built with model_kwargs."""
    return _cost("params", model=model, model_kwargs=model_kwargs, variant=variant)


@_measure("macs", unit="count")
def _macs(
    model: ZooName,
    model_kwargs: dict[str, Any] | None = None,
    resolution: int | None = None,
    variant: str | None = None,
) -> int:
    """Multiply-accumulates of one image through a zoo model (native input unless resolution)."""
    spec = {"model": model, "model_kwargs": model_kwargs, "resolution": resolution}
    return _cost("macs", variant=variant, **spec)


@_measure("flops", unit="count")
def _flops(
    model: ZooName,
    model_kwargs: dict[str, Any] | None = None,
    resolution: int | None = None,
    variant: str | None = None,
) -> int:
    """FLOPs of one image through a zoo model under cnnbench's rule table (a MAC = 2 FLOPs)."""
    spec = {"model": model, "model_kwargs": model_kwargs, "resolution": resolution}
    return _cost("flops", variant=variant, **spec)


@_measure("gmacs", unit="GMACs")
def _gmacs(
    model: ZooName, model_kwargs: dict[str, Any] | None = None, resolution: int | None = None
) -> float:
    """Multiply-accumulates of one image through a zoo model, in units of 10^9."""
    return _cost("macs", model=model, model_kwargs=model_kwargs, resolution=resolution) / 1e9


@_measure("spec_ratio", unit="ratio")
def _spec_ratio(
    numerator: ModelSpec, denominator: ModelSpec, metric: Metric = "macs", root: int = 1
) -> tuple[float, str]:
    """metric(numerator) / metric(denominator) for two model specs, optionally its root-th root
    (the mean factor per step over root steps)."""
    if root < 1:
        raise MeasureError(f"root must be >= 1, got {root}")
    top, bottom = _cost(metric, **numerator), _cost(metric, **denominator)
    return (top / bottom) ** (1 / root), f"{metric} {top:,} / {bottom:,}"


@_measure("stage_share", unit="percent")
def _stage_share(
    model: ZooName,
    stage: str = "final",
    metric: Metric = "params",
    model_kwargs: dict[str, Any] | None = None,
    resolution: int | None = None,
) -> tuple[float, str]:
    """One stage's share of a model's params, MACs or FLOPs (stage 'final' = the last stageN)."""
    prof = _profile(*_spec_key(model, model_kwargs, resolution))
    names = [s.name for s in prof.stages]
    if stage == "final":
        stage = [n for n in names if n.startswith("stage")][-1]
    row = next((s for s in prof.stages if s.name == stage), None)
    if row is None:
        raise MeasureError(f"{model} has no stage {stage!r} (stages: {', '.join(names)})")
    part, total = getattr(row, metric), getattr(prof, metric)
    return part / total, f"{stage}: {part:,} of {total:,} {metric}"


# --- structure -----------------------------------------------------------------------------


def _matching(
    layers: tuple[_Layer, ...],
    layer_type: str,
    kernel: int | list[int] | None,
    dilation: int | None,
    grouped: bool | None,
    asymmetric: bool | None,
) -> Iterator[_Layer]:
    want = (
        None if kernel is None else (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    )
    for layer in layers:
        if layer.type != layer_type:
            continue
        if want is not None and layer.kernel != want:
            continue
        if dilation is not None and layer.dilation != (dilation, dilation):
            continue
        if grouped is not None and (layer.groups > 1) != grouped:
            continue
        if asymmetric is not None and (layer.kernel[0] != layer.kernel[1]) != asymmetric:
            continue
        yield layer


LayerType = Literal["conv", "fc", "pool", "norm", "act", "se", "se_fc"]


@_measure("layer_count", unit="count")
def _layer_count(
    model: ZooName,
    layer_type: LayerType,
    kernel: int | list[int] | None = None,
    dilation: int | None = None,
    grouped: bool | None = None,
    asymmetric: bool | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> int:
    """Layers of one type that run in a forward pass (conv, fc, pool, norm, act, se, se_fc),
    optionally only those with a kernel, dilation, grouping or asymmetric (1xn, nx1) kernel."""
    layers, _ = _trace(*_spec_key(model, model_kwargs))
    return sum(1 for _ in _matching(layers, layer_type, kernel, dilation, grouped, asymmetric))


@_measure("layer_share", unit="percent")
def _layer_share(
    model: ZooName,
    layer_type: LayerType,
    metric: Literal["count", "params", "macs"] = "count",
    kernel: int | list[int] | None = None,
    dilation: int | None = None,
    grouped: bool | None = None,
    asymmetric: bool | None = None,
    of: Literal["type", "model"] = "type",
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[float, str]:
    """Share of the filtered layers of a type in the count, params or MACs of all layers of
    that type (of='type') or of all typed layers of the model (of='model')."""
    layers, _ = _trace(*_spec_key(model, model_kwargs))
    chosen = list(_matching(layers, layer_type, kernel, dilation, grouped, asymmetric))
    pool = [x for x in layers if x.type == layer_type] if of == "type" else list(layers)
    if metric == "count":
        part, total = len(chosen), len(pool)
    else:
        part = sum(getattr(x, metric) for x in chosen)
        total = sum(getattr(x, metric) for x in pool if x.type != "se" or metric != "params")
    if total == 0:
        raise MeasureError(f"{model}: no {layer_type} layers to take a share of")
    return part / total, f"{part:,} of {total:,} ({metric})"


@_measure("dense_equivalent_ratio", unit="ratio")
def _dense_equivalent_ratio(
    model: ZooName, model_kwargs: dict[str, Any] | None = None
) -> tuple[float, str]:
    """Weights a fully connected layer would need for each conv layer's input->output map,
    summed, over the conv layers' actual weights (what local, shared kernels save)."""
    from cnnbench.models import SqueezeExcite

    m = _model(*_spec_key(model, model_kwargs)[:3])
    _, shapes = _trace(*_spec_key(model, model_kwargs))
    se = [p for p, x in m.named_modules() if isinstance(x, SqueezeExcite)]
    dense = conv = 0
    for path, module in m.named_modules():
        if isinstance(module, nn.Conv2d) and not any(path.startswith(p + ".") for p in se):
            in_shape, out_shape = shapes[path]
            dense += math.prod(in_shape) * math.prod(out_shape)
            conv += module.weight.numel()
    if conv == 0:
        raise MeasureError(f"{model}: has no conv layers")
    return dense / conv, f"dense {dense:,} vs conv {conv:,} weights"


@_measure("stage_blocks_mismatches", unit="count")
def _stage_blocks_mismatches(
    model: ZooName, blocks: list[int], model_kwargs: dict[str, Any] | None = None
) -> tuple[int, str]:
    """Stages whose block count differs from the listed counts (stage1..N; a length mismatch
    counts every missing or extra stage)."""
    m = _model(*_spec_key(model, model_kwargs)[:3])
    actual = [s.blocks for s in m.stages() if s.name.startswith("stage")]
    wrong = sum(a != b for a, b in zip(actual, blocks, strict=False))
    return wrong + abs(len(actual) - len(blocks)), f"blocks {actual}"


@_measure("shape_mismatches", unit="count")
def _shape_mismatches(
    model: ZooName,
    shapes: ShapeTable,
    resolution: int | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """Listed modules (by path, e.g. 'stem.0', 'stage3') whose output [C, H, W] differs from
    the listed shape, at the given input resolution."""
    _, seen = _trace(*_spec_key(model, model_kwargs, resolution))
    wrong, got = 0, []
    for path, shape in shapes.items():
        if path not in seen:
            raise MeasureError(f"{model}: no module {path!r} ran in the forward pass")
        out = list(seen[path][1])
        got.append(f"{path} {'x'.join(map(str, out))}")
        wrong += out != list(shape)
    return wrong, "; ".join(got)


@_measure("final_stage_width_ratio", unit="ratio")
def _final_stage_width_ratio(
    model: ZooName, model_kwargs: dict[str, Any] | None = None
) -> tuple[float, str]:
    """Output channels of the final stage over the widest other stage (stem included, head
    excluded): > 1 means the final stage has the most channels."""
    m = _model(*_spec_key(model, model_kwargs)[:3])
    widths = [s.out_channels for s in m.stages() if s.name != "head"]
    return widths[-1] / max(widths[:-1]), f"channels {widths}"


@_measure("stage_connections", unit="count")
def _stage_connections(
    model: ZooName, stage: int, model_kwargs: dict[str, Any] | None = None
) -> tuple[int, str]:
    """Feature-map connections into the blocks of stage N: a dense layer reads the block input
    and every earlier layer's output (counted from its input width), a chained block one."""
    from cnnbench.models.densenet import DenseLayer, DenseStage

    m = _model(*_spec_key(model, model_kwargs)[:3])
    module = getattr(m, f"stage{stage}", None)
    if module is None:
        raise MeasureError(f"{model} has no stage{stage}")
    if isinstance(module, DenseStage):
        dense = [x for x in module.layers if isinstance(x, DenseLayer)]
        c0 = dense[0].conv1.in_channels
        growth = dense[0].conv2.out_channels
        inputs = [1 + (x.conv1.in_channels - c0) // growth for x in dense]
        return sum(inputs), f"{len(dense)} layers reading {inputs} maps"
    blocks = len(module) if isinstance(module, nn.Sequential) else 1
    return blocks, f"{blocks} chained blocks, one input each"


@_measure("growth_rate", unit="count")
def _growth_rate(model: ZooName, model_kwargs: dict[str, Any] | None = None) -> tuple[int, str]:
    """Channels each dense layer adds to its input (all dense layers must agree)."""
    from cnnbench.models.densenet import DenseLayer

    m = _model(*_spec_key(model, model_kwargs)[:3])
    _, shapes = _trace(*_spec_key(model, model_kwargs))
    added = {
        shapes[p][1][0] - shapes[p][0][0] for p, x in m.named_modules() if isinstance(x, DenseLayer)
    }
    if len(added) != 1:
        raise MeasureError(f"{model}: dense layers add {sorted(added)} channels, not one rate")
    (k,) = added
    return k, ""


@_measure("transition_share", unit="percent")
def _transition_share(
    model: ZooName,
    kernel: int = 1,
    downsample: int = 2,
    compression: float | None = None,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[float, str]:
    """Share of DenseNet transitions whose only conv is kernel x kernel and whose output is
    downsample times smaller per side (and, if given, has compression x the input channels)."""
    from cnnbench.models.densenet import Transition

    m = _model(*_spec_key(model, model_kwargs)[:3])
    _, shapes = _trace(*_spec_key(model, model_kwargs))
    found = [(p, x) for p, x in m.named_modules() if isinstance(x, Transition)]
    if not found:
        raise MeasureError(f"{model}: has no transition layers")
    ok, seen = 0, []
    for path, t in found:
        convs = [x for x in t.modules() if isinstance(x, nn.Conv2d)]
        (c_in, h_in, _), (c_out, h_out, _) = shapes[path]
        good = len(convs) == 1 and convs[0].kernel_size == (kernel, kernel)
        good = good and h_in == downsample * h_out
        if compression is not None:
            good = good and c_out == int(compression * c_in)
        ok += good
        seen.append(f"{c_in}x{h_in}->{c_out}x{h_out}")
    return ok / len(found), "; ".join(seen)


@_measure("sk_fuse_dim_mismatches", unit="count")
def _sk_fuse_dim_mismatches(
    model: ZooName,
    reduction: int = 16,
    min_dim: int = 32,
    model_kwargs: dict[str, Any] | None = None,
) -> tuple[int, str]:
    """SK convolutions whose fuse width d (length of z) is not max(C // reduction, min_dim)."""
    from cnnbench.models.sknet import SKConv

    m = _model(*_spec_key(model, model_kwargs)[:3])
    convs = [x for x in m.modules() if isinstance(x, SKConv)]
    if not convs:
        raise MeasureError(f"{model}: has no SK convolutions")
    wrong, pairs = 0, {}
    for sk in convs:
        d = next(x for x in sk.fc_reduce.modules() if isinstance(x, nn.Conv2d)).out_channels
        pairs[sk.channels] = d
        wrong += d != max(sk.channels // reduction, min_dim)
    return wrong, ", ".join(f"C={c}: d={d}" for c, d in pairs.items())


@_measure("sk_fuse_params_ratio", unit="ratio")
def _sk_fuse_params_ratio(
    channels: int, reduction: int, base_reduction: int = 16, min_dim: int = 32
) -> tuple[float, str]:
    """Parameters of a zoo SKConv's fuse step (fc_reduce + fc_select) at one reduction r over
    those at base_reduction, same channels."""
    from cnnbench.models.sknet import SKConv

    def fuse(r: int) -> int:
        with _building():
            sk = SKConv(channels, reduction=r, min_dim=min_dim)
        return sum(p.numel() for m in (sk.fc_reduce, sk.fc_select) for p in m.parameters())

    top, bottom = fuse(reduction), fuse(base_reduction)
    return top / bottom, f"{top:,} / {bottom:,} params"


# --- layer-level costs (kernel factorisation) ----------------------------------------------


def _pair(k: int | list[int]) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))


def _stack(layers: tuple, in_channels: int) -> nn.Sequential:
    convs: list[nn.Module] = []
    c = in_channels
    for spec in layers:
        layer = dict(spec)
        kh, kw = _pair(layer["kernel"])
        d = int(layer.get("dilation", 1))
        out = int(layer.get("out", c))
        groups = layer.get("groups", 1)
        groups = c if groups == "depthwise" else int(groups)
        if c % groups or out % groups:
            raise MeasureError(f"groups={groups} does not divide {c} -> {out} channels")
        pad = (d * (kh - 1) // 2, d * (kw - 1) // 2)
        stride = int(layer.get("stride", 1))
        convs.append(nn.Conv2d(c, out, (kh, kw), stride, pad, (d, d), groups, bias=False))
        c = out
    return nn.Sequential(*convs)


@cache
def _conv_stack_cost(layers: tuple, in_channels: int, resolution: int) -> tuple[int, int]:
    """(conv weights, MACs) of a stack of bias-free convs with 'same' padding."""
    from cnnbench.static.counting import count_dispatch

    with _building():
        stack = _stack(layers, in_channels)
    x = torch.empty(1, in_channels, resolution, resolution, device="meta")
    macs = count_dispatch(stack, [x], track_memory=False).macs
    return sum(p.numel() for p in stack.parameters()), macs


@_measure("conv_stack_ratio", unit="ratio")
def _conv_stack_ratio(
    numerator: ConvLayers,
    denominator: ConvLayers,
    in_channels: int = 64,
    resolution: int = 56,
    metric: Literal["params", "macs"] = "params",
) -> tuple[float, str]:
    """Weights or MACs of one conv stack over another on the same input (bias-free convs,
    'same' padding; a layer's out defaults to its input width, groups may be 'depthwise')."""
    index = 0 if metric == "params" else 1
    top = _conv_stack_cost(_freeze(numerator), in_channels, resolution)[index]
    bottom = _conv_stack_cost(_freeze(denominator), in_channels, resolution)[index]
    return top / bottom, f"{top:,} / {bottom:,} {metric}"


@_measure("receptive_field", unit="count")
def _receptive_field(layers: ConvLayers) -> tuple[int, str]:
    """Receptive field of a conv stack in pixels (the larger side): 1 + sum of d*(k-1)*jump."""
    rf = [1, 1]
    jump = 1
    for layer in layers:
        k = _pair(layer["kernel"])
        d = int(layer.get("dilation", 1))
        for i in range(2):
            rf[i] += d * (k[i] - 1) * jump
        jump *= int(layer.get("stride", 1))
    return max(rf), f"{rf[0]}x{rf[1]}"


@_measure("depthwise_separable_ratio", unit="ratio")
def _depthwise_separable_ratio(
    in_channels: int, out_channels: int, kernel: int, resolution: int
) -> float:
    """MACs of depthwise kxk + pointwise 1x1 over MACs of a standard kxk conv."""
    standard = ({"kernel": kernel, "out": out_channels},)
    separable = ({"kernel": kernel, "groups": "depthwise"}, {"kernel": 1, "out": out_channels})
    top = _conv_stack_cost(_freeze(separable), in_channels, resolution)[1]
    return top / _conv_stack_cost(_freeze(standard), in_channels, resolution)[1]


@_measure("compound_scaling_ratio", unit="ratio")
def _compound_scaling_ratio(
    alpha: float,
    beta: float,
    gamma: float,
    phi: float = 1.0,
    depth: int = 10,
    width: int = 80,
    resolution: int = 224,
) -> tuple[float, str]:
    """MACs of a plain stack of 3x3 convs scaled by depth alpha^phi (rounded up), width
    beta^phi (to a multiple of 8) and resolution gamma^phi (rounded), over the unscaled stack."""
    from cnnbench.models import make_divisible

    d = math.ceil(depth * alpha**phi)
    w = make_divisible(width * beta**phi, 8)
    r = round(resolution * gamma**phi)
    if d > 1_000 or w > 65_536 or r > 16_384:
        raise MeasureError(f"scaled stack too large (depth {d}, width {w}, resolution {r})")
    base = ({"kernel": 3},) * depth
    scaled = ({"kernel": 3},) * d
    top = _conv_stack_cost(_freeze(scaled), w, r)[1]
    bottom = _conv_stack_cost(_freeze(base), width, resolution)[1]
    return top / bottom, f"depth {depth}->{d}, width {width}->{w}, resolution {resolution}->{r}"


# --- Ghost modules -------------------------------------------------------------------------


def _ghost(in_channels: int, out_channels: int, ratio: int) -> nn.Module:
    from cnnbench.models.ghostnet import GhostModule

    if ratio < 2:
        raise MeasureError(f"a Ghost module needs ratio >= 2, got {ratio}")
    with _building():
        return GhostModule(in_channels, out_channels, ratio=ratio)


def _count(module: nn.Module, resolution: int, in_channels: int, metric: str) -> int:
    from cnnbench.static.counting import count_dispatch

    if metric == "params":
        return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))
    x = torch.empty(1, in_channels, resolution, resolution, device="meta")
    return count_dispatch(module.to("meta").eval(), [x], track_memory=False).macs


def _output_shape(module: nn.Module, in_channels: int, resolution: int) -> tuple[int, ...]:
    """Output shape (batch dim dropped) of a meta forward, run under the counter (its
    shape-only kernels are faster than PyTorch's meta decompositions)."""
    from cnnbench.static.counting import count_dispatch

    seen: list[tuple[int, ...]] = []
    handle = module.register_forward_hook(lambda _m, _i, out: seen.append(tuple(out.shape[1:])))
    x = torch.empty(1, in_channels, resolution, resolution, device="meta")
    try:
        count_dispatch(module.eval(), [x], track_memory=False)
    finally:
        handle.remove()
    return seen[0]


@_measure("ghost_module_reduction", unit="ratio")
def _ghost_module_reduction(
    in_channels: int,
    out_channels: int,
    ratio: int,
    resolution: int,
    metric: Literal["params", "macs"] = "macs",
) -> float:
    """Plain 1x1 conv cost / zoo Ghost module cost (conv weights only for params; BN excluded)."""
    with _building():
        plain = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    ghost = _ghost(in_channels, out_channels, ratio)
    return _count(plain, resolution, in_channels, metric) / _count(
        ghost, resolution, in_channels, metric
    )


@_measure("ghost_output_matches", unit="count")
def _ghost_output_matches(
    in_channels: int, out_channels: int, ratio: int, resolution: int
) -> tuple[int, str]:
    """1 if the zoo Ghost module's output shape equals the plain 1x1 conv's, else 0."""
    with _building():
        plain = nn.Conv2d(in_channels, out_channels, 1, bias=False)
    ghost = _ghost(in_channels, out_channels, ratio)
    a, b = (_output_shape(x, in_channels, resolution) for x in (plain, ghost))
    return int(a == b), f"ghost {'x'.join(map(str, b))} vs conv {'x'.join(map(str, a))}"


@_measure("ghost_intrinsic_channels", unit="count")
def _ghost_intrinsic_channels(out_channels: int, ratio: int, in_channels: int = 16) -> int:
    """Channels the zoo Ghost module's primary conv makes ("intrinsic" maps) for out_channels."""
    return _conv_at(_ghost(in_channels, out_channels, ratio), "primary_conv.0").out_channels


@_measure("ghost_surplus_channels", unit="count")
def _ghost_surplus_channels(
    out_channels: int, ratio: int, in_channels: int = 16
) -> tuple[int, str]:
    """Intrinsic + ghost channels the zoo Ghost module makes beyond out_channels (cut off)."""
    g = _ghost(in_channels, out_channels, ratio)
    made = _conv_at(g, "primary_conv.0").out_channels, _conv_at(g, "cheap_operation.0").out_channels
    return sum(made) - out_channels, f"{made[0]} intrinsic + {made[1]} ghost"


# --- Squeeze-and-Excitation ----------------------------------------------------------------


def _se_of(model: str, model_kwargs: dict[str, Any] | None, resolution: int | None) -> _SEOverhead:
    return _overhead(model, _freeze(model_kwargs or {}), resolution)


def _se_measure(
    name: str, help_: str, fn: Callable[[Any], float | tuple[float, str]], unit: str
) -> None:
    def measure(
        model: ZooName, model_kwargs: dict[str, Any] | None = None, resolution: int | None = None
    ) -> float | tuple[float, str]:
        return fn(_se_of(model, model_kwargs, resolution))

    measure.__doc__ = help_
    _measure(name, unit)(measure)


def _final_share(o: _SEOverhead) -> tuple[float, str]:
    final = f"stage{o.num_stages}"
    params = next((r.params for r in o.rows if r.stage == final), 0)
    return o.share_of(final), f"{final}: {params:,} of {o.se_params:,} SE params"


def _last_se_share(o: _SEOverhead) -> tuple[float, str]:
    if not o.rows:
        return 0.0, "no SE"
    row = o.rows[-1]
    return row.share, f"{row.stage}: {row.params:,} of {o.se_params:,}"


_se_measure(
    "se_added_params",
    "Parameters SE adds: the model minus the same model built with se_stages=().",
    lambda o: (o.added_params, f"{o.params:,} - {o.base_params:,}"),
    "count",
)
_se_measure(
    "se_params_increase",
    "SE's added parameters over those of the same model built without SE.",
    lambda o: (o.params_increase, f"{o.added_params:,} / {o.base_params:,}"),
    "percent",
)
_se_measure(
    "se_final_stage_share",
    "Share of all SE parameters that sit in the model's final stage (0 if it has no SE).",
    _final_share,
    "percent",
)
_se_measure(
    "se_last_se_stage_share",
    "Share of all SE parameters in the last stage that has SE blocks (not always the final).",
    _last_se_share,
    "percent",
)
_se_measure(
    "se_macs_increase",
    "SE's added MACs over those of the same model built without SE.",
    lambda o: (o.macs_increase, f"{o.macs - o.base_macs:,} / {o.base_macs:,}"),
    "percent",
)
_se_measure(
    "se_flops_increase",
    "SE's added FLOPs (FC, pooling, gate, scaling) over the model built without SE.",
    lambda o: (o.flops_increase, f"{o.flops - o.base_flops:,} / {o.base_flops:,}"),
    "percent",
)
_se_measure(
    "se_formula_ratio",
    "Measured SE FC weights over the SENet formula (2/r) * sum_s N_s * C_s^2 (biases excluded).",
    lambda o: (
        sum(r.weight_params for r in o.rows) / sum(r.formula_params for r in o.rows),
        f"{sum(r.weight_params for r in o.rows):,} / {sum(r.formula_params for r in o.rows):,}",
    ),
    "ratio",
)
_se_measure(
    "se_added_over_formula",
    "All parameters SE adds (biases included) over the SENet formula (2/r) * sum N_s C_s^2.",
    lambda o: (
        o.added_params / sum(r.formula_params for r in o.rows),
        f"{o.added_params:,} / {sum(r.formula_params for r in o.rows):,}",
    ),
    "ratio",
)


@_measure("se_block_weights", unit="count")
def _se_block_weights(channels: int, reduction: int) -> int:
    """FC weights (no biases) of one zoo SqueezeExcite block on C channels squeezed to C // r."""
    from cnnbench.models import SqueezeExcite

    if reduction < 1 or channels // reduction < 1:
        raise MeasureError(f"reduction {reduction} leaves no channels for C={channels}")
    with _building():
        se = SqueezeExcite(channels, channels // reduction)
    return se.fc1.weight.numel() + se.fc2.weight.numel()


@_measure("se_fc_per_conv", unit="ratio")
def _se_fc_per_conv(
    model: ZooName, model_kwargs: dict[str, Any] | None = None
) -> tuple[float, str]:
    """SE FC layers per conv layer of a model (SE's own FC convs not counted as conv layers)."""
    layers, _ = _trace(*_spec_key(model, model_kwargs))
    fc = sum(x.type == "se_fc" for x in layers)
    conv = sum(x.type == "conv" for x in layers)
    blocks = sum(x.type == "se" for x in layers)
    return fc / conv, f"{blocks} SE blocks, {fc} SE FC layers, {conv} conv layers"
