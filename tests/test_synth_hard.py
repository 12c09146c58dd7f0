"""The hard synthetic profile: real identities, posed 640x480 scenes, head motion, blinks, micro to macro.

The faces come from files public packages ship (``validation.media``); without the package registry and
without a cache these tests are skipped.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from unimer_builder import facs
from unimer_builder.face import FaceAligner, eye_centres
from unimer_builder.records import SynthClip
from unimer_builder.synth import identities, motion, scene
from unimer_builder.synth.generate import GROUND_TRUTH, amplitude_bin, synthesize
from unimer_builder.validation.media import MediaUnavailable

FORMATS = ("casme2", "samm", "smic", "casme3", "manifest")


@pytest.fixture(scope="module")
def faces() -> dict[str, identities.Identity]:
    try:
        return {n: identities.identity(n) for n in identities.TRAIN + identities.HELD_OUT}
    except MediaUnavailable as e:
        pytest.skip(f"face media unavailable: {e}")


def ids_only_writer(root: Path, fmt: str, clips: list[SynthClip]) -> list[str]:
    return [f"{fmt}/s{c.subject}/c{c.index}" for c in clips]


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def crop_px(a: float) -> float:
    """Face-coordinate amplitude for ``a`` px in the builder's crop."""
    return a / scene.CROP_PER_FACE


# --- identities -----------------------------------------------------------------------------------

def test_identities_are_real_faces_dlib_finds_and_the_split_is_disjoint(faces):
    assert len(identities.TRAIN) >= 5 and len(identities.HELD_OUT) >= 5
    assert not set(identities.TRAIN) & set(identities.HELD_OUT)
    assert identities.resolve(None) == identities.TRAIN and identities.resolve("all") == identities.TRAIN + identities.HELD_OUT
    assert identities.resolve("biden,obama") == ("biden", "obama")
    with pytest.raises(ValueError, match="unknown identities"):
        identities.resolve("nobody")
    with pytest.raises(ValueError, match="heldout and all each name a whole set") as e:  # they were called unknown
        identities.resolve("heldout,all")
    assert "unknown" not in str(e.value)
    assert identities.resolve(" heldout") == identities.resolve("heldout,") == identities.resolve(["heldout"]) \
        == identities.HELD_OUT
    with pytest.raises(ValueError, match="^train names a whole set"):
        identities.resolve("train,train")
    bases = []
    for name, f in faces.items():
        assert f.split == identities.SOURCE_BY_NAME[name].split
        assert f.source_iod >= identities.MIN_SOURCE_IOD, name
        assert abs(f.interocular - identities.FACE_IOD) < 6, (name, f.interocular)  # dlib on the base agrees
        eyes = f.landmarks[42:48].mean(0) - f.landmarks[36:42].mean(0)
        assert abs(math.degrees(math.atan2(eyes[1], eyes[0]))) < 3, name  # level eyes in face coordinates
        bases.append(grey(f.base()).astype(np.float32))
    for a in range(len(bases)):
        for b in range(a + 1, len(bases)):
            assert np.abs(bases[a] - bases[b]).mean() > 8, "two identities look alike"


def test_heldout_identities_never_appear_in_the_training_profile(tmp_path, faces):
    root = synthesize(tmp_path / "train", "casme2", clips=12, subjects=len(identities.TRAIN), seed=2, frames=3,
                      profile="hard", identities="train", writer=ids_only_writer)
    doc = json.loads((root / GROUND_TRUTH).read_text())
    used = {c["identity"] for c in doc["clips"]}
    assert used == set(identities.TRAIN) and not used & set(identities.HELD_OUT)
    assert all(c["identity_split"] == "train" for c in doc["clips"])
    assert doc["identities"] == {str(i): n for i, n in enumerate(identities.TRAIN, 1)}
    # One identity per subject, numbered as every layout numbers subjects.
    assert {c["subject"]: c["identity"] for c in doc["clips"]} == {i: n for i, n in enumerate(identities.TRAIN, 1)}
    with pytest.raises(ValueError, match="identities"):
        synthesize(tmp_path / "x", "casme2", clips=4, subjects=len(identities.HELD_OUT) + 1, profile="hard",
                   identities="heldout", writer=ids_only_writer)
    with pytest.raises(ValueError, match="hard"):
        synthesize(tmp_path / "y", "casme2", clips=4, identities="heldout", writer=ids_only_writer)


