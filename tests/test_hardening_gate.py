"""Hardening of the gate (issue 13, gate part of issue 11): trust boundaries, failing closed,
validation before measuring, bounded calibration, p-values.

Each case asserts the exit code, the one line that names the problem and the fix, that no
traceback is printed, and what is left on disk. Measuring cases use a two-layer conv net at
32 px with 0.2 s budgets; everything else compares hand-made files without measuring."""

from __future__ import annotations

import json
import math
import os
import signal
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from cnnbench import gate
from cnnbench.errors import UsageError
from cnnbench.gate import GateConfig, LatencySamples, decide_latency, mann_whitney_u
from cnnbench.results import Result, Run
from cnnbench.runtime import RuntimeConfig

CLI = Callable[..., tuple[int, str, str]]

NET = """
import os, sys, signal
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        {init}
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
        )

    def forward(self, x):
        if x.device.type != "meta":  # the static profile runs on meta; this is the timed run
            {forward}
        return self.body(x)
"""

GATE_TOML = """
[tool.cnnbench.gate]
models = ["{spec}"]
device = "cpu"
resolution = 32
threads = 1
budget_s = 0.2
calibrate = false
max_remeasure = 0
memory = false
n_boot = 200
rounds = 2
min_effect = 0.95
"""
# min_effect: these tests check the plumbing with uncalibrated checks of a tiny model against a
# baseline saved once per module; on a machine shared with other test workers its latency can
# drift past +50% in that time, so only about a doubling counts (the decision rules are tested
# on synthetic samples, their error rates in benchmarks/bench_gate.py).


def _net(path: Path, *, init: str = "pass", forward: str = "pass", top: str = "") -> Path:
    path.write_text(top + NET.format(init=init, forward=forward))
    return path


def _files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def _one_line(err: str, *needles: str) -> str:
    """The only non-empty stderr line, which must contain every needle; no traceback."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real baseline of the tiny net (measured once per module) and its config."""
    folder = tmp_path_factory.mktemp("saved")
    _net(folder / "net.py")
    (folder / "gate.toml").write_text(GATE_TOML.format(spec=f"{folder / 'net.py'}:Tiny"))
    old = torch.get_num_threads()
    try:
        cfg = gate.load_config(folder / "gate.toml")
        assert cfg is not None
        gate.save(cfg, folder / "base.json")
    finally:
        torch.set_num_threads(old)
    return folder


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every case runs in an empty folder (no pyproject.toml) without a step summary."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@pytest.fixture
def proj(saved: Path, tmp_path: Path) -> Path:
    """The cwd with a copy of the saved baseline."""
    (tmp_path / "base.json").write_text((saved / "base.json").read_text())
    return tmp_path


def _config(folder: Path, spec: str, **extra: Any) -> Path:
    text = GATE_TOML.format(spec=spec) + "".join(
        f"{k} = {json.dumps(v)}\n" for k, v in extra.items()
    )
    (folder / "gate.toml").write_text(text)
    return folder / "gate.toml"


