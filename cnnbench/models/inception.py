"""GoogLeNet (Inception v1) and Inception v3, in torchvision's layouts.

Papers: Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015); Szegedy et al., "Rethinking
the Inception Architecture for Computer Vision" (CVPR 2016).

Every convolution is :class:`BasicConv2d`: conv (no bias) + BatchNorm (eps 0.001) + ReLU. (The
2014 GoogLeNet had no BatchNorm; torchvision's GoogLeNet, whose counts are the reference, adds it.)

GoogLeNet: 6,624,904 parameters without auxiliary classifiers (the default), 13,004,888 with
``aux_logits=True``. Branch 3 of each Inception module is a 1x1 reduction followed by a **3x3**
convolution, although the paper's Table 1 says 5x5: torchvision builds it with 3x3 and the
reference counts are of that network (with the paper's 5x5 the default model has 7,005,832
parameters). ``branch3_kernel=5`` builds the paper's version.

Inception v3: 23,834,568 parameters without the auxiliary classifier (the default), 27,161,264
with ``aux_logits=True``; native input 299x299.

Stages: ``stem`` = the convolutions and pools before the first Inception module; each following
stage is a group of Inception modules at one grid size, and the grid reduction that starts a group
is its first block (GoogLeNet: the max pool is the first layer of the group's first block;
Inception v3: the reduction modules Mixed_6a and Mixed_7a are the first blocks of stages 2 and 3).

- GoogLeNet: stem (192 ch, 28x28 at 224) | stage1 = 3a, 3b (480) | stage2 = pool+4a, 4b, 4c, 4d, 4e
  (832, 14x14) | stage3 = pool+5a, 5b (1024, 7x7) | head = global avg pool, dropout 0.2, fc.
- Inception v3: stem (192 ch, 35x35 at 299) | stage1 = 5b, 5c, 5d (288) | stage2 = 6a (reduction),
  6b, 6c, 6d, 6e (768, 17x17) | stage3 = 7a (reduction), 7b, 7c (2048, 8x8) | head = global avg
  pool, dropout 0.5, fc.

Auxiliary classifiers are attributes outside the stages (GoogLeNet: ``aux1`` after 4a, ``aux2``
after 4d; Inception v3: ``aux`` after 6e) and run only in training mode: then ``forward`` returns
a named tuple, logits first (:class:`GoogLeNetOutputs` ``(logits, aux2, aux1)`` or
:class:`InceptionOutputs` ``(logits, aux)``); in eval mode it returns the logits tensor only, and
the aux heads cost nothing. They still count as parameters whenever they are built.

Minimum input sizes (square):

- GoogLeNet: 15x15, with or without aux heads (15 -> 8 -> 4 -> 2 -> 1 -> 1 through the conv and
  the four ceil-mode pools; at 14x14 the third 3x3 max pool sees a 1x1 map and raises
  RuntimeError). The aux heads pool adaptively to 4x4 (the paper's 5x5/3 average pool gives 4x4
  at the native 14x14 grid), so they add no constraint.
- Inception v3 without aux: 75x75 (the 3x3 stride-2 convs of the reduction modules need a 3x3
  map); 74x74 raises RuntimeError.
- Inception v3 with aux, training mode: 299x299. The aux head's fixed 5x5/3 average pool and
  unpadded 5x5 convolution need a 17x17 map after Mixed_6e, which only 299 (and larger) input
  gives; smaller input raises RuntimeError in training mode (eval mode skips the aux head).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple, TypedDict, Unpack

import torch
from torch import Tensor, nn

from ._layers import StagedNet, init_weights
from ._registry import register_model, registered_defaults

__all__ = [
    "GoogLeNetArgs",
    "InceptionV3Args",
    "AuxStagedNet",
    "BasicConv2d",
    "GoogLeNetOutputs",
    "Inception",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionD",
    "InceptionE",
    "InceptionOutputs",
    "googlenet",
    "inception_v3",
]

_GOOGLENET = "Szegedy et al. 2015, Going Deeper with Convolutions"
_INCEPTION_V3 = "Szegedy et al. 2016, Rethinking the Inception Architecture for Computer Vision"

_Size = int | tuple[int, int]


class GoogLeNetOutputs(NamedTuple):
    """GoogLeNet's training-mode output with auxiliary classifiers (aux2 is the deeper one)."""

    logits: Tensor
    aux2: Tensor
    aux1: Tensor


