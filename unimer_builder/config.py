"""Build settings: every setting of every stage, in one frozen record nested by stage.

``BuildConfig`` holds what decides a row: the face (``face``), the optical flow and the apex search
(``flow``), the removal of head motion (``head``), the AU regions and the noise floor (``regions``), the
dual constraint (``check``), the text (``text``) and the stored arrays (``output``). Each stage reads its
own part (``cfg.check.z_supported``); a default is written once, here. What does not change a row (workers,
shard size, keeping part files) is an argument of :func:`unimer_builder.pipeline.build`, not a setting.

:meth:`BuildConfig.fingerprint` hashes the settings, the text of every template file and the builder's
version: every row and every part file carries it, and a resumed build reuses only work of the same
fingerprint. The report and the card record every setting (:meth:`BuildConfig.to_dict`,
:meth:`BuildConfig.settings`); :meth:`BuildConfig.from_dict` reads them back.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ._version import __version__
from .labels import COMPOSITE_MODES

# OpenCV's DualTVL1OpticalFlow parameters. OpenCV's own defaults are the "opencv" preset; "fast" was
# measured in shared/research/environment.md §2 at the same end-point error for half the time.
TVL1_PRESETS: dict[str, dict[str, float]] = {
    "opencv": dict(tau=0.25, lambda_=0.15, theta=0.3, nscales=5, warps=5, epsilon=0.01,
                   inner_iterations=30, outer_iterations=10, scale_step=0.8, gamma=0.0, median_filtering=5),
    "fast": dict(tau=0.25, lambda_=0.15, theta=0.3, nscales=3, warps=3, epsilon=0.01,
                 inner_iterations=10, outer_iterations=2, scale_step=0.8, gamma=0.0, median_filtering=3),
    "faster": dict(tau=0.25, lambda_=0.15, theta=0.3, nscales=2, warps=2, epsilon=0.05,
                   inner_iterations=5, outer_iterations=1, scale_step=0.8, gamma=0.0, median_filtering=3),
}
DEFAULT_PRESET = "fast"
_PRESET = TVL1_PRESETS[DEFAULT_PRESET]

FLOW_BACKENDS = ("opencv", "torch")
DIS_PRESETS = ("ultrafast", "fast", "medium")  # OpenCV's DIS presets by name (flow.make_dis)
AU_DETECTORS = ("flow", "py-feat")  # py-feat: a second, appearance-based opinion (second_opinion.py)
FACE_DETECTORS = ("dlib", "py-feat")
HEAD_MODELS = ("similarity", "head")
REGION_MOTIONS = ("flow", "landmarks")
POLICIES = ("keep", "flag", "drop")
TASKS = ("emotion", "au", "motion", "explain")


def package_folder(name: str) -> Path:
    """A data folder shipped with the builder: ``templates`` or ``data_cards``.

    An installed wheel carries them inside the package (``unimer_builder/templates``, see pyproject's
    ``package-dir``); a source checkout keeps them at its top level, beside the package, where the design
    card puts them. The package's own copy wins where both exist.
    """
    inside = Path(str(importlib.resources.files("unimer_builder") / name))
    return inside if inside.is_dir() else Path(__file__).resolve().parent.parent / name


def _choice(value: str, choices: tuple[str, ...], name: str, what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r} ({name}); choose one of {', '.join(choices)}")


# The face crop's side, px: under 32 no AU region holds a pixel's motion (at 0 the build crashed); over 2048 one clip
# takes minutes for nothing the flow can use.
CROP_SIZES = (32, 2048)


def _positive(value: float, name: str, what: str) -> None:
    """A threshold that must be a finite number above zero: at zero or NaN its test always passes."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} ({what}) must be a finite number above 0, not {value!r}")


