"""Emotion class sets of the field's protocols, as declarative tables.

The original label is always kept; these give the mapped columns. ``None`` means the protocol
drops the sample (e.g. CASME II ``others`` in the composite 3-class set).

Sources: MEGC2019 composite protocol (See et al., FG 2019): the class mapping as implemented by
tvaranka/meb ``Megc``, the membership as the official 442-clip list (``data/megc2019_composite.csv``,
its header names where it comes from); CASME II 5-class and CAS(ME)^3 7-class as in muse1998/MMNet;
CAS(ME)^3 3-class as in wangzhifengharrison/HTNet (see ``shared/research/databases-and-peers.md`` §1.9).
"""

from __future__ import annotations

import csv
import difflib
import functools
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .records import Clip

COMPOSITE = ("negative", "positive", "surprise")
# Cells that say an emotion was not given (``?`` as CASME II writes unknown AUs, a dash, n/a): no emotion label,
# as a blank; an answer must not say a clip "is labelled ?".
NO_EMOTION = frozenset({"?", "？", "-", "/", "n/a", "na", "unknown"})

# Lower-cased, whitespace-normalised original label -> canonical emotion word.
_CANONICAL = {
    "happiness": "happiness", "happy": "happiness", "positive": "positive", "po": "positive",
    "disgust": "disgust", "repression": "repression", "surprise": "surprise", "sur": "surprise",
    "others": "others", "other": "others", "fear": "fear", "sadness": "sadness", "sad": "sadness",
    "anger": "anger", "contempt": "contempt", "negative": "negative", "ne": "negative",
    # adjective forms, as FER-style and users' own sheets write them
    "angry": "anger", "surprised": "surprise", "disgusted": "disgust", "fearful": "fear", "afraid": "fear",
    "scared": "fear", "joy": "happiness", "joyful": "happiness", "contemptuous": "contempt", "repressed": "repression",
}

# Every canonical emotion word (the words answers use), sorted.
EMOTIONS: tuple[str, ...] = tuple(sorted(set(_CANONICAL.values())))

_TO_COMPOSITE = {
    "happiness": "positive", "positive": "positive", "surprise": "surprise",
    "disgust": "negative", "repression": "negative", "anger": "negative", "contempt": "negative",
    "sadness": "negative", "fear": "negative", "negative": "negative",
}

# Per-database class sets (canonical words). The first set of each database is its default.
CLASS_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "casme2": {"casme2_5": ("happiness", "disgust", "repression", "surprise", "others")},
    "samm": {"samm_5": ("anger", "happiness", "others", "surprise", "contempt")},
    "smic": {"smic_3": ("negative", "positive", "surprise")},
    "casme3": {
        "casme3_7": ("happiness", "disgust", "fear", "anger", "sadness", "surprise", "others"),
        "casme3_4": ("negative", "positive", "surprise", "others"),
        "casme3_3": ("negative", "positive", "surprise"),
    },
}

# Per-database exceptions to the composite protocol: CASME II fear/sadness are not in MEGC2019.
_COMPOSITE_DROP = {"casme2": {"fear", "sadness", "others"}, "samm": {"others"}, "casme3": {"others"}}


def canonical(label: object) -> str | None:
    """Canonical emotion word for an original label; ``None`` for blanks, the word itself if unknown."""
    if label is None:
        return None
    s = " ".join(str(label).strip().lower().split())
    if s in ("", "nan", "none") or s in NO_EMOTION:
        return None
    return _CANONICAL.get(s, s)


def nearest_emotion(label: object) -> str | None:
    """The canonical emotion of the word :func:`canonical` reads that is closest in spelling to ``label``
    (``hapiness``: ``happiness``, ``angy``: ``anger``), or ``None`` where none is close
    (:func:`difflib.get_close_matches`, cutoff 0.8), for a note on a label that is no known word: kept as it is, it
    is a class of its own."""
    s = " ".join(str(label).strip().lower().split())
    close = difflib.get_close_matches(s, list(_CANONICAL), n=1, cutoff=0.8)
    return _CANONICAL[close[0]] if close else None


