"""Hardening of the files cnnbench reads (issue 13): saved runs, gate baselines,
pytest-benchmark files and gate configuration files are data, parsed against a schema.

Each malformed file is refused in one line that names the file and the field, without a
traceback, before anything is measured, and nothing is written. Nothing here measures."""

from __future__ import annotations

import copy
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cnnbench import gate
from cnnbench.results import MAX_FILE_BYTES, Result, Run, SchemaError, load_run

CLI = Callable[..., tuple[int, str, str]]
ENV = {"torch": "2.0.0", "device_name": "Some CPU", "cpu": "Some CPU", "threads": 1}


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _one_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def _files(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _run_data() -> dict[str, Any]:
    """A valid saved run (one model with samples and a calibration row) as JSON data."""
    samples = [9.0 + 0.01 * i for i in range(-10, 11)]
    rows = [
        Result(
            model="Tiny",
            input_size=[3, 32, 32],
            params=314,
            macs=1000,
            flops=2000,
            latency_ms_median=statistics.median(samples),
            samples_ms=samples,
        ),
        Result(
            model="__calibration__/Tiny",
            input_size=[3, 32, 32],
            latency_ms_median=2.0,
            samples_ms=[2.0, 2.01, 1.99],
        ),
    ]
    data = json.loads(Run(results=rows, environment=dict(ENV)).to_json())
    data["results"][0]["stages"] = [
        {
            "name": "stage1",
            "blocks": 1,
            "out_channels": 8,
            "params": 224,
            "macs": 1000,
            "flops": 2000,
            "output_shape": [8, 32, 32],
            "output_bytes": 32768,
            "se_params": 0,
            "se_flops": 0,
            "time_ms": 1.5,
        }
    ]
    return data


def _write(path: Path, data: Any) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


# Saved runs: the schema -----------------------------------------------------------------------
def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A change of the field at a dotted path (``results.0.samples_ms.3``)."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


BAD_RUNS = [
    ("results.0.latency_ms_median", "fast", "results[0].latency_ms_median: expected a number"),
    ("results.0.latency_ms_median", float("nan"), "results[0].latency_ms_median: nan is not"),
    ("results.0.samples_ms.3", float("inf"), "results[0].samples_ms[3]: inf is not a finite"),
    ("results.0.samples_ms.0", float("-inf"), "results[0].samples_ms[0]: -inf is not"),
    ("results.0.samples_ms.2", "9.1", "results[0].samples_ms[2]: expected a number"),
    ("results.0.samples_ms", "9.0 9.1", "results[0].samples_ms: expected a list"),
    ("results.0.input_size", ["3", "32", "32"], "results[0].input_size[0]: expected an integer"),
    ("results.0.params", 314.5, "results[0].params: expected an integer, got 314.5"),
    ("results.0.batch_size", True, "results[0].batch_size: expected an integer, got True"),
    ("results.0.compiled", "no", "results[0].compiled: expected true or false"),
    ("results.0.model", 7, "results[0].model: expected a string"),
    ("results.0.stages", {"a": 1}, "results[0].stages: expected a list"),
    ("results.0.stages.0", [1, 2], "results[0].stages[0]: expected an object"),
    ("results.0.stages.0.macs", "many", "results[0].stages[0].macs: expected an integer"),
    ("results.0.stages.0.output_shape", [8, None], "results[0].stages[0].output_shape[1]"),
    ("results.0.stages.0.bogus", 1, "results[0].stages[0]: unknown result field(s) bogus"),
    ("results.1", "a row", "results[1]: expected an object"),
    ("results", {"0": {}}, "results: expected a list"),
    ("environment", ["torch"], "environment: expected dict"),
    ("config", "gate", "config: expected dict"),
    ("complete", "yes", "complete: expected bool"),
    ("created", 2026, "created: expected str"),
    ("schema_version", True, "schema version True"),
    ("schema_version", "1", "schema version '1'"),
]


@pytest.mark.parametrize(
    ("field", "value", "problem"), BAD_RUNS, ids=[b[0] + "=" + repr(b[1]) for b in BAD_RUNS]
)
def test_files_saved_run_field_of_the_wrong_shape(
    tmp_path: Path, field: str, value: Any, problem: str
) -> None:
    data = _run_data()
    _set(field, value)(data)
    path = _write(tmp_path / "run.json", json.dumps(data))  # NaN and inf as JSON literals
    with pytest.raises(SchemaError) as info:
        load_run(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_files_saved_run_missing_field(tmp_path: Path) -> None:
    data = _run_data()
    del data["results"][0]["stages"][0]["blocks"]
    del data["results"][1]["model"]
    with pytest.raises(SchemaError, match=r"results\[0\].stages\[0\]: missing field\(s\) blocks"):
        load_run(_write(tmp_path / "run.json", data))


def test_files_saved_run_round_trips(tmp_path: Path) -> None:
    data = _run_data()
    run = load_run(_write(tmp_path / "run.json", data))
    assert run.results[0].stages[0].output_shape == [8, 32, 32]
    assert run.results[0].stages[0].time_ms == 1.5 and run.results[0].samples_ms[0] == 8.9
    again = load_run(_write(tmp_path / "again.json", run.to_json()))
    assert again.results == run.results and again.environment == ENV


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"schema_version": 1, "results": [], "x": ' + "9" * 5000 + "}", "not a readable JSON"),
        ("\xff\xfe not text", "not UTF-8 text"),
        ('{"schema_version": 1, "results": [', "not a readable JSON file"),
    ],
    ids=["deep", "huge-int", "binary", "truncated"],
)
def test_files_saved_run_unparsable(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(SchemaError) as info:
        load_run(path)
    assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)


