"""Optical flow on aligned face crops: TV-L1, optical strain, rigid head-motion removal, DIS curves.

Flow fields are HxWx2 float32 in pixels at the resolution of the images they were computed on, image
axes (x right, y down), never normalised.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from . import facs
from .config import FlowConfig

# --- TV-L1 ------------------------------------------------------------------------------------------


def make_tvl1(cfg: FlowConfig):
    """OpenCV's Dual TV-L1 configured through its setters (the Python keyword for inner iterations
    is misspelt ``innnerIterations``, so keywords are avoided).

    With ``cfg.backend == "torch"`` the same solver in torch (:mod:`.flow_torch`, imported only then),
    behind the same ``calc(I0, I1, flow)`` interface."""
    if cfg.backend == "torch":
        from .flow_torch import TorchTVL1

        return TorchTVL1(cfg, cfg.device)
    if cfg.backend != "opencv":
        raise ValueError(f"unknown flow backend {cfg.backend!r}; choose opencv or torch")
    t = cv2.optflow.DualTVL1OpticalFlow_create()
    t.setTau(float(cfg.tau))
    t.setLambda(float(cfg.lambda_))
    t.setTheta(float(cfg.theta))
    t.setScalesNumber(int(cfg.nscales))
    t.setWarpingsNumber(int(cfg.warps))
    t.setEpsilon(float(cfg.epsilon))
    t.setInnerIterations(int(cfg.inner_iterations))
    t.setOuterIterations(int(cfg.outer_iterations))
    t.setScaleStep(float(cfg.scale_step))
    t.setGamma(float(cfg.gamma))
    t.setMedianFiltering(int(cfg.median_filtering))
    t.setUseInitialFlow(False)
    return t


def tvl1_flow(tvl1, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Flow from grey image ``a`` to ``b`` (``a(p) ~ b(p + flow(p))``), HxWx2 float32 px."""
    return tvl1.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None).astype(np.float32, copy=False)


