"""The synthetic generator: faces dlib finds, motion TV-L1 recovers, labels that match the truth."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from unimer_builder import facs, labels
from unimer_builder.records import SynthClip
from unimer_builder.synth import generate, motion
from unimer_builder.synth.generate import GROUND_TRUTH, PROTOTYPES, STYLES, synthesize

FORMATS = ("casme2", "samm", "smic", "casme3", "manifest")


def stand_in_writer(root: Path, fmt: str, clips: list[SynthClip]) -> list[str]:
    """A minimal layout: PNG frames per subject/clip, ids like the real writers return."""
    ids = []
    for c in clips:
        folder = Path(root) / f"s{c.subject}" / f"c{c.index}"
        folder.mkdir(parents=True, exist_ok=True)
        for k, img in enumerate(c.frames):
            cv2.imwrite(str(folder / f"{c.first_frame + k}.png"), img)
        (folder / "labels.json").write_text(json.dumps(
            {"emotion": c.emotion, "au_text": c.au_text, "onset": c.onset, "apex": c.apex, "offset": c.offset}))
        ids.append(f"{fmt}/s{c.subject}/c{c.index}")
    return ids


def ids_only_writer(root: Path, fmt: str, clips: list[SynthClip]) -> list[str]:
    """Writes nothing: for checks of the truth and the labels alone."""
    return [f"{fmt}/s{c.subject}/c{c.index}" for c in clips]


def tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def tvl1():
    # The builder's "fast" preset (config.TVL1_PRESETS); OpenCV spells one keyword "innner".
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=0.25, lambda_=0.15, theta=0.3, nscales=3, warps=3, epsilon=0.01, innnerIterations=10,
        outerIterations=2, scaleStep=0.8, gamma=0.0, medianFiltering=3)


def disc_mean(field: np.ndarray, centre, radius: float) -> np.ndarray:
    h, w = field.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    inside = (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 <= radius ** 2
    return field[inside].mean(0)


# --- faces ----------------------------------------------------------------------------------------

def test_every_subject_has_a_face_dlib_finds():
    images = []
    for s in range(1, 9):
        face = motion.subject_face(s)
        assert face.image.shape == (motion.FRAME_SIZE, motion.FRAME_SIZE)
        assert 38 < face.interocular < 60, (s, face.interocular)
        # The noisy, jittered onset frame as a reader will see it, at dlib's plain (no upsampling) scale.
        clip = motion.render_clip(s, [motion.Plant(12, None, 2.0)], np.random.default_rng(s), frames=5)
        lm = motion.detect_landmarks(clip.frames[0], upsample=0)
        assert lm is not None, f"no face on subject {s}"
        assert np.abs(lm - face.landmarks).max() < 4.0
        box = lm.max(0) - lm.min(0)
        assert box[0] >= 90, (s, box)  # the face stays large enough for the HOG detector
        images.append(clip.frames[0].astype(np.float32))
    for a in range(len(images)):
        for b in range(a + 1, len(images)):
            assert np.abs(images[a] - images[b]).mean() > 4.0, f"subjects {a + 1} and {b + 1} look alike"


def test_time_profile_rises_to_the_apex_and_leaves_a_residual():
    p = motion.time_profile(14, 6, residual=0.15)
    assert p[0] == 0 and p[6] == 1 and abs(p[-1] - 0.15) < 1e-9
    assert np.all(np.diff(p[:7]) > 0) and np.all(np.diff(p[6:]) < 0)
    for n in (6, 14, 30):
        for seed in range(4):
            clip = motion.render_clip(1, [], np.random.default_rng(seed), frames=n)
            assert 0.35 * (n - 1) <= clip.apex_offset <= 0.65 * (n - 1)


def test_rendering_is_deterministic_for_a_generator():
    a = motion.render_clip(3, [motion.Plant(9, None, 2.0)], np.random.default_rng(5), frames=6)
    b = motion.render_clip(3, [motion.Plant(9, None, 2.0)], np.random.default_rng(5), frames=6)
    assert all(np.array_equal(x, y) for x, y in zip(a.frames, b.frames, strict=True))
    assert a.head[0] == (0.0, 0.0, 0.0) and max(abs(h[0]) for h in a.head) <= motion.MAX_JITTER_PX
    assert max(abs(h[2]) for h in a.head) <= motion.MAX_JITTER_DEG


# --- motion recovery ------------------------------------------------------------------------------

CASES = [
    # (subject, plants, regions that must stay still apart from the head jitter)
    (2, [motion.Plant(12, "L", 2.0)], ["lip_corner_R", "chin", "brow_inner_L"]),
    (5, [motion.Plant(9, None, 2.0), motion.Plant(15, None, 2.2)], ["brow_outer_L", "lower_lid_R"]),
    (7, [motion.Plant(1, None, 2.2), motion.Plant(2, None, 2.2)], ["lip_corner_L", "chin"]),
]


@pytest.mark.parametrize("subject,plants,still", CASES)
def test_tvl1_recovers_planted_motion(subject, plants, still):
    clip = motion.render_clip(subject, plants, np.random.default_rng(subject))
    onset, apex = clip.frames[0], clip.frames[clip.apex_offset]
    flow = tvl1().calc(onset, apex, None)
    truth = clip.flow_at(clip.apex_offset)
    planted = {b.region for b in clip.bumps}
    for b in clip.bumps:
        r = 0.7 * min(b.sigma, b.sigma_y)
        got, want = disc_mean(flow, b.centre, r), disc_mean(truth, b.centre, r)
        err = float(np.linalg.norm(got - want))
        cos = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
        assert err < 0.5 and cos > 0.8, (b.au, b.region, got, want)
        # The planted direction itself, once the known head motion is taken out.
        rigid = clip.rigid_at(clip.apex_offset, np.array([b.centre]))[0]
        local = got - rigid
        assert float(local @ np.array(b.vector)) / np.linalg.norm(local) > 0.8, (b.au, b.region, local)
    for name in still:
        assert name not in planted
        region = facs.REGION_BY_NAME[name]
        c = motion.region_centre(clip.face.landmarks, region)
        got = disc_mean(flow, c, 0.7 * motion.region_sigma(clip.face, region))
        rigid = clip.rigid_at(clip.apex_offset, np.array([c]))[0]
        assert np.linalg.norm(got - rigid) < 0.3, (name, got, rigid)


# --- the database -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def databases(tmp_path_factory) -> dict[str, dict]:
    out = {}
    for fmt in FORMATS:
        root = tmp_path_factory.mktemp(fmt)
        synthesize(root, fmt, clips=40, subjects=4, seed=3, frames=5, writer=ids_only_writer)
        out[fmt] = json.loads((root / GROUND_TRUTH).read_text())
    return out


def test_same_seed_same_bytes(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for root, seed in ((a, 1), (b, 1), (c, 2)):
        synthesize(root, "samm", clips=6, subjects=2, seed=seed, frames=5, writer=stand_in_writer)
    assert tree_digest(a) == tree_digest(b)
    assert (a / GROUND_TRUTH).read_bytes() == (b / GROUND_TRUTH).read_bytes()
    assert (a / GROUND_TRUTH).read_bytes() != (c / GROUND_TRUTH).read_bytes()


@pytest.mark.parametrize("fmt", FORMATS)
def test_truth_is_consistent_with_the_labels(databases, fmt):
    doc = databases[fmt]
    style = STYLES[fmt]
    assert doc["format"] == fmt and doc["seed"] == 3 and len(doc["clips"]) == 40
    assert len({c["clip_id"] for c in doc["clips"]}) == 40
    pool = set(doc["distractor_pool"])
    for c in doc["clips"]:
        assert c["emotion"] in style.emotions
        assert c["onset"] < c["apex"] < c["offset"] == c["onset"] + 4
        proto = PROTOTYPES[labels.canonical(c["emotion"])]
        moved = {(p["au"], p["side"]) for p in c["planted"]}
        extra = {(m["au"], m["side"]) for m in c["moved_not_labelled"]}
        assert extra <= moved and all(m["au"] in pool for m in c["moved_not_labelled"])
        assert sorted(au for au, _ in moved - extra) == sorted(proto.aus)
        for p in c["planted"]:
            assert p["regions"] == [r.name for r in facs.regions_for(p["au"], p["side"])]
            assert 1.0 <= p["amplitude_px"] <= 2.5
            for name, vec in p["direction_by_region"].items():
                assert vec == pytest.approx(facs.expected_vector(p["au"], facs.REGION_BY_NAME[name]), abs=1e-4)
        moving = {r for p in c["planted"] for r in p["regions"]}
        assert moving <= set(c["region_motion"])
        for p in c["planted"]:
            for name, vec in p["direction_by_region"].items():
                got = np.array(c["region_motion"][name])
                assert got @ np.array(vec) / np.linalg.norm(got) > 0.9, (p["au"], name, got, vec)
        if not style.au_labels:
            assert c["au_text"] is None and c["labelled"] == [] and c["labelled_not_moved"] == []
            continue
        parsed = facs.parse_aus(c["au_text"])
        assert not parsed.unparsed and not parsed.unknown, c["au_text"]
        tokens = {(t.au, t.side) for t in parsed.tokens}
        assert tokens == {(int(x.lstrip("LR")), x[0] if x[0] in "LR" else None) for x in c["labelled"]}
        assert tokens == (moved - extra) | {(au, None) for au in c["labelled_not_moved"]}
        assert all(au in pool and au not in {a for a, _ in moved} for au in c["labelled_not_moved"])
        assert all((m["au"], m["side"]) not in tokens for m in c["moved_not_labelled"])
        assert all(p["labelled"] == ((p["au"], p["side"]) in tokens) for p in c["planted"])
        if not style.intensity:
            assert all(t.intensity is None for t in parsed.tokens)


@pytest.mark.parametrize("fmt", FORMATS)
def test_classes_are_balanced_and_separable(databases, fmt):
    clips = databases[fmt]["clips"]
    counts = Counter(c["emotion"] for c in clips)
    assert set(counts) == set(STYLES[fmt].emotions)
    assert max(counts.values()) - min(counts.values()) <= 1
    for s in range(1, 5):
        assert len({c["emotion"] for c in clips if c["subject"] == s}) >= min(3, len(STYLES[fmt].emotions))
    # Distinct prototype AU sets, and no distractor shares a prototype AU.
    protos = [frozenset(PROTOTYPES[labels.canonical(e)].aus) for e in STYLES[fmt].emotions]
    assert len(set(protos)) == len(protos)
    pool = generate.distractor_pool(fmt)
    assert pool and not set(pool) & set().union(*protos)
    assert not any(facs.motion_twins(au) for au in pool)


@pytest.mark.parametrize("fmt", FORMATS)
def test_disagreement_shares(databases, fmt):
    clips = databases[fmt]["clips"]
    lnm = sum(bool(c["labelled_not_moved"]) for c in clips)
    mnl = sum(bool(c["moved_not_labelled"]) for c in clips)
    assert mnl == 6  # 15 % of 40
    if STYLES[fmt].au_labels:
        assert lnm == 6
    else:
        assert lnm == 0


def test_unilateral_labels_appear(databases):
    texts = [c["au_text"] for f in ("casme2", "samm", "casme3") for c in databases[f]["clips"]]
    assert any("L" in t or "R" in t for t in texts)
    assert any(any(ch in t for ch in "ABCDE") for t in (c["au_text"] for c in databases["samm"]["clips"]))


def test_through_the_real_layout_writers(tmp_path):
    """With the database writers present: ids read back equal the truth's ids; bytes are repeatable."""
    sources = pytest.importorskip("unimer_builder.sources")
    if not hasattr(sources, "write_layout") or not hasattr(sources, "read_clips"):
        pytest.skip("sources.write_layout / read_clips not available yet")
    for fmt in FORMATS:
        root = synthesize(tmp_path / fmt, fmt, clips=5, subjects=2, seed=4, frames=5)
        truth = json.loads((root / GROUND_TRUTH).read_text())
        got = {c.clip_id: c for c in sources.read_clips(root, fmt) if not hasattr(c, "reason")}
        assert set(got) == {c["clip_id"] for c in truth["clips"]}, fmt
        for c in truth["clips"]:
            clip = got[c["clip_id"]]
            assert labels.canonical(clip.emotion) == labels.canonical(c["emotion"])
            assert clip.onset == c["onset"]
        again = synthesize(tmp_path / f"{fmt}-again", fmt, clips=5, subjects=2, seed=4, frames=5)
        assert (root / GROUND_TRUTH).read_bytes() == (again / GROUND_TRUTH).read_bytes()


