"""Hostile sweeps: wrongly typed sweep files, bad or unreachable Ray addresses, and a sweep
stopped by SIGTERM or SIGHUP. Each case asserts the exit code, the one line and what is left
on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _sweep(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "s.toml"
    memory = "" if body.startswith("cpu_memory") else "cpu_memory = false\n"
    path.write_text(f'[sweep]\nmodels = ["lenet5"]\nbudget = 0.05\n{memory}{body}\n')
    return path


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ('compile = "no"', "sweep.compile: compile must be true or false (a boolean), got 'no'"),
        ("train = 1", "sweep.train: train must be true or false (a boolean), got 1"),
        ('cpu_memory = "false"', "sweep.cpu_memory: cpu_memory must be true or false"),
        ("pool = 5", "sweep.pool: expected an array of tables, got 5; e.g. [[sweep.pool]]"),
        (
            '[[sweep.pool]]\nname = "a"\nresources = "abc"',
            "sweep.pool[0].resources: expected a table of resource names to non-negative "
            "numbers, got 'abc'",
        ),
        ("[[sweep.pool]]\nresources = { CPU = -2 }", "sweep.pool[0].resources: expected"),
        ("[[sweep.pool]]\nname = 7", "sweep.pool[0].name: expected a string, got 7"),
        ("[[sweep.pool]]\ncpus = 7", "sweep.pool[0].cpus: unknown key; known: name, resources"),
    ],
)
def test_wrongly_typed_sweep_file(body: str, line: str, tmp_path: Path, run_cli) -> None:
    path = _sweep(tmp_path, body)
    code, stdout, stderr = run_cli("sweep", str(path), "--out", str(tmp_path / "o"))
    assert code == 2 and stdout == ""
    assert line in _one_line(stderr) and str(path) in stderr
    assert not (tmp_path / "o").exists()  # nothing measured, nothing written


def test_a_malformed_address_is_one_line(tmp_path: Path, run_cli) -> None:
    path = _sweep(tmp_path, "")
    code, _, stderr = run_cli(
        "sweep", str(path), "--executor", "ray", "--address", "::::", "--out", str(tmp_path / "o")
    )
    assert code == 2
    assert "--address '::::': not a Ray cluster address; use HOST:PORT" in _one_line(stderr)
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_an_unreachable_address_ends_at_once_in_one_line(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = _sweep(tmp_path, "")
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "cnnbench", "sweep", str(path), "--executor", "ray",
         "--address", "127.0.0.1:1", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=_env(),
    )  # fmt: skip
    took = time.monotonic() - start
    assert done.returncode == 2 and took < 60, (took, done.stderr)
    assert "--address 127.0.0.1:1: cannot reach a Ray cluster there" in _one_line(done.stderr)
    assert not (tmp_path / "o").exists()


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_sweep_keeps_finished_tasks_and_exits_143(
    signum: signal.Signals, tmp_path: Path
) -> None:
    """Three lenet5 tasks (32 px, its native size); the signal arrives once the first task's rows are out:
    exit 143 and ``sweep-s-incomplete.json`` holding (at least) the first task's rows."""
    path = tmp_path / "s.toml"
    path.write_text(
        '[sweep]\nmodels = ["lenet5", "lenet5", "lenet5"]\nbatch = [1, 2]\n'
        "budget = 0.5\nthreads = 1\ncpu_memory = false\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnbench", "sweep", str(path), "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=_env(),
    )  # fmt: skip
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.startswith("[1/3 tasks]") and sum(s.startswith("[1/3") for s in seen) == 2:
            break
    proc.send_signal(signum)
    _, rest = proc.communicate(timeout=120)
    stderr = "".join(seen) + rest
    assert proc.returncode == 143, stderr
    assert "Traceback" not in stderr and "terminated:" in stderr
    kept = json.loads((tmp_path / "o" / "sweep-s-incomplete.json").read_text())
    assert kept["complete"] is False
    rows = kept["results"]
    assert 2 <= len(rows) < 6  # the first task's two configurations, not the whole sweep
    assert [(r["model"], r["batch_size"]) for r in rows[:2]] == [("lenet5", 1), ("lenet5", 2)]
    assert all(r["status"] == "ok" and r["latency_ms_median"] > 0 for r in rows)
    assert not (tmp_path / "o" / "sweep-s.json").exists()  # no run claiming to be complete
