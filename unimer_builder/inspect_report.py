"""``unimer inspect``: a static HTML report of a build, to look at what the builder decided.

One folder (default ``OUT/inspect/``) that opens offline from disk, no server::

    index.html                 the build: counts, agreement per AU and database, verdict distribution,
                               z and magnitude histograms, skipped clips, settings, a filterable clip table
    clips/<slug>.html          one clip: onset and apex crops, the flow as colours and as arrows, the AU
                               regions with their statistics and verdicts, the labels, every answer
    clips/<slug>/*.png         that clip's pictures
    plots/*.png, assets/       the build's plots (matplotlib) and the page's CSS and JavaScript

The regions are drawn from the ``landmarks`` column (the clip's own aligned landmarks) with
``regions.region_masks``, exactly as the builder measured them. The folder is written beside the old one
and swapped in, so a failed run leaves the previous report whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import jinja2
import numpy as np
from markupsafe import Markup, escape

from . import facs, flowviz
from .atomic import staged_folder, swap_in
from .config import FaceConfig
from .regions import face_mask, region_masks
from .shards import flow_numpy, open_shard, shard_files

TEMPLATES_DIR = Path(__file__).resolve().parent / "inspect_templates"
VERDICT_ORDER = ("supported", "weak", "contradicted", "unverifiable")
# Region outline colours by what the builder decided there (colour-blind-safe where it matters: the
# red/green pair also differs in lightness).
STATUS_COLOURS = {
    "supported": "#1a9850", "weak": "#f39c12", "contradicted": "#d73027", "unverifiable": "#8c8c8c",
    "unexplained": "#8e44ad", "moved": "#2c7fb8", "still": "#ffffff",
}
ARROW_GAIN = 8.0  # arrows are drawn this many times longer than the motion (sub-pixel motion is invisible at 1x)

LIGHT_COLUMNS = (
    "id", "clip_id", "database", "subject", "clip", "onset_frame", "apex_frame", "offset_frame", "apex_source",
    "fps", "duration_s", "duration_class", "emotion", "emotion_composite", "emotion_class", "class_set",
    "au_text", "aus", "au_unparsed", "aus_source", "aus_supported", "regions", "verdicts", "unexplained",
    "noise_floor", "noise_spread", "head_motion", "blinks", "moved_regions", "flagged", "flag_reasons", "task",
    "template_id", "instruction", "answer",
)
VISUAL_COLUMNS = ("onset_image", "apex_image", "flow_image", "flow", "landmarks")


@dataclass
class ClipView:
    """What one clip page shows (the first row's clip columns plus every row's text)."""

    clip_id: str
    slug: str
    info: dict
    answers: list[dict] = field(default_factory=list)
    region_status: dict[str, str] = field(default_factory=dict)
    has_regions: bool = False
    has_faces: bool = True


def slug(clip_id: str) -> str:
    """A file-safe, unique name for a clip id (``casme2/sub01/EP02_01f`` -> ``casme2_sub01_EP02_01f-1a2b3c``)."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", clip_id).strip("._") or "clip"
    return f"{readable[:80]}-{hashlib.sha256(clip_id.encode()).hexdigest()[:6]}"


def region_status(info: dict) -> dict[str, str]:
    """Region name -> what was decided there: the worst verdict of a labelled AU it carries, else
    ``unexplained`` (strong motion no label explains), ``moved`` (described as moving) or ``still``."""
    rank = {"contradicted": 0, "weak": 1, "supported": 2, "unverifiable": 3}
    out: dict[str, str] = {}
    for v in info.get("verdicts") or []:
        r = v["region"]
        if r and (r not in out or rank.get(v["verdict"], 9) < rank.get(out[r], 9)):
            out[r] = v["verdict"]
    for u in info.get("unexplained") or []:
        out.setdefault(u["region"], "unexplained")
    for r in info.get("moved_regions") or []:
        out.setdefault(r, "moved")
    for r in facs.REGION_NAMES:
        out.setdefault(r, "still")
    return out


