"""Everything measured on one clip: aligned crops, TV-L1 onset->apex flow, strain, regions, timing, blinks.

Only the frames that are needed are decoded: onset, apex and the ``stack_len`` stack frames (for a
clip without an apex, also up to ``flow.apex_search_frames`` frames onset..offset, searched with cheap DIS
flow). Every frame after the onset is registered to it by its own landmarks (:meth:`FaceAligner.register`),
so the flow sees the face's motion, not the head's. The single TV-L1 call dominates the cost; it runs in
the tools' helper thread while the DIS timing curves are measured (OpenCV releases the GIL, so they use
the share of the cores TV-L1's own threads leave idle; the result is the same as computing it after).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace

import cv2
import numpy as np

from . import flow as fl
from . import regions as rg
from .config import BuildConfig
from .errors import InputError
from .face import FaceAligner, eye_aspect_ratio, interocular, jaw_opening, lip_gap, warp
from .records import Clip, Evidence, Face
from .rigid import RigidFit
from .sources.frames import FrameReader
from .timing import Timer
from .tools import Tools


def compute_evidence(clip: Clip, cfg: BuildConfig, tools: Tools | None = None, reader: FrameReader | None = None
                     ) -> Evidence:
    """Measure a clip's motion onset->apex on the aligned face (see the module docstring).

    ``tools``: the process's :class:`Tools` (a build passes its own); None makes tools for this one call
    and closes them after, for a caller that measures a single clip (``deft predict`` on a clip folder)."""
    if tools is None:
        with Tools.create(cfg) as own:
            return compute_evidence(clip, cfg, own, reader)
    timer = Timer("decode", "face", "tvl1", "rest")
    reader = reader or FrameReader(clip)
    with timer("decode"):
        span, offset = _span(clip, reader)
    frames = _align_onset(clip, reader, tools.aligner, cfg, timer, span)
    with timer("rest"):
        geo = _Geometry(frames.face.landmarks, cfg)
        if frames.face.found_in is not None:
            _check_carried(clip, frames, geo, cfg, tools.dis)
    curves = _Curves(frames, clip.onset, geo, tools.dis, timer)
    apex = _apex(clip, span, curves, cfg)
    flow = _start_tvl1(frames, clip.onset, apex, curves, cfg, tools)
    stack_frames = stack_numbers(clip.onset, offset, cfg.output.stack_len, span)
    curves.measure([n for n in stack_frames if n != clip.onset])
    stack = np.stack([frames.small(n) for n in stack_frames])
    with timer("tvl1"):  # the time spent waiting for the flow: the part the work above did not hide
        f = flow.result()
    with timer("rest"):
        ev = _measure_regions(clip, offset, apex, f, frames, geo, curves, cfg)
    return Evidence(
        face=frames.face, apex=int(apex), apex_estimated=clip.apex is None, stack=stack,
        stack_frames=[int(n) for n in stack_frames], flow_scales=flow.nscales, timings=timer.seconds,
        offset=int(offset), times=reader.times, **ev,
    )


# --- the steps -------------------------------------------------------------------------------------


def _span(clip: Clip, reader: FrameReader) -> tuple[list[int], int]:
    """Available frame numbers onset..offset and the offset used."""
    numbers = reader.numbers
    if not numbers:
        raise InputError("missing_frame", f"clip {clip.clip_id} has no frames", clip.source_file,
                         clip.source_row, "frames")
    if clip.offset is not None and clip.offset > numbers[-1]:
        why = [f"offset frame {clip.offset} of clip {clip.clip_id} is beyond its last frame ({numbers[-1]})",
               *reader.notes]  # a truncated video says so
        raise InputError("frames_out_of_range", "; ".join(why), clip.source_file, clip.source_row, "offset")
    offset = clip.offset if clip.offset is not None else numbers[-1]
    if clip.apex is not None:
        offset = max(offset, clip.apex)
    span = [n for n in numbers if clip.onset <= n <= offset]
    for key, n in (("onset", clip.onset), ("apex", clip.apex)):
        if n is not None and n not in span:
            raise _absent(clip, key, n, numbers, reader.notes)
    if len(span) < 2:  # whatever path set the offset (a label, a folder's or a video's last frame)
        raise InputError("frames_out_of_range", f"clip {clip.clip_id} holds one frame ({clip.onset}): no motion to "
                         f"measure", clip.source_file, clip.source_row, "offset")
    return span, offset


def _absent(clip: Clip, key: str, n: int, numbers: list[int], notes: list[str]) -> InputError:
    """A labelled frame the clip does not hold. Beyond its frames the range is named, as ``clip_from_folder``
    names a folder's: a video's frame count is known only once it is decoded, and ``deft predict`` on a video
    said no more than "apex frame 99 of clip manifest/user/clip is missing"."""
    if not numbers[0] <= n <= numbers[-1]:  # the reason a folder's rows get for it (sources.check_frames)
        where = "the video" if clip.video else "the clip"
        why = "; ".join([f"{key} frame {n} is outside the frames present in {where} ({numbers[0]}..{numbers[-1]})",
                         *notes])  # a truncated video says so
        return InputError("frames_out_of_range", why, clip.source_file, clip.source_row, key)
    return InputError("missing_frame", f"{key} frame {n} of clip {clip.clip_id} is missing", clip.source_file,
                      clip.source_row, key)


def _align_onset(clip: Clip, reader: FrameReader, aligner: FaceAligner, cfg: BuildConfig, timer: Timer,
                 span: Sequence[int] = ()) -> _Frames:
    """The face on the onset frame: its alignment, and the registered crops every later frame joins.

    Where the detector finds no face in the onset frame, the nearest later frame of ``span`` (the clip's frame
    numbers) that it finds one in lends its box (:func:`_face_nearby`): a head tilted back loses the detector's
    score for a frame or two, not the face. :func:`_check_carried` then tells an onset that holds no face, or none
    the flow can measure."""
    with timer("decode"):
        onset_img = reader.get(clip.onset)
    where = clip.frames.get(clip.onset) or clip.video or clip.clip_id
    try:
        with timer("face"):
            face = aligner.align(onset_img, where=str(where))
    except InputError as e:
        if e.reason != "no_face":
            raise
        with timer("face"):  # a frame stored turned: its later frames hold no upright face either, only weak boxes
            turn = _turn_hint(clip, aligner.turned(onset_img))
        if turn:
            raise clip.error("no_face", f"no face found upright in onset frame {clip.onset}{turn}", str(where),
                             "onset") from None
        n, box = _face_nearby(clip, reader, aligner, span, cfg.face.detect_nearby, timer)
        with timer("face"):
            if box is None:
                later = min(cfg.face.detect_nearby, sum(k > clip.onset for k in span))
                nor = f" or the {later} frame{'s' if later > 1 else ''} after it" if later else ""
                raise clip.error("no_face", f"no face found in onset frame {clip.onset}{nor}{_dark_hint(onset_img)}",
                                 str(where), "onset") from None
            face = replace(aligner.align(onset_img, where=str(where), box=box[0]), found_in=n, others=box[1])
    with timer("face"):
        turn = _turn_hint(clip, aligner.turn_of(onset_img, face.box))
    if turn:
        raise clip.error("no_face", f"the face found in onset frame {clip.onset} is not upright (upside down or "
                         f"sideways){turn}", str(where), "onset")
    return _Frames(reader, aligner, face, clip.onset, onset_img, cfg.output.stack_size, timer,
                   cfg.flow.match_brightness)


def _face_nearby(clip: Clip, reader: FrameReader, aligner: FaceAligner, span: Sequence[int], most: int,
                 timer: Timer) -> tuple[int | None, tuple[tuple[float, float, float, float], int] | None]:
    """The first of the ``most`` frames after the onset (nearest first) in which a face is found: its number,
    and its box with the count of other faces there (:meth:`FaceAligner.locate`); or (None, None). A frame
    that cannot be read ends the search: the onset's own no_face is the clip's reason, not that frame's."""
    for n in [k for k in span if k > clip.onset][:most]:
        try:
            with timer("decode"):
                img = reader.get(n)
        except InputError:
            break
        with timer("face"):
            found = aligner.locate(img)
        if found is not None:
            return n, found
    return None, None


