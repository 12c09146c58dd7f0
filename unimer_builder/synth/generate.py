"""A small synthetic micro-expression database in any supported layout, with its ground truth.

``synthesize(out, fmt)`` renders clips with :mod:`.motion`, hands them to the database's own layout
writer (``sources.write_layout``) and writes ``ground_truth.json`` beside the data. The emotions are
separable by motion alone: every class plants its own prototype set of AUs (:data:`PROTOTYPES`).
Two kinds of deliberate label/motion disagreement test the builder's dual constraint:

* *labelled, not moved*: a share of clips carries one extra AU in its label that is not planted;
* *moved, not labelled*: a share of clips plants one extra AU that no label names.

Both extra AUs come from :func:`distractor_pool`: AUs outside the database's prototypes whose
regions move in no prototype's direction, so they never change what separates the emotions, that
no other AU moves the same way (motion alone names them), and whose regions lie away from the
clip's planted bumps, so they neither cancel nor fake them. The shares are exact (rounded) counts,
placed on clips in a seeded order, skipping clips where no pool AU fits.

Prototypes (canonical emotion -> AUs; ``lateral`` AUs are sometimes planted and labelled on one
side only, e.g. ``R14``, ``L2+L1``):

===========  ==============  ==============================================
emotion      AUs             notes
===========  ==============  ==============================================
happiness    6 + 12          also SMIC ``positive``
surprise     1 + 2           sometimes unilateral (``L2+L1``)
disgust      4 + 9           also SMIC ``negative``
repression   14 + 17         14 often unilateral (``R14+17``)
anger        4 + 7
contempt     12              always unilateral (``R12`` / ``L12``)
sadness      1 + 15          15 sometimes unilateral
fear         1 + 2 + 5 + 20
others       10 + 25
===========  ==============  ==============================================

Within every database's class set the AU sets differ (contempt's one-sided 12 differs from
happiness by the cheek and by the other lip corner).

``ground_truth.json``::

    {"format", "seed", "frames", "subjects", "shares", "prototypes", "distractor_pool",
     "clips": [{"clip_id",                # as sources.read_clips names the clip
                "subject", "emotion", "emotion_canonical",
                "onset", "apex", "offset",  # database frame numbers (after the writer's renumbering)
                "au_text",                  # the label string written (None for SMIC)
                "planted": [{"au", "side", "amplitude_px", "regions": [names],
                             "direction": [dx, dy],           # unit image vector in the first region
                             "direction_by_region": {region: [dx, dy]},   # per region (L/R differ in x)
                             "centres": {region: [x, y]},     # bump centre, original frame px
                             "sigma_px": {region: [sx, sy]}, "labelled": bool}],
                "labelled": ["12", "L14", ...],   # label tokens, side + AU, no intensity letter
                "labelled_not_moved": [au],       # in the label, never planted
                "moved_not_labelled": [{"au", "side", "regions"}],  # planted, in no label
                "region_motion": {region: [dx, dy]},  # true apex displacement near each region
                                                      # centre, overlaps summed, no head motion
                "noise_sigma", "head": {"centre": [x, y], "apex": {"tx", "ty", "rotation_deg"}}}]}

SMIC has no AU labels: ``labelled`` is empty there and ``planted`` still lists all motion. Image
vectors use image axes (x right, y down); ``head.apex`` is the rigid motion of the apex frame
relative to the onset (rotation about ``head.centre``, in degrees, positive counter-clockwise as
displayed, as ``cv2.getRotationMatrix2D`` takes it), which the builder should remove.

``profile="hard"`` (:mod:`.scene`, :mod:`.identities`) keeps every field above and its meaning for the
labels, with the geometry in the frame and in the builder's crop; the document gains ``profile``,
``identities`` (subject -> identity), ``identity_splits``, ``frame_size``, ``crop`` (224 px, inter-ocular
80.64 px) and ``amplitude_bins_crop_px``; every clip gains::

    "identity", "identity_split",           # whose face; "train" or "heldout"
    "planted": [{... "amplitude_px",        # nominal frame px (face px x pose scale)
                 "amplitude_face_px",       # in face coordinates (inter-ocular 100 px)
                 "amplitude_crop_px",       # the bump's own displacement in the 224 px crop (yaw included)
                 "amplitude_bin",           # micro (< 2 crop px) | mid (2-5) | macro (>= 5)
                 "direction_by_region",     # unit vectors in face (= crop) axes, as facs.expected_vector
                 "centres", "sigma_px"}],   # frame px at the onset pose (widths nominal)
    "region_motion",                        # frame px, image axes, overlaps summed
    "region_motion_crop",                   # crop px, crop axes: what the builder should measure
    "pose": {"position", "scale", "roll_deg", "yaw_deg", "interocular_px", "crop_px_per_frame_px"},
    "head": {"centre", "apex": {"tx", "ty", "rotation_deg", "scale"}, "max": {...},
             "per_frame": [[tx, ty, rotation_deg, scale], ...]},   # similarity about head.centre, frame px
    "appearance": {"grey", "jpeg_quality", "noise_sigma", "flicker": [[gain, offset], ...]},
    "blinks": [{"au": 45, "frames", "closed",   # database frame numbers of the moving / closed lids
                "closure", "closure_at_apex",   # share of the eye opening covered
                "apex_motion", "apex_motion_crop",  # upper-lid drop at the apex, frame / crop px
                "labelled": false}]              # a blink is never in the label

Amplitudes: a clip's level is log-uniform over ``LEVEL_CROP_PX`` (0.5-12 crop px), each AU gets it
times 0.8-1.25 times its regions' reach (lids and nose move less: ``scene.REACH``). The moved-not-labelled
AU takes the clip's level too.
"""

