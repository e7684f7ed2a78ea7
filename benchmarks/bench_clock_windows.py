"""Which CPU-time estimator holds the quiet latency beside a bursty neighbour (issue 25)?

One process times resnet50 (zoo, batch 1, 224 px, fp32, 1 thread, inference mode) call after
call, per call recording wall time (``perf_counter_ns``), the thread's CPU time
(``thread_time_ns``) and how much CPU the *other* processes used meanwhile (``/proc/stat``
busy ticks of all CPUs minus this process's CPU time). Phases alternate: quiet, then beside
issue 25's neighbour (2 matmul threads, 2 s on / 1 s off), ``--cycles`` times, ending quiet.

Per busy phase, three estimators are compared with the mean of the quiet phases on either
side: the median CPU time of all calls (what the engine reports), the median of only the calls
during which the other processes used under a quarter of a CPU (the neighbour's off moments),
and the 20th percentile. The same comparison of each quiet phase with the next one is the
floor. A last part times 10 calls of a 256x256 matmul (in cache) in 1-second windows on the
quiet machine: how far the machine itself moves.

Linux only (``/proc/stat``). Results: ``benchmarks/results/clock-windows.md`` (``--out``).
Usage: ``python benchmarks/bench_clock_windows.py [--cycles 6] [--seconds 15]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from bench_noise import MATMULS  # benchmarks/ is on sys.path when run as a script

from cnnbench.models import create_model

ROOT = Path(__file__).resolve().parent.parent
TICKS_PER_S = os.sysconf("SC_CLK_TCK")
QUIET_OTHERS = 0.25  # CPUs used by other processes during a call, at most, to call it quiet


def _busy_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all CPUs from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:9]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _phase(model: torch.nn.Module, x: torch.Tensor, seconds: float) -> list[dict[str, float]]:
    """Calls for ``seconds``: per call wall ms, thread CPU ms, other processes' CPUs."""
    calls = []
    end = time.perf_counter() + seconds
    with torch.inference_mode():
        while time.perf_counter() < end:
            busy0, _ = _busy_ticks()
            p0, w0, c0 = time.process_time_ns(), time.perf_counter_ns(), time.thread_time_ns()
            model(x)
            c1, w1, p1 = time.thread_time_ns(), time.perf_counter_ns(), time.process_time_ns()
            busy1, _ = _busy_ticks()
            wall_s = (w1 - w0) / 1e9
            own_ticks = (p1 - p0) / 1e9 * TICKS_PER_S
            others = (busy1 - busy0 - own_ticks) / (wall_s * TICKS_PER_S)
            calls.append({"wall": wall_s * 1e3, "cpu": (c1 - c0) / 1e6, "others": others})
    return calls


def _estimates(calls: list[dict[str, float]]) -> dict[str, float]:
    cpu = sorted(c["cpu"] for c in calls)
    quiet = [c["cpu"] for c in calls if c["others"] <= QUIET_OTHERS]
    return {
        "wall": statistics.median(c["wall"] for c in calls),
        "cpu": statistics.median(cpu),
        "quiet_windows": statistics.median(quiet) if len(quiet) >= 3 else float("nan"),
        "p20": cpu[int(0.2 * (len(cpu) - 1))],
        "calls": len(calls),
        "quiet_calls": len(quiet),
    }


