"""Plain records that flow between the builder's stages.

Every stage is a function over these dataclasses, so that a stage can be tested alone and run in a
process pool (they pickle) with no change. Arrays are numpy; nothing here imports OpenCV or torch.
``ClipSummary`` is what the report needs of a built clip; ``SynthClip`` is a layout writer's input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class AUToken:
    """One parsed Action Unit of a label string such as ``L12B`` or ``(4)``.

    ``side`` follows FACS: ``L``/``R`` are the *subject's* left/right (image right/left on an
    unmirrored camera), ``A`` asymmetric, ``T`` top, ``B`` bottom, ``None`` bilateral/unspecified.
    ``alternatives`` holds the other choices of an ``or``/``/`` group (``R14A or 17A or 24A``,
    ``A/L12``), each a full token with its own side and intensity: the token is the first choice,
    ``raw`` the whole group's text, and the group counts as supported when any choice is.
    """

    au: int
    side: str | None = None
    intensity: str | None = None
    uncertain: bool = False
    raw: str = ""
    alternatives: tuple[AUToken, ...] = ()

    def code(self) -> str:
        """Canonical text, e.g. ``L12B`` or ``AU4``-free ``4``."""
        return f"{self.side or ''}{self.au}{self.intensity or ''}"

    def choices(self) -> tuple[AUToken, ...]:
        """The token itself followed by its alternatives: every reading the label allows."""
        return (self, *self.alternatives)


@dataclass(frozen=True)
class ParsedAUs:
    tokens: tuple[AUToken, ...] = ()
    unparsed: tuple[str, ...] = ()  # free text kept verbatim ("soft focus", "ref(7B)")
    unknown: tuple[str, ...] = ()  # syntactically AU-like codes whose number FACS does not define
    # The cell says the AUs are not known ("?" in CASME II): the clip counts as AU-unlabelled and its
    # AUs are inferred from motion, as for a database without AU labels.
    label_unknown: bool = False


def clip_id(database: str, subject: str, clip: str, onset: object = None, variant: str | None = None) -> str:
    """A clip's unique, path-safe id (also for rows that fail before a :class:`Clip` exists).

    CAS(ME)^3 clips that share subject and stimulus differ by onset; SMIC's camera variants by variant.
    """
    if variant:
        return f"{database}/{variant}/{subject}/{clip}"
    key = f"{database}/{subject}/{clip}"
    return f"{key}/{onset}" if database == "casme3" else key


@dataclass
class Clip:
    """One micro-expression sample as a reader found it on disk.

    Frame numbers are the database's own (absolute for SAMM/SMIC, ``img<N>`` numbers for CASME II);
    ``frames`` maps each available frame number to its file. A video clip instead sets ``video`` and
    numbers frames from 0.
    """

    database: str  # casme2 | samm | smic | casme3 | manifest | ...
    subject: str  # zero-padded as the folder names it ("sub01", "006", "spNO.1", "s1")
    clip: str  # the database's clip name ("EP02_01f", "006_1_2", "s1_ne_01", "a")
    onset: int
    apex: int | None  # None: estimate from motion (SMIC, "/" in a sheet)
    offset: int | None
    frames: dict[int, str] = field(default_factory=dict)
    video: str | None = None
    emotion: str | None = None  # original label, verbatim
    au_text: str | None = None  # original AU string, verbatim; None when the database has none
    aus: ParsedAUs = field(default_factory=ParsedAUs)
    fps: float | None = None
    source_file: str = ""  # the spreadsheet/manifest row that produced this clip (for errors)
    source_row: int | None = None  # 1-based row number as a spreadsheet program shows it
    extra: dict[str, Any] = field(default_factory=dict)  # objective class, variant (HS/VIS/NIR), ...

    @property
    def clip_id(self) -> str:
        return clip_id(self.database, self.subject, self.clip, self.onset, self.extra.get("variant"))

    @property
    def au_labelled(self) -> bool:
        """An AU label to check exists: a cell, and not one that says the AUs are unknown."""
        return self.au_text is not None and not self.aus.label_unknown

    def error(self, reason: str, message: str, media: str | None, field: str) -> InputError:
        """This clip's :class:`~unimer_builder.errors.InputError` over one of its frames or its video (``media``).
        Where a row of a label sheet or manifest gave the clip, the error's file is that sheet and its row the
        sheet's, the frame or video named in the message, first where the message does not name it (a truncated
        img5.jpg of a sheet's row 5 read "img5.jpg, row 5"); otherwise the file is the frame or video."""
        media = str(media or "")
        if self.source_file and self.source_row is not None:
            said = message if not media or media in message else f"{media}: {message}"
            return InputError(reason, said, self.source_file, self.source_row, field)
        return InputError(reason, message, media or self.source_file, None, field)


@dataclass(frozen=True)
class Skip:
    """A clip (or row) that could not be built, with where and why; goes to the build report."""

    clip_id: str
    reason: str  # short machine-readable kind: missing_frame, bad_frames, unknown_au, no_face, ...
    message: str  # full sentence naming file, row and field
    file: str = ""
    row: int | None = None
    field: str = ""


