"""CASME II: ``CASME2-coding-*.xlsx`` + ``CASME2_RAW_selected/sub01/EP02_01f/img46.jpg``.

Layout facts (shared/research/databases-and-peers.md §1.1): data on the first sheet, header on row 1,
two blank header columns (pandas ``Unnamed: 2`` / ``Unnamed: 6``); ``Subject`` is an int (folder
``sub01``); frame files are ``img<N>.jpg`` with the database frame number unpadded; official crops
are ``reg_img<N>.jpg`` under ``Cropped*/`` with the subject folder spelled ``sub01`` or ``1``;
``ApexFrame`` is ``/`` on at least one row (sub04 EP12_01f). 200 fps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import Clip, Skip, SynthClip, clip_id
from . import _common as c
from ._layout import write_frame, write_xlsx

DATABASE = "casme2"
FPS = 200.0
SHEET_NAME = "CASME2-coding-20190701.xlsx"
FRAMES_DIR = "CASME2_RAW_selected"
# a copy may carry a prefix (ini17's "[modified]CASME2-coding-20190701.xlsx")
SHEET = re.compile(r"(CASME2-coding.*|CASME2_label.*)\.(xlsx?|csv)$", re.IGNORECASE)

REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("OnsetFrame", "Onset Frame", "Onset"),
    "apex": ("ApexFrame", "Apex Frame", "Apex"),
    "offset": ("OffsetFrame", "Offset Frame", "Offset"),
    "aus": ("Action Units", "AU", "AUs"),
    "emotion": ("Estimated Emotion", "Emotion"),
}


def find_sheet(root: Path) -> Path | None:
    found = c.find_files(Path(root), SHEET, depth=2) if Path(root).is_dir() else []
    if not found:
        return None
    # Shallowest first; among equals a coding file before a label file, then the newest name.
    depth = min(len(p.parts) for p in found)
    top = [p for p in found if len(p.parts) == depth]
    # by the part the pattern names (a copy's prefix, "old_" or "[modified]", does not outrank a newer date)
    return sorted(top, key=lambda p: ("casme2-coding" in p.name.lower(), SHEET.search(p.name).group(0)))[-1]


def _prefer(base: Path) -> int:
    """Raw frames first (we align faces ourselves), official crops after."""
    s = str(base).lower()
    return 0 if "raw" in s else (2 if "crop" in s else 1)


def _subject(raw: str | None) -> tuple[str, tuple[str, ...]] | str:
    """``1``, ``sub1`` or ``sub01`` -> ``sub01``; folders spelled ``sub01``, ``1``, ``sub1`` or ``01``."""
    n = _subject_number(raw)
    if n is None:
        return f"subject {raw!r} is not a subject number"
    return f"sub{n:02d}", (f"sub{n:02d}", str(n), f"sub{n}", f"{n:02d}")


LAYOUT = c.SheetLayout(
    database=DATABASE, what="CASME II", fps=FPS, find_sheet=find_sheet,
    described="CASME2-coding*.xlsx or CASME2_label*.xls[x]", sheet_name=None, required=REQUIRED,
    frames_dir=FRAMES_DIR, subject=_subject, prefer=_prefer)


def read(root: Path) -> Iterator[Clip | Skip]:
    return c.read_sheet(root, LAYOUT)


def _subject_number(raw: str | None) -> int | None:
    try:
        return c.to_int(raw)
    except ValueError:
        m = re.fullmatch(r"sub(\d+)", raw or "", re.IGNORECASE)
        return int(m.group(1)) if m else None


def clip_name(index: int) -> str:
    return f"EP{index:02d}_01f"


CROPPED_DIR = "Cropped"  # the official crops' folder (its frames reg_img<N>.jpg)


def write(root: Path, clips: list[SynthClip]) -> list[str]:
    """The real layout: coding sheet (blank columns 3 and 7, Sheet2/Sheet3 empty) + ``img<N>.jpg``; clips cut to the
    face (``extra["cropped"]``, every one) as the official crops are laid out, ``Cropped/sub01/EP02_01f/reg_img<N>.jpg``."""
    root = Path(root)
    cropped = bool(clips) and all(s.extra.get("cropped") for s in clips)
    frames_dir, prefix = (CROPPED_DIR, "reg_img") if cropped else (FRAMES_DIR, "img")
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None,
              "Action Units", "Estimated Emotion"]
    rows: list[list] = [header]
    ids = []
    for s in clips:
        name = clip_name(s.index)
        folder = root / frames_dir / f"sub{s.subject:02d}" / name
        for i, img in enumerate(s.frames):
            write_frame(folder / f"{prefix}{s.first_frame + i}.jpg", img, s.jpeg_quality)
        rows.append([s.subject, name, None, s.onset, s.apex, s.offset, None, s.au_text, s.emotion])
        ids.append(clip_id(DATABASE, f"sub{s.subject:02d}", name))
    write_xlsx(root / SHEET_NAME, [("Sheet1", rows), ("Sheet2", []), ("Sheet3", [])])
    return ids