@dataclass(frozen=True)
class FaceConfig:
    """Finding the face on the onset frame, the aligned crop, and registering later frames (face.py)."""

    detector: str = "dlib"  # dlib | py-feat: what finds the face and eyes the alignment starts from
    crop_size: int = 224  # aligned face crop, px: the flow is computed, and measured, in its pixels
    detect_max_side: int = 360  # px: the first detection attempt on a large frame runs at this short side
    detect_score_share: float = 0.5  # detections scoring under this share of the best one are not the face
    detect_pad: float = 0.25  # the last detection attempt widens the frame by this share of its long side, each side
    # Where the detector finds no face in the onset frame, the clip's next frames are searched for it, nearest
    # first, at most this many; the box found is carried back to the onset, where the landmarks are predicted,
    # if the onset's crop matches that frame's (face_match). A real laugh's head tilted back scored -0.004 to
    # -0.14 at frames 28-30 (0 is the detector's threshold; its onset is 29) and 0.21 at frame 31: its window was
    # skipped as no_face. 0: the onset alone decides.
    detect_nearby: int = 8
    # ... and if the onset is not much blurrier than that frame: its face's mean gradient energy at least this share
    # of the frame's (evidence._check_carried). The real laugh's onset 0.82; a synthetic onset blurred by a 31 px
    # Gaussian, which the detector missed but which still correlated at 0.93, 0.13.
    carried_sharpness: float = 0.5
    # A face found upside down or sideways (a video stored turned without a rotation tag, a mirrored front camera
    # decoded as a 180° turn) is no face to measure: dlib's HOG detector fires on a face turned 180° too (scores
    # 0.4 at most on a real clip turned so, against 2.2 for the same face turned upright), and its predictor puts
    # the eyes where the mouth is. The face's neighbourhood is scored as it is and turned each way: a turn scoring
    # this much more, and at least this much, is the way the frame stands (FaceAligner.turn_of). Upright real faces
    # of the 539 real-footage windows scored 0.62 or more above every turn, turned ones 1.8 or more below one.
    turn_margin: float = 0.5
    # Landmarks facial actions barely move (nose bridge and tip, eye corners, upper outline): a later frame's
    # head is registered to the onset's at these.
    head_landmarks: tuple[int, ...] = (0, 1, 15, 16, 27, 28, 29, 30, 36, 39, 42, 45)
    register_passes: int = 3  # predict-and-fit passes at most per frame
    register_max_error: float = 0.04  # IOD: registered head landmarks further from the onset's: track lost
    # An apex face matching its onset less (NCC, onset vs apex warped back along the flow) is not the same face:
    # no_face. Measured (bench/README.md section 6): 80 real windows (smiles, blinks, hands, 25-degree rolls)
    # 0.948-1.0; a cut to another person 0.61-0.69, a face sliding out of the frame 0.72.
    face_match: float = 0.8
    blink_ratio: float = 0.6  # eyes count as shut below this share of the clip's most open eye aspect ratio
    # ... where that is at least ``open_ear``, the eye aspect ratio of an open eye (Soukupova & Cech 2016:
    # about 0.3 open, under 0.15 shut). Eyes closed through a whole clip (crying, a head tilted back with
    # closed eyes: 0.02-0.08 on real video) then never count as open, so their landmarks' jitter is no blink.
    open_ear: float = 0.15
    # Both upper lids falling at least this far (IOD) onset->apex in the flow is an eye closing too: on some
    # faces dlib's lid landmarks do not follow a shut eye (a full blink kept 0.7 of the open eye aspect
    # ratio on vitallens' bearded man). On real video blinks moved the upper lids 0.025-0.14 IOD and nothing
    # else more than 0.014 (a smile's cheek raise); on the hard synthetic profile a macro brow lowering
    # (AU4+9, 7-10 crop px) dragged them 0.022-0.026, and only blinks 0.03 or more (bench/README.md section 6).
    lid_fall: float = 0.03
    # The inner lips drawing apart at least this far (IOD, face.lip_gap) onset->apex, with the flow's lips
    # moving apart too (crosscheck._lips_part), is AU25 (lips part), measured by the mouth's own opening as a
    # blink is by the eyes': the flow of parting lips is the teeth and the mouth's inside appearing, which it
    # cannot follow. The flow's separation (z_supported over the lips' noise) is what tells a parting from the
    # landmarks' jitter; the gap only confirms it. On real video (bench/real_footage.py, 133 windows) speech that
    # parted the lips 2.7-2.9 px widened the gap 0.033-0.038 IOD, the flow's lips moving apart at z 13-14, and
    # other partings 0.066-0.263; the windows whose gap widened 0.03-0.053 without a parting (a still face, a
    # blink, a smile under head motion) had a separation under z 4. 0.05 missed those speech windows (their lower
    # lip then named AU16, their corners AU15). On the hard synthetic profile (dlib's inner lips jitter up to 0.044
    # on a still mouth) 0.03 changed one named AU in 400 clips: a planted AU10 that parted the lips, now AU25.
    lips_part: float = 0.03
    # The inner lips drawing together at least this far (IOD) onset->apex, with the flow's lower lip moving
    # toward the upper (crosscheck._lips_close), is parted lips closing: the lower lip and chin rising as their
    # release, not as AU17 or AU24. Those two AUs make that very motion, so a closing needs a clearer change of
    # the mouth than a parting: at 0.03 a planted AU17 or AU24 of the hard synthetic profile went unnamed this way
    # (casme3, train identities), for one real window (a smile's jaw closing slightly) named better
    # (bench/README.md section 6, held-out set 4).
    lips_close: float = 0.05
    # An inner lips' gap under this (IOD) is lips that meet. Closing lips that meet at the apex and still draw
    # together beyond their onset gap (crosscheck._lips_close) are pressed (AU24) or pushed up (AU17), not only
    # released. On real video (bench/real_footage.py) dlib put meeting lips at 0.006-0.025 in the four closings of the
    # first 363 windows and at 0.012-0.036 in the eight of held-out set 17, and lips that closed toward each other
    # without meeting (speech, a hand leaving the mouth) at 0.051-0.145.
    lips_meet: float = 0.04
    # The chin's landmarks falling (face.jaw_opening) and the inner lips' gap widening both by at least this
    # (IOD) onset->apex is the jaw dropping (AU26), measured by the face's own landmarks as a blink is by the
    # eyes': a jaw that drops far (speech, a laugh) draws the teeth, tongue and the lip's inside into the chin
    # and lower lip, and blurs them, which no flow follows (on real video TV-L1 lost a 16 px drop's chin, and read
    # another's chin and lower lip rising 5 px where dlib had them 25-35 px lower). Either landmark alone jitters:
    # on 363 real windows (bench/README.md section 6) dlib's chin fell up to 0.23 IOD on still faces and blinks, and
    # the gap widened up to 0.21 in smiles whose jaw stayed; both together reached 0.065 at most without a jaw
    # drop, 0.1-0.23 in the drops of speech, laughs and surprise. The gap widening as far with the flow opening the
    # mouth where it follows it (crosscheck._mouth_opens) is a mouth open wide, whose lips, corners or chin the flow
    # loses as it loses a blink's lids (a hand over the mouth widened the gap 0.066 IOD at most).
    jaw_drop: float = 0.1

    def __post_init__(self):
        _choice(self.detector, FACE_DETECTORS, "face.detector", "face detector")
        _positive(self.blink_ratio, "face.blink_ratio", "share of the most open eye aspect ratio")
        _positive(self.open_ear, "face.open_ear", "eye aspect ratio of an open eye")
        _positive(self.lid_fall, "face.lid_fall", "IOD")
        _positive(self.lips_part, "face.lips_part", "IOD")
        _positive(self.lips_close, "face.lips_close", "IOD")
        _positive(self.lips_meet, "face.lips_meet", "IOD")
        _positive(self.jaw_drop, "face.jaw_drop", "IOD")
        _positive(self.carried_sharpness, "face.carried_sharpness", "share of the found frame's gradient energy")
        _positive(self.turn_margin, "face.turn_margin", "dlib HOG detection score")
        if isinstance(self.detect_pad, bool) or not (isinstance(self.detect_pad, (int, float)) and 0 <= self.detect_pad <= 1):
            raise ValueError(f"face.detect_pad (the share of a frame's long side its last detection attempt adds each "
                             f"side; 0: none) must be from 0 to 1, not {self.detect_pad!r}")
        if not (isinstance(self.crop_size, int) and CROP_SIZES[0] <= self.crop_size <= CROP_SIZES[1]):
            raise ValueError(f"face.crop_size must be a whole number of px from {CROP_SIZES[0]} to {CROP_SIZES[1]} (the "
                             f"flow is measured in its pixels; default 224), not {self.crop_size!r}")
        if not (isinstance(self.detect_nearby, int) and not isinstance(self.detect_nearby, bool)
                and self.detect_nearby >= 0):
            raise ValueError(f"face.detect_nearby (frames after the onset searched for a face the onset's detection "
                             f"missed) must be a whole number from 0, not {self.detect_nearby!r}")


