"""cnnbench's dispatch-level counter (cnnbench.counting).

* One case per rule in RULES, on a tiny module or op, with the expected MACs and FLOPs worked
  out by hand from the shapes (never by calling the counter). A guard test fails when a rule
  is added without a case.
* The small reference cases every correct counter must reproduce
  (shared/reference/counters_and_timing.md), including how the other backends count them.
* Every op the zoo's forward passes hit has a rule or is a free op; meta and real tensors
  give identical counts; the counter never prints and leaves no hooks behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils._python_dispatch import TorchDispatchMode

from cnnbench.models import SqueezeExcite
from cnnbench.static import build_model
from cnnbench.static.backends import run_backend
from cnnbench.static.counting import DispatchCount, count_dispatch, count_saved_bytes
from cnnbench.static.meta_shapes import META_SHAPES
from cnnbench.static.rules import FREE_OPS, RULES

aten = torch.ops.aten


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One intra-op thread for the real-tensor passes: the counts do not depend on it, and on a
    shared machine several threads per process can make small CPU ops many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# The shape most cases use: 1 x 16 x 32 x 32 = 16,384 elements.
N, C, H, W = 1, 16, 32, 32
ELEMS = N * C * H * W
assert ELEMS == 16_384


class Fn(nn.Module):
    """Wrap a function of the inputs as a module (count_dispatch counts a module's forward)."""

    def __init__(self, fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: Tensor) -> Tensor:
        return self.fn(*args)


def x16() -> Tensor:
    return torch.randn(N, C, H, W)


class Call(nn.Module):
    """A module called through ``fn(module, *inputs)`` (kept as a child, so it moves with
    ``.to``)."""

    def __init__(self, module: nn.Module, fn: Callable[..., Tensor]) -> None:
        super().__init__()
        self.module = module.eval()
        self.fn = fn

    def forward(self, *inputs: Tensor) -> Tensor:
        return self.fn(self.module, *inputs)


@dataclass
class Case:
    """One rule: a module, its inputs, and the hand-computed MACs and FLOPs."""

    module: nn.Module
    inputs: list[Tensor]
    macs: int
    flops: int


def _bn_args(training: bool) -> Callable[[Tensor], Tensor]:
    weight, bias = torch.ones(C), torch.zeros(C)
    mean, var = torch.zeros(C), torch.ones(C)
    if training:
        return lambda x: aten._native_batch_norm_legit(x, weight, bias, mean, var, True, 0.1, 1e-5)
    return lambda x: aten._native_batch_norm_legit_no_training(
        x, weight, bias, mean, var, 0.1, 1e-5
    )


def _case(rule: str) -> Case:
    x = x16()
    per_elem = {  # activation / elementwise rules: FLOPs per output element, stated by hand
        "relu": (nn.ReLU(), 1),
        "relu_": (nn.ReLU(inplace=True), 1),
        "hardtanh": (nn.ReLU6(), 1),
        "hardtanh_": (nn.ReLU6(inplace=True), 1),
        "leaky_relu": (nn.LeakyReLU(0.1), 2),
        "leaky_relu_": (nn.LeakyReLU(0.1, inplace=True), 2),
        "sigmoid": (nn.Sigmoid(), 4),
        "sigmoid_": (Fn(lambda t: t.sigmoid_()), 4),
        "silu": (nn.SiLU(), 5),
        "silu_": (nn.SiLU(inplace=True), 5),
        "hardsigmoid": (nn.Hardsigmoid(), 3),
        "hardsigmoid_": (nn.Hardsigmoid(inplace=True), 3),
        "hardswish": (nn.Hardswish(), 4),
        "hardswish_": (nn.Hardswish(inplace=True), 4),
        "tanh": (nn.Tanh(), 5),
        "tanh_": (Fn(lambda t: t.tanh_()), 5),
        "gelu": (nn.GELU(), 8),
        "gelu_": (Fn(lambda t: aten.gelu_(t)), 8),
        "_softmax": (nn.Softmax(dim=1), 5),
        "_safe_softmax": (Fn(lambda t: aten._safe_softmax(t, 1)), 5),
        "abs": (Fn(torch.abs), 1),
        "adaptive_max_pool2d": (nn.AdaptiveMaxPool2d(2), 1),  # per input element
        "sum": (Fn(lambda t: t.sum()), 1),  # 1 per *input* element; the output is a scalar
        "mean": (Fn(lambda t: t.mean((2, 3))), 1),  # per input element
        "_adaptive_avg_pool2d": (nn.AdaptiveAvgPool2d(2), 1),  # per input element
        "native_batch_norm": (nn.BatchNorm2d(C).eval(), 2),
        "_native_batch_norm_legit_no_training": (Fn(_bn_args(training=False)), 2),
        "_native_batch_norm_legit": (Fn(_bn_args(training=True)), 2),
        "native_layer_norm": (nn.LayerNorm(W), 5),  # with affine weight and bias
        "native_group_norm": (nn.GroupNorm(4, C), 5),  # with affine weight and bias
    }
    if rule in per_elem:
        module, k = per_elem[rule]
        return Case(module, [x], 0, k * ELEMS)
    binary = {
        "add": lambda a, b: a + b,
        "add_": lambda a, b: a.add_(b),
        "sub": lambda a, b: a - b,
        "sub_": lambda a, b: a.sub_(b),
        "mul": lambda a, b: a * b,
        "mul_": lambda a, b: a.mul_(b),
        "div": lambda a, b: a / b,
        "div_": lambda a, b: a.div_(b),
    }
    if rule in binary:
        return Case(Fn(binary[rule]), [x, x16()], 0, ELEMS)  # one FLOP per output element
    if rule == "convolution":
        # 3x3, 16 -> 32, stride 2, with bias: out 1x32x16x16
        out = 1 * 32 * 16 * 16
        macs = out * 16 * 3 * 3
        return Case(nn.Conv2d(16, 32, 3, stride=2, padding=1), [x], macs, 2 * macs + out)
    if rule == "mm":
        a, b = torch.randn(4, 32), torch.randn(32, 10)
        return Case(Fn(torch.mm), [a, b], 4 * 32 * 10, 2 * 4 * 32 * 10)
    if rule == "addmm":
        # nn.Linear(32 -> 10) on a batch of 4: MACs = B*in*out; FLOPs = 2*MACs + B*out bias adds
        return Case(nn.Linear(32, 10), [torch.randn(4, 32)], 4 * 32 * 10, 2 * 4 * 32 * 10 + 4 * 10)
    if rule == "bmm":
        a, b = torch.randn(2, 3, 4), torch.randn(2, 4, 5)
        return Case(Fn(torch.bmm), [a, b], 2 * 3 * 4 * 5, 2 * 2 * 3 * 4 * 5)
    if rule == "max_pool2d_with_indices":
        # 3x3 window, stride 2, padding 1: out 1x16x16x16; 9 comparisons per output element
        return Case(nn.MaxPool2d(3, 2, 1), [x], 0, 9 * 16 * 16 * 16)
    if rule == "avg_pool2d":
        # non-square 2x3 window, stride = window: out 1x16x16x10; 6 adds per output element
        return Case(nn.AvgPool2d((2, 3)), [x], 0, 2 * 3 * 16 * 16 * 10)
    vol = torch.randn(1, 2, 4, 4, 4)  # 128 elements; 2x2x2 windows -> 16 outputs
    if rule in ("max_pool3d_with_indices", "avg_pool3d"):
        pool = nn.MaxPool3d(2) if rule == "max_pool3d_with_indices" else nn.AvgPool3d(2)
        return Case(pool, [vol], 0, 8 * 16)  # 8 comparisons / adds per output element
    if rule == "_adaptive_avg_pool3d":
        return Case(nn.AdaptiveAvgPool3d(2), [vol], 0, 128)  # 1 per input element
    if rule == "baddbmm":
        c, a, b = torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)
        return Case(Fn(torch.baddbmm), [c, a, b], 2 * 3 * 4 * 5, 2 * 120 + 30)  # + 30 adds
    if rule == "baddbmm_":
        c, a, b = torch.randn(2, 3, 5), torch.randn(2, 3, 4), torch.randn(2, 4, 5)
        return Case(Fn(lambda c, a, b: c.baddbmm_(a, b)), [c, a, b], 120, 2 * 120 + 30)
    upsample = {  # mode, input, output elements, FLOPs per output element
        "upsample_linear1d": ("linear", torch.randn(1, 16, 32), 16 * 64, 3),
        "upsample_bilinear2d": ("bilinear", x, 4 * ELEMS, 9),
        "upsample_trilinear3d": ("trilinear", vol, 8 * 128, 21),
        "upsample_bicubic2d": ("bicubic", x, 4 * ELEMS, 35),
    }
    if rule in upsample:
        mode, t, out, k = upsample[rule]
        fn = Fn(lambda t: F.interpolate(t, scale_factor=2, mode=mode, align_corners=False))
        return Case(fn, [t], 0, k * out)
    if rule == "_scaled_dot_product_flash_attention_for_cpu":
        # q, k, v: 1 x 2 heads x 32 x 16; scores 2*32*32 = 2048, each meets E + Ev = 32
        q, k, v = (torch.randn(1, 2, 32, 16) for _ in range(3))
        macs = 2048 * 32
        # 2 MACs + softmax 5 per score + scaling 1 per element of q and of k
        return Case(
            Fn(F.scaled_dot_product_attention), [q, k, v], macs, 2 * macs + 5 * 2048 + 2 * 1024
        )
    if rule == "_native_multi_head_attention":
        # MHA(16, 4 heads) on 8 tokens: in-proj 3*8*16*16, q k^T and weights v 2*8*8*16,
        # out-proj 8*16*16
        macs = 3 * 8 * 256 + 2 * 8 * 8 * 16 + 8 * 256
        scores = 4 * 8 * 8
        # 2 MACs + q scaling 8*16 + softmax 5/score + qkv bias 3*8*16 + out bias 8*16
        # + head-averaged weights 1/score
        flops = 2 * macs + 128 + 5 * scores + 384 + 128 + scores
        mha = nn.MultiheadAttention(16, 4, batch_first=True)
        return Case(Call(mha, lambda m, t: m(t, t, t)[0]), [torch.randn(1, 8, 16)], macs, flops)
    if rule == "mkldnn_rnn_layer":
        # LSTM(8 -> 16) over 5 steps: MACs 5 * (W_ih 64x8 + W_hh 64x16); FLOPs 2 MACs + per
        # step and unit 30 (gates) + 8 (two biases of 4 gates)
        lstm = nn.LSTM(8, 16, batch_first=True)
        macs = 5 * (64 * 8 + 64 * 16)
        flops = 2 * macs + 5 * 16 * (30 + 8)
        return Case(Call(lstm, lambda m, t: m(t)[0]), [torch.randn(1, 5, 8)], macs, flops)
    raise KeyError(rule)