# --- reading the build ---------------------------------------------------------------------------


def iter_clips(out_dir: Path, clip: str | None = None) -> Iterator[tuple[list[dict], dict]]:
    """``(rows of one clip, its visual columns)`` in shard order; a clip's rows are contiguous in shards.

    Holds one clip's pictures at a time, so memory does not grow with the build.
    """
    rows: list[dict] = []
    visual: dict = {}
    for f in shard_files(out_dir):
        pf = open_shard(f)
        names = set(pf.schema_arrow.names)
        missing = [c for c in LIGHT_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"{f}: missing column(s) {missing}; rebuild with this version of the builder")
        vis = [c for c in VISUAL_COLUMNS if c in names]
        for batch in pf.iter_batches(batch_size=64, columns=list(LIGHT_COLUMNS) + vis, use_threads=False):
            light = batch.select(list(LIGHT_COLUMNS)).to_pylist()
            flows = flow_numpy(batch.column("flow")) if "flow" in vis else None
            for i, r in enumerate(light):
                if clip is not None and r["clip_id"] != clip:
                    continue
                if rows and rows[0]["clip_id"] != r["clip_id"]:
                    yield rows, visual
                    rows, visual = [], {}
                if not rows:
                    visual = {c: batch.column(c)[i].as_py() for c in vis if c != "flow"}
                    if flows is not None:
                        visual["flow"] = np.asarray(flows[i], np.float32)
                rows.append(r)
    if rows:
        yield rows, visual


def _load_report(out_dir: Path) -> dict:
    p = out_dir / "build_report.json"
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not valid JSON ({e})") from e


# --- pictures -----------------------------------------------------------------------------------


def _decode(png: dict | None, flags: int | None = None) -> np.ndarray | None:
    if not png or not png.get("bytes"):
        return None
    img = cv2.imdecode(np.frombuffer(png["bytes"], np.uint8), cv2.IMREAD_UNCHANGED if flags is None else flags)
    if img is None:
        raise ValueError(f"{png.get('path')}: not a decodable image")
    return img


