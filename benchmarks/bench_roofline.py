"""Roofline benchmark: are the per-layer times, bytes and bounds right on things whose answer is
known?

* Roofs: this machine's measured roofs (``machine_roofs(refresh=True)``) and how long they took.
* Known kernels, each timed as a one-child module through ``time_layers`` and classified with
  its hand-computed FLOPs and the measured traffic lower bound: a large matmul and a large
  convolution (expected compute-bound, a high fraction of the compute roof), a large
  elementwise add in place (bandwidth-bound near the measured DRAM bandwidth) and with a new
  output each call (bandwidth-bound; the allocation's page faults cost extra), and a
  one-element add (overhead-bound).
* Reconciliation (depth 1) for resnet50, mobilenet_v2, ghostnet and efficientnet_b0: the sum
  of the rows against the end-to-end median, both with 95% CIs, and ``(other)``.
* torch.profiler cross-check (resnet50, mobilenet_v2, ghostnet): the same forward under the
  profiler with a ``record_function`` range around every depth-1 module; the range's CPU
  time per forward (median over the profiled forwards) against the row's median and CI, also
  after subtracting the profiler's own cost (the forward's wall time with the profiler on
  minus off, per operator call, times the row's operator calls).
* A/A: a wrapper that runs two identical copies of mobilenet_v2 on the same input; the depth-2
  rows of copy B against copy A, per round, give paired ratios with a 95% CI that should hold 1.
* Cost: the wall time of per-layer timing against timing the end-to-end forward alone to the
  same target.

Results: ``benchmarks/results/roofline.md`` and ``roofline-<model>.svg`` (the Roofline chart).
Usage: ``python benchmarks/bench_roofline.py [--budget 20] [--out benchmarks/results]``.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from cnnbench.models import create_model
from cnnbench.report.charts import roofline_svg
from cnnbench.report.table import to_markdown
from cnnbench.report.time_goes import where_time_goes_table
from cnnbench.results import Result
from cnnbench.runtime.engine import paired_ratio
from cnnbench.runtime.layer_timing import annotate_layers, time_layers
from cnnbench.runtime.roofline import classify
from cnnbench.runtime.roofs import Roofs, machine_roofs
from cnnbench.runtime.timing import measure
from cnnbench.spec import ExampleInputs
from cnnbench.static.layers import layer_costs

ROOT = Path(__file__).resolve().parent.parent
ZOO = ("resnet50", "mobilenet_v2", "ghostnet", "efficientnet_b0")
PROFILED = ("resnet50", "mobilenet_v2", "ghostnet")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _ms(v: float) -> str:
    return f"{v * 1000:.1f} µs" if abs(v) < 0.1 else f"{v:.4g} ms"


def _ci(lo: float, hi: float) -> str:
    return f"[{_ms(lo)}, {_ms(hi)}]"


# --------------------------------------------------------------------------- known kernels


class MatMul(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.randn(n, n), requires_grad=False)

    def forward(self, a: Tensor) -> Tensor:
        return a @ self.b


class Add(nn.Module):
    """``x + other`` (a new output each call), or ``x += other`` in place with ``in_place``."""

    def __init__(self, numel: int, in_place: bool = False) -> None:
        super().__init__()
        self.register_buffer("other", torch.ones(numel))
        self.in_place = in_place

    def forward(self, x: Tensor) -> Tensor:
        return x.add_(self.other) if self.in_place else x + self.other


class One(nn.Module):
    """Wraps ``op`` as the model's only child, so the row ``op`` is the kernel alone."""

    def __init__(self, op: nn.Module) -> None:
        super().__init__()
        self.op = op

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


