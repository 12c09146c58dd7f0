"""Defects found by reading the real annotation sheets (issue 8, item 4), each tested on the real cell text.

Where the cell text comes from:

* SAMM ``SAMM_Micro_FACS_Codes_v2.xlsx`` (sheet ``MICRO_ONLY``), committed in MouathAb/AnalyseMiE-CNN_LSTM_SE:
  ``(R6 or R12) + R15``, ``R14A or 17A or 24A``, ``A/L12``, ``A1B+A2C``, ``T18+39``; the sheet's own key:
  "/" = or, "A2" = asymmetric AU 2, "L2 or R2" = unilateral AU 2 (shared/research/databases-and-peers.md
  §1.2, §1.8; issue 8). tvaranka/meb ``meb/datasets/datasets.py`` rewrites five SAMM "or" rows by hand
  ("R12 + R15" twice, "L14", "R14", "R14A"), the same groups.
* CASME II ``CASME2-coding-20190701.xlsx`` (MouathAb/AnalyseMiE-CNN_LSTM_SE and, modified, ini17/
  Micro-expression-recognition-by-fusing-Action-Unit-detection-and-spatio-temporal-features): an
  ``Action Units`` cell ``?``; ``ApexFrame`` ``/`` on sub04/EP12_01f and apex == onset on sub05/EP09_05f
  (jamesjg/AU-for-MER ``Dataset.py`` drops exactly these two rows); ``L14`` style codes.
* CAS(ME)^3 ``cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx``, as exported with its columns unchanged in
  wangzhifengharrison/HTNet ``cas(me)3_part_A_edited.csv``: ``spNO.214,c,5,5,3460,17+4,VII,disgust`` (115 s
  at 30 fps), ``spNO.2,j,7,7,408,38,VII,happy`` (13 s), ``spNO.1,b,166,175,179,4,III,disgust`` (0.4 s).
* MEGC2019 composite list: ``unimer_builder/data/megc2019_composite.csv`` (christy1206/STSTNet
  ``video442Names.txt`` + wangzhifengharrison/HTNet ``combined_3_class2_for_optical_flow.csv``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_render import make_records

from unimer_builder import facs, labels, render, shards
from unimer_builder.config import BuildConfig, FaceConfig, OutputConfig
from unimer_builder.crosscheck import cross_check, judge_token
from unimer_builder.records import Clip, ClipSummary, RegionStats
from unimer_builder.report import build_report
from unimer_builder.sources import _layout, casme2, casme3, read_clips

CFG = BuildConfig(face=FaceConfig(crop_size=32), output=OutputConfig(image_size=32, stack_len=4, stack_size=16,
                                                                     flow_size=8))
STILL = 0.3  # z of a region that did not move


@pytest.fixture(scope="module")
def landmarks():
    """Real landmarks (dlib on scikit-image's astronaut), so that region geometry is a face's."""
    import cv2
    from skimage import data

    from unimer_builder.face import FaceAligner

    al = FaceAligner()
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    return al.align(grey).landmarks


def stats(moving: dict[str, tuple[float, float, float]]) -> dict[str, RegionStats]:
    """Every region still (z = STILL, no direction) except ``moving``: name -> (z, dx, dy)."""
    out = {}
    for r in facs.REGIONS:
        z, dx, dy = moving.get(r.name, (STILL, 0.0, 0.0))
        mag = float(np.hypot(dx, dy)) or 0.01
        out[r.name] = RegionStats(r.name, mag, 1.5 * mag, dx, dy, 0.9 if r.name in moving else 0.1, 0.0, z, 0.5)
    return out


def checked(landmarks, au_text: str, moving: dict, database: str = "samm"):
    """cross_check of a clip labelled ``au_text`` whose regions move as ``moving`` says."""
    clip, ev, _ = make_records(database=database, au_text=au_text)
    ev = replace(ev, regions=list(stats(moving).values()),
                 face=replace(ev.face, landmarks=np.asarray(landmarks, np.float32)))
    return clip, ev, cross_check(clip, ev, CFG)


UP_OUT_L = (9.0, 0.8, -0.6)  # the subject's left lip corner (image right) pulled up and out: AU12
LOWER_LIP_UP = (1.2, 0.0, -0.3)  # a little upward motion of the lower lip, below the floor's z


# --- "or" groups keep their alternatives, sides and the name of the one that carried the verdict ----

def test_or_group_keeps_every_alternative_with_its_side():
    # SAMM "(R6 or R12) + R15" (also written "(R6 or R12)+R15"): two tokens, the first a group of two
    for text in ("(R6 or R12) + R15", "(R6 or R12)+R15"):
        first, second = facs.parse_aus(text).tokens
        assert [(c.au, c.side) for c in first.choices()] == [(6, "R"), (12, "R")]
        assert (second.au, second.side, second.alternatives) == (15, "R", ())
    (group,) = facs.parse_aus("R14A or 17A or 24A").tokens
    assert [(c.au, c.side, c.intensity) for c in group.choices()] == [(14, "R", "A"), (17, None, "A"), (24, None, "A")]


def test_or_group_is_judged_with_each_alternatives_own_side():
    # Only the subject's LEFT lip corner moves up and out. "(R6 or R12)" speaks of the right side only:
    # the group must not be supported by left-side motion (it was, when alternatives lost their side).
    s = stats({"lip_corner_L": UP_OUT_L})
    right, _ = facs.parse_aus("(R6 or R12) + R15").tokens
    v = judge_token(right, s, CFG, 0.5)
    assert v.verdict != "supported"
    assert v.region in {r.name for c in right.choices() for r in facs.regions_for(c.au, c.side)}
    (left,) = facs.parse_aus("L6 or L12").tokens
    v = judge_token(left, s, CFG, 0.5)
    assert (v.verdict, v.au, v.side, v.region) == ("supported", 12, "L", "lip_corner_L")
    assert "the best reading of the label 'L6 or L12'" in v.reason


def test_or_group_verdict_and_flag_name_the_alternative_that_carried_it(landmarks):
    # SAMM "R14A or 17A or 24A": nothing moves clearly; the lower lip (AU24's region) comes closest.
    # The flag once read "AUR14A contradicted ... in the lower lip": AU24's evidence under AU14's name.
    _, _, cc = checked(landmarks, "R14A or 17A or 24A", {"lower_lip": LOWER_LIP_UP})
    (v,) = cc.verdicts
    assert (v.au, v.side, v.region, v.verdict) == (24, None, "lower_lip", "contradicted")
    (reason,) = cc.flag_reasons
    assert reason.startswith("AU24 contradicted: ") and "the lower lip" in reason
    assert "'R14A or 17A or 24A'" in reason and "AUR14" not in reason and "AU14" not in reason
    # every region of the group is covered: the lip corners' and chin's own motion is not "unexplained"
    _, _, cc = checked(landmarks, "R14A or 17A or 24A", {"lip_corner_R": (9.0, 0.0, 0.0)})
    assert cc.verdicts[0].au == 14 and cc.verdicts[0].side == "R"
    assert [u.region for u in cc.unexplained] == []


def test_or_group_in_the_shard_aus_column():
    clip, ev, check = make_records(database="samm", subject="006", clip="006_1_2", emotion="Contempt",
                                   au_text="(R6 or R12) + R15", supported=(12,))
    (row, *_) = shards.clip_rows(clip, ev, check, render.render_samples(clip, ev, check, CFG), CFG)
    assert row["aus"] == [
        {"au": 6, "side": "R", "intensity": None, "uncertain": False,
         "alternatives": [{"au": 12, "side": "R", "intensity": None}]},
        {"au": 15, "side": "R", "intensity": None, "uncertain": False, "alternatives": []},
    ]
    t = shards.rows_to_table([row])  # the schema holds the nested alternatives
    assert t.column("aus").to_pylist()[0] == row["aus"]


# --- SAMM "A/L12" -------------------------------------------------------------------------------------

def test_samm_a_slash_l12_is_au12_asymmetric_or_left(landmarks):
    # SAMM's key: "/" = or, "A" = asymmetric, "L" = left: AU12, asymmetric or on the left only.
    p = facs.parse_aus("A/L12")
    (tok,) = p.tokens
    assert p.unparsed == () and p.unknown == ()
    assert [(c.au, c.side) for c in tok.choices()] == [(12, "A"), (12, "L")]
    # its lip-corner motion supports the label instead of being "not listed by the labels"
    _, _, cc = checked(landmarks, "A/L12", {"lip_corner_L": UP_OUT_L})
    assert cc.supported == [12] and not cc.flagged
    assert not any(u.region.startswith("lip_corner") for u in cc.unexplained)


# --- CASME II "?" ---------------------------------------------------------------------------------------

def _casme2_sheet(root: Path, rows: list[list]) -> Path:
    """A CASME II coding sheet with the real column layout and the onset/apex/offset frames of each row."""
    header = ["Subject", "Filename", None, "OnsetFrame", "ApexFrame", "OffsetFrame", None, "Action Units",
              "Estimated Emotion"]
    for subject, name, onset, apex, offset, *_ in rows:
        for n in {onset, offset, *([apex] if isinstance(apex, int) else [])}:
            _layout.write_frame(root / casme2.FRAMES_DIR / f"sub{subject:02d}" / name / f"img{n}.jpg",
                                np.full((8, 8), 100, np.uint8))
    _layout.write_xlsx(root / casme2.SHEET_NAME, [("Sheet1", [header] + [[r[0], r[1], None, *r[2:5], None, *r[5:]]
                                                                          for r in rows])])
    return root


def test_casme2_question_mark_cell_means_unknown_aus_inferred_from_motion(tmp_path, landmarks):
    root = _casme2_sheet(tmp_path, [[1, "EP02_01f", 46, 59, 86, "?", "happiness"]])
    (clip,) = read_clips(root, "casme2")
    assert clip.au_text == "?" and clip.aus.label_unknown and not clip.au_labelled
    # cross-checked like a database without AU labels: AUs from motion, marked as inferred
    clip2, ev, _ = make_records(au_text="?")
    ev = replace(ev, regions=list(stats({"lip_corner_L": UP_OUT_L}).values()),
                 face=replace(ev.face, landmarks=np.asarray(landmarks, np.float32)))
    cc = cross_check(clip2, ev, CFG)
    assert cc.aus_source == "inferred" and cc.supported == [12] and not cc.flagged
    (row, *_) = shards.clip_rows(clip2, ev, cc, render.render_samples(clip2, ev, cc, CFG), CFG)
    assert row["aus_source"] == "inferred" and row["au_text"] == "?" and row["aus"] == []


def test_a_sheet_s_emotion_no_word_the_builder_knows_is_noted_as_a_manifest_s_is(tmp_path):
    """A sheet edited by hand (``happpiness``, a class number) built its emotion as a class of its own without a word,
    where a manifest's got a label note naming the nearest word; the official sheets' words are no note."""
    root = _casme2_sheet(tmp_path, [[1, "EP02_01f", 46, 59, 86, "12", "happpiness"],
                                    [1, "EP03_02", 10, 20, 30, "4", "3"],
                                    *([1, f"EP0{k}_01", 10, 20, 30, "4", e] for k, e in
                                      enumerate(("repression", "others", "disgust", "sadness"), start=4))])
    notes = {c.clip: c.extra.get("label_notes", []) for c in read_clips(root, "casme2")}
    assert notes["EP02_01f"] == [f"{root / casme2.SHEET_NAME}, row 2, field 'Estimated Emotion': 'happpiness' is no "
                                 f"emotion word the builder knows, so it is a class of its own (did you mean "
                                 f"'happiness'?)"]
    assert "'3' is a number, a class of its own" in notes["EP03_02"][0]
    assert [notes[f"EP0{k}_01"] for k in range(4, 8)] == [[]] * 4


# --- MEGC2019 composite membership ---------------------------------------------------------------------

def test_official_composite_list_counts_per_database_and_class():
    got = Counter((db, cls) for (db, _, _), cls in labels.official_composite().items())
    assert sum(got.values()) == 442
    assert got == Counter({
        ("smic", "negative"): 70, ("smic", "positive"): 51, ("smic", "surprise"): 43,
        ("casme2", "negative"): 88, ("casme2", "positive"): 32, ("casme2", "surprise"): 25,
        ("samm", "negative"): 92, ("samm", "positive"): 26, ("samm", "surprise"): 15,
    })
    subjects = Counter(db for db, _ in {(db, s) for db, s, _ in labels.official_composite()})
    assert subjects == Counter({"smic": 16, "casme2": 24, "samm": 28})  # 68 LOSO folds
    # SMIC names carry their class (ne/po/sur): the list's class agrees with every name
    code = {"ne": "negative", "po": "positive", "sur": "surprise"}
    for (db, _, clip), cls in labels.official_composite().items():
        if db == "smic":
            assert code[clip.split("_")[1]] == cls, clip


def test_casme2_rows_outside_the_official_list_get_no_composite_class(tmp_path):
    # sub04/EP12_01f: ApexFrame "/"; sub05/EP09_05f: ApexFrame == OnsetFrame. Both disgust, both built
    # (apex estimated), both outside the official 145: their label maps to "negative" but the protocol
    # leaves them out. sub01/EP02_01f (happiness) is in it. Frame numbers are illustrative.
    root = _casme2_sheet(tmp_path, [
        [4, "EP12_01f", 261, "/", 321, "4", "disgust"],
        [5, "EP09_05f", 100, 100, 140, "4", "disgust"],
        [1, "EP02_01f", 46, 59, 86, "12", "happiness"],
    ])
    clips = {c.clip_id: c for c in read_clips(root, "casme2")}
    assert set(clips) == {"casme2/sub04/EP12_01f", "casme2/sub05/EP09_05f", "casme2/sub01/EP02_01f"}
    assert clips["casme2/sub04/EP12_01f"].apex is None and clips["casme2/sub05/EP09_05f"].apex is None
    # the apex on the onset frame is dropped with a note, as one outside onset..offset is; "/" is no apex at all
    assert clips["casme2/sub05/EP09_05f"].extra.get("label_notes") == [
        "ApexFrame 100 is the OnsetFrame too: the apex is estimated from motion"]
    assert "label_notes" not in clips["casme2/sub04/EP12_01f"].extra
    got = {cid: labels.composite_of(c) for cid, c in clips.items()}
    assert got == {"casme2/sub04/EP12_01f": None, "casme2/sub05/EP09_05f": None, "casme2/sub01/EP02_01f": "positive"}
    assert all(labels.composite_of(c, "labels") for c in clips.values())  # the mapping alone keeps all three


def test_a_label_the_official_list_classes_otherwise_is_noted(tmp_path):
    """A copy of the sheet whose row differs from the release's (an independent reader check's SAMM stand-in): the
    official class was used without a word, and the text read "Emotion: surprise (negative in the composite
    three-class protocol)"."""
    root = _casme2_sheet(tmp_path, [
        [1, "EP02_01f", 46, 59, 86, "12", "surprise"],  # the release's happiness: positive in the list
        [1, "EP19_05f", 46, 59, 86, "4", "disgust"],  # negative, as the list has it
        [2, "EP01_11f", 46, 59, 86, "4", "others"],  # negative in the list; "others" maps to no class
    ])
    a, b, c = list(read_clips(root, "casme2"))
    assert labels.composite_note(c) == ["the official MEGC2019 list classes this clip negative, where its label "
                                        "'others' maps to no class: the list's class is used (a copy of the label "
                                        "sheet that differs from the release's?)"]
    assert labels.composite_note(a) == ["the official MEGC2019 list classes this clip positive, where its label "
                                        "'surprise' maps to surprise: the list's class is used (a copy of the label "
                                        "sheet that differs from the release's?)"]
    assert labels.composite_note(b) == [] and labels.composite_note(a, "labels") == []