def _matmul_windows(windows: int) -> list[float]:
    """Median ms of 10 calls of a 256x256 matmul (thread CPU time) per 1-second window."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    medians = []
    for _ in range(windows):
        times = []
        end = time.perf_counter() + 1.0
        while time.perf_counter() < end:
            c0 = time.thread_time_ns()
            for _ in range(10):
                torch.mm(a, b)
            times.append((time.thread_time_ns() - c0) / 1e6)
        medians.append(statistics.median(times))
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=15.0, help="seconds per phase")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/clock-windows.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = create_model("resnet50").eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        for _ in range(5):
            model(x)
    load = os.getloadavg()
    quiet, busy = [_estimates(_phase(model, x, args.seconds))], []
    for i in range(args.cycles):
        neighbour = subprocess.Popen([sys.executable, "-c", MATMULS])
        try:
            time.sleep(0.5)
            busy.append(_estimates(_phase(model, x, args.seconds)))
        finally:
            neighbour.kill()
            neighbour.wait()
        time.sleep(0.5)
        quiet.append(_estimates(_phase(model, x, args.seconds)))
        print(f"cycle {i + 1}/{args.cycles}: busy cpu {busy[-1]['cpu']:.1f} ms", file=sys.stderr)
    windows = _matmul_windows(30)
    _write(args, load, quiet, busy, windows)


def _pct(value: float, reference: float) -> str:
    return f"{100 * (value / reference - 1):+.1f}%"


def _write(
    args: argparse.Namespace,
    load: tuple[float, float, float],
    quiet: list[dict[str, float]],
    busy: list[dict[str, float]],
    windows: list[float],
) -> None:
    lines = [
        "# CPU-time estimators beside a bursty neighbour (issue 25)",
        "",
        f"`python benchmarks/bench_clock_windows.py --cycles {args.cycles} --seconds "
        f"{args.seconds:g}`, {time.strftime('%Y-%m-%d %H:%M')}; resnet50, batch 1, 224 px, "
        f"fp32, 1 thread; {os.cpu_count()} CPUs; load average at the start "
        f"{load[0]:.2f} (1 min). Phases of {args.seconds:g} s alternate quiet and beside the "
        "neighbour (2 matmul threads, 2 s on / 1 s off). Each busy phase's estimate is "
        "compared with the mean of the quiet phases on either side (the same estimator: the "
        "20th percentile with the quiet 20th percentiles, the others with the quiet CPU "
        f"median). 'quiet windows': the median CPU time of the calls during which the other "
        f"processes used at most {QUIET_OTHERS} CPU.",
        "",
        "| phase | calls | wall median ms | CPU median ms | quiet-window calls | "
        "quiet-window median ms | CPU p20 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for i, q in enumerate(quiet):
        rows = [("quiet", i, q)] + ([("busy", i + 1, busy[i])] if i < len(busy) else [])
        for kind, n, e in rows:
            lines.append(
                f"| {kind} {n} | {e['calls']:.0f} | {e['wall']:.1f} | {e['cpu']:.1f} | "
                f"{e['quiet_calls']:.0f} | {e['quiet_windows']:.1f} | {e['p20']:.1f} |"
            )
    lines += [
        "",
        "| busy phase | wall median | CPU median | quiet-window median | CPU p20 |",
        "|---|---:|---:|---:|---:|",
    ]
    within = {"wall": 0, "cpu": 0, "quiet_windows": 0, "p20": 0}
    for i, b in enumerate(busy):
        ref = (quiet[i]["cpu"] + quiet[i + 1]["cpu"]) / 2
        ref20 = (quiet[i]["p20"] + quiet[i + 1]["p20"]) / 2
        refs = {"wall": ref, "cpu": ref, "quiet_windows": ref, "p20": ref20}
        for k, r in refs.items():
            within[k] += abs(b[k] / r - 1) <= 0.05
        cells = " | ".join(_pct(b[k], r) for k, r in refs.items())
        lines.append(f"| {i + 1} | {cells} |")
    n = len(busy)
    floor = [quiet[i + 1]["cpu"] / quiet[i]["cpu"] - 1 for i in range(len(quiet) - 1)]
    lines += [
        f"| within 5% | {within['wall']}/{n} | {within['cpu']}/{n} | "
        f"{within['quiet_windows']}/{n} | {within['p20']}/{n} |",
        "",
        "Floor: each quiet phase's CPU median against the previous quiet phase's: "
        + ", ".join(f"{100 * f:+.1f}%" for f in floor)
        + f" ({sum(abs(f) <= 0.05 for f in floor)}/{len(floor)} within 5%).",
        "",
        "Quiet machine, 256x256 matmul, median ms of 10 calls per 1-second window (30 windows): "
        f"{min(windows):.2f}-{max(windows):.2f} (median {statistics.median(windows):.2f}).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines[-8:]))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