from __future__ import annotations

import filecmp
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import facs, labels
from ..atomic import staged_folder, swap_in, write_json
from ..records import SynthClip
from ..sources import write_layout
from . import identities as ids
from . import motion, scene

GROUND_TRUTH = "ground_truth.json"
PROFILES = ("default", "hard")
FRAMINGS = ("frame", "cropped")  # hard profile: 640x480 frames as recorded, or cut to the face as a Cropped release


@dataclass(frozen=True)
class Prototype:
    aus: tuple[int, ...]
    lateral: tuple[int, ...] = ()  # AUs that may be planted on one side only
    lateral_share: float = 0.0  # chance that a clip plants ``lateral`` on one side


def _planted(emotion: str, *aus: int, beyond: tuple[int, ...] = ()) -> tuple[int, ...]:
    """AUs of ``emotion``'s prototype in the one emotion -> AU table (:data:`facs.EMOTION_AUS`), in planting
    order; ``beyond`` names, on purpose, those the table does not give the emotion."""
    outside = set(aus) - facs.EMOTION_AUS.get(emotion, frozenset())
    if outside != set(beyond):
        raise ValueError(f"{emotion}: planted AUs {sorted(outside)} are not in facs.EMOTION_AUS, declared {beyond}")
    return aus


# What the generator plants per emotion: a few AUs of its prototype, chosen so that every class moves its
# own regions; AUs beyond the prototype where the classes need telling apart (disgust's brow lowerer beside
# its nose wrinkler) or the table has no prototype (repression, others).
PROTOTYPES: dict[str, Prototype] = {
    "happiness": Prototype(_planted("happiness", 6, 12)),
    "positive": Prototype(_planted("positive", 6, 12)),
    "surprise": Prototype(_planted("surprise", 1, 2), lateral=(1, 2), lateral_share=0.25),
    "disgust": Prototype(_planted("disgust", 4, 9, beyond=(4,))),
    "negative": Prototype(_planted("negative", 4, 9)),
    "repression": Prototype(_planted("repression", 14, 17, beyond=(14, 17)), lateral=(14,), lateral_share=0.5),
    "anger": Prototype(_planted("anger", 4, 7)),
    "contempt": Prototype(_planted("contempt", 12), lateral=(12,), lateral_share=1.0),
    "sadness": Prototype(_planted("sadness", 1, 15), lateral=(15,), lateral_share=0.25),
    "fear": Prototype(_planted("fear", 1, 2, 5, 20)),
    "others": Prototype(_planted("others", 10, 25, beyond=(10, 25))),
}

# Candidates for the deliberate disagreements; distractor_pool() keeps those safe for a database.
DISTRACTOR_CANDIDATES: tuple[int, ...] = (5, 7, 10, 17, 24, 25, 26, 43)  # 25, 26, 43 have twins


@dataclass(frozen=True)
class Style:
    """How a database spells its labels."""

    emotions: tuple[str, ...]  # the database's own spelling, one per class
    fps: float
    au_labels: bool = True
    intensity: bool = False  # SAMM-style intensity letters (12B, R14A)
    shuffle_tokens: bool = False  # CAS(ME)^3 lists AUs in no fixed order (L2+L1)
    first_frame: tuple[int, int] = (1, 3000)


