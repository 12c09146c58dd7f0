"""Instruction/answer text from verified evidence, through Jinja2 templates (one file per task).

Templates see only the context dict that :func:`build_context` builds: the AUs that both label and
motion support (or that motion alone implies, for databases without AU labels), the regions that moved
above the face's noise floor with their direction words, the emotion, and the motion no label explains.
Every AU name, AU phrase, region phrase and direction word comes from :mod:`unimer_builder.facs`;
templates hold only sentence frames.

Each template file defines ``n_variants`` and two macros, ``instruction(v, c)`` and ``answer(v, c)``.
The variant of a (clip, task) is ``sha256(seed|clip_id|task) mod n_variants``: the same seed gives the
same rows, whatever the process or the order.

Answers are machine-parsable by :func:`parse_answer`, whatever the variant:

* the emotion is the only text in ``**bold**`` (the canonical emotion word, see :func:`labels.canonical`);
* an AU stated as present is written ``AU<n>`` (``AU12 (lip corner puller)``); nothing else in an
  answer is written that way (motion no label explains is named by region and direction only).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import MISSING
from pathlib import Path

from . import labels
from .config import TASKS, BuildConfig, TextConfig  # noqa: F401 - TASKS: readers know it as render.TASKS
from .crosscheck import BY_LANDMARKS, floor_too_high, head_motion_words, judge_motion, noise_level
from .facs import (
    AUS,
    EMOTION_AUS,
    REGION_BY_NAME,
    REGIONS,
    SIDE_WORDS,
    au_name,
    direction_word,
    expected_vector,
    regions_for,
)
from .records import Clip, CrossCheck, Evidence, RegionStats, Sample

# Sides the text names as "the subject's left/right" (asymmetric, top and bottom stay out of the text).
_SIDE_WORDS = {k: SIDE_WORDS[k] for k in ("L", "R")}


# --- environment ---------------------------------------------------------------------------------


def _cap(s: str) -> str:
    """Upper-case the first character only (Jinja's ``capitalize`` lower-cases the rest)."""
    s = str(s)
    return s[:1].upper() + s[1:]


@functools.lru_cache(maxsize=1)
def _inflect():
    import inflect

    return inflect.engine()


def _a(phrase: str) -> str:
    """The phrase with its indefinite article by sound: "an upper lip raiser", "a lip corner puller"."""
    return _inflect().a(str(phrase))


@functools.lru_cache(maxsize=8)
def environment(templates_dir: str):
    """One Jinja2 environment per templates folder and process (StrictUndefined: a typo fails)."""
    import jinja2

    if not Path(templates_dir).is_dir():
        raise FileNotFoundError(f"{templates_dir}: templates folder not found")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["cap"] = _cap
    env.filters["a"] = _a
    return env


class TemplateError(ValueError):
    """A task template that cannot be loaded or rendered: the user's templates folder is at fault (exit 2)."""


@functools.lru_cache(maxsize=64)
def _module(templates_dir: str, task: str):
    env = environment(templates_dir)
    path = Path(templates_dir) / f"{task}.j2"
    try:
        tmpl = env.get_template(f"{task}.j2")
        mod = tmpl.module
    except Exception as e:  # noqa: BLE001 - jinja2.TemplateNotFound, syntax errors, errors at the top level
        raise TemplateError(f"{path}: cannot load template: {type(e).__name__}: {e}") from e
    for name in ("n_variants", "instruction", "answer"):
        if not hasattr(mod, name):
            raise TemplateError(f"{path}: template must define {name!r}")
    try:
        n = int(mod.n_variants)
    except (TypeError, ValueError):
        n = 0
    if n < 1:
        raise TemplateError(f"{path}: n_variants must be a whole number of at least 1, not {mod.n_variants!r}")
    return mod


def check_templates(cfg: BuildConfig) -> None:
    """Every variant of every task's template renders, before any clip is measured: a template that fails (a syntax
    error, a variable no context has) stopped a build after some clips, with a traceback, or skipped every clip on a
    cluster. Rendered over prediction contexts (AUs shown and not, an emotion and none), which name every key a
    sample's context has; a branch only a labelled clip takes is checked when it renders."""
    tdir = str(cfg.text.folder)
    contexts = [prediction_context([], [12], "happiness", 0.1, cfg), prediction_context([], [], None, 0.1, cfg)]
    for task in cfg.text.tasks:
        for v in range(int(_module(tdir, task).n_variants)):
            for ctx in contexts:
                render_task(task, v, ctx, tdir)


def n_variants(task: str, templates_dir: str | Path | None = None) -> int:
    return int(_module(str(templates_dir or TextConfig().folder), task).n_variants)


def pick_variant(seed: int, clip_id: str, task: str, n: int) -> int:
    """Deterministic across processes and Python versions (hashlib, not ``hash``)."""
    h = hashlib.sha256(f"{seed}|{clip_id}|{task}".encode()).digest()
    return int.from_bytes(h[:8], "big") % n


def _tidy(text: str) -> str:
    """One space between words, no blank lines, no leading/trailing space on any line."""
    lines = (" ".join(line.split()) for line in str(text).splitlines())
    return "\n".join(line for line in lines if line)


# --- context -------------------------------------------------------------------------------------


def _px(v: float) -> str:
    return f"{v:.2f}"


def _seconds(d: float) -> str:
    """A duration in seconds, with as many decimals as keep it apart from the micro- and macro-expression
    bounds it is compared with (0.5005 s is not "0.50 s, longer than 0.5 s")."""
    for digits in (2, 3, 4):
        text = f"{d:.{digits}f}"
        if all((float(text) > b) == (d > b) and float(text) != b for b in (labels.MICRO_MAX_S, labels.MACRO_MAX_S)
               if d != b):
            return text
    return f"{d:.4f}"


def _closes(u, lips_close: float | None) -> bool:
    """A lip or the chin moving toward the other lip while the parted lips close (crosscheck._lips_close)."""
    toward = {"upper_lip": 1.0, "lower_lip": -1.0, "chin": -1.0}.get(u.region)
    return lips_close is not None and toward is not None and u.dy * toward > abs(u.dx)


def _region_ctx(r, cfg: BuildConfig) -> dict:
    info = REGION_BY_NAME[r.name]
    # Regions whose mean direction agrees less (|sum v| / sum |v|) get no direction word.
    direction = direction_word(r.dx, r.dy, info) if r.coherence >= cfg.text.min_coherence else None
    return {
        "name": r.name,
        "phrase": info.phrase,
        "direction": direction,
        "magnitude": _px(r.mean),
        "peak": _px(r.peak),
        "z": f"{r.z:.1f}",
    }


def _landmark_ctx(name: str, vec: tuple[float, float]) -> dict:
    info = REGION_BY_NAME[name]
    size = _px(math.hypot(*vec))
    return {"name": name, "phrase": info.phrase, "direction": direction_word(vec[0], vec[1], info), "magnitude": size,
            "peak": size, "z": "n/a"}


def build_context(clip: Clip, ev: Evidence, check: CrossCheck, cfg: BuildConfig) -> dict:
    """Everything a template may say, from verified evidence only."""
    stats = {r.name: r for r in ev.regions}
    supported = sorted(set(check.supported))

    # AUs: only the supported (or inferred) ones, with the side and regions their verdict names.
    aus = []
    for au in supported:
        vs = [v for v in check.verdicts if v.au == au and v.verdict == "supported"]
        sides = {v.side for v in vs if v.side in _SIDE_WORDS}
        side = _SIDE_WORDS[sides.pop()] if len(sides) == 1 else None
        region_names = [v.region for v in vs if v.region in REGION_BY_NAME]
        info = AUS.get(au)
        aus.append({
            "au": au,
            "code": f"AU{au}",
            "name": info.name if info else au_name(au),
            "phrase": info.phrase if info else au_name(au),
            "side": side,
            "regions": [REGION_BY_NAME[n].phrase for n in dict.fromkeys(region_names)],
        })

    # a region the landmarks measured where the flow did not follow it is told by their vector, not the flow's
    moved = [_landmark_ctx(name, check.landmark_motion[name]) if name in check.landmark_motion
             else _region_ctx(stats[name], cfg) for name in check.moved if name in stats or name in check.landmark_motion]

    unexplained = []
    for u in check.unexplained:
        info = REGION_BY_NAME.get(u.region)
        if info is None:
            continue
        # z NaN: motion the landmarks measured where the flow did not follow it (a jaw's drop): its own vector
        mag = stats[u.region].mean if u.region in stats and not math.isnan(u.z) else math.hypot(u.dx, u.dy)
        unexplained.append({
            "phrase": info.phrase,
            "direction": direction_word(u.dx, u.dy, info),
            "magnitude": _px(mag),
            # The AU family whose direction fits; named in words only, never as an AU code.
            "resembles": AUS[u.au].name if u.au in AUS else None,
            "closing": u.au is None and _closes(u, check.lips_close),
            "labelled_clip": check.aus_source == "label",
        })

    emotion = labels.canonical(clip.emotion)
    class_set = labels.default_class_set(clip.database)
    typical = sorted(a for a in supported if emotion and a in EMOTION_AUS.get(emotion, ()))
    duration = labels.duration_s(clip.onset, clip.offset, clip.fps, ev.times)
    duration_class = labels.duration_class(clip.onset, clip.apex, clip.offset, clip.fps, ev.times)
    micro = duration_class == "micro" or (duration_class is None and clip.database != "manifest")
    kind = "micro-expression" if micro else "expression"
    return {
        "database": clip.database,
        "crop_size": cfg.face.crop_size,
        # A clip longer than a micro-expression is never called one ("this expression", not "this micro-expression"),
        # nor is a user's window whose duration is unknown (a folder of frames without an fps): the official
        # databases' clips all have a rate and an offset, and are micro-expressions by selection.
        "kind": kind,
        "micro": kind == "micro-expression",  # "brief, involuntary facial movement", the duration note
        "duration": None if duration is None else _seconds(duration),
        # The offset was no label's but the last frame of the user's folder (sources.manifest)
        "offset_defaulted": bool(clip.extra.get("offset_defaulted")),
        "duration_class": duration_class,
        "micro_max": f"{labels.MICRO_MAX_S:g}",
        "macro_max": f"{labels.MACRO_MAX_S:g}",
        "emotion": emotion,
        "emotion_label": clip.emotion,
        "emotion_composite": labels.composite_of(clip, cfg.text.composite),
        "emotion_class": labels.database_class(clip.database, clip.emotion),
        "class_set": class_set,
        "aus": aus,
        "aus_inferred": check.aus_source == "inferred",
        # A label that names no AU (a cell of 0, or text with no AU code): nothing labelled to confirm or deny
        "labelled_none": check.aus_source == "label" and not clip.aus.tokens,
        # With a second opinion, inferred AUs are those motion and appearance (py-feat) both support.
        "second_opinion": check.second_opinion is not None,
        "inferred_from": "the motion and the facial appearance together" if check.second_opinion else "the motion alone",
        "inferred_by": "the motion and the facial appearance" if check.second_opinion else "the motion",
        "predicted": False,
        "typical_aus": [f"AU{a}" for a in typical],
        "has_pattern": emotion in EMOTION_AUS if emotion else False,
        "moved": moved,
        "unexplained": unexplained,
        # Regions the flow lost: the text names them instead of calling the rest of the face still.
        "lost": [REGION_BY_NAME[n].phrase for n in check.lost if n in REGION_BY_NAME],
        # A noise too high to read small motion (check.max_floor): the text says so instead of calling the face still.
        "floor": _px(noise_level(ev) if floor_too_high(ev, cfg) else ev.floor),
        "floor_high": floor_too_high(ev, cfg) is not None,
        "head_words": head_motion_words(ev),
        "apex_estimated": bool(ev.apex_estimated),
    }


# A prediction, or an instruction asked of a new clip, is worded for a micro-expression (no labelled duration).
_KIND_MICRO = {"kind": "micro-expression", "micro": True, "duration": None, "duration_class": None,
               "micro_max": f"{labels.MICRO_MAX_S:g}", "macro_max": f"{labels.MACRO_MAX_S:g}"}


def _kind(built: Mapping) -> dict:
    """The clip's kind words for a prediction, by the build's rule (:func:`build_context`): a micro-expression where its
    row's duration class says so, or where it is unknown on a database's clip; without a row (``built`` empty), as asked
    of a new clip."""
    seconds, klass, database = built.get("duration_s"), built.get("duration_class"), built.get("database")
    if klass == "micro" or (klass is None and database != "manifest"):
        return dict(_KIND_MICRO)
    return {**_KIND_MICRO, "kind": "expression", "micro": False, "duration_class": klass,
            "duration": None if seconds is None else _seconds(float(seconds))}


def prediction_context(regions, aus, emotion: str | None, floor: float, cfg: BuildConfig | None = None,
                       measured: Iterable[int] = (), built: Mapping | None = None) -> dict:
    """The template context for a model's prediction: its AUs and emotion over the measured motion.

    ``regions`` are the clip's measured region statistics (:class:`RegionStats` or the shard's
    ``regions`` dicts); ``aus`` and ``emotion`` are what the model predicts. Nothing is checked against
    labels: the text says "the model predicts" where labelled text says "the annotation gives". A predicted AU
    is described as moving only where a label of it would be supported by these statistics
    (:func:`~unimer_builder.crosscheck.judge_motion`); one they show weakly, or not at all, is said to be so. Its
    regions are those that moved its way (:func:`_its_way`); a region counts as moved when it is one of those or, as
    the build reports motion (``crosscheck._moved``), above ``z_unexplained`` with no region lost; the noise is the
    build's too (the floor, or the regions' median noise where higher: ``crosscheck.noise_level``); an AU's side is
    the only side whose region moved its way, if just one did.
    ``measured``: the AUs the clip's row shows (its ``aus_supported`` and the AUs its unexplained motion names): of
    those the builder measures by the face's landmarks (:data:`~unimer_builder.crosscheck.BY_LANDMARKS`: lips parting,
    the jaw's drop, a blink), which region statistics alone cannot show, a predicted one is described as shown.
    ``built``: what the clip's row of the build says (``moved_regions``, ``database``, ``duration_s``,
    ``duration_class``): the regions it reports as moving are those the text names beside a predicted AU's own, and a
    clip it would not call a micro-expression (longer, or a user's window of unknown length) is not called one. Without
    the row's ``moved_regions`` (an older build) the build's rule is applied to ``regions``: a region moving above
    ``z_unexplained``, none where the flow lost a region (but the lids a blink closes, or the mouth an opening changes,
    as ``measured`` says).
    """
    cfg = cfg or BuildConfig()
    built = dict(built or {})
    fields = RegionStats.__dataclass_fields__
    stats, lost, noises = {}, [], []
    for r in regions:
        d = r if isinstance(r, dict) else r.__dict__
        if d.get("name") not in REGION_BY_NAME:
            continue
        # a model's region features carry some fields only (deft's region_stat_fields): the rest take their defaults
        rs = RegionStats(**{k: f.default if d.get(k) is None and f.default is not MISSING else d.get(k)
                            for k, f in fields.items()})
        if rs.noise is not None and rs.noise > 0:
            noises.append(float(rs.noise))  # every region's, lost ones too (crosscheck.noise_level)
        if not all(v is not None and math.isfinite(v) for v in (rs.mean, rs.dx, rs.dy, rs.z)) \
                or rs.match < cfg.check.region_match:
            lost.append(rs.name)  # the flow lost it (as the builder's check.region_match): no evidence either way
            continue
        stats[rs.name] = rs
    predicted = sorted({int(a) for a in aus})
    moved_by_au: dict[int, list[str]] = {}
    for au in predicted:
        own = {r.name for r in regions_for(au)} if au in AUS else set()
        moved_by_au[au] = [r.name for r in REGIONS if r.name in own and r.name in stats
                           and _its_way(au, stats[r.name], cfg)]
    carrying = {n for names in moved_by_au.values() for n in names}
    judged = {au: judge_motion(au, stats, cfg) for au in predicted if au in AUS}
    verdicts = {au: judged[au].verdict if au in judged else "unverifiable" for au in predicted}
    # an AU no measured region can show (AU11, or its regions lost) is not described as moving, nor as not moving
    by_landmarks = BY_LANDMARKS & {int(a) for a in measured}  # the lips', jaw's and eyes' own measurement
    unchecked = {au for au in predicted if au not in by_landmarks
                 and (au not in AUS or not any(r.name in stats for r in regions_for(au)))}
    shown = {au: verdicts[au] == "supported" or au in by_landmarks for au in predicted}
    au_ctx = []
    for au in predicted:
        info = AUS.get(au)
        sides = {REGION_BY_NAME[n].side for n in moved_by_au[au]}
        side = _SIDE_WORDS[sides.pop()] if len(sides) == 1 and None not in sides else None
        # one region a little its way, the regions together too little (crosscheck._weak_alone): weak, not another's
        little = verdicts[au] == "weak" or (au in judged and judged[au].too_little)
        phrase = (info.phrase if shown[au] else _UNCHECKED if au in unchecked else _WEAK if little
                  else _OTHERWISE if moved_by_au[au] else _UNSHOWN)
        au_ctx.append({"au": au, "code": f"AU{au}", "name": info.name if info else au_name(au), "phrase": phrase,
                       "side": side, "regions": [REGION_BY_NAME[n].phrase for n in moved_by_au[au]]})
    # beyond the regions a predicted AU moves its way, those the build reports as moving (its row's moved_regions), or
    # by the build's own rule (crosscheck._moved): strong motion (check.z_unexplained), none beside a region the flow
    # lost, the lids a blink closes and the mouth an opening changes not counted as lost (crosscheck's ``occluded``)
    if built.get("moved_regions") is not None:
        strong = set(built["moved_regions"])
    else:
        seen = {int(a) for a in measured}
        occluded = {n for n in lost if not (
            (45 in seen and REGION_BY_NAME[n].family in ("upper_lid", "lower_lid"))
            or (seen & {25, 26, 27} and n in ("upper_lip", "lip_corner_R", "lip_corner_L", "lower_lip", "chin")))}
        strong = set() if occluded else {n for n, rs in stats.items() if rs.z >= cfg.check.z_unexplained}
    moved = [_region_ctx(stats[r.name], cfg) for r in REGIONS if r.name in stats and (
        r.name in carrying or r.name in strong)]
    level = max(float(floor), float(statistics.median(noises)) if noises else 0.0)  # crosscheck.noise_level
    emotion = labels.canonical(emotion)
    typical = sorted(a for a in predicted if emotion and a in EMOTION_AUS.get(emotion, ()))
    return {
        "typical_unshown": [f"AU{a}" for a in typical if not shown[a] and a not in unchecked],
        **_kind(built), "database": None, "crop_size": cfg.face.crop_size, "emotion": emotion,
        "emotion_label": emotion,
        "emotion_composite": labels.composite("", emotion), "emotion_class": emotion, "class_set": None,
        "aus": au_ctx, "aus_inferred": False, "labelled_none": False, "predicted": True, "second_opinion": False,
        "inferred_from": "the motion alone", "inferred_by": "the motion",
        "typical_aus": [f"AU{a}" for a in typical if shown[a]],
        "has_pattern": emotion in EMOTION_AUS if emotion else False, "moved": moved, "unexplained": [],
        "lost": [REGION_BY_NAME[n].phrase for n in lost],
        "floor": _px(level if level > cfg.check.max_floor else floor), "floor_high": level > cfg.check.max_floor,
        "head_words": None, "apex_estimated": False,
        "offset_defaulted": False,
    }


# What is said of a predicted AU that a label of it would not have supported: the head's claim, not the motion's (a
# model's "AU4, the brows lower and draw together" beside brows at z 0 made its explanation contradict the motion it
# cites; "AU6, the cheeks rise" beside cheeks the builder judged weak overstated it).
_UNSHOWN = "predicted, though its regions do not move its way above their noise"
_WEAK = "predicted, though its regions move its way too little for the motion to confirm it"
# its regions moved its way, but as another action carries them (corners the lower lip lifts, brows the eye lifts,
# corners stretched sideways while the cheeks rise): the builder would not support a label of it there
_OTHERWISE = "predicted, though the motion of its regions is better explained by another action"
_UNCHECKED = "predicted; no region the flow measured can show it"


def _its_way(au: int, rs: RegionStats, cfg: BuildConfig) -> bool:
    """Whether region ``rs`` of ``au`` moved its way: the component along its FACS direction at least
    ``check.z_weak`` over the region's noise, within ``check.cos_supported`` of that direction (a cheek pulled
    outward is no region of a rising cheek's, however far it moved)."""
    if rs.dx is None or rs.dy is None:
        return False
    ex, ey = expected_vector(au, REGION_BY_NAME[rs.name])
    along, size = rs.dx * ex + rs.dy * ey, math.hypot(rs.dx, rs.dy)
    z_along = along / rs.noise if rs.noise else (rs.z or 0.0) * (along / size if size else 0.0)
    return size > 0 and along / size >= cfg.check.cos_supported and z_along >= cfg.check.z_weak


def render_prediction(task: str, regions, aus, emotion: str | None, floor: float, cfg: BuildConfig | None = None,
                      variant: int = 0, measured: Iterable[int] = (), built: Mapping | None = None) -> str:
    """A task's answer for a model's prediction, in the builder's own template wording (variant 0); ``measured`` as
    :func:`prediction_context`."""
    cfg = cfg or BuildConfig()
    ctx = prediction_context(regions, aus, emotion, floor, cfg, measured, built)
    return render_task(task, variant, ctx, str(cfg.text.folder))[1]


@functools.lru_cache(maxsize=8)
def _standard_instructions(templates_dir: str, crop_size: int) -> tuple[tuple[str, str], ...]:
    ctx = {"crop_size": crop_size, **_KIND_MICRO}  # the only context an instruction may name
    return tuple((task, _tidy(_module(templates_dir, task).instruction(0, ctx))) for task in TASKS)


def standard_instructions(cfg: BuildConfig | None = None) -> dict[str, str]:
    """Task -> the instruction of template variant 0, so that a new clip is asked in the training wording."""
    cfg = cfg or BuildConfig()
    return dict(_standard_instructions(str(cfg.text.folder), int(cfg.face.crop_size)))


# --- samples -------------------------------------------------------------------------------------


def render_task(task: str, variant: int, ctx: dict, templates_dir: str) -> tuple[str, str]:
    mod = _module(str(templates_dir), task)
    v = variant % int(mod.n_variants)
    try:
        return _tidy(mod.instruction(v, ctx)), _tidy(mod.answer(v, ctx))
    except Exception as e:  # noqa: BLE001 - jinja2's UndefinedError and the like: the template's, named
        raise TemplateError(f"{Path(templates_dir) / (task + '.j2')}: variant {v} cannot be rendered: "
                            f"{type(e).__name__}: {e}") from e


def render_samples(clip: Clip, ev: Evidence, check: CrossCheck, cfg: BuildConfig) -> list[Sample]:
    """One sample per task of ``text.tasks``; the emotion task is left out for a clip with no emotion."""
    ctx = build_context(clip, ev, check, cfg)
    tdir = str(cfg.text.folder)
    out = []
    for task in cfg.text.tasks:
        if task == "emotion" and ctx["emotion"] is None:
            continue
        n = int(_module(tdir, task).n_variants)
        v = pick_variant(cfg.text.seed, clip.clip_id, task, n)
        instruction, answer = render_task(task, v, ctx, tdir)
        out.append(Sample(task=task, template_id=f"{task}/{v}", instruction=instruction, answer=answer))
    return out


# --- parsing answers back ------------------------------------------------------------------------

_AU_CODE = re.compile(r"\bAU\s?(\d{1,2})(?!\d)")
_BOLD = re.compile(r"\*\*\s*([^*\n]+?)\s*\*\*")
_EMOTION_LINE = re.compile(r"\bemotion\s*(?:is|:|-|—)\s*\**\s*([A-Za-z][A-Za-z ]*?)\s*(?:\*|[.,;(\n]|$)",
                           re.IGNORECASE)


@functools.lru_cache(maxsize=1)
def _emotion_words() -> tuple[str, ...]:
    words = set(labels.COMPOSITE) | set(EMOTION_AUS)
    for sets in labels.CLASS_SETS.values():
        for classes in sets.values():
            words.update(classes)
    return tuple(sorted(words, key=len, reverse=True))


def parse_answer(text: str | None) -> dict:
    """Recover ``emotion`` (canonical word or None) and ``aus`` (sorted AU numbers) from an answer.

    Exact on the builder's own answers (bold emotion, ``AU<n>`` codes); tolerant of generated text:
    without bold it reads an ``Emotion: X`` phrase, then the first known emotion word.
    """
    text = text or ""
    aus = sorted({int(m) for m in _AU_CODE.findall(text) if int(m) in AUS})
    emotion = None
    m = _BOLD.search(text)
    if m:
        emotion = labels.canonical(m.group(1))
    else:
        m = _EMOTION_LINE.search(text)
        if m and labels.canonical(m.group(1)) in _emotion_words():
            emotion = labels.canonical(m.group(1))
        else:
            low = text.lower()
            hits = [(mm.start(), w) for w in _emotion_words()
                    for mm in [re.search(rf"\b{re.escape(w)}\b", low)] if mm]
            if hits:
                emotion = min(hits)[1]
    return {"emotion": emotion, "aus": aus}