def _edit(src: Path, dst: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(src.read_text())
    change(data)
    dst.write_text(json.dumps(data))
    return dst


# Hand-made runs (no measuring) --------------------------------------------------------------
ENV = {"torch": "2.0.0", "device_name": "Some CPU", "cpu": "Some CPU", "threads": 1}


def _samples(median: float, n: int = 41, spread: float = 0.002) -> list[float]:
    """``n`` samples with exactly the given median, spread evenly around it."""
    half = n // 2
    return [median * (1 + spread * (i - half) / half) for i in range(n)]


def _row(model: str, samples: list[float], **kw: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        input_size=[3, 32, 32],
        threads=1,
        params=314,
        macs=221_264,
        flops=467_114,
        activation_bytes=65_536,
        latency_ms_median=statistics.median(samples) if samples else None,
        timed_iters=len(samples),
        samples_ms=samples,
    )
    fields.update(kw)
    return Result(model=model, **fields).to_dict()


def _run(
    path: Path,
    latency: float,
    calibration: float | None = None,
    *,
    env: dict[str, Any] | None = None,
    gate_cfg: dict[str, Any] | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> Path:
    results = rows if rows is not None else [_row("Tiny", _samples(latency))]
    if calibration is not None:
        results.append(_row("__calibration__/Tiny", _samples(calibration, 61), params=None))
    run = Run(results=[], environment=dict(ENV if env is None else env))
    data = json.loads(run.to_json())
    data["results"] = results
    if gate_cfg is not None:
        data["config"] = {"command": "gate save", "gate": gate_cfg}
    path.write_text(json.dumps(data))
    return path


# Security: a baseline is data ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("stored", "named"),
    [
        (["os:system"], "os:system"),
        (["builtins:eval"], "builtins:eval"),
        (["resnet18", "subprocess:getoutput"], "subprocess:getoutput"),
        (["evil.py:Net"], "evil.py:Net"),
    ],
)
def test_security_baseline_code_specs_are_never_called(
    proj: Path, run_cli: CLI, stored: list[str], named: str
) -> None:
    marker = proj / "PWNED"
    (proj / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('imported')\n")

    def poison(d: dict[str, Any]) -> None:
        d["config"]["gate"]["models"] = stored
        d["config"]["gate"]["model_args"] = {"command": f"touch {marker}"}

    _edit(proj / "base.json", proj / "evil.json", poison)
    before = _files(proj)
    code, out, err = run_cli("gate", "check", "--baseline", "evil.json", "--junit", "j.xml")
    assert code == 2 and out == ""
    _one_line(err, "evil.json", repr(named), "never imports or calls", f"--model {named}")
    assert not marker.exists() and _files(proj) == before  # nothing ran, nothing written


def test_security_zoo_names_from_a_baseline_are_used_with_their_arguments(tmp_path: Path) -> None:
    stored = GateConfig(models=("lenet5",), model_args={"num_classes": 7}).to_dict()
    run = Run(results=[], config={"gate": json.loads(json.dumps(stored))})
    cfg = gate.baseline_config(run, tmp_path / "b.json")
    assert cfg.models == ("lenet5",) and dict(cfg.model_args) == {"num_classes": 7}
    # Models from the command line replace the stored ones, and the stored arguments go too.
    mine = gate.baseline_config(run, tmp_path / "b.json", ["mine.py:Net"])
    assert mine.models == ("mine.py:Net",) and dict(mine.model_args) == {}


def test_security_compare_mode_never_needs_the_stored_models(tmp_path: Path, run_cli: CLI) -> None:
    cfg = GateConfig(models=("os:system",), n_boot=200).to_dict()
    base = _run(tmp_path / "base.json", 9.0, gate_cfg=json.loads(json.dumps(cfg)))
    cand = _run(tmp_path / "cand.json", 9.0)
    code, _, err = run_cli("gate", "check", "--baseline", str(base), "--candidate", str(cand), "-q")
    assert code == 0, err
    assert "gate: pass" in _one_line(err)


@pytest.mark.parametrize("key", ["torch", "device_name", "cpu", "threads"])
def test_security_environment_keys_are_required(proj: Path, run_cli: CLI, key: str) -> None:
    _edit(proj / "base.json", proj / "old.json", lambda d: d["environment"].pop(key))
    code, out, err = run_cli("gate", "check", "--baseline", "old.json", "-m", "net.py:Tiny")
    assert code == 2 and out == ""
    _one_line(err, "old.json", f"({key})", "--allow-env-mismatch", "re-save")
    assert _files(proj) == {"base.json", "old.json"}


@pytest.mark.slow  # a real uncalibrated A/A check: serially, away from other test workers
def test_security_empty_environment_is_refused_unless_allowed(
    saved: Path, proj: Path, run_cli: CLI
) -> None:
    _edit(proj / "base.json", proj / "noenv.json", lambda d: d.update(environment={}))
    config = str(saved / "gate.toml")
    code, _, err = run_cli("gate", "check", "--config", config, "--baseline", "noenv.json", "-q")
    assert code == 2
    _one_line(err, "noenv.json", "lacks torch (torch), device (device_name), CPU (cpu)")
    args = ("gate", "check", "--config", config, "--baseline", "noenv.json")
    code, out, err = run_cli(*args, "--allow-env-mismatch")
    assert code == 0, err
    assert "environment fingerprint lacks" in err and "latency_ms" in out


# Fail closed: whatever the model code raises -------------------------------------------------
@pytest.mark.parametrize(
    ("statement", "shown"),
    [
        ("sys.exit(0)", "SystemExit(0)"),
        ("sys.exit('bye')", "SystemExit('bye')"),
        ("raise SystemExit(3)", "SystemExit(3)"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt"),
        ("raise GeneratorExit", "GeneratorExit"),
        ("raise RuntimeError('broken kernel')", "RuntimeError: broken kernel"),
    ],
)
def test_gate_check_model_code_raising_while_timed_is_an_error_verdict(
    proj: Path, run_cli: CLI, statement: str, shown: str
) -> None:
    _net(proj / "net.py", forward=statement)
    before = signal.getsignal(signal.SIGINT)
    code, out, err = run_cli(
        "gate", "check", "--baseline", "base.json", "-m", "net.py:Tiny", "-q", "--junit", "j.xml"
    )
    assert code == 2 and out == ""
    _one_line(err, "gate: error:", "timing", f"raised {shown}", "fix the model")
    assert signal.getsignal(signal.SIGINT) is before  # the SIGINT watcher is gone again
    junit = (proj / "j.xml").read_text()
    assert 'errors="2"' in junit and "<error " in junit and shown.split(":")[0] in junit
    assert _files(proj) == {"base.json", "net.py", "j.xml"}


@pytest.mark.parametrize(
    ("where", "kwargs", "message"),
    [
        ("import", {"top": "import sys\nsys.exit(0)\n"}, "importing net.py called sys.exit(0)"),
        ("factory", {"init": "sys.exit(0)"}, "building the model: the model code raised"),
        ("factory", {"init": "raise KeyboardInterrupt"}, "building the model: the model code"),
    ],
)
def test_gate_check_model_code_raising_while_built_stops_before_timing(
    proj: Path, run_cli: CLI, where: str, kwargs: dict[str, str], message: str
) -> None:
    _net(proj / "net.py", **kwargs)
    code, out, err = run_cli(
        "gate", "check", "--baseline", "base.json", "-m", "net.py:Tiny", "--junit", "j.xml"
    )
    assert code == 2 and out == ""
    _one_line(err, f"net.py:Tiny: {message}")
    assert _files(proj) == {"base.json", "net.py"}  # no verdict file for an unmeasured check


def test_gate_save_with_exiting_model_writes_no_baseline(proj: Path, run_cli: CLI) -> None:
    _net(proj / "net.py", forward="sys.exit(0)")
    config = _config(proj, "net.py:Tiny")
    code, _, err = run_cli("gate", "save", "--config", str(config), "-o", "new.json")
    assert code == 2
    _one_line(err, "timing: the model code raised SystemExit(0)")
    assert _files(proj) == {"base.json", "net.py", "gate.toml"}  # no baseline, no temp file


def test_gate_ab_with_exiting_candidate_is_an_error(proj: Path, run_cli: CLI) -> None:
    _net(proj / "good.py")
    _net(proj / "bad.py", forward="sys.exit(0)")
    config = _config(proj, "good.py:Tiny")
    args = ("gate", "ab", "--config", str(config), "--baseline", "good.py:Tiny")
    code, _, err = run_cli(*args, "--candidate", "bad.py:Tiny", "-q")
    assert code == 2
    _one_line(err, "gate: error:", "raised SystemExit(0)")


def test_gate_a_real_ctrl_c_is_an_interrupt(proj: Path, run_cli: CLI) -> None:
    _net(proj / "net.py", forward="os.kill(os.getpid(), signal.SIGINT)")
    # SIGINT reaches Python as from a terminal (a pytest-xdist worker ignores SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        before = signal.getsignal(signal.SIGINT)
        try:
            code, out, err = run_cli(
                "gate", "check", "--baseline", "base.json", "-m", "net.py:Tiny"
            )
        except KeyboardInterrupt:  # pragma: no cover - would abort the whole session
            pytest.fail("the interrupt escaped the CLI")
        assert code == 130 and "latency_ms" not in out
        _one_line(err, "gate: interrupted; nothing was decided")
        assert signal.getsignal(signal.SIGINT) is before
        assert _files(proj) == {"base.json", "net.py"}
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.slow  # a real uncalibrated A/A check: serially, away from other test workers
def test_gate_check_measures_and_passes_the_same_model(
    saved: Path, proj: Path, run_cli: CLI
) -> None:
    # The control case for the cases above: the same command with a well-behaved model.
    code, out, err = run_cli(
        "gate", "check", "--config", str(saved / "gate.toml"), "--baseline", "base.json"
    )
    assert code == 0, err
    assert "calibrated" in out and "latency_ms" in out and "gate: pass" in err


# Fail closed: calibration ---------------------------------------------------------------------
@pytest.mark.parametrize("factor", [0.334, 0.6, 0.69, 1.41, 2.0, 3.0])
def test_gate_calibration_out_of_range_is_unusable(
    tmp_path: Path, run_cli: CLI, factor: float
) -> None:
    # The candidate got faster (9.08 -> 7.65 ms); divided by a wild calibration it would
    # read as a large regression or improvement.
    base = _run(tmp_path / "base.json", 9.08, calibration=2.0)
    cand = _run(tmp_path / "cand.json", 7.65, calibration=2.0 * factor)
    code, out, err = run_cli(
        "gate", "check", "--baseline", str(base), "--candidate", str(cand), "-q", "--json", "v.json"
    )
    assert code == 2 and out == ""
    _one_line(err, "the machine changed too much between save and check; re-save the baseline")
    verdicts = json.loads((tmp_path / "v.json").read_text())["verdicts"]
    timed = [v for v in verdicts if v["metric"] in ("latency_ms", "throughput_ips")]
    assert [v["decision"] for v in timed] == ["error", "error"]
    assert not any(v["decision"] == "regression" for v in verdicts)


@pytest.mark.parametrize("factor", [0.7, 0.9, 1.25, 1.4])
def test_gate_calibration_in_range_shows_raw_and_calibrated(
    tmp_path: Path, run_cli: CLI, factor: float
) -> None:
    # A uniformly slower or faster machine: model and calibration scaled alike.
    base = _run(tmp_path / "base.json", 9.08, calibration=2.0)
    cand = _run(tmp_path / "cand.json", 9.08 * factor, calibration=2.0 * factor)
    code, out, err = run_cli(
        "gate",
        "check",
        "--baseline",
        str(base),
        "--candidate",
        str(cand),
        "--markdown",
        "s.md",
    )
    assert code == 0, err
    header = next(line for line in out.splitlines() if "calibrated" in line)
    assert header.index("candidate") < header.index("calibrated") < header.index("change")
    latency = next(line for line in out.splitlines() if "latency_ms" in line)
    raw = f"{9.08 * factor:.3g} ms"
    assert raw in latency and "9.08 ms" in latency and "+0.0%" in latency
    md = next(line for line in Path("s.md").read_text().splitlines() if "latency_ms" in line)
    assert f"| {raw} | 9.08 ms | +0.0% |" in md


@pytest.mark.parametrize(
    ("ratio", "ok"), [(0.7, True), (1.4, True), (1.0, True), (0.699, False), (1.401, False)]
)
def test_gate_calibration_bounds(ratio: float, ok: bool) -> None:
    if ok:
        gate.stats.check_calibration(ratio)
    else:
        with pytest.raises(gate.CalibrationError, match=r"re-save the baseline"):
            gate.stats.check_calibration(ratio)


# Fail closed: nothing compared, rows missing -------------------------------------------------
def test_gate_a_check_that_compared_nothing_exits_2(tmp_path: Path, run_cli: CLI) -> None:
    config = tmp_path / "only.toml"
    config.write_text('[tool.cnnbench.gate]\nmetrics = ["peak_memory_bytes"]\n')
    base = _run(tmp_path / "base.json", 9.0)
    cand = _run(tmp_path / "cand.json", 9.0)
    args = ("gate", "check", "--config", str(config), "--baseline", str(base))
    code, _, err = run_cli(*args, "--candidate", str(cand), "-q")
    assert code == 2
    _one_line(err, "nothing was compared")


def test_gate_a_baseline_row_missing_from_the_candidate_is_an_error(
    tmp_path: Path, run_cli: CLI
) -> None:
    rows = [_row("Tiny", _samples(9.0)), _row("Other", _samples(5.0))]
    base = _run(tmp_path / "base.json", 9.0, rows=rows)
    cand = _run(tmp_path / "cand.json", 9.0)
    code, _, err = run_cli("gate", "check", "--baseline", str(base), "--candidate", str(cand), "-q")
    assert code == 2
    _one_line(err, "Other", "not in the candidate")


def test_gate_a_baseline_row_of_another_batch_never_stands_in(
    saved: Path, proj: Path, run_cli: CLI
) -> None:
    code, _, err = run_cli(
        "gate", "check", "--config", str(saved / "gate.toml"), "--baseline", "base.json", "-b", "4"
    )
    assert code == 2
    _one_line(err, "no baseline for Tiny (cpu fp32 contiguous b4 32px)", "gate save")


# Outputs: checked first, write failures are warnings ----------------------------------------
@pytest.mark.parametrize("option", ["--junit", "--json", "--markdown"])
@pytest.mark.parametrize("kind", ["directory", "under-a-file"])
def test_gate_unwritable_output_is_refused_before_measuring(
    proj: Path, run_cli: CLI, option: str, kind: str
) -> None:
    marker = proj / "built"
    _net(proj / "net.py", top=f"open({str(marker)!r}, 'w')\n")
    (proj / "blocker").write_text("a file")
    target = "blocker" if kind == "directory" else "blocker/out.xml"
    if kind == "directory":
        (proj / "blocker").unlink()
        (proj / "blocker").mkdir()
    code, out, err = run_cli(
        "gate", "check", "--baseline", "base.json", "-m", "net.py:Tiny", option, target
    )
    assert code == 2 and out == ""
    _one_line(err, f"{option} {target}", "writable folder" if kind != "directory" else "directory")
    assert not marker.exists()  # refused before the model was even built


def test_gate_save_unwritable_out_is_refused_before_measuring(proj: Path, run_cli: CLI) -> None:
    marker = proj / "built"
    _net(proj / "net.py", top=f"open({str(marker)!r}, 'w')\n")
    (proj / "file").write_text("x")
    config = _config(proj, "net.py:Tiny")
    code, _, err = run_cli("gate", "save", "--config", str(config), "-o", "file/base.json")
    assert code == 2
    _one_line(err, "--out file/base.json", "is not a directory")
    assert not marker.exists()


@pytest.mark.parametrize(("slower", "expected"), [(1.0, 0), (3.0, 1)])
def test_gate_unwritable_step_summary_is_a_warning(
    tmp_path: Path, run_cli: CLI, monkeypatch: pytest.MonkeyPatch, slower: float, expected: int
) -> None:
    (tmp_path / "summary").mkdir()  # appending to a directory fails
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    base = _run(tmp_path / "base.json", 9.0)
    cand = _run(tmp_path / "cand.json", 9.0 * slower)
    code, _, err = run_cli("gate", "check", "--baseline", str(base), "--candidate", str(cand), "-q")
    assert code == expected, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 2 and "Traceback" not in err
    assert "warning: could not append to $GITHUB_STEP_SUMMARY" in lines[0]
    assert "the verdict stands" in lines[0]
    assert lines[1].startswith("gate: pass" if expected == 0 else "gate: 2 regression(s)")
    assert _files(tmp_path) == {"base.json", "cand.json"}


@pytest.mark.parametrize(("slower", "expected"), [(1.0, 0), (3.0, 1)])
def test_gate_junit_write_failure_is_a_warning(
    tmp_path: Path, run_cli: CLI, monkeypatch: pytest.MonkeyPatch, slower: float, expected: int
) -> None:
    real_replace = os.replace

    def disk_full(src: str, dst: str) -> None:
        if str(dst).endswith(".xml"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    base = _run(tmp_path / "base.json", 9.0)
    cand = _run(tmp_path / "cand.json", 9.0 * slower)
    args = ("gate", "check", "--baseline", str(base), "--candidate", str(cand), "-q")
    code, _, err = run_cli(
        *args, "--junit", str(tmp_path / "j.xml"), "--json", str(tmp_path / "v.json")
    )
    assert code == expected, err
    assert "warning: could not write --junit" in err and "No space left on device" in err
    assert "Traceback" not in err
    # The JSON was written; the JUnit file and its temporary file are not there.
    assert _files(tmp_path) == {"base.json", "cand.json", "v.json"}


# Validation before measuring ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("alpha", "0.01", "alpha must be a number"),
        ("alpha", 0.7, "alpha must be a number in (0, 0.5)"),
        ("seed", "x", "seed must be an integer >= 0"),
        ("seed", -1, "seed must be an integer >= 0"),
        ("seed", 1.5, "seed must be an integer >= 0"),
        ("calibration_s", "2", "calibration_s must be > 0 seconds"),
        ("calibration_s", 0, "calibration_s must be > 0 seconds"),
        ("n_boot", 10, "n_boot must be an integer in 100..100,000"),
        ("n_boot", "many", "n_boot must be an integer"),
        ("metrics", ["latency"], "unknown metric(s) latency"),
        ("metrics", [], "metrics is empty"),
        ("model_args", 3, "model_args must be a table"),
        ("max_remeasure", -1, "max_remeasure must be an integer >= 0"),
        ("rounds", 1, "rounds must be an integer >= 2"),
        ("memory", "yes", "memory must be true or false"),
        ("calibrate", 1, "calibrate must be true or false"),
        ("threads", "4", "threads must be a positive integer"),
        ("threads", 0, "threads must be a positive integer"),
        ("device", "tpu", "unknown device 'tpu'"),
        ("batch_sizes", [0], "batch size must be a positive integer"),
        ("tolerances", {"params": "x"}, "tolerance for params must be a fraction"),
        ("tolerances", {"latency_ms": 0.1}, "latency uses min_effect"),
    ],
)
def test_gate_bad_config_value_fails_before_any_model_is_built(
    proj: Path, run_cli: CLI, key: str, value: Any, needle: str
) -> None:
    marker = proj / "built"
    _net(proj / "net.py", top=f"open({str(marker)!r}, 'w')\n")
    text = GATE_TOML.format(spec="net.py:Tiny")
    lines = [line for line in text.splitlines() if not line.startswith(f"{key} =")]
    if isinstance(value, dict):
        lines += [
            f"[tool.cnnbench.gate.{key}]",
            *[f"{k} = {json.dumps(v)}" for k, v in value.items()],
        ]
    else:
        lines.append(f"{key} = {json.dumps(value)}")
    (proj / "pyproject.toml").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli("gate", "check", "--baseline", "base.json", "--junit", "j.xml")
    assert code == 2 and out == ""
    _one_line(err, "pyproject.toml", needle)
    assert not marker.exists() and not (proj / "j.xml").exists()


def test_gate_unresolvable_second_model_stops_before_the_first_is_timed(
    proj: Path, run_cli: CLI
) -> None:
    marker = proj / "forward"
    _net(proj / "net.py", forward=f"open({str(marker)!r}, 'w')")
    code, _, err = run_cli(
        "gate", "check", "--baseline", "base.json", "-m", "net.py:Tiny", "-m", "nosuch.py:Net"
    )
    assert code == 2
    _one_line(err, "nosuch.py:Net", "no such file")
    assert not marker.exists()  # the first model was built but never run


# Statistics -----------------------------------------------------------------------------------
def test_stats_p_values_come_from_the_survival_function() -> None:
    a = [float(v) for v in range(100)]
    b = [float(v) + 1000 for v in range(100)]  # complete separation: z ~ 12
    test = mann_whitney_u(a, b)
    assert not test.exact and 0 < test.p_greater < 1e-30  # 1 - cdf would give exactly 0
    assert test.p_less == pytest.approx(1.0)
    decision = decide_latency(LatencySamples([a], [b]), n_boot=200)
    assert "p<1e-6" in decision.reason and "p=0" not in decision.reason


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]),  # exact, complete separation
        ([1.0, 3.0, 5.0, 7.0], [2.0, 4.0, 6.0, 8.0, 9.0]),  # exact, interleaved
        ([1.0, 2.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0]),  # ties: normal approximation
        ([float(i % 7) for i in range(60)], [float(i % 5) + 0.5 for i in range(50)]),  # many ties
        (
            [10 + 0.01 * ((i * 37) % 101) for i in range(150)],
            [10.2 + 0.01 * ((i * 53) % 97) for i in range(140)],
        ),
        ([float(v) for v in range(100)], [float(v) + 1000 for v in range(100)]),  # far tail
    ],
)
def test_stats_mann_whitney_matches_scipy(a: list[float], b: list[float]) -> None:
    stats = pytest.importorskip("scipy.stats")
    ours = mann_whitney_u(a, b)
    method = "exact" if ours.exact else "asymptotic"
    greater = stats.mannwhitneyu(b, a, alternative="greater", method=method, use_continuity=True)
    less = stats.mannwhitneyu(b, a, alternative="less", method=method, use_continuity=True)
    assert ours.u == pytest.approx(greater.statistic)
    assert ours.p_greater == pytest.approx(greater.pvalue, rel=1e-9, abs=1e-300)
    assert ours.p_less == pytest.approx(less.pvalue, rel=1e-9, abs=1e-300)


