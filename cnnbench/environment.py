"""Environment fingerprint recorded with every saved run."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

__all__ = ["fingerprint", "cpu_model", "git_commit"]


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else platform.processor())."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """The commit of the cnnbench checkout (with ``-dirty`` if modified), or None."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def fingerprint(device: str | torch.device | None = None) -> dict[str, Any]:
    """Versions, hardware and threading that a measurement depends on."""
    from cnnbench._version import __version__

    env: dict[str, Any] = {
        "cnnbench": __version__,
        "commit": git_commit(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpu_count": torch.multiprocessing.cpu_count(),
        "threads": torch.get_num_threads(),
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": "cpu",
        "device_name": cpu_model(),
        "device_capability": None,
    }
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        env["device"] = f"cuda:{index}"
        env["device_name"] = torch.cuda.get_device_name(index)
        env["device_capability"] = ".".join(map(str, torch.cuda.get_device_capability(index)))
    return env
