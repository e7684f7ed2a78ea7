"""The four counting backends (cnnbench, torch, fvcore, thop) and their comparison.

Models run on real CPU tensors (fvcore traces with torch.jit and needs them): resnet50 at its
native 224x224, where the figures pinned are the ones in shared/reference/counters_and_timing.md;
the other models at 64x64, enough for rules that do not depend on the resolution (the backends
agree on MACs, torch's FLOPs are twice cnnbench's MACs, one SE gate per block). One intra-op
thread: the counts do not depend on it, and on a shared machine it is much faster.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from cnnbench.errors import UsageError
from cnnbench.static import backends, build_model, profile_static
from cnnbench.static.backends import (
    BACKENDS,
    CORE_CATEGORIES,
    CounterReport,
    compare_counters,
    run_backend,
)

ALL = ("cnnbench", "torch", "fvcore", "thop")
MODELS = ["resnet18", "resnet50", "se_resnet50", "ghostnet", "efficientnet_b0",
          "mobilenet_v3_large"]  # fmt: skip
NATIVE = {"resnet50"}  # pinned reference figures at 224x224
SMALL = 64


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _real(name: str, resolution: int | None = None) -> tuple[nn.Module, list[Tensor]]:
    """A zoo model on the CPU in eval mode, and an input (native size or ``resolution``).

    Built on meta and given zero-filled CPU storage: what is counted depends on shapes only,
    and this skips the weight initialisation (most of a real build's time)."""
    model = build_model(name).to_empty(device="cpu").eval()
    with torch.no_grad():
        for t in model.state_dict().values():
            t.zero_()
    c, h, w = model.model_info.input_size
    h = w = resolution or h
    return model, [torch.randn(1, c, h, w)]


@pytest.fixture(scope="module")
def compared() -> dict[str, backends.CounterComparison]:
    """All four backends on every model, computed once for the module."""
    torch.manual_seed(0)
    out = {}
    for name in MODELS:
        model, x = _real(name, None if name in NATIVE else SMALL)
        out[name] = compare_counters(model, x)
    return out


@pytest.mark.parametrize("name", MODELS)
def test_four_backends_agree_on_macs(name: str, compared) -> None:
    comparison = compared[name]
    assert set(comparison.reports) == set(ALL)
    assert comparison.warnings == []
    ref = comparison.reports["cnnbench"].macs
    assert ref > 0
    for backend, report in comparison.reports.items():
        assert abs(report.macs / ref - 1) <= 0.01, (backend, report.macs, ref)


@pytest.mark.parametrize("name", MODELS)
def test_cnnbench_macs_are_exactly_half_of_torch_flops(name: str, compared) -> None:
    reports = compared[name].reports
    assert reports["torch"].unit == "FLOPs"
    assert reports["torch"].total == 2 * reports["cnnbench"].macs
    # cnnbench also reports FLOPs under its rule table: more than 2 x MACs (BN, activations...)
    assert reports["cnnbench"].flops > reports["torch"].total


def test_resnet50_reference_totals(compared) -> None:
    reports = compared["resnet50"].reports
    assert reports["cnnbench"].total == 4_089_184_256  # torchvision's 4.089 "GFLOPS" (MACs)
    assert reports["torch"].total == 8_178_368_512
    assert reports["fvcore"].total == 4_111_512_576
    assert reports["thop"].total == 4_133_742_592


def test_resnet50_breakdown_explains_the_gaps(compared) -> None:
    reports = compared["resnet50"].reports
    macs = reports["cnnbench"].macs
    fv, th = reports["fvcore"].by_category, reports["thop"].by_category
    # same conv and linear MACs everywhere
    for report in reports.values():
        conv_matmul = {c: report.by_category.get(c, 0) for c in CORE_CATEGORIES}
        if report.unit == "FLOPs":
            conv_matmul = {c: v // 2 for c, v in conv_matmul.items()}
        # a CNN has no attention or recurrent work
        assert conv_matmul == {
            "conv": 4_087_136_256,
            "matmul": 2048 * 1000,
            "attention": 0,
            "rnn": 0,
        }
    # fvcore adds BatchNorm (2 per element) and the adaptive pool; thop BatchNorm at 4 per element
    bn_elements = 11_113_984  # the 53 BatchNorm outputs of resnet50 at 224
    assert fv["batchnorm"] == 2 * bn_elements and th["batchnorm"] == 4 * bn_elements
    assert reports["fvcore"].total == macs + fv["batchnorm"] + fv["pooling"]
    assert fv["pooling"] == 2048 * 7 * 7  # adaptive average pool over the last 7x7 map
    assert reports["thop"].total == macs + th["batchnorm"] + th["pooling"]
    # what each left out is listed
    assert {"max_pool2d", "add"} <= {u.name for u in reports["fvcore"].uncounted}
    assert {"native_batch_norm", "relu_", "add"} <= {u.name for u in reports["torch"].uncounted}
    assert reports["cnnbench"].uncounted == []


def test_se_gate_is_where_se_resnet50_counters_differ(compared) -> None:
    fvcore = compared["se_resnet50"].reports["fvcore"]
    torch_report = compared["se_resnet50"].reports["torch"]
    unsupported = {u.name: u.calls for u in fvcore.uncounted}
    assert unsupported["mul"] == 16 and unsupported["sigmoid"] == 16  # one per SE block
    assert {u.name for u in torch_report.uncounted} >= {"mul", "sigmoid", "mean"}


def test_mismatch_warns_naming_backend_and_category(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = (
        nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)),
        [torch.randn(1, 3, 8, 8)],
    )
    real = run_backend("cnnbench", model, x)
    conv = real.by_category["conv"]

    def inflated_conv(model: nn.Module, inputs) -> CounterReport:
        by_cat = {**real.by_category, "conv": conv * 2}
        return CounterReport("thop", "MACs", sum(by_cat.values()), sum(by_cat.values()), by_cat)

    monkeypatch.setitem(BACKENDS, "thop", inflated_conv)
    comparison = compare_counters(model, x, backends=("cnnbench", "thop"))
    assert len(comparison.warnings) == 1
    line = comparison.warnings[0]
    assert line.startswith("thop MACs differ from cnnbench")
    assert "responsible: conv" in line and "matmul" not in line.split("responsible:")[1]

    def inflated_matmul(model: nn.Module, inputs) -> CounterReport:
        by_cat = {**real.by_category, "matmul": real.by_category["matmul"] * 10}
        return CounterReport("fvcore", "MACs", sum(by_cat.values()), sum(by_cat.values()), by_cat)

    monkeypatch.setitem(BACKENDS, "fvcore", inflated_matmul)
    comparison = compare_counters(model, x, backends=("cnnbench", "fvcore"))
    assert len(comparison.warnings) == 1 and "responsible: matmul" in comparison.warnings[0]
    # a gap within the tolerance is no warning
    comparison = compare_counters(model, x, backends=("cnnbench", "fvcore"), tolerance=100.0)
    assert comparison.warnings == []


class RaisesInForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        self.bn(self.conv(x))
        raise RuntimeError("boom in forward")


def _no_leftovers(model: nn.Module) -> None:
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks, module
        assert "total_ops" not in module._buffers and not hasattr(module, "total_ops")
        assert "total_params" not in module._buffers


@pytest.mark.parametrize("backend", ALL)
def test_failing_forward_leaves_no_state(backend: str) -> None:
    model = RaisesInForward().eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom in forward"):
        run_backend(backend, model, [torch.randn(1, 3, 8, 8)])
    _no_leftovers(model)
    assert model.state_dict().keys() == state.keys()
    # the backend still works afterwards, and from zero
    conv = nn.Conv2d(3, 4, 3, bias=False).eval()
    report = run_backend(backend, conv, [torch.randn(1, 3, 8, 8)])
    assert report.macs == 4 * 6 * 6 * 3 * 9
    _no_leftovers(conv)


@pytest.mark.parametrize("backend", ALL)
def test_profiling_twice_gives_identical_numbers(backend: str) -> None:
    model, x = _real("mobilenet_v3_small", SMALL)
    first = run_backend(backend, model, x)
    second = run_backend(backend, model, x)
    assert first.macs > 0
    assert first == second
    _no_leftovers(model)


@pytest.mark.parametrize("backend", ALL)
def test_backends_never_print(backend: str, capfd: pytest.CaptureFixture[str]) -> None:
    model, x = _real("ghostnet", SMALL)
    capfd.readouterr()
    run_backend(backend, model, x)
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("backend", ALL)
def test_backends_leave_the_mode_alone(backend: str) -> None:
    model, x = _real("lenet5")
    model.train()
    run_backend(backend, model, x)
    assert all(m.training for m in model.modules())


def test_fvcore_on_meta_is_a_clear_usage_error() -> None:
    meta_model = build_model("resnet18")
    with pytest.raises(UsageError, match="fvcore.*real tensors"):
        run_backend("fvcore", meta_model, [torch.empty(1, 3, 224, 224, device="meta")])
    real_model, _ = _real("lenet5")
    with pytest.raises(UsageError, match="meta"):
        run_backend("fvcore", real_model, [torch.empty(1, 1, 32, 32, device="meta")])


def test_meta_capable_backends_match_real_tensors() -> None:
    real, x = _real("resnet18", SMALL)
    meta = build_model("resnet18").eval()
    xm = [torch.empty(1, 3, SMALL, SMALL, device="meta")]
    for backend in ("cnnbench", "torch"):
        assert run_backend(backend, meta, xm) == run_backend(backend, real, x)


def test_unknown_backend_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown counter 'ptflops'.*cnnbench"):
        run_backend("ptflops", nn.Identity(), [torch.zeros(1)])


# --- eval mode, and one count shared by the comparison and the profile -------------------------


class TinyResNet(nn.Module):
    """conv-BN-ReLU stem, one residual block (two conv-BN), global pool, linear: 3 BatchNorms."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.relu(self.stem(x))
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return self.fc(self.pool(torch.relu(x + y)).flatten(1))


# by hand, on 1x3x16x16: every map is 8x16x16 = 2048 elements
_MAP = 8 * 16 * 16
_CONV_MACS = _MAP * 3 * 9 + 2 * _MAP * 8 * 9  # stem, conv1, conv2
_FC_MACS = 8 * 10


def test_fvcore_counts_a_train_mode_model_in_eval_mode() -> None:
    model = TinyResNet().train()
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    report = run_backend("fvcore", model, [torch.randn(1, 3, 16, 16)])
    # eval-mode rules: BatchNorm 2 per element (train mode would count its statistics too),
    # adaptive pooling 1 per input element
    assert report.by_category == {
        "conv": _CONV_MACS,
        "matmul": _FC_MACS,
        "batchnorm": 3 * 2 * _MAP,
        "pooling": _MAP,
    }
    assert report.total == _CONV_MACS + _FC_MACS + 3 * 2 * _MAP + _MAP
    # the mode is put back and the BatchNorm statistics were not updated
    assert all(m.training for m in model.modules())
    assert all(torch.equal(stats[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("backend", ALL)
def test_every_backend_counts_train_mode_models_as_eval(backend: str) -> None:
    model, x = _real("resnet18", SMALL)
    eval_report = run_backend(backend, model, x)
    model.train()
    assert run_backend(backend, model, x) == eval_report
    assert all(m.training for m in model.modules())
    train_report = run_backend(backend, model, x, train=True)  # asked for: train mode
    if backend == "cnnbench":  # num_batches_tracked += 1 in each of the 20 BatchNorms
        assert train_report.flops == eval_report.flops + 20


def _counting_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count calls to count_dispatch from the backends and the profile."""
    from cnnbench.static import profile as profile_module

    calls: list[int] = []
    real = backends.count_dispatch

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(backends, "count_dispatch", counted)
    monkeypatch.setattr(profile_module, "count_dispatch", counted)
    return calls


def test_comparison_flops_equal_the_profile_and_reuse_it(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = _real("resnet18", SMALL)
    model.train()  # as `cnnbench profile` loads it
    calls = _counting_calls(monkeypatch)
    prof = profile_static(model, resolution=SMALL)
    assert len(calls) == 1  # one count per profile
    comparison = compare_counters(model, x)
    assert len(calls) == 2  # one count for both the cnnbench and the torch row
    assert comparison.reports["cnnbench"].flops == prof.flops
    assert comparison.reports["cnnbench"].macs == prof.macs
    reused = compare_counters(model, x, dispatch=prof.dispatch_for(x))
    assert len(calls) == 2  # nothing counted again
    assert reused.reports == comparison.reports
    assert all(m.training for m in model.modules())
    with pytest.raises(UsageError, match="profile is for input 1x3x64x64"):
        prof.dispatch_for([torch.randn(1, 3, 32, 32)])


def test_the_torch_counter_is_one_number_on_meta_and_real_models() -> None:
    """`--counter torch` (the profile, on meta) and the torch column of the comparison (a real
    model and input) agree, also for attention, whose fused CPU kernel FlopCounterMode has no
    formula for; the comparison names what it missed as the MAC-carrying operators."""
    from tests import external_patterns as ext

    torch.manual_seed(0)
    model = ext.TinyViT().eval()
    x = [torch.randn(1, 3, 32, 32)]
    on_meta = profile_static(model, input_size=(3, 32, 32), counter="torch", train_memory=False)
    comparison = compare_counters(model, x, backends=("cnnbench", "torch"))
    assert comparison.reports["torch"].macs == on_meta.macs == comparison.reports["cnnbench"].macs
    assert comparison.warnings == []


def test_the_comparison_names_the_missing_mac_carrying_operator() -> None:
    from tests import external_patterns as ext

    torch.manual_seed(0)
    model = ext.TinyViT().eval()
    comparison = compare_counters(
        model, [torch.randn(1, 3, 32, 32)], backends=("cnnbench", "fvcore")
    )
    (warning,) = comparison.warnings
    # fvcore has no handle for SDPA: 2 blocks x (2 heads x 16 x 16 scores) x (16 + 16) MACs
    assert comparison.reports["cnnbench"].macs - comparison.reports["fvcore"].macs == 32_768
    assert warning.endswith(
        "MAC-carrying operations it did not count: scaled_dot_product_attention"
    )