def _check_carried(clip: Clip, frames: _Frames, geo: _Geometry, cfg: BuildConfig, dis) -> None:
    """A box carried back from frame ``found_in`` (:func:`_align_onset`) holds a measurable onset face only where
    the onset's crop matches that frame's, its small motion followed by DIS (``face.face_match``, as the apex must
    match the onset): a black, flat or other picture before the face (a title card, another person) does not, and
    neither the apex (which may come before the face, or be the onset) nor the detector can tell it. Nor where the
    onset is much blurrier than that frame (``face.carried_sharpness``): a blur the detector failed on still
    correlates, but leaves no texture for the flow, and the labels read contradicted."""
    n = frames.face.found_in
    onset, found = frames.crops[clip.onset], frames.crop(n)
    where = str(clip.frames.get(clip.onset) or clip.video or clip.source_file)
    match = rg.appearance_match(onset, found, dis.calc(onset, found, None), {"_face": geo.face})["_face"]
    if match < cfg.face.face_match:
        raise clip.error("no_face", f"no face found in onset frame {clip.onset}: the face found in frame {n} does not "
                         f"match it (normalised correlation {match:.2f})", where, "onset")
    sharp = _sharpness(onset, geo.face) / max(_sharpness(found, geo.face), 1e-9)
    if sharp < cfg.face.carried_sharpness:
        raise clip.error("no_face", f"no face found in onset frame {clip.onset}: it is blurred (its face's gradient "
                         f"energy is {sharp:.2f} of frame {n}'s, where the face was found)", where, "onset")


