"""Static profile speed: cnnbench's default ``profile_static(model)`` against fvcore, thop and
torch's FlopCounterMode, each run the way its users run it, side by side in one run.

For each of 8 common zoo models at its native input size, and 3 attention-heavy stand-ins
written here in timm's layout (ViT-Ti/16 and ViT-S/16 alike, a conv/attention hybrid; SDPA
attention, 3x224x224), batch 1, eval mode, built once on the CPU outside the timed region:

* ``cnnbench``: ``profile_static(model)``: the default call on a model object (meta device;
  params, MACs, FLOPs, per-stage costs, inference and training activation memory);
* ``fvcore``: ``FlopCountAnalysis(model, (x,)).total()`` on a real CPU tensor (its warnings
  silenced, which only makes it faster);
* ``thop``: ``thop.profile(model, inputs=(x,), verbose=False)`` on a real CPU tensor;
* ``FlopCounterMode``: ``with FlopCounterMode(display=False): model(x)`` under ``no_grad`` on
  a real CPU tensor, then ``get_total_flops()``.

Each thread setting in ``--threads`` (default: 1 and torch's default) gets its own table: on a
shared machine several intra-op threads per process contend with the neighbours and can make the
real-tensor tools many times slower, which would flatter cnnbench (single-threaded Python on
the meta device); one thread is the harder comparison. One untimed warm-up call per tool and
model, then ``--repeats`` rounds; in each round every tool
runs once, in an order rotated from round to round (A B C D, B C D A, ...), so drift and
neighbours' load hit all tools alike. ``gc.collect()`` runs before each timed call, outside the
timing. The report quotes medians (seconds per call) and the ratio cnnbench / fastest other
tool (target <= 1), with the machine, torch's thread count and the load average at the start
and the end: the machine is shared, so single samples are noisy and only medians are quoted.

Usage: ``.venv/bin/python benchmarks/bench_static.py [--repeats 7] [--models a,b]
[--threads 1,2] [--out benchmarks/results/static.md]``.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cnnbench.environment import fingerprint
from cnnbench.results import atomic_write_text
from cnnbench.static import build_model, profile_static

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "static.md"
MODELS = ("resnet50", "se_resnet50", "ghostnet", "efficientnet_b0", "densenet121",
          "inception_v3", "vgg16", "mobilenet_v3_large", "vit_tiny_like", "vit_small_like",
          "conv_attention_like")  # fmt: skip
TOOLS = ("cnnbench", "fvcore", "thop", "FlopCounterMode")
OTHERS = TOOLS[1:]
DEFAULT_THREADS = torch.get_num_threads()


class _Attention(nn.Module):
    """Multi-head self-attention as timm writes it: one qkv linear, SDPA, a projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class _ViTLike(nn.Module):
    """A ViT in timm's layout (16x16 patches, class token, learned position embedding,
    pre-norm blocks, SDPA): ViT-Ti/16 with (192, 12, 3), ViT-S/16 with (384, 12, 6)."""

    def __init__(self, dim: int, depth: int, heads: int, size: int = 224) -> None:
        super().__init__()
        tokens = (size // 16) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, 16, 16)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, dim))
        self.blocks = nn.Sequential(*[_Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class _ConvAttention(nn.Module):
    """A conv/attention hybrid in the MobileViT/CoAtNet manner: conv stages to 28x28, then
    attention blocks over the 784 tokens at 96 channels, then a conv stage and a head."""

    def __init__(self) -> None:
        super().__init__()

        def conv(a: int, b: int, stride: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b), nn.SiLU()
            )

        self.stem = nn.Sequential(conv(3, 32, 2), conv(32, 64, 2), conv(64, 96, 2))
        self.blocks = nn.Sequential(*[_Block(96, 4) for _ in range(4)])
        self.tail = conv(96, 192, 2)
        self.head = nn.Linear(192, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        b, c, h, w = x.shape
        t = self.blocks(x.flatten(2).transpose(1, 2).contiguous())
        x = t.transpose(1, 2).reshape(b, c, h, w)
        return self.head(self.tail(x).mean((2, 3)))


#: Attention-heavy stand-ins (not cnnbench zoo models), built here, each (3, 224, 224).
EXTRA_MODELS: dict[str, Callable[[], nn.Module]] = {
    "vit_tiny_like": lambda: _ViTLike(192, 12, 3),
    "vit_small_like": lambda: _ViTLike(384, 12, 6),
    "conv_attention_like": _ConvAttention,
}


def _build(name: str) -> tuple[nn.Module, tuple[int, int, int]]:
    if name in EXTRA_MODELS:
        model = EXTRA_MODELS[name]()
        model.eval()
        return model, (3, 224, 224)
    model = build_model(name, device="cpu").eval()
    return model, model.model_info.input_size


def _tools(model: nn.Module, x: torch.Tensor) -> dict[str, Callable[[], int]]:
    """One callable per tool; each returns its headline count (for the agreement column)."""
    from fvcore.nn import FlopCountAnalysis
    from thop import profile as thop_profile
    from torch.utils.flop_counter import FlopCounterMode

    def cnnbench() -> int:
        return profile_static(model, input_size=tuple(x.shape[1:])).macs

    def fvcore() -> int:
        return int(FlopCountAnalysis(model, (x,)).total())

    def thop() -> int:
        macs, _ = thop_profile(model, inputs=(x,), verbose=False)
        return int(macs)

    def flop_counter() -> int:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(x)
        return int(counter.get_total_flops())

    return {"cnnbench": cnnbench, "fvcore": fvcore, "thop": thop, "FlopCounterMode": flop_counter}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench(names: tuple[str, ...], repeats: int) -> dict[str, dict[str, Any]]:
    """{model: {"samples": {tool: [s, ...]}, "counts": {tool: int}}}, interleaved."""
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        model, (c, h, w) = _build(name)
        x = torch.randn(1, c, h, w)
        tools = _tools(model, x)
        counts = {tool: fn() for tool, fn in tools.items()}  # warm-up, untimed
        samples: dict[str, list[float]] = {tool: [] for tool in TOOLS}
        for i in range(repeats):
            order = TOOLS[i % len(TOOLS) :] + TOOLS[: i % len(TOOLS)]
            for tool in order:
                dt, _ = _timed(tools[tool])
                samples[tool].append(dt)
        out[name] = {"samples": samples, "counts": counts, "input": f"{c}x{h}x{w}"}
        med = {t: statistics.median(v) for t, v in samples.items()}
        print(name, " ".join(f"{t}={v:.4f}" for t, v in med.items()), file=sys.stderr, flush=True)
    return out


def header(repeats: int, load: tuple[str, str], threads: list[int]) -> list[str]:
    env = fingerprint()
    return [
        "# Static profile speed: cnnbench vs fvcore, thop and FlopCounterMode",
        "",
        f"Command: `{' '.join([Path(sys.executable).name, *sys.argv])}`",
        "",
        f"Machine: {env['cpu']}, {env['cpu_count']} cores, torch {env['torch']}, Python "
        f"{env['python']}, commit {env['commit']}; intra-op threads: "
        f"{', '.join(map(str, threads))} (one table each; torch's default here is "
        f"{DEFAULT_THREADS}). Date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}.",
        "",
        f"Load average (1, 5, 15 min): at the start {load[0]}; at the end {load[1]}. The "
        "machine is shared with other workers (2 cores): single samples are noisy, so only "
        "medians are quoted, and the tools were interleaved so that load hits them alike.",
        "",
        "What is timed (model built once on the CPU, eval mode, batch 1, native input size): "
        "cnnbench = `profile_static(model, input_size=...)`, the default call (meta device; params, MACs, "
        "FLOPs, per-stage costs, inference and training activation memory); fvcore = "
        "`FlopCountAnalysis(model, (x,)).total()`; thop = `thop.profile(model, inputs=(x,), "
        "verbose=False)`; FlopCounterMode = `with FlopCounterMode(display=False): model(x)` "
        "under `no_grad`. The last three on a real CPU tensor x, as their users run them. "
        f"One warm-up call each, then {repeats} rounds, the tool order rotated every round; "
        "median seconds per call. Ratio = cnnbench / the fastest other tool (<= 1: cnnbench "
        "is at least as fast). With several threads the real-tensor tools also suffer from "
        "contention with the neighbours; the one-thread table is the harder comparison.",
        "",
    ]


def table(results: dict[str, dict[str, Any]], threads: int) -> tuple[list[str], float]:
    """The speed table at one thread setting, and its worst ratio."""
    lines = [
        f"## {threads} intra-op thread{'s' if threads > 1 else ''}",
        "",
        "| model | input | cnnbench (s) | fvcore (s) | thop (s) | FlopCounterMode (s) "
        "| fastest other | ratio | verdict |",
        "|---|---|---:|---:|---:|---:|---|---:|---|",
    ]
    worst = 0.0
    for name, r in results.items():
        med = {t: statistics.median(v) for t, v in r["samples"].items()}
        fastest = min(OTHERS, key=med.__getitem__)
        ratio = med["cnnbench"] / med[fastest]
        worst = max(worst, ratio)
        lines.append(
            f"| {name} | {r['input']} | **{med['cnnbench']:.4f}** | {med['fvcore']:.4f} | "
            f"{med['thop']:.4f} | {med['FlopCounterMode']:.4f} | {fastest} | {ratio:.2f} | "
            f"{'meets' if ratio <= 1 else 'MISSES'} |"
        )
    lines += [
        "",
        f"**Worst ratio at {threads} thread(s): {worst:.2f}** (target <= 1 for every model: "
        f"{'met' if worst <= 1 else 'NOT met'}).",
        "",
    ]
    return lines, worst


def counts_and_samples(runs: dict[int, dict[str, dict[str, Any]]]) -> list[str]:
    first = next(iter(runs.values()))
    lines = [
        "## Counts (from the warm-up calls)",
        "",
        "MACs; FlopCounterMode's FLOPs halved. They show that the tools count the same network: "
        "cnnbench and FlopCounterMode count conv + matmul MACs; fvcore adds BatchNorm and "
        "adaptive pooling, thop BatchNorm, pooling and some activations.",
        "",
        "| model | cnnbench | fvcore | thop | FlopCounterMode / 2 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, r in first.items():
        c = r["counts"]
        lines.append(
            f"| {name} | {c['cnnbench']:,} | {c['fvcore']:,} | {c['thop']:,} | "
            f"{c['FlopCounterMode'] // 2:,} |"
        )
    lines += ["", "## All samples (seconds, in round order)", ""]
    for threads, results in runs.items():
        for name, r in results.items():
            for tool, values in r["samples"].items():
                values_text = ", ".join(f"{v:.4f}" for v in values)
                lines.append(f"- {threads} thread(s), {name} / {tool}: {values_text}")
    return lines


def _load() -> str:
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--threads", default=f"1,{DEFAULT_THREADS}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    threads = list(dict.fromkeys(int(t) for t in args.threads.split(",")))
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    start = _load()
    runs = {}
    for n in threads:
        torch.set_num_threads(n)
        print(f"-- {n} thread(s)", file=sys.stderr, flush=True)
        runs[n] = bench(tuple(args.models.split(",")), args.repeats)
    torch.set_num_threads(DEFAULT_THREADS)
    lines = header(args.repeats, (start, _load()), threads)
    for n, results in runs.items():
        lines += table(results, n)[0]
    text = "\n".join(lines + counts_and_samples(runs)) + "\n"
    atomic_write_text(args.out, text)
    print(text)
    print(f"written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
