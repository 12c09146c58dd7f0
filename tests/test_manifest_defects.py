"""Defects of the manifest reader found by a new-user trial, each reproduced on a small manifest of its own.

1. misspelled column names (``apex_frame``, ``AU``) were read as the user's own notes: the label was lost;
2. AU cells ``12.0`` (a float column written by pandas) and ``12 25`` were not read as AUs;
3. two windows of one video without a ``clip`` column got one id (the second skipped as a repeat), and ``/``
   in a ``subject`` or ``clip`` cell made two different rows one id;
4. an ``fps`` of ``inf`` or ``1e9`` was accepted;
5. an ``apex`` on the onset frame was replaced by an estimate without a label note;
6. a manifest whose every window failed as it was measured (a video window past its end, no face) wrote an
   empty dataset with a card and exited 1, where the same window of a frame folder stops the build (exit 2,
   nothing written).

A second trial: an ``aus`` cell ``none`` left the AUs unlabelled; an emotion ``hapiness`` or ``12`` (a row shifted by
a column) passed unremarked; a row holding a field more than the header made its path an index; two ``smile.mp4``
under same-named folders were one id; a subject in NFC and a folder in NFD were two subjects.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from unimer_builder import sources
from unimer_builder.cli import app
from unimer_builder.errors import UnusableInput
from unimer_builder.facs import parse_aus
from unimer_builder.records import Clip, Skip
from unimer_builder.sources import manifest


def _video(path: Path, n: int = 40, fps: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (16, 16))
    for k in range(n):
        vw.write(np.full((16, 16, 3), 5 * k, np.uint8))
    vw.release()
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    return _video(tmp_path / "takes" / "single_face.avi")


def _manifest(tmp_path: Path, text: str) -> Path:
    m = tmp_path / "manifest.csv"
    m.write_text(text)
    return m


def _read(root: Path) -> tuple[list[Clip], list[Skip]]:
    items = list(sources.read_clips(root, "manifest"))
    return [i for i in items if isinstance(i, Clip)], [i for i in items if isinstance(i, Skip)]


def _named(skip: Skip, file: Path, row: int, field: str) -> None:
    assert Path(skip.file) == file and skip.row == row and skip.field == field, skip
    assert str(file) in skip.message and f"row {row}" in skip.message and repr(field) in skip.message


# --- 1. misspelled columns ------------------------------------------------------------------------

def test_misspelled_columns_stop_the_build_naming_file_column_and_the_column_meant(tmp_path, video):
    """The trial's header: apex, offset and AUs were lost unsaid (apex estimated, offset defaulted)."""
    m = _manifest(tmp_path, "path,onset,apex_frame,offset_frame,AU,Emotion\n"
                            "takes/single_face.avi,16,23,24,6+12+25,happiness\n")
    with pytest.raises(UnusableInput) as e:
        sources.read_clips(tmp_path, "manifest")
    msg = str(e.value)
    assert msg.startswith(str(m))
    for col, meant in (("apex_frame", "apex"), ("offset_frame", "offset"), ("AU", "aus")):
        assert f"{col!r} (probably {meant!r})" in msg, msg
    assert "'Emotion'" not in msg  # a column differing only in case is that column


@pytest.mark.parametrize("header, col, meant", [
    ("path,Onset Frame,apex", "Onset Frame", "onset"),  # a frame suffix, spaces and case
    ("path,onset,apexframe", "apexframe", "apex"),
    ("path,onset,action_units", "action_units", "aus"),
    ("path,onset,au", "au", "aus"),
    ("path,onset,emtion", "emtion", "emotion"),  # a typo: difflib's close match
    ("path,onset,subjects", "subjects", "subject"),
    ("path,onset,frame_rate", "frame_rate", "fps"),
    ("file,onset", "file", "path"),  # a required column under another name
    ("path,start,end", "start", "onset"),
])
def test_near_miss_columns(tmp_path, video, header, col, meant):
    n = header.count(",") + 1
    m = _manifest(tmp_path, header + "\n" + ",".join(["takes/single_face.avi", "16", "23"][:n]) + "\n")
    with pytest.raises(UnusableInput) as e:
        sources.read_clips(tmp_path, "manifest")
    assert str(m) in str(e.value) and f"{col!r} (probably {meant!r})" in str(e.value), str(e.value)


def test_columns_of_ones_own_stay_allowed(tmp_path, video):
    """Notes columns far from every manifest column, and a near miss of a column the manifest also has, are
    the user's own: kept in ``Clip.extra``, not an error."""
    _manifest(tmp_path, "path,onset,offset,emotion,note,set,offset_ms,emotions,Coder\n"
                        "takes/single_face.avi,16,24,happiness,first,train,800,happiness|surprise,kb\n")
    (clip,), skips = _read(tmp_path)
    assert skips == []
    assert clip.extra == {"note": "first", "set": "train", "offset_ms": "800",
                          "emotions": "happiness|surprise", "coder": "kb"}
    assert "deliberate" in manifest.__doc__  # the rule is documented where the columns are


@pytest.mark.parametrize("header", ["path,onset,aus,AUS", "path,onset,aus,aus"])
def test_a_column_named_twice_is_an_input_error(tmp_path, video, header):
    """Both cells were read into one key, the last silently winning."""
    m = _manifest(tmp_path, f"{header}\ntakes/single_face.avi,16,12,6\n")
    with pytest.raises(UnusableInput, match="'aus'") as e:
        sources.read_clips(tmp_path, "manifest")
    assert str(m) in str(e.value)


