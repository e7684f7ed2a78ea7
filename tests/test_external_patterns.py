"""A corpus of external model patterns (tests/external_patterns.py): how timm, torchvision and
research code write models, none of them a cnnbench StagedNet.

Every pattern is checked for parameters (hand count, and ``sum(p.numel())`` with tied weights
once), MACs (hand count, the arithmetic written below), per-module ``--depth`` rows that sum
to the totals, and a timed row; nothing may crash on a foreign attribute named like one of
cnnbench's own (``stages``, ``stage_names``, ``feature_info``, ``pretrained_cfg``, an SE class
named ``SqueezeExcite``). Conventions: MACs of convolutions = out elements * C_in/groups * k
(transposed: in elements * C_out/groups * k), linear = rows * in * out, attention = scores *
(E + Ev), recurrent = steps * batch * (W_ih + W_hh elements); biases excluded.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnbench.errors import UsageError
from cnnbench.spec import ExampleInputs
from cnnbench.static import StaticProfile, profile_static
from cnnbench.static.counting import count_dispatch
from cnnbench.static.layers import layer_costs
from tests import external_patterns as ext
from tests.external_patterns import Pattern

# conv_bn(c_in, c_out, k): weights c_out*c_in*k*k + BatchNorm 2*c_out.
CONV_BN_3_8 = 8 * 3 * 9 + 16  # 232
CONV_BN_8_8 = 8 * 8 * 9 + 16  # 592
CONV_BN_8_16 = 16 * 8 * 9 + 32  # 1184
CONV_BN_16_16 = 16 * 16 * 9 + 32  # 2336

# TinyViT(dim 32, heads 2, depth 2) on 3x32x32: 8x8 patches -> 16 tokens.
VIT_BLOCK_PARAMS = 64 + (32 * 96 + 96) + (32 * 32 + 32) + 64 + (32 * 64 + 64) + (64 * 32 + 32)
VIT_PARAMS = (32 * 192 + 32) + 2 * VIT_BLOCK_PARAMS + (32 * 10 + 10)  # 23,594
VIT_BLOCK_MACS = (
    16 * 32 * 96  # qkv
    + (2 * 16 * 16) * (16 + 16)  # attention: scores (2 heads x 16 x 16) x (E + Ev) per head
    + 16 * 32 * 32  # proj
    + 2 * 16 * 32 * 64  # MLP
)
VIT_MACS = 32 * 16 * 192 + 2 * VIT_BLOCK_MACS + 32 * 10  # 393,536

# DynamicFused on 3x16x16: conv -> 256 tokens of 32; SDPA 4 heads of 8; MHA(32, 4); LSTM(32, 64).
DYN_PARAMS = (
    (32 * 27 + 32)  # conv
    + (32 * 96 + 96)  # qkv
    + (3 * 32 * 32 + 96 + 32 * 32 + 32)  # MultiheadAttention: in_proj + out_proj
    + (4 * 64 * (32 + 64) + 2 * 4 * 64)  # LSTM: W_ih, W_hh, b_ih, b_hh
    + (64 * 10 + 10)  # fc
)
DYN_MACS = (
    32 * 256 * 27  # conv 3->32 3x3 at 16x16: 221,184
    + 256 * 32 * 96  # qkv: 786,432
    + (4 * 256 * 256) * (8 + 8)  # SDPA: 4 heads x 256 x 256 scores x (E + Ev): 4,194,304
    + 3 * 256 * 32 * 32  # MHA in-projections: 786,432
    + 2 * 256 * 256 * 32  # MHA q k^T and weights v over all heads: 4,194,304
    + 256 * 32 * 32  # MHA out-projection: 262,144
    + 256 * (4 * 64 * 32 + 4 * 64 * 64)  # LSTM: 256 steps x (W_ih + W_hh): 6,291,456
    + 64 * 10  # fc
)
assert DYN_MACS == 16_736_896

PATTERNS = [
    Pattern(
        "sequential_stages", ext.SequentialStages, (1, 3, 32, 32),
        CONV_BN_3_8 + CONV_BN_8_16 + CONV_BN_16_16 + 170,
        8 * 256 * 27 + 16 * 64 * 72 + 16 * 64 * 144 + 160,
    ),
    Pattern(
        "modulelist_stages", ext.ModuleListStages, (1, 3, 32, 32),
        CONV_BN_3_8 + CONV_BN_8_8 + 36,
        8 * 256 * 27 + 8 * 256 * 72 + 32,
    ),
    Pattern(
        "method_stages", ext.MethodStages, (1, 3, 16, 16),
        CONV_BN_3_8 + CONV_BN_8_8,
        8 * 256 * 27 + 8 * 256 * 72,
    ),
    Pattern(
        "features_head_cfg", ext.FeaturesHead, (1, 3, 32, 32),
        12 * 27 + 24 + 65,
        12 * 256 * 27 + 60,
    ),
    Pattern(  # std conv 3->8 at 16x16; "same" conv 8->8 s2 -> 8x8; scaled linear 8->6
        "conv_linear_subclasses", ext.SubclassNet, (1, 3, 16, 16),
        (216 + 8) + (576 + 8) + (48 + 6 + 6),
        8 * 256 * 27 + 8 * 64 * 72 + 48,
    ),
    Pattern(
        "jit_scripted_block", ext.ScriptedBlock, (1, 3, 16, 16),
        CONV_BN_3_8 + 27,
        8 * 256 * 27 + 24,
    ),
    Pattern(  # 4x4 s4 stem -> 8x8, conv_bn 16->16
        "channels_last_stem", ext.ChannelsLastStem, (1, 3, 32, 32),
        (16 * 48 + 16) + CONV_BN_16_16,
        16 * 64 * 48 + 16 * 64 * 144,
    ),
    Pattern("vit_sdpa", ext.TinyViT, (1, 3, 32, 32), VIT_PARAMS, VIT_MACS),
    Pattern(
        "vit_einsum", lambda: ext.TinyViT(einsum=True), (1, 3, 32, 32), VIT_PARAMS, VIT_MACS
    ),
    Pattern(  # conv -> 64 tokens of 16; MHA(16, 4): in-proj, q k^T + weights v, out-proj
        "multihead_attention", ext.MhaNet, (1, 3, 32, 32),
        (16 * 48 + 16) + (3 * 256 + 48) + (256 + 16),
        16 * 64 * 48 + 3 * 64 * 16 * 16 + 2 * 64 * 64 * 16 + 64 * 16 * 16,
    ),
    Pattern(  # conv 3->8; 16 columns of 8*16 = 128 features into LSTM(128, 32); fc 32->10
        "conv_lstm", ext.ConvLstm, (1, 3, 16, 16),
        224 + (4 * 32 * (128 + 32) + 2 * 128) + 330,
        8 * 256 * 27 + 16 * (128 * 128 + 128 * 32) + 320,
    ),
    Pattern(  # GRU(12, 16, 2 layers) over 7 steps
        "gru_two_layers", ext.GruNet, (1, 7, 12),
        (48 * 28 + 96) + (48 * 32 + 96),
        7 * 48 * 28 + 7 * 48 * 32,
    ),
    Pattern(  # LSTM(8, 6, 2 layers, bidirectional) over 5 steps; layer 2 reads 12 features
        "bidirectional_lstm", ext.BiLstm, (1, 5, 8),
        2 * (24 * 14 + 48) + 2 * (24 * 18 + 48),
        5 * 2 * 24 * 14 + 5 * 2 * 24 * 18,
    ),
    Pattern(  # conv s2 -> 8x8; ConvTranspose2d(8, 4, 2, 2): 512 inputs x 4 out x 4 taps
        "conv_transpose_upsample", ext.Decoder, (1, 3, 16, 16),
        (216 + 8) + (8 * 4 * 4 + 4),
        8 * 64 * 27 + 8 * 64 * 4 * 4,
    ),
    Pattern(  # reflection pad + conv2d 3->3; Conv3d(1, 4, 3) on 3x16x16; MaxPool3d(2)
        "conv3d_pool3d_reflect", ext.Video3d, (1, 3, 16, 16),
        (81 + 3) + (4 * 27 + 4),
        3 * 256 * 27 + 4 * 3 * 256 * 27,
    ),
    Pattern(  # conv 8x8 s8 -> 16 tokens; the output projection shares the embedding
        "tied_weights", ext.TiedLm, (1, 3, 32, 32),
        (16 * 192 + 16) + 20 * 16,
        16 * 16 * 192 + 16 * 16 * 20,
    ),
    Pattern(  # one 3x3 conv applied twice
        "shared_module", ext.SharedBlock, (1, 3, 8, 8),
        (12 + 4) + (144 + 4),
        4 * 64 * 3 + 2 * 4 * 64 * 36,
    ),
    Pattern("dict_output", ext.DictOut, (1, 3, 8, 8), 112 + 10, 4 * 64 * 27 + 8),
    Pattern("tuple_output", ext.TupleOut, (1, 3, 8, 8), 112 + 10, 4 * 64 * 27 + 8),
    Pattern("dataclass_output", ext.DataclassOut, (1, 3, 8, 8), 112 + 10, 4 * 64 * 27 + 8),
    Pattern("buffers_only", ext.BuffersOnly, (1, 3, 8, 8), 0, 3 * 64 * 9),
    Pattern("dynamic_fused", ext.DynamicFused, (1, 3, 16, 16), DYN_PARAMS, DYN_MACS),
    Pattern(  # conv 3->8; a foreign SE (1x1 convs 8->2->8 on a 1x1 map)
        "foreign_se_class", ext.ForeignSE, (1, 3, 8, 8),
        224 + 18 + 24,
        8 * 64 * 27 + 16 + 16,
    ),
    Pattern(  # depthwise dilated 3x3 then pointwise 8->16 at 16x16
        "depthwise_dilated", ext.DepthwiseDilated, (1, 8, 16, 16),
        72 + 128,
        8 * 256 * 9 + 16 * 256 * 8,
    ),
    Pattern(  # Conv1d(2, 4, 5) on 100 samples -> 96; AvgPool1d(2) -> 48; linear 192 -> 3
        "conv1d_audio", ext.Conv1dNet, (1, 2, 100),
        (40 + 4) + (192 * 3 + 3),
        4 * 96 * 10 + 192 * 3,
    ),
    Pattern(  # conv 3->12, PixelShuffle(2), bicubic x2
        "pixel_shuffle_bicubic", ext.PixelShuffleUp, (1, 3, 8, 8),
        12 * 27 + 12,
        12 * 64 * 27,
    ),
    Pattern(
        "top_level_sequential", ext.sequential_net, (1, 3, 8, 8),
        (108 + 4) + 10,
        4 * 64 * 27 + 8,
    ),
]  # fmt: skip
assert len(PATTERNS) >= 25


def _model(p: Pattern) -> nn.Module:
    torch.manual_seed(0)
    return p.make().eval()


def _inputs(p: Pattern) -> ExampleInputs:
    torch.manual_seed(1)
    return ExampleInputs((torch.randn(p.shape),))


def _profile(model: nn.Module, p: Pattern) -> StaticProfile:
    """profile_static as cnnbench's API runs it: on the meta device, on real CPU tensors when
    the meta device cannot run the model (data-dependent control flow)."""
    try:
        return profile_static(model, example_inputs=_inputs(p), name=p.name)
    except UsageError:
        return profile_static(model, example_inputs=_inputs(p), name=p.name, meta=False)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("p", PATTERNS, ids=[p.name for p in PATTERNS])
def test_pattern_params_and_macs_match_the_hand_count(p: Pattern) -> None:
    model = _model(p)
    assert sum(t.numel() for t in model.parameters()) == p.params  # tied weights once
    prof = _profile(model, p)
    assert prof.params == p.params
    assert prof.macs == p.macs
    assert not [n for n in prof.notes if n.startswith("warning")], prof.notes
    # foreign attributes named like cnnbench's protocol are ignored: stages are the children
    assert [s.name for s in prof.stages] == [n for n, _ in model.named_children()]
    assert all(s.se_params == 0 for s in prof.stages)  # ext.SqueezeExcite is not the zoo's
    assert sum(s.macs for s in prof.stages) <= prof.macs


@pytest.mark.parametrize("p", PATTERNS, ids=[p.name for p in PATTERNS])
def test_pattern_depth_rows_cover_the_totals(p: Pattern) -> None:
    model = _model(p)
    rows = layer_costs(model, p.shape[1:], depth=2, example_inputs=_inputs(p))
    assert sum(r.macs for r in rows if r.depth == 1) == p.macs
    top = {r.name for r in rows if r.depth == 1} - {"(other)"}
    assert top <= {n for n, _ in model.named_children()}


def test_dynamic_fused_is_counted_on_real_tensors_within_half_a_percent() -> None:
    """The meta device cannot run it (``.item()``): counted on real CPU tensors, where SDPA,
    nn.MultiheadAttention and nn.LSTM run as fused kernels, each with its rule."""
    p = next(p for p in PATTERNS if p.name == "dynamic_fused")
    model = _model(p)
    with pytest.raises(UsageError, match="meta tensors"):
        profile_static(model, example_inputs=_inputs(p))  # the meta device: refused
    prof = profile_static(model, example_inputs=_inputs(p), meta=False)
    assert abs(prof.macs / DYN_MACS - 1) <= 0.005
    ops = set(prof.dispatch.by_op)
    assert "_scaled_dot_product_flash_attention_for_cpu" in ops
    assert {"_native_multi_head_attention", "mkldnn_rnn_layer"} <= ops
    assert not prof.dispatch.uncounted
    assert not [n for n in prof.notes if n.startswith("warning")]


def test_uncounted_matmul_like_work_is_a_warning_with_its_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fused kernel without a rule (the CPU attention rule taken out of the table) leaves
    the row with a warning that names it and estimates its share of the MACs."""
    from cnnbench.static import rules

    fused = "_scaled_dot_product_flash_attention_for_cpu"
    p = next(p for p in PATTERNS if p.name == "vit_sdpa")
    model = _model(p)
    monkeypatch.delitem(rules.RULES, fused)
    prof = profile_static(model, example_inputs=_inputs(p), meta=False)
    attention = 2 * (2 * 16 * 16) * (16 + 16)  # both blocks' attention MACs (hand count)
    assert prof.macs == VIT_MACS - attention
    (warning,) = [n for n in prof.notes if n.startswith("warning")]
    assert fused in warning
    share = attention / VIT_MACS  # 8.3%: the estimate is exact for plain attention
    assert f"estimated {share:.1%} of the MACs" in warning


