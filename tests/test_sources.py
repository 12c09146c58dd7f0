"""Database readers and layout writers: round trips, real-layout quirks, and bad input named precisely."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest

from unimer_builder import sources
from unimer_builder.errors import InputError, UnusableInput
from unimer_builder.records import Clip, Skip, SynthClip
from unimer_builder.sources import _common, _layout, casme2, casme3, fixes, manifest, samm, smic
from unimer_builder.sources.frames import FrameReader

EMOTIONS = {
    "casme2": ["happiness", "disgust", "repression"],
    "samm": ["Anger", "Happiness", "Other"],
    "smic": ["negative", "positive", "surprise"],
    "casme3": ["Others", "others", "disgust"],
    "manifest": ["happy", "sad", "surprise"],
}
AUS = ["4+L10", "R6+R12", "1+R2+25"]


def synth(fmt: str, specs=((1, 1, 10), (1, 2, 30), (2, 1, 100)), n: int = 6) -> list[SynthClip]:
    out = []
    for k, (subject, index, first) in enumerate(specs):
        frames = [np.full((32, 32), 40 + 30 * i, np.uint8) for i in range(n)]
        out.append(SynthClip(subject=subject, index=index, frames=frames, first_frame=first, apex_offset=2,
                             emotion=EMOTIONS[fmt][k % 3], au_text=None if fmt == "smic" else AUS[k % 3]))
    return out


def read_all(root: Path, fmt: str) -> tuple[list[Clip], list[Skip]]:
    items = list(sources.read_clips(root, fmt))
    return [i for i in items if isinstance(i, Clip)], [i for i in items if isinstance(i, Skip)]


def set_cell(path: Path, sheet: str | None, row: int, header: str, value) -> None:
    """Edit one cell of a written sheet, finding the column by its header text."""
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet] if sheet else wb.worksheets[0]
    col = None
    for r in ws.iter_rows(min_row=1, max_row=25):
        for cell in r:
            if cell.value == header:
                col = cell.column
    assert col is not None, header
    ws.cell(row=row, column=col).value = value  # cell(value=None) would leave the cell as it was
    wb.save(path)


def assert_names(skip: Skip, file: Path | str, row: int | None, field: str) -> None:
    assert Path(skip.file) == Path(file)
    assert skip.row == row and skip.field == field
    assert str(file) in skip.message
    if row is not None:
        assert f"row {row}" in skip.message
    assert repr(field) in skip.message


# --- round trips ----------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sources.FORMATS)
def test_round_trip(tmp_path, fmt):
    clips = synth(fmt)
    ids = sources.write_layout(tmp_path, fmt, clips)
    assert sources.detect_format(tmp_path) == fmt
    got, skips = read_all(tmp_path, fmt)
    assert skips == []
    assert [c.clip_id for c in got] == ids
    assert len(set(ids)) == len(ids)
    for c, s in zip(got, clips, strict=True):
        assert c.database == fmt
        assert c.onset == s.onset and c.offset == s.offset
        assert c.apex == (None if fmt == "smic" else s.apex)
        assert c.emotion == s.emotion
        assert c.au_text == s.au_text
        assert sorted(c.frames) == list(range(s.onset, s.offset + 1))
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in c.frames.values())
        assert c.fps and c.fps > 0
        assert c.source_file
        if fmt != "smic":
            assert c.source_row is not None and [t.au for t in c.aus.tokens]
        img = FrameReader(c).get(c.onset)
        assert img.shape == (32, 32) and img.dtype == np.uint8
        assert abs(int(img.mean()) - 40) <= 3


def test_round_trip_spellings(tmp_path):
    ids = {fmt: sources.write_layout(tmp_path / fmt, fmt, synth(fmt)) for fmt in sources.FORMATS}
    assert ids["casme2"][0] == "casme2/sub01/EP01_01f"
    assert ids["samm"][0] == "samm/001/001_1_1"
    assert ids["smic"][0] == "smic/HS/s1/s1_ne_01"
    assert ids["casme3"][0] == "casme3/spNO.1/a/10"
    assert ids["manifest"][0] == "manifest/S01/c01"
    assert (tmp_path / "casme2/CASME2_RAW_selected/sub01/EP01_01f/img10.jpg").is_file()
    assert (tmp_path / "samm/SAMM/001/001_1_1/001_00010.jpg").is_file()
    assert (tmp_path / "smic/SMIC_all_cropped/HS/s1/micro/negative/s1_ne_01/reg_00010.bmp").is_file()
    assert (tmp_path / "casme3/part_A/spNO.1/a/color/10.jpg").is_file()
    assert (tmp_path / "manifest/clips/S01/c01/0010.png").is_file()


# --- whole input unusable -------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", sources.FORMATS)
def test_empty_or_missing_root(tmp_path, fmt):
    with pytest.raises(UnusableInput, match="empty"):
        list(sources.read_clips(tmp_path, fmt))
    with pytest.raises(UnusableInput, match="does not exist"):
        list(sources.read_clips(tmp_path / "nope", fmt))
    (tmp_path / "readme.txt").write_text("no labels here")
    with pytest.raises(UnusableInput):
        list(sources.read_clips(tmp_path, fmt))


def test_unknown_format(tmp_path):
    with pytest.raises(UnusableInput, match="unknown database format"):
        sources.read_clips(tmp_path, "mmew")
    assert sources.detect_format(tmp_path) is None


@pytest.mark.parametrize("fmt, sheet, header", [
    ("casme2", None, "Estimated Emotion"),
    ("samm", "MICRO_ONLY", "Onset Frame"),
    ("casme3", "label", "AU"),
])
def test_sheet_missing_column(tmp_path, fmt, sheet, header):
    sources.write_layout(tmp_path, fmt, synth(fmt))
    path = next(tmp_path.glob("*.xlsx"))
    wb = openpyxl.load_workbook(path)
    ws = wb[sheet] if sheet else wb.worksheets[0]
    for r in ws.iter_rows(min_row=1, max_row=25):
        for cell in r:
            if cell.value == header:
                cell.value = "Something else"
    wb.save(path)
    with pytest.raises(UnusableInput) as e:
        sources.read_clips(tmp_path, fmt)
    assert str(path) in str(e.value) and repr(header) in str(e.value)


def test_manifest_missing_column(tmp_path):
    sources.write_layout(tmp_path, "manifest", synth("manifest"))
    df = (tmp_path / "manifest.csv").read_text().replace("onset", "start")
    (tmp_path / "manifest.csv").write_text(df)
    with pytest.raises(UnusableInput, match="'onset'") as e:
        sources.read_clips(tmp_path, "manifest")
    assert "manifest.csv" in str(e.value)


# --- one bad row: a Skip naming file, row and field; the rest still reads -------------------------

def _casme2(tmp_path):
    ids = sources.write_layout(tmp_path, "casme2", synth("casme2"))
    return ids, tmp_path / casme2.SHEET_NAME


def test_missing_frame(tmp_path):
    """A missing onset file skips its row; a missing apex file, its window's other frames there, is estimated with a
    note, as an apex of "/" is (it skipped the row)."""
    ids, sheet = _casme2(tmp_path)
    (tmp_path / "CASME2_RAW_selected/sub01/EP02_01f/img32.jpg").unlink()  # the apex of row 3
    (tmp_path / "CASME2_RAW_selected/sub02/EP01_01f/img100.jpg").unlink()  # the onset of row 4
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == [ids[0], ids[1]]
    assert (got[1].onset, got[1].apex, got[1].offset) == (30, None, 35)
    assert got[1].extra["label_notes"][0].startswith("the file of ApexFrame 32 is missing from ")
    assert got[1].extra["label_notes"][0].endswith(": the apex is estimated from motion")
    (s,) = skips
    assert s.reason == "frames_out_of_range" and s.clip_id == ids[2]  # the folder's first frame: now beyond it
    assert_names(s, sheet, 4, "OnsetFrame")


def test_the_label_sheet_given_itself_beside_or_under_another_name(tmp_path):
    """An independent check of the readers on the real layouts: the sheet could not be pointed at (given itself, it
    "held no sheet"; without --format it was read as a manifest and its columns called typos), a root given as the
    frames' folder with the sheet beside it was refused, ini17's "[modified]CASME2-coding-20190701.xlsx" was not
    found, and a build named neither the sheet nor the frames it read, two sheets present."""
    from unimer_builder.sources import detect_format, label_file, provenance

    ids, sheet = _casme2(tmp_path)
    got, skips = read_all(sheet, "casme2")
    assert skips == [] and [c.clip_id for c in got] == ids and detect_format(sheet) == "casme2"
    got, skips = read_all(tmp_path / casme2.FRAMES_DIR, "casme2")  # the frames' folder, the sheet beside it
    assert skips == [] and [c.clip_id for c in got] == ids
    assert label_file(tmp_path / casme2.FRAMES_DIR, "casme2") == sheet
    assert detect_format(tmp_path / casme2.FRAMES_DIR) == "casme2"
    # a published report names the sheet beside the root by a relative path, not this machine's
    from unimer_builder.report import relative_to_root

    frame = tmp_path / casme2.FRAMES_DIR / "sub01" / "EP02_01f" / "img31.jpg"
    skip = Skip("casme2/sub01/EP02_01f", "bad_frame", f"{sheet}, row 3, field 'frame': {frame}: does not decode",
                str(sheet), 3, "frame")
    d = relative_to_root(skip, tmp_path / casme2.FRAMES_DIR)
    assert d["file"] == f"../{sheet.name}" and str(tmp_path) not in d["message"], d
    assert d["message"] == f"../{sheet.name}, row 3, field 'frame': sub01/EP02_01f/img31.jpg: does not decode"
    from unimer_builder.report import _prefixes, _relative

    pre, near = _prefixes(tmp_path / casme2.FRAMES_DIR), f"{tmp_path}/{casme2.FRAMES_DIR}"
    assert _relative(f"in {near}2/x.jpg and /mnt{near}/y.jpg", pre) == \
        f"in ../{casme2.FRAMES_DIR}2/x.jpg and /mnt{near}/y.jpg"  # whole components, from a path's start
    assert _relative(f"see {near}.", pre) == "see .."  # the root (.), then the sentence's full stop
    link = tmp_path / "elsewhere" / "frames"  # a link to the frames: the sheet beside the link is not beside them
    link.parent.mkdir()
    link.symlink_to(tmp_path / casme2.FRAMES_DIR)
    assert label_file(link, "casme2") == sheet  # the target's folder holds it
    shutil.copy(sheet, link.parent / "CASME2-coding-20200101.xlsx")
    assert label_file(link, "casme2") == link.parent / "CASME2-coding-20200101.xlsx"  # the link's own first
    shutil.rmtree(link.parent)
    renamed = sheet.rename(tmp_path / "[modified]CASME2-coding-20190701.xlsx")
    assert detect_format(tmp_path) == "casme2" and label_file(tmp_path, "casme2") == renamed
    for name, fmt in (("copy of SAMM_Micro_FACS_Codes_v2.xlsx", "samm"),
                      ("x_cas(me)3_part_A_ME_label_JpgIndex_v2.csv", "casme3")):  # prefixed: told by the name
        (tmp_path / "named" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "named" / name).write_bytes(b"")
        assert detect_format(tmp_path / "named" / name) == fmt
    shutil.rmtree(tmp_path / "named")
    old = tmp_path / "old_CASME2-coding-20140508.xlsx"  # a prefix does not outrank a newer date
    shutil.copy(renamed, old)
    assert label_file(tmp_path, "casme2") == renamed
    old.unlink()
    with pytest.raises(UnusableInput, match="not a CASME II label sheet"):
        list(sources.read_clips(tmp_path / casme2.FRAMES_DIR / "sub01" / "EP02_01f" / "img30.jpg", "casme2"))
    # the report's provenance: the sheet read, its hash, the frames' folder, and the other sheet present
    shutil.copy(renamed, tmp_path / "CASME2-coding-20140508.xlsx")
    got, _ = read_all(tmp_path, "casme2")
    inputs, notes = provenance(tmp_path, "casme2", got)
    assert inputs["label_file"] == renamed.name and len(inputs["label_sha256"]) == 64
    assert inputs["frames"] == casme2.FRAMES_DIR
    assert notes == [f"the label sheet read is {renamed.name}; also present, not read: CASME2-coding-20140508.xlsx "
                     f"(give the sheet itself as the root to read another; its folder holds the frames)"]


def test_a_database_sheet_under_another_name_is_told_by_its_columns_not_called_a_manifest_with_typos(tmp_path):
    """HTNet commits CAS(ME)^3's sheet as cas(me)3_part_A_edited.csv (header below, real rows); given without
    --format it was read as a manifest and the user told to rename "'Filename' (probably 'path'), 'AU' (probably
    'aus')". CAS(ME)^3 Part C's CAS(ME)3_part_C_ME.xlsx (sub, count, au, onset, offset) was told to rename 'sub', and
    with --format casme3 had "no column 'Filename'"."""
    from unimer_builder.pipeline import read_input

    header = ("Subject,Filename,Onset,Apex,Offset,AU,Objective class,emotion,label_for_7,label_for_3,imagename_apex,"
              "imagename_onset,imagename_apex_offset")
    rows = ["spNO.1,b,166,175,179,4,III,disgust,4,0,spNO.1/b/color/175.jpg,spNO.1/b/color/166.jpg,"
            "spNO.1/b/color/179.jpg",
            "spNO.10,k,735,737,743,L2,VII,surprise,2,2,spNO.10/k/color/737.jpg,spNO.10/k/color/735.jpg,"
            "spNO.10/k/color/743.jpg"]
    for row in rows:
        sub, stim, on, _, off = row.split(",")[:5]
        _casme3_frames(tmp_path / "part_A" / sub / stim / "color", int(on), int(off))
    sheet = tmp_path / "cas(me)3_part_A_edited.csv"
    sheet.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    told = re.escape(f"{sheet}: not a manifest but a CAS(ME)^3 label sheet by its columns (Subject, Filename, Onset, "
                     f"Apex, Offset, AU, emotion): build it with --format casme3 (its folder holds the frames)")
    for fmt in (None, "manifest"):
        with pytest.raises(UnusableInput, match=f"^{told}$"):
            read_input(sheet, fmt)
    got, skips = read_all(sheet, "casme3")  # and with it, built
    assert skips == [] and [c.clip_id for c in got] == ["casme3/spNO.1/b/166", "casme3/spNO.10/k/735"]
    # its folder given: the format cannot be told by file names, and the error names the sheet its columns tell
    with pytest.raises(UnusableInput, match="cannot tell the database format") as e:
        read_input(tmp_path)
    assert f"{sheet} is a CAS(ME)^3 label sheet by its columns" in str(e.value) and "give that file itself" in str(e.value)
    # CASME II and SAMM spell their columns alike: a renamed coding sheet names both
    ids, coding = _casme2(tmp_path / "c2")
    renamed = coding.rename(coding.with_name("labels.xlsx"))
    with pytest.raises(UnusableInput, match="label sheet by its columns .*--format casme2 or --format samm"):
        read_input(renamed)
    # a manifest's own header is a manifest's, whatever else it holds
    (tmp_path / "m.csv").write_text("path,Subject,Filename,Onset,Apex,Offset,AU,emotion\npart_A/spNO.1/b/color,"
                                    "spNO.1,b,166,175,179,4,disgust\n")
    with pytest.raises(UnusableInput, match=r"'AU' \(probably 'aus'\)"):
        read_input(tmp_path / "m.csv")
    # Part C, by its name or by its columns alone, with or without --format casme3, or in the folder given
    part_c = tmp_path / "C" / "CAS(ME)3_part_C_ME.xlsx"
    _layout.write_xlsx(part_c, [("Sheet1", [["sub", "count", "au", "onset", "offset"], [1, 1, "4,7", 100, 120]])])
    shutil.copy(part_c, tmp_path / "part_c_copy.xlsx")
    for given, fmt in ((part_c, None), (part_c, "casme3"), (part_c.parent, "casme3"),
                       (tmp_path / "part_c_copy.xlsx", None)):
        with pytest.raises(UnusableInput) as e:
            read_input(given, fmt)
        msg = str(e.value)
        assert "Part C's label sheet (sub, count, au, onset, offset): Part C is not supported" in msg, (given, msg)
        assert "Filename'" not in msg and "probably" not in msg
    # a manifest (it has a path column) whose other columns are named as Part C's is told to rename them
    mine = tmp_path / "M" / "mine.csv"
    mine.parent.mkdir()
    mine.write_text("path,sub,count,au,onset,offset\nv.mp4,1,1,4,100,120\n")
    with pytest.raises(UnusableInput, match=r"'sub' \(probably 'subject'\)") as e:
        read_input(mine, None)
    assert "Part C" not in str(e.value)


def test_a_sentence_under_the_table_is_no_row(tmp_path):
    """A note typed under a sheet's table ("Note: frame numbers refer to img<N>.jpg") was a skipped clip with an id
    made of it, and the build exited 1."""
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 6, "Subject", "Note: frame numbers refer to img<N>.jpg")
    set_cell(sheet, None, 7, "Subject", "sub09")  # a row begun and not finished is still a row, and skipped
    set_cell(sheet, None, 8, "Subject", "1 EP09_01f 46 59 86 12 happiness")  # a row pasted into one cell: a row
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == ids
    assert [(s.row, s.reason) for s in skips] == [(7, "bad_label"), (8, "bad_label")]


@pytest.mark.parametrize("header, value, field", [
    ("OffsetFrame", 99, "OffsetFrame"),  # beyond the last frame
    ("OnsetFrame", 3, "OnsetFrame"),  # before the first frame
])
def test_frames_out_of_range(tmp_path, header, value, field):
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 3, header, value)
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == [ids[0], ids[2]]
    (s,) = skips
    assert s.reason == "frames_out_of_range"
    assert_names(s, sheet, 3, field)


@pytest.mark.parametrize("header, value, span, note", [
    ("ApexFrame", 40, (30, 35), "ApexFrame 40 is not between OnsetFrame 30 and OffsetFrame 35"),  # beyond the frames
    ("OnsetFrame", 34, (34, 35), "ApexFrame 32 is not between OnsetFrame 34 and OffsetFrame 35"),  # onset after apex
    ("OffsetFrame", 31, (30, 31), "ApexFrame 32 is not between OnsetFrame 30 and OffsetFrame 31"),  # offset before
])
def test_an_apex_outside_onset_offset_is_estimated_and_said(tmp_path, header, value, span, note):
    """The official sheets hold such rows (SAMM 028_4_1 and 032_3_1, in the MEGC2019 composite list; CAS(ME)^3
    spNO.149 d: onset 112, apex 83): the clip is built over onset..offset, its apex estimated, the cell named."""
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 3, header, value)
    got, skips = read_all(tmp_path, "casme2")
    assert skips == [] and [c.clip_id for c in got] == ids
    clip = got[1]
    assert (clip.onset, clip.apex, clip.offset) == (*span[:1], None, span[1])
    assert clip.extra["label_notes"] == [f"{note}: the apex is estimated from motion"]
    assert "label_notes" not in got[0].extra


def test_samm_clips_of_the_official_list_whose_apex_lies_outside_their_span_are_built(tmp_path):
    """SAMM 028_4_1 and 032_3_1: "the apex frame out onset-offset duration" (the README of a public MEGC2019
    entry, CapsuleNet for MER), both negative in the MEGC2019 list of 133 SAMM clips; skipped, the list lost them."""
    from unimer_builder import labels

    ids = sources.write_layout(tmp_path, "samm", synth("samm", specs=((28, 4, 500), (32, 3, 900), (6, 1, 100))))
    assert ids[:2] == ["samm/028/028_4_1", "samm/032/032_3_1"]
    sheet = tmp_path / samm.SHEET_FILE
    set_cell(sheet, "MICRO_ONLY", 15, "Apex Frame", 499)  # before the onset
    set_cell(sheet, "MICRO_ONLY", 16, "Apex Frame", 990)  # beyond the offset (and the frames)
    got, skips = read_all(tmp_path, "samm")
    assert skips == [] and [c.clip_id for c in got] == ids
    assert [c.apex for c in got] == [None, None, 102]
    assert got[0].extra["label_notes"] == ["Apex Frame 499 is not between Onset Frame 500 and Offset Frame 505: "
                                           "the apex is estimated from motion"]
    assert [labels.composite_of(c) for c in got[:2]] == ["negative", "negative"]


def test_offset_before_onset(tmp_path):
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 2, "ApexFrame", "/")
    set_cell(sheet, None, 2, "OnsetFrame", 14)
    set_cell(sheet, None, 2, "OffsetFrame", 12)
    _, skips = read_all(tmp_path, "casme2")
    (s,) = skips
    assert s.reason == "frames_out_of_range"
    assert_names(s, sheet, 2, "OffsetFrame")


def test_unknown_au(tmp_path):
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 4, "Action Units", "4+99")
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == ids[:2]
    (s,) = skips
    assert s.reason == "unknown_au" and "99" in s.message
    assert_names(s, sheet, 4, "Action Units")


def test_free_text_au_kept(tmp_path):
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 2, "Action Units", "R14+17+soft focus")
    got, skips = read_all(tmp_path, "casme2")
    assert skips == [] and len(got) == 3
    assert got[0].au_text == "R14+17+soft focus"
    assert got[0].aus.unparsed == ("soft focus",)
    assert [t.au for t in got[0].aus.tokens] == [14, 17]


@pytest.mark.parametrize("value", ["abc", None, 12.5])
def test_bad_onset(tmp_path, value):
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 2, "OnsetFrame", value)
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == ids[1:]
    (s,) = skips
    assert s.reason == "bad_label"
    assert_names(s, sheet, 2, "OnsetFrame")


def test_missing_clip_folder(tmp_path):
    ids, sheet = _casme2(tmp_path)
    shutil.rmtree(tmp_path / "CASME2_RAW_selected/sub02")
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == ids[:2]
    (s,) = skips
    assert s.reason == "missing_path" and "sub02" in s.message
    assert_names(s, sheet, 4, "Filename")


def test_duplicate_row_is_skipped(tmp_path):
    ids, sheet = _casme2(tmp_path)
    for header, value in (("Filename", "EP01_01f"), ("OnsetFrame", 10), ("ApexFrame", 12), ("OffsetFrame", 15)):
        set_cell(sheet, None, 3, header, value)
    got, skips = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == [ids[0], ids[2]]
    (s,) = skips
    assert s.reason == "duplicate_clip" and s.row == 3 and "row 2" in s.message


def test_manifest_nonexistent_folder(tmp_path):
    ids = sources.write_layout(tmp_path, "manifest", synth("manifest"))
    shutil.rmtree(tmp_path / "clips/S01/c02")
    got, skips = read_all(tmp_path, "manifest")
    assert [c.clip_id for c in got] == [ids[0], ids[2]]
    (s,) = skips
    assert s.reason == "missing_path" and "c02" in s.message
    assert_names(s, tmp_path / "manifest.csv", 3, "path")


def test_manifest_apex_outside_its_span_is_the_users_to_correct(tmp_path):
    """Unlike a database's sheet, a user's own manifest is theirs to fix: the row is skipped, the cell named."""
    ids = sources.write_layout(tmp_path, "manifest", synth("manifest"))
    m = tmp_path / "manifest.csv"
    m.write_text(m.read_text().replace("clips/S01/c02,30,32,35", "clips/S01/c02,30,36,35"))
    got, skips = read_all(tmp_path, "manifest")
    assert [c.clip_id for c in got] == [ids[0], ids[2]]
    (s,) = skips
    assert s.reason == "frames_out_of_range" and "apex frame 36" in s.message
    assert_names(s, m, 3, "apex")


def test_au_text_that_is_no_au_code_is_noted(tmp_path):
    """``12 and 6`` reads as no AU at all: the clip is built (its text kept in ``au_unparsed``), and its label
    note says so, in the build report, rather than the clip passing as labelled with nothing to check."""
    ids = sources.write_layout(tmp_path, "manifest", synth("manifest"))
    m = tmp_path / "manifest.csv"
    m.write_text(m.read_text().replace("R6+R12", "12 and 6").replace("4+L10", "4+soft focus"))
    got, skips = read_all(tmp_path, "manifest")
    assert skips == [] and [c.clip_id for c in got] == ids
    assert got[1].aus.tokens == () and got[1].extra["label_notes"] == [
        "aus '12 and 6': '12 and 6' is not an AU code (no AU was read from it)"]
    assert got[0].extra["label_notes"] == ["aus '4+soft focus': 'soft focus' is not an AU code (read as 4)"]
    assert "label_notes" not in got[2].extra
    ids, sheet = _casme2(tmp_path / "c2")
    set_cell(sheet, None, 3, "Action Units", "R6+R12+smile")
    got, _ = read_all(tmp_path / "c2", "casme2")
    assert got[1].extra["label_notes"] == ["Action Units 'R6+R12+smile': 'smile' is not an AU code (read as R6 + R12)"]


def test_manifest_defaults_and_video(tmp_path):
    folder = tmp_path / "alice" / "smile1"
    folder.mkdir(parents=True)
    for n in (2, 10, 3):
        cv2.imwrite(str(folder / f"frame_{n}.png"), np.zeros((8, 8), np.uint8))
    video = tmp_path / "bob" / "take.avi"
    video.parent.mkdir()
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (16, 16))
    for _ in range(5):
        vw.write(np.zeros((16, 16, 3), np.uint8))
    vw.release()
    (tmp_path / "manifest.csv").write_text(
        "path,onset,apex,aus,note\n"
        "alice/smile1,2,,12,first\n"
        f"{video},1,3,,\n"
        "alice/smile1,2,3,4+99,\n"
    )
    got, skips = read_all(tmp_path, "manifest")
    a, b = got
    assert (a.subject, a.clip, a.onset, a.apex, a.offset) == ("alice", "smile1", 2, None, 10)
    assert sorted(a.frames) == [2, 3, 10] and a.au_text == "12"
    assert a.extra == {"note": "first", "offset_defaulted": True}  # the text must not call it a labelled offset
    assert (b.subject, b.clip, b.video, b.frames, b.onset, b.apex, b.offset) == (
        "bob", "take", str(video.resolve()), {}, 1, 3, None)
    assert a.fps is None  # a folder declares no rate
    assert b.fps == 25.0  # the rate the video file declares
    (s,) = skips
    assert s.reason == "unknown_au"
    assert_names(s, tmp_path / "manifest.csv", 4, "aus")


def _video(path: Path, n: int) -> Path:
    """A video of ``n`` frames whose frame k is uniformly grey level 10 k (its number, readable back)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (16, 16))
    for k in range(n):
        vw.write(np.full((16, 16, 3), 10 * k, np.uint8))
    vw.release()
    return path