def test_misspelled_column_exits_2_before_anything_is_built(tmp_path, video):
    m = _manifest(tmp_path, "path,onset,apex_frame\ntakes/single_face.avi,16,23\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["build", str(m), "--format", "manifest", "--out", str(out),
                                   "--workers", "1"], catch_exceptions=False)
    assert res.exit_code == 2, res.output
    assert "'apex_frame' (probably 'apex')" in res.output and str(m) in res.output
    assert not (out / "data").exists()


# --- 2. AU cells ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, aus", [
    ("12.0", [12]), ("12.00", [12]), ("6.0+12.0", [6, 12]),  # a float column as pandas writes it
    ("12 25", [12, 25]), ("6 12  25", [6, 12, 25]), ("R6 12", [6, 12]), ("12 25?", [12, 25]),
    ("AU 12", [12]), ("R14A or 17A", [14]),  # spaces inside one code or group stay one code
])
def test_float_text_and_space_separated_codes_are_read(text, aus):
    p = parse_aus(text)
    assert [t.au for t in p.tokens] == aus and p.unparsed == () and p.unknown == ()


@pytest.mark.parametrize("text", ["12|25", "12(25)", "-12", "12 and 6", "12.5", "12 A"])
def test_cells_still_not_read_stay_unparsed(text):
    p = parse_aus(text)
    assert p.unparsed, text


@pytest.mark.parametrize("text", ["0", "0.0", 0, 0.0])
def test_zero_means_no_action_units(text):
    """FACS code 0 is the neutral face: a cell ``0`` says no AU acted (as ``none`` does), not that it is
    unreadable: no token, nothing unparsed or unknown, and the label is not "unknown"."""
    p = parse_aus(text)
    assert p.tokens == () and p.unparsed == () and p.unknown == () and not p.label_unknown


def test_manifest_au_cells_from_csv_and_parquet(tmp_path, video):
    rows = [("a", "12.0"), ("b", "12 25"), ("c", "0"), ("d", "12|25")]
    _manifest(tmp_path, "path,onset,apex,offset,aus,clip\n"
                        + "".join(f"takes/single_face.avi,16,23,24,{a},{c}\n" for c, a in rows))
    got, skips = _read(tmp_path)
    assert skips == []
    a, b, zero, bad = got
    assert [t.au for t in a.aus.tokens] == [12] and "label_notes" not in a.extra
    assert [t.au for t in b.aus.tokens] == [12, 25] and "label_notes" not in b.extra
    assert zero.au_text == "0" and zero.aus.tokens == () and "label_notes" not in zero.extra
    assert bad.extra["label_notes"] == ["aus '12|25': '12|25' is not an AU code (no AU was read from it)"]
    # a float column in a parquet manifest (12.0 and a missing value)
    pq_root = tmp_path / "pq"
    _video(pq_root / "v.avi")
    pd.DataFrame({"path": ["v.avi", "v.avi"], "onset": [16, 16], "offset": [24, 24], "aus": [12.0, math.nan],
                  "clip": ["x", "y"]}).to_parquet(pq_root / "manifest.parquet")
    (x, y), skips = _read(pq_root)
    assert skips == [] and [t.au for t in x.aus.tokens] == [12] and x.au_text == "12"
    assert y.au_text is None


def test_a_sheet_cell_with_codes_apart_reads_them(tmp_path):
    """The shared parser serves the databases' sheets too: a CASME II cell ``R6 12`` is R6 + 12."""
    from test_sources import _casme2, read_all, set_cell

    ids, sheet = _casme2(tmp_path)
    set_cell(sheet, None, 2, "Action Units", "R6 12")
    set_cell(sheet, None, 4, "Action Units", 12.0)
    got, _ = read_all(tmp_path, "casme2")
    assert [c.clip_id for c in got] == ids
    assert [t.code() for t in got[0].aus.tokens] == ["R6", "12"] and "label_notes" not in got[0].extra
    assert [t.code() for t in got[2].aus.tokens] == ["12"]


# --- 3. ids of windows and of subjects/clips with separators --------------------------------------

def test_several_windows_of_one_video_get_their_onset_in_the_id(tmp_path, video):
    _video(tmp_path / "takes" / "other.avi")
    _manifest(tmp_path, "path,onset,apex,offset,aus\n"
                        "takes/single_face.avi,16,23,24,6+12+25\n"
                        "takes/single_face.avi,24,27,29,45\n"
                        "takes/other.avi,5,7,9,12\n")
    got, skips = _read(tmp_path)
    assert skips == []
    assert [c.clip_id for c in got] == ["manifest/takes/single_face_16", "manifest/takes/single_face_24",
                                        "manifest/takes/other"]  # a single window keeps its old id
    assert [c.clip for c in got] == ["single_face_16", "single_face_24", "other"]


def test_a_repeated_window_or_explicit_clip_is_still_a_duplicate(tmp_path, video):
    m = _manifest(tmp_path, "path,onset,apex,offset,clip\n"
                            "takes/single_face.avi,16,23,24,\n"
                            "takes/single_face.avi,16,23,24,\n"  # the same window twice
                            "takes/single_face.avi,5,7,9,a\n"
                            "takes/single_face.avi,10,12,14,a\n")  # an explicit clip repeated
    got, skips = _read(tmp_path)
    assert [c.clip_id for c in got] == ["manifest/takes/single_face", "manifest/takes/a"]
    assert [(s.reason, s.row) for s in skips] == [("duplicate_clip", 3), ("duplicate_clip", 5)]
    assert "repeats row 2" in skips[0].message and "repeats row 4" in skips[1].message
    assert all(str(m) in s.message for s in skips)
    # the same window twice is a plain repeat; two windows under one name say how to tell them apart
    assert "another window" not in skips[0].message and skips[0].field == ""
    assert skips[1].message.endswith("the rows give another window or label under the same clip id: give each "
                                     "its own name in a 'clip' column") and skips[1].field == "clip"


