"""A user's own clips, listed in ``manifest.csv`` (or ``manifest.parquet``, ``manifest.xlsx``).

Columns: ``path`` (required: a folder of frames or a video file, relative to the folder of the manifest's path
as given, a link's own folder rather than its target's, or absolute; ``\\`` separates folders as ``/`` does, as a
manifest written on Windows has it, and an absolute path of another machine that does not exist here is read by its
last parts that exist under the manifest's folder, with a label note, its subject the folder it was written in; two
such paths read as one file are both refused), ``onset`` (required), and optionally
``apex``, ``offset``, ``aus``, ``emotion``, ``subject``,
``clip``, ``fps``. Header names are read without regard to case or surrounding spaces (``Emotion`` is
``emotion``); a name given twice that way is an error. In a folder, each
file's frame number is the last run of digits in its name (natural sort; the last that varies where every name
ends in one number: ``frame16_face0.jpg``), of the images named as most of the folder's are (others are
noted, not read); a video's frames are numbered from 0.
Defaults: subject = the parent folder's name, clip = the folder or file stem, offset = the last
frame of a folder (a video's stays unknown until decoded), apex estimated from motion, fps = the rate a
video file declares (a folder's stays unknown: its duration, and whether it is a micro-expression, too).
Row numbers in messages count the header as row 1, as a spreadsheet program shows the CSV.

Other columns, deliberately: any column that is none of these is the user's own (notes, a coder, a split) and
is kept in ``Clip.extra`` (not written to the shards), so a manifest may carry what its author needs. A column
that looks like a misspelling of a manifest column the header lacks (:func:`near_miss`: equal to it but for
spaces, ``_`` or ``-``; or once a ``frame`` suffix is dropped, ``apex_frame``; a common other name, ``AU`` or
``action_units`` for ``aus``; or a close match by :func:`difflib.get_close_matches`, ``emtion``) stops the
build before anything is built (``UnusableInput``, exit 2) naming the file, the column and the column it
probably means: read as a note, it would lose its label without a word (the apex estimated, the offset
defaulted, the AUs unlabelled). A near miss of a column the header also has (``offset_ms`` beside ``offset``)
is the user's own.

Ids: ``manifest/<subject>/<clip>``, names in Unicode's composed form (NFC). Where the default clip name (the
file or folder name) would give different files or folders one id (``day1/s01/smile.mp4``,
``day2/s01/smile.mp4``), each gets the folders that tell them apart (``day1_smile``, ``day2_smile``); where it
would give rows of different onsets one id (windows of one video), each of those rows' clip name gets
``_<onset>`` (``single_face_16``, ``single_face_24``); a video with one window keeps its name, and one window
listed twice is a duplicate (the second row is skipped), as is a ``clip`` value given twice. A ``subject`` or ``clip``
holding ``/`` or ``\\`` is refused (``s1`` + ``a/b`` and ``s1/a`` + ``b`` would be one id).

AUs: :func:`facs.parse_aus` reads the ``aus`` cell as it reads a database's sheet (``6+12``, ``12 25``,
``12.0``); ``0`` (FACS's neutral face), ``none``, ``-`` or ``n/a`` label the clip with no AU acting, while a blank
cell (or ``NA``) labels nothing (the AUs are then inferred from motion); text that is no AU code is listed in the
clip's label notes.

An ``fps`` must be a finite number above 0 and at most :data:`MAX_FPS`; an ``apex`` on the onset frame carries
no timing: it is estimated from motion, and the clip's label notes say so. An ``emotion`` that is no word
:func:`labels.canonical` knows stays a class of its own, with a label note naming the closest known word; a number
or AU code there (a row shifted by a column) is refused, as is a CSV row holding more fields than the header.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import os
import re
import unicodedata
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from .. import labels
from ..errors import UnusableInput
from ..records import Clip, ParsedAUs, Skip, SynthClip, clip_id
from . import _common as c
from ._layout import write_frame
from .frames import declared_fps

DATABASE = "manifest"
NAMES = ("manifest.csv", "manifest.parquet", "manifest.xlsx")
SUFFIXES = (".csv", ".parquet", ".xlsx", ".xlsm")  # a manifest passed as a file
COLUMNS = ("path", "onset", "apex", "offset", "aus", "emotion", "subject", "clip", "fps")
REQUIRED = ("path", "onset")
# Other names a column is commonly given (compared as :func:`_common.norm_col` writes them: lower case, no
# spaces, ``_`` or ``-``): a header holding one of them where the manifest's own name is missing is an error.
ALIASES = {
    "path": ("file", "filename", "filepath", "video", "videopath", "folder", "dir", "directory"),
    "onset": ("start", "begin", "onsetframe", "startframe"),
    "apex": ("peak", "apexframe"),
    "offset": ("end", "stop", "endframe"),
    "aus": ("au", "actionunit", "actionunits", "aulabel", "aulabels", "autext", "austext", "aucode",
            "aucodes", "facs"),
    "emotion": ("estimatedemotion", "emotionlabel"),
    "subject": ("sub", "subj", "participant", "subjectid"),
    "clip": ("clipname", "clipid"),
    "fps": ("framerate", "framespersecond"),
}
_ALIAS = {a: col for col, names in ALIASES.items() for a in names}
# difflib's cutoff: 0.8 takes typos (emtion, ofset, subjct, fp) but no short word of one's own ("set" is 0.75
# like "onset", "pose" 0.67, "note" 0.44).
_CLOSE = 0.8
# An fps above this is no camera's: high-speed cameras used for micro-expressions run at 100-200 fps (SMIC
# 100, CASME II and SAMM 200) and a few at 1000; ten times that leaves room for any real camera, while a
# typo, a time base or a frame count (1e9, 90000) is refused rather than making every clip last 0 s. (A rate
# the video file declares is trusted only up to ``frames.MAX_DECLARED_FPS``: a container's time base reads 1000.)
MAX_FPS = 10000.0


def find_manifest(root: Path) -> Path | None:
    root = Path(root)
    if root.is_file():
        return root if root.suffix.lower() in SUFFIXES else None
    for name in NAMES:
        if (root / name).is_file():
            return root / name
    return None


def near_miss(name: str, present: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The manifest column that the header name ``name`` (not one of them) probably means, or ``None``:
    equal but for case, spaces, ``_`` or ``-``; equal once a ``frame`` suffix is dropped (``apex_frame``); a
    common other name (:data:`ALIASES`); or a close match (:func:`difflib.get_close_matches`). A column the
    header has (``present``) is not meant: a near miss of it is a column of one's own."""
    key = c.norm_col(name)
    if not key:
        return None
    stem = re.sub(r"frames?$", "", key)
    for guess in (key, stem, _ALIAS.get(key), _ALIAS.get(stem)):
        if guess in COLUMNS:
            return guess if guess not in present else None
    close = difflib.get_close_matches(key, [col for col in COLUMNS if col not in present], n=1, cutoff=_CLOSE)
    return close[0] if close else None


