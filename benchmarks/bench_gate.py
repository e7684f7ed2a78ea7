"""The quality targets of issue 6 (the CI regression gate), measured on this machine.

All checks use the interleaved ``ab`` mode (:func:`cnnbench.gate.ab`): baseline and candidate
built in this process and timed in alternating blocks, round by round; decision = one-sided
Mann-Whitney U at alpha AND a median ratio >= 1 + min_effect, a round-level bootstrap CI,
re-measurement (more rounds) when ambiguous. Each check has a worst-case timing budget of
``budget * (1 + max_remeasure)`` seconds (<= 60 s by construction).

1. A/A: the same network (two fresh instances) checked ``--checks`` times -> false alarms
   (target <= 1 of 20).
2. Injected slowdown: the candidate does extra REAL work inside its forward (a chain of
   fp32 matmuls on a fixed buffer, its length calibrated to 10% and to 5% of the model's
   median latency on this machine, measured just before) -> detection rate (target >= 19 of
   20 at 10%; 5% is reported). The deterministic metrics are left out of these two parts: the
   static counter sees the extra matmuls (it would flag every candidate by its MACs), and the
   point here is the statistical latency decision.
3. Deterministic regression: one extra 3x3 conv layer (64 -> 64 after layer1) with all
   metrics on -> caught every time; wall time per check (static counts only, no timing).
4. ``check`` mode for information (``--check-mode N``): one ``gate save``, then N
   ``gate check`` runs of the same code (A/A) and N of the code made 10% slower,
   non-interleaved, calibration-normalised.

Usage: ``OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gate.py [--model resnet18]
[--checks 20] [--budget 8] [--rounds 10] [--only aa,slow10,slow5,det,check] [--check-mode 10]
[--out benchmarks/results/gate.md]``
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnbench import gate
from cnnbench.environment import fingerprint
from cnnbench.models import create_model
from cnnbench.results import atomic_write_text
from cnnbench.runtime import RuntimeConfig, prepare
from cnnbench.runtime.timing import measure

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "gate.md"
_MATMUL_N = 192  # size of one unit of injected work (a 192 x 192 fp32 matmul, ~7 MMAC)


NOTES = (
    "Notes:",
    "",
    "- With `min_effect = 0.05` a slowdown near 5% sits on the effect threshold, so its "
    "detection rate swings with the slowdown actually realised (the injected work is calibrated "
    "by interleaved timing to within a percent or two; the median ratio of each part shows what "
    "was realised). Lower `min_effect` to catch 5% reliably.",
    "- check mode: the baseline and each check are separate processes, minutes apart. The "
    "calibration column is how much slower (> 1) or faster the calibration workload ran at "
    "check time than at save time; the candidate's latency is divided by it.",
    '- Deterministic checks ("seconds per check") include building both models and the '
    "static counts; no timing is done once the structure regressed.",
)


class Report:
    """Collects Markdown lines and echoes them to stdout as they come."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line, flush=True)
        self.lines.append(line)


