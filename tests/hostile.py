"""Helpers of the hostile-input suites (tests/test_hostile_*.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cnnbench.results import Result, Run

#: A tiny model file; importing it writes ``marker`` (proof that it was, or was not, loaded).
NET = """\
import torch
from torch import nn
open({marker!r}, "a").write("imported\\n")


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        {forward}
        return self.conv(x)
"""


def net(folder: Path, forward: str = "pass") -> tuple[str, Path]:
    """``(spec, marker)`` of a tiny model file in ``folder``."""
    marker = folder / "IMPORTED"
    (folder / "net.py").write_text(NET.format(marker=str(marker), forward=forward))
    return f"{folder / 'net.py'}:Tiny", marker


def one_line(err: str, *needles: str) -> str:
    """The only non-empty stderr line, which must contain every needle; no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def files(folder: Path) -> set[str]:
    """Every file under ``folder``, relative, hidden ones included."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def saved_run(path: Path, **fields: Any) -> Path:
    """A small valid run file with one row (``fields`` override the row's fields)."""
    row = Result(model="lenet5", input_size=[1, 32, 32], params=61_706, macs=416_520)
    run = Run(results=[Result(**{**row.to_dict(), **fields})], environment={"host": "h"})
    path.write_text(run.to_json())
    return path


def edit_run(path: Path, change: Any) -> Path:
    """Apply ``change(data)`` to a saved run's JSON in place."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path
