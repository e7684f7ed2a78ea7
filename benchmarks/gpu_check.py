"""Python steps of benchmarks/gpu_check.sh (the first run of cnnbench's CUDA paths on a GPU).

Subcommands (each writes one JSON and prints its figures; run from the repository root):

* ``fingerprint OUT.json [--nvidia-smi FILE]``: GPU name, driver, CUDA and torch versions,
  cuDNN, TF32 settings, cnnbench's environment fingerprint.
* ``events OUT.json --device D --model M --batch B[,B]``: N forwards timed as one block with
  CUDA events and with ``time.perf_counter`` + synchronize around the same block (they must
  agree within a few percent); cnnbench's per-call harness median next to the block's mean.
* ``calibrate OUT.json --device D --model M --batch B --fraction 0.1``: the number of extra
  matmuls (benchmarks/gpu_inject.py) that make M ``fraction`` slower on this device, from
  interleaved timing of M with and without them.
* ``report DIR --name NAME --device D --model M``: reads what the other steps wrote under
  ``DIR/NAME/`` and ``DIR/NAME/steps.tsv``, runs the sanity checks (PASS / FAIL / EXPLAIN,
  each with its figures), writes ``DIR/NAME.md`` and ``DIR/NAME/checks.json`` and prints
  the summary.
* ``wheelhouse DEST [DIST ...]``: repackages the installed pure-Python dependencies of
  cnnbench (and their requirements; never torch) as wheels in DEST, for a machine without a
  package index (``pip install --no-index --find-links DEST``).
"""

from __future__ import annotations

import argparse
import base64
import csv
import glob
import hashlib
import json
import os
import re
import statistics
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run from a checkout without installing cnnbench
    sys.path.insert(0, str(ROOT))


def _write_json(path: str | Path, data: Any) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def _say(msg: str) -> None:
    print(msg, flush=True)


# --- fingerprint ---------------------------------------------------------------------------
def cmd_fingerprint(args: argparse.Namespace) -> int:
    import torch

    from cnnbench.environment import fingerprint

    cuda = torch.cuda.is_available()
    dev = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    env: dict[str, Any] = {
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cuda_available": cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
        "cudnn_benchmark_default": torch.backends.cudnn.benchmark,
        "cnnbench": fingerprint(dev),
    }
    if cuda:
        props = torch.cuda.get_device_properties(dev)
        env.update(
            gpu_name=props.name,
            gpu_count=torch.cuda.device_count(),
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_memory_bytes=int(props.total_memory),
            gpu_sms=props.multi_processor_count,
        )
    smi = Path(args.nvidia_smi) if args.nvidia_smi else None
    if smi is not None and smi.is_file():
        rows = [r for r in csv.reader(smi.read_text().splitlines()) if r]
        if len(rows) >= 2:
            header = [h.strip() for h in rows[0]]
            env["nvidia_smi"] = [
                dict(zip(header, (v.strip() for v in r), strict=False)) for r in rows[1:]
            ]
            env["driver"] = env["nvidia_smi"][0].get("driver_version")
    _write_json(args.out, env)
    for key in ("gpu_name", "driver", "torch", "torch_cuda", "cudnn", "tf32_matmul", "tf32_cudnn"):
        _say(f"{key}: {env.get(key)}")
    return 0


# --- events vs wall -------------------------------------------------------------------------
def _batches(text: str) -> list[int]:
    return [int(b) for b in str(text).split(",") if b.strip()]


