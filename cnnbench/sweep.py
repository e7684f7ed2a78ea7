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

from cnnbench.errors import UsageError, is_user_interrupt, one_line
from cnnbench.request import RunRequest, check_keys, check_knobs
from cnnbench.results import Result, Run, merge_runs, read_toml_capped

__all__ = [
    "CONNECT_TIMEOUT_S", "Pool", "Sweep", "Task", "check_address", "load_sweep", "run_task",
    "run_local", "run_ray",
]  # fmt: skip

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
            raise UsageError(
                f'{where}.name: expected a string, got {_shown(name)}; e.g. name = "cpu"'
            )
        resources = table.get("resources")
        if resources is not None and not (
            isinstance(resources, dict)
            and resources
            and all(isinstance(k, str) and _is_amount(v) for k, v in resources.items())
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
    """One ``error`` row per configuration of a task that could not run; the device is
    resolved as the engine does (``auto`` -> ``cpu``/``cuda:0``) where this machine can."""
    from cnnbench.runtime import resolve_device

    rows = []
    for c in sweep.configs():
        try:
            device = resolve_device(c.device)
        except UsageError:  # not on this machine (a Ray worker's): as configured
            device = None
        row = Result(model=task.spec.rsplit(":", 1)[-1], status="error", error=error)
        rows.append(c.stamp(row, device))
    return rows


def run_task(task: Task, sweep: Sweep, kept: list[Result] | None = None) -> dict[str, Any]:
    """Measure one task with the engine (as ``compare`` does) and return the saved-run dict
    (this machine's environment). Any failure becomes error rows, never an exception; the
    user stopping the run (Ctrl-C, SIGTERM, SIGHUP) is raised, and ``kept`` (when given)
    then holds the rows of the configurations finished so far, tagged with the pool."""
    import json

    from cnnbench.api import run_request
    from cnnbench.environment import fingerprint
    from cnnbench.runtime import resolve_device

    spec = task.spec
    env: dict[str, Any] = {}
    rows: list[Result] = kept if kept is not None else []
    try:
        if task.source is not None:  # a file spec shipped by text to a remote worker
            folder = Path(tempfile.mkdtemp(prefix="cnnbench-sweep-"))
            path, attr = spec.rsplit(":", 1)
            local = folder / Path(path).name
            local.write_text(task.source)
            spec = f"{local}:{attr}"
        env = fingerprint(resolve_device(sweep.device))
        for row in run_request(sweep.request(spec)):  # configuration by configuration
            rows.append(_tagged(row, task.pool))
    except BaseException as exc:  # noqa: BLE001 - a failed task is a row, the sweep goes on
        if is_user_interrupt(exc):
            raise
        rows[:] = [_tagged(r, task.pool) for r in _failed_rows(task, sweep, one_line(exc))]
    return json.loads(Run(results=rows, environment=env).to_json())


def _tagged(row: Result, pool: Pool) -> Result:
    row.notes = (f"{row.notes}; " if row.notes else "") + f"pool {pool.name}"
    return row


def _from_dict(data: dict[str, Any]) -> Run:
    return Run(
        results=[Result.from_dict(r) for r in data["results"]],
        environment=data.get("environment", {}),
    )


def _merged(runs: list[Run], stopped: BaseException | None) -> tuple[Run, BaseException | None]:
    """The tasks' runs as one (empty when none finished), complete unless ``stopped``."""
    merged = merge_runs(runs) if runs else Run(results=[])
    merged.complete = stopped is None
    return merged, stopped


def run_local(
    sweep: Sweep, on_run: Callable[[Run, Task], None] | None = None
) -> tuple[Run, BaseException | None]:
    """Every task in this process, one after another; (merged run, what stopped it: None when
    every task ran, else the Ctrl-C / SIGTERM / SIGHUP exception). A stop keeps the finished
    tasks' rows and the finished configurations of the running task."""
    runs: list[Run] = []
    stopped: BaseException | None = None
    for task in sweep.tasks():
        kept: list[Result] = []
        try:
            run = _from_dict(run_task(task, sweep, kept))
            runs.append(run)
            kept = []
            if on_run is not None:
                on_run(run, task)
        except BaseException as exc:
            if not is_user_interrupt(exc):
                raise
            stopped = exc
            if kept:  # the running task's finished configurations
                from cnnbench.environment import fingerprint
                from cnnbench.runtime import resolve_device

                runs.append(
                    Run(results=kept, environment=fingerprint(resolve_device(sweep.device)))
                )
            break
    return _merged(runs, stopped)


def _shippable(task: Task) -> Task:
    prefix, sep, _attr = task.spec.rpartition(":")
    if sep and (prefix.endswith(".py") or "/" in prefix):
        try:
            return Task(task.spec, task.pool, Path(prefix).read_text())
        except OSError as exc:
            raise UsageError(f"{task.spec}: cannot read the file to ship it ({exc})") from None
    return task


#: Seconds within which a Ray connection problem ends the sweep (``--address``).
CONNECT_TIMEOUT_S = 30.0
_ADDRESS_HELP = "use HOST:PORT (e.g. 10.0.0.5:6379), ray://HOST:PORT or auto"
#: Ray's (documented) switch that makes a node use the loopback address, set while a local
#: cluster starts so that none of its ports listens on the network.
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def check_address(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a Ray cluster address ``[ray://]HOST:PORT`` (None for ``auto``:
    the cluster Ray finds on this machine); one-line UsageError when malformed."""
    text = address.strip()
    if text == "auto":
        return None
    rest = text[len("ray://") :] if text.startswith("ray://") else text
    host, sep, port = rest.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # [IPv6]:PORT
        host = host[1:-1]
        bad_host = not host or any(c not in "0123456789abcdefABCDEF:." for c in host)
    else:
        bad_host = not host or any(c.isspace() or c in "/:@[]" for c in host)
    if not sep or bad_host or not (port.isdigit() and 0 < int(port) < 65536):
        raise UsageError(f"--address {address!r}: not a Ray cluster address; {_ADDRESS_HELP}")
    return host, int(port)


def _probe(address: str, deadline: float) -> None:
    """A TCP connection to the cluster's address within the bound, else one line."""
    import socket
    import time

    where = check_address(address)
    if where is None:
        return
    try:
        with socket.create_connection(where, timeout=max(0.1, deadline - time.monotonic())):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(
            f"--address {address}: cannot reach a Ray cluster there ({reason}); start one "
            f"with `ray start --head` or check the address"
        ) from None


def _init_bounded(ray: Any, address: str, deadline: float) -> None:
    """``ray.init`` on an existing cluster, given up (one line) at ``deadline``."""
    import threading
    import time

    failure: list[BaseException] = []

    def connect() -> None:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)  # fmt: skip
        except BaseException as exc:  # noqa: BLE001 - reported in the caller's thread
            failure.append(exc)

    import logging

    quiet = logging.getLogger("ray")  # Ray's own retries and warnings are not the user's line
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    thread = threading.Thread(target=connect, name="cnnbench-ray-connect", daemon=True)
    thread.start()
    try:
        thread.join(max(0.0, deadline - time.monotonic()))
    finally:
        quiet.setLevel(level)
    if thread.is_alive():
        raise UsageError(
            f"--address {address}: no Ray cluster answered within {CONNECT_TIMEOUT_S:g} s; "
            "check the address and that the cluster is running"
        )
    if failure:
        exc = failure[0]
        if isinstance(exc, ImportError) or "ray[client]" in str(exc):
            raise UsageError(
                f"--address {address}: the ray:// form needs Ray's client: pip install "
                '"cnnbench[ray]" (it installs ray[client])'
            ) from None
        raise UsageError(f"--address {address}: cannot connect: {one_line(exc)}") from None


def _start_local(ray: Any, num_cpus: int | None) -> None:
    """A local Ray cluster whose every port listens on 127.0.0.1 only (Ray's ports have no
    authentication one may rely on); UsageError when Ray did not keep to it."""
    import os

    from ray._private import ray_constants  # the constant read when Ray picks the node IP

    before = os.environ.get(_LOOPBACK_ENV)
    cluster_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[_LOOPBACK_ENV] = "0"  # Ray's processes started now inherit it
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process imported Ray already
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, _node_ip_address="127.0.0.1")  # fmt: skip
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = cluster_flag
        if before is None:
            os.environ.pop(_LOOPBACK_ENV, None)
        else:
            os.environ[_LOOPBACK_ENV] = before
    node_ip = ray.util.get_node_ip_address()
    if node_ip != "127.0.0.1":
        ray.shutdown()
        raise UsageError(
            f"the local Ray cluster would listen on {node_ip}, not 127.0.0.1 only; start one "
            "yourself (`ray start --head --node-ip-address 127.0.0.1`) and pass --address"
        )


