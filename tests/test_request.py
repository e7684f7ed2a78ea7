"""One request, one input rule: every door (CLI, Python API, sweep file, gate config) builds
the same :class:`~cnnbench.request.RunRequest`, and a bad input size reads the same from each."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import cnnbench
from cnnbench import choices
from cnnbench.cli.options import Counter, MemoryFormat, Precision, RunArgs
from cnnbench.errors import UsageError
from cnnbench.gate import config_from_mapping
from cnnbench.request import InputSpec, RunRequest, check_input_size, runtime_configs
from cnnbench.runtime import MEMORY_FORMATS, PRECISIONS, RuntimeConfig
from cnnbench.static import profile_static
from cnnbench.sweep import load_sweep

BAD_SIZE = "input size 3x0x8: expected three positive integers C,H,W (at most 65536)"


# --- the same request from every door ----------------------------------------------------------
def _sweep(tmp_path: Path, body: str) -> Any:
    path = tmp_path / "s.toml"
    path.write_text(f'[sweep]\nmodels = ["lenet5"]\n{body}')
    return load_sweep(path)


def test_cli_api_sweep_and_gate_build_the_same_request(tmp_path: Path) -> None:
    # the same knobs, spelled as each door spells them
    cli = RunArgs(
        device="cpu", batch=["1,8"], precision=[Precision.fp32, Precision.bf16],
        memory_format=MemoryFormat.both, budget=0.5, call_timeout=7.0, input_size="1x32x32",
        threads=1,
    ).request(["lenet5"])  # fmt: skip
    api = RunRequest.of(
        ["lenet5"], device="cpu", batch=[1, 8], precision=["fp32", "bf16"],
        memory_format="both", budget=0.5, call_timeout=7, input_size=(1, 32, 32), threads=1,
    )  # fmt: skip
    sweep = _sweep(
        tmp_path,
        'device = "cpu"\nbatch = [1, 8]\nprecision = ["fp32", "bf16"]\nmemory_format = "both"\n'
        "budget = 0.5\ncall_timeout = 7\ninput_size = [1, 32, 32]\nthreads = 1\n",
    ).request("lenet5")
    assert cli == api == sweep
    assert len(api.configs) == 2 * 2 * 2  # batch x precision x memory format
    assert {c.call_limit_s for c in api.configs} == {7.0}
    assert api.inputs == InputSpec((1, 32, 32))

    gate = config_from_mapping(
        {
            "models": ["lenet5"],
            "device": "cpu",
            "batch_sizes": [1, 8],
            "precision": ["fp32", "bf16"],
            "memory_format": ["contiguous", "channels_last"],
            "threads": 1,
            "call_timeout": 7,
        }  # fmt: skip
    )
    # the gate keeps its own timing budget (GateConfig.budget_s) and a tighter CI target
    same = [dataclasses.replace(c, budget_s=0.5, target_ci=0.02) for c in gate.configs]
    assert same == list(api.configs)


def test_one_default_per_knob() -> None:
    request = RunRequest.of(["lenet5"])
    (config,) = request.configs
    assert config == RuntimeConfig()  # the builder's defaults are RuntimeConfig's
    assert config.budget_s == choices.DEFAULT_BUDGET_S
    assert RunArgs().request(["lenet5"]) == request  # the CLI adds no defaults of its own
    assert load_sweep_defaults() == request.configs


def load_sweep_defaults() -> tuple[RuntimeConfig, ...]:
    from cnnbench.sweep import Sweep

    return Sweep(models=("lenet5",)).request("lenet5").configs


def test_choices_are_the_cli_enums_and_the_runtime_maps() -> None:
    assert tuple(p.value for p in Precision) == choices.PRECISIONS == tuple(PRECISIONS)
    assert tuple(c.value for c in Counter) == choices.COUNTERS
    assert tuple(MEMORY_FORMATS) == choices.MEMORY_FORMATS
    assert [f.value for f in MemoryFormat] == [*choices.MEMORY_FORMATS, "both"]
    from cnnbench.report import FORMATS

    assert tuple(FORMATS) == choices.FORMATS
    with pytest.raises(UsageError, match="unknown memory format 'nhwc'; use one of contiguous"):
        RuntimeConfig(memory_format="nhwc")


def test_request_module_does_not_import_torch() -> None:
    code = "import sys, cnnbench.request, cnnbench.choices; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- one input rule and one error text ---------------------------------------------------------
def test_the_shape_rule() -> None:
    native = (3, 224, 224)
    assert InputSpec().shape(native) == native
    assert InputSpec().shape(native, resolution=160) == (3, 160, 160)
    assert InputSpec((1, 28, 20)).shape(native) == (1, 28, 20)  # size beats native
    assert InputSpec((1, 28, 20)).shape(native, resolution=32) == (1, 32, 32)  # then H = W
    example = InputSpec.of(example=torch.zeros(1, 2, 5, 7))
    assert example.shape(native, resolution=32) == (2, 5, 7)  # the example beats everything
    with pytest.raises(UsageError, match="net: no default input size; pass input_size"):
        InputSpec().shape(None, name="net")


def test_one_error_text_for_a_bad_input_size_from_every_door(tmp_path: Path, run_cli) -> None:
    texts = []
    with pytest.raises(UsageError) as exc:
        check_input_size((3, 0, 8))
    texts.append(str(exc.value))
    with pytest.raises(UsageError) as exc:
        cnnbench.profile("lenet5", input_size=(3, 0, 8), static_only=True)
    texts.append(str(exc.value))
    with pytest.raises(UsageError) as exc:
        _sweep(tmp_path, "input_size = [3, 0, 8]\n")
    texts.append(str(exc.value))
    with pytest.raises(UsageError) as exc:
        profile_static("lenet5", input_size=(3, 0, 8))
    texts.append(str(exc.value))
    code, _, stderr = run_cli("compare", "lenet5", "--input-size", "3x0x8", "--static-only")
    assert code == 2
    texts.append(stderr.strip())
    code, _, stderr = run_cli("info", "lenet5", "--input-size", "3,0,8")
    assert code == 2
    texts.append(stderr.strip())
    for text in texts:
        assert "\n" not in text
        assert BAD_SIZE in text
        assert "expected three positive integers C,H,W (at most 65536), e.g. 3,224,224" in text


def test_one_error_text_for_an_input_the_model_cannot_take() -> None:
    """The static count and the runtime's own check report a too-small input the same way."""
    from cnnbench.models import create_model
    from cnnbench.runtime import prepare

    with pytest.raises(UsageError) as static:
        profile_static("lenet5", resolution=8)
    with pytest.raises(UsageError) as runtime:
        prepare(create_model("lenet5"), RuntimeConfig(device="cpu", resolution=8), name="lenet5")
    assert str(static.value) == str(runtime.value)
    assert str(static.value).startswith("lenet5: forward failed on input 1x8x8 (")
    assert str(static.value).endswith("the smallest that works is 1x32x32")


