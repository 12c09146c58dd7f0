"""AU regions from landmarks, per-region motion statistics and the face's noise floor.

Every region of :data:`facs.REGIONS` is an ellipse around the mean of its landmarks (shifted where the
moving skin lies off the landmarks, e.g. the chin above the jaw outline), sized in inter-ocular
distances (IOD). Regions never overlap: a pixel inside several ellipses goes to the one whose centre
is nearest in normalised elliptical distance.

"Moved" is a statistic: ``z = (mean - floor) / spread``. The face outside every AU region (forehead,
temples, nose bridge, jaw sides; eyes and mouth opening excluded) is cut into square patches about
the size of a region, and each patch's mean flow magnitude is one sample of what still skin shows in
this very clip (noise, compression, residual head motion). Spill from a strong AU raises some
patches, never lowers them, so ``floor`` is their 30th percentile, and
``spread = 0.57 * max(floor, 2 * (floor - 5th percentile))``: flow noise on still skin varies from
patch to patch in proportion to its level (a ratio test), widened when the patches disagree more.

Measured on the synthetic generator (60 clips, 4 subjects, sensor noise 1-3.5 grey levels, head
jitter, planted bumps of 0.4-1.5 frame px, TV-L1 "fast" at 224 px): regions with no planted motion
z p95 1.9, p99 3.1, max 4.2; regions with >= 0.5 px planted motion z min 5.5, p5 7.7, median ~30.
The 0.57 was set so that still regions stay under ``z_weak = 2`` 95 % of the time; the median/MAD
alternative separated worse (moved p5 6.4 at the same still p95).

Every number above is a setting of :class:`~unimer_builder.config.RegionConfig` (``cfg.regions``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import facs
from .config import RegionConfig
from .face import interocular
from .records import RegionStats

DEFAULT = RegionConfig()

def region_geometry(landmarks: np.ndarray, cfg: RegionConfig = DEFAULT
                    ) -> dict[str, tuple[float, float, float, float]]:
    """``{region name: (cx, cy, rx, ry)}`` in the landmarks' pixel units (shapes: ``cfg.shapes``)."""
    lm = np.asarray(landmarks, float)
    iod = interocular(lm)
    shape = cfg.shape()
    out = {}
    for r in facs.REGIONS:
        rx, ry, dxo, dy = shape[r.family]
        c = lm[list(r.landmarks)].mean(axis=0)
        c = c + np.array([dxo * facs.out_sign(r) * iod, dy * iod])
        out[r.name] = (float(c[0]), float(c[1]), rx * iod, ry * iod)
    return out


def region_centres(landmarks: np.ndarray, cfg: RegionConfig = DEFAULT) -> dict[str, np.ndarray]:
    return {k: np.array(v[:2]) for k, v in region_geometry(landmarks, cfg).items()}


def head_error_shares(landmarks: np.ndarray, reach: float, least: float, cfg: RegionConfig = DEFAULT
                      ) -> dict[str, float]:
    """Each region's share of the head-removal error: its centre's distance from the nose bridge
    (landmark 27, amid the skin the head is fitted on) over ``reach`` IOD, between ``least`` and 1."""
    iod = interocular(landmarks)
    anchor = np.asarray(landmarks, float)[27]
    return {n: float(min(1.0, max(least, np.hypot(*(c - anchor)) / (reach * iod))))
            for n, c in region_centres(landmarks, cfg).items()}