@pytest.mark.parametrize("fmt", ["casme2", "samm", "casme3"])
def test_real_layouts_are_byte_identical_for_a_seed(tmp_path, fmt):
    """Spreadsheets too: openpyxl's save-time stamps must not leak into the files."""
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        synthesize(root, fmt, clips=3, subjects=2, seed=4, frames=4)
    assert tree_digest(a) == tree_digest(b)


def test_synth_replaces_an_earlier_synthetic_database_and_refuses_anything_else(tmp_path, monkeypatch):
    """`unimer synth` wrote into any folder: a user's own sheet and frames were overwritten file by file, and a
    second seed into the same folder mixed its frames with the first's (builds and truth scores of neither)."""

    def files(root):
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    own = tmp_path / "mine"
    (own / "sub01").mkdir(parents=True)
    (own / "CASME2-coding-20190701.xlsx").write_bytes(b"my sheet")
    with pytest.raises(ValueError, match="holds files no synthetic database wrote"):
        synthesize(own, "casme2", clips=2, subjects=1, seed=0, frames=4)
    assert files(own) == {"CASME2-coding-20190701.xlsx": b"my sheet"}
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        synthesize(tmp_path / "a_file" / "db", "casme2", clips=2, subjects=1, seed=0, frames=4)
    with pytest.raises(ValueError, match="the seed must be 0 or more, not -1"):
        synthesize(tmp_path / "neg", "casme2", clips=2, subjects=1, seed=-1, frames=4)
    assert not (tmp_path / "neg").exists()
    db = synthesize(tmp_path / "db", "smic", clips=4, subjects=2, seed=1, frames=4)
    again = synthesize(tmp_path / "db", "smic", clips=2, subjects=1, seed=2, frames=4)
    assert files(again) == files(synthesize(tmp_path / "fresh", "smic", clips=2, subjects=1, seed=2, frames=4))
    times = {p: p.stat().st_mtime_ns for p in db.rglob("*") if p.is_file()}
    synthesize(tmp_path / "db", "smic", clips=2, subjects=1, seed=2, frames=4)  # the same database: left as it is
    assert {p: p.stat().st_mtime_ns for p in db.rglob("*") if p.is_file()} == times
    # what a user put inside a synthetic database (a build, notes) is never replaced with it
    (db / "unimer").mkdir()
    (db / "unimer" / "README.md").write_text("a build")
    for seed in (2, 3):
        with pytest.raises(ValueError, match=r"holds files besides the synthetic database it replaces \(unimer\)"):
            synthesize(tmp_path / "db", "smic", clips=2, subjects=1, seed=seed, frames=4)
        assert (db / "unimer" / "README.md").read_text() == "a build"
    # "." (a folder of no name) and a link to an earlier database
    fresh = tmp_path / "here"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    assert synthesize(".", "casme2", clips=1, subjects=1, seed=0, frames=4) == fresh
    (tmp_path / "link").symlink_to(fresh)
    synthesize(tmp_path / "link", "casme2", clips=1, subjects=1, seed=1, frames=4)
    assert (tmp_path / "link").is_symlink() and json.loads((fresh / GROUND_TRUTH).read_text())["seed"] == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_failed_synth_leaves_no_folder_it_made(tmp_path):
    """A synth that failed while writing left the empty parent folders it had made for the database."""
    def broken_writer(root, fmt, clips):
        raise OSError(28, "No space left on device")

    (tmp_path / "kept").mkdir()
    with pytest.raises(OSError, match="No space left"):
        synthesize(tmp_path / "kept" / "a" / "b" / "db", "samm", clips=2, subjects=1, seed=0, frames=4,
                   writer=broken_writer)
    assert list(tmp_path.rglob("*")) == [tmp_path / "kept"]  # the folder that was there stays
