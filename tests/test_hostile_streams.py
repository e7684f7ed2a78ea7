"""Hostile input, streams: a model that prints keeps its prints off the data cnnbench writes to
stdout (``--json``, ``--out -``); they go to stderr."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.hostile import files

PRINTER = """\
import sys
import torch
from torch import nn
print("PRINTED at import")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        print("PRINTED in __init__")
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        print("PRINTED in forward")
        sys.stdout.write("WRITTEN in forward\\n")
        return self.conv(x)
"""


@pytest.fixture
def printer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "printer.py").write_text(PRINTER)
    return "printer.py:Net"


FAST = ("--resolution", "32", "--budget", "0.2", "--no-memory", "-q")


def test_compare_json_stays_json(printer: str, run_cli) -> None:
    code, out, err = run_cli("compare", "lenet5", printer, "--json", *FAST)
    assert code == 0, err
    data = json.loads(out)  # nothing but the run
    assert [r["model"] for r in data["results"]] == ["lenet5", "Net"]
    assert all(r["status"] == "ok" for r in data["results"])
    for line in ("PRINTED at import", "PRINTED in __init__", "PRINTED in forward", "WRITTEN"):
        assert line in err and line not in out
    assert files(Path.cwd()) == {"printer.py"}  # --json alone writes no file


def test_compare_csv_to_stdout_stays_csv(printer: str, run_cli) -> None:
    code, out, err = run_cli("compare", "lenet5", printer, "--out", "-", "-f", "csv", *FAST)
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["model"] for r in rows] == ["lenet5", "Net"]
    assert "PRINTED" not in out and "PRINTED in forward" in err


def test_profile_json_to_stdout_without_quiet_stays_json(printer: str, run_cli) -> None:
    code, out, err = run_cli(
        "profile", printer, "--out", "-", "-f", "json", "--resolution", "32", "--static-only"
    )
    assert code == 0, err
    assert json.loads(out)["results"][0]["model"] == "Net"  # no static tables before it
    assert "PRINTED in forward" in err


def test_info_json_stays_json(printer: str, run_cli) -> None:
    code, out, err = run_cli("info", printer, "--json", "--resolution", "32")
    assert code == 0, err
    assert json.loads(out)["model"] == "Net" and "PRINTED in __init__" in err


def test_api_compare_prints_nothing_to_stdout(
    printer: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import cnnbench

    run = cnnbench.compare(["lenet5", printer], resolution=32, budget=0.2, cpu_memory=False)
    captured = capsys.readouterr()
    assert [r.status for r in run.results] == ["ok", "ok"]
    assert "PRINTED" not in captured.out and "PRINTED in forward" in captured.err