# Saved files: what is not a regular, small file ----------------------------------------------
def _special(tmp_path: Path, kind: str) -> Path:
    if kind == "device":
        return Path("/dev/zero")
    if kind == "directory":
        (tmp_path / "dir.json").mkdir()
        return tmp_path / "dir.json"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.json")  # opening it would block: it must not be opened
        return tmp_path / "pipe.json"
    path = tmp_path / "huge.json"
    with path.open("wb") as fh:  # sparse: no disk used
        fh.truncate(MAX_FILE_BYTES + 1)
    return path


@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        ("device", "not a regular file"),
        ("directory", "not a regular file"),
        ("fifo", "not a regular file"),
        ("huge", "larger than the 64 MiB a saved file may have"),
    ],
)
def test_files_baseline_that_is_not_a_small_regular_file(
    tmp_path: Path, run_cli: CLI, kind: str, problem: str
) -> None:
    path = _special(tmp_path, kind)
    with pytest.raises(SchemaError, match=problem):
        load_run(path)
    good = _write(tmp_path / "good.json", _run_data())
    before = _files(tmp_path)
    code, out, err = run_cli("gate", "check", "--baseline", str(path), "--candidate", str(good))
    assert code == 2 and out == ""
    _one_line(err, str(path), problem)
    assert _files(tmp_path) == before


def test_files_missing_baseline_names_the_fix(tmp_path: Path, run_cli: CLI) -> None:
    code, _, err = run_cli("gate", "check", "--baseline", "nope.json", "-m", "lenet5")
    assert code == 2
    _one_line(err, "nope.json: no such file", "cnnbench gate save")


