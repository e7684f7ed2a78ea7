"""The runtime targets of issue 4, measured on this machine and written down.

1. Repeatability: two back-to-back runs of resnet50, batch 8, CPU fp32 (default harness
   settings) give medians within 3% of each other.
2. Harness overhead: for ghostnet at batch 1, the harness median against a bare timed loop
   (``t0 = perf_counter(); model(x); samples.append(...)``) in the same process, interleaved
   round by round (A B, B A, ...), under 1%. The per-call cost of the harness itself is also
   measured on a no-op.
3. The default comparison of resnet50, se_resnet50 and ghostnet on CPU (batch 1, fp32,
   contiguous, default budget; through :func:`cnnbench.api.run_models` when it is there, so
   model build, static profile, stage times and the CPU memory child are all included)
   finishes within 2 minutes.

``--table`` adds the CPU table of the issue's acceptance note (fp32/bf16, contiguous/
channels_last, batch 1/8) and se_resnet50's per-stage time vs MAC shares.

Usage: ``.venv/bin/python benchmarks/bench_runtime.py [--only repeat,overhead,compare]
[--table] [--out benchmarks/results/runtime.md]``
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from cnnbench.environment import fingerprint
from cnnbench.models import create_model
from cnnbench.results import Result, atomic_write_text
from cnnbench.runtime import RuntimeConfig, measure_model, prepare, time_vs_macs
from cnnbench.runtime.peak import machine_peak
from cnnbench.runtime.timing import measure, median_ci

COMPARE_MODELS = ("resnet50", "se_resnet50", "ghostnet")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "runtime.md"
THREADS: int | None = None  # --threads: CPU threads for every measurement (None: torch's)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}"


class Report:
    """Collects Markdown lines and echoes them to stdout as they come."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


def target_repeatability(say: Report) -> dict[str, Any]:
    """Two back-to-back measure_model runs of resnet50 b8 CPU fp32 with default settings."""
    say("## 1. Repeatability: resnet50, batch 8, CPU fp32, two back-to-back runs")
    say()
    model = create_model("resnet50")
    config = RuntimeConfig(device="cpu", batch_size=8)
    runs = [measure_model(model, config, name="resnet50", cpu_memory=False) for _ in range(2)]
    m1, m2 = (r.latency_ms_median or float("nan") for r in runs)
    ratio = m2 / m1
    say("| run | median ms | 95% CI ms | warm-up | timed | IQR ms |")
    say("|---|---:|---|---:|---:|---:|")
    for i, r in enumerate(runs, start=1):
        say(
            f"| {i} | {_ms(r.latency_ms_median)} | {_ms(r.latency_ms_ci_low)} .. "
            f"{_ms(r.latency_ms_ci_high)} | {r.warmup_iters} | {r.timed_iters} | "
            f"{_ms(r.latency_ms_iqr)} |"
        )
    passed = abs(ratio - 1.0) <= 0.03
    say()
    say(
        f"ratio run2/run1 = {ratio:.4f} (difference {100 * abs(ratio - 1):.2f}%, target <= 3%): "
        f"**{'PASS' if passed else 'FAIL'}**"
    )
    say()
    return {"median_1_ms": m1, "median_2_ms": m2, "ratio": ratio, "pass": passed}


def _bare_loop(call: Callable[[], Any], n: int) -> list[float]:
    samples: list[float] = []
    perf_counter = time.perf_counter
    for _ in range(n):
        t0 = perf_counter()
        call()
        samples.append((perf_counter() - t0) * 1000.0)
    return samples


