"""Everything measured on one clip: aligned crops, TV-L1 onset->apex flow, strain, regions, timing.

Only the frames that are needed are decoded: onset, apex and the ``stack_len`` stack frames (for a
clip without an apex, also up to ``APEX_SEARCH_FRAMES`` frames onset..offset, searched with cheap DIS
flow). The single TV-L1 call dominates the cost; everything else works on small arrays.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from . import flow as fl
from . import regions as rg
from .config import BuildConfig
from .errors import InputError
from .face import get_aligner
from .records import Clip, Evidence
from .sources.frames import FrameReader

APEX_TOP_REGIONS = 3
APEX_SEARCH_FRAMES = 16  # frames sampled onset..offset to estimate a missing apex (then refined locally)


class _Timer:
    def __init__(self):
        self.t = {"decode": 0.0, "face": 0.0, "tvl1": 0.0, "rest": 0.0}

    def add(self, key: str, t0: float) -> float:
        now = time.perf_counter()
        self.t[key] += now - t0
        return now


def _nearest(available: list[int], n: int) -> int:
    i = int(np.searchsorted(available, n))
    cands = [available[j] for j in (i - 1, i) if 0 <= j < len(available)]
    return min(cands, key=lambda a: (abs(a - n), a))


def _span(clip: Clip, reader: FrameReader) -> tuple[list[int], int]:
    """Available frame numbers onset..offset and the offset used."""
    numbers = reader.numbers
    if not numbers:
        raise InputError("missing_frame", f"clip {clip.clip_id} has no frames", clip.source_file,
                         clip.source_row, "frames")
    offset = clip.offset if clip.offset is not None else numbers[-1]
    if clip.apex is not None:
        offset = max(offset, clip.apex)
    span = [n for n in numbers if clip.onset <= n <= offset]
    if not span or clip.onset not in span:
        raise InputError("missing_frame", f"onset frame {clip.onset} of clip {clip.clip_id} is missing",
                         clip.source_file, clip.source_row, "onset")
    return span, offset


def _apex_score(curve: dict[str, float]) -> float:
    """How much a frame moved from the onset: mean of its three most-moved AU regions (a micro-
    expression is local, so the whole-face mean would drown it in noise and head drift)."""
    vals = sorted((v for k, v in curve.items() if not k.startswith("_")), reverse=True)
    return float(np.mean(vals[:APEX_TOP_REGIONS])) if vals else 0.0


def stack_numbers(onset: int, offset: int, length: int, available: list[int]) -> list[int]:
    """``length`` frame numbers evenly spaced onset..offset (nearest available; may repeat)."""
    want = np.linspace(onset, offset, max(1, length))
    return [_nearest(available, int(round(w))) for w in want]


_THREAD: list = []


def _tvl1_thread():
    """One helper thread per process for TV-L1 (created on first use, reused for every clip)."""
    if not _THREAD:
        from concurrent.futures import ThreadPoolExecutor

        _THREAD.append(ThreadPoolExecutor(1, thread_name_prefix="unimer-tvl1"))
    return _THREAD[0]


def compute_evidence(clip: Clip, cfg: BuildConfig, aligner=None, tvl1=None, reader=None) -> Evidence:
    """Measure a clip's motion onset->apex on the aligned face (see the module docstring)."""
    tm = _Timer()
    t0 = time.perf_counter()
    reader = reader or FrameReader(clip)
    span, offset = _span(clip, reader)
    onset_img = reader.get(clip.onset)
    t0 = tm.add("decode", t0)

    aligner = aligner or get_aligner(cfg.crop_size)
    where = clip.frames.get(clip.onset) or clip.video or clip.clip_id
    face = aligner.align(onset_img, where=str(where))
    S = cfg.crop_size
    K = cfg.stack_size
    lm = face.landmarks.astype(np.float64)
    onset_crop = aligner.warp(onset_img, face)
    t0 = tm.add("face", t0)
    tvl1 = tvl1 if tvl1 is not None else fl.make_tvl1(cfg.flow)

    # With the apex known, TV-L1 (the dominant cost) starts now in a helper thread; OpenCV releases the
    # GIL, so the geometry and the DIS timing curves below run on the share of the cores TV-L1's own
    # threads leave idle. The result is the same as computing it afterwards.
    crops: dict[int, np.ndarray] = {clip.onset: onset_crop}
    pending = None
    if clip.apex is not None and clip.apex in span and clip.apex != clip.onset:
        apex_img = reader.get(clip.apex)
        t0 = tm.add("decode", t0)
        crops[clip.apex] = aligner.warp(apex_img, face)
        t0 = tm.add("face", t0)
        pending = _tvl1_thread().submit(fl.tvl1_flow, tvl1, onset_crop, crops[clip.apex])

    # Geometry, once per clip: AU regions, face/floor masks and rigid-fit samples at both sizes.
    masks = rg.region_masks(lm, S)
    fmask = rg.face_mask(lm, S)
    fl_allowed = rg.floor_mask(lm, masks, fmask)
    rigid = fl.RigidFit(lm, (S, S), mask=fl_allowed)
    k_scale = K / S
    lm_k = lm * k_scale
    masks_k = rg.region_masks(lm_k, K)
    rigid_k = fl.RigidFit(lm_k, (K, K), mask=rg.floor_mask(lm_k, masks_k, rg.face_mask(lm_k, K)))
    dis = fl.make_dis("fast")
    small: dict[int, np.ndarray] = {}

    def small_of(n: int) -> np.ndarray:
        nonlocal t0
        if n not in small:
            if n not in crops:
                img = reader.get(n)
                t0 = tm.add("decode", t0)
                crops[n] = aligner.warp(img, face)
                t0 = tm.add("face", t0)
            c = crops[n]
            small[n] = c if K == S else cv2.resize(c, (K, K), interpolation=cv2.INTER_AREA)
        return small[n]

    t0 = tm.add("rest", t0)
    ref_small = small_of(clip.onset)
    curves: dict[int, dict[str, float]] = {}  # frame -> {region: mean DIS magnitude}

    def measure(ns: list[int]) -> None:
        nonlocal t0
        todo = [n for n in dict.fromkeys(ns) if n not in curves]
        if not todo:
            return
        imgs = [small_of(n) for n in todo]
        t0 = tm.add("rest", t0)
        res = fl.dis_magnitudes(ref_small, imgs, masks_k, dis=dis, rigid=rigid_k)
        for i, n in enumerate(todo):
            curves[n] = {k: float(v[i]) for k, v in res.items()}
        t0 = tm.add("rest", t0)

    # Apex: the label's, or the frame whose AU regions moved most from the onset (cheap DIS).
    apex_estimated = clip.apex is None
    if apex_estimated:
        cand = [n for n in span if n != clip.onset]
        if not cand:
            apex = clip.onset
        else:
            step = max(1, int(np.ceil(len(cand) / APEX_SEARCH_FRAMES)))
            measure(cand[::step])
            best = max((n for n in curves if n != clip.onset), key=lambda n: _apex_score(curves[n]))
            if step > 1:
                i = cand.index(best)
                measure(cand[max(0, i - step + 1): i + step])
                best = max((n for n in curves if n != clip.onset), key=lambda n: _apex_score(curves[n]))
            apex = best
    else:
        apex = clip.apex
        if apex not in span:
            raise InputError("missing_frame", f"apex frame {apex} of clip {clip.clip_id} is missing",
                             clip.source_file, clip.source_row, "apex")

    stack_frames = stack_numbers(clip.onset, offset, cfg.stack_len, span)
    measure([n for n in stack_frames if n != clip.onset] + ([apex] if apex != clip.onset else []))
    stack = np.stack([small_of(n) for n in stack_frames])
    if apex not in crops:
        small_of(apex)
    apex_crop = crops[apex]
    t0 = tm.add("rest", t0)

    # "tvl1" is the time spent waiting for the flow: all of it when computed here, the part the work
    # above did not hide when it ran in the helper thread.
    f = pending.result() if pending is not None else fl.tvl1_flow(tvl1, onset_crop, apex_crop)
    t0 = tm.add("tvl1", t0)

    f, head = rigid.remove(f)
    strain = fl.optical_strain(f)
    peak_times = None
    if offset > clip.onset and curves:
        frames_t = sorted(curves)
        mat = np.array([[curves[n][name] for n in frames_t] for name in masks])  # R x T
        best = np.asarray(frames_t)[mat.argmax(axis=1)]
        peak_times = {name: float((b - clip.onset) / (offset - clip.onset)) for name, b in zip(masks, best, strict=True)}
    stats, floor, spread = rg.region_stats(f, strain, masks, fmask, peak_times=peak_times, landmarks=lm,
                                           floor_allowed=fl_allowed)
    if cfg.image_size != S:
        onset_out = cv2.resize(onset_crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA)
        apex_out = cv2.resize(apex_crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA)
    else:
        onset_out, apex_out = onset_crop, apex_crop
    tm.add("rest", t0)
    return Evidence(
        face=face, apex=int(apex), apex_estimated=apex_estimated, flow=f, strain=strain, regions=stats,
        floor=floor, floor_spread=spread, head_motion=head, onset_crop=onset_out, apex_crop=apex_out,
        stack=stack, stack_frames=[int(n) for n in stack_frames], timings=tm.t,
    )