def region_masks(landmarks: np.ndarray, size: int | tuple[int, int], within: np.ndarray | None = None,
                 cfg: RegionConfig = DEFAULT) -> dict[str, np.ndarray]:
    """Boolean HxW mask per :data:`facs.REGIONS` entry, mutually exclusive (a pixel inside several
    ellipses goes to the one it is deepest in, in normalised elliptical distance), cut to ``within``
    (the face: an outer brow or a cheek ellipse must not reach the hair or the background, which slide
    past the face whenever the head moves)."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    geo = region_geometry(landmarks, cfg)
    best = np.full((h, w), np.inf, np.float32)
    label = np.full((h, w), -1, np.int16)
    names = list(geo)
    for i, n in enumerate(names):
        cx, cy, rx, ry = geo[n]
        x0, x1 = max(0, int(np.floor(cx - rx))), min(w, int(np.ceil(cx + rx)) + 1)
        y0, y1 = max(0, int(np.floor(cy - ry))), min(h, int(np.ceil(cy + ry)) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        xs = (np.arange(x0, x1, dtype=np.float32) - cx) / rx
        ys = (np.arange(y0, y1, dtype=np.float32) - cy) / ry
        d = ys[:, None] ** 2 + xs[None, :] ** 2
        win = (d <= 1.0) & (d < best[y0:y1, x0:x1])
        best[y0:y1, x0:x1][win] = d[win]
        label[y0:y1, x0:x1][win] = i
    if within is not None:
        label[~within] = -1
    return {n: label == i for i, n in enumerate(names)}


def face_mask(landmarks: np.ndarray, size: int | tuple[int, int], cfg: RegionConfig = DEFAULT) -> np.ndarray:
    """Face area: hull of the 68 landmarks plus the brows raised by ``cfg.forehead`` IOD, eroded by
    ``cfg.face_erode`` IOD so that the face/background boundary (where head motion makes flow artefacts) is out."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else size
    lm = np.asarray(landmarks, float)
    iod = interocular(lm)
    brows = lm[17:27] + np.array([0.0, -cfg.forehead * iod])
    pts = np.vstack([lm, brows])
    hull = cv2.convexHull(np.rint(pts).astype(np.int32))
    m = np.zeros((h, w), np.uint8)
    cv2.fillConvexPoly(m, hull, 1)
    k = int(round(cfg.face_erode * iod))
    if k >= 1:
        m = cv2.erode(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return m.astype(bool)


def floor_mask(landmarks: np.ndarray, masks: dict[str, np.ndarray], face: np.ndarray,
               cfg: RegionConfig = DEFAULT) -> np.ndarray:
    """Face pixels at least ``cfg.floor_margin`` IOD away from every AU region, the eyes (gaze, blinks) and
    the mouth opening."""
    union = np.zeros(face.shape, np.uint8)
    for m in masks.values():
        union |= m.astype(np.uint8)
    lm = np.rint(np.asarray(landmarks, float)).astype(np.int32)
    for idx in (slice(36, 42), slice(42, 48), slice(48, 60)):
        cv2.fillConvexPoly(union, cv2.convexHull(lm[idx]), 1)
    k = int(round(cfg.floor_margin * interocular(landmarks)))
    if k >= 1:
        union = cv2.dilate(union, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * k + 1, 2 * k + 1)))
    return face & ~union.astype(bool)


