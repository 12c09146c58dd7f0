"""Declarative corrections of known label defects, applied by the readers before validation.

A fix names the clip (database, subject, clip, and the onset for CAS(ME)^3), the field, the value
the defective sheet holds and the corrected value. It applies only when the cell still holds the
defective value, so a user's already-corrected copy (or a different release) is left alone, and a
fixed row records ``extra["label_fixes"]`` so the build report can show what was changed and why.

The table is empty on purpose. The public fixes we know of (tvaranka/meb ``meb/datasets/datasets.py``:
CASME II offset 91 at pandas index 60 and 21 optical-flow apexes; SAMM offset 5739 at index 56, three
apexes, five "or" AU rows; CAS(ME)^3 indices 128, 708, 749, 750, 796, 798) are keyed by the pandas
index of MEB's own copies (``CASME2-coding-updated.xlsx``), whose row order we cannot verify, so
transcribing them would risk rewriting the wrong clip. Without a fix, a row whose onset or offset lies
outside its frames is skipped with ``frames_out_of_range`` naming file, row and field; a missing apex, or one
outside onset..offset, is estimated from motion (the latter noted in ``extra["label_notes"]`` and the build
report). Add an entry here only with the subject, clip and old value read from the sheet itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Fix:
    database: str
    subject: str  # as Clip.subject spells it ("sub01", "006", "spNO.1")
    clip: str
    field: str  # reader cell key: onset | apex | offset | aus | emotion
    old: Any  # the defective value; the fix applies only while the cell holds it
    new: Any
    source: str  # where the correction comes from (repo + file, or the release note)
    onset: int | None = None  # CAS(ME)^3 only: which of the clips sharing subject + stimulus


FIXES: tuple[Fix, ...] = ()


def _same(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).strip() == str(b).strip()


def apply_fixes(database: str, subject: str, clip: str, cells: dict[str, Any], onset: Any = None,
                table: tuple[Fix, ...] | None = None) -> dict[str, Any]:
    """``cells`` with every matching fix applied (a new dict; the input is not changed)."""
    out = dict(cells)
    applied = []
    for f in FIXES if table is None else table:
        if (f.database, f.subject, f.clip) != (database, subject, clip) or f.field not in out:
            continue
        if f.onset is not None and not _same(onset, f.onset):
            continue
        if _same(out[f.field], f.old):
            out[f.field] = f.new
            applied.append(f"{f.field}: {f.old!r} -> {f.new!r} ({f.source})")
    if applied:
        out["_fixes"] = applied
    return out
