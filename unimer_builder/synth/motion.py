"""Synthetic micro-expressions: a real face photo, one look per subject, and planted AU motion.

The base face is scikit-image's ``astronaut`` photo in grey, scaled and cropped into a
``FRAME_SIZE`` square frame; each subject is a deterministic variation of it (scale, shift, a
slight roll, brightness, contrast, gamma, shading and a fixed fine skin texture). dlib finds the
face and its 68 landmarks on every subject's base image, so the planted motion can be put exactly
where the builder's regions will look for it.

A clip plants AU motion as smooth Gaussian displacement bumps: for each planted ``(au, side)`` and
each of its regions (:func:`facs.regions_for`), a bump centred on the region (the mean of its
landmarks) moves along :func:`facs.expected_vector`. The displacement field ``g`` at the apex is
the sum of the bumps; frame ``t`` shows ``p(t) * g`` where ``p`` rises smoothly from 0 at the onset
to 1 at the apex and falls back to a small residual at the offset. Frames are rendered by
backward warping with ``cv2.remap`` (``map = x - p(t) g(x)``), so that the optical flow from the
onset to frame ``t`` is ``p(t) g`` up to second-order terms. A slight smooth rigid head jitter
(zero at the onset) and Gaussian sensor noise are added on top. All randomness comes from the
``numpy.random.Generator`` the caller passes, so a clip is a pure function of its arguments.

Sides are the subject's (FACS): ``L`` = the subject's left = the image's right.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .. import facs
from ..face import dlib_models, interocular

FRAME_SIZE = 288  # square frame, px
BASE_SCALE = 1.10  # astronaut photo -> frame scale before the subject's own scale (face ~100 px)
_PHOTO_FACE_CENTRE = (225.0, 127.0)  # centre of the face in the 512x512 astronaut photo
_FRAME_FACE_CENTRE = (144.0, 136.0)  # where that centre lands in the frame

# Bump width per region family, as a share of the inter-ocular distance (~47 px here -> 7-13 px);
# the smooth, weakly textured cheek gets the widest bump so that flow reaches it from its edges.
SIGMA_SHARE: dict[str, float] = {
    "brow_inner": 0.19, "brow_outer": 0.19, "glabella": 0.17, "upper_lid": 0.15, "lower_lid": 0.15,
    "cheek": 0.27, "nose": 0.19, "upper_lip": 0.18, "lip_corner": 0.18, "lower_lip": 0.18, "chin": 0.22,
}

# The lids are thin: their bumps are flat ellipses (vertical width as a share of the inter-ocular
# distance), so that a raised upper lid barely drags the lower lid 6 px below it along.
SIGMA_Y_SHARE: dict[str, float] = {"upper_lid": 0.07, "lower_lid": 0.07}

MAX_JITTER_PX = 0.6  # largest rigid translation from the onset, px
MAX_JITTER_DEG = 0.3  # largest rigid rotation from the onset, degrees


# --- face model -----------------------------------------------------------------------------------

def detect_landmarks(gray: np.ndarray, upsample: int = 0) -> np.ndarray | None:
    """68 dlib landmarks (float32, image x/y) of the largest face in ``gray``; ``None`` if no face."""
    detector, predictor = dlib_models()
    rects = detector(np.ascontiguousarray(gray), upsample)
    if len(rects) == 0:
        return None
    rect = max(rects, key=lambda r: r.width() * r.height())
    shape = predictor(np.ascontiguousarray(gray), rect)
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


@functools.lru_cache(maxsize=1)
def _photo() -> np.ndarray:
    from skimage import data

    rgb = data.astronaut()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


@dataclass(frozen=True)
class SubjectLook:
    """The appearance parameters of one synthetic subject."""

    scale: float
    shift: tuple[float, float]
    roll_deg: float
    gain: float  # contrast
    bias: float  # brightness, grey levels
    gamma: float
    shade: tuple[float, float]  # linear shading across the frame (x, y), grey levels edge to edge
    texture: float  # amplitude of the fixed fine skin texture, grey levels


class LandmarkFace:
    """A synthetic face's size and centre from its 68 ``landmarks`` (both generators' faces)."""

    landmarks: np.ndarray

    @property
    def interocular(self) -> float:
        return interocular(self.landmarks)

    @property
    def centre(self) -> tuple[float, float]:
        """Face centre (mean of the landmarks): the pivot of head motion."""
        c = self.landmarks.mean(0)
        return float(c[0]), float(c[1])


@dataclass(frozen=True)
class SubjectFace(LandmarkFace):
    subject: int
    look: SubjectLook
    image: np.ndarray  # FRAME_SIZE^2 float32 grey, the subject's noiseless neutral face
    landmarks: np.ndarray  # 68x2 float32 found by dlib on ``image``


def subject_look(subject: int) -> SubjectLook:
    """Deterministic appearance of subject ``subject`` (1-based); subject 1 is the photo as it is."""
    if subject == 1:
        return SubjectLook(1.0, (0.0, 0.0), 0.0, 1.0, 0.0, 1.0, (0.0, 0.0), 0.0)
    rng = np.random.default_rng([0x5EED, subject])
    return SubjectLook(
        scale=float(rng.uniform(0.92, 1.08)),
        shift=(float(rng.uniform(-6, 6)), float(rng.uniform(-5, 5))),
        roll_deg=float(rng.uniform(-3, 3)),
        gain=float(rng.uniform(0.85, 1.15)),
        bias=float(rng.uniform(-18, 18)),
        gamma=float(rng.uniform(0.8, 1.25)),
        shade=(float(rng.uniform(-20, 20)), float(rng.uniform(-12, 12))),
        texture=float(rng.uniform(2.0, 5.0)),
    )


def _render_look(subject: int, look: SubjectLook) -> np.ndarray:
    photo = _photo()
    m = cv2.getRotationMatrix2D(_PHOTO_FACE_CENTRE, look.roll_deg, BASE_SCALE * look.scale)
    m[0, 2] += _FRAME_FACE_CENTRE[0] + look.shift[0] - _PHOTO_FACE_CENTRE[0]
    m[1, 2] += _FRAME_FACE_CENTRE[1] + look.shift[1] - _PHOTO_FACE_CENTRE[1]
    img = cv2.warpAffine(photo, m, (FRAME_SIZE, FRAME_SIZE), flags=cv2.INTER_CUBIC,
                         borderMode=cv2.BORDER_REFLECT101)
    img = 255.0 * np.power(np.clip(img, 0, 255) / 255.0, look.gamma)
    img = (img - 128.0) * look.gain + 128.0 + look.bias
    ramp = np.linspace(-0.5, 0.5, FRAME_SIZE, dtype=np.float32)
    img += look.shade[0] * ramp[None, :] + look.shade[1] * ramp[:, None]
    if look.texture > 0:
        trng = np.random.default_rng([0x7E47, subject])
        tex = trng.standard_normal((FRAME_SIZE, FRAME_SIZE)).astype(np.float32)
        tex = cv2.GaussianBlur(tex, (0, 0), 0.8)
        tex *= look.texture / max(float(tex.std()), 1e-6)
        img += tex
    return np.clip(img, 0, 255).astype(np.float32)


@functools.lru_cache(maxsize=64)
def subject_face(subject: int) -> SubjectFace:
    """The subject's neutral face and its dlib landmarks (cached per process)."""
    if subject < 1:
        raise ValueError(f"subjects are numbered from 1, got {subject}")
    look = subject_look(subject)
    image = _render_look(subject, look)
    landmarks = detect_landmarks(np.round(image).astype(np.uint8))
    if landmarks is None:  # never seen for subjects 1..64; keep the generator total anyway
        look = SubjectLook(look.scale, (0.0, 0.0), 0.0, look.gain, look.bias, look.gamma, look.shade, look.texture)
        image = _render_look(subject, look)
        landmarks = detect_landmarks(np.round(image).astype(np.uint8), upsample=1)
        if landmarks is None:
            raise RuntimeError(f"dlib finds no face on synthetic subject {subject}")
    image.setflags(write=False)
    landmarks.setflags(write=False)
    return SubjectFace(subject, look, image, landmarks)