def test_a_video_window_decodes_only_its_own_frames_and_refuses_an_offset_past_the_end(tmp_path):
    from unimer_builder.errors import InputError
    from unimer_builder.evidence import _span

    _video(tmp_path / "v.avi", 20)
    (tmp_path / "manifest.csv").write_text("path,onset,apex,offset,clip\n"
                                           "v.avi,5,7,9,ok\nv.avi,5,7,25,past\nv.avi,5,,,open\nv.avi,6,6,6,one\n")
    got, skips = read_all(tmp_path, "manifest")
    ok, past, open_ = got
    (one,) = skips  # a clip of one frame holds no motion
    assert one.reason == "frames_out_of_range" and one.field == "offset" and one.row == 5
    reader = FrameReader(ok)
    assert reader.numbers == list(range(10)) and _span(ok, reader) == ([5, 6, 7, 8, 9], 9)
    assert sorted(reader._cache) == [5, 6, 7, 8, 9]  # nothing before the onset nor after the offset held
    assert abs(int(reader.get(7).mean()) - 70) <= 3
    with pytest.raises(InputError, match="before frame 5"):
        reader.get(2)
    with pytest.raises(InputError) as e:
        _span(past, FrameReader(past))
    assert e.value.reason == "frames_out_of_range" and e.value.field == "offset" and "last frame (19)" in str(e.value)
    assert _span(open_, FrameReader(open_))[1] == 19  # no offset: to the video's end
    last = replace(open_, onset=19)  # no offset, onset on the last frame: one frame
    with pytest.raises(InputError, match="holds one frame") as e:
        _span(last, FrameReader(last))
    assert e.value.reason == "frames_out_of_range" and e.value.field == "offset"


