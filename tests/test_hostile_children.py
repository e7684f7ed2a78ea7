"""Hostile input, child processes: a module lying in the working directory is never imported
by a process cnnbench starts (the CPU-memory child runs in isolated mode)."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest

from cnnbench.runtime.memory import child_peak_rss

SHADOWS = ("pickle", "torch", "json", "cnnbench")


def _plant(where: Path) -> Path:
    """Modules named like the ones the child imports, each writing a marker when run."""
    marker = where / "EXECUTED"
    for name in SHADOWS:
        (where / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write('{name}\\n')\nraise SystemExit(3)\n"
        )
    return marker


@pytest.mark.slow
@pytest.mark.parametrize("parent_path_has_cwd", [False, True])
def test_memory_child_imports_nothing_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parent_path_has_cwd: bool
) -> None:
    marker = _plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    if parent_path_has_cwd:  # a parent started as `python -c` or interactively has '' first
        monkeypatch.setattr(sys, "path", ["", ".", *sys.path])
    peak = child_peak_rss(functools.partial(sum, [1, 2]))
    assert peak.error is None, peak.error
    assert peak.peak_rss_bytes is not None and peak.peak_rss_bytes > 0
    assert not marker.exists(), marker.read_text()


@pytest.mark.slow
def test_profile_with_the_memory_probe_in_a_directory_of_shadowing_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    marker = _plant(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(
        "profile", "lenet5", "--budget", "0.2", "--json", "--quiet", "--out", str(tmp_path / "r")
    )
    assert code == 0, err
    assert not marker.exists(), marker.read_text()
    import json

    row = json.loads(out)["results"][0]
    assert row["peak_memory_bytes"] and row["peak_memory_bytes"] > 0, row["notes"]
