"""The CI regression gate: statistics against hand-computed cases, the decision table,
calibration, exit codes through the CLI, report formats and the pytest-benchmark bridge.

Everything here is small: tiny models at 32 px, budgets well under a second."""

from __future__ import annotations

import importlib.metadata
import json
import math
import random
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from cnnbench import gate
from cnnbench.cli import app
from cnnbench.errors import UsageError
from cnnbench.gate import (
    GateConfig,
    GateReport,
    LatencySamples,
    Verdict,
    bootstrap_ratio_ci,
    decide_latency,
    decide_with_remeasure,
    mann_whitney_u,
)
from cnnbench.results import SCHEMA_VERSION
from cnnbench.runtime import RuntimeConfig

pytest_plugins = ["pytester"]

runner = CliRunner()

NET = """
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),{extra}
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10),
        )

    def forward(self, x):
        return self.body(x)
"""
EXTRA_CONV = "\n            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),"

GATE_TOML = """
[tool.cnnbench.gate]
models = ["net.py:Tiny"]
device = "cpu"
resolution = 32
threads = 1
budget_s = 0.3
calibration_s = 0.1
max_remeasure = 1
memory = false
n_boot = 300
rounds = 4
# These CLI tests check the plumbing. A tiny model timed for 0.3 s on a shared machine can drift
# by more than 5%, so a latency failure here would say nothing about the gate; the decision
# rules are tested on synthetic samples below, their error rates in benchmarks/bench_gate.py.
min_effect = 0.5
"""

# Uncalibrated checks of the same code, for the plumbing: a tiny model's latency on a machine
# shared with other work (test workers, a noisy VM) can drift past +50% without a calibration,
# so here only about a doubling counts.
UNCALIBRATED_TOML = (
    GATE_TOML.replace("min_effect = 0.5", "min_effect = 0.95") + "calibrate = false\n"
)


def _noise(n: int, seed: int, mean: float = 10.0, sd: float = 0.2) -> list[float]:
    rng = random.Random(seed)
    return [rng.gauss(mean, sd) for _ in range(n)]


# Mann-Whitney U ---------------------------------------------------------------------------------
def test_mann_whitney_exact_small_cases() -> None:
    # Complete separation: the only ordering with U = 9 of C(6, 3) = 20 -> p = 1/20.
    m = mann_whitney_u([1, 2, 3], [4, 5, 6])
    assert m.exact and m.u == 9 and m.p_greater == pytest.approx(0.05) and m.p_less == 1.0
    # a = 1,3,5; b = 2,4,6: U = 1 + 2 + 3 = 6. Counts of U = 0..9 for 3 vs 3 are
    # 1,1,2,3,3,3,3,2,1,1 -> P(U >= 6) = (3+2+1+1)/20, P(U <= 6) = 1 - (2+1+1)/20.
    m = mann_whitney_u([1, 3, 5], [2, 4, 6])
    assert m.u == 6 and m.p_greater == pytest.approx(7 / 20) and m.p_less == pytest.approx(16 / 20)
    # Symmetry: swapping the sides swaps the tails.
    rev = mann_whitney_u([2, 4, 6], [1, 3, 5])
    assert rev.p_less == pytest.approx(m.p_greater)


def test_mann_whitney_normal_approximation_with_ties() -> None:
    # a = 1,2,2,3; b = 2,3,3,4. Average ranks: 1 -> 1; the three 2s -> 3; the three 3s -> 6;
    # 4 -> 8. b's rank sum 3+6+6+8 = 23 -> U = 23 - 10 = 13, mean 8.
    # Tie term sum(t^3 - t)/(N(N-1)) = 48/56; var = 16/12 * (9 - 48/56) = 10.857.
    m = mann_whitney_u([1, 2, 2, 3], [2, 3, 3, 4])
    assert not m.exact and m.u == 13
    var = 16 / 12 * (9 - 48 / 56)
    z_cc = (13 - 8 - 0.5) / math.sqrt(var)  # 1.3657
    expected = 0.5 * math.erfc(z_cc / math.sqrt(2))
    assert m.p_greater == pytest.approx(expected) and m.p_greater == pytest.approx(0.0860, abs=5e-4)
    # All values equal: no evidence at all.
    flat = mann_whitney_u([1.0] * 5, [1.0] * 5)
    assert flat.p_greater == 1.0 and flat.p_less == 1.0


def test_mann_whitney_large_shift_is_significant() -> None:
    a = _noise(200, 1)
    assert mann_whitney_u(a, [v * 1.10 for v in a]).p_greater < 1e-10
    assert mann_whitney_u(a, _noise(200, 2)).p_greater > 0.01


