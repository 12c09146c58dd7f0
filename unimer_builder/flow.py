"""Optical flow on aligned face crops: TV-L1 (the stored flow), optical strain, cheap DIS curves.

Flow fields are HxWx2 float32 in pixels at the resolution of the images they were computed on, image
axes (x right, y down), never normalised. Head motion is removed by :mod:`.rigid`.
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import FlowConfig
from .rigid import RigidFit

# --- TV-L1 ------------------------------------------------------------------------------------------


def make_tvl1(cfg: FlowConfig):
    """OpenCV's Dual TV-L1 configured through its setters (the Python keyword for inner iterations
    is misspelt ``innnerIterations``, so keywords are avoided).

    With ``cfg.backend == "torch"`` the same solver in torch (:mod:`.flow_torch`, imported only then),
    behind the same ``calc(I0, I1, flow)`` interface."""
    if cfg.backend == "torch":
        from .flow_torch import TorchTVL1  # torch is imported only when its backend is asked for

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


def tvl1_flow(tvl1, a: np.ndarray, b: np.ndarray, nscales: int | None = None) -> np.ndarray:
    """Flow from grey image ``a`` to ``b`` (``a(p) ~ b(p + flow(p))``), HxWx2 float32 px; ``nscales``
    overrides the pyramid depth for this call."""
    if nscales is not None:
        tvl1.setScalesNumber(int(nscales))
    return tvl1.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None).astype(np.float32, copy=False)


def match_brightness(img: np.ndarray, ref: np.ndarray, steps: int = 3) -> np.ndarray:
    """``img`` (uint8 grey) with its gain and offset matched to ``ref``'s, for brightness constancy.

    TV-L1's data term is brightness constancy: a camera's exposure flicker of one or two grey levels
    between onset and apex is read as motion wherever the skin has little texture (a 0.8 px "noise floor"
    on smooth faces). The fit compares both images blurred by 1/56 of their side (about 0.05 IOD in the
    crop, so that the motion being measured hardly changes what is compared) over the central 3/4 of the
    crop, and drops pixels off by more than 2.5 robust deviations (an opening mouth, teeth) before
    refitting; the gain is kept within [0.5, 2]. The blurred images hold nothing finer than their blur:
    every ``sigma``-th pixel of them is sampled (at 224 px: every 4th of each row and column)."""
    x = img.astype(np.float32)
    h, w = x.shape[:2]
    sigma = max(h, w) / 56.0
    k = max(1, int(sigma))
    inner = (slice(h // 8, h - h // 8, k), slice(w // 8, w - w // 8, k))
    a_b = cv2.GaussianBlur(ref.astype(np.float32), (0, 0), sigma)[inner].ravel()
    x_b = cv2.GaussianBlur(x, (0, 0), sigma)[inner].ravel()
    gain, offset = 1.0, float(np.median(a_b - x_b))
    for _ in range(steps):
        r = a_b - (gain * x_b + offset)
        mad = 1.4826 * float(np.median(np.abs(r - np.median(r)))) + 1e-3
        keep = np.abs(r) <= 2.5 * mad
        if keep.sum() < 16:
            break
        xs, ys = x_b[keep], a_b[keep]
        xc = xs - xs.mean()
        gain = float(np.clip((xc @ (ys - ys.mean())) / max(float(xc @ xc), 1e-6), 0.5, 2.0))
        offset = float(np.median(a_b[keep] - gain * x_b[keep]))
    return np.clip(gain * x + offset + 0.5, 0, 255).astype(np.uint8)


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


# --- cheap DIS curves -------------------------------------------------------------------------------

DIS_PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def make_dis(cfg: FlowConfig):
    """DIS for the timing curves (``cfg.dis_preset``, ``cfg.dis_finest_scale``). Its presets stop at a
    quarter of the image (finest scale 2): on a 112 px stack that is 28 px, where a planted 1.3 px lip raise
    measured 0.05 px; one level finer (56 px) measures it, at about the same cost."""
    dis = cv2.DISOpticalFlow_create(DIS_PRESETS[cfg.dis_preset])
    if cfg.dis_finest_scale is not None:
        dis.setFinestScale(int(cfg.dis_finest_scale))
    return dis


def dis_flows(ref: np.ndarray, frames: list[np.ndarray], dis, rigid: RigidFit | None = None
              ) -> list[np.ndarray]:
    """DIS flow from ``ref`` to each frame (small crops: cheap), rigid motion removed when ``rigid``
    is given. Used for timing and apex estimation, not for the stored evidence."""
    ref = np.ascontiguousarray(ref)
    out = []
    for f in frames:
        fl = dis.calc(ref, np.ascontiguousarray(f), None)
        if rigid is not None:
            fl = rigid.remove(fl)[0]
        out.append(fl)
    return out


def dis_magnitudes(ref: np.ndarray, frames: list[np.ndarray], masks: dict[str, np.ndarray],
                   dis, rigid: RigidFit | None = None) -> dict[str, np.ndarray]:
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


def dis_region_vectors(ref: np.ndarray, frame: np.ndarray, masks: dict[str, np.ndarray], dis,
                       rigid: RigidFit | None = None) -> dict[str, tuple[float, float]]:
    """Per-mask mean DIS flow vector (dx, dy px) of ``ref -> frame``: a second flow's direction beside TV-L1's,
    for one frame (the curves keep magnitudes only: their means cost a third of the DIS calls themselves)."""
    f = dis_flows(ref, [frame], dis, rigid)[0].reshape(-1, 2)
    return {name: tuple(float(v) for v in f[m.ravel()].mean(axis=0)) for name, m in masks.items() if m.any()}
