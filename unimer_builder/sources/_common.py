"""What the database readers share: frame folders, cells, sheets, row validation, and the one loop over a
label sheet's rows (:func:`sheet_rows`).

Nothing here knows one database: a spreadsheet-labelled database declares its columns and layout in a
:class:`SheetLayout` and :func:`read_sheet` does the rest; SMIC (folders only) and manifests (a CSV of paths)
use the helpers. Row numbers are always 1-based as a spreadsheet program shows them. Writing a database's
layout (synthetic clips) is :mod:`._layout`'s.
"""

from __future__ import annotations

import csv
import datetime
import io
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl

from .. import labels
from ..errors import InputError, UnusableInput
from ..facs import parse_aus
from ..labels import NO_EMOTION
from ..records import Clip, ParsedAUs, Skip, clip_id
from .fixes import apply_fixes

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"})
VIDEO_EXTS = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                        ".ts", ".mts", ".m2ts", ".3gp", ".ogv"})  # camcorders' MPEG-TS, phones' 3GP
# Cells that mean "no apex given": the apex is then estimated from motion.
NO_APEX = frozenset({"", "/", "-", "?", "nan", "none", "n/a", "na"})
_BLANK = frozenset({"", "nan", "none"})


# --- names and frames -----------------------------------------------------------------------------

def natural_key(name: str) -> list:
    """Sort key that orders ``img2`` before ``img10`` (``os.listdir`` order is arbitrary)."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", name) if t]


def _digit_runs(name: str) -> list[str]:
    return re.findall(r"\d+", Path(name).stem)


def frame_number(name: str, run: int = -1) -> int | None:
    """The frame number of an image file: the last run of digits in its stem (``006_05562`` -> 5562), or run
    ``run`` where a folder's names say so (:func:`_frame_run`)."""
    digits = _digit_runs(name)
    return int(digits[run]) if digits else None


class FrameFiles(dict):
    """Frame number -> path, and ``duplicates``: number -> every file carrying it where several do
    (``img2263.jpg`` and ``img02263.jpg``), which :func:`check_frames` refuses rather than pick one;
    ``ignored``: the folder's other images, not named as its frames (:func:`_frame_names`), for a note."""

    def __init__(self, *args, duplicates: dict[int, list[str]] | None = None, ignored: Sequence[str] = (),
                 **kw):
        super().__init__(*args, **kw)
        self.duplicates = dict(duplicates or {})
        self.ignored = list(ignored)


def _frame_run(names: list[str]) -> int:
    """Which run of digits numbers the frames: the last (:func:`frame_number`), unless every name has the same
    runs and the last is one number throughout while an earlier one varies (``frame16_face0.jpg``,
    ``img_16_224x224.png``: a face-crop tool's suffix), then the last run that varies. Every frame had read 0
    (or 224), and the clip was refused as nine files of one frame."""
    runs = [_digit_runs(n) for n in names]
    if len(runs) < 2 or len({len(r) for r in runs}) != 1 or len(runs[0]) < 2:
        return -1
    varies = [len({int(r[i]) for r in runs}) > 1 for i in range(len(runs[0]))]
    if varies[-1] or not any(varies):
        return -1
    return max(i for i, v in enumerate(varies) if v)


def _pattern(name: str) -> str:
    """A file's stem with its runs of digits as ``#`` (``img#``): what a folder's frames share, whatever their
    extension (a folder mixing ``.jpg`` and ``.jpeg`` frames keeps both)."""
    return re.sub(r"\d+", "#", Path(name).stem.lower())


def _frame_names(names: list[str]) -> tuple[list[str], list[str]]:
    """(frames, other images) of a folder's image names. The frames are the names of the pattern
    (:func:`_pattern`) more than half of them share: a stray image beside them (``thumbnail_640x360.jpg``
    beside ``img001.jpg``) had been read as frame 360, the clip's last. Without such a majority every name
    with digits is a frame; a name without digits never is."""
    top = max(Counter(map(_pattern, names)).items(), key=lambda kv: kv[1], default=("", 0))
    if "#" in top[0] and 2 * top[1] > len(names):
        keep = [n for n in names if _pattern(n) == top[0]]
    else:
        keep = [n for n in names if _digit_runs(n)]
    return keep, sorted(set(names) - set(keep), key=natural_key)


def list_frames(folder: Path) -> FrameFiles:
    """Frame number -> absolute path for every frame image in ``folder`` (one directory listing; images not
    named as the frames are left in ``ignored``, :func:`_frame_names`)."""
    base = Path(os.path.abspath(folder))
    try:
        names = [e.name for e in os.scandir(base)
                 if not e.name.startswith(".") and Path(e.name).suffix.lower() in IMAGE_EXTS and e.is_file()]
    except OSError:
        return FrameFiles()
    names, ignored = _frame_names(names)
    frames = FrameFiles(ignored=ignored)
    pos = _frame_run(names)
    for name in sorted(names, key=natural_key):
        n = frame_number(name, pos)  # pos is -1, or a run every name has
        if n is None:
            continue
        if n in frames:
            frames.duplicates.setdefault(n, [frames[n]]).append(str(base / name))
        else:
            frames[n] = str(base / name)
    return frames