def test_two_windows_of_one_video_from_the_same_onset_say_how_to_tell_them_apart(tmp_path, video):
    """A new user's rows 12,24,30 and 12,20,26 of one video: both took the id of the video and its onset, and the
    second was skipped as a repeat of the first without a word of why."""
    _manifest(tmp_path, "path,onset,apex,offset,aus\n"
                        "takes/single_face.avi,16,23,24,12\n"
                        "takes/single_face.avi,16,20,22,12\n")
    got, skips = _read(tmp_path)
    assert len(got) == 1 and [(s.reason, s.row, s.field) for s in skips] == [("duplicate_clip", 3, "clip")]
    assert "give each its own name in a 'clip' column" in skips[0].message
    # the same window labelled with another emotion is another label too
    _manifest(tmp_path, "path,onset,apex,offset,emotion\n"
                        "takes/single_face.avi,16,23,24,anger\n"
                        "takes/single_face.avi,16,23,24,disgust\n")
    got, skips = _read(tmp_path)
    assert len(got) == 1 and "another window or label" in skips[0].message and skips[0].field == "clip"


def test_separators_in_subject_or_clip_are_refused(tmp_path, video):
    """``s1`` + ``a/b`` and ``s1/a`` + ``b`` would both be ``manifest/s1/a/b``."""
    m = _manifest(tmp_path, "path,onset,apex,offset,subject,clip\n"
                            "takes/single_face.avi,16,23,24,s1,a/b\n"
                            "takes/single_face.avi,24,27,29,s1/a,b\n"
                            "takes/single_face.avi,24,27,29,s2,a\\b\n"
                            "takes/single_face.avi,16,23,24,sujet é,clip ü #1\n")
    got, skips = _read(tmp_path)
    assert [c.clip_id for c in got] == ["manifest/sujet é/clip ü #1"]
    assert [s.reason for s in skips] == ["bad_label"] * 3
    for s, row, field in zip(skips, (2, 3, 4), ("clip", "subject", "clip"), strict=True):
        _named(s, m, row, field)
        assert "'/'" in s.message or "'\\\\'" in s.message


# --- 4. fps ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("fps", ["inf", "-inf", "Infinity", "1e9", "20000"])
def test_an_infinite_or_implausible_fps_is_skipped_naming_row_and_field(tmp_path, video, fps):
    m = _manifest(tmp_path, f"path,onset,apex,offset,fps\ntakes/single_face.avi,16,23,24,200\n"
                            f"takes/single_face.avi,5,7,9,{fps}\n")
    got, skips = _read(tmp_path)
    assert [c.fps for c in got] == [200.0]
    (s,) = skips
    assert s.reason == "bad_label" and repr(fps) in s.message
    assert ("not a finite positive number" if "inf" in fps.lower() else "above 10000") in s.message
    _named(s, m, 3, "fps")


def test_a_high_speed_camera_rate_is_accepted_and_nan_is_no_rate(tmp_path, video):
    """1000 fps cameras exist (under the maximum); ``nan`` is a missing value, as in every other cell and in a
    parquet float column: the video's declared rate is used."""
    _manifest(tmp_path, "path,onset,apex,offset,fps,clip\ntakes/single_face.avi,16,23,24,1000,a\n"
                        "takes/single_face.avi,16,23,24,nan,b\n")
    (a, b), skips = _read(tmp_path)
    assert skips == [] and a.fps == 1000.0 and b.fps == 30.0
    assert 1000 < manifest.MAX_FPS < math.inf


# --- 5. apex on the onset frame -------------------------------------------------------------------

def test_an_apex_on_the_onset_frame_is_estimated_with_a_label_note(tmp_path, video):
    _manifest(tmp_path, "path,onset,apex,offset,clip\ntakes/single_face.avi,16,16,24,a\n"
                        "takes/single_face.avi,16,,24,b\n")
    (a, b), skips = _read(tmp_path)
    assert skips == [] and a.apex is None and b.apex is None
    assert a.extra["label_notes"] == ["apex 16 is the onset frame (16): the apex is estimated from motion"]
    assert "label_notes" not in b.extra  # no apex given: estimating it is no change of the label


# --- 6. nothing built, nothing written ------------------------------------------------------------------


def test_a_manifest_whose_every_window_fails_when_measured_writes_nothing_and_exits_2(video, tmp_path):
    """Video frames are decoded as a clip is measured, so a window past the video's end (or a video with no
    face) is found only then; with every window failed there is no dataset to write."""
    m = _manifest(tmp_path, f"path,onset,apex,offset,aus\n{video},2,6,100,12\n{video},10,14,18,4\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["build", str(m), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 2, res.output
    assert not out.exists()
    assert "no clip could be built" in res.output and "missing_frame" not in res.output
    assert "frame 100" in res.output and "no face" in res.output  # each window's own reason
    # A folder that holds a build already keeps it as it was.
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    res = CliRunner().invoke(app, ["build", str(m), "--out", str(out), "--workers", "1"])
    assert res.exit_code == 2, res.output
    assert (out / "keep.txt").read_text() == "mine" and not (out / "data").exists()


def test_clips_all_of_one_subject_are_said_to_leave_no_subject_out(tmp_path):
    """A flat folder of clips listed without a ``subject`` column became one subject (the folder's name)
    without a word: leave-one-subject-out evaluation had no other subject to train on."""
    import json
    import shutil

    from unimer_builder import synthesize

    src = synthesize(tmp_path / "src", "manifest", clips=2, subjects=2, seed=3, frames=8)
    rows = pd.read_csv(src / "manifest.csv")
    (tmp_path / "flat").mkdir()
    for i, rel in enumerate(rows["path"]):
        shutil.move(src / rel, tmp_path / "flat" / f"take{i}")
    flat = rows.assign(path=["flat/take0", "flat/take1"]).drop(columns=["subject", "clip"])
    flat.to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["build", str(tmp_path / "manifest.csv"), "--out", str(out), "--workers",
                                   "1", "--composite", "labels"])
    assert res.exit_code == 0, res.output
    note = ("every clip (2) is of one subject, 'flat': leave-one-subject-out evaluation (deft evaluate "
            "--protocol loso) has no other subject to train on; give each row its subject in the manifest's "
            "`subject` column, or put each subject's videos or frame folders in a folder of their own (a "
            "clip's subject is otherwise the name of the folder holding it)")
    assert json.loads((out / "build_report.json").read_text())["notes"] == [note]
    assert note in " ".join(res.output.split())


