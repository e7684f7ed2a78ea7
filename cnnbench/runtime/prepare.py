"""A model and its input made ready to run under one configuration: device, autocast, memory
format, training step, global settings (threads, cudnn.benchmark), OOM detection."""

from __future__ import annotations

import contextlib
import gc
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from cnnbench.errors import UsageError
from cnnbench.request import InputSpec
from cnnbench.request import check_input_size as checked_input_size
from cnnbench.runtime.config import (
    MEMORY_FORMATS,
    PRECISIONS,
    RuntimeConfig,
    _device_label,
    resolve_device,
)
from cnnbench.runtime.peak import Peak, machine_peak
from cnnbench.spec import ExampleInputs
from cnnbench.static import check_input as check_fits_model

__all__ = ["Prepared", "prepare", "check_input_size", "is_oom", "measurement_settings"]

_TRAIN_LR = 1e-3


def _autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The dtype autocast really uses for ``precision`` on ``device`` (None for fp32).

    UsageError when the dtype is not supported there (autocast would silently disable itself).
    """
    dtype = PRECISIONS[precision]
    if dtype is None:
        return None
    unsupported = UsageError(
        f"{precision} is not supported on {_device_label(device)}; use fp32"
        + (" or fp16" if precision == "bf16" and device.type == "cuda" else "")
    )
    if device.type == "cuda" and dtype == torch.bfloat16 and not _cuda_bf16_supported(device):
        raise unsupported
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with torch.autocast(device.type, dtype=dtype):
                enabled = torch.is_autocast_enabled(device.type)
                actual = torch.get_autocast_dtype(device.type)
        except (RuntimeError, ValueError):
            raise unsupported from None
    if not enabled:
        raise unsupported
    return actual


def _cuda_bf16_supported(device: torch.device) -> bool:
    with torch.cuda.device(device):
        try:
            return bool(torch.cuda.is_bf16_supported(including_emulation=False))
        except TypeError:  # older torch without the keyword
            return bool(torch.cuda.is_bf16_supported())


def check_input_size(
    model: nn.Module, name: str, channels: int, resolution: int, default_resolution: int
) -> None:
    """UsageError (THE one line of :func:`cnnbench.static.input_error`) when ``model``
    cannot take a ``channels x resolution x resolution`` input. Checked on the meta device, in
    eval mode; a model that fails at its own default resolution is not this check's business."""
    check_fits_model(
        model, name, (channels, resolution, resolution),
        (channels, default_resolution, default_resolution),
    )  # fmt: skip


def _all_finite(output: Any) -> bool:
    if isinstance(output, Tensor):
        return bool(torch.isfinite(output).all()) if output.is_floating_point() else True
    if isinstance(output, (list, tuple)):
        return all(_all_finite(o) for o in output)
    if isinstance(output, Mapping):
        return all(_all_finite(o) for o in output.values())
    return True


def _main_output(output: Any) -> Tensor:
    """The tensor a loss is computed on: the output itself or the first tensor of a tuple."""
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (list, tuple)) and output:
        return _main_output(output[0])
    if isinstance(output, Mapping) and output:
        return _main_output(next(iter(output.values())))
    raise TypeError(f"model output of type {type(output).__name__} has no tensor to train on")


@dataclass
class Prepared:
    """A model and input ready to run under one configuration.

    ``step()`` runs one timed unit (a forward pass, or a training step) and returns the output;
    call it inside ``context()``, which enters inference mode and autocast for inference (in
    training the step enters autocast itself, as the AMP recipe has backward outside it).
    """

    model: nn.Module
    inputs: Tensor
    device: torch.device
    config: RuntimeConfig
    input_size: tuple[int, ...]  # (C, H, W), or the first example input's shape
    batch_size: int
    autocast_dtype: torch.dtype | None
    step: Callable[[], Any]
    name: str = "model"
    optimizer: torch.optim.Optimizer | None = None
    arguments: ExampleInputs | None = None  # every input the step passes (args and kwargs)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def autocast_name(self) -> str | None:
        """The autocast dtype as results record it (e.g. ``bfloat16``); None without AMP."""
        return str(self.autocast_dtype).removeprefix("torch.") if self.autocast_dtype else None

    def context(self) -> contextlib.ExitStack:
        stack = contextlib.ExitStack()
        if self.config.mode == "inference":
            stack.enter_context(torch.inference_mode())
            stack.enter_context(self.autocast())
        return stack