class InceptionOutputs(NamedTuple):
    """Inception v3's training-mode output with its auxiliary classifier."""

    logits: Tensor
    aux: Tensor


class BasicConv2d(nn.Sequential):
    """Conv (no bias) + BatchNorm (eps 0.001) + ReLU; kernel and padding may be (h, w) pairs."""

    def __init__(
        self, in_ch: int, out_ch: int, kernel_size: _Size, stride: int = 1, padding: _Size = 0
    ) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_ch, eps=0.001),
            nn.ReLU(inplace=True),
        )
        self.out_channels = out_ch


class AuxStagedNet(StagedNet):
    """A StagedNet with auxiliary classifiers tapped after given blocks of its stages.

    ``aux`` lists ``(attribute, module, stage name, block index)``; each module becomes an attribute
    of the model (after ``head``) and, in training mode only, is applied to the output of that
    block. Training-mode output is then ``outputs(logits=..., <attribute>=...)``.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        head: nn.Module,
        channels: Sequence[int],
        *,
        aux: Sequence[tuple[str, nn.Module, str, int]] = (),
        outputs: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> None:
        super().__init__(stem, stages, head, channels)
        self._taps: dict[tuple[str, int], str] = {}
        for attr, module, stage, index in aux:
            self.add_module(attr, module)
            self._taps[(stage, index)] = attr
        self.aux_names = tuple(attr for attr, *_ in aux)
        if self.aux_names and outputs is None:
            raise ValueError("auxiliary heads need an outputs type")
        self._outputs = outputs

    # Override ignored: a training forward with aux heads returns a tuple, where StagedNet
    # returns a Tensor (narrowing the override would drop the aux outputs).
    def forward(self, x: Tensor) -> Tensor | tuple[Tensor, ...]:  # type: ignore[override]
        if not (self.training and self.aux_names):
            return super().forward(x)
        aux_out: dict[str, Tensor] = {}
        x = self.stem(x)
        for s in range(1, self.num_stages + 1):
            stage = f"stage{s}"
            for i, block in enumerate(getattr(self, stage)):
                x = block(x)
                attr = self._taps.get((stage, i))
                if attr is not None:
                    aux_out[attr] = getattr(self, attr)(x)
        assert self._outputs is not None
        return self._outputs(logits=self.head(x), **aux_out)


# --------------------------------------------------------------------------------------------
# GoogLeNet
# --------------------------------------------------------------------------------------------


class Inception(nn.Module):
    """GoogLeNet's Inception module: four parallel branches concatenated on channels.

    1x1 | 1x1 -> 3x3 | 1x1 -> kxk (k = ``branch3_kernel``, 3 in torchvision, 5 in the paper) |
    3x3/1 max pool -> 1x1.
    """

    def __init__(
        self,
        in_ch: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        *,
        branch3_kernel: int = 3,
    ) -> None:
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, 1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_ch, ch3x3red, 1), BasicConv2d(ch3x3red, ch3x3, 3, padding=1)
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_ch, ch5x5red, 1),
            BasicConv2d(ch5x5red, ch5x5, branch3_kernel, padding=branch3_kernel // 2),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_ch, pool_proj, 1)
        )
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1, self.branch2, self.branch3, self.branch4)
        return torch.cat([b(x) for b in branches], 1)


def _googlenet_aux(in_ch: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Aux classifier: avg pool to 4x4, conv1x1 128, fc 2048->1024, ReLU, dropout, fc."""
    return nn.Sequential(
        nn.AdaptiveAvgPool2d((4, 4)),
        BasicConv2d(in_ch, 128, 1),
        nn.Flatten(1),
        nn.Linear(128 * 4 * 4, 1024),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(1024, num_classes),
    )