def test_a_limited_build_tells_official_clips_it_left_out_from_those_its_source_lacks():
    """The JSON report of a `--limit` build listed every official clip past the limit as missing from the source."""
    from types import SimpleNamespace

    from unimer_builder.report import _official

    built = [SimpleNamespace(clip_id="casme2/sub01/EP02_01f")]
    got = _official("casme2", built, [], BuildConfig(), unread=["casme2/sub01/EP19_05f", "casme2/sub99/EP00_00"])
    assert got["listed"] == 145 and got["found"] == 2 and got["beyond_limit"] == ["sub01/EP19_05f"]
    assert len(got["missing"]) == 143 and "sub01/EP19_05f" not in got["missing"]
    assert "beyond_limit" not in _official("casme2", built, [], BuildConfig())  # a build of every clip


def test_official_clips_a_copy_lacks_are_listed_in_the_report(tmp_path):
    """Common SMIC copies lack folders of clips the MEGC2019 list names (s3_ne_03, s9_sur_02, ...; a public
    MEGC2019 entry's README lists five): the SMIC reader walks folders and never sees them, so a composite
    evaluation would silently run on fewer clips than the protocol's. The report lists them."""
    total, missing = labels.official_missing("smic", [
        "smic/HS/s01/s01_ne_01", "smic/HS/s1/s1_ne_02", "smic/VIS/s1/s1_ne_03",  # VIS: not the composite's camera
        "casme2/sub01/EP02_01f"])
    assert total == 164 and len(missing) == 162
    assert "s1/s1_ne_03" in missing and "s1/s1_ne_01" not in missing and "s1/s1_ne_02" not in missing
    summaries = [ClipSummary("casme2/sub01/EP02_01f", "casme2", 4, False, False, "label", "label")]
    rep = build_report(summaries, [], CFG, str(tmp_path), "casme2", [], 1.0, 1)
    off = rep["official_composite"]
    assert (off["listed"], off["found"], len(off["missing"])) == (145, 1, 144) and "sub01/EP19_05f" in off["missing"]
    rep = build_report(summaries, [], CFG.with_(**{"text.composite": "labels"}), str(tmp_path), "casme2", [], 1.0, 1)
    assert rep["official_composite"] is None  # not the release: no official list to compare with


