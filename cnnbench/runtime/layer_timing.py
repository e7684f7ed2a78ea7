"""Per-layer measured time: every module down to a depth, timed on its real input.

How it is measured (:func:`time_layers`):

1. **Capture.** One forward of the model on its real input, with forward pre-hooks on every
   module at depth <= N (``stage1.0.conv2`` is depth 3) that keep a copy of each call's
   positional and keyword arguments (same dtype, device and memory format), forward hooks
   that record its output bytes, and a count of the torch calls it issued (``ops``).
   Modules never called (``ModuleList``, unused heads) get no row.
2. **Timing.** Each row is its own callable: the module applied to its captured arguments
   (every call of one forward, for a module called more than once). The rows and the whole
   model (``(end-to-end)``) are timed by the engine (:func:`cnnbench.runtime.engine.time_steps`):
   each warmed up, then interleaved shuffled rounds of short blocks until every row's median
   is known to ``target_ci`` or the budget is spent, every block under the configuration's
   call limit. Samples are milliseconds per forward, of the clock the engine chose for all
   rows (``clock``: wall time, or the thread's CPU time on a busy machine at 1 thread); on
   CUDA they come from CUDA events around each call (the harness's device loop). Rows run
   in eval mode under ``context`` (default ``torch.inference_mode()``; pass the prepared
   model's context for autocast), with denormals flushed to zero on CPU: a module that works
   in place (``SiLU(inplace=True)``) replayed on its own output drives values toward zero,
   which real inputs never do.
3. **Statistics.** A row's ``median_ms`` and 95% CI are the harness's distribution-free
   median interval over all its samples. ``(other)`` (depth 1) is the end-to-end time minus
   the depth-1 rows, computed per round from the rounds' block medians: work outside every
   child (functional ops in ``forward``, glue) plus whatever isolated timing changes
   (a layer timed alone finds its input in cache). :class:`Reconciliation` puts the sum of
   the depth-1 rows next to the end-to-end median, both with intervals, and says whether the
   intervals overlap.

Time per row is per forward of the whole batch. Bytes are the traffic lower bound of
:mod:`cnnbench.runtime.roofline` (inputs + outputs of every call + parameters and buffers
once). :func:`annotate_layers` puts times, bytes, intensity, achieved rates and the bound on
the static :class:`~cnnbench.results.LayerCost` rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten, tree_map

from cnnbench.results import LayerCost, LayerReconciliation
from cnnbench.runtime.config import RuntimeConfig
from cnnbench.runtime.engine import time_steps
from cnnbench.runtime.roofline import classify
from cnnbench.runtime.roofs import Roofs, bandwidth_table
from cnnbench.runtime.timing import median_ci, percentile
from cnnbench.spec import ExampleInputs

__all__ = [
    "END_TO_END",
    "OTHER",
    "LayerTimes",
    "LayerTiming",
    "Reconciliation",
    "annotate_layers",
    "reconciliation_record",
    "time_layers",
]

END_TO_END = "(end-to-end)"
OTHER = "(other)"


@dataclass
class LayerTiming:
    """One row: ``name`` (module path; :data:`OTHER` and :data:`END_TO_END` for the derived
    and whole-model rows), module ``type``, ``depth``, ``calls`` per forward, ``ops``
    (operator calls per forward), bytes of its inputs, outputs (all calls) and parameters
    plus buffers, whether it works in place, and its times in ms per forward: ``median_ms``
    with the 95% CI, all samples and the per-round block medians."""

    name: str
    type: str
    depth: int
    calls: int = 0
    ops: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    param_bytes: int = 0
    in_place: bool = False
    median_ms: float = 0.0
    ci_low_ms: float = 0.0
    ci_high_ms: float = 0.0
    samples_ms: list[float] = field(default_factory=list, repr=False)
    round_medians_ms: list[float] = field(default_factory=list, repr=False)

    @property
    def bytes(self) -> int:
        """The traffic lower bound: inputs + outputs + parameters and buffers once."""
        return self.input_bytes + self.output_bytes + self.param_bytes


@dataclass(frozen=True)
class Reconciliation:
    """The depth-1 rows against the whole model, in ms per forward: the sum of the rows
    (median over rounds of the per-round sum, with its 95% CI), the end-to-end median with
    its CI, ``(other)`` = end-to-end - sum per round, and ``agree`` when the two intervals
    overlap; ``clock``: the clock of every sample (``wall`` or ``cpu``)."""

    rows_sum_ms: float
    rows_sum_ci: tuple[float, float]
    end_to_end_ms: float
    end_to_end_ci: tuple[float, float]
    other_ms: float
    other_ci: tuple[float, float]
    rounds: int
    clock: str = "wall"

    @property
    def agree(self) -> bool:
        return (
            self.rows_sum_ci[0] <= self.end_to_end_ci[1]
            and self.end_to_end_ci[0] <= self.rows_sum_ci[1]
        )

    @property
    def share(self) -> float:
        """Sum of the rows / end-to-end (medians)."""
        return self.rows_sum_ms / self.end_to_end_ms if self.end_to_end_ms > 0 else 0.0


@dataclass
class LayerTimes:
    """Result of :func:`time_layers`: the rows (depth order of ``named_modules``, then
    ``(other)``), the whole model, the reconciliation, rounds and stop reason, and the
    seconds spent capturing and timing (the extra cost of per-layer timing)."""

    rows: list[LayerTiming]
    end_to_end: LayerTiming
    reconciliation: Reconciliation
    rounds: int
    stop_reason: str
    capture_s: float
    timing_s: float

    def row(self, name: str) -> LayerTiming:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


# --------------------------------------------------------------------------- statistics


def _median_and_ci(values: Sequence[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    low, high = median_ci(ordered)
    return percentile(ordered, 50), low, high


# --------------------------------------------------------------------------- capture


class _OpCounter(TorchFunctionMode):
    """Counts torch calls that return a tensor (``F.conv2d``, ``x + y``, ``torch.cat``), as
    Python code issues them: each pays the framework's per-call overhead once. Calls made
    inside another counted call, and attribute reads (``x.shape``), are not counted."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.enabled = True  # off while the capture hooks copy arguments

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: tuple[type, ...],
        args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.enabled and (
            isinstance(out, Tensor)
            or (isinstance(out, tuple | list) and out and isinstance(out[0], Tensor))
        ):
            self.count += 1
        return out