def _truncated_video(path: Path, n: int = 40) -> tuple[Path, int]:
    """A video of ``n`` frames of noise cut to 60 % of its bytes, and how many frames OpenCV decodes of it
    (the last of them in part)."""
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    rng = np.random.default_rng(0)
    for _ in range(n):
        vw.write(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    vw.release()
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    cap, decoded = cv2.VideoCapture(str(path)), 0
    while cap.grab():
        decoded += 1
    cap.release()
    return path, decoded


def test_a_whole_video_its_container_overcounts_by_a_frame_keeps_its_last_frame(tmp_path, monkeypatch):
    """A container's count can exceed what a whole video decodes (an MP4's edit list, a count estimated from the
    duration): its good last frame was dropped as a truncated one's, with a note saying it was truncated."""
    from unimer_builder.records import Clip
    from unimer_builder.sources import frames as fr

    path = tmp_path / "whole.avi"
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 64))
    for n in range(12):
        vw.write(np.full((64, 64, 3), 20 * n, np.uint8))
    vw.release()

    real = cv2.VideoCapture

    class Overcounting:  # a proxy: a Python subclass of OpenCV's class crashed the interpreter later on
        def __init__(self, *args):
            self._cap = real(*args)

        def get(self, prop):
            return self._cap.get(prop) + (1 if prop == cv2.CAP_PROP_FRAME_COUNT else 0)

        def __getattr__(self, name):
            return getattr(self._cap, name)

    monkeypatch.setattr(fr.cv2, "VideoCapture", Overcounting)
    reader = fr.FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(path)))
    assert reader.numbers == list(range(12)) and reader.notes == []


