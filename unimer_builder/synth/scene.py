"""The hard profile's renderer: a real face in a 640x480 frame, posed, moving, blinking, flickering.

Geometry, from the identity's photo to a frame (all in one resampling of the photo):

* *face coordinates* (:mod:`.identities`): eyes level, inter-ocular distance 100 px. Planted AU motion is a
  field ``g`` of Gaussian displacement bumps there (as in :mod:`.motion`), shown at ``p(t) g``: unlike the
  default profile's first-order backward warp, the photo point ``u`` is drawn exactly at ``u + p(t) g(u)``,
  so that the truth at a landmark holds at macro amplitudes too; a bump is
  widened where its amplitude would fold the warp (``amplitude / (sigma sqrt(e)) <= MAX_STRAIN``), so that
  macro motion stays a smooth, invertible deformation (lips and lids never cross).
* *blinks* close the upper lids over the eyes: the lid margin moves down by a share of the eye opening,
  the skin above it follows with a fall-off, the eye below the new margin is covered (an occlusion, as
  in a real blink); the lower lid does not move.
* the *pose* (per subject session, varied per clip) maps face coordinates into the frame: a yaw turn as a
  perspective warp of the face plane, a roll, a scale and a position off the frame centre.
* *head motion* (per clip, zero at the onset): a similarity (translation of a few px, roll up to
  ``MAX_HEAD_DEG``, scale change up to ``MAX_HEAD_SCALE``) about the face centre in the frame.
* optionally the frames *cut to the face* (:func:`crop_to_face`), as the databases' ``Cropped`` releases store them.

Appearance: the face is cut out with a feathered ellipse and laid over a static synthetic wall; a fixed
colour balance, gain and gamma per subject; per-frame illumination flicker (gain and offset); Gaussian
sensor noise that grows with brightness; grey or colour frames; JPEG compression at the clip's quality
(applied by the layout writer). All randomness comes from generators the caller passes.

Truth is reported at the onset pose in two scales: *frame px* (displacement in the frame, image axes)
and *crop px* (what the builder's 224 px crop, eyes at an inter-ocular distance of 0.36 of the side,
should measure, crop axes: roll removed), both first-order maps of the face-coordinate displacement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from .. import facs
from ..face import eye_centres, interocular, similarity_from_eyes
from . import motion
from .identities import FACE_IOD, FACE_SIZE, Identity

FRAME_W, FRAME_H = 640, 480
CROP_SIZE = 224  # the builder's default crop
CROP_IOD = 0.36 * CROP_SIZE  # inter-ocular distance in that crop, px
CROP_PER_FACE = CROP_IOD / FACE_IOD  # nominal crop px per face-coordinate px (frontal pose)

MAX_STRAIN = 0.4  # largest displacement gradient of one bump (1 would fold the warp)
EXPRESSION_ITERATIONS = 8  # fixed-point steps inverting the forward expression warp
YAW_DISTANCE = 6.0 * FACE_IOD  # camera distance of the face plane for the yaw perspective, face px
FRAME_IOD = (60.0, 100.0)  # inter-ocular distance of a session's face in the frame, px
MAX_UPSCALE = 1.6  # a face is never drawn larger than this many times its source size
SESSION_ROLL, SESSION_YAW = 8.0, 15.0  # |degrees| of a subject's session pose
CLIP_ROLL, CLIP_YAW, CLIP_SCALE, CLIP_SHIFT = 2.0, 3.0, 0.03, 12.0  # per-clip pose variation
MAX_HEAD_PX, MAX_HEAD_DEG, MAX_HEAD_SCALE = 4.0, 2.5, 0.02  # head motion during a clip
BLINK_SHARE = 0.3  # clips with a blink
JPEG_QUALITY = (75, 95)
NOISE_SIGMA = (1.0, 3.5)  # grey levels at mid brightness
FLICKER_GAIN, FLICKER_OFFSET = (0.002, 0.015), (0.2, 1.5)  # per-frame std: gain share, grey levels
GREY_SHARE = 0.3  # subjects filmed in grey (SAMM: every subject)
ELLIPSE = (1.55, 1.95, 0.12)  # head-and-neck cut-out: half axes and downward shift of the centre, IOD
MOUTH_INSIDE = 0.35  # brightness share of the inside of parted lips
BLINK_FOLD = 0.12  # fall-off of the lid skin above a closing margin, share of the IOD
# a Cropped release's box round the face: a margin (negative: into the face) and the forehead above the brows, IOD
CROPPED_MARGIN, CROPPED_FOREHEAD = (-0.05, 0.1), (0.0, 0.4)

# How far each region family can move, as a share of a clip's macro amplitude (lids and nose move less).
REACH: dict[str, float] = {"upper_lid": 0.35, "lower_lid": 0.4, "nose": 0.6, "glabella": 0.7}

EYES = {"R": (36, 37, 38, 39, 40, 41), "L": (42, 43, 44, 45, 46, 47)}  # corner, upper, upper, corner, lower, lower


def reach(au: int) -> float:
    fams = facs.AUS[au].regions
    return min((REACH.get(f, 1.0) for f in fams), default=1.0)


# --- pose -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Pose:
    position: tuple[float, float]  # frame px where the face centre (mean landmark) lands
    scale: float  # frame px per face px (before the yaw foreshortening)
    roll_deg: float  # positive: counter-clockwise as displayed
    yaw_deg: float  # positive: the subject's left side of the face turns away


def pose_matrix(identity: Identity, pose: Pose) -> np.ndarray:
    """3x3 homography from face coordinates into the frame."""
    cx, cy = identity.centre
    t0 = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], float)
    th = math.radians(pose.yaw_deg)
    yaw = np.array([[math.cos(th), 0, 0], [0, 1, 0], [math.sin(th) / YAW_DISTANCE, 0, 1]], float)
    r = math.radians(pose.roll_deg)
    s = pose.scale
    sim = np.array([[s * math.cos(r), s * math.sin(r), pose.position[0]],
                    [-s * math.sin(r), s * math.cos(r), pose.position[1]], [0, 0, 1]], float)
    return sim @ yaw @ t0


def apply_h(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.asarray(pts, float).reshape(-1, 2)
    q = np.c_[p, np.ones(len(p))] @ h.T
    return q[:, :2] / q[:, 2:3]


def jacobian(h: np.ndarray, pt: Sequence[float]) -> np.ndarray:
    """2x2 derivative of the homography ``h`` at ``pt``."""
    x, y = float(pt[0]), float(pt[1])
    w = h[2, 0] * x + h[2, 1] * y + h[2, 2]
    u = h[0, 0] * x + h[0, 1] * y + h[0, 2]
    v = h[1, 0] * x + h[1, 1] * y + h[1, 2]
    return np.array([[h[0, 0] * w - u * h[2, 0], h[0, 1] * w - u * h[2, 1]],
                     [h[1, 0] * w - v * h[2, 0], h[1, 1] * w - v * h[2, 1]]]) / (w * w)


def head_matrix(tx: float, ty: float, rot_deg: float, scale: float, centre: tuple[float, float]) -> np.ndarray:
    """3x3 forward similarity of the head: rotate and scale about ``centre``, then translate."""
    m = cv2.getRotationMatrix2D(centre, rot_deg, 1.0 + scale)
    m[0, 2] += tx
    m[1, 2] += ty
    return np.vstack([m, [0, 0, 1]])


# --- the subject's session ------------------------------------------------------------------------

@dataclass(frozen=True)
class Session:
    """What stays fixed for one subject: face, wall, camera colour, light, session pose."""

    subject: int
    identity: Identity
    pose: Pose
    grey: bool
    colour_gain: tuple[float, float, float]  # B, G, R white balance
    gain: float
    bias: float
    gamma: float
    background: np.ndarray = field(repr=False)  # FRAME_H x FRAME_W x 3 float32


def _wall(rng: np.random.Generator) -> np.ndarray:
    """A static, lit wall: a colour, a smooth light gradient and a soft low-frequency texture."""
    base = np.array([rng.uniform(120, 215)] * 3) + rng.uniform(-18, 18, 3)
    ys, xs = np.mgrid[0:FRAME_H, 0:FRAME_W].astype(np.float32)
    gx, gy = rng.uniform(-40, 40), rng.uniform(-30, 30)
    light = gx * (xs / FRAME_W - 0.5) + gy * (ys / FRAME_H - 0.5)
    tex = cv2.resize(rng.standard_normal((12, 16)).astype(np.float32), (FRAME_W, FRAME_H),
                     interpolation=cv2.INTER_CUBIC) * np.float32(rng.uniform(3, 10))
    fine = cv2.GaussianBlur(rng.standard_normal((FRAME_H, FRAME_W)).astype(np.float32), (0, 0), 1.2) * np.float32(2.0)
    wall = (light + tex + fine)[..., None] + base.astype(np.float32)[None, None, :]
    return np.clip(wall, 0, 255).astype(np.float32)


def session(subject: int, identity: Identity, seed: int, always_grey: bool = False) -> Session:
    """Subject ``subject``'s session, a pure function of its arguments."""
    rng = np.random.default_rng([seed, 0x5E55, subject])
    top = min(FRAME_IOD[1], MAX_UPSCALE * identity.source_iod)
    iod = rng.uniform(min(FRAME_IOD[0], top), top)
    scale = iod / identity.interocular
    pose = Pose(position=(float(rng.uniform(0.33, 0.67) * FRAME_W), float(rng.uniform(0.42, 0.58) * FRAME_H)),
                scale=float(scale), roll_deg=float(rng.uniform(-SESSION_ROLL, SESSION_ROLL)),
                yaw_deg=float(rng.uniform(-SESSION_YAW, SESSION_YAW)))
    grey = bool(always_grey or rng.random() < GREY_SHARE)
    colour_gain = tuple(float(v) for v in rng.uniform(0.88, 1.12, 3))
    gain, bias, gamma = float(rng.uniform(0.8, 1.15)), float(rng.uniform(-20, 15)), float(rng.uniform(0.8, 1.25))
    return Session(subject, identity, pose, grey, colour_gain, gain, bias, gamma, _wall(rng))


