"""Benchmark sweeps: many models x configurations, run in this process or as tasks on a Ray
cluster, merged into one run.

A sweep file is the user's own configuration (like ``pyproject.toml``): the model specs it
names are imported. Its shape::

    [sweep]
    models = ["lenet5", "mobilenet_v3_small"]   # zoo names or specs
    batch = [1, 2]
    precision = ["fp32"]
    budget = 0.5                                  # seconds per model and configuration
    # optional: device, resolution, memory_format, compile, threads, train, call_timeout,
    # input_size, cpu_memory (defaults: those of cnnbench.request.RunRequest.of)
    # [[sweep.pool]] name = "cpu", resources = { CPU = 2 }   (Ray resources per task)

One **task** is one model under every configuration of the sweep on one hardware pool; it
returns a saved-run dict (its own environment fingerprint). A task that fails becomes one
row per configuration with status ``error``. On Ray every task asks for a whole node's CPUs
(or the pool's resources), so two timing tasks never share a node's CPUs or GPU.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnbench.errors import UsageError
from cnnbench.request import RunRequest, check_keys, check_knobs
from cnnbench.results import Result, Run, merge_runs, read_toml_capped

__all__ = ["Pool", "Sweep", "Task", "load_sweep", "run_task", "run_local", "run_ray"]

#: The knobs a sweep file may set: those of :meth:`cnnbench.request.RunRequest.of`.
_KNOBS = (
    "batch", "precision", "memory_format", "budget", "device", "resolution", "compile",
    "threads", "train", "call_timeout", "input_size", "cpu_memory",
)  # fmt: skip
_KEYS = {"models", "pool", *_KNOBS}


@dataclass(frozen=True)
class Pool:
    """A hardware pool: a name and the Ray resources one task asks for (None: every CPU
    of a node, found at submission)."""

    name: str = "default"
    resources: dict[str, float] | None = None


@dataclass(frozen=True)
class Sweep:
    """The models of a sweep, the knobs its file sets (the keywords of
    :meth:`cnnbench.request.RunRequest.of`, whose defaults apply to the others) and its
    hardware pools (see the module docstring)."""

    models: tuple[str, ...]
    knobs: dict[str, Any] = field(default_factory=dict)
    pools: tuple[Pool, ...] = (Pool(),)

    def request(self, spec: str) -> RunRequest:
        """The request of one task: ``spec`` under every configuration of the sweep."""
        return RunRequest.of([spec], **self.knobs)

    def configs(self) -> list[Any]:
        return list(self.request(self.models[0]).configs)

    @property
    def device(self) -> str:
        return self.configs()[0].device

    def tasks(self) -> list[Task]:
        return [Task(spec, pool) for pool in self.pools for spec in self.models]


@dataclass(frozen=True)
class Task:
    """One model on one pool; ``source`` carries a file spec's text to a remote worker."""

    spec: str
    pool: Pool
    source: str | None = field(default=None, repr=False)


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file; one-line UsageError naming the field otherwise (each
    knob is checked by its one validation: :func:`cnnbench.request.check_knobs`)."""
    path = Path(path)
    data = read_toml_capped(path, limit=1 << 20, kind="a sweep TOML file")  # size, depth, syntax
    table = data.get("sweep")
    if not isinstance(table, dict):
        raise UsageError(f"{path}: no [sweep] table; see `cnnbench sweep --help`")
    check_keys(table, _KEYS, str(path), "sweep")
    if "models" not in table:
        raise UsageError(f'{path}: sweep.models: missing; e.g. models = ["lenet5"]')
    models = table["models"] if isinstance(table["models"], list) else [table["models"]]
    if not models or not all(isinstance(m, str) and m.strip() for m in models):
        raise UsageError(f"{path}: sweep.models: expected a model spec or a list of them")
    pools = _pools(table.get("pool", []), str(path)) or (Pool(),)
    knobs = {k: table[k] for k in _KNOBS if k in table}
    check_knobs(knobs, f"{path}: sweep")
    sweep = Sweep(models=tuple(models), knobs=knobs, pools=pools)
    sweep.configs()  # every combination checked now (RuntimeConfig), before anything runs
    return sweep


_POOL_EXAMPLE = '[[sweep.pool]] name = "cpu", resources = { CPU = 2 }'


def _pools(value: Any, source: str) -> tuple[Pool, ...]:
    """The ``[[sweep.pool]]`` tables, each checked by type; one line naming the key, the type
    expected and an example otherwise."""
    if not isinstance(value, list) or not all(isinstance(p, dict) for p in value):
        raise UsageError(
            f"{source}: sweep.pool: expected an array of tables, got {_shown(value)}; e.g. "
            f"{_POOL_EXAMPLE}"
        )
    pools = []
    for i, table in enumerate(value):
        where = f"{source}: sweep.pool[{i}]"
        check_keys(table, {"name", "resources"}, source, f"sweep.pool[{i}]")
        name = table.get("name", f"pool{i}")
        if not (isinstance(name, str) and name.strip()):
            raise UsageError(f'{where}.name: expected a string, got {_shown(name)}; e.g. name = "cpu"')
        resources = table.get("resources")
        if resources is not None and not (
            isinstance(resources, dict)
            and resources
            and all(
                isinstance(k, str) and _is_amount(v) for k, v in resources.items()
            )
        ):
            raise UsageError(
                f"{where}.resources: expected a table of resource names to non-negative "
                f"numbers, got {_shown(resources)}; e.g. resources = {{ CPU = 2, GPU = 1 }}"
            )
        pools.append(Pool(name, dict(resources) if resources is not None else None))
    return tuple(pools)


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_amount(value: Any) -> bool:
    import math

    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _failed_rows(task: Task, sweep: Sweep, error: str) -> list[Result]:
    return [
        Result(
            model=task.spec.rsplit(":", 1)[-1],
            batch_size=c.batch_size,
            device=c.device,
            precision=c.precision,
            memory_format=c.memory_format,
            compiled=c.compile,
            status="error",
            error=error,
        )
        for c in sweep.configs()
    ]


def run_task(task: Task, sweep: Sweep) -> dict[str, Any]:
    """Measure one task with the engine (as ``compare`` does) and return the saved-run dict
    (this machine's environment). Any failure becomes error rows, never an exception."""
    import json

    from cnnbench.api import run_request
    from cnnbench.environment import fingerprint
    from cnnbench.runtime import resolve_device

    spec = task.spec
    env: dict[str, Any] = {}
    rows: list[Result] = []
    try:
        if task.source is not None:  # a file spec shipped by text to a remote worker
            folder = Path(tempfile.mkdtemp(prefix="cnnbench-sweep-"))
            path, attr = spec.rsplit(":", 1)
            local = folder / Path(path).name
            local.write_text(task.source)
            spec = f"{local}:{attr}"
        env = fingerprint(resolve_device(sweep.device))
        rows = list(run_request(sweep.request(spec)))
    except BaseException as exc:  # noqa: BLE001 - a failed task is a row, the sweep goes on
        if isinstance(exc, KeyboardInterrupt):
            raise
        rows = _failed_rows(task, sweep, f"{type(exc).__name__}: {exc}".splitlines()[0])
    for r in rows:
        r.notes = (f"{r.notes}; " if r.notes else "") + f"pool {task.pool.name}"
    return json.loads(Run(results=rows, environment=env).to_json())


def _from_dict(data: dict[str, Any]) -> Run:
    return Run(
        results=[Result.from_dict(r) for r in data["results"]],
        environment=data.get("environment", {}),
    )


def _merged(runs: list[Run], complete: bool) -> tuple[Run, bool]:
    """The tasks' runs as one (empty when none finished), marked complete or not."""
    merged = merge_runs(runs) if runs else Run(results=[])
    merged.complete = complete
    return merged, complete


def run_local(sweep: Sweep, on_run: Callable[[Run, Task], None] | None = None) -> tuple[Run, bool]:
    """Every task in this process, one after another; (merged run, completed). Ctrl-C keeps
    the finished tasks' rows."""
    runs: list[Run] = []
    complete = True
    try:
        for task in sweep.tasks():
            run = _from_dict(run_task(task, sweep))
            runs.append(run)
            if on_run is not None:
                on_run(run, task)
    except KeyboardInterrupt:
        complete = False
    return _merged(runs, complete)


def _shippable(task: Task) -> Task:
    prefix, sep, _attr = task.spec.rpartition(":")
    if sep and (prefix.endswith(".py") or "/" in prefix):
        try:
            return Task(task.spec, task.pool, Path(prefix).read_text())
        except OSError as exc:
            raise UsageError(f"{task.spec}: cannot read the file to ship it ({exc})") from None
    return task


def run_ray(
    sweep: Sweep,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    on_run: Callable[[Run, Task], None] | None = None,
) -> tuple[Run, bool]:
    """Every task as a Ray task (``address``: an existing cluster; None: a local one with
    ``num_cpus``). Results stream back as tasks finish; Ctrl-C cancels what is left and keeps
    what finished. A task asks for a whole node's CPUs (or its pool's resources), so two
    timing tasks never share a node."""
    try:
        import ray
    except ImportError:
        raise UsageError('the Ray executor needs Ray: pip install "cnnbench[ray]"') from None
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        node_cpus = min(
            (n["Resources"].get("CPU", 1) for n in ray.nodes() if n.get("Alive")), default=1
        )
        remote = ray.remote(run_task)
        pending: dict[Any, Task] = {}
        for task in map(_shippable, sweep.tasks()):
            resources = dict(task.pool.resources or {"CPU": node_cpus})
            options = {"num_cpus": resources.pop("CPU", 0), "num_gpus": resources.pop("GPU", 0)}
            ref = remote.options(**options, resources=resources or None).remote(task, sweep)
            pending[ref] = task
        runs: list[Run] = []
        complete = True
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    run = _from_dict(ray.get(done[0]))
                except Exception as exc:  # noqa: BLE001 - a crashed worker: error rows
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                    run = Run(results=_failed_rows(task, sweep, f"{type(exc).__name__}: {first}"))
                runs.append(run)
                if on_run is not None:
                    on_run(run, task)
        except KeyboardInterrupt:
            complete = False
            for ref in pending:
                ray.cancel(ref, force=True)
        return _merged(runs, complete)
    finally:
        if started:
            ray.shutdown()