def _avi_with_dropped_frames(path: Path, frames: list[np.ndarray], fps: int, dropped: set[int]) -> Path:
    """An MJPEG AVI (RIFF with an idx1 index) whose entries at ``dropped`` are empty, as capture software records a
    frame it dropped."""
    import struct

    h, w = frames[0].shape[:2]
    data = [b"" if i in dropped else cv2.imencode(".jpg", f)[1].tobytes() for i, f in enumerate(frames)]

    def chunk(fourcc: bytes, body: bytes) -> bytes:
        return fourcc + struct.pack("<I", len(body)) + body + (b"\0" if len(body) % 2 else b"")

    big = max(map(len, data))
    avih = struct.pack("<14I", 1_000_000 // fps, 0, 0, 0x10, len(data), 0, 1, big, w, h, 0, 0, 0, 0)
    strh = b"vidsMJPG" + struct.pack("<IHHIIIIIIIIhhhh", 0, 0, 0, 0, 1, fps, 0, len(data), big, 0xFFFFFFFF, 0, 0, 0,
                                     w, h)
    strf = struct.pack("<IiiHH4sIiiII", 40, w, h, 1, 24, b"MJPG", w * h * 3, 0, 0, 0, 0)
    strl = chunk(b"LIST", b"strl" + chunk(b"strh", strh) + chunk(b"strf", strf))
    hdrl = chunk(b"LIST", b"hdrl" + chunk(b"avih", avih) + strl)
    movi, index, at = b"", b"", 4
    for d in data:
        index += b"00dc" + struct.pack("<III", 0x10 if d else 0, at, len(d))
        movi += chunk(b"00dc", d)
        at = 4 + len(movi)
    body = b"AVI " + hdrl + chunk(b"LIST", b"movi" + movi) + chunk(b"idx1", index)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def test_a_video_whose_timestamps_skip_dropped_frames_says_so(tmp_path):
    """A media fault hunt's AVI with empty "dropped frame" entries, as capture software writes them: the frames
    that decode are numbered in order, so the sheet's frame 25 read the recording's frame 28, without a word, and
    the container's count (entries, not frames) called the whole file truncated and dropped its good last frame.
    The timestamps show the gaps: the reader's notes name them, and they are no truncation."""
    from unimer_builder.records import Clip

    frames = [np.full((48, 64, 3), 10 * n, np.uint8) for n in range(20)]  # each frame's grey level tells it
    path = _avi_with_dropped_frames(tmp_path / "dropped.avi", frames, 30, dropped={5, 11, 12})
    reader = FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(path)))
    assert reader.numbers == list(range(17))  # none dropped as a truncated file's last frame
    assert abs(int(reader.get(10)[0, 0]) - 130) <= 2  # decoded frame 10 is the recording's 13
    (note,) = reader.notes
    assert note.startswith("the video's timestamps skip 3 frames (1 before frame 5, 2 before frame 10): frames "
                           "dropped in recording"), note
    whole = _avi_with_dropped_frames(tmp_path / "whole.avi", frames, 30, dropped=set())
    assert FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(whole))).notes == []
    # an MP4's or MOV's count is of the frames it holds: gaps in its timestamps do not excuse frames lost from it
    recorded = [n for n in range(20) if n not in (5, 11, 12)]  # the recording's frames that decode, as above
    mp4 = FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(tmp_path / "take.mp4")))
    mp4._declared, mp4._period, mp4._times = 20, 1000 / 28.3, {n: 1000 * t / 30 for n, t in enumerate(recorded)}
    assert mp4._gaps() == {5: 1, 10: 2}  # an MP4's declared rate is its average: the gaps are still one and two
    assert mp4._ended(17) == 16 and mp4.notes[0].startswith("the video's frames end at frame 16 though its container")
    # a video whose rate changes between runs of frames (two takes joined: 24, then 30 fps) has no gap
    joined = FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(tmp_path / "joined.mov")))
    steps = [1000 / 24] * 59 + [13.7, 1000 / 24 - 13.7] + [1000 / 24] * 34 + [1000 / 30] * 73  # one odd short step
    joined._period, joined._times = 1000 / 26.4, dict(enumerate(np.cumsum([0.0, *steps])))
    assert joined._gaps() == {} and joined.notes == []
    # nor a phone's 30 and 60 fps (its declared rate, the average, 44.4 fps, far above its commonest step's)
    phone = FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(tmp_path / "phone.mp4")))
    phone._period = 1000 / 44.4
    phone._times = dict(enumerate(np.cumsum([0.0, *([1000 / 30] * 30 + [1000 / 60] * 50)])))
    assert phone._gaps() == {}
    # an 8-frame gap in a 30 fps MP4 whose average, 27 fps, its gaps lowered: 8, not 7
    long = FrameReader(Clip("manifest", "s", "c", 0, None, None, video=str(tmp_path / "long.mp4")))
    long._period = 1000 / 27
    long._times = dict(enumerate(np.cumsum([0.0, *([1000 / 30] * 40), 9000 / 30, *([1000 / 30] * 40)])))
    assert long._gaps() == {41: 8}


