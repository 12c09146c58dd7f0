"""Database readers (label sheet + frame folders -> ``Clip``/``Skip``) and the matching layout writers.

``read_clips(root, fmt)`` yields a :class:`~unimer_builder.records.Clip` for every usable row and a
:class:`~unimer_builder.records.Skip` (file, row, field, reason) for every row that is not; it raises
:class:`~unimer_builder.errors.UnusableInput` only when the whole input cannot be used (no root, no
label sheet, a sheet missing a required column). ``write_layout`` writes synthetic clips in a
database's real on-disk layout and returns the clip ids ``read_clips`` will give them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, UnusableInput
from ..records import Clip, Skip
from . import _common, casme2, casme3, manifest, samm, smic
from ._common import VIDEO_EXTS, Row, check_frames, find_files, list_frames, locate_sheet

MODULES = {"casme2": casme2, "samm": samm, "smic": smic, "casme3": casme3, "manifest": manifest}
FORMATS = tuple(MODULES)


def _module(fmt: str):
    if fmt not in MODULES:
        raise UnusableInput(f"unknown database format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return MODULES[fmt]


def read_clips(root: Path | str, fmt: str) -> Iterator[Clip | Skip]:
    """Clips and skips of the database at ``root`` in the sheet's row order (folders: natural sort)."""
    if fmt != "manifest":
        return _module(fmt).read(Path(root))
    try:
        return manifest.read(Path(root))
    except UnusableInput:
        table = manifest.find_manifest(Path(root)) if Path(root).exists() else None
        sheet = None if table is None else database_sheet(table)
        if sheet is None:
            raise
        raise UnusableInput(f"{table}: {sheet}") from None


def database_sheet(table: Path) -> str | None:
    """What to say of a table that fails as a manifest and is a database's label sheet by its columns: a copy
    under another name (HTNet's ``cas(me)3_part_A_edited.csv``: Subject, Filename, Onset, ...) was told to rename
    its columns "'Filename' (probably 'path')", CAS(ME)^3 Part C's to rename 'sub'. The database is the one whose
    own spellings the header uses most (CASME II and SAMM spell theirs alike: both are named); a header with a
    ``path`` column is a manifest's."""
    if _common.table_header(table, [("path",)]) is not None:  # a manifest, whatever else its columns are called
        return None
    if casme3.part_c_sheet(table) is not None:
        return casme3.PART_C_UNREAD
    norm = _common.norm_col
    found: dict[str, tuple[int, str, list[str]]] = {}  # format -> (own spellings used, name, the columns it read)
    for fmt, mod, what in (("casme2", casme2, "CASME II"), ("samm", samm, "SAMM"), ("casme3", casme3, "CAS(ME)^3")):
        header = _common.table_header(table, mod.REQUIRED.values())
        if header is None or "path" in map(norm, header):
            continue
        keys = set(map(norm, header))
        cols = [next(h for h in header if norm(h) in set(map(norm, aliases))) for aliases in mod.REQUIRED.values()]
        found[fmt] = (sum(norm(aliases[0]) in keys for aliases in mod.REQUIRED.values()), what, cols)
    if not found:
        return None
    best = max(n for n, _, _ in found.values())
    fmts = [f for f, (n, _, _) in found.items() if n == best]
    return (f"not a manifest but a {' or '.join(found[f][1] for f in fmts)} label sheet by its columns "
            f"({', '.join(found[fmts[0]][2])}): build it with {' or '.join(f'--format {f}' for f in fmts)} (its "
            f"folder holds the frames)")


def write_layout(root: Path | str, fmt: str, clips: list) -> list[str]:
    """Write ``clips`` (``records.SynthClip``) in ``fmt``'s real layout; the ids ``read_clips`` gives."""
    return _module(fmt).write(Path(root), list(clips))


