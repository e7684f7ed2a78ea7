"""Orchestration: static profile + runtime measurement of models under configurations.

This is what the CLI calls. It measures (through :mod:`cnnbench.static` and
:mod:`cnnbench.runtime`) and yields :class:`~cnnbench.results.Result` records as they are
made, so a caller can save what was measured when a long run is interrupted. Each model is
loaded once (:func:`cnnbench.spec.load`) and counted once per resolution; a row is the static
profile's record filled in once by the runtime measurement. Nothing here prints; progress
goes to an optional callback.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypedDict, Unpack

import torch
from torch import nn

from cnnbench.errors import CallTimeout, UsageError, call_limit, is_user_interrupt
from cnnbench.models import info_of
from cnnbench.report.format import config_label as describe
from cnnbench.request import LAYER_BUDGET_FACTOR, InputSpec, RunRequest, check_input_size
from cnnbench.results import LayerCost, Result, Run
from cnnbench.runtime import (
    Entry,
    RuntimeConfig,
    interrupted_rows,
    measure_config,
    measurement_settings,
    prepare,
    resolve_device,
)
from cnnbench.runtime.guard import check_buildable, check_fits, estimate_bytes, stdout_to_stderr
from cnnbench.spec import ExampleInputs, LoadedModel, ensure_info, load
from cnnbench.static import StaticProfile, profile_static

__all__ = [
    "profile",
    "compare",
    "RunOptions",
    "RunRequest",
    "InputSpec",
    "run_request",
    "run_models",
    "resolve_model",
    "static_profile",
    "new_run",
    "run",
    "layer_rows",
    "describe",
    "TRAIN_FLOPS_FACTOR",
    "LAYER_BUDGET_FACTOR",
    "request_roofs",
]

#: Seconds a static count (one forward on the meta device) may take before it is abandoned.
STATIC_CALL_LIMIT_S = 120.0

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
        info = info_of(model)
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
    input_size: Sequence[int] | None = None,
    example_inputs: Any = None,
    depth: int | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[Result]:
    """:func:`run_request` for models and ready-made configurations (the keywords are
    :class:`~cnnbench.request.RunRequest`'s fields)."""
    request = RunRequest(
        models=tuple(models), configs=tuple(configs),
        inputs=InputSpec.of(input_size, example_inputs), counter=counter,
        static_only=static_only, cpu_memory=cpu_memory, depth=depth, baseline=baseline,
        model_args=dict(model_args or {}),
    )  # fmt: skip
    return run_request(request, on_progress=on_progress, stage_times=stage_times)


@stdout_to_stderr  # the model's prints stay off the data stream
def run_request(
    request: RunRequest,
    *,
    on_progress: Callable[[str], None] | None = None,
    stage_times: bool = True,
    environment: dict[str, Any] | None = None,
) -> Iterator[Result]:
    """Profile each model (spec or module), then measure all of them under each
    configuration, interleaved (:func:`cnnbench.runtime.measure_config`).

    Every spec is resolved, and every configuration's memory estimate checked against what
    is available (:mod:`cnnbench.runtime.guard`), before anything is measured. Yields one
    Result per (model, configuration), configuration by configuration, or one per model and
    resolution with ``static_only``. Static counts are per image, at the input
    :meth:`InputSpec.shape <cnnbench.request.InputSpec.shape>` gives under each
    configuration's resolution. Ratios divide by ``request.baseline`` (a model name; default
    the first model). Example inputs (one image's tensors, positional and keyword) are
    repeated to each batch. With ``depth``, each row carries its per-module ``layers``; when
    timed (not ``static_only``), every layer row down to ``depth`` is also timed on its real
    input in the row's configuration (:func:`cnnbench.runtime.layer_timing.time_layers`,
    :data:`LAYER_BUDGET_FACTOR` x the budget per model) and placed against this machine's
    measured roofs (:func:`request_roofs`), which are added to ``environment`` (the run's).
    """
    notify = on_progress or (lambda _msg: None)
    inputs, counter, depth = request.inputs, request.counter, request.depth
    size, ex = inputs.size, inputs.example
    loaded = []
    for item in request.models:
        notify(f"{item if isinstance(item, str) else type(item).__name__}: building")
        loaded.append(resolve_model(item, dict(request.model_args)))
    names = [m.name for m in loaded]
    baseline = request.baseline
    if baseline is not None and baseline not in names:
        raise UsageError(f"baseline {baseline!r} is not among the models: {', '.join(names)}")
    roofs: dict[str, Any] | None = None
    if depth and not request.static_only:
        roofs = request_roofs(request, notify)
        if environment is not None:
            environment.update(roofs)
    if request.static_only:
        for m in loaded:
            for res in request.resolutions():
                row = static_profile(m, res, counter, notify, size, ex).to_result()
                _build_notes_into(row, m)
                if depth:
                    row.layers = layer_rows(m, depth, res, size, ex)
                yield row
        return
    for config in request.configs:
        entries, failed = [], []
        for m in loaded:
            try:
                static = static_profile(m, config.resolution, counter, notify, size, ex)
            except UsageError as exc:
                if len(loaded) == 1:
                    raise  # one model: the one line is the answer (exit 2)
                failed.append(_failed_row(m, config, str(exc)))  # the others are measured
                continue
            row = static.to_result()
            _build_notes_into(row, m)
            if depth:
                row.layers = layer_rows(m, depth, config.resolution, size, ex)
            factor = TRAIN_FLOPS_FACTOR if config.mode == "train" else 1
            entries.append(
                Entry(
                    name=m.name, module=m.module, row=row, builder=m.rebuild,
                    stages=row.stages if stage_times else None,
                    flops_per_image=static.flops * factor, input_size=size, example_inputs=ex,
                )
            )  # fmt: skip
        device = resolve_device(config.device)
        measured = [m for m in loaded if m.name in {e.name for e in entries}]
        for m, e in zip(measured, entries, strict=True):
            static = static_profile(m, config.resolution, counter, notify, size, ex)
            parts = estimate_bytes(
                m.module,
                batch=1 if config.oom_backoff else config.batch_size,
                input_size=static.input_size,
                activation_bytes=static.activation_bytes,
                train_activation_bytes=static.train_activation_bytes,
                train=config.mode == "train",
            )
            check_fits(e.name, describe(config), parts, device)
        notify(f"{describe(config)}: timing {len(entries)} model(s) interleaved")
        yield from failed
        if not entries:
            continue
        timed = [e.name for e in entries]
        index = timed.index(baseline) if baseline in timed else 0
        rows = measure_config(entries, config, baseline=index, cpu_memory=request.cpu_memory)
        if depth and roofs is not None:
            for m, row in zip(measured, rows, strict=True):
                _layer_times_into(row, m, config, depth, roofs, request.inputs, notify)
        yield from rows


def _failed_row(m: LoadedModel, config: RuntimeConfig, error: str) -> Result:
    """The row of a model that could not be counted in ``config`` (status ``error``)."""
    info = info_of(m.module)
    row = Result(model=m.name, family=getattr(info, "family", "") or "", status="error")
    row.error = error
    return config.stamp(row, resolve_device(config.device))


def request_roofs(
    request: RunRequest, notify: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """This machine's roofs for ``request`` (its device and threads, a compute peak per
    precision it runs), as a run's ``environment`` records them: measured once per machine
    and cached (:func:`cnnbench.runtime.roofs.machine_roofs`)."""
    from cnnbench.runtime import roofs

    config = request.configs[0]  # every configuration of a request has its device and threads
    device = resolve_device(config.device)
    if notify is not None:
        notify("this machine's roofs (measured once, then cached)")
    dtypes = list(dict.fromkeys(c.precision for c in request.configs))
    with measurement_settings(config, device):
        return roofs.machine_roofs(device, dtypes).environment()


def _add_note(row: Result, text: str) -> None:
    row.notes = text if not row.notes else f"{row.notes}; {text}"


def _layer_times_into(
    row: Result,
    loaded: LoadedModel,
    config: RuntimeConfig,
    depth: int,
    roofs: dict[str, Any],
    inputs: InputSpec,
    notify: Callable[[str], None],
) -> None:
    """Time ``row``'s layer rows down to ``depth`` on their real input, in ``config``
    (device, threads, memory format, autocast; the eager model), and fill their measured
    fields and the row's reconciliation. A failure of the model's code is a note on the row."""
    from cnnbench.runtime.layer_timing import (
        annotate_layers,
        reconciliation_record,
        time_layers,
    )

    if row.status != "ok" or not row.layers:
        return
    if config.mode != "inference":
        _add_note(row, "per-layer time not measured: it times the forward (inference only)")
        return
    notify(f"{loaded.name}: timing every layer down to depth {depth}")
    batch = row.effective_batch_size or config.batch_size
    budget = LAYER_BUDGET_FACTOR * config.budget_s
    device = resolve_device(config.device)
    try:
        with measurement_settings(config, device), call_limit(config.call_limit_s + 2 * budget):
            prepared = prepare(
                loaded.module, dataclasses.replace(config, compile=False), name=loaded.name,
                input_size=inputs.size, batch_size=batch, check_input=False,
                example_inputs=inputs.example,
            )  # fmt: skip
            times = time_layers(
                prepared.model, prepared.arguments, depth, budget_s=budget,
                target_ci=config.target_ci, context=prepared.context, config=config,
            )  # fmt: skip
    except UsageError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the model's own code: a note on its row
        if is_user_interrupt(exc):
            raise
        _add_note(row, f"per-layer time not measured: {type(exc).__name__}: {exc}")
        return
    row.layers = annotate_layers(row.layers, times, roofs, batch_size=batch, dtype=config.precision)
    row.layer_timing = reconciliation_record(times)
    if config.compile:
        _add_note(row, "per-layer times are of the eager model (compiled code has no layers)")


def _build_notes_into(row: Result, loaded: LoadedModel) -> None:
    """The row says what building its model changed in torch's global state (undone)."""
    for text in loaded.notes:
        _add_note(row, text)


@stdout_to_stderr  # the model's prints stay off the data stream
def layer_rows(
    loaded: LoadedModel,
    depth: int,
    resolution: int | None = None,
    input_size: Sequence[int] | None = None,
    example_inputs: ExampleInputs | None = None,
) -> list[LayerCost]:
    """Per-module rows down to ``depth`` (:func:`cnnbench.static.layers.layer_costs`) at the
    resolution or input size, counted once per input (cached on the LoadedModel)."""
    from cnnbench.static.layers import layer_costs

    key: tuple[Any, ...] = ("layers", depth, resolution, tuple(input_size) if input_size else None)
    key += (id(example_inputs),)
    if key not in loaded.profiles:
        prof = static_profile(
            loaded, resolution, input_size=input_size, example_inputs=example_inputs
        )
        loaded.profiles[key] = layer_costs(
            loaded.module, prof.input_size, depth=depth, example_inputs=example_inputs
        )
    return loaded.profiles[key]


@stdout_to_stderr  # the model's prints stay off the data stream
def static_profile(
    loaded: LoadedModel,
    resolution: int | None = None,
    counter: str = "cnnbench",
    notify: Callable[[str], None] | None = None,
    input_size: Sequence[int] | None = None,
    example_inputs: ExampleInputs | None = None,
    limit_s: float | None = None,
) -> StaticProfile:
    """The static profile of a loaded model at ``resolution`` (or ``input_size`` C, H, W, or
    on ``example_inputs``), counted once per input and counter (cached on the LoadedModel).
    Counting, the real-tensor fallback included, must finish within ``limit_s`` seconds, at
    most :data:`STATIC_CALL_LIMIT_S` (UsageError otherwise)."""
    inputs = InputSpec(check_input_size(tuple(input_size)) if input_size else None, example_inputs)
    key = (resolution, counter, *inputs.key())
    if key not in loaded.profiles:
        if notify is not None:
            notify(f"{loaded.name}: counting (static profile)")
        count = functools.partial(
            profile_static, loaded.module, name=loaded.name, resolution=resolution,
            input_size=inputs.size, counter=counter, example_inputs=example_inputs,
        )  # fmt: skip
        meta = counter != "fvcore"
        limit = STATIC_CALL_LIMIT_S if limit_s is None else min(STATIC_CALL_LIMIT_S, limit_s)
        try:
            with call_limit(limit):
                try:
                    prof = count(meta=meta)
                except UsageError:
                    if not meta or (_on_meta(loaded.module) and loaded.rebuild is None):
                        raise
                    prof = _count_on_real_tensors(loaded, count)
        except CallTimeout:
            raise UsageError(
                f"{loaded.name}: counting did not finish within {limit:g} s "
                "(does its forward return?)"
            ) from None
        loaded.profiles[key] = prof
    return loaded.profiles[key]


def _on_meta(module: nn.Module) -> bool:
    return any(t.is_meta for t in (*module.parameters(), *module.buffers()))


def _count_on_real_tensors(
    loaded: LoadedModel, count: functools.partial[StaticProfile]
) -> StaticProfile:
    """The meta device could not run the model (data-dependent control flow such as
    ``x.item()``): count on real CPU tensors, after checking that the weights and one input
    fit in memory. The meta error is raised when the real run fails too."""
    import sys

    meta_error = sys.exc_info()[1]
    if _on_meta(loaded.module):  # built on meta for counting (info): build it for real
        assert loaded.rebuild is not None
        check_buildable(loaded.name, loaded.module)
        loaded.module = loaded.rebuild()
        loaded.profiles.clear()
        count = functools.partial(count.func, loaded.module, *count.args[1:], **count.keywords)
    inputs = InputSpec(count.keywords["input_size"], count.keywords["example_inputs"])
    size = inputs.shape_for(loaded.module, count.keywords["resolution"], loaded.name)
    parts = estimate_bytes(loaded.module, batch=1, input_size=size, activation_bytes=None)
    check_fits(loaded.name, "counting on real tensors", parts, torch.device("cpu"))
    try:
        prof = count(meta=False)
    except UsageError:
        assert meta_error is not None
        raise meta_error from None
    prof.notes.append(
        "counted on real CPU tensors: the meta device cannot run this model "
        "(data-dependent control flow)"
    )
    return prof


class RunOptions(TypedDict, total=False):
    """Keyword options of :func:`profile` and :func:`compare`: the knobs of
    :meth:`RunRequest.of <cnnbench.request.RunRequest.of>`, which holds their one default each
    (in brackets). ``input_size`` (C, H, W) of one input [the model's]; ``example_inputs``:
    one image's inputs, a tensor, a tuple or a dict of tensors at batch 1, or a callable
    returning one (the batch dimension is repeated for ``batch``) [None]; ``static_only``
    [False]; ``device`` [auto]; ``batch``, ``precision``, ``memory_format``, ``resolution``: a
    value or a list (every combination is measured; ``memory_format="both"``: contiguous and
    channels_last) [1, fp32, contiguous, native]; ``threads`` [torch's]; ``budget``: seconds
    of timing per model and configuration, warm-up included [3.0]; ``call_timeout``: seconds
    one call of the model may take [max(60, 10 x budget)]; ``counter`` [cnnbench];
    ``compile`` [False]; ``train`` [False]; ``model_args`` for specs [None]; ``cpu_memory``:
    measure CPU peak memory in a child process [True]; ``depth``: per-module rows down to
    this depth, each timed on its real input unless ``static_only`` (about
    :data:`LAYER_BUDGET_FACTOR` x ``budget`` more per model and configuration) [None]."""

    input_size: Sequence[int] | None
    example_inputs: Any
    static_only: bool
    device: str
    batch: int | Sequence[int]
    precision: str | Sequence[str]
    memory_format: str | Sequence[str]
    resolution: int | Sequence[int] | None
    threads: int | None
    budget: float
    call_timeout: float | None
    counter: str
    compile: bool
    train: bool
    model_args: dict[str, Any] | None
    cpu_memory: bool
    depth: int | None


def new_run(command: str, request: RunRequest) -> Run:
    """An empty run of ``command`` for ``request``: this machine's fingerprint and the run's
    configuration, ready to receive results."""
    from cnnbench.environment import fingerprint

    size = request.inputs.size
    return Run(
        results=[],
        environment=fingerprint(resolve_device(request.configs[0].device)),
        config={
            "command": command,
            "models": request.labels,
            "counter": request.counter,
            "static_only": request.static_only,
            "configs": [vars(c) for c in request.configs],
            "model_args": dict(request.model_args),
            "input_size": list(size) if size else None,
            "depth": request.depth,
        },
    )


def run(command: str, request: RunRequest, on_progress: Callable[[str], None] | None = None) -> Run:
    """The :class:`~cnnbench.results.Run` of ``request``, measured to the end; Ctrl-C
    returns the rows measured so far with ``run.complete`` False. Prints nothing."""
    result = new_run(command, request)
    try:
        for row in run_request(request, on_progress=on_progress, environment=result.environment):
            result.results.append(row)
    except KeyboardInterrupt as exc:
        result.results.extend(interrupted_rows(exc))  # the interrupted configuration's rows
        result.complete = False
    return result


def profile(model: ModelLike, **options: Unpack[RunOptions]) -> Run:
    """Profile one model (a zoo name, a spec such as ``"net.py:make"``, or an ``nn.Module``)
    and return the :class:`~cnnbench.results.Run`: static counts per image and, unless
    ``static_only``, latency, throughput and peak memory per configuration (options:
    :class:`RunOptions`). Prints nothing; Ctrl-C returns the rows measured so far with
    ``run.complete`` False."""
    return run("profile", RunRequest.of([model], **options))


def compare(
    models: Sequence[ModelLike], *, baseline: str | None = None, **options: Unpack[RunOptions]
) -> Run:
    """Compare models (zoo names, specs and ``nn.Module`` objects mixed freely), timed
    interleaved per configuration; each row carries its latency and throughput ratio to
    ``baseline`` (a model name; default the first) with a 95% CI. Options as
    :func:`profile`'s; returns the :class:`~cnnbench.results.Run`, printing nothing."""
    return run("compare", RunRequest.of(models, baseline=baseline, **options))