def test_smic_composite_is_the_high_speed_camera_and_ignores_zero_padding():
    assert labels.clip_composite("smic", "s1", "s1_ne_01", "negative", variant="HS") == "negative"
    assert labels.clip_composite("smic", "s01", "s01_ne_01", "negative", variant="HS") == "negative"
    assert labels.clip_composite("smic", "s1", "s1_ne_01", "negative", variant="VIS") is None
    assert labels.clip_composite("smic", "s1", "s1_ne_04", "negative", variant="HS") is None  # not in the list
    assert labels.clip_composite("casme3", "spNO.1", "b", "disgust") == "negative"  # no official list: mapping
    with pytest.raises(ValueError, match="composite mode"):
        labels.clip_composite("samm", "006", "006_1_2", "Anger", mode="both")


# --- text: articles and readable AU names ------------------------------------------------------------

@pytest.mark.parametrize("au", [1, 2, 5, 10])  # inner/outer brow raiser, upper lid raiser, upper lip raiser
def test_no_a_before_a_vowel_sound_in_any_template(au):
    clip, ev, check = make_records()
    check = replace(check, unexplained=[replace(check.unexplained[0], au=au)])
    ctx = render.build_context(clip, ev, check, CFG)
    assert ctx["unexplained"][0]["resembles"] == facs.AUS[au].name
    texts = []
    for task in render.TASKS:
        for v in range(render.n_variants(task)):
            texts.extend(render.render_task(task, v, ctx, CFG.text.folder))
    assert any(f"an {facs.AUS[au].name}" in t for t in texts)
    bad = [m.group(0) for t in texts for m in re.finditer(r"\ba [aeiouAEIOU]\w*", t)]
    assert bad == []


