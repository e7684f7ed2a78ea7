"""Real timm and torchvision models through cnnbench, as a new user runs them: every model of
:data:`MODELS` (built without weights) is counted and timed by ``cnnbench.profile``, and its
counts are checked against independent truth: parameters against ``sum(p.numel())`` and MACs
against torch's ``FlopCounterMode`` / 2 (which misses fused attention on the CPU: a gap there
is reported, with the attention MACs cnnbench found, not hidden).

The product never depends on timm or torchvision; this script needs at least one of them. When
neither can be imported it says why on stderr and exits 0 without writing anything (no
results are made up). Otherwise it writes ``benchmarks/results/external.md``: one row per
model with status, params, MACs, the FlopCounterMode gap and the median latency (batch 1,
CPU, fp32, a short budget; the machine's load is recorded, the latencies are indicative).

Usage: ``.venv/bin/python benchmarks/bench_external.py [--models timm:convnext_tiny,...]
[--budget 0.5] [--out benchmarks/results/external.md]``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "external.md"

#: 40+ models that use the layouts cnnbench must not trip over: ``self.stages`` as
#: nn.Sequential (convnext, cspnet, byobnet, nfnet, vovnet, resnetv2, maxxvit, efficientformer,
#: levit, fastvit), a ``stages`` method (hrnet), attention (vit, deit, swin, coatnet,
#: mobilevit), weight-standardised and "same"-padded convs, and the torchvision classics.
MODELS = (
    "timm:convnext_tiny", "timm:convnext_nano", "timm:cspresnet50", "timm:cspdarknet53",
    "timm:darknet53", "timm:resnet26t", "timm:gernet_s", "timm:repvgg_a2", "timm:nf_resnet26",
    "timm:dm_nfnet_f0", "timm:vovnet39a", "timm:ese_vovnet19b_dw", "timm:resnetv2_50x1_bit",
    "timm:maxvit_tiny_tf_224", "timm:coatnet_0_rw_224", "timm:efficientformer_l1",
    "timm:levit_128", "timm:fastvit_t8", "timm:hrnet_w18_small", "timm:vit_tiny_patch16_224",
    "timm:deit_tiny_patch16_224", "timm:swin_tiny_patch4_window7_224", "timm:mobilevit_xs",
    "timm:tf_efficientnet_b0", "timm:efficientnet_b0", "timm:mobilenetv3_large_100",
    "timm:regnety_008", "timm:rexnet_100", "timm:ghostnet_100", "timm:dla34",
    "timm:res2net50_26w_4s", "timm:skresnet18",
    "timm:inception_v3", "timm:xception41", "timm:densenet121", "timm:tresnet_m",
    "torchvision:resnet18", "torchvision:resnet50", "torchvision:mobilenet_v3_large",
    "torchvision:efficientnet_b0", "torchvision:convnext_tiny", "torchvision:regnet_y_400mf",
    "torchvision:vit_b_16", "torchvision:swin_t", "torchvision:squeezenet1_0",
    "torchvision:googlenet", "torchvision:shufflenet_v2_x1_0", "torchvision:mnasnet1_0",
)  # fmt: skip


def importable() -> dict[str, str]:
    """{library: why it cannot be imported} for timm and torchvision (empty string: it can)."""
    out = {}
    for lib in ("timm", "torchvision"):
        try:
            importlib.import_module(lib)
            out[lib] = ""
        except Exception as exc:  # noqa: BLE001 - a broken install fails in many ways
            out[lib] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
    return out


def _flop_counter_macs(module: Any, shape: tuple[int, ...]) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(torch.randn(*shape))
    return int(counter.get_total_flops()) // 2


def measure(spec: str, budget: float) -> dict[str, Any]:
    """One model: cnnbench's row, and the independent checks."""
    import cnnbench
    from cnnbench.spec import load

    row: dict[str, Any] = {"model": spec}
    try:
        loaded = load(spec, None)
        module = loaded.module.eval()
        run = cnnbench.profile(module, budget=budget, cpu_memory=False, threads=1)
        result = run.results[0]
        row.update(
            status=result.status,
            params=result.params,
            macs=result.macs,
            latency_ms=result.latency_ms_median,
            notes=result.notes or "",
            error=result.error or "",
        )
        row["numel"] = sum(p.numel() for p in module.parameters())
        shape = (1, *result.input_size)
        row["torch_macs"] = _flop_counter_macs(module, shape)
    except SystemExit as exc:
        row.update(status="error", error=f"exit {exc.code}")
    except Exception as exc:  # noqa: BLE001 - one failing model is a row, the others run
        row.update(status="crash", error=f"{type(exc).__name__}: {exc}".splitlines()[0])
        traceback.print_exc(file=sys.stderr)
    return row


def report(rows: list[dict[str, Any]], libs: dict[str, str], load: tuple[str, str]) -> str:
    lines = [
        "# cnnbench on real timm and torchvision models",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`. Date: "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}. Libraries: "
        + ", ".join(
            f"{k} {'ok' if not v else 'NOT importable (' + v + ')'}" for k, v in libs.items()
        )
        + f". Load average at the start {load[0]}, at the end {load[1]}.",
        "",
        "| model | status | params | = sum(numel) | MACs | FlopCounterMode/2 | gap | latency "
        "(ms, b1) | notes |",
        "|---|---|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.get("params") is None:
            lines.append(f"| {r['model']} | {r['status']} | | | | | | | {r.get('error', '')} |")
            continue
        gap = r["macs"] / r["torch_macs"] - 1 if r.get("torch_macs") else float("nan")
        latency = f"{r['latency_ms']:.2f}" if r.get("latency_ms") else ""
        lines.append(
            f"| {r['model']} | {r['status']} | {r['params']:,} | "
            f"{'yes' if r['params'] == r['numel'] else 'NO'} | {r['macs']:,} | "
            f"{r['torch_macs']:,} | {gap:+.2%} | {latency} | {r['notes'][:120]} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    libs = importable()
    usable = {lib for lib, why in libs.items() if not why}
    if not usable:
        print(
            "bench_external: neither timm nor torchvision can be imported here ("
            + "; ".join(f"{k}: {v}" for k, v in libs.items())
            + "); nothing measured, no results written",
            file=sys.stderr,
        )
        return 0
    names = [m for m in args.models.split(",") if m.split(":", 1)[0] in usable]
    start = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    rows = []
    for name in names:
        row = measure(name, args.budget)
        print(name, row.get("status"), row.get("macs"), row.get("error", ""), file=sys.stderr)
        rows.append(row)
    end = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    from cnnbench.results import atomic_write_text

    text = report(rows, libs, (start, end))
    atomic_write_text(args.out, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
