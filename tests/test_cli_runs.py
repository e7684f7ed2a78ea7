"""Timed runs through the command line, in process: profile end to end, a timed compare,
the interrupt and failure paths (what is kept on disk), and a user model whose display name
collides with a zoo model."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from cnnbench import api

FAST = ["--device", "cpu", "--threads", "1", "--budget", "0.1"]
NO_MEMORY = [*FAST, "--no-memory"]  # where CPU peak memory is not the point

TINY = """
from torch import nn

def resnet18():
    # a user's own 'resnet18': 2 convolutions, nothing like the zoo's 11.7 M parameters
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
    )
"""


@pytest.fixture
def net_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(TINY)
    return path


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_profile_end_to_end_writes_every_format(tmp_path: Path, monkeypatch, run_cli) -> None:
    code, stdout, stderr = run_cli(
        "profile", "lenet5", *FAST, "--out", str(tmp_path), "-f",
        "table,json,md,csv,html",
    )  # fmt: skip
    assert code == 0, stderr
    for text in ("stages at 1x32x32", "counters side by side", "activation memory", "Latency"):
        assert text in stdout
    (run_file,) = tmp_path.glob("*.json")
    row = json.loads(run_file.read_text())["results"][0]
    assert row["model"] == "lenet5" and row["params"] == 61_706 and row["status"] == "ok"
    assert row["latency_ms_median"] > 0 and row["timed_iters"] == len(row["samples_ms"])
    assert row["peak_memory_bytes"] is not None  # CPU peak RSS of the memory child
    assert all(s["time_ms"] is not None for s in row["stages"])
    assert {p.suffix for p in tmp_path.iterdir()} >= {".json", ".md", ".csv", ".html", ".svg"}
    assert not [n for n in _files(tmp_path) if n.startswith(".")]  # no temporary files left


@pytest.mark.slow
def test_timed_compare_of_a_zoo_model_and_a_user_file(
    tmp_path: Path, net_file: Path, monkeypatch, run_cli
) -> None:
    code, stdout, stderr = run_cli(
        "compare", "lenet5", f"{net_file}:resnet18", *NO_MEMORY, "--json",
        "--resolution", "32", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, stderr
    rows = json.loads(stdout)["results"]
    assert [r["model"] for r in rows] == ["lenet5", "resnet18"]
    assert all(r["status"] == "ok" and r["latency_ms_median"] > 0 for r in rows)
    assert all(r["peak_memory_bytes"] is None for r in rows)  # --no-memory: no child run
    mine = rows[1]
    assert mine["family"] == "custom"
    assert mine["params"] == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 10 + 10)
    # an nn.Sequential: its children are timed one after another, with a note saying so
    assert "per top-level module" in (mine["notes"] or "")
    assert [s["name"] for s in mine["stages"]] == [str(i) for i in range(6)]
    assert all(s["time_ms"] is not None for s in mine["stages"])


@pytest.mark.slow
def test_name_collision_measures_the_users_network(
    tmp_path: Path, net_file: Path, monkeypatch, run_cli
) -> None:
    """CPU peak memory of ``net.py:resnet18`` is the user's network: the zoo's resnet18 holds
    11,689,512 fp32 weights (46.8 MB) before any activation; the user's holds 898."""
    code, stdout, stderr = run_cli(
        "compare", f"{net_file}:resnet18", "resnet18", *FAST, "--json", "--resolution", "32",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, stderr
    mine, zoo = json.loads(stdout)["results"]
    assert mine["params"] == (3 * 8 * 9 + 8) + (8 * 8 * 9 + 8) + (8 * 10 + 10) == 898
    assert zoo["params"] == 11_689_512
    assert mine["peak_memory_bytes"] is not None and zoo["peak_memory_bytes"] is not None
    # Both include the same interpreter/allocator overhead of the memory child (8-25 MB,
    # depending on the environment); the zoo model's weights alone make the difference.
    assert zoo["peak_memory_bytes"] - mine["peak_memory_bytes"] > 0.8 * 11_689_512 * 4


# Each configuration is measured by one measure_config call (all models interleaved), so
# "the second call" below is the second configuration (--batch 1,2).
@pytest.mark.parametrize(
    ("raised", "code", "word"),
    [(KeyboardInterrupt, 130, "interrupted"), ("sigterm", 143, "terminated")],
)
def test_interrupt_keeps_the_rows_measured_so_far(
    raised: object, code: int, word: str, tmp_path: Path, monkeypatch, run_cli
) -> None:
    real = api.measure_config
    calls = []

    def second_call_interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            if raised == "sigterm":
                signal.raise_signal(signal.SIGTERM)
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "measure_config", second_call_interrupted)
    got, _, stderr = run_cli(
        "compare", "lenet5", "--batch", "1,2", *NO_MEMORY, "--out", str(tmp_path), "-f", "json",
    )  # fmt: skip
    assert got == code, stderr
    assert word in stderr and "1 result(s) kept" in stderr
    assert _files(tmp_path) == ["compare-lenet5-incomplete.json"]
    run = json.loads((tmp_path / "compare-lenet5-incomplete.json").read_text())
    assert run["complete"] is False and len(run["results"]) == 1
    assert run["results"][0]["latency_ms_median"] > 0