def test_real_tensor_fallback_uses_the_requested_size() -> None:
    """api.py once sized the real-tensor fallback's memory check at the native input."""
    from cnnbench.api import resolve_model, static_profile

    class Dyn(nn.Module):  # data-dependent control flow: the meta device cannot run it
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.model_info = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) * (2 if x.sum().item() > 0 else 1)

    prof = static_profile(resolve_model(Dyn()), input_size=(1, 12, 10))
    assert prof.input_size == (1, 12, 10)
    assert prof.macs == 2 * 9 * 10 * 8  # by hand: 2 out channels x 3x3 taps x 10x8 outputs


# --- the doors' knobs ---------------------------------------------------------------------------
def test_gate_ab_accepts_a_comma_list_of_batches(run_cli, monkeypatch, tmp_path: Path) -> None:
    from cnnbench import gate

    config = tmp_path / "gate.toml"
    config.write_text('[tool.cnnbench.gate]\ndevice = "cpu"\n')
    seen: list[Any] = []

    def fake_ab(baseline: str, candidate: str, cfg: Any, **_: Any) -> None:
        seen.append(cfg)
        raise UsageError("stop here")

    monkeypatch.setattr(gate, "ab", fake_ab)
    code, _, stderr = run_cli(
        "gate", "ab", "--baseline", "lenet5", "--candidate", "lenet5", "--batch", "1,2",
        "--call-timeout", "5", "--config", str(config),
    )  # fmt: skip
    assert code == 2 and "stop here" in stderr
    (cfg,) = seen
    assert [c.batch_size for c in cfg.configs] == [1, 2]
    assert {c.call_limit_s for c in cfg.configs} == {5.0}


