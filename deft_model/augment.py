"""Training-time augmentation of one clip's inputs, consistent across the experts, the targets and the answer.

What changes between subjects that the labels do not depend on: which side of the face a one-sided AU is on,
how the aligned face sits in the crop (a few degrees, a few per cent of scale: the aligner's error), and how
large the movement is (a micro-expression's intensity, the face's size in the frame). Each is drawn per clip
and epoch from a generator seeded by (seed, epoch, index), so a run is the same for a seed, resumed or not.

* ``mirror`` (probability): the face flipped left-right. Images and flow are flipped, the flow's x component
  negated, each ``_R`` region's statistics swapped with its ``_L`` twin and ``dx`` negated, and the answer's
  laterality swapped (left <-> right, ``R14`` <-> ``L14``: sides are the subject's). The AU targets carry no
  side and the emotion none, so they stay.
* ``rotate_deg``, ``scale``: a similarity about the crop centre (uniform in +-deg, 1 +- scale) applied to the
  images and the flow field; the flow's vectors and the regions' ``dx``/``dy`` turn and scale with it.
* ``amplitude`` ([lo, hi], log-uniform): the flow and the regions' motion magnitudes (mean, peak, dx, dy,
  strain, z) multiplied by the same factor (``z`` as if the noise stayed: an approximation).

Statistics the transforms do not move (coherence, peak time) stay. Nothing here runs at prediction.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

DEFAULT_AUGMENT = {"mirror": 0.5, "rotate_deg": 5.0, "scale": 0.05, "amplitude": [0.8, 1.25]}
KEYS = tuple(DEFAULT_AUGMENT)
# statistics in px that scale with the motion's magnitude; strain (a derivative) scales with amplitude only
_MAGNITUDE = ("mean", "peak", "dx", "dy", "z")

_SIDE_WORD = re.compile(r"\b(left|right|Left|Right|LEFT|RIGHT)\b")
_SIDE_AU = re.compile(r"\b([LR])(\d{1,2}[A-E]?)\b")
_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left", "LEFT": "RIGHT", "RIGHT": "LEFT"}


def check_augment(spec: dict | None) -> dict | None:
    """The augmentation settings (None or {} switches it off), unknown keys and bad ranges refused."""
    if not spec:
        return None
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown augment setting(s) {unknown}; known: {list(KEYS)}")
    out = {"mirror": 0.0, "rotate_deg": 0.0, "scale": 0.0, "amplitude": [1.0, 1.0], **spec}
    if not 0.0 <= float(out["mirror"]) <= 1.0:
        raise ValueError(f"augment mirror {out['mirror']} is not a probability")
    lo, hi = (float(x) for x in out["amplitude"])
    if not 0 < lo <= hi:
        raise ValueError(f"augment amplitude {out['amplitude']} is not a range 0 < lo <= hi")
    out["amplitude"] = [lo, hi]
    return out


def mirror_text(text: str) -> str:
    """The subject's left and right swapped in an answer (words and side-prefixed AU codes such as R14)."""
    text = _SIDE_WORD.sub(lambda m: _SWAP[m.group(1)], text)
    return _SIDE_AU.sub(lambda m: ("L" if m.group(1) == "R" else "R") + m.group(2), text)


def mirror_index(region_names: Sequence[str]) -> np.ndarray:
    """``perm`` with ``stats[perm]`` the statistics of the mirrored face (``_R`` <-> ``_L``, others in place)."""
    names = list(region_names)
    twin = {"_R": "_L", "_L": "_R"}
    perm = []
    for n in names:
        other = n[:-2] + twin[n[-2:]] if n[-2:] in twin else n
        perm.append(names.index(other) if other in names else names.index(n))
    return np.asarray(perm, np.int64)


class Augmenter:
    """Draws and applies one clip's augmentation (see the module doc)."""

    def __init__(self, spec: dict, region_names: Sequence[str], stat_fields: Sequence[str], seed: int):
        self.spec = check_augment(spec) or check_augment({"mirror": 0.0})
        self.seed = int(seed)
        self.perm = mirror_index(region_names)
        self.fields = {f: i for i, f in enumerate(stat_fields)}

    def draw(self, epoch: int, index: int) -> dict:
        rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        s = self.spec
        lo, hi = s["amplitude"]
        return {"mirror": bool(rng.random() < s["mirror"]),
                "angle": float(rng.uniform(-1, 1) * s["rotate_deg"]),
                "scale": float(1 + rng.uniform(-1, 1) * s["scale"]),
                "amplitude": float(np.exp(rng.uniform(np.log(lo), np.log(hi))))}

    def apply(self, item: dict, t: dict) -> dict:
        """A copy of ``item`` (DeftDataset's) under draw ``t``; ``answer_ids`` becomes ``answer_ids_mirrored``
        when mirrored."""
        import cv2

        out = dict(item)
        mirror, angle, scale, amp = t["mirror"], t["angle"], t["scale"], t["amplitude"]
        geometric = angle != 0.0 or scale != 1.0

        def warp(x: np.ndarray, border: int) -> np.ndarray:
            """(..., H, W) warped as one multi-channel image (one OpenCV call)."""
            h, w = x.shape[-2:]
            m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, scale)
            hwc = np.ascontiguousarray(x.reshape(-1, h, w).transpose(1, 2, 0))
            out = cv2.warpAffine(hwc, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=border)
            return out.reshape(h, w, -1).transpose(2, 0, 1).reshape(x.shape)

        for key in ("onset", "frames"):
            if key not in item:
                continue
            x = item[key]
            if mirror:
                x = x[..., ::-1]
            if geometric:
                x = warp(x, cv2.BORDER_REPLICATE)
            out[key] = np.ascontiguousarray(x)
        if "flow" in item:
            f = item["flow"].astype(np.float32)
            if mirror:
                f = f[..., ::-1].copy()
                f[0] = -f[0]
            if geometric:
                f = warp(f, cv2.BORDER_CONSTANT)
                lin = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)[:, :2]
                f[:2] = np.einsum("ij,jhw->ihw", lin, f[:2])
            f *= amp
            out["flow"] = f.astype(item["flow"].dtype)
        if "region_stats" in item:
            st = item["region_stats"].astype(np.float32).copy()
            fx, fy = self.fields.get("dx"), self.fields.get("dy")
            if mirror:
                st = st[self.perm]
                if fx is not None:
                    st[:, fx] = -st[:, fx]
            if geometric and fx is not None and fy is not None:
                lin = cv2.getRotationMatrix2D((0.0, 0.0), angle, 1.0)[:, :2]
                st[:, [fx, fy]] = st[:, [fx, fy]] @ lin.T
            for name in _MAGNITUDE:
                if name in self.fields:
                    st[:, self.fields[name]] *= amp * scale
            if "strain" in self.fields:
                st[:, self.fields["strain"]] *= amp
            out["region_stats"] = st
        if mirror and item.get("answer_ids_mirrored") is not None:
            out["answer_ids"] = item["answer_ids_mirrored"]
        out.pop("answer_ids_mirrored", None)
        return out