def test_a_per_call_rule_override_ignores_or_replaces_a_rule() -> None:
    from cnnbench.static.rules import Rule

    model = ext.SharedBlock().eval()
    x = torch.randn(1, 3, 8, 8)
    plain = count_dispatch(model, [x])
    ignored = count_dispatch(model, [x], rules={"convolution": None})
    assert ignored.macs == 0 and "convolution" not in ignored.uncounted
    doubled = count_dispatch(
        model, [x], rules={"convolution": Rule("conv", lambda a, o: (2, 0), "two per call")}
    )
    assert doubled.macs == 3 * 2  # three convolution calls
    assert count_dispatch(model, [x]).macs == plain.macs  # the table itself is unchanged


@pytest.mark.slow
def test_every_pattern_gets_a_timed_row() -> None:
    """Patterns that share an input shape are timed together in one ``compare`` (tiny budget,
    no memory child): every row is measured, with the hand-counted MACs beside its time."""
    import cnnbench

    groups: dict[tuple[int, ...], list[Pattern]] = {}
    for p in PATTERNS:
        groups.setdefault(p.shape, []).append(p)
    for shape, group in groups.items():
        models = [_model(p) for p in group]
        run = cnnbench.compare(
            models, example_inputs=torch.randn(shape), budget=0.01, cpu_memory=False, threads=1
        )
        assert len(run.results) == len(group)
        for p, row in zip(group, run.results, strict=True):
            assert row.status == "ok", (p.name, row.error)
            assert row.latency_ms_median is not None and row.latency_ms_median > 0
            assert row.macs == p.macs and row.params == p.params, p.name


