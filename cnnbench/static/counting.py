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
from contextlib import contextmanager, nullcontext
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
    "count_saved_bytes",
    "META_SHAPES",
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


# --- shape-only kernels for the meta device ---------------------------------------------------
#
# PyTorch implements many meta kernels in Python (decompositions and references): on the meta
# device a batch norm takes ~0.6 ms and a hardswish ~1 ms, far more than the real CPU kernel on
# a small tensor. The functions below compute the same output (shape, dtype, strides, a fresh
# tensor or the mutated input) directly, for the common, unambiguous cases only: dense inputs
# (contiguous or channels-last), one floating dtype, valid shapes. Anything else returns None
# and the op runs PyTorch's own meta kernel, which also raises the usual errors. A test
# compares every shortcut with PyTorch's meta kernel on the zoo.

_META = torch.device("meta")
Shape = Callable[[Sequence[Any], dict[str, Any]], Any]


def _dense(t: Tensor) -> bool:
    """Contiguous or channels-last contiguous: non-overlapping and dense, so its strides can be
    given to a fresh tensor (what ``empty_like`` does for such a tensor)."""
    return t.is_contiguous() or (
        t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    )


def _like(t: Tensor) -> Tensor:
    return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device=_META)


def _float_meta(t: Any) -> bool:
    return isinstance(t, Tensor) and t.is_meta and t.is_floating_point()