def test_flag_reasons_name_sides_in_words(landmarks):
    # Real codes: "L14" (CASME II, CAS(ME)^3), "T18+39" (SAMM), "A1B+A2C" (SAMM); nothing moves.
    _, _, cc = checked(landmarks, "L14+T18+A1B", {})
    reasons = " | ".join(cc.flag_reasons)
    assert "AU14 (left) contradicted" in reasons and "AU18 (top) contradicted" in reasons
    assert "AU1 (asymmetric) contradicted" in reasons
    assert not re.search(r"AU[LRATB]\d", reasons)
    assert facs.au_label(7, "A") == "AU7 (asymmetric)" and facs.au_label(12, "L", "B") == "AU12 (left, intensity B)"


# --- durations beyond the micro-expression range ---------------------------------------------------------

CASME3_ROWS = [  # HTNet cas(me)3_part_A_edited.csv: Subject, Filename, Onset, Apex, Offset, AU, Objective class, emotion
    ["spNO.214", "c", 5, 5, 3460, "17+4", "VII", "disgust"],
    ["spNO.2", "j", 7, 7, 408, "38", "VII", "happy"],
    ["spNO.1", "b", 166, 175, 179, "4", "III", "disgust"],
]


def test_casme3_clips_of_many_seconds_are_not_micro_expressions(tmp_path):
    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    for sub, stim, on, ap, off, *_ in CASME3_ROWS:
        for n in {on, ap, off}:
            _layout.write_frame(tmp_path / casme3.FRAMES_DIR / sub / stim / "color" / f"{n}.jpg",
                                np.full((8, 8), 100, np.uint8))
    _layout.write_xlsx(tmp_path / casme3.SHEET_FILE, [(casme3.SHEET_NAME, [header, *CASME3_ROWS])])
    clips = list(read_clips(tmp_path, "casme3"))
    assert all(isinstance(c, Clip) for c in clips)
    got = [(round(labels.duration_s(c.onset, c.offset, c.fps), 1), labels.duration_class(c.onset, c.apex, c.offset, c.fps))
           for c in clips]
    assert got == [(115.2, "long"), (13.4, "long"), (0.4, "micro")]

    # the build report lists them, longest first
    summaries = [ClipSummary(c.clip_id, c.database, 4, False, False, "label", "label",
                             duration_s=labels.duration_s(c.onset, c.offset, c.fps),
                             duration_class=labels.duration_class(c.onset, c.apex, c.offset, c.fps)) for c in clips]
    rep = build_report(summaries, [], CFG, str(tmp_path), "casme3", [], 1.0, 1)
    assert rep["counts"]["beyond_micro"] == 2
    assert rep["durations"]["counts"] == {"micro": 1, "macro": 0, "long": 2, "unknown": 0}
    assert [b["clip_id"] for b in rep["durations"]["beyond_micro"]] == ["casme3/spNO.214/c/5", "casme3/spNO.2/j/7"]

    # the rows say so, and the text never calls the 115 s clip a micro-expression
    clip, ev, check = make_records(database="casme3", subject="spNO.214", clip="c", emotion="disgust", au_text="17+4")
    clip = replace(clip, onset=5, apex=None, offset=3460, fps=30.0)
    samples = render.render_samples(clip, ev, check, CFG)
    (row, *_) = shards.clip_rows(clip, ev, check, samples, CFG)
    assert row["duration_class"] == "long" and row["duration_s"] == pytest.approx(115.17, abs=0.01)
    text = " ".join(s.instruction + " " + s.answer for s in samples)
    assert "micro-expression" not in text.replace("longer than a micro-expression", "")
    explain = next(s.answer for s in samples if s.task == "explain")
    assert "lasts 115.17 s" in explain and "longer than a micro-expression (at most 0.5 s)" in explain


