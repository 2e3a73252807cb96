"""Engines: where stage 2 runs its per-partition function — here, in a process pool, on Ray.

An engine maps a top-level (picklable) function over argument tuples and returns the
results in the order given, so every engine gives the same merged result.

- ``local``, 1 worker: in this process, one partition after another.
- ``local``, N workers: a process pool started with ``forkserver`` (``spawn`` where there
  is none): forking a process whose Polars thread pool is running can deadlock the child.
- ``ray``: one Ray task per partition. ``ray.init(address=...)`` joins a cluster (the store
  must then be on storage every node sees, and calo-polars installed on every node);
  without an address (and no ``RAY_ADDRESS``) a local Ray runtime with ``workers`` CPUs is
  started and stopped.
  A Ray runtime already started by the caller (``ray.is_initialized()``) is used as it is.
  The first task of each CPU of the cluster is placed on that CPU's node, so that every node
  starts at once (left to Ray, short tasks all run on the first worker up while the other
  nodes start theirs); the others go wherever a CPU is free first (``SPREAD``: each task
  reads its own partition from shared storage, there is no data to stay near). Each task
  says which node ran it (``Engine.ran_on``, printed by ``report -v``).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from calo_polars.errors import CaloError, UsageError

R = TypeVar("R")


class EngineError(CaloError):
    """A partition's task failed on the engine (its cause in one line)."""


ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """How to run stage 2: ``kind`` (``ENGINES``), ``workers``, and a Ray cluster's address."""

    kind: str = "local"
    workers: int = 1
    ray_address: str | None = None
    #: Where each call of the last ``map`` ran, in call order: (Ray node id, node IP); empty for local runs.
    ran_on: list[tuple[str, str]] = field(default_factory=list, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in ENGINES:
            raise UsageError(f"unknown engine {self.kind!r}: choose among {', '.join(ENGINES)}")
        if self.workers < 1:
            raise UsageError("--workers must be at least 1")
        if self.ray_address and self.kind != "ray":
            raise UsageError("--ray-address needs --engine ray")

    def map(self, fn: Callable[..., R], calls: Sequence[tuple[Any, ...]]) -> list[R]:
        """``fn(*args)`` for each ``args`` of ``calls``, results in the same order."""
        if self.kind == "ray":
            placed = run_ray(fn, calls, self.workers, self.ray_address)
            self.ran_on[:] = [where for where, _ in placed]
            return [result for _, result in placed]
        if self.workers == 1 or len(calls) <= 1:
            return [fn(*args) for args in calls]
        return run_pool(fn, calls, self.workers)

    def describe(self) -> str:
        if self.kind == "ray":
            return f"ray ({self.ray_address or f'local, {self.workers} CPUs'})"
        return "this process" if self.workers == 1 else f"{self.workers} worker processes"

    def placement_lines(self) -> list[str]:
        """For ``-v``: per Ray node of the last ``map``, the calls (partitions) it ran."""
        by_node: dict[tuple[str, str], list[int]] = {}
        for k, where in enumerate(self.ran_on):
            by_node.setdefault(where, []).append(k)
        return [
            f"ray node {ip} ({node_id[:12]}): partition{'s' if len(ks) > 1 else ''} {', '.join(map(str, ks))}"
            for (node_id, ip), ks in by_node.items()
        ]


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_pool(fn: Callable[..., R], calls: Sequence[tuple[Any, ...]], workers: int) -> list[R]:
    """``fn`` over ``calls`` in ``workers`` processes (each a fresh interpreter)."""
    pool = ProcessPoolExecutor(max_workers=min(workers, len(calls)), mp_context=_context(), initializer=_leave_signals)
    try:
        futures = [pool.submit(fn, *args) for args in calls]
        return [f.result() for f in futures]
    except BaseException:
        # Ctrl-C, SIGTERM, a failed partition: stop the workers now instead of letting them finish.
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    finally:
        pool.shutdown(wait=True)


def _leave_signals() -> None:
    """In a worker: Ctrl-C (sent to the whole terminal's process group) is the parent's to handle."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _on_node(fn: Callable[..., R], *args: Any) -> tuple[tuple[str, str], R]:
    """A Ray task: ``fn(*args)`` and the node that ran it (its id and IP)."""
    import ray

    return (ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()), fn(*args)


@contextlib.contextmanager
def _fd2_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a while: Ray's C++ code writes there, past ``sys.stderr``."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _reachable(address: str, timeout: float = 10.0) -> None:
    """A ``HOST:PORT`` address that nothing answers at fails now: ``ray.init`` would wait about
    five minutes before saying so. Other addresses (``auto``, ``ray://``) are Ray's to resolve."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConnectionError(f"nothing answers there ({exc.strerror or exc})") from None


def _first_round(nodes: list[dict[str, Any]]) -> list[str]:
    """One node id per CPU of the cluster's alive nodes, the nodes interleaved by their share of CPUs."""
    slots = [
        ((j + 0.5) / cpus, node["NodeID"])
        for node in nodes
        if node.get("Alive") and (cpus := int(node.get("Resources", {}).get("CPU", 0)))
        for j in range(cpus)
    ]
    return [node_id for _, node_id in sorted(slots)]


def _placement(node_id: str) -> Any:
    """On that node (another one if it is gone), even if it must wait there for a free CPU."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=True)


def run_ray(
    fn: Callable[..., R], calls: Sequence[tuple[Any, ...]], workers: int, address: str | None
) -> list[tuple[tuple[str, str], R]]:
    """``fn`` over ``calls`` as Ray tasks (one a call), on a cluster or a local runtime: where
    each ran and its result."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray: pip install 'calo-polars[ray]'") from None
    started = False
    address = address or os.environ.get("RAY_ADDRESS")
    if not ray.is_initialized():
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report sent home
        # Ray's "Connected to"/"Started a local Ray instance" lines are not ours to print (-q prints nothing).
        logging.getLogger("ray").setLevel(logging.ERROR)
        try:
            if address:
                _reachable(address)
                with _fd2_silenced():  # Ray's C++ retry warnings (a wrong token: 20 lines in 25 s) bury our line
                    ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise UsageError(
                f"cannot start or reach Ray{f' at {address}' if address else ''}: {str(exc).splitlines()[0]}"
            ) from None
        started = True
    try:
        task = ray.remote(_on_node)
        first = _first_round(ray.nodes())
        places = [_placement(first[k]) if k < len(first) else "SPREAD" for k in range(len(calls))]
        refs = [task.options(scheduling_strategy=p).remote(fn, *a) for p, a in zip(places, calls, strict=True)]
        return list(ray.get(refs))
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        what = str(cause) if isinstance(cause, CaloError) else f"{type(cause).__name__}: {cause}"
        hint = " (on a cluster, is the store on storage every node sees, at the same path?)" if address else ""
        raise EngineError(f"a Ray task failed: {what.splitlines()[0] if what else '?'}{hint}") from None
    except ray.exceptions.RayError as exc:  # a worker or node died, an object was lost: the cluster, not the task
        lines = str(exc).strip().splitlines()
        raise EngineError(f"the Ray cluster lost a task: {type(exc).__name__}: {lines[0] if lines else '?'}") from None
    finally:
        if started:
            ray.shutdown()