def run_ray(
    sweep: Sweep,
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    on_run: Callable[[Run, Task], None] | None = None,
) -> tuple[Run, BaseException | None]:
    """Every task as a Ray task (``address``: an existing cluster, reached within
    :data:`CONNECT_TIMEOUT_S` or one-line UsageError; None: a local one with ``num_cpus``,
    listening on 127.0.0.1 only). Results stream back as tasks finish; Ctrl-C, SIGTERM or
    SIGHUP cancels what is left and keeps what finished (returned as in :func:`run_local`).
    A task asks for a whole node's CPUs (or its pool's resources), so two timing tasks never
    share a node."""
    import signal
    import threading
    import time

    if address is not None:
        check_address(address)  # malformed: one line before Ray is even imported
    try:
        import ray
    except ImportError:
        raise UsageError('the Ray executor needs Ray: pip install "cnnbench[ray]"') from None
    started = not ray.is_initialized()
    main = threading.current_thread() is threading.main_thread()
    handlers = {n: signal.getsignal(n) for n in (signal.SIGTERM,)} if main else {}
    if started:
        if address is None:
            _start_local(ray, num_cpus)
        else:
            deadline = time.monotonic() + CONNECT_TIMEOUT_S
            _probe(address, deadline)
            _init_bounded(ray, address, deadline)
    for signum, handler in handlers.items():  # ray.init sets its own SIGTERM handler
        signal.signal(signum, handler)
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
        stopped: BaseException | None = None
        try:
            while pending:  # short waits, so that a signal is handled within a second
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                if not done:
                    continue
                task = pending.pop(done[0])
                try:
                    run = _from_dict(ray.get(done[0]))
                except Exception as exc:  # noqa: BLE001 - a crashed worker: error rows
                    run = Run(results=_failed_rows(task, sweep, one_line(exc)))
                runs.append(run)
                if on_run is not None:
                    on_run(run, task)
        except BaseException as exc:
            if not is_user_interrupt(exc):
                raise
            stopped = exc
            for ref in pending:
                ray.cancel(ref, force=True)
        return _merged(runs, stopped)
    finally:
        if started:
            ray.shutdown()
