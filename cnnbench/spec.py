"""Turn a model spec from the command line into an nn.Module.

A spec is one of:

* a zoo name (``resnet50``; see ``cnnbench list``);
* ``package.module:factory``: an importable callable returning an nn.Module (or the class);
* ``path/to/file.py:ClassOrFactory``: the same, loaded from a file;
* ``timm:NAME`` / ``torchvision:NAME``: when that library happens to be installed
  (no weights are ever downloaded).

A model that carries no ``model_info`` gets a default one (family ``custom``, input 3x224x224,
so ``--resolution`` sets H = W).

``model_args`` (from ``--model-arg key=value``) are passed to the builder; values are parsed
as Python literals where possible (``3``, ``0.5``, ``(1, 2)``, ``None``), else kept as strings.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnbench.errors import UsageError, one_line
from cnnbench.models import info_of

__all__ = [
    "LoadedModel",
    "Rebuild",
    "ensure_info",
    "load",
    "load_model",
    "parse_model_args",
    "spec_name",
]


def parse_model_args(pairs: list[str] | None) -> dict[str, Any]:
    """``["se_reduction=8", "se_stages=(1,2,3)"]`` -> ``{"se_reduction": 8, "se_stages": (1, 2, 3)}``."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--model-arg {pair!r}: expected key=value, e.g. se_reduction=8")
        try:
            value: Any = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        out[key.strip()] = value
    return out


def spec_name(spec: str) -> str:
    """A short display name for a spec (``file.py:Net`` -> ``Net``)."""
    return spec.rsplit(":", 1)[-1] if ":" in spec else spec