def _pool_then(pool: nn.Module, block: nn.Module) -> nn.Sequential:
    """First block of a GoogLeNet stage: the grid-reducing max pool, then an Inception module."""
    return nn.Sequential(OrderedDict(pool=pool, block=block))


class GoogLeNetArgs(TypedDict, total=False):
    """Keywords of ``googlenet``: ``aux_logits`` builds the two auxiliary classifiers (default
    False), ``dropout`` / ``aux_dropout`` before the main / aux classifiers (0.2 / 0.7),
    ``branch3_kernel`` 3 (torchvision, default) or 5 (the paper)."""

    num_classes: int
    in_channels: int
    aux_logits: bool
    dropout: float
    aux_dropout: float
    branch3_kernel: Literal[3, 5]


def _create_googlenet(variant: str, **kwargs: Unpack[GoogLeNetArgs]) -> AuxStagedNet:
    return _build_googlenet(**registered_defaults(variant, kwargs, "num_classes", "in_channels"))


def _build_googlenet(
    *,
    num_classes: int,
    in_channels: int,
    aux_logits: bool = False,
    dropout: float = 0.2,
    aux_dropout: float = 0.7,
    branch3_kernel: int = 3,
) -> AuxStagedNet:
    def inc(*cfg: int) -> Inception:
        return Inception(*cfg, branch3_kernel=branch3_kernel)

    stem = nn.Sequential(
        BasicConv2d(in_channels, 64, 7, stride=2, padding=3),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
        BasicConv2d(64, 64, 1),
        BasicConv2d(64, 192, 3, padding=1),
        nn.MaxPool2d(3, stride=2, ceil_mode=True),
    )
    stage1 = nn.Sequential(
        inc(192, 64, 96, 128, 16, 32, 32),  # 3a
        inc(256, 128, 128, 192, 32, 96, 64),  # 3b
    )
    stage2 = nn.Sequential(
        _pool_then(nn.MaxPool2d(3, stride=2, ceil_mode=True), inc(480, 192, 96, 208, 16, 48, 64)),
        inc(512, 160, 112, 224, 24, 64, 64),  # 4b
        inc(512, 128, 128, 256, 24, 64, 64),  # 4c
        inc(512, 112, 144, 288, 32, 64, 64),  # 4d
        inc(528, 256, 160, 320, 32, 128, 128),  # 4e
    )
    stage3 = nn.Sequential(
        _pool_then(
            nn.MaxPool2d(2, stride=2, ceil_mode=True), inc(832, 256, 160, 320, 32, 128, 128)
        ),
        inc(832, 384, 192, 384, 48, 128, 128),  # 5b
    )
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout), nn.Linear(1024, num_classes)
    )
    aux = []
    if aux_logits:
        aux = [
            ("aux1", _googlenet_aux(512, num_classes, aux_dropout), "stage2", 0),  # after 4a
            ("aux2", _googlenet_aux(528, num_classes, aux_dropout), "stage2", 3),  # after 4d
        ]
    model = AuxStagedNet(
        stem,
        [stage1, stage2, stage3],
        head,
        channels=[192, 480, 832, 1024, num_classes],
        aux=aux,
        outputs=GoogLeNetOutputs,
    )
    init_weights(model)
    return model


@register_model(family="inception", paper=_GOOGLENET)
def googlenet(**kwargs: Unpack[GoogLeNetArgs]) -> AuxStagedNet:
    """GoogLeNet (torchvision layout with BatchNorm): 6,624,904 parameters, 13,004,888 with
    ``aux_logits=True``; ``branch3_kernel=5`` gives the paper's 5x5 branch."""
    return _create_googlenet("googlenet", **kwargs)


# --------------------------------------------------------------------------------------------
# Inception v3
# --------------------------------------------------------------------------------------------