def apex_outside(apex: int, onset: int, offset: int | None, last: int | None = None) -> str:
    """Why an apex is refused, naming the bound it passed (a sheet's offset of "/" had read "and offset None")."""
    end = f" and offset {offset}" if offset is not None else f" and the last frame ({last})" if last is not None else ""
    return f"apex frame {apex} is not between onset {onset}{end}"


def ignored_note(frames: dict[int, str]) -> list[str]:
    """A clip's note naming the images of its frame folder not read as frames (:func:`_frame_names`)."""
    ignored = getattr(frames, "ignored", [])
    if not ignored:
        return []
    example = next((Path(p).name for _, p in sorted(frames.items())), "")
    names = ", ".join(ignored[:5]) + (f" and {len(ignored) - 5} more" if len(ignored) > 5 else "")
    many = len(ignored) > 1
    return [f"{len(ignored)} image{'s' if many else ''} in the frame folder not named as its frames "
            f"({example} ...) {'were' if many else 'was'} not read: {names}"]


def duplicate_frames(r: Row, frames: dict[int, str], lo: int | None = None, hi: int | None = None,
                     field: str = "frames") -> Skip | None:
    """A Skip naming both files of the first frame number (within ``lo..hi``) that two files carry."""
    for n, paths in sorted(getattr(frames, "duplicates", {}).items()):
        if (lo is None or n >= lo) and (hi is None or n <= hi):
            return r.skip("duplicate_frame", f"frame {n} has {len(paths)} files: {' and '.join(paths)}; "
                                             f"remove all but one", field)
    return None


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders, natural-sorted."""
    try:
        found = [Path(e.path) for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []
    return sorted(found, key=lambda p: natural_key(p.name))


def dirs_below(root: Path, depth: int) -> list[Path]:
    """``root`` and every folder at most ``depth`` levels below it, shallow first, natural-sorted."""
    out, level = [root], [root]
    for _ in range(depth):
        level = [d for parent in level for d in subdirs(parent)]
        out.extend(level)
    return out


def find_files(root: Path, pattern: re.Pattern[str], depth: int = 2) -> list[Path]:
    """Files whose name matches ``pattern`` in ``root`` or up to ``depth`` folders below, shallow first."""
    found = []
    for d in dirs_below(root, depth):
        try:
            names = [e.name for e in os.scandir(d) if e.is_file()]
        except OSError:
            continue
        found.extend(d / n for n in sorted(names, key=natural_key)
                     if pattern.search(n) and not n.startswith(("~$", ".")))
    return found


class FolderFinder:
    """Finds ``<base>/<subject folder>/<clip folder>``, or a clip's own folder (:meth:`find_named`), under a root
    whose top levels vary between copies.

    The bases are the root and the folders up to ``depth`` below it, and as deep below each of ``also`` (folders
    inside the root: a release that keeps its sheet in ``part_A/annotation`` keeps its frames in
    ``part_A/data/part_A_split/part_A``, beyond ``depth`` from the folder above ``part_A``). ``prefer(path relative
    to root)`` orders them (lower first), e.g. raw frames before official crops; ``None`` leaves a base out
    (CAS(ME)^3's ``depth`` maps, named as its frames are). Listings are cached, so each row costs a few stats.
    """

    def __init__(self, root: Path, depth: int = 3, prefer=None, also: Sequence[Path] = ()):
        bases = list(dict.fromkeys(dirs_below(root, depth) + [d for top in also for d in dirs_below(top, depth)]))
        if prefer is not None:
            ranked = [(prefer(b.relative_to(root)), b) for b in bases]
            bases = [b for _, b in sorted(((r, b) for r, b in ranked if r is not None),
                                          key=lambda rb: (rb[0], len(rb[1].relative_to(root).parts)))]
        self.root, self.depth, self.also, self.bases = root, depth, list(also), bases
        self._names: dict[Path, set[str]] = {}

    def _children(self, d: Path) -> set[str]:
        if d not in self._names:
            self._names[d] = {p.name for p in subdirs(d)}
        return self._names[d]

    def _named(self, d: Path, name: str, exact: bool) -> str | None:
        """The child folder of ``d`` called ``name`` or, not ``exact``, the one that differs from it only in case
        (if only one does): the sheets and the folders of one release disagree in case (CAS(ME)^3 writes
        ``spNO.3 J`` beside folders ``j``; copies spell ``spNo``), and a case-insensitive filesystem would find
        it anyway."""
        kids = self._children(d)
        if name in kids:
            return name
        if exact:
            return None
        alike = [k for k in kids if k.casefold() == name.casefold()]
        return alike[0] if len(alike) == 1 else None

    def find(self, subject_names: Sequence[str], clip: str) -> Path | None:
        for base in self.bases:  # the preferred base first (raw frames before crops), in any case
            for exact in (True, False):
                for s in subject_names:
                    sub = self._named(base, s, exact)
                    name = None if sub is None else self._named(base / sub, clip, exact)
                    if name is not None:
                        return base / sub / name
        return None

    def find_named(self, names: Sequence[str]) -> Path | None:
        """A folder called one of ``names`` (in any case, as :meth:`find`) in a base: a clip's own folder, named
        for its subject, clip and onset (CAS(ME)^3's ``Part_A_ME_clip/frame/spNO.1_b_166``)."""
        for base in self.bases:
            for exact in (True, False):
                for n in names:
                    name = self._named(base, n, exact)
                    if name is not None:
                        return base / name
        return None

    def ambiguous(self, subject_names: Sequence[str], clip: str) -> list[Path]:
        """Folders that differ from the clip's only in case where more than one does (why :meth:`find` found
        none), for the message."""
        out = []
        for base in self.bases:
            for s in subject_names:
                subs = [k for k in self._children(base) if k.casefold() == s.casefold()]
                for sub in subs:
                    out += [base / sub / k for k in self._children(base / sub) if k.casefold() == clip.casefold()]
        return sorted(set(out)) if len(set(out)) > 1 else []

    def expected(self, subject_names: Sequence[str], clip: str) -> Path | None:
        """Where the clip folder was looked for in the first base holding the subject's folder, for the message;
        ``None`` where no base holds it (:meth:`searched` then says where it was looked for)."""
        for base in self.bases:
            for s in subject_names:
                sub = self._named(base, s, False)
                if sub is not None:
                    return base / sub / clip
        return None

    def searched(self) -> str:
        """Where the folders were looked for, in words."""
        below = f"in {self.root} and up to {self.depth} folder levels below it"
        return below + "".join(f", and as deep below {top}" for top in self.also)


# --- cells ----------------------------------------------------------------------------------------

def is_blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return str(v).strip().lower() in _BLANK


def emotion_text(v: Any) -> str | None:
    """An emotion cell as text, ``None`` for blanks and for cells that say no emotion was given (:data:`NO_EMOTION`)."""
    t = text(v)
    return None if t is None or t.lower() in NO_EMOTION else t


def not_a_word(emotion: str | None) -> str | None:
    """What an emotion cell holds where it is a number or an AU code (``12``, ``AU12``, ``6+12``) rather than a
    word: a manifest row's cells shifted by a column (``6,12`` unquoted in the ``aus`` cell) had built as emotion
    ``12``, the subject ``happiness``."""
    if emotion is None:
        return None
    if re.fullmatch(r"[+-]?(\d+([.,]\d*)?|[.,]\d+)", emotion):
        return "a number"
    aus = parse_aus(emotion)
    return "an AU code" if (aus.tokens and not aus.unparsed) or aus.unknown else None


def emotion_note(r: Row, emotion: str | None, field: str) -> list[str]:
    """A label note for an emotion that is no word :func:`labels.canonical` reads (``hapiness``, a sheet edited by
    hand): it stays a class of its own, and its answers say it; the note names the closest known word where one is
    close. A number or an AU code (classes coded by number, or the emotion and AU columns swapped) is noted as such;
    where a manifest row's other cells hold an emotion word, the manifest reader refuses it as shifted instead."""
    if emotion is None or labels.canonical(emotion) in labels.EMOTIONS:
        return []
    what = not_a_word(emotion)
    if what:
        return [f"{r.file}, row {r.row}, field '{field}': {emotion!r} is {what}, a class of its own, and the "
                f"answers say it as it is: write the class's word (or check that the emotion and AU columns are not "
                f"swapped)"]
    near = labels.nearest_emotion(emotion)
    hint = f"did you mean {near!r}?" if near else f"the words it knows: {', '.join(labels.EMOTIONS)}"
    return [f"{r.file}, row {r.row}, field '{field}': {emotion!r} is no emotion word the builder knows, so it is a "
            f"class of its own ({hint})"]


def text(v: Any) -> str | None:
    """A cell as text (``6.0`` -> ``"6"``), ``None`` for blanks."""
    if is_blank(v):
        return None
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, np.generic):
        return text(v.item())
    return str(v).strip()


def to_int(v: Any) -> int | None:
    """An integer cell; ``None`` when blank; ``ValueError`` when not a whole number."""
    if is_blank(v):
        return None
    if isinstance(v, bool):
        raise ValueError(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        if float(v).is_integer():
            return int(v)
        raise ValueError(v)
    s = str(v).strip()
    if re.fullmatch(r"[+-]?\d+(\.0*)?", s):
        return int(float(s)) if "." in s else int(s)
    raise ValueError(v)


def snake(name: str) -> str:
    s = re.sub(r"[^0-9a-zA-Z]+", "_", name.strip()).strip("_").lower()
    return {"objective_classes": "objective_class"}.get(s, s)


def norm_col(name: str) -> str:
    """Header comparison key: case, spaces, underscores and dashes ignored."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


# --- sheets ---------------------------------------------------------------------------------------

@dataclass
class Sheet:
    path: Path
    name: str
    header_row: int  # 1-based row of the header
    columns: list[str]  # pandas-style names: a blank header cell is "Unnamed: <j>"
    rows: list[tuple[int, list[Any]]]  # (1-based row, cell values) for every row below the header

    def locate(self, required: dict[str, Sequence[str]], optional: dict[str, Sequence[str]] | None = None
               ) -> dict[str, tuple[int, str]]:
        """Key -> (column index, header name). A missing required column makes the input unusable."""
        keys = {norm_col(c): j for j, c in reversed(list(enumerate(self.columns)))}
        out: dict[str, tuple[int, str]] = {}
        for key, aliases in {**required, **(optional or {})}.items():
            j = next((keys[norm_col(a)] for a in aliases if norm_col(a) in keys), None)
            if j is not None:
                out[key] = (j, self.columns[j])
            elif key in required:
                raise UnusableInput(
                    f"{self.path}: sheet {self.name!r} has no column {aliases[0]!r} (header on row "
                    f"{self.header_row}; columns found: {', '.join(c for c in self.columns if c)})")
        return out


def _column_names(values: Sequence[Any]) -> list[str]:
    names, seen = [], {}
    for j, v in enumerate(values):
        name = text(v) or f"Unnamed: {j}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        names.append(name)
    return names


def decode_text(path: Path, what: str) -> str:
    """A text table as spreadsheet programs save it: UTF-16 with its byte-order mark (Excel's "Unicode Text"),
    UTF-8 (with or without a BOM) or, failing that, Windows' cp1252 (Excel's "CSV")."""
    raw = path.read_bytes()
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as e:
            raise UnusableInput(f"{path}: the {what} starts as UTF-16 text but does not decode as it ({e}); save "
                                f"it as CSV UTF-8") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252")


def separator(text: str, lines: int = 50) -> str:
    """A CSV's separator (comma, semicolon or tab: Excel's CSV in a locale whose decimal mark is a comma, its
    "Unicode Text"): the one that splits most of the first ``lines`` records into one same number (above one) of
    fields; a comma on a tie. Line 1 alone does not tell: SAMM's title row, a sentence, may hold a comma in a
    semicolon export."""
    def agreeing(sep: str) -> int:
        counts: Counter[int] = Counter()
        try:
            for r in itertools.islice(csv.reader(io.StringIO(text, newline=""), delimiter=sep), lines):
                counts[len(r)] += bool(r)  # a blank line says nothing
        except csv.Error:  # a field over csv's size limit: judge by the records before it
            pass
        return max((n for k, n in counts.items() if k > 1), default=0)

    return max((",", ";", "\t"), key=lambda s: (agreeing(s), s == ","))


def _xls_cell(xlrd, book, cell) -> Any:
    """A legacy sheet's cell as openpyxl gives an .xlsx one: None for an empty cell and for an error (xlrd gives an
    error's numeric code: an apex of #N/A read as frame 42), a datetime for a date, a bool for a boolean."""
    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return None
    if cell.ctype == xlrd.XL_CELL_DATE:
        return xlrd.xldate_as_datetime(cell.value, book.datemode)
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    return cell.value


def read_table(path: Path, sheet: str | None = None) -> tuple[str, list[tuple[int, list[Any]]]]:
    """All rows of one sheet with their 1-based row numbers (blank rows kept, so numbers stay true)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":  # a sheet exported as CSV (a loader's copy): cells as text, as a spreadsheet shows them
        text = decode_text(path, "label sheet")
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=separator(text)))
        return path.stem, [(i, [v if v.strip() else None for v in r]) for i, r in enumerate(rows, start=1)]
    try:
        if suffix in (".xlsx", ".xlsm"):
            wb = openpyxl.load_workbook(path, data_only=True)
            ws = wb[sheet] if sheet in wb.sheetnames else wb.worksheets[0]
            rows = [(i, list(r)) for i, r in enumerate(
                ws.iter_rows(min_row=1, max_row=max(ws.max_row, 1), values_only=True), start=1)]
            name = ws.title
            wb.close()
            return name, rows
        if suffix == ".xls":  # Excel 97-2003 (MEAN's CASME2_label_Ver_2.xls, CAS(ME)^3's superseded v1)
            import xlrd

            book = xlrd.open_workbook(str(path), on_demand=True)
            ws = book.sheet_by_name(sheet) if sheet in book.sheet_names() else book.sheet_by_index(0)
            # every row with its own number, blank ones too (pandas skips blank lines: numbers drift past a gap);
            # an empty cell is None, as openpyxl gives it
            rows = [(i + 1, [_xls_cell(xlrd, book, ws.cell(i, j)) for j in range(ws.ncols)]) for i in range(ws.nrows)]
            name = ws.name
            book.release_resources()
            return name, rows
    except Exception as e:  # noqa: BLE001 - any parser failure means the file cannot be used
        raise UnusableInput(f"{path}: cannot read the spreadsheet ({type(e).__name__}: {e})") from e
    raise UnusableInput(f"{path}: not a spreadsheet (.xlsx, .xls or .csv)")


def open_sheet(path: Path, sheet: str | None, header_has: str, search_rows: int = 25) -> Sheet:
    """Open ``sheet`` (else the first) and find the header: the first row with a ``header_has`` cell."""
    name, rows = read_table(path, sheet)
    want = norm_col(header_has)
    for k, (rownum, values) in enumerate(rows[:search_rows]):
        if any(norm_col(text(v) or "") == want for v in values):
            return Sheet(path, name, rownum, _column_names(values), rows[k + 1:])
    raise UnusableInput(f"{path}: sheet {name!r} has no column {header_has!r} in its first {search_rows} rows")


def table_header(path: Path, columns: Iterable[Sequence[str]], search_rows: int = 25) -> list[str] | None:
    """The header cells of the table ``path`` (its first sheet) where one of its first rows has a column of each
    group of spellings (compared by :func:`norm_col`), else ``None`` (also for what is no readable sheet): what a
    table is, told by its columns rather than its name."""
    try:
        _, rows = read_table(Path(path))
    except UnusableInput:
        return None
    groups = [{norm_col(a) for a in g} for g in columns]
    for _, values in rows[:search_rows]:
        cells = [t for t in map(text, values) if t is not None]
        keys = {norm_col(t) for t in cells}
        if all(g & keys for g in groups):
            return [str(t) for t in cells]
    return None


# --- rows -> clips --------------------------------------------------------------------------------

def make_skip(clip_id: str, reason: str, message: str, file: str | Path = "", row: int | None = None,
              field: str = "") -> Skip:
    err = InputError(reason, message, str(file), row, field)
    return Skip(clip_id, reason, err.message, err.file, row, field)


@dataclass
class Row:
    """One label row being turned into a Clip: where it came from, for every message."""

    database: str
    file: str
    row: int | None
    id: str

    def skip(self, reason: str, message: str, field: str = "") -> Skip:
        return make_skip(self.id, reason, message, self.file, self.row, field)


def to_int_or_none(v: Any) -> int | None:
    """:func:`to_int`, None for what is no frame number."""
    try:
        return to_int(v)
    except ValueError:
        return None


def _not_a_frame(name: str, v: Any) -> str:
    """Why a mark's cell is no frame number, with what to write where it holds a time (``00:01:23.5``, an editor's
    timecode ``00:00:01:12``, ``2.35``, ``1.5s``, an Excel time or date cell): a window timed in a video player or an
    annotation tool (ELAN) is read as no frame; or a frame number with a thousands separator (Excel's ``#,##0``)."""
    text = str(v).strip()
    thousands = re.fullmatch(r"[+-]?\d{1,3}([.,]\d{3})+", text)
    timed = isinstance(v, (datetime.date, datetime.time, datetime.timedelta)) or re.fullmatch(
        r"\d+(:\d{1,2}){1,3}([.,]\d+)?|[+-]?\d*[.,]?\d+\s*s|[+-]?\d*[.,]\d*[1-9]\d*", text)
    frames = ": marks are frame numbers, not times; write the frame (seconds x the frame rate, the first frame 0 for a video)"
    hint = (f": if it is frame {re.sub('[.,]', '', text)} written with a thousands separator, write it without one"
            f"{frames.replace(':', ';', 1)}" if thousands else frames if timed else "")
    return f"{name} '{text}' is not a frame number{hint}"


def parse_frames(r: Row, cells: dict[str, Any], names: dict[str, str], need_offset: bool = True
                 ) -> tuple[int, int | None, int | None] | Skip:
    """Onset, apex, offset from their cells; ``/`` or blank apex -> ``None``; apex == onset -> ``None``; a clip
    of one frame (offset == onset) is skipped."""
    try:
        onset = to_int(cells.get("onset"))
    except ValueError:
        return r.skip("bad_label", _not_a_frame("onset", cells.get("onset")), names["onset"])
    if onset is None:
        return r.skip("bad_label", "onset frame is missing", names["onset"])
    raw_apex = cells.get("apex")
    apex = None
    if not (is_blank(raw_apex) or str(raw_apex).strip().lower() in NO_APEX):
        try:
            apex = to_int(raw_apex)
        except ValueError:
            return r.skip("bad_label", _not_a_frame("apex", raw_apex), names.get("apex", "apex"))
    raw_offset = cells.get("offset")
    try:  # "/" or "-" says "not given" here as in the apex: a manifest's offset then defaults to the last frame
        offset = None if str(raw_offset).strip().lower() in NO_APEX else to_int(raw_offset)
    except ValueError:
        return r.skip("bad_label", _not_a_frame("offset", cells.get("offset")),
                      names.get("offset", "offset"))
    if offset is None and need_offset:
        return r.skip("bad_label", "offset frame is missing", names.get("offset", "offset"))
    if offset is not None and offset == onset:
        return r.skip("frames_out_of_range", f"offset frame {offset} is the onset frame: a clip of one frame holds "
                      "no motion", names.get("offset", "offset"))
    if apex == onset:
        apex = None  # a label apex on the onset frame carries no timing: estimate it
    return onset, apex, offset


def check_frames(r: Row, frames: dict[int, str], folder: Path, onset: int, apex: int | None,
                 offset: int | None, names: dict[str, str]) -> Skip | None:
    """Onset <= apex <= offset, all inside the frames present, and each of their files there."""
    if not frames:
        return r.skip("missing_frame", f"clip folder {folder} holds no frame images", names["onset"])
    lo, hi = min(frames), max(frames)
    marks = [("onset", onset), ("apex", apex), ("offset", offset)]
    for key, n in marks:
        if n is not None and not lo <= n <= hi:
            return r.skip("frames_out_of_range",
                          f"{key} frame {n} is outside the frames present in {folder} ({lo}..{hi})", names[key])
    if offset is not None and offset < onset:
        return r.skip("frames_out_of_range", f"offset frame {offset} comes before onset frame {onset}",
                      names["offset"])
    if apex is not None and not onset <= apex <= (offset if offset is not None else hi):
        return r.skip("frames_out_of_range", apex_outside(apex, onset, offset, hi), names["apex"])
    for key, n in marks:
        if n is not None and n not in frames:
            return r.skip("missing_frame", f"the file of {key} frame {n} is missing from {folder}", names[key])
    return duplicate_frames(r, frames, onset, offset if offset is not None else hi, names.get("onset", "frames"))


def parse_au_cell(r: Row, raw: Any, field: str) -> tuple[str | None, ParsedAUs] | Skip:
    """The verbatim AU string and its parse; AU-shaped codes FACS does not define cost the row."""
    au_text = None if raw is None or (isinstance(raw, float) and math.isnan(raw)) else str(raw)
    if au_text is not None and not au_text.strip():
        au_text = None
    if isinstance(raw, float) and raw.is_integer():
        au_text = str(int(raw))  # a lone AU typed as a number: "12", not "12.0"
    aus = parse_aus(au_text)
    if aus.unknown:
        return r.skip("unknown_au", f"AU label {au_text!r} names codes FACS does not define: "
                                    f"{', '.join(aus.unknown)}", field)
    return au_text, aus


def unparsed_note(field: str, au_text: str | None, aus: ParsedAUs) -> list[str]:
    """A label note for the text of an AU cell that was not read as AUs (kept verbatim in ``au_unparsed``):
    ``12 and 6`` gives no AU, and a clip whose label says nothing checkable must not pass unremarked."""
    if not aus.unparsed:
        return []
    what = "no AU was read from it" if not aus.tokens else \
        f"read as {' + '.join(t.raw for t in aus.tokens)}"
    verb = "is not an AU code" if len(aus.unparsed) == 1 else "are not AU codes"
    return [f"{field} {au_text!r}: {', '.join(repr(u) for u in aus.unparsed)} {verb} ({what})"]


def media(clip: Clip) -> str | None:
    """The real path of the video or frame folder a clip is cut from."""
    if clip.video:
        return os.path.realpath(clip.video)
    first = next(iter(clip.frames.values()), None)
    return os.path.realpath(os.path.dirname(first)) if first else None


def dedupe(items: Iterable[Clip | Skip]) -> Iterator[Clip | Skip]:
    """Pass clips through once; a second clip with the same id becomes a Skip naming both rows. Manifest rows that
    name different videos or folders are no repeats of each other (a ``clip`` given twice): the message says so."""
    seen: dict[str, Clip] = {}
    for it in items:
        if isinstance(it, Clip):
            first = seen.get(it.clip_id)
            if first is not None and it.database == "manifest" and media(it) != media(first):
                yield make_skip(it.clip_id, "duplicate_clip",
                                f"clip {it.clip_id} is also the id of row {first.source_row} of {first.source_file}, "
                                f"which names another {'video' if first.video else 'folder'} ({media(first)}; this "
                                f"row: {media(it)}): give each its own name in a 'clip' column",
                                it.source_file, it.source_row, "clip")
                continue
            if first is not None:
                # SMIC's clips are folders, no rows: a copy of a clip's folder repeats that folder
                why = (f"clip {it.clip_id} repeats row {first.source_row} of {first.source_file}"
                       if first.source_row is not None else
                       f"clip {it.clip_id} repeats the clip read from {media(first) or first.source_file}")
                # a new user's two windows of one video from the same onset, named alike: not a repeat at all
                other = any(getattr(it, k) != getattr(first, k) for k in ("onset", "apex", "offset", "au_text",
                                                                          "emotion"))
                named = other and it.database == "manifest"
                if other:
                    why += ("; the rows give another window or label under the same clip id: give each its own name"
                            + (" in a 'clip' column" if named else ""))
                yield make_skip(it.clip_id, "duplicate_clip", why, it.source_file, it.source_row,
                                "clip" if named else "")
                continue
            seen[it.clip_id] = it
        yield it


def find_sheet(root: Path, pattern: re.Pattern[str]) -> Path | None:
    """The label spreadsheet matching ``pattern`` in ``root`` or two levels below: the shallowest, then the
    highest version (``_v2`` over ``_v1``: CAS(ME)^3 ships its superseded v1 ``.xls`` beside v2), then ``.xlsx``
    over ``.xls``, then the last name."""
    found = find_files(Path(root), pattern, depth=2) if Path(root).is_dir() else []
    if not found:
        return None

    def key(p: Path) -> tuple:
        versions = re.findall(r"(?i)(?:^|[_\s-])v(\d+)", p.stem)
        named = pattern.search(p.name)  # a copy's prefix ("old_") does not decide
        return (-len(p.parts), int(versions[-1]) if versions else 0, p.suffix.lower() == ".xlsx",
                named.group(0) if named else p.name)

    return max(found, key=key)


SHEET_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".csv")


