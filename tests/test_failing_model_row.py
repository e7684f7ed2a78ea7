"""One model that cannot be counted is an error row in a comparison; the others are measured.
Alone, the same model is the one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

MODELS = """
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x).mean((2, 3))


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        raise ValueError("this model is broken")
"""

ARGS = ("--input-size", "3,16,16", "--budget", "0.2", "--no-memory", "--threads", "1")


def test_a_broken_model_is_an_error_row_and_the_others_are_measured(
    tmp_path: Path, monkeypatch, run_cli
) -> None:
    (tmp_path / "nets.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli("compare", "nets.py:Broken", "nets.py:Tiny", *ARGS, "--json")
    assert code == 0
    rows = {r["model"]: r for r in json.loads(out)["results"]}
    assert rows["Broken"]["status"] == "error"
    assert "this model is broken" in rows["Broken"]["error"]
    assert rows["Broken"]["device"] == "cpu" and rows["Broken"]["batch_size"] == 1
    assert rows["Tiny"]["status"] == "ok"
    assert rows["Tiny"]["latency_ms_median"] > 0
    assert rows["Tiny"]["params"] == 3 * 4 * 9 + 4


def test_a_broken_model_alone_is_one_line_and_exit_2(tmp_path: Path, monkeypatch, run_cli) -> None:
    (tmp_path / "nets.py").write_text(MODELS)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli("profile", "nets.py:Broken", *ARGS)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and "this model is broken" in err