def composite(database: str, label: object) -> str | None:
    """The composite class the label maps to (``None``: the mapping drops it), whatever the clip.

    For a clip of a MEGC2019 database, :func:`clip_composite` decides membership by the official list.
    """
    c = canonical(label)
    if c is None or c in _COMPOSITE_DROP.get(database, set()):
        return None
    return _TO_COMPOSITE.get(c)


# --- MEGC2019 composite membership ----------------------------------------------------------------

COMPOSITE_LIST = Path(__file__).resolve().parent / "data" / "megc2019_composite.csv"
# SMIC's composite clips are those of the high-speed camera; VIS/NIR clips share the names.
_COMPOSITE_VARIANT = {"smic": "HS"}
COMPOSITE_MODES = ("official", "labels")


def _clip_key(database: str, subject: str, clip: str) -> tuple[str, str, str]:
    """SMIC folders are spelled ``s1``/``s1_ne_01`` or ``s01``/``s01_ne_01``: compare without padding."""
    if database == "smic":
        subject, clip = (re.sub(r"^s0*(\d)", r"s\1", x, flags=re.IGNORECASE).lower() for x in (subject, clip))
    return database, subject, clip


@functools.lru_cache(maxsize=1)
def official_composite() -> dict[tuple[str, str, str], str]:
    """(database, subject, clip) -> composite class of the 442 clips of the official MEGC2019 list."""
    with COMPOSITE_LIST.open(newline="") as f:
        rows = csv.DictReader(line for line in f if not line.startswith("#"))
        return {_clip_key(r["database"], r["subject"], r["clip"]): r["composite"] for r in rows}


def official_databases() -> frozenset[str]:
    return frozenset(k[0] for k in official_composite())


def official_missing(database: str, clip_ids: Iterable[str]) -> tuple[int, list[str]]:
    """How many clips of ``database`` the official MEGC2019 list holds, and those (``subject/clip``) that no clip
    id of ``clip_ids`` (built or skipped) names: a copy of a release that lacks folders (common SMIC copies lack
    ``s3_ne_03``, ``s9_sur_02``, ...) makes a composite evaluation on fewer clips than the protocol's."""
    want = {k for k in official_composite() if k[0] == database}
    seen = set()
    for cid in clip_ids:
        parts = str(cid).split("/")
        if parts[0] != database or len(parts) < 3:
            continue
        if database in _COMPOSITE_VARIANT:  # <db>/<variant>/<subject>/<clip>
            if len(parts) < 4 or parts[1].upper() != _COMPOSITE_VARIANT[database]:
                continue
            parts = [parts[0], *parts[2:]]
        seen.add(_clip_key(database, parts[1], parts[2]))
    return len(want), sorted(f"{k[1]}/{k[2]}" for k in want - seen)


def clip_composite(database: str, subject: str, clip: str, label: object, variant: str | None = None,
                   mode: str = "official") -> str | None:
    """The composite class of one clip.

    ``official`` (the default): for CASME II, SAMM and SMIC, the class of the official MEGC2019 list,
    ``None`` for a clip outside it (the list leaves out, e.g., CASME II ``sub04/EP12_01f``, whose apex is
    ``/``, and ``sub05/EP09_05f``, whose apex equals its onset, although their labels map to a class);
    other databases use the label mapping. ``labels``: the label mapping for every clip (a database
    in these formats that is not the release itself, such as ``unimer synth``'s).
    """
    if mode not in COMPOSITE_MODES:
        raise ValueError(f"unknown composite mode {mode!r}; choose one of {', '.join(COMPOSITE_MODES)}")
    if mode == "labels" or database not in official_databases():
        return composite(database, label)
    want = _COMPOSITE_VARIANT.get(database)
    if want and variant and variant.upper() != want:
        return None
    return official_composite().get(_clip_key(database, subject, clip))


def composite_of(clip: Clip, mode: str = "official") -> str | None:
    """:func:`clip_composite` of a :class:`~unimer_builder.records.Clip`."""
    return clip_composite(clip.database, clip.subject, clip.clip, clip.emotion,
                          variant=clip.extra.get("variant"), mode=mode)


