"""The two speed targets of issue 3, measured on this machine and written down.

(a) Static profile of EVERY zoo model at its native resolution with the default backend
    (``profile_static(name, train_memory=False)``: parameters + MACs/FLOPs, model built on the
    meta device): the whole zoo under 30 s. Per model, the time to build the model on meta and
    the time to profile it are listed apart.
(b) efficientnet_b7 at 600x600: cnnbench's counter (its default path: meta device) against
    fvcore's FlopCountAnalysis (real CPU tensors, which its jit tracer needs), measured side by
    side in one run, interleaved (A B A B ...), median of ``--repeats`` each; target >= 10x.
    Both the counting alone (model already built) and end to end (build + count) are shown,
    plus cnnbench's counter on the same real CPU tensors as fvcore, for transparency: on real
    tensors both pay for a real forward pass, and the speed-up comes from the meta device.

Usage: ``.venv/bin/python benchmarks/bench_static.py [--repeats 3] [--only zoo,b7]
[--out benchmarks/results/static.md]``. Thread count: torch's default unless OMP_NUM_THREADS
or ``--threads`` says otherwise; it is written into the report.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from cnnbench.environment import fingerprint
from cnnbench.models import list_models
from cnnbench.results import atomic_write_text
from cnnbench.static import build_model, profile_static
from cnnbench.static.backends import run_backend

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "static.md"
ZOO_TARGET_S = 30.0
B7_TARGET_RATIO = 10.0


class Report:
    """Collects Markdown lines and echoes them to stdout as they come."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_zoo(report: Report) -> float:
    """(a): every zoo model, build on meta + profile; returns the total seconds."""
    report("## (a) Static profile of every zoo model at its native resolution")
    report()
    report("`profile_static(model, train_memory=False)`, default backend (cnnbench, meta device).")
    report()
    report("| model | input | params | GMACs | build on meta (s) | profile (s) | total (s) |")
    report("|---|---|---:|---:|---:|---:|---:|")
    total_build = total_profile = 0.0
    t_all = time.perf_counter()
    for name in list_models():
        t_build, model = _timed(lambda name=name: build_model(name))
        t_prof, prof = _timed(
            lambda name=name, model=model: profile_static(model, name=name, train_memory=False)
        )
        total_build += t_build
        total_profile += t_prof
        c, h, w = prof.input_size
        report(
            f"| {name} | {c}x{h}x{w} | {prof.params:,} | {prof.macs / 1e9:.3f} | "
            f"{t_build:.3f} | {t_prof:.3f} | {t_build + t_prof:.3f} |"
        )
    wall = time.perf_counter() - t_all
    verdict = "meets" if wall < ZOO_TARGET_S else "MISSES"
    report()
    report(
        f"**Whole zoo ({len(list_models())} models): {wall:.2f} s wall** "
        f"(building on meta {total_build:.2f} s, profiling {total_profile:.2f} s); "
        f"target < {ZOO_TARGET_S:.0f} s: {verdict}."
    )
    report()
    return wall


def bench_b7(report: Report, repeats: int) -> float:
    """(b): efficientnet_b7 at 600x600, cnnbench (meta) vs fvcore (real CPU); returns the ratio."""
    name, shape = "efficientnet_b7", (1, 3, 600, 600)
    report("## (b) efficientnet_b7 at 600x600: cnnbench's counter vs fvcore")
    report()
    t_build_real, real = _timed(lambda: build_model(name, device="cpu").eval())
    meta = build_model(name).eval()
    x_real = [torch.randn(shape)]
    x_meta = [torch.empty(shape, device="meta")]

    samples: dict[str, list[float]] = {
        "cnnbench, meta: count": [],
        "cnnbench, meta: build + profile_static": [],
        "fvcore, real CPU: count": [],
    }
    macs: dict[str, int] = {}
    for i in range(repeats):  # interleaved, so drift hits both alike
        order = ("cnnbench", "fvcore") if i % 2 == 0 else ("fvcore", "cnnbench")
        for which in order:
            if which == "cnnbench":
                dt, rep = _timed(lambda: run_backend("cnnbench", meta, x_meta))
                samples["cnnbench, meta: count"].append(dt)
                macs["cnnbench"] = rep.macs
                dt, prof = _timed(lambda: profile_static(name, train_memory=False))
                samples["cnnbench, meta: build + profile_static"].append(dt)
            else:
                dt, rep = _timed(lambda: run_backend("fvcore", real, x_real))
                samples["fvcore, real CPU: count"].append(dt)
                macs["fvcore conv+matmul"] = rep.macs
                macs["fvcore total"] = rep.total
    # once, for transparency: our counter on the same real tensors (a real forward pass)
    dt_real, rep_real = _timed(lambda: run_backend("cnnbench", real, x_real))
    samples["cnnbench, real CPU: count (once)"] = [dt_real]
    samples["fvcore, real CPU: build on cpu (once)"] = [t_build_real]

    med = {k: statistics.median(v) for k, v in samples.items()}
    report(f"Input 1x3x600x600, {repeats} interleaved repeats each, median (all samples listed).")
    report()
    report("| what | median (s) | samples (s) |")
    report("|---|---:|---|")
    for key, values in samples.items():
        report(f"| {key} | {med[key]:.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
    report()
    report(
        f"MACs: cnnbench {macs['cnnbench']:,} (real tensors: {rep_real.macs:,}); "
        f"fvcore conv+matmul {macs['fvcore conv+matmul']:,}, fvcore total "
        f"{macs['fvcore total']:,} (+ BatchNorm and pooling)."
    )
    report()
    ratio = med["fvcore, real CPU: count"] / med["cnnbench, meta: count"]
    end_to_end = (med["fvcore, real CPU: count"] + t_build_real) / med[
        "cnnbench, meta: build + profile_static"
    ]
    real_vs_real = med["fvcore, real CPU: count"] / dt_real
    verdict = "meets" if ratio >= B7_TARGET_RATIO else "MISSES"
    report(
        f"**Speed-up, counting only: {ratio:.1f}x** (fvcore on real CPU tensors / cnnbench on "
        f"meta); target >= {B7_TARGET_RATIO:.0f}x: {verdict}."
    )
    report(
        f"End to end (fvcore: build on cpu + count; cnnbench: build on meta + profile_static): "
        f"{end_to_end:.1f}x. Both counters on the same real CPU tensors: {real_vs_real:.1f}x "
        "(each pays for a real forward pass there; the gain is the meta device)."
    )
    report()
    return ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="zoo,b7", help="comma-separated: zoo, b7")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    parts = set(args.only.split(","))

    report = Report()
    env = fingerprint()
    report("# Static profiler speed (issue 3)")
    report()
    report(f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`")
    report()
    report(
        f"Machine: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, "
        f"{env['threads']} intra-op threads, Python {env['python']}, commit {env['commit']}. "
        f"Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}."
    )
    report()
    if "zoo" in parts:
        bench_zoo(report)
    if "b7" in parts:
        bench_b7(report, args.repeats)
    atomic_write_text(args.out, "\n".join(report.lines) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
