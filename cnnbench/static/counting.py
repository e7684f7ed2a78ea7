"""cnnbench's own operation counter: MACs and FLOPs at the ATen dispatch level.

Every operation a forward pass dispatches is counted under the rule table
(:data:`cnnbench.static.rules.RULES`, conventions there and in the README); a per-call
``rules`` mapping adds, replaces or ignores rules without touching the table. Counts are for
the batch that was fed; the profiler divides by the batch size. Operations without a rule that
are not free are reported in ``uncounted`` with their call count and elements: never silently
counted as zero.

The counter runs on real tensors or on the meta device (shapes only, nothing computed; the
common ops take the shortcuts of :data:`cnnbench.static.meta_shapes.META_SHAPES`).
Counters never print.
"""

from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from cnnbench.static.meta_shapes import META_SHAPES, Shape
from cnnbench.static.rules import BATCH_NORM_OPS, FREE_OPS, RULES, Rule, op_name

__all__ = [
    "OpStats",
    "rule_table",
    "hookable",
    "MATMUL_LIKE",
    "estimate_macs",
    "DispatchCount",
    "count_dispatch",
    "count_saved_bytes",
]


@dataclass
class OpStats:
    """What one ATen operation contributed: calls, output elements, MACs and FLOPs.

    For an uncounted operation ``macs`` and ``flops`` stay 0 and ``estimated_macs`` is a
    rough guess when its name says it is conv- or matmul-like (:func:`estimate_macs`)."""

    category: str
    calls: int = 0
    elements: int = 0
    macs: int = 0
    flops: int = 0
    estimated_macs: int = 0


#: Name fragments of ATen operations that multiply matrices or convolve (an uncounted one
#: means the MAC total is low).
MATMUL_LIKE = ("conv", "mm", "matmul", "linear", "attention", "rnn", "lstm", "gru", "einsum")