def _sharpness(crop: np.ndarray, mask: np.ndarray) -> float:
    """Mean gradient energy (Sobel) over ``mask``: what texture a flow has to follow."""
    img = crop.astype(np.float32)
    gx, gy = cv2.Sobel(img, cv2.CV_32F, 1, 0), cv2.Sobel(img, cv2.CV_32F, 0, 1)
    return float(np.mean((gx * gx + gy * gy)[mask]))


# ffmpeg's filter for each turn FaceAligner.turned names; the hint encodes losslessly (FFV1): ffmpeg's default
# encoder settings would blur the sub-pixel motion the build measures
_FFMPEG_TURN = {"90° clockwise": "transpose=1", "90° anticlockwise": "transpose=2", "180°": "hflip,vflip"}


def _turn_hint(clip: Clip, how: str | None) -> str:
    """The end of a no-face reason where the onset frame shows a face upright only turned ``how``
    (:meth:`FaceAligner.turned`, :meth:`FaceAligner.turn_of`)."""
    if how is None:
        return ""
    fix = f"rotate the video losslessly (ffmpeg -i IN -vf {_FFMPEG_TURN[how]} -c:v ffv1 OUT.mkv)" if clip.video else \
        "rotate the frames"
    if how == "180°":  # the detector cannot tell a face upside down from one flipped top to bottom, mirrored
        fix += (" or, where the recording was flipped top to bottom rather than turned, flip it back"
                + (" (-vf vflip)" if clip.video else "") + ": turned, a flipped face stays mirrored, its left and "
                "right sides swapped")
    return f"; one is found with the frame turned {how}: {fix}"


DARK = 40  # grey level (of 255) the brightest 1 % of a frame stays under in a frame too dark to show a face


def _dark_hint(onset_img: np.ndarray) -> str:
    """The end of a no-face reason where the onset frame is nearly black: an underexposed recording, or samples of
    more bits than the file says (12-bit data in a 16-bit video reads at most 16 of 255)."""
    top = float(np.percentile(onset_img, 99))
    if top >= DARK:
        return ""
    return (f"; the frame is nearly black (its brightest 1 % at grey {top:.0f} of 255): an underexposed recording, "
            f"or high-bit-depth samples read at 8 bits; brighten or rescale it")