def target_overhead(say: Report, rounds: int = 60, calls: int = 10) -> dict[str, Any]:
    """Harness vs bare loop on ghostnet b1, interleaved in short rounds of equal call counts
    (A B, B A, ...) so that both sides see the same background load."""
    say("## 2. Harness overhead: ghostnet, batch 1, CPU fp32, harness vs bare loop")
    say()
    model = create_model("ghostnet")
    prepared = prepare(model, RuntimeConfig(device="cpu"), name="ghostnet")
    x = prepared.inputs
    harness: list[float] = []
    bare: list[float] = []
    ratios: list[float] = []
    with prepared.context():
        measure(prepared.step, budget_s=2.0)  # settle once: warm-up as the harness does it
        for r in range(rounds):
            got: dict[str, list[float]] = {}
            for side in ("harness", "bare") if r % 2 == 0 else ("bare", "harness"):
                if side == "harness":
                    # exactly `calls` timed calls; warm-up off (already warm), no CI stop
                    stats = measure(
                        prepared.step,
                        budget_s=1e6,
                        max_warmup=0,
                        target_ci=1e-9,
                        min_iters=calls,
                        max_iters=calls,
                    )
                    got[side] = stats.samples_ms
                else:
                    got[side] = _bare_loop(lambda: model(x), calls)
            harness += got["harness"]
            bare += got["bare"]
            ratios.append(statistics.median(got["harness"]) / statistics.median(got["bare"]))
    h_med, b_med = statistics.median(harness), statistics.median(bare)
    overhead = h_med / b_med - 1.0
    ratio_lo, ratio_hi = median_ci(sorted(ratios))

    # The harness's own per-call cost, on a no-op (nothing else in the measurement).
    noop_harness = measure(lambda: None, budget_s=0.5, target_ci=1e-9, max_iters=200_000)
    noop_bare = _bare_loop(lambda: None, noop_harness.timed_iters)
    noop_ns = (noop_harness.median_ms - statistics.median(noop_bare)) * 1e6

    say("| side | samples | median ms | p90 ms |")
    say("|---|---:|---:|---:|")
    for label, values in (("harness", harness), ("bare loop", bare)):
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        say(f"| {label} | {len(values)} | {statistics.median(values):.3f} | {p90:.3f} |")
    say()
    say(
        f"{rounds} interleaved rounds of {calls} calls a side; median of the per-round "
        f"median ratios {statistics.median(ratios):.4f}, 95% CI {ratio_lo:.4f} .. {ratio_hi:.4f}"
    )
    passed = overhead < 0.01
    confirmed = ratio_hi < 1.01
    say()
    say(
        f"harness median / bare median - 1 = {100 * overhead:+.3f}% (target < 1%): "
        f"**{'PASS' if passed else 'FAIL'}**; the per-round ratio's 95% CI upper bound "
        f"{ratio_hi:.4f} {'confirms' if confirmed else 'does not confirm'} it under this load"
    )
    say(
        f"no-op call: harness median {noop_harness.median_ms * 1e6:.0f} ns vs bare loop "
        f"{statistics.median(noop_bare) * 1e6:.0f} ns per call; difference {noop_ns:+.0f} ns "
        f"= {100 * noop_ns / (b_med * 1e6):+.5f}% of ghostnet's median"
    )
    say()
    return {
        "harness_ms": h_med,
        "bare_ms": b_med,
        "overhead": overhead,
        "ratio_ci": (ratio_lo, ratio_hi),
        "noop_ns": noop_ns,
        "confirmed": confirmed,
        "pass": passed,
    }


def _compare_rows(
    models: Sequence[str], configs: Sequence[RuntimeConfig], *, stages: bool = True
) -> list[Result]:
    """Through the orchestration layer when it exists (static + stages + memory), else the
    runtime module alone (no FLOPs, no stages)."""
    try:
        from cnnbench.api import run_models
    except ImportError:
        run_models = None  # type: ignore[assignment]
    if run_models is not None:
        return list(run_models(list(models), list(configs), stage_times=stages))
    rows = []
    for name in models:
        model = create_model(name)
        rows += [measure_model(model, c, name=name) for c in configs]
    return rows


def target_default_comparison(say: Report) -> dict[str, Any]:
    """The CLI's default comparison (``cnnbench compare resnet50 se_resnet50 ghostnet
    --device cpu``: batch 1, fp32, contiguous, the CLI's default budget) timed end to end in a
    fresh process (imports, build, static profile, timing, stage times, memory child, peak,
    report). Falls back to the library path when the CLI cannot run."""
    say("## 3. Default comparison on CPU: resnet50, se_resnet50, ghostnet (batch 1, fp32)")
    say()
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "cnnbench", "compare", *COMPARE_MODELS]
        command += ["--device", "cpu", "--out", tmp, "--format", "table"]
        command += ["--threads", str(torch.get_num_threads())] if THREADS else []
        t0 = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t0
    if proc.returncode == 0:
        label = " ".join(["cnnbench", *(a for a in command[3:] if a != tmp)])
        label = label.replace(" --out --format table", "")
        say(f"`{label}` (fresh process, otherwise CLI defaults):")
        say()
        say("```")
        for line in proc.stdout.rstrip().splitlines():
            say(line)
        say("```")
        what = "process start to exit"
    else:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        say(f"(CLI not usable here: {tail}; library path, budget 3 s per configuration)")
        say()
        t0 = time.perf_counter()
        rows = _compare_rows(COMPARE_MODELS, [RuntimeConfig(device="cpu", budget_s=3.0)])
        wall = time.perf_counter() - t0
        _table(say, rows)
        what = "model build to last row"
    passed = wall < 120.0
    say()
    say(f"wall time, {what}: {wall:.1f} s (target < 120 s): **{'PASS' if passed else 'FAIL'}**")
    say()
    return {"wall_s": wall, "pass": passed}


