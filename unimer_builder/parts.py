"""The part store: one small Parquet file per clip and settings, the resume state of a build.

``OUT/.parts/<sha256(clip_id)[:20]>-<fingerprint>.parquet`` holds one clip's rows (:data:`shards.SCHEMA`,
possibly none: a clip the policy dropped). A clip has at most one part at a time: writing a part removes
the clip's parts of other settings, so a part of other settings never reaches the shards. A build that
finds a clip's part of its own fingerprint computes nothing for it again: that is how a killed build
resumes, and its report is rebuilt from the part's columns (:meth:`PartStore.summary`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from . import labels
from .atomic import replacing
from .records import Clip, ClipSummary
from .shards import COMPRESSION, rows_to_table

META_KEY = b"unimer"  # the part's own metadata: clip_id, fingerprint, flow_size


def clip_key(clip_id: str) -> str:
    return hashlib.sha256(clip_id.encode()).hexdigest()[:20]


def part_path(parts_dir: Path | str, clip_id: str, fingerprint: str) -> Path:
    return Path(parts_dir) / f"{clip_key(clip_id)}-{fingerprint}.parquet"


def write_part(parts_dir: Path | str, clip_id: str, rows: list[dict], fingerprint: str) -> Path:
    """Write one clip's rows (possibly none: a dropped clip) atomically; remove its stale parts."""
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    path = part_path(parts_dir, clip_id, fingerprint)
    table = rows_to_table(rows)
    flow_size = int(np.asarray(rows[0]["flow"]).shape[-1]) if rows else None
    meta = {"clip_id": clip_id, "fingerprint": fingerprint, "flow_size": flow_size}
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})
    with replacing(path) as tmp:
        # No dictionary encoding in parts: a part holds one clip (a few rows), so dictionaries buy nothing
        # that zstd does not, and skipping them makes the write ~25 % cheaper. The table read back, and so
        # every shard, is the same either way.
        pq.write_table(table, tmp, compression=COMPRESSION, use_dictionary=False)
    for stale in parts_dir.glob(f"{clip_key(clip_id)}-*.parquet"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return path


def find_part(parts_dir: Path | str, clip_id: str, fingerprint: str | None) -> Path:
    """The clip's part of ``fingerprint`` (or, with None, its newest part); ``FileNotFoundError`` if none."""
    parts_dir = Path(parts_dir)
    if fingerprint is not None:
        p = part_path(parts_dir, clip_id, fingerprint)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no part file for clip {clip_id!r} (settings {fingerprint})")
        return p
    found = sorted(parts_dir.glob(f"{clip_key(clip_id)}-*.parquet"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    if not found:
        raise FileNotFoundError(f"{parts_dir}: no part file for clip {clip_id!r}")
    return found[-1]  # several only after an interrupted write_part: the newest is the current one


def part_meta(path: Path) -> dict:
    """A part's own metadata plus its ``rows`` and uncompressed ``bytes``, from the footer alone."""
    md = pq.read_metadata(path)
    kv = md.metadata or {}
    meta = json.loads(kv[META_KEY]) if META_KEY in kv else {}
    meta["rows"] = md.num_rows
    meta["bytes"] = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    return meta


def summarize(clip: Clip, **fields) -> ClipSummary:
    """A clip's summary, its duration taken from its labelled frames."""
    return ClipSummary(clip_id=clip.clip_id, database=clip.database,
                       duration_s=labels.duration_s(clip.onset, clip.offset, clip.fps),
                       duration_class=labels.duration_class(clip.onset, clip.apex, clip.offset, clip.fps), **fields)


def summary_from_part(path: Path, clip: Clip) -> ClipSummary:
    """Rebuild a clip's summary from its part file (a resumed build computes nothing again)."""
    cols = ["clip_id", "flagged", "aus_source", "apex_source", "verdicts", "unexplained", "au_sources"]
    t = pq.read_table(path, columns=cols)
    if t.num_rows == 0:
        return summarize(clip, rows=0, flagged=True, dropped=True, aus_source="label", apex_source="label",
                              resumed=True)
    r = t.slice(0, 1).to_pylist()[0]
    return summarize(
        clip, rows=t.num_rows, flagged=bool(r["flagged"]), dropped=False,
        aus_source=r["aus_source"], apex_source=r["apex_source"],
        verdicts=[(v["au"], v["verdict"]) for v in r["verdicts"]],
        unexplained=[u["au"] for u in r["unexplained"]], resumed=True,
        sources=[(s["au"], s["labelled"], s["said_by"], s["agreement"]) for s in r["au_sources"]],
    )


@dataclass(frozen=True)
class PartStore:
    """One build's parts: the folder and the settings' fingerprint. Plain and picklable, so a worker
    process (or, later, a remote one on shared storage) writes its clips' parts itself."""

    folder: Path
    fingerprint: str

    def path(self, clip_id: str) -> Path:
        return part_path(self.folder, clip_id, self.fingerprint)

    def has(self, clip_id: str) -> bool:
        return self.path(clip_id).exists()

    def write(self, clip_id: str, rows: list[dict]) -> Path:
        return write_part(self.folder, clip_id, rows, self.fingerprint)

    def summary(self, clip: Clip) -> ClipSummary:
        return summary_from_part(self.path(clip.clip_id), clip)