def _fused_direct_cases() -> dict[str, tuple[list[object], tuple[int, int]]]:
    """Rules for kernels that a CPU run never dispatches (CUDA attention and cell kernels,
    aten.lstm/gru/rnn_* which decompose before a dispatch mode sees them): their arguments as
    the kernel receives them (meta tensors) and the hand-counted (MACs, FLOPs)."""
    meta = torch.device("meta")
    q = torch.empty(2, 4, 10, 8, device=meta)  # batch 2, 4 heads, L 10, E 8
    k = torch.empty(2, 4, 6, 8, device=meta)  # S 6
    v = torch.empty(2, 4, 6, 12, device=meta)  # Ev 12
    scores = 2 * 4 * 10 * 6
    attention = (scores * (8 + 12), 2 * scores * 20 + 5 * scores + q.numel() + k.numel())
    out: dict[str, tuple[list[object], tuple[int, int]]] = {
        name: ([q, k, v, None, False], attention)
        for name in (
            "_scaled_dot_product_flash_attention",
            "_scaled_dot_product_efficient_attention",
            "_scaled_dot_product_cudnn_attention",
            "_scaled_dot_product_fused_attention_overrideable",
        )
    }
    x = torch.empty(7, 3, 5, device=meta)  # 7 steps, batch 3, 5 features
    hidden = 4

    def params(gates: int) -> list[Tensor]:  # one layer: w_ih, w_hh, b_ih, b_hh
        return [
            torch.empty(gates * hidden, 5, device=meta),
            torch.empty(gates * hidden, hidden, device=meta),
            torch.empty(gates * hidden, device=meta),
            torch.empty(gates * hidden, device=meta),
        ]

    for kind, gates, per_unit in (
        ("lstm", 4, 30),
        ("gru", 3, 20),
        ("rnn_tanh", 1, 6),
        ("rnn_relu", 1, 2),
    ):
        macs = 21 * gates * hidden * (5 + hidden)  # 21 rows = steps x batch
        flops = 2 * macs + 21 * hidden * (per_unit + 2 * gates)
        out[kind] = ([x, [], params(gates), True, 1, 0.0, False, False, False], (macs, flops))
    cx = torch.empty(3, hidden, device=meta)
    gates4 = torch.empty(3, 4 * hidden, device=meta)
    bias4 = torch.empty(4 * hidden, device=meta)
    out["_thnn_fused_lstm_cell"] = ([gates4, gates4, cx, bias4, bias4], (0, 12 * (30 + 8)))
    gates3 = torch.empty(3, 3 * hidden, device=meta)
    bias3 = torch.empty(3 * hidden, device=meta)
    out["_thnn_fused_gru_cell"] = ([gates3, gates3, cx, bias3, bias3], (0, 12 * (20 + 6)))
    return out


