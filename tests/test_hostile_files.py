"""Hostile input, data files: loading is linear (no per-row type resolution), sizes, depths and
numbers are bounded at load with one line, text from files reaches the terminal, Markdown and
JUnit XML without control characters, live links or images; the gate reads a pytest-benchmark
fingerprint from the fixture's rows and sends builds that a data file names through the memory
guard. Each CLI case asserts the exit code, the one line and what is left on disk."""

from __future__ import annotations

import json
import typing
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cnnbench import gate
from cnnbench.report.table import MAX_CELL_CHARS, clean_text
from cnnbench.results import Result, Run, load_run
from tests.hostile import edit_run, files, one_line, saved_run

EVIL = "evil\x1b]0;PWNED\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07\x1b[31m![t](http://track/x.png) [go](http://x)"


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------- cost of loading


def test_type_hints_are_resolved_once_per_class_not_per_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.json"
    row = {"model": "m", "params": 1, "macs": 2, "stages": [], "input_size": [3, 8, 8]}
    path.write_text(json.dumps({"schema_version": 2, "results": [row] * 5000}))
    calls = []
    real = typing.get_type_hints
    monkeypatch.setattr(typing, "get_type_hints", lambda *a, **k: calls.append(a) or real(*a, **k))
    run = load_run(path)
    assert len(run.results) == 5000 and run.results[-1].macs == 2
    assert len(calls) <= 3  # Result, StageCost, LayerCost at most once each (cached)


# --------------------------------------------------------------- bounds at load


def _report(run_cli, path: Path) -> tuple[int, str, str]:
    return run_cli("report", str(path), "--out", "out", "-f", "csv,json,md")


def test_config_nested_900_deep_is_refused_at_load(cwd: Path, run_cli) -> None:
    deep: dict = {}
    node = deep
    for _ in range(900):
        node["a"] = {}
        node = node["a"]
    run = edit_run(saved_run(cwd / "run.json"), lambda d: d.update(config=deep))
    code, out, err = _report(run_cli, run)
    assert code == 2 and out == ""
    one_line(err, "run.json: nested more than 32 levels deep")
    assert files(cwd) == {"run.json"}


@pytest.mark.parametrize(
    ("command", "name"),
    [(("sweep",), "sweep.toml"), (("claims", "--file"), "claims.toml")],
)
def test_toml_nested_5000_deep_is_one_line(cwd: Path, run_cli, command, name) -> None:
    (cwd / name).write_text("[sweep]\nmodels = " + "[" * 5000 + "]" * 5000 + "\n")
    code, out, err = run_cli(*command, name)
    assert code == 2 and out == ""
    one_line(err, name, "nested too deeply")
    assert files(cwd) == {name}


def test_gate_config_nested_5000_deep_is_one_line(cwd: Path, run_cli) -> None:
    (cwd / "gate.toml").write_text("[tool.cnnbench.gate]\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    _gate_run(cwd / "b.json", "lenet5", 1.0)
    code, _, err = run_cli("gate", "check", "--config", "gate.toml", "--baseline", "b.json")
    assert code == 2
    one_line(err, "--config gate.toml", "nested too deeply")
    assert files(cwd) == {"gate.toml", "b.json"}


def test_toml_nested_40_deep_is_refused_by_depth(cwd: Path, run_cli) -> None:
    (cwd / "s.toml").write_text("[sweep]\nmodels = " + "[" * 40 + "]" * 40 + "\n")
    code, _, err = run_cli("sweep", "s.toml")
    assert code == 2
    one_line(err, "s.toml: nested more than 32 levels deep")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("params", 10**400, "results[0].params: 1000000000000000000000000000000000000..."),
        ("macs", -(2**64), "is out of range (at most 2**63-1)"),
        ("latency_ms_median", 10**400, "latency_ms_median: 10000000000000"),
        ("latency_ms_median", -3.0, "results[0].latency_ms_median: -3.0 is negative"),
        ("throughput_ips", -1, "results[0].throughput_ips: -1.0 is negative"),
        ("samples_ms", [1.0, -0.5], "results[0].samples_ms[1]: -0.5 is negative"),
        ("model", "a\ud800b", "results[0].model: 'a\\ud800b' is not valid Unicode text"),
    ],
)
def test_numbers_and_text_out_of_bounds_are_refused_at_load(
    cwd: Path, run_cli, field: str, value: object, needle: str
) -> None:
    run = saved_run(cwd / "run.json")
    edit_run(run, lambda d: d["results"][0].update({field: value}))
    code, out, err = _report(run_cli, run)
    assert code == 2 and out == ""
    one_line(err, needle)
    assert files(cwd) == {"run.json"}


def test_negative_stage_numbers_are_refused(cwd: Path, run_cli) -> None:
    stage = {"name": "s", "blocks": 1, "out_channels": 4, "params": -4, "macs": 1, "flops": 2}
    stage |= {"output_shape": [4, 2, 2], "output_bytes": 64}
    run = edit_run(saved_run(cwd / "run.json"), lambda d: d["results"][0].update(stages=[stage]))
    code, _, err = _report(run_cli, run)
    assert code == 2
    one_line(err, "results[0].stages[0].params: -4 is negative")


# --------------------------------------------------------------- text from files


