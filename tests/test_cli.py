"""The command line as a user meets it: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cnnbench.cli import app

runner = CliRunner()


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m cnnbench`` as a user would (errors are handled in main())."""
    return subprocess.run(
        [sys.executable, "-m", "cnnbench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_help_alias_and_module_entry_point() -> None:
    result = runner.invoke(app, ["-h"])
    assert result.exit_code == 0
    for command in ("list", "info", "profile", "compare", "se", "claims", "report"):
        assert command in result.output
    proc = _cli("--help")
    assert proc.returncode == 0 and "compare" in proc.stdout


def test_list_pattern_shows_params_and_macs() -> None:
    result = runner.invoke(app, ["list", "resnet5*"])
    assert result.exit_code == 0, result.output
    assert "resnet50" in result.output and "resnet50_v1" in result.output
    assert "25.6 M" in result.output  # 25,557,032 params, three significant digits
    assert "4.09 GMACs" in result.output and "3.86 GMACs" in result.output  # the two layouts
    rows = {
        r["name"]: r for r in json.loads(runner.invoke(app, ["list", "resnet5*", "--json"]).stdout)
    }
    assert rows["resnet50"]["params"] == rows["resnet50_v1"]["params"] == 25_557_032
    assert rows["resnet50"]["macs"] == 4_089_184_256  # torchvision's 4.09 GFLOPS (v1.5)
    assert rows["resnet50_v1"]["macs"] < rows["resnet50"]["macs"]


def test_info_lists_stages() -> None:
    result = runner.invoke(app, ["info", "resnet50"])
    assert result.exit_code == 0, result.output
    for stage in ("stem", "stage1", "stage4", "head"):
        assert stage in result.output
    assert "15.0 M" in result.output  # stage4 params
    data = json.loads(runner.invoke(app, ["info", "resnet50", "--json"]).stdout)
    stage4 = next(s for s in data["stages"] if s["name"] == "stage4")
    # layer4: 3 bottlenecks of 512 planes + the 1x1 projection, with BN (hand-derived)
    first = 1024 * 512 + 9 * 512 * 512 + 512 * 2048 + 1024 * 2048 + 2 * (512 + 512 + 2048 + 2048)
    rest = 2048 * 512 + 9 * 512 * 512 + 512 * 2048 + 2 * (512 + 512 + 2048)
    assert stage4["params"] == first + 2 * rest == 14_964_736


def test_se_table_and_related_claims() -> None:
    result = runner.invoke(app, ["se", "se_resnet50"])
    assert result.exit_code == 0, result.output
    assert "1,572,864" in result.output  # (2/16) * 3 * 2048^2, the formula for stage4
    assert "62.4%" in result.output and "does not hold" in result.output


def test_se_follows_model_args() -> None:
    result = runner.invoke(app, ["se", "se_resnet50", "--model-arg", "se_reduction=8"])
    assert result.exit_code == 0, result.output
    assert "3,145,728" in result.output  # r = 8 doubles the stage4 formula


def test_claims_user_file(tmp_path: Path) -> None:
    claims = tmp_path / "mine.toml"
    claims.write_text(
        '[[claim]]\nid = "x"\ntext = "ResNet-50 has about 4.09 GMACs"\nsource = "me"\n'
        'measure = "gmacs"\nargs = { model = "resnet50" }\nexpected = 4.09\n'
        'tolerance = 0.01\nkind = "absolute"\nunit = "GMACs"\n'
    )
    result = runner.invoke(app, ["claims", "--file", str(claims)])
    assert result.exit_code == 0, result.output
    assert "4.089" in result.output and "holds" in result.output


def test_static_only_compare_json_to_stdout(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["compare", "lenet5", "senet18", "--static-only", "--json", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["schema_version"] == 2 and run["environment"]["torch"]
    assert [r["model"] for r in run["results"]] == ["lenet5", "senet18"]
    assert run["results"][0]["params"] == 61_706
    assert run["results"][1]["params"] == 11_260_354


def test_user_model_from_file(tmp_path: Path) -> None:
    (tmp_path / "net.py").write_text(
        "from torch import nn\n"
        "def make(width=8):\n"
        "    return nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.Flatten(),"
        " nn.Linear(width * 16 * 16, 10))\n"
    )
    result = runner.invoke(
        app,
        [
            "compare",
            f"{tmp_path / 'net.py'}:make",
            "--static-only",
            "--json",
            "--model-arg",
            "width=4",
            "--resolution",
            "16",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)["results"][0]
    assert row["model"] == "make" and row["family"] == "custom"
    assert row["params"] == 3 * 4 * 9 + 4 * 16 * 16 * 10 + 10
    assert row["macs"] == 16 * 16 * 4 * 3 * 9 + 4 * 16 * 16 * 10


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "resnet5O"], "did you mean resnet50"),
        (["info", "alexnet", "--resolution", "32"], "smallest that works is 3x63x63"),
        (["compare", "resnet18", "lenet5", "--batch", "0", "--device", "cpu"], "batch"),
        (["compare", "lenet5", "--device", "cuda"], "cuda"),
        (["report", "missing.json"], "missing.json"),
        (["compare", "lenet5", "--format", "pdf"], "unknown"),
        (["info", "nosuchfile.py:Net"], "no such file"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_cli
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, stderr = run_cli(*args)
    assert code == 2, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:") and message in lines[0]
    assert "Traceback" not in stderr


def test_corrupt_run_file_names_file_and_problem(tmp_path: Path, run_cli) -> None:
    bad = tmp_path / "run.json"
    bad.write_text('{"schema_version": 99, "results": []}')
    code, _, stderr = run_cli("report", str(bad))
    assert code == 2
    assert "run.json" in stderr and "schema version 99" in stderr


@pytest.mark.slow
def test_debug_shows_traceback() -> None:
    proc = _cli("--debug", "info", "resnet5O")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