def _table(say: Report, rows: Sequence[Result]) -> None:
    say(
        "| model | prec | format | batch | median ms | 95% CI ms | img/s | timed | "
        "peak MiB | GFLOP/s | % peak | status |"
    )
    say("|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        gflops = "-" if r.achieved_gflops is None else f"{r.achieved_gflops:.1f}"
        pct = "-" if r.pct_of_peak is None else f"{r.pct_of_peak:.1f}"
        ips = "-" if r.throughput_ips is None else f"{r.throughput_ips:.1f}"
        say(
            f"| {r.model} | {r.precision} | {r.memory_format} | {r.batch_size} | "
            f"{_ms(r.latency_ms_median)} | {_ms(r.latency_ms_ci_low)} .. "
            f"{_ms(r.latency_ms_ci_high)} | {ips} | {r.timed_iters} | "
            f"{_mib(r.peak_memory_bytes)} | {gflops} | {pct} | {r.status} |"
        )


def cpu_table(say: Report, budget_s: float) -> None:
    """The acceptance table (stage times off for speed), then se_resnet50's stages at b1."""
    say(
        f"## CPU table: fp32/bf16 x contiguous/channels_last x batch 1/8 "
        f"(budget {budget_s:g} s per configuration)"
    )
    say()
    configs = RuntimeConfig.grid(
        device="cpu",
        precision=["fp32", "bf16"],
        memory_format=["contiguous", "channels_last"],
        batch_size=[1, 8],
        budget_s=budget_s,
    )
    t0 = time.perf_counter()
    rows = _compare_rows(COMPARE_MODELS, configs, stages=False)
    _table(say, rows)
    say()
    say(f"({len(rows)} rows in {time.perf_counter() - t0:.0f} s)")
    for dtype in ("fp32", "bf16"):
        p = machine_peak("cpu", dtype)
        say(
            f"peak {dtype}: matmul {p.matmul_gflops:.0f} GFLOP/s (n={p.matmul_n}), "
            f"copy {p.copy_gbps:.1f} GB/s, {p.threads} threads"
        )
    say()
    se_config = RuntimeConfig(device="cpu", budget_s=budget_s)
    for r in _compare_rows(["se_resnet50"], [se_config]):
        say(f"### se_resnet50 per-stage time vs MACs ({r.precision}, {r.memory_format}, b1)")
        say()
        say("| stage | time ms | time % | MACs % | time share / MAC share |")
        say("|---|---:|---:|---:|---:|")
        for row in time_vs_macs(r.stages):
            say(
                f"| {row['name']} | {_ms(row['time_ms'])} | {_ms(row['time_pct'])} | "
                f"{_ms(row['mac_pct'])} | "
                f"{'-' if row['ratio'] is None else format(row['ratio'], '.2f')} |"
            )
        say()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="repeat,overhead,compare")
    parser.add_argument("--table", action="store_true", help="also the CPU acceptance table")
    parser.add_argument("--table-budget", type=float, default=3.0, help="seconds per config")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default torch's)")
    args = parser.parse_args(argv)
    global THREADS
    if args.threads:
        THREADS = args.threads
        torch.set_num_threads(args.threads)
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}

    say = Report()
    env = fingerprint("cpu")
    say("# Runtime harness targets (issue 4)")
    say()
    say(
        f"{env['cpu']}, {env['cpu_count']} cores, {env['threads']} threads; torch "
        f"{env['torch']}, Python {env['python']}; commit {env['commit']}; "
        f"{time.strftime('%Y-%m-%d %H:%M:%S')}. Load average before: "
        f"{', '.join(f'{v:.2f}' for v in _loadavg())}."
    )
    say()
    outcome: dict[str, dict[str, Any]] = {}
    if "repeat" in wanted:
        outcome["repeat"] = target_repeatability(say)
    if "overhead" in wanted:
        outcome["overhead"] = target_overhead(say)
    if "compare" in wanted:
        outcome["compare"] = target_default_comparison(say)
    if args.table:
        cpu_table(say, args.table_budget)
    say(f"Load average after: {', '.join(f'{v:.2f}' for v in _loadavg())}.")
    atomic_write_text(args.out, "\n".join(say.lines) + "\n")
    print(f"written to {args.out}", file=sys.stderr)
    return 0 if all(o["pass"] for o in outcome.values()) else 1


def _loadavg() -> tuple[float, ...]:
    try:
        import os

        return os.getloadavg()
    except OSError:
        return ()


if __name__ == "__main__":
    torch.manual_seed(0)
    sys.exit(main())