@dataclass(frozen=True)
class FlowConfig:
    """TV-L1 (onset -> apex, the stored flow), its pyramid depth, and the cheap DIS curves for timing and
    the apex search. The field defaults are the ``fast`` preset."""

    preset: str = DEFAULT_PRESET
    tau: float = _PRESET["tau"]
    lambda_: float = _PRESET["lambda_"]
    theta: float = _PRESET["theta"]
    nscales: int = _PRESET["nscales"]
    warps: int = _PRESET["warps"]
    epsilon: float = _PRESET["epsilon"]
    inner_iterations: int = _PRESET["inner_iterations"]
    outer_iterations: int = _PRESET["outer_iterations"]
    scale_step: float = _PRESET["scale_step"]
    gamma: float = _PRESET["gamma"]
    median_filtering: int = _PRESET["median_filtering"]
    backend: str = "opencv"  # opencv | torch (flow_torch.py: OpenCV's CPU solver, batched, on CPU or CUDA)
    device: str = "cpu"  # torch backend: cpu | cuda | cuda:N (the CLI resolves "auto" before it is recorded)
    # Pyramid depth follows the motion: ``nscales`` is the least; more levels are used until the largest
    # region motion (measured with cheap DIS first) is at most ``coarsest_motion`` px at the coarsest level.
    # Three levels lose a broad smile's 7-10 px lip-corner motion on real video.
    max_scales: int = 10
    coarsest_motion: float = 1.0
    # Every frame's crop gets the onset crop's gain and offset before any flow (flow.match_brightness):
    # TV-L1 reads exposure flicker as motion on smooth skin.
    match_brightness: bool = True
    dis_preset: str = "ultrafast"  # DIS flow for the timing curves and the apex search (cheap, small crops)
    dis_finest_scale: int = 1
    apex_search_frames: int = 16  # frames sampled onset..offset to estimate a missing apex (refined locally)
    apex_top_regions: int = 3  # a frame's apex score: the mean DIS motion of its most-moved AU regions

    def __post_init__(self):
        _choice(self.backend, FLOW_BACKENDS, "flow.backend", "flow backend")
        _choice(self.dis_preset, DIS_PRESETS, "flow.dis_preset", "DIS preset")

    def scales_for(self, motion_px: float) -> int:
        """Pyramid levels for a largest motion of ``motion_px`` (crop px)."""
        if motion_px <= self.coarsest_motion:
            return int(self.nscales)
        need = 1 + math.ceil(math.log(motion_px / self.coarsest_motion) / math.log(1.0 / self.scale_step))
        return int(min(max(self.nscales, need), max(self.nscales, self.max_scales)))

    @classmethod
    def from_preset(cls, name: str, **overrides) -> FlowConfig:
        if name not in TVL1_PRESETS:
            raise ValueError(f"unknown TV-L1 preset {name!r}; choose one of {sorted(TVL1_PRESETS)}")
        return cls(preset=name, **{**TVL1_PRESETS[name], **overrides})


