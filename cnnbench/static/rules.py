"""cnnbench's rule table: how each ATen operation is counted in MACs and FLOPs.

Conventions (also in the README and every report header):

* **MACs** are multiply-accumulates of convolutions, linear layers and matrix products, bias
  excluded: ``out_elements * (C_in / groups) * k_h * k_w`` for a convolution, ``M * N * K`` for
  a matrix product. This is the unit behind torchvision's "GFLOPS" and most papers' "FLOPs".
* **FLOPs** are ``2 * MACs`` plus every other arithmetic operation under the rule table
  :data:`RULES` below (bias adds, normalisation, pooling, activations, elementwise ops), each
  rule stated in its ``note``.
* Operations that move or view data (reshape, cat, slicing, dropout in eval, ...) cost nothing
  and are listed in :data:`FREE_OPS`. Any other operation without a rule is reported as
  uncounted by the counter (:mod:`cnnbench.static.counting`): never silently counted as zero.

A rule function takes the op's positional arguments and its output, and returns
``(macs, flops)`` for the batch that was fed. One test per rule pins it to a hand count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

__all__ = ["Rule", "RULES", "FREE_OPS", "BATCH_NORM_OPS", "op_name"]


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


def _addmm_cost(args: Sequence[Any], out: Any) -> tuple[int, int]:
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
    "addmm": Rule("matmul", _addmm_cost, "MACs = M*N*K; FLOPs = 2 MACs + bias adds (linear layer)"),
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

BATCH_NORM_OPS = frozenset(
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
