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


def _window_nd(dims: int) -> Callable[[Sequence[Any], Any], tuple[int, int]]:
    """Pooling over a ``dims``-dimensional window: prod(kernel) FLOPs per output element (a
    one-entry kernel list stands for a cube)."""

    def fn(args: Sequence[Any], out: Any) -> tuple[int, int]:
        kernel = list(args[1]) if isinstance(args[1], (list, tuple)) else [args[1]]
        if len(kernel) == 1:
            kernel *= dims
        return 0, math.prod(kernel) * _numel(_first_tensor(out))

    return fn


def _baddbmm(args: Sequence[Any], out: Any) -> tuple[int, int]:
    a, b = args[1], args[2]
    macs = a.shape[0] * a.shape[1] * a.shape[2] * b.shape[2]
    return macs, 2 * macs + _numel(out)


def _attention(args: Sequence[Any], out: Any) -> tuple[int, int]:
    """Fused scaled dot-product attention (every CPU and CUDA kernel; q, k, v first, each
    ``(..., L or S, E)``): MACs = scores * E (q k^T) + scores * Ev (weights v), scores =
    batch * query heads * L * S (grouped key/value heads are shared, the work is not).
    FLOPs = 2 MACs + 5 per score (softmax) + 1 per element of q and of k (the scaling), as
    the math path that runs on the meta device is counted; a mask's add is not counted."""
    q, k, v = args[0], args[1], args[2]
    rows = q.numel() // q.shape[-1]  # batch * heads * L
    scores = rows * k.shape[-2]
    macs = scores * (q.shape[-1] + v.shape[-1])
    return macs, 2 * macs + 5 * scores + q.numel() + k.numel()


def _native_mha(args: Sequence[Any], out: Any) -> tuple[int, int]:
    """``_native_multi_head_attention`` (nn.MultiheadAttention's CPU fast path): query
    (B, L, E), key/value (B, S, E), ``num_head`` heads. MACs = in-projections B*L*E*E +
    2*B*S*E*E, attention 2*B*L*S*E (summed over heads), out-projection B*L*E*E. FLOPs = 2 MACs
    + projection biases + 1 per query element (scaling) + 5 per score (softmax, B*heads*L*S)
    + 1 per score when the weights are returned averaged over heads."""
    q, k = args[0], args[1]
    embed, heads = int(args[3]), int(args[4])
    bl = q.numel() // embed  # B * L
    bs = k.numel() // embed  # B * S
    length = k.shape[-2]  # S
    scores = bl * length * heads
    macs = 2 * bl * embed * embed + 2 * bs * embed * embed + 2 * bl * length * embed
    flops = 2 * macs + bl * embed + 5 * scores
    if isinstance(args[6], Tensor):  # qkv bias
        flops += bl * embed + 2 * bs * embed
    if isinstance(args[8], Tensor):  # out-projection bias
        flops += bl * embed
    need_weights = bool(args[10]) if len(args) > 10 else True
    average = bool(args[11]) if len(args) > 11 else True
    if need_weights and average:
        flops += scores
    return macs, flops


#: FLOPs per hidden unit and time step of one recurrent cell, matrix products and bias adds
#: excluded, as cnnbench's rules count the unfused cell (the decomposition on the meta
#: device): LSTM: gate sum 4 + 3 sigmoids 12 + 2 tanh 10 + 3 products + 1 add = 30; GRU: 2
#: gate sums + 2 sigmoids 8 + r*h 1 + add 1 + tanh 5 + (h - n) 1 + z*() 1 + add 1 = 20; plain
#: RNN: add 1 + tanh 5 (relu 1). Bias adds: 1 per gate unit for each of the two biases.
_CELL_FLOPS = {"lstm": (4, 30), "gru": (3, 20), "rnn_tanh": (1, 6), "rnn_relu": (1, 2)}
_MKLDNN_MODES = {0: "rnn_relu", 1: "rnn_tanh", 2: "lstm", 3: "gru"}


def _rnn_cost(kind: str, rows: int, w_ih: Tensor, w_hh: Tensor, biased: bool) -> tuple[int, int]:
    """One layer and direction over ``rows`` = time steps * batch."""
    gates, per_unit = _CELL_FLOPS[kind]
    hidden = w_hh.shape[0] // gates
    macs = rows * (w_ih.numel() + w_hh.numel())
    bias = 2 * gates * hidden if biased else 0
    return macs, 2 * macs + rows * (per_unit * hidden + bias)