# Baselines: what the gate relies on -----------------------------------------------------------
BAD_BASELINES = [
    ("results.0.samples_ms", [0.0] * 21, "results[0].samples_ms: the samples are all zero"),
    ("results.0.samples_ms", [0.0] * 15 + [1.0] * 6, "samples are a median of zero"),
    ("results.0.samples_ms.4", -1.0, "results[0].samples_ms[4]: -1.0 is negative"),
    ("results.1.samples_ms", [0.0, 0.0, 0.0], "results[1].samples_ms: the samples are all zero"),
    ("results.0.batch_size", 0, "results[0].batch_size: 0 is not >= 1"),
    ("results.0.input_size", [3, 32], "results[0].input_size: [3, 32] is not [C, H, W]"),
    ("results.0.params", -5, "results[0].params: -5 is negative"),
    ("config", {"gate": {"seed": "x"}}, "config.gate: seed must be an integer >= 0"),
    ("config", {"gate": {"configs": "cpu"}}, "config.gate: configs must be a list"),
    ("config", {"gate": {"configs": [{"bogus": 1}]}}, "configs[0]: unknown field(s) bogus"),
    ("config", {"gate": {"configs": [{"batch_size": -1}]}}, "configs[0]: batch size must be"),
    ("config", {"gate": {"models": "resnet18"}}, "config.gate: models must be a list"),
    ("config", {"gate": {"alpha": None}}, "config.gate: alpha must be a number"),
    ("config", {"gate": "everything"}, "config.gate: expected an object"),
]


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    BAD_BASELINES,
    ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_BASELINES)],
)
def test_files_baseline_refused_before_measuring(
    tmp_path: Path, run_cli: CLI, field: str, value: Any, problem: str
) -> None:
    data = _run_data()
    _set(field, value)(data)
    base = _write(tmp_path / "base.json", data)
    good = _write(tmp_path / "good.json", _run_data())
    code, out, err = run_cli(
        "gate", "check", "--baseline", str(base), "--candidate", str(good), "--junit", "j.xml"
    )
    assert code == 2 and out == ""
    _one_line(err, str(base), problem)
    assert _files(tmp_path) == {"base.json", "good.json"}


def test_files_nan_baseline_never_reaches_the_verdict(tmp_path: Path, run_cli: CLI) -> None:
    data = _run_data()
    data["results"][0]["samples_ms"] = [float("nan")] * 21
    data["results"][0]["latency_ms_median"] = float("nan")
    base = _write(tmp_path / "base.json", json.dumps(data))
    good = _write(tmp_path / "good.json", _run_data())
    code, out, err = run_cli("gate", "check", "--baseline", str(base), "--candidate", str(good))
    assert code == 2 and "gate: pass" not in err and "nan" not in out
    _one_line(err, "nan is not a finite number")


def test_files_candidate_is_validated_like_the_baseline(tmp_path: Path, run_cli: CLI) -> None:
    data = _run_data()
    data["results"][0]["samples_ms"][0] = "slow"
    cand = _write(tmp_path / "cand.json", data)
    base = _write(tmp_path / "base.json", _run_data())
    code, _, err = run_cli("gate", "check", "--baseline", str(base), "--candidate", str(cand))
    assert code == 2
    _one_line(err, str(cand), "results[0].samples_ms[0]: expected a number")


# pytest-benchmark files -----------------------------------------------------------------------
def _pb_data() -> dict[str, Any]:
    seconds = [0.009 + 0.00001 * i for i in range(30)]
    return {
        "machine_info": {"python_version": "3.11.7", "cpu": {"brand_raw": "Some CPU"}},
        "benchmarks": [
            {
                "name": "test_tiny",
                "extra_info": {
                    "cnnbench": {
                        "model": "tiny",
                        "batch_size": 2,
                        "input_size": [3, 16, 16],
                        "device": "cpu",
                        "threads": 1,
                        "torch": "2.0.0",
                        "device_name": "Some CPU",
                    }
                },
                "stats": {"data": seconds},
            }
        ],
        "datetime": "2026-01-01T00:00:00",
    }


