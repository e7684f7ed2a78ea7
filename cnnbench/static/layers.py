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
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten

from cnnbench.errors import UsageError
from cnnbench.results import LayerCost
from cnnbench.spec import ExampleInputs
from cnnbench.static.counting import DispatchCount, _CountingMode
from cnnbench.static.profile import on_meta

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
            handles.append(module.register_forward_pre_hook(pre(name)))
            handles.append(module.register_forward_hook(post(name)))
        yield
    finally:
        for h in handles:
            h.remove()


def layer_costs(
    model: nn.Module,
    input_size: tuple[int, ...],
    *,
    depth: int = 1,
    example_inputs: ExampleInputs | None = None,
) -> list[LayerCost]:
    """Rows for every module of ``model`` down to ``depth`` (1..:data:`MAX_DEPTH`), in the
    order of ``named_modules``, plus ``(other)`` when anything ran outside the top-level
    children (see the module docstring). Counted on the meta device (``example_inputs``,
    one image's tensors, replace the ``input_size`` input); the model's mode and weights are
    put back."""
    if not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
        raise UsageError(f"--depth {depth!r}: use a whole number from 1 to {MAX_DEPTH}")
    result = DispatchCount()
    mode = _CountingMode(result, track_memory=False)
    rows: dict[str, LayerCost] = {}
    was_training = model.training
    model.eval()
    try:
        if example_inputs is None:
            example_inputs = ExampleInputs((torch.empty(1, *input_size),))
        meta = example_inputs.map(lambda t: torch.empty(t.shape, dtype=t.dtype, device="meta"))
        with on_meta(model), _hooks(model, depth, result, rows), torch.no_grad(), mode:
            model(*meta.args, **meta.kwargs)
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