def test_rules_of_kernels_a_cpu_run_never_dispatches() -> None:
    for name, (args, expected) in _fused_direct_cases().items():
        assert RULES[name].fn(args, None) == expected, name
    # the packed-data overload of aten.lstm (data, batch_sizes, hx, params, has_biases, ...)
    args, expected = _fused_direct_cases()["lstm"]
    data = torch.empty(21, 5, device="meta")
    packed = [data, torch.empty(7, dtype=torch.long), [], args[2], True, 1, 0.0, False, False]
    assert RULES["lstm"].fn(packed, None) == expected


# aten.max_pool2d never reaches a dispatch mode: it is CompositeImplicitAutograd and decomposes
# into max_pool2d_with_indices first (tested below). Its rule is checked on its own arguments.
DIRECT_ONLY = {"max_pool2d", "max_pool3d", *_fused_direct_cases()}
CASE_RULES = sorted(set(RULES) - DIRECT_ONLY)


def test_every_rule_has_a_case() -> None:
    assert set(CASE_RULES) | DIRECT_ONLY == set(RULES)
    for rule in CASE_RULES:
        _case(rule)  # raises KeyError for a rule without a hand-computed case


@pytest.mark.parametrize("rule", CASE_RULES)
def test_rule(rule: str) -> None:
    case = _case(rule)
    count = count_dispatch(case.module, case.inputs)
    assert rule in count.by_op, f"{rule} not dispatched; got {sorted(count.by_op)}"
    stats = count.by_op[rule]
    assert stats.calls == 1
    assert stats.category == RULES[rule].category
    assert (stats.macs, stats.flops) == (case.macs, case.flops)
    # nothing else was counted, nothing went uncounted
    assert (count.macs, count.flops) == (case.macs, case.flops)
    assert count.uncounted == {}
    assert RULES[rule].note  # every rule documents its cost