def test_a_truncated_video_ends_before_its_last_decoded_frame_and_says_so(tmp_path):
    """A video cut short: its last frame that decoded (FFmpeg returns what it has of it) was used as a whole
    one, and nothing said the video was truncated."""
    from unimer_builder.errors import InputError
    from unimer_builder.evidence import _span

    video, decoded = _truncated_video(tmp_path / "cut.avi")
    assert 2 < decoded < 40
    clip = Clip(database="manifest", subject="s", clip="cut", onset=0, apex=None, offset=None,
                video=str(video))
    reader = FrameReader(clip)
    note = f"the video's frames end at frame {decoded - 1} though its container records 40 (a truncated file, or " \
           f"one cut without re-encoding): frame {decoded - 1}, which may be incomplete, and later ones are not used"
    assert reader.numbers == list(range(decoded - 1)) and reader.notes == [note]
    assert decoded - 1 not in reader._cache
    with pytest.raises(InputError, match=re.escape(f"beyond its last frame ({decoded - 2}); {note}")):
        _span(replace(clip, offset=39), FrameReader(replace(clip, offset=39)))


def test_ffmpeg_says_nothing_of_a_truncated_video(tmp_path):
    """FFmpeg's decoder errors (``[mjpeg @ 0x...] overread 8``) went to the terminal between the progress
    bar's lines."""
    import os
    import subprocess
    import sys

    import unimer_builder

    video, _ = _truncated_video(tmp_path / "cut.avi")
    code = ("import unimer_builder.cli\n"  # the command line's setting (a library caller's process keeps its own)
            "from unimer_builder.records import Clip\nfrom unimer_builder.sources.frames import FrameReader\n"
            f"clip = Clip('manifest', 's', 'c', 0, None, None, video={str(video)!r})\n"
            "print(len(FrameReader(clip).numbers))")
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    here = str(Path(unimer_builder.__file__).parents[1])  # the builder under test
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
    # cwd: not the repository's folder, which python -c would import from first
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=tmp_path)
    assert res.returncode == 0 and int(res.stdout) > 0, res.stderr
    assert "[mjpeg @" not in res.stderr, res.stderr


def test_manifest_parquet_and_file_root(tmp_path):
    import pandas as pd

    ids = sources.write_layout(tmp_path, "manifest", synth("manifest"))
    df = pd.read_csv(tmp_path / "manifest.csv")
    (tmp_path / "manifest.csv").unlink()
    df.to_parquet(tmp_path / "manifest.parquet")
    got, skips = read_all(tmp_path, "manifest")
    assert [c.clip_id for c in got] == ids and skips == []
    got, _ = read_all(tmp_path / "manifest.parquet", "manifest")
    assert [c.clip_id for c in got] == ids


# --- quirks of the real layouts -------------------------------------------------------------------

def test_casme2_slash_apex_and_apex_on_onset(tmp_path):
    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 2, "ApexFrame", "/")
    set_cell(sheet, None, 3, "ApexFrame", 30)  # == onset
    got, skips = read_all(tmp_path, "casme2")
    assert skips == []
    assert [c.apex for c in got] == [None, None, 102]


def test_casme2_sheet_layout(tmp_path):
    import pandas as pd

    _, sheet = _casme2(tmp_path)
    df = pd.read_excel(sheet)
    assert list(df.columns) == ["Subject", "Filename", "Unnamed: 2", "OnsetFrame", "ApexFrame", "OffsetFrame",
                                "Unnamed: 6", "Action Units", "Estimated Emotion"]
    assert df["Subject"].tolist() == [1, 1, 2]
    assert openpyxl.load_workbook(sheet).sheetnames == ["Sheet1", "Sheet2", "Sheet3"]


def test_casme2_cropped_variant_and_other_sheet_name(tmp_path):
    ids, sheet = _casme2(tmp_path)
    raw = tmp_path / "CASME2_RAW_selected"
    crop = tmp_path / "Cropped-updated" / "Cropped"
    for sub in raw.iterdir():
        for clip in sub.iterdir():
            dst = crop / str(int(sub.name[3:])) / clip.name
            dst.mkdir(parents=True)
            for f in clip.iterdir():
                shutil.copy(f, dst / f"reg_{f.name}")
    shutil.rmtree(raw)
    meta = tmp_path / "labels"
    meta.mkdir()
    sheet.rename(meta / "CASME2-coding-20140508.xlsx")
    got, skips = read_all(tmp_path, "casme2")
    assert skips == [] and [c.clip_id for c in got] == ids
    assert all(Path(p).name.startswith("reg_img") for p in got[0].frames.values())
    assert Path(got[0].source_file).name == "CASME2-coding-20140508.xlsx"


def test_samm_header_row_and_zero_padding(tmp_path):
    import pandas as pd

    ids = sources.write_layout(tmp_path, "samm", synth("samm", specs=((6, 1, 5560), (6, 2, 7000), (12, 1, 300))))
    sheet = tmp_path / samm.SHEET_FILE
    df = pd.read_excel(sheet, sheet_name="MICRO_ONLY", header=13)
    assert list(df.columns) == samm.COLUMNS
    assert df["Subject"].tolist() == [6, 6, 12]  # an int: the padding is lost in the sheet
    assert ids == ["samm/006/006_1_1", "samm/006/006_2_1", "samm/012/012_1_1"]
    got, skips = read_all(tmp_path, "samm")
    assert skips == [] and [c.subject for c in got] == ["006", "006", "012"]
    assert [c.source_row for c in got] == [15, 16, 17]
    assert got[0].extra["objective_class"] == "7" and got[0].extra["micro"] == "Micro - 1/2"
    # 4-digit padding in some copies
    for f in (tmp_path / "SAMM/012/012_1_1").iterdir():
        f.rename(f.with_name(f"012_{int(f.stem.split('_')[1]):04d}.jpg"))
    got, skips = read_all(tmp_path, "samm")
    assert skips == [] and sorted(got[2].frames) == list(range(300, 306))
    # an error row names the row as Excel shows it (header offset included)
    set_cell(sheet, "MICRO_ONLY", 16, "Offset Frame", 9999)
    _, skips = read_all(tmp_path, "samm")
    (s,) = skips
    assert s.reason == "frames_out_of_range"
    assert_names(s, sheet, 16, "Offset Frame")


def test_casme3_shared_stimulus_and_casing(tmp_path):
    clips = synth("casme3", specs=((1, 1, 10), (1, 2, 10), (1, 3, 50)))
    ids = sources.write_layout(tmp_path, "casme3", clips)
    assert ids[0].rsplit("/", 1)[0] == ids[1].rsplit("/", 1)[0] == "casme3/spNO.1/a"
    assert ids[0] != ids[1]
    assert clips[1].first_frame > clips[0].offset  # renumbered: the two share one folder
    got, skips = read_all(tmp_path, "casme3")
    assert skips == [] and [c.clip_id for c in got] == ids
    assert [c.emotion for c in got] == ["Others", "others", "disgust"]
    a, b = got[:2]
    assert (a.subject, a.clip) == (b.subject, b.clip)
    assert set(a.frames).isdisjoint(b.frames)  # each clip keeps only its own onset..offset
    assert Path(a.frames[a.onset]).parent == Path(b.frames[b.onset]).parent
    assert got[0].extra["objective_class"] == "VII"
    assert openpyxl.load_workbook(tmp_path / casme3.SHEET_FILE).sheetnames == ["label", "Sheet1"]


def test_casme3_folders_that_differ_from_the_sheet_only_in_case(tmp_path):
    """The release writes ``spNO.3 J`` in its own error list beside folders ``j``, and copies spell ``spNo``:
    a folder that differs only in case is the clip's, found as a case-insensitive filesystem would; two that
    differ only in case are ambiguous, and the row is skipped naming where it looked."""
    ids = sources.write_layout(tmp_path, "casme3", synth("casme3", specs=((1, 1, 10), (3, 1, 10))))
    sheet = tmp_path / casme3.SHEET_FILE
    set_cell(sheet, "label", 3, "Filename", "A")
    (tmp_path / "part_A/spNO.1").rename(tmp_path / "part_A/spNo.1")
    got, skips = read_all(tmp_path, "casme3")
    assert skips == [] and [c.clip_id for c in got] == [ids[0], ids[1].replace("/a/", "/A/")]
    assert Path(got[0].frames[got[0].onset]).parts[-4:-2] == ("spNo.1", "a")
    shutil.copytree(tmp_path / "part_A/spNO.3/a", tmp_path / "part_A/spNO.3/A_")
    (tmp_path / "part_A/spNO.3/A_").rename(tmp_path / "part_A/spNO.3/A")  # "a" and "A": which one?
    got, skips = read_all(tmp_path, "casme3")
    assert [c.clip_id for c in got] == [ids[0], ids[1].replace("/a/", "/A/")]
    assert Path(got[1].frames[got[1].onset]).parts[-3] == "A"  # the exact name wins
    set_cell(sheet, "label", 3, "Subject", "spno.3")
    shutil.copytree(tmp_path / "part_A/spNO.3", tmp_path / "part_A/SPNO.3")  # "spNO.3" or "SPNO.3"?
    got, skips = read_all(tmp_path, "casme3")
    assert [c.clip_id for c in got] == [ids[0]]
    (s,) = skips
    assert s.reason == "missing_path" and s.row == 3
    assert "differ from it only in case" in s.message and "SPNO.3" in s.message and "spNO.3" in s.message


