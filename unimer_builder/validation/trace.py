"""Region motion frame by frame around an annotated window, measured by two flow algorithms.

An annotator's instrument for what the eye cannot settle. A FACS coder sees motions of a pixel or more;
the builder reports half a pixel. Whether a "still" window is still at that level, or whether a "held"
smile drifts, is a measurement: :func:`trace` gives, for every frame asked, each region's mean motion
from a reference frame by TV-L1 (the builder's flow) and by dense DIS at the full crop size (another
algorithm with other failure modes). A motion both agree on, growing steadily over the frames around the
window, is the face's; one that only one algorithm sees, or that comes and goes from frame to frame, is
the flow's.

Both share the builder's registration and head-motion removal (so what the trace shows is what the
cross-check sees, not an independent test of those two steps).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace

import cv2
import numpy as np
import pandas as pd

from .. import evidence as ev
from .. import flow as fl
from ..config import BuildConfig
from ..sources import manifest as manifest_source
from ..sources.frames import FrameReader
from ..timing import Timer
from ..tools import Tools
from .real_footage import Window, write_manifest


def parse_frames(text: str) -> list[int]:
    """``"380:392"`` (every frame, end included), ``"380:392:2"`` or ``"380,384,386"``."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] <= 0):
                raise ValueError
            return list(range(parts[0], parts[1] + 1, parts[2] if len(parts) == 3 else 1))
        return [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise ValueError(f"frames {text!r}: write A:B, A:B:STEP or A,B,C (0-based video frames)") from None


def trace(window: Window, frames: list[int], regions: list[str] | None = None, ref: int | None = None,
          cfg: BuildConfig | None = None) -> pd.DataFrame:
    """One row per (frame, region): the mean motion (dx, dy crop px, head removed) from frame ``ref``
    (default: the window's onset) by TV-L1 and by DIS, and the head's motion removed (px at the crop
    centre). ``regions``: AU region names (default: all)."""
    cfg = cfg or BuildConfig()
    ref = window.onset if ref is None else int(ref)
    frames = sorted({int(n) for n in frames} - {ref})
    if not frames:
        raise ValueError("trace: give at least one frame other than the reference")
    with tempfile.TemporaryDirectory(prefix="unimer-trace-") as tmp:
        clip = next(iter(manifest_source.read(write_manifest([window], tmp))))
        last = max(frames + [ref])
        clip = replace(clip, onset=ref, apex=None, offset=last)
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        rows = []
        with Tools.create(cfg) as tools:
            timer = Timer("decode", "face", "tvl1", "rest")
            frs = ev._align_onset(clip, FrameReader(clip, first=min(frames + [ref])), tools.aligner, cfg, timer,
                                 list(range(ref + 1, last + 1)))
            geo = ev._Geometry(frs.face.landmarks, cfg)
            if frs.face.found_in is not None:  # a box carried back must hold the reference frame's face
                ev._check_carried(clip, frs, geo, cfg, tools.dis)
            names = list(geo.masks) if regions is None else list(regions)
            unknown = [r for r in names if r not in geo.masks]
            if unknown:
                raise ValueError(f"unknown regions {', '.join(unknown)}; known: {', '.join(geo.masks)}")
            onset = frs.crops[ref]
            for n in frames:
                apex = frs.crop(n)
                d = dis.calc(onset, apex, None)
                d, head, _ = geo.rigid.remove(d, before=frs.head(n))
                largest = max(float(np.hypot(*d[geo.masks[r]].mean(0))) for r in geo.masks)
                t = fl.tvl1_flow(tools.tvl1, onset, apex, cfg.flow.scales_for(largest))
                t, _, _ = geo.rigid.remove(t, before=frs.head(n))
                for r in names:
                    m = geo.masks[r]
                    (tx, ty), (dx, dy) = t[m].mean(0), d[m].mean(0)
                    rows.append({"frame": n, "region": r, "tvl1_dx": float(tx), "tvl1_dy": float(ty),
                                 "dis_dx": float(dx), "dis_dy": float(dy), "head_tx": head["tx"],
                                 "head_ty": head["ty"], "head_rotation": head["rotation"]})
    return pd.DataFrame(rows)


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Per (frame, region): both algorithms' magnitudes and the cosine between their vectors."""
    t = table[["tvl1_dx", "tvl1_dy"]].to_numpy()
    d = table[["dis_dx", "dis_dy"]].to_numpy()
    nt, nd = np.hypot(*t.T), np.hypot(*d.T)
    cos = np.einsum("ij,ij->i", t, d) / np.maximum(nt * nd, 1e-9)
    return table.assign(tvl1_px=nt, dis_px=nd, cos=cos)[["frame", "region", "tvl1_px", "dis_px", "cos"]]