STYLES: dict[str, Style] = {
    "casme2": Style(("happiness", "disgust", "repression", "surprise", "others"), fps=200.0),
    "samm": Style(("Anger", "Happiness", "Other", "Surprise", "Contempt"), fps=200.0, intensity=True,
                  first_frame=(1000, 8000)),
    "smic": Style(("negative", "positive", "surprise"), fps=100.0, au_labels=False),
    "casme3": Style(("happy", "disgust", "surprise", "fear", "anger", "sad", "others"), fps=30.0,
                    shuffle_tokens=True, first_frame=(100, 6000)),
    "manifest": Style(("happiness", "surprise", "disgust", "sadness", "anger"), fps=30.0, first_frame=(0, 1)),
}

# SAMM / CAS(ME)^3 objective classes (Davison et al. 2018: I happiness ... VII others), as an extra.
_OBJECTIVE = {"happiness": 1, "positive": 1, "surprise": 2, "anger": 3, "disgust": 4, "negative": 4,
              "sadness": 5, "fear": 6, "contempt": 7, "repression": 7, "others": 7}

_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII"}

AMPLITUDE_PX = (1.3, 2.5)  # peak displacement range of a planted AU at the apex
_INTENSITY_EDGES = ((1.55, "A"), (1.8, "B"), (2.05, "C"), (2.3, "D"), (math.inf, "E"))

Writer = Callable[[Path, str, list[SynthClip]], list[str]]


def prototype(emotion: str) -> Prototype:
    key = labels.canonical(emotion)
    if key not in PROTOTYPES:
        raise KeyError(f"no motion prototype for emotion {emotion!r}")
    return PROTOTYPES[key]


def _face_vector(au: int) -> np.ndarray:
    info = facs.AUS[au]
    return np.array([info.out, info.up], dtype=np.float64)


def distractor_pool(fmt: str) -> tuple[int, ...]:
    """Candidates outside ``fmt``'s prototypes, with no motion twin, that move no region the way a
    prototype AU does."""
    proto = {au for e in STYLES[fmt].emotions for au in prototype(e).aus}
    pool = []
    for c in DISTRACTOR_CANDIDATES:
        if c in proto or facs.motion_twins(c):  # an unlabelled twin could never be named right
            continue
        clash = False
        for p in proto:
            if set(facs.AUS[c].regions) & set(facs.AUS[p].regions):
                a, b = _face_vector(c), _face_vector(p)
                if a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) > 0.3:
                    clash = True
        if not clash:
            pool.append(c)
    return tuple(pool)


def _far_from(face, au: int, bumps: Sequence[motion.Bump], k: float = 2.5, min_sigma: float = 0.0) -> bool:
    """True when none of ``au``'s regions lies within ``k`` bump widths of a planted bump (the candidate's
    own width at least ``min_sigma``)."""
    for region in facs.regions_for(au):
        c = np.array(motion.region_centre(face.landmarks, region))
        s = max(motion.region_sigma(face, region), min_sigma)
        for b in bumps:
            if np.hypot(*(c - np.array(b.centre))) < k * max(s, b.sigma):
                return False
    return True


def _assign_emotions(n: int, subjects: int, k: int) -> list[tuple[int, int]]:
    """(subject, class index) per clip: subjects cycle; classes balanced overall and per subject."""
    total = [0] * k
    per = [[0] * k for _ in range(subjects)]
    out = []
    for i in range(n):
        s = i % subjects
        c = min(range(k), key=lambda j: (total[j], per[s][j], (j - i) % k))
        total[c] += 1
        per[s][c] += 1
        out.append((s + 1, c))
    return out


def _intensity(amplitude: float) -> str:
    return next(letter for edge, letter in _INTENSITY_EDGES if amplitude < edge)


def _label(tokens: list[tuple[int, str | None, float]], style: Style, rng: np.random.Generator,
           intensity: Callable[[float], str] | None = None) -> str:
    """The database's AU string for (au, side, amplitude) tokens."""
    intensity = intensity or _intensity
    tokens = sorted(tokens, key=lambda t: (t[0], t[1] or ""))
    if style.shuffle_tokens:
        tokens = [tokens[i] for i in rng.permutation(len(tokens))]
    parts = []
    for au, side, amp in tokens:
        letter = intensity(amp) if style.intensity and rng.random() < 0.7 else ""
        parts.append(f"{side or ''}{au}{letter}")
    return "+".join(parts)


def _r(x: float, nd: int = 4) -> float:
    return float(round(float(x), nd)) + 0.0  # no "-0.0" in the JSON


