"""Building blocks shared by every family: the staged network skeleton and the SE module.

Every zoo model is a :class:`StagedNet`: ``stem -> stage1 .. stageN -> head``, each a direct
child with exactly that name, so the profiler can break costs down per stage for any model.

**cnnbench's own protocol** (defined here, in one place; recognised by type, never by an
attribute name, since other libraries use the same names for other things: timm models store
``self.stages = nn.Sequential(...)``, hrnet has a method ``stages(self, x)``):

* a model has named stages (per-stage costs and times) when it is a :class:`StagedNet`
  (:func:`staged_net`); any other model is broken down by its top-level children;
* a module is a Squeeze-and-Excitation block when it is a :class:`SqueezeExcite`
  (:func:`se_block_types`, what the counters are given as ``se_types``).

A user's model opts in by subclassing these classes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

__all__ = [
    "Stage",
    "StagedNet",
    "SqueezeExcite",
    "ConvBNAct",
    "NormLayer",
    "make_divisible",
    "init_weights",
    "staged_net",
    "se_block_types",
]


@dataclass(frozen=True)
class Stage:
    """One named stage: ``blocks`` is the number of blocks (children of a stage; 1 for the stem
    and the head), ``out_channels`` the channels of its output (for the head: the classes)."""

    name: str
    blocks: int
    out_channels: int


class StagedNet(nn.Module):
    """``stem -> stage1 .. stageN -> head``.

    ``channels`` lists the output channels of the stem, of each stage and of the head, in order;
    a test checks them against a real forward pass so they cannot drift from the code.
    Families with extra outputs (auxiliary heads) override ``forward`` but keep the names.
    """

    def __init__(
        self,
        stem: nn.Module,
        stages: Sequence[nn.Module],
        head: nn.Module,
        channels: Sequence[int],
    ) -> None:
        super().__init__()
        if len(channels) != len(stages) + 2:
            raise ValueError("channels needs one entry for the stem, each stage and the head")
        self.stem = stem
        for i, stage in enumerate(stages, start=1):
            self.add_module(f"stage{i}", stage)
        self.head = head
        self.num_stages = len(stages)
        self.stage_channels = tuple(int(c) for c in channels)

    def stage_names(self) -> list[str]:
        return ["stem", *(f"stage{i}" for i in range(1, self.num_stages + 1)), "head"]

    def stages(self) -> list[Stage]:
        """The named stages with block counts and output channels."""
        out = []
        for name, ch in zip(self.stage_names(), self.stage_channels, strict=True):
            module = getattr(self, name)
            is_stage = name.startswith("stage") and isinstance(module, nn.Sequential)
            blocks = len(module) if is_stage else 1
            out.append(Stage(name=name, blocks=blocks, out_channels=ch))
        return out

    def forward(self, x: Tensor) -> Tensor:
        for name in self.stage_names():
            x = getattr(self, name)(x)
        return x


class SqueezeExcite(nn.Module):
    """Squeeze-and-Excitation: global average pool, 1x1 conv C->R (bias), act, 1x1 conv R->C
    (bias), gate, channel-wise multiply. One class for every family so SE blocks can be found
    with ``isinstance``; ``channels`` is C and ``reduced_channels`` is R."""

    def __init__(
        self,
        channels: int,
        reduced_channels: int,
        act: Callable[[], nn.Module] = nn.ReLU,
        gate: Callable[[], nn.Module] = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.reduced_channels = reduced_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = act()
        self.fc2 = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: Tensor) -> Tensor:
        s = self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return x * s


def staged_net(model: object) -> StagedNet | None:
    """``model`` as a StagedNet when it is one (cnnbench's stage protocol), else None."""
    return model if isinstance(model, StagedNet) else None


def se_block_types() -> tuple[type[SqueezeExcite], ...]:
    """Module classes that are SE blocks under cnnbench's protocol (the zoo's one class)."""
    return (SqueezeExcite,)


#: A normalisation layer factory taking the channel count (``nn.BatchNorm2d`` or a partial).
NormLayer = Callable[[int], nn.Module]


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias) + BatchNorm2d + optional activation; 'same' padding for odd kernels.

    ``norm`` builds the BatchNorm: ``nn.BatchNorm2d`` (eps 1e-5, momentum 0.1) by default, a
    ``partial(nn.BatchNorm2d, eps=..., momentum=...)`` where the reference implementation
    differs (MobileNetV3, EfficientNet-B5..B7, the Inception family)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        dilation: int = 1,
        act: Callable[[], nn.Module] | None = nn.ReLU,
        padding: int | None = None,
        norm: NormLayer = nn.BatchNorm2d,
    ) -> None:
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=padding,
                groups=groups,
                dilation=dilation,
                bias=False,
            ),
            norm(out_channels),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)
        self.out_channels = out_channels


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` without going below 90% of it
    (the rule of the MobileNet/EfficientNet reference code)."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs, unit BatchNorm, small normal linears (torchvision's defaults).
    A model built on the meta device has no values to initialise: skipped (on meta, the
    random initialisers load PyTorch's Python reference kernels, about a second)."""
    if any(p.is_meta for p in module.parameters()):
        return
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
