"""An injected slowdown for the gate check on CUDA (benchmarks/gpu_check.sh).

``slowed()`` builds a zoo model (default resnet50) whose forward also runs a chain of square
matmuls on a fixed buffer, the last element of which is added to the output (real,
data-dependent device work, not a sleep). The number of matmuls is read from the environment,
so that the same file works as a ``cnnbench gate ab --candidate`` spec without model arguments
(the gate passes ``model_args`` to both models):

* ``GPU_INJECT_MODEL``: zoo name of the model (default ``resnet50``);
* ``GPU_INJECT_UNITS``: number of matmuls per forward (default 0: no extra work);
* ``GPU_INJECT_N``: matmul size n (default 1024; one unit is 2 n^3 FLOP in the model's dtype,
  fp32 for the gate's default configuration).

The units are calibrated on the device at run time by ``gpu_check.py calibrate`` (the speed of
a GPU is not known in advance). The static counter sees the matmuls, so the gate's
deterministic metrics must be left out of the injected check (``metrics = ["latency_ms",
"throughput_ips"]``).
"""

from __future__ import annotations

import os

import torch
from torch import nn

DEFAULT_N = 1024


class Slowed(nn.Module):
    """``model`` followed by ``units`` chained ``n x n`` matmuls on a fixed buffer."""

    def __init__(self, model: nn.Module, units: int, n: int = DEFAULT_N) -> None:
        super().__init__()
        self.model = model
        self.units = int(units)
        gen = torch.Generator().manual_seed(3)
        # Scaled so that repeated products neither blow up nor vanish (spectral radius ~1).
        self.register_buffer("w", torch.randn(n, n, generator=gen) / n**0.5)
        self.model_info = getattr(model, "model_info", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        y = self.w
        for _ in range(self.units):
            y = y @ self.w
        return out + y[-1, -1].to(out.dtype)


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected an integer") from None


def slowed() -> nn.Module:
    """The model named by ``GPU_INJECT_MODEL`` with ``GPU_INJECT_UNITS`` extra matmuls."""
    from cnnbench.models import create_model

    name = os.environ.get("GPU_INJECT_MODEL", "resnet50").strip() or "resnet50"
    return Slowed(
        create_model(name), _env_int("GPU_INJECT_UNITS", 0), _env_int("GPU_INJECT_N", DEFAULT_N)
    )
