"""Signals in the middle of a configuration: every sample measured so far is kept.

``compare`` times all models of a configuration interleaved, so before this an interrupt in
the middle of one kept no row at all. Here the CLI runs as a user's process, is stopped by
SIGTERM, SIGINT or SIGHUP while it is in its timing rounds, and must leave a loadable
``*-incomplete.json`` with a row per model, each holding the samples it had.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from cnnbench.errors import Interrupted, Terminated, signals_as_exceptions
from cnnbench.results import load_run

# A tiny model that announces how many calls it has run (in a file) and whose time per
# call varies once it is warm, so its median never settles within the budget: the rounds
# run on until the signal comes.
SLOW = """
import os, random, time
import torch
from torch import nn


class Slow(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(0.003 if self.calls < 40 else random.uniform(0.002, 0.03))
        if self.calls % 5 == 0:
            with open(os.environ["SLOW_CALLS"], "w") as f:
                f.write(str(self.calls))
        return self.fc(x.flatten(1)[:, :4])
"""

# Calls of the slow model after which its timing rounds have surely begun (the counted
# forward, the first call, warm-up and its estimate take fewer than half of them).
_IN_ROUNDS_CALLS = 100


def _calls(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def _stop_mid_configuration(tmp_path: Path, sig: signal.Signals) -> tuple[int, str, Path]:
    """Start ``compare lenet5 slow.py:Slow``, send ``sig`` about 2 s into its timing rounds;
    (exit code, stderr, output folder)."""
    (tmp_path / "slow.py").write_text(SLOW)
    calls, out = tmp_path / "calls.txt", tmp_path / "out"
    env = {**os.environ, "SLOW_CALLS": str(calls)}
    args = [
        sys.executable, "-m", "cnnbench", "compare", "lenet5", f"{tmp_path / 'slow.py'}:Slow",
        "--input-size", "1,32,32", "--budget", "20", "--threads", "1", "--no-memory",
        "--out", str(out),
        "-f", "json",
    ]  # fmt: skip
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while _calls(calls) < _IN_ROUNDS_CALLS:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow model never reached its rounds"
            time.sleep(0.05)
        time.sleep(2.0)
        assert proc.poll() is None, "the run ended before the signal"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, stderr, out


_SLOW = pytest.mark.slow  # ~9-20 s each (a real process, its rounds, a signal): the slow suite


@pytest.mark.parametrize(
    ("sig", "code", "word"),
    [
        pytest.param(signal.SIGTERM, 143, "terminated", id="SIGTERM", marks=_SLOW),
        pytest.param(signal.SIGINT, 130, "interrupted", id="SIGINT", marks=_SLOW),
        pytest.param(
            getattr(signal, "SIGHUP", signal.SIGTERM),
            143,
            "terminated",
            id="SIGHUP",
            marks=[_SLOW, pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP")],
        ),
    ],
)
def test_a_signal_mid_configuration_keeps_every_models_samples(
    tmp_path: Path, sig: signal.Signals, code: int, word: str
) -> None:
    returncode, stderr, out = _stop_mid_configuration(tmp_path, sig)
    assert returncode == code, stderr
    assert "Traceback" not in stderr
    kept = list(out.glob("*-incomplete.json"))
    assert len(kept) == 1, (stderr, list(out.iterdir()) if out.exists() else None)
    assert f"{word}: 2 result(s) kept in {kept[0]}" in stderr
    run = load_run(kept[0])
    assert run.complete is False
    rows = {r.model: r for r in run.results}
    assert set(rows) == {"lenet5", "Slow"}
    for r in rows.values():
        assert r.status == "ok", r.error
        # every sample the rounds took is in the row, and the statistics come from them
        assert r.timed_iters == len(r.samples_ms) > 0
        assert r.latency_ms_median is not None and r.latency_ms_median > 0
        assert r.rounds is not None and r.rounds >= 1
        assert r.stable is False and r.stop_reason == "interrupted"
        assert f"interrupted after {r.rounds} round(s), {r.timed_iters} sample(s)" in r.notes
    # the slow model sleeps at least 2 ms per call: its samples say so
    assert min(rows["Slow"].samples_ms) >= 2.0
    # ratios pair the rounds both models completed
    assert rows["Slow"].latency_ratio is not None


def test_sighup_raises_terminated_inside_the_handlers() -> None:
    if not hasattr(signal, "SIGHUP"):
        pytest.skip("no SIGHUP on this platform")
    before = signal.getsignal(signal.SIGHUP)
    with pytest.raises(Terminated), signals_as_exceptions():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(1)  # the handler raises at the next bytecode
    assert signal.getsignal(signal.SIGHUP) == before  # put back on the way out
    with pytest.raises(Interrupted), signals_as_exceptions():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


class _StopsTheRun(torch.nn.Module):
    """Ctrl-C as the Python API meets it: a KeyboardInterrupt at the ``stop_at``-th call
    (outside cnnbench's signal handlers a KeyboardInterrupt is the user's), in the middle of
    the timing rounds; its time per call varies so the rounds do not end on their own."""

    def __init__(self, stop_at: int) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)
        self.calls, self.stop_at = 0, stop_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.stop_at:
            raise KeyboardInterrupt
        time.sleep(0.002 if self.calls < 40 else random.uniform(0.002, 0.02))
        return self.fc(x.flatten(1)[:, :4])


@pytest.mark.slow
def test_ctrl_c_in_the_python_api_returns_the_interrupted_configurations_rows() -> None:
    from cnnbench import api

    model = _StopsTheRun(stop_at=150)
    run = api.compare(
        ["lenet5", model], input_size=(1, 32, 32), budget=20, cpu_memory=False, threads=1
    )
    assert run.complete is False
    rows = {r.model: r for r in run.results}
    assert set(rows) == {"lenet5", "_StopsTheRun"}
    for r in rows.values():
        assert r.status == "ok" and r.stop_reason == "interrupted" and r.stable is False
        assert r.timed_iters == len(r.samples_ms) > 0
        assert f"{r.timed_iters} sample(s)" in r.notes
    # the block the interrupt cut is lost, every finished one is kept
    assert rows["_StopsTheRun"].timed_iters < model.calls


def test_a_signal_while_writing_the_reports_keeps_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import typer

    from cnnbench import report
    from cnnbench.cli.main import _emit
    from cnnbench.results import Result, Run

    def killed(*args: object, **kwargs: object) -> None:
        raise Terminated()  # what SIGTERM raises inside cnnbench's handlers

    monkeypatch.setattr(report, "write_reports", killed)
    run = Run(results=[Result(model="lenet5", params=61706)], environment={}, config={})
    with pytest.raises(typer.Exit) as exit_:
        _emit(run, ["json"], tmp_path, "compare-lenet5", baseline=None, quiet=True)
    assert exit_.value.exit_code == 143
    kept = load_run(tmp_path / "compare-lenet5-incomplete.json")
    assert [r.params for r in kept.results] == [61706]
    assert kept.complete is True  # the measurement was complete; the reports were not
