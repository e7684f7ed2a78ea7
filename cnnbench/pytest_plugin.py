"""pytest plugin: model latency tests measured by cnnbench's harness, recorded by pytest-benchmark.

The ``cnnbench_latency`` fixture times a model (or any callable) with the engine every command
measures with (:func:`cnnbench.runtime.measure_config`: settled warm-up, rounds of short blocks
until the median's 95% CI is within ``target_ci`` or the budget runs out, the call timeout and the
non-finite check) and returns the :class:`~cnnbench.runtime.timing.TimingStats` (ms per call).
When pytest-benchmark is active, the same raw samples are fed into its ``benchmark`` fixture,
so its table, ``--benchmark-json``, ``--benchmark-autosave`` and ``--benchmark-compare`` show
cnnbench's measurement, and ``extra_info["cnnbench"]`` carries the model name and
configuration that ``cnnbench gate check --baseline``/``gate ab`` use to match rows::

    def test_resnet18_latency(cnnbench_latency):
        model = create_model("resnet18")
        stats = cnnbench_latency(model, torch.randn(1, 3, 224, 224), name="resnet18")
        assert stats.median_ms < 500

Registered through the ``pytest11`` entry point ``cnnbench`` (or ``-p cnnbench.pytest_plugin``).
Importing it is cheap: torch is imported when the fixture is used.

Honest numbers or none: ``--cnnbench-budget`` and ``budget_s`` must be positive seconds (a
usage error otherwise, not a silent default); ``device='cuda'`` without CUDA skips the test
in one line; a model or input on the meta device (nothing runs there, so there is no time
to measure) or on another device than ``device`` fails it in one line. With
``--benchmark-disable`` the model runs once as a smoke test and that one call, timed, is
returned (``timed_iters == 1``, ``stop_reason == "benchmark-disabled"``, no warm-up, nothing
recorded): never a made-up zero.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from cnnbench.runtime.timing import TimingStats

__all__ = ["LatencyFixture", "cnnbench_latency", "record_into_benchmark"]

_DEFAULT_BUDGET_S = 2.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cnnbench", "cnnbench latency measurement")
    group.addoption(
        "--cnnbench-budget",
        type=float,
        default=None,
        help=f"Seconds per cnnbench_latency measurement (> 0; default {_DEFAULT_BUDGET_S}).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a non-positive or non-finite ``--cnnbench-budget`` before any test runs."""
    budget = config.getoption("cnnbench_budget", default=None)
    if budget is not None and not (math.isfinite(budget) and budget > 0):
        raise pytest.UsageError(
            f"--cnnbench-budget {budget:g}: must be a positive number of seconds, "
            f"e.g. --cnnbench-budget {_DEFAULT_BUDGET_S:g}"
        )


def _refuse(message: str) -> NoReturn:
    """Fail the calling test with one line (no traceback): a misuse of the fixture."""
    pytest.fail(f"cnnbench_latency: {message}", pytrace=False)


def _device(device: Any) -> Any:
    """The torch device for ``device``; the test is skipped (one line) when it asks for CUDA
    on a machine without it, and fails (one line) for a device name cnnbench does not know."""
    import torch

    from cnnbench.errors import UsageError
    from cnnbench.runtime.config import resolve_device

    try:
        return resolve_device(device)
    except UsageError as exc:
        if isinstance(device, str) and re.fullmatch(r"cuda(:\d+)?", device.strip().lower()):
            if not torch.cuda.is_available():
                pytest.skip(
                    f"cnnbench_latency(device={device!r}): CUDA is not available on this "
                    f"machine (torch {torch.__version__}); run it on a CUDA machine or pass "
                    "device='cpu'"
                )
        _refuse(f"device={device!r}: {exc}")