def locate_sheet(root: Path, find) -> Path | None:
    """The label sheet of the database at ``root``: ``root`` itself where it is a spreadsheet file (the sheet given,
    its frames in its folder), else ``find(root)`` (in it or two levels below), else one beside the folder (a root
    given as the frames' own folder, ``CASME2_RAW_selected``, with the coding sheet next to it)."""
    root = Path(root)
    if root.is_file():
        return root if root.suffix.lower() in SHEET_SUFFIXES else None
    found = find(root)
    for parent in dict.fromkeys((root.absolute().parent, root.resolve().parent)):  # a link's own folder first
        if found is None and parent != root.absolute() and parent != root.resolve():
            above = find(parent)
            found = above if above is not None and above.parent == parent else None
    return found


def open_label_sheet(root: Path, what: str, find, described: str, sheet_name: str | None,
                     required: Sequence[str]) -> tuple[Path, Sheet, dict[str, tuple[int, str]]]:
    """Frames root, sheet and required columns of a spreadsheet-labelled database, or ``UnusableInput``
    naming what is missing (the root, the sheet, a column). The sheet is :func:`locate_sheet`'s (``find(root)``
    searches a folder); given as the root, its folder holds the frames."""
    root = require_root(Path(root), what)
    path = locate_sheet(root, find)
    if path is None:
        if root.is_file():
            raise UnusableInput(f"{root}: not a {what} label sheet (a spreadsheet: {', '.join(SHEET_SUFFIXES)}); give "
                                f"the sheet, or the folder that holds it")
        raise UnusableInput(f"{root}: no {what} label sheet ({described}) in it, two levels below or beside it; "
                            f"give the sheet itself if it has another name or lies elsewhere")
    sheet = open_sheet(path, sheet_name, "Filename")
    return (root.parent if root.is_file() else root), sheet, sheet.locate(required)