def _tensors(value: Any) -> list[Tensor]:
    return [t for t in tree_flatten(value)[0] if isinstance(t, Tensor)]


def _nbytes(tensors: Sequence[Tensor]) -> int:
    seen, total = set(), 0
    for t in tensors:
        key = (t.data_ptr(), t.numel(), t.dtype)
        if key not in seen:
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


def _copy(value: Any) -> Any:
    """The arguments with every tensor cloned (same layout), so later in-place work on the
    originals cannot change them."""
    return tree_map(lambda v: v.detach().clone() if isinstance(v, Tensor) else v, value)


@dataclass
class _Capture:
    module: nn.Module
    row: LayerTiming
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=list)
    ops_started: list[int] = field(default_factory=list)


@contextlib.contextmanager
def _capturing(model: nn.Module, depth: int, counter: _OpCounter) -> Iterator[dict[str, _Capture]]:
    captures: dict[str, _Capture] = {}
    handles = []

    def pre(cap: _Capture) -> Callable[..., None]:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            counter.enabled = False
            try:
                cap.calls.append((_copy(args), _copy(kwargs)))
            finally:
                counter.enabled = True
            cap.row.input_bytes += _nbytes(_tensors((args, kwargs)))
            cap.ops_started.append(counter.count)

        return hook

    def post(cap: _Capture) -> Callable[..., None]:
        def hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], out: Any) -> None:
            cap.row.ops += counter.count - cap.ops_started.pop()
            outs = _tensors(out)
            cap.row.output_bytes += _nbytes(outs)
            ins = {t.data_ptr() for t in _tensors((args, kwargs))}
            cap.row.in_place |= any(t.data_ptr() in ins for t in outs)
            cap.row.calls += 1

        return hook

    try:
        for name, module in model.named_modules():
            level = name.count(".") + 1 if name else 0
            if not name or level > depth:
                continue
            state = [*module.parameters(), *module.buffers()]
            row = LayerTiming(name, type(module).__name__, level, param_bytes=_nbytes(state))
            cap = captures[name] = _Capture(module, row)
            handles.append(module.register_forward_pre_hook(pre(cap), with_kwargs=True))
            handles.append(module.register_forward_hook(post(cap), with_kwargs=True))
        yield captures
    finally:
        for h in handles:
            h.remove()


def _replay(
    module: nn.Module, calls: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
) -> Callable[[], Any]:
    if len(calls) == 1:
        args, kwargs = calls[0]
        return lambda: module(*args, **kwargs)

    def run() -> None:
        for args, kwargs in calls:
            module(*args, **kwargs)

    return run