def _mkldnn_rnn_layer(args: Sequence[Any], out: Any) -> tuple[int, int]:
    """``mkldnn_rnn_layer`` (nn.LSTM on CPU): one layer and direction; MACs = steps * batch *
    (W_ih + W_hh elements); FLOPs as the unfused cell (:data:`_CELL_FLOPS`)."""
    x, w_ih, w_hh = args[0], args[1], args[2]
    kind = _MKLDNN_MODES.get(int(args[9]), "lstm")
    return _rnn_cost(kind, x.numel() // x.shape[-1], w_ih, w_hh, bool(args[12]))


def _rnn_op(kind: str) -> Callable[[Sequence[Any], Any], tuple[int, int]]:
    """``aten.lstm`` / ``gru`` / ``rnn_tanh`` / ``rnn_relu`` (input or packed-data overload):
    every layer and direction over the same steps * batch rows; params per layer and
    direction are ``w_ih, w_hh[, b_ih, b_hh]``."""

    def fn(args: Sequence[Any], out: Any) -> tuple[int, int]:
        packed = isinstance(args[1], Tensor) and not args[1].is_floating_point()  # sizes
        x = args[0]
        params, biased = (args[3], args[4]) if packed else (args[2], args[3])
        rows = x.shape[0] if packed else x.numel() // x.shape[-1]
        step = 4 if biased else 2
        macs = flops = 0
        for i in range(0, len(params), step):
            m, f = _rnn_cost(kind, rows, params[i], params[i + 1], bool(biased))
            macs += m
            flops += f
        return macs, flops

    return fn


def _fused_cell(kind: str) -> Callable[[Sequence[Any], Any], tuple[int, int]]:
    """``_thnn_fused_lstm_cell`` / ``_thnn_fused_gru_cell`` (CUDA): the elementwise part of a
    cell whose gate products ran as matrix products before it; FLOPs as the unfused cell."""

    def fn(args: Sequence[Any], out: Any) -> tuple[int, int]:
        gates, per_unit = _CELL_FLOPS[kind]
        state = args[2]  # cx (LSTM) or hx (GRU): batch x hidden
        biased = len(args) > 3 and isinstance(args[3], Tensor)
        return 0, state.numel() * (per_unit + (2 * gates if biased else 0))

    return fn


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
    "abs": Rule("elementwise", _ELEMENTWISE, "1 FLOP per output element"),
    "_safe_softmax": Rule(
        "activation", _per_output(5), "5 FLOPs per element (as _softmax; SDPA's math path)"
    ),
    "baddbmm": Rule("matmul", _baddbmm, "MACs = B*M*N*K; FLOPs = 2 MACs + adds"),
    "max_pool3d_with_indices": Rule(
        "pooling", _window_nd(3), "kd*kh*kw FLOPs (comparisons) per output element"
    ),
    "avg_pool3d": Rule("pooling", _window_nd(3), "kd*kh*kw FLOPs per output element"),
    "_adaptive_avg_pool3d": Rule("pooling", _per_input(1), "1 FLOP per input element (sum)"),
    "adaptive_max_pool2d": Rule("pooling", _per_input(1), "1 FLOP per input element (comparison)"),
    "upsample_linear1d": Rule(
        "interpolate", _per_output(3), "3 FLOPs per output element (one lerp)"
    ),
    "upsample_bilinear2d": Rule(
        "interpolate", _per_output(9), "9 FLOPs per output element (6 weight products, 3 adds)"
    ),
    "upsample_trilinear3d": Rule(
        "interpolate", _per_output(21), "21 FLOPs per output element (14 products, 7 adds)"
    ),
    "upsample_bicubic2d": Rule(
        "interpolate", _per_output(35), "35 FLOPs per output element (5 cubic taps of 7)"
    ),
    **{
        name: Rule("attention", _attention, "MACs = scores * (E + Ev); see _attention")
        for name in (
            "_scaled_dot_product_flash_attention_for_cpu",
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_fused_attention_overrideable",
        )
    },
    "_native_multi_head_attention": Rule(
        "attention", _native_mha, "in/out projections + attention; see _native_mha"
    ),
    "mkldnn_rnn_layer": Rule(
        "rnn", _mkldnn_rnn_layer, "MACs = steps*batch*(W_ih + W_hh); cell FLOPs per unit"
    ),
    **{
        kind: Rule("rnn", _rnn_op(kind), "MACs = steps*batch*(W_ih + W_hh) per layer")
        for kind in _CELL_FLOPS
    },
    "_thnn_fused_lstm_cell": Rule("rnn", _fused_cell("lstm"), "LSTM cell elementwise FLOPs"),
    "_thnn_fused_gru_cell": Rule("rnn", _fused_cell("gru"), "GRU cell elementwise FLOPs"),
}
#: In-place variants (``relu_``, ``add_``, ...) cost what their out-of-place op costs.
_INPLACE = ("relu", "hardtanh", "leaky_relu", "sigmoid", "silu", "hardsigmoid", "hardswish")
RULES.update(
    {f"{op}_": RULES[op] for op in (*_INPLACE, "tanh", "gelu", "add", "sub", "mul", "div")}
)
RULES["max_pool3d"] = RULES["max_pool3d_with_indices"]
RULES["baddbmm_"] = RULES["baddbmm"]

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
        # pure data movement: strided views, gathers, rolls, windows, padding by copying
        "as_strided_", "index", "_unsafe_index", "roll", "unfold", "unsafe_split",
        "unsafe_split_with_sizes", "unsafe_chunk", "scalar_tensor", "gather", "flip",
        "reflection_pad1d", "reflection_pad2d", "reflection_pad3d", "replication_pad1d",
        "replication_pad2d", "replication_pad3d", "upsample_nearest1d", "upsample_nearest2d",
        "upsample_nearest3d", "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
        "_upsample_nearest_exact3d", "arange", "new_ones", "new_full", "lift_fresh_copy",
        "tril", "triu", "masked_fill", "masked_fill_", "index_put_", "expand_copy", "transpose_",
        "t_", "squeeze_", "unsqueeze_", "resize_", "detach_",
    }
)  # fmt: skip