def test_error_after_the_first_row_keeps_it(tmp_path: Path, monkeypatch, run_cli) -> None:
    from cnnbench.errors import UsageError

    real = api.measure_config
    calls = []

    def second_call_fails(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise UsageError("boom: the second configuration cannot run")
        return real(*args, **kwargs)

    monkeypatch.setattr(api, "measure_config", second_call_fails)
    code, _, stderr = run_cli(
        "compare", "lenet5", "--batch", "1,2", *NO_MEMORY, "--out",
        str(tmp_path),
    )  # fmt: skip
    assert code == 2
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert (
        len(errors) == 1 and "boom" in errors[0] and "1 result(s) measured before kept" in errors[0]
    )
    assert "Traceback" not in stderr
    assert _files(tmp_path) == ["compare-lenet5-incomplete.json"]


def test_a_typo_in_the_last_model_is_found_before_measuring(
    tmp_path: Path, monkeypatch, run_cli
) -> None:
    measured = []
    monkeypatch.setattr(api, "measure_config", lambda *a, **k: measured.append(1))
    code, _, stderr = run_cli("compare", "lenet5", "resnet5O", *FAST, "--out", str(tmp_path))
    assert code == 2 and "did you mean resnet50" in stderr
    assert measured == [] and not tmp_path.exists() or _files(tmp_path) == []


def test_profile_loads_once_and_counts_once_per_resolution(
    tmp_path: Path, monkeypatch, run_cli
) -> None:
    """`profile se_resnet50 --static-only` builds the model once and runs the dispatch counter
    once for it (the counter table and the SE analysis reuse that count), plus the one build
    and count of the SE analysis's baseline without SE."""
    from cnnbench import spec
    from cnnbench.static import backends, profile

    builds: list[str] = []
    counts: list[str] = []
    real_load, real_count = spec.load_model, profile.count_dispatch

    def load_model(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        builds.append(name)
        return real_load(name, *args, **kwargs)

    def count_dispatch(model, *args, **kwargs):  # type: ignore[no-untyped-def]
        counts.append(type(model).__name__)
        return real_count(model, *args, **kwargs)

    monkeypatch.setattr(spec, "load_model", load_model)
    monkeypatch.setattr(profile, "count_dispatch", count_dispatch)
    monkeypatch.setattr(backends, "count_dispatch", count_dispatch)
    code, _, stderr = run_cli("profile", "se_resnet50", "--static-only", "--out", str(tmp_path))
    assert code == 0, stderr
    assert builds == ["se_resnet50"]  # the SE baseline is built by the zoo, not from a spec
    assert len(counts) == 2  # the model once, its no-SE baseline once


def test_a_plain_module_is_timed_with_a_note(tmp_path: Path, run_cli) -> None:
    (tmp_path / "branchy.py").write_text(
        "from torch import nn\n"
        "class Branchy(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.a = nn.Conv2d(3, 4, 3, padding=1)\n"
        "        self.b = nn.Conv2d(3, 4, 1)\n"
        "    def forward(self, x):\n"
        "        return self.a(x) + self.b(x)\n"
    )
    code, stdout, stderr = run_cli(
        "compare",
        f"{tmp_path / 'branchy.py'}:Branchy",
        *NO_MEMORY,
        "--json",
        "--out",
        str(tmp_path),
    )
    assert code == 0, stderr
    (row,) = json.loads(stdout)["results"]
    assert row["status"] == "ok" and row["latency_ms_median"] > 0
    assert "no named stages" in row["notes"]