@contextlib.contextmanager
def _flush_denormals(device: torch.device) -> Iterator[None]:
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _inputs(value: Any) -> ExampleInputs:
    if isinstance(value, ExampleInputs):
        return value
    if isinstance(value, Tensor):
        return ExampleInputs((value,))
    if isinstance(value, tuple | list):
        return ExampleInputs(tuple(value))
    if isinstance(value, dict):
        return ExampleInputs((), dict(value))
    raise TypeError(f"example_input: a tensor, tuple or dict of tensors, not {type(value)}")


def _device_of(inputs: ExampleInputs, model: nn.Module) -> torch.device:
    for t in (*inputs.args, *inputs.kwargs.values()):
        if isinstance(t, Tensor):
            return t.device
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def time_layers(
    model: nn.Module,
    example_input: Any,
    depth: int = 1,
    *,
    budget_s: float = 10.0,
    target_ci: float = 0.02,
    context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
    config: RuntimeConfig | None = None,
    seed: int = 0,
) -> LayerTimes:
    """Time every module of ``model`` down to ``depth`` on ``example_input`` (the real, batched
    input already on the model's device: a tensor, a tuple of tensors or a dict of keyword
    tensors) within about ``budget_s`` seconds (capture and warm-up included); see the module
    docstring. ``context`` returns the context the forward runs in (default
    ``torch.inference_mode``); ``config`` gives the call limit (default: the default
    configuration on the input's device); the model's train/eval mode is put back."""
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth {depth!r}: use a whole number >= 1")
    inputs = _inputs(example_input)
    device = _device_of(inputs, model)
    make_context = context or torch.inference_mode
    was_training = model.training
    model.eval()
    started = time.perf_counter()
    try:
        with make_context():
            counter = _OpCounter()
            with _capturing(model, depth, counter) as captures, counter:
                out = model(*inputs.args, **inputs.kwargs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            whole = LayerTiming(
                END_TO_END,
                type(model).__name__,
                0,
                calls=1,
                ops=counter.count,
                input_bytes=_nbytes(_tensors((inputs.args, inputs.kwargs))),
                output_bytes=_nbytes(_tensors(out)),
                param_bytes=_nbytes([*model.parameters(), *model.buffers()]),
            )
            del out
            rows = [c.row for c in captures.values() if c.calls]
            callables = [(c.row.name, _replay(c.module, c.calls)) for c in captures.values()]
            callables = [(n, f) for n, f in callables if n in {r.name for r in rows}]
            callables.append((END_TO_END, lambda: model(*inputs.args, **inputs.kwargs)))
            capture_s = time.perf_counter() - started
            with _flush_denormals(device):
                timed, n_rounds, reason = time_steps(
                    callables,
                    config or RuntimeConfig(device=str(device)),
                    budget_s=max(budget_s - capture_s, 0.1),
                    target_ci=target_ci,
                    seed=seed,
                )
    finally:
        model.train(was_training)
    clock = timed[END_TO_END].clock
    for r in [*rows, whole]:
        r.samples_ms = timed[r.name].samples
        r.round_medians_ms = timed[r.name].block_medians
        r.median_ms, r.ci_low_ms, r.ci_high_ms = _median_and_ci(r.samples_ms)
    top = [r for r in rows if r.depth == 1]
    sums = [sum(rnd) for rnd in zip(*(r.round_medians_ms for r in top), strict=True)] or [
        0.0
    ] * n_rounds
    others = [e - s for e, s in zip(whole.round_medians_ms, sums, strict=True)]
    s_med, s_lo, s_hi = _median_and_ci(sums)
    o_med, o_lo, o_hi = _median_and_ci(others)
    e_med, e_lo, e_hi = _median_and_ci(whole.round_medians_ms)
    rows.append(
        LayerTiming(
            OTHER,
            "",
            1,
            median_ms=o_med,
            ci_low_ms=o_lo,
            ci_high_ms=o_hi,
            samples_ms=others,
            round_medians_ms=others,
        )
    )
    reconciliation = Reconciliation(
        rows_sum_ms=s_med,
        rows_sum_ci=(s_lo, s_hi),
        end_to_end_ms=e_med,
        end_to_end_ci=(e_lo, e_hi),
        other_ms=o_med,
        other_ci=(o_lo, o_hi),
        rounds=n_rounds,
        clock=clock,
    )
    return LayerTimes(
        rows=rows,
        end_to_end=whole,
        reconciliation=reconciliation,
        rounds=n_rounds,
        stop_reason=reason,
        capture_s=capture_s,
        timing_s=time.perf_counter() - started - capture_s,
    )


# --------------------------------------------------------------------------- annotation


def annotate_layers(
    layer_costs: Sequence[LayerCost],
    timings: LayerTimes | Sequence[LayerTiming],
    roofs: Roofs | Mapping[str, Any],
    *,
    batch_size: int = 1,
    dtype: str = "fp32",
) -> list[LayerCost]:
    """Copies of the static rows with the measured fields filled in where a timing row of
    the same name exists: ``time_ms`` and its CI (per forward of the batch), ``bytes`` (traffic
    lower bound, per batch), ``intensity`` (FLOP/byte), ``gflops_achieved``,
    ``gbps_achieved``, ``bound`` and ``roof_fraction``. The static rows count per image; their
    FLOPs are multiplied by ``batch_size``. ``roofs`` is a :class:`Roofs` or a run's
    environment dict; ``dtype`` picks its compute peak (the dtype that ran). The ``(other)``
    row gets its time only (its bytes are unknown), and is added when the static rows have
    none (nothing counted outside the children, time spent there all the same)."""
    rows = timings.rows if isinstance(timings, LayerTimes) else timings
    by_name = {r.name: r for r in rows}
    env = roofs.environment() if isinstance(roofs, Roofs) else roofs
    peaks = env.get("peak_gflops", {})
    if dtype not in peaks:
        raise ValueError(f"no compute peak for {dtype!r} in the roofs (have {sorted(peaks)})")
    bandwidth = bandwidth_table(env)
    overhead_us = float(env["call_overhead_us"])
    module_us = float(env.get("module_call_overhead_us", 0.0))
    out = []
    for cost in layer_costs:
        t = by_name.get(cost.name)
        if t is None or (t.median_ms <= 0 and t.name != OTHER):
            out.append(dataclasses.replace(cost))
            continue
        row = dataclasses.replace(cost, **_times(t))
        if t.name != OTHER and t.bytes > 0:
            flops = cost.flops * batch_size
            b = classify(
                t.median_ms,
                flops,
                t.bytes,
                peak_gflops=peaks[dtype],
                bandwidth_gbps=bandwidth,
                call_overhead_us=overhead_us,
                ops=max(t.ops, 1),
                calls=t.calls,
                module_call_us=module_us,
            )
            row.bytes = t.bytes
            row.intensity = b.intensity
            row.gflops_achieved = b.gflops
            row.gbps_achieved = b.gbps
            row.bound = b.bound
            row.roof_fraction = b.roof_fraction
        out.append(row)
    other = by_name.get(OTHER)
    if other is not None and all(c.name != OTHER for c in layer_costs):
        # nothing was counted outside the children, but the time outside them is measured
        out.append(
            LayerCost(
                OTHER, "", 1, [], params=0, macs=0, flops=0, **_times(other)
            )
        )  # fmt: skip
    return out


class _TimeFields(TypedDict):
    """The time fields of a :class:`LayerCost` row, as keyword arguments."""

    time_ms: float | None
    time_ms_ci_low: float | None
    time_ms_ci_high: float | None


def _times(t: LayerTiming) -> _TimeFields:
    """A row's time fields. ``(other)`` is a difference of medians: its interval is cut at 0
    (time outside the children is never negative), and a negative median leaves it without a
    time (the rows alone took longer than the whole model: the reconciliation says so)."""
    if t.name != OTHER:
        return {
            "time_ms": t.median_ms,
            "time_ms_ci_low": t.ci_low_ms,
            "time_ms_ci_high": t.ci_high_ms,
        }
    if t.median_ms < 0:
        return {"time_ms": None, "time_ms_ci_low": None, "time_ms_ci_high": None}
    return {
        "time_ms": t.median_ms,
        "time_ms_ci_low": max(t.ci_low_ms, 0.0),
        "time_ms_ci_high": max(t.ci_high_ms, 0.0),
    }


def reconciliation_record(times: LayerTimes) -> LayerReconciliation:
    """The reconciliation of ``times`` as a run records it on its row
    (:class:`~cnnbench.results.LayerReconciliation`), with the seconds capture and timing
    took."""
    rec = times.reconciliation
    return LayerReconciliation(
        rows_sum_ms=rec.rows_sum_ms,
        rows_sum_ci_low=rec.rows_sum_ci[0],
        rows_sum_ci_high=rec.rows_sum_ci[1],
        end_to_end_ms=rec.end_to_end_ms,
        end_to_end_ci_low=rec.end_to_end_ci[0],
        end_to_end_ci_high=rec.end_to_end_ci[1],
        rounds=rec.rounds,
        seconds=times.capture_s + times.timing_s,
        clock=rec.clock,
    )