def test_rule_max_pool2d_on_its_own_arguments() -> None:
    x = x16()
    out = F.max_pool2d(x, 3, 2, 1)
    assert out.shape == (1, 16, 16, 16)
    assert RULES["max_pool2d"].fn((x, [3, 3], [2, 2], [1, 1]), out) == (0, 9 * 16 * 16 * 16)
    assert RULES["max_pool2d"].fn((x, [3], [2], [1]), out) == (0, 9 * 16 * 16 * 16)  # k -> kxk
    # F.max_pool2d reaches the counter as max_pool2d_with_indices, with the same cost
    count = count_dispatch(Fn(lambda t: F.max_pool2d(t, 3, 2, 1)), [x])
    assert count.flops == 9 * 16 * 16 * 16 and "max_pool2d_with_indices" in count.by_op


def test_rule_conv_transposed_and_norm_without_affine() -> None:
    # transposed: each input element meets C_out/groups * k*k taps
    count = count_dispatch(nn.ConvTranspose2d(16, 8, 3, bias=False), [x16()])
    assert count.macs == ELEMS * 8 * 3 * 3 and count.flops == 2 * ELEMS * 8 * 3 * 3
    count = count_dispatch(nn.LayerNorm(W, elementwise_affine=False), [x16()])
    assert count.flops == 4 * ELEMS
    count = count_dispatch(nn.GroupNorm(4, C, affine=False), [x16()])
    assert count.flops == 4 * ELEMS