def _tensors(obj: Any) -> list[Any]:
    """The tensors in ``obj`` (a tensor, or tuples/lists/dicts of them)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    if isinstance(obj, dict):
        return [t for item in obj.values() for t in _tensors(item)]
    return []


def _check_placement(model: Any, inputs: Any, device: Any) -> None:
    """One-line failure when the model or its inputs live on the meta device, or on another
    kind of device than the one timed."""
    from torch import nn

    where = []
    if isinstance(model, nn.Module):
        where += [("the model", t) for t in (*model.parameters(), *model.buffers())]
    where += [("the input", t) for t in _tensors(inputs)]
    for what, tensor in where:
        if tensor.is_meta:
            _refuse(
                f"{what} is on the meta device, where nothing runs, so there is no time to "
                "measure; materialise it first, e.g. model.to_empty(device='cpu') and load "
                "its weights"
            )
        if tensor.device.type != device.type:
            _refuse(
                f"{what} is on {tensor.device} but device={str(device)!r} is timed; move it "
                f"with .to({str(device)!r}) or pass device={tensor.device.type!r}"
            )


def _one_call(fn: Callable[[], Any], device: Any) -> TimingStats:
    """Run ``fn`` once (synchronising on CUDA) and return that single call, timed."""
    import time

    import torch

    from cnnbench.runtime.timing import summarize

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter_ns()
    fn()
    sync()
    elapsed = time.perf_counter_ns() - start
    return summarize(
        [elapsed / 1e6],
        warmup_iters=0,
        warmup_settled=False,
        stop_reason="benchmark-disabled",
        elapsed_s=elapsed / 1e9,
    )


class _ReplayClock:
    """A timer for pytest-benchmark that replays already measured samples: each call of
    :meth:`target` advances the clock by the next sample (seconds), so pytest-benchmark's
    ``end - start`` around the call is exactly that sample."""

    __name__ = "cnnbench.runtime.engine"

    def __init__(self, samples_s: list[float]) -> None:
        self._samples = samples_s
        self._next = 0
        self._now = 0.0

    def __call__(self) -> float:
        return self._now

    def target(self) -> None:
        self._now += self._samples[self._next]
        self._next += 1


def record_into_benchmark(
    benchmark: Any, stats: TimingStats, info: dict[str, Any] | None = None
) -> None:
    """Record ``stats.samples_ms`` as the rounds of a pytest-benchmark ``benchmark`` fixture
    (one round = one call, seconds), with ``info`` in ``benchmark.extra_info["cnnbench"]``.

    Uses ``benchmark.pedantic`` with a replay timer swapped in for pytest-benchmark's own, so
    the samples are not measured twice. Raises RuntimeError when this pytest-benchmark has no
    such timer attribute (rather than recording zeros).
    """
    benchmark.extra_info["cnnbench"] = dict(info or {})
    samples_s = [ms / 1000.0 for ms in stats.samples_ms]
    if not hasattr(benchmark, "_timer"):
        raise RuntimeError(
            "this pytest-benchmark version has no replaceable timer; cannot record cnnbench "
            "samples (pytest-benchmark >= 4 is supported)"
        )
    clock = _ReplayClock(samples_s)
    original = benchmark._timer
    benchmark._timer = clock
    try:
        benchmark.pedantic(clock.target, rounds=len(samples_s), iterations=1, warmup_rounds=0)
    finally:
        benchmark._timer = original


class LatencyFixture:
    """``cnnbench_latency(model, inputs, ...)``: time a model's inference with cnnbench's harness.

    ``model`` is an ``nn.Module`` (run in eval mode under ``torch.inference_mode`` on
    ``inputs``, a tensor or a tuple of tensors) or a zero-argument callable (``inputs`` None).
    ``budget_s``: seconds (default ``--cnnbench-budget`` or 2); ``target_ci``: relative
    half-width of the median's 95% CI at which timing stops; ``name``: the model name recorded
    for ``cnnbench gate`` (default: the test name). Returns the TimingStats (ms per call).
    """

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._request = request
        self.stats: TimingStats | None = None

    def _benchmark(self) -> Any | None:
        try:
            return self._request.getfixturevalue("benchmark")
        except pytest.FixtureLookupError:
            return None  # pytest-benchmark not installed or disabled (-p no:benchmark)

    def __call__(
        self,
        model: Any,
        inputs: Any = None,
        *,
        name: str | None = None,
        budget_s: float | None = None,
        target_ci: float = 0.02,
        device: str = "cpu",
        record: bool = True,
    ) -> TimingStats:
        import torch

        if budget_s is None:
            budget_s = self._request.config.getoption("cnnbench_budget")
        if budget_s is None:
            budget_s = _DEFAULT_BUDGET_S
        if not (
            isinstance(budget_s, (int, float))
            and not isinstance(budget_s, bool)
            and math.isfinite(budget_s)
            and budget_s > 0
        ):
            _refuse(f"budget_s={budget_s!r}: must be a positive number of seconds, e.g. 2")
        if not (isinstance(target_ci, (int, float)) and 0 < target_ci < 1):
            _refuse(f"target_ci={target_ci!r}: must be a fraction of the median in (0, 1)")
        dev = _device(device)
        _check_placement(model, inputs, dev)
        fn, batch, input_size = _callable(model, inputs)
        benchmark = self._benchmark() if record else None
        if benchmark is not None and getattr(benchmark, "disabled", False):
            # --benchmark-disable: a smoke test. One real call, timed; nothing recorded.
            self.stats = _one_call(fn, dev)
            return self.stats
        stats = _measure(fn, str(dev), name or self._request.node.name, budget_s, target_ci)
        self.stats = stats
        if benchmark is not None:
            info = {
                "model": name or self._request.node.name,
                "batch_size": batch,
                "input_size": input_size,
                "device": device,
                "precision": "fp32",
                "memory_format": "contiguous",
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "median_ms": stats.median_ms,
                "ci_ms": [stats.ci_low_ms, stats.ci_high_ms],
                "warmup_iters": stats.warmup_iters,
                "stop_reason": stats.stop_reason,
                "harness": "cnnbench.runtime.engine",
            }
            from cnnbench.environment import cpu_model

            info["device_name"] = cpu_model() if device == "cpu" else device
            record_into_benchmark(benchmark, stats, info)
        return stats


_MIN_SAMPLES = 10  # per-call samples at least, whatever the budget


def _measure(
    fn: Callable[[], Any], device: str, name: str, budget_s: float, target_ci: float
) -> TimingStats:
    """Time ``fn`` with the engine (:func:`cnnbench.runtime.measure_config`, the core every
    command measures with): settled warm-up, shuffled rounds of short blocks until the
    median's CI is within ``target_ci`` or the budget is spent, the call timeout and the
    non-finite check. What ``fn`` raises is re-raised (the test shows its traceback); a call
    that does not return in time or a non-finite output fails the test in one line."""
    from cnnbench.runtime import Entry, RuntimeConfig, Schedule, measure_config
    from cnnbench.runtime.engine import MIN_ROUNDS

    entry = Entry.of_callable(name, lambda: fn)
    config = RuntimeConfig(device=device, budget_s=budget_s, target_ci=target_ci)
    at_least = Schedule(min_block_calls=-(-_MIN_SAMPLES // MIN_ROUNDS))  # shuffled rounds
    (row,) = measure_config([entry], config, cpu_memory=False, schedule=at_least)
    if row.status in ("error", "oom") and entry.failure is not None:
        raise entry.failure
    if row.status != "ok":
        _refuse(f"{name}: {row.status}: {row.error}")
    return entry.measurement.stats()


def _callable(model: Any, inputs: Any) -> tuple[Callable[[], Any], int, list[int]]:
    """The timed function, the batch size and the per-image input size (C, H, W) if known."""
    import torch
    from torch import nn

    if isinstance(model, nn.Module):
        if inputs is None:
            _refuse("an nn.Module needs its inputs: cnnbench_latency(model, inputs)")
        args = inputs if isinstance(inputs, tuple) else (inputs,)
        model.eval()

        def fn() -> Any:
            with torch.inference_mode():
                return model(*args)

        first = args[0]
        batch = int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1
        size = list(first.shape[1:]) if isinstance(first, torch.Tensor) else []
        return fn, batch, size
    if callable(model):
        if inputs is not None:
            return (lambda: model(inputs)), 1, []
        return model, 1, []
    _refuse(f"expected an nn.Module or a callable, got {type(model).__name__}")


@pytest.fixture
def cnnbench_latency(request: pytest.FixtureRequest) -> LatencyFixture:
    """Time a model with cnnbench's harness (recorded into pytest-benchmark when active)."""
    return LatencyFixture(request)