@dataclass
class Face:
    """Alignment of a clip: the same 2x3 affine maps every original frame into the square crop."""

    matrix: np.ndarray  # 2x3 float64, original -> crop
    landmarks: np.ndarray  # 68x2 float32 in crop coordinates
    size: int
    detector: str = "dlib-hog"
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # x, y, w, h in the original onset frame
    # The landmark predictor's box in the crop (left, top, right, bottom): the onset's detector box carried into
    # it, used for every frame of the clip; None: the box of the landmarks where the face was (face.py)
    crop_box: tuple[float, float, float, float] | None = None
    others: int = 0  # other confident faces the detector found in the onset frame (the largest is measured)
    # The frame whose detection located the face where the detector found none in the onset frame (its box was
    # carried back to the onset: evidence._align_onset); None: found in the onset frame itself
    found_in: int | None = None

    @property
    def enlargement(self) -> float:
        """Crop px per px of the original frame (above 1: the crop interpolates the face larger)."""
        return float(np.sqrt(abs(np.linalg.det(np.asarray(self.matrix, float)[:, :2]))))


@dataclass(frozen=True)
class RegionStats:
    """Motion in one AU region, onset -> apex, after rigid head motion is removed."""

    name: str
    mean: float  # mean flow magnitude, px at crop resolution
    peak: float  # 95th percentile magnitude
    dx: float  # mean flow vector (image axes: x right, y down), px
    dy: float
    coherence: float  # |sum v| / sum |v| in [0, 1]: 1 means all pixels move the same way
    strain: float  # mean optical strain
    z: float  # (mean - floor) / noise: how far above the face's noise floor (see regions.region_stats)
    peak_time: float | None = None  # 0 = onset, 1 = offset: when this region moved most
    head: float = 0.0  # mean displacement of the head removed here, px (widens the noise)
    noise: float = 0.0  # px: the noise z is counted in (floor spread widened by head); 0: unknown
    match: float = 1.0  # onset vs apex warped back along the flow (NCC), at most its share inside the video frame:
    # under region_match the flow lost the region
    apex_share: float | None = None  # DIS motion at the apex over the region's largest (timing)
    dis_dx: float | None = None  # the timing DIS's mean motion at the apex, px at crop resolution: a second flow
    dis_dy: float | None = None  # beside TV-L1's (dx, dy), with other failure modes; None where not measured


@dataclass(frozen=True)
class Verdict:
    """Dual-constraint verdict for one labelled (or inferred) AU."""

    au: int
    side: str | None
    region: str  # the region that carried the decision
    verdict: str  # supported | weak | contradicted | unverifiable
    z: float
    direction_cos: float  # cosine between measured and expected direction (nan if unverifiable)
    timing_ok: bool | None
    reason: str
    # With a second opinion (--au-detector py-feat): what py-feat says of the AU (second_opinion.VIEWS) and
    # whether that agrees with this verdict ("agree" / "disagree"; None where either takes no side).
    pyfeat: str | None = None
    agreement: str | None = None
    # Contradicted because the AU's regions together move its way too little, though one alone reached check.z_weak
    # (crosscheck._weak_alone): little motion its way, not none, nor another action's.
    too_little: bool = False


@dataclass(frozen=True)
class AUSource:
    """Which source said what of one AU, where py-feat gave a second opinion (see :mod:`.second_opinion`)."""

    au: int
    side: str | None
    labelled: bool  # a label names it
    flow: str  # the flow's verdict (supported / weak / contradicted / unverifiable), "none" if not judged
    pyfeat: str  # rises / flat / undetected / no_face
    pyfeat_onset: float | None  # py-feat's presence probability on the onset frame
    pyfeat_apex: float | None  # ... and on the apex frame
    said_by: str  # which sources support the AU: both / flow / py-feat / neither
    agreement: str | None  # agree / disagree, None where either takes no side
    stated: bool  # the text states it (labelled: label and flow support it; unlabelled: both sources do)


@dataclass(frozen=True)
class Unexplained:
    """Strong motion in a region that no labelled AU explains."""

    region: str
    au: int | None  # the AU family the motion implies, None if no AU fits its direction
    z: float  # NaN where the landmarks measured it and the flow did not follow it (a jaw's drop, crosscheck)
    dx: float
    dy: float