def require_root(root: Path, what: str) -> Path:
    root = Path(root)
    if not root.exists():
        raise UnusableInput(f"{root}: the {what} root does not exist")
    if root.is_dir() and not any(True for _ in os.scandir(root)):
        raise UnusableInput(f"{root}: the {what} root is empty")
    return root


def build_clip(r: Row, *, subject: str, clip: str, cells: dict[str, Any], names: dict[str, str],
               find_folder, fps: float | None, extra: dict[str, Any], restrict: bool = False,
               lister=list_frames) -> Clip | Skip:
    """The shared tail of every spreadsheet row: frames, AUs, folder, frame checks -> Clip or Skip.

    ``find_folder()`` returns the clip folder or a Skip. ``restrict`` keeps only onset..offset in
    ``Clip.frames`` (CAS(ME)^3 folders hold a whole stimulus video shared by several clips);
    ``lister(folder)`` lists the frames (a reader may pass a cached one for such shared folders).
    """
    marks = parse_frames(r, cells, names)
    if isinstance(marks, Skip):
        return marks
    onset, apex, offset = marks
    notes = []
    if apex is None and not is_blank(cells.get("apex")) and to_int_or_none(cells.get("apex")) == onset:
        # parse_frames drops an apex on the onset frame (it carries no timing): say so, as for one outside
        notes.append(f"{names['apex']} {onset} is the {names['onset']} too: the apex is estimated from motion")
    if apex is not None and offset is not None and onset <= offset and not onset <= apex <= offset:
        # The official releases hold such rows (SAMM 028_4_1 and 032_3_1, both in the MEGC2019 composite list;
        # CAS(ME)^3 spNO.149 d): the onset..offset span stands, the apex within it is estimated from motion,
        # as for an apex of "/".
        notes.append(f"{names['apex']} {apex} is not between {names['onset']} {onset} and {names['offset']} "
                     f"{offset}: the apex is estimated from motion")
        apex = None
    au_text, aus = None, ParsedAUs()
    if "aus" in names:
        au = parse_au_cell(r, cells.get("aus"), names["aus"])
        if isinstance(au, Skip):
            return au
        au_text, aus = au
        notes += unparsed_note(names["aus"], au_text, aus)
    folder = find_folder()
    if isinstance(folder, Skip):
        return folder
    frames = lister(folder)
    if apex is not None and apex not in frames and frames and min(frames) <= apex <= max(frames) \
            and onset in frames and (offset is None or offset in frames):
        # The window's own frames are there but the apex's file is not (a copy that lost one image): its span
        # stands and the apex within it is estimated from motion, as for an apex of "/" (a loader of the field
        # takes the window's middle frame instead)
        notes.append(f"the file of {names['apex']} {apex} is missing from the clip's folder: the apex is estimated "
                     f"from motion")
        apex = None
    bad = check_frames(r, frames, folder, onset, apex, offset, names)
    if bad is not None:
        return bad
    notes += ignored_note(frames)
    emotion = emotion_text(cells.get("emotion"))
    notes += emotion_note(r, emotion, names.get("emotion", "emotion"))
    if restrict and offset is not None:
        frames = {n: p for n, p in frames.items() if onset <= n <= offset}
    if cells.get("_fixes"):
        extra = {**extra, "label_fixes": list(cells["_fixes"])}
    if notes:
        extra = {**extra, "label_notes": notes}
    return Clip(
        database=r.database, subject=subject, clip=clip, onset=onset, apex=apex, offset=offset,
        frames=frames, emotion=emotion, au_text=au_text, aus=aus, fps=fps,
        source_file=r.file, source_row=r.row, extra=extra,
    )