def _call(obj: Any, spec: str, kwargs: dict[str, Any]) -> nn.Module:
    if isinstance(obj, nn.Module):
        if kwargs:
            raise UsageError(f"{spec}: is a module instance; --model-arg needs a class or factory")
        return obj
    if not callable(obj):
        raise UsageError(f"{spec}: not a class or factory (got {type(obj).__name__})")
    try:
        model = obj(**kwargs)
    except TypeError as exc:
        raise UsageError(f"{spec}: could not build the model ({exc})") from None
    if not isinstance(model, nn.Module):
        raise UsageError(
            f"{spec}: the factory returned {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _from_file(path_str: str, attr: str, spec: str) -> Any:
    path = Path(path_str)
    if not path.is_file():
        raise UsageError(f"{spec}: no such file {path}")
    mod_name = f"_cnnbench_user_{abs(hash(path.resolve()))}"
    module_spec = importlib.util.spec_from_file_location(mod_name, path)
    if module_spec is None or module_spec.loader is None:
        raise UsageError(f"{spec}: cannot import {path} as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[mod_name] = module
    try:
        module_spec.loader.exec_module(module)
    except SystemExit as exc:  # e.g. argparse on sys.argv at import time
        sys.modules.pop(mod_name, None)
        raise UsageError(
            f"{spec}: importing {path} called sys.exit({exc.code!r}) (does it parse the "
            "command line at import? guard that code with `if __name__ == '__main__':`)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - user code: report it in one line
        sys.modules.pop(mod_name, None)
        raise UsageError(f"{spec}: importing {path} failed ({one_line(exc)})") from exc
    return _attr(module, attr, spec)


def _attr(module: Any, attr: str, spec: str) -> Any:
    try:
        return getattr(module, attr)
    except AttributeError:
        names = [n for n, v in vars(module).items() if inspect.isclass(v) or inspect.isfunction(v)]
        raise UsageError(
            f"{spec}: {attr!r} not found; available: {', '.join(sorted(names)[:10]) or 'nothing'}"
        ) from None


def _from_library(library: str, name: str, spec: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        lib = importlib.import_module(library)
    except ImportError:
        raise UsageError(f"{spec}: {library} is not installed; pip install {library}") from None
    if library == "timm":
        model = lib.create_model(name, pretrained=False, **kwargs)
        # timm records each model's native input, e.g. (3, 384, 384) for *_384 variants
        cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
        size = cfg.get("input_size") if isinstance(cfg, dict) else None
    else:
        models = importlib.import_module("torchvision.models")
        model = models.get_model(name, weights=None, **kwargs)
        size = _torchvision_input_size(models, name)
    if size is not None and info_of(model) is None:
        from cnnbench.models import ModelInfo, set_model_info

        c, h, w = (int(v) for v in size)
        set_model_info(model, ModelInfo(name=name, family=library, paper="", input_size=(c, h, w)))
    return model


def _torchvision_input_size(models: Any, name: str) -> tuple[int, int, int] | None:
    """The native input of a torchvision model from its default weights' transforms (the crop
    size), without downloading anything; None when torchvision does not say."""
    try:
        weights = models.get_model_weights(name).DEFAULT
        crop = weights.transforms().crop_size
    except Exception:  # noqa: BLE001 - metadata is optional
        return None
    side = crop[0] if isinstance(crop, list | tuple) else crop
    return (3, int(side), int(side))


@dataclass(frozen=True)
class ExampleInputs:
    """Example inputs of one image (batch 1): positional tensors and keyword tensors, as a
    model's ``forward(*args, **kwargs)`` takes them. The first positional tensor (or the first
    keyword one) is the model's input size. :meth:`batched` replicates the batch dimension."""

    args: tuple[torch.Tensor, ...] = ()
    kwargs: dict[str, torch.Tensor] = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any, where: str = "example inputs") -> ExampleInputs:
        """From a tensor, a tuple/list of tensors, a dict of tensors, or a zero-argument
        callable returning one of those; UsageError naming ``where`` otherwise."""
        if isinstance(value, ExampleInputs):
            return value
        if callable(value) and not isinstance(value, torch.Tensor):
            try:
                value = value()
            except Exception as exc:  # noqa: BLE001 - the user's code: one line
                raise UsageError(
                    f"{where}: calling it failed ({type(exc).__name__}: {exc})"
                ) from None
        if isinstance(value, torch.Tensor):
            out = cls((value,))
        elif isinstance(value, tuple | list):
            out = cls(tuple(value))
        elif isinstance(value, dict):
            out = cls((), dict(value))
        else:
            raise UsageError(
                f"{where}: expected a tensor, a tuple of tensors or a dict of tensors, got "
                f"{type(value).__name__}"
            )
        tensors = [*out.args, *out.kwargs.values()]
        if not tensors or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in tensors):
            raise UsageError(f"{where}: every input must be a tensor with a batch dimension")
        if any(t.shape[0] != 1 for t in tensors):
            raise UsageError(f"{where}: give inputs of batch 1 (--batch replicates them)")
        return out

    @property
    def first(self) -> torch.Tensor:
        return self.args[0] if self.args else next(iter(self.kwargs.values()))

    @property
    def input_size(self) -> tuple[int, ...]:
        """The first input's shape without the batch dimension."""
        return tuple(self.first.shape[1:])

    def map(self, fn: Any) -> ExampleInputs:
        """The same structure with ``fn`` applied to every tensor."""
        return ExampleInputs(
            tuple(fn(t) for t in self.args), {k: fn(v) for k, v in self.kwargs.items()}
        )

    def batched(self, batch: int) -> ExampleInputs:
        """Every input repeated along the batch dimension to ``batch``."""
        return self.map(lambda t: t.repeat(batch, *([1] * (t.dim() - 1))))

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.args, *self.kwargs.values()))


def load_inputs(spec: str) -> ExampleInputs:
    """The example inputs a ``module:callable`` or ``file.py:callable`` spec returns (the
    user's own code, called once, like a model factory)."""
    prefix, sep, attr = spec.rpartition(":")
    if not sep or not prefix or not attr.isidentifier():
        raise UsageError(
            f"--inputs {spec!r}: expected package.module:callable or path/to/file.py:callable"
        )
    if prefix.endswith(".py") or "/" in prefix:
        fn = _from_file(prefix, attr, spec)
    else:
        try:
            module = importlib.import_module(prefix)
        except ImportError as exc:
            raise UsageError(f"--inputs {spec}: cannot import {prefix!r} ({exc})") from None
        fn = _attr(module, attr, spec)
    return ExampleInputs.of(fn, f"--inputs {spec}")