class Slowed(nn.Module):
    """``model`` followed by ``units`` chained n x n fp32 matmuls on a fixed buffer whose last
    element is added to the output (real, data-dependent work; not a sleep)."""

    def __init__(self, model: nn.Module, units: int, n: int = _MATMUL_N) -> None:
        super().__init__()
        self.model = model
        self.units = units
        gen = torch.Generator().manual_seed(3)
        self.register_buffer("w", torch.randn(n, n, generator=gen) / n**0.5)
        self.model_info = getattr(model, "model_info", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        y = self.w
        for _ in range(self.units):
            y = y @ self.w
        return out + y[-1, -1]


def with_extra_conv(model: nn.Module) -> nn.Module:
    """A cnnbench StagedNet with one extra 3x3 conv (C -> C, no bias) after ``stage1``."""
    from cnnbench.static import profile_static

    channels = {s.name: s.out_channels for s in profile_static(model, train_memory=False).stages}
    c = channels["stage1"]
    model.stage1 = nn.Sequential(model.stage1, nn.Conv2d(c, c, 3, padding=1, bias=False))
    return model


def _config(args: argparse.Namespace, *, metrics: Sequence[str]) -> gate.GateConfig:
    return gate.GateConfig(
        configs=(RuntimeConfig(device="cpu", batch_size=1, threads=args.threads),),
        budget_s=args.budget,
        rounds=args.rounds,
        max_remeasure=args.max_remeasure,
        alpha=args.alpha,
        min_effect=args.min_effect,
        memory=False,
        metrics=tuple(metrics),
        seed=0,
    )


def _interleaved_ratio(a: nn.Module, b: nn.Module, threads: int, seconds: float) -> float:
    """median(b) / median(a) of per-call latencies, timed in alternating 0.25 s blocks."""
    config = RuntimeConfig(device="cpu", threads=threads)
    pa, pb = prepare(a, config), prepare(b, config)
    ta: list[float] = []
    tb: list[float] = []
    with pa.context():
        for p in (pa, pb):
            measure(p.step, budget_s=0.5)
        for i in range(max(2, int(seconds / 0.5))):
            for p, out in ((pa, ta), (pb, tb)) if i % 2 == 0 else ((pb, tb), (pa, ta)):
                out += measure(
                    p.step, budget_s=0.25, target_ci=1e-3, min_iters=3, max_warmup=1
                ).samples_ms
    return statistics.median(tb) / statistics.median(ta)


def calibrate_units(
    model_name: str, fraction: float, threads: int, steps: int = 3, seconds: float = 12.0
) -> tuple[int, float]:
    """Units of injected matmul work that make ``model_name`` slower by ``fraction``.

    A first guess from the model's and one unit's median latency, then ``steps`` interleaved
    measurements of the model with and without the work (``seconds`` each). The cost of one
    unit is pooled over all of them (sum of measured slowdowns / sum of units), so one noisy
    measurement cannot swing the result, and the next step uses the pooled estimate. Returns
    (units, the slowdown that the pooled estimate predicts for that many units)."""
    torch.set_num_threads(threads)
    prepared = prepare(create_model(model_name), RuntimeConfig(device="cpu", threads=threads))
    with prepared.context():
        model_ms = measure(prepared.step, budget_s=3.0, target_ci=0.005).median_ms
    w = torch.randn(_MATMUL_N, _MATMUL_N)
    with torch.inference_mode():
        unit_ms = measure(lambda: w @ w, budget_s=1.0, target_ci=0.005).median_ms
    units = max(1, round(fraction * model_ms / unit_ms))
    tried = slowdown = 0.0
    for _ in range(steps):
        base, slowed = create_model(model_name), Slowed(create_model(model_name), units)
        slowdown += _interleaved_ratio(base, slowed, threads, seconds) - 1.0
        tried += units
        if slowdown > 0:
            units = max(1, round(fraction * tried / slowdown))
    per_unit = slowdown / tried
    return units, units * per_unit


def run_checks(
    say: Report,
    title: str,
    make: Callable[[], tuple[tuple[str, nn.Module], tuple[str, nn.Module]]],
    cfg: gate.GateConfig,
    n: int,
    expect_regression: bool,
) -> dict[str, Any]:
    """``n`` independent ab checks; one Markdown row each and a summary."""
    say(f"### {title}")
    say()
    say("| # | latency ratio | 99% CI | p (slower) | re-measured | verdict | seconds |")
    say("|---:|---:|---|---:|---:|---|---:|")
    flagged = 0
    ratios: list[float] = []
    seconds: list[float] = []
    for i in range(1, n + 1):
        started = time.perf_counter()  # building the two models is part of a check
        base, cand = make()
        report = gate.ab(base, cand, dataclasses.replace(cfg, seed=i))
        took = time.perf_counter() - started
        seconds.append(took)
        lat = next((v for v in report.verdicts if v.metric == "latency_ms"), None)
        failed = report.exit_code == 1
        flagged += failed
        if lat is not None and lat.ratio is not None:
            ratios.append(lat.ratio)
        failed_metrics = ", ".join(sorted({v.metric for v in report.regressions})) or "-"
        if lat is None or lat.ratio is None:
            say(
                f"| {i} | - | - | - | - | {'REGRESSION: ' + failed_metrics if failed else 'pass'}"
                f" | {took:.1f} |"
            )
        else:
            say(
                f"| {i} | {lat.ratio:.4f} | {lat.ci_low:.4f} .. {lat.ci_high:.4f} | "
                f"{lat.p_value:.2g} | {lat.remeasured} | "
                f"{'REGRESSION' if failed else lat.decision} | {took:.1f} |"
            )
    say()
    rate = flagged / n
    what = "caught" if expect_regression else "false alarms"
    say(
        f"**{what}: {flagged} / {n}** ({100 * rate:.0f}%); median latency ratio "
        f"{statistics.median(ratios) if ratios else float('nan'):.4f}; seconds per check: "
        f"median {statistics.median(seconds):.1f}, max {max(seconds):.1f}"
    )
    say()
    return {
        "flagged": flagged,
        "n": n,
        "median_ratio": statistics.median(ratios) if ratios else None,
        "median_s": statistics.median(seconds),
        "max_s": max(seconds),
    }


_CHECK_MODULE = """
import sys

sys.path.insert(0, {bench_dir!r})
from bench_gate import Slowed  # noqa: E402

from cnnbench.models import create_model  # noqa: E402

UNITS = {units}


def net():
    model = create_model({model!r})
    return Slowed(model, UNITS) if UNITS else model
"""


def _cli(*argv: str, allowed: tuple[int, ...] = (0, 1)) -> int:
    """Run ``python -m cnnbench gate ...`` in a fresh process, as CI would; returns the exit
    code (stderr is shown on one not in ``allowed``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "cnnbench", "gate", *argv], capture_output=True, text=True
    )
    if proc.returncode not in allowed:
        raise SystemExit(f"gate {argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.returncode


def _gate_toml(args: argparse.Namespace, spec: str, *, all_metrics: bool) -> str:
    metrics = "" if all_metrics else 'metrics = ["latency_ms", "throughput_ips"]\n'
    return (
        "[tool.cnnbench.gate]\n"
        f"models = [{spec!r}]\n"
        f'device = "cpu"\nbatch_sizes = [1]\nthreads = {args.threads}\n'
        f"budget_s = {args.check_budget}\nrounds = {args.rounds}\n"
        f"max_remeasure = {args.max_remeasure}\nalpha = {args.alpha}\n"
        f"min_effect = {args.min_effect}\nmemory = {str(all_metrics).lower()}\n{metrics}"
    )


def check_mode(say: Report, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """The save + check workflow, each command a fresh ``python -m cnnbench gate`` process:
    per part one ``gate save`` of the unmodified model, then ``n`` ``gate check`` runs of the
    same code (A/A, every metric including peak memory) or of the code made 10% or 5% slower
    (latency and throughput only: the static counter sees the injected matmuls). The model is
    a file spec (``gate_models.py:net``) whose file is rewritten between save and check, as a
    pull request would."""
    say(f"### 4. check mode: `gate save` once, then {n} x `gate check`, each a fresh process")
    say()
    say(
        f"Model {args.model}, batch 1, fp32, {args.threads} thread(s); per check "
        f"{args.check_budget:g} s of model timing in {args.rounds} rounds, each round a "
        "calibration block then a model block; up to "
        f"{args.max_remeasure} re-measurements when ambiguous. The candidate's latency is divided "
        "by (its calibration median / the baseline's). Decision on the normalised samples: "
        f"Mann-Whitney U one-sided p < {args.alpha:g} AND median ratio >= "
        f"{1 + args.min_effect:g}; 99% bootstrap CI (model and calibration samples resampled)."
    )
    say()
    bench_dir = str(Path(__file__).resolve().parent)
    out: dict[str, Any] = {}
    parts = [("check_aa", 0.0, "A/A")]
    parts += [("check_slow10", 0.10, "10% slower"), ("check_slow5", 0.05, "5% slower")]
    parts = [p for p in parts if p[0].removeprefix("check_") in args.check_parts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(tmp) / "gate_models.py"
        spec = f"{module}:net"
        baseline, verdicts = Path(tmp) / "baseline.json", Path(tmp) / "verdicts.json"
        configs = {}
        for all_metrics in (True, False):
            configs[all_metrics] = Path(tmp) / f"gate-{all_metrics}.toml"
            configs[all_metrics].write_text(_gate_toml(args, spec, all_metrics=all_metrics))

        def write(k: int) -> None:
            module.write_text(_CHECK_MODULE.format(bench_dir=bench_dir, units=k, model=args.model))

        units10, last = _units(args, 0.10)
        injected = {0.10: units10, 0.05: max(1, round(units10 / 2))}  # the work is linear
        say(
            f"Injected work: {units10} chained {_MATMUL_N}x{_MATMUL_N} fp32 matmuls per forward "
            f"for 10% (predicted {100 * last:+.1f}% from the unit cost pooled over 3 interleaved "
            f"measurements{_SIZED_QUIET if args.sized else ''}), half as many "
            f"({injected[0.05]}) for 5%. The median normalised ratio of each part below is the "
            "slowdown actually realised."
        )
        say()
        for key, fraction, title in parts:
            units = injected.get(fraction, 0)
            write(0)
            started = time.perf_counter()
            _cli("save", "--config", str(configs[True]), "--out", str(baseline), "-q")
            say(f"{title}. `gate save`: {time.perf_counter() - started:.1f} s.")
            say()
            write(units)
            say(
                "| # | latency ratio (normalised) | 99% CI | p (slower) | calibration | "
                "re-measured | verdict | seconds |"
            )
            say("|---:|---:|---|---:|---:|---:|---|---:|")
            flagged, unusable, ratios, seconds = 0, 0, [], []
            for i in range(1, n + 1):
                started = time.perf_counter()
                verdicts.unlink(missing_ok=True)  # a verdict must come from this check
                code = _cli(
                    "check",
                    "--config",
                    str(configs[not fraction]),
                    "--baseline",
                    str(baseline),
                    "--json",
                    str(verdicts),
                    "-q",
                    allowed=(0, 1, 2),
                )
                seconds.append(time.perf_counter() - started)
                if code == 2:  # unusable (e.g. calibration outside 0.7-1.4): not a verdict
                    unusable += 1
                    say(f"| {i} | | | | | | UNUSABLE (exit 2) | {seconds[-1]:.1f} |")
                    continue
                if not verdicts.exists():  # exit 1 without a verdict: the process crashed
                    raise SystemExit(f"gate check {i} exited {code} without writing a verdict")
                flagged += code
                rows = json.loads(verdicts.read_text())["verdicts"]
                lat = next(v for v in rows if v["metric"] == "latency_ms")
                failed = [v["metric"] for v in rows if v["decision"] == "regression"]
                ratios.append(lat["ratio"])
                say(
                    f"| {i} | {lat['ratio']:.4f} | {lat['ci_low']:.4f} .. {lat['ci_high']:.4f} | "
                    f"{lat['p_value']:.2g} | x{lat['calibration_ratio'] or 1:.3f} | "
                    f"{lat['remeasured']} | "
                    f"{'REGRESSION: ' + ', '.join(failed) if code else 'pass'} | "
                    f"{seconds[-1]:.1f} |"
                )
            say()
            what = "caught" if fraction else "false alarms"
            say(
                f"**{what}: {flagged} / {n}** ({unusable} unusable, exit 2); median normalised "
                f"ratio {statistics.median(ratios or [float('nan')]):.4f}; seconds per check "
                "(process start included): "
                f"median {statistics.median(seconds):.1f}, max {max(seconds):.1f}"
            )
            say()
            out[key] = {
                "flagged": flagged,
                "unusable": unusable,
                "n": n,
                "median_ratio": statistics.median(ratios or [float("nan")]),
            }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--checks", type=int, default=20)
    parser.add_argument("--budget", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--max-remeasure", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument("--min-effect", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="aa,slow10,slow5,det,check")
    parser.add_argument("--check-mode", type=int, default=20, help="checks per check-mode part")
    parser.add_argument("--check-parts", default="aa,slow10,slow5", help="check-mode parts to run")
    parser.add_argument(
        "--check-budget", type=float, default=10.0, help="seconds per check-mode measurement"
    )
    parser.add_argument(
        "--neighbour",
        action="store_true",
        help="run the whole benchmark beside bench_noise.py's neighbour (2 matmul threads, "
        "2 s on / 1 s off)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.sized = None
    if not args.neighbour:
        return _main(args, argv)
    from bench_noise import MATMULS  # benchmarks/ is on sys.path when run as a script

    if set(args.only.split(",")) & {"slow10", "slow5", "check"}:
        args.sized = calibrate_units(args.model, 0.10, args.threads)  # before the neighbour

    neighbour = subprocess.Popen([sys.executable, "-c", MATMULS])
    try:
        return _main(args, argv)
    finally:
        neighbour.kill()
        neighbour.wait()


_SIZED_QUIET = ", for 10%, on the quiet machine before the neighbour started; 5%: half"


def _units(args: argparse.Namespace, fraction: float) -> tuple[int, float]:
    """(units of injected work for ``fraction``, the slowdown they are predicted to cause):
    sized now, or from the 10% sizing done before the neighbour started (``args.sized``;
    the work is linear in units). Sized beside the neighbour, "10%" came out as 14 units in
    one run and 63 in another (2026-12-02), so the neighbour runs size it quietly first."""
    if args.sized is None:
        return calibrate_units(args.model, fraction, args.threads)
    units10, predicted10 = args.sized
    units = max(1, round(units10 * fraction / 0.10))
    return units, predicted10 * units / units10


def _few_alarms(s: dict[str, Any]) -> bool:
    """At most 1 false alarm in 20, scaled to the checks run (none in 10)."""
    return bool(s["flagged"] <= s["n"] // 20)


def _most_caught(s: dict[str, Any]) -> bool:
    """At least 19 of 20 caught, scaled to the checks run (rounded up: 10 of 10)."""
    return bool(s["flagged"] >= -(-19 * s["n"] // 20))


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.2f} (1 min), {five:.2f} (5 min)"


def _main(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    parts = set(args.only.split(","))
    torch.set_num_threads(args.threads)
    say = Report()
    env = fingerprint("cpu")
    started = time.perf_counter()
    say("# Regression gate quality (issue 6)")
    say()
    say(
        f"Machine: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, "
        f"{args.threads} thread(s). Model {args.model}, batch 1, 224 px, fp32. Load average "
        f"at the start: {_load()}."
        + (
            " **Beside a neighbour** (bench_noise.py's: 2 matmul threads, 2 s on / 1 s off)."
            if args.neighbour
            else ""
        )
    )
    say()
    if parts & {"aa", "slow10", "slow5", "det"}:
        say(
            f"Mode: `ab` (interleaved rounds). Per measurement {args.budget:g} s in "
            f"{args.rounds} rounds (A B / B A blocks of {args.budget / (2 * args.rounds):.2f} s), "
            f"up to {args.max_remeasure} re-measurements when ambiguous: worst case "
            f"{args.budget * (1 + args.max_remeasure):g} s of timing per check (limit 60 s). "
            f"Decision: Mann-Whitney U one-sided p < {args.alpha:g} AND median ratio >= "
            f"{1 + args.min_effect:g}; 99% round-bootstrap CI."
        )
        say()
    cmd = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_gate.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    say(f"Command: `{cmd.strip()}`")
    say()
    summary: dict[str, Any] = {}
    latency_only = ("latency_ms", "throughput_ips")
    model = args.model

    if "aa" in parts:
        cfg = _config(args, metrics=latency_only)
        summary["aa"] = run_checks(
            say,
            f"1. A/A: {model} against itself, {args.checks} checks",
            lambda: ((model, create_model(model)), (model, create_model(model))),
            cfg,
            args.checks,
            expect_regression=False,
        )
    for key, fraction in (("slow10", 0.10), ("slow5", 0.05)):
        if key not in parts:
            continue
        units, last = _units(args, fraction)
        say(
            f"Injected work for {fraction:.0%}: {units} chained {_MATMUL_N}x{_MATMUL_N} fp32 "
            f"matmuls per forward (predicted {100 * last:+.1f}% from the unit cost pooled over "
            f"3 interleaved measurements{_SIZED_QUIET if args.sized else ''})."
        )
        say()
        cfg = _config(args, metrics=latency_only)
        summary[key] = run_checks(
            say,
            f"2. Injected slowdown {fraction:.0%}: {model} vs {model} + extra matmuls, "
            f"{args.checks} checks",
            lambda units=units: (
                (model, create_model(model)),
                (model, Slowed(create_model(model), units)),
            ),
            cfg,
            args.checks,
            expect_regression=True,
        )
    if "det" in parts:
        cfg = _config(args, metrics=tuple(gate.METRICS))
        summary["det"] = run_checks(
            say,
            f"3. Deterministic: {model} vs {model} + one 3x3 conv (64->64), "
            f"{args.checks} checks, all metrics",
            lambda: ((model, create_model(model)), (model, with_extra_conv(create_model(model)))),
            cfg,
            args.checks,
            expect_regression=True,
        )
    if "check" in parts and args.check_mode > 0:
        summary.update(check_mode(say, args, args.check_mode))

    say("## Summary")
    say()
    say("| target | result | goal | verdict |")
    say("|---|---|---|---|")
    if "aa" in summary:
        s = summary["aa"]
        say(
            f"| A/A false alarms (ab) | {s['flagged']} / {s['n']} | <= 1 of 20 | "
            f"{'PASS' if _few_alarms(s) else 'FAIL'} |"
        )
    if "slow10" in summary:
        s = summary["slow10"]
        say(
            f"| 10% slowdown caught (ab; realised median ratio {s['median_ratio']:.3f}) | "
            f"{s['flagged']} / {s['n']} | >= 19 of 20 | "
            f"{'PASS' if _most_caught(s) else 'FAIL'} |"
        )
    if "slow5" in summary:
        s = summary["slow5"]
        say(
            f"| 5% slowdown caught (ab; realised median ratio {s['median_ratio']:.3f}) | "
            f"{s['flagged']} / {s['n']} | reported | - |"
        )
    if "det" in summary:
        s = summary["det"]
        say(
            f"| extra conv caught (deterministic) | {s['flagged']} / {s['n']}, median "
            f"{s['median_s']:.2f} s, max {s['max_s']:.2f} s per check | every time, in seconds | "
            f"{'PASS' if s['flagged'] == s['n'] else 'FAIL'} |"
        )
    if "check_aa" in summary:
        s = summary["check_aa"]
        say(
            f"| A/A false alarms (check mode, all metrics) | {s['flagged']} / {s['n']} | "
            f"<= 1 of 20 | {'PASS' if _few_alarms(s) else 'FAIL'} |"
        )
    for key, pct in (("check_slow10", 10), ("check_slow5", 5)):
        if key in summary:
            s = summary[key]
            goal, verdict = (
                ">= 19 of 20",
                "PASS" if _most_caught(s) else "FAIL",
            )
            if pct == 5:
                goal, verdict = "reported", "-"
            say(
                f"| {pct}% slowdown caught (check mode; median normalised ratio "
                f"{s['median_ratio']:.3f}) | {s['flagged']} / {s['n']} | {goal} | {verdict} |"
            )
    say()
    for line in NOTES:
        say(line)
    say()
    say(
        f"Total wall time {time.perf_counter() - started:.0f} s; load average at the end: {_load()}."
    )
    atomic_write_text(args.out, "\n".join(say.lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