def test_a_preferred_base_is_searched_in_any_case_before_the_next_base(tmp_path):
    """CASME II raw frames come before the official crops: a raw folder that differs from the sheet only in
    case is still the raw one, not a crop folder spelled exactly."""
    ids, sheet = _casme2(tmp_path)
    crop = tmp_path / "Cropped" / "sub01" / "EP02_01f"
    shutil.copytree(tmp_path / "CASME2_RAW_selected/sub01/EP02_01f", crop)
    (tmp_path / "CASME2_RAW_selected/sub01/EP02_01f").rename(tmp_path / "CASME2_RAW_selected/sub01/ep02_01F")
    got, skips = read_all(tmp_path, "casme2")
    assert skips == [] and [c.clip_id for c in got] == ids
    assert Path(got[1].frames[got[1].onset]).parent.name == "ep02_01F"


# the real header and rows of cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx (as HTNet's cas(me)3_part_A_edited.csv
# copies them)
CASME3_HEADER = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
CASME3_ROWS = [["spNO.1", "b", 166, 175, 179, "4", "III", "disgust"], ["spNO.1", "j", 28, 33, 49, "24", "VII", "happy"],
               ["spNO.1", "j", 102, 105, 113, "26+25", "II", "surprise"]]


def _casme3_frames(folder: Path, onset: int, offset: int, ext: str = ".jpg", value: int = 90) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(onset, offset + 1):
        cv2.imwrite(str(folder / f"{n}{ext}"), np.full((8, 8), value, np.uint8))


def test_casme3_me_clip_release_one_folder_per_clip(tmp_path):
    """The ME-clip release (rainkaze/MicroExpression audit_casme3.py, build_casme3_manifest.py --clip-root
    data/raw/CAS(ME)^3/Part_A_ME_clip): annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx and one folder per clip,
    Part_A_ME_clip/frame/<Subject>_<Filename>_<Onset>/<n>.jpg, with depth/ (named alike) and video/ beside frame/.
    Every row was skipped as missing_path ("part_A/spNO.1/b/color does not exist")."""
    from unimer_builder.sources._layout import write_xlsx

    root = tmp_path / "CAS(ME)^3"
    write_xlsx(root / "annotation" / casme3.SHEET_FILE, [("label", [CASME3_HEADER, *CASME3_ROWS]), ("Sheet1", [])])
    for sub, stim, on, _, off, *_ in CASME3_ROWS:
        _casme3_frames(root / "Part_A_ME_clip" / "frame" / f"{sub}_{stim}_{on}", on, off)
        _casme3_frames(root / "Part_A_ME_clip" / "depth" / f"{sub}_{stim}_{on}", on, off, ".png", 0)
    (root / "Part_A_ME_clip" / "video").mkdir()
    (root / "Part_A_ME_clip" / "video" / "spNO.1_b_166.mp4").write_bytes(b"")
    assert sources.detect_format(root) == "casme3"
    for given in (root, tmp_path):  # the release's folder, or the one above it
        got, skips = read_all(given, "casme3")
        assert skips == [] and [c.clip_id for c in got] == ["casme3/spNO.1/b/166", "casme3/spNO.1/j/28",
                                                             "casme3/spNO.1/j/102"]
        assert [(c.onset, c.apex, c.offset, c.au_text, c.emotion) for c in got] == \
            [(on, ap, off, au, emo) for _, _, on, ap, off, au, _, emo in CASME3_ROWS]
        assert Path(got[0].frames[166]).relative_to(root).as_posix() == "Part_A_ME_clip/frame/spNO.1_b_166/166.jpg"
        assert sorted(got[2].frames) == list(range(102, 114))  # its own folder's frames, not the depth maps
    shutil.rmtree(root / "Part_A_ME_clip" / "frame" / "spNO.1_j_28")  # its depth maps are no frames
    got, skips = read_all(root, "casme3")
    (s,) = skips
    assert s.reason == "missing_path" and s.clip_id == "casme3/spNO.1/j/28"
    assert_names(s, root / "annotation" / casme3.SHEET_FILE, 3, "Filename")
    assert "'spNO.1_j_28'" in s.message and f"in {root} and up to 3 folder levels below it" in s.message


def test_casme3_as_meb_unpacks_it_from_the_folder_above_part_a(tmp_path):
    """CAS(ME)^3 as MEB unpacks it (tools/README: data/casme3/part_a/data/part_A_split/part_A/): the sheet in
    part_A/annotation, the frames in part_A/data/part_A_split/part_A/<Subject>/<Filename>/color. Given the folder above
    part_A, the sheet was found and the frames were not (four levels below), and every row named an invented
    CASME3/part_A/spNO.1/b/color."""
    from unimer_builder.sources._layout import write_xlsx

    top = tmp_path / "CASME3"
    write_xlsx(top / "part_A" / "annotation" / casme3.SHEET_FILE, [("label", [CASME3_HEADER, *CASME3_ROWS])])
    frames = top / "part_A" / "data" / "part_A_split" / "part_A"
    for sub, stim, on, _, off, *_ in CASME3_ROWS:
        _casme3_frames(frames / sub / stim / "color", on, off)
    ids = ["casme3/spNO.1/b/166", "casme3/spNO.1/j/28", "casme3/spNO.1/j/102"]
    for given in (top, top / "part_A"):
        got, skips = read_all(given, "casme3")
        assert skips == [] and [c.clip_id for c in got] == ids, (given, skips)
        assert Path(got[0].frames[175]) == frames / "spNO.1/b/color/175.jpg"
    shutil.rmtree(frames / "spNO.1" / "b")  # the subject's folder is there, the clip's is not: that folder is named
    (s, ) = read_all(top, "casme3")[1]
    assert s.message.endswith(f"clip folder {frames / 'spNO.1' / 'b'} does not exist")
    (frames / "spNO.1").rename(frames / "spNO.2")  # no subject folder anywhere: where it was looked for, no guess
    _, skips = read_all(top, "casme3")
    assert [s.row for s in skips] == [2, 3, 4] and all(s.reason == "missing_path" for s in skips)
    assert skips[0].message.endswith(f"no folder 'spNO.1' holding a folder 'b' (the release's part_A/<subject>/<clip>),"
                                     f" nor a folder 'spNO.1_b_166', in {top} and up to 3 folder levels below it, and "
                                     f"as deep below {top / 'part_A'}")
    assert str(top / "part_A" / "spNO.1") not in skips[0].message


def test_casme3_frame_drop(tmp_path):
    ids = sources.write_layout(tmp_path, "casme3", synth("casme3"))
    got, _ = read_all(tmp_path, "casme3")
    offset = got[0].offset
    Path(got[0].frames[offset]).unlink()
    got, skips = read_all(tmp_path, "casme3")
    (s,) = skips
    assert s.reason == "missing_frame" and s.clip_id == ids[0]
    assert_names(s, tmp_path / casme3.SHEET_FILE, 2, "Offset")


def test_smic_roots_and_variants(tmp_path):
    clips = synth("smic")
    ids = sources.write_layout(tmp_path, "smic", clips)
    release = tmp_path / smic.RELEASE_DIR
    for root in (tmp_path, release, release / "HS"):
        got, skips = read_all(root, "smic")
        assert [c.clip_id for c in got] == ids and skips == []
        assert all(c.extra["variant"] == "HS" and c.fps == 100.0 for c in got)
    smic.write(tmp_path, synth("smic")[:1], variant="NIR")
    (release / "HS/s1/non_micro/negative/s1_ne_99").mkdir(parents=True)
    (release / "HS/s2/micro/surprise/s2_sur_09").mkdir(parents=True)  # an empty clip folder
    got, skips = read_all(tmp_path, "smic")
    assert [c.clip_id for c in got] == ids + ["smic/NIR/s1/s1_ne_01"]
    assert got[-1].fps == 25.0
    (s,) = skips
    assert s.reason == "missing_frame" and s.clip_id == "smic/HS/s2/s2_sur_09"


