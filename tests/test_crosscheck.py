"""The dual constraint on a real face photo with planted AU motion (labels vs measured motion)."""

from __future__ import annotations

import math
from dataclasses import replace

import cv2
import numpy as np
import pytest
from skimage import data
from test_evidence import planted_field  # the same Gaussian-bump planting as the evidence tests

from unimer_builder import facs
from unimer_builder.config import BuildConfig
from unimer_builder.crosscheck import cross_check, match_au
from unimer_builder.evidence import compute_evidence
from unimer_builder.face import EYE_X, interocular
from unimer_builder.records import Clip, RegionStats
from unimer_builder.tools import Tools

BASE = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
CFG = BuildConfig()


@pytest.fixture(scope="module")
def env():
    with Tools.create(CFG) as tools:
        al = tools.aligner
        lm = al.landmarks(BASE, al.detect(BASE))
        iod = interocular(lm)
        yield dict(tools=tools, lm=lm, iod=iod, scale=(EYE_X[1] - EYE_X[0]) * CFG.face.crop_size / iod)


def render(tmp_path, env, plants, n=9, apex=4):
    """Frames with Gaussian bumps (crop px ``amp``) at the regions of ``plants`` = [(au, side, amp, vec)]."""
    h, w = BASE.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = planted_field((env["lm"], env["scale"], env["iod"]), plants)
    frames = {}
    for i in range(n):
        p = 0.0 if i == 0 else math.exp(-((i - apex) / (0.25 * n)) ** 2)
        img = cv2.remap(BASE.astype(np.float32), xx - p * d[..., 0], yy - p * d[..., 1], cv2.INTER_CUBIC,
                        borderMode=cv2.BORDER_REFLECT)
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.clip(np.rint(img), 0, 255).astype(np.uint8))
        frames[i] = str(path)
    return frames


def check(tmp_path, env, plants, au_text, database="casme2", apex=4):
    frames = render(tmp_path, env, plants, apex=apex)
    clip = Clip(database=database, subject="s1", clip="c", onset=0, apex=apex, offset=len(frames) - 1,
                frames=frames, au_text=au_text, aus=facs.parse_aus(au_text))
    ev = compute_evidence(clip, CFG, env["tools"])
    return clip, ev, cross_check(clip, ev, CFG)


def verdicts(cc):
    return {v.au: v for v in cc.verdicts}


def test_moved_label_supported_unmoved_label_contradicted(tmp_path, env):
    clip, ev, cc = check(tmp_path, env, [(12, None, 2.0, None)], "12+4")
    v = verdicts(cc)
    assert v[12].verdict == "supported" and v[12].region.startswith("lip_corner")
    assert v[12].direction_cos > 0.9 and v[12].timing_ok is True
    assert v[4].verdict == "contradicted" and "no motion" in v[4].reason
    assert cc.supported == [12] and cc.aus_source == "label"
    assert cc.flagged and any("AU4" in r for r in cc.flag_reasons)
    assert cc.unexplained == []

    # the same evidence re-read: a later apex than the motion's peak fails the timing check (the DIS share at
    # the apex was measured at the evidence's own apex, so only the peak time is re-read here)
    late = replace(clip, apex=8)
    ev_late = replace(ev, apex=8, regions=[replace(r, apex_share=None) for r in ev.regions])
    v_late = verdicts(cross_check(late, ev_late, CFG))[12]
    assert v_late.timing_ok is False and v_late.verdict == "weak"


def test_wrong_direction_is_contradicted(tmp_path, env):
    # the lip corners go down (AU15) while the label says AU12 (up and out)
    _, _, cc = check(tmp_path, env, [(15, None, 2.0, None)], "12")
    v = verdicts(cc)[12]
    assert v.verdict == "contradicted" and v.direction_cos <= CFG.check.cos_contradicted
    assert "not" in v.reason
    assert cc.flagged and cc.supported == []


def test_unlabelled_motion_is_unexplained_with_its_au_family(tmp_path, env):
    _, _, cc = check(tmp_path, env, [(12, None, 2.0, None), (1, None, 2.0, None)], "12")
    assert verdicts(cc)[12].verdict == "supported" and not cc.flagged
    found = {u.region: u for u in cc.unexplained}
    assert {"brow_inner_L", "brow_inner_R"} <= set(found)
    assert all(found[r].au == 1 for r in ("brow_inner_L", "brow_inner_R"))
    # spill from the raised brows onto the lids is not reported as AU5
    assert not any(r.startswith("upper_lid") for r in found)
    assert all(u.z >= CFG.check.z_unexplained for u in cc.unexplained)


