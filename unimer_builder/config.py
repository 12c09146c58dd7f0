"""Build settings. Every field is recorded in the output (shard metadata and build report)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

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

FLOW_BACKENDS = ("opencv", "torch")
AU_DETECTORS = ("flow", "py-feat")  # py-feat: a second, appearance-based opinion (second_opinion.py)
FACE_DETECTORS = ("dlib", "py-feat")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "templates"
DATA_CARDS_DIR = Path(__file__).resolve().parent.parent / "data_cards"


@dataclass(frozen=True)
class FlowConfig:
    preset: str = "fast"
    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    nscales: int = 3
    warps: int = 3
    epsilon: float = 0.01
    inner_iterations: int = 10
    outer_iterations: int = 2
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 3
    backend: str = "opencv"  # opencv | torch (flow_torch.py: OpenCV's CPU solver, batched, on CPU or CUDA)
    device: str = "cpu"  # torch backend: cpu | cuda | cuda:N (the CLI resolves "auto" before it is recorded)
    # Pyramid depth follows the motion: ``nscales`` is the least; more levels are used until the largest
    # region motion (measured with cheap DIS first) is at most ``coarsest_motion`` px at the coarsest level.
    # Three levels lose a broad smile's 7-10 px lip-corner motion on real video.
    max_scales: int = 10
    coarsest_motion: float = 1.0

    def scales_for(self, motion_px: float) -> int:
        """Pyramid levels for a largest motion of ``motion_px`` (crop px)."""
        if motion_px <= self.coarsest_motion:
            return int(self.nscales)
        need = 1 + math.ceil(math.log(motion_px / self.coarsest_motion) / math.log(1.0 / self.scale_step))
        return int(min(max(self.nscales, need), max(self.nscales, self.max_scales)))

    @classmethod
    def from_preset(cls, name: str, **overrides: float) -> FlowConfig:
        if name not in TVL1_PRESETS:
            raise ValueError(f"unknown TV-L1 preset {name!r}; choose one of {sorted(TVL1_PRESETS)}")
        return cls(preset=name, **{**TVL1_PRESETS[name], **overrides})


@dataclass(frozen=True)
class BuildConfig:
    crop_size: int = 224  # aligned face crop, px; flow is computed at this resolution
    flow: FlowConfig = field(default_factory=FlowConfig)
    stack_len: int = 8  # frames in the model's frame stack, evenly spaced onset..offset
    stack_size: int = 112  # px of each stack frame
    flow_size: int = 56  # px of the reduced (u, v, strain) field stored for the model
    image_size: int = 224  # px of the stored onset/apex crops
    # Cross-check thresholds, in units of the face's noise-floor spread (z) and direction cosine.
    z_supported: float = 4.0
    z_weak: float = 2.0
    cos_supported: float = 0.3  # loose: the motion's component along the AU carries the decision
    cos_contradicted: float = -0.3
    z_unexplained: float = 6.0
    timing_share: float = 0.5  # at the apex a supported region has moved at least this share of its most
    timing_tolerance: float = 0.35  # without DIS at the apex: |peak_time - apex_time| as a share of onset..offset
    dis_preset: str = "ultrafast"  # DIS flow for the timing curves and the apex search (cheap, small crops)
    dis_finest_scale: int = 1
    head_model: str = "head"  # rigid head motion removed from the flow: "similarity" or "head" (+ yaw, pitch)
    # Share of the head's displacement that its removal leaves as error (a real head is neither rigid nor
    # planar): it widens each region's noise (regions.region_stats). On real video (bench/real_footage.py)
    # 0.05 keeps a still face still under 2-25 px of head motion; 0.02 reported motion on 3 of 7 still
    # windows. Synthetic head motion is an exact similarity, so there it only costs sensitivity.
    head_error: float = 0.05
    region_match: float = 0.7  # a region whose appearance the flow explains less (NCC) is not measured
    face_match: float = 0.5  # a face whose apex matches its onset less is not the same face: no_face
    blink_ratio: float = 0.6  # eyes count as shut below this share of the clip's most open eye aspect ratio
    policy: str = "flag"  # keep | flag | drop samples whose labelled AUs are not all supported
    au_detector: str = "flow"  # flow | py-feat (flow plus py-feat's AUs on the onset and apex frames)
    face_detector: str = "dlib"  # dlib | py-feat (finds the face and eyes the alignment starts from)
    # emotion_composite: "official" MEGC2019 membership list for CASME II/SAMM/SMIC, or "labels" (mapping only)
    composite: str = "official"
    seed: int = 0
    templates_dir: str = str(TEMPLATES_DIR)
    tasks: tuple[str, ...] = ("emotion", "au", "motion", "explain")
    shard_max_bytes: int = 64 * 1024 * 1024  # 64 MiB per Parquet shard, before compression

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """Hash of everything that changes a row; a resumed build reuses only matching work."""
        d = self.to_dict()
        d.pop("shard_max_bytes")
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_(self, **kw) -> BuildConfig:
        return replace(self, **kw)


POLICIES = ("keep", "flag", "drop")


def build_config_from_dict(d: dict) -> BuildConfig:
    """The inverse of :meth:`BuildConfig.to_dict` (as ``build_report.json`` records it). Unknown keys are
    an error; a recorded templates folder that no longer exists falls back to the packaged one."""
    d = dict(d)
    flow = d.pop("flow", None)
    if isinstance(flow, dict):
        d["flow"] = FlowConfig(**flow)
    if "tasks" in d:
        d["tasks"] = tuple(d["tasks"])
    if "templates_dir" in d and not Path(str(d["templates_dir"])).is_dir():
        d["templates_dir"] = str(TEMPLATES_DIR)
    return BuildConfig(**d)