class _Profile:
    """The default profile: variations of one face photo (:mod:`.motion`). Its random draws are the
    generator's original ones, in the original order, so a seed gives the same bytes as it always did."""

    framing = "frame"  # its frames as drawn (FRAMINGS)

    def clip_level(self, rng: np.random.Generator) -> float | None:
        return None

    def amplitude(self, rng: np.random.Generator, au: int, level: float | None) -> float:
        return _r(rng.uniform(*AMPLITUDE_PX), 3)

    def label_amplitude(self, rng: np.random.Generator, au: int, level: float | None) -> float:
        return float(rng.uniform(*AMPLITUDE_PX))

    def intensity(self, amplitude: float) -> str:
        return _intensity(amplitude)

    def face(self, subject: int):
        return motion.subject_face(subject)

    def bumps(self, face, plants: Sequence[motion.Plant]) -> list[motion.Bump]:
        return motion.bumps_for(face, plants)

    def extra_sigma(self, au: int, level: float | None) -> float:
        return 0.0

    def render(self, subject: int, plants: list[motion.Plant], rng: np.random.Generator, frames: int):
        return motion.render_clip(subject, plants, rng, frames=frames)

    def jpeg_quality(self, rendered) -> int | None:
        return None

    def truth(self, truth: dict, rendered, plants: list[motion.Plant]) -> dict:
        return truth

    def doc(self) -> dict:
        return {}


# Hard profile: a clip's expression level (crop px at the apex) is log-uniform over LEVEL_CROP_PX; each AU
# gets the level times a factor in LEVEL_SPREAD times its region's reach (scene.REACH).
LEVEL_CROP_PX = (0.5, 12.0)
LEVEL_SPREAD = (0.8, 1.25)
AMPLITUDE_BINS = (("micro", 0.0, 2.0), ("mid", 2.0, 5.0), ("macro", 5.0, math.inf))  # crop px
_HARD_INTENSITY_EDGES = ((1.0, "A"), (2.0, "B"), (4.0, "C"), (7.0, "D"), (math.inf, "E"))  # crop px


def amplitude_bin(crop_px: float) -> str:
    return next(name for name, lo, hi in AMPLITUDE_BINS if lo <= crop_px < hi)


class _Hard(_Profile):
    """Real identities in posed, moving 640x480 scenes (:mod:`.scene`); amplitudes in face coordinates."""

    def __init__(self, fmt: str, seed: int, subjects: int, identities: str | Sequence[str] | None,
                 framing: str = "frame"):
        names = ids.resolve(identities)
        if subjects > len(names):
            raise ValueError(f"{subjects} subjects need {subjects} identities, but {identities or 'train'!r} "
                             f"has {len(names)} ({', '.join(names)}); ask for fewer subjects or more identities")
        self.names = names[:subjects]
        self.seed = seed
        self.framing = framing
        self._rendered = 0  # clips rendered: the n-th clip's cut draws from its own generator
        self.grey = fmt == "samm"  # SAMM is filmed in grey
        self._ids = ids
        self._sessions: dict[int, object] = {}

    def identity_of(self, subject: int) -> str:
        return self.names[subject - 1]

    def session(self, subject: int):
        if subject not in self._sessions:
            face = self._ids.identity(self.identity_of(subject))
            self._sessions[subject] = scene.session(subject, face, self.seed, always_grey=self.grey)
        return self._sessions[subject]

    def clip_level(self, rng: np.random.Generator) -> float:
        return float(math.exp(rng.uniform(math.log(LEVEL_CROP_PX[0]), math.log(LEVEL_CROP_PX[1]))))

    def amplitude(self, rng: np.random.Generator, au: int, level: float | None) -> float:
        crop = float(level or 1.0) * rng.uniform(*LEVEL_SPREAD) * scene.reach(au)
        return _r(crop / scene.CROP_PER_FACE, 3)

    def label_amplitude(self, rng: np.random.Generator, au: int, level: float | None) -> float:
        return self.amplitude(rng, au, level)

    def intensity(self, amplitude: float) -> str:
        crop = amplitude * scene.CROP_PER_FACE
        return next(letter for edge, letter in _HARD_INTENSITY_EDGES if crop < edge)

    def face(self, subject: int):
        return self.session(subject).identity

    def bumps(self, face, plants: Sequence[motion.Plant]) -> list[motion.Bump]:
        return scene.bumps_for(face, plants)

    def extra_sigma(self, au: int, level: float | None) -> float:
        largest = float(level or 1.0) * LEVEL_SPREAD[1] * scene.reach(au) / scene.CROP_PER_FACE
        return largest / (scene.MAX_STRAIN * math.sqrt(math.e))

    def render(self, subject: int, plants: list[motion.Plant], rng: np.random.Generator, frames: int):
        clip = scene.render_clip(self.session(subject), plants, rng, frames=frames)
        self._rendered += 1
        if self.framing != "cropped":
            return clip
        # its own generator: the clip's stream (labels, first frame) is drawn on as for framing="frame", so that a
        # cropped database is the same database, cut
        return scene.crop_to_face(clip, np.random.default_rng([self.seed, 0xC209, self._rendered]))

    def jpeg_quality(self, rendered) -> int | None:
        return rendered.jpeg_quality

    def truth(self, truth: dict, rendered, plants: list[motion.Plant]) -> dict:
        return _hard_truth(truth, rendered, self.identity_of(truth["subject"]))

    def doc(self) -> dict:
        return {
            "profile": "hard",
            "identities": {str(s): n for s, n in enumerate(self.names, 1)},
            "identity_splits": {"train": list(self._ids.TRAIN), "heldout": list(self._ids.HELD_OUT)},
            "frame_size": [scene.FRAME_W, scene.FRAME_H],
            "framing": self.framing,  # cropped: each clip's frames cut to its truth's framing.box of that frame
            "crop": {"size": scene.CROP_SIZE, "interocular_px": _r(scene.CROP_IOD, 2)},
            "amplitude_bins_crop_px": {name: [lo, None if math.isinf(hi) else hi] for name, lo, hi in AMPLITUDE_BINS},
        }


