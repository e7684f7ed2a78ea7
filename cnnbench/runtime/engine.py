"""The measurement engine: every model of one configuration timed interleaved, so that drift
and bursts of a busy machine fall on all of them alike.

One configuration's measurement of ``k`` models:

1. **Prepare** each model (device, autocast, memory format, threads, cudnn.benchmark: see
   :func:`cnnbench.runtime.prepare.prepare`); the first call is checked for non-finite
   output; out of memory gives status ``oom`` (or, with back-off, a retry at half the
   batch); an exception from the model's code, ``SystemExit`` included, gives status
   ``error``. A failed model leaves the others running.
2. **Warm up** each model until two consecutive windows agree within 5%.
3. **Rounds**: every round times each model for one short block (about 25 ms of calls, at
   least one call), in the order the :class:`Schedule` gives: freshly shuffled (compare,
   profile, sweep), or alternating A B / B A with a fixed number of rounds, blocks of a set
   length and one untimed re-warm call per block (the gate). :func:`_block` is the one place
   the samples are timed, and each entry's :class:`Measurement` the one place they are kept
   (per block). A model's latency is the median of all its
   samples, with the distribution-free 95% CI of that median; it is ``stable`` when the CI
   is within ``target_ci`` of the median. Rounds stop when every model is stable and every
   paired ratio (step 4) is known to ``target_ci`` too (after at least :data:`MIN_ROUNDS`),
   when the budget is spent, or at :data:`MAX_ROUNDS`.
4. **Ratios**: each non-baseline model's ``latency_ratio`` is the median over rounds of its
   block median divided by the baseline's block median in the same round (the pairing
   cancels drift between rounds), with the distribution-free 95% CI of that median over
   rounds; ``significant`` when the CI excludes 1. Throughput ratios are the reciprocals
   (same batch).
5. **Stages** of each model with named stages are timed the same way: each stage on the real
   output of the previous one, stages interleaved in shuffled rounds, with a CI each.
6. **Peak memory**: CUDA max allocated/reserved over a few steps of each model alone; on CPU
   the peak RSS of a child process that rebuilds the model (see
   :func:`cnnbench.runtime.memory.cpu_peak_memory`).

**Interrupts** (Ctrl-C, SIGTERM, SIGHUP) finish the configuration's rows from the samples
each :class:`Measurement` has (``stop_reason`` ``interrupted``, ``stable`` False, a note; no
sample: ``skipped``) and re-raise carrying them (:func:`interrupted_rows`).

**Global state**: every call of a model's own code (prepare and first call, warm-up, each
block, stages) runs in :func:`cnnbench.runtime.sandbox.torch_state`; what it changed is put
back after the call and named on its row.

**Budget**: ``config.budget_s`` seconds per model. The configuration's warm-up and rounds get
75% of ``k x budget_s``, stage timing 25%; a model whose single call is longer than the
budget still gets :data:`MIN_ROUNDS` calls (its row then says ``stop_reason = budget``). The
CPU memory probe runs afterwards in a child process whose time limit is the budget's
remainder, at least :data:`MEMORY_MIN_TIMEOUT_S` (a fresh interpreter has to start).

**Noise**: the 1-minute load average after the rounds and, on CPU, the share of wall time the
measuring thread was not running (``1 - thread CPU time / wall time``) are recorded on every
row; an unstable row with a busy machine says so in ``error``.

**Clocks** (CPU device): :func:`_block` reads two clocks per call: wall (``perf_counter_ns``)
and CPU time, read outside the wall interval so that its cost (a system call) is in no wall
sample. At 1 thread the CPU clock is the calling thread's (``thread_time_ns``): the thread
does all the work and its CPU time stops while it is descheduled. That is sound as a latency
only while the work runs on that thread: a call that sleeps, waits on I/O or on another
thread shows CPU time far below wall time, and no CPU clock sees that wait. At more than one
thread the CPU clock is the process's (``process_time_ns``: every intra-op worker summed,
OpenMP spin-waiting included): a cost, never a latency. A per-thread CPU time is no better:
a worker spinning at the barrier while another is descheduled accrues CPU time for the wait,
so the critical path still contains the descheduling; ``/proc/self/task/*/stat`` counts in
10 ms ticks, too coarse per call. Neither clock removes a neighbour's contention for caches,
memory bandwidth or a shared core, nor hypervisor steal time. :func:`choose_clock` picks one
clock per configuration (ratios divide like by like): CPU time when every entry has thread
CPU time, the thread was not running more than :data:`CPU_CLOCK_BUSY_SHARE` of the calls'
wall time, and the wall time neither running nor waiting on a run queue (``schedstat``) is
at most :data:`CPU_CLOCK_OFF_THREAD_SHARE`; wall time otherwise (quiet, several threads,
CUDA). Rows carry ``clock``, the raw wall samples (``samples_ms``) and the raw CPU samples
(``cpu_samples_ms``, ``cpu_scope``); stage times stay wall time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from cnnbench.errors import CallTimeout, UsageError, call_limit, is_user_interrupt, one_line
from cnnbench.models import info_of
from cnnbench.results import Result, StageCost
from cnnbench.runtime.config import RuntimeConfig, resolve_device
from cnnbench.runtime.memory import cpu_peak_memory, cuda_own_peak
from cnnbench.runtime.peak import Peak
from cnnbench.runtime.prepare import (
    Prepared,
    _all_finite,
    _free,
    _peak_for,
    _sync,
    is_oom,
    measurement_settings,
    prepare,
)
from cnnbench.runtime.sandbox import StateChanges, torch_state
from cnnbench.runtime.timing import (
    _RAW_TO_MS,
    TimingStats,
    _loop_for,
    cpu_loop_two_clocks,
    median_ci,
    percentile,
    summarize,
    warm_up,
)
from cnnbench.spec import ExampleInputs

__all__ = [
    "Entry",
    "Measurement",
    "Schedule",
    "choose_clock",
    "measure_config",
    "interrupted_rows",
    "paired_ratio",
    "stage_samples",
    "stats_into",
    "time_steps",
    "MIN_ROUNDS",
    "MAX_ROUNDS",
]

MIN_ROUNDS = 5
MAX_ROUNDS = 2000
MEMORY_MIN_TIMEOUT_S = 20.0
_BLOCK_S = 0.025  # one block of calls lasts about this long
_ROUNDS_SHARE = 0.75  # of the configuration's budget: warm-up + rounds; the rest: stages
_WARMUP_SHARE = 0.2  # of the rounds' share, per model
_BUSY_LOAD_PER_CPU = 1.0
_BUSY_NOT_RUNNING = 0.1
_STAGE_TARGET_CI = 0.05  # a stage's time share is shown when its CI is within 5%
_MAX_BLOCK_CALLS = 1_000_000  # a block by time (block_s) stops at its deadline, or here
CPU_CLOCK_BUSY_SHARE = 0.05  # not running above this share of the calls' wall time: busy
CPU_CLOCK_OFF_THREAD_SHARE = 0.05  # wall time neither running nor runnable: work off-thread


@dataclass(frozen=True)
class Schedule:
    """How the rounds of a configuration are ordered and when they stop.

    ``order``: ``"shuffled"`` (a fresh random order every round: compare, profile, sweep) or
    ``"alternating"`` (the entries in the given order on even rounds and reversed on odd ones:
    A B, B A, ...; the gate). ``rounds``: a fixed number of rounds (None: until every entry is
    stable after :data:`MIN_ROUNDS`, the budget is spent, or :data:`MAX_ROUNDS`); with a fixed
    count no row is judged stable or unstable (``stable`` None). ``rewarm``: one untimed call at
    the start of every block, to re-warm caches after the other entries ran. ``warmup_s``:
    warm-up seconds per entry (None: a share of the configuration's budget).
    ``min_block_calls``: timed calls per block at least. ``stop_on_failure``: one entry
    failing ends the timing of all (the gate: a comparison with a failed side is void, so
    the others are not timed on). ``clock``: None: :func:`choose_clock` decides; ``"wall"``
    or ``"cpu"``: that clock where available (a re-measurement pooled with a first one)."""

    order: str = "shuffled"
    rounds: int | None = None
    rewarm: bool = False
    warmup_s: float | None = None
    min_block_calls: int = 1
    stop_on_failure: bool = False
    clock: str | None = None

    def __post_init__(self) -> None:
        if self.order not in ("shuffled", "alternating"):
            raise ValueError(f"unknown schedule order {self.order!r}")
        if self.rounds is not None and self.rounds < 1:
            raise ValueError("a fixed schedule needs rounds >= 1")
        if self.min_block_calls < 1:
            raise ValueError("min_block_calls must be >= 1")
        if self.clock not in (None, "wall", "cpu"):
            raise ValueError(f"unknown clock {self.clock!r}")


SHUFFLED = Schedule()


@dataclass
class Measurement:
    """What the block loop timed for one entry: ms per call, one list per block (one block
    per round, in the order taken), with the warm-up and the rounds' outcome. The one place
    where samples live; every statistic is derived from it.

    ``blocks``: wall time per call. ``cpu_blocks``: on CPU, the CPU time of the same calls
    (``cpu_scope`` ``"thread"``: the calling thread's, at 1 thread; ``"process"``: the whole
    process's, every intra-op worker summed, at more threads; empty on CUDA).
    ``runqueue_ms``: per block, the calling thread's time waiting on a run queue (Linux
    ``/proc/thread-self/schedstat``; None where unreadable). ``clock``: which of the two the
    statistics (:attr:`samples`, :attr:`block_medians`, :meth:`stats`) come from, set by
    :func:`choose_clock`; ``"wall"`` until then."""

    blocks: list[list[float]] = field(default_factory=list)
    cpu_blocks: list[list[float]] = field(default_factory=list)
    runqueue_ms: list[float | None] = field(default_factory=list)
    cpu_scope: str = ""  # "thread" | "process" | "" (no CPU clock: CUDA)
    clock: str = "wall"  # "wall" | "cpu"
    warmup_iters: int = 0
    settled: bool = False
    rounds: int = 0
    stop_reason: str = ""
    elapsed_s: float = 0.0  # wall seconds from the first call to the end of the rounds

    @property
    def has_cpu(self) -> bool:
        """Whether every wall block has its CPU twin (a dropped entry's blocks are cleared)."""
        return bool(self.blocks) and len(self.cpu_blocks) == len(self.blocks)

    @property
    def timed_blocks(self) -> list[list[float]]:
        """The blocks of the chosen clock (ms per call): what every statistic uses."""
        return self.cpu_blocks if self.clock == "cpu" and self.has_cpu else self.blocks

    @property
    def wall_samples(self) -> list[float]:
        """Every wall sample, blocks concatenated (ms)."""
        return [v for block in self.blocks for v in block]

    @property
    def cpu_samples(self) -> list[float]:
        """Every CPU-time sample, blocks concatenated (ms; empty without a CPU clock)."""
        return [v for block in self.cpu_blocks for v in block] if self.has_cpu else []

    @property
    def samples(self) -> list[float]:
        """Every per-call sample of the chosen clock, blocks concatenated (ms)."""
        return [v for block in self.timed_blocks for v in block]

    @property
    def block_medians(self) -> list[float]:
        """The median of each block (ms, chosen clock), one per round: what paired ratios
        divide."""
        return [percentile(sorted(b), 50) for b in self.timed_blocks]

    def stats(self) -> TimingStats:
        """Latency statistics of the pooled samples (ValueError when there are none)."""
        return summarize(
            self.samples,
            warmup_iters=self.warmup_iters,
            warmup_settled=self.settled,
            stop_reason=self.stop_reason,
            elapsed_s=self.elapsed_s,
        )


@dataclass(eq=False)  # an entry is one model in one measurement: compared by identity
class Entry:
    """One model to measure in a configuration: display ``name``, the module, the record to
    fill (``row``, typically the static profile's), a picklable ``builder`` for the CPU memory
    child (None: the module is sent pickled), the static per-stage costs to time (None: no
    stage timing) and the FLOPs of one image's work (for achieved GFLOP/s). ``block_s``: the
    seconds of one timed block (None: about 25 ms, by call count). A plain callable (no
    module, no input) is made with :meth:`of_callable`."""

    name: str
    module: nn.Module
    row: Result | None = None
    builder: Callable[[], nn.Module] | str | None = None
    stages: Sequence[StageCost] | None = None
    flops_per_image: int | None = None
    input_size: Sequence[int] | None = None
    example_inputs: ExampleInputs | None = None  # one image's tensors, instead of C x H x W
    block_s: float | None = None
    make_step: Callable[[], Callable[[], Any]] | None = field(default=None, repr=False)
    # filled while measuring
    result: Result = field(init=False)
    prepared: Prepared | None = field(default=None, init=False, repr=False)
    estimate_ms: float = field(default=0.0, init=False)
    measurement: Measurement = field(default_factory=Measurement, init=False, repr=False)
    memory_error: str | None = field(default=None, init=False)
    failure: BaseException | None = field(default=None, init=False, repr=False)  # what failed
    #: what the model's own calls changed in torch's global state (restored after each)
    state_changes: StateChanges = field(default_factory=StateChanges, init=False, repr=False)

    @classmethod
    def of_callable(
        cls, name: str, make_step: Callable[[], Callable[[], Any]], *, block_s: float | None = None
    ) -> Entry:
        """An entry that times a zero-argument callable (the gate's calibration workload, the
        pytest fixture's callable) as it is, outside the configuration's inference mode and
        autocast; ``make_step()`` builds it afresh at the start of every block, so the
        placement of one allocation is averaged out instead of biasing the whole run. No
        memory probe, no stages."""
        return cls(name=name, module=nn.Identity(), block_s=block_s, make_step=make_step)


@contextlib.contextmanager
def _sandboxed(entry: Entry) -> Iterator[None]:
    """The entry's own code runs in a sandbox of torch's global state
    (:func:`cnnbench.runtime.sandbox.torch_state`); what it changed is kept on the entry,
    also when the code raised."""
    changes: StateChanges | None = None
    try:
        with torch_state() as changes:
            yield
    finally:
        if changes is not None:
            entry.state_changes.merge(changes)


def _state_note_into(entry: Entry) -> None:
    """The row of a model whose calls changed torch's global state says what changed; when
    it changed the thread count, its ``threads`` is the count its calls ran with after the
    change (the first call of each block ran with cnnbench's)."""
    changes = entry.state_changes
    if not changes:
        return
    r = entry.result
    _note(r, changes.describe("its timed calls"))
    if "threads" in changes.changed:
        configured, used = changes.changed["threads"]
        r.threads = used
        _note(
            r,
            f"threads {used}: the model sets it in its own code; cnnbench's {configured} held "
            "only until that line ran in each block",
        )


def _note(result: Result, text: str) -> None:
    """Add ``text`` to the row's notes (``; `` separated)."""
    result.notes = text if not result.notes else f"{result.notes}; {text}"


def _new_result(entry: Entry, config: RuntimeConfig, device: torch.device) -> Result:
    info = info_of(entry.module)
    base = entry.row or Result(model=entry.name, family=getattr(info, "family", "") or "")
    return dataclasses.replace(
        base,
        model=entry.name,
        batch_size=config.batch_size,
        device=str(device) if device.type == "cpu" else f"cuda:{device.index}",
        precision=config.precision,
        memory_format=config.memory_format,
        compiled=config.compile,
        mode=config.mode,
    )


def _fault(exc: BaseException) -> str:
    """The text of a failure in the model's code (an exception, or SystemExit it raised)."""
    if isinstance(exc, CallTimeout):
        return f"a call of the model did not return within {exc.args[0]:g} s (--call-timeout)"
    if isinstance(exc, SystemExit):
        return f"the model called sys.exit({exc.code!r})"
    return f"{'out of memory' if is_oom(exc) else type(exc).__name__}: {one_line(exc, with_type=False)}"


def _start(entry: Entry, config: RuntimeConfig) -> None:
    """Prepare the entry and run its first call (checked), with OOM back-off."""
    result = entry.result
    batch = config.batch_size
    failed: list[int] = []
    device = resolve_device(config.device)
    while True:
        try:
            with _sandboxed(entry):
                prepared = _prepare(entry, config, device, batch)
                with call_limit(config.call_limit_s), _context(entry, prepared):
                    output = prepared.step()
                    _sync(device)
                    finite = _all_finite(output)
                    del output
            break
        except UsageError:
            raise
        except BaseException as exc:  # noqa: BLE001 - the model's own code: a row status
            if is_user_interrupt(exc):
                raise
            oom = is_oom(exc)
            _free(device)
            if not oom or not config.oom_backoff or batch == 1:
                entry.failure = exc
                result.status = _status(exc)
                notes = f" (after out of memory at batch {', '.join(map(str, failed))})"
                result.error = f"batch {batch}: {_fault(exc)}" + (notes if failed else "")
                return
            entry.failure = exc
            failed.append(batch)
            batch = max(1, batch // 2)
    if failed:
        _note(
            result,
            f"out of memory at batch {', '.join(map(str, failed))}; measured at batch {batch}",
        )
    entry.prepared = prepared
    result.input_size = list(prepared.input_size)
    result.autocast_dtype = prepared.autocast_name
    result.effective_batch_size = batch
    result.threads = torch.get_num_threads()  # cnnbench's setting: the sandbox restored it
    if not finite:
        result.status = "nonfinite"
        result.error = "model output contains NaN or inf"


def _prepare(entry: Entry, config: RuntimeConfig, device: torch.device, batch: int) -> Prepared:
    """The entry's module and input ready to run (a plain callable: as it is, no autocast)."""
    if entry.make_step is None:
        return prepare(
            entry.module, config, name=entry.name, input_size=entry.input_size,
            batch_size=batch, example_inputs=entry.example_inputs,
        )  # fmt: skip
    plain = dataclasses.replace(config, precision="fp32", mode="inference", batch_size=1)
    return Prepared(
        model=entry.module, inputs=torch.empty(0), device=device, config=plain,
        input_size=(0, 0, 0), batch_size=1, autocast_dtype=None, step=entry.make_step(),
        name=entry.name,
    )  # fmt: skip


def _context(entry: Entry, prepared: Prepared) -> contextlib.AbstractContextManager[Any]:
    """Where the entry's calls run: the configuration's inference mode and autocast for a
    model; a plain callable runs as it is (it may train, or enter its own modes)."""
    return contextlib.nullcontext() if entry.make_step is not None else prepared.context()


def _status(exc: BaseException) -> str:
    return "timeout" if isinstance(exc, CallTimeout) else "oom" if is_oom(exc) else "error"


def _drop(entry: Entry, exc: BaseException) -> None:
    """A model that failed during the rounds: its row says why, its samples are dropped."""
    entry.failure = exc
    entry.result.status = _status(exc)
    entry.result.error = _fault(exc)
    entry.prepared = None
    entry.measurement.blocks.clear()


def _rounds(
    entries: list[Entry],
    device: torch.device,
    deadline: float,
    target_ci: float,
    seed: int,
    schedule: Schedule = SHUFFLED,
    baseline: Entry | None = None,
) -> tuple[int, str]:
    """Time the entries round by round, one block each per round, in the schedule's order;
    returns (rounds, stop reason). Every block goes to the entry's measurement; an entry whose
    code fails in a block is dropped (its row says why) and the others go on. Without a fixed
    number of rounds, they stop (after :data:`MIN_ROUNDS`) when every entry's median is known
    to ``target_ci`` and, with a ``baseline`` among them, so is every entry's paired ratio to
    it (:func:`_converged`), or when the ``deadline`` passes."""
    loop = _loop_for(device)
    raw_to_ms = _RAW_TO_MS[device.type]
    rng = random.Random(seed)
    live = [e for e in entries if e.prepared is not None]
    max_rounds = schedule.rounds or MAX_ROUNDS
    n_rounds, reason = 0, "budget" if schedule.rounds else "max_rounds"
    while live and n_rounds < max_rounds:
        order = live[:]
        if schedule.order == "shuffled":
            rng.shuffle(order)
        elif n_rounds % 2:
            order.reverse()
        for e in order:
            try:
                with _sandboxed(e):
                    block = _block(e, loop, raw_to_ms, schedule)
            except BaseException as exc:  # noqa: BLE001 - the model's own code
                if is_user_interrupt(exc):
                    raise
                _drop(e, exc)
                continue
            e.measurement.blocks.append(block)
        if schedule.stop_on_failure and any(e.prepared is None for e in live):
            return n_rounds + 1, "failed"
        live = [e for e in live if e.prepared is not None]
        n_rounds += 1
        if schedule.rounds is None and n_rounds >= MIN_ROUNDS:
            _set_clock(live, schedule.clock)  # the stop rule judges the clock reported
            if _converged(live, baseline, target_ci):
                reason = "ci"
                break
            if time.perf_counter() > deadline:
                reason = "budget"
                break
    return n_rounds, reason


def _block(e: Entry, loop: Callable[..., int], raw_to_ms: float, schedule: Schedule) -> list[float]:
    """One timed block of the entry (ms per call): the only place the engine reads a clock
    for its samples. Without ``block_s`` a number of calls lasting about 25 ms (by the
    estimate); with it, calls until ``block_s`` seconds have passed; at least
    ``schedule.min_block_calls`` either way. Under the call limit: the configuration's limit
    per call plus twice the block's expected length."""
    assert e.prepared is not None
    if e.make_step is not None:  # a fresh callable each block, built untimed
        e.prepared = dataclasses.replace(e.prepared, step=e.make_step())
    prepared = e.prepared
    estimate_s = e.estimate_ms / 1000
    at_least = schedule.min_block_calls
    if e.block_s is None:
        calls = max(at_least, round(_BLOCK_S / max(estimate_s, 1e-9)))
        expected_s = calls * estimate_s
    else:
        calls = at_least
        expected_s = max(e.block_s, calls * estimate_s)
    raw: list[float] = []
    clock = time.perf_counter_ns
    on_cpu = prepared.device.type == "cpu"
    cpu_raw: list[float] = []
    one_thread = torch.get_num_threads() == 1
    cpu_clock = time.thread_time_ns if one_thread else time.process_time_ns
    with call_limit(prepared.config.call_limit_s + 2 * expected_s), _context(e, prepared):
        if schedule.rewarm:
            prepared.step()
        waited = _runqueue_ns() if on_cpu else None
        started = clock()
        if on_cpu:
            t = cpu_loop_two_clocks(prepared.step, calls, raw, cpu_raw, None, cpu_clock)
        else:
            t = loop(prepared.step, calls, raw, None, clock, None)
        if e.block_s is not None:
            deadline = started + int(e.block_s * 1e9)
            if t < deadline and on_cpu:
                cpu_loop_two_clocks(
                    prepared.step, _MAX_BLOCK_CALLS, raw, cpu_raw, deadline, cpu_clock
                )
            elif t < deadline:
                loop(prepared.step, _MAX_BLOCK_CALLS, raw, deadline, clock, None)
        waited_after = _runqueue_ns() if on_cpu else None
    if on_cpu:
        m = e.measurement
        m.cpu_scope = "thread" if one_thread else "process"
        m.cpu_blocks.append([v * 1e-6 for v in cpu_raw])
        m.runqueue_ms.append(
            None if waited is None or waited_after is None else (waited_after - waited) * 1e-6
        )
    return [v * raw_to_ms for v in raw]


def _runqueue_ns() -> int | None:
    """The calling thread's total time waiting on a run queue (ns), from
    ``/proc/thread-self/schedstat`` (Linux with scheduler statistics); None elsewhere."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None


def choose_clock(
    measurements: Sequence[Measurement], forced: str | None = None
) -> tuple[str, str | None]:
    """The clock the configuration's statistics and ratios come from, and why (None when
    there is nothing to say): one clock for all entries, so ratios divide like by like.

    ``"cpu"`` only when (a) every entry has thread CPU time (CPU device, 1 thread), (b) the
    machine was busy: the calling thread was not running more than
    :data:`CPU_CLOCK_BUSY_SHARE` of the timed calls' wall time (``1 - cpu / wall``), and (c)
    the work ran on that thread: the wall time the thread was neither running nor waiting on
    a run queue (sleeping, blocked on I/O or on other threads) is at most
    :data:`CPU_CLOCK_OFF_THREAD_SHARE` of the wall time (from ``schedstat``; without it, at
    least 90% of calls must have CPU time >= 90% of wall time). Otherwise ``"wall"``.
    ``forced`` (``"wall"`` / ``"cpu"``) imposes a clock, when available (a re-measurement
    pooled with an earlier one)."""
    timed = [m for m in measurements if m.blocks]
    if not timed:
        return "wall", None
    thread_cpu = all(m.has_cpu and m.cpu_scope == "thread" for m in timed)
    if forced == "wall" or (forced == "cpu" and thread_cpu):
        return forced, None
    if not thread_cpu:
        return "wall", None
    wall = math.fsum(math.fsum(m.wall_samples) for m in timed)
    cpu = math.fsum(math.fsum(m.cpu_samples) for m in timed)
    not_running = max(0.0, 1.0 - cpu / wall) if wall > 0 else 0.0
    if not_running <= CPU_CLOCK_BUSY_SHARE:
        return "wall", None
    busy = f"thread not running {100 * not_running:.0f}% of the timed calls"
    waits = [w for m in timed for w in m.runqueue_ms]
    if waits and all(w is not None for w in waits):
        off_thread = (wall - cpu - math.fsum(w or 0.0 for w in waits)) / wall
        on_thread = off_thread <= CPU_CLOCK_OFF_THREAD_SHARE
    else:
        on_thread = all(_mostly_on_thread(m) for m in timed)
    if not on_thread:
        return "wall", (
            f"{busy}, but the calls also wait off the CPU (sleep, I/O, other threads), "
            "which thread CPU time would not count: wall time kept"
        )
    return "cpu", f"{busy}: latency is the calling thread's CPU time (clock cpu)"


def _set_clock(entries: Sequence[Entry], forced: str | None) -> str | None:
    """Choose the clock for these entries (:func:`choose_clock`), set it on each
    measurement, and return why (None: nothing to say)."""
    clock, why = choose_clock([e.measurement for e in entries], forced)
    for e in entries:
        e.measurement.clock = clock
    return why


def _mostly_on_thread(m: Measurement) -> bool:
    shares = sorted(c / w for c, w in zip(m.cpu_samples, m.wall_samples, strict=True) if w > 0)
    return bool(shares) and percentile(shares, 10) >= 0.9


def _converged(live: list[Entry], baseline: Entry | None, target_ci: float) -> bool:
    """Whether every live entry's median, and its paired ratio to a live ``baseline``, is
    known to ``target_ci`` (relative half-width of the 95% CI): a comparison stops only when
    the ratios it reports are as sure as the latencies."""
    if not all(_rel_halfwidth(e.measurement.samples) <= target_ci for e in live):
        return False
    if baseline is None or baseline not in live:
        return True
    return all(
        max(point - low, high - point) <= target_ci * point
        for _, (point, low, high) in _paired(live, baseline)
    )


def _rel_halfwidth(samples: Sequence[float]) -> float:
    values = sorted(samples)
    med = percentile(values, 50)
    low, high = median_ci(values)
    return max(med - low, high - med) / med if med > 0 else 0.0


def paired_ratio(
    numerator: Sequence[float], denominator: Sequence[float]
) -> tuple[float, float, float]:
    """(median, CI low, CI high) of the per-round ratios ``numerator[r] / denominator[r]``.
    The 95% CI is the distribution-free interval of that median (order statistics of a
    Binomial(n, 1/2), as for latencies): with few rounds it is honestly wide (below 6 rounds
    it is the whole range of the ratios), where a bootstrap would be over-confident."""
    ratios = sorted(a / b for a, b in zip(numerator, denominator, strict=True) if b > 0)
    if not ratios:
        raise ValueError("no paired rounds")
    low, high = median_ci(ratios)
    return percentile(ratios, 50), low, high


def _paired(
    entries: Sequence[Entry], baseline: Entry, rounds: int | None = None
) -> Iterator[tuple[Entry, tuple[float, float, float]]]:
    """Each entry other than ``baseline`` with its :func:`paired_ratio` to it (entries without
    a block for every round of the baseline's are left out); ``rounds``: pair only the first
    rounds."""
    base = baseline.measurement.block_medians[:rounds]
    for e in entries:
        medians = e.measurement.block_medians[:rounds]
        if e is not baseline and medians and len(medians) == len(base):
            yield e, paired_ratio(medians, base)


def _ratios_into(entries: list[Entry], baseline: Entry, rounds: int | None = None) -> None:
    """Each entry's paired ratio to ``baseline``; ``rounds``: pair only the first rounds (the
    ones every entry completed, after an interrupt)."""
    for e, (point, low, high) in _paired(entries, baseline, rounds):
        r = e.result
        r.latency_ratio, r.latency_ratio_ci_low, r.latency_ratio_ci_high = point, low, high
        r.latency_ratio_significant = not (low <= 1.0 <= high)
        r.throughput_ratio, r.throughput_ratio_ci_low, r.throughput_ratio_ci_high = (
            1.0 / point,
            1.0 / high,
            1.0 / low,
        )
        r.throughput_ratio_significant = r.latency_ratio_significant


def _stage_inputs(prepared: Prepared, names: Sequence[str]) -> list[tuple[str, nn.Module, Any]]:
    """Each named stage with the real output of the previous one as its input."""
    out = []
    x: Any = prepared.inputs
    for name in names:
        module = getattr(prepared.model, name)
        out.append((name, module, x))
        x = module(x)
    return out


def time_steps(
    steps: Sequence[tuple[str, Callable[[], Any]]],
    config: RuntimeConfig,
    *,
    budget_s: float,
    target_ci: float,
    seed: int = 0,
) -> tuple[dict[str, Measurement], int, str]:
    """Time named zero-argument calls that are parts of one model (its stages, its layers)
    with the engine's rounds: each warmed up (together :data:`_WARMUP_SHARE` of ``budget_s``),
    then interleaved shuffled rounds of short blocks until every median is known to
    ``target_ci`` (after :data:`MIN_ROUNDS`) or ``budget_s`` is spent; each block under the
    configuration's call limit, both clocks on CPU, one clock chosen for all
    (:func:`choose_clock`). The calls run as they are: the caller enters the model's context
    (inference mode, autocast). Returns each name's :class:`Measurement`, the rounds and the
    stop reason; the first call that fails (or overruns the call limit) is raised."""
    device = resolve_device(config.device)
    started = time.perf_counter()
    subjects = []
    for name, step in steps:
        sub = Entry.of_callable(name, functools.partial(_same, step))
        sub.result = Result(model=name)
        sub.prepared = _prepare(sub, config, device, 1)
        subjects.append(sub)
    warm_each = budget_s * _WARMUP_SHARE / max(1, len(subjects))
    for sub in subjects:
        _warm(sub, device, warm_each)
        _raise_failure(sub)
    n_rounds, reason = _rounds(
        subjects, device, started + budget_s, target_ci, seed, Schedule(stop_on_failure=True)
    )
    for sub in subjects:
        _raise_failure(sub)
    _set_clock(subjects, None)
    return {s.name: s.measurement for s in subjects}, n_rounds, reason


def _same(step: Callable[[], Any]) -> Callable[[], Any]:
    return step


def _raise_failure(entry: Entry) -> None:
    if entry.failure is not None:
        raise entry.failure


def stage_samples(
    prepared: Prepared, *, budget_s: float, target_ci: float
) -> dict[str, list[float]]:
    """Per-call wall samples (ms) of each named stage of a StagedNet (``stem``, ``stage1`` ..,
    ``head``), in order: each stage on the real output of the previous one, timed with
    :func:`time_steps` within ``budget_s`` seconds. Always inference (eval mode,
    inference_mode, the configuration's autocast and memory format), uncompiled modules.
    UsageError when the model has no ``stage_names()``."""
    model, name = prepared.model, prepared.name
    names_of = _stage_names(model)
    if names_of is None:
        raise UsageError(
            f"{name}: the model has no named stages (stage_names()); per-stage time needs a "
            "cnnbench StagedNet or an nn.Sequential"
        )
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), prepared.autocast():
            with call_limit(prepared.config.call_limit_s):
                parts = _stage_inputs(prepared, names_of())
            steps = [(stage, functools.partial(module, x)) for stage, module, x in parts]
            timed, _, _ = time_steps(
                steps, prepared.config, budget_s=budget_s, target_ci=target_ci, seed=1
            )
    finally:
        model.train(was_training)
    return {stage: m.wall_samples for stage, m in timed.items()}  # stage times: wall


def _stage_names(model: nn.Module) -> Callable[[], list[str]] | None:
    """How to list a model's stages in forward order: a StagedNet's ``stage_names``, or the
    children of an ``nn.Sequential`` (its forward is exactly its children chained); None for
    any other module, whose children cannot be timed one after another."""
    from cnnbench.models import staged_net  # the zoo's protocol, by type, never by name

    net = staged_net(model)
    if net is not None:
        return net.stage_names
    if isinstance(model, nn.Sequential):
        return lambda: [n for n, _ in model.named_children()]
    return None


def _stage_times(entry: Entry, budget_s: float, target_ci: float) -> None:
    """The entry's static stage costs with their median time, CI and stability."""
    assert entry.prepared is not None and entry.stages is not None
    model = entry.prepared.model
    if _stage_names(model) is None:
        _note(
            entry.result,
            "per-stage time not measured: the model has no named stages (only a StagedNet's "
            "stages or an nn.Sequential's children can be timed one after another)",
        )
        return
    if isinstance(model, nn.Sequential):
        _note(entry.result, "stage times are per top-level module (nn.Sequential children)")
    try:
        timed = stage_samples(entry.prepared, budget_s=budget_s, target_ci=target_ci)
    except UsageError:
        raise
    except BaseException as exc:  # noqa: BLE001 - the model's own code: a note on its row
        if is_user_interrupt(exc):
            raise
        _note(entry.result, f"per-stage time not measured: {_fault(exc)}")
        return
    out = []
    for cost in entry.stages:
        samples = timed.get(cost.name)
        if not samples:
            out.append(cost)
            continue
        values = sorted(samples)
        low, high = median_ci(values)
        out.append(
            dataclasses.replace(
                cost,
                time_ms=percentile(values, 50),
                time_ci_low_ms=low,
                time_ci_high_ms=high,
                time_stable=_rel_halfwidth(values) <= max(target_ci, _STAGE_TARGET_CI),
            )
        )
    entry.result.stages = out


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


def _stats_into(entry: Entry, target_ci: float | None) -> None:
    """The row's latency fields from the entry's measurement; ``target_ci`` None: a fixed
    number of rounds, no stability judgement."""
    r = entry.result
    m = entry.measurement
    stats = m.stats()
    stats_into(r, stats, r.effective_batch_size or r.batch_size)
    r.clock = m.clock if m.clock == "cpu" and m.has_cpu else "wall"
    r.samples_ms = m.wall_samples  # raw wall samples always; CPU ones beside them
    r.cpu_samples_ms = m.cpu_samples or None
    r.cpu_scope = m.cpu_scope or None
    r.rounds = m.rounds
    if target_ci is None:
        r.stable, r.stop_reason = None, m.stop_reason
        return
    r.stable = stats.ci_rel_halfwidth <= target_ci
    r.stop_reason = "ci" if r.stable else m.stop_reason


def _memory_into(
    entry: Entry, config: RuntimeConfig, device: torch.device, timeout_s: float
) -> None:
    r = entry.result
    prepared = entry.prepared
    assert prepared is not None
    if device.type == "cuda":  # the other models stay on the GPU: charge only this one's
        with _sandboxed(entry), prepared.context():
            r.peak_memory_bytes, r.peak_reserved_bytes = cuda_own_peak(
                prepared.model, prepared.inputs, prepared.step, device
            )
        return
    cfg = dataclasses.replace(
        config, batch_size=r.effective_batch_size or config.batch_size, compile=False,
        threads=r.threads,
    )  # fmt: skip
    builder = entry.builder or _ModuleCopy(entry.module)
    peak = cpu_peak_memory(
        builder, cfg, input_size=entry.input_size, timeout_s=timeout_s,
        example_inputs=entry.example_inputs,
    )  # fmt: skip
    if peak.error is None:
        r.peak_memory_bytes = peak.above_start_bytes
    else:
        entry.memory_error = f"cpu peak memory not measured: {peak.error}"
        _note(r, entry.memory_error)


@dataclass(frozen=True)
class _ModuleCopy:
    """A builder that returns the very module it was pickled with (weights included): the
    fallback for a module handed over without a spec to rebuild it from."""

    module: nn.Module

    def __call__(self) -> nn.Module:
        return self.module


def _noise_into(results: Sequence[Result], load: float | None, not_running: float | None) -> None:
    """Load and not-running share on every row; a note on an unstable row (and on a row timed
    for a fixed number of rounds, never judged stable, when the machine was busy)."""
    cpus = os.cpu_count() or 1
    for r in results:
        r.load_avg = load
        r.not_running_share = not_running
        busy = []
        if load is not None and load > _BUSY_LOAD_PER_CPU * cpus:
            busy.append(f"load {load:.1f} on {cpus} CPUs")
        if not_running is not None and not_running > _BUSY_NOT_RUNNING:
            busy.append(f"not running {100 * not_running:.0f}% of the time")
        pool = r.status == "ok" and r.device == "cpu" and (r.threads or 1) > 1
        if pool and busy and r.latency_ms_median:
            _note(r, _pool_note(r.threads or 1, busy))
        if r.status != "ok" or r.stable is True:
            continue
        if r.stable is None:
            if busy and r.latency_ms_median:
                _note(r, f"machine busy while timing: {', '.join(busy)}")
            continue
        half = 0.0
        if r.latency_ms_median:
            half = (
                max(
                    r.latency_ms_median - (r.latency_ms_ci_low or r.latency_ms_median),
                    (r.latency_ms_ci_high or r.latency_ms_median) - r.latency_ms_median,
                )
                / r.latency_ms_median
            )
        text = f"unstable: ±{100 * half:.0f}% after {r.rounds} rounds ({r.stop_reason})"
        if busy and not pool:
            text += f", machine busy: {', '.join(busy)}"
        _note(r, text)


def _pool_note(threads: int, busy: list[str]) -> str:
    """What a latency at more than one thread on a busy machine is, and is not."""
    return (
        f"machine busy ({', '.join(busy)}) at {threads} threads: the latency is wall time and "
        "includes waits for descheduled worker threads, which no CPU clock removes across a "
        "thread pool, so it is not the quiet latency; ratios pair rounds and hold when "
        "significant; for a latency that holds under load use --threads 1 (CPU-time clock)"
    )


def _load_avg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def measure_config(
    entries: Sequence[Entry],
    config: RuntimeConfig,
    *,
    baseline: int = 0,
    peak: Peak | None = None,
    cpu_memory: bool = True,
    stage_budget_s: float | None = None,
    seed: int = 0,
    schedule: Schedule = SHUFFLED,
) -> list[Result]:
    """Measure every entry under ``config``, interleaved as ``schedule`` orders the rounds
    (see the module docstring); one Result per entry, in order, and each entry's raw blocks in
    ``entry.measurement``. ``baseline`` is the index of the entry the ratios divide by;
    ``stage_budget_s`` overrides each model's share of the budget for stage timing. Bad input
    raises UsageError before anything is timed.

    An interrupt (Ctrl-C, SIGTERM, SIGHUP: see :func:`cnnbench.errors.is_user_interrupt`)
    finishes the rows from the samples measured so far (marked incomplete, see
    :func:`_finish_interrupted`) and is raised again carrying them:
    :func:`interrupted_rows` gives them to the caller that catches it."""
    device = resolve_device(config.device)
    entries = list(entries)
    for e in entries:
        e.result = _new_result(e, config, device)
        e.measurement = Measurement()
        e.failure = None
        e.state_changes = StateChanges()
    phase = ["starting"]
    started = time.perf_counter()
    try:
        results = _measure(entries, config, device, baseline, peak, cpu_memory, stage_budget_s,
                           seed, schedule, started, phase)  # fmt: skip
    except BaseException as exc:
        if is_user_interrupt(exc):
            rows = _finish_interrupted(entries, config, device, baseline, phase[0], started)
            setattr(exc, _ROWS_ATTR, rows)
        raise
    finally:
        for e in entries:
            e.prepared = None
        _free(device)
    return results


_ROWS_ATTR = "cnnbench_interrupted_rows"


def interrupted_rows(exc: BaseException) -> list[Result]:
    """The rows :func:`measure_config` finished from what it had measured when ``exc`` (an
    interrupt) stopped it; empty for any other exception."""
    return list(getattr(exc, _ROWS_ATTR, ()))


def _measure(
    entries: list[Entry],
    config: RuntimeConfig,
    device: torch.device,
    baseline: int,
    peak: Peak | None,
    cpu_memory: bool,
    stage_budget_s: float | None,
    seed: int,
    schedule: Schedule,
    started: float,
    phase: list[str],
) -> list[Result]:
    """:func:`measure_config`'s work; ``phase[0]`` says how far it got (for an interrupt)."""
    k = len(entries)
    budget = config.budget_s * k
    load: float | None = None
    not_running: float | None = None
    with measurement_settings(config, device):
        for e in entries:
            _start(e, config)
            if schedule.stop_on_failure and e.result.status != "ok":
                break
        live = [e for e in entries if e.prepared is not None]
        if schedule.stop_on_failure and any(e.result.status != "ok" for e in entries):
            live = []
        warm_budget = schedule.warmup_s
        if warm_budget is None:
            warm_budget = config.budget_s * _ROUNDS_SHARE * _WARMUP_SHARE
        phase[0] = "warm-up"
        for e in live:
            _warm(e, device, warm_budget)
        if schedule.stop_on_failure and any(e.prepared is None for e in live):
            live = []
        live = [e for e in live if e.prepared is not None]
        phase[0] = "rounds"
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        n_rounds, reason = _rounds(
            live, device, started + budget * _ROUNDS_SHARE, config.target_ci, seed, schedule,
            entries[baseline],
        )  # fmt: skip
        wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
        not_running = max(0.0, 1.0 - cpu / wall) if device.type == "cpu" and wall > 0 else None
        load = _load_avg()
        live = [e for e in live if e.prepared is not None and e.measurement.blocks]
        why_clock = _set_clock(live, schedule.clock)
        for e in live:
            if why_clock:
                _note(e.result, why_clock)
            m = e.measurement
            m.rounds, m.stop_reason, m.elapsed_s = n_rounds, reason, time.perf_counter() - started
            _stats_into(e, None if schedule.rounds else config.target_ci)
        if entries[baseline] in live:
            _ratios_into(live, entries[baseline])
        phase[0] = "stage timing"
        stage_budget = max(0.0, started + budget - time.perf_counter()) / max(1, len(live))
        for e in live:
            if e.stages is not None:
                with _sandboxed(e):
                    _stage_times(e, stage_budget_s or stage_budget, config.target_ci)
        for e in live:
            _efficiency_into(e, device, peak)
        phase[0] = "the memory probe"
        remaining = max(MEMORY_MIN_TIMEOUT_S, started + budget - time.perf_counter())
        if device.type == "cuda" or cpu_memory:
            for e in live:
                if e.make_step is None:
                    _memory_into(e, config, device, remaining)
    if schedule.stop_on_failure:
        _skip_the_rest(entries)
    results = [e.result for e in entries]
    _noise_into(results, load, not_running)
    for e in entries:
        _state_note_into(e)
    return results


def _finish_interrupted(
    entries: list[Entry],
    config: RuntimeConfig,
    device: torch.device,
    baseline: int,
    phase: str,
    started: float,
) -> list[Result]:
    """The rows of a configuration whose measurement an interrupt stopped during ``phase``:
    every row with samples gets its statistics from them (interrupted before the rounds
    ended: ``stable`` False, ``stop_reason`` ``interrupted``, a note saying after how many
    rounds; later: what was not measured); a row with none is ``skipped``. Ratios pair the
    rounds every model completed."""
    timing_cut = phase in ("starting", "warm-up", "rounds")
    timed = [e for e in entries if e.result.status == "ok" and e.measurement.blocks]
    for e in entries:
        r, m = e.result, e.measurement
        if r.status != "ok":
            continue
        if not m.blocks:
            r.status = "skipped"
            r.error = f"not timed: interrupted during {phase}"
            continue
        if timing_cut:
            m.rounds, m.stop_reason = len(m.blocks), "interrupted"
            m.elapsed_s = time.perf_counter() - started
            _stats_into(e, config.target_ci)
            r.stable = False
            r.stop_reason = "interrupted"
            _note(
                r,
                f"incomplete: interrupted after {len(m.blocks)} round(s), "
                f"{len(m.samples)} sample(s)",
            )
        else:
            _note(r, f"incomplete: interrupted during {phase} (latency complete)")
    base = entries[baseline] if baseline < len(entries) else None
    if timing_cut and base is not None and base in timed:
        _ratios_into(timed, base, rounds=min(len(e.measurement.blocks) for e in timed))
    for e in entries:
        _state_note_into(e)
    return [e.result for e in entries]


def _skip_the_rest(entries: list[Entry]) -> None:
    """With one entry failed, the others' rows say they were not timed (``skipped``)."""
    failed = [e for e in entries if e.result.status not in ("ok", "skipped")]
    if not failed:
        return
    for e in entries:
        if e.result.status == "ok":
            e.result.status = "skipped"
            e.result.error = f"not timed: {failed[0].name} failed ({failed[0].result.status})"
            e.measurement.blocks.clear()


def _warm(e: Entry, device: torch.device, budget_s: float) -> None:
    """Warm the entry up (until two windows agree) and estimate one call; its code failing
    drops it."""
    assert e.prepared is not None
    m = e.measurement
    try:
        with (
            _sandboxed(e),
            call_limit(e.prepared.config.call_limit_s + budget_s),
            _context(e, e.prepared),
        ):
            m.warmup_iters, m.settled, e.estimate_ms = warm_up(
                e.prepared.step, device=device, budget_s=budget_s
            )
    except BaseException as exc:  # noqa: BLE001 - the model's own code
        if is_user_interrupt(exc):
            raise
        _drop(e, exc)


def _efficiency_into(entry: Entry, device: torch.device, peak: Peak | None) -> None:
    r = entry.result
    if entry.flops_per_image is None or not r.latency_ms_median:
        return
    batch = r.effective_batch_size or r.batch_size
    achieved = entry.flops_per_image * batch / (r.latency_ms_median / 1000.0) / 1e9
    dtype = getattr(torch, r.autocast_dtype) if r.autocast_dtype else None
    p = _peak_for(device, dtype, peak)
    r.achieved_gflops = achieved
    r.peak_gflops = p.matmul_gflops
    r.pct_of_peak = 100.0 * achieved / p.matmul_gflops if p.matmul_gflops else None