def _kernels() -> list[tuple[str, nn.Module, Tensor, float, str]]:
    """(name, module, input, FLOPs by hand, expected bound)."""
    n = 1024
    conv = nn.Conv2d(256, 256, 3, padding=1, bias=False)
    numel = 32 << 20  # 128 MiB per fp32 tensor: 384 MiB moved, beyond every cache
    return [
        (f"matmul {n}x{n} @ {n}x{n}", MatMul(n), torch.randn(n, n), 2.0 * n**3, "compute"),
        (
            "conv 3x3 256->256, 1x256x28x28",
            conv,
            torch.randn(1, 256, 28, 28),
            2.0 * 256 * 256 * 9 * 28 * 28,
            "compute",
        ),
        ("add of two 128 MiB fp32 tensors", Add(numel), torch.ones(numel), float(numel), "bandwidth"),
        ("add in place, two 128 MiB fp32 tensors", Add(numel, in_place=True), torch.ones(numel),
         float(numel), "bandwidth"),
        ("add of one-element tensors", Add(1), torch.ones(1), 1.0, "overhead"),
    ]  # fmt: skip


def known_kernels(roofs: Roofs, budget_s: float) -> list[str]:
    env = roofs.environment()
    lines = [
        "| kernel | time (95% CI) | FLOPs | bytes (lower bound) | GFLOP/s | GB/s | bound "
        "| roof fraction | expected | |",
        "|---|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for name, module, x, flops, expected in _kernels():
        t = time_layers(One(module).eval(), x, depth=1, budget_s=budget_s).row("op")
        b = classify(
            t.median_ms,
            flops,
            t.bytes,
            peak_gflops=env["peak_gflops"]["fp32"],
            bandwidth_gbps=roofs.bandwidth_gbps,
            call_overhead_us=env["call_overhead_us"],
            ops=max(t.ops, 1),
            calls=t.calls,
            module_call_us=env["module_call_overhead_us"],
        )
        ok = "met" if b.bound == expected else "NOT met"
        lines.append(
            f"| {name} | {_ms(t.median_ms)} {_ci(t.ci_low_ms, t.ci_high_ms)} | {flops:.3g} "
            f"| {t.bytes:,} | {b.gflops:.3g} | {b.gbps:.3g} | {b.bound} | {b.roof_fraction:.2f} "
            f"| {expected} | {ok} |"
        )
        del module, x
    return lines


# --------------------------------------------------------------------------- zoo


def _input(name: str) -> tuple[nn.Module, Tensor]:
    torch.manual_seed(0)
    model = create_model(name).eval()
    return model, torch.randn(1, 3, 224, 224)


def zoo(roofs: Roofs, budget_s: float, out: Path) -> tuple[list[str], list[str], dict]:
    """Reconciliation lines, cost lines and the timings per model."""
    rec = [
        "| model | rows at depth 1 | sum of rows (95% CI) | end-to-end (95% CI) | (other) (95% CI) "
        "| sum / end-to-end | intervals | rounds |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    cost = [
        "| model | per-layer timing wall s (capture + rounds) | end-to-end alone wall s "
        "| end-to-end alone median | rounds | stop |",
        "|---|---:|---:|---:|---:|---|",
    ]
    timings = {}
    for name in ZOO:
        model, x = _input(name)
        started = time.perf_counter()
        lt = time_layers(model, x, depth=1, budget_s=budget_s)
        wall = time.perf_counter() - started
        timings[name] = lt
        r = lt.reconciliation
        rec.append(
            f"| {name} | {len(lt.rows) - 1} | {_ms(r.rows_sum_ms)} {_ci(*r.rows_sum_ci)} "
            f"| {_ms(r.end_to_end_ms)} {_ci(*r.end_to_end_ci)} | {_ms(r.other_ms)} "
            f"{_ci(*r.other_ci)} | {r.share:.3f} | {'overlap' if r.agree else 'DISAGREE'} "
            f"| {r.rounds} |"
        )
        with torch.inference_mode():
            started = time.perf_counter()
            alone = measure(lambda m=model, x=x: m(x), budget_s=budget_s, target_ci=0.02)
            alone_wall = time.perf_counter() - started
        cost.append(
            f"| {name} | {wall:.1f} ({lt.capture_s:.1f} + {lt.timing_s:.1f}) | {alone_wall:.1f} "
            f"| {_ms(alone.median_ms)} | {lt.rounds} | {lt.stop_reason} |"
        )
        # the where-the-time-goes table and the chart, from the static rows + timings
        costs = layer_costs(model, (3, 224, 224), depth=1, example_inputs=ExampleInputs((x,)))
        annotated = annotate_layers(costs, lt, roofs, batch_size=1)
        timings[name + ":annotated"] = annotated
        svg = roofline_svg([Result(model=name, layers=annotated)], roofs.environment())
        if svg:
            (out / f"roofline-{name}.svg").write_text(svg, encoding="utf-8")
    return rec, cost, timings


# --------------------------------------------------------------------------- profiler


def profiler_check(timings: dict, forwards: int = 10) -> list[str]:
    from torch.autograd.profiler import record_function
    from torch.profiler import ProfilerActivity, profile

    lines = [
        "| model | row | per-layer timing median (95% CI) | profiler range, median of "
        f"{forwards} forwards | profiler / timing | ops | profiler less its cost per op "
        "| that / timing | inside CI | share of the forward, timing | share, profiler |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    overheads: list[str] = []
    for name in PROFILED:
        model, x = _input(name)
        lt = timings[name]
        ranges: dict[str, Any] = {}
        handles = []
        for child, module in model.named_children():

            def pre(_m: nn.Module, _a: Any, child: str = child, open_: dict = ranges) -> None:
                open_[child] = record_function(f"layer::{child}")
                open_[child].__enter__()

            def post(
                _m: nn.Module, _a: Any, _o: Any, child: str = child, open_: dict = ranges
            ) -> None:
                open_.pop(child).__exit__(None, None, None)

            handles += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
        try:
            with torch.inference_mode():
                for _ in range(3):
                    model(x)  # warm
                off = _forward_ms(model, x, forwards)
                with profile(activities=[ProfilerActivity.CPU]) as prof:
                    on = _forward_ms(model, x, forwards)
        finally:
            for h in handles:
                h.remove()
        # The profiler's own cost per operator: the whole forward with it on, minus off,
        # over the operators one forward issues.
        per_op_ms = max(0.0, on - off) / max(1, lt.end_to_end.ops)
        overheads.append(
            f"- {name}: forward {_ms(off)} without the profiler, {_ms(on)} with it (medians of "
            f"{forwards}); {lt.end_to_end.ops} operator calls per forward: "
            f"{per_op_ms * 1000:.1f} µs of profiler cost per operator call."
        )
        per: dict[str, list[float]] = {}
        for ev in prof.events():
            if ev.name.startswith("layer::"):
                per.setdefault(ev.name.removeprefix("layer::"), []).append(ev.cpu_time_total / 1e3)
        for row in lt.rows:
            if row.name not in per:
                continue
            p = statistics.median(per[row.name])
            net = p - row.ops * per_op_ms
            inside = row.ci_low_ms <= net <= row.ci_high_ms
            # shares of the whole forward: a machine whose speed drifted between the timing
            # and the profiled forwards moves both parts alike
            share, p_share = row.median_ms / lt.end_to_end.median_ms, p / on
            lines.append(
                f"| {name} | {row.name} | {_ms(row.median_ms)} {_ci(row.ci_low_ms, row.ci_high_ms)} "
                f"| {_ms(p)} | {p / row.median_ms:.2f} | {row.ops} | {_ms(net)} | "
                f"{net / row.median_ms:.2f} | {'yes' if inside else 'no'} | {100 * share:.1f}% | "
                f"{100 * p_share:.1f}% |"
            )
    return [*lines, "", *overheads]


def _forward_ms(model: nn.Module, x: Tensor, n: int) -> float:
    """Median wall ms of ``n`` forwards."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# --------------------------------------------------------------------------- A/A


class Twice(nn.Module):
    """Two identical copies of one network, both applied to the same input."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.a = net
        self.b = copy.deepcopy(net)

    def forward(self, x: Tensor) -> Tensor:
        self.a(x)
        return self.b(x)


def a_a(budget_s: float) -> list[str]:
    model, x = _input("mobilenet_v2")
    lt = time_layers(Twice(model).eval(), x, depth=2, budget_s=budget_s)
    lines = [
        "| row | copy A median | copy B median | paired ratio B/A (95% CI) | holds 1 |",
        "|---|---:|---:|---:|---|",
    ]
    inside = 0
    pairs = [(r, lt.row("b" + r.name[1:])) for r in lt.rows if r.name.startswith("a")]
    for a, b in pairs:
        ratio, lo, hi = paired_ratio(b.round_medians_ms, a.round_medians_ms)
        holds = lo <= 1.0 <= hi
        inside += holds
        lines.append(
            f"| {a.name[2:] or '(whole copy)'} | {_ms(a.median_ms)} | {_ms(b.median_ms)} "
            f"| {ratio:.3f} [{lo:.3f}, {hi:.3f}] | {'yes' if holds else 'no'} |"
        )
    lines.append("")
    lines.append(f"{inside} of {len(pairs)} rows hold 1 in their 95% CI ({lt.rounds} rounds).")
    return lines


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per timed model")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    load_start = _load()
    md = [
        "# Roofline benchmark",
        "",
        f"`python benchmarks/bench_roofline.py --budget {args.budget:g}`, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {platform.machine()}, {os.cpu_count()} CPUs.",
        "",
        f"- load average at the start: {load_start} on {os.cpu_count()} CPUs (the end's is at "
        "the bottom); figures measured under load are slower and noisier than a quiet "
        "machine's.",
        "",
    ]
    t0 = time.perf_counter()
    roofs = machine_roofs("cpu", refresh=True)
    roofs_s = time.perf_counter() - t0
    env = roofs.environment()
    md += [
        "## Roofs of this machine",
        "",
        f"Measured in {roofs_s:.1f} s (`machine_roofs(refresh=True)`).",
        "",
        f"- compute peak: {', '.join(f'{k} {v:.3g} GFLOP/s' for k, v in env['peak_gflops'].items())}",
        f"- call overhead: {env['call_overhead_us']:.2f} µs per torch call, "
        f"{env['module_call_overhead_us']:.2f} µs per module call",
        "",
        "| working set | copy GB/s | triad GB/s | roof GB/s |",
        "|---:|---:|---:|---:|",
    ]
    for size in sorted(roofs.bandwidth_gbps):
        md.append(
            f"| {size >> 10:,} KiB | {roofs.copy_gbps[size]:.3g} | {roofs.triad_gbps[size]:.3g} "
            f"| {roofs.bandwidth_gbps[size]:.3g} |"
        )
    md += ["", "## Known kernels", ""]
    md += known_kernels(roofs, budget_s=min(args.budget, 5.0))
    rec, cost, timings = zoo(roofs, args.budget, args.out)
    md += ["", "## Reconciliation (depth 1)", "", *rec]
    md += ["", "## torch.profiler cross-check (depth 1)", ""]
    md += profiler_check(timings)
    md += ["", "## A/A: two copies of mobilenet_v2 in one model (depth 2)", ""]
    md += a_a(args.budget)
    md += ["", "## Cost of per-layer timing (depth 1, same budget)", "", *cost]
    md += ["", "## Where the time goes (depth 1)", ""]
    for name in ZOO:
        md += to_markdown(where_time_goes_table(timings[name + ":annotated"], name, depth=1))
        md.append("")
    md += [
        f"Load average at the end: {_load()}; the whole benchmark took "
        f"{time.perf_counter() - started:.0f} s.",
        "",
    ]
    path = args.out / "roofline.md"
    path.write_text("\n".join(md), encoding="utf-8")
    print(path)


if __name__ == "__main__":
    main()