def _hard_truth(t: dict, c, identity: str) -> dict:
    """Replace the face-coordinate geometry of a default-style truth by frame and crop px; add identity,
    pose, head motion, appearance and blinks. Positions (bump centres, the pose's position, the head's centre)
    are in the frames as written: a clip cut to its face (``framing.box``) has them moved with the cut."""
    def vec(v) -> list[float]:
        return [_r(v[0]), _r(v[1])]

    scale = c.pose.scale
    for p in t["planted"]:
        bumps = {b.region: b for b in c.bumps if b.au == p["au"] and b.side == p["side"]}
        crop_sizes = []
        for b in bumps.values():
            _, _, d_crop = c.to_frame(b.centre, (b.amplitude * b.vector[0], b.amplitude * b.vector[1]))
            crop_sizes.append(float(np.hypot(*d_crop)))
        crop = float(np.mean(crop_sizes)) if crop_sizes else p["amplitude_px"] * scene.CROP_PER_FACE
        p["amplitude_face_px"] = p["amplitude_px"]
        p["amplitude_px"] = _r(p["amplitude_px"] * scale, 3)  # frame px, nominal (no foreshortening)
        p["amplitude_crop_px"] = _r(crop, 3)
        p["amplitude_bin"] = amplitude_bin(crop)
        p["centres"] = {n: [_r(v, 2) for v in scene.apply_h(c.pose_h, [b.centre])[0]] for n, b in bumps.items()}
        p["sigma_px"] = {n: [_r(b.sigma * scale, 3), _r(b.sigma_y * scale, 3)] for n, b in bumps.items()}
    face_motion = motion.region_motion(c.face, c.field)
    frame, crop = {}, {}
    for name, v in face_motion.items():
        centre = motion.region_centre(c.face.landmarks, facs.REGION_BY_NAME[name])
        _, d_frame, d_crop = c.to_frame(centre, v)
        frame[name], crop[name] = vec(d_frame), vec(d_crop)
    t["region_motion"] = frame
    t["region_motion_crop"] = crop
    t["identity"] = identity
    t["identity_split"] = c.face.split
    pose = c.pose
    t["pose"] = {"position": [_r(v, 2) for v in pose.position], "scale": _r(pose.scale), "roll_deg": _r(pose.roll_deg, 3),
                 "yaw_deg": _r(pose.yaw_deg, 3), "interocular_px": _r(c.frame_iod(), 2),
                 "crop_px_per_frame_px": _r(scene.CROP_IOD / c.frame_iod())}
    head = np.array(c.head)
    tx, ty, rot, sc = c.head[c.apex_offset]
    t["head"] = {"centre": [_r(v, 2) for v in c.head_centre],
                 "apex": {"tx": _r(tx), "ty": _r(ty), "rotation_deg": _r(rot), "scale": _r(sc, 5)},
                 "max": {"translation_px": _r(float(np.hypot(head[:, 0], head[:, 1]).max())),
                         "rotation_deg": _r(float(np.abs(head[:, 2]).max())),
                         "scale": _r(float(np.abs(head[:, 3]).max()), 5)},
                 "per_frame": [[_r(a), _r(b), _r(r), _r(s, 5)] for a, b, r, s in c.head]}
    t["appearance"] = {"grey": c.session.grey, "jpeg_quality": c.jpeg_quality, "noise_sigma": _r(c.noise_sigma, 3),
                       "flicker": [[_r(g, 5), _r(o, 3)] for g, o in c.flicker]}
    t["blinks"] = []
    if c.blink is not None:
        b = c.blink
        moving = [k for k, v in enumerate(b.profile) if v > 0]
        closed = [k for k, v in enumerate(b.profile) if v >= b.closure - 1e-9]
        at_apex = b.profile[c.apex_offset]
        drop_frame, drop_crop = {}, {}
        for side in ("R", "L"):
            x, y, drop = scene.blink_drop(c.face.landmarks, side, at_apex)
            _, d_frame, d_crop = c.to_frame((x, y), (0.0, drop))
            drop_frame[f"upper_lid_{side}"], drop_crop[f"upper_lid_{side}"] = vec(d_frame), vec(d_crop)
        t["blinks"].append({"au": 45, "frames": [t["onset"] + k for k in moving],
                            "closed": [t["onset"] + k for k in closed], "closure": _r(b.closure, 3),
                            "closure_at_apex": _r(at_apex, 3), "apex_motion": drop_frame, "apex_motion_crop": drop_crop,
                            "labelled": False})
    if c.box is not None:
        ox, oy = c.box[:2]
        for p in t["planted"]:
            p["centres"] = {n: [_r(x - ox, 2), _r(y - oy, 2)] for n, (x, y) in p["centres"].items()}
        t["pose"]["position"] = [_r(t["pose"]["position"][0] - ox, 2), _r(t["pose"]["position"][1] - oy, 2)]
        t["head"]["centre"] = [_r(t["head"]["centre"][0] - ox, 2), _r(t["head"]["centre"][1] - oy, 2)]
        t["framing"] = {"box": [int(v) for v in c.box]}  # x0, y0, x1, y1 of the 640x480 frame the clip was cut from
    return t


