"""The part store: one small Parquet file per clip, settings and inputs: the resume state of a build.

``OUT/.parts/<sha256(clip_id)[:20]>-<settings>-<inputs>.parquet`` holds one clip's rows (:data:`shards.SCHEMA`,
possibly none: a clip the policy dropped, or one that was skipped) and, in its metadata, the clip's summary
for the report (or the skip). ``settings`` is :meth:`BuildConfig.fingerprint`, ``inputs`` the clip's
:func:`.inputs.clip_inputs`. A clip has at most one part at a time: writing a part removes the clip's other
parts, so a part of other settings or inputs never reaches the shards. A build that finds a clip's part of
its own settings and inputs computes nothing for it again: that is how a killed build resumes. A part that
cannot be read (zero length, truncated, damaged) counts as missing: it is removed and the clip built again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import labels
from .atomic import replacing
from .face import interocular
from .records import Clip, ClipSummary, Face, Skip
from .shards import COMPRESSION, read_shard, rows_to_table

META_KEY = b"unimer"  # the part's own metadata: clip_id, fingerprint, flow_size (and summary or skip)


def clip_key(clip_id: str) -> str:
    return hashlib.sha256(clip_id.encode()).hexdigest()[:20]


def part_path(parts_dir: Path | str, clip_id: str, fingerprint: str) -> Path:
    return Path(parts_dir) / f"{clip_key(clip_id)}-{fingerprint}.parquet"


def clip_parts(parts_dir: Path | str, clip_id: str) -> list[Path]:
    """Every part file of the clip, whatever its settings and inputs."""
    return sorted(Path(parts_dir).glob(f"{clip_key(clip_id)}-*.parquet"))


def write_part(parts_dir: Path | str, clip_id: str, rows: list[dict] | pa.Table, fingerprint: str,
               extra: dict | None = None) -> Path:
    """Write one clip's rows (possibly none) atomically, ``extra`` added to its metadata; remove the clip's
    other parts."""
    parts_dir = Path(parts_dir)
    parts_dir.mkdir(parents=True, exist_ok=True)
    path = part_path(parts_dir, clip_id, fingerprint)
    table = rows if isinstance(rows, pa.Table) else rows_to_table(rows)
    flow_size = None
    if table.num_rows:
        first = table.column("flow").slice(0, 1).to_pylist()[0] if isinstance(rows, pa.Table) else rows[0]["flow"]
        flow_size = int(np.asarray(first).shape[-1])
    meta = {"clip_id": clip_id, "fingerprint": fingerprint, "flow_size": flow_size, **(extra or {})}
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True).encode()})
    with replacing(path) as tmp:
        # No dictionary encoding in parts: a part holds one clip (a few rows), so dictionaries buy nothing
        # that zstd does not, and skipping them makes the write ~25 % cheaper. The table read back, and so
        # every shard, is the same either way.
        pq.write_table(table, tmp, compression=COMPRESSION, use_dictionary=False)
    for stale in clip_parts(parts_dir, clip_id):
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
    found = sorted(clip_parts(parts_dir, clip_id), key=lambda p: (p.stat().st_mtime_ns, p.name))
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


def summarize(clip: Clip, face: Face | None = None, notes: Sequence[str] = (), times: Mapping[int, float] | None = None,
              **fields) -> ClipSummary:
    """A clip's summary, its duration taken from its labelled frames (``face``: its measured alignment;
    ``notes``: what reading its frames found, :attr:`.sources.frames.FrameReader.notes`; ``times``: their
    timestamps, ``Evidence.times``)."""
    return ClipSummary(clip_id=clip.clip_id, database=clip.database,
                       duration_s=labels.duration_s(clip.onset, clip.offset, clip.fps, times),
                       duration_class=labels.duration_class(clip.onset, clip.apex, clip.offset, clip.fps, times),
                       label_notes=[*clip.extra.get("label_fixes", []), *clip.extra.get("label_notes", []),
                                    *_gaps(clip), *notes, *_other_faces(clip, face), *_found_nearby(clip, face),
                                    *_small_face(face)],
                       **fields)


def _other_faces(clip: Clip, face: Face | None) -> list[str]:
    """A note where the onset frame holds more than one face: the largest is measured, which is the subject's
    in a MER recording but may not be in a user's own video (a second person, a face on a poster)."""
    if face is None or face.others <= 0:
        return []
    x, y, w, h = face.box
    at = f"onset frame {clip.onset}" if face.found_in is None else f"frame {face.found_in} (the onset's face was " \
        "located there)"
    return [f"{face.others + 1} faces in {at}: the largest ({w}x{h} px at {x},{y}) was measured"]


