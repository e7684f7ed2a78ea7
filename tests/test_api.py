"""Models users bring and the Python API: modules and specs mixed, any input size, the
machine-readable outputs (--json, --out -, CSV environment columns), --version."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import pandas as pd
import pytest
from torch import nn

import cnnbench
from cnnbench.errors import UsageError

FAST = {"device": "cpu", "threads": 1, "budget": 0.1}

MNIST = """
from torch import nn

def net():
    # one input channel, 28x28 (hand count: conv 1*8*9 + 8, linear 8*13*13*10 + 10)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 13 * 13, 10)
    )
"""
MNIST_PARAMS = (1 * 8 * 9 + 8) + (8 * 13 * 13 * 10 + 10)
MNIST_MACS = 8 * 26 * 26 * 9 + 8 * 13 * 13 * 10


@pytest.fixture
def mnist(tmp_path: Path) -> Path:
    path = tmp_path / "mnist.py"
    path.write_text(MNIST)
    return path


@pytest.mark.slow
def test_compare_mixes_modules_and_specs_and_returns_a_run(tmp_path: Path) -> None:
    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10))
    run = cnnbench.compare(["lenet5", plain], input_size=(1, 32, 32), **FAST)
    assert run.complete and [r.model for r in run.results] == ["lenet5", "Sequential"]
    mine = run.results[1]
    assert mine.params == (1 * 4 * 9 + 4) + (4 * 30 * 30 * 10 + 10)
    assert mine.latency_ms_median > 0 and mine.peak_memory_bytes is not None
    low, high = mine.latency_ratio_ci_low, mine.latency_ratio_ci_high
    assert low <= mine.latency_ratio <= high and isinstance(mine.latency_ratio_significant, bool)
    assert run.results[0].latency_ratio is None  # the baseline row
    df = run.to_dataframe()
    assert list(df["model"]) == ["lenet5", "Sequential"] and "latency_ratio" in df
    path = run.save(tmp_path / "run.json")
    again = cnnbench.load_run(path)
    assert [r.params for r in again.results] == [r.params for r in run.results]
    saved = json.loads(path.read_text())["results"]
    assert list(cnnbench.to_dataframe(saved)["params"]) == [61_706, mine.params]


def test_profile_static_only_of_a_one_channel_file_model(mnist: Path) -> None:
    run = cnnbench.profile(f"{mnist}:net", input_size=(1, 28, 28), static_only=True)
    (row,) = run.results
    assert row.input_size == [1, 28, 28]
    assert row.params == MNIST_PARAMS and row.macs == MNIST_MACS
    assert row.latency_ms_median is None


def test_input_size_on_the_command_line(mnist: Path, run_cli) -> None:
    code, stdout, stderr = run_cli("info", f"{mnist}:net", "--input-size", "1x28x28", "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["input_size"] == [1, 28, 28] and data["macs"] == MNIST_MACS
    code, _, stderr = run_cli("info", f"{mnist}:net", "--input-size", "1,28")
    assert code == 2 and "expected three positive integers C,H,W" in stderr


def test_out_dash_writes_one_format_to_stdout(tmp_path: Path, run_cli, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, stdout, stderr = run_cli("compare", "lenet5", "--static-only", "--out", "-", "-f", "csv")
    assert code == 0, stderr
    df = pd.read_csv(io.StringIO(stdout))
    assert df["params"].tolist() == [61_706]
    for column in ("env_host", "env_cpu", "env_torch", "env_threads", "env_commit"):
        assert column in df.columns
    assert df["env_torch"].iloc[0] == __import__("torch").__version__
    assert list(tmp_path.iterdir()) == []  # no directory named '-'
    code, _, stderr = run_cli("compare", "lenet5", "--static-only", "--out", "-", "-f", "csv,md")
    assert code == 2 and "one format" in stderr


def test_list_json_pipes_into_python(run_cli) -> None:
    code, stdout, _ = run_cli("list", "--json")
    rows = json.loads(stdout)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lenet5"]["params"] == 61_706 and by_name["lenet5"]["input_size"] == [1, 32, 32]
    assert len(rows) == len(cnnbench.models.list_models())


def test_se_and_claims_json(run_cli) -> None:
    code, stdout, stderr = run_cli("se", "se_resnet50", "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["overhead"]["added_params"] == 28_088_024 - 25_557_032
    assert data["claims"] and all("verdict" in c for c in data["claims"])
    code, _, stderr = run_cli("se", "net.py:Net")
    assert code == 2 and "needs a zoo model" in stderr


def test_version(run_cli) -> None:
    code, stdout, _ = run_cli("--version")
    assert code == 0 and stdout.strip() == f"cnnbench {cnnbench.__version__}"


@pytest.mark.parametrize("spec", [":", ".:x", "a:", "pkg.:f", "a b:c"])
def test_malformed_specs_are_one_line(spec: str) -> None:
    from cnnbench.spec import load

    with pytest.raises(UsageError, match="expected a zoo name, package.module:factory"):
        load(spec)


def test_a_file_that_exits_at_import_is_named(tmp_path: Path) -> None:
    from cnnbench.spec import load

    path = tmp_path / "cli_script.py"
    path.write_text("import argparse\nargparse.ArgumentParser().parse_args(['--nope'])\n")
    with pytest.raises(UsageError, match=r"cli_script.py called sys.exit\(2\).*__main__"):
        load(f"{path}:net")


def test_timm_models_get_their_native_input_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in ``timm`` module (no download, no real timm here): the model's own
    pretrained_cfg says 3x384x384, and that is what cnnbench feeds it."""

    def create_model(name: str, pretrained: bool = False) -> nn.Module:
        assert pretrained is False
        model = nn.Sequential(nn.Conv2d(3, 2, 16, stride=16), nn.Flatten())
        model.pretrained_cfg = {"input_size": (3, 384, 384)}
        return model

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    run = cnnbench.profile("timm:vit_base_patch16_384", static_only=True)
    assert run.results[0].input_size == [3, 384, 384]
    assert run.results[0].macs == 2 * 24 * 24 * 3 * 16 * 16


