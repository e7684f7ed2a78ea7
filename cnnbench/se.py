"""Squeeze-and-Excitation overhead: per stage, by formula and by measurement."""

from __future__ import annotations

from torch import nn

__all__ = ["se_module_types"]


def se_module_types() -> tuple[type[nn.Module], ...]:
    """Module classes recognised as SE blocks (the zoo's one SqueezeExcite)."""
    from cnnbench.models import SqueezeExcite

    return (SqueezeExcite,)
