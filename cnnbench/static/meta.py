"""Meta-device helpers: run a real model with its parameters and buffers swapped for meta
tensors (shapes only, nothing computed, no memory), and put them back."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["on_meta", "swapped_to_meta"]


@contextmanager
def on_meta(model: nn.Module) -> Iterator[nn.Module]:
    """Temporarily swap a real model's parameters and buffers for meta tensors.

    Parameters stay ``nn.Parameter`` with their ``requires_grad`` (so the train-memory pass
    still builds an autograd graph), a shared module is swapped once and tied tensors stay
    tied; every original tensor object is put back on exit, even when the forward fails.
    """
    with swapped_to_meta(list(model.modules())):
        yield model


@contextmanager
def swapped_to_meta(modules: Sequence[nn.Module]) -> Iterator[None]:
    """:func:`on_meta` on the (deduplicated) module list of a model."""
    slots_of: list[tuple[dict[str, Any], dict[str, Any]]] = [
        (m._parameters, m._buffers) for m in modules
    ]
    if all(t is None or t.is_meta for pair in slots_of for slots in pair for t in slots.values()):
        yield
        return
    swapped: list[tuple[dict[str, Any], str, Tensor]] = []
    metas: dict[int, Tensor] = {}
    try:
        for pair in slots_of:  # each module once, even when shared
            for slots in pair:
                for key, t in list(slots.items()):
                    if t is None:
                        continue
                    meta = metas.get(id(t))
                    if meta is None:
                        meta = _meta_like(t)
                        if isinstance(t, nn.Parameter):
                            meta = nn.Parameter(meta, requires_grad=t.requires_grad)
                        metas[id(t)] = meta
                    swapped.append((slots, key, t))
                    slots[key] = meta
        yield
    finally:
        for slots, key, t in reversed(swapped):
            slots[key] = t


def _meta_like(t: Tensor) -> Tensor:
    """An empty meta tensor like ``t`` (what ``empty_like(t, device="meta")`` returns, without
    its slow path for dense tensors)."""
    if t.is_contiguous() or (t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)):
        return torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
    return torch.empty_like(t, device="meta")
