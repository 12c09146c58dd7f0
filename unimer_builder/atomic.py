"""Every write that must never be seen half-done: a file is written beside its place and renamed over it;
a folder (``data/``) is staged beside its place and swapped in with two renames.

Data reach the disk before their rename does (``fsync`` of the file, then of its folder), so that a crash of
the machine, not only of the process, leaves the old file or the new one. A process killed between the two
renames of :func:`swap_in` leaves the folder under its ``.old`` name and no folder at its place:
:func:`repair_swap` (run by every build first) puts it back.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _beside(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def remove_temporaries(folder: Path | str) -> None:
    """The temporary files that killed writers left in ``folder`` (``.<name>.tmp-<pid>``); call it only where
    no other process writes (the build holds the folder's lock)."""
    for stale in Path(folder).glob(".*.tmp-*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)


def fsync_path(path: Path | str) -> None:
    """Flush a file's (or a folder's) data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path | str) -> None:
    """Every file in ``folder`` (not below), then the folder itself."""
    for p in Path(folder).iterdir():
        if p.is_file():
            fsync_path(p)
    fsync_path(folder)


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; flushed to disk and renamed over ``path`` when the block
    succeeds."""
    path = Path(path)
    tmp = _beside(path, "tmp")
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path | str, data: bytes) -> Path:
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: Path | str, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: Path | str, obj, **dumps) -> Path:
    """``obj`` as JSON (``indent=2`` unless ``dumps`` says otherwise), newline-terminated."""
    return write_text(path, json.dumps(obj, **{"indent": 2, "default": str, **dumps}) + "\n")


@contextmanager
def staged_folder(dest: Path | str) -> Iterator[Path]:
    """An empty staging folder beside ``dest`` (removed at the end, whatever happens); fill it and
    :func:`swap_in` it. Staging folders left by an interrupted earlier run are removed first."""
    dest = Path(dest)
    for stale in dest.parent.glob(f".{dest.name}.tmp-*") if dest.parent.is_dir() else ():
        shutil.rmtree(stale, ignore_errors=True)
    staging = _beside(dest, "tmp")
    staging.mkdir(parents=True)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def repair_swap(dest: Path | str, staging: bool = False) -> str | None:
    """Undo what a kill during :func:`swap_in` left: with no ``dest`` but an ``.old`` copy, the copy goes back
    (the last complete set); ``.old`` copies beside a ``dest`` are removed, and with ``staging`` the staging
    folders of killed runs too (only where no other run can be staging: the folder is locked). Returns what
    was done, if anything."""
    dest = Path(dest)
    if not dest.parent.is_dir():
        return None
    if staging:
        for stale in dest.parent.glob(f".{dest.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
    olds = sorted(dest.parent.glob(f".{dest.name}.old-*"), key=lambda p: p.stat().st_mtime_ns)
    done = None
    if olds and not dest.exists():
        os.rename(olds.pop(), dest)
        fsync_path(dest.parent)
        done = f"{dest}: restored from an interrupted swap"
    for stale in olds:
        shutil.rmtree(stale, ignore_errors=True)
    return done


def swap_in(staging: Path, dest: Path | str) -> Path:
    """Replace the folder ``dest`` by ``staging`` with two renames (the old one is removed after). The staged
    files are flushed to disk first."""
    dest = Path(dest)
    repair_swap(dest)
    fsync_tree(staging)
    old = _beside(dest, "old")
    if dest.exists():
        os.rename(dest, old)
    os.rename(staging, dest)
    fsync_path(dest.parent)
    shutil.rmtree(old, ignore_errors=True)
    return dest
