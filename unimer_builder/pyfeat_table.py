"""py-feat's result table (its ``Fex`` columns), read without importing py-feat.

py-feat's detectors return a ``Fex``, a pandas DataFrame with one row per detected face (a frame where no
face was found keeps one row whose face box is empty); ``Fex.to_csv`` writes the same columns. This
module reads either, by column name (the column order differs between py-feat versions):

* ``FaceRectX``, ``FaceRectY``, ``FaceRectWidth``, ``FaceRectHeight`` (top-left corner and size, px of
  the input frame) and ``FaceScore``: required;
* ``x_0`` .. ``x_67`` and ``y_0`` .. ``y_67``: 68 landmarks in the iBUG 300-W layout dlib also uses;
* ``AU01`` .. ``AU43``: AU presence as a probability in [0, 1] (py-feat's classifiers; some models give
  0/1), at least one column required;
* ``anger`` .. ``neutral``: emotion probabilities; ``Pitch``, ``Roll``, ``Yaw``: head pose in degrees;
* ``frame`` (its position when absent) and ``input`` (the file the frame came from).

Everything else (identity embeddings, gaze, ...) is ignored. The same reader reads py-feat's own output
files (shipped in its wheel: ``feat/tests/data/001.csv``) and a live ``Detector.detect`` result, so what is
tested here on real output is what runs where py-feat does. Errors name file, row (1-based as a
spreadsheet shows a CSV: the header is row 1) and column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FACEBOX_COLUMNS = ("FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight")
SCORE_COLUMN = "FaceScore"
POSE_COLUMNS = ("Pitch", "Roll", "Yaw")
EMOTION_COLUMNS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
N_LANDMARKS = 68
LANDMARK_COLUMNS = tuple(f"x_{i}" for i in range(N_LANDMARKS)) + tuple(f"y_{i}" for i in range(N_LANDMARKS))
_AU_COLUMN = re.compile(r"^AU(\d{2})$")


class FexError(ValueError):
    """A py-feat result table that cannot be read; names the file, row and column."""

    def __init__(self, message: str, file: str = "", row: int | None = None, field: str = ""):
        where = ", ".join(b for b in (file, f"row {row}" if row is not None else "",
                                      f"column {field}" if field else "") if b)
        super().__init__(f"{where}: {message}" if where else message)
        self.file, self.row, self.field = file, row, field


@dataclass(frozen=True)
class FexFace:
    """One row of a py-feat result: a face in a frame, or a frame where no face was found (``box`` None; a box
    of no width or height counts as none)."""

    row: int  # 1-based as a spreadsheet shows the CSV (header = row 1)
    frame: int
    input: str | None
    box: tuple[float, float, float, float] | None  # x, y (top-left), width, height in frame px
    score: float | None
    landmarks: np.ndarray | None = field(default=None, compare=False)  # 68 x 2 float64, frame px
    aus: dict[int, float] = field(default_factory=dict)  # AU number -> presence probability
    emotions: dict[str, float] = field(default_factory=dict)
    pose: dict[str, float] = field(default_factory=dict)  # Pitch, Roll, Yaw (degrees)


@dataclass
class FexTable:
    """Every row of one py-feat result, in table order."""

    source: str  # file path, or a description of a live result
    faces: list[FexFace]
    au_numbers: tuple[int, ...]  # AUs the table has columns for, ascending
    has_landmarks: bool
    emotions: tuple[str, ...]

    def in_frame(self, frame: int) -> list[FexFace]:
        """The faces found in one frame (empty when none was)."""
        return [f for f in self.faces if f.frame == frame and f.box is not None]

    def face_in(self, frame: int, near: tuple[float, float, float, float] | None = None,
                min_overlap: float = 0.3) -> FexFace | None:
        """The face of ``frame`` that is the subject's: the one overlapping ``near`` (x, y, w, h) most, with
        an intersection over union of at least ``min_overlap``; without ``near``, the largest of the
        confident faces (score at least half the best one's, as the dlib detector chooses)."""
        faces = self.in_frame(frame)
        if not faces:
            return None
        if near is not None:
            best = max(faces, key=lambda f: box_iou(f.box, near))
            return best if box_iou(best.box, near) >= min_overlap else None
        top = max((f.score or 0.0) for f in faces)
        keep = [f for f in faces if (f.score or 0.0) >= 0.5 * top]
        return max(keep, key=lambda f: f.box[2] * f.box[3])


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def _number(value, file: str, row: int, col: str) -> float:
    """A float (NaN for an empty cell); anything else that is not a number is an error."""
    if value is None:
        return math.nan
    if isinstance(value, str):
        if not value.strip():
            return math.nan
        try:
            return float(value)
        except ValueError:
            raise FexError(f"{value!r} is not a number", file, row, col) from None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FexError(f"{value!r} is not a number", file, row, col) from None


def read_fex(src, source: str | None = None) -> FexTable:
    """Read a py-feat result: a CSV file py-feat wrote, or the DataFrame (``Fex``) a detector returned.

    ``source`` names the result in errors (default: the file's path, or "py-feat result").
    """
    import pandas as pd

    if isinstance(src, (str, Path)):
        name = source or str(src)
        try:
            df = pd.read_csv(src)
        except FileNotFoundError:
            raise FexError("no such file", name) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise FexError(f"not a CSV table: {e}", name) from None
    elif isinstance(src, pd.DataFrame):
        name = source or "py-feat result"
        df = pd.DataFrame(src)  # a Fex is a DataFrame subclass; plain columns are all that is read
    else:
        raise TypeError(f"read_fex reads a CSV path or a DataFrame, not {type(src).__name__}")

    columns = [str(c) for c in df.columns]
    for col in FACEBOX_COLUMNS:
        if col not in columns:
            raise FexError(f"not a py-feat result: no {col!r} column (face boxes)", name, 1, col)
    aus = sorted((int(m.group(1)), c) for c in columns if (m := _AU_COLUMN.match(c)))
    if not aus:
        raise FexError("not a py-feat result: no AU columns (AU01 .. AU43)", name, 1, "AU01")
    have_x = [c for c in LANDMARK_COLUMNS if c in columns]
    if have_x and len(have_x) != len(LANDMARK_COLUMNS):
        missing = next(c for c in LANDMARK_COLUMNS if c not in columns)
        raise FexError(f"landmark columns incomplete: {missing!r} missing (68 x_ and y_ columns expected)",
                       name, 1, missing)
    emotions = tuple(c for c in EMOTION_COLUMNS if c in columns)
    pose = tuple(c for c in POSE_COLUMNS if c in columns)

    records = df.to_dict("records")
    faces = []
    for i, rec in enumerate(records):
        row = i + 2
        box = tuple(_number(rec[c], name, row, c) for c in FACEBOX_COLUMNS)
        frame_value = rec.get("frame", i)
        frame_f = _number(frame_value, name, row, "frame")
        if not math.isfinite(frame_f) or frame_f != int(frame_f) or frame_f < 0:
            raise FexError(f"frame {frame_value!r} is not a frame number", name, row, "frame")
        if any(math.isnan(v) for v in box):
            if not all(math.isnan(v) for v in box):
                col = next(c for c, v in zip(FACEBOX_COLUMNS, box, strict=True) if math.isnan(v))
                raise FexError("face box partly empty", name, row, col)
        if any(math.isnan(v) for v in box) or box[2] <= 0 or box[3] <= 0:  # no face, or a degenerate detection
            faces.append(FexFace(row=row, frame=int(frame_f), input=_text(rec.get("input")), box=None, score=None))
            continue
        score = _number(rec.get(SCORE_COLUMN), name, row, SCORE_COLUMN) if SCORE_COLUMN in columns else math.nan
        au_values = {}
        for au, col in aus:
            v = _number(rec[col], name, row, col)
            if math.isnan(v):
                continue  # py-feat ran without an AU model, or left this face out
            if not -1e-6 <= v <= 1 + 1e-6:
                raise FexError(f"{v:g} is not a presence probability in [0, 1]", name, row, col)
            au_values[au] = min(max(v, 0.0), 1.0)
        lm = None
        if have_x:
            xy = np.array([[_number(rec[f"x_{k}"], name, row, f"x_{k}"), _number(rec[f"y_{k}"], name, row, f"y_{k}")]
                           for k in range(N_LANDMARKS)], dtype=np.float64)
            if np.isnan(xy).any():
                if not np.isnan(xy).all():
                    k = int(np.argwhere(np.isnan(xy))[0][0])
                    raise FexError("landmarks partly empty", name, row, f"x_{k}")
            else:
                lm = xy
        faces.append(FexFace(
            row=row, frame=int(frame_f), input=_text(rec.get("input")), box=box,
            score=None if math.isnan(score) else score, landmarks=lm, aus=au_values,
            emotions={c: v for c in emotions if not math.isnan(v := _number(rec[c], name, row, c))},
            pose={c: v for c in pose if not math.isnan(v := _number(rec[c], name, row, c))},
        ))
    return FexTable(source=name, faces=faces, au_numbers=tuple(a for a, _ in aus), has_landmarks=bool(have_x),
                    emotions=emotions)


def _text(v) -> str | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return str(v)