def skull_mask(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rows above the nose base (landmark 33): skin the jaw and the mouth's actions do not drag along."""
    h, w = shape
    return np.broadcast_to((np.arange(h) < np.asarray(landmarks, float)[33, 1])[:, None], (h, w))


def _n_tiles(allowed: np.ndarray, patch: int) -> int:
    h, w = allowed.shape
    patch = max(4, int(patch))
    hh, ww = (h // patch) * patch, (w // patch) * patch
    cnt = allowed[:hh, :ww].reshape(hh // patch, patch, ww // patch, patch).sum(axis=(1, 3))
    return int((cnt >= 0.5 * patch * patch).sum())


def noise_floor(mag: np.ndarray, allowed: np.ndarray, patch: int, fallback: np.ndarray | None = None,
                cfg: RegionConfig = DEFAULT) -> tuple[float, float]:
    """Noise floor and spread of the mean flow magnitude of ``patch`` x ``patch`` tiles at least half
    covered by ``allowed`` (see the module docstring)."""
    h, w = mag.shape
    patch = max(4, int(patch))
    hh, ww = (h // patch) * patch, (w // patch) * patch

    def tiles(m):
        mm = (mag[:hh, :ww] * m[:hh, :ww]).reshape(hh // patch, patch, ww // patch, patch).sum(axis=(1, 3))
        cnt = m[:hh, :ww].reshape(hh // patch, patch, ww // patch, patch).sum(axis=(1, 3))
        ok = cnt >= 0.5 * patch * patch
        return mm[ok] / cnt[ok]

    vals = tiles(allowed)
    if len(vals) < cfg.min_floor_patches and fallback is not None:
        vals = tiles(fallback)
    if len(vals) == 0:
        vals = np.array([float(mag.mean())])
    q05, q30 = (float(x) for x in np.quantile(vals, [0.05, cfg.floor_quantile]))
    spread = cfg.spread_ratio * max(q30, 2.0 * (q30 - q05))
    return q30, max(spread, cfg.min_spread)


# Grey-level variance under which a patch has no texture to correlate (a standard deviation of half a level).
_FLAT = 0.25


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised cross-correlation; two patches without texture match (1), one alone does not (0): a blank apex
    frame (a dropped frame, a fade, the black fill of a face that left the frame) read 1 and passed as the
    onset's face, and the clip was built as a face that did not move."""
    a = a - a.mean()
    b = b - b.mean()
    va, vb = float((a * a).mean()), float((b * b).mean())
    if va <= _FLAT or vb <= _FLAT:
        return 1.0 if va <= _FLAT and vb <= _FLAT else 0.0
    return float((a * b).mean() / np.sqrt(va * vb))


def appearance_match(onset: np.ndarray, apex: np.ndarray, flow: np.ndarray, masks: dict[str, np.ndarray],
                     unseen: tuple[np.ndarray, np.ndarray] | None = None, residual: float | None = None
                     ) -> dict[str, float]:
    """How well the flow explains each region's change of appearance: the normalised cross-correlation
    of the onset with the apex warped back along the flow (1: the region's pixels moved as the flow says).

    Motion moves texture; a hand over the mouth, a cut to another picture or a turn the flow cannot
    follow replaces it. Measured on real video (bench/real_footage.py): smiles, blinks and still faces
    keep every region above 0.79 (the lower lip of a smile that bares the teeth is the lowest); the
    regions a hand covers or uncovers fall to 0.40-0.66; a cut to a cartoon leaves the whole face near 0.
    A mouth opening wide shows teeth the onset did not (the talking face's lower lip fell to 0.68):
    ``unseen`` (the inside of the mouth at the onset and at the apex, :func:`mouth_opening`) is left out.

    A correlation needs texture to correlate: where a region has none above the noise (smooth skin between the
    brows, a shaven chin), its NCC is low whatever the flow, and a still chin read 0.28 on real video. With
    ``residual``, a region whose warped apex differs from the onset (RMS, its mean difference aside) by at most
    ``residual`` times the face's typical difference (the lower quartile over the regions: the best-explained
    skin) is explained, match 1: the flow leaves nothing there the noise does not. Measured on real video:
    smooth regions with NCC under 0.7 left 0.9-1.9 times the typical difference, a hand and closing lids 2.8-20
    times; on the hard synthetic profile a 9.5 px brow lowering squeezing textured skin between the brows 2.5.
    Keys starting with ``_`` (the whole face) are correlations only.
    """
    h, w = onset.shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    back = cv2.remap(apex.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)
    a = onset.astype(np.float32)
    if unseen is not None:
        # The inside of the mouth (teeth, tongue, shadow), where the onset shows it or where the flow carries
        # onset pixels into the apex's, appears or disappears as the mouth opens or closes: no flow can match
        # it, and its mismatch says nothing of an occlusion. ``unseen``: (onset's, apex's) HxW bool masks.
        at_onset, at_apex = unseen
        hidden = at_onset | (cv2.remap(at_apex.astype(np.float32), gx + flow[..., 0], gy + flow[..., 1],
                                       cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0) > 0.5)
        masks = {n: (m & ~hidden) if (m & ~hidden).sum() >= 0.5 * m.sum() else m for n, m in masks.items()}
    out = {n: _ncc(a[m], back[m]) for n, m in masks.items() if m.any()}
    if residual is not None:
        diff = a - back
        rms = {n: float(np.std(diff[m])) for n, m in masks.items() if m.any() and not n.startswith("_")}
        if rms:
            typical = float(np.percentile(list(rms.values()), 25))
            out.update({n: 1.0 for n, v in rms.items() if v <= residual * typical})
    return out


def mouth_opening(landmarks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """HxW bool: inside the inner lip contour (landmarks 60-67), what a mouth shows when it opens."""
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [np.rint(np.asarray(landmarks, float)[60:68]).astype(np.int32)], 1)
    return out.astype(bool)


def landmark_stats(stats: list[RegionStats], onset: np.ndarray, apex: np.ndarray, stable: tuple[int, ...],
                   least: float) -> tuple[list[RegionStats], float, float]:
    """A baseline's region statistics (``regions.motion = "landmarks"``): each region's motion is its own
    landmarks' (:data:`facs.REGIONS`) mean displacement onset -> apex instead of the flow's, the head's similarity
    fitted robustly at the ``stable`` landmarks (the registration's) and removed, every landmark's noise the
    scatter left there (at least ``least`` px). ``stats`` are the flow's, whose appearance match and head
    displacement are kept; the timing and the second flow, the flow's own, are dropped.

    What it answers: how much of the verdicts the flow earns, beside what dlib's points alone show under the same
    rules (bench/README.md section 6); the rules were set on the flow, so read it as a lower bound for landmarks.
    Returns ``(stats, floor, spread)``: floor the median displacement left at the stable landmarks."""
    lm0, lm1 = np.asarray(onset, np.float64), np.asarray(apex, np.float64)
    s = list(stable)
    m, _ = cv2.estimateAffinePartial2D(lm1[s].astype(np.float32), lm0[s].astype(np.float32), method=cv2.LMEDS)
    if m is None:
        m = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    d = lm1 @ m[:, :2].T + m[:, 2] - lm0
    r2 = (d[s] ** 2).sum(axis=1)
    # a 2-D Gaussian's squared length has median 2 ln 2 sigma^2; the fit's four parameters absorbed some of it
    sigma = max(math.sqrt(float(np.median(r2)) / (2 * math.log(2)) * 2 * len(s) / max(1, 2 * len(s) - 4)), least)
    out = []
    for r in stats:
        idx = list(facs.REGION_BY_NAME[r.name].landmarks)
        v = d[idx].mean(axis=0)
        noise = sigma / math.sqrt(len(idx))
        mag = float(np.hypot(*v))
        z = (mag - noise * math.sqrt(math.pi / 2)) / noise  # over a still region's expected length (Rayleigh mean)
        out.append(RegionStats(r.name, mag, mag, float(v[0]), float(v[1]), 1.0, 0.0, float(z), None, r.head, noise,
                               r.match))
    return out, float(np.median(np.sqrt(r2))), sigma


def region_stats(flow: np.ndarray, strain: np.ndarray, masks: dict[str, np.ndarray], face: np.ndarray,
                 peak_times: dict[str, float] | None = None, landmarks: np.ndarray | None = None,
                 floor_allowed: np.ndarray | None = None, head: np.ndarray | None = None,
                 head_error: float = 0.0, head_shares: dict[str, float] | None = None,
                 match: dict[str, float] | None = None,
                 apex_shares: dict[str, float] | None = None, cfg: RegionConfig = DEFAULT, enlargement: float = 1.0
                 ) -> tuple[list[RegionStats], float, float]:
    """Per-region statistics of an onset->apex flow and the face's noise floor.

    Returns ``(stats in facs.REGIONS order, floor, spread)``. ``floor_allowed`` (default: the face
    minus the regions) are the pixels the floor is measured on; ``landmarks`` set the patch size
    (``cfg.floor_patch`` IOD; 16 px without them).

    The spread is at least ``cfg.min_spread`` px of the video frame: ``enlargement`` (crop px per frame px,
    from 1 up) times it in crop px. A flow is no finer than a share of the video's own pixels; a face the crop
    enlarges is interpolated smooth, its skin's flow noise falls with the enlargement while the lids' and lips'
    edges keep theirs (real footage at half size: still faces' floor 0.06-0.09 px, a lid and a lip corner
    0.45 px, reported as moving at z 7).

    A region's z is ``(mean - floor) / sqrt(spread^2 + (head_error * share * h)^2)``, h its mean ``head``
    displacement (px the head moved there, removed from the flow): the head's removal is only as good
    as a rigid model of a head that is neither rigid nor planar, so the more it moved, the less a
    small residual means (on real video an 8.6 px head shift left 0.76 px at the still jaw, a 2-degree
    roll 1.2 px at the nose). ``share`` (:func:`head_error_shares`) scales that error with the region's
    lever arm from the skin the head is fitted on.

    The floor is measured again away from the regions that moved (``cfg.floor_gap`` IOD around every
    region at least ``cfg.floor_exclude_z`` above it), until no new region qualifies: a broad expression (a smile moves the
    cheeks, lips, chin and the skin between them) drags the off-region skin near it along, which
    would otherwise raise the floor and hide the very regions that moved.
    """
    u = flow[..., 0]
    v = flow[..., 1]
    mag = np.hypot(u, v)
    if floor_allowed is None:
        union = np.zeros(face.shape, bool)
        for m in masks.values():
            union |= m
        floor_allowed = face & ~union
    iod = interocular(landmarks) if landmarks is not None else None
    patch = int(round(cfg.floor_patch * iod)) if iod else 16
    names = list(masks)
    label = np.full(mag.size, len(names), np.int32)
    for i, n in enumerate(names):
        label[masks[n].ravel()] = i
    inside = label < len(names)
    lab = label[inside]
    mg = mag.ravel()[inside]
    nb = len(names)
    cnt = np.bincount(lab, minlength=nb).astype(np.float64)
    s_mag = np.bincount(lab, mg, minlength=nb)
    means = np.where(cnt > 0, s_mag / np.maximum(cnt, 1), 0.0)
    heads = (np.bincount(lab, head.ravel()[inside], minlength=nb) / np.maximum(cnt, 1) if head is not None
             else np.zeros(nb))

    least = cfg.min_spread * max(1.0, float(enlargement))
    floor, spread = noise_floor(mag, floor_allowed, patch, fallback=face, cfg=cfg)
    spread = max(spread, least)
    moved: set[int] = set()
    gap = max(1, int(round(cfg.floor_gap * (iod or 80.0))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * gap + 1, 2 * gap + 1))
    shares = np.array([(head_shares or {}).get(n, 1.0) for n in names])

    def noise(i: int) -> float:
        return math.hypot(spread, head_error * shares[i] * heads[i])

    for _ in range(3):
        now = {i for i in range(nb) if cnt[i] > 0 and (means[i] - floor) / noise(i) >= cfg.floor_exclude_z}
        if now <= moved:
            break
        moved |= now
        near = np.zeros(face.shape, np.uint8)
        for i in moved:
            near |= masks[names[i]].astype(np.uint8)
        far = floor_allowed & ~cv2.dilate(near, kernel).astype(bool)
        if _n_tiles(far, patch) < cfg.min_floor_patches:
            break
        floor, spread = noise_floor(mag, far, patch, cfg=cfg)
        spread = max(spread, least)

    s_u = np.bincount(lab, u.ravel()[inside], minlength=nb)
    s_v = np.bincount(lab, v.ravel()[inside], minlength=nb)
    s_st = np.bincount(lab, strain.ravel()[inside], minlength=nb)
    # 95th percentile per region: sort by (label, magnitude) once, then index into each run.
    order = np.lexsort((mg, lab))
    sorted_mg = mg[order]
    starts = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    out = []
    for i, name in enumerate(names):
        pt = None if peak_times is None else peak_times.get(name)
        c = cnt[i]
        if c == 0:
            out.append(RegionStats(name, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, (0.0 - floor) / spread, pt, 0.0, spread, 1.0))
            continue
        mean = float(means[i])
        k = starts[i] + min(int(c) - 1, int(np.ceil(0.95 * c)) - 1)
        total = float(s_mag[i])
        out.append(RegionStats(
            name=name, mean=mean, peak=float(sorted_mg[k]),
            dx=float(s_u[i] / c), dy=float(s_v[i] / c),
            coherence=float(np.hypot(s_u[i], s_v[i]) / total) if total > 0 else 0.0,
            strain=float(s_st[i] / c),
            z=(mean - floor) / noise(i),
            peak_time=pt,
            head=float(heads[i]),
            noise=float(noise(i)),
            match=float((match or {}).get(name, 1.0)),
            apex_share=None if apex_shares is None else apex_shares.get(name),
        ))
    return out, floor, spread