def clip_pose(s: Session, rng: np.random.Generator) -> Pose:
    """The session pose varied for one clip, kept inside the frame."""
    p = s.pose
    pose = Pose(position=(p.position[0] + float(rng.uniform(-CLIP_SHIFT, CLIP_SHIFT)),
                          p.position[1] + float(rng.uniform(-CLIP_SHIFT, CLIP_SHIFT))),
                scale=p.scale * float(1 + rng.uniform(-CLIP_SCALE, CLIP_SCALE)),
                roll_deg=p.roll_deg + float(rng.uniform(-CLIP_ROLL, CLIP_ROLL)),
                yaw_deg=p.yaw_deg + float(rng.uniform(-CLIP_YAW, CLIP_YAW)))
    # Keep the landmarks and a margin of 0.5 IOD inside the frame.
    pts = apply_h(pose_matrix(s.identity, pose), s.identity.landmarks)
    margin = 0.5 * pose.scale * FACE_IOD
    dx = max(0.0, margin - pts[:, 0].min()) - max(0.0, pts[:, 0].max() - (FRAME_W - 1 - margin))
    dy = max(0.0, margin - pts[:, 1].min()) - max(0.0, pts[:, 1].max() - (FRAME_H - 1 - margin))
    return replace(pose, position=(pose.position[0] + dx, pose.position[1] + dy))