def extra_cells(sheet: Sheet, values: list[Any], used: set[int]) -> dict[str, Any]:
    """Every other non-blank cell of the row (objective class, notes, ...) under a snake_case key."""
    return {snake(sheet.columns[j]): text(v) for j, v in enumerate(values)
            if j not in used and j < len(sheet.columns) and not is_blank(v)}


def row_cells(values: list[Any], cols: dict[str, tuple[int, str]]) -> dict[str, Any]:
    return {k: (values[j] if j < len(values) else None) for k, (j, _) in cols.items()}


# --- the sheet-row loop ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SheetLayout:
    """What a spreadsheet-labelled database declares; :func:`read_sheet` does the rest."""

    database: str  # "casme2"
    what: str  # its name in messages ("CASME II")
    fps: float
    find_sheet: Callable[[Path], Path | None]  # the label sheet under a root
    described: str  # the sheet as a message describes it ("CASME2-coding*.xlsx")
    sheet_name: str | None  # the sheet holding the labels (None: the first)
    required: dict[str, tuple[str, ...]]  # key -> header spellings: subject, filename, onset, apex, offset, aus, emotion
    frames_dir: str  # the folder of subject folders in the release (named where a clip's folder is found nowhere)
    # The subject cell -> (subject as Clip.subject spells it, the folder spellings to look for), or a
    # message saying why the cell is no subject.
    subject: Callable[[str | None], tuple[str, tuple[str, ...]] | str]
    clip_is: str = "the clip name"  # what the Filename cell names, for messages
    prefer: Callable[[Path], int | None] | None = None  # order of the bases clip folders are looked in (None: never)
    frames_subdir: str | None = None  # frames in <clip folder>/<this> when it exists (CAS(ME)^3: color)
    # One folder holds several clips (a stimulus video), told apart by onset: a clip keeps only its own
    # onset..offset frames and the folder is listed once.
    shared_folders: bool = False
    # A clip's own folder, looked for where no <subject>/<clip> folder is: its name from the row's subject, clip
    # and onset cells (CAS(ME)^3's ME-clip release, ``Part_A_ME_clip/frame/spNO.1_b_166``: "{subject}_{clip}_{onset}").
    clip_folder: str | None = None