# --- the reference small cases -----------------------------------------------------------------


def test_reference_conv_16_to_32() -> None:
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    count = count_dispatch(conv, [x16()])
    assert count.macs == 32 * 32 * 32 * 16 * 9 == 4_718_592
    assert count.flops == 9_437_184
    with_bias = count_dispatch(nn.Conv2d(16, 32, 3, padding=1), [x16()])
    assert with_bias.macs == 4_718_592
    assert with_bias.flops == 9_437_184 + 32 * 32 * 32  # one bias add per output element


def test_reference_depthwise() -> None:
    conv = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False)
    count = count_dispatch(conv, [x16()])
    assert count.macs == 16 * 32 * 32 * 1 * 9 == 147_456
    assert count.flops == 2 * 147_456


def test_reference_linear_layer() -> None:
    fc = nn.Linear(2048, 1000)
    count = count_dispatch(fc, [torch.randn(1, 2048)])
    assert count.by_op["addmm"].macs == 2048 * 1000
    assert count.flops == 2 * 2048 * 1000 + 1000
    no_bias = count_dispatch(nn.Linear(2048, 1000, bias=False), [torch.randn(1, 2048)])
    assert (no_bias.macs, no_bias.flops) == (2048 * 1000, 2 * 2048 * 1000)


def test_reference_batchnorm_each_backend() -> None:
    bn = nn.BatchNorm2d(16).eval()
    x = [x16()]
    count = count_dispatch(bn, x)
    assert count.flops == 2 * ELEMS == 32_768  # cnnbench: 2 FLOPs per element
    assert count.macs == 0
    assert run_backend("fvcore", bn, x).total == 32_768
    assert run_backend("thop", bn, x).total == 65_536
    torch_report = run_backend("torch", bn, x)
    assert torch_report.total == 0
    assert "native_batch_norm" in {u.name for u in torch_report.uncounted}  # listed, not dropped


class Gate(nn.Module):
    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return w * x


def test_reference_se_gate_multiply_each_backend() -> None:
    gate = Gate()
    inputs = [x16(), torch.rand(1, 16, 1, 1)]
    count = count_dispatch(gate, inputs)
    assert count.by_op["mul"].flops == ELEMS == 16_384
    assert count.by_op["mul"].category == "elementwise"
    fvcore = run_backend("fvcore", gate, inputs)
    assert fvcore.total == 0 and "mul" in {u.name for u in fvcore.uncounted}
    torch_report = run_backend("torch", gate, inputs)
    assert torch_report.total == 0 and "mul" in {u.name for u in torch_report.uncounted}
    assert run_backend("thop", gate, inputs).total == 0


