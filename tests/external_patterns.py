"""Stand-in modules that reproduce how the wider ecosystem writes models (timm, torchvision,
research code), written for cnnbench's tests: none of them is a cnnbench StagedNet, several
carry attribute names that cnnbench's own protocol also uses (``stages``, ``stage_names``,
``feature_info``, ``pretrained_cfg``), and together they cover the ops that trip counters
(fused attention, recurrent kernels, transposed and 3-D convolutions, interpolation,
scripted submodules, tied weights, structured outputs, data-dependent control flow).

Each pattern is a :class:`Pattern`: a factory, the input shape (batch 1), and the expected
parameter and MAC counts worked out by hand in the test file (never by a counter).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride, k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


# --- stages under names cnnbench's protocol also uses -------------------------------------


class SequentialStages(nn.Module):
    """timm's convnext/cspnet/byobnet layout: ``self.stages = nn.Sequential(...)``."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8, 3, 2)
        self.stages = nn.Sequential(conv_bn(8, 16, 3, 2), conv_bn(16, 16))
        self.head = nn.Linear(16, 10)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


class ModuleListStages(nn.Module):
    """``self.stages = nn.ModuleList(...)`` and a ``stage_names`` list attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([conv_bn(3, 8, 3, 2), conv_bn(8, 8)])
        self.stage_names = ["a", "b"]
        self.fc = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        for stage in self.stages:
            x = stage(x)
        return self.fc(x.mean((2, 3)))


class MethodStages(nn.Module):
    """hrnet's layout: a method ``stages(self, x)`` that runs part of the network."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = conv_bn(3, 8)
        self.layer2 = conv_bn(8, 8)

    def stages(self, x: Tensor) -> Tensor:
        return self.layer2(self.layer1(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(x).mean((2, 3))


class FeaturesHead(nn.Module):
    """``forward_features`` + ``forward_head``, a ``feature_info`` list and timm-style
    ``pretrained_cfg`` / ``default_cfg`` dictionaries (with an ``input_size`` that differs
    from the input fed, to show cnnbench never reads it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = conv_bn(3, 12, 3, 2)
        self.fc = nn.Linear(12, 5)
        self.feature_info = [{"num_chs": 12, "reduction": 2, "module": "conv"}]
        self.pretrained_cfg = {"input_size": (3, 999, 999), "num_classes": 5}
        self.default_cfg = self.pretrained_cfg

    def forward_features(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def forward_head(self, x: Tensor) -> Tensor:
        return self.fc(x.mean((2, 3)))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


# --- conv / linear subclasses --------------------------------------------------------------


class StdConv2d(nn.Conv2d):
    """Weight-standardised convolution (BiT / NFNet): the weight normalised on every call."""

    def forward(self, x: Tensor) -> Tensor:
        w = F.batch_norm(
            self.weight.reshape(1, self.out_channels, -1), None, None, training=True, eps=1e-6
        ).reshape_as(self.weight)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class SamePadConv2d(nn.Conv2d):
    """TensorFlow "same" padding computed from the input size (timm's Conv2dSame)."""

    def forward(self, x: Tensor) -> Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ScaledLinear(nn.Linear):
    """A linear subclass with its own forward (a learned output scale)."""

    def __init__(self, a: int, b: int) -> None:
        super().__init__(a, b)
        self.scale = nn.Parameter(torch.ones(b))

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias) * self.scale


class SubclassNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.std = StdConv2d(3, 8, 3, padding=1)
        self.same = SamePadConv2d(8, 8, 3, stride=2)
        self.fc = ScaledLinear(8, 6)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.same(self.std(x)).mean((2, 3)))


# --- scripted, channels-last ------------------------------------------------------------------


class ScriptedBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = torch.jit.script(conv_bn(3, 8))
        self.fc = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.block(x).mean((2, 3)))


