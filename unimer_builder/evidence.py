"""Everything measured on one clip: aligned crops, TV-L1 onset->apex flow, strain, regions, timing, blinks.

Only the frames that are needed are decoded: onset, apex and the ``stack_len`` stack frames (for a
clip without an apex, also up to ``APEX_SEARCH_FRAMES`` frames onset..offset, searched with cheap DIS
flow). Every frame after the onset is registered to it by its own landmarks (:meth:`FaceAligner.register`),
so the flow sees the face's motion, not the head's. The single TV-L1 call dominates the cost; everything
else works on small arrays.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import cv2
import numpy as np

from . import flow as fl
from . import regions as rg
from .config import BuildConfig
from .errors import InputError
from .face import eye_aspect_ratio, get_aligner, warp
from .records import Clip, Evidence, Face
from .sources.frames import FrameReader

APEX_TOP_REGIONS = 3
APEX_SEARCH_FRAMES = 16  # frames sampled onset..offset to estimate a missing apex (then refined locally)


class _Timer:
    """Seconds per stage of one clip."""

    def __init__(self):
        self.t = {"decode": 0.0, "face": 0.0, "tvl1": 0.0, "rest": 0.0}

    @contextmanager
    def __call__(self, key: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.t[key] += time.perf_counter() - t0


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


class _Frames:
    """A clip's frames as registered crops: each frame decoded, registered and resized at most once."""

    def __init__(self, reader: FrameReader, aligner, face: Face, onset: int, onset_img: np.ndarray,
                 small_size: int, tm: _Timer):
        self.reader, self.aligner, self.face, self.small_size, self.tm = reader, aligner, face, small_size, tm
        self.crops = {onset: warp(onset_img, face)}
        self.matrices = {onset: face.matrix}
        self.landmarks = {onset: face.landmarks}
        self._small: dict[int, np.ndarray] = {}

    def crop(self, n: int) -> np.ndarray:
        if n not in self.crops:
            with self.tm("decode"):
                img = self.reader.get(n)
            with self.tm("face"):
                # Start from the nearest frame registered so far: the head moves little between them.
                near = min(self.matrices, key=lambda k: (abs(k - n), k))
                m, lm = self.aligner.register(img, self.face, start=self.matrices[near])
                self.crops[n], self.matrices[n], self.landmarks[n] = warp(img, self.face, m), m, lm
        return self.crops[n]

    def small(self, n: int) -> np.ndarray:
        if n not in self._small:
            c = self.crop(n)
            k = self.small_size
            self._small[n] = c if c.shape[0] == k else cv2.resize(c, (k, k), interpolation=cv2.INTER_AREA)
        return self._small[n]

    def head(self, n: int) -> np.ndarray:
        """2x3 similarity, crop px: where the head had moved in frame ``n`` (undone by its registration)."""
        onset = np.vstack([self.face.matrix, [0, 0, 1]])
        reg = np.vstack([self.matrices[n], [0, 0, 1]])
        return np.linalg.inv(reg @ np.linalg.inv(onset))[:2]

    def eyes(self) -> dict[int, float]:
        """Eye openness of every registered frame, relative to the most open one."""
        ear = {n: eye_aspect_ratio(lm) for n, lm in self.landmarks.items()}
        top = max(ear.values()) if ear else 0.0
        return {n: (v / top if top > 0 else 1.0) for n, v in sorted(ear.items())}


