"""Four operation counters behind one interface, and the comparison that explains their gaps.

* ``cnnbench``: our dispatch-level counter (:mod:`cnnbench.static.counting`); MACs and FLOPs under
  our rule table; works on the meta device. The default.
* ``torch``: PyTorch's ``torch.utils.flop_counter.FlopCounterMode``; FLOPs (2 x MACs) of
  convolutions and matrix products only, everything else silently 0 (we list it).
* ``fvcore``: ``FlopCountAnalysis``; "one fused multiply-add = one flop", i.e. MACs, plus
  BatchNorm and adaptive pooling; traces with torch.jit, so it needs real tensors.
* ``thop``: thop's per-module rule table, applied through hooks that cnnbench installs and
  always removes (thop's own ``profile`` leaves them behind when the forward raises); module
  hooks cannot see functional ops (``x * s``, ``+``, ``F.relu``).

Every backend returns a :class:`CounterReport`: its total in its own unit, its count per
operation category, and what it did not count, with call counts and elements. Every backend
counts in eval mode (a model left in train mode would count BatchNorm with batch statistics,
``num_batches_tracked += 1`` and dropout, and update its running statistics) and puts each
module's train/eval flag back afterwards; ``run_backend(..., train=True)`` asks for train mode.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from cnnbench.errors import UsageError
from cnnbench.static.counting import MATMUL_LIKE, DispatchCount, count_dispatch
from cnnbench.static.meta import on_meta
from cnnbench.static.rules import RULES, op_name

__all__ = [
    "Uncounted",
    "CounterReport",
    "BACKENDS",
    "run_backend",
    "report_from_dispatch",
    "CounterComparison",
    "compare_counters",
    "CORE_CATEGORIES",
]

#: Categories that make up MACs proper; everything else is what a backend adds on top.
CORE_CATEGORIES = ("conv", "matmul", "attention", "rnn")


@dataclass
class Uncounted:
    """An operation a backend saw (or could not see) and counted as zero."""

    name: str
    calls: int
    elements: int | None = None


@dataclass
class CounterReport:
    """One backend's count of one forward pass (per batch as fed).

    ``total`` is in ``unit`` (what the backend calls FLOPs may be MACs: the unit says which).
    ``by_category`` uses the same unit. ``macs`` is the backend's conv + matmul count converted
    to MACs: the figure all backends must agree on.
    """

    backend: str
    unit: str
    total: int
    macs: int
    by_category: dict[str, int] = field(default_factory=dict)
    uncounted: list[Uncounted] = field(default_factory=list)
    flops: int | None = None  # only backends with a full FLOP rule table (cnnbench)


_FVCORE_CATEGORY = {
    "conv": "conv", "linear": "matmul", "addmm": "matmul", "matmul": "matmul", "bmm": "matmul",
    "mm": "matmul", "einsum": "matmul", "batch_norm": "batchnorm", "group_norm": "norm",
    "layer_norm": "norm", "instance_norm": "norm", "adaptive_avg_pool2d": "pooling",
}  # fmt: skip


def _thop_category(module: nn.Module) -> str:
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "matmul"
    if isinstance(module, nn.modules.batchnorm._NormBase):
        return "batchnorm"
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
        return "norm"
    name = type(module).__name__
    if "Pool" in name:
        return "pooling"
    if isinstance(module, (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.Softmax)):
        return "activation"
    return "other"


def _cnnbench(
    model: nn.Module, inputs: Sequence[Tensor], ours: DispatchCount | None = None
) -> CounterReport:
    if ours is None:
        ours = count_dispatch(model, inputs, track_memory=False)
    return report_from_dispatch(ours)


def report_from_dispatch(count: DispatchCount) -> CounterReport:
    """cnnbench's own count as a CounterReport (MACs per category; FLOPs alongside)."""
    return CounterReport(
        backend="cnnbench",
        unit="MACs",
        total=count.macs,
        macs=count.macs,
        by_category={k: v[0] for k, v in count.by_category().items() if v[0]},
        uncounted=[Uncounted(n, s.calls, s.elements) for n, s in count.uncounted.items()],
        flops=count.flops,
    )