# --- planted motion -------------------------------------------------------------------------------

def widen(bumps: Sequence[motion.Bump]) -> list[motion.Bump]:
    """Bumps whose widths keep the warp fold-free: ``amplitude / (sigma sqrt(e)) <= MAX_STRAIN``."""
    need = 1.0 / (MAX_STRAIN * math.sqrt(math.e))
    return [replace(b, sigma=max(b.sigma, need * b.amplitude), sigma_y=max(b.sigma_y, need * b.amplitude))
            for b in bumps]


def bumps_for(identity: Identity, plants: Sequence[motion.Plant]) -> list[motion.Bump]:
    """The plants' bumps on ``identity``, widened; lip bumps moving away from the seam are one-sided."""
    lm = identity.landmarks
    corners = (float(min(lm[48, 0], lm[54, 0])), float(max(lm[48, 0], lm[54, 0])))
    return [OpeningBump(**vars(b), mouth=corners) if is_opening(b) else b
            for b in widen(motion.bumps_for(identity, plants))]


@dataclass(frozen=True)
class Blink:
    start: int  # frame index of the first moving frame
    closed: int  # first fully closed frame index
    end: int  # last moving frame index
    closure: float  # share of the eye opening the lids cover at the closed frames (0.4..1)
    profile: tuple[float, ...]  # closure share per frame (0 outside start..end)


def draw_blink(n: int, rng: np.random.Generator) -> Blink | None:
    """A blink at a random time of an ``n``-frame clip: 1-2 frames closing, 0-2 closed, 2-3 opening."""
    close, hold, open_ = int(rng.integers(1, 3)), int(rng.integers(0, 3)), int(rng.integers(2, 4))
    length = close + hold + open_ + 1
    if length >= n:
        close, hold, open_ = 1, 0, max(1, n - 3)
        length = close + hold + open_ + 1
        if length >= n:
            return None
    start = int(rng.integers(1, n - length + 1))
    closure = float(rng.uniform(0.4, 1.0))
    prof = np.zeros(n)
    for k in range(1, close + 1):
        prof[start + k] = motion._smoothstep(np.array(k / close))
    prof[start + close:start + close + hold + 1] = 1.0
    for k in range(1, open_ + 1):
        prof[start + close + hold + k] = 1.0 - float(motion._smoothstep(np.array(k / (open_ + 1))))
    end = start + close + hold + open_
    return Blink(start, start + close, end, closure, tuple(float(closure * v) for v in prof))