DYNAMIC = """
from torch import nn

class Dyn(nn.Module):
    # data-dependent control flow: .item() cannot run on the meta device
    def __init__(self):
        super().__init__()
        self.small = nn.Conv2d(3, 8, 3, padding=1)
        self.big = nn.Conv2d(3, 8, 5, padding=2)

    def forward(self, x):
        if x.mean().item() > 10.0:  # never for a standard normal input
            return self.big(x)
        return self.small(x)
"""


@pytest.mark.slow
def test_a_data_dependent_model_is_counted_on_real_tensors(tmp_path: Path, run_cli) -> None:
    (tmp_path / "dyn.py").write_text(DYNAMIC)
    code, stdout, stderr = run_cli("info", f"{tmp_path / 'dyn.py'}:Dyn", "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["params"] == (3 * 8 * 9 + 8) + (3 * 8 * 25 + 8)
    assert data["macs"] == 8 * 224 * 224 * 3 * 9  # the branch that ran: the 3x3 conv
    assert "counted on real CPU tensors" in data["notes"]
    run = cnnbench.compare([f"{tmp_path / 'dyn.py'}:Dyn"], input_size=(3, 32, 32), **FAST)
    (row,) = run.results
    assert row.status == "ok" and row.macs == 8 * 32 * 32 * 27 and row.latency_ms_median > 0


TWO_INPUTS = """
import torch
from torch import nn

class TwoInputs(nn.Module):
    # forward(x, mask): a 3x3 conv 3->8 (bias) whose output is masked
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.batches = []

    def forward(self, x, mask):
        self.batches.append(x.shape[0])
        return self.conv(x) * mask

def make():
    return TwoInputs()

def as_tuple():
    return torch.randn(1, 3, 32, 32), torch.ones(1, 1, 32, 32)

def as_dict():
    return {"x": torch.randn(1, 3, 32, 32), "mask": torch.ones(1, 1, 32, 32)}

def wrong():
    return 42

def batch_two():
    return torch.randn(2, 3, 32, 32), torch.ones(2, 1, 32, 32)
"""


@pytest.mark.slow
@pytest.mark.parametrize("form", ["as_tuple", "as_dict"])
def test_a_two_input_model_through_inputs(form: str, tmp_path: Path, run_cli) -> None:
    (tmp_path / "two.py").write_text(TWO_INPUTS)
    spec, inputs = f"{tmp_path / 'two.py'}:make", f"{tmp_path / 'two.py'}:{form}"
    code, stdout, stderr = run_cli("info", spec, "--inputs", inputs, "--json")
    assert code == 0, stderr
    data = json.loads(stdout)
    assert data["input_size"] == [3, 32, 32]
    assert data["macs"] == 8 * 32 * 32 * 3 * 9
    # FLOPs: 2 x MACs, the bias add and the mask multiply (1 per output element each)
    assert data["flops"] == 2 * data["macs"] + 2 * 8 * 32 * 32
    if form == "as_dict":  # timing the keyword form too adds nothing the tuple form does not
        return
    code, stdout, stderr = run_cli(
        "compare", spec, "--inputs", inputs, "--batch", "1,4", "--device", "cpu", "--threads",
        "1", "--budget", "0.2", "--json", "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, stderr
    rows = json.loads(stdout)["results"]
    assert [r["batch_size"] for r in rows] == [1, 4]
    assert all(r["status"] == "ok" and r["latency_ms_median"] > 0 for r in rows)
    assert all(r["peak_memory_bytes"] is not None for r in rows)


def test_example_inputs_in_python_are_repeated_to_the_batch(tmp_path: Path) -> None:
    import importlib.util

    (tmp_path / "two.py").write_text(TWO_INPUTS)
    module_spec = importlib.util.spec_from_file_location("two_inputs_test", tmp_path / "two.py")
    two = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(two)
    model = two.make()
    run = cnnbench.profile(model, example_inputs=two.as_tuple, batch=3, cpu_memory=False, **FAST)
    assert run.results[0].effective_batch_size == 3 and 3 in model.batches


@pytest.mark.parametrize(
    ("form", "message"),
    [("wrong", "expected a tensor, a tuple of tensors or a dict"), ("batch_two", "batch 1")],
)
def test_bad_example_inputs_are_one_line(form: str, message: str, tmp_path: Path, run_cli) -> None:
    (tmp_path / "two.py").write_text(TWO_INPUTS)
    code, _, stderr = run_cli(
        "info", f"{tmp_path / 'two.py'}:make", "--inputs", f"{tmp_path / 'two.py'}:{form}"
    )
    assert code == 2 and message in stderr and "Traceback" not in stderr


def test_the_counting_limit_covers_the_real_tensor_fallback() -> None:
    """A model that cannot run on meta (data-dependent) and never returns on real tensors is
    stopped by the counting limit, not left running."""
    import time

    import torch
    from torch import nn

    from cnnbench.api import static_profile
    from cnnbench.errors import UsageError
    from cnnbench.spec import LoadedModel, ensure_info

    class HangsOnRealTensors(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.sum().item() > -1e30:  # .item(): the meta device cannot run this
                while True:
                    time.sleep(0.01)
            return x

    module = HangsOnRealTensors()
    loaded = LoadedModel("hangs", ensure_info(module, "hangs"))
    start = time.monotonic()
    with pytest.raises(UsageError, match="counting did not finish within 1 s"):
        static_profile(loaded, input_size=(3, 8, 8), limit_s=1.0)
    assert time.monotonic() - start < 30