# Bootstrap ------------------------------------------------------------------------------------
def test_bootstrap_ci_is_seeded_and_covers_the_ratio() -> None:
    a, b = [_noise(300, 3)], [_noise(300, 4, mean=11.0)]
    first = bootstrap_ratio_ci(a, b, seed=7, n_boot=500)
    assert first == bootstrap_ratio_ci(a, b, seed=7, n_boot=500)  # reproducible
    assert first != bootstrap_ratio_ci(a, b, seed=8, n_boot=500)
    assert first[0] < 1.1 < first[1] and first[1] - first[0] < 0.03
    # Paired rounds: whole rounds are resampled; same seed, same answer.
    rounds_a = [_noise(10, 10 + i) for i in range(8)]
    rounds_b = [[v * 1.2 for v in r] for r in rounds_a]
    lo, hi = bootstrap_ratio_ci(rounds_a, rounds_b, paired=True, seed=1, n_boot=300)
    assert lo == pytest.approx(1.2, rel=0.02) and hi == pytest.approx(1.2, rel=0.02)


# Decision table ----------------------------------------------------------------------------------
def _decide(a: list[float], b: list[float], **kw: float) -> gate.Decision:
    return decide_latency(LatencySamples([a], [b]), n_boot=500, **kw)


def test_decision_table() -> None:
    a = _noise(200, 11)
    big = _decide(a, [v * 1.20 for v in _noise(200, 12)])
    assert big.outcome == "regression" and big.significant and big.ci_low >= 1.05
    small = _decide(a, [v * 1.02 for v in _noise(200, 13)])
    assert small.outcome == "pass" and small.significant and small.ci_high < 1.05
    same = _decide(a, _noise(200, 14))
    assert same.outcome == "pass" and not same.significant
    faster = _decide(a, [v * 0.8 for v in _noise(200, 15)])
    assert faster.outcome == "improvement"
    # Large effect but not significant (5 noisy samples a side): ambiguous.
    loud = _decide([1, 2, 3, 4, 5], [1.5, 2.5, 3.5, 4.5, 5.5])
    assert loud.outcome == "ambiguous" and not loud.significant and loud.ratio > 1.05
    # Significant, but the CI straddles the +5% threshold: ambiguous.
    wide_a = _noise(120, 16, sd=1.0)
    edge = _decide(wide_a, [v * 1.05 for v in _noise(120, 17, sd=1.0)])
    assert edge.outcome == "ambiguous" and edge.significant
    assert edge.ci_low < 1.05 <= edge.ci_high


def test_ambiguous_results_are_remeasured() -> None:
    calls: list[int] = []

    def clear_regression(s: LatencySamples) -> None:
        calls.append(1)
        s.baseline.append(_noise(200, 20 + len(calls)))
        s.candidate.append([v * 1.3 for v in _noise(200, 40 + len(calls))])

    samples = LatencySamples([[1, 2, 3, 4, 5]], [[1.5, 2.5, 3.5, 4.5, 5.5]])
    decision, n = decide_with_remeasure(samples, clear_regression, max_remeasure=3, n_boot=300)
    assert n == 1 and calls == [1] and decision.outcome == "regression"

    def nothing_new(s: LatencySamples) -> None:
        calls.append(2)

    samples = LatencySamples([[1, 2, 3, 4, 5]], [[1.5, 2.5, 3.5, 4.5, 5.5]])
    decision, n = decide_with_remeasure(samples, nothing_new, max_remeasure=2, n_boot=300)
    assert n == 2 and calls.count(2) == 2
    assert decision.outcome == "pass" and "still ambiguous after 2" in decision.reason


