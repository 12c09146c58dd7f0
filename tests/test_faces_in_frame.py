"""Several faces in the onset frame: the largest is measured, and the build says so."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage import data

from unimer_builder import build, synthesize
from unimer_builder.config import BuildConfig, FaceConfig
from unimer_builder.face import FaceAligner

ASTRONAUT = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)


def _beside(img: np.ndarray, scale: float) -> np.ndarray:
    """``img`` with a ``scale`` copy of itself to its right (a second, smaller face)."""
    small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    h, w = img.shape[:2]
    out = np.full((h, w + small.shape[1], *img.shape[2:]), 128, img.dtype)
    out[:, :w] = img
    out[:small.shape[0], w:] = small
    return out


@pytest.fixture(scope="module")
def aligner():
    return FaceAligner(FaceConfig())


def test_the_onset_frame_s_other_faces_are_counted_and_the_largest_is_aligned(aligner):
    one = aligner.align(ASTRONAUT)
    assert one.others == 0
    # Two faces of one size, side by side (a 512 x 1024 frame: detected at the downscaled rung)
    two = aligner.align(_beside(ASTRONAUT, 1.0))
    assert two.others == 1
    assert two.box == one.box
    assert aligner.align(_beside(ASTRONAUT, 1.0)[:, ::-1].copy()).others == 1


def _notes_with_first_clip_redrawn(tmp_path, redraw) -> tuple[dict, str, dict]:
    """Build two synthetic CASME II clips, the first's frames passed through ``redraw`` (BGR in, BGR out): the
    report's label notes by clip, the redrawn clip's id and the report's counts."""
    src = synthesize(tmp_path / "src", "casme2", clips=2, subjects=1, seed=5, frames=8)
    clips = sorted(p for p in src.rglob("EP*") if p.is_dir())
    for f in sorted(clips[0].glob("*.jpg")):
        cv2.imwrite(str(f), redraw(cv2.imread(str(f))))
    out = tmp_path / "out"
    build(src, out, BuildConfig(), "casme2", 0)
    report = json.loads((out / "build_report.json").read_text())
    notes = {n["clip_id"]: " ".join(n["notes"]) for n in report["label_notes"]}
    return notes, f"casme2/{clips[0].parent.name}/{clips[0].name}", report["counts"]


def test_a_clip_whose_onset_frame_holds_two_faces_is_built_with_a_note(tmp_path):
    notes, two, counts = _notes_with_first_clip_redrawn(tmp_path, lambda img: _beside(img, 0.75))
    assert counts["built"] == 2
    assert "2 faces in onset frame" in notes.get(two, ""), notes
    assert "the largest" in notes[two]
    assert not any("faces in onset frame" in text for cid, text in notes.items() if cid != two)


def _small_in_frame(img: np.ndarray) -> np.ndarray:
    small = cv2.resize(img, None, fx=0.3, fy=0.3, interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 128, np.uint8)
    frame[200:200 + small.shape[0], 300:300 + small.shape[1]] = small
    return frame


def test_a_small_face_is_noted_with_how_much_the_crop_enlarges_it(tmp_path):
    """A face whose eyes are 30 px apart in a 640x480 frame is measured on pixels the crop made up: the build
    says by how much; the full-size face gets no such note."""
    notes, small_id, counts = _notes_with_first_clip_redrawn(tmp_path, _small_in_frame)
    assert counts["built"] == 2
    assert "the face is small in the frame" in notes.get(small_id, ""), notes
    k = float(notes[small_id].split("enlarges it ")[1].split(" times")[0])
    assert 2.0 < k < 10.0
    assert not any("small in the frame" in text for cid, text in notes.items() if cid != small_id)


def test_a_frame_cut_by_slicing_is_searched_as_its_pixels_lie():
    """dlib's detector read a numpy view's rows as if they were packed: the astronaut cut out of her picture by
    slicing had no face (run again, at times a face from the pixels past each row), though a copy of the same
    pixels has one. Callers need not copy."""
    view = ASTRONAUT[20:300, 100:330]
    aligner = FaceAligner(FaceConfig(detect_pad=0))
    found = [aligner.detect_all(view) for _ in range(3)]
    boxes = aligner.detect_all(np.ascontiguousarray(view))
    assert len(boxes) == 1 and not view.flags["C_CONTIGUOUS"]
    assert found == [boxes] * 3


def test_the_detector_is_given_contiguous_pixels(monkeypatch):
    """dlib's detector reads a view's rows as if packed, and what it finds then depends on memory beyond each row:
    a test of its result passes or fails by what ran before it. What it is given is checked instead."""
    aligner = FaceAligner(FaceConfig(detect_pad=0))
    given = []
    real = aligner._detector

    class Recording:
        def run(self, img, up, threshold):
            given.append(img.flags["C_CONTIGUOUS"])
            return real.run(np.ascontiguousarray(img), up, threshold)

    monkeypatch.setattr(aligner, "_detector", Recording())
    view = ASTRONAUT[20:300, 100:330]
    assert not view.flags["C_CONTIGUOUS"]
    aligner.detect_all(view)
    assert given and all(given)


def test_the_widened_frame_s_search_keeps_only_a_face_its_edge_cuts(monkeypatch):
    """A face the ladder missed inside the frame, found on the widened frame's other scales, got another box than
    a neighbouring frame lends (a laughing face in a 1280x720 frame): the widened search is for faces the frame cuts."""
    aligner = FaceAligner()
    small = cv2.resize(ASTRONAUT, (256, 256), interpolation=cv2.INTER_AREA)
    pad = int(round(aligner.cfg.detect_pad * 256))
    inside = (pad + 60, pad + 40, pad + 160, pad + 140)  # wholly inside the frame, in the widened frame's px
    monkeypatch.setattr(aligner, "_detect_at", lambda img, scale, up: [inside] if img.shape[0] > 256 else [])
    assert aligner.detect_all(small) == []
    cut = (pad + 60, pad - 30, pad + 160, pad + 70)  # beyond the top edge
    monkeypatch.setattr(aligner, "_detect_at", lambda img, scale, up: [cut] if img.shape[0] > 256 else [])
    monkeypatch.setattr(aligner, "landmarks", lambda img, box: np.tile([pad + 100.0, pad + 50.0], (68, 1)))
    assert aligner.detect_all(small) == [(60, -30, 160, 70)]


@pytest.mark.parametrize("pad", [-0.1, 1.5, float("nan"), True, "0.3"])
def test_the_widened_search_s_pad_is_a_share_from_0_to_1(pad):
    with pytest.raises(ValueError, match="face.detect_pad"):
        FaceConfig(detect_pad=pad)