def composite_note(clip: Clip, mode: str = "official") -> list[str]:
    """A label note where the official MEGC2019 list gives the clip another composite class than its own label maps
    to: the list's class is used, and the text then pairs the label's emotion with it ("surprise ... negative in the
    composite protocol"). A copy of a sheet whose row differs from the release's (or another clip under the name)
    shows so."""
    official = composite_of(clip, mode) if mode == "official" and clip.database in official_databases() else None
    own = composite(clip.database, clip.emotion)
    if official is None or own == official:
        return []
    said = f"maps to {own}" if own is not None else "maps to no class" if clip.emotion else "is blank"
    label = f"its label {clip.emotion!r}" if clip.emotion else "its emotion label"
    return [f"the official MEGC2019 list classes this clip {official}, where {label} {said}: the list's class is "
            f"used (a copy of the label sheet that differs from the release's?)"]


# --- durations ------------------------------------------------------------------------------------

# A micro-expression lasts at most 1/2 s from onset to offset (Yan, Wu, Liang, Chen & Fu, "How fast are
# the leaked facial expressions: the duration of micro-expressions", J. Nonverbal Behav. 37, 2013; the
# bound CASME II used to select its samples, with a second criterion: a longer sample still counts when its
# onset phase (onset -> apex) lasts at most 250 ms (Yan et al., CASME II, PLoS ONE 9(1), 2014); SAMM codes
# its clips "Micro - 1/2"). Macro-expressions last about 1/2 s to 4 s (Ekman 2003, the range the CAS(ME)^2
# and CAS(ME)^3 papers use); a span beyond that is no single facial expression.
MICRO_MAX_S = 0.5
MICRO_ONSET_MAX_S = 0.25
MACRO_MAX_S = 4.0
DURATION_CLASSES = ("micro", "macro", "long")


def duration_s(onset: int, offset: int | None, fps: float | None, times: Mapping[int, float] | None = None
               ) -> float | None:
    """Onset -> offset in seconds; ``None`` when the offset or the frame rate is unknown. ``times``: frame -> its
    timestamp, s (a video's, :attr:`.sources.frames.FrameReader.times`, carried as ``Evidence.times``), which decide
    where they hold both ends: a varying-rate video runs at its declared (average) rate nowhere."""
    if offset is None or offset < onset:
        return None
    if times and onset in times and offset in times:
        return times[offset] - times[onset]
    return (offset - onset) / float(fps) if fps else None


def duration_class(onset: int, apex: int | None, offset: int | None, fps: float | None,
                   times: Mapping[int, float] | None = None) -> str | None:
    """``micro`` within the micro-expression bounds, ``macro`` up to 4 s, ``long`` beyond; ``None`` unknown.

    ``apex`` is the labelled apex (not an estimate): it decides CASME II's onset-phase criterion, which
    applies only up to the macro-expression bound. ``times``: as :func:`duration_s`'s.
    """
    total = duration_s(onset, offset, fps, times)
    if total is None:
        return None
    if total <= MICRO_MAX_S + 1e-9:
        return "micro"
    if total > MACRO_MAX_S + 1e-9:
        return "long"  # whatever its onset phase: a span of many seconds is no micro-expression
    rise = duration_s(onset, apex, fps, times) if apex is not None and onset < apex else None
    if rise is not None and rise <= MICRO_ONSET_MAX_S + 1e-9:
        return "micro"
    return "macro"


def database_class(database: str, label: object, class_set: str | None = None) -> str | None:
    """The label in the database's class set (default: its first), or ``None`` if outside it."""
    sets = CLASS_SETS.get(database)
    c = canonical(label)
    if not sets or c is None:
        return c
    name = class_set or next(iter(sets))
    classes = sets[name]
    if name.endswith(("_3", "_4")) and c not in classes:
        c = _TO_COMPOSITE.get(c, c)
    return c if c in classes else None


def default_class_set(database: str) -> str | None:
    sets = CLASS_SETS.get(database)
    return next(iter(sets)) if sets else None
