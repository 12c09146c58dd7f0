"""Atomic writes: a reader sees the old file (or folder) or the new one, never a half-written one.

Everything the builder writes goes through here: a file is written beside its target under a hidden
temporary name and renamed over it (``os.replace`` is atomic on one file system); a folder is filled under a
staging name and swapped in with two renames. A failure leaves the target as it was and no temporary behind.
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


@contextmanager
def replacing(path: Path | str) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed over ``path`` when the block succeeds."""
    path = Path(path)
    tmp = _beside(path, "tmp")
    try:
        yield tmp
        os.replace(tmp, path)
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


def swap_in(staging: Path, dest: Path | str) -> Path:
    """Replace the folder ``dest`` by ``staging`` with two renames (the old one is removed after)."""
    dest = Path(dest)
    for stale in dest.parent.glob(f".{dest.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)
    old = _beside(dest, "old")
    if dest.exists():
        os.rename(dest, old)
    os.rename(staging, dest)
    shutil.rmtree(old, ignore_errors=True)
    return dest
