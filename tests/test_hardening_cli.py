"""Bad input on the main commands, as a clumsy user or an attacker would type it: options,
specs, resources and data files. Each case: exit 2, one line that names the problem and the
fix, no traceback, and nothing left in the output directory."""

from __future__ import annotations

from pathlib import Path

import pytest

BAD_FACTORIES = """
import sys
from torch import nn

def not_a_module():
    return 42

def needs_args(width):
    return nn.Linear(width, 2)

instance = nn.Linear(2, 2)

def huge():
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 224 * 224, 66_000))  # 9.9e9 weights
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.py").write_text(BAD_FACTORIES)
    (tmp_path / "exits.py").write_text("import sys\nsys.exit(3)\n")
    (tmp_path / "raises.py").write_text("raise RuntimeError('broken at import\\nsecond line')\n")
    (tmp_path / "notjson.json").write_text("{nope")
    (tmp_path / "adir").mkdir()
    (tmp_path / "zero.toml").write_text(
        '[[claim]]\nid = "z"\ntext = "t"\nsource = "s"\nmeasure = "params"\n'
        'args = { model = "lenet5" }\nexpected = 0\ntolerance = 0.1\nkind = "relative"\n'
        'unit = "count"\n'
    )
    return tmp_path


def _check(run_cli, workdir: Path, args: list[str], message: str, one_line: bool = True) -> None:
    out = workdir / "out"
    code, _, stderr = run_cli(*args, "--out", str(out)) if _takes_out(args) else run_cli(*args)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    if one_line:
        errors = [ln for ln in stderr.splitlines() if ln.strip()]
        assert len(errors) == 1, stderr
        assert errors[0].startswith("error:") and message in errors[0], errors[0]
    else:
        assert message in stderr
    assert not out.exists() or not list(out.iterdir())  # nothing half-written


def _takes_out(args: list[str]) -> bool:
    return args[0] in ("compare", "profile") and "--out" not in args


OPTIONS = [
    (["compare", "lenet5", "--budget", "inf"], "time budget must be a number of seconds"),
    (["compare", "lenet5", "--budget", "1e300"], "time budget must be a number of seconds"),
    (["compare", "lenet5", "--budget", "0"], "time budget must be a number of seconds"),
    (["compare", "lenet5", "--budget", "-1"], "time budget must be a number of seconds"),
    (["compare", "lenet5", "--budget", "nan"], "time budget must be a number of seconds"),
    (["compare", "lenet5", "--threads", "999"], "use --threads 1.."),
    (["compare", "lenet5", "--threads", "0"], "threads must be a positive integer"),
    (["compare", "lenet5", "--batch", "0"], "batch size must be a positive integer"),
    (["compare", "lenet5", "--batch", "x"], "--batch 'x': not an integer"),
    (["compare", "lenet5", "--format", "pdf"], "--format pdf: unknown"),
    (["compare", "lenet5", "--device", "tpu"], "unknown device 'tpu'"),
    (["compare", "lenet5", "--device", "cuda:x"], "unknown device"),
    (["compare", "lenet5", "--resolution", "0"], "resolution must be a positive integer"),
    (["compare", "lenet5", "--input-size", "0,1,1"], "three positive integers"),
    (["compare", "lenet5", "--input-size", "abc"], "three positive integers"),
    (["info", "lenet5", "--input-size", "3,2"], "three positive integers"),
    (["compare", "lenet5", "--out", "-", "-f", "csv,md"], "--out - writes one format"),
    (["compare", "lenet5", "--baseline", "vgg16"], "--baseline 'vgg16' is not among"),
    (["compare", "lenet5", "--model-arg", "novalue"], "expected key=value"),
    (["compare", "lenet5", "--model-arg", "1x=2"], "expected key=value"),
]

SPECS = [
    (["info", ":"], "expected a zoo name, package.module:factory"),
    (["info", ".:x"], "expected a zoo name, package.module:factory"),
    (["info", "a:"], "expected a zoo name, package.module:factory"),
    (["info", "resnet5O"], "did you mean resnet50"),
    (["info", "nosuchfile.py:Net"], "no such file"),
    (["info", "os:nosuch"], "'nosuch' not found"),
    (["info", "no_such_package_xyz:net"], "cannot import 'no_such_package_xyz'"),
    (["info", "exits.py:net"], "exits.py called sys.exit(3)"),
    (["info", "raises.py:net"], "importing raises.py failed (RuntimeError: broken at import)"),
    (["info", "bad.py:not_a_module"], "returned int, not a torch.nn.Module"),
    (["info", "bad.py:needs_args"], "could not build the model"),
    (["info", "bad.py:instance", "--model-arg", "x=1"], "is a module instance"),
    (["info", "lenet5", "--model-arg", "bogus=1"], "bad model arguments"),
    (["info", "alexnet", "--resolution", "32"], "smallest that works is 3x63x63"),
    (["se", "nosuch"], "unknown model 'nosuch'"),
    (["se", "bad.py:instance"], "needs a zoo model"),
    (["se", "resnet50"], "has no SE blocks"),
]

RESOURCES = [
    (["compare", "bad.py:huge", "--device", "cpu"], "weights 37.0 GiB"),
    (["compare", "resnet50", "--batch", "100000", "--device", "cpu"], "more than the"),
    # (sides above 65536 are refused as a bad input size: cnnbench.request.check_input_size)
    (["profile", "resnet50", "--resolution", "60000", "--device", "cpu"], "input 40.2 GiB"),
]

FILES = [
    (["report", "missing.json"], "missing.json"),
    (["report", "notjson.json"], "notjson.json"),
    (["report", "adir"], "adir"),
    (["report", "/dev/zero"], "not a regular file"),
    (["claims", "--file", "/dev/zero"], "/dev/zero"),
    (["claims", "--file", "zero.toml"], "expected"),
]


@pytest.mark.parametrize(
    ("args", "message"), OPTIONS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_options(args: list[str], message: str, workdir: Path, run_cli) -> None:
    _check(run_cli, workdir, args, message)


@pytest.mark.parametrize(
    ("args", "message"), SPECS, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_specs(args: list[str], message: str, workdir: Path, run_cli) -> None:
    _check(run_cli, workdir, args, message)


@pytest.mark.parametrize(
    ("args", "message"), RESOURCES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_resources_refused_before_allocating(
    args: list[str], message: str, workdir: Path, run_cli
) -> None:
    _check(run_cli, workdir, args, message)


def test_info_of_a_huge_model_allocates_nothing(workdir: Path, run_cli) -> None:
    """9.9e9 weights (37 GiB): counted on the meta device in a second, never allocated."""
    code, stdout, stderr = run_cli("info", "bad.py:huge", "--json")
    assert code == 0, stderr
    assert '"params": 9934848000' in stdout.replace(" ", "") or "9934848000" in stdout


@pytest.mark.parametrize(
    ("args", "message"), FILES, ids=lambda v: " ".join(v) if isinstance(v, list) else ""
)
def test_data_files(args: list[str], message: str, workdir: Path, run_cli) -> None:
    _check(run_cli, workdir, args, message)


@pytest.mark.parametrize(
    "choice", [["--precision", "fp8"], ["--counter", "flops"], ["--memory-format", "nhwc"]]
)
def test_closed_choices_exit_2_without_traceback(choice: list[str], workdir: Path, run_cli) -> None:
    _check(run_cli, workdir, ["compare", "lenet5", *choice], "Invalid value", one_line=False)


def test_markdown_and_csv_outputs_are_neutralised(workdir: Path, run_cli) -> None:
    (workdir / "evil.py").write_text(
        "from torch import nn\ndef net():\n    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2))\n"
    )
    import shutil

    # a display name is the factory's name: give the file a hostile-looking factory alias
    hostile = workdir / "hostile.py"
    shutil.copy(workdir / "evil.py", hostile)
    code, _, stderr = run_cli(
        "compare", "hostile.py:net", "--static-only", "--input-size", "3,8,8", "--out",
        str(workdir / "r"), "-f", "md,csv",
    )  # fmt: skip
    assert code == 0, stderr
    from cnnbench.report.files import _csv_cell
    from cnnbench.report.table import md_escape

    assert _csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _csv_cell(-1.5) == "-1.5"
    assert md_escape("<script>x</script>|") == "&lt;script&gt;x&lt;/script&gt;\\|"


HANG = """
import time
from torch import nn

