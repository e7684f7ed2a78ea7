"""Loading a large saved run: ``load_run`` on a run of N small rows (default 10^6, ~40 MB).

Each row is ``{"model": "m", "params": 1, "macs": 2}`` (every other field takes its default),
so the time is what the loader costs per row: JSON parsing, the schema check of each field,
and building the records. Wall and CPU seconds are reported with the load average: the
machine is shared, so CPU time is the steadier figure. Target: linear in N, seconds rather
than minutes for 10^6 rows (the per-row ``typing.get_type_hints`` it replaced cost ~4 ms a
row, about an hour for 10^6).

Usage: ``.venv/bin/python benchmarks/bench_load.py [--rows 1000000] [--out FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from cnnbench.results import atomic_write_text, load_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = ["# Loading a large saved run", ""]
    lines.append(f"Command: `python benchmarks/bench_load.py --rows {args.rows}`")
    lines.append("")
    lines.append(
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}. Date: {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC."
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.json"
        row = {"model": "m", "params": 1, "macs": 2}
        path.write_text(json.dumps({"schema_version": 2, "results": [row] * args.rows}))
        size = path.stat().st_size
        start_load = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        run = load_run(path)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert len(run.results) == args.rows
    end_load = os.getloadavg()
    lines += [
        "",
        f"Load average (1, 5, 15 min): at the start {', '.join(f'{v:.2f}' for v in start_load)};"
        f" at the end {', '.join(f'{v:.2f}' for v in end_load)}.",
        "",
        "| rows | file | wall (s) | CPU (s) | CPU per row (µs) |",
        "|---:|---:|---:|---:|---:|",
        f"| {args.rows:,} | {size / 1e6:.1f} MB | {wall:.1f} | {cpu:.1f} "
        f"| {cpu / args.rows * 1e6:.1f} |",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        atomic_write_text(args.out, text)


if __name__ == "__main__":
    main()