def test_se_block_work_is_split_into_fc_and_gate() -> None:
    se = SqueezeExcite(16, 4)
    count = count_dispatch(Fn(se), [x16()], se_types=(SqueezeExcite,))
    # two 1x1 convs on a 1x1 map: 16*4 + 4*16 MACs; biases 4 + 16
    assert count.macs == 16 * 4 + 4 * 16
    fc_flops = 2 * (16 * 4 + 4 * 16) + 4 + 16
    gate_flops = ELEMS + 4 + 4 * 16 + ELEMS  # mean (per input), relu, sigmoid, scale multiply
    assert count.flops == fc_flops + gate_flops
    assert count.by_op["mul (SE)"].category == "se_gate"
    assert count.by_op["mul (SE)"].flops == ELEMS
    assert count.se_by_scope["fn"] == {"fc": [128, fc_flops], "se_gate": [0, gate_flops]}


# --- the zoo: every op covered, meta == real ------------------------------------------------

REPRESENTATIVE = [
    "resnet50", "ghostnet", "efficientnet_b0", "mobilenet_v3_large", "googlenet",
    "inception_v3", "densenet121", "shufflenet_v2_x1_0", "sknet50",
]  # fmt: skip


def _meta_input(model: nn.Module, batch: int = 1) -> list[Tensor]:
    c, h, w = model.model_info.input_size
    return [torch.empty(batch, c, h, w, device="meta")]


@pytest.mark.parametrize("name", REPRESENTATIVE)
def test_zoo_ops_all_have_rules_eval(name: str) -> None:
    model = build_model(name).eval()
    count = count_dispatch(model, _meta_input(model), se_types=(SqueezeExcite,))
    assert count.uncounted == {}
    assert count.macs > 0 and count.flops > 2 * count.macs
    # every stage's work is attributed: the per-scope sums are the totals
    assert sum(v[0] for v in count.by_scope.values()) == count.macs
    assert sum(v[1] for v in count.by_scope.values()) == count.flops


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_large", "googlenet", "ghostnet"])
def test_zoo_ops_all_have_rules_train(name: str) -> None:
    # train mode: batch-norm with statistics, dropout (bernoulli_, div_, mul), autograd on
    model = build_model(name).train()
    count = count_dispatch(model, _meta_input(model, 2), track_memory=False, track_saved=True)
    assert count.uncounted == {}
    assert count.saved_bytes > 0


def _fingerprint(count: DispatchCount) -> tuple:
    return (
        count.macs,
        count.flops,
        {k: vars(v) for k, v in count.by_op.items()},
        count.by_scope,
        count.se_by_scope,
        {k: vars(v) for k, v in count.uncounted.items()},
        count.peak_live_bytes,
        count.sum_output_bytes,
    )


def _real_model(name: str) -> nn.Module:
    """A zoo model on the CPU without its weight initialisation (the counts depend on shapes
    only): built on meta, given zero-filled CPU storage."""
    model = build_model(name).to_empty(device="cpu")
    with torch.no_grad():
        for t in model.state_dict().values():
            t.zero_()
    return model


# meta == real is a property of the counter, not of the input size: 64x64 keeps the real
# forward passes short.
SMALL = 64


@pytest.mark.parametrize("name", ["resnet18", "ghostnet", "mobilenet_v3_large", "densenet121"])
def test_meta_and_real_tensors_give_identical_counts(name: str) -> None:
    real = _real_model(name).eval()
    counted_real = count_dispatch(
        real, [torch.randn(1, 3, SMALL, SMALL)], se_types=(SqueezeExcite,)
    )
    meta = build_model(name).eval()
    x = [torch.empty(1, 3, SMALL, SMALL, device="meta")]
    counted_meta = count_dispatch(meta, x, se_types=(SqueezeExcite,))
    assert counted_real.macs > 0
    assert _fingerprint(counted_real) == _fingerprint(counted_meta)