def test_calibration_normalises_a_uniformly_slower_machine() -> None:
    work, cal = _noise(200, 30), _noise(200, 31, mean=2.0, sd=0.02)
    # The baseline was saved on a machine 1.3x slower: model and calibration both 1.3x.
    slow_base = LatencySamples(
        [[1.3 * v for v in work]],
        [_noise(200, 32)],
        baseline_calibration=[1.3 * c for c in cal],
        candidate_calibration=_noise(200, 33, 2.0, 0.02),
    )
    d = decide_latency(slow_base, n_boot=500)
    assert d.outcome == "pass" and d.calibration_ratio == pytest.approx(1 / 1.3, rel=0.01)
    assert d.ratio == pytest.approx(1.0, abs=0.02)
    raw = decide_latency(LatencySamples(slow_base.baseline, slow_base.candidate), n_boot=500)
    assert raw.outcome == "improvement"  # without calibration it would read as 1.3x faster
    # A real 20% slowdown measured on a 1.3x faster machine is still caught.
    hidden = LatencySamples(
        [work],
        [[v * 1.2 / 1.3 for v in _noise(200, 34)]],
        baseline_calibration=cal,
        candidate_calibration=[c / 1.3 for c in _noise(200, 35, 2.0, 0.02)],
    )
    assert decide_latency(hidden, n_boot=500).outcome == "regression"
    # A machine 2x faster is outside what a calibration can correct: unusable, not a verdict.
    twice = LatencySamples(
        [work], [work], baseline_calibration=cal, candidate_calibration=[c / 2 for c in cal]
    )
    with pytest.raises(gate.CalibrationError, match="re-save the baseline"):
        decide_latency(twice, n_boot=500)


def test_deterministic_and_memory_verdicts() -> None:
    assert gate.deterministic_verdict("m", "c", "params", 100, 101).decision == "regression"
    assert gate.deterministic_verdict("m", "c", "params", 100, 101, tol=0.02).decision == "pass"
    assert gate.deterministic_verdict("m", "c", "macs", 100, 90).decision == "improvement"
    assert gate.deterministic_verdict("m", "c", "flops", None, 90).decision == "skipped"
    assert gate.memory_verdict("m", "c", 1000, 1090).decision == "pass"
    assert gate.memory_verdict("m", "c", 1000, 1200).decision == "regression"


def test_config_from_pyproject_and_limits(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        GATE_TOML + "batch_sizes = [1, 4]\n[tool.cnnbench.gate.tolerance]\nparams = 0.01\n"
    )
    cfg = gate.load_config(tmp_path / "pyproject.toml")
    assert cfg is not None and cfg.models == ("net.py:Tiny",)
    assert [c.batch_size for c in cfg.configs] == [1, 4] and cfg.configs[0].resolution == 32
    assert cfg.tolerance("params") == 0.01 and cfg.tolerance("peak_memory_bytes") == 0.10
    with pytest.raises(UsageError, match="exceeds 60 s"):
        GateConfig(budget_s=25, max_remeasure=2)
    with pytest.raises(UsageError, match="unknown key"):
        gate.config_from_mapping({"modles": ["x"]})
    assert gate.config_from_dict(cfg.to_dict()) == cfg