def region_centre(landmarks: np.ndarray, region: facs.RegionInfo) -> tuple[float, float]:
    c = np.asarray(landmarks, dtype=np.float64)[list(region.landmarks)].mean(0)
    return float(c[0]), float(c[1])


def region_sigma(face: SubjectFace, region: facs.RegionInfo) -> float:
    """Horizontal bump width of ``region``, px."""
    return SIGMA_SHARE.get(region.family, 0.16) * face.interocular


def region_sigma_y(face: SubjectFace, region: facs.RegionInfo) -> float:
    """Vertical bump width of ``region``, px (equal to the horizontal one except for the lids)."""
    return SIGMA_Y_SHARE.get(region.family, SIGMA_SHARE.get(region.family, 0.16)) * face.interocular


# --- planted motion -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plant:
    """One AU to plant: ``side`` is the subject's ``L``/``R`` or ``None`` for both sides."""

    au: int
    side: str | None = None
    amplitude: float = 1.5  # peak displacement at the apex, px


@dataclass(frozen=True)
class Bump:
    """One Gaussian displacement bump: a region of a planted AU."""

    au: int
    side: str | None
    region: str
    centre: tuple[float, float]
    sigma: float  # horizontal width, px
    sigma_y: float  # vertical width, px
    vector: tuple[float, float]  # unit image direction (x right, y down)
    amplitude: float  # px at the apex