class ChannelsLastStem(nn.Module):
    """A stem that converts its input to channels-last and stays there."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 4, 4)
        self.body = conv_bn(16, 16)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        return self.body(x)


# --- attention ---------------------------------------------------------------------------------


class PatchEmbed(nn.Module):
    def __init__(self, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class SdpaAttention(nn.Module):
    """timm's Attention: one qkv linear, SDPA, an output projection."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class EinsumAttention(SdpaAttention):
    """The same attention written with einsum and an explicit softmax."""

    def forward(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.einsum("bhqd,bhkd->bhqk", q, k) * (c // self.heads) ** -0.5
        x = torch.einsum("bhqk,bhkd->bhqd", attn.softmax(-1), v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class TinyViT(nn.Module):
    """Patch embedding, blocks of LayerNorm + attention + MLP, a class-token-free head."""

    def __init__(self, dim: int = 32, heads: int = 2, depth: int = 2, einsum: bool = False):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, 8)
        attn = EinsumAttention if einsum else SdpaAttention
        self.blocks = nn.Sequential(
            *[
                nn.ModuleDict(
                    {
                        "norm1": nn.LayerNorm(dim),
                        "attn": attn(dim, heads),
                        "norm2": nn.LayerNorm(dim),
                        "mlp": nn.Sequential(
                            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
                        ),
                    }
                )
                for _ in range(depth)
            ]
        )
        self.head = nn.Linear(dim, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x)
        for blk in self.blocks:
            x = x + blk["attn"](blk["norm1"](x))
            x = x + blk["mlp"](blk["norm2"](x))
        return self.head(x.mean(1))


class MhaNet(nn.Module):
    """nn.MultiheadAttention over conv tokens (self-attention, the CPU fast path in eval)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 4, 4)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        t = self.conv(x).flatten(2).transpose(1, 2)
        return self.mha(t, t, t)[0]


# --- recurrent --------------------------------------------------------------------------------


class ConvLstm(nn.Module):
    """A CRNN-style model: conv features read column by column by an LSTM."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.rnn = nn.LSTM(8 * 16, 32, batch_first=True)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: Tensor) -> Tensor:
        f = self.conv(x)  # 1 x 8 x 16 x 16
        seq = f.permute(0, 3, 1, 2).flatten(2)  # 1 x 16 (width) x 128
        out, _ = self.rnn(seq)
        return self.fc(out[:, -1])


class GruNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.GRU(12, 16, num_layers=2, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


# --- other convolutions, interpolation ---------------------------------------------------


class Decoder(nn.Module):
    """A segmentation-style decoder: ConvTranspose2d and Upsample (nearest and bilinear)."""

    def __init__(self) -> None:
        super().__init__()
        self.down = nn.Conv2d(3, 8, 3, 2, 1)
        self.up = nn.ConvTranspose2d(8, 4, 2, 2)
        self.near = nn.Upsample(scale_factor=2, mode="nearest")
        self.bilinear = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor) -> Tensor:
        y = self.up(self.down(x))
        return self.near(y) + self.bilinear(y)


class Video3d(nn.Module):
    """Conv3d + 3-D max pooling + reflection padding (video and volumetric models)."""

    def __init__(self) -> None:
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv2d = nn.Conv2d(3, 3, 3)
        self.conv = nn.Conv3d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool3d(2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2d(self.pad(x))  # 1 x 3 x 16 x 16
        return self.pool(self.conv(x.unsqueeze(1)))  # 1 x 1 x 3 x 16 x 16 -> 1 x 4 x 1 x 8 x 8


# --- parameters and outputs ---------------------------------------------------------------


class TiedLm(nn.Module):
    """Tied input embedding and output projection (the same Parameter twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 8, 8)
        self.embed = nn.Embedding(20, 16)
        self.out = nn.Linear(16, 20, bias=False)
        self.out.weight = self.embed.weight

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.conv(x).flatten(2).transpose(1, 2))


class SharedBlock(nn.Module):
    """One block applied twice (a shared module: its parameters count once)."""

    def __init__(self) -> None:
        super().__init__()
        self.block = nn.Conv2d(4, 4, 3, padding=1)
        self.stem = nn.Conv2d(3, 4, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.block(self.block(self.stem(x)))


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.cls = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        f = self.conv(x)
        return {"features": f, "logits": self.cls(f.mean((2, 3)))}


class TupleOut(DictOut):
    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        f = self.conv(x)
        return f, self.cls(f.mean((2, 3)))


@dataclass
class Detections:
    boxes: Tensor
    scores: Tensor


class DataclassOut(DictOut):
    def forward(self, x: Tensor) -> Detections:  # type: ignore[override]
        f = self.conv(x)
        return Detections(f, self.cls(f.mean((2, 3))))


class BuffersOnly(nn.Module):
    """No parameters: a fixed (registered-buffer) normalisation and a fixed blur kernel."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
        self.register_buffer("kernel", torch.ones(3, 1, 3, 3) / 9)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x - self.mean, self.kernel, padding=1, groups=3)


class DynamicFused(nn.Module):
    """A data-dependent branch (``.item()``: the meta device cannot run it) and all three fused
    CPU kernels: SDPA, nn.MultiheadAttention's fast path and nn.LSTM's mkldnn layer."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.qkv = nn.Linear(32, 96)
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)  # b x 32 x 16 x 16
        if x.abs().sum().item() >= 0:  # always true, but only real values can tell
            x = torch.relu(x)
        b = x.shape[0]
        t = x.flatten(2).transpose(1, 2)  # b x 256 x 32
        q, k, v = self.qkv(t).reshape(b, 256, 3, 4, 8).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, 256, 32)
        a, _ = self.mha(a, a, a)
        y, _ = self.lstm(a)
        return self.fc(y[:, -1])


@dataclass(frozen=True)
class Pattern:
    """A stand-in model and what it must count to. ``shape`` is the input (batch 1)."""

    name: str
    make: Callable[[], nn.Module]
    shape: tuple[int, ...]
    params: int
    macs: int


# --- more layouts ---------------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    """A foreign SE block with the zoo's class name: not cnnbench's (recognised by type only)."""

    def __init__(self, c: int, r: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class ForeignSE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.se = SqueezeExcite(8, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.se(self.conv(x))


class DepthwiseDilated(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False)
        self.pw = nn.Conv2d(8, 16, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.pw(self.dw(x))


class Conv1dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 5)
        self.pool = nn.AvgPool1d(2)
        self.fc = nn.Linear(4 * 48, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.conv(x)).flatten(1))


class PixelShuffleUp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 12, 3, padding=1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        y = self.shuffle(self.conv(x))
        return F.interpolate(y, scale_factor=2, mode="bicubic", align_corners=False)


class BiLstm(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(8, 6, num_layers=2, bidirectional=True, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.rnn(x)[0]


def sequential_net() -> nn.Sequential:
    """torchvision's ``features``/``classifier`` written as one top-level nn.Sequential."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
