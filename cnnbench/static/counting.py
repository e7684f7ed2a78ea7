"""cnnbench's own operation counter: MACs and FLOPs at the ATen dispatch level.

Conventions (also in the README and every report header):

* **MACs** are multiply-accumulates of convolutions, linear layers and matrix products, bias
  excluded: ``out_elements * (C_in / groups) * k_h * k_w`` for a convolution, ``M * N * K`` for
  a matrix product. This is the unit behind torchvision's "GFLOPS" and most papers' "FLOPs".
* **FLOPs** are ``2 * MACs`` plus every other arithmetic operation under the rule table
  :data:`RULES` below (bias adds, normalisation, pooling, activations, elementwise ops), each
  rule stated in its docstring-like ``note``.
* Counts are for the batch that was fed; the profiler divides by the batch size.
* Operations that move or view data (reshape, cat, slicing, dropout in eval, ...) cost nothing
  and are listed in :data:`FREE_OPS`. Any other operation without a rule is reported in
  ``uncounted`` with its call count and elements: never silently counted as zero.

The counter runs on real tensors or on the meta device (shapes only, nothing computed).
Counters never print.
"""

from __future__ import annotations

import math
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten

__all__ = [
    "Rule",
    "RULES",
    "FREE_OPS",
    "OpStats",
    "DispatchCount",
    "count_dispatch",
    "op_name",
    "se_module_types",
]


@dataclass(frozen=True)
class Rule:
    """How one ATen operation is counted. ``fn(args, out) -> (macs, flops)``."""

    category: str
    fn: Callable[[Sequence[Any], Any], tuple[int, int]]
    note: str


def op_name(func: Any) -> str:
    """Short ATen name without overload, e.g. ``convolution`` for ``aten.convolution.default``."""
    return func._schema.name.split("::", 1)[-1]


def _numel(t: Any) -> int:
    return t.numel() if isinstance(t, Tensor) else 0


def _first_tensor(out: Any) -> Tensor:
    return out[0] if isinstance(out, (tuple, list)) else out


# --- rule functions -------------------------------------------------------------------------


def _conv(args: Sequence[Any], out: Any) -> tuple[int, int]:
    x, w, bias = args[0], args[1], args[2] if len(args) > 2 else None
    transposed = bool(args[6]) if len(args) > 6 else False
    y = _first_tensor(out)
    kernel = math.prod(w.shape[2:])
    if transposed:  # each input element meets C_out/groups * k taps
        macs = x.numel() * w.shape[1] * kernel
    else:
        macs = y.numel() * w.shape[1] * kernel  # w: (C_out, C_in/groups, kh, kw)
    return macs, 2 * macs + (y.numel() if isinstance(bias, Tensor) else 0)


def _mm(args: Sequence[Any], out: Any) -> tuple[int, int]:
    a, b = args[0], args[1]
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return macs, 2 * macs


def _addmm(args: Sequence[Any], out: Any) -> tuple[int, int]:
    a, b = args[1], args[2]
    macs = a.shape[0] * a.shape[1] * b.shape[1]
    return macs, 2 * macs + _numel(out)


def _bmm(args: Sequence[Any], out: Any) -> tuple[int, int]:
    a, b = args[0], args[1]
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return macs, 2 * macs


def _per_output(k: int) -> Callable[[Sequence[Any], Any], tuple[int, int]]:
    def fn(args: Sequence[Any], out: Any) -> tuple[int, int]:
        return 0, k * _numel(_first_tensor(out))

    return fn


def _per_input(k: int) -> Callable[[Sequence[Any], Any], tuple[int, int]]:
    def fn(args: Sequence[Any], out: Any) -> tuple[int, int]:
        return 0, k * _numel(args[0])

    return fn


def _window(args: Sequence[Any], out: Any) -> tuple[int, int]:
    kernel = list(args[1]) if isinstance(args[1], (list, tuple)) else [args[1]]
    if len(kernel) == 1:
        kernel *= 2
    return 0, math.prod(kernel) * _numel(_first_tensor(out))


def _batch_norm(args: Sequence[Any], out: Any) -> tuple[int, int]:
    return 0, 2 * _numel(_first_tensor(out))


def _norm_with_stats(args: Sequence[Any], out: Any) -> tuple[int, int]:
    """LayerNorm / GroupNorm compute their statistics at run time (fvcore's rule): 4 FLOPs per
    element (mean, subtract, square-accumulate, scale), 5 with the affine weight and bias."""
    affine = isinstance(args[2], Tensor) if len(args) > 2 else False
    return 0, (5 if affine else 4) * _numel(args[0])


