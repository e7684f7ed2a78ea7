"""Shape-only kernels for the meta device: the output of common ops without PyTorch's slow
Python meta kernels.

PyTorch implements many meta kernels in Python (decompositions and references): on the meta
device a batch norm takes ~0.6 ms and a hardswish ~1 ms, far more than the real CPU kernel on
a small tensor. The functions below compute the same output (shape, dtype, strides, a fresh
tensor or the mutated input) directly, for the common, unambiguous cases only: dense inputs
(contiguous or channels-last), one floating dtype, valid shapes. Anything else returns None
and the op runs PyTorch's own meta kernel, which also raises the usual errors. A test
compares every shortcut with PyTorch's meta kernel on the zoo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

aten = torch.ops.aten

__all__ = ["META_SHAPES", "Shape"]

_META = torch.device("meta")
Shape = Callable[[Sequence[Any], dict[str, Any]], Any]


def _dense(t: Tensor) -> bool:
    """Contiguous or channels-last contiguous: non-overlapping and dense, so its strides can be
    given to a fresh tensor (what ``empty_like`` does for such a tensor)."""
    return t.is_contiguous() or (
        t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    )


def _like(t: Tensor) -> Tensor:
    """A fresh tensor of ``t``'s shape in its layout (contiguous or channels-last), the strides
    recomputed as an elementwise kernel does: a size-1 dimension's stride in ``t`` may be
    anything (a slice of a wider tensor), the output's is the dense one."""
    if t.is_contiguous():
        return torch.empty(t.shape, dtype=t.dtype, device=_META)
    return torch.empty(t.shape, dtype=t.dtype, device=_META, memory_format=torch.channels_last)


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
        if a.stride() == b.stride() and _permuted_dense(a):
            return torch.empty_strided(a.shape, a.stride(), dtype=a.dtype, device=_META)
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


def _addmm_shape(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
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


def _permuted_dense(t: Tensor) -> bool:
    """Non-overlapping and dense in some dimension order (a transposed or permuted view of a
    contiguous tensor), every dimension longer than 1 so that the order is unambiguous."""
    if any(n < 2 for n in t.shape):
        return False
    expected = 1
    for stride, size in sorted(zip(t.stride(), t.shape, strict=True)):
        if stride != expected:
            return False
        expected *= size
    return True


def _same_layout(t: Tensor) -> Tensor | None:
    """A fresh tensor laid out as an elementwise kernel lays out its output for the single
    tensor input ``t``: dense, with the dimensions in the order of ``t``'s strides (a slice
    such as SDPA's q out of a qkv tensor included). None when that order is ambiguous (two
    equal strides, a broadcast dimension of stride 0)."""
    if _dense(t):
        return _like(t)
    strides = t.stride()
    if 0 in strides or len(set(strides)) != len(strides):
        return None
    out = [0] * t.dim()
    step = 1
    for d in sorted(range(t.dim()), key=strides.__getitem__):
        out[d] = step
        step *= t.shape[d]
    return torch.empty_strided(t.shape, out, dtype=t.dtype, device=_META)


def _bmm(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    a, b = args[0], args[1]
    if not (_float_meta(a) and _float_meta(b)) or a.dtype != b.dtype or a.dim() != 3:
        return None
    if b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        return None
    return torch.empty((a.shape[0], a.shape[1], b.shape[2]), dtype=a.dtype, device=_META)


def _scalar_op(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    """``mul.Scalar`` / ``add.Scalar`` ...: a floating tensor and a real Python number (the
    dtype stays; SDPA's math path scales q and k this way, k transposed)."""
    x, b = args[0], args[1]
    if not _float_meta(x) or not isinstance(b, (bool, int, float)) or kwargs:
        return None
    return _same_layout(x)


def _clone(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    x = args[0]
    if not _float_meta(x) or kwargs.get("memory_format") not in (None, torch.preserve_format):
        return None
    return _same_layout(x)


def _softmax(args: Sequence[Any], kwargs: dict[str, Any]) -> Tensor | None:
    """``_softmax(x, dim, half_to_float=False)`` and ``_safe_softmax(x, dim, dtype=None)``:
    an output like a contiguous input."""
    x, dim = args[0], args[1]
    extra = args[2] if len(args) > 2 else kwargs.get("dtype", kwargs.get("half_to_float"))
    if extra not in (None, False) or not _float_meta(x) or not x.is_contiguous():
        return None
    if not -x.dim() <= dim < max(x.dim(), 1):
        return None
    return torch.empty(x.shape, dtype=x.dtype, device=_META)


def _native_layer_norm(args: Sequence[Any], kwargs: dict[str, Any]) -> Any:
    """(output, mean, rstd): the output contiguous whatever the input's layout (the kernel
    normalises a contiguous copy), the statistics of shape ``leading dims + 1s``; float32
    only (other dtypes keep their statistics in another type)."""
    x, shape, weight, bias = args[0], list(args[1]), args[2], args[3]
    if not (_float_meta(x) and x.dtype == torch.float32):
        return None
    n = len(shape)
    if n == 0 or n > x.dim() or list(x.shape[x.dim() - n :]) != shape:
        return None
    for t in (weight, bias):
        if t is not None and not (_float_meta(t) and t.dtype == x.dtype and list(t.shape) == shape):
            return None
    stats = [*x.shape[: x.dim() - n], *([1] * n)]
    return (
        torch.empty(x.shape, dtype=x.dtype, device=_META),
        torch.empty(stats, dtype=x.dtype, device=_META),
        torch.empty(stats, dtype=x.dtype, device=_META),
    )


_UNARY = ("relu", "hardtanh", "leaky_relu", "sigmoid", "silu", "hardsigmoid", "hardswish")
_BINARY = ("add", "sub", "mul", "div")

#: ATen overload -> shape-only implementation used on the meta device (None: fall back).
META_SHAPES: dict[Any, Shape] = {
    **{getattr(aten, op).default: _unary for op in (*_UNARY, "tanh", "gelu")},
    **{getattr(aten, f"{op}_").default: _unary_ for op in _UNARY},
    **{getattr(aten, op).Tensor: _binary for op in _BINARY},
    **{getattr(aten, f"{op}_").Tensor: _inplace_binary(op != "div") for op in _BINARY},
    aten.native_batch_norm.default: _native_batch_norm,
    aten.native_layer_norm.default: _native_layer_norm,
    aten._softmax.default: _softmax,
    aten._safe_softmax.default: _softmax,
    aten.clone.default: _clone,
    aten.bmm.default: _bmm,
    **{getattr(aten, op).Scalar: _scalar_op for op in _BINARY},
    aten.mean.dim: _mean_dim,
    aten.addmm.default: _addmm_shape,
    aten.cat.default: _cat,
    aten.convolution.default: _convolution,
}