@dataclass
class RenderedClip:
    frames: list[np.ndarray]  # uint8 grey, onset first
    apex_offset: int  # index of the apex in ``frames``
    profile: np.ndarray  # p(t) per frame: share of the apex displacement shown
    bumps: list[Bump]
    field: np.ndarray  # HxWx2 float32: the planted (non-rigid) displacement g at the apex
    head: list[tuple[float, float, float]]  # per frame (tx, ty, rotation_deg) about ``head_centre``
    head_centre: tuple[float, float]
    noise_sigma: float
    face: SubjectFace = field(repr=False)

    def rigid_at(self, t: int, points: np.ndarray) -> np.ndarray:
        """Displacement (Nx2) that frame ``t``'s head pose adds to image ``points`` (Nx2)."""
        m = _rigid_matrix(*self.head[t], self.head_centre)
        p = np.asarray(points, dtype=np.float64)
        return p @ m[:, :2].T + m[:, 2] - p

    def flow_at(self, t: int) -> np.ndarray:
        """The true onset -> frame ``t`` displacement (HxWx2, first order: planted + rigid)."""
        h, w = self.field.shape[:2]
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
        pts = np.stack([xs.ravel(), ys.ravel()], 1)
        rigid = self.rigid_at(t, pts).reshape(h, w, 2)
        return (self.profile[t] * self.field + rigid).astype(np.float32)


def region_motion(face: SubjectFace, field: np.ndarray, min_px: float = 0.05) -> dict[str, tuple[float, float]]:
    """Mean planted displacement (dx, dy) in a disc of 0.7 bump widths around every region centre,
    overlapping bumps included; regions that move less than ``min_px`` are left out."""
    h, w = field.shape[:2]
    out: dict[str, tuple[float, float]] = {}
    for region in facs.REGIONS:
        cx, cy = region_centre(face.landmarks, region)
        rx, ry = 0.7 * region_sigma(face, region), 0.7 * region_sigma_y(face, region)
        x0, x1 = max(0, int(cx - rx)), min(w, int(cx + rx) + 2)
        y0, y1 = max(0, int(cy - ry)), min(h, int(cy + ry) + 2)
        ys, xs = np.mgrid[y0:y1, x0:x1]
        inside = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2 <= 1.0
        if not inside.any():
            continue
        v = field[y0:y1, x0:x1][inside].mean(0)
        if float(np.hypot(v[0], v[1])) >= min_px:
            out[region.name] = (float(v[0]), float(v[1]))
    return out


def bumps_for(face: SubjectFace, plants: Sequence[Plant]) -> list[Bump]:
    out: list[Bump] = []
    for p in plants:
        for region in facs.regions_for(p.au, p.side):
            vec = facs.expected_vector(p.au, region)
            if vec == (0.0, 0.0):
                continue
            out.append(Bump(p.au, p.side, region.name, region_centre(face.landmarks, region),
                            region_sigma(face, region), region_sigma_y(face, region), vec, float(p.amplitude)))
    return out


def displacement_field(shape: tuple[int, int], bumps: Sequence[Bump]) -> np.ndarray:
    """Sum of the bumps' Gaussian displacements, HxWx2 float32 (image axes)."""
    h, w = shape
    g = np.zeros((h, w, 2), dtype=np.float32)
    xs = np.arange(w, dtype=np.float32)
    ys = np.arange(h, dtype=np.float32)
    for b in bumps:
        # Separable Gaussian, cut at 4 sigma: cheap and exact enough.
        rx, ry = int(math.ceil(4 * b.sigma)), int(math.ceil(4 * b.sigma_y))
        x0, x1 = max(0, int(b.centre[0]) - rx), min(w, int(b.centre[0]) + rx + 2)
        y0, y1 = max(0, int(b.centre[1]) - ry), min(h, int(b.centre[1]) + ry + 2)
        if x0 >= x1 or y0 >= y1:
            continue
        gx = np.exp(-0.5 * ((xs[x0:x1] - b.centre[0]) / b.sigma) ** 2)
        gy = np.exp(-0.5 * ((ys[y0:y1] - b.centre[1]) / b.sigma_y) ** 2)
        k = b.amplitude * np.outer(gy, gx)
        g[y0:y1, x0:x1, 0] += k * b.vector[0]
        g[y0:y1, x0:x1, 1] += k * b.vector[1]
    return g


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def time_profile(n: int, apex: int, residual: float = 0.15) -> np.ndarray:
    """Share of the apex displacement per frame: 0 at the onset, 1 at the apex, ``residual`` at the end."""
    t = np.arange(n, dtype=np.float64)
    rise = _smoothstep(t / max(apex, 1))
    fall = residual + (1.0 - residual) * (1.0 - _smoothstep((t - apex) / max(n - 1 - apex, 1)))
    p = np.where(t <= apex, rise, fall)
    p[0] = 0.0
    p[apex] = 1.0
    return p