_ELEMENTWISE = _per_output(1)

#: The rule table: ATen op name (without overload) -> Rule. One test per rule pins it.
RULES: dict[str, Rule] = {
    "convolution": Rule(
        "conv", _conv, "MACs = out * C_in/groups * kh*kw; FLOPs = 2 MACs + bias adds"
    ),
    "mm": Rule("matmul", _mm, "MACs = M*N*K; FLOPs = 2 MACs"),
    "addmm": Rule("matmul", _addmm, "MACs = M*N*K; FLOPs = 2 MACs + bias adds (linear layer)"),
    "bmm": Rule("matmul", _bmm, "MACs = B*M*N*K; FLOPs = 2 MACs"),
    "_native_batch_norm_legit_no_training": Rule(
        "batchnorm", _batch_norm, "2 FLOPs per element (folded scale and shift)"
    ),
    "_native_batch_norm_legit": Rule(
        "batchnorm", _batch_norm, "2 FLOPs per element (folded scale and shift)"
    ),
    "native_batch_norm": Rule("batchnorm", _batch_norm, "2 FLOPs per element"),
    "native_layer_norm": Rule(
        "norm", _norm_with_stats, "4 FLOPs per element (statistics + normalise), 5 with affine"
    ),
    "native_group_norm": Rule(
        "norm", _norm_with_stats, "4 FLOPs per element (statistics + normalise), 5 with affine"
    ),
    "relu": Rule("activation", _ELEMENTWISE, "1 FLOP per element (max)"),
    "hardtanh": Rule("activation", _ELEMENTWISE, "1 FLOP per element (clamp): ReLU6"),
    "leaky_relu": Rule("activation", _per_output(2), "2 FLOPs per element"),
    "sigmoid": Rule("activation", _per_output(4), "4 FLOPs per element (neg, exp, add, div)"),
    "silu": Rule("activation", _per_output(5), "5 FLOPs per element (sigmoid + mul)"),
    "hardsigmoid": Rule("activation", _per_output(3), "3 FLOPs per element (add, clamp, div)"),
    "hardswish": Rule("activation", _per_output(4), "4 FLOPs per element (hardsigmoid + mul)"),
    "tanh": Rule("activation", _per_output(5), "5 FLOPs per element"),
    "gelu": Rule("activation", _per_output(8), "8 FLOPs per element (tanh approximation)"),
    "_softmax": Rule("activation", _per_output(5), "5 FLOPs per element (max, sub, exp, sum, div)"),
    "add": Rule("elementwise", _ELEMENTWISE, "1 FLOP per output element"),
    "sub": Rule("elementwise", _ELEMENTWISE, "1 FLOP per output element"),
    "mul": Rule("elementwise", _ELEMENTWISE, "1 FLOP per output element"),
    "div": Rule(
        "elementwise", _ELEMENTWISE, "1 FLOP per output element (also dropout in train mode)"
    ),
    "max_pool2d": Rule("pooling", _window, "kh*kw FLOPs (comparisons) per output element"),
    "max_pool2d_with_indices": Rule(
        "pooling", _window, "kh*kw FLOPs (comparisons) per output element"
    ),
    "avg_pool2d": Rule("pooling", _window, "kh*kw FLOPs per output element (adds, divide folded)"),
    "_adaptive_avg_pool2d": Rule("pooling", _per_input(1), "1 FLOP per input element (sum)"),
    "mean": Rule("pooling", _per_input(1), "1 FLOP per input element (sum; global pooling)"),
    "sum": Rule("elementwise", _per_input(1), "1 FLOP per input element"),
}
#: In-place variants (``relu_``, ``add_``, ...) cost what their out-of-place op costs.
_INPLACE = ("relu", "hardtanh", "leaky_relu", "sigmoid", "silu", "hardsigmoid", "hardswish")
RULES.update({f"{op}_": RULES[op] for op in (*_INPLACE, "add", "mul", "div")})