def ensure_info(model: nn.Module, name: str) -> nn.Module:
    """Give a module without ``model_info`` the default one (family ``custom``, input
    3x224x224), so every command treats it like a zoo model; returns the module."""
    if info_of(model) is None:
        from cnnbench.models import ModelInfo, set_model_info

        set_model_info(model, ModelInfo(name=name, family="custom", paper=""))
    return model


@dataclass(frozen=True)
class Rebuild:
    """A picklable recipe that builds a spec's model again, e.g. in the CPU memory child
    process: the spec (file paths made absolute) and its builder keyword arguments."""

    spec: str
    model_args: tuple[tuple[str, Any], ...] = ()

    def __call__(self) -> nn.Module:
        return load_model(self.spec, dict(self.model_args))[1]


@dataclass
class LoadedModel:
    """A model as every command sees it: the display ``name``, the built ``module`` (on the
    CPU) and how to ``rebuild`` it elsewhere (None for a module object handed over in Python,
    which can only travel pickled)."""

    name: str
    module: nn.Module
    rebuild: Rebuild | None = field(default=None, repr=False)
    #: static profiles and layer rows already counted, by their inputs (resolution, counter,
    #: input spec; see :func:`cnnbench.api.static_profile`): each is counted once
    profiles: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False)
    #: what building it changed in torch's global state (undone; its rows say so)
    notes: list[str] = field(default_factory=list)


def _absolute(spec: str) -> str:
    """The spec with a file path made absolute, so a child process finds the same file."""
    prefix, sep, attr = spec.rpartition(":")
    if sep and (prefix.endswith(".py") or "/" in prefix) and prefix not in ("timm", "torchvision"):
        return f"{os.path.abspath(prefix)}:{attr}"
    return spec


def load(
    spec: str, model_args: dict[str, Any] | None = None, *, device: str = "cpu"
) -> LoadedModel:
    """Resolve a spec once: its display name, its module and its rebuild recipe. This is the
    one place a spec becomes a model; the memory child rebuilds through ``rebuild``.

    ``device="meta"`` builds the model without allocating or initialising weights (for
    counting only; a 1e10-parameter model costs nothing); a user's model whose code cannot
    be built on the meta device is built on the CPU instead. The build runs in a sandbox of
    torch's global state (:func:`cnnbench.runtime.sandbox.torch_state`): what it changed is
    undone, and named in ``notes``."""
    from cnnbench.runtime.sandbox import torch_state

    with torch_state() as changed:
        if device == "meta":
            import torch

            try:
                with torch.device("meta"):
                    name, module = load_model(spec, model_args)
            except UsageError:
                raise
            except Exception:  # noqa: BLE001 - the user's code does not build on meta: real build
                name, module = load_model(spec, model_args)
        else:
            name, module = load_model(spec, model_args)
    rebuild = Rebuild(_absolute(spec), tuple(sorted((model_args or {}).items())))
    notes = [changed.describe("its build")] if changed else []
    return LoadedModel(name, module, rebuild, notes=notes)


def load_model(spec: str, model_args: dict[str, Any] | None = None) -> tuple[str, nn.Module]:
    """Build the model a spec names, on the CPU. Returns (display name, module)."""
    from cnnbench.models import UnknownModelError, create_model

    kwargs = dict(model_args or {})
    if ":" not in spec:
        try:
            return spec, create_model(spec, **kwargs)
        except UnknownModelError as exc:
            raise UsageError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{spec}: bad model arguments ({exc})") from None
    prefix, attr = spec.rsplit(":", 1)
    is_file = prefix.endswith(".py") or "/" in prefix
    dotted = all(part.isidentifier() for part in prefix.split("."))
    if not prefix or not attr.isidentifier() or not (is_file or dotted):
        raise UsageError(
            f"model spec {spec!r}: expected a zoo name, package.module:factory, "
            "path/to/file.py:Factory, timm:NAME or torchvision:NAME"
        )
    if prefix in ("timm", "torchvision"):
        model = _from_library(prefix, attr, spec, kwargs)
    elif is_file:
        model = _call(_from_file(prefix, attr, spec), spec, kwargs)
    else:
        try:
            module = importlib.import_module(prefix)
        except ImportError as exc:
            raise UsageError(f"{spec}: cannot import {prefix!r} ({exc})") from None
        model = _call(_attr(module, attr, spec), spec, kwargs)
    return attr, ensure_info(model, attr)
