"""Static profile: what a network costs before it runs (parameters, MACs, FLOPs, activations).

All counts are **per image** (the counter runs at batch 1) in eval mode, at the given input
size. By default nothing is computed for real: zoo models are built on the meta device, and
a user's module is profiled with its parameters temporarily replaced by meta tensors.

Activation memory, per image:
* ``activation_bytes`` (inference): the peak of simultaneously live operation outputs during
  one forward pass under no_grad, the input excluded;
* ``activation_sum_bytes``: the sum of all operation outputs, an upper bound on the former;
* ``train_activation_bytes``: the tensors autograd saves for backward in train mode
  (parameters excluded, each storage once).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cnnbench.errors import UsageError, one_line
from cnnbench.models import info_of
from cnnbench.request import InputSpec
from cnnbench.results import Result, StageCost
from cnnbench.spec import ExampleInputs
from cnnbench.static.backends import CounterReport, report_from_dispatch, run_backend
from cnnbench.static.counting import (
    DispatchCount,
    count_dispatch,
    count_saved_bytes,
    hookable,
)
from cnnbench.static.meta import on_meta, swapped_to_meta

__all__ = [
    "StaticProfile",
    "profile_static",
    "build_model",
    "on_meta",
    "meta_forward",
    "fits_on_meta",
    "check_input",
    "input_error",
    "smallest_resolution",
    "stage_list",
]


@dataclass
class StaticProfile:
    """Static costs of one model at one input size; counts per image."""

    model: str
    family: str
    input_size: tuple[int, ...]
    params: int
    trainable_params: int
    buffers: int
    bytes_by_dtype: dict[str, int]
    params_by_module_type: dict[str, int]
    macs: int
    flops: int
    counter: CounterReport
    dispatch: DispatchCount
    stages: list[StageCost]
    activation_bytes: int
    activation_sum_bytes: int
    train_activation_bytes: int | None
    notes: list[str] = field(default_factory=list)

    def to_result(self) -> Result:
        """The static fields of the common result record."""
        return Result(
            model=self.model,
            family=self.family,
            input_size=list(self.input_size),
            params=self.params,
            trainable_params=self.trainable_params,
            buffers=self.buffers,
            macs=self.macs,
            flops=self.flops,
            counter=self.counter.backend,
            activation_bytes=self.activation_bytes,
            train_activation_bytes=self.train_activation_bytes,
            stages=[StageCost(**vars(s)) for s in self.stages],
            notes="; ".join(self.notes) or None,
        )

    def dispatch_for(self, inputs: Sequence[Tensor]) -> DispatchCount:
        """This profile's dispatch count, to stand for a count of ``inputs`` (one tensor of
        batch 1 at the profiled input size; UsageError otherwise), e.g. for
        :func:`cnnbench.static.backends.compare_counters`."""
        shape = tuple(inputs[0].shape) if inputs else ()
        if len(inputs) != 1 or shape != (1, *self.input_size):
            raise UsageError(
                f"{self.model}: the profile is for input 1x{'x'.join(map(str, self.input_size))}"
                f", not {'x'.join(map(str, shape)) or 'these inputs'}; profile this input instead"
            )
        return self.dispatch


def build_model(name: str, *, device: str = "meta", **kwargs: Any) -> nn.Module:
    """Build a zoo model on ``device`` (meta by default: shapes only, no memory)."""
    from cnnbench.models import create_model

    with torch.device(device):
        return create_model(name, **kwargs)


@contextmanager
def _state_kept(modules: Sequence[nn.Module], values: bool = True) -> Iterator[None]:
    """Put back every module's train/eval flag and (``values``) every real buffer's values on
    exit: the profile runs in eval mode, and its train-memory pass updates BatchNorm
    statistics. On the meta path the real buffers are swapped out and cannot change."""
    modes = [(m, m.training) for m in modules]
    buffers = (
        [(b, b.clone()) for b in _unique(m._buffers for m in modules) if not b.is_meta]
        if values
        else []
    )
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in buffers:
                b.copy_(value)
        for m, training in modes:
            if m.training != training:
                m.training = training


def _tensors(model: nn.Module) -> Iterator[Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def _unique(slots: Iterable[Mapping[str, Tensor | None]]) -> list[Tensor]:
    """The tensors in ``slots`` (modules' _parameters or _buffers), each once, in order."""
    seen: set[int] = set()
    out = []
    for d in slots:
        for t in d.values():
            if t is not None and id(t) not in seen:
                seen.add(id(t))
                out.append(t)
    return out


def stage_list(model: nn.Module) -> list[tuple[str, int, int | None]]:
    """(name, blocks, declared out channels) of each stage: a StagedNet's own stages (the
    zoo's protocol, recognised by type only: an attribute or method named ``stages`` on any
    other model is that model's own business), else the model's top-level children (blocks 1,
    channels unknown)."""
    from cnnbench.models import staged_net

    net = staged_net(model)
    if net is not None:
        return [(s.name, s.blocks, s.out_channels) for s in net.stages()]
    return [(name, 1, None) for name, _ in model.named_children()]


def _param_summary(
    modules: Sequence[nn.Module],
) -> tuple[int, int, int, dict[str, int], dict[str, int]]:
    """(params, trainable, buffer elements, bytes by dtype, params by module type) of a model
    given as its module list; each tensor once, as ``parameters()``/``buffers()`` yield them."""
    params = _unique(m._parameters for m in modules)
    buffers = _unique(m._buffers for m in modules)
    total = trainable = 0
    by_dtype: dict[str, int] = defaultdict(int)
    for p in params:
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
        by_dtype[str(p.dtype).removeprefix("torch.")] += n * p.element_size()
    n_buffers = 0
    for b in buffers:
        n_buffers += b.numel()
        by_dtype[str(b.dtype).removeprefix("torch.")] += b.numel() * b.element_size()
    by_type: dict[str, int] = defaultdict(int)
    for module in modules:
        n = sum(p.numel() for p in _unique([module._parameters]))
        if n:
            by_type[type(module).__name__] += n
    ordered = dict(sorted(by_type.items(), key=lambda kv: -kv[1]))
    return total, trainable, n_buffers, dict(by_dtype), ordered


def _run_checked(model: nn.Module, name: str, input_size: Sequence[int], fn: Any) -> Any:
    """Run ``fn()``; turn a failing forward into THE one line naming model, input and a fix
    (:func:`input_error`)."""
    try:
        return fn()
    except UsageError:
        raise
    except Exception as exc:  # noqa: BLE001 - every forward failure becomes one clear line
        raise input_error(model, name, input_size, exc) from exc


def input_error(
    model: nn.Module, name: str, input_size: Sequence[int], exc: BaseException
) -> UsageError:
    """THE error for a model that cannot take its input, whichever door it came through:
    ``name: forward failed on input CxHxW (first line of the error); what would work``
    (the channels the model expects, or its native input and the smallest that works)."""
    shown = "x".join(map(str, input_size))
    hint = _what_would_work(model, tuple(input_size))
    return UsageError(
        f"{name}: forward failed on input {shown} ({one_line(exc, with_type=False)}); {hint}"
    )


def _what_would_work(model: nn.Module, input_size: tuple[int, ...]) -> str:
    info = info_of(model)
    native = getattr(info, "input_size", None)
    if native is None:
        return "check the model's expected input shape (--input-size C,H,W, --resolution)"
    c, h, _ = native
    if input_size and input_size[0] != c:
        return f"the model expects {c} input channels"
    shown = "x".join(map(str, native))
    if not fits_on_meta(model, (1, c, h, h)):
        return f"the native input is {shown}"
    smallest = smallest_resolution(model, c, 0, h)
    return f"the native input is {shown}; the smallest that works is {c}x{smallest}x{smallest}"


def check_input(
    model: nn.Module, name: str, input_size: Sequence[int], reference: Sequence[int]
) -> None:
    """Raise :func:`input_error` when ``model`` cannot take one input of ``input_size``
    (checked on the meta device, in eval mode). A model that fails at ``reference`` too (the
    size before a resolution was applied) is not an input-size problem, or not decidable on
    meta: nothing is raised and the run shows what happens."""
    if tuple(input_size) == tuple(reference):
        return
    was_training = model.training
    model.eval()
    try:
        try:
            meta_forward(model, (1, *input_size))
            return
        except Exception as exc:  # noqa: BLE001 - probing
            error = input_error(model, name, input_size, exc)
        if fits_on_meta(model, (1, *reference)):
            raise error
    finally:
        model.train(was_training)


def meta_forward(model: nn.Module, shape: Sequence[int]) -> None:
    """Run ``model`` on a meta input of ``shape`` (shapes only, nothing computed); raises
    whatever the forward raises."""
    with on_meta(model), torch.no_grad():
        model(torch.empty(*shape, device="meta"))


def fits_on_meta(model: nn.Module, shape: Sequence[int]) -> bool:
    """Whether ``model`` accepts an input of ``shape`` (checked on the meta device)."""
    try:
        meta_forward(model, shape)
    except Exception:  # noqa: BLE001 - probing
        return False
    return True


def smallest_resolution(model: nn.Module, channels: int, fails_at: int, fits_at: int) -> int:
    """Bisect the smallest square size in ``(fails_at, fits_at]`` that the model accepts,
    given that ``fails_at`` does not fit and ``fits_at`` does (meta device: milliseconds)."""
    lo, hi = fails_at, fits_at
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits_on_meta(model, (1, channels, mid, mid)):
            hi = mid
        else:
            lo = mid
    return hi


def profile_static(
    model: nn.Module | str,
    *,
    input_size: tuple[int, int, int] | None = None,
    resolution: int | None = None,
    counter: str = "cnnbench",
    meta: bool = True,
    train_memory: bool = True,
    name: str = "",
    example_inputs: ExampleInputs | None = None,
    **model_kwargs: Any,
) -> StaticProfile:
    """Profile ``model`` (a zoo name or any nn.Module) at ``input_size`` (C, H, W).

    ``resolution`` overrides H = W of the default input. ``counter`` picks the backend whose
    MACs are reported (``cnnbench``, ``torch``, ``fvcore``, ``thop``); FLOPs, stages and memory
    always come from cnnbench's rule table. ``meta=False`` computes on real CPU tensors (the
    fvcore backend requires that). ``example_inputs`` (one image's tensors, positional and
    keyword: :class:`cnnbench.spec.ExampleInputs`) replace the C x H x W input; then the
    recorded input size is the first input's shape, and only the cnnbench and torch counters
    apply to keyword inputs.

    Cost: one counted forward pass (``count_dispatch``, shared with the ``torch`` backend's
    list of what it does not count) and, with ``train_memory``, one uncounted train-mode pass
    at batch 2 for the saved-tensor bytes. On the meta device the common ops take shape-only
    shortcuts (:data:`cnnbench.static.counting.META_SHAPES`), so a ResNet-50 profiles in
    about 15 ms.
    """
    if isinstance(model, str):
        name = name or model
        model = build_model(
            model, device="meta" if meta and counter != "fvcore" else "cpu", **model_kwargs
        )
    if not isinstance(model, nn.Module):
        raise UsageError(
            f"{name or type(model).__name__}: not a torch.nn.Module ({type(model).__name__}); "
            "pass a zoo name or an nn.Module instance"
        )
    name = name or type(model).__name__
    info = info_of(model)
    shape = InputSpec(input_size, example_inputs).shape_for(model, resolution, name)
    if example_inputs is not None and example_inputs.kwargs and counter in ("fvcore", "thop"):
        raise UsageError(f"{name}: {counter} takes positional inputs only; use --counter cnnbench")
    if counter == "fvcore":
        meta = False

    device = "meta" if meta else "cpu"
    notes: list[str] = []
    if not meta and any(t.is_meta for t in _tensors(model)):
        raise UsageError(f"{name}: the model is on the meta device; build it on cpu for {counter}")

    def feed(batch: int = 1) -> tuple[list[Tensor], dict[str, Tensor]]:
        """The forward's inputs at ``batch`` on the counting device."""
        if example_inputs is None:
            size = (batch, *shape)
            return [torch.empty(size, device=device) if meta else torch.randn(size)], {}
        ex = example_inputs.batched(batch) if batch > 1 else example_inputs
        ex = ex.map(lambda t: torch.empty(t.shape, dtype=t.dtype, device="meta") if meta else t)
        return list(ex.args), ex.kwargs

    def x() -> Tensor:
        return feed()[0][0]

    modules = list(model.modules())  # walked once: a big model has hundreds
    params, trainable, buffers, by_dtype, by_type = _param_summary(modules)
    ctx = swapped_to_meta(modules) if meta else nullcontext()
    from cnnbench.models import se_block_types  # the zoo's protocol (imported when needed)

    stage_meta = stage_list(model)
    se_types = se_block_types()
    from cnnbench.runtime.sandbox import torch_state  # here: runtime's package imports static

    state = torch_state()  # the model's code must not change torch's global state for others
    with state as changed, _state_kept(modules, values=not meta), ctx:
        model.eval()
        # Shapes only: holding the stage outputs would keep them alive and inflate the peak.
        outputs: dict[str, tuple[tuple[int, ...], int] | None] = {}
        hooks = [
            getattr(model, s).register_forward_hook(
                lambda _m, _i, out, s=s: outputs.__setitem__(s, _shape_of(out))
            )
            for s, _, _ in stage_meta
            if hookable(getattr(model, s))
        ]
        scripted = [s for s, _, _ in stage_meta if not hookable(getattr(model, s))]
        if scripted:
            notes.append(
                f"scripted (torch.jit) top-level modules {', '.join(scripted)}: their work is "
                "counted in the totals but not attributed to them (they take no hooks)"
            )
        try:

            def counted() -> DispatchCount:
                args, kwargs = feed()
                return count_dispatch(model, args, kwargs=kwargs, se_types=se_types)

            dispatch = _run_checked(model, name, shape, counted)
        finally:
            for hook in hooks:
                hook.remove()
        # The other backends reuse this count where they need cnnbench's (never count twice).
        report = (
            report_from_dispatch(dispatch)
            if counter == "cnnbench"
            else _run_checked(
                model,
                name,
                shape,
                lambda: run_backend(counter, model, [x()], dispatch=dispatch),
            )
        )
        train_bytes = None
        if train_memory:  # a second, uncounted pass (its flags are put back on exit)
            model.train()
            try:
                train_bytes = count_saved_bytes(model, *feed(2)) // 2
            except Exception as exc:  # noqa: BLE001 - a note, never a crash: eval counted fine
                notes.append(
                    "training activation memory not measured: the train-mode forward at batch "
                    f"2 failed ({one_line(exc)})"
                )
    if changed:
        notes.append(changed.describe("its counted forward"))
    stages = []
    for stage_name, blocks, declared in stage_meta:
        out_shape, itemsize = outputs.get(stage_name) or ((), 0)
        scope = dispatch.by_scope.get(stage_name, [0, 0])
        module = getattr(model, stage_name)
        se_blocks = [m for m in module.modules() if isinstance(m, se_types)]
        se_counts = dispatch.se_by_scope.get(stage_name, {})
        stages.append(
            StageCost(
                name=stage_name,
                blocks=blocks,
                out_channels=declared
                if declared is not None
                else (out_shape[1] if len(out_shape) > 1 else 0),
                params=sum(p.numel() for p in module.parameters()),
                macs=scope[0],
                flops=scope[1],
                output_shape=list(out_shape[1:]),
                output_bytes=math.prod(out_shape) * itemsize,
                se_params=sum(p.numel() for b in se_blocks for p in b.parameters()),
                se_flops=sum(v[1] for v in se_counts.values()),
            )
        )
    if report.uncounted:
        notes.append(
            f"{report.backend} did not count: "
            + ", ".join(f"{u.name} x{u.calls}" for u in report.uncounted)
        )
    notes += _uncounted_macs_warning(dispatch)
    return StaticProfile(
        model=name,
        family=info.family if info is not None else "custom",
        input_size=shape,
        params=params,
        trainable_params=trainable,
        buffers=buffers,
        bytes_by_dtype=by_dtype,
        params_by_module_type=by_type,
        macs=report.macs if counter == "cnnbench" else _report_macs(report),
        flops=dispatch.flops,
        counter=report,
        dispatch=dispatch,
        stages=stages,
        activation_bytes=dispatch.peak_live_bytes,
        activation_sum_bytes=dispatch.sum_output_bytes,
        train_activation_bytes=train_bytes,
        notes=notes,
    )


def _uncounted_macs_warning(dispatch: DispatchCount) -> list[str]:
    """A warning when conv- or matmul-like operations went uncounted (a fused kernel without
    a rule), with their estimated share of the MACs; none otherwise."""
    missed = {n: s.estimated_macs for n, s in dispatch.uncounted.items() if s.estimated_macs}
    if not missed:
        return []
    total = sum(missed.values())
    share = total / (dispatch.macs + total)
    return [
        f"warning: conv/matmul-like operations without a rule ({', '.join(missed)}) hold an "
        f"estimated {share:.1%} of the MACs, missing from the total (estimate: output "
        "elements x contraction size)"
    ]


def _shape_of(out: Any) -> tuple[tuple[int, ...], int] | None:
    """(shape, bytes per element) of a stage's (first) output tensor, None if not a tensor."""
    out = out[0] if isinstance(out, (tuple, list)) and out else out
    return (tuple(out.shape), out.element_size()) if isinstance(out, Tensor) else None


def _report_macs(report: CounterReport) -> int:
    """A backend's headline figure in MACs (FLOP-unit backends halved)."""
    return report.total // 2 if report.unit == "FLOPs" else report.total