def cmd_events(args: argparse.Namespace) -> int:
    import torch

    from cnnbench.models import create_model
    from cnnbench.runtime import RuntimeConfig, prepare
    from cnnbench.runtime.timing import measure

    rows = []
    for batch in _batches(args.batch):
        model = create_model(args.model)
        p = prepare(model, RuntimeConfig(device=args.device, batch_size=batch))
        cuda = p.device.type == "cuda"
        dev = p.device
        sync = (lambda dev=dev: torch.cuda.synchronize(dev)) if cuda else (lambda: None)
        with p.context():
            for _ in range(3):
                p.step()
            one = []
            for _ in range(5):
                sync()
                t0 = time.perf_counter()
                p.step()
                sync()
                one.append(time.perf_counter() - t0)
            one_s = max(statistics.median(one), 1e-6)
            n = int(min(args.max_iters, max(args.min_iters, args.block_s / one_s)))
            blocks = []
            for _ in range(args.repeats):
                start = torch.cuda.Event(enable_timing=True) if cuda else None
                end = torch.cuda.Event(enable_timing=True) if cuda else None
                sync()
                t0 = time.perf_counter()
                stop_at = t0 + 4 * args.block_s  # a stalled block ends early (a CPU launch check)
                if start is not None:
                    start.record(torch.cuda.current_stream(dev))
                done = 0
                while done < n:
                    p.step()
                    done += 1
                    if time.perf_counter() > stop_at:
                        break
                if end is not None:
                    end.record(torch.cuda.current_stream(dev))
                sync()
                wall_ms = (time.perf_counter() - t0) * 1000.0
                event_ms = (
                    start.elapsed_time(end) if start is not None and end is not None else None
                )
                blocks.append({"iters": done, "wall_ms": wall_ms, "event_ms": event_ms})
            harness = measure(p.step, device=p.device, budget_s=args.harness_s)
        ratios = [b["event_ms"] / b["wall_ms"] for b in blocks if b["event_ms"] is not None]
        block_call_ms = statistics.median(b["wall_ms"] / b["iters"] for b in blocks)
        row = {
            "model": args.model,
            "batch": batch,
            "device": str(p.device),
            "iters_per_block": n,
            "blocks": blocks,
            "event_over_wall": statistics.median(ratios) if ratios else None,
            "block_ms_per_call": block_call_ms,
            "harness_median_ms": harness.median_ms,
            "harness_over_block": harness.median_ms / block_call_ms,
            "harness_timed_iters": harness.timed_iters,
        }
        rows.append(row)
        ev = row["event_over_wall"]
        _say(
            f"{args.model} b{batch}: {n} calls/block x {args.repeats}; event/wall "
            f"{'n/a (no CUDA events)' if ev is None else f'{ev:.4f}'}; block {block_call_ms:.3f} "
            f"ms/call, harness median {harness.median_ms:.3f} ms "
            f"(harness/block {row['harness_over_block']:.3f})"
        )
        del p, model
        if cuda:
            torch.cuda.empty_cache()
    _write_json(args.out, {"rows": rows})
    return 0


# --- injected slowdown calibration ----------------------------------------------------------
def _interleaved_ratio(pa: Any, pb: Any, seconds: float, block_s: float) -> float:
    """median(b) / median(a) of per-call latencies timed in alternating blocks."""
    from cnnbench.runtime.timing import measure

    ta: list[float] = []
    tb: list[float] = []
    with pa.context():
        for i in range(max(2, int(seconds / (2 * block_s)))):
            order = ((pa, ta), (pb, tb)) if i % 2 == 0 else ((pb, tb), (pa, ta))
            for p, out in order:
                out += measure(
                    p.step, device=p.device, budget_s=block_s, target_ci=1e-3, min_iters=3,
                    max_warmup=1,
                ).samples_ms  # fmt: skip
    return statistics.median(tb) / statistics.median(ta)


