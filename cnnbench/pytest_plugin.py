"""pytest plugin: model latency tests measured by cnnbench's harness, recorded by pytest-benchmark.

The ``cnnbench_latency`` fixture times a model (or any callable) with
:func:`cnnbench.runtime.timing.measure` (settled warm-up, stops when the median's 95% CI is within
``target_ci`` or the budget runs out) and returns the :class:`~cnnbench.runtime.timing.TimingStats`.
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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

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
        help=f"Seconds per cnnbench_latency measurement (default {_DEFAULT_BUDGET_S}).",
    )


class _ReplayClock:
    """A timer for pytest-benchmark that replays already measured samples: each call of
    :meth:`target` advances the clock by the next sample (seconds), so pytest-benchmark's
    ``end - start`` around the call is exactly that sample."""

    __name__ = "cnnbench.runtime.timing.measure"

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

        from cnnbench.runtime.timing import measure, summarize

        if budget_s is None:
            budget_s = self._request.config.getoption("cnnbench_budget") or _DEFAULT_BUDGET_S
        fn, batch, input_size = _callable(model, inputs)
        benchmark = self._benchmark() if record else None
        if benchmark is not None and getattr(benchmark, "disabled", False):
            # --benchmark-disable: run once as a smoke test, no timing.
            fn()
            self.stats = summarize([0.0])
            return self.stats
        stats = measure(fn, device=device, target_ci=target_ci, budget_s=budget_s)
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
                "harness": "cnnbench.runtime.timing.measure",
            }
            from cnnbench.environment import cpu_model

            info["device_name"] = cpu_model() if device == "cpu" else device
            record_into_benchmark(benchmark, stats, info)
        return stats


def _callable(model: Any, inputs: Any) -> tuple[Callable[[], Any], int, list[int]]:
    """The timed function, the batch size and the per-image input size (C, H, W) if known."""
    import torch
    from torch import nn

    if isinstance(model, nn.Module):
        if inputs is None:
            raise ValueError("cnnbench_latency(model, inputs): an nn.Module needs its inputs")
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
    raise TypeError(f"cnnbench_latency: expected an nn.Module or a callable, got {type(model)}")


@pytest.fixture
def cnnbench_latency(request: pytest.FixtureRequest) -> LatencyFixture:
    """Time a model with cnnbench's harness (recorded into pytest-benchmark when active)."""
    return LatencyFixture(request)