def test_an_internal_error_exits_3_with_a_pointer_to_debug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug inside cnnbench (here: the static counter raising a plain Exception) is exit 3
    and one line naming --debug, never exit 1 (the gate's regression code) or a traceback."""
    import sys

    from cnnbench.cli import main as cli_entry
    from cnnbench.static import profile as profile_module

    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("an internal table lost a row")

    monkeypatch.setattr(profile_module, "stage_list", broken)
    monkeypatch.setattr(sys, "argv", ["cnnbench", "info", "lenet5"])
    with pytest.raises(SystemExit) as exited:
        cli_entry()
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert "internal error" in err and "--debug" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_info_depth_2_works_on_a_data_dependent_model() -> None:
    """`info MODEL --depth 2` falls back to real tensors as plain `info` does (the model's
    ``.item()`` cannot run on the meta device)."""
    import json

    from typer.testing import CliRunner

    from cnnbench.cli import app

    spec = "tests/external_patterns.py:DynamicFused"
    args = ["info", spec, "--input-size", "3,16,16", "--json"]
    result = CliRunner().invoke(app, [*args, "--depth", "2"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    assert row["macs"] == DYN_MACS
    layers = {r["name"]: r for r in row["layers"]}
    assert sum(r["macs"] for r in row["layers"] if r["depth"] == 1) == DYN_MACS
    assert layers["lstm"]["macs"] == 256 * (4 * 64 * 32 + 4 * 64 * 64)
    assert layers["mha"]["macs"] == 3 * 256 * 32 * 32 + 2 * 256 * 256 * 32 + 256 * 32 * 32
    assert "counted on real CPU tensors" in (row["notes"] or "")


def test_a_foreign_model_info_attribute_is_not_trusted() -> None:
    """Only a cnnbench ``ModelInfo`` is metadata: a model's own ``model_info`` of another
    type (a dict, as some codebases keep) is ignored, never read by name."""
    from torch import nn

    from cnnbench.models import ModelInfo, info_of

    class Foreign(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model_info = {"input_size": (1, 8, 8), "family": "theirs"}
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):  # noqa: ANN001, ANN201
            return self.conv(x)

    assert info_of(Foreign()) is None
    info = ModelInfo(name="x", family="f", paper="", input_size=(3, 224, 224))
    holder = nn.Identity()
    holder.model_info = info  # type: ignore[assignment]
    assert info_of(holder) is info