def test_a_stray_image_in_a_smic_clip_folder_is_no_frame(tmp_path):
    """SMIC's offset is a folder's last frame: a ``thumbnail_640x360.bmp`` beside ``reg_00010.bmp`` ... made
    it 360."""
    sources.write_layout(tmp_path, "smic", synth("smic"))
    (first, *_), _ = read_all(tmp_path, "smic")
    folder = Path(first.frames[first.onset]).parent
    cv2.imwrite(str(folder / "thumbnail_640x360.bmp"), np.zeros((8, 8), np.uint8))
    (again, *_), skips = read_all(tmp_path, "smic")
    assert skips == [] and (again.onset, again.offset) == (first.onset, first.offset) == (10, 15)
    assert again.extra["label_notes"] == [
        "1 image in the frame folder not named as its frames (reg_00010.bmp ...) was not read: "
        "thumbnail_640x360.bmp"]


def test_a_video_window_without_an_offset_holds_only_what_fits_and_what_it_asked_for(tmp_path, monkeypatch):
    """Past the budget a reader keeps the frames asked for; a frame behind the capture is read again from the
    video's start, and every frame is the one its number names."""
    _video(tmp_path / "v.avi", 24)
    (tmp_path / "manifest.csv").write_text("path,onset,clip\nv.avi,2,open\n")
    (open_,), _ = read_all(tmp_path, "manifest")
    monkeypatch.setattr(FrameReader, "video_budget", 3 * 16 * 16)  # four 16x16 grey frames
    reader = FrameReader(open_)
    assert reader.numbers == list(range(24))
    assert sorted(reader._cache) == [2, 3, 4, 5]
    for n in (20, 9, 23, 9, 3, 15):  # forward, behind, forward, held, held, behind
        assert abs(int(reader.get(n).mean()) - 10 * n) <= 3, n
    assert sorted(reader._cache) == [2, 3, 4, 5, 9, 15, 20, 23]
    with pytest.raises(InputError, match="outside the video's 24 frames"):
        reader.get(24)


def test_frame_reader_corrupt_frame(tmp_path):
    ids = sources.write_layout(tmp_path, "casme2", synth("casme2"))
    got, _ = read_all(tmp_path, "casme2")
    clip = got[0]
    Path(clip.frames[clip.onset + 1]).write_bytes(b"not a jpeg at all")
    reader = FrameReader(clip)
    assert reader.get(clip.onset).shape == (32, 32)
    with pytest.raises(InputError) as e:
        reader.get(clip.onset + 1)
    assert e.value.reason == "bad_frame" and clip.frames[clip.onset + 1] in e.value.message
    with pytest.raises(InputError) as e:
        reader.get(clip.offset + 50)
    assert e.value.reason == "missing_frame" and ids[0] in e.value.message


# --- helpers --------------------------------------------------------------------------------------

def test_frame_numbers_and_natural_sort():
    assert _common.frame_number("img46.jpg") == 46
    assert _common.frame_number("reg_img46.jpg") == 46
    assert _common.frame_number("006_05562.jpg") == 5562
    assert _common.frame_number("reg_00001.bmp") == 1
    assert _common.frame_number("face.jpg") is None
    assert sorted(["img10.jpg", "img9.jpg", "img100.jpg"], key=_common.natural_key) == [
        "img9.jpg", "img10.jpg", "img100.jpg"]


def test_to_int():
    assert _common.to_int(46) == 46 and _common.to_int(46.0) == 46 and _common.to_int(" 46 ") == 46
    assert _common.to_int("46.0") == 46 and _common.to_int(None) is None and _common.to_int("") is None
    for bad in ("abc", 4.5, "4.5", True):
        with pytest.raises(ValueError):
            _common.to_int(bad)


def test_label_fix_applies_only_to_the_defective_value():
    table = (fixes.Fix("casme2", "sub01", "EP02_01f", "offset", 10, 91, "test"),)
    cells = {"onset": 46, "offset": 10}
    fixed = fixes.apply_fixes("casme2", "sub01", "EP02_01f", cells, table=table)
    assert fixed["offset"] == 91 and fixed["_fixes"] and cells["offset"] == 10
    assert fixes.apply_fixes("casme2", "sub01", "EP02_01f", {"offset": 88}, table=table) == {"offset": 88}
    assert fixes.apply_fixes("casme2", "sub02", "EP02_01f", cells, table=table) == cells


def test_detect_format_none(tmp_path):
    assert sources.detect_format(tmp_path / "missing") is None
    (tmp_path / "x.txt").write_text("")
    assert sources.detect_format(tmp_path) is None


def test_readers_export_find_helpers(tmp_path):
    sources.write_layout(tmp_path, "casme2", synth("casme2"))
    assert casme2.find_sheet(tmp_path).name == casme2.SHEET_NAME
    assert samm.find_sheet(tmp_path) is None and casme3.find_sheet(tmp_path) is None
    assert manifest.find_manifest(tmp_path) is None and smic.find_micro_dirs(tmp_path) == []


def test_clip_from_folder_lists_and_checks_frames(tmp_path):
    from unimer_builder import clip_from_folder

    with pytest.raises(InputError, match="does not exist"):
        clip_from_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no numbered image frames"):
        clip_from_folder(tmp_path / "empty")
    folder = tmp_path / "clip"
    folder.mkdir()
    for n in (3, 4, 5, 7):
        cv2.imwrite(str(folder / f"img{n}.png"), np.zeros((8, 8), np.uint8))
    clip = clip_from_folder(folder)
    assert (clip.onset, clip.apex, clip.offset, sorted(clip.frames)) == (3, None, 7, [3, 4, 5, 7])
    with pytest.raises(InputError, match="apex frame 9 is outside the frames present") as e:
        clip_from_folder(folder, apex=9)
    assert e.value.field == "apex" and e.value.file == str(folder)
    with pytest.raises(InputError, match="the file of apex frame 6 is missing"):
        clip_from_folder(folder, apex=6)


def test_clip_from_a_video_file(tmp_path):
    """``deft predict`` on a video file, as a manifest row takes one: frames from 0, its declared rate."""
    from unimer_builder import clip_from_folder

    video = _video(tmp_path / "take.avi", 12)
    clip = clip_from_folder(video, 2, 5, 9)
    assert (clip.video, clip.frames, clip.onset, clip.apex, clip.offset, clip.fps) == (
        str(video.resolve()), {}, 2, 5, 9, 30.0)
    assert FrameReader(clip).numbers == list(range(10))
    assert clip_from_folder(video).onset == 0
    assert clip_from_folder(video, 2, 2, 9).apex is None  # an apex on the onset carries no timing, as in a sheet
    with pytest.raises(InputError, match="apex frame 1 is not between onset 2") as e:
        clip_from_folder(video, 2, 1, 9)
    assert e.value.field == "apex"
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="neither a folder of frames nor a video"):
        clip_from_folder(tmp_path / "notes.txt")
    # a camcorder's .MTS or a phone's .3gp is a video (they were "neither a folder of frames nor a video")
    for name in ("take.MTS", "take.3gp"):
        shutil.copy(video, tmp_path / name)
        assert FrameReader(clip_from_folder(tmp_path / name, 0, None, 3)).numbers == list(range(4))


def test_the_newest_version_of_a_sheet_is_read(tmp_path):
    """CAS(ME)^3's release keeps its superseded ``..._JpgIndex_v1.xls`` beside ``..._v2.xlsx`` (and a list of
    the clips v1 labelled wrongly): v2 is the sheet, whatever order the folder lists them in."""
    ids = sources.write_layout(tmp_path, "casme3", synth("casme3"))
    v1 = tmp_path / "cas(me)3_part_A_ME_label_JpgIndex_v1.xls"
    v1.write_bytes(b"not a workbook")  # read, it would fail the build
    assert casme3.find_sheet(tmp_path) == tmp_path / casme3.SHEET_FILE
    got, skips = read_all(tmp_path, "casme3")
    assert skips == [] and [c.clip_id for c in got] == ids


def test_a_legacy_xls_sheet_is_read_with_its_true_row_numbers(tmp_path):
    """MEAN's ``CASME2_label_Ver_2.xls`` (Excel 97-2003) needed a reader the builder did not install. Its rows keep
    their numbers past a blank one, and an error cell (an apex of #N/A) is blank, not its error code (42)."""
    import xlwt

    from unimer_builder.sources._common import read_table

    ids = sources.write_layout(tmp_path, "casme2", synth("casme2"))
    table = read_table(tmp_path / casme2.SHEET_NAME)[1]
    (tmp_path / casme2.SHEET_NAME).unlink()
    book = xlwt.Workbook()
    ws = book.add_sheet("Sheet1")
    out = 0
    apex = table[0][1].index("ApexFrame")
    for i, (_, values) in enumerate(table):
        out += 1 if i == 2 else 0  # a blank line after the first clip's row
        for j, v in enumerate(values):
            if i == 3 and j == apex:
                ws.row(out).set_cell_error(j, 42)  # #N/A
            elif v is not None:
                ws.write(out, j, v)
        out += 1
    book.save(str(tmp_path / "CASME2_label_Ver_2.xls"))
    got, skips = read_all(tmp_path, "casme2")
    assert skips == [] and [c.clip_id for c in got] == ids
    # the #N/A apex is estimated as a blank one is, without a word (its code, 42, read as a frame had a note)
    assert got[2].apex is None and "label_notes" not in got[2].extra and got[1].apex is not None
    assert [c.source_row for c in got] == [2] + list(range(4, 3 + len(ids)))  # as Excel numbers them
    assert got[0].source_file.endswith("CASME2_label_Ver_2.xls") and got[0].au_text == table[1][1][7]