@dataclass(frozen=True)
class HeadConfig:
    """Rigid head motion removed from the flow (rigid.py): a robust fit at skull-anchored skin."""

    model: str = "head"  # "similarity" or "head" (similarity + the parallax of a small yaw and pitch)
    # With the ``head`` model, the flow's turns (yaw, pitch) are kept only where they bring the fit's residual
    # at the skull-anchored samples (its ``fit_quantile``-th) to at most this share of the similarity's alone:
    # two more parameters always fit a little better, and at a head that did not turn they fit the spill of
    # an expression instead (a brow raise read as a 0.6-degree yaw and a 1.2 % scale error, whose error at
    # the chin and lip corners was then reported as AU17 and AU14). Measured: hard synthetic heads, which
    # never turn, median 0.93 (8 % at or under 0.7); real windows whose heads turn 0.38-0.59.
    turn_gain: float = 0.7
    # Share of the head's displacement that its removal leaves as error (a real head is neither rigid nor
    # planar): it widens each region's noise (regions.region_stats). On real video (bench/real_footage.py)
    # 0.05 keeps a still face still under 2-25 px of head motion; 0.02 reported motion on 3 of 7 still
    # windows. Synthetic head motion is an exact similarity, so there it only costs sensitivity.
    error: float = 0.05
    # The error grows with the lever arm from the skin the head is fitted on: a rotation or a non-rigid jaw
    # misread at the nose bridge shows most at the chin. A region's share of ``error`` is its centre's
    # distance from the nose bridge (landmark 27) over ``error_reach`` IOD, at least ``error_least``. On real
    # video a 9 px shift left 0.8 px at the still chin and 0.1-0.2 px at the brows; on the hard synthetic
    # profile the full error at the brows cost a third of the missed micro AUs (bench/README.md section 5b).
    error_reach: float = 1.0
    error_least: float = 0.3
    # Sample points: the face outline from the ears to the cheekbones (pulled toward the nose tip by
    # ``outline_inset`` so that samples stay on skin; below them the jaw moves with the mouth), and the nose
    # bridge and inner eye corners.
    outline_points: tuple[int, ...] = (0, 1, 2, 14, 15, 16)
    inner_points: tuple[int, ...] = (27, 28, 39, 42)
    outline_inset: float = 0.1  # share of the way from an outline point toward the nose tip (landmark 30)
    skull_line: int = 33  # the extra grid samples skin above this landmark (the nose base) only
    sample_radius: float = 0.07  # neighbourhood radius around each stable point, IOD
    grid_spacing: float = 0.2  # spacing of the extra sample grid over the face off the AU regions, IOD
    fit_quantile: float = 0.5  # the model must explain this share of the points: a majority, not a cluster
    subsets: int = 400  # minimal point subsets tried (deterministic)
    inlier_factor: float = 3.0  # biweight scale: this factor of the winning quantile residual
    irls_steps: int = 5
    max_linear: float = 0.08  # |scale - 1|, |rotation| (rad) of a candidate: larger is not a head moving
    max_turn: float = 0.12  # |yaw|, |pitch| (rad) of a candidate

    def __post_init__(self):
        _choice(self.model, HEAD_MODELS, "head.model", "head-motion model")


