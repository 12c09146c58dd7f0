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


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_terminate_signal_ends_the_build_as_ctrl_c_does(tmp_path, sig):
    """SIGTERM (a batch scheduler's time limit, `timeout`) or SIGHUP (a closed terminal) killed the build without a
    word, its workers' semaphores leaked; now the build ends as on Ctrl-C: a line saying how to resume, exit 128 +
    the signal, and the same command finishes the build."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = synthesize(tmp_path / "src", "casme2", clips=3, subjects=1, seed=5, frames=8)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "unimer_builder.cli", "build", str(root), "--out", str(out), "--workers", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 120
    while not (out / ".parts").is_dir() and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()[0]  # still building
    p.send_signal(getattr(signal, sig))
    said = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + getattr(signal, sig), said
    assert f"interrupted by {sig}" in " ".join(said.split()) and "run the same command again" in said
    assert "leaked" not in said and "Traceback" not in said
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
