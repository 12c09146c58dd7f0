"""What a clip was built from: a fingerprint of its label row and of its frame files.

A part file (and a shard's rows, through the build state) is reused only for the same settings
(:meth:`.config.BuildConfig.fingerprint`) *and* the same inputs: a corrected label, a replaced or re-encoded
frame, or another database with the same clip ids built into the same folder changes the fingerprint,
and the clip is built again. Frame files are keyed by name, size and modification time (``make``'s rule:
a stat per file, no reading); a missing file counts as such, so its return changes the key too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict

from .records import Clip

# Clip fields that are where the row was found, not what it says: a row moved down the sheet, or a
# database moved to another folder, builds the same rows.
_NOT_LABEL = {"frames", "source_file", "source_row", "video", "aus"}


def _stat(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


def label_record(clip: Clip) -> dict:
    """The clip's label as read: every field of the row that decides its rows (the parsed AUs follow from
    ``au_text`` and the builder's version, which the settings fingerprint covers)."""
    return {k: v for k, v in asdict(clip).items() if k not in _NOT_LABEL}


def clip_inputs(clip: Clip) -> str:
    """16 hex digits over the label row and the frame files (number, name, size, mtime) or the video file."""
    h = hashlib.sha256(json.dumps(label_record(clip), sort_keys=True, default=str).encode())
    if clip.video:
        h.update(json.dumps(["video", os.path.basename(clip.video), *_stat(clip.video)]).encode())
    for n in sorted(clip.frames):
        path = clip.frames[n]
        h.update(f"{n}\0{os.path.basename(path)}\0{_stat(path)}\n".encode())
    return h.hexdigest()[:16]