def estimate_macs(name: str, args: Sequence[Any], elements: int) -> int:
    """A rough MAC count of an uncounted conv- or matmul-like op (0 for any other op): output
    elements times the contraction, guessed as a convolution weight's ``C_in/groups * k``
    (a second argument of 3 or more dimensions) or else the first input's last dimension; for
    attention (q, k, v first) the scores times ``E + Ev``."""
    if not any(part in name for part in MATMUL_LIKE):
        return 0
    if "attention" in name and len(args) > 2 and all(isinstance(t, Tensor) for t in args[:3]):
        q, k, v = args[0], args[1], args[2]  # (..., L, E), (..., S, E), (..., S, Ev)
        return q.numel() // max(q.shape[-1], 1) * k.shape[-2] * (q.shape[-1] + v.shape[-1])
    weight = args[1] if len(args) > 1 else None
    if isinstance(weight, Tensor) and weight.dim() >= 3 and "conv" in name:
        return elements * (weight.numel() // max(weight.shape[0], 1))
    first = args[0] if args else None
    if isinstance(first, Tensor) and first.dim() >= 1:
        return elements * first.shape[-1]
    return elements


@dataclass
class DispatchCount:
    """The outcome of one counted forward pass (for the batch fed).

    ``by_op`` maps ATen op names to their stats; the category ``se_gate`` holds the
    elementwise work done inside Squeeze-and-Excitation blocks (pool, gate, scale), so a
    report can show it apart from the rest. ``by_scope`` maps the top-level child module
    (stage) that was running to (MACs, FLOPs). ``uncounted`` lists operations without a rule.
    Memory: ``peak_live_bytes`` is the peak of simultaneously live op outputs (inference;
    the input excluded); ``sum_output_bytes`` is the plain sum of all op outputs, an upper
    bound; ``saved_bytes`` is what autograd saves for backward (only when counted with grad).
    """

    macs: int = 0
    flops: int = 0
    by_op: dict[str, OpStats] = field(default_factory=dict)
    by_scope: dict[str, list[int]] = field(default_factory=dict)
    se_by_scope: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    uncounted: dict[str, OpStats] = field(default_factory=dict)
    peak_live_bytes: int = 0
    sum_output_bytes: int = 0
    saved_bytes: int = 0

    def by_category(self) -> dict[str, tuple[int, int]]:
        """(MACs, FLOPs) per category, largest FLOPs first."""
        agg: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for stats in self.by_op.values():
            agg[stats.category][0] += stats.macs
            agg[stats.category][1] += stats.flops
        return {k: (v[0], v[1]) for k, v in sorted(agg.items(), key=lambda kv: -kv[1][1])}


def rule_table(
    rules: Mapping[str, Rule | None] | None = None,
) -> tuple[Mapping[str, Rule], frozenset[str]]:
    """(rules, free ops) for one count: :data:`RULES` and :data:`FREE_OPS` with the per-call
    ``rules`` laid over them; an op mapped to a Rule is counted by it, an op mapped to None is
    ignored (free, never listed as uncounted)."""
    if not rules:
        return RULES, FREE_OPS
    table = dict(RULES)
    ignored = set()
    for name, rule in rules.items():
        if rule is None:
            table.pop(name, None)
            ignored.add(name)
        else:
            table[name] = rule
    return table, FREE_OPS | ignored


@dataclass(frozen=True)
class _Plan:
    """What the counter needs to know about one ATen overload, looked up once."""

    name: str
    batch_norm: bool
    mutable: bool
    shape: Shape | None


_PLANS: dict[Any, _Plan] = {}


def _plan(func: Any) -> _Plan:
    plan = _PLANS.get(func)
    if plan is None:
        name = op_name(func)
        plan = _Plan(name, name in BATCH_NORM_OPS, func._schema.is_mutable, META_SHAPES.get(func))
        _PLANS[func] = plan
    return plan


def _output_tensors(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        if any(isinstance(o, (tuple, list, dict)) for o in out):
            return [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        return [t for t in out if isinstance(t, Tensor)]
    return []


class _MetaShapeMode(TorchDispatchMode):
    """Runs every op, taking :data:`META_SHAPES` shortcuts on meta tensors; counts nothing."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Never traced by torch.compile: spare each op the dynamo-disable wrapper (~3 us).
        return False

    def __torch_dispatch__(
        self,
        func: Any,
        types: Sequence[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        plan = _PLANS.get(func) or _plan(func)
        kwargs = kwargs or {}
        out = plan.shape(args, kwargs) if plan.shape is not None else None
        return func(*args, **kwargs) if out is None else out


class _CountingMode(TorchDispatchMode):
    """Counts every op under :data:`RULES` (and its memory), with the meta shortcuts."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as for _MetaShapeMode

    def __init__(
        self,
        result: DispatchCount,
        track_memory: bool,
        rules: Mapping[str, Rule | None] | None = None,
    ) -> None:
        super().__init__()
        self.result = result
        self.rules, self.free = rule_table(rules)
        self.scope = "(other)"
        self.se_depth = 0
        self.track_memory = track_memory
        self.live = 0
        # memory tracking: a weak reference per live output, its bytes released when it dies
        self._alive: dict[int, tuple[weakref.ref[Tensor], int]] = {}
        self._on_free = self._free

    def _free(self, ref: weakref.ref[Tensor]) -> None:
        entry = self._alive.pop(id(ref), None)
        if entry is not None:
            self.live -= entry[1]

    def __torch_dispatch__(
        self,
        func: Any,
        types: Sequence[type],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        plan = _PLANS.get(func) or _plan(func)
        kwargs = kwargs or {}
        out = plan.shape(args, kwargs) if plan.shape is not None else None
        if out is None:
            out = func(*args, **kwargs)
        name = plan.name
        tensors = _output_tensors(out)
        if plan.batch_norm:
            # Only the normalised output: save_mean/save_invstd are empty on CPU in eval but
            # (C,) on the meta device, so counting them would make meta and real disagree.
            tensors = tensors[:1]
        elements = 0
        for t in tensors:
            elements += t.numel()
        rule = self.rules.get(name)
        res = self.result
        if rule is not None:
            macs, flops = rule.fn(args, out)
            category = rule.category
            if self.se_depth and category in ("elementwise", "pooling", "activation"):
                category, name = "se_gate", f"{name} (SE)"
            stats = res.by_op.get(name)
            if stats is None:
                stats = res.by_op[name] = OpStats(category)
            stats.calls += 1
            stats.elements += elements
            stats.macs += macs
            stats.flops += flops
            res.macs += macs
            res.flops += flops
            scope = res.by_scope.get(self.scope)
            if scope is None:
                scope = res.by_scope[self.scope] = [0, 0]
            scope[0] += macs
            scope[1] += flops
            if self.se_depth:
                part = "se_gate" if category == "se_gate" else "fc"
                se = res.se_by_scope.setdefault(self.scope, {}).setdefault(part, [0, 0])
                se[0] += macs
                se[1] += flops
        elif name not in self.free:
            stats = res.uncounted.get(name)
            if stats is None:
                stats = res.uncounted[name] = OpStats("uncounted")
            stats.calls += 1
            stats.elements += elements
            stats.estimated_macs += estimate_macs(name, args, elements)
        if self.track_memory and not plan.mutable:
            for t in tensors:
                if t._is_view():
                    continue
                nbytes = t.numel() * t.element_size()
                res.sum_output_bytes += nbytes
                self.live += nbytes
                ref = weakref.ref(t, self._on_free)
                self._alive[id(ref)] = (ref, nbytes)
            if self.live > res.peak_live_bytes:
                res.peak_live_bytes = self.live
        return out


@contextmanager
def _scoped(mode: _CountingMode, model: nn.Module, se_types: tuple[type, ...]) -> Iterator[None]:
    """Attribute counts to the top-level child (stage) that runs, and mark SE blocks."""
    handles = []

    def enter_scope(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            mode.scope = name

        return hook

    def exit_scope(*_: Any) -> None:
        mode.scope = "(other)"

    def se_enter(*_: Any) -> None:
        mode.se_depth += 1

    def se_exit(*_: Any) -> None:
        mode.se_depth -= 1

    try:
        for name, child in model.named_children():
            if not hookable(child):
                continue
            handles.append(child.register_forward_pre_hook(enter_scope(name)))
            handles.append(child.register_forward_hook(exit_scope))
        if se_types:
            for module in model.modules():
                if isinstance(module, se_types) and hookable(module):
                    handles.append(module.register_forward_pre_hook(se_enter))
                    handles.append(module.register_forward_hook(se_exit))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def _saved_tensors_summed(model: nn.Module, result: DispatchCount) -> Iterator[None]:
    """Sum into ``result.saved_bytes`` the storages autograd saves for backward, parameters
    excluded, each storage once (bytes of the whole storage)."""
    param_storages = {_storage_key(p) for p in model.parameters()}
    seen: set[int] = set()

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in param_storages and key not in seen:
            seen.add(key)
            result.saved_bytes += storage.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, _unpack):
        yield


def hookable(module: nn.Module) -> bool:
    """Whether forward hooks can be put on ``module``: a ``torch.jit.script``-ed module
    refuses them (its work is then counted, but attributed to its caller)."""
    return not isinstance(module, torch.jit.ScriptModule)


def _unpack(t: Tensor) -> Tensor:
    return t


def count_dispatch(
    model: nn.Module,
    inputs: Sequence[Tensor],
    *,
    track_memory: bool = True,
    track_saved: bool = False,
    se_types: tuple[type, ...] = (),
    rules: Mapping[str, Rule | None] | None = None,
    kwargs: dict[str, Any] | None = None,
) -> DispatchCount:
    """Count one forward pass of ``model`` on ``inputs`` (real or meta tensors).

    Runs under ``torch.no_grad`` unless ``track_saved`` (then autograd's saved tensors are
    summed, parameters excluded, each storage once). The model's train/eval mode is used as is.
    On meta tensors the common ops take shape-only shortcuts (:data:`META_SHAPES`).
    ``kwargs`` are keyword inputs of the forward (a model with named inputs).

    ``se_types``: module classes whose work is attributed to Squeeze-and-Excitation (the caller
    says which; the counter knows no model zoo). ``rules``: a per-call override of the rule
    table by ATen op name (without overload): a Rule counts the op with it, None ignores the
    op (free); :data:`RULES` itself is never changed.
    """
    result = DispatchCount()
    mode = _CountingMode(result, track_memory, rules)
    with _scoped(mode, model, se_types):
        if track_saved:
            with _saved_tensors_summed(model, result), mode:
                model(*inputs, **(kwargs or {}))
        else:
            with torch.no_grad(), mode:
                model(*inputs, **(kwargs or {}))
    return result


def count_saved_bytes(
    model: nn.Module, inputs: Sequence[Tensor], kwargs: dict[str, Any] | None = None
) -> int:
    """Bytes autograd saves for backward in one forward of ``model`` on ``inputs`` (for the
    batch fed; parameters excluded, each storage once), the model's mode used as is.

    Counts no operations: the cheap way to get ``count_dispatch(..., track_saved=True)
    .saved_bytes``. Meta inputs take the same shape-only shortcuts as the counter.
    """
    result = DispatchCount()
    meta = any(isinstance(t, Tensor) and t.is_meta for t in inputs)
    with _saved_tensors_summed(model, result), _MetaShapeMode() if meta else nullcontext():
        model(*inputs, **(kwargs or {}))
    return result.saved_bytes


def _storage_key(t: Tensor) -> int:
    return t.untyped_storage()._cdata