def test_unilateral_label_alternatives_and_unverifiable(tmp_path, env):
    _, _, cc = check(tmp_path, env, [(12, "L", 2.0, None)], "R14 or L12 + 8")
    v = cc.verdicts
    assert v[0].verdict == "supported" and v[0].au == 12 and v[0].region == "lip_corner_L"
    assert v[1].au == 8 and v[1].verdict == "unverifiable" and math.isnan(v[1].direction_cos)
    assert cc.supported == [12] and not cc.flagged
    assert cc.unexplained == []


def test_database_without_au_labels_infers_aus_from_motion(tmp_path, env):
    _, _, cc = check(tmp_path, env, [(12, None, 2.0, None), (4, None, 2.0, None)], None, database="smic")
    assert cc.aus_source == "inferred"
    assert 12 in cc.supported and 4 in cc.supported
    assert all(v.verdict == "supported" and v.reason.startswith("inferred from motion") for v in cc.verdicts)
    assert not cc.flagged


def test_match_au_names_the_family_of_a_direction():
    def rs(name, dx, dy):
        return RegionStats(name, 1.0, 1.2, dx, dy, 0.9, 0.01, 20.0)

    assert match_au(rs("lip_corner_L", 0.8, -0.6))[0] == 12  # up and outward (image right)
    assert match_au(rs("lip_corner_R", 0.0, 1.0))[0] == 15
    assert match_au(rs("brow_inner_R", 0.0, -1.0))[0] == 1
    assert match_au(rs("glabella", 0.0, 1.0))[0] == 4
    assert match_au(rs("nose", 1.0, 0.0))[0] is None  # sideways: no AU moves the nose so


def test_a_labelled_au_pools_its_regions_but_each_must_move_its_way():
    """Both lip corners of a smile at z 3.1 each are one AU12 at z 4.4 (supported); a one-sided label,
    a corner moving the other way or one peaking far from the apex leaves it weak."""
    from unimer_builder.crosscheck import judge_token

    noise, z_each = 0.1, 3.1

    def corner(name, sign=1.0, **kw):
        ex, ey = facs.expected_vector(12, facs.REGION_BY_NAME[name])
        n = math.hypot(ex, ey)
        dx, dy = sign * z_each * noise * ex / n, sign * z_each * noise * ey / n
        return RegionStats(name, math.hypot(dx, dy), 0.5, dx, dy, 0.9, 0.01, z_each, noise=noise, **kw)

    def judge(text, stats):
        (tok,) = facs.parse_aus(text).tokens
        return judge_token(tok, {s.name: s for s in stats}, CFG, t_apex=0.5)

    both = [corner("lip_corner_L"), corner("lip_corner_R")]
    v = judge("12", both)
    assert v.verdict == "supported" and v.z == pytest.approx(2 * z_each / math.sqrt(2), rel=1e-6)
    assert "pooled" in v.reason
    assert judge("L12", both).verdict == "weak"  # one side named: nothing to pool
    assert judge("12", [corner("lip_corner_L"), corner("lip_corner_R", sign=-1.0)]).verdict != "supported"
    late = [corner("lip_corner_L"), corner("lip_corner_R", peak_time=0.95, apex_share=0.1)]
    assert judge("12", late).verdict == "weak"
    assert CFG.check.z_supported > z_each  # each corner alone is below the threshold


def test_a_weaker_au_in_a_quieter_region_is_still_found(env):
    """The greedy explanation tries every AU that explains some motion: a large motion in a noisy region
    (not strong there) must not stop the search before a smaller one in a quiet region that is."""
    from unimer_builder.crosscheck import explain_motion

    lm = env["tools"].aligner.align(BASE).landmarks

    def region(name, au=None, amp=0.0, noise=0.05):
        dx, dy = (amp * v for v in facs.expected_vector(au, facs.REGION_BY_NAME[name])) if au else (0.0, 0.0)
        return RegionStats(name, math.hypot(dx, dy), 0.5, dx, dy, 0.9, 0.01, math.hypot(dx, dy) / noise, noise=noise)

    moved = {"lip_corner_L": region("lip_corner_L", 12, 1.5, noise=1.0),  # z 1.5: not strong
             "brow_inner_R": region("brow_inner_R", 1, 0.5), "brow_inner_L": region("brow_inner_L", 1, 0.5)}
    stats = {r.name: moved.get(r.name) or region(r.name) for r in facs.REGIONS}
    actions, _ = explain_motion(stats, lm, 0.0, 0.05, CFG)
    found = {x.au: x for x in actions}
    assert 1 in found and found[1].z >= CFG.check.z_unexplained
    assert 12 not in found