def clip_from_folder(folder: Path | str, onset: int | None = None, apex: int | None = None,
                     offset: int | None = None, *, database: str = "manifest", subject: str = "user",
                     fps: float | None = None) -> Clip:
    """A :class:`Clip` over a folder of numbered frames (``img12.jpg``, ``0012.png``), or over a video file
    (frames numbered from 0), range-checked as the readers check a label row. Onset and offset default to the first and last frame; a missing apex
    is estimated from motion. Raises :class:`InputError` naming the folder and the bad field."""
    folder = Path(folder)
    if folder.is_file() and folder.suffix.lower() in VIDEO_EXTS:
        return _clip_from_video(folder, onset, apex, offset, database=database, subject=subject, fps=fps)
    if folder.is_file():
        raise InputError("bad_label", f"{folder} is neither a folder of frames nor a video file "
                         f"({', '.join(sorted(VIDEO_EXTS))})", str(folder))
    if not folder.is_dir():
        what = "video file" if folder.suffix.lower() in VIDEO_EXTS else "clip folder"
        raise InputError("missing_frame", f"{what} {folder} does not exist", str(folder))
    frames = list_frames(folder)
    if not frames:
        raise InputError("missing_frame", f"clip folder {folder} holds no numbered image frames (e.g. img12.jpg)",
                         str(folder))
    onset = min(frames) if onset is None else int(onset)
    offset = max(frames) if offset is None else int(offset)
    row = Row(database=database, file=str(folder), row=None, id=str(folder))
    skip = check_frames(row, frames, folder, onset, apex, offset,
                        {"onset": "onset", "apex": "apex", "offset": "offset"})
    if skip is not None:
        err = InputError(skip.reason, skip.message)  # the message already names folder and field
        err.file, err.row, err.field = skip.file, skip.row, skip.field
        raise err
    return Clip(database=database, subject=subject, clip=folder.name, onset=onset,
                apex=None if apex == onset else apex, offset=offset, frames=frames, fps=fps, source_file=str(folder))


def _clip_from_video(video: Path, onset: int | None, apex: int | None, offset: int | None, *, database: str,
                     subject: str, fps: float | None) -> Clip:
    """A :class:`Clip` over a video file, frames numbered from 0 (as a manifest row's): onset defaults to 0,
    the offset to the video's last frame (known once decoded), the rate to the one the file declares."""
    onset = 0 if onset is None else int(onset)
    row = Row(database=database, file=str(video), row=None, id=str(video))
    skip = manifest.check_video_marks(row, onset, apex, offset)
    if skip is not None:
        err = InputError(skip.reason, skip.message)
        err.file, err.row, err.field = skip.file, skip.row, skip.field
        raise err
    return Clip(database=database, subject=subject, clip=video.stem, onset=onset, apex=None if apex == onset else apex,
                offset=offset, video=str(video.resolve()), fps=fps or manifest.container_fps(video),
                source_file=str(video))


def subjects_note(fmt: str, clips: list[Clip], built: set[str]) -> list[str]:
    """A build note where the clips built (``built``: ids; more than one) are all of one subject:
    leave-one-subject-out evaluation then has no subject to hold out, and a manifest without a ``subject``
    column over a flat folder of videos made them one subject (the folder's name) without a word. Other
    subjects among ``clips`` (read, then skipped as they were measured) are named as the cause."""
    done = [c for c in clips if c.clip_id in built]
    subjects = {c.subject for c in done}
    if len(done) < 2 or len(subjects) != 1:
        return []
    others = sorted({c.subject for c in clips} - subjects)
    how = (f"the clips of {', '.join(map(repr, others[:5]))}{' ...' if len(others) > 5 else ''} were all skipped "
           f"(build_report.json says why)" if others else
           "give each row its subject in the manifest's `subject` column, or put each subject's videos or "
           "frame folders in a folder of their own (a clip's subject is otherwise the name of the folder "
           "holding it)" if fmt == "manifest" else "its folders hold no other subject" if fmt == "smic" else
           "the label sheet names no other subject")
    return [f"every clip ({len(done)}) is of one subject, {subjects.pop()!r}: leave-one-subject-out "
            f"evaluation (deft evaluate --protocol loso) has no other subject to train on; {how}"]