def cmd_calibrate(args: argparse.Namespace) -> int:
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_inject import Slowed

    from cnnbench.models import create_model
    from cnnbench.runtime import RuntimeConfig, prepare
    from cnnbench.runtime.timing import measure

    cfg = RuntimeConfig(device=args.device, batch_size=args.batch)
    base = prepare(create_model(args.model), cfg, name=args.model)
    with base.context():
        measure(base.step, device=base.device, budget_s=0.5)
        model_ms = measure(
            base.step, device=base.device, budget_s=args.probe_s, target_ci=0.005
        ).median_ms
    n = args.n
    while True:  # matmul size: at least min_units of them make up the slowdown (fine steps)
        w = torch.randn(n, n, device=base.device) / n**0.5
        with torch.inference_mode():
            unit_ms = measure(
                lambda w=w: w @ w, device=base.device, budget_s=args.probe_s / 2, target_ci=0.005
            ).median_ms
        units = max(1, round(args.fraction * model_ms / unit_ms))
        if units >= args.min_units or n // 2 < 64:
            break
        n //= 2
    args.n = n
    _say(
        f"{args.model} b{args.batch}: {model_ms:.3f} ms; one {args.n}^2 matmul {unit_ms:.4f} ms; first guess {units} units"
    )
    steps = []
    guess = units
    tried = slowdown = 0.0
    for _ in range(args.steps):
        slowed = prepare(Slowed(create_model(args.model), units, args.n), cfg, name="slowed")
        ratio = _interleaved_ratio(base, slowed, args.seconds, args.block_s)
        steps.append({"units": units, "ratio": ratio})
        _say(f"  {units} units -> measured ratio {ratio:.4f}")
        slowdown += ratio - 1.0
        tried += units
        if slowdown > 0:  # a noisy step moves the estimate at most 3x from the first guess
            units = round(args.fraction * tried / slowdown)
            units = max(1, guess // 3, min(units, 3 * guess))
        del slowed
    per_unit = slowdown / tried if tried else 0.0
    data = {
        "model": args.model,
        "batch": args.batch,
        "device": str(base.device),
        "fraction": args.fraction,
        "n": args.n,
        "model_ms": model_ms,
        "unit_ms": unit_ms,
        "steps": steps,
        "units": int(units),
        "predicted_slowdown": units * per_unit,
    }
    _write_json(args.out, data)
    _say(f"units={units} (predicted slowdown {100 * units * per_unit:.1f}%)")
    return 0


# --- report ---------------------------------------------------------------------------------
def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _rows(res_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    rows: list[dict[str, Any]] = []
    files = []
    for f in sorted(glob.glob(str(res_dir / "compare-*" / "*.json"))):
        run = _load(Path(f))
        if not isinstance(run, dict) or "results" not in run:
            continue
        files.append(os.path.relpath(f, res_dir.parent))
        for r in run["results"]:
            r = dict(r)
            r["_file"] = os.path.relpath(f, res_dir.parent)
            rows.append(r)
    return rows, files


def _steps(res_dir: Path) -> list[dict[str, str]]:
    path = res_dir / "steps.tsv"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 6:
            out.append(
                dict(
                    zip(
                        ("step", "status", "rc", "seconds", "expect", "command"),
                        parts,
                        strict=False,
                    )
                )
            )
    return out


def _find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()) and r.get("status") == "ok":
            return r
    return None


def _fmt(v: Any, spec: str = ".3f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


class Checks:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, name: str, verdict: str, figures: str, source: str) -> None:
        self.items.append({"check": name, "verdict": verdict, "figures": figures, "source": source})


def _rate(gflops: float) -> str:
    return f"{gflops / 1000:.1f} TFLOP/s" if gflops >= 1000 else f"{gflops:.1f} GFLOP/s"


def _check_peak(
    rows: list[dict[str, Any]], env: dict[str, Any], device: str, checks: Checks
) -> None:
    with_peak = [r for r in rows if r.get("achieved_gflops") and r.get("peak_gflops")]
    if not with_peak:
        checks.add(
            "achieved < matmul peak",
            "FAIL",
            "no row with achieved_gflops and peak_gflops",
            "compare JSONs",
        )
        return
    peaks = {}
    for r in with_peak:
        peaks.setdefault(r["precision"], r["peak_gflops"])
    worst = max(with_peak, key=lambda r: r["achieved_gflops"] / r["peak_gflops"])
    over = [r for r in with_peak if r["achieved_gflops"] >= r["peak_gflops"]]
    peak_text = ", ".join(f"{k} {_rate(v)}" for k, v in sorted(peaks.items()))
    figures = (
        f"measured matmul peaks: {peak_text}; highest share: {worst['model']} {worst['precision']} "
        f"{worst['memory_format']} b{worst['batch_size']} {_rate(worst['achieved_gflops'])} "
        f"= {100 * worst['achieved_gflops'] / worst['peak_gflops']:.1f}% of its peak"
    )
    if not over:
        checks.add(
            "achieved < matmul peak",
            "PASS",
            figures,
            "compare JSONs (achieved_gflops, peak_gflops)",
        )
    elif device == "cpu":
        checks.add(
            "achieved < matmul peak",
            "EXPLAIN",
            figures + f"; {len(over)} row(s) at or above the peak: CPU dry run on shared cores, "
            "the matmul peak and the rows are timed at different moments of contention",
            "compare JSONs",
        )
    elif (
        device == "cuda"
        and all(r["precision"] == "fp32" for r in over)
        and env.get("tf32_cudnn")
        and not env.get("tf32_matmul")
    ):
        checks.add(
            "achieved < matmul peak",
            "EXPLAIN",
            figures + f"; {len(over)} fp32 row(s) above the fp32 peak: cuDNN convolutions run in "
            "TF32 (torch.backends.cudnn.allow_tf32=True) while the fp32 matmul peak is measured "
            "without TF32 (torch.backends.cuda.matmul.allow_tf32=False)",
            "compare JSONs",
        )
    else:
        checks.add(
            "achieved < matmul peak",
            "FAIL",
            figures + f"; {len(over)} row(s) at or above peak",
            "compare JSONs",
        )


def _check_amp(rows: list[dict[str, Any]], model: str, batch: int, checks: Checks) -> None:
    parts = []
    ok = True
    missing = False
    for fmt in ("contiguous", "channels_last"):
        base = _find(
            rows, model=model, batch_size=batch, precision="fp32", memory_format=fmt, compiled=False
        )
        for prec in ("fp16", "bf16"):
            r = _find(
                rows,
                model=model,
                batch_size=batch,
                precision=prec,
                memory_format=fmt,
                compiled=False,
            )
            if base is None or r is None:
                missing = True
                parts.append(f"{prec} {fmt}: missing")
                continue
            ratio = r["latency_ms_median"] / base["latency_ms_median"]
            ok &= ratio < 1.0
            parts.append(
                f"{prec} {fmt} {r['latency_ms_median']:.3f} ms vs fp32 {base['latency_ms_median']:.3f} ms (x{ratio:.2f})"
            )
    verdict = "FAIL" if missing or not ok else "PASS"
    checks.add(
        f"fp16, bf16 faster than fp32 ({model} b{batch})",
        verdict,
        "; ".join(parts),
        "compare JSONs",
    )


def _check_cl(rows: list[dict[str, Any]], model: str, batch: int, checks: Checks) -> None:
    c = _find(
        rows,
        model=model,
        batch_size=batch,
        precision="fp16",
        memory_format="contiguous",
        compiled=False,
    )
    cl = _find(
        rows,
        model=model,
        batch_size=batch,
        precision="fp16",
        memory_format="channels_last",
        compiled=False,
    )
    name = f"channels_last not slower than contiguous (fp16 {model} b{batch})"
    if c is None or cl is None:
        checks.add(name, "FAIL", "row missing", "compare JSONs")
        return
    ratio = cl["latency_ms_median"] / c["latency_ms_median"]
    verdict = "PASS" if ratio <= 1.03 else "FAIL"
    checks.add(
        name,
        verdict,
        f"channels_last {cl['latency_ms_median']:.3f} ms vs contiguous {c['latency_ms_median']:.3f} ms "
        f"(x{ratio:.3f}; PASS at <= 1.03)",
        "compare JSONs",
    )


def _check_memory(rows: list[dict[str, Any]], checks: Checks) -> None:
    measured = [r for r in rows if r.get("peak_memory_bytes") and r.get("params")]
    if not measured:
        checks.add(
            "peak allocated >= weights", "FAIL", "no row with peak_memory_bytes", "compare JSONs"
        )
        return
    below = [r for r in measured if r["peak_memory_bytes"] < 4 * r["params"]]
    tight = min(measured, key=lambda r: r["peak_memory_bytes"] / (4 * r["params"]))
    figures = (
        f"{len(measured)} rows; tightest {tight['model']} {tight['precision']} {tight['memory_format']} "
        f"b{tight['batch_size']}: peak {tight['peak_memory_bytes'] / 2**20:.1f} MiB vs weights "
        f"{4 * tight['params'] / 2**20:.1f} MiB (params x 4 B)"
    )
    reserved = [
        r
        for r in measured
        if r.get("peak_reserved_bytes") is not None
        and r["peak_reserved_bytes"] < r["peak_memory_bytes"]
    ]
    if reserved:
        figures += f"; {len(reserved)} row(s) with reserved < allocated"
    checks.add(
        "peak allocated >= weights",
        "FAIL" if below or reserved else "PASS",
        figures,
        "compare JSONs (peak_memory_bytes)",
    )


def _check_dtype(rows: list[dict[str, Any]], checks: Checks) -> None:
    want = {"fp32": None, "fp16": "float16", "bf16": "bfloat16"}
    bad = [
        r
        for r in rows
        if r.get("status") == "ok" and r.get("autocast_dtype") != want.get(r.get("precision"))
    ]
    seen = sorted(
        {
            f"{r.get('precision')}->{r.get('autocast_dtype')}"
            for r in rows
            if r.get("status") == "ok"
        }
    )
    checks.add(
        "autocast dtype recorded",
        "FAIL" if bad else "PASS",
        ", ".join(seen) or "no rows",
        "compare JSONs (autocast_dtype)",
    )


def _check_events(res_dir: Path, device: str, checks: Checks) -> None:
    data = _load(res_dir / "events.json")
    if not data or not data.get("rows"):
        checks.add(
            "event time ~ wall time over a block",
            "FAIL",
            "events step produced nothing",
            "events.json",
        )
        return
    parts = []
    ok = True
    for r in data["rows"]:
        ev = r["event_over_wall"]
        if ev is not None:
            ok &= abs(ev - 1.0) <= 0.05
        parts.append(
            f"{r['model']} b{r['batch']}: event/wall {_fmt(ev, '.4f')}, harness median / block mean "
            f"{r['harness_over_block']:.3f} ({r['harness_median_ms']:.3f} vs {r['block_ms_per_call']:.3f} ms)"
        )
    if device == "cpu":
        checks.add(
            "event time ~ wall time over a block",
            "EXPLAIN",
            "CPU dry run, no CUDA events; " + "; ".join(parts),
            "events.json",
        )
    else:
        checks.add(
            "event time ~ wall time over a block",
            "PASS" if ok else "FAIL",
            "; ".join(parts) + " (PASS at |event/wall - 1| <= 5%)",
            "events.json",
        )


def _gate_rows(res_dir: Path, kind: str) -> list[dict[str, Any]]:
    out = []
    for f in sorted(glob.glob(str(res_dir / "gate" / f"{kind}-*.json"))):
        rep = _load(Path(f))
        if not isinstance(rep, dict):
            continue
        lat = next((v for v in rep.get("verdicts", []) if v.get("metric") == "latency_ms"), None)
        regress = [
            v["metric"] for v in rep.get("verdicts", []) if v.get("decision") == "regression"
        ]
        out.append(
            {
                "file": os.path.relpath(f, res_dir.parent),
                "latency": lat,
                "regressions": regress,
                "elapsed_s": rep.get("elapsed_s"),
            }
        )
    return out


def _check_gate(res_dir: Path, checks: Checks, calib: dict[str, Any] | None) -> None:
    for kind, expect in (("aa", False), ("slow10", True)):
        reps = _gate_rows(res_dir, kind)
        name = "gate A/A: no false alarm" if kind == "aa" else "gate: injected 10% slowdown caught"
        if not reps:
            checks.add(name, "FAIL", "no gate report", f"gate/{kind}-*.json")
            continue
        hits = sum(1 for r in reps if "latency_ms" in r["regressions"])
        timing = ("latency_ms", "throughput_ips")  # throughput is the inverse of latency
        ratios = [r["latency"]["ratio"] for r in reps if r["latency"] and r["latency"].get("ratio")]
        fig = (
            f"{hits}/{len(reps)} flagged latency; ratios {', '.join(f'{x:.3f}' for x in ratios) or '-'}; "
            f"other regressions: {sorted({m for r in reps for m in r['regressions'] if m not in timing}) or 'none'}"
        )
        if kind == "slow10" and calib:
            fig += f"; injected {calib.get('units')} x {calib.get('n')}^2 matmuls, predicted +{100 * calib.get('predicted_slowdown', 0):.1f}%"
        good = (
            hits == len(reps) and not any(m not in timing for r in reps for m in r["regressions"])
            if expect
            else not any(r["regressions"] for r in reps)
        )
        checks.add(name, "PASS" if good else "FAIL", fig, f"gate/{kind}-*.json")


def _check_compile(rows: list[dict[str, Any]], checks: Checks, steps: list[dict[str, str]]) -> None:
    step = next((s for s in steps if s["step"] == "compare-compile"), None)
    comp = [r for r in rows if r.get("compiled")]
    if step is None or step["status"] == "skipped":
        checks.add(
            "torch.compile row",
            "EXPLAIN",
            "skipped (not enough time left in the budget, or --no-compile)",
            "steps.tsv",
        )
        return
    if not comp or comp[0].get("status") != "ok":
        err = comp[0].get("error") if comp else f"step {step['status']} rc {step['rc']}"
        checks.add("torch.compile row", "FAIL", f"no ok compiled row ({err})", "compare-compile/")
        return
    c = comp[0]
    eager = _find(
        rows,
        model=c["model"],
        batch_size=c["batch_size"],
        precision=c["precision"],
        memory_format=c["memory_format"],
        compiled=False,
    )
    fig = f"{c['model']} {c['precision']} {c['memory_format']} b{c['batch_size']} compiled {c['latency_ms_median']:.3f} ms"
    if eager:
        ratio = c["latency_ms_median"] / eager["latency_ms_median"]
        fig += f" vs eager {eager['latency_ms_median']:.3f} ms (x{ratio:.2f})"
        checks.add(
            "torch.compile row", "PASS" if ratio <= 1.05 else "EXPLAIN", fig, "compare-compile/"
        )
    else:
        checks.add(
            "torch.compile row", "PASS", fig + " (no eager row to compare)", "compare-compile/"
        )


def _check_pytest(res_dir: Path, steps: list[dict[str, str]], checks: Checks) -> None:
    step = next((s for s in steps if s["step"] == "pytest-gpu"), None)
    log = res_dir / "logs" / "pytest-gpu.log"
    text = log.read_text(errors="replace") if log.is_file() else ""
    summary = next(
        (
            ln.strip("= ")
            for ln in reversed(text.splitlines())
            if re.search(r"\d+ (passed|failed|skipped|error)", ln)
        ),
        "no summary line",
    )
    if step is None:
        checks.add("pytest -m gpu", "FAIL", "not run", "logs/pytest-gpu.log")
        return
    verdict = (
        "PASS"
        if step["status"] == "ok" and "passed" in summary and "skipped" not in summary
        else "FAIL"
    )
    if step["status"] == "ok" and "skipped" in summary and "failed" not in summary:
        verdict = "EXPLAIN"  # without CUDA the gpu tests skip
    checks.add("pytest -m gpu", verdict, summary, "logs/pytest-gpu.log")


def cmd_report(args: argparse.Namespace) -> int:
    out_dir = Path(args.dir)
    res_dir = out_dir / args.name
    env = _load(res_dir / "env.json") or {}
    steps = _steps(res_dir)
    rows, files = _rows(res_dir)
    calib = _load(res_dir / "calibrate.json")
    checks = Checks()
    _check_pytest(res_dir, steps, checks)
    _check_events(res_dir, args.device, checks)
    _check_peak(rows, env, args.device, checks)
    _check_amp(rows, args.model, args.batch, checks)
    _check_cl(rows, args.model, args.batch, checks)
    _check_memory(rows, checks)
    _check_dtype(rows, checks)
    _check_gate(res_dir, checks, calib)
    _check_compile(rows, checks, steps)

    dry = args.device == "cpu"
    lines = [
        f"# cnnbench on {'CPU (dry run of the GPU check, NOT GPU figures)' if dry else 'CUDA'}",
        "",
    ]
    if dry:
        lines += [
            "**CPU dry run** of `benchmarks/gpu_check.sh`: every step ran on the CPU with tiny "
            "budgets to prove the script end to end. No figure here says anything about a GPU.",
            "",
        ]
    lines += [f"Produced by `{args.script_command}`." if args.script_command else "", ""]
    lines += ["## Environment", ""]
    cb = env.get("cnnbench", {})
    for label, value in (
        ("GPU", env.get("gpu_name") or "none (CPU)"),
        ("driver", env.get("driver")),
        ("CUDA (torch.version.cuda)", env.get("torch_cuda")),
        ("cuDNN", env.get("cudnn")),
        ("torch", env.get("torch")),
        ("TF32 matmul / cuDNN", f"{env.get('tf32_matmul')} / {env.get('tf32_cudnn')}"),
        (
            "GPU memory",
            f"{env['gpu_memory_bytes'] / 2**30:.1f} GiB" if env.get("gpu_memory_bytes") else None,
        ),
        ("CPU", cb.get("cpu")),
        ("cnnbench commit", cb.get("commit")),
        ("python", cb.get("python")),
    ):
        lines.append(f"- {label}: {_fmt(value)}")
    lines += [
        "",
        "Commands: `nvidia-smi --query-gpu=name,driver_version --format=csv`, `benchmarks/gpu_check.py fingerprint` (`torch.version.cuda`, `torch.backends.cudnn.version()`).",
        "",
    ]

    lines += ["## Sanity checks", "", "| check | verdict | figures | from |", "|---|---|---|---|"]
    for c in checks.items:
        lines.append(
            f"| {c['check']} | **{c['verdict']}** | {c['figures'].replace('|', '/')} | `{c['source']}` |"
        )
    lines += [
        "",
        "## Steps",
        "",
        "| step | status | rc | seconds | command |",
        "|---|---|---:|---:|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s['step']} | {s['status']} | {s['rc']} | {s['seconds']} | `{s['command'].replace('|', '/')}` |"
        )
    lines += ["", "## Measured rows", ""]
    cmd_of = {s["step"]: s["command"] for s in steps}
    lines += [
        "Latency is the median per batch (ms); TFLOP/s achieved is FLOPs per image x batch / median; "
        "peak MiB is max allocated (CUDA) or the child's peak RSS (CPU). Each file's command is in "
        "the Steps table (step name = folder).",
        "",
        "| file | model | precision | format | batch | compiled | ms | img/s | TFLOP/s | % peak | peak MiB | reserved MiB | status |",
        "|---|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            "| {f} | {m} | {p} | {fmt} | {b} | {c} | {ms} | {ips} | {tf} | {pct} | {mem} | {res} | {st} |".format(
                f=r["_file"],
                m=r["model"],
                p=r["precision"],
                fmt=r["memory_format"],
                b=r.get("effective_batch_size") or r["batch_size"],
                c="yes" if r.get("compiled") else "",
                ms=_fmt(r.get("latency_ms_median")),
                ips=_fmt(r.get("throughput_ips"), ".0f"),
                tf=_fmt(r["achieved_gflops"] / 1000 if r.get("achieved_gflops") else None, ".2f"),
                pct=_fmt(r.get("pct_of_peak"), ".1f"),
                mem=_fmt(
                    r["peak_memory_bytes"] / 2**20 if r.get("peak_memory_bytes") else None, ".0f"
                ),
                res=_fmt(
                    r["peak_reserved_bytes"] / 2**20 if r.get("peak_reserved_bytes") else None,
                    ".0f",
                ),
                st=r.get("status") + (f" ({r['error']})" if r.get("error") else ""),
            )
        )
    events = _load(res_dir / "events.json")
    if events:
        lines += [
            "",
            f"## Event vs wall time (`{cmd_of.get('events', 'gpu_check.py events')}`)",
            "",
            "| model | batch | calls/block | event ms | wall ms | event/wall | harness median ms | block ms/call |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in events["rows"]:
            b0 = r["blocks"][len(r["blocks"]) // 2]
            lines.append(
                f"| {r['model']} | {r['batch']} | {r['iters_per_block']} | {_fmt(b0['event_ms'])} | {b0['wall_ms']:.3f} | "
                f"{_fmt(r['event_over_wall'], '.4f')} | {r['harness_median_ms']:.3f} | {r['block_ms_per_call']:.3f} |"
            )
    if calib:
        steps_text = ", ".join(f"{s['units']} units -> x{s['ratio']:.4f}" for s in calib["steps"])
        lines += [
            "",
            f"## Injected slowdown calibration (`{cmd_of.get('calibrate', 'gpu_check.py calibrate')}`)",
            "",
            f"- {calib['model']} b{calib['batch']}: {calib['model_ms']:.3f} ms; one {calib['n']}x{calib['n']} matmul "
            f"{calib['unit_ms']:.4f} ms; steps {steps_text}; "
            f"chosen {calib['units']} units (predicted +{100 * calib['predicted_slowdown']:.1f}%)",
        ]
    gate_lines = []
    for kind in ("aa", "slow10"):
        for g in _gate_rows(res_dir, kind):
            lat = g["latency"] or {}
            step = Path(g["file"]).stem
            gate_lines.append(
                f"| {step} | {_fmt(lat.get('baseline'))} | {_fmt(lat.get('candidate'))} | {_fmt(lat.get('ratio'), '.4f')} | "
                f"{_fmt(lat.get('p_value'), '.2g')} | {lat.get('decision', '-')} | {', '.join(g['regressions']) or '-'} | "
                f"{_fmt(g['elapsed_s'], '.1f')} | `{cmd_of.get('gate-' + step, '')}` |"
            )
    if gate_lines:
        lines += [
            "",
            "## Gate on the device",
            "",
            "| run | baseline ms | candidate ms | ratio | p | latency verdict | regressions | s | command |",
            "|---|---:|---:|---:|---:|---|---|---:|---|",
            *gate_lines,
        ]
    lines += ["", "Files: " + ", ".join(f"`{f}`" for f in files) if files else "", ""]
    md = out_dir / f"{args.name}.md"
    md.write_text("\n".join(lines), encoding="utf-8")
    _write_json(res_dir / "checks.json", checks.items)

    counts = {
        v: sum(1 for c in checks.items if c["verdict"] == v) for v in ("PASS", "FAIL", "EXPLAIN")
    }
    bad_steps = [s for s in steps if s["status"] not in ("ok", "skipped")]
    _say("")
    _say("=" * 78)
    _say(f"gpu_check summary ({'CPU DRY RUN' if dry else env.get('gpu_name', 'CUDA')})")
    for s in steps:
        _say(f"  step {s['step']:<22} {s['status']:<8} rc={s['rc']:<4} {s['seconds']:>6}s")
    for c in checks.items:
        _say(f"  {c['verdict']:<7} {c['check']}: {c['figures']}")
    _say(
        f"checks: {counts['PASS']} PASS, {counts['FAIL']} FAIL, {counts['EXPLAIN']} EXPLAIN; "
        f"steps not ok: {', '.join(s['step'] for s in bad_steps) or 'none'}"
    )
    _say(f"report: {md}")
    return 0


# --- wheelhouse -----------------------------------------------------------------------------
_DEFAULT_DISTS = ("fvcore", "thop", "pandas", "rich", "typer", "pytest", "pytest-benchmark")
_NEVER = re.compile(r"^(torch|torchvision|torchaudio|triton|nvidia-.*|setuptools|pip|wheel)$")


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirements(dist: Any) -> list[str]:
    from packaging.requirements import Requirement

    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        out.append(req.name)
    return out


def _build_wheel(dist: Any, dest: Path) -> Path | None:
    from packaging.version import Version

    files = [
        f
        for f in (dist.files or [])
        if "__pycache__" not in f.parts and not str(f).endswith(".pyc")
    ]
    root = Path(dist.locate_file(""))
    name = re.sub(r"[-_.]+", "_", dist.metadata["Name"])
    version = str(Version(dist.version))
    info = f"{name}-{version}.dist-info"
    wheel_text = (
        dist.read_text("WHEEL") or "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    tags = [ln.split(":", 1)[1].strip() for ln in wheel_text.splitlines() if ln.startswith("Tag:")]
    parts = [t.split("-") for t in tags if t.count("-") == 2] or [["py3", "none", "any"]]
    tag = "-".join(".".join(dict.fromkeys(p[i] for p in parts)) for i in range(3))  # py2.py3-...
    target = dest / f"{name}-{version}-{tag}.whl"
    record: list[str] = []
    old_info = None
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in files:
            path = (root / f).resolve()
            rel = os.path.relpath(path, root.resolve())
            if rel.startswith("..") or not path.is_file():
                continue  # console scripts in bin/: pip regenerates them from entry_points.txt
            parts = Path(rel).parts
            if parts[0].endswith(".dist-info"):
                old_info = parts[0]
                if parts[-1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "WHEEL"):
                    continue
                rel = str(Path(info, *parts[1:]))
            data = path.read_bytes()
            zf.writestr(rel, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{rel},sha256={digest},{len(data)}")
        if old_info is None:
            zf.close()
            target.unlink()
            return None
        zf.writestr(f"{info}/WHEEL", wheel_text)
        record += [f"{info}/WHEEL,,", f"{info}/RECORD,,"]
        zf.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return target


def cmd_wheelhouse(args: argparse.Namespace) -> int:
    from importlib import metadata

    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    todo = list(args.dists or _DEFAULT_DISTS)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        key = _canon(name)
        if key in seen or _NEVER.match(key):
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            _say(f"  not installed here: {name} (skipped)")
            continue
        todo += _requirements(dist)
        built = _build_wheel(dist, dest)
        _say(f"  {built.name if built else name + ': no dist-info files, skipped'}")
    return 0


# --- exec -----------------------------------------------------------------------------------
def cmd_exec(argv: list[str]) -> int:
    """Run ``python -m MODULE ARGS`` (cnnbench or pytest) with SIGTERM turned into
    KeyboardInterrupt, so a step stopped by ``timeout`` keeps what it had (cnnbench writes an
    -incomplete.json, pytest prints its summary). SIGINT gets Python's default handler back
    even when the shell started this process with SIGINT ignored."""
    import runpy
    import signal

    def interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    if not argv:
        _say("exec: give a module (cnnbench or pytest) and its arguments")
        return 2
    module, *rest = argv
    sys.argv = [module, *rest]
    if module == "cnnbench":
        from cnnbench.cli import main as cli_main

        try:
            cli_main()
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["exec"]:
        return cmd_exec(argv[1:])
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fingerprint")
    p.add_argument("out")
    p.add_argument("--nvidia-smi")
    p.set_defaults(fn=cmd_fingerprint)
    p = sub.add_parser("events")
    p.add_argument("out")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", default="1,64")
    p.add_argument("--block-s", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-iters", type=int, default=10)
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--harness-s", type=float, default=1.0)
    p.set_defaults(fn=cmd_events)
    p = sub.add_parser("calibrate")
    p.add_argument("out")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--fraction", type=float, default=0.10)
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--min-units", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--block-s", type=float, default=0.25)
    p.add_argument("--probe-s", type=float, default=1.5)
    p.set_defaults(fn=cmd_calibrate)
    p = sub.add_parser("report")
    p.add_argument("dir")
    p.add_argument("--name", default="cuda")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="resnet50")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--script-command", default="")
    p.set_defaults(fn=cmd_report)
    p = sub.add_parser("wheelhouse")
    p.add_argument("dest")
    p.add_argument("dists", nargs="*")
    p.set_defaults(fn=cmd_wheelhouse)
    args = ap.parse_args(argv)
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
