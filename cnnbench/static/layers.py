"""Per-layer costs: one row per module down to a depth, from one counted forward pass.

Conventions (as for the static profile): per image, eval mode, on the meta device (shapes
only), MACs and FLOPs under cnnbench's rule table. A row's ``params`` are the module's own
parameters including its children's; its MACs/FLOPs are everything that ran while the module
was running (children included), summed over its calls; ``output_shape`` is that of its
first call without the batch dimension and ``activation_bytes`` the bytes of its outputs (all
calls). Rows of depth 1 cover the model: what ran outside every top-level child (an op in the
model's own ``forward``) is a row named ``(other)``, so the depth-1 rows sum to the totals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from cnnbench.errors import UsageError, one_line
from cnnbench.results import LayerCost
from cnnbench.spec import ExampleInputs
from cnnbench.static.counting import DispatchCount, _CountingMode, hookable
from cnnbench.static.meta import on_meta

__all__ = ["layer_costs", "MAX_DEPTH"]

#: Deepest level listed (a path like ``stage3.4.conv2`` is depth 3).
MAX_DEPTH = 8


def _bytes(out: Any) -> tuple[list[int], int]:
    """(shape without the batch dimension of the first output tensor, bytes of all of them)."""
    tensors = [t for t in tree_flatten(out)[0] if isinstance(t, Tensor)]
    shape = list(tensors[0].shape[1:]) if tensors else []
    return shape, sum(t.numel() * t.element_size() for t in tensors)


@contextmanager
def _hooks(
    model: nn.Module, depth: int, result: DispatchCount, rows: dict[str, LayerCost]
) -> Iterator[None]:
    handles = []
    started: dict[str, list[tuple[int, int]]] = {}

    def pre(name: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            started.setdefault(name, []).append((result.macs, result.flops))

        return hook

    def post(name: str) -> Callable[..., None]:
        def hook(_module: nn.Module, _inputs: Any, out: Any) -> None:
            macs0, flops0 = started[name].pop()
            row = rows[name]
            row.macs += result.macs - macs0
            row.flops += result.flops - flops0
            shape, nbytes = _bytes(out)
            if row.calls == 0:
                row.output_shape = shape
            row.activation_bytes += nbytes
            row.calls += 1

        return hook

    try:
        for name, module in model.named_modules():
            level = name.count(".") + 1 if name else 0
            if not name or level > depth:
                continue
            rows[name] = LayerCost(
                name=name,
                type=type(module).__name__,
                depth=level,
                output_shape=[],
                params=sum(p.numel() for p in module.parameters()),
                macs=0,
                flops=0,
            )
            if not hookable(module):  # scripted: listed with its params, its work in the parent
                continue
            handles.append(module.register_forward_pre_hook(pre(name)))
            handles.append(module.register_forward_hook(post(name)))
        yield
    finally:
        for h in handles:
            h.remove()


def _counted(
    model: nn.Module, depth: int, example_inputs: ExampleInputs, *, meta: bool
) -> tuple[DispatchCount, dict[str, LayerCost]]:
    """One counted forward with the row hooks: on the meta device (weights swapped), or on
    real CPU tensors (random values where ``example_inputs`` hold only a shape)."""
    result = DispatchCount()
    mode = _CountingMode(result, track_memory=False)
    rows: dict[str, LayerCost] = {}
    swap: AbstractContextManager[nn.Module]
    if meta:
        inputs = example_inputs.map(lambda t: torch.empty(t.shape, dtype=t.dtype, device="meta"))
        swap = on_meta(model)
    else:
        inputs = example_inputs
        swap = nullcontext(model)
    with swap, _hooks(model, depth, result, rows), torch.no_grad(), mode:
        model(*inputs.args, **inputs.kwargs)
    return result, rows


def layer_costs(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    depth: int = 1,
    example_inputs: ExampleInputs | None = None,
) -> list[LayerCost]:
    """Rows for every module of ``model`` down to ``depth`` (1..:data:`MAX_DEPTH`), in the
    order of ``named_modules``, plus ``(other)`` when anything ran outside the top-level
    children (see the module docstring). Counted on the meta device, or on real CPU tensors
    when the meta device cannot run the model (data-dependent control flow, as the static
    profile falls back) and its weights are real (``example_inputs``,
    one image's tensors, replace the ``input_size`` input); the model's mode and weights are
    put back."""
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise UsageError(f"--depth {depth!r}: use a whole number from 1 to {MAX_DEPTH}")
    if example_inputs is None:  # random values: the real-tensor pass may read them
        example_inputs = ExampleInputs((torch.randn(1, *input_size),))
    was_training = model.training
    model.eval()
    try:
        try:
            result, rows = _counted(model, depth, example_inputs, meta=True)
        except Exception as exc:  # noqa: BLE001 - the meta device cannot run every model
            if any(t.is_meta for t in (*model.parameters(), *model.buffers())):
                raise UsageError(
                    f"--depth: the meta device cannot run this model ({one_line(exc, with_type=False)}); "
                    "build it on the CPU to count it on real tensors"
                ) from None
            # Data-dependent control flow (``x.item()``): real CPU tensors, as the profile.
            result, rows = _counted(model, depth, example_inputs, meta=False)
    finally:
        model.train(was_training)
    out = [r for r in rows.values() if r.calls or r.params]
    top_macs = sum(r.macs for r in out if r.depth == 1)
    top_flops = sum(r.flops for r in out if r.depth == 1)
    if result.macs != top_macs or result.flops != top_flops:
        out.append(
            LayerCost(
                name="(other)",
                type="",
                depth=1,
                output_shape=[],
                params=0,
                macs=result.macs - top_macs,
                flops=result.flops - top_flops,
            )
        )
    return out