def test_meta_and_real_saved_bytes_agree() -> None:
    real = _real_model("mobilenet_v3_small").train()
    meta = build_model("mobilenet_v3_small").train()
    x = torch.randn(2, 3, SMALL, SMALL)
    a = count_dispatch(real, [x], track_memory=False, track_saved=True)
    b = count_dispatch(meta, [x.to("meta")], track_memory=False, track_saved=True)
    assert a.saved_bytes > 0 and a.saved_bytes == b.saved_bytes
    assert a.flops == b.flops
    assert count_saved_bytes(real, [x]) == count_saved_bytes(meta, [x.to("meta")]) == a.saved_bytes


def test_counter_never_prints_and_leaves_no_hooks(capfd: pytest.CaptureFixture[str]) -> None:
    model = build_model("se_resnet50").eval()
    count_dispatch(model, _meta_input(model), se_types=(SqueezeExcite,))
    count_dispatch(model.train(), _meta_input(model, 2), track_memory=False, track_saved=True)
    assert capfd.readouterr() == ("", "")
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


class Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: Tensor) -> Tensor:
        self.conv(x)
        raise RuntimeError("boom")


def test_failing_forward_leaves_no_hooks_and_no_mode() -> None:
    model = Raises()
    with pytest.raises(RuntimeError, match="boom"):
        count_dispatch(model, [torch.randn(1, 3, 8, 8)], se_types=(nn.Conv2d,))
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    # the dispatch mode was popped: a later count starts from zero
    after = count_dispatch(nn.Conv2d(3, 4, 3, bias=False), [torch.randn(1, 3, 8, 8)])
    assert after.macs == 4 * 6 * 6 * 3 * 9


def test_counting_twice_gives_identical_numbers() -> None:
    model = build_model("ghostnet").eval()
    first = count_dispatch(model, _meta_input(model), se_types=(SqueezeExcite,))
    second = count_dispatch(model, _meta_input(model), se_types=(SqueezeExcite,))
    assert _fingerprint(first) == _fingerprint(second)


def test_free_ops_and_rules_are_disjoint() -> None:
    assert not set(FREE_OPS) & set(RULES)


def test_unknown_op_is_listed_not_dropped() -> None:
    count = count_dispatch(Fn(torch.cumsum), [x16(), 1])  # cumsum has no rule
    assert count.uncounted["cumsum"].calls == 1
    assert count.uncounted["cumsum"].elements == ELEMS
    assert count.flops == 0


# --- the meta-device shortcuts: the same outputs as PyTorch's meta kernels --------------------


def _layout(out: object) -> object:
    if isinstance(out, (tuple, list)):
        return tuple(_layout(o) for o in out)
    assert isinstance(out, Tensor)
    return (tuple(out.shape), out.stride(), out.dtype, out.device.type, out._is_view())


