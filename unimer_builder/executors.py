"""Where per-item work runs: in this process, or in a warm local process pool. Generic: no stage knowledge.

An executor maps ``fn(state, item)`` over items, ``state`` being what the ``initializer`` handed in returned
in that process (once per worker: models loaded, caches warm). With ``then``, each result goes on through
``then(state, result)``: in this process that second step of item i runs in a helper thread while the
first step of item i+1 runs (results keep the input order; at most two items are in flight); in a pool
both steps run in the worker and results come as they finish, with a bounded number of items in flight so
the parent's memory does not grow with the input. Functions handed to a pool must pickle (module-level
functions, or ``functools.partial`` of them). A Ray executor with the same contract is the next sibling.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, ThreadPoolExecutor, wait
from multiprocessing import get_context
from typing import Any

Task = Callable[[Any, Any], Any]


class InProcess:
    """Items one after the other in this process; ``state`` is given, or made by ``initializer(*initargs)``.
    ``overlap=False`` runs ``then`` in line instead of in the helper thread."""

    workers = 1

    def __init__(self, state: Any = None, initializer: Callable | None = None, initargs: tuple = (),
                 overlap: bool = True):
        self.state = initializer(*initargs) if initializer is not None else state
        self.overlap = overlap

    def map(self, fn: Task, items: Iterable, then: Task | None = None) -> Iterator:
        if then is None:
            for item in items:
                yield fn(self.state, item)
            return
        if not self.overlap:
            for item in items:
                yield then(self.state, fn(self.state, item))
            return
        with ThreadPoolExecutor(1, thread_name_prefix="unimer-then") as helper:
            prev = None
            for item in items:
                nxt = helper.submit(then, self.state, fn(self.state, item))
                if prev is not None:
                    yield prev.result()
                prev = nxt
            if prev is not None:
                yield prev.result()


_WORKER_STATE: list = []  # in a pool worker: what its initializer returned


PARENT_CHECK_S = 0.5  # how often a pool worker looks whether its parent is still there


def exit_with_parent(parent: int, interval: float = PARENT_CHECK_S) -> None:
    """End this process (a pool worker of ``parent``) soon after its parent dies, however it dies (SIGKILL
    included): a daemon thread watches ``os.getppid()``, which changes when the process is handed to another
    parent (and may have changed already, while this worker was still importing). Otherwise the workers of a
    killed build run on, each holding its models, still writing parts. A thread, not Linux's
    ``PR_SET_PDEATHSIG``: that signal follows the *thread* that spawned the worker, which need not live as
    long as the pool."""
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="unimer-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _children_ignore_sigint():
    """Processes started in here begin with SIGINT ignored (a disposition that survives the spawn's exec, and
    that Python then keeps): a Ctrl-C reaches the terminal's whole process group, and each worker, still
    importing or running, printed a KeyboardInterrupt traceback under the build's one-line message. The
    parent alone handles it, and ends its workers (:meth:`WorkerPool.__exit__`). Only the main thread can set
    a handler; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _init_worker(parent: int, initializer: Callable | None, initargs: tuple) -> None:
    exit_with_parent(parent)
    _WORKER_STATE[:] = [initializer(*initargs) if initializer is not None else None]


def _run(fn: Task, then: Task | None, item):
    state = _WORKER_STATE[0] if _WORKER_STATE else None
    out = fn(state, item)
    return then(state, out) if then is not None else out


def _ping() -> int:
    time.sleep(0.05)  # long enough that one warm worker cannot answer every ping of a round
    return os.getpid()


class WorkerPool:
    """A local process pool whose workers each run ``initializer(*initargs)`` once, on start.

    A caller that maps several times (a benchmark, a service) can :meth:`start` it once (spawns every
    worker and waits until each is initialised; returns the seconds that took) and reuse it, so the
    per-process start-up (interpreter spawn, imports, models) is paid once. The ``spawn`` context is used
    because forking a process that already runs OpenCV threads is unsafe.
    """

    def __init__(self, workers: int, initializer: Callable | None = None, initargs: tuple = ()):
        self.workers = max(1, int(workers))
        self.executor = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                            initargs=(os.getpid(), initializer, initargs))

    def start(self) -> float:
        t0 = time.perf_counter()
        seen: set[int] = set()
        while len(seen) < self.workers:
            with _children_ignore_sigint():
                futures = [self.executor.submit(_ping) for _ in range(self.workers)]
            seen.update(f.result() for f in futures)
        return time.perf_counter() - t0

    def map(self, fn: Task, items: Iterable, then: Task | None = None) -> Iterator:
        run = functools.partial(_run, fn, then)
        it = iter(items)
        pending = set()
        for item in it:
            with _children_ignore_sigint():  # the first submits start the workers
                pending.add(self.executor.submit(run, item))
            if len(pending) >= 2 * self.workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
                nxt = next(it, None)
                if nxt is not None:
                    with _children_ignore_sigint():
                        pending.add(self.executor.submit(run, nxt))

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def terminate(self) -> None:
        """End the workers now (they ignore SIGINT: see :func:`_children_ignore_sigint`)."""
        for p in list((getattr(self.executor, "_processes", None) or {}).values()):
            p.terminate()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self.terminate()
        self.shutdown()
