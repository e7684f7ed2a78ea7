"""The gate measures through the engine: a forward that never returns, a non-finite output and
an out-of-memory error end ``gate ab`` / ``gate check`` with exit 2 and one line naming the
engine's status, within the call timeout; the schedule orders blocks A B / B A."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cnnbench.runtime import Entry, RuntimeConfig, Schedule, measure_config

CLI = Callable[..., tuple[int, str, str]]

# Same layers as lenet5 (the deterministic metrics agree, so the gate goes on to time it);
# the forward returns on the meta device (counting) and misbehaves on real tensors.
LENET_LIKE = """
import time
import torch
from torch import nn
from cnnbench.models import create_model


class _LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = create_model("lenet5")
        self.model_info = self.net.model_info


class Forever(_LeNet):
    def forward(self, x):
        while x.device.type != "meta":
            time.sleep(0.05)
        return self.net(x)


class Always(_LeNet):
    def forward(self, x):
        while True:
            time.sleep(0.05)


class NaN(_LeNet):
    def forward(self, x):
        y = self.net(x)
        return y if x.device.type == "meta" else y * float("nan")


class OOM(_LeNet):
    def forward(self, x):
        if x.device.type != "meta":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return self.net(x)
"""

FAST = ("--budget", "0.4", "--threads", "1", "--no-memory", "-q", "--device", "cpu")


def _one_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(LENET_LIKE)
    return tmp_path


def test_gate_ab_with_a_forward_that_never_returns_ends_within_the_call_timeout(
    models: Path, run_cli: CLI
) -> None:
    started = time.perf_counter()
    code, out, err = run_cli(
        "gate", "ab", "--baseline", "lenet5", "--candidate", "bad.py:Forever",
        "--call-timeout", "1", *FAST,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert code == 2 and out == ""
    _one_line(err, "gate: error:", "Forever", "timeout", "did not return within 1 s")
    assert elapsed < 20  # the default limit is 60 s per call: the option was applied


@pytest.mark.slow
def test_gate_check_with_a_forward_that_never_returns_ends_within_the_call_timeout(
    models: Path, run_cli: CLI
) -> None:
    (models / "gate.toml").write_text(
        "[tool.cnnbench.gate]\nmodels = ['bad.py:Forever']\nrounds = 3\ncalibration_s = 0.2\n"
    )
    same_but_returns = (
        "class Forever(_LeNet):\n    def forward(self, x):\n        return self.net(x)\n"
    )
    (models / "ok.py").write_text(LENET_LIKE.split("class Forever")[0] + same_but_returns)
    code, _, err = run_cli(
        "gate", "save", "--config", "gate.toml", "-m", "ok.py:Forever", "-o", "base.json", *FAST
    )
    assert code == 0, err
    started = time.perf_counter()
    code, out, err = run_cli(
        "gate", "check", "--config", "gate.toml", "--baseline", "base.json",
        "--call-timeout", "1", *FAST,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    assert code == 2 and out == ""
    _one_line(err, "gate: error:", "Forever", "timeout", "did not return within 1 s")
    assert elapsed < 20


@pytest.mark.slow
def test_gate_counts_with_the_static_time_limit_of_every_command(
    models: Path, run_cli: CLI, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnbench import api

    monkeypatch.setattr(api, "STATIC_CALL_LIMIT_S", 5.0)
    code, out, err = run_cli(
        "gate", "ab", "--baseline", "lenet5", "--candidate", "bad.py:Always", *FAST
    )
    assert code == 2 and out == ""
    _one_line(err, "Always", "counting did not finish within 5 s")


@pytest.mark.parametrize(
    ("candidate", "needles"),
    [
        ("bad.py:NaN", ("nonfinite", "NaN or inf")),
        ("bad.py:OOM", ("oom", "out of memory", "smaller batch")),
    ],
)
def test_gate_ab_a_nan_or_oom_candidate_gets_its_status_not_a_pass(
    models: Path, run_cli: CLI, candidate: str, needles: tuple[str, ...]
) -> None:
    code, out, err = run_cli("gate", "ab", "--baseline", "lenet5", "--candidate", candidate, *FAST)
    assert code == 2 and out == ""
    _one_line(err, "gate: error:", *needles)


@pytest.mark.slow
def test_alternating_schedule_orders_blocks_a_b_then_b_a_and_keeps_each_block() -> None:
    log: list[str] = []

    def maker(name: str) -> Callable[[], Callable[[], None]]:
        def make() -> Callable[[], None]:
            log.append(f"{name}:new")
            return lambda: log.append(name)

        return make

    entries = [Entry.of_callable("A", maker("A")), Entry.of_callable("B", maker("B"))]
    schedule = Schedule(order="alternating", rounds=4, warmup_s=0.001, min_block_calls=3)
    config = RuntimeConfig(device="cpu", budget_s=0.2)
    rows = measure_config(entries, config, cpu_memory=False, schedule=schedule)
    blocks = [item.split(":")[0] for item in log if item.endswith(":new")]
    # one fresh callable per entry at start, then one per block in the schedule's order
    assert blocks == ["A", "B", "A", "B", "B", "A", "A", "B", "B", "A"]
    for e, row in zip(entries, rows, strict=True):
        m = e.measurement
        assert len(m.blocks) == 4 and all(len(b) >= 3 for b in m.blocks)
        assert row.timed_iters == sum(len(b) for b in m.blocks) == len(row.samples_ms)
        assert row.rounds == 4 and row.stable is None  # fixed rounds: not judged
    # a paired ratio exists for B against A, from the per-block medians
    assert rows[1].latency_ratio is not None


@pytest.mark.slow
def test_rewarm_runs_one_untimed_call_per_block() -> None:
    counts: list[int] = []  # calls of each fresh callable; one is made per block

    def make() -> Callable[[], None]:
        counts.append(0)
        i = len(counts) - 1

        def step() -> None:
            counts[i] += 1

        return step

    entry = Entry.of_callable("A", make)
    schedule = Schedule(order="alternating", rounds=5, rewarm=True, warmup_s=0.001)
    measure_config([entry], RuntimeConfig(device="cpu"), cpu_memory=False, schedule=schedule)
    blocks = entry.measurement.blocks
    assert len(blocks) == 5 and len(counts) == 1 + 5  # the first serves start and warm-up
    assert counts[1:] == [len(b) + 1 for b in blocks]