# Region family -> (rx, ry, dx_out, dy) in IOD: ellipse radii and a centre shift (dx_out away from the
# midline, dy down) from the mean of the region's landmarks (regions.region_geometry).
REGION_SHAPES: tuple[tuple[str, float, float, float, float], ...] = (
    ("brow_inner", 0.17, 0.15, 0.0, -0.03),
    ("brow_outer", 0.17, 0.15, 0.0, -0.03),
    ("glabella", 0.11, 0.14, 0.0, 0.0),
    ("upper_lid", 0.17, 0.065, 0.0, -0.05),
    ("lower_lid", 0.17, 0.065, 0.0, 0.06),
    ("cheek", 0.21, 0.19, 0.0, -0.06),
    ("nose", 0.17, 0.14, 0.0, -0.05),
    ("upper_lip", 0.2, 0.09, 0.0, -0.03),
    ("lip_corner", 0.12, 0.12, 0.0, 0.0),
    ("lower_lip", 0.2, 0.09, 0.0, 0.03),
    ("chin", 0.22, 0.14, 0.0, -0.22),
)


@dataclass(frozen=True)
class RegionConfig:
    """AU regions from landmarks and the face's noise floor (regions.py; the measurement is in its docstring)."""

    shapes: tuple[tuple[str, float, float, float, float], ...] = REGION_SHAPES
    forehead: float = 0.45  # IOD the face area reaches above the brows
    face_erode: float = 0.06  # IOD cut from the face area's edge (head motion makes artefacts there)
    floor_margin: float = 0.05  # IOD kept between the floor's skin and the regions, eyes and mouth
    floor_patch: float = 0.22  # side of a floor patch, IOD
    floor_quantile: float = 0.3  # floor = this quantile of the patch means (spill from AUs only raises patches)
    spread_ratio: float = 0.57  # spread = ratio * max(floor, 2 * (floor - 5th percentile))
    # px of the video frame: TV-L1 itself errs by ~0.05 frame px on clean smooth warps (bench/README.md section 4);
    # in crop px, times the crop's enlargement of the face where it enlarges (regions.region_stats)
    min_spread: float = 0.05
    min_floor_patches: int = 6
    floor_gap: float = 0.15  # IOD kept between a region that moved and the skin the floor is re-measured on
    floor_exclude_z: float = 4.0  # regions this far above the floor count as moved when it is re-measured
    # "flow": the regions' motion from the onset->apex flow; "landmarks": a baseline for benches, each region's own
    # dlib landmarks' displacement instead (regions.landmark_stats), the rules as they are
    motion: str = "flow"

    def __post_init__(self):
        _choice(self.motion, REGION_MOTIONS, "regions.motion", "region motion source")

    def shape(self) -> dict[str, tuple[float, float, float, float]]:
        return {family: tuple(v) for family, *v in self.shapes}