BAD_PB = [
    ("benchmarks", {"a": 1}, "pytest-benchmark file without benchmarks"),
    ("benchmarks", [], "pytest-benchmark file without benchmarks"),
    ("benchmarks.0", "test_tiny", "benchmarks[0]: expected an object"),
    ("benchmarks.0.name", 3, "benchmarks[0].name: expected a string"),
    ("benchmarks.0.stats", [1, 2], "benchmarks[0].stats: expected an object"),
    ("benchmarks.0.stats.data", "0.009", "benchmarks[0].stats.data: expected a list"),
    ("benchmarks.0.stats.data.3", "fast", "benchmarks[0].stats.data[3]: expected a number"),
    ("benchmarks.0.stats.data.3", float("nan"), "benchmarks[0].stats.data[3]: nan is not"),
    ("benchmarks.0.stats.data", [0.0] * 30, "benchmarks[0].stats.data: the samples are all zero"),
    ("benchmarks.0.stats.data.0", -0.5, "benchmarks[0].stats.data[0]: -0.5 is not a time"),
    ("benchmarks.0.extra_info", "x", "benchmarks[0].extra_info: expected an object"),
    (
        "benchmarks.0.extra_info.cnnbench.batch_size",
        "2",
        "cnnbench.batch_size: expected an integer",
    ),
    ("benchmarks.0.extra_info.cnnbench.batch_size", 0, "cnnbench.batch_size: 0 is not >= 1"),
    (
        "benchmarks.0.extra_info.cnnbench.input_size",
        "3x16x16",
        "cnnbench.input_size: expected a list",
    ),
    ("benchmarks.0.extra_info.cnnbench.threads", 1.5, "cnnbench.threads: expected an integer"),
    ("machine_info", ["cpu"], "machine_info: expected an object"),
    ("machine_info.cpu.brand_raw", 42, "machine_info.cpu.brand_raw: expected a string"),
]


@pytest.mark.parametrize(
    ("field", "value", "problem"), BAD_PB, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD_PB)]
)
def test_files_malformed_pytest_benchmark_file(
    tmp_path: Path, run_cli: CLI, field: str, value: Any, problem: str
) -> None:
    data = copy.deepcopy(_pb_data())
    _set(field, value)(data)
    bad = _write(tmp_path / "0001_bad.json", json.dumps(data))
    good = _write(tmp_path / "0002_good.json", _pb_data())
    code, out, err = run_cli("gate", "ab", "--baseline", str(bad), "--candidate", str(good))
    assert code == 2 and out == ""
    _one_line(err, str(bad), problem)


def test_files_good_pytest_benchmark_file_is_read(tmp_path: Path, run_cli: CLI) -> None:
    # The control case: the same file unmodified compares against itself and passes.
    good = _write(tmp_path / "0001_good.json", _pb_data())
    run = gate.load_baseline(good)
    assert run.results[0].model == "tiny" and run.results[0].batch_size == 2
    assert run.environment["torch"] == "2.0.0" and run.environment["cpu"] == "Some CPU"
    code, _, err = run_cli("gate", "ab", "--baseline", str(good), "--candidate", str(good), "-q")
    assert code == 0, err


# Gate configuration files ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda d: Path("/dev/zero"), "not a regular file; give the path of a TOML file"),
        (lambda d: (d / "conf").mkdir() or d / "conf", "not a regular file"),
        (lambda d: d / "missing.toml", "no such file"),
        (
            lambda d: _write(d / "bad.toml", "[tool.cnnbench.gate\nmodels = 1"),
            "not a readable TOML",
        ),
        (
            lambda d: _write(d / "none.toml", "[tool.other]\nx = 1\n"),
            "no [tool.cnnbench.gate] table",
        ),
        (lambda d: _write(d / "t.toml", "[tool.cnnbench]\ngate = 3\n"), "must be a table"),
        (
            lambda d: _write(d / "m.toml", "[tool.cnnbench.gate]\nmodels = 'resnet18'\n"),
            "models must be a list",
        ),
    ],
    ids=["device", "directory", "missing", "syntax", "no-table", "not-a-table", "models-string"],
)
def test_files_bad_config_file(
    tmp_path: Path, run_cli: CLI, make: Callable[[Path], Path], problem: str
) -> None:
    path = make(tmp_path)
    before = _files(tmp_path)
    code, out, err = run_cli("gate", "save", "--config", str(path), "-o", "b.json")
    assert code == 2 and out == ""
    _one_line(err, str(path), problem)
    assert _files(tmp_path) == before