def label_file(root: Path | str, fmt: str) -> Path | None:
    """The file whose rows gave the clips: the label sheet (:func:`._common.locate_sheet`) or the manifest; None for
    SMIC, whose folders are its labels."""
    root = Path(root)
    if fmt == "manifest":
        return manifest.find_manifest(root)
    mod = _module(fmt)
    find = getattr(mod, "find_sheet", None)
    return None if find is None else locate_sheet(root, find)


def provenance(root: Path | str, fmt: str, clips: list[Clip]) -> tuple[dict, list[str]]:
    """What a build read, for its report (paths relative to the root's folder; the report is published): the label
    file and its SHA-256 (copies of a database's sheet drift: CASME II's 2014 and 2019 codings differ in rows), the
    folder that holds the clips' frames, and a note naming the other label sheets present, which were not read."""
    root = Path(root)
    base = (root.parent if root.is_file() else root).resolve()

    def rel(p: Path) -> str:
        p = Path(p).resolve()
        return p.relative_to(base).as_posix() if p == base or base in p.parents else \
            f"../{p.name}" if p.parent == base.parent else p.name

    out: dict = {"label_file": None, "label_sha256": None, "frames": None}
    notes: list[str] = []
    sheet = label_file(root, fmt)
    if sheet is not None and sheet.is_file():
        out["label_file"] = rel(sheet)
        out["label_sha256"] = hashlib.sha256(sheet.read_bytes()).hexdigest()
        pattern = getattr(_module(fmt), "SHEET", None)
        if pattern is not None:
            near = find_files(root, pattern, depth=2) if root.is_dir() else []
            near += find_files(sheet.parent, pattern, depth=0)  # beside the sheet read (given, or beside the root)
            others = list({p.resolve(): p for p in near if p.resolve() != sheet.resolve()}.values())
            if others:
                notes.append(f"the label sheet read is {rel(sheet)}; also present, not read: "
                             f"{', '.join(rel(p) for p in others[:4])}{' ...' if len(others) > 4 else ''} (give the "
                             f"sheet itself as the root to read another; its folder holds the frames)")
    folders = [Path(c.video).parent if c.video else Path(next(iter(c.frames.values()))).parent.parent
               for c in clips if c.video or c.frames]
    if folders:
        try:
            out["frames"] = rel(Path(os.path.commonpath([str(f.resolve()) for f in folders])))
        except ValueError:  # paths on different drives
            out["frames"] = None
    return out, notes


def sheet_formats(root: Path | str) -> list[str]:
    """The databases whose label sheet lies in the folder ``root`` (more than one: which to build is not the
    detector's to guess; a folder of both a CASME II and a SAMM sheet built one and said nothing of the other)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return [name for name, mod in (("casme2", casme2), ("samm", samm), ("casme3", casme3))
            if mod.find_sheet(root) is not None]


def detect_format(root: Path | str) -> str | None:
    """Guess the database format from the files present (a manifest wins, SMIC is a folder pattern)."""
    root = Path(root)
    if not root.exists():
        return None
    if root.is_file():  # a database's label sheet given itself, by its name; any other table is a manifest
        db = next((name for name, mod in (("casme2", casme2), ("samm", samm), ("casme3", casme3))
                   if mod.SHEET.search(root.name)), None)
        return db or ("manifest" if manifest.find_manifest(root) is not None else None)
    if manifest.find_manifest(root) is not None:
        return "manifest"
    sheets = (("casme2", casme2), ("samm", samm), ("casme3", casme3))
    for name, mod in sheets:
        if mod.find_sheet(root) is not None:
            return name
    if smic.find_micro_dirs(root):
        return "smic"
    for name, mod in sheets:  # the frames' folder given, its label sheet beside it
        if locate_sheet(root, mod.find_sheet) is not None:
            return name
    return None


__all__ = ["FORMATS", "clip_from_folder", "read_clips", "write_layout", "detect_format", "sheet_formats", "subjects_note",
           "label_file",
           "provenance"]