class _Frames:
    """A clip's frames as registered crops: each frame decoded, registered and resized at most once."""

    def __init__(self, reader: FrameReader, aligner: FaceAligner, face: Face, onset: int, onset_img: np.ndarray,
                 small_size: int, timer: Timer, match_brightness: bool = True):
        self.reader, self.aligner, self.face, self.small_size, self.timer = reader, aligner, face, small_size, timer
        self.onset, self.match_brightness = onset, match_brightness
        self.crops = {onset: warp(onset_img, face)}
        self.inside = {onset: _in_frame(onset_img.shape, face.matrix, face.size)}
        self.matrices = {onset: face.matrix}
        self.landmarks = {onset: face.landmarks}
        self._small: dict[int, np.ndarray] = {}

    def crop(self, n: int) -> np.ndarray:
        if n not in self.crops:
            with self.timer("decode"):
                img = self.reader.get(n)
            with self.timer("face"):
                # The nearest frame registered so far: where the head moved too far for the onset's alignment
                near = min(self.matrices, key=lambda k: (abs(k - n), k))
                m, lm = self.aligner.register(img, self.face, near=self.matrices[near])
                crop = warp(img, self.face, m)
                if self.match_brightness:  # exposure flicker is no motion (fl.match_brightness)
                    crop = fl.match_brightness(crop, self.crops[self.onset])
                self.crops[n], self.matrices[n], self.landmarks[n] = crop, m, lm
                self.inside[n] = _in_frame(img.shape, m, self.face.size)
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

    def eyes(self, open_ear: float = 0.0) -> dict[int, float]:
        """Eye openness of every registered frame that shows the eyes, relative to the most open one, or to
        ``open_ear`` where the eyes never open wider (then no frame of the clip counts as open: no blink can be
        seen)."""
        shown = {n: tuple(a for a in (36, 42) if self._inside(n, tuple(range(a, a + 6)))) for n in self.landmarks}
        if all(len(eyes) == 2 for eyes in shown.values()):  # both eyes in every frame: their mean, as always
            ear = {n: eye_aspect_ratio(lm) for n, lm in self.landmarks.items()}
            top = max(max(ear.values(), default=0.0), open_ear)
            return {n: (v / top if top > 0 else 1.0) for n, v in sorted(ear.items())}
        # an eye the frame's edge cuts leaves the other to read: each eye against its own most open (the two differ: a
        # squint, a 3/4 view; one shared maximum made a frame showing the narrower eye alone read as shut), the eyes a
        # frame shows averaged
        per_eye = {a: {n: eye_aspect_ratio(self.landmarks[n], (a,)) for n, eyes in shown.items() if a in eyes}
                   for a in (36, 42)}
        tops = {a: max(max(ears.values(), default=0.0), open_ear) for a, ears in per_eye.items()}
        return {n: float(np.mean([per_eye[a][n] / tops[a] if tops[a] > 0 else 1.0 for a in eyes]))
                for n, eyes in sorted(shown.items()) if eyes}

    def lips(self) -> dict[int, float]:
        """Gap between the inner lips of every registered frame that shows them, IOD (:func:`face.lip_gap`)."""
        return {n: lip_gap(lm) for n, lm in self._showing(_INNER_LIPS)}

    def jaw(self) -> dict[int, float]:
        """The chin's depth below the nose in every registered frame that shows the mouth, IOD
        (:func:`face.jaw_opening`). The chin itself may lie beyond the frame: the landmark model places it by the
        face's shape, which the mouth above it holds (a wide-open mouth at a webcam's lower edge)."""
        return {n: jaw_opening(lm) for n, lm in self._showing(_INNER_LIPS + _NOSE)}

    def _showing(self, points: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
        """(frame, landmarks) of the registered frames whose ``points`` lie inside the video frame, by a margin.
        Beyond the frame's edge the crop holds the edge's pixels, replicated: the landmark model places a mouth or
        a chin there that no face has (a mouth cut by the frame's lower edge read as a jaw dropping 30 px)."""
        return [(n, lm) for n, lm in sorted(self.landmarks.items()) if self._inside(n, points)]

    def _inside(self, n: int, points: tuple[int, ...]) -> bool:
        """Whether landmarks ``points`` of frame ``n`` lie inside the video frame by :attr:`_margin`."""
        eroded = self.__dict__.setdefault("_eroded", {})
        if n not in eroded:
            k = 2 * self._margin + 1
            eroded[n] = cv2.erode(self.inside[n].astype(np.uint8), np.ones((k, k), np.uint8)) > 0
        inside = eroded[n]
        p = np.rint(np.asarray(self.landmarks[n], float)[list(points)]).astype(int)
        h, w = inside.shape
        ok = (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
        return bool(ok.all() and inside[p[:, 1], p[:, 0]].all())

    @property
    def _margin(self) -> int:
        """Crop px a landmark must lie inside the frame's edge: 3 % of the inter-ocular distance, at least 1."""
        return max(1, int(round(0.03 * interocular(np.asarray(self.face.landmarks, float)))))


_INNER_LIPS = tuple(range(60, 68))
_NOSE = (27, 28, 29, 30)


def _in_frame(shape: tuple[int, ...], matrix: np.ndarray, size: int) -> np.ndarray:
    """The crop's pixels that lie inside the video frame (the rest are its edge, replicated by the warp)."""
    ones = np.ones(shape[:2], np.uint8)
    return cv2.warpAffine(ones, matrix, (size, size), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0).astype(bool)


class _Geometry:
    """The clip's geometry, once: AU regions, face and floor masks and rigid fits, at the crop size (the
    stored flow) and at the stack size (the DIS curves)."""

    def __init__(self, landmarks: np.ndarray, cfg: BuildConfig):
        s, k = cfg.face.crop_size, cfg.output.stack_size
        lm = landmarks.astype(np.float64)
        self.landmarks = lm
        self.face = rg.face_mask(lm, s, cfg.regions)
        self.masks = rg.region_masks(lm, s, within=self.face, cfg=cfg.regions)
        self.floor = rg.floor_mask(lm, self.masks, self.face, cfg.regions)
        self.rigid = RigidFit(lm, (s, s), mask=self.floor, cfg=cfg.head)
        lm_k = lm * (k / s)
        face_k = rg.face_mask(lm_k, k, cfg.regions)
        self.masks_k = rg.region_masks(lm_k, k, within=face_k, cfg=cfg.regions)
        self.rigid_k = RigidFit(lm_k, (k, k), mask=rg.floor_mask(lm_k, self.masks_k, face_k, cfg.regions),
                                cfg=cfg.head)
        self.sizes = (s, k)  # crop px, stack px


class _Curves:
    """DIS motion from the onset, per AU region, of the frames measured so far (stack-size crops)."""

    def __init__(self, frames: _Frames, onset: int, geo: _Geometry, dis, timer: Timer):
        self.frames, self.onset, self.geo, self.dis, self.timer = frames, onset, geo, dis, timer
        self.at: dict[int, dict[str, float]] = {}  # frame -> {region: mean DIS magnitude}

    def measure(self, ns: list[int]) -> None:
        todo = [n for n in dict.fromkeys(ns) if n not in self.at]
        if not todo:
            return
        imgs = [self.frames.small(n) for n in todo]
        with self.timer("rest"):
            res = fl.dis_magnitudes(self.frames.small(self.onset), imgs, self.geo.masks_k, dis=self.dis,
                                    rigid=self.geo.rigid_k)
        for i, n in enumerate(todo):
            self.at[n] = {k: float(v[i]) for k, v in res.items()}

    def vectors(self, n: int) -> dict[str, tuple[float, float]]:
        """Each region's mean DIS motion (dx, dy, crop px) from the onset to frame ``n``: the same flow as the
        curve's there, computed again for its direction (one frame's DIS is cheaper than every frame's means)."""
        if n == self.onset:
            return {}
        with self.timer("rest"):
            vec = fl.dis_region_vectors(self.frames.small(self.onset), self.frames.small(n), self.geo.masks_k,
                                        dis=self.dis, rigid=self.geo.rigid_k)
        s, k = self.geo.sizes
        return {name: (dx * s / k, dy * s / k) for name, (dx, dy) in vec.items()}

    def score(self, n: int, top: int) -> float:
        """How much frame ``n`` moved from the onset: the mean of its ``top`` most-moved AU regions (a
        micro-expression is local, so the whole-face mean would drown it in noise and head drift)."""
        vals = sorted((v for k, v in self.at[n].items() if not k.startswith("_")), reverse=True)
        return float(np.mean(vals[:top])) if vals else 0.0


def _apex(clip: Clip, span: list[int], curves: _Curves, cfg: BuildConfig) -> int:
    """The label's apex, or the frame whose AU regions moved most from the onset (cheap DIS)."""
    if clip.apex is not None:  # in the span: _span checked it
        return clip.apex
    cand = [n for n in span if n != clip.onset]
    if not cand:
        return clip.onset
    top = cfg.flow.apex_top_regions
    step = max(1, int(np.ceil(len(cand) / cfg.flow.apex_search_frames)))
    curves.measure(cand[::step])
    best = max((n for n in curves.at if n != clip.onset), key=lambda n: curves.score(n, top))
    if step > 1:
        i = cand.index(best)
        curves.measure(cand[max(0, i - step + 1): i + step])
        best = max((n for n in curves.at if n != clip.onset), key=lambda n: curves.score(n, top))
    return best


@dataclass
class _PendingFlow:
    future: Future
    nscales: int
    onset_crop: np.ndarray
    apex_crop: np.ndarray

    def result(self) -> np.ndarray:
        return self.future.result()


def _start_tvl1(frames: _Frames, onset: int, apex: int, curves: _Curves, cfg: BuildConfig, tools: Tools
                ) -> _PendingFlow:
    """Onset -> apex TV-L1 in the helper thread, its pyramid as deep as the largest region motion needs
    (measured with cheap DIS first)."""
    onset_crop, apex_crop = frames.crops[onset], frames.crop(apex)
    curves.measure([apex] if apex != onset else [])
    s, k = curves.geo.sizes
    largest = max(curves.at[apex].values(), default=0.0) * s / k if apex in curves.at else 0.0
    nscales = cfg.flow.scales_for(largest)
    future = tools.helper.submit(fl.tvl1_flow, tools.tvl1, onset_crop, apex_crop, nscales)
    return _PendingFlow(future, nscales, onset_crop, apex_crop)


def _measure_regions(clip: Clip, offset: int, apex: int, f: np.ndarray, frames: _Frames, geo: _Geometry,
                     curves: _Curves, cfg: BuildConfig) -> dict:
    """The flow with head motion removed, its strain, the region statistics and the noise floor, the eyes,
    and the crops as stored; a face the apex no longer matches is no face."""
    s = cfg.face.crop_size
    onset_crop, apex_crop = frames.crops[clip.onset], frames.crops[apex]
    mouths = (rg.mouth_opening(geo.landmarks, onset_crop.shape), rg.mouth_opening(frames.landmarks[apex], apex_crop.shape))
    match = rg.appearance_match(onset_crop, apex_crop, f, {**geo.masks, "_face": geo.face}, unseen=mouths,
                                residual=cfg.check.region_residual)
    # A region the video frame's edge cuts at the onset or the apex is the edge's replicated pixels there, which
    # do not move: it is lost as an occluded region is (its match at most the share of it inside the frame).
    inside = frames.inside[clip.onset] & frames.inside[apex]
    match = {n: min(v, float(inside[m].mean())) if (m := geo.masks.get(n)) is not None and m.any() else v
             for n, v in match.items()}
    if match.get("_face", 1.0) < cfg.face.face_match:
        raise clip.error("no_face", f"the face in apex frame {apex} does not match the onset's (normalised "
                         f"correlation {match['_face']:.2f}): a cut, another face, or the face left the frame",
                         clip.frames.get(apex) or clip.video, "apex")
    peaks, shares = _timing(clip, offset, apex, curves.at, geo.masks)
    f, head, moved = geo.rigid.remove(f, before=frames.head(apex), select=True)
    strain = fl.optical_strain(f)
    stats, floor, spread = rg.region_stats(
        f, strain, geo.masks, geo.face, peak_times=peaks, apex_shares=shares, landmarks=geo.landmarks,
        floor_allowed=geo.floor & rg.skull_mask(geo.landmarks, (s, s)), head=moved, head_error=cfg.head.error,
        head_shares=rg.head_error_shares(geo.landmarks, cfg.head.error_reach, cfg.head.error_least, cfg.regions),
        match=match, cfg=cfg.regions, enlargement=frames.face.enlargement)
    # The timing DIS's own direction at the apex beside TV-L1's, in crop px: a second flow that fails elsewhere
    # (the cross-check reads a lid closing over the eye by it where TV-L1 reads the lid rising)
    second = curves.vectors(apex)
    stats = [replace(r, dis_dx=second[r.name][0], dis_dy=second[r.name][1]) if r.name in second else r for r in stats]
    if cfg.regions.motion == "landmarks":  # the baseline: dlib's points in place of the flow
        stats, floor, spread = rg.landmark_stats(stats, geo.landmarks, frames.landmarks[apex], cfg.face.head_landmarks,
                                                 cfg.regions.min_spread * max(1.0, frames.face.enlargement))
    eyes = frames.eyes(cfg.face.open_ear)
    size = cfg.output.image_size
    if size != s:
        onset_crop = cv2.resize(onset_crop, (size, size), interpolation=cv2.INTER_AREA)
        apex_crop = cv2.resize(apex_crop, (size, size), interpolation=cv2.INTER_AREA)
    return dict(flow=f, strain=strain, regions=stats, floor=floor, floor_spread=spread, head_motion=head,
                onset_crop=onset_crop, apex_crop=apex_crop, eyes=eyes, lips=frames.lips(), jaw=frames.jaw(),
                blinks=[n for n, v in eyes.items() if v < cfg.face.blink_ratio])


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


def _nearest(available: list[int], n: int) -> int:
    i = int(np.searchsorted(available, n))
    cands = [available[j] for j in (i - 1, i) if 0 <= j < len(available)]
    return min(cands, key=lambda a: (abs(a - n), a))


def stack_numbers(onset: int, offset: int, length: int, available: list[int]) -> list[int]:
    """``length`` frame numbers evenly spaced onset..offset (nearest available; may repeat)."""
    want = np.linspace(onset, offset, max(1, length))
    return [_nearest(available, int(round(w))) for w in want]