# --- rendering ------------------------------------------------------------------------------------

def session_of(faces, name: str, subject: int = 1, seed: int = 0) -> scene.Session:
    return scene.session(subject, faces[name], seed)


@pytest.mark.parametrize("name,plants", [
    ("grace_hopper", [motion.Plant(12, None, crop_px(10.0)), motion.Plant(6, None, crop_px(8.0))]),
    ("biden", [motion.Plant(1, None, crop_px(0.6)), motion.Plant(2, None, crop_px(0.6))]),
    ("pexels_woman", [motion.Plant(4, None, crop_px(6.0)), motion.Plant(15, "L", crop_px(4.0))]),
    ("astronaut", [motion.Plant(10, None, crop_px(8.0)), motion.Plant(25, None, crop_px(8.0))]),  # lips part
])
def test_frames_show_the_planted_and_head_motion_the_truth_states(faces, name, plants):
    """A photo point at a bump centre in the onset frame shows, in frame t, where the truth puts it:
    moved by p(t) times the frame displacement (every bump there summed), then by the head's similarity."""
    clip = scene.render_clip(session_of(faces, name), plants, np.random.default_rng(4), frames=7, blinks=False)
    assert all(f.shape[:2] == (scene.FRAME_H, scene.FRAME_W) for f in clip.frames)
    assert clip.head[0] == (0.0, 0.0, 0.0, 0.0)
    for b in clip.bumps:
        own = b.amplitude * np.asarray(b.vector)
        total = clip.field_at([b.centre])[0]
        assert own @ total > 0.8 * own @ own  # the bump itself is there, maybe with a neighbour's
        c, d_frame, _ = clip.to_frame(b.centre, total)
        seen = clip.face_coords(0, [c])[0]
        for t in range(len(clip.frames)):
            moved = c + clip.profile[t] * d_frame
            at = scene.apply_h(scene.head_matrix(*clip.head[t], clip.head_centre), [moved])[0]
            err = np.linalg.norm(clip.face_coords(t, [at])[0] - seen)
            assert err < 0.02 * b.amplitude + 0.05, (b.au, b.region, t, err)