def test_missing_values_and_placeholder_emotions_are_no_labels(tmp_path, video):
    """A manifest written by R (``write.csv``: a missing value is ``NA``) had its ``aus`` read as "no AU acted"
    (inference switched off), its emotion rendered as "**na**", every ``clip`` NA a duplicate of the first; an
    emotion cell of ``?`` or ``-`` became an answer's "labelled **?**"; "Angry" had no composite class."""
    from unimer_builder import labels

    _manifest(tmp_path, "path,onset,apex,offset,aus,emotion,clip,fps\n"
                        "takes/single_face.avi,16,23,NA,NA,NA,NA,NA\n"
                        "takes/single_face.avi,10,12,14,12,?,b,30\n"
                        "takes/single_face.avi,11,12,14,0,-,c,30\n"
                        "takes/single_face.avi,12,13,14,12,Angry,NA,30\n")
    got, skips = _read(tmp_path)
    assert skips == []
    first, b, c, d = got
    assert first.au_text is None and not first.au_labelled and first.emotion is None
    assert first.offset is None and first.fps == 30 and first.clip != "NA" and d.clip != "NA" and first.clip != d.clip
    assert b.emotion is None and c.emotion is None and labels.canonical(b.emotion) is None
    assert c.au_labelled and c.aus.tokens == ()  # "0" still says no AU acted
    assert d.emotion == "Angry" and labels.canonical(d.emotion) == "anger"
    assert labels.composite("manifest", d.emotion) == "negative"
    assert [labels.canonical(w) for w in ("Surprised", "disgusted", "Fearful", "joy")] == \
        ["surprise", "disgust", "fear", "happiness"]


def test_manifests_as_spreadsheet_programs_save_them(tmp_path, video):
    """Labels live in Excel: an .xlsx manifest was told to pass --format manifest, which then said "no manifest.csv";
    Excel's CSV in a comma-decimal locale (semicolons) had "no column 'path'"; its Windows encoding a raw
    UnicodeDecodeError."""
    rows = pd.DataFrame({"path": ["takes/single_face.avi"] * 2, "onset": ["16", "10"], "offset": ["24", "14"],
                         "aus": ["12", "NA"], "emotion": ["happy", "?"], "clip": ["café", "b"]})
    for name, write in [("m.xlsx", lambda p: rows.to_excel(p, index=False)),
                        ("semi.csv", lambda p: p.write_text(rows.to_csv(index=False, sep=";"), encoding="utf-8")),
                        ("win.csv", lambda p: p.write_bytes(rows.to_csv(index=False).encode("cp1252")))]:
        write(tmp_path / name)
        assert sources.detect_format(tmp_path / name) == "manifest"
        items = list(sources.read_clips(tmp_path / name, "manifest"))
        assert all(isinstance(i, Clip) for i in items), (name, items)
        a, b = items
        assert (a.clip, a.onset, a.offset, [t.au for t in a.aus.tokens], a.emotion) == ("café", 16, 24, [12], "happy")
        assert (b.clip, b.au_text, b.emotion) == ("b", None, None), name
    # the same locale writes a frame rate with a decimal comma: read as such where the cells are not comma-separated
    # (semicolons, or Excel's "Unicode Text": UTF-16, tabs), and elsewhere the skip says how to write it
    (tmp_path / "comma.csv").write_text("path;onset;offset;FPS \ntakes/single_face.avi;16;24;29,97\n", encoding="utf-8")
    (tmp_path / "utf16.csv").write_text("path\tonset\toffset\tfps\ntakes/single_face.avi\t16\t24\t29,97\n",
                                        encoding="utf-16")
    for name in ("comma.csv", "utf16.csv"):
        (clip,) = list(sources.read_clips(tmp_path / name, "manifest"))
        assert isinstance(clip, Clip) and (clip.onset, clip.offset, clip.fps) == (16, 24, 29.97), (name, clip)
    pd.DataFrame({"path": ["takes/single_face.avi"], "onset": [16], "fps": ["29,97"]}).to_excel(tmp_path / "c.xlsx",
                                                                                               index=False)
    (skip,) = list(sources.read_clips(tmp_path / "c.xlsx", "manifest"))
    assert (skip.reason, skip.row, skip.field) == ("bad_label", 2, "fps")
    assert skip.message.endswith("(write the decimal with a point: 29.97, not 29,97)")
    (tmp_path / "bad16.csv").write_bytes(b"\xff\xfep\x00a\x00t\x00h\x00\x00\xd8")  # a lone surrogate half
    with pytest.raises(UnusableInput, match=r"^[^()]*bad16.csv: the manifest starts as UTF-16 text but does not "):
        list(sources.read_clips(tmp_path / "bad16.csv", "manifest"))  # said once, not wrapped in "cannot read"
    (tmp_path / "m.tsv").write_text("x")
    with pytest.raises(UnusableInput, match=r"m.tsv: a manifest is a .csv, .parquet, .xlsx or .xlsm file"):
        list(sources.read_clips(tmp_path / "m.tsv", "manifest"))