def prepare(
    model: nn.Module,
    config: RuntimeConfig,
    *,
    name: str = "model",
    input_size: Sequence[int] | None = None,
    batch_size: int | None = None,
    check_input: bool = True,
    example_inputs: ExampleInputs | None = None,
) -> Prepared:
    """Validate ``config`` against this machine and ``model``, move and convert the model in
    place, build the input and the step function. ``batch_size`` overrides the config's
    (used by OOM back-off). ``check_input=False`` skips the meta-device input-size check
    (the memory child: the parent checked, and the meta pass would add to the measured RSS).
    ``example_inputs`` (one image's tensors) replace the random C x H x W input: each is
    repeated to the batch and moved to the device, and the forward is called with them.
    Raises UsageError for bad input."""
    device = resolve_device(config.device)
    autocast_dtype = _autocast_dtype(device, config.precision)
    size = None if input_size is None else checked_input_size(input_size)
    spec = InputSpec(size, example_inputs)
    shape = spec.shape_for(model, config.resolution, name)  # THE rule (cnnbench.request)
    if check_input and example_inputs is None and config.resolution is not None:
        check_fits_model(model, name, shape, spec.shape_for(model, None, name))
    batch = config.batch_size if batch_size is None else batch_size
    fmt = MEMORY_FORMATS[config.memory_format]

    model.to(device=device)
    # Always converted, both ways: the same module serves every configuration, and a
    # contiguous row after a channels_last one must not run channels_last weights.
    model.to(memory_format=fmt)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    if example_inputs is None:
        # Created on the device itself (a batch too large fails there, not in host memory).
        gen = torch.Generator(device=device).manual_seed(0)
        x = torch.randn(batch, *shape, generator=gen, device=device)
        inputs = ExampleInputs((x.contiguous(memory_format=fmt),))
    else:

        def place(t: Tensor) -> Tensor:
            t = t.to(device)
            return t.contiguous(memory_format=fmt) if t.dim() == 4 else t

        inputs = example_inputs.batched(batch).map(place)
    return _finish(model, config, name, device, autocast_dtype, batch, shape, inputs)


def _finish(
    model: nn.Module,
    config: RuntimeConfig,
    name: str,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    batch: int,
    input_size: tuple[int, ...],
    inputs: ExampleInputs,
) -> Prepared:
    """The Prepared of a placed model and its inputs: compile, mode, the step function."""
    runner: nn.Module | Callable[..., Any] = model
    if config.compile:
        # A fresh, static-shape compile per configuration: reusing dynamo's cache across
        # batch sizes recompiles dynamically and, after its recompile limit, silently runs
        # the eager model while the row would still say "compiled".
        torch._dynamo.reset()
        runner = torch.compile(model, dynamic=False)
    args, kwargs = inputs.args, inputs.kwargs

    def call() -> Any:
        return runner(*args, **kwargs)

    prepared = Prepared(
        model=model,
        inputs=inputs.first,
        device=device,
        config=config,
        input_size=input_size,
        batch_size=batch,
        autocast_dtype=autocast_dtype,
        step=lambda: None,
        name=name,
        arguments=inputs,
    )
    if config.mode == "inference":
        model.eval()
        prepared.step = call
    else:
        model.train()
        prepared.optimizer = torch.optim.SGD(model.parameters(), lr=_TRAIN_LR, momentum=0.9)
        prepared.step = _train_step(prepared, call, torch.Generator().manual_seed(1))
    return prepared


def _train_step(
    prepared: Prepared, runner: Callable[..., Any], gen: torch.Generator
) -> Callable[[], Any]:
    optimizer = prepared.optimizer
    assert optimizer is not None
    use_scaler = prepared.autocast_dtype == torch.float16
    scaler = torch.amp.GradScaler(prepared.device.type) if use_scaler else None
    autocast = prepared.autocast
    labels: dict[str, Tensor] = {}

    def loss_of(output: Any) -> Tensor:
        logits = _main_output(output)
        if logits.dim() == 2:
            if "y" not in labels:
                y = torch.randint(0, logits.shape[1], (logits.shape[0],), generator=gen)
                labels["y"] = y.to(logits.device)
            return nn.functional.cross_entropy(logits.float(), labels["y"])
        return logits.float().pow(2).mean()

    def step() -> Any:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            output = runner()
        loss = loss_of(output)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        return output

    return step


@contextlib.contextmanager
def measurement_settings(config: RuntimeConfig, device: torch.device) -> Iterator[None]:
    """Apply CPU threads and cudnn.benchmark for the measurement, restore them afterwards."""
    old_threads = torch.get_num_threads()
    old_benchmark = torch.backends.cudnn.benchmark
    try:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = config.cudnn_benchmark
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.backends.cudnn.benchmark = old_benchmark


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error (CUDA's OutOfMemoryError, or a CPU allocator failure)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, (RuntimeError, MemoryError)):
        text = str(exc).lower()
        return isinstance(exc, MemoryError) or (
            "out of memory" in text or "can't allocate memory" in text
        )
    return False


def _free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_for(device: torch.device, autocast_dtype: torch.dtype | None, peak: Peak | None) -> Peak:
    if peak is not None:
        return peak
    return machine_peak(device, autocast_dtype or torch.float32)