def synthesize(
    out: Path,
    fmt: str,
    clips: int = 24,
    subjects: int = 4,
    seed: int = 0,
    frames: int = 14,
    *,
    labelled_not_moved: float = 0.15,
    moved_not_labelled: float = 0.15,
    writer: Writer | None = None,
    profile: str = "default",
    identities: str | Sequence[str] | None = None,
    framing: str = "frame",
) -> Path:
    """Write a synthetic ``fmt`` database of ``clips`` clips under ``out``; returns the root to read.

    ``ground_truth.json`` in ``out`` records, per clip id, what was planted and what was labelled.
    The same arguments give byte-identical files. ``writer`` replaces ``sources.write_layout``.
    ``profile="hard"`` renders real people's faces (``identities``: ``"train"`` (default),
    ``"heldout"``, ``"all"`` or a list of names, one per subject) in 640x480 frames (:mod:`.scene`), or with
    ``framing="cropped"`` in those frames cut to the face, as the databases' ``Cropped`` releases store them.
    """
    if fmt not in STYLES:
        raise ValueError(f"unknown format {fmt!r}; choose one of {sorted(STYLES)}")
    if clips < 1 or subjects < 1:
        raise ValueError("clips and subjects must be at least 1")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if framing not in FRAMINGS:
        raise ValueError(f"unknown framing {framing!r}; choose one of {', '.join(FRAMINGS)}")
    if profile == "default":
        if identities is not None:
            raise ValueError("the default profile draws one face photo; identities need profile='hard'")
        if framing != "frame":
            raise ValueError("the default profile's frames are its face photo; framing needs profile='hard'")
        prof: _Profile = _Profile()
    else:
        prof = _Hard(fmt, seed, subjects, identities, framing)
    if writer is None:
        writer = write_layout
    if seed < 0:
        raise ValueError(f"the seed must be 0 or more, not {seed}")
    out = Path(os.path.abspath(out))  # "." has no name to stage beside
    if out.is_symlink():
        out = out.resolve()  # the database goes where the link points, the link stays
    _check_out(out)
    made = [p for p in (out.parent, *out.parent.parents) if not p.exists()]  # deepest first
    out.parent.mkdir(parents=True, exist_ok=True)
    # written beside its place and swapped in whole: an earlier synthetic database there is replaced, never merged
    # (frames of two seeds in one clip folder), and a failure leaves what was there
    try:
        with staged_folder(out) as stage:
            _write(stage, fmt, clips, subjects, seed, frames, labelled_not_moved, moved_not_labelled, writer, prof)
            _check_only_ours(out, stage)
            if not _same_files(stage, out):  # the same database again keeps its files (and their times: a build
                swap_in(stage, out)  # of it stays up to date)
    except BaseException:
        for folder in made:  # and no empty folders it made for the database
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return out