# --- strain -----------------------------------------------------------------------------------------


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Magnitude of the infinitesimal strain tensor of the flow, HxW float32.

    With u, v the x and y flow components and central differences (``np.gradient``),
    ``strain = sqrt(u_x^2 + v_y^2 + 0.5 * (u_y + v_x)^2)``: the normal strains plus the shear term
    ``e_xy = (u_y + v_x) / 2`` counted twice (it appears twice in the symmetric tensor). A rigid
    translation has zero strain; a pure rotation too (u_y = -v_x).
    """
    u = flow[..., 0]
    v = flow[..., 1]
    uy, ux = np.gradient(u)
    vy, vx = np.gradient(v)
    shear = uy + vx
    return np.sqrt(ux * ux + vy * vy + 0.5 * shear * shear).astype(np.float32)


# --- rigid head motion ------------------------------------------------------------------------------

# Points that AUs do not move, besides facs.STABLE_LANDMARKS: the face outline from the ears to the
# jaw angle (AU26/27 move only the lower jaw), pulled slightly toward the nose tip so that samples
# stay on skin, and the nose bridge. Each is at least ~0.35 inter-ocular distances from every AU
# region centre on a frontal face, so one AU's spill reaches a few of them at most.
OUTLINE_STABLE = (0, 1, 2, 3, 4, 12, 13, 14, 15, 16)
NOSE_BRIDGE = (27, 28)
OUTLINE_INSET = 0.1  # share of the way from an outline point toward the nose tip (landmark 30)
SAMPLE_RADIUS = 0.07  # neighbourhood radius around each stable point, in inter-ocular distances
GRID_SPACING = 0.2  # spacing of the extra sample grid over an allowed mask, IOD
MAX_SIMILARITY = 0.08
FIT_QUANTILE = 0.3
PAIR_MIN_DIST = 0.4  # IOD: candidate similarities come from point pairs at least this far apart
MAX_PAIRS = 300
INLIER_FACTOR = 3.0  # |a|, |b| of a candidate similarity (about 4.6 degrees / 8 % scale)


def interocular(landmarks: np.ndarray) -> float:
    lm = np.asarray(landmarks, float)
    return float(np.hypot(*(lm[42:48].mean(0) - lm[36:42].mean(0))))


def stable_points(landmarks: np.ndarray) -> np.ndarray:
    """Centres of the neighbourhoods the rigid fit samples (Nx2, crop px)."""
    lm = np.asarray(landmarks, float)
    nose = lm[30]
    outline = set(OUTLINE_STABLE) | {i for i in facs.STABLE_LANDMARKS if i <= 16}
    inner = (set(facs.STABLE_LANDMARKS) | set(NOSE_BRIDGE)) - outline
    pts = [lm[i] + OUTLINE_INSET * (nose - lm[i]) for i in sorted(outline)]
    pts += [lm[i] for i in sorted(inner)]
    return np.array(pts, float)


class RigidFit:
    """Similarity head motion fitted robustly to a flow around stable points; built once per geometry.

    The flow is modelled as the displacement field of a similarity,
    ``v(p) = [[a, -b], [b, a]] (p - c) + t`` (c: centre of the stable points). Each stable point
    contributes the median flow of its neighbourhood; the model is chosen by least quantile of
    residuals (the FIT_QUANTILE-th smallest residual, over every pair of points, a pair fixing a
    similarity exactly, and over pure translation), then refitted by least squares on the points it
    explains. Still skin agrees with one similarity to within the flow noise, while spill from facial
    actions varies smoothly from point to point, so the fit holds even when most of the face moves
    (measured on planted AU6+AU12 with bumps covering ~2/3 of the face: 0.02-0.05 px residual).
    """

    def __init__(self, landmarks: np.ndarray, shape: tuple[int, int], mask: np.ndarray | None = None,
                 scale: float = 1.0):
        h, w = shape
        lm = np.asarray(landmarks, float) * scale
        iod = interocular(lm)
        r = max(1.5, SAMPLE_RADIUS * iod)
        centres = stable_points(lm)
        n_landmark = len(centres)
        if mask is not None:
            # A grid over the allowed area (the face off every AU region): forehead, temples, nose
            # bridge, jaw sides. A spill from any one AU then reaches a minority of the points.
            sp = max(2.0, GRID_SPACING * iod)
            gy, gx = np.mgrid[sp / 2:h:sp, sp / 2:w:sp]
            g = np.stack([gx.ravel(), gy.ravel()], axis=1)
            g = g[mask[np.clip(np.rint(g[:, 1]).astype(int), 0, h - 1), np.clip(np.rint(g[:, 0]).astype(int), 0, w - 1)]]
            centres = np.vstack([centres, g])
        step = max(1.0, r / 2.0)
        offs = np.arange(-r, r + 1e-6, step)
        ox, oy = np.meshgrid(offs, offs)
        keep = ox ** 2 + oy ** 2 <= r * r
        ox, oy = ox[keep], oy[keep]
        xs = np.clip(np.rint(centres[:, :1] + ox[None, :]).astype(int), 0, w - 1)  # P x K
        ys = np.clip(np.rint(centres[:, 1:] + oy[None, :]).astype(int), 0, h - 1)
        inside = (centres[:, 0] >= 0) & (centres[:, 0] < w) & (centres[:, 1] >= 0) & (centres[:, 1] < h)
        if mask is not None:
            ok = mask[ys, xs].mean(axis=1) >= 0.5
            ok[:n_landmark] |= ~ok[:n_landmark].any()  # never lose every landmark point
            if (inside & ok).sum() >= 4:
                inside &= ok
        self.points = centres[inside]
        self.xs, self.ys = xs[inside], ys[inside]
        self.shape = (h, w)
        self.centre = self.points.mean(axis=0) if len(self.points) else np.array([w / 2.0, h / 2.0])
        self._p = self.points - self.centre
        n = len(self.points)
        ii, jj = np.triu_indices(n, 1)
        dist = np.hypot(*(self.points[jj] - self.points[ii]).T)
        far = dist >= PAIR_MIN_DIST * iod  # close pairs fix rotation/scale poorly
        if far.sum() >= 3:
            ii, jj = ii[far], jj[far]
        if len(ii) > MAX_PAIRS:  # an even, deterministic subset keeps the fit at ~1 ms
            pick = np.linspace(0, len(ii) - 1, MAX_PAIRS).round().astype(int)
            ii, jj = ii[pick], jj[pick]
        self._pairs = np.stack([ii, jj], axis=1)
        # Everything of the fit that depends on the geometry only, computed once (a clip fits ~10 flows).
        self._pc = self._p[:, 0] + 1j * self._p[:, 1]
        dp = self._pc[jj] - self._pc[ii]
        self._dp_ok = np.abs(dp) > 1e-9
        self._dp_safe = np.where(self._dp_ok, dp, 1)
        self._k = max(2, int(np.ceil(FIT_QUANTILE * n)) - 1)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32) - np.float32(self.centre[0]),
                             np.arange(h, dtype=np.float32) - np.float32(self.centre[1]))
        self._grid = (gx, gy)

    def point_vectors(self, flow: np.ndarray) -> np.ndarray:
        """Median flow (Px2) in each stable point's neighbourhood."""
        g = flow[self.ys, self.xs]  # P x K x 2
        k = g.shape[1]
        if k % 2 == 1 and k > 0 and not np.isnan(g).any():
            # np.median of an odd count is the middle order statistic: one partition, same values,
            # without np.median's generic bookkeeping (this runs for every DIS frame of every clip).
            return np.partition(g, k // 2, axis=1)[:, k // 2].astype(np.float64)
        return np.median(g, axis=1).astype(np.float64)

    def fit(self, flow: np.ndarray) -> np.ndarray:
        """Parameters (a, b, tx, ty) of the similarity displacement field."""
        n = len(self.points)
        if n == 0:
            return np.zeros(4)
        v = self.point_vectors(flow)
        if n < 3:
            t = v.mean(axis=0)
            return np.array([0.0, 0.0, t[0], t[1]])
        pc = self._pc
        vc = v[:, 0] + 1j * v[:, 1]
        i, j = self._pairs[:, 0], self._pairs[:, 1]
        ab = np.where(self._dp_ok, (vc[j] - vc[i]) / self._dp_safe, 0)
        ok = (np.abs(ab.real) <= MAX_SIMILARITY) & (np.abs(ab.imag) <= MAX_SIMILARITY)
        ab = np.concatenate([ab[ok], [0j]])
        mx, my = np.median(v, axis=0)  # one call for both columns: the same values
        t = np.concatenate([vc[i][ok] - ab[:-1] * pc[i][ok], [mx + 1j * my]])
        res = np.abs(vc[None, :] - (ab[:, None] * pc[None, :] + t[:, None]))  # M x P
        k = self._k
        med = np.partition(res, k, axis=1)[:, k]
        best = int(np.argmin(med))
        inl = res[best] <= max(INLIER_FACTOR * med[best], 0.03)
        if inl.sum() < 3:
            return np.array([ab[best].real, ab[best].imag, t[best].real, t[best].imag])
        # Least squares on the inliers: v = (a + ib) p + t in complex form.
        a_mat = np.stack([pc[inl], np.ones(inl.sum())], axis=1)
        sol, *_ = np.linalg.lstsq(a_mat, vc[inl], rcond=None)
        return np.array([sol[0].real, sol[0].imag, sol[1].real, sol[1].imag])

    def field(self, p: np.ndarray) -> np.ndarray:
        a, b, tx, ty = (np.float32(x) for x in p)
        gx, gy = self._grid
        return np.dstack([a * gx - b * gy + tx, b * gx + a * gy + ty])

    def remove(self, flow: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        p = self.fit(flow)
        out = flow - self.field(p)
        return out.astype(np.float32, copy=False), self.motion(p)

    def motion(self, p: np.ndarray) -> dict[str, float]:
        """Head motion of parameters ``p``: translation at the crop centre (px), rotation (degrees,
        positive = clockwise on screen, y down), scale (1 = none)."""
        a, b, tx, ty = (float(x) for x in p)
        h, w = self.shape
        cx, cy = w / 2.0 - self.centre[0], h / 2.0 - self.centre[1]
        return {
            "tx": float(a * cx - b * cy + tx),
            "ty": float(b * cx + a * cy + ty),
            "rotation": float(math.degrees(math.atan2(b, 1.0 + a))),
            "scale": float(math.hypot(1.0 + a, b)),
        }


def remove_rigid(flow: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None = None
                 ) -> tuple[np.ndarray, dict[str, float]]:
    """Subtract the similarity (head translation, in-plane rotation, scale) that best explains the flow
    around landmarks AUs do not move; return the residual flow and the removed head motion
    (``tx``, ``ty`` px at the crop centre, ``rotation`` degrees, ``scale``).

    ``mask``, if given, restricts the samples to pixels where it is True (e.g. off the AU regions).
    """
    return RigidFit(landmarks, flow.shape[:2], mask).remove(flow)


# --- cheap DIS curves -------------------------------------------------------------------------------

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def make_dis(preset: str = "fast"):
    return cv2.DISOpticalFlow_create(DIS_PRESETS[preset])


def dis_flows(ref: np.ndarray, frames: list[np.ndarray], dis=None, rigid: RigidFit | None = None
              ) -> list[np.ndarray]:
    """DIS flow from ``ref`` to each frame (small crops: cheap), rigid motion removed when ``rigid``
    is given. Used for timing and apex estimation, not for the stored evidence."""
    dis = dis or make_dis()
    ref = np.ascontiguousarray(ref)
    out = []
    for f in frames:
        fl = dis.calc(ref, np.ascontiguousarray(f), None)
        if rigid is not None:
            fl = rigid.remove(fl)[0]
        out.append(fl)
    return out


def dis_magnitudes(ref: np.ndarray, frames: list[np.ndarray], masks: dict[str, np.ndarray],
                   dis=None, rigid: RigidFit | None = None) -> dict[str, np.ndarray]:
    """Per-mask mean DIS flow magnitude of ``ref -> frames[i]``: ``{name: curve of len(frames)}``."""
    flows = dis_flows(ref, frames, dis, rigid)
    if not flows:
        return {k: np.zeros(0, np.float32) for k in masks}
    mags = np.stack([np.hypot(f[..., 0], f[..., 1]) for f in flows])  # T x H x W
    curves = {}
    flat = mags.reshape(len(flows), -1)
    for name, m in masks.items():
        idx = np.flatnonzero(m.ravel())
        curves[name] = flat[:, idx].mean(axis=1) if len(idx) else np.zeros(len(flows), np.float32)
    return curves
