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
import sys
from pathlib import Path
from typing import Any

from torch import nn

from cnnbench.errors import UsageError

__all__ = ["load_model", "parse_model_args", "spec_name"]


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
    except Exception as exc:  # noqa: BLE001 - user code: report it in one line
        raise UsageError(f"{spec}: importing {path} failed ({type(exc).__name__}: {exc})") from exc
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
        return lib.create_model(name, pretrained=False, **kwargs)
    models = importlib.import_module("torchvision.models")
    return models.get_model(name, weights=None, **kwargs)


def load_model(spec: str, model_args: dict[str, Any] | None = None) -> tuple[str, nn.Module]:
    """Build the model a spec names, on the CPU. Returns (display name, module)."""
    from cnnbench.models import ModelInfo, UnknownModelError, create_model

    kwargs = dict(model_args or {})
    if ":" not in spec:
        try:
            return spec, create_model(spec, **kwargs)
        except UnknownModelError as exc:
            raise UsageError(str(exc)) from None
        except (TypeError, ValueError) as exc:
            raise UsageError(f"{spec}: bad model arguments ({exc})") from None
    prefix, attr = spec.rsplit(":", 1)
    if prefix in ("timm", "torchvision"):
        model = _from_library(prefix, attr, spec, kwargs)
    elif prefix.endswith(".py") or "/" in prefix:
        model = _call(_from_file(prefix, attr, spec), spec, kwargs)
    else:
        try:
            module = importlib.import_module(prefix)
        except ImportError as exc:
            raise UsageError(f"{spec}: cannot import {prefix!r} ({exc})") from None
        model = _call(_attr(module, attr, spec), spec, kwargs)
    if getattr(model, "model_info", None) is None:
        model.model_info = ModelInfo(name=attr, family="custom", paper="")
    return attr, model