def test_escape_sequences_never_reach_the_terminal(cwd: Path, run_cli) -> None:
    run = saved_run(cwd / "run.json", model=EVIL, notes="note\x1b[2J\x07\r\x08end")
    code, out, err = run_cli("report", str(run))
    assert code == 0, err
    assert not any(c in out + err for c in "\x1b\x07\x08\r"), repr(out)
    assert "evil" in out and "PWNED" not in out  # the OSC title sequence removed whole
    assert files(cwd) == {"run.json"}


def test_a_100kb_model_name_is_cut_in_the_terminal(cwd: Path, run_cli) -> None:
    run = saved_run(cwd / "run.json", model="N" * 100_000)
    code, out, err = run_cli("report", str(run))
    assert code == 0, err
    assert "…" in out and len(out) < 20_000
    assert out.count("N") < 5 * MAX_CELL_CHARS  # title, note and two table cells, each cut


def test_markdown_from_a_run_file_has_no_live_links_or_images(cwd: Path, run_cli) -> None:
    run = saved_run(cwd / "run.json", model=EVIL, error="see [here](http://x) ![i](http://t)")
    code, _, err = run_cli("report", str(run), "--out", "out", "-f", "md")
    assert code == 0, err
    md = (cwd / "out" / "run.md").read_text()
    assert "](http" not in md.replace("\\](http", "")  # every ] before a URL is escaped
    assert "!\\[t\\](http://track/x.png)" in md
    assert "\x1b" not in md and "\x07" not in md
    assert files(cwd) == {"run.json", "out/run.md"}


def test_clean_text_removes_whole_sequences_and_controls() -> None:
    text = "a\x1b]0;T\x07b\x1b[1;31mc\x1bPq#0\x1b\\d\x1b]8;;http://x\x1b\\e\u202ef\x00g\x9bh\ti"
    assert clean_text(text) == "abcde f g h i"
    assert clean_text("x" * 10, 5) == "xxxx…"
    assert clean_text("plain · ünïcode") == "plain · ünïcode"


def _gate_run(path: Path, model: str, scale: float) -> Path:
    samples = [scale * (10.0 + (i % 7) / 10) for i in range(21)]
    env = {"torch": "2", "device_name": "cpu", "cpu": "c", "threads": 1, "host": "h"}
    row = Result(model=model, input_size=[3, 32, 32], threads=1, params=10, macs=10)
    row.samples_ms, row.latency_ms_median = samples, sorted(samples)[10]
    Run(results=[row], environment=env).save(path)
    return path


def test_junit_is_well_formed_with_control_characters_in_names(cwd: Path, run_cli) -> None:
    name = "net\x01\x1b[2J\x0b\x00<&>"
    base, cand = _gate_run(cwd / "a.json", name, 1.0), _gate_run(cwd / "b.json", name, 1.0)
    code, _, err = run_cli(
        "gate", "ab", "--baseline", str(base), "--candidate", str(cand), "-q", "--junit", "j.xml"
    )
    assert code == 0, err
    root = ET.parse(cwd / "j.xml").getroot()  # well-formed
    names = [case.get("classname") for case in root.iter("testcase")]
    assert names and all("net" in n and "<&>" in n and "\x1b" not in n for n in names)
    assert files(cwd) == {"a.json", "b.json", "j.xml"}


# --------------------------------------------------------------- the gate's data files


def _pb_bench(name: str, extra: dict) -> dict:
    data = [0.010 + i / 10_000 for i in range(21)]
    return {"name": name, "extra_info": extra, "stats": {"median": data[10], "data": data}}


def test_pytest_benchmark_fingerprint_comes_from_the_fixtures_rows(tmp_path: Path) -> None:
    fixture = {"model": "lenet5", "torch": "2.13.0", "device_name": "cpu", "threads": 2}
    data = {
        "machine_info": {"python_version": "3.11", "cpu": {"brand_raw": "CPU X"}},
        "benchmarks": [
            _pb_bench("test_plain_sort", {}),
            _pb_bench("test_lenet5", {"cnnbench": fixture}),
        ],
    }
    for name in ("a.json", "b.json"):
        (tmp_path / name).write_text(json.dumps(data))
    run = gate.load_baseline(tmp_path / "a.json")
    assert {k: run.environment.get(k) for k in ("torch", "device_name", "threads")} == {
        "torch": "2.13.0",
        "device_name": "cpu",
        "threads": 2,
    }
    report = gate.compare_files(
        gate.GateConfig(n_boot=200), tmp_path / "a.json", tmp_path / "b.json"
    )
    assert {v.model for v in report.verdicts} == {"test_plain_sort", "lenet5"}


def test_a_build_named_by_a_gate_baseline_goes_through_the_memory_guard(cwd: Path, run_cli) -> None:
    from cnnbench.gate import GateConfig
    from cnnbench.runtime import RuntimeConfig

    config = RuntimeConfig(device="cpu", resolution=32, threads=1, budget_s=0.2)
    stored = GateConfig(
        models=("lenet5",), configs=(config,), calibrate=False, memory=False, rounds=2,
        budget_s=0.2, model_args={"num_classes": 3_000_000_000},
    ).to_dict()  # fmt: skip
    row = Result(model="lenet5", input_size=[1, 32, 32], threads=1, params=1, macs=1)
    row.samples_ms = [1.0 + i / 100 for i in range(21)]
    Run(results=[row], config={"command": "gate save", "gate": stored}).save(cwd / "base.json")
    code, out, err = run_cli("gate", "check", "--baseline", "base.json", "--allow-env-mismatch")
    assert code == 2
    one_line(err, "lenet5 (building it) needs about", "GiB", "build a smaller model")
    assert files(cwd) == {"base.json"}
