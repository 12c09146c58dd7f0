"""A user's own clips, listed in ``manifest.csv`` (or ``manifest.parquet``).

Columns: ``path`` (required: a folder of frames or a video file, relative to the manifest's folder or
absolute), ``onset`` (required), and optionally ``apex``, ``offset``, ``aus``, ``emotion``, ``subject``,
``clip``, ``fps``; any other column is kept in ``Clip.extra`` (not written to the shards). In a folder, each
file's frame number is the last run of digits in its name (natural sort); a video's frames are numbered from 0.
Defaults: subject = the parent folder's name, clip = the folder or file stem, offset = the last
frame of a folder (a video's stays unknown until decoded), apex estimated from motion, fps = the rate a
video file declares (a folder's stays unknown: its duration, and whether it is a micro-expression, too).
Row numbers in messages count the header as row 1, as a spreadsheet program shows the CSV.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from ..errors import UnusableInput
from ..records import Clip, ParsedAUs, Skip, SynthClip, clip_id
from . import _common as c
from ._layout import write_frame

DATABASE = "manifest"
NAMES = ("manifest.csv", "manifest.parquet")
COLUMNS = ("path", "onset", "apex", "offset", "aus", "emotion", "subject", "clip", "fps")
REQUIRED = ("path", "onset")


def find_manifest(root: Path) -> Path | None:
    root = Path(root)
    if root.is_file():
        return root if root.suffix.lower() in (".csv", ".parquet") else None
    for name in NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as e:  # noqa: BLE001 - an unreadable manifest makes the input unusable
        raise UnusableInput(f"{path}: cannot read the manifest ({type(e).__name__}: {e})") from e
    df.columns = [str(col).strip().lower() for col in df.columns]
    for col in REQUIRED:
        if col not in df.columns:
            raise UnusableInput(f"{path}: the manifest has no column {col!r} (columns found: "
                                f"{', '.join(df.columns)}); required: {', '.join(REQUIRED)}")
    return df.to_dict("records")


def read(root: Path) -> Iterator[Clip | Skip]:
    root = c.require_root(Path(root), "manifest")
    path = find_manifest(root)
    if path is None:
        raise UnusableInput(f"{root}: no manifest.csv or manifest.parquet")
    records = _load(path)
    return c.dedupe(_rows(path, records))


def _rows(path: Path, records: list[dict[str, Any]]) -> Iterator[Clip | Skip]:
    base = Path(path).resolve().parent
    file = str(path)
    names = {k: k for k in COLUMNS}
    for i, rec in enumerate(records):
        rownum = i + 2  # row 1 is the header
        if all(c.is_blank(v) for v in rec.values()):
            continue
        raw_path = c.text(rec.get("path"))
        target = None if raw_path is None else (Path(raw_path) if Path(raw_path).is_absolute()
                                                else base / raw_path)
        subject = c.text(rec.get("subject")) or (target.parent.name if target else "")
        clip = c.text(rec.get("clip")) or (
            (target.name if target.is_dir() else target.stem) if target else "")
        r = c.Row(DATABASE, file, rownum, clip_id(DATABASE, subject, clip))
        if target is None:
            yield r.skip("bad_label", "the path of the clip is missing", "path")
            continue
        if not target.exists():
            yield r.skip("missing_path", f"{target} does not exist", "path")
            continue
        is_video = target.is_file()
        if is_video and target.suffix.lower() not in c.VIDEO_EXTS:
            yield r.skip("bad_label", f"{target} is neither a folder of frames nor a video file "
                                      f"({', '.join(sorted(c.VIDEO_EXTS))})", "path")
            continue
        marks = c.parse_frames(r, rec, names, need_offset=False)
        if isinstance(marks, Skip):
            yield marks
            continue
        onset, apex, offset = marks
        au = c.parse_au_cell(r, rec.get("aus"), "aus") if not c.is_blank(rec.get("aus")) else (None, ParsedAUs())
        if isinstance(au, Skip):
            yield au
            continue
        au_text, aus = au
        fps = None
        if not c.is_blank(rec.get("fps")):
            try:
                fps = float(rec["fps"])
                if not fps > 0:
                    raise ValueError(fps)
            except (TypeError, ValueError):
                yield r.skip("bad_label", f"fps {rec['fps']!r} is not a positive number", "fps")
                continue
        frames: dict[int, str] = {}
        video = None
        defaulted = False
        if is_video:
            video = str(target.resolve())
            bad = check_video_marks(r, onset, apex, offset)
            if fps is None:
                fps = container_fps(target)
        else:
            frames = c.list_frames(target)
            defaulted = offset is None and bool(frames)
            if defaulted:
                offset = max(frames)
            bad = c.check_frames(r, frames, target, onset, apex, offset, names)
        if bad is not None:
            yield bad
            continue
        extra = {k: c.text(v) for k, v in rec.items() if k not in COLUMNS and not c.is_blank(v)}
        if defaulted:
            extra["offset_defaulted"] = True
        notes = c.unparsed_note("aus", au_text, aus)
        if notes:
            extra["label_notes"] = notes
        yield Clip(
            database=DATABASE, subject=subject, clip=clip, onset=onset, apex=apex, offset=offset,
            frames=frames, video=video, emotion=c.text(rec.get("emotion")), au_text=au_text, aus=aus,
            fps=fps, source_file=file, source_row=rownum, extra=extra,
        )


# Above this a declared rate is more likely a container's time base (WebM and variable-rate files report 1000)
# than a camera's: MER cameras run at 25-200 fps (SMIC 100, CASME II and SAMM 200), phones' slow motion at 240-480.
MAX_DECLARED_FPS = 500.0


def container_fps(video: Path) -> float | None:
    """The frame rate a video file declares (its header; nothing is decoded), or None where it declares none
    or an implausible one (``MAX_DECLARED_FPS``): a window's duration, and whether it is a micro-expression,
    depend on it; give the ``fps`` column where the file's rate is not the camera's."""
    cap = cv2.VideoCapture(str(video))
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
    finally:
        cap.release()
    return round(fps, 3) if 1.0 <= fps <= MAX_DECLARED_FPS else None


def check_video_marks(r: c.Row, onset: int, apex: int | None, offset: int | None) -> Skip | None:
    """A video is only checked for existence here; its frame count is known once it is decoded."""
    if onset < 0:
        return r.skip("frames_out_of_range", f"onset frame {onset} is negative (video frames count from 0)",
                      "onset")
    if offset is not None and offset < onset:
        return r.skip("frames_out_of_range", f"offset frame {offset} comes before onset frame {onset}",
                      "offset")
    if apex is not None and (apex < onset or (offset is not None and apex > offset)):
        return r.skip("frames_out_of_range",
                      f"apex frame {apex} is not between onset {onset} and offset {offset}", "apex")
    return None


def write(root: Path, clips: list[SynthClip]) -> list[str]:
    """``manifest.csv`` + ``clips/S<NN>/c<ii>/<n:04d>.png`` (relative paths)."""
    root = Path(root)
    rows, ids = [], []
    for s in clips:
        subject, name = f"S{s.subject:02d}", f"c{s.index:02d}"
        rel = Path("clips") / subject / name
        for i, img in enumerate(s.frames):
            write_frame(root / rel / f"{s.first_frame + i:04d}.png", img, s.jpeg_quality)
        rows.append({"path": rel.as_posix(), "onset": s.onset, "apex": s.apex, "offset": s.offset,
                     "aus": s.au_text or "", "emotion": s.emotion, "subject": subject, "clip": name,
                     "fps": s.fps})
        ids.append(clip_id(DATABASE, subject, name))
    root.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(root / "manifest.csv", index=False)
    return ids
