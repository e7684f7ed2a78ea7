"""Hardening of the pytest plugin (issue 13): the ``cnnbench_latency`` fixture gives honest
numbers or a one-line reason, never a made-up or silently defaulted measurement.

Each case runs a tiny test file with pytester in this process (budgets of 0.2 s)."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch

pytest_plugins = ["pytester"]

MODEL = "nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())"


def _plugin_args() -> list[str]:
    installed = any(
        ep.value == "cnnbench.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )
    return [] if installed else ["-p", "cnnbench.pytest_plugin"]


def _run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(
        test_case=f"""
        import torch
        from torch import nn

        def test_case(cnnbench_latency):
            model = {MODEL}
            {body}
        """
    )
    return pytester.runpytest_inprocess(*_plugin_args(), "-p", "no:cacheprovider", "-rsf", *args)


def _reason(result: pytest.RunResult, kind: str) -> str:
    """The one line that gives the reason of a failed or skipped test (the summary line is
    cut to the terminal width, so the full line is taken from the report); a failure shows
    no traceback and no source."""
    text = result.stdout.str()
    if kind == "FAILED":
        assert "Traceback" not in text and "def test_case" not in text, text
        lines = [line for line in text.splitlines() if line.startswith("cnnbench_latency: ")]
    else:
        lines = [line for line in text.splitlines() if line.startswith("SKIPPED")]
    assert len(lines) == 1, text
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_plugin_cuda_without_cuda_skips_in_one_line(pytester: pytest.Pytester, device: str) -> None:
    result = _run(
        pytester,
        f"cnnbench_latency(model, torch.randn(1, 3, 8, 8), device={device!r}, budget_s=0.2)",
    )
    result.assert_outcomes(skipped=1)
    line = _reason(result, "SKIPPED")
    assert "CUDA is not available" in line and "device='cpu'" in line
    assert "dummy base class" not in result.stdout.str()


@pytest.mark.parametrize(
    ("device", "needle"), [("tpu", "unknown device 'tpu'"), ("cuda:x", "unknown device")]
)
def test_plugin_unknown_device_fails_in_one_line(
    pytester: pytest.Pytester, device: str, needle: str
) -> None:
    result = _run(pytester, f"cnnbench_latency(model, torch.randn(1, 3, 8, 8), device={device!r})")
    result.assert_outcomes(failed=1)
    assert needle in _reason(result, "FAILED")


@pytest.mark.parametrize("budget", ["0", "-1", "nan", "inf"])
def test_plugin_non_positive_budget_option_is_refused(
    pytester: pytest.Pytester, budget: str
) -> None:
    result = _run(
        pytester, "cnnbench_latency(model, torch.randn(1, 3, 8, 8))", "--cnnbench-budget", budget
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "--cnnbench-budget" in err and "must be a positive number of seconds" in err
    assert "Traceback" not in err and "passed" not in result.stdout.str()  # no test ran


@pytest.mark.parametrize("budget", ["0", "-0.5", "'2'", "True", "float('nan')"])
def test_plugin_non_positive_budget_argument_fails(pytester: pytest.Pytester, budget: str) -> None:
    result = _run(pytester, f"cnnbench_latency(model, torch.randn(1, 3, 8, 8), budget_s={budget})")
    result.assert_outcomes(failed=1)
    assert "budget_s=" in _reason(result, "FAILED")


def test_plugin_budget_option_is_used(pytester: pytest.Pytester) -> None:
    # The control case: a positive budget is honoured (not replaced by the 2 s default).
    result = _run(
        pytester,
        "stats = cnnbench_latency(model, torch.randn(1, 3, 8, 8), target_ci=1e-9)\n"
        "            assert stats.stop_reason == 'budget' and stats.elapsed_s < 1.0",
        "--cnnbench-budget",
        "0.2",
    )
    result.assert_outcomes(passed=1)


def test_plugin_benchmark_disable_times_one_real_call(pytester: pytest.Pytester) -> None:
    out = pytester.path / "pb.json"
    result = _run(
        pytester,
        "stats = cnnbench_latency(model, torch.randn(1, 3, 8, 8), budget_s=0.2)\n"
        "            assert stats.timed_iters == 1 and stats.stop_reason == 'benchmark-disabled'\n"
        "            assert stats.median_ms > 0 and stats.samples_ms == [stats.median_ms]",
        "--benchmark-disable",
        f"--benchmark-json={out}",
    )
    result.assert_outcomes(passed=1)
    assert not out.exists() or json.loads(out.read_text())["benchmarks"] == []


@pytest.mark.parametrize(
    ("setup", "needle"),
    [
        (
            "model = model.to('meta'); x = torch.randn(1, 3, 8, 8)",
            "the model is on the meta device",
        ),
        ("x = torch.randn(1, 3, 8, 8, device='meta')", "the input is on the meta device"),
        (
            "x = (torch.randn(1, 3, 8, 8), torch.empty(2, device='meta'))",
            "the input is on the meta",
        ),
    ],
    ids=["meta-model", "meta-input", "meta-in-tuple"],
)
def test_plugin_meta_device_is_refused(pytester: pytest.Pytester, setup: str, needle: str) -> None:
    result = _run(pytester, f"{setup}\n            cnnbench_latency(model, x, budget_s=0.2)")
    result.assert_outcomes(failed=1)
    line = _reason(result, "FAILED")
    assert needle in line and "to_empty" in line


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        ("cnnbench_latency(model)", "an nn.Module needs its inputs"),
        ("cnnbench_latency(42)", "expected an nn.Module or a callable, got int"),
        ("cnnbench_latency(model, torch.randn(1, 3, 8, 8), target_ci=0)", "target_ci=0"),
    ],
    ids=["no-inputs", "not-callable", "target-ci"],
)
def test_plugin_misuse_fails_in_one_line(pytester: pytest.Pytester, call: str, needle: str) -> None:
    result = _run(pytester, call)
    result.assert_outcomes(failed=1)
    assert needle in _reason(result, "FAILED")


def test_plugin_measures_through_the_engine_a_nan_output_fails_in_one_line(
    pytester: pytest.Pytester,
) -> None:
    # The fixture inherits the engine's first-call check: a non-finite output is no latency.
    result = _run(
        pytester,
        "cnnbench_latency(lambda: torch.full((2,), float('nan')), budget_s=0.2, name='n')",
        "-p",
        "no:benchmark",
    )
    result.assert_outcomes(failed=1)
    assert "n: nonfinite: model output contains NaN or inf" in _reason(result, "FAILED")


def test_plugin_measures_through_the_engine_samples_are_its_blocks(
    pytester: pytest.Pytester,
) -> None:
    # Samples come from the engine's rounds: at least its minimum number of rounds of blocks.
    result = _run(
        pytester,
        "stats = cnnbench_latency(model, torch.randn(1, 3, 8, 8), budget_s=0.3)\n"
        "            from cnnbench.runtime.engine import MIN_ROUNDS\n"
        "            assert stats.timed_iters >= MIN_ROUNDS == 5\n"
        "            assert stats.stop_reason in ('ci', 'budget', 'max_rounds')",
    )
    result.assert_outcomes(passed=1)