@pytest.mark.parametrize("pattern", ["frame{}_face0.jpg", "img_{}_224x224.png", "take2_{:03d}_crop224.png"])
def test_frames_numbered_before_a_tools_constant_suffix(tmp_path, pattern):
    """A face-crop tool's names (frame16_face0.jpg ...): the last run of digits is one number throughout, so every
    frame read 0 (or 224) and the clip was refused as nine files of one frame, with the advice to delete eight."""
    from unimer_builder.sources._common import list_frames

    for n in range(16, 25):
        cv2.imwrite(str(tmp_path / pattern.format(n)), np.full((8, 8), n, np.uint8))
    frames = list_frames(tmp_path)
    assert sorted(frames) == list(range(16, 25)) and not frames.duplicates
    assert frames[20].endswith(pattern.format(20))


def test_a_stray_image_named_in_another_pattern_is_no_frame_and_is_noted(tmp_path):
    """``thumbnail_640x360.jpg`` beside ``img001.jpg`` ... ``img030.jpg`` was read as frame 360: the offset
    defaulted to it, and the clip ran over 330 frames, 329 of them missing."""
    folder = tmp_path / "takes" / "a"
    folder.mkdir(parents=True)
    for n in range(1, 31):
        cv2.imwrite(str(folder / f"img{n:03d}.jpg"), np.full((8, 8), n, np.uint8))
    for name in ("thumbnail_640x360.jpg", "cover.png"):
        cv2.imwrite(str(folder / name), np.zeros((8, 8), np.uint8))
    _manifest(tmp_path, "path,onset\ntakes/a,1\n")
    (clip,), skips = _read(tmp_path)
    assert skips == [] and sorted(clip.frames) == list(range(1, 31)) and clip.offset == 30
    assert clip.extra["label_notes"] == [
        "2 images in the frame folder not named as its frames (img001.jpg ...) were not read: cover.png, "
        "thumbnail_640x360.jpg"]


def test_frames_of_one_name_in_two_extensions_are_all_frames(tmp_path):
    """``img003.jpeg`` beside ``img001.jpg`` and ``img002.jpg`` (frames from two tools) is a frame: the name
    pattern is the stem's, and a frame of the minority extension at the onset had been dropped with it."""
    folder = tmp_path / "takes" / "a"
    folder.mkdir(parents=True)
    for n, ext in ((1, "jpeg"), (2, "jpg"), (3, "jpg")):
        cv2.imwrite(str(folder / f"img{n:03d}.{ext}"), np.full((8, 8), n, np.uint8))
    _manifest(tmp_path, "path,onset\ntakes/a,1\n")
    (clip,), skips = _read(tmp_path)
    assert skips == [] and sorted(clip.frames) == [1, 2, 3] and not clip.extra.get("label_notes")


def test_a_linked_manifest_reads_relative_paths_from_the_links_folder(tmp_path, video):
    """A manifest linked into the folder of the clips (``ln -s /shared/m.csv manifest.csv``) read its relative
    paths from the folder of the file it links to: every row "does not exist"."""
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "m.csv").write_text("path,onset,offset\ntakes/single_face.avi,2,10\n")
    (tmp_path / "manifest.csv").symlink_to(tmp_path / "shared" / "m.csv")
    for root in (tmp_path, tmp_path / "manifest.csv"):
        (clip,), skips = _read(root)
        assert skips == [] and clip.video == str(video.resolve())
    # A path found only beside the link's target: the message names both folders.
    (tmp_path / "links").mkdir()
    (tmp_path / "links" / "manifest.csv").symlink_to(tmp_path / "real.csv")
    (tmp_path / "real.csv").write_text("path,onset,offset\ntakes/single_face.avi,2,10\n")
    _, (skip,) = _read(tmp_path / "links")
    assert skip.reason == "missing_path" and skip.message.endswith(
        f"{tmp_path}/links/takes/single_face.avi does not exist (relative paths are read from "
        f"{tmp_path}/links, the folder of the manifest as given; {video.resolve()}, beside the file the "
        f"manifest links to, does)")


def test_a_path_in_the_other_unicode_normal_form_is_found(tmp_path):
    """A manifest path copied from macOS (NFD: "O" + a combining diaeresis) against a folder named in NFC: "does not
    exist", printed exactly as the folder that `ls` shows."""
    import unicodedata

    nfc = unicodedata.normalize("NFC", "Proband Ö 1")
    _video(tmp_path / nfc / "take.avi")
    _manifest(tmp_path, f"path,onset,offset\n{unicodedata.normalize('NFD', nfc)}/take.avi,16,24\n")
    got, skips = _read(tmp_path)
    assert skips == [] and len(got) == 1 and got[0].video.endswith("take.avi")


def test_an_offset_not_given_is_written_as_an_apex_not_given_is(tmp_path, video):
    """``/`` in the apex meant "not given" while the same cell in the offset skipped the row as no frame number."""
    _manifest(tmp_path, "path,onset,apex,offset,clip\n"
                        "takes/single_face.avi,16,/,/,a\ntakes/single_face.avi,16,23,-,b\n")
    got, skips = _read(tmp_path)
    assert skips == [] and [(c.apex, c.offset) for c in got] == [(None, None), (23, None)]


# --- a second trial -------------------------------------------------------------------------------