def test_call_timeout_reaches_the_engine(monkeypatch) -> None:
    import cnnbench.api as api

    seen: list[RuntimeConfig] = []

    def fake_measure(entries: Any, config: RuntimeConfig, **_: Any) -> list[Any]:
        seen.append(config)
        return []

    monkeypatch.setattr(api, "measure_config", fake_measure)
    cnnbench.compare(["lenet5", "lenet5"], device="cpu", budget=0.5, call_timeout=5, batch=[1, 2])
    assert [(c.batch_size, c.call_limit_s) for c in seen] == [(1, 5.0), (2, 5.0)]


class Sleeps(nn.Module):
    """A forward that takes 20 s on real tensors (shapes only on the meta device)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_meta:
            time.sleep(20)
        return self.conv(x)


def test_call_timeout_from_the_python_api_ends_a_hanging_call() -> None:
    start = time.perf_counter()
    run = cnnbench.compare(
        [Sleeps()], input_size=(3, 8, 8), device="cpu", budget=0.2, call_timeout=0.5,
        cpu_memory=False,
    )  # fmt: skip
    (row,) = run.results
    assert row.status == "timeout" and "within 0.5 s" in (row.error or "")
    assert time.perf_counter() - start < 15.0  # the 20 s call was not waited for
    assert run.config["configs"][0]["call_timeout_s"] == 0.5


def test_depth_through_the_python_api() -> None:
    run = cnnbench.profile("lenet5", static_only=True, depth=1)
    (row,) = run.results
    assert row.layers and all(layer.depth == 1 for layer in row.layers)


def test_debug_after_the_command(run_cli) -> None:
    code, _, stderr = run_cli("list", "nothing-matches-this*")
    assert code == 2 and stderr.startswith("error: no model matches")
    with pytest.raises(UsageError, match="no model matches"):  # --debug: raised, traceback
        run_cli("list", "nothing-matches-this*", "--debug")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"models": ["x"], "modles": 1}, "cfg: tool.cnnbench.gate.modles: unknown key; known:"),
        ({"models": ["x"], "mode": "eval"}, "cfg: unknown mode 'eval'; use one of inference"),
    ],
)
def test_gate_config_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError) as exc:
        config_from_mapping(table, "cfg")
    assert message in str(exc.value)


def test_sweep_knob_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"sweep.call_timeout: call timeout must be a number"):
        _sweep(tmp_path, "call_timeout = -1\n")
    with pytest.raises(UsageError, match=r"sweep.colour: unknown key; known: batch, budget"):
        _sweep(tmp_path, "colour = 1\n")


def test_runtime_configs_axes() -> None:
    configs = runtime_configs(device="cpu", batch=[1, 2], resolution=[32, 64], train=True)
    assert [(c.batch_size, c.resolution, c.mode) for c in configs] == [
        (1, 32, "train"), (1, 64, "train"), (2, 32, "train"), (2, 64, "train"),
    ]  # fmt: skip