def read_sheet(root: Path, layout: SheetLayout) -> Iterator[Clip | Skip]:
    """Clips and skips of a spreadsheet-labelled database, in the sheet's row order."""
    root, sheet, cols = open_label_sheet(root, layout.what, layout.find_sheet, layout.described,
                                         layout.sheet_name, layout.required)
    return dedupe(sheet_rows(root, sheet, cols, layout))


def sheet_rows(root: Path, sheet: Sheet, cols: dict[str, tuple[int, str]], layout: SheetLayout
               ) -> Iterator[Clip | Skip]:
    """One Clip or Skip per non-blank row: subject and clip name, label fixes, then :func:`build_clip`."""
    # the frames also from the folder above the sheet's own, where that lies inside the root: a release keeps its
    # sheet in part_A/annotation and its frames in part_A/data/part_A_split/part_A (CAS(ME)^3 as MEB unpacks it)
    top = sheet.path.parent.parent
    inside = Path(os.path.abspath(root)) in Path(os.path.abspath(top)).parents
    finder = FolderFinder(root, depth=3, prefer=layout.prefer, also=[top] if inside else [])
    names = {k: v[1] for k, v in cols.items()}
    used = {j for j, _ in cols.values()}
    file = str(sheet.path)
    listed: dict[Path, dict[int, str]] = {}

    def lister(folder: Path) -> dict[int, str]:
        if not layout.shared_folders:
            return list_frames(folder)
        if folder not in listed:  # one listing per shared folder
            listed[folder] = list_frames(folder)
        return listed[folder]

    for rownum, values in sheet.rows:
        if all(is_blank(v) for v in values):
            continue
        filled = [v for v in values if not is_blank(v)]
        if len(filled) == 1 and isinstance(filled[0], str) and len(filled[0].split()) >= 3 \
                and len(re.findall(r"\d+", filled[0])) < 2:
            continue  # a sentence written under or beside the table ("Note: frame numbers refer to ..."), no row
        cells = row_cells(values, cols)
        raw, clip = text(cells["subject"]), text(cells["filename"])
        got = layout.subject(raw)
        subject, spellings = got if isinstance(got, tuple) else (raw or "", ())
        r = Row(layout.database, file, rownum, clip_id(layout.database, subject, clip or "", text(cells["onset"])))
        if isinstance(got, str):
            yield r.skip("bad_label", got, names["subject"])
            continue
        if not clip:
            yield r.skip("bad_label", f"{layout.clip_is} is missing", names["filename"])
            continue

        # the onset as the folder names it: a whole number (a sheet saved by pandas writes 166 as "166.0")
        onset_name = to_int_or_none(cells["onset"])
        onset_name = text(cells["onset"]) if onset_name is None else str(onset_name)
        own = [] if layout.clip_folder is None else list(dict.fromkeys(
            layout.clip_folder.format(subject=s, clip=clip, onset=onset_name) for s in spellings))

        def folder(spellings=spellings, subject=subject, clip=clip, r=r, own=own):
            found = finder.find(spellings, clip) or (finder.find_named(own) if own else None)
            if found is None:
                alike = finder.ambiguous(spellings, clip)
                if alike:
                    return r.skip("missing_path", f"clip folder {subject}/{clip} is none of {len(alike)} folders that "
                                  f"differ from it only in case: {', '.join(map(str, alike))}", names["filename"])
                where = finder.expected(spellings, clip)
                if where is not None:  # the subject's folder is there, the clip's is not
                    return r.skip("missing_path", f"clip folder {where} does not exist", names["filename"])
                also = "".join(f" nor a folder {n!r}," for n in own)
                return r.skip("missing_path", f"no folder {' or '.join(map(repr, spellings))} holding a folder "
                              f"{clip!r} (the release's {layout.frames_dir}/<subject>/<clip>),{also} "
                              f"{finder.searched()}", names["filename"])
            inner = found / layout.frames_subdir if layout.frames_subdir else found
            return inner if inner.is_dir() else found

        yield build_clip(r, subject=subject, clip=clip,
                         cells=apply_fixes(layout.database, subject, clip, cells, onset=cells["onset"]),
                         names=names, find_folder=folder, fps=layout.fps, extra=extra_cells(sheet, values, used),
                         restrict=layout.shared_folders, lister=lister)
