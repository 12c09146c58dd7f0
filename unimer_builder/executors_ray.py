"""Where per-item work runs on a Ray cluster: :class:`RayPool`, the contract of :class:`.executors.WorkerPool`
(``map(fn, items, then)``, ``workers``, ``start()``, ``shutdown()``) with Ray actors instead of local processes.

Each actor runs ``initializer(*initargs)`` once (models loaded, TV-L1 object made, templates compiled) and then
takes items one at a time, so a build pays its per-process start-up once per actor, as a local pool does. Ray
tasks would pay it per task; Ray Data's ``map_batches`` over an actor pool would too work, but it reserves CPUs
for its own operators, aborts the dataset on the first failed block unless told otherwise, and buys nothing
here: an item (a clip's paths and labels) and a result (a small summary) are a few KB; the pixels go from the
shared input straight to the part file the actor writes on the shared output.

What Ray does not give by itself, and this adds:

* Back-pressure: at most ``in_flight`` items per actor are submitted at a time (default one: the next item is
  sent when the actor hands back its last), so the driver's memory and the cluster's queues do not grow with
  the input. One, not two: an item queued behind one that kills its actor would fail with it.
* Retries of lost work, by the driver: an item whose actor died (its process, or its node) goes to another
  live actor, up to ``max_retries`` times. Ray's own task retries would wait for that actor to restart, which
  never happens while the other actors hold every CPU: the build would hang. The dead actor is restarted by
  Ray (``max_restarts=-1``: its initializer runs again, on another node if its own is gone) and takes items
  again once it answers.
* A failed item is a result, not a failed map: an exception raised by ``fn`` or ``then``, or an item whose
  retries ran out, becomes ``failed(item, reason, message)`` (reason ``error`` or ``worker_lost``).

Ray is imported only when a :class:`RayPool` is made (``pip install 'unimer[ray]'``).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .node import current_node

Task = Callable[[Any, Any], Any]
Failed = Callable[[Any, str, str], Any]


class RayUnavailable(RuntimeError):
    """Ray is asked for and cannot be used (not installed, or no cluster at the address)."""


def import_ray():
    try:
        import ray
    except ImportError as e:
        raise RayUnavailable("--executor ray needs Ray: pip install 'unimer[ray]'") from e
    return ray


class _Worker:
    """One actor: holds what the initializer returned, runs ``fn`` then ``then`` on an item."""

    def __init__(self, initializer: Callable | None, initargs: tuple):
        self.state = initializer(*initargs) if initializer is not None else None

    def ping(self) -> tuple[str, int]:
        return current_node(), os.getpid()

    def run(self, fn: Task, then: Task | None, item):
        out = fn(self.state, item)
        return then(self.state, out) if then is not None else out


def connect(address: str | None = None) -> bool:
    """Connect this process to Ray (``address``: None = ``$RAY_ADDRESS``, else the cluster ``ray start``
    left on this machine, else a new local instance; ``auto``; ``local``; ``HOST:PORT``; ``ray://HOST:PORT``).
    True when this call connected (and so the caller disconnects), False when it already was."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    _reachable(address)
    # The dashboard is Ray's to start only with a new cluster (a client connection, ray://, takes no such option).
    new = {"include_dashboard": False} if address in (None, "local") else {}
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING, **new)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise RayUnavailable(f"cannot connect to Ray at {address or 'its default address'}: {e}") from e
    return True


def _reachable(address: str | None, seconds: float = 10) -> None:
    """A ``HOST:PORT`` or ``ray://HOST:PORT`` that nothing answers at: one clear error now (Ray itself retries
    for minutes before it gives up)."""
    if not address or address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # not HOST:PORT: Ray says what is wrong with it
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as e:
        raise RayUnavailable(f"cannot connect to Ray at {address}: {e.strerror or e}") from e