# CLI: exit codes ----------------------------------------------------------------------------------
def _main(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run the console entry point in-process (errors become one line + exit code there)."""
    from cnnbench.cli import main

    monkeypatch.setattr(sys, "argv", ["cnnbench", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return int(exc.value.code or 0), capsys.readouterr().err


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tmp project with a tiny model and a [tool.cnnbench.gate] table, as the cwd."""
    (tmp_path / "net.py").write_text(NET.format(extra=""))
    (tmp_path / "pyproject.toml").write_text(GATE_TOML)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    torch.set_num_threads(1)
    return tmp_path


@pytest.mark.slow
def test_cli_save_check_pass_then_extra_conv_fails(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = runner.invoke(app, ["gate", "save", "-o", "base.json", "-q"])
    assert result.exit_code == 0, result.output
    saved = json.loads((project / "base.json").read_text())
    assert saved["schema_version"] == SCHEMA_VERSION
    assert saved["environment"]["torch"] == torch.__version__
    models = [r["model"] for r in saved["results"]]
    assert models == ["Tiny", f"{gate.CALIBRATION_MODEL}/Tiny"]
    assert len(saved["results"][0]["samples_ms"]) > 20 and saved["results"][0]["params"] == 314
    # The checks below test the plumbing; they run uncalibrated, since a calibration ratio
    # outside 0.7-1.4 (a machine whose load changed between save and check) is exit 2 by
    # design (tested on hand-made files in test_hardening_gate.py).
    (project / "pyproject.toml").write_text(UNCALIBRATED_TOML)

    summary = project / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    same = runner.invoke(app, ["gate", "check", "--baseline", "base.json", "--junit", "ok.xml"])
    assert same.exit_code == 0, same.output
    assert "latency_ms" in same.output and "regression" not in same.output
    assert "| Tiny |" in summary.read_text() and "✅ **pass**" in summary.read_text()

    (project / "net.py").write_text(NET.format(extra=EXTRA_CONV))
    bad = runner.invoke(app, ["gate", "check", "--baseline", "base.json", "--junit", "bad.xml"])
    assert bad.exit_code == 1, bad.output
    assert "params" in bad.output and "regression" in bad.output
    suite = ET.parse(project / "bad.xml").getroot().find("testsuite")
    assert suite is not None
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert "cpu fp32 contiguous b1 32px params" in failed
    assert summary.read_text().count("## cnnbench gate") == 2  # appended, not overwritten


@pytest.mark.slow  # a real uncalibrated A/A check: serially, away from other test workers
def test_missing_corrupt_and_mismatched_baselines_exit_2(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _main(monkeypatch, capsys, "gate", "check", "--baseline", "nope.json")
    assert code == 2 and "nope.json: no such file" in err and err.count("\n") == 1
    (project / "bad.json").write_text('{"schema_version": 1, "results": [')
    code, err = _main(monkeypatch, capsys, "gate", "check", "--baseline", "bad.json")
    assert code == 2 and "not a readable JSON file" in err and err.count("\n") == 1

    (project / "pyproject.toml").write_text(UNCALIBRATED_TOML)
    assert runner.invoke(app, ["gate", "save", "-o", "base.json", "-q"]).exit_code == 0
    data = json.loads((project / "base.json").read_text())
    data["environment"]["torch"] = "1.0.0"
    (project / "old.json").write_text(json.dumps(data))
    code, err = _main(monkeypatch, capsys, "gate", "check", "--baseline", "old.json", "-q")
    assert code == 2 and "torch 1.0.0 ->" in err and "--allow-env-mismatch" in err
    code, err = _main(
        monkeypatch, capsys, "gate", "check", "--baseline", "old.json", "-q", "--allow-env-mismatch"
    )
    assert code == 0, err
    data["schema_version"] = 99
    (project / "v99.json").write_text(json.dumps(data))
    code, err = _main(monkeypatch, capsys, "gate", "check", "--baseline", "v99.json")
    assert code == 2 and "schema version 99" in err


# Reports ------------------------------------------------------------------------------------------
def _report() -> GateReport:
    return GateReport(
        "check",
        "base.json",
        "now",
        verdicts=[
            Verdict("m", "cpu b1", "params", 10, 12, "regression", "params grew +20.0% (exact)"),
            Verdict(
                "m",
                "cpu b1",
                "latency_ms",
                5.0,
                5.1,
                "pass",
                "+2.0%",
                ratio=1.02,
                p_value=0.3,
                ci_low=0.99,
                ci_high=1.04,
            ),
            Verdict("m", "cpu b1", "peak_memory_bytes", None, 5, "skipped", "not measured"),
        ],
        settings={"alpha": 0.01, "min_effect": 0.05},
    )


def test_junit_xml_is_valid_with_a_failure_per_regression() -> None:
    report = _report()
    root = ET.fromstring(gate.to_junit_xml(report))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "3" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.find("failure") is not None for c in cases] == [True, False, False]
    assert cases[2].find("skipped") is not None and report.exit_code == 1


def test_step_summary_is_appended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "step.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert gate.write_step_summary(_report()) == target
    gate.write_step_summary(_report())
    text = target.read_text()
    assert text.count("❌ **regression**") == 2 and "| m | cpu b1 | params | 10 | 12 |" in text
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    assert gate.write_step_summary(_report()) is None


# pytest-benchmark interop ----------------------------------------------------------------------------
def _pytest_benchmark_json(path: Path, seconds: list[float], name: str = "test_net") -> Path:
    path.write_text(
        json.dumps(
            {
                "machine_info": {"python_version": "3.11.7", "cpu": {"brand_raw": "Some CPU"}},
                "commit_info": {"id": "abc"},
                "benchmarks": [
                    {
                        "name": name,
                        "fullname": f"tests/x.py::{name}",
                        "extra_info": {},
                        "stats": {"median": sorted(seconds)[len(seconds) // 2], "data": seconds},
                    }
                ],
                "datetime": "2026-01-01T00:00:00",
                "version": "5.3.1",
            }
        )
    )
    return path


def test_reads_pytest_benchmark_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    base_s = [v / 1000 for v in _noise(100, 50)]
    base = _pytest_benchmark_json(tmp_path / "0001_base.json", base_s)
    run = gate.load_baseline(base)
    assert run.results[0].model == "test_net" and run.environment["cpu"] == "Some CPU"
    assert run.results[0].samples_ms == pytest.approx([s * 1000 for s in base_s])
    slow = _pytest_benchmark_json(
        tmp_path / "0002_slow.json", [v * 1.25 / 1000 for v in _noise(100, 51)]
    )
    # A plain pytest-benchmark file records no torch version, device or threads.
    with pytest.raises(UsageError, match="lacks torch"):
        gate.compare_files(GateConfig(n_boot=300), base, slow)
    report = gate.compare_files(GateConfig(n_boot=300), base, slow, allow_env_mismatch=True)
    assert [v.decision for v in report.verdicts] == ["regression", "regression"]
    monkeypatch.chdir(tmp_path)
    args = ("gate", "ab", "--baseline", str(base), "--candidate", str(slow), "-q")
    code, _ = _main(monkeypatch, capsys, *args, "--allow-env-mismatch")
    assert code == 1
    bare = json.loads(base.read_text())
    del bare["benchmarks"][0]["stats"]["data"]
    (tmp_path / "nodata.json").write_text(json.dumps(bare))
    with pytest.raises(UsageError, match="--benchmark-save-data"):
        gate.load_baseline(tmp_path / "nodata.json")


def _plugin_args() -> list[str]:
    installed = any(
        ep.value == "cnnbench.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", "cnnbench.pytest_plugin"]


def test_pytest_plugin_records_cnnbench_samples(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_latency="""
        import torch
        from torch import nn

        def test_tiny(cnnbench_latency):
            model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
            stats = cnnbench_latency(model, torch.randn(2, 3, 16, 16), name="tiny", budget_s=0.3)
            assert stats.median_ms > 0 and stats.timed_iters >= 10
    """
    )
    out = pytester.path / "pb.json"
    result = pytester.runpytest_inprocess(
        *_plugin_args(), "-p", "no:cacheprovider", f"--benchmark-json={out}", "-q"
    )
    result.assert_outcomes(passed=1)
    bench = json.loads(out.read_text())["benchmarks"][0]
    info = bench["extra_info"]["cnnbench"]
    assert info["model"] == "tiny" and info["batch_size"] == 2 and info["input_size"] == [3, 16, 16]
    data = bench["stats"]["data"]
    assert len(data) >= 10 and bench["options"]["timer"] == "cnnbench.runtime.engine"
    assert bench["stats"]["median"] * 1000 == pytest.approx(info["median_ms"], rel=1e-9)
    run = gate.load_baseline(out)  # the gate reads what the plugin wrote
    assert run.results[0].model == "tiny" and run.results[0].batch_size == 2


# A/B interleaved -----------------------------------------------------------------------------------
class _Net(nn.Module):
    def __init__(self, extra_matmuls: int = 0, extra_conv: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.more = nn.Conv2d(8, 8, 3, padding=1) if extra_conv else nn.Identity()
        self.head = nn.Linear(8, 4)
        self.extra = extra_matmuls
        self.register_buffer("w", torch.randn(96, 96))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.more(torch.relu(self.conv(x))).mean((2, 3))
        w = self.w
        for _ in range(self.extra):  # extra real work (counted by the MAC counter too)
            w = w @ self.w
        return self.head(y) + w[:1, :4]


@pytest.mark.slow
def test_ab_interleaved_catches_slowdown_and_passes_a_a() -> None:
    cfg = GateConfig(
        configs=(RuntimeConfig(device="cpu", resolution=32, threads=1),),
        budget_s=1.0,
        rounds=6,
        memory=False,
        n_boot=300,
        max_remeasure=1,
        min_effect=0.25,  # plumbing, not error rates (those are in benchmarks/bench_gate.py)
        metrics=("latency_ms", "throughput_ips"),
    )
    same = gate.ab(("net", _Net()), ("net", _Net()), cfg)
    assert same.exit_code == 0 and len(same.verdicts) == 2
    lat = same.verdicts[0]
    assert lat.metric == "latency_ms" and lat.n_baseline >= 6 * 3 and lat.n_candidate >= 6 * 3
    slow = gate.ab(("net", _Net()), ("net", _Net(extra_matmuls=20)), cfg)
    assert slow.exit_code == 1 and slow.verdicts[0].ratio > 1.5


def test_ab_extra_conv_is_a_deterministic_regression_without_timing() -> None:
    cfg = GateConfig(
        configs=(RuntimeConfig(device="cpu", resolution=32),), budget_s=5.0, memory=False
    )
    report = gate.ab(("net", _Net()), ("net", _Net(extra_conv=True)), cfg)
    failed = {v.metric for v in report.regressions}
    assert {"params", "macs", "flops"} <= failed
    timing = [v for v in report.verdicts if v.metric == "latency_ms"]
    assert [v.decision for v in timing] == ["skipped"] and "not timed" in timing[0].reason
    assert timing[0].n_baseline is None  # no sample was taken
