"""CAS(ME)^3 Part A: ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx`` + ``part_A/spNO.1/b/color/175.jpg``, or the
ME-clip release's ``Part_A_ME_clip/frame/spNO.1_b_166/166.jpg`` (one folder per clip: subject_stimulus_onset).

Layout facts (shared/research/databases-and-peers.md §1.4): data on sheet ``label``; columns
``Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion``; ``Subject`` like
``spNO.1``; ``Filename`` is a stimulus letter; many rows share (Subject, Filename) and are distinct
clips of one stimulus video, told apart by onset (``Clip.clip_id`` adds it); frames are unpadded
``<n>.jpg`` under ``color/`` (``depth/`` beside it); ``Others``/``others`` casing both occur and are
kept verbatim; frame drops happen. 30 fps. The ME-clip release (rainkaze/MicroExpression
``scripts/analyze/audit_casme3.py``, ``build_casme3_manifest.py``) keeps the sheet in ``annotation/`` and each clip's
frames in ``Part_A_ME_clip/frame/<Subject>_<Filename>_<Onset>/``, its depth maps in ``depth/`` beside ``frame/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..errors import UnusableInput
from ..records import Clip, Skip, SynthClip, clip_id
from . import _common as c
from ._layout import write_frame, write_xlsx

DATABASE = "casme3"
FPS = 30.0
SHEET_FILE = "cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx"
SHEET_NAME = "label"
FRAMES_DIR = "part_A"
LETTERS = "abcdefghijklmnop"
SHEET = re.compile(r"cas\(me\)\^?3_part_?A_ME_label.*\.(xlsx?|csv)$", re.IGNORECASE)
# Part C (``CAS(ME)3_part_C_ME.xlsx``, columns sub, count, au, onset, offset; shared/research §1.4): no reader
PART_C = re.compile(r"cas\(me\)\^?3_part_?C.*\.(xlsx?|csv)$", re.IGNORECASE)
PART_C_COLUMNS = ("sub", "count", "au", "onset", "offset")
PART_C_UNREAD = ("is CAS(ME)^3 Part C's label sheet (sub, count, au, onset, offset): Part C is not supported "
                 "(its sheet gives no stimulus name, apex or emotion, and its frame folders are no layout the "
                 "builder reads); --format casme3 reads Part A: cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx with "
                 "part_A/<Subject>/<Filename>/color or Part_A_ME_clip/frame/<Subject>_<Filename>_<Onset>")

REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset", "OnsetFrame", "Onset Frame"),
    "apex": ("Apex", "ApexFrame", "Apex Frame"),
    "offset": ("Offset", "OffsetFrame", "Offset Frame"),
    "aus": ("AU", "AUs", "Action Units"),
    "emotion": ("emotion", "Estimated Emotion"),
}


def find_sheet(root: Path) -> Path | None:
    return c.find_sheet(root, SHEET)


def _subject(raw: str | None) -> tuple[str, tuple[str, ...]] | str:
    """Kept as written (``spNO.1``); its folder has the same name."""
    return (raw, (raw,)) if raw else "the subject is missing"


def _prefer(base: Path) -> int | None:
    """Never a folder of depth maps: the ME-clip release's ``depth/spNO.1_b_166/166.png`` are named as the
    frames in ``frame/`` beside it (and sort before them)."""
    return None if any(p.casefold() == "depth" for p in base.parts) else 0


LAYOUT = c.SheetLayout(
    database=DATABASE, what="CAS(ME)^3", fps=FPS, find_sheet=find_sheet,
    described="cas(me)3_part_A_ME_label*.xlsx", sheet_name=SHEET_NAME, required=REQUIRED, frames_dir=FRAMES_DIR,
    subject=_subject, clip_is="the stimulus (clip) name", prefer=_prefer, frames_subdir="color",
    shared_folders=True, clip_folder="{subject}_{clip}_{onset}")


def part_c_sheet(root: Path) -> Path | None:
    """Part C's label sheet: ``root`` itself where its name or its columns say so, else, where the folder holds no
    Part A sheet (:func:`_common.locate_sheet`), the first in it or two levels below, by name."""
    root = Path(root)
    if root.is_file():
        named = PART_C.search(root.name) or c.table_header(root, [(col,) for col in PART_C_COLUMNS]) is not None
        return root if named else None
    if not root.is_dir() or c.locate_sheet(root, find_sheet) is not None:
        return None
    found = c.find_files(root, PART_C, depth=2)
    return found[0] if found else None


def read(root: Path) -> Iterator[Clip | Skip]:
    """Part A's clips; a root that is, or holds instead, Part C's sheet is refused as such: it had "no column
    'Filename'", or "no CAS(ME)^3 label sheet" in a folder holding one."""
    try:
        return c.read_sheet(root, LAYOUT)
    except UnusableInput:
        part_c = part_c_sheet(root)
        if part_c is None:
            raise
        raise UnusableInput(f"{part_c}: {PART_C_UNREAD}") from None


def stimulus(index: int) -> str:
    """Two synthetic clips per stimulus letter, so every pair shares (Subject, Filename)."""
    return LETTERS[((index - 1) // 2) % len(LETTERS)]


def write(root: Path, clips: list[SynthClip]) -> list[str]:
    """The real layout: sheet ``label`` (+ empty ``Sheet1``), ``part_A/spNO.<N>/<letter>/color/<n>.jpg``.

    Clips that share a stimulus folder must not share frame numbers: a clip whose frames would
    overlap an earlier one in the same folder is renumbered to start after it, and its
    ``first_frame`` is updated in place so that the caller's ground truth follows.
    """
    root = Path(root)
    rows: list[list] = [["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]]
    ids = []
    last: dict[tuple[str, str], int] = {}  # folder -> highest frame number written
    for s in clips:
        sub, letter = f"spNO.{s.subject}", stimulus(s.index)
        end = last.get((sub, letter))
        if end is not None and s.first_frame <= end:
            s.first_frame = end + 1 + 10 * len(s.frames)  # a gap, as between real clips of one video
        folder = root / FRAMES_DIR / sub / letter / "color"
        for i, img in enumerate(s.frames):
            write_frame(folder / f"{s.first_frame + i}.jpg", img, s.jpeg_quality)
        last[(sub, letter)] = max(end or 0, s.offset)
        rows.append([sub, letter, s.onset, s.apex, s.offset, s.au_text, s.extra.get("objective_class", "VII"),
                     s.emotion])
        ids.append(clip_id(DATABASE, sub, letter, s.onset))
    write_xlsx(root / SHEET_FILE, [(SHEET_NAME, rows), ("Sheet1", [])])
    return ids
