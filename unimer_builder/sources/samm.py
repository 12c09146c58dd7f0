"""SAMM: ``SAMM_Micro_FACS_Codes_v2.xlsx`` + ``SAMM/006/006_1_2/006_05562.jpg``.

Layout facts (shared/research/databases-and-peers.md §1.2): one sheet ``MICRO_ONLY`` whose first rows
are a title and the symbol key, header on row 14 (pandas ``header=13``); ``Subject`` is an int that
loses its zero padding (folder ``006``); frame files are ``<sub>_<frame:05d>.jpg`` with absolute
frame numbers (some copies pad to 4 digits); emotions are capitalised. 200 fps.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ..records import Clip, Skip, SynthClip, clip_id
from . import _common as c
from ._layout import write_frame, write_xlsx

DATABASE = "samm"
FPS = 200.0
SHEET_FILE = "SAMM_Micro_FACS_Codes_v2.xlsx"
SHEET_NAME = "MICRO_ONLY"
FRAMES_DIR = "SAMM"
HEADER_ROW = 14  # 1-based, as Excel shows it
SHEET = re.compile(r"SAMM.*FACS.*Codes.*\.(xlsx?|csv)$", re.IGNORECASE)

REQUIRED = {
    "subject": ("Subject",),
    "filename": ("Filename",),
    "onset": ("Onset Frame", "OnsetFrame", "Onset"),
    "apex": ("Apex Frame", "ApexFrame", "Apex"),
    "offset": ("Offset Frame", "OffsetFrame", "Offset"),
    "aus": ("Action Units", "AU", "AUs"),
    "emotion": ("Estimated Emotion", "Emotion"),
}

COLUMNS = ["Subject", "Filename", "Inducement Code", "Onset Frame", "Apex Frame", "Offset Frame",
           "Duration", "Micro", "Action Units", "Estimated Emotion", "Objective Classes", "Notes"]


def find_sheet(root: Path) -> Path | None:
    return c.find_sheet(root, SHEET)


def _subject(raw: str | None) -> tuple[str, tuple[str, ...]] | str:
    """``6`` -> ``006``; folders spelled ``006``, ``6``, ``06`` or ``0006``."""
    try:
        n = c.to_int(raw)
    except ValueError:
        n = None
    if n is None:
        return f"subject {raw!r} is not a subject number"
    return f"{n:03d}", (f"{n:03d}", str(n), f"{n:02d}", f"{n:04d}")


LAYOUT = c.SheetLayout(
    database=DATABASE, what="SAMM", fps=FPS, find_sheet=find_sheet, described="SAMM*_Micro_FACS_Codes*.xlsx",
    sheet_name=SHEET_NAME, required=REQUIRED, frames_dir=FRAMES_DIR, subject=_subject)


def read(root: Path) -> Iterator[Clip | Skip]:
    return c.read_sheet(root, LAYOUT)


def clip_name(subject: int, index: int) -> str:
    return f"{subject:03d}_{index}_1"


def _notes() -> list[list]:
    """The title and symbol-key block above the header (rows 1..13), as in the release."""
    rows: list[list] = [[] for _ in range(HEADER_ROW - 1)]
    rows[0] = ["SAMM - Spontaneous Actions and Micro-Movements: FACS codes of the micro-movements"]
    rows[2] = ["Coded by certified FACS coders; frame numbers are absolute within each clip folder"]
    rows[4] = ["Key:"]
    rows[5] = ["/", "= or"]
    rows[6] = ["?", "= some AU's continue for a while and have unclear offset"]
    rows[7] = ["L2 or R2", "= Unilateral AU 2 on left/right side"]
    rows[8] = ["A2", "= Asymmetric AU 2"]
    rows[9] = ["T / B", "= top / bottom of the face"]
    rows[10] = ["ref(..)", "= reference only, not coded"]
    rows[11] = ["Objective Classes", "= 1-7, see the SAMM paper"]
    return rows


def write(root: Path, clips: list[SynthClip]) -> list[str]:
    """The real layout: notes block, header on row 14, int subjects, ``<sub>_<frame:05d>.jpg``."""
    root = Path(root)
    rows = _notes() + [list(COLUMNS)]
    ids = []
    for s in clips:
        sub = f"{s.subject:03d}"
        name = clip_name(s.subject, s.index)
        folder = root / FRAMES_DIR / sub / name
        for i, img in enumerate(s.frames):
            write_frame(folder / f"{sub}_{s.first_frame + i:05d}.jpg", img, s.jpeg_quality)
        rows.append([s.subject, name, s.index, s.onset, s.apex, s.offset, s.offset - s.onset + 1,
                     "Micro - 1/2", s.au_text, s.emotion, s.extra.get("objective_class", 7),
                     s.extra.get("notes")])
        ids.append(clip_id(DATABASE, sub, name))
    write_xlsx(root / SHEET_FILE, [(SHEET_NAME, rows)])
    return ids