def test_an_aus_cell_none_is_no_au_acting_as_in_a_sheet(tmp_path, video):
    """``none`` left the AUs unlabelled (inferred from motion) while ``0``, ``-`` and ``n/a`` said no AU acted, and a
    database's sheet reads ``none`` as no AU too; only an empty cell or ``NA`` labels nothing."""
    cells = ["none", "None", " NONE ", "0", "-", "n/a", "", "NA", "12"]
    _manifest(tmp_path, "path,onset,offset,aus,clip\n"
                        + "".join(f"takes/single_face.avi,16,24,{a},c{k}\n" for k, a in enumerate(cells)))
    got, skips = _read(tmp_path)
    assert skips == []
    assert [c.au_labelled for c in got] == [True] * 6 + [False, False, True]
    assert all(c.aus.tokens == () and "label_notes" not in c.extra for c in got[:6])
    assert got[0].au_text == "none" and got[6].au_text is None and got[7].au_text is None
    pq_root = tmp_path / "pq"  # a parquet's missing value (None) is no label; the word is
    _video(pq_root / "v.avi")
    pd.DataFrame({"path": ["v.avi", "v.avi"], "onset": [16, 16], "offset": [24, 24], "aus": [None, "none"],
                  "clip": ["x", "y"]}).to_parquet(pq_root / "manifest.parquet")
    (x, y), _ = _read(pq_root)
    assert not x.au_labelled and y.au_labelled


@pytest.mark.parametrize("lines, row", [
    (["v.avi,10,20,30,6,12,happiness"], 2),  # every row one field more: pandas made the paths an index
    (["v.avi,10,20,30,12,happiness", "v.avi,40,50,60,6,12,happiness"], 3),
])
def test_a_row_with_more_fields_than_the_header_names_file_row_and_counts(tmp_path, lines, row):
    """An AU list ``6,12`` unquoted: the row read "row 2, field 'path': .../10 does not exist" (its first field an
    index), or pandas' "Error tokenizing data"."""
    _video(tmp_path / "v.avi")
    m = _manifest(tmp_path, "path,onset,apex,offset,aus,emotion\n" + "\n".join(lines) + "\n")
    with pytest.raises(UnusableInput) as e:
        sources.read_clips(tmp_path, "manifest")
    assert str(e.value).startswith(f"{m}: row {row} holds 7 fields where the header names 6 columns"), str(e.value)
    assert "6+12" in str(e.value)
    # empty fields past the header (an export's trailing separators) are no cells
    _manifest(tmp_path, "path,onset,apex,offset\nv.avi,10,20,30,,\nv.avi,11,20,30\n")
    got, skips = _read(tmp_path)
    assert skips == [] and [c.onset for c in got] == [10, 11]


def test_rows_after_a_blank_line_keep_the_numbers_a_spreadsheet_shows(tmp_path, video):
    """pandas skipped the blank line: the row below it was named as the one above it (row 3 for row 4)."""
    m = _manifest(tmp_path, "path,onset,offset\ntakes/single_face.avi,16,24\n\ntakes/gone.avi,16,24\n\n\n")
    got, skips = _read(tmp_path)
    assert [c.source_row for c in got] == [2]
    _named(skips[0], m, 4, "path")


def test_an_emotion_that_is_no_known_word_is_noted_and_a_shifted_row_refused(tmp_path, video):
    """``hapiness`` became a class of its own without a word; ``12`` (a row shifted by a column: ``6,12`` unquoted in
    its ``aus`` cell under a header with a ``subject``) built as emotion 12 of subject ``happiness``."""
    m = _manifest(tmp_path, "path,onset,offset,aus,emotion,subject,clip\n"
                            "takes/single_face.avi,16,24,12,hapiness,s1,a\n"
                            "takes/single_face.avi,16,24,12,Neutral,s1,b\n"
                            "takes/single_face.avi,16,24,12,Angry,s1,c\n"  # known words: no note
                            "takes/single_face.avi,16,24,12,?,s1,d\n"
                            "takes/single_face.avi,16,24,6,12,happiness\n"
                            "takes/single_face.avi,16,24,6,12.5,s1,f\n"
                            "takes/single_face.avi,16,24,6,AU12,s1,g\n"
                            "takes/single_face.avi,16,24,6,6+12,s1,h\n")
    got, skips = _read(tmp_path)
    typo, neutral, angry, unknown, number, code, codes = got
    assert typo.emotion == "hapiness" and typo.extra["label_notes"] == [
        f"{m}, row 2, field 'emotion': 'hapiness' is no emotion word the builder knows, so it is a class of its own "
        f"(did you mean 'happiness'?)"]
    assert "row 3, field 'emotion': 'Neutral' is no emotion word" in neutral.extra["label_notes"][0]
    assert "did you mean" not in neutral.extra["label_notes"][0]
    assert "label_notes" not in angry.extra and "label_notes" not in unknown.extra
    # the shifted row, whose subject cell holds the emotion word, is refused
    (skip,) = skips
    _named(skip, m, 6, "emotion")
    assert skip.reason == "bad_label" and "'12' is a number while the row's 'subject' cell holds the emotion word " \
        "'happiness'" in skip.message and "shifted by a column" in skip.message
    # a number or an AU code with no emotion word beside it (classes coded by number, columns swapped) is noted
    assert "row 7, field 'emotion': '12.5' is a number, a class of its own" in number.extra["label_notes"][0]
    assert "'AU12' is an AU code" in code.extra["label_notes"][0] and "swapped" in code.extra["label_notes"][0]
    assert "'6+12' is an AU code" in codes.extra["label_notes"][0]
    # a number in a parquet's emotion column, a subject's beside it
    pq_root = tmp_path / "pq"
    _video(pq_root / "v.avi")
    pd.DataFrame({"path": ["v.avi"], "onset": [16], "offset": [24], "emotion": [12.0], "subject": ["sad"]}).to_parquet(
        pq_root / "manifest.parquet")
    got, (skip,) = _read(pq_root)
    assert got == [] and "'12' is a number while the row's 'subject' cell" in skip.message