class Hang(nn.Module):
    # returns on the meta device (counting) but never on real tensors
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        while x.device.type != "meta":
            time.sleep(0.05)
        return self.conv(x)

class HangAlways(Hang):
    def forward(self, x):
        while True:
            time.sleep(0.05)
"""


@pytest.mark.slow
def test_a_forward_that_never_returns_is_a_timeout_row(workdir: Path, run_cli) -> None:
    import json

    (workdir / "hang.py").write_text(HANG)
    code, stdout, stderr = run_cli(
        "compare", "lenet5", "hang.py:Hang", "--device", "cpu", "--threads", "1", "--budget",
        "0.2", "--call-timeout", "1", "--json", "--out", str(workdir / "out"),
    )  # fmt: skip
    assert code == 0, stderr
    ok, hung = json.loads(stdout)["results"]
    assert ok["status"] == "ok" and ok["latency_ms_median"] > 0  # the run went on
    assert hung["status"] == "timeout" and "did not return within 1 s" in hung["error"]


def test_a_forward_that_never_returns_while_counting_is_one_line(
    workdir: Path, run_cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cnnbench import api

    monkeypatch.setattr(api, "STATIC_CALL_LIMIT_S", 1.0)
    (workdir / "hang.py").write_text(HANG)
    _check(run_cli, workdir, ["info", "hang.py:HangAlways"], "counting did not finish within 1 s")


@pytest.mark.parametrize("value", ["0", "-1", "inf"])
def test_call_timeout_is_checked(value: str, workdir: Path, run_cli) -> None:
    _check(run_cli, workdir, ["compare", "lenet5", "--call-timeout", value], "call timeout must")