@dataclass(frozen=True)
class CheckConfig:
    """The dual constraint (crosscheck.py): thresholds in units of the face's noise (z) and direction cosine."""

    z_supported: float = 4.0
    z_weak: float = 2.0
    cos_supported: float = 0.3  # loose: the motion's component along the AU carries the decision
    z_unexplained: float = 6.0
    timing_share: float = 0.5  # at the apex a supported region has moved at least this share of its most
    timing_tolerance: float = 0.35  # without DIS at the apex: |peak_time - apex_time| as a share of onset..offset
    region_match: float = 0.7  # a region whose appearance the flow explains less (NCC) is not measured
    # ... unless the flow leaves no more there than this many times the face's typical difference between the
    # onset and the warped apex: a region without texture has nothing to correlate (regions.appearance_match)
    region_residual: float = 3.0
    # px: a region noisier than this cannot contradict a label (an AU of several px could hide in its noise: a
    # head that moved 40 px or more, a flow that failed); the label is unverifiable there. Real windows reach
    # 1.3 px at the brows under 21 px of head motion (bench/README.md section 6).
    max_noise: float = 2.0
    # crop px: a window whose noise floor exceeds this cannot show the motion the dataset is about (a region must
    # move about z_supported times the floor to count): it is flagged, and its text says the floor is high rather
    # than calling the face still. The bench's limit of a measurable window (bench/README.md section 6): real
    # still windows' floors are 0.02-0.6 px, a head turning 10-70 px 1.5-4.6 px.
    max_floor: float = 1.0
    spill_reach: float = 1.5  # an AU drags the skin along over this many of its region's radii (Gaussian sigma)
    # IOD: beyond the labels, nothing is said about regions whose centre lies this close to a lost region's (an
    # occluder's motion smears into the skin around it; crosscheck._around_the_loss)
    occluder_reach: float = 1.0
    infer_coherence: float = 0.5  # AUs found in the motion need coherent motion (|sum v| / sum |v|)
    own_share: float = 0.5  # an AU found in the motion carries this share of its own region's motion its way
    policy: str = "flag"  # keep | flag | drop flagged samples: a labelled AU not supported, a region lost, max_floor
    au_detector: str = "flow"  # flow | py-feat (flow plus py-feat's AUs on the onset and apex frames)
    pyfeat_rise_min: float = 0.2  # py-feat "rises": presence probability up by this much onset -> apex
    pyfeat_present_min: float = 0.5  # ... and at least this at the apex (second_opinion.py)

    def __post_init__(self):
        if not self.occluder_reach >= 0:  # NaN fails too
            raise ValueError(f"check.occluder_reach must be 0 or more (IOD), got {self.occluder_reach}")
        _choice(self.policy, POLICIES, "check.policy", "policy")
        _choice(self.au_detector, AU_DETECTORS, "check.au_detector", "AU detector")


