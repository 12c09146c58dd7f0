"""Issue 10, "What it must show": kill -9 at random moments, an input changed before the re-run, the same
output as an uninterrupted build (a small version; ``bench/kills.py`` runs the full one, >= 10 kills)."""

from __future__ import annotations

import shutil

import pytest

from unimer_builder import synthesize
from unimer_builder.validation.kills import kill_and_resume


@pytest.mark.slow
def test_kills_at_random_moments_then_a_changed_label_give_the_uninterrupted_output(tmp_path):
    root = synthesize(tmp_path / "src", "casme2", clips=2, subjects=1, seed=5, frames=8)
    res = kill_and_resume(root, tmp_path / "work", kills=3, workers=1, seed=1)
    print(res)
    assert res["ok"], res
    assert res["done_before_change"] >= 1
    shutil.rmtree(tmp_path / "work")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie has ended: only its parent has not reaped it yet
        return f.read().split(") ", 1)[1][0] != "Z"


def test_a_ctrl_c_reaches_the_build_not_its_workers():
    """A Ctrl-C reaches the terminal's whole process group; workers still importing printed a KeyboardInterrupt
    traceback each under the build's one-line message. They start with SIGINT ignored, and the parent ends
    them (WorkerPool.terminate, on its way out of the interrupted build). The test's own process gets Python's
    Ctrl-C handler first: a process started in the background of a non-interactive shell (a CI runner's) begins
    with SIGINT ignored, which its workers would inherit whatever the pool does."""
    import os
    import signal
    import time

    from unimer_builder.executors import WorkerPool

    runner = signal.signal(signal.SIGINT, signal.default_int_handler)
    pool = WorkerPool(2)
    try:
        pool.start()
        pids = [p.pid for p in pool.executor._processes.values()]
        assert len(pids) == 2
        for pid in pids:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        assert all(_alive(pid) for pid in pids)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the parent's own is back
        pool.terminate()
        deadline = time.time() + 10
        while any(_alive(pid) for pid in pids) and time.time() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)
    finally:
        pool.shutdown()
        signal.signal(signal.SIGINT, runner)