def _eye_curves(lm: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x knots, upper-lid y, lower-lid y) of one eye, x ascending, from its six landmarks."""
    c0, u1, u2, c1, l1, l2 = (lm[i] for i in EYES[side])
    xs = np.array([c0[0], u1[0], u2[0], c1[0]])
    upper = np.array([c0[1], u1[1], u2[1], c1[1]])
    lower_x = np.array([c0[0], l2[0], l1[0], c1[0]])
    lower = np.array([c0[1], l2[1], l1[1], c1[1]])
    order = np.argsort(xs)
    lower_at = np.interp(xs[order], lower_x[np.argsort(lower_x)], lower[np.argsort(lower_x)])
    return xs[order], upper[order], lower_at


def blink_drop(lm: np.ndarray, side: str, closure: float) -> tuple[float, float, float]:
    """(x, y, drop) of the upper-lid region centre of ``side`` at ``closure``: how far the margin moves down."""
    xs, up, lo = _eye_curves(lm, side)
    region = facs.REGION_BY_NAME[f"upper_lid_{side}"]
    cx, cy = motion.region_centre(lm, region)
    opening = max(0.0, float(np.interp(cx, xs, lo) - np.interp(cx, xs, up)))
    return cx, cy, closure * opening


def _blink_back(ux: np.ndarray, uy: np.ndarray, lm: np.ndarray, closure: float, fold: float) -> np.ndarray:
    """Backward map (new uy) of a blink closing ``closure`` of both eyes, in face coordinates."""
    out = uy.copy()
    if closure <= 0:
        return out
    for side in ("R", "L"):
        xs, up, lo = _eye_curves(lm, side)
        mask = (ux > xs[0]) & (ux < xs[-1]) & (uy > up.min() - 4 * fold) & (uy < lo.max() + 2)
        if not mask.any():
            continue
        x, y = ux[mask].astype(np.float64), uy[mask].astype(np.float64)
        yu = np.interp(x, xs, up)
        drop = closure * np.maximum(0.0, np.interp(x, xs, lo) - yu)
        # Above the new margin yu + drop: solve y0 + drop * k(yu - y0) = y for y0 <= yu, where
        # k(s) = exp(-s^2 / 2 fold^2) is the fall-off of the lid skin above the margin. The iteration
        # contracts while drop < fold sqrt(e), which the eye opening always is.
        y0 = y - drop
        for _ in range(30):
            y0 = y - drop * np.exp(-0.5 * (np.maximum(yu - y0, 0.0) / fold) ** 2)
        out[mask] = np.where(y <= yu + drop, np.minimum(y0, yu), y)  # below: the uncovered eye, still
    return out


# --- lips parting ----------------------------------------------------------------------------------
# A smooth warp cannot open closed lips: two Gaussian bumps moving the lips apart overlap across the lip
# seam and cancel. A lip moving away from the seam (AU10's upper lip rising, AU16/25's lower lip falling)
# is instead a one-sided bump: the lip moves as a whole from the seam to its centre, the skin beyond
# follows with the Gaussian fall-off, nothing across the seam moves, and the gap that opens shows the seam
# stretched (the dark line between the lips widens, as a parting mouth shows its dark inside).

@dataclass(frozen=True)
class OpeningBump(motion.Bump):
    """A lip bump moving away from the seam (see :func:`is_opening`), with the mouth corners' x."""

    mouth: tuple[float, float] = (0.0, 0.0)


def is_opening(b: motion.Bump) -> bool:
    fam = facs.REGION_BY_NAME[b.region].family
    return (fam == "upper_lip" and b.vector[1] < 0) or (fam == "lower_lip" and b.vector[1] > 0)


