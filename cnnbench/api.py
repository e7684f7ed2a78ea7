"""Orchestration: static profile + runtime measurement of models under configurations.

This is what the CLI calls. It measures (through :mod:`cnnbench.static` and
:mod:`cnnbench.runtime`) and yields :class:`~cnnbench.results.Result` records as they are
made, so a caller can save what was measured when a long run is interrupted. Nothing here
prints; progress goes to an optional callback.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cnnbench.results import Result
from cnnbench.runtime import RuntimeConfig, measure_model
from cnnbench.spec import load_model
from cnnbench.static import StaticProfile, profile_static

__all__ = ["run_models", "TRAIN_FLOPS_FACTOR"]

#: Training-step FLOPs per image are estimated as 3 x forward (forward + 2 x backward).
TRAIN_FLOPS_FACTOR = 3

_STATIC_FIELDS = (
    "family", "input_size", "params", "trainable_params", "buffers", "macs", "flops", "counter",
    "activation_bytes", "train_activation_bytes",
)  # fmt: skip


def _merge(static: StaticProfile, measured: Result) -> Result:
    """A runtime Result with the static fields (and per-stage costs) filled in."""
    base = static.to_result()
    updates: dict[str, Any] = {f: getattr(base, f) for f in _STATIC_FIELDS}
    updates["stages"] = measured.stages or base.stages
    return dataclasses.replace(measured, **updates)


def run_models(
    specs: Sequence[str],
    configs: Sequence[RuntimeConfig],
    *,
    counter: str = "cnnbench",
    static_only: bool = False,
    stage_times: bool = True,
    model_args: dict[str, Any] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[Result]:
    """Profile each model spec, then measure it under each configuration.

    Yields one Result per (model, configuration), or one per model with ``static_only``.
    Static counts are per image at each configuration's resolution.
    """
    notify = on_progress or (lambda _msg: None)
    for spec in specs:
        notify(f"{spec}: building")
        name, model = load_model(spec, model_args)
        builder = spec if ":" not in spec and not model_args else None
        profiles: dict[int | None, StaticProfile] = {}
        if static_only:
            resolutions = {c.resolution for c in configs} or {None}
            for res in sorted(resolutions, key=lambda r: r or 0):
                yield _cached_static(profiles, model, name, res, counter, notify).to_result()
            continue
        for config in configs:
            static = _cached_static(profiles, model, name, config.resolution, counter, notify)
            notify(f"{name}: {describe(config)}")
            flops = static.flops * (TRAIN_FLOPS_FACTOR if config.mode == "train" else 1)
            measured = measure_model(
                model,
                config,
                name=name,
                flops_per_image=flops,
                stages=static.stages if stage_times else None,
                builder=builder,
            )
            yield _merge(static, measured)


def _cached_static(
    cache: dict[int | None, StaticProfile],
    model: Any,
    name: str,
    resolution: int | None,
    counter: str,
    notify: Callable[[str], None],
) -> StaticProfile:
    """The static profile of ``model`` at ``resolution``, counted once per resolution."""
    if resolution not in cache:
        notify(f"{name}: counting (static profile)")
        cache[resolution] = profile_static(
            model, name=name, resolution=resolution, counter=counter, meta=counter != "fvcore"
        )
    return cache[resolution]


def describe(config: RuntimeConfig) -> str:
    """A short label of a configuration, e.g. ``cpu fp32 channels_last b8``."""
    parts = [config.device, config.precision, config.memory_format, f"b{config.batch_size}"]
    if config.resolution:
        parts.append(f"{config.resolution}px")
    if config.mode != "inference":
        parts.append(config.mode)
    if config.compile:
        parts.append("compiled")
    return " ".join(parts)