class RayPool:
    """``workers`` Ray actors of ``cpus_per_worker`` CPUs each (at most, and with 0 as many, as the cluster's
    CPUs hold), each initialised once with ``initializer(*initargs)``. Connects to Ray at ``address`` unless this
    process already is connected (see :func:`connect`); disconnects on :meth:`shutdown` only if it connected.
    ``env``: environment variables of the actors' processes (thread counts: nothing oversubscribes a node).
    ``retried``: items run again after their actor was lost, over this pool's life.
    """

    def __init__(self, workers: int, initializer: Callable | None = None, initargs: tuple = (), *,
                 address: str | None = None, cpus_per_worker: float = 1, max_retries: int = 3,
                 in_flight: int = 1, failed: Failed | None = None, env: dict[str, str] | None = None):
        ray = import_ray()
        self.owns_connection = connect(address)
        # As many actors as the nodes' CPUs hold (CPUs another job holds now free up later: the actors wait for
        # them, as any Ray work does); one no node could ever hold would wait forever, so none is made.
        node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
        capacity = sum(int(c // cpus_per_worker) for c in node_cpus)
        if capacity < 1:
            self._disconnect()
            raise RayUnavailable(f"no node of the Ray cluster at {address or 'its default address'} has the "
                                 f"{cpus_per_worker:g} CPUs a worker needs (nodes' CPUs: {node_cpus})")
        self.workers = min(int(workers), capacity) if workers else capacity
        self.max_retries = max_retries
        self.in_flight = max(1, in_flight)
        self.failed = failed
        self.retried = 0
        options = {"num_cpus": cpus_per_worker, "max_restarts": -1, "max_task_retries": 0,
                   "scheduling_strategy": "SPREAD"}  # over the nodes, not packed onto the first one
        if env:
            options["runtime_env"] = {"env_vars": dict(env)}
        remote = ray.remote(_Worker).options(**options)
        self.actors = [remote.remote(initializer, initargs) for _ in range(self.workers)]

    def start(self) -> float:
        """Wait until every actor is initialised; the seconds that took (what :meth:`map` would otherwise
        spend on its first items)."""
        ray = import_ray()
        t0 = time.perf_counter()
        try:
            ray.get([a.ping.remote() for a in self.actors])
        except ray.exceptions.RayError as e:  # the initializer raised, or no process could start
            self.shutdown()
            raise RayUnavailable(f"a Ray worker could not start: {e}") from e
        return time.perf_counter() - t0

    def nodes(self) -> list[tuple[str, int]]:
        """(node, pid) of each actor now."""
        ray = import_ray()
        return ray.get([a.ping.remote() for a in self.actors])

    def map(self, fn: Task, items: Iterable, then: Task | None = None) -> Iterator:
        """``then(state, fn(state, item))`` of each item, in the order they finish."""
        ray = import_ray()
        fn_ref, then_ref = ray.put(fn), ray.put(then)
        fresh = iter(items)
        exhausted = False
        again: list[tuple[Any, int]] = []  # (item, times lost) to run again, before fresh ones
        work: dict[Any, tuple[int, Any, int]] = {}  # ObjectRef -> (actor, item, times lost)
        probes: dict[Any, int] = {}  # ObjectRef of a ping -> actor: answers once a lost actor is back
        load = [0] * len(self.actors)
        up = [True] * len(self.actors)

        def fill(k: int) -> None:
            nonlocal exhausted
            while up[k] and load[k] < self.in_flight:
                if again:
                    item, lost = again.pop(0)
                else:
                    item = next(fresh, _END)
                    if item is _END:
                        exhausted = True
                        return
                    lost = 0
                work[self.actors[k].run.remote(fn_ref, then_ref, item)] = (k, item, lost)
                load[k] += 1

        def fill_all() -> None:
            for k in sorted(range(len(self.actors)), key=load.__getitem__):
                fill(k)

        fill_all()
        # A lost actor's probe is waited for only while items wait for an actor: at the end of a build the
        # other actors hold the CPUs its restart needs.
        while work or (probes and (again or not exhausted)):
            ref = ray.wait([*work, *probes], num_returns=1)[0][0]
            if ref in probes:
                k = probes.pop(ref)
                try:
                    ray.get(ref)
                except ray.exceptions.RayError:  # gone for good (its restarts failed): no more items for it
                    continue
                up[k] = True
                fill(k)
                continue
            k, item, lost = work.pop(ref)
            load[k] -= 1
            try:
                result = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # fn or then raised: the item failed, not the actor
                result = self._failed(item, "error", e.cause if getattr(e, "cause", None) is not None else e)
            except ray.exceptions.RayError as e:  # the actor's process or node was lost
                if up[k]:
                    up[k] = False  # until it answers a ping again (Ray restarts it where CPUs are free)
                    probes[self.actors[k].ping.options(max_task_retries=-1).remote()] = k
                if lost < self.max_retries:
                    self.retried += 1
                    again.append((item, lost + 1))
                    fill_all()
                    continue
                result = self._failed(item, "worker_lost", e, f"its worker was lost {lost + 1} times")
            yield result
            if up[k]:
                fill(k)
            else:
                fill_all()
        # Every actor gone for good (no probe left to wait for): what was not built is reported, not dropped.
        for item, lost in again:
            yield self._failed(item, "worker_lost", None, f"its worker was lost {lost} times and none is left")
        for item in fresh:
            yield self._failed(item, "worker_lost", None, "no worker of the pool is left")

    def _failed(self, item, reason: str, error: BaseException | None, what: str = ""):
        if self.failed is None:
            if isinstance(error, BaseException):
                raise error
            raise RayUnavailable(what)
        why = "" if error is None else f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
        return self.failed(item, reason, f"{what} ({why})" if what and why else what or why)

    def shutdown(self) -> None:
        ray = import_ray()
        if ray.is_initialized():
            for a in self.actors:
                ray.kill(a, no_restart=True)
        self.actors = []
        self._disconnect()

    def _disconnect(self) -> None:
        if self.owns_connection:
            import_ray().shutdown()
            self.owns_connection = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


_END = object()