class _CompareShortcuts(TorchDispatchMode):
    """Runs each op both ways, PyTorch's kernel and cnnbench's shortcut, and records both."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: dict[str, int] = {}
        self.mismatches: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        shortcut = META_SHAPES.get(func)
        short = shortcut(args, kwargs) if shortcut is not None else None
        out = func(*args, **kwargs)
        if short is not None:
            self.taken[str(func)] = self.taken.get(str(func), 0) + 1
            same_object = short is out if func._schema.is_mutable else short is not out
            if _layout(short) != _layout(out) or not same_object:
                self.mismatches.append((str(func), _layout(short), _layout(out)))
        return out


# Between them these take every shortcut that the zoo takes (cat, hardswish_, silu_, hardtanh_,
# ...), in eval and in train mode (batch norm with statistics, num_batches_tracked += 1), and two
# of them in channels-last layout.
SHORTCUT_PASSES = [
    *[(name, train, "contiguous") for name in
      ("ghostnet", "mobilenet_v3_large", "efficientnet_b0", "mobilenet_v2") for train in (0, 1)],
    ("ghostnet", 0, "channels_last"),
    ("efficientnet_b0", 0, "channels_last"),
]  # fmt: skip
_FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


@pytest.mark.parametrize(("name", "train", "layout"), SHORTCUT_PASSES)
def test_meta_shortcuts_match_pytorch_meta_kernels(name: str, train: int, layout: str) -> None:
    memory_format = _FORMATS[layout]
    model = build_model(name).train(bool(train)).to(memory_format=memory_format)
    c, h, w = model.model_info.input_size
    x = torch.empty(1 + train, c, h, w, device="meta").to(memory_format=memory_format)
    mode = _CompareShortcuts()
    with torch.enable_grad() if train else torch.no_grad(), mode:
        model(x)
    assert mode.mismatches == []
    assert {"aten.native_batch_norm.default", "aten.convolution.default"} <= set(mode.taken)


@pytest.mark.parametrize("train", [0, 1])
def test_meta_shortcuts_match_pytorch_on_attention_models(train: int) -> None:
    """Transformer layouts: transposed token tensors, q/k/v slices of one qkv tensor, layer
    norm on a transposed input, SDPA's math path (scaled q and k^T, bmm, _safe_softmax) and
    nn.MultiheadAttention's."""
    from tests import external_patterns as ext

    taken: set[str] = set()
    for model, shape in ((ext.TinyViT(), (1, 3, 32, 32)), (ext.MhaNet(), (2, 3, 32, 32))):
        model = model.to("meta").train(bool(train))
        mode = _CompareShortcuts()
        with torch.enable_grad() if train else torch.no_grad(), mode:
            model(torch.empty(shape, device="meta"))
        assert mode.mismatches == [], type(model).__name__
        taken = set(mode.taken) if isinstance(model, ext.TinyViT) else taken
    assert {
        "aten.native_layer_norm.default",
        "aten.bmm.default",
        "aten.mul.Scalar",
        "aten._safe_softmax.default",
    } <= taken


_CAPTURED_TENSORS = {"_native_batch_norm_legit", "_native_batch_norm_legit_no_training"}


@pytest.mark.parametrize("rule", sorted(set(CASE_RULES) - _CAPTURED_TENSORS))
def test_rule_on_meta_with_shortcuts(rule: str) -> None:
    # every rule's case again on the meta device: the same counts, and each shortcut taken
    # gives PyTorch's meta kernel's output
    case = _case(rule)
    module = case.module.to("meta")
    inputs = [t.to("meta") if isinstance(t, Tensor) else t for t in case.inputs]
    mode = _CompareShortcuts()
    with mode:
        module(*inputs)
    assert mode.mismatches == []
    count = count_dispatch(module, inputs)
    assert (count.macs, count.flops) == (case.macs, case.flops)


def test_meta_shortcuts_leave_errors_to_pytorch() -> None:
    m = torch.empty(1, 8, 4, 4, device="meta")
    with pytest.raises(RuntimeError):  # shapes that do not broadcast
        count_dispatch(Fn(lambda a, b: a + b), [m, torch.empty(1, 8, 3, 3, device="meta")])
    with pytest.raises(RuntimeError):  # kernel larger than the padded input
        count_dispatch(nn.Conv2d(8, 8, 5).to("meta"), [m])
    with pytest.raises(RuntimeError):  # wrong number of input channels
        count_dispatch(nn.Conv2d(4, 8, 3).to("meta"), [m])
    with pytest.raises(RuntimeError):  # in place into a smaller tensor
        count_dispatch(Fn(lambda a, b: a.add_(b)), [m[:, :, :1, :1], m])
    with pytest.raises(RuntimeError):  # a dimension reduced twice
        count_dispatch(Fn(lambda a: a.mean((2, 2))), [m])
    # cases the shortcuts decline still count, through PyTorch's own meta kernels
    count = count_dispatch(
        Fn(lambda a, b: a * b), [m, torch.empty(1, 8, 4, 4, device="meta").transpose(2, 3)]
    )
    assert count.by_op["mul"].flops == 128


def test_saved_bytes_without_counting_equal_the_counter() -> None:
    model = build_model("ghostnet").train()
    x = [torch.empty(2, 3, 64, 64, device="meta")]
    counted = count_dispatch(model, x, track_memory=False, track_saved=True).saved_bytes
    assert counted > 0 and count_saved_bytes(model, x) == counted
