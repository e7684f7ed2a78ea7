"""Orchestration: static profile + runtime measurement of models under configurations.

This is what the CLI calls. It measures (through :mod:`cnnbench.static` and
:mod:`cnnbench.runtime`) and yields :class:`~cnnbench.results.Result` records as they are
made, so a caller can save what was measured when a long run is interrupted. Each model is
loaded once (:func:`cnnbench.spec.load`) and counted once per resolution; a row is the static
profile's record filled in once by the runtime measurement. Nothing here prints; progress
goes to an optional callback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from torch import nn

from cnnbench.report.format import config_label as describe
from cnnbench.results import Result
from cnnbench.runtime import RuntimeConfig, measure_model
from cnnbench.spec import LoadedModel, ensure_info, load
from cnnbench.static import StaticProfile, profile_static

__all__ = ["run_models", "resolve_model", "static_profile", "describe", "TRAIN_FLOPS_FACTOR"]

#: Training-step FLOPs per image are estimated as 3 x forward (forward + 2 x backward).
TRAIN_FLOPS_FACTOR = 3

ModelLike = str | nn.Module | LoadedModel


def resolve_model(model: ModelLike, model_args: dict[str, Any] | None = None) -> LoadedModel:
    """A spec is loaded (:func:`cnnbench.spec.load`); a module object is taken as it is, named
    after its ``model_info.name`` or its class (it has no spec, so the memory child gets a
    pickled copy)."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, nn.Module):
        info = getattr(model, "model_info", None)
        name = getattr(info, "name", None) or type(model).__name__
        return LoadedModel(name, ensure_info(model, name))
    return load(model, model_args)


def run_models(
    models: Sequence[ModelLike],
    configs: Sequence[RuntimeConfig],
    *,
    counter: str = "cnnbench",
    static_only: bool = False,
    stage_times: bool = True,
    model_args: dict[str, Any] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[Result]:
    """Profile each model (spec or module), then measure it under each configuration.

    Yields one Result per (model, configuration), or one per model and resolution with
    ``static_only``. Static counts are per image at each configuration's resolution.
    """
    notify = on_progress or (lambda _msg: None)
    for item in models:
        notify(f"{item if isinstance(item, str) else type(item).__name__}: building")
        loaded = resolve_model(item, model_args)
        if static_only:
            resolutions = {c.resolution for c in configs} or {None}
            for res in sorted(resolutions, key=lambda r: r or 0):
                yield static_profile(loaded, res, counter, notify).to_result()
            continue
        for config in configs:
            static = static_profile(loaded, config.resolution, counter, notify)
            notify(f"{loaded.name}: {describe(config)}")
            flops = static.flops * (TRAIN_FLOPS_FACTOR if config.mode == "train" else 1)
            row = static.to_result()
            yield measure_model(
                loaded.module,
                config,
                name=loaded.name,
                flops_per_image=flops,
                stages=row.stages if stage_times else None,
                builder=loaded.rebuild,
                row=row,
            )


def static_profile(
    loaded: LoadedModel,
    resolution: int | None = None,
    counter: str = "cnnbench",
    notify: Callable[[str], None] | None = None,
) -> StaticProfile:
    """The static profile of a loaded model at ``resolution``, counted once per resolution
    and counter (cached on the LoadedModel)."""
    key = (resolution, counter)
    if key not in loaded.profiles:
        if notify is not None:
            notify(f"{loaded.name}: counting (static profile)")
        loaded.profiles[key] = profile_static(
            loaded.module,
            name=loaded.name,
            resolution=resolution,
            counter=counter,
            meta=counter != "fvcore",
        )
    return loaded.profiles[key]