@pytest.mark.parametrize("fmt", ["casme2", "samm"])
def test_a_label_sheet_saved_as_csv_is_read(tmp_path, fmt):
    """Loaders commit their sheets as CSV (MMNet's CASME II coding, HTNet's CAS(ME)^3 list): a .csv sheet was "no
    label sheet". Its cells are text, its notes above the header (SAMM's) and its row numbers as in the workbook."""
    import csv

    from unimer_builder.sources._common import read_table

    ids = sources.write_layout(tmp_path, fmt, synth(fmt))
    book = tmp_path / (casme2.SHEET_NAME if fmt == "casme2" else samm.SHEET_FILE)
    rows = read_table(book, None if fmt == "casme2" else samm.SHEET_NAME)[1]
    book.unlink()
    with (tmp_path / book.with_suffix(".csv").name).open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([["" if v is None else v for v in r] for _, r in rows])
    for root in (tmp_path, tmp_path / book.with_suffix(".csv").name):
        got, skips = read_all(root, fmt)
        assert skips == [] and [c.clip_id for c in got] == ids, root
    workbook = {c.clip_id: c for c in read_all_from(rows, fmt, tmp_path)}
    assert [(c.onset, c.apex, c.offset, c.au_text, c.emotion, c.source_row) for c in got] == \
        [(w.onset, w.apex, w.offset, w.au_text, w.emotion, w.source_row) for w in workbook.values()]


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_semicolon_or_tab_sheet_whose_title_row_has_a_comma_is_read(tmp_path, sep):
    """SAMM's sheet opens with a title row above its 13-row key (``"?" = some AU's continue for a while and have
    unclear offset``) and the header on row 14. Exported by Excel in a comma-decimal locale (semicolons) or as
    "Unicode Text" (tabs), a title with a comma made line 1 decide "comma": the sheet had "no column 'Filename' in
    its first 25 rows"."""
    import csv

    from unimer_builder.sources._common import read_table, separator

    ids = sources.write_layout(tmp_path, "samm", synth("samm"))
    rows = [["" if v is None else v for v in r] for _, r in read_table(tmp_path / samm.SHEET_FILE, samm.SHEET_NAME)[1]]
    (tmp_path / samm.SHEET_FILE).unlink()
    rows[0][0] = "SAMM - Spontaneous Actions and Micro-Movements, FACS codes"
    width = max(map(len, rows))
    book = tmp_path / "SAMM_Micro_FACS_Codes_v2.csv"
    with book.open("w", newline="", encoding="cp1252") as f:  # Excel pads every row to the table's width
        csv.writer(f, delimiter=sep).writerows([r + [""] * (width - len(r)) for r in rows])
    assert separator(book.read_text(encoding="cp1252")) == sep
    got, skips = read_all(tmp_path, "samm")
    assert skips == [] and [c.clip_id for c in got] == ids
    assert [c.source_row for c in got] == [15, 16, 17]  # the rows as the workbook numbers them
    # unpadded rows (a hand-made export) are judged by the records that agree, the title's comma notwithstanding
    assert separator("SAMM, FACS codes\nKey:\nSubject;Filename;Onset Frame\n6;006_1_2;5562\n7;007_3_1;4678\n") == ";"
    assert separator("path,onset\n") == "," and separator("") == ","


def read_all_from(rows, fmt, tmp_path):
    """The clips of the same rows written back as the workbook the layout writer makes."""
    from unimer_builder.sources._layout import write_xlsx

    root = tmp_path / "again"
    shutil.copytree(tmp_path, root, ignore=shutil.ignore_patterns("again", "*.csv"))
    name, sheet = (casme2.SHEET_NAME, "Sheet1") if fmt == "casme2" else (samm.SHEET_FILE, samm.SHEET_NAME)
    write_xlsx(root / name, [(sheet, [r for _, r in rows])])
    return read_all(root, fmt)[0]


def test_frames_missing_inside_a_folder_clip_are_noted():
    """A folder missing frames 20 and 21 inside 16..24 was built without a word (its stack repeated frame 22)."""
    from unimer_builder.parts import summarize

    frames = {n: f"f{n}.png" for n in range(14, 27) if n not in (20, 21, 23)}
    clip = Clip(database="manifest", subject="s", clip="gap", onset=16, apex=22, offset=24, frames=frames)
    fields = dict(rows=1, flagged=False, dropped=False, aus_source="label", apex_source="label")
    notes = summarize(clip, **fields).label_notes
    assert notes == ["frames 20-21, 23 missing inside onset..offset (16..24): 3 of 9, their nearest frames stand in "
                     "for them"]
    whole = Clip(database="manifest", subject="s", clip="ok", onset=16, apex=22, offset=24,
                 frames={n: f"f{n}.png" for n in range(16, 25)})
    assert summarize(whole, **fields).label_notes == []


def test_frame_numbers_beyond_a_video_name_its_frames(tmp_path):
    """`deft predict` on a 12-frame video with `--apex 99` said "apex frame 99 of clip manifest/user/take is
    missing" (an id the user never gave, no frame count); an apex before the onset without an offset said
    "... and offset None"; a mistyped video path was a "clip folder" that does not exist."""
    from unimer_builder import clip_from_folder
    from unimer_builder.evidence import _span

    video = _video(tmp_path / "take.avi", 12)
    for onset, apex, key in ((0, 99, "apex"), (50, 60, "onset"), (50, None, "onset")):
        clip = clip_from_folder(video, onset, apex)
        with pytest.raises(InputError, match=rf"{key} frame {onset if key == 'onset' else apex} is outside the "
                                             r"frames present in the video \(0\.\.11\)") as e:
            _span(clip, FrameReader(clip))
        assert e.value.field == key and "manifest/user" not in str(e.value)
    with pytest.raises(InputError, match="apex frame 2 is not between onset 8$"):
        clip_from_folder(video, 8, 2)
    with pytest.raises(InputError, match="video file .*nope.mp4 does not exist"):
        clip_from_folder(tmp_path / "nope.mp4", 0, 3)


def test_casme3_me_clip_folders_are_found_from_a_csv_sheet_of_float_onsets(tmp_path):
    """pandas' ``to_csv`` writes a float column's 166 as ``166.0``: the ME-clip folder was looked for as
    ``spNO.1_b_166.0`` and every row skipped as missing_path, while the part_A layout built them."""
    root = tmp_path / "CAS(ME)^3"
    sheet = root / "annotation" / casme3.SHEET_FILE.replace(".xlsx", ".csv")
    sheet.parent.mkdir(parents=True)
    rows = [[sub, stim, f"{on:.1f}", f"{ap:.1f}", f"{off:.1f}", au, cls, emo]
            for sub, stim, on, ap, off, au, cls, emo in CASME3_ROWS]
    sheet.write_text("\n".join(",".join(map(str, r)) for r in [CASME3_HEADER, *rows]) + "\n")
    for sub, stim, on, _, off, *_ in CASME3_ROWS:
        _casme3_frames(root / "Part_A_ME_clip" / "frame" / f"{sub}_{stim}_{on}", on, off)
    got, skips = read_all(root, "casme3")
    assert skips == [] and [(c.onset, c.offset) for c in got] == [(on, off) for _, _, on, _, off, *_ in CASME3_ROWS]


def test_a_copy_of_a_smic_clip_folder_is_named_by_the_folder_it_repeats(tmp_path):
    """SMIC's clips are folders, not rows: a copied clip folder was skipped as "repeats row None of ..."."""
    from unimer_builder.records import Clip, Skip
    from unimer_builder.sources._common import dedupe

    def clip(folder):
        (tmp_path / folder).mkdir(parents=True)
        frame = tmp_path / folder / "reg_image000001.bmp"
        frame.write_bytes(b"")
        return Clip(database="smic", subject="s1", clip="s1_po_01", onset=1, apex=None, offset=1,
                    frames={1: str(frame)}, source_file=str(tmp_path / folder))

    first, copy = clip("HS/s1/micro/positive/s1_po_01"), clip("copy/HS/s1/micro/positive/s1_po_01")
    got = list(dedupe([first, copy]))
    assert got[0] is first and isinstance(got[1], Skip) and got[1].reason == "duplicate_clip"
    assert "row None" not in got[1].message
    assert f"repeats the clip read from {tmp_path / 'HS/s1/micro/positive/s1_po_01'}" in got[1].message