def test_truth_in_crop_px_is_what_tvl1_measures_on_the_builders_crop(faces):
    """End to end: the builder's eye alignment of the onset frame, TV-L1 between the aligned crops, and the
    mean flow near each planted region centre against ``to_frame``'s crop displacement (no head motion)."""
    from unimer_builder.config import FaceConfig
    from unimer_builder.face import FaceAligner

    plants = [motion.Plant(12, None, crop_px(3.0)), motion.Plant(2, None, crop_px(3.0))]
    clip = scene.render_clip(session_of(faces, "obama", seed=3), plants, np.random.default_rng(1), frames=5,
                             apex=2, blinks=False, head_motion=False)
    aligner = FaceAligner(FaceConfig(crop_size=scene.CROP_SIZE))
    face = aligner.align(grey(clip.frames[0]))
    warp = [cv2.warpAffine(grey(f), face.matrix, (scene.CROP_SIZE,) * 2, flags=cv2.INTER_LINEAR) for f in
            (clip.frames[0], clip.frames[2])]
    flow = cv2.optflow.DualTVL1OpticalFlow_create(nscales=5).calc(warp[0], warp[1], None)
    ys, xs = np.mgrid[0:scene.CROP_SIZE, 0:scene.CROP_SIZE]
    for b in clip.bumps:
        c_frame, _, d_crop = clip.to_frame(b.centre, b.amplitude * np.asarray(b.vector))
        c = face.matrix[:, :2] @ c_frame + face.matrix[:, 2]
        near = (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= 4.0 ** 2
        got = flow[near].mean(0)
        assert np.linalg.norm(got - d_crop) < 0.35 * np.linalg.norm(d_crop) + 0.3, (b.region, got, d_crop)


def test_a_frown_with_a_nose_wrinkle_is_measured_between_smooth_brows(faces, tmp_path):
    """Lowered brows and a wrinkled nose (AU4+9, disgust's and anger's pair) squeeze the skin between the brows.
    On a face whose skin there is smooth, that region's NCC fell to 0.31 with the flow right, the region was
    called lost, and a clip without labels (SMIC) said nothing of either AU. A region the flow leaves no more
    than the noise in is measured (regions.appearance_match)."""
    from dataclasses import replace

    from unimer_builder.config import BuildConfig
    from unimer_builder.crosscheck import cross_check
    from unimer_builder.evidence import compute_evidence
    from unimer_builder.records import Clip
    from unimer_builder.tools import Tools

    plants = [motion.Plant(4, None, crop_px(6.0)), motion.Plant(9, None, crop_px(4.0))]
    clip = scene.render_clip(session_of(faces, "pexels_woman"), plants, np.random.default_rng(1), frames=9,
                             apex=4, blinks=False)
    frames = {}
    for i, f in enumerate(clip.frames):
        cv2.imwrite(str(tmp_path / f"{i}.png"), f)
        frames[i] = str(tmp_path / f"{i}.png")
    c = Clip(database="smic", subject="s1", clip="s1_ne_01", onset=0, apex=4, offset=8, frames=frames,
             au_text=None, aus=facs.parse_aus(None), source_file="sheet.xlsx", source_row=2)
    cfg = BuildConfig()
    ncc_only = replace(cfg, check=replace(cfg.check, region_residual=0.0))
    with Tools.create(cfg) as tools:
        before, now = (compute_evidence(c, k, tools) for k in (ncc_only, cfg))
    assert [r.name for r in before.regions if r.match < cfg.check.region_match] == ["glabella"]
    assert cross_check(c, before, ncc_only).supported == []
    assert all(r.match >= cfg.check.region_match for r in now.regions)
    found = cross_check(c, now, cfg)
    assert {4, 9} <= set(found.supported) and not found.flagged


def test_macro_motion_keeps_the_warp_fold_free(faces):
    """Widened bumps keep the forward warp u -> u + g(u) one-to-one (det(I + grad g) > 0): lips and lids
    never cross, nothing tears."""
    from unimer_builder.synth.generate import LEVEL_CROP_PX, LEVEL_SPREAD, PROTOTYPES

    f = faces["posed_f13"]
    largest = LEVEL_CROP_PX[1] * LEVEL_SPREAD[1]
    for proto in PROTOTYPES.values():
        aus = proto.aus
        plants = [motion.Plant(au, None, crop_px(largest) * scene.reach(au)) for au in aus]
        g, _, _ = scene.apex_field(f, scene.bumps_for(f, plants))
        gxx, gxy = np.gradient(g[..., 0], axis=1), np.gradient(g[..., 0], axis=0)
        gyx, gyy = np.gradient(g[..., 1], axis=1), np.gradient(g[..., 1], axis=0)
        det = (1 + gxx) * (1 + gyy) - gxy * gyx
        assert det.min() > 0.2, (aus, det.min())
        assert np.abs(g).max() > crop_px(10.0)  # still macro


def test_parted_lips_open_a_dark_mouth_between_the_corners(faces):
    plants = [motion.Plant(10, None, crop_px(8.0)), motion.Plant(25, None, crop_px(8.0))]
    clip = scene.render_clip(session_of(faces, "biden"), plants, np.random.default_rng(2), frames=5, apex=2,
                             blinks=False, head_motion=False)
    lm = clip.face.landmarks
    seam_x, seam_y = scene.seam_curve(lm.astype(np.float64))
    mid = np.array([lm[62, 0], np.interp(lm[62, 0], seam_x, seam_y)])
    corner = np.array([lm[48, 0] - 0.1 * identities.FACE_IOD, np.interp(lm[48, 0], seam_x, seam_y)])
    h = clip.pose_h

    def patch(frame, at):
        x, y = scene.apply_h(h, [at])[0].astype(int)
        return grey(frame)[y - 2:y + 3, x - 2:x + 3].astype(float).mean()

    assert patch(clip.frames[2], mid) < 0.7 * patch(clip.frames[0], mid)  # the mouth opened at the middle
    assert abs(patch(clip.frames[2], corner) - patch(clip.frames[0], corner)) < 12  # not beyond the corners


def test_blinks_close_the_upper_lids_and_leave_the_lower_lids(faces):
    s = session_of(faces, "pyfeat_man")
    clip = None
    for k in range(40):
        c = scene.render_clip(s, [], np.random.default_rng(k), frames=9, apex=4, head_motion=False)
        if c.blink is not None and c.blink.closure > 0.8:
            clip = c
            break
    assert clip is not None, "no strong blink in 40 draws"
    b = clip.blink
    t = b.closed
    assert b.profile[0] == 0 and b.profile[t] == pytest.approx(b.closure) and b.profile[-1] < b.closure
    lm = clip.face.landmarks
    h = clip.pose_h
    for side in ("R", "L"):
        x, y, drop = scene.blink_drop(lm, side, b.closure)
        assert drop > 0.5 * (lm[41 if side == "R" else 47][1] - lm[37 if side == "R" else 43][1])
        # The lid margin's photo point shows `drop` lower at the closed frame; the lower lid stays.
        shown = scene.apply_h(h, [(x, y + drop)])[0]
        assert np.linalg.norm(clip.face_coords(t, [shown])[0] - (x, y)) < 0.3
        lower = lm[[40, 41] if side == "R" else [46, 47]].mean(0)
        assert np.linalg.norm(clip.face_coords(t, scene.apply_h(h, [lower]))[0] - lower) < 0.05
    eye = scene.apply_h(h, lm[36:42]).mean(0).astype(int)
    patch = (slice(eye[1] - 6, eye[1] + 6), slice(eye[0] - 10, eye[0] + 10))
    assert np.abs(grey(clip.frames[t])[patch].astype(float) - grey(clip.frames[0])[patch]).mean() > 8


# --- the database ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hard_truth(tmp_path_factory, faces) -> dict:
    root = tmp_path_factory.mktemp("hard")
    synthesize(root, "casme2", clips=30, subjects=5, seed=6, frames=6, profile="hard", identities="heldout",
               writer=ids_only_writer)
    return json.loads((root / GROUND_TRUTH).read_text())


def test_hard_truth_records_identity_pose_head_blinks_and_amplitudes(hard_truth):
    doc = hard_truth
    assert doc["profile"] == "hard" and doc["crop"] == {"size": 224, "interocular_px": 80.64}
    bins = set()
    for c in doc["clips"]:
        assert c["identity"] in identities.HELD_OUT
        assert scene.FRAME_IOD[0] - 8 < c["pose"]["interocular_px"] < scene.FRAME_IOD[1] + 8
        assert abs(c["pose"]["roll_deg"]) <= scene.SESSION_ROLL + scene.CLIP_ROLL
        assert c["head"]["per_frame"][0] == [0.0, 0.0, 0.0, 0.0] and len(c["head"]["per_frame"]) == 6
        assert c["head"]["max"]["rotation_deg"] <= scene.MAX_HEAD_DEG
        assert c["head"]["max"]["translation_px"] <= math.hypot(scene.MAX_HEAD_PX, scene.MAX_HEAD_PX)
        assert scene.JPEG_QUALITY[0] <= c["appearance"]["jpeg_quality"] <= scene.JPEG_QUALITY[1]
        for p in c["planted"]:
            assert amplitude_bin(p["amplitude_crop_px"]) == p["amplitude_bin"]
            ratio = p["amplitude_crop_px"] / (p["amplitude_face_px"] * scene.CROP_PER_FACE)
            assert 0.8 < ratio < 1.25, p  # yaw foreshortening only
            bins.add(p["amplitude_bin"])
            for name, vec in p["direction_by_region"].items():
                got = np.array(c["region_motion_crop"][name])
                assert got @ np.array(vec) / np.linalg.norm(got) > 0.85, (p["au"], name, got, vec)
        for b in c["blinks"]:
            assert c["onset"] < b["frames"][0] and b["frames"][-1] <= c["offset"]
            assert set(b["closed"]) <= set(b["frames"]) and not b["labelled"]
            assert "45" not in (c["au_text"] or "")
            assert (b["closure_at_apex"] > 0) == (c["apex"] in b["frames"])
    assert bins == {"micro", "mid", "macro"}
    assert 0.1 < np.mean([bool(c["blinks"]) for c in doc["clips"]]) < 0.6


def test_hard_profile_is_deterministic_and_every_layout_round_trips(tmp_path, faces):
    from unimer_builder.sources import read_clips

    for fmt in FORMATS:
        root = synthesize(tmp_path / fmt, fmt, clips=3, subjects=2, seed=4, frames=4, profile="hard",
                          identities="biden,group_left")
        truth = json.loads((root / GROUND_TRUTH).read_text())
        got = {c.clip_id: c for c in read_clips(root, fmt) if not hasattr(c, "reason")}
        assert set(got) == {c["clip_id"] for c in truth["clips"]}, fmt
        for c in truth["clips"]:
            clip = got[c["clip_id"]]
            assert clip.onset == c["onset"] and (clip.apex is None or clip.apex == c["apex"])
            first = cv2.imread(clip.frames[clip.onset], cv2.IMREAD_UNCHANGED)
            assert first.shape[:2] == (scene.FRAME_H, scene.FRAME_W)
            assert (first.ndim == 2) == (fmt == "samm" or c["appearance"]["grey"]), fmt
        if fmt in ("casme2", "samm", "casme3"):  # spreadsheets included
            again = synthesize(tmp_path / f"{fmt}-again", fmt, clips=3, subjects=2, seed=4, frames=4, profile="hard",
                               identities="biden,group_left")
            assert tree_digest(root) == tree_digest(again), fmt
    other = synthesize(tmp_path / "seed5", "casme2", clips=3, subjects=2, seed=5, frames=4, profile="hard",
                       identities="biden,group_left")
    assert tree_digest(other) != tree_digest(tmp_path / "casme2")


def test_onset_faces_are_found_by_dlib_in_every_clip(tmp_path, faces):
    clips: list[SynthClip] = []

    def keep(root, fmt, cs):
        clips.extend(cs)
        return ids_only_writer(root, fmt, cs)

    synthesize(tmp_path, "casme2", clips=11, subjects=11, seed=8, frames=3, profile="hard", identities="all",
               writer=keep)
    for c in clips:
        assert motion.detect_landmarks(grey(c.frames[0]), upsample=1) is not None, (c.subject, c.index)


def test_a_cropped_database_is_the_same_database_cut_to_the_face(tmp_path, faces):
    """framing="cropped" (a Cropped release): every clip's frames are its 640x480 frames cut to one box round the
    face, the labels and motion are those of the same seed's frames, and positions move with the cut."""
    got: dict[str, list[SynthClip]] = {"frame": [], "cropped": []}
    for framing, out in got.items():
        def keep(root, fmt, cs, out=out):
            out.extend(cs)
            return ids_only_writer(root, fmt, cs)

        synthesize(tmp_path / framing, "casme2", clips=4, subjects=2, seed=4, frames=3, profile="hard",
                   identities="biden,group_left", writer=keep, framing=framing)
    truth = {f: json.loads((tmp_path / f / GROUND_TRUTH).read_text()) for f in got}
    assert truth["cropped"]["framing"] == "cropped" and truth["frame"]["framing"] == "frame"
    aligner = FaceAligner()
    for whole, cut, tw, tc in zip(got["frame"], got["cropped"], truth["frame"]["clips"], truth["cropped"]["clips"],
                                  strict=True):
        x0, y0, x1, y1 = tc["framing"]["box"]
        assert 0 < x1 - x0 < 0.6 * scene.FRAME_W and 0 < y1 - y0 < 0.7 * scene.FRAME_H
        assert len(whole.frames) == len(cut.frames)
        for a, b in zip(whole.frames, cut.frames, strict=True):
            assert np.array_equal(a[y0:y1, x0:x1], b)
        assert (whole.au_text, whole.emotion, whole.first_frame) == (cut.au_text, cut.emotion, cut.first_frame)
        assert tc["pose"]["position"] == pytest.approx([tw["pose"]["position"][0] - x0, tw["pose"]["position"][1] - y0])
        assert tc["head"]["centre"] == pytest.approx([tw["head"]["centre"][0] - x0, tw["head"]["centre"][1] - y0])
        for pw, pc in zip(tw["planted"], tc["planted"], strict=True):
            assert pw["amplitude_crop_px"] == pc["amplitude_crop_px"]
            for name, (x, y) in pw["centres"].items():
                assert pc["centres"][name] == pytest.approx([x - x0, y - y0])
        assert tw["region_motion_crop"] == tc["region_motion_crop"]
        # the face fills the cut, and the builder finds it there
        found = aligner.find(grey(cut.frames[0]))
        assert found is not None, tc["clip_id"]
        eyes = np.array(eye_centres(found[1]))
        assert eyes[:, 0].min() > 0 and eyes[:, 0].max() < x1 - x0 and eyes[:, 1].min() > 0
    # CASME II's cut clips are laid out as its official crops, and read back from there
    from unimer_builder.sources import read_clips

    root = synthesize(tmp_path / "release", "casme2", clips=2, subjects=1, seed=4, frames=3, profile="hard",
                      identities="biden", framing="cropped")
    got = [c for c in read_clips(root, "casme2") if not hasattr(c, "reason")]
    assert len(got) == 2 and not (root / "CASME2_RAW_selected").exists()
    for c in got:
        assert all(Path(f).parent.parent.parent.name == "Cropped" and Path(f).name.startswith("reg_img")
                   for f in c.frames.values())
    # a face the frame does not hold has nothing to cut (the generator keeps faces in the frame; the cut says so)
    clip = scene.render_clip(session_of(faces, "biden"), [], np.random.default_rng(2), frames=3, blinks=False)
    with pytest.raises(ValueError, match="outside the 640x480 frame"):
        scene.crop_to_face(replace(clip, pose=replace(clip.pose, position=(-400.0, 240.0))), np.random.default_rng(0))
    for framing, says in (("cropped", "framing needs profile='hard'"), ("tight", "unknown framing 'tight'")):
        with pytest.raises(ValueError, match=says):
            synthesize(tmp_path / "x", "casme2", clips=2, framing=framing, writer=ids_only_writer)


def test_write_frame_applies_the_clips_jpeg_quality(tmp_path):
    from unimer_builder.sources import _layout

    img = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    _layout.write_frame(tmp_path / "q95.jpg", img)
    _layout.write_frame(tmp_path / "q75.jpg", img, 75)
    assert (tmp_path / "q75.jpg").stat().st_size < (tmp_path / "q95.jpg").stat().st_size
    _layout.write_frame(tmp_path / "q75.png", img, 75)
    png = cv2.imread(str(tmp_path / "q75.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(png, cv2.imread(str(tmp_path / "q75.jpg"), cv2.IMREAD_UNCHANGED))
    with pytest.raises(ValueError, match="quality"):
        _layout.write_frame(tmp_path / "bad.jpg", img, 0)


def test_facs_regions_have_truth_for_every_planted_region(hard_truth):
    for c in hard_truth["clips"]:
        for p in c["planted"]:
            assert set(p["regions"]) <= set(c["region_motion_crop"]) and set(p["regions"]) == set(p["centres"])
            assert all(facs.REGION_BY_NAME[r] for r in p["regions"])