def _found_nearby(clip: Clip, face: Face | None) -> list[str]:
    """A note where the detector found no face in the onset frame and a later frame's box was carried back."""
    if face is None or face.found_in is None:
        return []
    return [f"no face detected in onset frame {clip.onset}: located in frame {face.found_in} and its box carried "
            f"back to the onset"]


SMALL_FACE = 2.0  # crop px per frame px above which a face is called small (its eyes < 40 px apart at 224 px)


def _small_face(face: Face | None) -> list[str]:
    """A note where the crop enlarges the face more than ``SMALL_FACE`` times: its motion is then measured on
    interpolated pixels, and a micro-expression's fraction of a frame pixel is not in the video at all."""
    if face is None:
        return []
    k = face.enlargement
    if k <= SMALL_FACE:
        return []
    return [f"the face is small in the frame (eyes {interocular(face.landmarks) / k:.0f} px apart): the "
            f"{face.size} px crop enlarges it {k:.1f} times, so motion under {k:.1f} crop px is under one pixel of "
            f"the video"]


def _gaps(clip: Clip) -> list[str]:
    """A note on frame files missing inside a folder clip's onset..offset (the stack and the timing curves use
    their nearest neighbours instead; a missing onset or apex already skips the clip)."""
    if not clip.frames or clip.offset is None:
        return []
    missing = [n for n in range(clip.onset, clip.offset + 1) if n not in clip.frames]
    if not missing:
        return []
    runs: list[list[int]] = []
    for n in missing:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    text = ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)
    return [f"frame{'s' if len(missing) > 1 else ''} {text} missing inside onset..offset ({clip.onset}..{clip.offset}): "
            f"{len(missing)} of {clip.offset - clip.onset + 1}, their nearest frames stand in for them"]


def summary_record(s: ClipSummary) -> dict:
    """A summary as JSON keeps it (timings are this run's, not the clip's)."""
    d = asdict(s)
    d.pop("timings")
    d.pop("resumed")
    return d


def summary_of_record(d: dict) -> ClipSummary:
    """:func:`summary_record` read back, marked resumed."""
    return ClipSummary(**{**d, "verdicts": [tuple(v) for v in d["verdicts"]],
                          "sources": [tuple(v) for v in d["sources"]], "resumed": True})


def outcome_record(outcome: ClipSummary | Skip) -> dict:
    return {"skip": asdict(outcome)} if isinstance(outcome, Skip) else {"summary": summary_record(outcome)}


def outcome_of_record(d: dict) -> ClipSummary | Skip:
    return Skip(**d["skip"]) if "skip" in d else summary_of_record(d["summary"])


@dataclass
class PartStore:
    """One build's parts: the folder and the settings' fingerprint. Plain and picklable, so a worker
    process (or, later, a remote one on shared storage) writes its clips' parts itself. ``damaged`` lists
    the parts this process found unreadable (and removed)."""

    folder: Path
    fingerprint: str
    damaged: list[str] = field(default_factory=list)

    def key(self, inputs: str) -> str:
        return f"{self.fingerprint}-{inputs}"

    def path(self, clip_id: str, inputs: str) -> Path:
        return part_path(self.folder, clip_id, self.key(inputs))

    def write(self, clip_id: str, inputs: str, rows: list[dict] | pa.Table, outcome: ClipSummary | Skip) -> Path:
        """The clip's rows with its summary (or an empty part holding its skip, so that a resumed build does
        not measure it again)."""
        return write_part(self.folder, clip_id, rows, self.key(inputs), outcome_record(outcome))

    def load(self, clip_id: str, inputs: str) -> ClipSummary | Skip | None:
        """The clip's outcome from its part of these settings and inputs; None when there is none, or when it
        cannot be read (then it is removed and the clip noted in ``damaged``)."""
        p = self.path(clip_id, inputs)
        if not p.exists():
            return None
        try:
            meta = part_meta(p)
            outcome = outcome_of_record(meta)
            read_shard(p)  # every page decodes: the shards will read it all
            if meta["rows"] != getattr(outcome, "rows", 0):
                raise ValueError(f"{meta['rows']} rows, the summary says {getattr(outcome, 'rows', 0)}")
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException):
            p.unlink(missing_ok=True)
            self.damaged.append(clip_id)
            return None
        return outcome

    def other_inputs(self, clip_id: str, inputs: str) -> bool:
        """Whether the clip has a part of these settings made from other inputs (its input changed)."""
        prefix = f"{clip_key(clip_id)}-{self.fingerprint}-"
        return any(p.name.startswith(prefix) and p != self.path(clip_id, inputs)
                   for p in clip_parts(self.folder, clip_id))

    def files(self) -> Iterator[Path]:
        return iter(sorted(self.folder.glob("*.parquet")))