def seam_curve(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x knots, y) of the line between the lips: midway between the inner upper and inner lower lip."""
    upper = lm[[60, 61, 62, 63, 64]]
    lower = lm[[60, 67, 66, 65, 64]]
    mid = (upper + lower) / 2
    order = np.argsort(mid[:, 0])
    return mid[order, 0], mid[order, 1]


def _one_sided(b: motion.Bump, x: np.ndarray, y: np.ndarray, seam_y: np.ndarray) -> np.ndarray:
    """Share (0..1) of an opening bump's amplitude at face points: 1 between the seam and the bump centre,
    the Gaussian fall-off beyond the centre, 0 across the seam; the lips part most at the middle and not
    at all at the mouth corners (``b.mouth``: the corners' x)."""
    left, right = b.mouth
    half = max((right - left) / 2, 1.0)
    gx = np.exp(-0.5 * ((x - b.centre[0]) / b.sigma) ** 2) * np.maximum(0.0, 1 - ((x - (left + right) / 2) / half) ** 2)
    up = b.vector[1] < 0  # the upper lip: its side of the seam is above it
    beyond = (y < b.centre[1]) if up else (y > b.centre[1])
    own_side = (y <= seam_y) if up else (y >= seam_y)
    gy = np.where(beyond, np.exp(-0.5 * ((y - b.centre[1]) / b.sigma_y) ** 2), 1.0)
    return np.where(own_side, gx * gy, 0.0)


def opening_field(shape: tuple[int, int], bumps: Sequence[motion.Bump], lm: np.ndarray) -> np.ndarray:
    """The opening bumps' forward displacement on a face-coordinate grid (HxWx2 float32)."""
    h, w = shape
    out = np.zeros((h, w, 2), np.float32)
    if not bumps:
        return out
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    sx, sy = seam_curve(lm)
    seam_y = np.interp(xs, sx, sy)
    for b in bumps:
        out[..., 1] += (b.amplitude * b.vector[1] * _one_sided(b, xs, ys, seam_y)).astype(np.float32)
    return out


def _opening_back(x: np.ndarray, y: np.ndarray, bumps: Sequence[motion.Bump], lm: np.ndarray,
                  share: float) -> np.ndarray:
    """The photo point's y that the opening bumps, at ``share`` of their amplitude, move to (x, y)."""
    if not bumps or share == 0:
        return y
    # Only points the opening bumps reach (4 widths beyond their centres, plus the gap) change.
    reach_x = [(b.centre[0] - 4 * b.sigma, b.centre[0] + 4 * b.sigma) for b in bumps]
    reach_y = [(b.centre[1] - 4 * b.sigma_y - b.amplitude, b.centre[1] + 4 * b.sigma_y + b.amplitude) for b in bumps]
    near = ((x > min(r[0] for r in reach_x)) & (x < max(r[1] for r in reach_x))
            & (y > min(r[0] for r in reach_y)) & (y < max(r[1] for r in reach_y)))
    if not near.any():
        return y
    out = y.copy()
    out[near] = _opening_back_at(x[near], y[near], bumps, lm, share)
    return out


def _opening_back_at(x: np.ndarray, y: np.ndarray, bumps: Sequence[motion.Bump], lm: np.ndarray,
                     share: float) -> np.ndarray:
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    sx, sy = seam_curve(lm)
    seam_y = np.interp(x64, sx, sy)

    def shift(y0: np.ndarray) -> np.ndarray:  # forward vertical displacement of photo points y0 (x fixed)
        return sum(share * b.amplitude * b.vector[1] * _one_sided(b, x64, y0, seam_y) for b in bumps)

    top = shift(seam_y - 1e-6)  # how far the upper lip's seam edge moves (<= 0)
    bottom = shift(seam_y + 1e-6)  # and the lower lip's (>= 0)
    y0 = y64.copy()
    for _ in range(EXPRESSION_ITERATIONS + 4):  # contraction: the fall-off's gradient stays under MAX_STRAIN
        y0 = y64 - shift(np.where(y64 <= seam_y + top, np.minimum(y0, seam_y - 1e-6), np.maximum(y0, seam_y + 1e-6)))
    gap = (y64 > seam_y + top) & (y64 < seam_y + bottom)
    return np.where(gap, seam_y, y0).astype(np.float32)


def mouth_gap(x: np.ndarray, y: np.ndarray, bumps: Sequence[motion.Bump], lm: np.ndarray, share: float) -> np.ndarray:
    """True where points (x, y), already moved back by the two-sided bumps, lie between the parted lips."""
    if not bumps or share == 0:
        return np.zeros(x.shape, bool)
    x64 = x.astype(np.float64)
    sx, sy = seam_curve(lm)
    seam_y = np.interp(x64, sx, sy)
    top = sum(share * b.amplitude * b.vector[1] * _one_sided(b, x64, seam_y - 1e-6, seam_y) for b in bumps)
    bottom = sum(share * b.amplitude * b.vector[1] * _one_sided(b, x64, seam_y + 1e-6, seam_y) for b in bumps)
    return (y > seam_y + top) & (y < seam_y + bottom)


def apex_field(identity: Identity, bumps: Sequence[motion.Bump]) -> tuple[np.ndarray, np.ndarray, list[motion.Bump]]:
    """(forward displacement of every bump, that of the two-sided bumps alone, the opening bumps) on the
    face-coordinate canvas at the apex."""
    openings = [b for b in bumps if is_opening(b)]
    shape = (FACE_SIZE[1], FACE_SIZE[0])
    smooth = motion.displacement_field(shape, [b for b in bumps if not is_opening(b)])
    return smooth + opening_field(shape, openings, identity.landmarks.astype(np.float64)), smooth, openings


# --- rendering ------------------------------------------------------------------------------------

@dataclass
class HardClip:
    frames: list[np.ndarray]  # uint8, grey (HxW) or BGR (HxWx3)
    apex_offset: int
    profile: np.ndarray  # p(t)
    bumps: list[motion.Bump]  # face coordinates
    field: np.ndarray  # face-coordinate forward displacement at the apex (FACE_SIZE, 2), every bump
    head: list[tuple[float, float, float, float]]  # per frame (tx, ty, rotation_deg, scale change)
    head_centre: tuple[float, float]  # frame px
    noise_sigma: float
    face: Identity = field(repr=False)
    session: Session = field(repr=False)
    pose: Pose
    blink: Blink | None = None
    jpeg_quality: int = 95
    flicker: list[tuple[float, float]] = field(default_factory=list)  # per frame (gain, offset)
    smooth: np.ndarray | None = None  # the part of ``field`` from two-sided bumps (None: all of it)
    openings: list[motion.Bump] = field(default_factory=list)  # one-sided lip bumps (is_opening)
    box: tuple[int, int, int, int] | None = None  # (x0, y0, x1, y1) of the frame the frames were cut to (crop_to_face)

    @property
    def pose_h(self) -> np.ndarray:
        return pose_matrix(self.face, self.pose)

    def crop_matrix(self) -> np.ndarray:
        """2x3 frame -> crop similarity the builder's eye alignment gives on the onset frame."""
        lm = apply_h(self.pose_h, self.face.landmarks)
        return similarity_from_eyes(*eye_centres(lm), CROP_SIZE)

    def to_frame(self, face_pt: Sequence[float], face_vec: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frame point, frame displacement, crop displacement) of a face-coordinate displacement at a point."""
        h = self.pose_h
        p = apply_h(h, [face_pt])[0]
        d = jacobian(h, face_pt) @ np.asarray(face_vec, float)
        return p, d, self.crop_matrix()[:, :2] @ d

    def field_at(self, face_pts) -> np.ndarray:
        """The planted apex displacement (Nx2, face px, overlapping bumps summed) at face-coordinate points."""
        pts = np.asarray(face_pts, np.float32).reshape(-1, 2)
        return _sample(self.field, pts[:, 0], pts[:, 1]).astype(np.float64)

    def frame_iod(self) -> float:
        return interocular(apply_h(self.pose_h, self.face.landmarks))

    def face_coords(self, t: int, xy: np.ndarray, with_head: bool = True) -> np.ndarray:
        """Face coordinates of the photo point frame ``t`` shows at frame points ``xy`` (Nx2)."""
        pts = np.asarray(xy, float).reshape(-1, 2)
        u = apply_h(np.linalg.inv(self._frame_h(t, with_head)), pts)
        return self._expression_back(t, u[:, 0].astype(np.float32), u[:, 1].astype(np.float32))

    def _frame_h(self, t: int, with_head: bool = True) -> np.ndarray:
        m = head_matrix(*self.head[t], self.head_centre) if with_head else np.eye(3)
        return m @ self.pose_h

    def mouth_open(self, t: int, ux: np.ndarray, uy: np.ndarray, src: np.ndarray) -> np.ndarray | None:
        """Mask of frame points (face coordinates ``ux, uy`` before the expression, ``src`` after) that
        show the inside of parted lips at frame ``t``; None when no lips part."""
        share = float(self.profile[t])
        if not self.openings or share == 0:
            return None
        smooth = self.field if self.smooth is None else self.smooth
        g = _sample(smooth, src[..., 0], src[..., 1])
        return mouth_gap(src[..., 0], uy - share * g[..., 1], self.openings,
                         self.face.landmarks.astype(np.float64), share)

    def _expression_back(self, t: int, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
        share = float(self.profile[t])
        closure = self.blink.profile[t] if self.blink is not None else 0.0
        lm = self.face.landmarks.astype(np.float64)
        if closure > 0:
            # The lids close where the expression has moved them.
            lm_moved = lm + share * _sample(self.field, lm[:, 0].astype(np.float32), lm[:, 1].astype(np.float32))
            uy = _blink_back(ux, uy, lm_moved, closure, BLINK_FOLD * FACE_IOD).astype(np.float32)
        # Photo point u0 shows at u0 + p g(u0) (g is a displacement of the neutral face, so a landmark
        # moves exactly by p g there): solve u0 = u - p g(u0) by iteration, a contraction while the
        # field's gradient stays under 1 (scene.widen keeps each bump's under MAX_STRAIN).
        smooth = self.field if self.smooth is None else self.smooth
        sx, sy = ux, uy
        for _ in range(EXPRESSION_ITERATIONS if share else 0):
            g = _sample(smooth, sx, sy)
            sx = ux - share * g[..., 0]
            sy = _opening_back(sx, uy - share * g[..., 1], self.openings, lm, share)
        return np.stack([sx, sy], -1)


def _sample(f: np.ndarray, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
    """Bilinear samples of a HxWx2 field at float coordinates (zero outside)."""
    shape = ux.shape
    flat = (1, -1) if ux.ndim != 2 else shape  # remap maps must stay under 32767 px a side
    mx = np.ascontiguousarray(ux.reshape(flat).astype(np.float32))
    my = np.ascontiguousarray(uy.reshape(flat).astype(np.float32))
    out = cv2.remap(f, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(*shape, 2)


def _ellipse_alpha(ux: np.ndarray, uy: np.ndarray, identity: Identity) -> np.ndarray:
    """Feathered head-and-neck ellipse in face coordinates: 1 inside, 0 outside."""
    cx, cy = identity.centre
    ax, ay = ELLIPSE[0] * FACE_IOD, ELLIPSE[1] * FACE_IOD
    r = np.sqrt(((ux - cx) / ax) ** 2 + ((uy - (cy + ELLIPSE[2] * FACE_IOD)) / ay) ** 2)
    return np.clip((1.0 - r) / 0.1, 0.0, 1.0).astype(np.float32)


def render_clip(s: Session, plants: Sequence[motion.Plant], rng: np.random.Generator, *,
                frames: int = 14, apex: int | None = None, residual: float = 0.15,
                blinks: bool = True, head_motion: bool = True) -> HardClip:
    """One clip of subject session ``s`` showing ``plants`` (face-coordinate amplitudes).

    Consumes ``rng`` in a fixed order, so equal generators give equal clips.
    """
    if frames < 3:
        raise ValueError(f"a clip needs at least 3 frames, got {frames}")
    identity = s.identity
    lo, hi = int(math.ceil(0.35 * (frames - 1))), int(math.floor(0.65 * (frames - 1)))
    apex_draw = int(rng.integers(lo, max(lo, hi) + 1))
    apex = apex_draw if apex is None else int(apex)
    if not 0 < apex < frames - 1:
        raise ValueError(f"apex index {apex} must lie strictly inside 0..{frames - 1}")
    pose = clip_pose(s, rng)
    noise = float(rng.uniform(*NOISE_SIGMA))
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    head = _head_motion(frames, rng)  # drawn either way: switching a part off changes nothing else
    if not head_motion:
        head = [(0.0, 0.0, 0.0, 0.0)] * frames
    blink = draw_blink(frames, rng) if rng.random() < BLINK_SHARE else None
    if not blinks:
        blink = None
    fg, fo = float(rng.uniform(*FLICKER_GAIN)), float(rng.uniform(*FLICKER_OFFSET))
    flicker = [(float(1 + fg * rng.standard_normal()), float(fo * rng.standard_normal())) for _ in range(frames)]

    bumps = bumps_for(identity, plants)
    total, smooth, openings = apex_field(identity, bumps)
    profile = motion.time_profile(frames, apex, residual)
    centre = tuple(float(v) for v in apply_h(pose_matrix(identity, pose), [identity.centre])[0])
    clip = HardClip([], apex, profile, bumps, total, head, centre, noise, identity, s, pose, blink, quality, flicker,
                    smooth, openings)

    # Pixels the head can cover in any frame: the ellipse's box under every frame's pose, plus a margin.
    x0, y0, x1, y1 = _face_box(clip)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    pts = np.stack([xs.ravel(), ys.ravel()], 1)
    src_img = identity.image.astype(np.float32)
    a = identity.face_to_image
    for t in range(frames):
        u = apply_h(np.linalg.inv(clip._frame_h(t)), pts)
        ux = u[:, 0].reshape(xs.shape).astype(np.float32)
        uy = u[:, 1].reshape(xs.shape).astype(np.float32)
        alpha = _ellipse_alpha(ux, uy, identity)
        src = clip._expression_back(t, ux, uy)
        inside = clip.mouth_open(t, ux, uy, src)
        mx = (a[0, 0] * src[..., 0] + a[0, 1] * src[..., 1] + a[0, 2]).astype(np.float32)
        my = (a[1, 0] * src[..., 0] + a[1, 1] * src[..., 1] + a[1, 2]).astype(np.float32)
        face = cv2.remap(src_img, mx, my, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        if inside is not None:  # the dark inside of a parted mouth (the stretched seam, darkened)
            face[inside] *= np.float32(MOUTH_INSIDE)
        img = s.background.copy()
        img[y0:y1, x0:x1] = alpha[..., None] * face + (1 - alpha[..., None]) * img[y0:y1, x0:x1]
        clip.frames.append(_photometric(img, s, flicker[t], noise, rng))
    return clip


def crop_to_face(clip: HardClip, rng: np.random.Generator) -> HardClip:
    """``clip`` as a database's ``Cropped`` release stores it (CASME II's, SAMM's and SMIC's): every frame cut to
    one box round the onset's face, from the brows or a little above (``CROPPED_FOREHEAD``) to the chin and between
    the jaw's sides, with a margin of ``CROPPED_MARGIN`` IOD (from a little into the face to a little beyond); the
    head still moves inside it (up to ``MAX_HEAD_PX``), so the face touches or crosses the box's edge as in the
    releases (dlib finds these faces without the builder's widened search, ``face.detect_pad``: the box keeps the
    brows and jaw whole, bench/README.md section 5d). The box is in ``clip.box``."""
    lm = apply_h(clip.pose_h, clip.face.landmarks)
    iod = interocular(lm)
    m = float(rng.uniform(*CROPPED_MARGIN)) * iod
    forehead = float(rng.uniform(*CROPPED_FOREHEAD)) * iod
    x0, x1 = lm[:17, 0].min() - m, lm[:17, 0].max() + m
    y0, y1 = lm[17:27, 1].min() - forehead - m, lm[8, 1] + m
    h, w = clip.frames[0].shape[:2]
    box = (max(0, int(math.floor(x0))), max(0, int(math.floor(y0))), min(w, int(math.ceil(x1))), min(h, int(math.ceil(y1))))
    if box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"the face's box {box} lies outside the {w}x{h} frame: nothing to cut")
    frames = [np.ascontiguousarray(f[box[1]:box[3], box[0]:box[2]]) for f in clip.frames]
    return replace(clip, frames=frames, box=box)


def _face_box(clip: HardClip) -> tuple[int, int, int, int]:
    cx, cy = clip.face.centre
    ax, ay = (ELLIPSE[0] + 0.05) * FACE_IOD, (ELLIPSE[1] + 0.05) * FACE_IOD
    ring = np.array([[cx + ax * math.cos(k), cy + ELLIPSE[2] * FACE_IOD + ay * math.sin(k)]
                     for k in np.linspace(0, 2 * math.pi, 48, endpoint=False)])
    pts = np.concatenate([apply_h(clip._frame_h(t), ring) for t in range(len(clip.head))])
    x0, y0 = np.floor(pts.min(0)).astype(int) - 2
    x1, y1 = np.ceil(pts.max(0)).astype(int) + 3
    return max(0, x0), max(0, y0), min(FRAME_W, x1), min(FRAME_H, y1)


def _photometric(img: np.ndarray, s: Session, flicker: tuple[float, float], noise: float,
                 rng: np.random.Generator) -> np.ndarray:
    img = img * np.asarray(s.colour_gain, np.float32)[None, None, :]
    img = 255.0 * np.power(np.clip(img, 0, 255) / 255.0, s.gamma)
    img = (img - 128.0) * (s.gain * flicker[0]) + 128.0 + s.bias + flicker[1]
    if s.grey:
        img = cv2.cvtColor(np.clip(img, 0, 255).astype(np.float32), cv2.COLOR_BGR2GRAY)
    sigma = np.float32(noise) * np.sqrt(0.5 + np.clip(img, 0, 255) / 255.0)  # shot noise grows with light
    img = img + rng.standard_normal(img.shape, dtype=np.float32) * sigma
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _head_motion(n: int, rng: np.random.Generator) -> list[tuple[float, float, float, float]]:
    """Smooth head motion per frame, zero at the onset: (tx, ty, rotation_deg, scale change)."""
    t = np.arange(n, dtype=np.float64) / max(n - 1, 1)
    out = np.zeros((n, 4))
    limits = (MAX_HEAD_PX, MAX_HEAD_PX, MAX_HEAD_DEG, MAX_HEAD_SCALE)
    for k, limit in enumerate(limits):
        size = rng.uniform(0.1, 1.0) * limit  # largest excursion from the onset
        freq = rng.uniform(0.2, 1.0)  # cycles over the clip: drift and slow sway, no shake
        phase = rng.uniform(0, 2 * math.pi)
        out[:, k] = 0.5 * size * (np.sin(2 * math.pi * freq * t + phase) - math.sin(phase))
    return [tuple(float(v) for v in row) for row in out]
