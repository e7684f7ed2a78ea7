"""The same 8-task sweep with the local and the Ray executor on this machine: wall time, Ray's
overhead per task, and whether the figures agree (latency of each row, Ray / local).

Ray runs as a local cluster with this machine's CPUs; each task asks for all of them, so the
tasks run one at a time, as timing needs. The executors alternate (local, Ray, local, Ray) so
that drift falls on both. Results: ``benchmarks/results/sweep.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from cnnbench.sweep import load_sweep, run_local, run_ray

ROOT = Path(__file__).resolve().parent.parent
MODELS = [
    "lenet5", "mobilenet_v3_small", "shufflenet_v2_x1_0", "ghostnet_050",
    "mobilenet_v1_025", "shufflenet_v1_g3", "resnet18", "senet18",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/sweep.md")
    args = parser.parse_args()
    models = MODELS
    toml = Path(tempfile.mkdtemp()) / "bench.toml"
    toml.write_text(
        f"[sweep]\nmodels = {models!r}\n".replace("'", '"')
        + "batch = [1]\nbudget = 0.3\nthreads = 1\ncpu_memory = false\n"
    )
    sweep = load_sweep(toml)
    load0 = os.getloadavg()[0]
    walls: dict[str, list[float]] = {"local": [], "ray": []}
    latency: dict[str, dict[str, list[float]]] = {"local": {}, "ray": {}}
    for _ in range(args.reps):
        for name, run_fn in (("local", run_local), ("ray", run_ray)):
            started = time.perf_counter()
            run, complete = run_fn(sweep)
            walls[name].append(time.perf_counter() - started)
            assert complete and len(run.results) == 8, (name, len(run.results))
            for i, r in enumerate(run.results):
                latency[name].setdefault(f"{i}:{r.model}", []).append(r.latency_ms_median or 0)
    local_s, ray_s = statistics.median(walls["local"]), statistics.median(walls["ray"])
    lines = [
        "# Sweep executors: local vs Ray",
        "",
        f"`python benchmarks/bench_sweep.py --reps {args.reps}`, {time.strftime('%Y-%m-%d %H:%M')}; "
        f"{platform.node()}, {os.cpu_count()} CPUs; load average {load0:.2f} at the start, "
        f"{os.getloadavg()[0]:.2f} at the end. The same 8-task sweep (one model per task, batch "
        "1, budget 0.3 s, 1 thread, no memory child); Ray is a local cluster started and shut "
        "down inside each Ray run, so its figure includes the cluster's start.",
        "",
        "| executor | wall s (median) | all runs s |",
        "|---|---:|---|",
    ]
    for name in ("local", "ray"):
        lines.append(
            f"| {name} | {statistics.median(walls[name]):.1f} | "
            f"{', '.join(f'{v:.1f}' for v in walls[name])} |"
        )
    lines += [
        "",
        f"Ray's overhead: {ray_s - local_s:+.1f} s in all, {(ray_s - local_s) / 8:+.2f} s per "
        "task (cluster start included).",
        "",
        "| task | local latency ms | Ray latency ms | Ray / local |",
        "|---|---:|---:|---:|",
    ]
    ratios = []
    for key in latency["local"]:
        lo, ra = statistics.median(latency["local"][key]), statistics.median(latency["ray"][key])
        ratios.append(ra / lo)
        lines.append(f"| {key.split(':', 1)[1]} | {lo:.3f} | {ra:.3f} | {ra / lo:.3f} |")
    lines += ["", f"Median Ray / local latency ratio: {statistics.median(ratios):.3f}.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