def test_names_in_either_unicode_normal_form_are_one_subject(tmp_path):
    """A subject typed in the manifest (NFC) and the same name read from a folder copied from macOS (NFD) were two
    subjects that print alike (``manifest/Sujet é/take 1`` twice); a clip named after an NFD file too."""
    import unicodedata

    nfc, nfd = (unicodedata.normalize(f, "Sujet é") for f in ("NFC", "NFD"))
    take = unicodedata.normalize("NFD", "prise é")
    _video(tmp_path / nfd / f"{take}.avi")
    _manifest(tmp_path, "path,onset,offset,subject,clip\n"
                        f"{nfc}/{take}.avi,10,20,{nfc},\n"
                        f"{nfc}/{take}.avi,16,24,,\n"
                        f"{nfd}/{take}.avi,5,9,{nfd},{nfd}\n")
    got, skips = _read(tmp_path)
    assert skips == [] and {c.subject for c in got} == {nfc}
    take = unicodedata.normalize("NFC", take)
    assert [c.clip_id for c in got] == [f"manifest/{nfc}/{take}_10", f"manifest/{nfc}/{take}_16",
                                        f"manifest/{nfc}/{nfc}"]
    assert all(c.clip_id == unicodedata.normalize("NFC", c.clip_id) for c in got)


def test_files_of_one_name_in_folders_of_one_name_are_different_clips(tmp_path):
    """``day1/s01/smile.avi`` and ``day2/s01/smile.avi``, one window each: one id, the second row skipped as
    "repeats row 2" although it names another video. Each default name gets the folders that tell them apart."""
    for rel in ("day1/s01/smile.avi", "day2/s01/smile.avi", "s02/smile.avi", "s02/smile.mp4", "s03/smile.avi",
                "t1/p/take.avi", "t2/p/take.avi"):
        _video(tmp_path / rel)
    (tmp_path / "again").symlink_to(tmp_path / "day1")  # the same video by another path
    m = _manifest(tmp_path, "path,onset,offset,clip\n"
                            "day1/s01/smile.avi,0,20,\n"
                            "day2/s01/smile.avi,0,20,\n"
                            "day1/s01/smile.avi,10,30,\n"
                            "again/s01/smile.avi,10,30,\n"  # one window listed twice: a repeat
                            "s02/smile.avi,0,20,\n"
                            "s02/smile.mp4,0,20,\n"  # names that differ in their extension only
                            "s03/smile.avi,0,20,\n"  # no collision: the id as before
                            "day1/s01/smile.avi,0,20,x\n"
                            "day2/s01/smile.avi,0,20,x\n"  # a clip named twice for two videos
                            "t1/p/take.avi,0,20,\n"  # two videos of one name, told apart by their onsets:
                            "t2/p/take.avi,10,30,\n")  # the ids they were built under before
    got, skips = _read(tmp_path)
    assert [c.clip_id for c in got] == ["manifest/s01/day1_smile_0", "manifest/s01/day2_smile",
                                        "manifest/s01/day1_smile_10", "manifest/s02/smile.avi",
                                        "manifest/s02/smile.mp4", "manifest/s03/smile", "manifest/s01/x",
                                        "manifest/p/take_0", "manifest/p/take_10"]
    assert [(s.reason, s.row, s.field) for s in skips] == [("duplicate_clip", 5, ""), ("duplicate_clip", 10, "clip")]
    assert "repeats row 4" in skips[0].message
    assert "repeats" not in skips[1].message and f"also the id of row 9 of {m}" in skips[1].message
    assert all(str(tmp_path / d / "s01" / "smile.avi") in skips[1].message for d in ("day1", "day2"))


def test_aus_joined_by_a_slash_are_noted_as_one_or_the_other(tmp_path, video):
    """``12/25`` is SAMM's "12 or 25": in a manifest it was read so without a word, and only one AU was judged."""
    _manifest(tmp_path, "path,onset,offset,aus,clip\n"
                        "takes/single_face.avi,16,24,6+12/25,a\n"
                        "takes/single_face.avi,16,24,R12/L12,b\n"
                        "takes/single_face.avi,16,24,6+12,c\n")
    (either, sides, both), skips = _read(tmp_path)
    assert skips == []
    assert either.extra["label_notes"] == ["aus '6+12/25': '12/25' is read as one AU or the other (SAMM's notation), "
                                           "judged by whichever the motion supports; write 12+25 where both acted"]
    assert "label_notes" not in sides.extra and "label_notes" not in both.extra  # one AU either side: no choice


def test_classes_coded_by_number_beside_their_names_are_not_a_shifted_row(tmp_path, video):
    """A manifest coding its emotions by number, with their names in a column of its own (or a comment holding an
    emotion word), lost every row as "shifted by a column"; only a word in the manifest column after ``emotion``
    (where a shifted row puts it) is a shift."""
    _manifest(tmp_path, "path,onset,offset,emotion,emotion_name,subject,clip,note\n"
                        "takes/single_face.avi,16,24,1,happiness,s1,a,\n"
                        "takes/single_face.avi,16,24,2,surprise,s1,b,other\n")
    got, skips = _read(tmp_path)
    assert skips == [] and [c.emotion for c in got] == ["1", "2"]
    assert all("is a number, a class of its own" in c.extra["label_notes"][0] for c in got)


def test_a_tab_separated_row_with_more_fields_names_a_tab_in_its_example(tmp_path, video):
    m = _manifest(tmp_path, "path\tonset\toffset\taus\n" "takes/single_face.avi\t16\t24\t6\t12\n")
    with pytest.raises(UnusableInput) as e:
        sources.read_clips(tmp_path, "manifest")
    assert str(e.value).startswith(f"{m}: row 2 holds 5 fields") and "a tab unquoted" in str(e.value)
    assert "6,12" not in str(e.value)


