"""Sweeps (local and on a real local Ray cluster) and one report from many machines' runs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cnnbench import sweep as sweeps
from cnnbench.errors import Interrupted, UsageError
from cnnbench.results import Result, Run, load_run, merge_runs

SWEEP = """
[sweep]
models = ["lenet5", "{extra}"]
batch = [1, 2]
precision = ["fp32"]
budget = 0.05
threads = 1
cpu_memory = false
"""


@pytest.fixture
def sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(extra="lenet5"))
    return path


@pytest.mark.slow
def test_local_sweep_two_models_two_batches(sweep_file: Path, tmp_path: Path, run_cli) -> None:
    code, _, stderr = run_cli("sweep", str(sweep_file), "--out", str(tmp_path / "o"), "-f", "json")
    assert code == 0, stderr
    run = load_run(tmp_path / "o" / "sweep-s.json")  # the merged run loads again
    assert [(r.model, r.batch_size) for r in run.results] == [
        ("lenet5", 1), ("lenet5", 2), ("lenet5", 1), ("lenet5", 2),
    ]  # fmt: skip
    assert all(r.status == "ok" and r.latency_ms_median > 0 and r.machine for r in run.results)


@pytest.mark.slow
def test_a_failing_task_is_a_row(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(SWEEP.format(extra=f"{tmp_path / 'broken.py'}:net"))
    (tmp_path / "broken.py").write_text("raise RuntimeError('no such net')\n")
    run, stopped = sweeps.run_local(sweeps.load_sweep(path))
    assert stopped is None and run.complete
    ok = [r for r in run.results if r.status == "ok"]
    failed = [r for r in run.results if r.status == "error"]
    assert len(ok) == 2 and len(failed) == 2
    assert all("no such net" in (r.error or "") for r in failed)


@pytest.mark.slow
def test_an_interrupted_sweep_keeps_its_finished_rows(
    sweep_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    real, calls = sweeps.run_task, []

    def second_interrupted(task, spec, kept=None):  # type: ignore[no-untyped-def]
        calls.append(task)
        if len(calls) == 2:
            raise Interrupted  # what cnnbench's SIGINT handler raises
        return real(task, spec, kept)

    monkeypatch.setattr(sweeps, "run_task", second_interrupted)
    code, _, stderr = run_cli("sweep", str(sweep_file), "--out", str(tmp_path / "o"))
    assert code == 130 and "2 row(s) kept" in stderr
    kept = json.loads((tmp_path / "o" / "sweep-s-incomplete.json").read_text())
    assert kept["complete"] is False and len(kept["results"]) == 2


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[sweep]\nbatch = [1]\n", "sweep.models: missing"),
        ('[sweep]\nmodels = ["lenet5"]\nbudget = "fast"\n', "sweep.budget"),
        ('[sweep]\nmodels = ["lenet5"]\nbatch = ["one"]\n', "sweep.batch"),
        ('[sweep]\nmodels = ["lenet5"]\ncolour = 1\n', "sweep.colour: unknown key"),
        ('[sweep]\nmodels = ["lenet5"]\nprecision = ["fp8"]\n', "unknown precision"),
        ("models = 1\n", "no [sweep] table"),
    ],
)
def test_sweep_files_are_checked_before_running(body: str, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        sweeps.load_sweep(path)


@pytest.mark.slow
def test_ray_sweep_on_a_real_local_cluster(sweep_file: Path, tmp_path: Path) -> None:
    """A real local Ray cluster of 2 CPUs (no mock), on 127.0.0.1 only: each task asks for
    both CPUs, so the two timing tasks run one after the other; 2 models x 2 batch sizes =
    4 rows."""
    ray = pytest.importorskip("ray")
    spec = sweeps.load_sweep(sweep_file)
    listening: list[list[str]] = []
    run, stopped = sweeps.run_ray(
        spec, num_cpus=2, on_run=lambda run, task: listening.append(_ray_listeners())
    )
    assert stopped is None and run.complete and not ray.is_initialized()
    if shutil.which("ss"):  # every port of the local cluster on the loopback address only
        assert listening and all(listening), "no Ray listener seen"
        local = [line.split()[3] for lines in listening for line in lines]
        assert all(a.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")) for a in local), local
    assert sorted((r.model, r.batch_size) for r in run.results) == [
        ("lenet5", 1), ("lenet5", 1), ("lenet5", 2), ("lenet5", 2),
    ]  # fmt: skip
    assert all(r.status == "ok" and r.latency_ms_median > 0 for r in run.results)


_RAY_PROCESSES = ("gcs_server", "raylet", "ray::", "default_worker", "dashboard", "monitor")


def _ray_listeners() -> list[str]:
    """``ss -ltnp`` lines of this machine's listening TCP sockets held by Ray's processes
    or by this (driver) process."""
    if not shutil.which("ss"):
        return []
    lines = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout.splitlines()
    me = f"pid={os.getpid()},"
    return [ln for ln in lines if me in ln or any(f'"{p}' in ln for p in _RAY_PROCESSES)]


def _run(host: str, latencies: dict[str, float]) -> Run:
    env = {"host": host, "device_name": f"{host} CPU", "torch": "2.13.0"}
    rows = [Result(model=m, latency_ms_median=v, params=1) for m, v in latencies.items()]
    return Run(results=rows, environment=env)


def test_merge_of_two_machines(tmp_path: Path, run_cli) -> None:
    a = _run("alpha", {"m1": 10.0, "m2": 20.0}).save(tmp_path / "a.json")
    b = _run("beta", {"m1": 40.0, "m2": 60.0}).save(tmp_path / "b.json")
    code, _, stderr = run_cli(
        "report", str(a), str(b), "--out", str(tmp_path / "r"), "-f", "md,html,json,csv"
    )
    assert code == 0, stderr
    merged = load_run(tmp_path / "r" / "merged.json")
    assert {r.machine for r in merged.results} == {
        "alpha · alpha CPU · torch 2.13.0", "beta · beta CPU · torch 2.13.0",
    }  # fmt: skip
    md = (tmp_path / "r" / "merged.md").read_text()
    assert "## Machines" in md and "| m2 |" in md
    # timed ratios only from each machine's paired measurement, never a quotient of medians
    # (never 60/10 across machines, nor 20/10 within one: these rows were not timed paired)
    import dataclasses

    from cnnbench.report.files import relative_to

    ratios = [row["latency_x"] for row in relative_to(merged.results)]
    assert ratios == [1.0, None, 1.0, None]
    paired = [
        dataclasses.replace(r, latency_ratio=x) if x else r
        for r, x in zip(merged.results, [None, 1.9, None, 1.4], strict=True)
    ]
    assert [row["latency_x"] for row in relative_to(paired)] == [1.0, 1.9, 1.0, 1.4]
    assert "<h2>Machines</h2>" in (tmp_path / "r" / "merged.html").read_text()
    assert (tmp_path / "r" / "merged-machines.svg").exists()


def test_merge_refuses_an_incompatible_schema_in_one_line(tmp_path: Path, run_cli) -> None:
    a = _run("alpha", {"m1": 10.0}).save(tmp_path / "a.json")
    (tmp_path / "old.json").write_text('{"schema_version": 99, "results": []}')
    code, _, stderr = run_cli("report", str(a), str(tmp_path / "old.json"))
    assert code == 2 and "old.json: schema version 99" in stderr and "Traceback" not in stderr


def test_merge_keeps_machines_of_merged_runs() -> None:
    once = merge_runs([_run("alpha", {"m": 1.0}), _run("beta", {"m": 2.0})])
    twice = merge_runs([once, _run("gamma", {"m": 3.0})])
    assert len(twice.environment["machines"]) == 3 and len({r.machine for r in twice.results}) == 3
