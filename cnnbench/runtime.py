"""Runtime profiler: latency, throughput, memory and per-stage time of a model under one
configuration (device, AMP precision, memory format, batch, resolution, threads, compile, mode).

Conventions:

* Latency is per batch, in milliseconds, measured by :func:`cnnbench.timing.measure`;
  throughput is ``effective_batch_size / median latency`` in images per second.
* Inference runs the model in eval mode under ``torch.inference_mode``; training runs one
  step per call: forward, cross-entropy against fixed random labels (mean of squares for
  non-logit outputs), backward and an SGD step (lr 1e-3, momentum 0.9; fp16 uses a GradScaler).
* AMP is ``torch.autocast`` with the requested dtype; the dtype autocast actually reports
  inside the context is recorded. Inputs are created in fp32; autocast casts inside.
* ``channels_last`` converts both the model (in place) and the input.
* :func:`measure_model` moves the model to the device in place and, in training mode, updates
  its weights. It never counts FLOPs: ``flops_per_image`` comes from the static counter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from .errors import UsageError
from .memory import cpu_peak_memory, cuda_peak_memory
from .peak import Peak, machine_peak
from .results import Result, StageCost
from .static import fits_on_meta, meta_forward, smallest_resolution
from .timing import TimingStats, measure

__all__ = [
    "PRECISIONS",
    "MEMORY_FORMATS",
    "MODES",
    "RuntimeConfig",
    "Prepared",
    "resolve_device",
    "prepare",
    "check_input_size",
    "measure_model",
    "stats_into",
    "stage_times",
    "with_stage_times",
    "time_vs_macs",
    "is_oom",
]

PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
MEMORY_FORMATS: dict[str, torch.memory_format] = {
    "contiguous": torch.contiguous_format,
    "channels_last": torch.channels_last,
}
MODES = ("inference", "train")
_DEVICE_HELP = "use cpu, cuda, cuda:N or auto"
_DEFAULT_BUDGET_S = 5.0
_DEFAULT_STAGE_BUDGET_S = 0.5
_TRAIN_LR = 1e-3


def _choices(table: Mapping[str, Any] | Sequence[str]) -> str:
    return ", ".join(table)


@dataclass(frozen=True)
class RuntimeConfig:
    """One runtime configuration. Values are checked on construction (UsageError, one line);
    whether the device and dtype exist on this machine is checked by :func:`resolve_device`
    and :func:`prepare`.

    ``resolution`` is H = W in pixels (None: the model's default). ``threads`` is the number of
    CPU intra-op threads (None: leave torch's setting; the value in effect is recorded).
    ``budget_s`` is the time budget per configuration in seconds (warm-up included) and
    ``target_ci`` the relative half-width of the median's 95% CI at which timing stops.
    ``oom_backoff`` retries an out-of-memory configuration with half the batch, recording the
    batch that ran as ``effective_batch_size``.
    """

    device: str = "auto"
    precision: str = "fp32"
    memory_format: str = "contiguous"
    batch_size: int = 1
    resolution: int | None = None
    threads: int | None = None
    compile: bool = False
    mode: str = "inference"
    cudnn_benchmark: bool = True
    target_ci: float = 0.02
    budget_s: float = _DEFAULT_BUDGET_S
    oom_backoff: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise UsageError(
                f"unknown precision {self.precision!r}; use one of {_choices(PRECISIONS)}"
            )
        if self.memory_format not in MEMORY_FORMATS:
            raise UsageError(
                f"unknown memory format {self.memory_format!r}; "
                f"use one of {_choices(MEMORY_FORMATS)}"
            )
        if self.mode not in MODES:
            raise UsageError(f"unknown mode {self.mode!r}; use one of {_choices(MODES)}")
        _parse_device(self.device)
        if not _is_int(self.batch_size) or self.batch_size <= 0:
            raise UsageError(f"batch size must be a positive integer, got {self.batch_size!r}")
        if self.resolution is not None and (not _is_int(self.resolution) or self.resolution <= 0):
            raise UsageError(
                f"resolution must be a positive integer (pixels, H = W), got {self.resolution!r}"
            )
        if self.threads is not None and (not _is_int(self.threads) or self.threads <= 0):
            raise UsageError(f"threads must be a positive integer, got {self.threads!r}")
        if not (isinstance(self.target_ci, (int, float)) and 0 < self.target_ci < 1):
            raise UsageError(
                f"target CI must be a fraction of the median in (0, 1), e.g. 0.02, "
                f"got {self.target_ci!r}"
            )
        if not (isinstance(self.budget_s, (int, float)) and self.budget_s > 0):
            raise UsageError(f"time budget must be > 0 seconds, got {self.budget_s!r}")

    @classmethod
    def grid(cls, **axes: Sequence[Any] | Any) -> list[RuntimeConfig]:
        """Every combination of the given axes, e.g. ``grid(batch_size=[1, 8],
        precision=["fp32", "bf16"], device="cpu")``; scalars are fixed values. Order: the
        last axis varies fastest."""
        names = list(axes)
        values = [
            list(v) if isinstance(v, (list, tuple)) else [v] for v in (axes[n] for n in names)
        ]
        return [cls(**dict(zip(names, combo, strict=True))) for combo in itertools.product(*values)]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_device(device: str) -> tuple[str, int | None]:
    """Split ``cpu``/``cuda``/``cuda:N``/``auto`` into (kind, index); UsageError otherwise."""
    if not isinstance(device, str):
        raise UsageError(f"unknown device {device!r}; {_DEVICE_HELP}")
    text = device.strip().lower()
    if text in ("cpu", "cuda", "auto"):
        return text, None
    kind, sep, index = text.partition(":")
    if kind == "cuda" and sep and index.isdigit():
        return "cuda", int(index)
    raise UsageError(f"unknown device {device!r}; {_DEVICE_HELP}")


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device``: ``auto`` is CUDA when present, else CPU; ``cuda`` is
    the current CUDA device. UsageError when CUDA is asked for and is not there."""
    kind, index = _parse_device(device)
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UsageError(
            f"device {device!r} asked but CUDA is not available on this machine "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    count = torch.cuda.device_count()
    if index is None:
        index = torch.cuda.current_device()
    if index >= count:
        raise UsageError(
            f"device {device!r} does not exist: this machine has {count} CUDA device(s), "
            f"use cuda:0..cuda:{count - 1}"
        )
    return torch.device("cuda", index)


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


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


def _model_input_size(model: nn.Module, input_size: Sequence[int] | None, name: str) -> tuple:
    if input_size is not None:
        return tuple(int(v) for v in input_size)
    info = getattr(model, "model_info", None)
    size = getattr(info, "input_size", None)
    if size is None:
        raise UsageError(
            f"{name}: the model has no model_info.input_size; pass input_size=(C, H, W)"
        )
    return tuple(int(v) for v in size)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def check_input_size(
    model: nn.Module, name: str, channels: int, resolution: int, default_resolution: int
) -> None:
    """UsageError (one line, naming the model, the shape and what would work) when ``model``
    cannot take a ``channels x resolution x resolution`` input. Checked on the meta device, in
    eval mode; a model that fails at its own default resolution is not this check's business."""
    shape = (1, channels, resolution, resolution)
    was_training = model.training
    model.eval()
    try:
        try:
            meta_forward(model, shape)
            return
        except (RuntimeError, ValueError, IndexError) as exc:
            reason = _first_line(exc)
        if resolution == default_resolution or not fits_on_meta(
            model, (1, channels, default_resolution, default_resolution)
        ):
            return  # not a resolution problem (or not decidable on meta): let the run show it
        hint = f"its default is {default_resolution}"
        if resolution < default_resolution:
            smallest = smallest_resolution(model, channels, resolution, default_resolution)
            hint = f"use a resolution of at least {smallest} ({hint})"
        else:
            hint = f"use the default {default_resolution}"
        raise UsageError(
            f"{name}: input {channels}x{resolution}x{resolution} does not fit the model "
            f"({reason}); {hint}"
        )
    finally:
        model.train(was_training)


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
    input_size: tuple[int, int, int]
    batch_size: int
    autocast_dtype: torch.dtype | None
    step: Callable[[], Any]
    name: str = "model"
    optimizer: torch.optim.Optimizer | None = None

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
) -> Prepared:
    """Validate ``config`` against this machine and ``model``, move and convert the model in
    place, build the input and the step function. ``batch_size`` overrides the config's
    (used by OOM back-off). Raises UsageError for bad input."""
    device = resolve_device(config.device)
    autocast_dtype = _autocast_dtype(device, config.precision)
    channels, height, width = _model_input_size(model, input_size, name)
    if config.resolution is not None and config.resolution != height:
        check_input_size(model, name, channels, config.resolution, height)
        height = width = config.resolution
    batch = config.batch_size if batch_size is None else batch_size
    fmt = MEMORY_FORMATS[config.memory_format]

    model.to(device=device)
    if config.memory_format == "channels_last":
        model.to(memory_format=fmt)
    # Created on the device itself (a batch too large fails there, not in host memory).
    gen = torch.Generator(device=device).manual_seed(0)
    inputs = torch.randn(batch, channels, height, width, generator=gen, device=device)
    inputs = inputs.contiguous(memory_format=fmt)
    runner: nn.Module | Callable[..., Any] = model
    if config.compile:
        runner = torch.compile(model)

    prepared = Prepared(
        model=model,
        inputs=inputs,
        device=device,
        config=config,
        input_size=(channels, height, width),
        batch_size=batch,
        autocast_dtype=autocast_dtype,
        step=lambda: None,
        name=name,
    )
    if config.mode == "inference":
        model.eval()
        prepared.step = lambda: runner(inputs)
    else:
        model.train()
        prepared.optimizer = torch.optim.SGD(model.parameters(), lr=_TRAIN_LR, momentum=0.9)
        prepared.step = _train_step(prepared, runner, torch.Generator().manual_seed(1))
    return prepared


def _train_step(
    prepared: Prepared, runner: Callable[..., Any], gen: torch.Generator
) -> Callable[[], Any]:
    inputs, optimizer = prepared.inputs, prepared.optimizer
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
            output = runner(inputs)
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
def _global_settings(config: RuntimeConfig, device: torch.device) -> Iterator[None]:
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


def measure_model(
    model: nn.Module,
    config: RuntimeConfig,
    *,
    name: str,
    flops_per_image: int | None = None,
    stages: Sequence[StageCost] | None = None,
    peak: Peak | None = None,
    input_size: Sequence[int] | None = None,
    builder: Callable[[], nn.Module] | str | None = None,
    cpu_memory: bool = True,
    stage_budget_s: float = _DEFAULT_STAGE_BUDGET_S,
) -> Result:
    """Measure ``model`` under ``config`` and return a Result with the runtime fields filled.

    * ``flops_per_image``: FLOPs of one image's work in this mode (from the static counter;
      for training pass the training estimate). Without it achieved/peak GFLOP/s stay None.
      With it, ``peak`` (or :func:`cnnbench.peak.machine_peak` in the autocast dtype) gives
      ``pct_of_peak``.
    * ``stages``: the static per-stage costs; when given, each stage is timed
      (:func:`stage_times`) and the Result carries copies with ``time_ms`` set.
    * Memory: on CUDA, peak allocated/reserved bytes of this configuration. On CPU, the peak
      RSS of a child process that rebuilds the model with ``builder`` (a picklable callable or
      a registered model name; default: ``name`` when it is registered) and runs a few steps;
      ``peak_memory_bytes`` is that peak above the child's RSS after imports (weights, input,
      activations, workspaces: comparable to CUDA's max allocated), see
      :func:`cnnbench.memory.cpu_peak_memory`. ``cpu_memory=False`` skips it; a failed child
      leaves it None with the reason appended to ``error``.
    * Out of memory: status ``"oom"`` with the error text, or with ``config.oom_backoff`` a
      retry at half the batch down to 1; ``effective_batch_size`` is the batch that ran.
      Other runtime errors give status ``"error"``. Bad input raises UsageError.
    * Output containing NaN/inf: status ``"nonfinite"``; the row is still timed.
    """
    device = resolve_device(config.device)
    info = getattr(model, "model_info", None)
    result = Result(
        model=name,
        family=getattr(info, "family", "") or "",
        batch_size=config.batch_size,
        device=str(device) if device.type == "cpu" else f"cuda:{device.index}",
        precision=config.precision,
        memory_format=config.memory_format,
        compiled=config.compile,
        mode=config.mode,
    )
    batch = config.batch_size
    failed: list[int] = []
    with _global_settings(config, device):
        result.threads = torch.get_num_threads()
        while True:
            error = ""
            oom = False
            try:
                _measure_into(
                    result,
                    model,
                    config,
                    name=name,
                    batch=batch,
                    input_size=input_size,
                    stages=stages,
                    stage_budget_s=stage_budget_s,
                )
                break
            except UsageError:
                raise
            except (RuntimeError, MemoryError) as exc:
                oom = is_oom(exc)
                error = f"{'out of memory' if oom else type(exc).__name__}: {_first_line(exc)}"
            _free(device)
            if not oom or not config.oom_backoff or batch == 1:
                _clear_runtime(result)
                result.status = "oom" if oom else "error"
                notes = f" (after out of memory at batch {', '.join(map(str, failed))})"
                result.error = f"batch {batch}: {error}" + (notes if failed else "")
                return result
            failed.append(batch)
            batch = max(1, batch // 2)

    if failed:
        _note(
            result,
            f"out of memory at batch {', '.join(map(str, failed))}; measured at batch {batch}",
        )
    if flops_per_image is not None and result.latency_ms_median:
        achieved = flops_per_image * batch / (result.latency_ms_median / 1000.0) / 1e9
        result.achieved_gflops = achieved
        p = _peak_for(device, result_dtype(result), peak)
        result.peak_gflops = p.matmul_gflops
        result.pct_of_peak = 100.0 * achieved / p.matmul_gflops
    if device.type == "cpu" and cpu_memory:
        _cpu_memory_into(result, model, config, name, builder, batch, input_size)
    return result


def _note(result: Result, text: str) -> None:
    """Add ``text`` to the row's error/notes field (``; `` separated)."""
    result.error = text if not result.error else f"{result.error}; {text}"


def result_dtype(result: Result) -> torch.dtype | None:
    """The torch dtype named by ``result.autocast_dtype`` (None without AMP)."""
    if result.autocast_dtype is None:
        return None
    return getattr(torch, result.autocast_dtype)


def _clear_runtime(result: Result) -> None:
    blank = Result(model=result.model)
    for f in dataclasses.fields(Result):
        if f.name.startswith("latency_ms_") or f.name in (
            "throughput_ips",
            "warmup_iters",
            "timed_iters",
            "effective_batch_size",
            "peak_memory_bytes",
            "peak_reserved_bytes",
            "samples_ms",
        ):
            setattr(result, f.name, getattr(blank, f.name))


def _measure_into(
    result: Result,
    model: nn.Module,
    config: RuntimeConfig,
    *,
    name: str,
    batch: int,
    input_size: Sequence[int] | None,
    stages: Sequence[StageCost] | None,
    stage_budget_s: float,
) -> None:
    prepared = prepare(model, config, name=name, input_size=input_size, batch_size=batch)
    device = prepared.device
    result.input_size = list(prepared.input_size)
    result.autocast_dtype = prepared.autocast_name
    result.effective_batch_size = batch
    with prepared.context():
        output = prepared.step()  # first call: compilation, lazy init, autotuning; checked
        _sync(device)
        finite = _all_finite(output)
        del output
        # CUDA peak of the steady state: reset after the first call (autotuning workspaces).
        peak_mem = cuda_peak_memory(device) if device.type == "cuda" else None
        with peak_mem or contextlib.nullcontext():
            stats = measure(
                prepared.step,
                device=device,
                target_ci=config.target_ci,
                budget_s=config.budget_s,
            )
    if peak_mem is not None:
        result.peak_memory_bytes = peak_mem.allocated_bytes
        result.peak_reserved_bytes = peak_mem.reserved_bytes
    stats_into(result, stats, batch)
    if not finite:
        result.status = "nonfinite"
        result.error = "model output contains NaN or inf"
    if stages is not None:
        times = stage_times(prepared, budget_s=stage_budget_s)
        result.stages = with_stage_times(stages, times)


def stats_into(result: Result, stats: TimingStats, batch: int) -> None:
    """Copy timing statistics (ms per batch of ``batch`` images) into ``result``."""
    result.latency_ms_median = stats.median_ms
    result.latency_ms_mean = stats.mean_ms
    result.latency_ms_std = stats.std_ms
    result.latency_ms_min = stats.min_ms
    result.latency_ms_p90 = stats.p90_ms
    result.latency_ms_p99 = stats.p99_ms
    result.latency_ms_iqr = stats.iqr_ms
    result.latency_ms_ci_low = stats.ci_low_ms
    result.latency_ms_ci_high = stats.ci_high_ms
    result.warmup_iters = stats.warmup_iters
    result.timed_iters = stats.timed_iters
    result.samples_ms = list(stats.samples_ms)
    result.throughput_ips = batch * 1000.0 / stats.median_ms if stats.median_ms > 0 else None


def _cpu_memory_into(
    result: Result,
    model: nn.Module,
    config: RuntimeConfig,
    name: str,
    builder: Callable[[], nn.Module] | str | None,
    batch: int,
    input_size: Sequence[int] | None,
) -> None:
    if builder is None:
        from cnnbench.models import list_models

        if name not in list_models():
            return
        builder = name
    cfg = dataclasses.replace(config, batch_size=batch, compile=False, threads=result.threads)
    peak = cpu_peak_memory(builder, cfg, input_size=input_size)
    if peak.error is None:
        result.peak_memory_bytes = peak.above_start_bytes
    else:
        _note(result, f"cpu peak memory not measured: {peak.error}")


def stage_times(
    prepared: Prepared,
    *,
    budget_s: float = _DEFAULT_STAGE_BUDGET_S,
    target_ci: float | None = None,
) -> dict[str, float]:
    """Median forward time in ms of each named stage of a StagedNet (``stem``, ``stage1`` ..,
    ``head``), in order. Each stage gets the real output of the previous one and is timed with
    the same harness and a budget of ``budget_s`` seconds. Always inference (eval mode,
    inference_mode, the configuration's autocast and memory format), uncompiled modules."""
    model, name = prepared.model, prepared.name
    names_of = getattr(model, "stage_names", None)
    if names_of is None:
        raise UsageError(
            f"{name}: the model has no named stages (stage_names()); per-stage time needs a "
            "cnnbench StagedNet"
        )
    was_training = model.training
    model.eval()
    times: dict[str, float] = {}
    try:
        with torch.inference_mode(), prepared.autocast():
            x: Any = prepared.inputs
            for stage_name in names_of():
                module = getattr(model, stage_name)
                stats = measure(
                    lambda m=module, inp=x: m(inp),
                    device=prepared.device,
                    target_ci=target_ci or prepared.config.target_ci,
                    budget_s=budget_s,
                    min_iters=5,
                )
                times[stage_name] = stats.median_ms
                x = module(x)
    finally:
        model.train(was_training)
    return times


def with_stage_times(stages: Sequence[StageCost], times: Mapping[str, float]) -> list[StageCost]:
    """Copies of ``stages`` with ``time_ms`` from ``times`` (None where a stage has no time)."""
    return [dataclasses.replace(s, time_ms=times.get(s.name)) for s in stages]


def time_vs_macs(stages: Sequence[StageCost]) -> list[dict[str, Any]]:
    """Per stage: name, time_ms, time share and MAC share (percent of the stage totals), so that
    a stage that takes a larger share of time than of MACs stands out (``ratio`` > 1)."""
    total_time = math.fsum(s.time_ms or 0.0 for s in stages)
    total_macs = sum(s.macs for s in stages)
    rows: list[dict[str, Any]] = []
    for s in stages:
        time_pct = 100.0 * (s.time_ms or 0.0) / total_time if total_time > 0 else None
        mac_pct = 100.0 * s.macs / total_macs if total_macs > 0 else None
        ratio = time_pct / mac_pct if time_pct is not None and mac_pct else None
        rows.append(
            {
                "name": s.name,
                "time_ms": s.time_ms,
                "macs": s.macs,
                "time_pct": time_pct,
                "mac_pct": mac_pct,
                "ratio": ratio,
            }
        )
    return rows
