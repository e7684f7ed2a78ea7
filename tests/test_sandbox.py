"""One model's changes to torch's global state stay with that model.

A model whose forward calls ``torch.set_num_threads(1)``, or whose constructor or forward
calls ``torch.set_default_dtype(torch.float64)``, is measured next to a probe (lenet5 that
records, inside its forward, the thread count and default dtype it runs under): the probe
runs with cnnbench's settings, and the offender's row names what its code changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

from cnnbench import api
from cnnbench.models import create_model
from cnnbench.runtime.sandbox import snapshot, torch_state
from cnnbench.spec import load

OFFENDERS = """
import torch
from torch import nn


class Threads(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        torch.set_num_threads(1)
        return self.fc(x.flatten(1)[:, :8])


class DtypeAtBuild(nn.Module):
    def __init__(self):
        super().__init__()
        torch.set_default_dtype(torch.float64)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(x.flatten(1)[:, :8].to(self.fc.weight.dtype))


class DtypeInForward(Threads):
    def forward(self, x):
        torch.set_default_dtype(torch.float64)
        return self.fc(x.flatten(1)[:, :8])
"""


class Probe(nn.Module):
    """lenet5, recording (threads, default dtype, input dtype, output dtype) per call."""

    seen: ClassVar[list[tuple[int, torch.dtype, torch.dtype, torch.dtype]]] = []

    def __init__(self) -> None:
        super().__init__()
        self.net = create_model("lenet5")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        Probe.seen.append((torch.get_num_threads(), torch.get_default_dtype(), x.dtype, out.dtype))
        return out


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The three offenders and the probe compared at --threads 2 (built in that order)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)  # the process's own setting too: a leaked 1 would show
    folder = tmp_path_factory.mktemp("offenders")
    (folder / "offenders.py").write_text(OFFENDERS)
    before = snapshot()
    offenders = [load(f"{folder / 'offenders.py'}:{n}") for n in ("DtypeAtBuild", "Threads")]
    offenders.append(load(f"{folder / 'offenders.py'}:DtypeInForward"))
    probe = Probe()  # built after DtypeAtBuild's constructor ran
    Probe.seen.clear()
    run = api.compare(
        [*offenders, probe], threads=2, budget=0.3, cpu_memory=False, input_size=(1, 32, 32)
    )
    after = snapshot()
    torch.set_num_threads(threads)
    return {
        "rows": {r.model: r for r in run.results},
        "probe": probe,
        "seen": list(Probe.seen),
        "before": before,
        "after": after,
    }


def test_the_probe_ran_at_two_threads_in_float32_throughout(measured: dict) -> None:
    seen = measured["seen"]
    assert len(seen) > 10  # counted forward, first call, warm-up, blocks
    assert {s[0] for s in seen} == {2}
    assert {s[1:] for s in seen} == {(torch.float32, torch.float32, torch.float32)}
    assert {p.dtype for p in measured["probe"].parameters()} == {torch.float32}
    probe = measured["rows"]["Probe"]
    assert probe.status == "ok" and probe.threads == 2
    assert probe.precision == "fp32"
    assert "global state" not in (probe.notes or "")


def test_the_thread_offender_carries_the_note_and_its_real_thread_count(measured: dict) -> None:
    row = measured["rows"]["Threads"]
    assert row.status == "ok"
    assert "changed torch global state during its timed calls: threads 2 -> 1" in row.notes
    assert row.threads == 1  # what its calls ran with after its own line
    assert "cnnbench's 2 held only until that line ran" in row.notes


def test_the_dtype_offenders_carry_the_note(measured: dict) -> None:
    built = measured["rows"]["DtypeAtBuild"]
    assert "during its build: default_dtype float32 -> float64" in built.notes
    forward = measured["rows"]["DtypeInForward"]
    assert "during its counted forward: default_dtype float32 -> float64" in forward.notes
    assert "during its timed calls: default_dtype float32 -> float64" in forward.notes


def test_nothing_leaks_out_of_the_comparison(measured: dict) -> None:
    assert measured["after"] == measured["before"]
    assert torch.get_default_dtype() == torch.float32


def test_the_static_count_is_sandboxed(tmp_path: Path) -> None:
    (tmp_path / "offenders.py").write_text(OFFENDERS)
    loaded = load(f"{tmp_path / 'offenders.py'}:DtypeInForward")
    prof = api.static_profile(loaded, input_size=(1, 32, 32))
    assert torch.get_default_dtype() == torch.float32
    assert any("counted forward: default_dtype float32 -> float64" in n for n in prof.notes)
    lenet = api.static_profile(api.resolve_model("lenet5"))
    assert lenet.params == 61706 and not lenet.notes  # counted in float32, as before


def test_torch_state_restores_every_knob_and_names_it() -> None:
    before = snapshot()
    with torch_state() as changes:
        torch.set_num_threads(1 if torch.get_num_threads() != 1 else 2)
        torch.set_default_dtype(torch.float64)
        torch.set_grad_enabled(False)
        torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark
        torch.backends.cudnn.deterministic = not torch.backends.cudnn.deterministic
        torch.use_deterministic_algorithms(True)
        torch.set_autocast_enabled("cpu", True)
        torch.set_float32_matmul_precision("medium")
    assert snapshot() == before
    assert set(changes.changed) == {
        "threads", "default_dtype", "grad_enabled", "cudnn_benchmark", "cudnn_deterministic",
        "deterministic_algorithms", "autocast_cpu", "float32_matmul_precision",
    }  # fmt: skip
    text = changes.describe("its forward")
    assert "default_dtype float32 -> float64" in text
    assert "deterministic_algorithms off -> on" in text
    assert not changes.not_restored


def test_torch_state_restores_when_the_code_raises() -> None:
    before = snapshot()
    with pytest.raises(RuntimeError), torch_state() as changes:
        torch.set_default_dtype(torch.float64)
        raise RuntimeError("the model's bug")
    assert snapshot() == before and "default_dtype" in changes.changed