def test_paths_written_on_windows_or_on_another_machine_are_found(tmp_path, video):
    """A manifest written on Windows (``takes\\single_face.avi``) had every row skipped as missing: ``\\`` is no
    separator here. An absolute path of the machine it was written on (a drive, a share, another user's home) is read
    by its last parts that exist under the manifest's folder, with a label note saying which file was read and the
    subject the folder it was written in; two written paths read as one file are neither (a review: day 1's row was
    built from day 2's video)."""
    frames = tmp_path / "sub01" / "EP02_01f"
    frames.mkdir(parents=True)
    for n in range(3):
        cv2.imwrite(str(frames / f"img{n + 1}.jpg"), np.full((16, 16), 40 * n, np.uint8))
    _video(tmp_path / "takes" / "other.avi")
    _video(tmp_path / "clipx.avi")
    _video(tmp_path / "smile.avi")
    (tmp_path / "sub02" / "EP03_01f").mkdir(parents=True)
    for n in range(3):
        cv2.imwrite(str(tmp_path / "sub02" / "EP03_01f" / f"img{n + 1}.jpg"), np.full((16, 16), 40 * n, np.uint8))
    _manifest(tmp_path, "path,onset,apex,subject,clip\n"
                        "takes\\single_face.avi,1,5,s1,a\n"
                        "sub01\\EP02_01f,1,2,s1,b\n"
                        "D:\\MER\\CASME2\\sub01\\EP02_01f,1,2,s1,c\n"
                        "/home/alice/study/takes/single_face.avi,2,6,s1,d\n"
                        "\\\\lab-nas\\mer\\takes\\other.avi,3,7,s1,e\n"
                        "D:\\MER\\CASME2\\sub09\\EP01_01,1,2,s1,f\n"
                        f"{tmp_path}/sub01\\EP02_01f,1,2,s1,g\n"
                        "\\sub02\\EP03_01f,1,2,s1,h\n"
                        "E:\\data\\s07\\clipx.avi,1,2,,\n"
                        "D:\\study\\day1\\s01\\smile.avi,2,6,,\n"
                        "D:\\study\\day2\\s01\\smile.avi,10,14,,\n")
    clips, skips = _read(tmp_path)
    by = {c.clip: c for c in clips}
    assert sorted(by) == ["a", "b", "c", "clipx", "d", "e", "g", "h"]
    assert by["a"].video == str(video.resolve()) == by["d"].video
    assert by["e"].video == str((tmp_path / "takes" / "other.avi").resolve())
    assert set(by["b"].frames) == {1, 2, 3} and by["b"].frames == by["c"].frames == by["g"].frames
    assert set(by["h"].frames) == {1, 2, 3} and "'sub02/EP03_01f'" in by["h"].extra["label_notes"][0]
    for k in "abg":  # the path as written, read with '/'
        assert not by[k].extra.get("label_notes"), k
    assert by["c"].extra["label_notes"] == [
        f"{tmp_path / 'manifest.csv'}, row 4, field 'path': 'D:\\MER\\CASME2\\sub01\\EP02_01f' does not exist on "
        f"this machine; its last parts 'sub01/EP02_01f' do, in the manifest's folder, and are read"]
    assert "its last part 'clipx.avi' does, in the manifest's folder, and is read" in by["clipx"].extra["label_notes"][0]
    assert by["clipx"].subject == "s07"  # the folder it was written in, not the manifest's
    why = {s.row: s.message for s in skips}
    assert sorted(why) == [7, 11, 12] and {s.reason for s in skips} == {"missing_path"}
    assert why[7].endswith("'D:\\MER\\CASME2\\sub09\\EP01_01' is an absolute path that does not exist on this machine, "
                      f"and none of its last parts exist in the manifest's folder ({tmp_path})")
    assert "'smile.avi' in the manifest's folder, which its last part names, is what 'D:\\study\\day2\\s01\\smile.avi' would be read as too" in why[11]
    assert "'D:\\study\\day1\\s01\\smile.avi' would be read as too" in why[12]


def test_marks_written_as_times_say_to_write_frames(tmp_path, video):
    """A window timed in a video player (``00:00:01.5``) or in seconds (``1.5``) was "not a frame number" without
    saying what is: the message says the marks are frames and how to get them."""
    import datetime

    from unimer_builder.sources import _common

    _manifest(tmp_path, "path,onset,apex,offset\n"
                        "takes/single_face.avi,00:00:00.5,00:00:00.8,00:00:01.0\n"
                        "takes/single_face.avi,0,1.5,2\n"
                        "takes/single_face.avi,0,4,soon\n")
    _, skips = _read(tmp_path)
    why = {(s.row, s.field): s.message for s in skips}
    assert "'00:00:00.5' is not a frame number: marks are frame numbers, not times" in why[(2, "onset")]
    assert "'1.5' is not a frame number: marks are frame numbers, not times" in why[(3, "apex")]
    assert why[(4, "offset")].endswith("offset 'soon' is not a frame number")
    # an Excel time cell, as pandas reads it
    r = _common.Row("manifest", "m.xlsx", 2, "manifest/s/c")
    skip = _common.parse_frames(r, {"onset": datetime.time(0, 0, 1)}, {"onset": "onset"})
    assert "onset '00:00:01' is not a frame number: marks are frame numbers, not times" in skip.message
    # an editor's timecode, seconds with a unit, a date-time cell; a frame number with a thousands separator
    for cell in ("00:00:01:12", "1.5s", datetime.datetime(2026, 1, 1, 0, 0, 1)):
        assert "not times" in _common.parse_frames(r, {"onset": cell}, {"onset": "onset"}).message, cell
    assert "if it is frame 4534 written with a thousands separator, write it without one" in _common.parse_frames(
        r, {"onset": "4,534"}, {"onset": "onset"}).message