@dataclass(frozen=True)
class TextConfig:
    """Instruction/answer text (render.py)."""

    templates: str | None = None  # folder of Jinja2 templates; None: the packaged ones
    tasks: tuple[str, ...] = TASKS
    seed: int = 0  # template variant choice: the same seed gives the same rows
    # emotion_composite: "official" MEGC2019 membership list for CASME II/SAMM/SMIC, or "labels" (the label
    # mapping for every clip: databases in those formats that are not the release, e.g. `unimer synth`'s)
    composite: str = "official"
    min_coherence: float = 0.3  # regions whose motion agrees less (|sum v| / sum |v|) get no direction word

    def __post_init__(self):
        _choice(self.composite, COMPOSITE_MODES, "text.composite", "composite mode")
        for t in self.tasks:
            _choice(t, TASKS, "text.tasks", "task")

    @property
    def folder(self) -> Path:
        """The templates folder in use."""
        return Path(self.templates) if self.templates is not None else package_folder("templates")


@dataclass(frozen=True)
class OutputConfig:
    """Sizes of what a row stores for the model (shards.py)."""

    image_size: int = 224  # px of the stored onset/apex crops
    stack_len: int = 8  # frames in the model's frame stack, evenly spaced onset..offset
    stack_size: int = 112  # px of each stack frame
    flow_size: int = 56  # px of the reduced (u, v, strain) field (values stay in crop px)


@dataclass(frozen=True)
class BuildConfig:
    face: FaceConfig = field(default_factory=FaceConfig)
    flow: FlowConfig = field(default_factory=FlowConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    regions: RegionConfig = field(default_factory=RegionConfig)
    check: CheckConfig = field(default_factory=CheckConfig)
    text: TextConfig = field(default_factory=TextConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BuildConfig:
        """The inverse of :meth:`to_dict` (as ``build_report.json`` records it); unknown keys are an error,
        missing ones take their defaults."""
        return _from_dict(cls, d, "config")

    def with_(self, **changes) -> BuildConfig:
        """A copy with some settings changed: a whole sub-config (``text=TextConfig(...)``) or one setting
        by its dotted name (``**{"check.z_supported": 3.0}``)."""
        out = self
        for key, value in changes.items():
            part, _, name = key.partition(".")
            if not name:
                out = replace(out, **{part: value})
            elif part not in {f.name for f in fields(self)}:
                raise ValueError(f"unknown setting {key!r}")
            else:
                sub = getattr(out, part)
                hint = typing.get_type_hints(type(sub)).get(name)
                if hint is None:
                    raise ValueError(f"unknown setting {key!r}")
                # as a recorded build's settings are read: a JSON list (`--set face.head_landmarks=[0,16]`)
                # becomes the tuple the field holds, so the settings stay hashable (the fingerprint)
                out = replace(out, **{part: replace(sub, **{name: _value(hint, value, key)})})
        return out

    def settings(self) -> list[tuple[str, object]]:
        """Every setting as ``(dotted name, value)``, in declaration order (the card's table)."""
        return [(f"{part}.{k}", v) for part, sub in self.to_dict().items() for k, v in sub.items()]

    def fingerprint(self) -> str:
        """Hash of everything that decides a row: the settings, the text of every template file and the
        builder's version. A resumed build reuses only work of the same fingerprint."""
        return _fingerprint(self, _template_files(self.text.folder))


def parse_setting(item: str) -> tuple[str, object]:
    """``NAME=VALUE`` as a benchmark's ``--set`` writes it: the value as JSON (``3.5``, ``true``, ``[1, 2]``),
    else as the string itself (``head.model=similarity``)."""
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise ValueError(f"setting {item!r}: write NAME=VALUE, e.g. check.z_supported=3.5")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _template_files(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """(relative path, size, mtime) of every file in the templates folder: the key of its digest."""
    if not folder.is_dir():
        return ()
    return tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith("."))


@functools.lru_cache(maxsize=64)
def _fingerprint(cfg: BuildConfig, templates: tuple[tuple[str, int, int], ...]) -> str:
    # The templates count by their text (below), not by where their folder is: the same files copied elsewhere
    # make the same rows, and a path of this machine must not decide a published hash.
    settings = cfg.to_dict()
    settings["text"] = {**settings["text"], "templates": None}
    h = hashlib.sha256()
    h.update(json.dumps({"config": settings, "builder": __version__}, sort_keys=True).encode())
    folder = cfg.text.folder
    for name, _size, _mtime in templates:
        h.update(name.encode() + b"\0" + (folder / name).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _from_dict(cls, d: dict, where: str):
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**{k: _value(hints[k], v, f"{where}.{k}") for k, v in d.items()})


def _value(tp, v, where: str):
    """A JSON value as the field's type: nested configs from mappings, tuples from lists."""
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, v, where)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return v if v is None else _value(next(a for a in typing.get_args(tp) if a is not type(None)), v, where)
    if origin is tuple:
        args = typing.get_args(tp)
        items = list(v)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], x, where) for x in items)
        return tuple(_value(a, x, where) for a, x in zip(args, items, strict=True))
    return v


