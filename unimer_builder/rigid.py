"""Rigid head motion in a flow field: fitted robustly at skull-anchored skin and removed.

Every frame is already registered to the onset by its landmarks (:meth:`face.FaceAligner.register`); what
the landmarks' jitter leaves, and the parallax of a small head turn, the flow itself shows on the skin
facial actions do not move. :class:`RigidFit` fits that motion (a similarity, or a similarity plus yaw and
pitch over a generic face depth) and :meth:`RigidFit.remove` subtracts it. Its settings are
:class:`~unimer_builder.config.HeadConfig`.
"""

from __future__ import annotations

import math

import numpy as np

from .config import HeadConfig
from .face import interocular


def stable_points(landmarks: np.ndarray, cfg: HeadConfig = HeadConfig()) -> np.ndarray:
    """Centres of the neighbourhoods the rigid fit samples (Nx2, crop px): the outline points pulled toward
    the nose tip (landmark 30) by ``cfg.outline_inset``, then the inner points."""
    lm = np.asarray(landmarks, float)
    nose = lm[30]
    pts = [lm[i] + cfg.outline_inset * (nose - lm[i]) for i in sorted(cfg.outline_points)]
    pts += [lm[i] for i in sorted(cfg.inner_points)]
    return np.array(pts, float)


def face_depth(landmarks: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """A generic face's depth toward the camera at image points (px, same units as x and y).

    Only its shape matters: under weak perspective a small yaw moves every point sideways in
    proportion to its depth (a small pitch, vertically), so the nose moves more than the cheeks and
    the cheeks more than the face outline. The profile: a horizontal curvature that reaches about one
    inter-ocular distance (IOD) behind the nose at the ears, a milder vertical one, and the nose ridge.
    """
    lm = np.asarray(landmarks, float)
    iod = interocular(lm)
    xc, yc = lm[27:31].mean(axis=0)
    dx, dy = (x - xc) / iod, (y - yc) / iod
    ny = (y - 0.5 * (lm[27, 1] + lm[30, 1])) / (0.45 * iod)
    nose = np.exp(-0.5 * (((x - lm[30, 0]) / (0.18 * iod)) ** 2 + ny ** 2))
    return iod * (0.35 * nose - 0.9 * dx * dx - 0.3 * dy * dy)


class RigidFit:
    """Head motion fitted robustly to a flow at skull-anchored skin; built once per clip geometry.

    The head's displacement field is linear in its parameters: a similarity (translation, scale,
    rotation about the centre c of the sample points) and, for the ``head`` model, the parallax of
    a small yaw and pitch, ``(yaw * Z(p), pitch * Z(p))`` with Z the generic depth of
    :func:`face_depth`: a real head turning by a degree or two between onset and apex shifts the nose
    against the cheeks by a pixel, which no similarity explains and every region would report as motion.

    Samples: the median flow around the skull-anchored landmarks (:func:`stable_points`) and on a grid
    over ``mask`` (the face off the AU regions) above the nose base (``cfg.skull_line``: below it the jaw
    drops with an open mouth and the skin around the mouth moves with every lower-face action).
    Fit: least quantile of squares: every minimal subset of points (2 for the similarity, 3 for the
    head model; up to ``cfg.subsets``, chosen deterministically) fixes a candidate; the candidate whose
    ``cfg.fit_quantile``-th residual is smallest wins and is refined by reweighted least squares on the
    points it explains. Still skin agrees with the head's motion to within the flow noise while spill from
    facial actions varies from point to point, so the fit holds when much of the face moves.
    """

    def __init__(self, landmarks: np.ndarray, shape: tuple[int, int], mask: np.ndarray | None = None,
                 cfg: HeadConfig = HeadConfig(), scale: float = 1.0):
        h, w = shape
        lm = np.asarray(landmarks, float) * scale
        iod = interocular(lm)
        self.cfg = cfg
        r = max(1.5, cfg.sample_radius * iod)
        centres = stable_points(lm, cfg)
        n_landmark = len(centres)
        if mask is not None:
            sp = max(2.0, cfg.grid_spacing * iod)
            gy, gx = np.mgrid[sp / 2:h:sp, sp / 2:w:sp]
            g = np.stack([gx.ravel(), gy.ravel()], axis=1)
            g = g[mask[np.clip(np.rint(g[:, 1]).astype(int), 0, h - 1), np.clip(np.rint(g[:, 0]).astype(int), 0, w - 1)]]
            centres = np.vstack([centres, g[g[:, 1] < lm[cfg.skull_line, 1]]])
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
        self.model = cfg.model
        self.points = centres[inside]
        self.xs, self.ys = xs[inside], ys[inside]
        self.shape = (h, w)
        self.centre = self.points.mean(axis=0) if len(self.points) else np.array([w / 2.0, h / 2.0])
        # Everything that depends on the geometry only, computed once (a clip fits ~10 flows).
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        self._basis_img = self._basis(lm, gx, gy)  # 2 x k x H x W
        self._basis_pts = self._basis(lm, self.points[:, 0], self.points[:, 1])  # 2 x k x P
        self._subsets = self._minimal_subsets(iod)
        self._subsets_plain = self._minimal_subsets(iod, 2) if self.n_params > 4 else self._subsets
        self._k = max(2, int(np.ceil(cfg.fit_quantile * len(self.points))) - 1)

    @property
    def n_params(self) -> int:
        return 4 if self.model == "similarity" else 6

    def _basis(self, lm: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """(u, v) of each parameter's unit field: tx, ty, scale, rotation[, yaw, pitch]."""
        x = np.asarray(x, float) - self.centre[0]
        y = np.asarray(y, float) - self.centre[1]
        one, zero = np.ones_like(x), np.zeros_like(x)
        u = [one, zero, x, -y]
        v = [zero, one, y, x]
        if self.model == "head":
            z = face_depth(lm, x + self.centre[0], y + self.centre[1])
            u += [z, zero]
            v += [zero, z]
        return np.stack([np.stack(u), np.stack(v)])

    def _minimal_subsets(self, iod: float, m: int | None = None) -> np.ndarray:
        n, m = len(self.points), m or self.n_params // 2
        if n < m:
            return np.zeros((0, m), int)
        rng = np.random.default_rng(0)  # fixed: the same geometry always tries the same subsets
        # m distinct points per candidate: the first m of a random order of all n, every candidate at once
        cand = np.argsort(rng.random((4 * self.cfg.subsets, n)), axis=1)[:, :m]
        spread = np.min([np.hypot(*(self.points[cand[:, i]] - self.points[cand[:, j]]).T)
                         for i in range(m) for j in range(i + 1, m)], axis=0)
        cand = cand[spread >= 0.4 * iod]  # close points fix rotation and turns poorly
        return cand[:self.cfg.subsets]

    def point_vectors(self, flow: np.ndarray) -> np.ndarray:
        """Median flow (Px2) in each stable point's neighbourhood."""
        g = flow[self.ys, self.xs]  # P x K x 2
        k = g.shape[1]
        if k % 2 == 1 and k > 0 and not np.isnan(g).any():
            # np.median of an odd count is the middle order statistic: one partition, same values,
            # without np.median's generic bookkeeping (this runs for every DIS frame of every clip).
            return np.partition(g, k // 2, axis=1)[:, k // 2].astype(np.float64)
        return np.median(g, axis=1).astype(np.float64)

    def fit(self, flow: np.ndarray, select: bool = False) -> np.ndarray:
        """Parameters (tx, ty, scale, rotation[, yaw, pitch]) of the head's displacement field. ``select``:
        with the ``head`` model, the turns only where they earn their place (``cfg.turn_gain``)."""
        v = self.point_vectors(flow) if len(self.points) else np.zeros((0, 2))
        theta, q = self._fit(v, self.n_params)
        if select and self.n_params > 4 and len(self.points) >= 3:
            plain, q_plain = self._fit(v, 4)
            if q > self.cfg.turn_gain * q_plain:
                return plain
        return theta

    def _fit(self, v: np.ndarray, k: int) -> tuple[np.ndarray, float]:
        """The fit of the first ``k`` parameters to the points' vectors ``v`` (the rest 0), and its residual
        at the ``fit_quantile``-th point."""
        n = len(self.points)
        theta = np.zeros(k)
        if n == 0:
            return np.zeros(self.n_params), 0.0
        theta[:2] = np.median(v, axis=0)
        if n < 3:
            theta[:2] = v.mean(axis=0)
            return np.concatenate([theta, np.zeros(self.n_params - k)]), 0.0
        b = self._basis_pts[:, :k]  # 2 x k x P
        # Candidates: pure translation (the median) and the exact fit of every minimal subset.
        sub = self._subsets if k == self.n_params else self._subsets_plain
        if len(sub):
            a = np.concatenate([b[0][:, sub], b[1][:, sub]], axis=2).transpose(1, 2, 0)  # M x 2m x k
            y = np.concatenate([v[sub, 0], v[sub, 1]], axis=1)  # M x 2m
            det_ok = np.abs(np.linalg.det(a)) > 1e-9
            cands = np.linalg.solve(a[det_ok], y[det_ok][..., None])[..., 0]
            lin = np.abs(cands[:, 2:4]).max(axis=1) <= self.cfg.max_linear
            turn = np.abs(cands[:, 4:]).max(axis=1, initial=0.0) <= self.cfg.max_turn
            cands = np.vstack([theta[None, :], cands[lin & turn]])
        else:
            cands = theta[None, :]
        pred = np.einsum("ck,dkp->cpd", cands, b)  # M x P x 2
        res = np.hypot(*(v[None] - pred).transpose(2, 0, 1))  # M x P
        q = np.partition(res, self._k, axis=1)[:, self._k]
        best = int(np.argmin(q))
        # Refine by iteratively reweighted least squares (Tukey's biweight, its scale from the winner's
        # quantile residual): soft weights make the fit a continuous function of the flow, so a tiny change
        # of the flow (another solver, another noise draw) cannot switch the inlier set and the whole field.
        theta, scale = cands[best], max(self.cfg.inlier_factor * q[best], 0.03)
        a = np.concatenate([b[0], b[1]], axis=1).T  # 2P x k
        y = np.concatenate([v[:, 0], v[:, 1]])
        for _ in range(self.cfg.irls_steps):
            r = np.hypot(*(v - np.einsum("k,dkp->pd", theta, b)).T)
            w = np.clip(1.0 - (r / scale) ** 2, 0.0, None) ** 2
            if (w > 0).sum() < k:
                break
            ww = np.concatenate([w, w])
            sol, *_ = np.linalg.lstsq(a * np.sqrt(ww)[:, None], y * np.sqrt(ww), rcond=None)
            theta = sol
        r = np.hypot(*(v - np.einsum("k,dkp->pd", theta, b)).T)
        return np.concatenate([theta, np.zeros(self.n_params - k)]), float(np.partition(r, self._k)[self._k])

    def field(self, theta: np.ndarray) -> np.ndarray:
        """The head's displacement field (HxWx2 float32) of parameters ``theta``."""
        f = np.tensordot(np.asarray(theta, float), self._basis_img, axes=([0], [1]))  # 2 x H x W
        return np.ascontiguousarray(f.transpose(1, 2, 0), dtype=np.float32)

    def remove(self, flow: np.ndarray, before: np.ndarray | None = None, select: bool = False
               ) -> tuple[np.ndarray, dict[str, float], np.ndarray]:
        """The flow less the head's motion; that motion (the fitted similarity after ``before``, 2x3
        crop px, by which the frame was already registered, and the turns); and how far the head moved
        at each pixel (HxW px, registration included), which is how unsure the removal leaves the flow.
        ``select``: as :meth:`fit` (the evidence's flow; the timing curves keep the turns, for speed)."""
        theta = self.fit(flow, select)
        head = self.field(theta)
        out = flow - head
        m = self.matrix(theta)
        if before is not None:
            head = head + displacement(before, self.shape)
            m = (np.vstack([before, [0, 0, 1]]) @ np.vstack([m, [0, 0, 1]]))[:2]
        motion = motion_of(m, self.shape)
        motion["yaw"], motion["pitch"] = (math.degrees(float(x)) for x in (list(theta[4:6]) or [0.0, 0.0]))
        return out.astype(np.float32, copy=False), motion, np.hypot(head[..., 0], head[..., 1])

    def matrix(self, theta: np.ndarray) -> np.ndarray:
        """2x3 forward map ``x -> x + v(x)`` of the similarity part of ``theta``."""
        tx, ty, a, b = (float(x) for x in theta[:4])
        lin = np.array([[1.0 + a, -b], [b, 1.0 + a]])
        c = np.asarray(self.centre, float)
        return np.hstack([lin, (c + np.array([tx, ty]) - lin @ c)[:, None]])


def displacement(matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """HxWx2 displacement ``M x - x`` of a 2x3 forward map."""
    h, w = shape
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    m = np.asarray(matrix, np.float32)
    return np.dstack([m[0, 0] * gx + m[0, 1] * gy + m[0, 2] - gx, m[1, 0] * gx + m[1, 1] * gy + m[1, 2] - gy])


def motion_of(matrix: np.ndarray, shape: tuple[int, int]) -> dict[str, float]:
    """Head motion of a 2x3 forward similarity: translation at the crop centre (px), rotation (degrees,
    positive = clockwise on screen, y down), scale (1 = none)."""
    m = np.asarray(matrix, float)
    h, w = shape
    c = np.array([w / 2.0, h / 2.0])
    t = m[:, :2] @ c + m[:, 2] - c
    return {
        "tx": float(t[0]),
        "ty": float(t[1]),
        "rotation": float(math.degrees(math.atan2(m[1, 0], m[0, 0]))),
        "scale": float(math.hypot(m[0, 0], m[1, 0])),
    }


def remove_rigid(flow: np.ndarray, landmarks: np.ndarray, mask: np.ndarray | None = None,
                 cfg: HeadConfig = HeadConfig()) -> tuple[np.ndarray, dict[str, float]]:
    """Subtract the similarity (head translation, in-plane rotation, scale) that best explains the flow
    around landmarks AUs do not move; return the residual flow and the removed head motion
    (``tx``, ``ty`` px at the crop centre, ``rotation`` degrees, ``scale``).

    ``mask``, if given, restricts the samples to pixels where it is True (e.g. off the AU regions).
    """
    return RigidFit(landmarks, flow.shape[:2], mask, cfg).remove(flow)[:2]
