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

from cnnbench.errors import UsageError
from cnnbench.report.format import config_label as describe
from cnnbench.results import Result
from cnnbench.runtime import Entry, RuntimeConfig, measure_config
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
    baseline: str | None = None,
    cpu_memory: bool = True,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[Result]:
    """Profile each model (spec or module), then measure all of them under each
    configuration, interleaved (:func:`cnnbench.runtime.measure_config`).

    Every spec is resolved before anything is measured. Yields one Result per (model,
    configuration), configuration by configuration, or one per model and resolution with
    ``static_only``. Static counts are per image at each configuration's resolution. Ratios
    divide by ``baseline`` (a model name; default the first model).
    """
    notify = on_progress or (lambda _msg: None)
    loaded = []
    for item in models:
        notify(f"{item if isinstance(item, str) else type(item).__name__}: building")
        loaded.append(resolve_model(item, model_args))
    names = [m.name for m in loaded]
    if baseline is not None and baseline not in names:
        raise UsageError(f"baseline {baseline!r} is not among the models: {', '.join(names)}")
    if static_only:
        resolutions = sorted({c.resolution for c in configs} or {None}, key=lambda r: r or 0)
        for m in loaded:
            for res in resolutions:
                yield static_profile(m, res, counter, notify).to_result()
        return
    for config in configs:
        entries = []
        for m in loaded:
            static = static_profile(m, config.resolution, counter, notify)
            row = static.to_result()
            factor = TRAIN_FLOPS_FACTOR if config.mode == "train" else 1
            entries.append(
                Entry(
                    name=m.name, module=m.module, row=row, builder=m.rebuild,
                    stages=row.stages if stage_times else None,
                    flops_per_image=static.flops * factor,
                )
            )  # fmt: skip
        notify(f"{describe(config)}: timing {len(entries)} model(s) interleaved")
        index = names.index(baseline) if baseline is not None else 0
        yield from measure_config(entries, config, baseline=index, cpu_memory=cpu_memory)


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
