"""The output folder of a build: made, checked writable, locked, and repaired before any work.

One build at a time per folder: :func:`claim` takes an advisory lock (``fcntl.flock``) on
``OUT/.unimer.lock`` for the whole build and writes the holder (pid, host, start time) into it, so a second
build exits at once naming the first instead of deleting its parts. The kernel drops the lock when the
holder exits, however it dies: a lock file left behind is no lock. A folder that holds files but no mark of a
build is refused (:func:`check_ours`, :class:`.errors.UnusableInput`); every other failure here is an
:class:`.errors.EnvironmentFailure` naming the path and the cause.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .atomic import remove_temporaries, repair_swap
from .errors import EnvironmentFailure, UnusableInput
from .state import STATE_NAME

LOCK_NAME = ".unimer.lock"
# What a build leaves in its folder from its first step on (the lock) and at its end (state and report): a folder
# holding none of them and not empty is someone else's, and a build there would replace its data/ and README.md.
BUILD_MARKS = (LOCK_NAME, STATE_NAME, "build_report.json")

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock, one build per folder is the user's care
    fcntl = None


def _holder(lock: Path) -> str:
    try:
        info = json.loads(lock.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("since", 0)))
    return f"pid {info.get('pid')} on {info.get('host')}, since {since}"


def make_folder(out: Path) -> None:
    """``out`` made (with its parents) or an EnvironmentFailure saying why it cannot be."""
    for p in [out, *out.parents]:
        if p.exists() or p.is_symlink():
            if not p.is_dir():
                what = "the output path" if p == out else "a folder above the output path"
                raise EnvironmentFailure(f"{p}: {what} is a file, not a folder", str(p))
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EnvironmentFailure(f"{e.filename or out}: cannot create the output folder: {e.strerror}",
                                 str(out)) from None


def check_ours(out: Path) -> None:
    """:class:`.errors.UnusableInput` where ``out`` holds files but no mark of a build (:data:`BUILD_MARKS`): a
    build replaces ``OUT/data/`` and ``OUT/README.md`` whole, and a project folder (``--out .``, the folder of the
    manifest) keeps its own data/ there (a user's source videos were deleted so)."""
    try:
        entries = sorted(p.name for p in out.iterdir())
    except OSError as e:
        raise EnvironmentFailure(f"{out}: cannot list the output folder: {e.strerror}", str(out)) from None
    if entries and not any(m in entries for m in BUILD_MARKS):
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise UnusableInput(f"{out}: the output folder holds files no build wrote ({shown}); a build replaces its "
                            f"data/ and README.md: choose a new or empty folder, or an earlier build's")


@contextmanager
def claim(out: Path | str) -> Iterator[Path]:
    """Hold ``out`` for one build: made, writable, locked, an interrupted ``data/`` swap repaired."""
    out = Path(out)
    make_folder(out)
    check_ours(out)
    lock = out / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise EnvironmentFailure(f"{out}: cannot write to the output folder: {e.strerror}", str(out)) from None
    held = False
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise EnvironmentFailure(f"{lock}: cannot lock the output folder: {e.strerror}",
                                             str(lock)) from None
                raise EnvironmentFailure(f"{out}: another build is writing into this folder ({_holder(lock)}); "
                                         f"wait for it to finish or choose another --out", str(out)) from None
        held = True
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                      "since": round(time.time())}).encode(), 0)
            repair_swap(out / "data", staging=True)
            remove_temporaries(out)
            if (out / ".parts").is_dir():
                remove_temporaries(out / ".parts")
        except OSError as e:
            raise EnvironmentFailure.from_os(e, str(out)) from None
        yield out
    finally:
        if held:  # the lock file names a running build only; a refused build leaves the holder's name
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
        os.close(fd)  # releases the lock