# The missing-value markers of R (``write.csv``), Excel and databases: a cell not given, as a blank one (an ``aus``
# cell ``NA`` is unlabelled, its AUs inferred from the motion, not "no AU acted"). Words a cell may mean
# (``none``, ``n/a``, ``-``: no AU acted) stay text: pandas' default list would turn them into blanks too.
_MISSING = ["NA", "#N/A", "<NA>", "NULL", "null"]


def _load(path: Path) -> list[dict[str, Any]]:
    try:
        if path.suffix.lower() == ".parquet":
            df = pd.read_parquet(path)
        elif path.suffix.lower() in (".xlsx", ".xlsm"):  # the first sheet, as the databases ship their labels
            df = pd.read_excel(path, dtype=str, keep_default_na=False, na_values=_MISSING)
        else:
            df = _read_csv(path)
    except UnusableInput:
        raise
    except Exception as e:  # noqa: BLE001 - an unreadable manifest makes the input unusable
        raise UnusableInput(f"{path}: cannot read the manifest ({type(e).__name__}: {e})") from e
    given = [str(col).strip() for col in df.columns]
    df.columns = [col.lower() for col in given]
    check_columns(path, given)
    return df.to_dict("records")


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV as spreadsheet programs save it: UTF-16 with its byte-order mark (Excel's "Unicode Text", tab
    separated), UTF-8 (with or without a BOM) or, failing that, Windows' cp1252 (Excel's "CSV"); separated by commas,
    semicolons or tabs (Excel's CSV in a locale whose decimal mark is a comma), as its first lines agree
    (:func:`_common.separator`)."""
    text = c.decode_text(path, "manifest")
    sep = c.separator(text)
    _check_field_counts(path, text, sep)
    # index_col=False: pandas took the first column for an index where rows hold one field more than the header;
    # what it drops then (its warning) is empty, as checked. A blank line stays a (blank) row, so that the rows
    # after it keep the numbers a spreadsheet program shows.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.ParserWarning)
        df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, na_values=_MISSING,
                         skipinitialspace=True, index_col=False, skip_blank_lines=False)
    if sep != ",":  # a locale that separates by semicolons or tabs writes its frame rates with a decimal comma
        for col in [c for c in df.columns if str(c).strip().lower() == "fps"]:
            df[col] = df[col].str.replace(r"^\s*(\d+),(\d+)\s*$", r"\1.\2", regex=True)
    return df


def _check_field_counts(path: Path, text: str, sep: str) -> None:
    """``UnusableInput`` naming the first row that holds more fields than the header: a cell holding the separator
    unquoted (an AU list ``6,12``) shifts the row's cells by a column, and pandas had read its first column as an
    index (``row 2, field 'path': .../10 does not exist``). Empty fields past the header (an export's trailing
    separators) are no cells."""
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep, skipinitialspace=True)
    header = next(rows, [])
    for rownum, fields in enumerate(rows, start=2):
        if len(fields) > len(header) and any(f.strip() for f in fields[len(header):]):
            what, au_list = {",": ("a comma", "6,12"), ";": ("a semicolon", "6;12")}.get(sep, ("a tab", "6<tab>12"))
            raise UnusableInput(
                f"{path}: row {rownum} holds {len(fields)} fields where the header names {len(header)} columns: "
                f"a cell holding {what} unquoted shifts the row's cells by a column (an AU list {au_list}: write "
                f"6+12, or quote the cell)")


def check_columns(path: Path, given: list[str]) -> None:
    """``UnusableInput`` for a header that names a column twice (in any case), holds a near miss of a manifest
    column it lacks (:func:`near_miss`), or lacks a required column."""
    lower = [col.lower() for col in given]
    for col, n in Counter(lower).items():
        if n > 1:
            same = [g for g in given if g.lower() == col]
            raise UnusableInput(f"{path}: the manifest names column {col!r} {n} times "
                                f"({', '.join(repr(g) for g in same)}); keep one")
    # pandas renames a repeated CSV header "aus", "aus" to "aus", "aus.1"
    for col in lower:
        m = re.fullmatch(r"(.+)\.\d+", col)
        if m and m[1] in COLUMNS and m[1] in lower:
            raise UnusableInput(f"{path}: the manifest names column {m[1]!r} twice; keep one")
    present = set(lower) & set(COLUMNS)
    misses = [(g, near_miss(g, present)) for g, col in zip(given, lower, strict=True) if col not in COLUMNS]
    misses = [(g, meant) for g, meant in misses if meant is not None]
    if misses:
        which = ", ".join(f"{g!r} (probably {meant!r})" for g, meant in misses)
        raise UnusableInput(
            f"{path}: the manifest's column{'s' if len(misses) > 1 else ''} {which} "
            f"{'are' if len(misses) > 1 else 'is'} no manifest column: rename "
            f"{'them' if len(misses) > 1 else 'it'} (manifest columns: {', '.join(COLUMNS)}), or give a "
            f"column of your own a name further from these")
    for col in REQUIRED:
        if col not in lower:
            raise UnusableInput(f"{path}: the manifest has no column {col!r} (columns found: "
                                f"{', '.join(given)}); required: {', '.join(REQUIRED)}")


def read(root: Path) -> Iterator[Clip | Skip]:
    root = c.require_root(Path(root), "manifest")
    path = find_manifest(root)
    if path is None:
        raise UnusableInput(f"{root}: no {', '.join(NAMES[:-1])} or {NAMES[-1]}" if root.is_dir() else
                            f"{root}: a manifest is a {', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]} file")
    records = _load(path)
    return c.dedupe(_rows(path, records))


def _on_disk(target: Path) -> Path:
    """``target``, or its other Unicode normal form where only that exists: macOS writes names decomposed (NFD:
    "O" and a combining diaeresis), most other tools composed (NFC), and the two print alike ("Proband Ö 1 does
    not exist" beside a folder of that very name)."""
    if target.exists():
        return target
    for form in ("NFC", "NFD"):
        other = Path(unicodedata.normalize(form, str(target)))
        if other.exists():
            return other
    return target


# A path written on Windows: a drive (``D:\\`` or ``D:/``) or a network share (``\\\\server``)
_WINDOWS_ROOT = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _foreign(raw: str) -> bool:
    """Whether a path as written is absolute, here or on Windows (``D:\\``, ``\\\\server``, ``\\sub01``)."""
    return bool(_WINDOWS_ROOT.match(raw)) or Path(raw.replace("\\", "/")).is_absolute()


def _locate(raw: str, base: Path) -> tuple[Path, str | None]:
    """A row's path on this machine, and the last parts of it read there where it is not the path as written. A
    manifest written on Windows separates folders with ``\\`` (``sub01\\EP02_01f``), which is no separator here:
    the path is read with ``/``. An absolute path of another machine (``D:\\MER\\CASME2\\sub01\\EP02_01f``,
    ``/home/alice/CASME2/...``) that does not exist here is looked for by its last parts under the manifest's
    folder, the longest that exists: the data moved with its manifest (:func:`_rows` refuses two paths read as one)."""
    given = _on_disk(Path(raw) if Path(raw).is_absolute() else base / raw)
    if given.exists():
        return given, None
    text = raw.replace("\\", "/")
    if not _foreign(raw):
        return (_on_disk(base / text) if "\\" in raw else given), None
    if Path(text).is_absolute() and "\\" in raw:  # this machine's own path, written with '\\'
        here = _on_disk(Path(text))
        if here.exists():
            return here, None
    parts = [p for p in text.split("/") if p not in ("", ".")]
    drive = bool(parts) and re.fullmatch(r"[A-Za-z]:", parts[0]) is not None
    for k in range(1 if drive else 0, len(parts)):  # a drive is no folder under the manifest's; \\sub01\\x may be
        found = _on_disk(base.joinpath(*parts[k:]))
        if found.exists():
            return found, "/".join(parts[k:])
    return Path(text), None


def _moved_note(r: c.Row, raw: str, last: str) -> str:
    """A label note where the row's path was read by its last parts (:func:`_locate`): another file of that name
    could be meant, so the build says which it read."""
    what = f"its last part '{last}' does" if "/" not in last else f"its last parts '{last}' do"
    return (f"{r.file}, row {r.row}, field 'path': '{raw}' does not exist on this machine; {what}, in the manifest's "
            f"folder, and {'is' if '/' not in last else 'are'} read")


def _nfc(name: str) -> str:
    """A name in Unicode's composed form (NFC): a subject typed in the manifest and the same name read from a
    folder copied from macOS (decomposed, NFD) print alike and must be one subject, not two."""
    return unicodedata.normalize("NFC", name)


def _names(base: Path, rec: dict[str, Any]) -> tuple[Path | None, str, str, bool]:
    """The row's target (``None``: no path), subject, clip name (both NFC, :func:`_nfc`), and whether that clip
    name is the default."""
    raw_path = c.text(rec.get("path"))
    target, last = (None, None) if raw_path is None else _locate(raw_path, base)
    # a path read by its last parts: the subject is the folder it was written in (day1/s01/smile.avi found as
    # smile.avi beside the manifest is s01's), not the manifest's
    written = raw_path.replace("\\", "/").rstrip("/").split("/") if last else []
    parent = written[-2] if len(written) > 1 else (target.parent.name if target else "")
    subject = _nfc(c.text(rec.get("subject")) or parent)
    clip = c.text(rec.get("clip"))
    if clip:
        return target, subject, _nfc(clip), False
    return target, subject, _nfc((target.name if target.is_dir() else target.stem) if target else ""), True


def _onset_text(v: Any) -> str:
    try:
        n = c.to_int(v)
    except ValueError:
        n = None
    return str(n) if n is not None else (c.text(v) or "")


def _not_found(target: Path, base: Path, manifest: Path) -> str:
    """Why a row's path was not found; where the manifest is a link whose target's folder holds the path,
    that too: relative paths are read from the folder of the manifest as given (as a spreadsheet program or a
    shell reads them), not from its target's."""
    real = manifest.resolve().parent
    try:
        there = real / target.relative_to(base)
    except ValueError:  # an absolute path
        return f"{target} does not exist"
    if real == base or not there.exists():
        return f"{target} does not exist"
    return (f"{target} does not exist (relative paths are read from {base}, the folder of the manifest as "
            f"given; {there}, beside the file the manifest links to, does)")


def _apart(rows: list[tuple]) -> list[tuple]:
    """``rows`` (row, record, target, subject, clip, clip defaulted) with the default clip names that rows naming
    different files or folders would share told apart (:func:`_told_apart`): ``day1/s01/smile.mp4`` and
    ``day2/s01/smile.mp4`` were one id, the second skipped as a repeat of the first. Other names stay."""
    real = [os.path.realpath(t) if d and t is not None else None for _, _, t, _, _, d in rows]
    media: dict[str, dict[str, Path]] = {}  # default id -> real path -> the path as given
    onsets: dict[str, dict[str, set[str]]] = {}  # default id -> onset cell -> real paths
    for (_, rec, target, subject, clip, _), r in zip(rows, real, strict=True):
        if r is not None:
            cid = clip_id(DATABASE, subject, clip)
            media.setdefault(cid, {}).setdefault(r, target)
            onsets.setdefault(cid, {}).setdefault(str(c.text(rec.get("onset"))), set()).add(r)
    # only where files would share an id even with their onsets in it (the ids of windows the onset tells apart,
    # smile_0 and smile_10 of two takes, stay as they were built)
    named = {(cid, r): name for cid, group in media.items()
             if len(group) > 1 and any(len(paths) > 1 for paths in onsets[cid].values())
             for r, name in _told_apart(group).items()}
    return [(n, rec, t, s, named.get((clip_id(DATABASE, s, clip), r), clip), d)
            for (n, rec, t, s, clip, d), r in zip(rows, real, strict=True)]


def _told_apart(group: dict[str, Path]) -> dict[str, str]:
    """Clip names for the files or folders (real path -> path as given) one default clip name would name: the
    name, after the nearest folders of their paths that tell them apart past those they share (``day1_smile``,
    ``day2_smile``), with its extension where the names differ in it (``smile.mp4``, ``smile.avi``)."""
    paths = {r: Path(os.path.normpath(p)) for r, p in group.items()}
    whole = len({p.name for p in paths.values()}) > 1
    stems = {r: _nfc(p.name if whole or p.is_dir() else p.stem) for r, p in paths.items()}
    ups = {r: [_nfc(part) for part in reversed(p.parent.parts)] for r, p in paths.items()}  # nearest first
    shared = 0
    while all(len(u) > shared and u[shared] == next(iter(ups.values()))[shared] for u in ups.values()):
        shared += 1
    for k in range(shared, max(map(len, ups.values())) + 1):
        keys = {r: (tuple(u[shared:k]), stems[r]) for r, u in ups.items()}
        if len(set(keys.values())) == len(keys):
            return {r: "_".join([*reversed(folders), stem]) for r, (folders, stem) in keys.items()}
    return stems  # unreachable: real paths that differ differ in a folder or a name


def _rows(path: Path, records: list[dict[str, Any]]) -> Iterator[Clip | Skip]:
    base = Path(os.path.abspath(path)).parent  # not resolved: a linked manifest's paths are the link's
    file = str(path)
    names = {k: k for k in COLUMNS}
    rows = _apart([(i + 2, rec, *_names(base, rec)) for i, rec in enumerate(records)  # row 1 is the header
                   if not all(c.is_blank(v) for v in rec.values())])
    # A default clip name that rows of different onsets would share (windows of one video): each gets its
    # onset. Rows of one onset are one window listed twice, a duplicate under the plain name.
    onsets: dict[str, set[str]] = {}
    for _, rec, _, subject, clip, _ in rows:
        onsets.setdefault(clip_id(DATABASE, subject, clip), set()).add(_onset_text(rec.get("onset")))
    # paths of another machine read by their last parts: two written paths read as one file are neither
    located = {n: _locate(c.text(rec.get("path")), base) for n, rec, *_ in rows if c.text(rec.get("path"))}
    read_as: dict[str, set[str]] = {}
    for n, (found, last) in located.items():
        if last is not None:
            read_as.setdefault(os.path.realpath(found), set()).add(c.text(records[n - 2].get("path")))
    for rownum, rec, target, subject, clip, defaulted_clip in rows:
        if defaulted_clip and target is not None and len(onsets[clip_id(DATABASE, subject, clip)]) > 1:
            clip = f"{clip}_{_onset_text(rec.get('onset'))}"
        r = c.Row(DATABASE, file, rownum, clip_id(DATABASE, subject, clip))
        bad_name = next((k for k in ("subject", "clip") if re.search(r"[/\\]", c.text(rec.get(k)) or "")),
                        None)
        if bad_name is not None:
            value = c.text(rec.get(bad_name)) or ""
            sep = "/" if "/" in value else "\\"
            yield r.skip("bad_label", f"{bad_name} {value!r} holds {sep!r}, which separates the parts of a "
                                      f"clip's id ({DATABASE}/<subject>/<clip>): use another character",
                         bad_name)
            continue
        if target is None:
            yield r.skip("bad_label", "the path of the clip is missing", "path")
            continue
        raw, last = c.text(rec.get("path")), located[rownum][1]
        if last is not None and len(read_as[os.path.realpath(target)]) > 1:
            others = " and ".join(f"'{o}'" for o in sorted(read_as[os.path.realpath(target)] - {raw}))
            parts = "its last parts name" if "/" in last else "its last part names"
            yield r.skip("missing_path", f"'{raw}' does not exist on this machine, and '{last}' in the manifest's folder, "
                                         f"which {parts}, is what {others} would be read as too: give the paths relative "
                                         f"to the manifest", "path")
            continue
        if not target.exists():
            yield r.skip("missing_path", f"'{raw}' is an absolute path that does not exist on this machine, and none of "
                                         f"its last parts exist in the manifest's folder ({base})" if _foreign(raw)
                         else _not_found(target, base, Path(path)), "path")
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
        au = c.parse_au_cell(r, rec.get("aus"), "aus") if _au_given(rec.get("aus")) else (None, ParsedAUs())
        if isinstance(au, Skip):
            yield au
            continue
        au_text, aus = au
        emotion = c.emotion_text(rec.get("emotion"))
        not_word = c.not_a_word(emotion)
        moved_to = _shifted_into(rec) if not_word else None
        if moved_to:
            yield r.skip("bad_label", f"emotion {emotion!r} is {not_word} while the row's {moved_to!r} cell holds the "
                                      f"emotion word {c.text(rec[moved_to])!r}: the row's cells are shifted by a column "
                                      f"(a cell holding the separator unquoted, or one left out)", "emotion")
            continue
        fps = None
        if not c.is_blank(rec.get("fps")):
            try:
                fps = float(rec["fps"])
                if not (fps > 0 and math.isfinite(fps)):
                    raise ValueError(fps)
            except (TypeError, ValueError):
                comma = "," in str(rec["fps"])  # a spreadsheet's decimal comma, as a European locale writes 29,97
                yield r.skip("bad_label", f"fps {rec['fps']!r} is not a finite positive number"
                             + (" (write the decimal with a point: 29.97, not 29,97)" if comma else ""), "fps")
                continue
            if fps > MAX_FPS:
                yield r.skip("bad_label", f"fps {rec['fps']!r} is above {MAX_FPS:g}, faster than any camera "
                                          f"(high-speed ones run at 100-1000 fps)", "fps")
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
        notes = (([_moved_note(r, raw, last)] if last else []) + c.unparsed_note("aus", au_text, aus)
                 + _slash_note(au_text, aus) + c.emotion_note(r, emotion, "emotion") + c.ignored_note(frames))
        if apex is None and _apex_on_onset(rec.get("apex"), onset):
            notes.insert(0, f"apex {onset} is the onset frame ({onset}): the apex is estimated from motion")
        if notes:
            extra["label_notes"] = notes
        yield Clip(
            database=DATABASE, subject=subject, clip=clip, onset=onset, apex=apex, offset=offset,
            frames=frames, video=video, emotion=emotion, au_text=au_text, aus=aus,
            fps=fps, source_file=file, source_row=rownum, extra=extra,
        )


def _shifted_into(rec: dict[str, Any]) -> str | None:
    """The manifest column after ``emotion`` (``subject``, ``clip``, ...) where it holds an emotion word: the row's
    cells moved one column on (an AU list ``6,12`` unquoted). A word in a column of the user's own (an
    ``emotion_name`` beside class numbers, a comment) is no shift."""
    keys = list(rec)
    after = keys[keys.index("emotion") + 1] if "emotion" in keys and keys.index("emotion") + 1 < len(keys) else None
    if after not in COLUMNS or c.is_blank(rec[after]):
        return None
    return after if labels.canonical(c.text(rec[after])) in labels.EMOTIONS else None


def _slash_note(au_text: str | None, aus: ParsedAUs) -> list[str]:
    """A label note where ``/`` joins two AUs (``12/25``): read as SAMM's sheets mean it, one or the other, judged by
    whichever the motion supports, while a manifest's author may have meant both."""
    either = [t.raw for t in aus.tokens if "/" in t.raw and any(a.au != t.au for a in t.alternatives)]
    if not either:
        return []
    return [f"aus {au_text!r}: {', '.join(repr(e) for e in either)} is read as one AU or the other (SAMM's "
            f"notation), judged by whichever the motion supports; write 12+25 where both acted"]


def _au_given(raw: Any) -> bool:
    """Whether the ``aus`` cell labels the clip: ``none`` says no AU acted, as in a database's sheet
    (:func:`facs.parse_aus`), although :func:`_common.is_blank` reads it as blank (a subject or clip ``none``);
    only an empty cell or a missing-value marker (``NA``, ``nan``) leaves the AUs to be inferred from motion."""
    return not c.is_blank(raw) or (isinstance(raw, str) and raw.strip().lower() == "none")


def _apex_on_onset(raw: Any, onset: int) -> bool:
    """The apex cell gave the onset frame (:func:`_common.parse_frames` drops it: it carries no timing)."""
    try:
        return c.to_int(raw) == onset
    except ValueError:
        return False


def container_fps(video: Path) -> float | None:
    """The frame rate a video file declares (its header; nothing is decoded), or None where it declares none
    or an implausible one (:func:`.frames.declared_fps`): a window's duration, and whether it is a micro-expression,
    depend on it; give the ``fps`` column where the file's rate is not the camera's."""
    cap = cv2.VideoCapture(str(video))
    try:
        return declared_fps(cap) if cap.isOpened() else None
    finally:
        cap.release()


def check_video_marks(r: c.Row, onset: int, apex: int | None, offset: int | None) -> Skip | None:
    """A video is only checked for existence here; its frame count is known once it is decoded."""
    if onset < 0:
        return r.skip("frames_out_of_range", f"onset frame {onset} is negative (video frames count from 0)",
                      "onset")
    if offset is not None and offset < onset:
        return r.skip("frames_out_of_range", f"offset frame {offset} comes before onset frame {onset}",
                      "offset")
    if apex is not None and (apex < onset or (offset is not None and apex > offset)):
        return r.skip("frames_out_of_range", c.apex_outside(apex, onset, offset), "apex")
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