def _torch(
    model: nn.Module, inputs: Sequence[Tensor], ours: DispatchCount | None = None
) -> CounterReport:
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    counter = FlopCounterMode(display=False)
    # Our own count (``ours``, or one pass now) tells what FlopCounterMode leaves at zero.
    if ours is None:
        ours = count_dispatch(model, inputs, track_memory=False)
    _run_on_meta_first(model, inputs, counter)
    by_cat: dict[str, int] = defaultdict(int)
    for op, flops in counter.get_flop_counts().get("Global", {}).items():
        name = _packet_name(op)
        rule = RULES.get(name)
        by_cat[rule.category if rule else "other"] += int(flops)
    counted = {_packet_name(op) for op in flop_registry}
    seen: dict[str, list[int]] = {}  # by ATen name: "mul" and "mul (SE)" are one op here
    for n, stats in {**ours.by_op, **ours.uncounted}.items():
        entry = seen.setdefault(n.split(" ")[0], [0, 0])
        entry[0] += stats.calls
        entry[1] += stats.elements
    uncounted = [Uncounted(n, c, e) for n, (c, e) in seen.items() if n not in counted]
    total = int(counter.get_total_flops())
    core = sum(v for k, v in by_cat.items() if k in CORE_CATEGORIES)
    return CounterReport("torch", "FLOPs", total, core // 2, dict(by_cat), uncounted)


def _run_on_meta_first(model: nn.Module, inputs: Sequence[Tensor], counter: Any) -> None:
    """One forward under ``counter`` on the meta device (the model's weights swapped for meta
    tensors), so the torch backend gives one number whether cnnbench counted on meta or on
    real tensors: a fused CPU kernel such as ``_scaled_dot_product_flash_attention_for_cpu``,
    which FlopCounterMode has no formula for, runs as its counted math path there. On real
    tensors only when the meta device cannot run the model (data-dependent control flow)."""
    metas = [torch.empty(t.shape, dtype=t.dtype, device="meta") for t in inputs]
    try:
        with on_meta(model), torch.no_grad(), counter:
            model(*metas)
        return
    except Exception:  # noqa: BLE001 - the meta device cannot run it: count on real tensors
        if all(t.is_meta for t in inputs):
            raise
    fresh = type(counter)(display=False)
    with torch.no_grad(), fresh:
        model(*inputs)
    counter.flop_counts = fresh.flop_counts


def _packet_name(op: object) -> str:
    qualified = getattr(op, "_qualified_op_name", None)
    if qualified:
        return qualified.split("::")[-1]
    return op_name(op) if hasattr(op, "_schema") else str(op)


def _fvcore(model: nn.Module, inputs: Sequence[Tensor]) -> CounterReport:
    if any(t.is_meta for t in inputs) or any(p.is_meta for p in model.parameters()):
        raise UsageError(
            "the fvcore backend traces with torch.jit and needs real tensors, not meta"
        )
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, tuple(inputs))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings(
        "none"
    )
    logger = logging.getLogger("fvcore")
    level = logger.level
    logger.setLevel(logging.ERROR)
    hooks_before = {m: _hook_ids(m) for m in model.modules()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_operator = analysis.by_operator()
            unsupported = analysis.unsupported_ops()
    finally:
        logger.setLevel(level)
        # fvcore's tracer registers scope hooks on every module and removes them only when
        # the forward succeeds: drop whatever it left behind.
        for module, (pre, post) in hooks_before.items():
            _drop_hooks(module, pre, post)
    by_cat: dict[str, int] = defaultdict(int)
    for op, n in by_operator.items():
        by_cat[_FVCORE_CATEGORY.get(op, "other")] += int(n)
    total = sum(by_cat.values())
    core = sum(v for k, v in by_cat.items() if k in CORE_CATEGORIES)
    uncounted = [Uncounted(op.removeprefix("aten::"), n) for op, n in unsupported.items()]
    return CounterReport("fvcore", "MACs", total, core, dict(by_cat), uncounted)


def _hook_ids(module: nn.Module) -> tuple[set[int], set[int]]:
    return set(module._forward_pre_hooks), set(module._forward_hooks)


def _drop_hooks(module: nn.Module, pre: set[int], post: set[int]) -> None:
    """Remove the forward (pre-)hooks registered on ``module`` since ``_hook_ids``."""
    for key in set(module._forward_pre_hooks) - pre:
        del module._forward_pre_hooks[key]
        module._forward_pre_hooks_with_kwargs.pop(key, None)
    for key in set(module._forward_hooks) - post:
        del module._forward_hooks[key]
        module._forward_hooks_with_kwargs.pop(key, None)
        module._forward_hooks_always_called.pop(key, None)


def _thop(model: nn.Module, inputs: Sequence[Tensor]) -> CounterReport:
    from thop.profile import register_hooks

    by_cat: dict[str, int] = defaultdict(int)
    missing: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    handles = []

    def counted(rule: Callable[..., None], category: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
            before = float(module.get_buffer("total_ops"))
            rule(module, args, out)
            by_cat[category] += int(round(float(module.get_buffer("total_ops")) - before))

        return hook

    def uncounted(module: nn.Module, args: tuple, out: Tensor) -> None:
        entry = missing[type(module).__name__]
        entry[0] += 1
        entry[1] += out.numel() if isinstance(out, Tensor) else 0

    added: list[nn.Module] = []
    try:
        for module in model.modules():
            rule = register_hooks.get(type(module))
            if rule is not None:
                module.register_buffer(
                    "total_ops", torch.zeros(1, dtype=torch.float64), persistent=False
                )
                added.append(module)
                handles.append(module.register_forward_hook(counted(rule, _thop_category(module))))
            elif not list(module.children()):
                handles.append(module.register_forward_hook(uncounted))
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        for module in added:
            module._buffers.pop("total_ops", None)
    total = sum(by_cat.values())
    core = sum(v for k, v in by_cat.items() if k in CORE_CATEGORIES)
    rows = [Uncounted(f"{n} (module)", c, e) for n, (c, e) in missing.items()]
    rows.append(Uncounted("functional ops (x*s, +, F.*): invisible to module hooks", 0, None))
    return CounterReport("thop", "MACs", total, core, dict(by_cat), rows)


#: Backend name -> counting function. ``cnnbench`` is the default.
BACKENDS: dict[str, Callable[[nn.Module, Sequence[Tensor]], CounterReport]] = {
    "cnnbench": _cnnbench,
    "torch": _torch,
    "fvcore": _fvcore,
    "thop": _thop,
}


#: Backends that can take an existing cnnbench count instead of counting again.
_REUSES_DISPATCH = (_cnnbench, _torch)


@contextmanager
def _modes_set(model: nn.Module, train: bool) -> Iterator[None]:
    """Put the model in eval (or train) mode; put every module's own flag back on exit."""
    modes = [(m, m.training) for m in model.modules()]
    model.train(train)
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def run_backend(
    name: str,
    model: nn.Module,
    inputs: Sequence[Tensor],
    *,
    train: bool = False,
    dispatch: DispatchCount | None = None,
) -> CounterReport:
    """Count ``model(*inputs)`` with one backend, in eval mode (``train=True``: train mode);
    every module's train/eval flag is put back afterwards.

    ``dispatch``: an existing cnnbench count of the same model and inputs (in the same mode),
    used by the ``cnnbench`` and ``torch`` backends instead of counting again.
    """
    try:
        fn = BACKENDS[name]
    except KeyError:
        raise UsageError(f"unknown counter {name!r}; choose one of {', '.join(BACKENDS)}") from None
    with _modes_set(model, train):
        if dispatch is not None and fn in _REUSES_DISPATCH:
            return fn(model, inputs, dispatch)
        return fn(model, inputs)


@dataclass
class CounterComparison:
    """Several backends on the same model and input, with the explanation of their gaps.

    ``warnings`` holds one line per backend whose MACs (conv + matmul, converted to MACs)
    differ from cnnbench's by more than ``tolerance``, naming the categories responsible.
    """

    reports: dict[str, CounterReport]
    tolerance: float
    warnings: list[str] = field(default_factory=list)

    def categories(self) -> list[str]:
        names = {c for r in self.reports.values() for c in r.by_category}
        return sorted(names, key=lambda c: (c not in CORE_CATEGORIES, c))


def compare_counters(
    model: nn.Module,
    inputs: Sequence[Tensor],
    backends: Sequence[str] = ("cnnbench", "torch", "fvcore", "thop"),
    tolerance: float = 0.01,
    *,
    dispatch: DispatchCount | None = None,
) -> CounterComparison:
    """Run each backend (in eval mode, the model's modes put back afterwards) and check that
    their MACs agree once the extras are set aside.

    ``dispatch``: an existing cnnbench count of this model on these inputs, in eval mode
    (a static profile's, :meth:`cnnbench.static.StaticProfile.dispatch_for`); the cnnbench
    row (and the torch row's list of what it does not count) then comes from it, so
    cnnbench's FLOPs are the profile's and nothing is counted twice. Without it, cnnbench's
    counter runs once for both rows.
    """
    if dispatch is None and any(BACKENDS.get(b) in _REUSES_DISPATCH for b in backends):
        with _modes_set(model, False):
            dispatch = count_dispatch(model, inputs, track_memory=False)
    reports = {name: run_backend(name, model, inputs, dispatch=dispatch) for name in backends}
    comparison = CounterComparison(reports, tolerance)
    ref = reports.get("cnnbench") or next(iter(reports.values()))
    for name, rep in reports.items():
        if rep is ref or ref.macs == 0:
            continue
        gap = rep.macs / ref.macs - 1
        if abs(gap) > tolerance:
            culprits = [c for c in CORE_CATEGORIES if _macs_in(rep, c) != _macs_in(ref, c)]
            missing = _missing_mac_ops(rep, dispatch)
            comparison.warnings.append(
                f"{name} MACs differ from {ref.backend} by {gap:+.2%} "
                f"(conv+matmul {rep.macs:,} vs {ref.macs:,}); responsible: "
                f"{', '.join(culprits) or 'unknown'}; MAC-carrying operations it did not "
                f"count: {', '.join(missing) or 'none found'}"
            )
    return comparison


def _missing_mac_ops(report: CounterReport, ours: DispatchCount | None) -> list[str]:
    """The operations ``report``'s backend did not count that carry MACs: those with MACs in
    cnnbench's own count (largest first), else any whose name is conv- or matmul-like."""
    our_macs = {n: s.macs for n, s in ours.by_op.items()} if ours is not None else {}
    names = [u.name for u in report.uncounted]
    counted = sorted((n for n in names if our_macs.get(n, 0) > 0), key=lambda n: -our_macs[n])
    named = [n for n in names if n not in counted and any(p in n for p in MATMUL_LIKE)]
    return counted + named


def _macs_in(report: CounterReport, category: str) -> int:
    value = report.by_category.get(category, 0)
    return value // 2 if report.unit == "FLOPs" else value