class InceptionA(nn.Module):
    """35x35 module (Mixed_5b-d): 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool -> 1x1."""

    def __init__(self, in_ch: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 64, 1)
        self.branch5x5 = nn.Sequential(BasicConv2d(in_ch, 48, 1), BasicConv2d(48, 64, 5, padding=2))
        self.branch3x3dbl = nn.Sequential(
            BasicConv2d(in_ch, 64, 1),
            BasicConv2d(64, 96, 3, padding=1),
            BasicConv2d(96, 96, 3, padding=1),
        )
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1), BasicConv2d(in_ch, pool_features, 1)
        )
        self.out_channels = 64 + 64 + 96 + pool_features

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1x1, self.branch5x5, self.branch3x3dbl, self.branch_pool)
        return torch.cat([b(x) for b in branches], 1)


class InceptionB(nn.Module):
    """Grid reduction 35 -> 17 (Mixed_6a): 3x3/2 | 1x1 -> 3x3 -> 3x3/2 | max pool 3x3/2."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_ch, 384, 3, stride=2)
        self.branch3x3dbl = nn.Sequential(
            BasicConv2d(in_ch, 64, 1),
            BasicConv2d(64, 96, 3, padding=1),
            BasicConv2d(96, 96, 3, stride=2),
        )
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = 384 + 96 + in_ch

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch3x3, self.branch3x3dbl, self.branch_pool)
        return torch.cat([b(x) for b in branches], 1)


class InceptionC(nn.Module):
    """17x17 module with factorised 7x7 convolutions (Mixed_6b-e); ``c7`` is the inner width."""

    def __init__(self, in_ch: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 192, 1)
        self.branch7x7 = nn.Sequential(
            BasicConv2d(in_ch, c7, 1),
            BasicConv2d(c7, c7, (1, 7), padding=(0, 3)),
            BasicConv2d(c7, 192, (7, 1), padding=(3, 0)),
        )
        self.branch7x7dbl = nn.Sequential(
            BasicConv2d(in_ch, c7, 1),
            BasicConv2d(c7, c7, (7, 1), padding=(3, 0)),
            BasicConv2d(c7, c7, (1, 7), padding=(0, 3)),
            BasicConv2d(c7, c7, (7, 1), padding=(3, 0)),
            BasicConv2d(c7, 192, (1, 7), padding=(0, 3)),
        )
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1), BasicConv2d(in_ch, 192, 1)
        )
        self.out_channels = 4 * 192

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1x1, self.branch7x7, self.branch7x7dbl, self.branch_pool)
        return torch.cat([b(x) for b in branches], 1)


class InceptionD(nn.Module):
    """Grid reduction 17 -> 8 (Mixed_7a): 1x1 -> 3x3/2 | 1x1 -> 1x7 -> 7x1 -> 3x3/2 | max pool."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = nn.Sequential(
            BasicConv2d(in_ch, 192, 1), BasicConv2d(192, 320, 3, stride=2)
        )
        self.branch7x7x3 = nn.Sequential(
            BasicConv2d(in_ch, 192, 1),
            BasicConv2d(192, 192, (1, 7), padding=(0, 3)),
            BasicConv2d(192, 192, (7, 1), padding=(3, 0)),
            BasicConv2d(192, 192, 3, stride=2),
        )
        self.branch_pool = nn.MaxPool2d(3, stride=2)
        self.out_channels = 320 + 192 + in_ch

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch3x3, self.branch7x7x3, self.branch_pool)
        return torch.cat([b(x) for b in branches], 1)