def compute_evidence(clip: Clip, cfg: BuildConfig, aligner=None, tvl1=None, reader=None) -> Evidence:
    """Measure a clip's motion onset->apex on the aligned face (see the module docstring)."""
    tm = _Timer()
    reader = reader or FrameReader(clip)
    with tm("decode"):
        span, offset = _span(clip, reader)
        onset_img = reader.get(clip.onset)
    aligner = aligner or get_aligner(cfg.crop_size, cfg.face_detector)
    with tm("face"):
        where = clip.frames.get(clip.onset) or clip.video or clip.clip_id
        face = aligner.align(onset_img, where=str(where))
    S, K = cfg.crop_size, cfg.stack_size
    lm = face.landmarks.astype(np.float64)
    frames = _Frames(reader, aligner, face, clip.onset, onset_img, K, tm)
    tvl1 = tvl1 if tvl1 is not None else fl.make_tvl1(cfg.flow)

    with tm("rest"):
        # Geometry, once per clip: AU regions, face/floor masks and rigid-fit samples at both sizes.
        fmask = rg.face_mask(lm, S)
        masks = rg.region_masks(lm, S, within=fmask)
        fl_allowed = rg.floor_mask(lm, masks, fmask)
        rigid = fl.RigidFit(lm, (S, S), mask=fl_allowed, model=cfg.head_model)
        lm_k = lm * (K / S)
        fmask_k = rg.face_mask(lm_k, K)
        masks_k = rg.region_masks(lm_k, K, within=fmask_k)
        rigid_k = fl.RigidFit(lm_k, (K, K), mask=rg.floor_mask(lm_k, masks_k, fmask_k), model=cfg.head_model)
        dis = fl.make_dis(cfg.dis_preset, cfg.dis_finest_scale)
    curves: dict[int, dict[str, float]] = {}  # frame -> {region: mean DIS magnitude}

    def measure(ns: list[int]) -> None:
        todo = [n for n in dict.fromkeys(ns) if n not in curves]
        if not todo:
            return
        imgs = [frames.small(n) for n in todo]
        with tm("rest"):
            res = fl.dis_magnitudes(frames.small(clip.onset), imgs, masks_k, dis=dis, rigid=rigid_k)
        for i, n in enumerate(todo):
            curves[n] = {k: float(v[i]) for k, v in res.items()}

    apex = _apex(clip, span, measure, curves)
    onset_crop, apex_crop = frames.crops[clip.onset], frames.crop(apex)
    # The pyramid is as deep as the largest region motion needs (cheap DIS first); TV-L1 (the dominant
    # cost) then runs in a helper thread: OpenCV releases the GIL, so the DIS timing curves below run on
    # the share of the cores TV-L1's own threads leave idle. The result is the same as computing it after.
    measure([apex] if apex != clip.onset else [])
    largest = max(curves[apex].values(), default=0.0) * S / K if apex in curves else 0.0
    nscales = cfg.flow.scales_for(largest)
    pending = _tvl1_thread().submit(fl.tvl1_flow, tvl1, onset_crop, apex_crop, nscales)
    stack_frames = stack_numbers(clip.onset, offset, cfg.stack_len, span)
    measure([n for n in stack_frames if n != clip.onset])
    stack = np.stack([frames.small(n) for n in stack_frames])

    # "tvl1" is the time spent waiting for the flow: the part the work above did not hide.
    with tm("tvl1"):
        f = pending.result()

    with tm("rest"):
        match = rg.appearance_match(onset_crop, apex_crop, f, {**masks, "_face": fmask})
        if match.get("_face", 1.0) < cfg.face_match:
            raise InputError("no_face", f"the face in apex frame {apex} does not match the onset's (normalised "
                             f"correlation {match['_face']:.2f}): a cut, another face, or the face left the frame",
                             str(clip.frames.get(apex) or clip.video or clip.source_file), clip.source_row, "apex")
        f, head, moved = rigid.remove(f, before=frames.head(apex))
        strain = fl.optical_strain(f)
        peaks, shares = _timing(clip, offset, apex, curves, masks)
        stats, floor, spread = rg.region_stats(f, strain, masks, fmask, peak_times=peaks, apex_shares=shares,
                                               landmarks=lm, floor_allowed=fl_allowed & rg.skull_mask(lm, (S, S)), head=moved,
                                               head_error=cfg.head_error, match=match)
        eyes = frames.eyes()
        if cfg.image_size != S:
            onset_out = cv2.resize(onset_crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA)
            apex_out = cv2.resize(apex_crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA)
        else:
            onset_out, apex_out = onset_crop, apex_crop
    return Evidence(
        face=face, apex=int(apex), apex_estimated=clip.apex is None, flow=f, strain=strain, regions=stats,
        floor=floor, floor_spread=spread, head_motion=head, onset_crop=onset_out, apex_crop=apex_out,
        stack=stack, stack_frames=[int(n) for n in stack_frames], eyes=eyes,
        blinks=[n for n, v in eyes.items() if v < cfg.blink_ratio], flow_scales=nscales, timings=tm.t,
    )


def _apex(clip: Clip, span: list[int], measure, curves: dict[int, dict[str, float]]) -> int:
    """The label's apex, or the frame whose AU regions moved most from the onset (cheap DIS)."""
    if clip.apex is not None:
        if clip.apex not in span:
            raise InputError("missing_frame", f"apex frame {clip.apex} of clip {clip.clip_id} is missing",
                             clip.source_file, clip.source_row, "apex")
        return clip.apex
    cand = [n for n in span if n != clip.onset]
    if not cand:
        return clip.onset
    step = max(1, int(np.ceil(len(cand) / APEX_SEARCH_FRAMES)))
    measure(cand[::step])
    best = max((n for n in curves if n != clip.onset), key=lambda n: _apex_score(curves[n]))
    if step > 1:
        i = cand.index(best)
        measure(cand[max(0, i - step + 1): i + step])
        best = max((n for n in curves if n != clip.onset), key=lambda n: _apex_score(curves[n]))
    return best


def _timing(clip: Clip, offset: int, apex: int, curves: dict[int, dict[str, float]], masks: dict
            ) -> tuple[dict[str, float] | None, dict[str, float] | None]:
    """From the DIS curves: when each region moved most (a share of onset..offset), and how much of that
    most it has moved at the apex (the timing test: a region that moved with the labelled apex is well
    under way there; the exact frame of a DIS peak is noise for sub-pixel motion)."""
    if offset <= clip.onset or not curves:
        return None, None
    frames_t = sorted(curves)
    mat = np.array([[curves[n][name] for n in frames_t] for name in masks])  # R x T
    best = np.asarray(frames_t)[mat.argmax(axis=1)]
    peaks = {name: float((b - clip.onset) / (offset - clip.onset)) for name, b in zip(masks, best, strict=True)}
    if apex not in curves:
        return peaks, None
    top = mat.max(axis=1)
    at = np.array([curves[apex][name] for name in masks])
    shares = {name: float(a / t) if t > 0 else 1.0 for name, a, t in zip(masks, at, top, strict=True)}
    return peaks, shares
