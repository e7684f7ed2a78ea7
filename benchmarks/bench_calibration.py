"""How well does the gate's calibration workload track a model's speed when a neighbour
process competes for the machine?

``gate check`` divides the candidate's latency by (calibration now / calibration at save time),
so a calibration that slows down differently from the models under test turns machine drift
into false alarms or missed regressions. This script times, in one process and in rounds of
alternating blocks, some zoo models and two calibration workloads: cnnbench's
(:func:`cnnbench.gate.calibration_workload`, the conv shapes of ResNet-18) and, for
comparison, a small one (three 3x3 convolutions at 56, 14 and 7 px and a linear layer: the
workload cnnbench used before). It does so with no neighbour and with a neighbour process on
another core that streams through 256 MiB (memory bandwidth), rewrites 24 MiB (last-level
cache) or multiplies small matrices (compute), each state repeated ``--reps`` times in turn.

Reported per state: every model's and workload's median relative to the mean of the quiet
windows, and the normalised ratio (model slowdown / workload slowdown); 1.000 is perfect
tracking. Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_calibration.py
[--models resnet18,mobilenet_v2,resnet50] [--reps 3] [--out benchmarks/results/calibration.md]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cnnbench import gate
from cnnbench.environment import fingerprint
from cnnbench.models import create_model
from cnnbench.results import atomic_write_text
from cnnbench.runtime import RuntimeConfig, prepare
from cnnbench.runtime.timing import measure

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "calibration.md"
NEIGHBOURS = {
    "memory": "a = np.ones(32 * 2**20)\nwhile True:\n    a += 1.0",
    "cache": "a = np.ones(3 * 2**20)\nwhile True:\n    a *= 1.0000001",
    "compute": (
        "x = np.random.rand(256, 256).astype(np.float32)\nwhile True:\n    x = (x @ x) * 1e-3"
    ),
}


def small_workload() -> Callable[[], Any]:
    """Three 3x3 convs (64 ch at 56 px, 256 at 14, 512 at 7) + 512 -> 1000 linear, batch 1."""
    gen = torch.Generator().manual_seed(1234)
    layers = [
        (torch.randn(1, c, hw, hw, generator=gen), torch.randn(c, c, 3, 3, generator=gen) * 0.02)
        for c, hw in ((64, 56), (256, 14), (512, 7))
    ]
    fc = torch.randn(1000, 512, generator=gen) * 0.01

    def run() -> Any:
        with torch.inference_mode():
            out = None
            for x, w in layers:
                out = torch.relu(torch.nn.functional.conv2d(x, w, padding=1))
            assert out is not None
            return out.mean((2, 3)) @ fc.T

    return run


def window(steps: dict[str, Callable[[], Any]], rounds: int, block_s: float) -> dict[str, float]:
    """Median ms per call of every step, timed in ``rounds`` rounds of one block each."""
    samples: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            samples[name] += measure(
                step, budget_s=block_s, target_ci=1e-3, min_iters=3, max_warmup=1
            ).samples_ms
    return {k: statistics.median(v) for k, v in samples.items()}


def run_states(
    results: list[tuple[str, dict[str, float]]],
    steps: dict[str, Callable[[], Any]],
    states: Sequence[str],
    args: argparse.Namespace,
) -> None:
    """One window per state, each with its neighbour process running (none when quiet)."""
    for state in states:
        neighbour = None
        if state != "quiet":
            code = "import numpy as np\n" + NEIGHBOURS[state]
            neighbour = subprocess.Popen([sys.executable, "-c", code])
            time.sleep(1.0)
        try:
            results.append((state, window(steps, args.rounds, args.block)))
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
        print(f"{state}: done", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,mobilenet_v2,resnet50")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--block", type=float, default=0.3, help="seconds per timed block")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    config = RuntimeConfig(device="cpu", batch_size=1, threads=1)
    steps: dict[str, Callable[[], Any]] = {
        name: prepare(create_model(name), config, name=name).step for name in args.models.split(",")
    }
    workloads = {"cnnbench": gate.calibration_workload("cpu"), "small": small_workload()}
    steps.update(workloads)
    models = [k for k in steps if k not in workloads]
    states = ["quiet", *NEIGHBOURS]
    started = time.perf_counter()
    results: list[tuple[str, dict[str, float]]] = []
    with torch.inference_mode():  # what Prepared.context() does for fp32 inference
        for step in steps.values():
            measure(step, budget_s=0.5)
        for _rep in range(args.reps):
            run_states(results, steps, states, args)

    quiet = {k: statistics.mean(r[k] for s, r in results if s == "quiet") for k in steps}
    env = fingerprint(torch.device("cpu"))
    lines = [
        "# Calibration tracking (issue 6)",
        "",
        f"Machine: {env.get('cpu')}, 2 cores shared with other jobs, torch {env.get('torch')}, "
        f"1 thread, batch 1, fp32. Models and workloads timed in {args.rounds} rounds of "
        f"{args.block:g} s blocks per window; {args.reps} repetitions of each state.",
        "",
        "Command: `OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_calibration.py`",
        "",
        "Slowdown = median / mean of the quiet windows. Normalised = model slowdown / workload "
        "slowdown: what `gate check` would read as a change if this state held at check time "
        "and the quiet one at save time (1.000 = perfect tracking).",
        "",
        "| state | " + " | ".join(steps) + " | "
        + " | ".join(f"{m} / {w}" for w in workloads for m in models) + " |",
        "|---|" + "---:|" * (len(steps) + len(models) * len(workloads)),
    ]  # fmt: skip
    worst: dict[str, float] = {w: 0.0 for w in workloads}
    for state, r in results:
        slow = {k: r[k] / quiet[k] for k in steps}
        norm = []
        for w in workloads:
            for m in models:
                ratio = slow[m] / slow[w]
                worst[w] = max(worst[w], abs(ratio - 1.0))
                norm.append(f"{ratio:.3f}")
        lines.append(
            f"| {state} | " + " | ".join(f"{slow[k]:.3f}" for k in steps) + " | "
            + " | ".join(norm) + " |"
        )  # fmt: skip
    lines += [
        "",
        "| workload | largest \\|normalised - 1\\| over all models and windows |",
        "|---|---:|",
        *(f"| {w} | {100 * v:.1f}% |" for w, v in worst.items()),
        "",
        f"Total wall time {time.perf_counter() - started:.0f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