def test_casme3_apex_before_its_onset_is_estimated_and_the_report_says_so(tmp_path):
    """``spNO.149,d,112,83,358,T28+14,VII,fear`` (HTNet's export of part A v2): the apex precedes the onset."""
    from unimer_builder.parts import summarize

    header = ["Subject", "Filename", "Onset", "Apex", "Offset", "AU", "Objective class", "emotion"]
    rows = [["spNO.149", "d", 112, 83, 358, "T28+14", "VII", "fear"]]
    for n in (83, 112, 200, 358):
        _layout.write_frame(tmp_path / casme3.FRAMES_DIR / "spNO.149" / "d" / "color" / f"{n}.jpg",
                            np.full((8, 8), 100, np.uint8))
    _layout.write_xlsx(tmp_path / casme3.SHEET_FILE, [(casme3.SHEET_NAME, [header, *rows])])
    (clip,) = read_clips(tmp_path, "casme3")
    assert isinstance(clip, Clip) and (clip.onset, clip.apex, clip.offset) == (112, None, 358)
    assert sorted(clip.frames) == [112, 200, 358]  # the folder's frame 83 lies outside the clip
    note = "Apex 83 is not between Onset 112 and Offset 358: the apex is estimated from motion"
    rep = build_report([summarize(clip, rows=4, flagged=False, dropped=False, aus_source="label",
                                  apex_source="estimated")], [], CFG, str(tmp_path), "casme3", [], 1.0, 1)
    assert rep["counts"]["label_notes"] == 1
    # the folder written here holds three frames of 112..358: the missing ones are noted after the label's note
    (entry,) = rep["label_notes"]
    assert entry["clip_id"] == clip.clip_id and entry["notes"][0] == note
    assert entry["notes"][1:] == ["frames 113-199, 201-357 missing inside onset..offset (112..358): 244 of 247, "
                                  "their nearest frames stand in for them"]


def test_duration_bounds():
    # CASME II at 200 fps: 0.5 s total is micro; longer but with an onset phase <= 0.25 s is micro too
    assert labels.duration_class(0, 50, 100, 200.0) == "micro"
    assert labels.duration_class(0, 40, 150, 200.0) == "micro"  # 0.75 s, onset phase 0.2 s
    assert labels.duration_class(0, 100, 150, 200.0) == "macro"  # 0.75 s, onset phase 0.5 s
    assert labels.duration_class(0, None, 150, 200.0) == "macro"  # no labelled apex: total decides
    assert labels.duration_class(0, 5, 900, 200.0) == "long"  # 4.5 s: whatever the onset phase
    assert labels.duration_class(0, 5, None, 200.0) is None and labels.duration_class(0, 5, 9, None) is None