class _SplitPair(nn.Module):
    """Apply a 1x3 and a 3x1 convolution to the same input and concatenate (InceptionE)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_1x3 = BasicConv2d(channels, channels, (1, 3), padding=(0, 1))
        self.conv_3x1 = BasicConv2d(channels, channels, (3, 1), padding=(1, 0))

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.conv_1x3(x), self.conv_3x1(x)], 1)


class InceptionE(nn.Module):
    """8x8 module with expanded filter banks (Mixed_7b-c): 1x1 | 1x1 -> (1x3, 3x1) |
    1x1 -> 3x3 -> (1x3, 3x1) | avg pool -> 1x1; 2048 output channels."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_ch, 320, 1)
        self.branch3x3 = nn.Sequential(BasicConv2d(in_ch, 384, 1), _SplitPair(384))
        self.branch3x3dbl = nn.Sequential(
            BasicConv2d(in_ch, 448, 1), BasicConv2d(448, 384, 3, padding=1), _SplitPair(384)
        )
        self.branch_pool = nn.Sequential(
            nn.AvgPool2d(3, stride=1, padding=1), BasicConv2d(in_ch, 192, 1)
        )
        self.out_channels = 320 + 2 * 384 + 2 * 384 + 192

    def forward(self, x: Tensor) -> Tensor:
        branches = (self.branch1x1, self.branch3x3, self.branch3x3dbl, self.branch_pool)
        return torch.cat([b(x) for b in branches], 1)


def _inception_v3_aux(in_ch: int, num_classes: int) -> nn.Sequential:
    """Aux classifier on the 17x17 grid: avg pool 5x5/3 (-> 5x5), conv1x1 128, conv5x5 768
    (-> 1x1), global pool, fc 768->classes."""
    return nn.Sequential(
        nn.AvgPool2d(5, stride=3),
        BasicConv2d(in_ch, 128, 1),
        BasicConv2d(128, 768, 5),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(768, num_classes),
    )


class InceptionV3Args(TypedDict, total=False):
    """Keywords of ``inception_v3``: ``aux_logits`` builds the auxiliary classifier (default
    False), ``dropout`` before the classifier (default 0.5)."""

    num_classes: int
    in_channels: int
    aux_logits: bool
    dropout: float


def _create_inception_v3(variant: str, **kwargs: Unpack[InceptionV3Args]) -> AuxStagedNet:
    return _build_inception_v3(**registered_defaults(variant, kwargs, "num_classes", "in_channels"))


def _build_inception_v3(
    *, num_classes: int, in_channels: int, aux_logits: bool = False, dropout: float = 0.5
) -> AuxStagedNet:
    stem = nn.Sequential(
        BasicConv2d(in_channels, 32, 3, stride=2),  # Conv2d_1a_3x3
        BasicConv2d(32, 32, 3),  # Conv2d_2a_3x3
        BasicConv2d(32, 64, 3, padding=1),  # Conv2d_2b_3x3
        nn.MaxPool2d(3, stride=2),
        BasicConv2d(64, 80, 1),  # Conv2d_3b_1x1
        BasicConv2d(80, 192, 3),  # Conv2d_4a_3x3
        nn.MaxPool2d(3, stride=2),
    )
    stage1 = nn.Sequential(InceptionA(192, 32), InceptionA(256, 64), InceptionA(288, 64))
    stage2 = nn.Sequential(
        InceptionB(288),
        InceptionC(768, 128),
        InceptionC(768, 160),
        InceptionC(768, 160),
        InceptionC(768, 192),
    )
    stage3 = nn.Sequential(InceptionD(768), InceptionE(1280), InceptionE(2048))
    head = nn.Sequential(
        nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Dropout(dropout), nn.Linear(2048, num_classes)
    )
    aux = [("aux", _inception_v3_aux(768, num_classes), "stage2", 4)] if aux_logits else []
    model = AuxStagedNet(
        stem,
        [stage1, stage2, stage3],
        head,
        channels=[192, 288, 768, 2048, num_classes],
        aux=aux,
        outputs=InceptionOutputs,
    )
    init_weights(model)
    return model


@register_model(family="inception", paper=_INCEPTION_V3, input_size=(3, 299, 299))
def inception_v3(**kwargs: Unpack[InceptionV3Args]) -> AuxStagedNet:
    """Inception v3 (torchvision layout), 299x299 input: 23,834,568 parameters, 27,161,264 with
    ``aux_logits=True``."""
    return _create_inception_v3("inception_v3", **kwargs)
