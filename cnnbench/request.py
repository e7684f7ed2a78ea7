"""What to run, as one object every door builds: the CLI (``profile``, ``compare``), the Python
API (:func:`cnnbench.compare`), sweep files and gate configurations.

* :class:`InputSpec` is the input a model is fed, with THE rule for its shape
  (:meth:`InputSpec.shape`) and THE error text for a bad size (:func:`check_input_size`).
* :func:`runtime_configs` is the one grid builder of :class:`~cnnbench.runtime.RuntimeConfig`
  from the knobs, with one default per knob.
* :class:`RunRequest` is models x configurations plus how they are measured.

No torch import at module level: the CLI's startup stays fast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cnnbench.choices import (
    COUNTERS,
    DEFAULT_BUDGET_S,
    MEMORY_FORMAT_BOTH,
    MEMORY_FORMATS,
)
from cnnbench.errors import UsageError, check_bool

if TYPE_CHECKING:
    from cnnbench.runtime.config import RuntimeConfig

__all__ = [
    "LAYER_BUDGET_FACTOR",
    "MAX_SIDE",
    "InputSpec",
    "RunRequest",
    "check_input_size",
    "runtime_configs",
    "check_bool",
    "check_keys",
    "check_knobs",
]

#: With a ``depth``, per-layer timing gets this many times a configuration's budget, per
#: model and configuration, on top of the engine's timing.
LAYER_BUDGET_FACTOR = 2

#: The largest input side (C, H or W) accepted.
MAX_SIDE = 65_536


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_input_size(value: Any, name: str = "") -> tuple[int, int, int]:
    """``(C, H, W)`` from a sequence of three ints or a ``"C,H,W"`` / ``"CxHxW"`` string.

    THE error text for a bad input size, whichever door it came through:
    ``input size 3x0x0: expected three positive integers C,H,W (at most 65536), e.g.
    3,224,224`` (prefixed by ``name:`` when given)."""
    if isinstance(value, str):
        parts: list[Any] = value.lower().replace("x", ",").split(",")
        try:
            parts = [int(p) for p in parts]
        except ValueError:
            parts = []
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        parts = []
    if len(parts) == 3 and all(_is_int(p) and 0 < p <= MAX_SIDE for p in parts):
        return (parts[0], parts[1], parts[2])
    if parts and all(_is_int(p) for p in parts):
        shown = "x".join(map(str, parts))  # 3,0,8 and (3, 0, 8) read the same
    else:
        shown = repr(value)
    prefix = f"{name}: " if name else ""
    raise UsageError(
        f"{prefix}input size {shown}: expected three positive integers C,H,W "
        f"(at most {MAX_SIDE}), e.g. 3,224,224"
    )


@dataclass(frozen=True)
class InputSpec:
    """The input one image is: ``size`` (C, H, W; None: the model's ``model_info.input_size``)
    or ``example`` inputs (a :class:`cnnbench.spec.ExampleInputs` at batch 1, which win over
    any size). A configuration's ``resolution`` sets H = W of the size (see :meth:`shape`).
    The size is checked on construction (:func:`check_input_size`)."""

    size: tuple[int, int, int] | None = None
    example: Any = None

    def __post_init__(self) -> None:
        if self.size is not None:
            object.__setattr__(self, "size", check_input_size(self.size))

    @classmethod
    def of(cls, size: Any = None, example: Any = None) -> InputSpec:
        """From the user's values: ``size`` as a sequence or ``"C,H,W"``; ``example`` as a
        tensor, a tuple or dict of tensors, or a callable returning one (batch 1)."""
        if example is not None:
            from cnnbench.spec import ExampleInputs

            example = ExampleInputs.of(example)
        return cls(check_input_size(size) if size is not None else None, example)

    def shape(
        self, native: Sequence[int] | None, resolution: int | None = None, name: str = "model"
    ) -> tuple[int, ...]:
        """THE rule for the shape of one image's (first) input: the example's shape, else
        ``size``, else ``native`` (the model's ``model_info.input_size``); then ``resolution``
        sets H = W (example inputs keep their shape). UsageError, one line, when there is no
        size at all or the result is not a valid size."""
        if self.example is not None:
            return tuple(self.example.input_size)
        size = self.size if self.size is not None else native
        if size is None:
            raise UsageError(
                f"{name}: no default input size; pass input_size=(C, H, W) or --input-size C,H,W"
            )
        if len(size) != 3:
            return tuple(check_input_size(size, name))
        c, h, w = size
        if resolution is not None:
            h = w = resolution
        return check_input_size((c, h, w), name)

    def shape_for(
        self, model: Any, resolution: int | None = None, name: str = "model"
    ) -> tuple[int, ...]:
        """:meth:`shape` with the native size read from ``model.model_info``."""
        from cnnbench.models import info_of

        info = info_of(model)
        return self.shape(getattr(info, "input_size", None), resolution, name)

    def key(self) -> tuple[Any, ...]:
        """What tells two input specs apart in a cache (the example by identity)."""
        return (self.size, id(self.example) if self.example is not None else None)


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def runtime_configs(
    *,
    device: str = "auto",
    batch: int | Sequence[int] = 1,
    precision: str | Sequence[str] = "fp32",
    memory_format: str | Sequence[str] = "contiguous",
    resolution: int | None | Sequence[int] = None,
    threads: int | None = None,
    compile: bool = False,
    train: bool = False,
    budget: float = DEFAULT_BUDGET_S,
    call_timeout: float | None = None,
    **fixed: Any,
) -> list[RuntimeConfig]:
    """THE grid of runtime configurations from the knobs, with their one default each; a
    list gives an axis (every combination is measured, the last axis fastest).
    ``memory_format="both"`` means contiguous and channels_last. ``budget`` is seconds of
    timing per model and configuration (warm-up included); ``call_timeout`` seconds one call
    of the model may take. ``fixed`` sets other :class:`RuntimeConfig` fields (e.g.
    ``target_ci``, or ``mode`` by name instead of ``train``). Every value is validated by RuntimeConfig (UsageError, one line)."""
    from cnnbench.runtime.config import RuntimeConfig

    check_bool(train, "train")  # compile and the other flags: RuntimeConfig
    formats = [
        f for v in _values(memory_format)
        for f in (MEMORY_FORMATS if v == MEMORY_FORMAT_BOTH else (v,))
    ]  # fmt: skip
    return RuntimeConfig.grid(
        device=device,
        precision=_values(precision),
        memory_format=list(dict.fromkeys(formats)),
        batch_size=_values(batch),
        resolution=_values(resolution),
        threads=threads,
        compile=compile,
        budget_s=budget,
        call_timeout_s=call_timeout,
        **{"mode": "train" if train else "inference", **fixed},
    )


@dataclass(frozen=True)
class RunRequest:
    """Models x configurations and how they are measured: ``inputs`` (one image's input),
    ``counter`` (MAC counter for the totals), ``static_only`` (count, do not time),
    ``cpu_memory`` (CPU peak memory in a child process), ``depth`` (per-module rows down to
    it), ``baseline`` (the model ratios divide by; None: the first), ``model_args`` (builder
    keywords for specs). Build it with :meth:`of`."""

    models: tuple[Any, ...]
    configs: tuple[RuntimeConfig, ...]
    inputs: InputSpec = InputSpec()
    counter: str = "cnnbench"
    static_only: bool = False
    cpu_memory: bool = True
    depth: int | None = None
    baseline: str | None = None
    model_args: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.models:
            raise UsageError("no model to run; name one, e.g. lenet5")
        if not self.configs:
            raise UsageError("no configuration to run")
        check_bool(self.static_only, "static_only")
        check_bool(self.cpu_memory, "cpu_memory")
        if self.counter not in COUNTERS:
            raise UsageError(f"unknown counter {self.counter!r}; use one of {', '.join(COUNTERS)}")
        if self.depth is not None and not (_is_int(self.depth) and self.depth >= 1):
            raise UsageError(f"depth must be an integer >= 1 (1 = top-level), got {self.depth!r}")
        if not isinstance(self.model_args, Mapping) or not all(
            isinstance(k, str) and k.isidentifier() for k in self.model_args
        ):
            raise UsageError(
                f"model_args must map builder keywords to values, got {self.model_args!r}"
            )

    @property
    def labels(self) -> list[str]:
        """The models' names as given: a spec, or a module's ``model_info.name`` or class."""
        return [_label(m) for m in self.models]

    @classmethod
    def of(
        cls,
        models: Sequence[Any],
        *,
        device: str = "auto",
        batch: int | Sequence[int] = 1,
        precision: str | Sequence[str] = "fp32",
        memory_format: str | Sequence[str] = "contiguous",
        resolution: int | None | Sequence[int] = None,
        threads: int | None = None,
        compile: bool = False,
        train: bool = False,
        budget: float = DEFAULT_BUDGET_S,
        call_timeout: float | None = None,
        input_size: Any = None,
        example_inputs: Any = None,
        counter: str = "cnnbench",
        static_only: bool = False,
        cpu_memory: bool = True,
        depth: int | None = None,
        baseline: str | None = None,
        model_args: Mapping[str, Any] | None = None,
    ) -> RunRequest:
        """THE builder, with one default per knob (the keys of
        :class:`cnnbench.api.RunOptions`); see :func:`runtime_configs` for the configuration
        knobs and :class:`InputSpec` for ``input_size`` and ``example_inputs``."""
        if isinstance(models, str):
            models = [models]
        configs = runtime_configs(
            device=device, batch=batch, precision=precision, memory_format=memory_format,
            resolution=resolution, threads=threads, compile=compile, train=train,
            budget=budget, call_timeout=call_timeout,
        )  # fmt: skip
        return cls(
            models=tuple(models),
            configs=tuple(configs),
            inputs=InputSpec.of(input_size, example_inputs),
            counter=counter,
            static_only=static_only,
            cpu_memory=cpu_memory,
            depth=depth,
            baseline=baseline,
            model_args=dict(model_args or {}),
        )

    def resolutions(self) -> list[int | None]:
        """The distinct resolutions of the configurations, native (None) first."""
        return sorted({c.resolution for c in self.configs}, key=lambda r: r or 0)


def _label(model: Any) -> str:
    if isinstance(model, str):
        return model
    name = getattr(model, "name", None)  # a cnnbench.spec.LoadedModel
    if isinstance(name, str) and hasattr(model, "module"):
        return name
    from cnnbench.models import info_of

    info = info_of(model)
    return getattr(info, "name", None) or type(model).__name__


def check_knobs(knobs: Mapping[str, Any], where: str) -> None:
    """Each knob of :meth:`RunRequest.of` checked on its own, so that a bad value is refused
    with the one validation of that knob, prefixed by ``where.<knob>`` (e.g.
    ``sweep.toml: sweep.budget: time budget must be ...``)."""
    for knob, value in knobs.items():
        try:
            RunRequest.of(("model",), **{knob: value})
        except UsageError as exc:
            raise UsageError(f"{where}.{knob}: {exc}") from None
        except TypeError:
            raise UsageError(f"{where}.{knob}: unexpected value {value!r}") from None


def check_keys(
    table: Mapping[str, Any], known: Sequence[str] | set[str], source: str, name: str
) -> None:
    """UsageError naming the first unknown key of the TOML table ``name`` (e.g. ``sweep``)
    in the file ``source``, and the known keys."""
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise UsageError(
            f"{source}: {name}.{unknown[0]}: unknown key; known: {', '.join(sorted(known))}"
        )