_BATCH_NORM_OPS = frozenset(
    {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"}
)

#: Operations that only move, view, allocate or copy data: deliberately counted as zero.
FREE_OPS: frozenset[str] = frozenset(
    {
        "view", "_unsafe_view", "reshape", "t", "transpose", "permute", "expand", "squeeze",
        "unsqueeze", "slice", "select", "cat", "stack", "split", "split_with_sizes", "chunk",
        "clone", "detach", "alias", "empty", "empty_like", "empty_strided", "zeros", "zeros_like",
        "ones", "ones_like", "full", "as_strided", "_to_copy", "copy_", "narrow", "flatten",
        "contiguous", "native_dropout", "dropout", "constant_pad_nd", "lift_fresh", "fill_",
        "zero_", "_reshape_alias", "unbind", "channel_shuffle", "native_channel_shuffle",
        "pixel_shuffle", "new_empty", "new_zeros", "bernoulli_", "rand_like", "randn_like",
        "_local_scalar_dense", "is_same_size", "set_", "index_select", "repeat",
    }
)  # fmt: skip


@dataclass
class OpStats:
    """What one ATen operation contributed: calls, output elements, MACs and FLOPs."""

    category: str
    calls: int = 0
    elements: int = 0
    macs: int = 0
    flops: int = 0


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


class _CountingMode(TorchDispatchMode):
    def __init__(self, result: DispatchCount, track_memory: bool) -> None:
        super().__init__()
        self.result = result
        self.scope = "(other)"
        self.se_depth = 0
        self.track_memory = track_memory
        self.live = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = op_name(func)
        tensors = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
        if name in _BATCH_NORM_OPS:
            # Only the normalised output: save_mean/save_invstd are empty on CPU in eval but
            # (C,) on the meta device, so counting them would make meta and real disagree.
            tensors = tensors[:1]
        elements = sum(t.numel() for t in tensors)
        rule = RULES.get(name)
        res = self.result
        if rule is not None:
            macs, flops = rule.fn(args, out)
            category = rule.category
            if self.se_depth and category in ("elementwise", "pooling", "activation"):
                category, name = "se_gate", f"{name} (SE)"
            stats = res.by_op.setdefault(name, OpStats(category))
            stats.calls += 1
            stats.elements += elements
            stats.macs += macs
            stats.flops += flops
            res.macs += macs
            res.flops += flops
            scope = res.by_scope.setdefault(self.scope, [0, 0])
            scope[0] += macs
            scope[1] += flops
            if self.se_depth:
                part = "se_gate" if category == "se_gate" else "fc"
                se = res.se_by_scope.setdefault(self.scope, {}).setdefault(part, [0, 0])
                se[0] += macs
                se[1] += flops
        elif name not in FREE_OPS:
            stats = res.uncounted.setdefault(name, OpStats("uncounted"))
            stats.calls += 1
            stats.elements += elements
        if self.track_memory and not func._schema.is_mutable:
            for t in tensors:
                if t._is_view():
                    continue
                nbytes = t.numel() * t.element_size()
                res.sum_output_bytes += nbytes
                self.live += nbytes
                weakref.finalize(t, self._free, nbytes)
            res.peak_live_bytes = max(res.peak_live_bytes, self.live)
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
            handles.append(child.register_forward_pre_hook(enter_scope(name)))
            handles.append(child.register_forward_hook(exit_scope))
        if se_types:
            for module in model.modules():
                if isinstance(module, se_types):
                    handles.append(module.register_forward_pre_hook(se_enter))
                    handles.append(module.register_forward_hook(se_exit))
        yield
    finally:
        for h in handles:
            h.remove()


def count_dispatch(
    model: nn.Module,
    inputs: Sequence[Tensor],
    *,
    track_memory: bool = True,
    track_saved: bool = False,
    se_types: tuple[type, ...] = (),
) -> DispatchCount:
    """Count one forward pass of ``model`` on ``inputs`` (real or meta tensors).

    Runs under ``torch.no_grad`` unless ``track_saved`` (then autograd's saved tensors are
    summed, parameters excluded, each storage once). The model's train/eval mode is used as is.
    """
    result = DispatchCount()
    mode = _CountingMode(result, track_memory)
    param_storages = {_storage_key(p) for p in model.parameters()}
    seen: set[int] = set()

    def pack(t: Tensor) -> Tensor:
        key = _storage_key(t)
        if key not in param_storages and key not in seen:
            seen.add(key)
            result.saved_bytes += t.untyped_storage().nbytes()
        return t

    grad = torch.enable_grad() if track_saved else torch.no_grad()
    with _scoped(mode, model, se_types), grad:
        if track_saved:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), mode:
                model(*inputs)
        else:
            with mode:
                model(*inputs)
    return result


def _storage_key(t: Tensor) -> int:
    return t.untyped_storage()._cdata


def se_module_types() -> tuple[type[nn.Module], ...]:
    """Module classes recognised as SE blocks (the zoo's one SqueezeExcite)."""
    from cnnbench.models import SqueezeExcite

    return (SqueezeExcite,)