# The flat settings of builds made before the settings were nested by stage (a saved model run records its
# training data's settings as the build report gave them) -> their dotted names now. ``shard_max_bytes`` was
# never a row setting (it is :func:`unimer_builder.pipeline.build`'s ``shard_bytes``).
FLAT_NAMES: dict[str, str | None] = {
    "crop_size": "face.crop_size", "face_match": "face.face_match", "blink_ratio": "face.blink_ratio",
    "face_detector": "face.detector", "dis_preset": "flow.dis_preset", "dis_finest_scale": "flow.dis_finest_scale",
    "head_model": "head.model", "head_error": "head.error",
    **{k: f"check.{k}" for k in ("z_supported", "z_weak", "cos_supported", "cos_contradicted", "z_unexplained",
                                 "timing_share", "timing_tolerance", "region_match", "policy", "au_detector")},
    "composite": "text.composite", "seed": "text.seed", "tasks": "text.tasks", "templates_dir": "text.templates",
    **{k: f"output.{k}" for k in ("image_size", "stack_len", "stack_size", "flow_size")},
    "shard_max_bytes": None,
}


# Settings a recorded build may carry that no longer decide anything (builder version): read and dropped.
# ``check.cos_contradicted`` (0.1.3): a label is contradicted when its motion along the AU is under z_weak,
# which a direction against the AU already implies.
RETIRED: frozenset[str] = frozenset({"check.cos_contradicted"})


def _drop_retired(d: dict) -> dict:
    out = dict(d)
    for dotted in RETIRED:
        part, name = dotted.split(".")
        if isinstance(out.get(part), dict) and name in out[part]:
            out[part] = {k: v for k, v in out[part].items() if k != name}
    return out


def _nest_flat(d: dict) -> dict:
    """A recorded settings mapping in today's nested layout (a flat, pre-nesting one is nested first)."""
    parts = {f.name for f in fields(BuildConfig)}
    if not any(k in FLAT_NAMES for k in d):
        return d
    nested: dict = {k: dict(v) for k, v in d.items() if k in parts and isinstance(v, dict)}
    for k, v in d.items():
        if k in parts and isinstance(v, dict):
            continue
        if k not in FLAT_NAMES:
            raise ValueError(f"config: unknown setting {k!r}")
        if FLAT_NAMES[k] is not None:
            part, name = FLAT_NAMES[k].split(".")
            nested.setdefault(part, {})[name] = v
    return nested


def build_config_from_dict(d: dict) -> BuildConfig:
    """:meth:`BuildConfig.from_dict` of what a build report (or a saved model run) recorded, today's nested
    layout or the flat one of earlier builds; a recorded templates folder that no longer exists falls back
    to the packaged templates."""
    d = _drop_retired(_nest_flat(dict(d)))
    text = d.get("text")
    if isinstance(text, dict) and text.get("templates") is not None and not Path(str(text["templates"])).is_dir():
        d = {**d, "text": {**text, "templates": None}}
    return BuildConfig.from_dict(d)