def test_stats_calibrated_verdict_values() -> None:
    cal = _samples(2.0, 61)
    samples = LatencySamples(
        [_samples(9.08)],
        [_samples(9.08 * 0.8)],
        baseline_calibration=cal,
        candidate_calibration=[0.8 * c for c in cal],
    )
    decision = decide_latency(samples, n_boot=200)
    lat, tput = gate.latency_verdicts("m", "c", samples, decision, 0, 1, 1)
    assert lat.candidate == pytest.approx(9.08 * 0.8) and lat.calibrated == pytest.approx(9.08)
    assert tput.calibrated == pytest.approx(1000 / 9.08)
    assert math.isclose(lat.ratio, 1.0, abs_tol=1e-9) and lat.decision == "pass"


def test_gate_config_rejects_a_stored_config_of_the_wrong_shape(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"config.gate: configs\[0\]: unknown field\(s\) bogus"):
        gate.config_from_dict({"configs": [{"bogus": 1}]}, f"{tmp_path}: config.gate")
    good = GateConfig(configs=(RuntimeConfig(device="cpu", resolution=32),))
    assert gate.config_from_dict(json.loads(json.dumps(good.to_dict()))) == good


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--budget", "0", "budget_s must be > 0 seconds"),
        ("--budget", "-1", "budget_s must be > 0 seconds"),
        ("--budget", "100", "exceeds 60 s per model check"),
        ("--threads", "0", "threads must be a positive integer"),
        ("--batch", "0", "batch size must be a positive integer"),
        ("--resolution", "-32", "resolution must be a positive integer"),
        ("--device", "tpu", "unknown device 'tpu'"),
    ],
)
def test_gate_bad_command_line_value_fails_before_any_model_is_built(
    proj: Path, run_cli: CLI, option: str, value: str, needle: str
) -> None:
    marker = proj / "built"
    _net(proj / "net.py", top=f"open({str(marker)!r}, 'w')\n")
    code, out, err = run_cli(
        "gate", "check", "--baseline", "base.json", "-m", "net.py:Tiny", option, value
    )
    assert code == 2 and out == ""
    _one_line(err, needle)
    assert not marker.exists()


def test_gate_verdicts_as_json_to_stdout(tmp_path: Path, run_cli: CLI) -> None:
    base = _run(tmp_path / "base.json", 9.08, calibration=2.0)
    cand = _run(tmp_path / "cand.json", 9.08, calibration=2.0)
    code, out, err = run_cli(
        "gate", "check", "--baseline", str(base), "--candidate", str(cand), "--json", "-"
    )
    assert code == 0, err
    verdicts = json.loads(out)["verdicts"]  # stdout is the JSON alone: no table mixed in
    assert any(v["metric"] == "latency_ms" and v["decision"] == "pass" for v in verdicts)
    assert not (tmp_path / "-").exists()