def _rigid_matrix(tx: float, ty: float, rot_deg: float, centre: tuple[float, float]) -> np.ndarray:
    """2x3 forward rigid motion: rotate by ``rot_deg`` about ``centre``, then translate."""
    m = cv2.getRotationMatrix2D(centre, rot_deg, 1.0)
    m[0, 2] += tx
    m[1, 2] += ty
    return m


def head_jitter(n: int, rng: np.random.Generator, max_px: float = MAX_JITTER_PX,
                max_deg: float = MAX_JITTER_DEG) -> list[tuple[float, float, float]]:
    """Smooth rigid head motion per frame, zero at the onset: (tx, ty, rotation_deg)."""
    t = np.arange(n, dtype=np.float64) / max(n - 1, 1)
    out = np.zeros((n, 3))
    for k, limit in enumerate((max_px, max_px, max_deg)):
        freq = rng.uniform(0.3, 1.2)  # cycles over the clip: slow drift, no shake
        phase = rng.uniform(0, 2 * math.pi)
        amp = rng.uniform(0.25, 0.5) * limit  # |sin a - sin b| <= 2: stays within the limit
        out[:, k] = amp * (np.sin(2 * math.pi * freq * t + phase) - math.sin(phase))
    return [tuple(float(v) for v in row) for row in out]


def render_clip(
    subject: int,
    plants: Sequence[Plant],
    rng: np.random.Generator,
    *,
    frames: int = 14,
    apex: int | None = None,
    residual: float = 0.15,
    noise: float | None = None,
    jitter: bool = True,
) -> RenderedClip:
    """Frames (uint8 grey) of one clip of ``subject`` showing ``plants``.

    ``apex`` (an index into the frames) defaults to a random frame at 35-65 % of the clip; ``noise``
    (Gaussian sigma, grey levels) defaults to a random value in 1-2; ``jitter`` adds the rigid head
    motion. Consumes ``rng`` in a fixed order, so equal generators give equal clips.
    """
    if frames < 3:
        raise ValueError(f"a clip needs at least 3 frames, got {frames}")
    face = subject_face(subject)
    lo, hi = int(math.ceil(0.35 * (frames - 1))), int(math.floor(0.65 * (frames - 1)))
    apex_draw = int(rng.integers(lo, max(lo, hi) + 1))
    apex = apex_draw if apex is None else int(apex)
    if not 0 < apex < frames - 1:
        raise ValueError(f"apex index {apex} must lie strictly inside 0..{frames - 1}")
    noise_draw = float(rng.uniform(1.0, 2.0))
    noise = noise_draw if noise is None else float(noise)
    head = head_jitter(frames, rng)
    if not jitter:
        head = [(0.0, 0.0, 0.0)] * frames

    bumps = bumps_for(face, plants)
    h, w = face.image.shape
    g = displacement_field((h, w), bumps)
    profile = time_profile(frames, apex, residual)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    centre = face.centre
    out: list[np.ndarray] = []
    for t in range(frames):
        share = np.float32(profile[t])
        # Backward map: frame_t(x) = base(R_t^-1 (x - p_t g(x))); flow onset->t ~ p_t g + rigid_t.
        px = xs - share * g[..., 0]
        py = ys - share * g[..., 1]
        inv = cv2.invertAffineTransform(_rigid_matrix(*head[t], centre)).astype(np.float32)
        mx = (inv[0, 0] * px + inv[0, 1] * py + inv[0, 2]).astype(np.float32, copy=False)
        my = (inv[1, 0] * px + inv[1, 1] * py + inv[1, 2]).astype(np.float32, copy=False)
        img = cv2.remap(face.image, mx, my, interpolation=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
        img = img + rng.standard_normal(img.shape, dtype=np.float32) * np.float32(noise)
        out.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return RenderedClip(out, apex, profile, bumps, g, head, centre, noise, face)