@dataclass
class Evidence:
    """Everything measured on a clip; what the text and the model may rely on."""

    face: Face
    apex: int
    apex_estimated: bool
    flow: np.ndarray  # HxWx2 float32, onset->apex, rigid motion removed, crop resolution
    strain: np.ndarray  # HxW float32
    regions: list[RegionStats]
    floor: float  # noise floor (median region-free magnitude), px
    floor_spread: float  # robust spread of that floor, px
    head_motion: dict[str, float]  # tx, ty, rotation (deg), scale of the removed similarity
    onset_crop: np.ndarray  # SxS uint8 grey
    apex_crop: np.ndarray  # SxS uint8 grey
    stack: np.ndarray  # TxKxK uint8 grey, evenly spaced onset..offset
    stack_frames: list[int]
    # Eye openness per examined frame: eye aspect ratio over the clip's most open one (1 open, ~0.3 shut).
    eyes: dict[int, float] = field(default_factory=dict)
    blinks: list[int] = field(default_factory=list)  # examined frames whose eyes are (nearly) shut
    # Gap between the inner lips per examined frame, IOD (face.lip_gap: 0 closed; the lips part as it grows).
    lips: dict[int, float] = field(default_factory=dict)
    # The chin's depth below the nose per examined frame, IOD (face.jaw_opening: it grows as the jaw drops).
    jaw: dict[int, float] = field(default_factory=dict)
    flow_scales: int = 0  # TV-L1 pyramid levels used (deeper for larger motion)
    offset: int | None = None  # the last frame measured: the label's, else the clip's last (a video's, once decoded)
    # The labelled frames' timestamps, s, where the video's clock times the clip (FrameReader.times): its duration is
    # taken from them (labels.duration_s); empty: counted at the clip's fps (a folder of frames)
    times: dict[int, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


@dataclass
class CrossCheck:
    verdicts: list[Verdict]
    unexplained: list[Unexplained]
    aus_source: str  # "label" | "inferred" (no AU labels: the AUs come from motion alone)
    supported: list[int]  # AUs that label and motion both support (or inferred ones), sorted
    flagged: bool  # some labelled AU is not supported, a region was lost, or the noise floor is too high
    flag_reasons: list[str]
    # Regions the text describes as moving: those carrying a supported AU or named as unexplained motion, and
    # others only as strong as unexplained motion must be (a sub-pixel drift of a held expression is not
    # reported as motion).
    moved: list[str] = field(default_factory=list)
    # The second opinion, when one was asked for: its source ("py-feat") and what each source said per AU.
    second_opinion: str | None = None
    sources: list[AUSource] = field(default_factory=list)
    # px the parted lips' gap narrowed onset->apex where they close (crosscheck._lips_close): the lower lip's and
    # chin's rise is then the parting's release, and the text says so. None where they do not close, or met and
    # pressed on.
    lips_close: float | None = None
    # Regions whose apex appearance the flow does not explain (an occlusion, or motion it cannot follow), in
    # facs.REGIONS order: nothing is said about them, and the text says so rather than calling the face still.
    lost: list[str] = field(default_factory=list)
    # Regions whose motion the landmarks measured where the flow did not follow it (a jaw's drop at the chin):
    # region -> (dx, dy) crop px. The text describes them by this vector, not by the flow's reading there.
    landmark_motion: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class Sample:
    """One instruction/answer pair; one row of a shard once joined with its clip's columns."""

    task: str
    template_id: str
    instruction: str
    answer: str


@dataclass
class SynthClip:
    """One clip as a synthetic generator hands it to a database layout writer (``sources.write_layout``)."""

    subject: int  # 1-based subject number; each layout spells it its own way (sub01, 006, s1, spNO.1)
    index: int  # 1-based clip number within the subject
    frames: list[np.ndarray]  # HxW uint8 grey (or HxWx3 BGR), onset first, offset last
    first_frame: int  # database frame number of frames[0] (onset); numbering is consecutive
    apex_offset: int  # index into frames of the apex
    emotion: str  # the database's own spelling ("happiness", "Anger", "negative", "happy")
    au_text: str | None  # the database's AU string, e.g. "L12+6" (None for SMIC)
    fps: float = 200.0
    extra: dict = field(default_factory=dict)  # objective class, stimulus letter, ...
    jpeg_quality: int | None = None  # compression of the frames; None: the writer's default (95)

    @property
    def onset(self) -> int:
        return self.first_frame

    @property
    def apex(self) -> int:
        return self.first_frame + self.apex_offset

    @property
    def offset(self) -> int:
        return self.first_frame + len(self.frames) - 1


@dataclass
class ClipSummary:
    """What the report needs of a built clip (no arrays): made by the pipeline, or read back from its part."""

    clip_id: str
    database: str
    rows: int
    flagged: bool
    dropped: bool
    aus_source: str
    apex_source: str
    verdicts: list[tuple[int, str]] = field(default_factory=list)  # (au, verdict)
    unexplained: list[int | None] = field(default_factory=list)  # implied AU per unexplained motion
    # With a second opinion: (au, labelled, said_by, agreement) per AU of CrossCheck.sources.
    sources: list[tuple[int, bool, str, str | None]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    resumed: bool = False
    duration_s: float | None = None  # onset -> offset, from the label (see labels.duration_class)
    duration_class: str | None = None  # micro | macro | long | None (unknown)
    node: str = ""  # where it was built: host (and Ray node) of the process that wrote its part (node.py)
    # What the reader changed in the clip's label row and why (sources: label_fixes, label_notes), frames missing
    # inside the window, other faces in the onset frame
    label_notes: list[str] = field(default_factory=list)