def _check_only_ours(out: Path, stage: Path) -> None:
    """An earlier synthetic database is replaced only where it holds nothing but what synth wrote there (its
    ``entries``; before they were recorded, what this database writes): a build or notes put inside it were deleted
    with it."""
    if not out.is_dir():
        return
    try:
        ours = set(json.loads((out / GROUND_TRUTH).read_text(encoding="utf-8")).get("entries") or ())
    except (OSError, ValueError, AttributeError):
        ours = set()
    ours = ours or {p.name for p in stage.iterdir()}
    other = sorted(p.name for p in out.iterdir() if p.name not in ours)
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise ValueError(f"{out}: holds files besides the synthetic database it replaces ({shown}); move them, or "
                         "choose an empty or new folder")


def _same_files(a: Path, b: Path) -> bool:
    """Folders ``a`` and ``b`` hold the same files, byte for byte."""
    if not b.is_dir():
        return False
    files = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    if files != {p.relative_to(b) for p in b.rglob("*") if p.is_file()}:
        return False
    return all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def _check_out(out: Path) -> None:
    """The folder to write: new, empty, or an earlier synthetic database (its ``ground_truth.json``), which is
    replaced; anything else is refused (a user's own database there was overwritten file by file)."""
    blocking = next((p for p in (out, *out.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"{out}: {'it' if blocking == out else blocking} is a file, not a folder; choose another "
                         "folder")
    if out.is_dir() and any(out.iterdir()) and not (out / GROUND_TRUTH).is_file():
        raise ValueError(f"{out}: holds files no synthetic database wrote (no {GROUND_TRUTH}); choose an empty or new "
                         "folder")


def _write(out: Path, fmt: str, clips: int, subjects: int, seed: int, frames: int, labelled_not_moved: float,
           moved_not_labelled: float, writer: Writer, prof) -> None:
    """The database's files and its ground truth, into the empty folder ``out``."""
    style = STYLES[fmt]
    rng = np.random.default_rng([seed, 0x5E7])
    pool = distractor_pool(fmt)

    plan = _assign_emotions(clips, subjects, len(style.emotions))
    # Pass 1: each clip's prototype motion, from the clip's own generator.
    crngs = [np.random.default_rng([seed, 0xC11B, i]) for i in range(clips)]
    protos: list[list[motion.Plant]] = []
    levels: list[float | None] = []
    for i, (_, cls) in enumerate(plan):
        crng = crngs[i]
        proto = prototype(style.emotions[cls])
        side = None
        if proto.lateral and crng.random() < proto.lateral_share:
            side = "L" if crng.random() < 0.5 else "R"
        levels.append(prof.clip_level(crng))
        protos.append([motion.Plant(au, side if au in proto.lateral else None, prof.amplitude(crng, au, levels[i]))
                       for au in proto.aus])

    # Pass 2: the deliberate disagreements, on the first clips (in a seeded order) where some pool
    # AU lies away from everything the clip moves, so that the shares hold whatever the classes.
    def pick(n: int, moved: dict[int, motion.Plant]) -> dict[int, int]:
        got: dict[int, int] = {}
        for i in rng.permutation(clips).tolist():
            if len(got) >= n:
                break
            face = prof.face(plan[i][0])
            bumps = prof.bumps(face, protos[i] + ([moved[i]] if i in moved else []))
            choices = [a for a in pool if _far_from(face, a, bumps, min_sigma=prof.extra_sigma(a, levels[i]))]
            if choices:
                got[i] = int(choices[int(rng.integers(len(choices)))])
        return got

    n_mnl = round(moved_not_labelled * clips)
    n_lnm = round(labelled_not_moved * clips) if style.au_labels else 0
    moved_extra = {i: motion.Plant(au, None, prof.amplitude(rng, au, levels[i])) for i, au in pick(n_mnl, {}).items()}
    label_extra = pick(n_lnm, moved_extra)

    # Pass 3: render and label.
    synth: list[SynthClip] = []
    truths: list[dict] = []
    counters: dict[int, int] = {}
    for i, (subject, cls) in enumerate(plan):
        crng = crngs[i]
        emotion = style.emotions[cls]
        canon = labels.canonical(emotion)
        labelled_plants = protos[i]
        extra_moved = moved_extra.get(i)
        extra_label = label_extra.get(i)
        plants = labelled_plants + ([extra_moved] if extra_moved else [])
        rendered = prof.render(subject, plants, crng, frames)

        tokens = [(p.au, p.side, p.amplitude) for p in labelled_plants]
        if extra_label is not None:
            tokens.append((extra_label, None, prof.label_amplitude(crng, extra_label, levels[i])))
        au_text = _label(tokens, style, crng, prof.intensity) if style.au_labels else None
        first = int(crng.integers(*style.first_frame)) if style.first_frame[1] > style.first_frame[0] + 1 \
            else style.first_frame[0]
        counters[subject] = counters.get(subject, 0) + 1
        extra = {}
        if prof.framing == "cropped":
            extra["cropped"] = True  # a layout with a Cropped release's own names writes them (CASME II's)
        if fmt == "samm":
            extra["objective_class"] = _OBJECTIVE.get(canon, 7)
        elif fmt == "casme3":
            extra["objective_class"] = _ROMAN[_OBJECTIVE.get(canon, 7)]
        synth.append(SynthClip(
            subject=subject, index=counters[subject], frames=rendered.frames, first_frame=first,
            apex_offset=rendered.apex_offset, emotion=emotion, au_text=au_text, fps=style.fps, extra=extra,
            jpeg_quality=prof.jpeg_quality(rendered),
        ))
        truth = _truth(rendered, plants, labelled_plants, extra_moved, extra_label, tokens, style,
                       subject, emotion, first, len(rendered.frames), au_text)
        truths.append(prof.truth(truth, rendered, plants))

    ids = writer(out, fmt, synth)
    if len(ids) != len(truths):
        raise RuntimeError(f"the {fmt} writer returned {len(ids)} clip ids for {len(truths)} clips")
    for t, cid, sc in zip(truths, ids, synth, strict=True):
        # Writers may renumber frames (CAS(ME)^3 keeps clips of one stimulus folder apart): read back.
        shift = sc.onset - t["onset"]
        t.update(clip_id=cid, onset=sc.onset, apex=sc.apex, offset=sc.offset)
        for b in t.get("blinks", []):
            b["frames"] = [f + shift for f in b["frames"]]
            b["closed"] = [f + shift for f in b["closed"]]
    doc = {
        "format": fmt,
        "seed": seed,
        "frames": frames,
        "subjects": subjects,
        **prof.doc(),
        "shares": {"labelled_not_moved": labelled_not_moved, "moved_not_labelled": moved_not_labelled},
        "prototypes": {labels.canonical(e): list(prototype(e).aus) for e in style.emotions},
        "distractor_pool": list(pool),
        "clips": [{"clip_id": t.pop("clip_id"), **t} for t in truths],
    }
    doc["entries"] = sorted({p.name for p in out.iterdir()} | {GROUND_TRUTH})  # what may be replaced by a later synth
    write_json(out / GROUND_TRUTH, doc, indent=1, ensure_ascii=False)


def _truth(rendered: motion.RenderedClip, plants: list[motion.Plant], labelled_plants: list[motion.Plant],
           extra_moved: motion.Plant | None, extra_label: int | None, tokens, style: Style, subject: int,
           emotion: str, first: int, n: int, au_text: str | None) -> dict:
    planted = []
    for p in plants:
        bs = [b for b in rendered.bumps if b.au == p.au and b.side == p.side]
        planted.append({
            "au": p.au,
            "side": p.side,
            "amplitude_px": _r(p.amplitude, 3),
            "regions": [b.region for b in bs],
            "direction": [_r(v) for v in bs[0].vector] if bs else [0.0, 0.0],  # first region's
            "direction_by_region": {b.region: [_r(v) for v in b.vector] for b in bs},
            "centres": {b.region: [_r(v, 2) for v in b.centre] for b in bs},
            "sigma_px": {b.region: [_r(b.sigma, 3), _r(b.sigma_y, 3)] for b in bs},  # (x, y) widths
            "labelled": style.au_labels and p in labelled_plants,
        })
    mnl = []
    if extra_moved is not None:
        mnl.append({"au": extra_moved.au, "side": extra_moved.side,
                    "regions": [r.name for r in facs.regions_for(extra_moved.au, extra_moved.side)]})
    tx, ty, rot = rendered.head[rendered.apex_offset][:3]
    return {
        "clip_id": None,
        "subject": subject,
        "emotion": emotion,
        "emotion_canonical": labels.canonical(emotion),
        "onset": first,
        "apex": first + rendered.apex_offset,
        "offset": first + n - 1,
        "au_text": au_text,
        "planted": planted,
        "labelled": [f"{side or ''}{au}" for au, side, _ in tokens] if style.au_labels else [],
        "labelled_not_moved": [extra_label] if extra_label is not None else [],
        "moved_not_labelled": mnl,
        "region_motion": {k: [_r(v[0]), _r(v[1])]
                          for k, v in motion.region_motion(rendered.face, rendered.field).items()},
        "noise_sigma": _r(rendered.noise_sigma, 3),
        "head": {"centre": [_r(v, 2) for v in rendered.head_centre],
                 "apex": {"tx": _r(tx), "ty": _r(ty), "rotation_deg": _r(rot)}},
    }