def _figure(size_px: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(size_px / 100, size_px / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_axis_off()
    return fig, ax


def _save(fig, path: Path) -> None:
    fig.savefig(path, format="png", metadata={"Software": None})


def _crop_size(visual: dict, report: dict, default: int) -> int:
    fi = _decode(visual.get("flow_image"))
    if fi is not None:
        return int(fi.shape[0])
    return int(((report.get("config") or {}).get("face") or {}).get("crop_size") or default)


def draw_arrows(apex: np.ndarray, flow: np.ndarray, crop: int, floor: float, path: Path,
                landmarks: np.ndarray | None = None) -> None:
    """The reduced flow (3, F, F) as arrows over the apex crop, ``ARROW_GAIN`` times their length;
    arrows within the noise (``floor``: the clip's floor + 2 spreads, px) and off the face are left out."""
    size = apex.shape[0]
    f = flow.shape[-1]
    step = max(1, f // 16)
    ys, xs = np.mgrid[step // 2:f:step, step // 2:f:step]
    u, v = flow[0][ys, xs], flow[1][ys, xs]  # crop px
    cell = crop / f  # crop px per flow cell
    px, py = (xs + 0.5) * cell, (ys + 0.5) * cell
    keep = np.hypot(u, v) > max(floor, 0.05)
    if landmarks is not None:
        face = face_mask(landmarks, crop)
        keep &= face[np.clip(py.astype(int), 0, crop - 1), np.clip(px.astype(int), 0, crop - 1)]
    k = size / crop  # display px per crop px
    fig, ax = _figure(2 * size)
    ax.imshow(apex, cmap="gray", vmin=0, vmax=255, extent=(0, size, size, 0))
    if keep.any():
        ax.quiver(px[keep] * k, py[keep] * k, u[keep] * k * ARROW_GAIN, v[keep] * k * ARROW_GAIN,
                  color="#ffd60a", angles="xy", scale_units="xy", scale=1.0, width=0.005, headwidth=3.5)
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    _save(fig, path)


def draw_regions(apex: np.ndarray, landmarks: np.ndarray, crop: int, regions: list[dict],
                 status: dict[str, str], path: Path) -> None:
    """The AU regions as the builder measured them (``region_masks`` of the clip's own landmarks, cut to
    the face), outlined in the colour of their verdict, with each region's mean motion as an arrow."""
    size = apex.shape[0]
    k = size / crop
    masks = region_masks(landmarks, crop, within=face_mask(landmarks, crop))
    fig, ax = _figure(2 * size)
    ax.imshow(apex, cmap="gray", vmin=0, vmax=255, extent=(0, size, size, 0))
    stats = {r["name"]: r for r in regions}
    for name, m in masks.items():
        if not m.any():
            continue
        st = status.get(name, "still")
        colour = STATUS_COLOURS[st]
        ax.contour(np.arange(crop) * k + k / 2, np.arange(crop) * k + k / 2, m.astype(float), levels=[0.5],
                   colors=[colour], linewidths=2.0 if st != "still" else 0.8,
                   linestyles="solid" if st != "still" else "dotted")
        ys, xs = np.nonzero(m)
        cx, cy = xs.mean() * k, ys.mean() * k
        r = stats.get(name)
        if r is not None and st != "still":
            ax.annotate("", xy=(cx + r["dx"] * k * ARROW_GAIN, cy + r["dy"] * k * ARROW_GAIN), xytext=(cx, cy),
                        arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.8})
            ax.text(cx, ys.min() * k - 2, name, color="white", fontsize=7, ha="center", va="bottom",
                    bbox={"boxstyle": "round,pad=0.15", "fc": colour, "alpha": 0.8, "lw": 0})
    ax.set_xlim(0, size)
    ax.set_ylim(size, 0)
    _save(fig, path)


def write_clip_pictures(rows: list[dict], visual: dict, report: dict, folder: Path) -> tuple[bool, bool]:
    """Onset, apex, flow colour map, arrows and regions of one clip into ``folder``; returns whether the
    regions could be drawn (the build has the ``landmarks`` column) and whether the face crops were there.

    A ``--no-images`` build holds no face crops: its arrows and regions are drawn over a plain grey square
    of the crop's size, so that what the builder measured can still be looked at."""
    folder.mkdir(parents=True, exist_ok=True)
    info = rows[0]
    has_faces = "onset_image" in visual and "apex_image" in visual
    if has_faces:
        for key in ("onset_image", "apex_image"):
            png = visual.get(key)
            if not png or not png.get("bytes"):
                raise ValueError(f"clip {info['clip_id']!r}: column {key!r} has no image")
            (folder / f"{key.split('_')[0]}.png").write_bytes(png["bytes"])
        apex = _decode(visual["apex_image"], cv2.IMREAD_GRAYSCALE)
        crop = _crop_size(visual, report, apex.shape[0])
    else:
        crop = _crop_size(visual, report, FaceConfig.crop_size)
        apex = np.full((crop, crop), 96, np.uint8)
    flow = visual.get("flow")
    if visual.get("flow_image"):
        (folder / "flow.png").write_bytes(visual["flow_image"]["bytes"])
    elif flow is not None:  # a build before the flow_image column: the same colours from the reduced flow
        rgb = flowviz.flow_to_rgb(flow[:2])
        rgb = cv2.resize(rgb, (crop, crop), interpolation=cv2.INTER_NEAREST)
        (folder / "flow.png").write_bytes(flowviz.png_rgb(rgb))
    lm = visual.get("landmarks")
    landmarks = np.asarray(lm, np.float64) if lm else None
    if flow is not None:
        noise = float(info.get("noise_floor") or 0.0) + 2.0 * float(info.get("noise_spread") or 0.0)
        draw_arrows(apex, flow, crop, noise, folder / "arrows.png", landmarks)
    if landmarks is not None:
        draw_regions(apex, landmarks, crop, info["regions"] or [], region_status(info), folder / "regions.png")
    return landmarks is not None, has_faces


def write_build_plots(clips: list[ClipView], report: dict, folder: Path) -> dict[str, str]:
    """Verdict distribution per AU, z and magnitude histograms (matplotlib); name -> file name."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    per_au: dict[int, Counter] = defaultdict(Counter)
    for c in clips:
        for v in c.info.get("verdicts") or []:
            per_au[v["au"]][v["verdict"]] += 1
        for u in c.info.get("unexplained") or []:
            per_au[u["au"] if u["au"] is not None else -1]["unexplained"] += 1
    labels = [f"AU{a}" if a >= 0 else "no AU" for a in sorted(per_au)]
    fig = Figure(figsize=(7.5, 0.45 * max(3, len(labels)) + 1.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    left = np.zeros(len(labels))
    for verdict in (*VERDICT_ORDER, "unexplained"):
        vals = np.array([per_au[a][verdict] for a in sorted(per_au)], float)
        if vals.any():
            ax.barh(labels, vals, left=left, color=STATUS_COLOURS[verdict], label=verdict, edgecolor="white")
            left += vals
    ax.invert_yaxis()
    ax.set_xlabel("clips")
    ax.set_title("Verdict of each labelled AU; motion no label explains, by the AU it fits")
    if len(labels):
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save(fig, folder / "verdicts.png")
    out["verdicts"] = "verdicts.png"

    cfg = (report.get("config") or {}).get("check") or {}
    carried = [r["z"] for c in clips for r in (c.info.get("regions") or [])
               if c.region_status.get(r["name"]) in VERDICT_ORDER]
    other = [r["z"] for c in clips for r in (c.info.get("regions") or [])
             if c.region_status.get(r["name"]) not in VERDICT_ORDER]
    fig = Figure(figsize=(7.5, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    hi = max(10.0, float(np.percentile(carried + other, 99)) if carried or other else 10.0)
    bins = np.linspace(-5, hi, 50)
    ax.hist(np.clip(other, -5, hi), bins=bins, color="#9ecae1", label="regions no labelled AU is checked in")
    ax.hist(np.clip(carried, -5, hi), bins=bins, color="#de2d26", alpha=0.7, label="regions carrying a labelled AU")
    for key, style in (("z_weak", ":"), ("z_supported", "--"), ("z_unexplained", "-.")):
        if key in cfg:
            ax.axvline(cfg[key], color="black", linestyle=style, linewidth=1, label=f"{key} = {cfg[key]}")
    ax.set_yscale("log")
    ax.set_xlabel("z: region motion above the face's noise floor, in units of its spread (clipped)")
    ax.set_ylabel("regions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, folder / "z.png")
    out["z"] = "z.png"

    mags = [r["mean"] for c in clips for r in (c.info.get("regions") or [])]
    floors = [c.info["noise_floor"] for c in clips if c.info.get("noise_floor") is not None]
    fig = Figure(figsize=(7.5, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = max(1.0, float(np.percentile(mags, 99)) if mags else 1.0)
    bins = np.linspace(0, top, 50)
    ax.hist(np.clip(mags, 0, top), bins=bins, color="#3182bd", label="region mean motion")
    if floors:
        ax.hist(np.clip(floors, 0, top), bins=bins, color="#fd8d3c", alpha=0.8, label="clip noise floor")
    ax.set_yscale("log")
    ax.set_xlabel("px of the crop, onset to apex, head motion removed (clipped)")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, folder / "magnitude.png")
    out["magnitude"] = "magnitude.png"
    cv2.imwrite(str(folder / "flow_wheel.png"), flowviz.colour_wheel(120)[..., ::-1])
    out["wheel"] = "flow_wheel.png"
    return out


# --- pages ---------------------------------------------------------------------------------------


def _env():
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)

    def bold(text: str | None) -> Markup:
        """Escape, then turn the answers' ``**word**`` (the emotion) into <strong>."""
        return Markup(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", str(escape(text or ""))))

    def num(x, digits: int = 2) -> str:
        if x is None:
            return "—"
        if isinstance(x, float):
            return "nan" if x != x else f"{x:.{digits}f}"
        return str(x)

    env.filters.update(bold=bold, num=num, au_name=facs.au_name)
    return env


def _settings(report: dict) -> list[tuple[str, str]]:
    out = []
    for k, v in (report.get("config") or {}).items():
        if isinstance(v, dict):
            out += [(f"{k}.{kk}", json.dumps(vv) if isinstance(vv, (list, dict)) else str(vv)) for kk, vv in v.items()]
        else:
            out.append((k, json.dumps(v) if isinstance(v, (list, dict)) else str(v)))
    for k in ("config_fingerprint", "builder_version", "format", "root", "policy"):
        if k in report:
            out.append((k, str(report[k])))
    for k, v in (report.get("run") or {}).items():
        out.append((f"run.{k}", json.dumps(v) if isinstance(v, dict) else str(v)))
    return out


def _clip_view(rows: list[dict], has_regions: bool, has_faces: bool = True) -> ClipView:
    info = dict(rows[0])
    answers = [{"task": r["task"], "template_id": r["template_id"], "instruction": r["instruction"],
                "answer": r["answer"], "id": r["id"]} for r in rows]
    return ClipView(info["clip_id"], slug(info["clip_id"]), info, answers, region_status(info), has_regions,
                    has_faces)


def _filters(view: ClipView) -> dict[str, str]:
    info = view.info
    verdicts = {v["verdict"] for v in info.get("verdicts") or []}
    if info.get("unexplained"):
        verdicts.add("unexplained")
    aus = {t["au"] for t in info.get("aus") or []} | set(info.get("aus_supported") or [])
    aus |= {v["au"] for v in info.get("verdicts") or []}
    return {"verdicts": " ".join(sorted(verdicts)), "aus": " ".join(str(a) for a in sorted(aus)),
            "subject": info["subject"]}


# What a report folder holds: a folder holding anything else is no earlier report, and is not replaced; what file
# browsers leave in a folder they showed does not count
_REPORT_ENTRIES = frozenset({"index.html", "clips", "assets", "plots"})
_BROWSER_FILES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def _check_dest(dest: Path) -> None:
    """A report replaces its folder: refuse one that is a file, or is not empty and is no earlier report (its pages,
    and nothing beside them) (``--dest`` naming the database, the build itself or a folder of one's own files deleted
    them)."""
    blocking = next((p for p in (dest, *dest.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise FileExistsError(f"{dest}: {'it' if blocking == dest else blocking} is a file, not a folder; choose "
                              "another folder")
    if not dest.is_dir():
        return
    entries = {p.name for p in dest.iterdir()} - _BROWSER_FILES
    report = (dest / "index.html").is_file() or any((dest / "clips").glob("*.html"))
    other = sorted(entries - _REPORT_ENTRIES) if report else sorted(entries)
    if other:
        shown = ", ".join(other[:3]) + (f" and {len(other) - 3} more" if len(other) > 3 else "")
        raise FileExistsError(f"{dest}: holds files no inspection report wrote ({shown}); a report replaces its "
                              "folder: move them, or give another with --dest")


def write_report(out_dir: Path | str, dest: Path | str | None = None, clip: str | None = None) -> Path:
    """Write the report of the build in ``out_dir`` to ``dest`` (default ``OUT/inspect``); returns the page
    to open: ``index.html``, or with ``clip`` that clip's page (only it is written, beside an existing report).

    Raises ``FileNotFoundError`` (no shards), ``KeyError`` (no such clip), ``ValueError`` (unreadable data),
    ``FileExistsError`` (``dest`` is a file, or a folder no report wrote).
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():  # before anything is made: a mistyped folder must not be left behind, empty
        raise FileNotFoundError(f"{out_dir}: no such build folder")
    dest = Path(os.path.abspath(dest)) if dest is not None else out_dir / "inspect"  # "." has no name to stage beside
    if dest.is_symlink():
        dest = dest.resolve()  # the report goes where the link points, the link stays
    _check_dest(dest)
    report = _load_report(out_dir)
    env = _env()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(dest) as staging:
        (staging / "clips").mkdir()
        views: list[ClipView] = []
        for rows, visual in iter_clips(out_dir, clip):
            s = slug(rows[0]["clip_id"])
            has_regions, has_faces = write_clip_pictures(rows, visual, report, staging / "clips" / s)
            views.append(_clip_view(rows, has_regions, has_faces))
        if clip is not None and not views:
            raise KeyError(f"{out_dir}: no clip {clip!r} in the shards")
        _copy_assets(staging)
        if clip is None:
            plots = write_build_plots(views, report, staging / "plots")
            _write_summary(env, staging, views, report, plots, out_dir)
        else:
            (staging / "plots").mkdir(exist_ok=True)
            cv2.imwrite(str(staging / "plots" / "flow_wheel.png"), flowviz.colour_wheel(120)[..., ::-1])
        for i, v in enumerate(views):
            prev_v = views[i - 1] if i > 0 else None
            next_v = views[i + 1] if i + 1 < len(views) else None
            html = env.get_template("clip.html.j2").render(
                v=v, prev=prev_v, next=next_v, standalone=clip is not None, colours=STATUS_COLOURS,
                full_px=flowviz.FULL_PX, gain=ARROW_GAIN, directions=flowviz.DIRECTION_COLOURS,
                region_names=facs.REGION_NAMES)
            (staging / "clips" / f"{v.slug}.html").write_text(html, encoding="utf-8")
        if clip is None:
            swap_in(staging, dest)
            return dest / "index.html"
        # One clip: its page, pictures and the shared assets join the folder, nothing else changes.
        dest.mkdir(parents=True, exist_ok=True)
        for sub in ("clips", "assets", "plots"):
            for p in sorted((staging / sub).rglob("*")):
                if p.is_file():
                    target = dest / p.relative_to(staging)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(p, target)
        return dest / "clips" / f"{views[0].slug}.html"


def _copy_assets(staging: Path) -> None:
    (staging / "assets").mkdir(exist_ok=True)
    for name in ("report.css", "report.js"):
        shutil.copyfile(TEMPLATES_DIR / name, staging / "assets" / name)


def _write_summary(env, staging: Path, views: list[ClipView], report: dict, plots: dict, out_dir: Path) -> None:
    verdict_counts = Counter(v["verdict"] for c in views for v in c.info.get("verdicts") or [])
    verdict_counts["unexplained"] = sum(len(c.info.get("unexplained") or []) for c in views)
    agreement = report.get("agreement") or {}
    scopes = (["all"] if "all" in agreement else []) + sorted(k for k in agreement if k != "all")
    filters = {c.clip_id: _filters(c) for c in views}
    html = env.get_template("summary.html.j2").render(
        views=views, filters=filters, report=report, counts=report.get("counts") or {},
        agreement=[(s, agreement[s]) for s in scopes if agreement.get(s)],
        verdict_counts=[(k, verdict_counts.get(k, 0)) for k in (*VERDICT_ORDER, "unexplained")],
        skipped=report.get("skipped") or [], beyond=(report.get("durations") or {}).get("beyond_micro") or [],
        settings=_settings(report), plots=plots, colours=STATUS_COLOURS, title=str(out_dir.resolve().name),
        subjects=sorted({c.info["subject"] for c in views}),
        aus=sorted({int(a) for f in filters.values() for a in f["aus"].split()}),
        verdict_names=(*VERDICT_ORDER, "unexplained"), full_px=flowviz.FULL_PX,
        directions=flowviz.DIRECTION_COLOURS, rows=sum(len(c.answers) for c in views),
        has_report=bool(report))
    (staging / "index.html").write_text(html, encoding="utf-8")