def _unary(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    x = args[0]
    return _like(x) if _float_meta(x) and _dense(x) else None


def _unary_(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    x = args[0]
    return x if _float_meta(x) and _dense(x) else None


def _broadcast(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...] | None:
    """The broadcast shape of ``a`` and ``b``, None if they do not broadcast."""
    if len(a) < len(b):
        a, b = b, a
    out = list(a)
    offset = len(a) - len(b)
    for i, n in enumerate(b):
        m = out[offset + i]
        if n != m:
            if m == 1:
                out[offset + i] = n
            elif n != 1:
                return None
    return tuple(out)


def _scalar_like(b: Any) -> bool:
    """A Python number or a 0-dim real CPU tensor: broadcasts and never changes a floating
    tensor's dtype."""
    if isinstance(b, (bool, int, float)):
        return True
    return isinstance(b, Tensor) and b.dim() == 0 and b.device.type == "cpu" and not b.is_complex()


def _binary(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    a, b = args[0], args[1]
    if not _float_meta(a):
        return None
    if _scalar_like(b):
        return _like(a) if _dense(a) else None
    if not (isinstance(b, Tensor) and b.is_meta and b.dtype == a.dtype):
        return None
    if a.shape == b.shape:
        if a.is_contiguous() and b.is_contiguous():
            return _like(a)
        cl = torch.channels_last
        if a.dim() == 4 and a.is_contiguous(memory_format=cl) and b.is_contiguous(memory_format=cl):
            return _like(a)
        return None
    if not (a.is_contiguous() and b.is_contiguous()):
        return None
    shape = _broadcast(a.shape, b.shape)
    if shape == tuple(a.shape):
        return _like(a)
    if shape == tuple(b.shape):
        return _like(b)
    return None


def _inplace_binary(integers: bool) -> Shape:
    """``a.op_(b)`` returns ``a`` when ``b`` broadcasts to it without changing its dtype;
    ``integers``: also an integer ``a`` with an integer scalar (``num_batches_tracked += 1``)."""

    def shape(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
        a, b = args[0], args[1]
        if not (isinstance(a, Tensor) and a.is_meta and _dense(a)):
            return None
        if not a.is_floating_point():
            if integers and a.dtype in (torch.int64, torch.int32) and _int_scalar(b):
                return a
            return None
        if _scalar_like(b):
            return a
        if isinstance(b, Tensor) and b.is_meta and b.dtype == a.dtype:
            if _broadcast(a.shape, b.shape) == tuple(a.shape):
                return a
        return None

    return shape


def _int_scalar(b: Any) -> bool:
    if isinstance(b, int) and not isinstance(b, bool):
        return True
    return (
        isinstance(b, Tensor)
        and b.dim() == 0
        and b.device.type == "cpu"
        and b.dtype in (torch.int64, torch.int32)
    )


def _native_batch_norm(args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """(output like the input, save_mean (C,), save_invstd (C,)): the meta kernel's outputs,
    in training and in eval."""
    x, training = args[0], args[5]
    if not (_float_meta(x) and x.dtype == torch.float32 and x.dim() >= 2 and _dense(x)):
        return None
    c = x.shape[1]
    stats = args[1:5]  # weight, bias, running_mean, running_var
    if not training and (stats[2] is None or stats[3] is None):
        return None
    for t in stats:
        if t is not None and not (
            isinstance(t, Tensor)
            and t.is_meta
            and t.dtype == x.dtype
            and t.dim() == 1
            and t.shape[0] == c
        ):
            return None
    return (
        _like(x),
        torch.empty((c,), dtype=x.dtype, device=_META),
        torch.empty((c,), dtype=x.dtype, device=_META),
    )


def _mean_dim(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    x = args[0]
    dims = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    if kwargs.get("dtype") is not None or not dims or not _float_meta(x) or not x.is_contiguous():
        return None
    nd = x.dim()
    if any(not -nd <= d < nd for d in dims):
        return None
    reduced = {d % nd for d in dims}
    if len(reduced) != len(dims):  # a repeated dimension: PyTorch raises
        return None
    if keepdim:
        shape = [1 if i in reduced else n for i, n in enumerate(x.shape)]
    else:
        shape = [n for i, n in enumerate(x.shape) if i not in reduced]
    return torch.empty(shape, dtype=x.dtype, device=_META)


def _addmm(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    bias, a, b = args[0], args[1], args[2]
    if not all(_float_meta(t) for t in (bias, a, b)):
        return None
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0] or not a.dtype == b.dtype:
        return None
    shape = (a.shape[0], b.shape[1])
    if bias.dtype != a.dtype or _broadcast(bias.shape, shape) != shape:
        return None
    return torch.empty(shape, dtype=a.dtype, device=_META)


def _cat(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    tensors = args[0]
    dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
    if not tensors or not all(_float_meta(t) and t.is_contiguous() for t in tensors):
        return None
    first = tensors[0]
    nd = first.dim()
    if nd == 0 or not -nd <= dim < nd:
        return None
    dim %= nd
    shape = list(first.shape)
    total = 0
    for t in tensors:
        if t.dtype != first.dtype or t.dim() != nd:
            return None
        for i in range(nd):
            if i != dim and t.shape[i] != shape[i]:
                return None
        total += t.shape[dim]
    shape[dim] = total
    return torch.empty(shape, dtype=first.dtype, device=_META)


def _convolution(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    """Plain (not transposed) convolution: size ``(in + 2p - d(k-1) - 1) // s + 1`` per spatial
    dimension; contiguous, as PyTorch's meta kernel makes it whatever the input's layout."""
    x, w, bias, stride, padding, dilation, transposed, _, groups = args[:9]
    if transposed or not (_float_meta(x) and _float_meta(w)) or x.dtype != w.dtype:
        return None
    if x.dim() != w.dim() or x.dim() < 3:
        return None
    spatial = x.dim() - 2
    if not (len(stride) == len(padding) == len(dilation) == spatial) or groups < 1:
        return None
    c_out = w.shape[0]
    if x.shape[1] == 0 or x.shape[1] != w.shape[1] * groups or c_out % groups:
        return None
    if bias is not None and not (
        _float_meta(bias) and bias.dtype == x.dtype and tuple(bias.shape) == (c_out,)
    ):
        return None
    shape = [x.shape[0], c_out]
    for i in range(spatial):
        k = dilation[i] * (w.shape[2 + i] - 1) + 1
        padded = x.shape[2 + i] + 2 * padding[i]
        if stride[i] < 1 or dilation[i] < 1 or padding[i] < 0 or padded < k:
            return None
        shape.append((padded - k) // stride[i] + 1)
    return torch.empty(shape, dtype=x.dtype, device=_META)


_UNARY = ("relu", "hardtanh", "leaky_relu", "sigmoid", "silu", "hardsigmoid", "hardswish")
_BINARY = ("add", "sub", "mul", "div")

#: ATen overload -> shape-only implementation used on the meta device (None: fall back).
META_SHAPES: dict[Any, Shape] = {
    **{getattr(aten, op).default: _unary for op in (*_UNARY, "tanh", "gelu")},
    **{getattr(aten, f"{op}_").default: _unary_ for op in _UNARY},
    **{getattr(aten, op).Tensor: _binary for op in _BINARY},
    **{getattr(aten, f"{op}_").Tensor: _inplace_binary(op != "div") for op in _BINARY},
    aten.native_batch_norm.default: _native_batch_norm,
    aten.mean.dim: _mean_dim,
    aten.addmm.default: _addmm,
    aten.cat.default: _cat,
    aten.convolution.default: _convolution,
}


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
        plan = _Plan(name, name in _BATCH_NORM_OPS, func._schema.is_mutable, META_SHAPES.get(func))
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

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        plan = _PLANS.get(func) or _plan(func)
        kwargs = kwargs or {}
        out = plan.shape(args, kwargs) if plan.shape is not None else None
        return func(*args, **kwargs) if out is None else out


class _CountingMode(TorchDispatchMode):
    """Counts every op under :data:`RULES` (and its memory), with the meta shortcuts."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False  # as for _MetaShapeMode

    def __init__(self, result: DispatchCount, track_memory: bool) -> None:
        super().__init__()
        self.result = result
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

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
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
        rule = RULES.get(name)
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
        elif name not in FREE_OPS:
            stats = res.uncounted.get(name)
            if stats is None:
                stats = res.uncounted[name] = OpStats("uncounted")
            stats.calls += 1
            stats.elements += elements
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


def _unpack(t: Tensor) -> Tensor:
    return t


def count_dispatch(
    model: nn.Module,
    inputs: Sequence[Tensor],
    *,
    track_memory: bool = True,
    track_saved: bool = False,
    se_types: tuple[type, ...] = (),
    kwargs: dict[str, Any] | None = None,
) -> DispatchCount:
    """Count one forward pass of ``model`` on ``inputs`` (real or meta tensors).

    Runs under ``torch.no_grad`` unless ``track_saved`` (then autograd's saved tensors are
    summed, parameters excluded, each storage once). The model's train/eval mode is used as is.
    On meta tensors the common ops take shape-only shortcuts (:data:`META_SHAPES`).
    ``kwargs`` are keyword inputs of the forward (a model with named inputs).
    """
    result = DispatchCount()
    mode = _CountingMode(result, track_memory)
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


def se_module_types() -> tuple[type[nn.Module], ...]:
    """Module classes recognised as SE blocks (the zoo's one SqueezeExcite)."""
    from cnnbench.models import SqueezeExcite

    return (SqueezeExcite,)
