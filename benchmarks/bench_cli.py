"""Answers in seconds: wall time of `cnnbench list` and `cnnbench info resnet50` against
`python -c "import torch"`, each a fresh process, interleaved, medians of ``--reps``.

Targets (issue "One house"): `list` within 1.5 s and `info resnet50` within 1.0 s of the torch
import on the same machine. Results: ``benchmarks/results/cli.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    "cnnbench list": [sys.executable, "-m", "cnnbench", "list"],
    "cnnbench info resnet50": [sys.executable, "-m", "cnnbench", "info", "resnet50"],
}
TARGETS = {"cnnbench list": 1.5, "cnnbench info resnet50": 1.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cli.md")
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.reps):
        for name, cmd in COMMANDS.items():  # interleaved: one of each per repetition
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            walls[name].append(time.perf_counter() - started)
    torch_s = statistics.median(walls["python -c 'import torch'"])
    lines = [
        "# CLI start-up",
        "",
        f"`python benchmarks/bench_cli.py --reps {args.reps}`, {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{platform.node()}, {os.cpu_count()} CPUs; load average {load_start:.2f} at the "
        f"start, {os.getloadavg()[0]:.2f} at the end. Fresh processes, interleaved.",
        "",
        "| command | median s | all runs s | over the torch import | target | |",
        "|---|---:|---|---:|---:|---|",
    ]
    for name, values in walls.items():
        median = statistics.median(values)
        over = median - torch_s
        target = TARGETS.get(name)
        verdict = "" if target is None else ("met" if over <= target else "NOT met")
        lines.append(
            f"| `{name}` | {median:.2f} | {', '.join(f'{v:.2f}' for v in values)} | "
            f"{'' if target is None else f'+{over:.2f}'} | "
            f"{'' if target is None else f'+{target:.1f}'} | {verdict} |"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
