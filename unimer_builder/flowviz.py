"""The flow as a picture: one fixed colour code shared by the ``flow_image`` column, the inspection
report and the exports, so that a colour means the same motion in every clip.

Hue is the direction (image axes, x right, y down): right red, down yellow-green, left cyan, up violet.
Saturation is the magnitude, linear from white (still) to full colour at :data:`FULL_PX` pixels of the
crop and beyond. The scale is fixed, never per clip: a still face stays white instead of showing its
noise magnified into bright colours.
"""

from __future__ import annotations

import cv2
import numpy as np

# px of the crop at which the colour saturates. Micro-expressions move skin by ~0.3-3 px at 224 px (the
# synthetic demo plants 0.4-2.5 px); the noise floor of still skin is ~0.05-0.3 px, i.e. a faint tint.
FULL_PX = 2.0
DIRECTION_COLOURS = {"right": "red", "down": "yellow-green", "left": "cyan", "up": "violet"}


def flow_to_rgb(flow: np.ndarray, full_px: float = FULL_PX) -> np.ndarray:
    """``(H, W, 2)`` or ``(2, H, W)`` flow in px -> ``(H, W, 3)`` uint8 RGB (see the module docstring)."""
    f = np.asarray(flow, np.float32)
    if f.ndim != 3 or 2 not in (f.shape[0], f.shape[-1]):
        raise ValueError(f"flow must be (H, W, 2) or (2, H, W), not {f.shape}")
    u, v = (f[..., 0], f[..., 1]) if f.shape[-1] == 2 else (f[0], f[1])
    mag, ang = cv2.cartToPolar(u, v, angleInDegrees=True)  # angle counted from +x towards +y (down)
    hsv = np.empty(u.shape + (3,), np.uint8)
    hsv[..., 0] = np.round(ang / 2.0).astype(np.int32) % 180  # OpenCV hue: 0..179 for 0..358 degrees
    hsv[..., 1] = np.round(np.clip(mag / float(full_px), 0.0, 1.0) * 255.0).astype(np.uint8)
    hsv[..., 2] = 255
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(size: int = 96, full_px: float = FULL_PX) -> np.ndarray:
    """A legend: the colour of every motion up to ``full_px`` (centre still, rim ``full_px``) as RGB."""
    c = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    flow = np.stack([(x - c) / c * full_px, (y - c) / c * full_px], axis=-1)
    rgb = flow_to_rgb(flow, full_px)
    rgb[np.hypot(x - c, y - c) > c + 0.5] = 255
    return rgb


def png_rgb(rgb: np.ndarray) -> bytes:
    """RGB uint8 -> PNG bytes (OpenCV writes BGR, so the channels are swapped first)."""
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()
