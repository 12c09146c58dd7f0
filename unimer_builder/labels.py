"""Emotion class sets of the field's protocols, as declarative tables.

The original label is always kept; these give the mapped columns. ``None`` means the protocol
drops the sample (e.g. CASME II ``others`` in the composite 3-class set).

Sources: MEGC2019 composite protocol (See et al., FG 2019) as implemented by tvaranka/meb ``Megc``;
CASME II 5-class and CAS(ME)^3 7-class as in muse1998/MMNet; CAS(ME)^3 3-class as in
wangzhifengharrison/HTNet (see ``shared/research/databases-and-peers.md`` §1.9).
"""

from __future__ import annotations

COMPOSITE = ("negative", "positive", "surprise")

# Lower-cased, whitespace-normalised original label -> canonical emotion word.
_CANONICAL = {
    "happiness": "happiness", "happy": "happiness", "positive": "positive", "po": "positive",
    "disgust": "disgust", "repression": "repression", "surprise": "surprise", "sur": "surprise",
    "others": "others", "other": "others", "fear": "fear", "sadness": "sadness", "sad": "sadness",
    "anger": "anger", "contempt": "contempt", "negative": "negative", "ne": "negative",
}

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
    if s in ("", "nan", "none"):
        return None
    return _CANONICAL.get(s, s)


def composite(database: str, label: object) -> str | None:
    c = canonical(label)
    if c is None or c in _COMPOSITE_DROP.get(database, set()):
        return None
    return _TO_COMPOSITE.get(c)


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
