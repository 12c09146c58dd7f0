"""The one FACS table: AU names, phrases, the face regions they move and the way they move them.

Everything that speaks about an AU (the cross-check, the synthetic generator, the templates, the
model's AU vocabulary) reads it from here, so a phrase or a direction is fixed in one place.

Directions are written in face terms: ``up``/``down`` along the face's vertical axis and ``out``/``in``
away from / toward the facial midline. :func:`expected_vector` turns them into image vectors for a
region, whose side decides where "out" points. Sides are the subject's: the subject's left appears
on the image's right in an unmirrored camera.

Sources: Ekman, Friesen & Hager, *FACS Manual* (2002) for names and appearance changes; the region
layout follows the landmark ROIs of the public MER code digested in ``shared/research``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

from .records import AUToken, ParsedAUs


@dataclass(frozen=True)
class AUInfo:
    au: int
    name: str  # FACS name, lower case
    phrase: str  # what the motion looks like, for text ("the inner brows rise")
    regions: tuple[str, ...] = ()  # region families (see REGIONS); empty: not verifiable by flow
    up: float = 0.0  # expected motion: + up / - down
    out: float = 0.0  # + away from the midline / - toward it
    # Regions (families) that move another way than (up, out): family -> (up, out).
    toward: tuple[tuple[str, tuple[float, float]], ...] = ()
    # Skin beyond its own regions that FACS says the AU moves (family -> (up, out)): never judged and never planted
    # by the synthetic generator; the cross-check reads it to name an AU where its own regions' motion fits a like
    # AU as well, to keep that skin's motion from being called unexplained, and (AU10) to tell an AU from parting
    # lips (see :func:`drag_regions`, ``crosscheck._names_better``, ``_dragged``, ``_parting_did_it``).
    drags: tuple[tuple[str, tuple[float, float]], ...] = ()


# Verifiable AUs carry regions and a direction; the rest are known codes we can name but not measure.
AUS: dict[int, AUInfo] = {
    a.au: a
    for a in [
        AUInfo(1, "inner brow raiser", "the inner ends of the brows rise", ("brow_inner",), up=1),
        AUInfo(2, "outer brow raiser", "the outer ends of the brows rise", ("brow_outer",), up=1),
        AUInfo(4, "brow lowerer", "the brows lower and draw together", ("brow_inner", "glabella"), up=-0.8, out=-0.6),
        AUInfo(5, "upper lid raiser", "the upper eyelids rise", ("upper_lid",), up=1),
        # AU6 lifts the infraorbital cheek and pushes the skin below the eye up, narrowing the eye from below.
        AUInfo(6, "cheek raiser", "the cheeks rise", ("cheek", "lower_lid"), up=1),
        AUInfo(7, "lid tightener", "the lower eyelids tighten and rise", ("lower_lid",), up=1),
        AUInfo(8, "lips toward each other", "the lips move toward each other"),
        AUInfo(9, "nose wrinkler", "the nose wrinkles upward", ("nose",), up=1),
        # Levator labii superioris raises the upper lip and, with it, the nostril wings and the infraorbital skin
        # beside them (FACS 2002, AU10); lips that part in a broad smile raise the upper lip alone.
        AUInfo(10, "upper lip raiser", "the upper lip rises", ("upper_lip",), up=1, drags=(("nose", (1.0, 0.0)),)),
        AUInfo(11, "nasolabial deepener", "the nasolabial furrow deepens"),
        # Zygomaticus major pulls the corners obliquely toward the cheekbone and, in a broad smile, raises the
        # infraorbital triangle and pulls the nasolabial furrow up and out (FACS 2002, AU12); the lip stretcher
        # (AU20, risorius) pulls the corners sideways and leaves that cheek.
        AUInfo(12, "lip corner puller", "the lip corners pull up and outward", ("lip_corner",), up=0.6, out=0.8,
               drags=(("cheek", (0.6, 0.8)),)),
        AUInfo(13, "sharp lip puller", "the lip corners pull sharply upward", ("lip_corner",), up=1),
        AUInfo(14, "dimpler", "the lip corners tighten inward", ("lip_corner",), out=-1),
        AUInfo(15, "lip corner depressor", "the lip corners pull down", ("lip_corner",), up=-1),
        AUInfo(16, "lower lip depressor", "the lower lip pulls down", ("lower_lip",), up=-1),
        AUInfo(17, "chin raiser", "the chin pushes up", ("chin",), up=1),
        AUInfo(18, "lip pucker", "the lips pucker toward the centre", ("lip_corner",), out=-1),
        AUInfo(19, "tongue show", "the tongue shows"),
        AUInfo(20, "lip stretcher", "the lip corners stretch outward", ("lip_corner",), out=1),
        AUInfo(21, "neck tightener", "the neck tightens"),
        AUInfo(22, "lip funneler", "the lips funnel"),
        AUInfo(23, "lip tightener", "the lips tighten and narrow", ("lip_corner",), out=-1),
        AUInfo(24, "lip pressor", "the lips press together", ("lower_lip",), up=1),
        # The lips part when either moves away from the other: the lower lip drops, or (in a broad smile)
        # the upper lip rises.
        AUInfo(25, "lips part", "the lips part", ("lower_lip", "upper_lip"), up=-1, toward=(("upper_lip", (1.0, 0.0)),)),
        AUInfo(26, "jaw drop", "the jaw drops", ("chin",), up=-1),
        AUInfo(27, "mouth stretch", "the mouth stretches open", ("chin",), up=-1),
        AUInfo(28, "lip suck", "the lips are sucked in"),
        AUInfo(29, "jaw thrust", "the jaw thrusts forward"),
        AUInfo(30, "jaw sideways", "the jaw moves sideways"),
        AUInfo(31, "jaw clencher", "the jaw clenches"),
        AUInfo(32, "lip bite", "the lip is bitten"),
        AUInfo(33, "cheek blow", "the cheeks blow out"),
        AUInfo(34, "cheek puff", "the cheeks puff"),
        AUInfo(35, "cheek suck", "the cheeks are sucked in"),
        AUInfo(36, "tongue bulge", "the tongue bulges"),
        AUInfo(37, "lip wipe", "the lips are wiped"),
        AUInfo(38, "nostril dilator", "the nostrils dilate"),
        AUInfo(39, "nostril compressor", "the nostrils compress"),
        AUInfo(41, "lid droop", "the upper lids droop"),
        AUInfo(42, "slit", "the eyes narrow to a slit"),
        AUInfo(43, "eyes closed", "the eyes close", ("upper_lid",), up=-1),
        AUInfo(44, "squint", "the eyes squint"),
        AUInfo(45, "blink", "the eyes blink", ("upper_lid",), up=-1),
        AUInfo(46, "wink", "one eye winks"),
        AUInfo(50, "speech", "speech movements"),
        AUInfo(51, "head turn left", "the head turns left"),
        AUInfo(52, "head turn right", "the head turns right"),
        AUInfo(53, "head up", "the head tilts up"),
        AUInfo(54, "head down", "the head tilts down"),
        AUInfo(55, "head tilt left", "the head tilts left"),
        AUInfo(56, "head tilt right", "the head tilts right"),
        AUInfo(57, "head forward", "the head moves forward"),
        AUInfo(58, "head back", "the head moves back"),
        AUInfo(61, "eyes turn left", "the eyes turn left"),
        AUInfo(62, "eyes turn right", "the eyes turn right"),
        AUInfo(63, "eyes up", "the eyes look up"),
        AUInfo(64, "eyes down", "the eyes look down"),
        AUInfo(65, "walleye", "the eyes diverge"),
        AUInfo(66, "cross-eye", "the eyes converge"),
        AUInfo(80, "swallow", "a swallow"),
        AUInfo(81, "chewing", "chewing"),
        AUInfo(82, "shoulder shrug", "the shoulders shrug"),
        AUInfo(84, "head shake back and forth", "the head shakes"),
        AUInfo(85, "head nod up and down", "the head nods"),
    ]
}

VERIFIABLE_AUS: tuple[int, ...] = tuple(sorted(a for a, i in AUS.items() if i.regions))


@dataclass(frozen=True)
class RegionInfo:
    name: str  # unique id, e.g. "brow_inner_L"
    family: str  # what AUInfo.regions names, e.g. "brow_inner"
    side: str | None  # "L"/"R" (subject's) or None on the midline
    landmarks: tuple[int, ...]  # dlib-68 indices (0-based) whose neighbourhood forms the region
    phrase: str


# dlib-68 (iBUG 300-W) indices, 0-based. The subject's right brow is 17-21 (17 outer), left 22-26
# (26 outer); right eye 36-41, left eye 42-47; mouth corners 48 (right) and 54 (left).
REGIONS: tuple[RegionInfo, ...] = (
    RegionInfo("brow_inner_R", "brow_inner", "R", (20, 21), "the right inner brow"),
    RegionInfo("brow_inner_L", "brow_inner", "L", (22, 23), "the left inner brow"),
    RegionInfo("brow_outer_R", "brow_outer", "R", (17, 18), "the right outer brow"),
    RegionInfo("brow_outer_L", "brow_outer", "L", (25, 26), "the left outer brow"),
    RegionInfo("glabella", "glabella", None, (21, 22, 27), "the area between the brows"),
    RegionInfo("upper_lid_R", "upper_lid", "R", (37, 38), "the right upper eyelid"),
    RegionInfo("upper_lid_L", "upper_lid", "L", (43, 44), "the left upper eyelid"),
    RegionInfo("lower_lid_R", "lower_lid", "R", (40, 41), "the right lower eyelid"),
    RegionInfo("lower_lid_L", "lower_lid", "L", (46, 47), "the left lower eyelid"),
    # The infraorbital cheek, where AU6 lifts the skin toward the eye: between the cheekbone outline, the
    # nose wing and the lower lid (lower, by the mouth corner, the skin moves with AU12, not AU6).
    RegionInfo("cheek_R", "cheek", "R", (1, 2, 31, 41), "the right cheek"),
    RegionInfo("cheek_L", "cheek", "L", (15, 14, 35, 46), "the left cheek"),
    RegionInfo("nose", "nose", None, (29, 30, 31, 33, 35), "the nose"),
    RegionInfo("upper_lip", "upper_lip", None, (50, 51, 52), "the upper lip"),
    RegionInfo("lip_corner_R", "lip_corner", "R", (48,), "the right lip corner"),
    RegionInfo("lip_corner_L", "lip_corner", "L", (54,), "the left lip corner"),
    RegionInfo("lower_lip", "lower_lip", None, (56, 57, 58), "the lower lip"),
    RegionInfo("chin", "chin", None, (7, 8, 9), "the chin"),
)
REGION_BY_NAME: dict[str, RegionInfo] = {r.name: r for r in REGIONS}
REGION_NAMES: tuple[str, ...] = tuple(r.name for r in REGIONS)

# Prototypical AU combinations of the basic emotions: the one emotion -> AU table (EMFACS; Ekman & Friesen 1978, as tabulated in
# Ekman, Friesen & Hager, FACS Investigator's Guide 2002, and used by the MER literature to relate
# CASME II/SAMM labels to AUs). The text uses it only to say whether the supported AUs belong to
# the labelled emotion's usual pattern (render.py); the synthetic generator plants from it (synth/generate.py); the emotion itself always comes from the database's label.
EMOTION_AUS: dict[str, frozenset[int]] = {
    "happiness": frozenset({6, 12}),
    "surprise": frozenset({1, 2, 5, 26, 27}),
    "disgust": frozenset({9, 10, 15, 16, 17}),
    "sadness": frozenset({1, 4, 15, 17}),
    "fear": frozenset({1, 2, 4, 5, 7, 20, 26}),
    "anger": frozenset({4, 5, 7, 23, 24}),
    "contempt": frozenset({12, 14}),
}
EMOTION_AUS["positive"] = EMOTION_AUS["happiness"]
EMOTION_AUS["negative"] = frozenset().union(
    *(EMOTION_AUS[e] for e in ("disgust", "sadness", "fear", "anger"))
) | {14}

# Eight compass words for a direction in face terms (for text). Keyed by octant of atan2(up, out).
DIRECTION_WORDS: tuple[str, ...] = (
    "outward", "up and outward", "upward", "up and inward",
    "inward", "down and inward", "downward", "down and outward",
)


def regions_for(au: int, side: str | None = None) -> tuple[RegionInfo, ...]:
    """Regions in which ``au`` shows; a unilateral label keeps only that side's regions."""
    info = AUS.get(au)
    if info is None:
        return ()
    found = tuple(r for r in REGIONS if r.family in info.regions)
    if side in ("L", "R"):
        found = tuple(r for r in found if r.side in (side, None))
    return found


def drag_regions(au: int, side: str | None = None) -> tuple[tuple[RegionInfo, tuple[float, float]], ...]:
    """The regions ``au`` drags beyond its own (:attr:`AUInfo.drags`), on ``side`` only when given, each with
    its unit image vector (dx, dy; y down) as :func:`expected_vector` gives one."""
    info = AUS.get(au)
    if info is None:
        return ()
    out = []
    for family, (up, o) in info.drags:
        for r in REGIONS:
            if r.family == family and (side not in ("L", "R") or r.side in (side, None)):
                dx, dy = o * out_sign(r), -up
                n = math.hypot(dx, dy)
                out.append((r, (dx / n, dy / n)))
    return tuple(out)


def motion_twins(au: int) -> list[int]:
    """Other AUs that move the same regions the same way (26 and 27, 43 and 45, 14, 18 and 23): motion alone
    cannot tell them apart."""
    info = AUS[au]
    return [a for a, i in AUS.items()
            if a != au and i.regions and i.regions == info.regions and (i.up, i.out) == (info.up, info.out)]


def out_sign(region: RegionInfo) -> float:
    """Image-x sign of "away from the midline" in this region (subject's left = image right)."""
    return {"L": 1.0, "R": -1.0}.get(region.side or "", 0.0)


def expected_vector(au: int, region: RegionInfo) -> tuple[float, float]:
    """Unit image vector (dx, dy; y down) in which ``au`` moves ``region``; (0, 0) if not verifiable."""
    info = AUS[au]
    up, out = dict(info.toward).get(region.family, (info.up, info.out))
    dx = out * out_sign(region)
    dy = -up
    n = (dx * dx + dy * dy) ** 0.5
    return (0.0, 0.0) if n == 0 else (dx / n, dy / n)


def direction_word(dx: float, dy: float, region: RegionInfo) -> str:
    """Name an image vector in face terms for ``region`` (midline regions have no in/out)."""
    up = -dy
    s = out_sign(region)
    out = dx * s if s else 0.0
    if s == 0.0 and abs(dx) > abs(up):
        return "toward the subject's left" if dx > 0 else "toward the subject's right"
    octant = int(round(math.atan2(up, out) / (math.pi / 4))) % 8
    return DIRECTION_WORDS[octant]


def au_name(au: int) -> str:
    info = AUS.get(au)
    return info.name if info else f"AU{au}"


# FACS side prefixes in words (SAMM's key: "L2 or R2" unilateral, "A2" asymmetric; T/B top/bottom).
SIDE_WORDS: dict[str, str] = {"L": "left", "R": "right", "A": "asymmetric", "T": "top", "B": "bottom"}


def au_label(au: int, side: str | None = None, intensity: str | None = None) -> str:
    """How every message names a labelled AU: ``AU14 (left)``, ``AU7 (asymmetric, intensity A)``, ``AU4``.

    The label code (``L14``, ``A7``) glued to ``AU`` reads as a different code ("AUL14"); words do not.
    """
    bits = [SIDE_WORDS.get(side, side)] if side else []
    if intensity:
        bits.append(f"intensity {intensity}")
    return f"AU{au}" + (f" ({', '.join(bits)})" if bits else "")


# --- AU label strings -----------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""^(?P<side>[LRATB])?          # FACS side / top / bottom prefix
        (?:AU)?\s*(?P<num>\d{1,3})   # the AU number, with an optional AU prefix
        (?P<suffix>[A-E]|[LR])?      # intensity letter, or MMEW's suffix laterality
        (?:\((?:(?P<k>K)|(?P<pside>[LR]))\))?$    # 4DME's "(k)" marker, or a side in parentheses: "12(L)"
    """,
    re.VERBOSE,
)
# A cell that says no AU acted. ``0`` is FACS's own code for the neutral face (Ekman, Friesen & Hager 2002,
# "0 neutral face"), and sheets write it for "no AUs": a label (of nothing to check), not unreadable text.
_NONE_WORDS = {"", "none", "nan", "-", "n/a", "na", "0"}
# A whole number as a float column writes it (pandas: ``12.0``): the number.
_FLOAT_INT = re.compile(r"(\d{1,3})\.0+")
# A cell that says the AUs were not coded (CASME II writes "?"): unknown, not "no AUs".
_UNKNOWN_WORDS = {"?", "？", "unknown"}


def _split_top(text: str, seps: str) -> list[str]:
    """Split on any of ``seps`` outside parentheses."""
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if depth == 0 and ch in seps:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _token(text: str, uncertain: bool) -> AUToken | None:
    t = text.strip()
    if t.endswith("?"):
        uncertain, t = True, t[:-1].strip()
    whole = _FLOAT_INT.fullmatch(t)
    if whole:  # "12.0": a lone AU written by a float column
        t = whole[1]
    m = _TOKEN.match(t.upper())
    if not m:
        return None
    side = m["side"]
    suffix = m["suffix"]
    intensity = None
    if suffix in ("L", "R") and side is None:
        side = suffix
    elif suffix:
        intensity = suffix
    if m["pside"] and side is None:
        side = m["pside"]
    if m["k"]:
        uncertain = True
    return AUToken(au=int(m["num"]), side=side, intensity=intensity, uncertain=uncertain, raw=text.strip())


_SIDE_ONLY = re.compile(r"^[LRATB]$")
_INTENSITY_ONLY = re.compile(r"^[A-E]$")


def _group(inner: str, uncertain: bool) -> list[AUToken] | None:
    """The choices of an ``or``/``/`` group, each a full token; ``None`` if one is not an AU.

    A lone letter borrows the AU of its neighbour, as the sheets abbreviate: before a code it is a
    side (``A/L12`` = ``A12`` or ``L12``, SAMM's key: "/" = or, "A" = asymmetric, "L" = left),
    after one an intensity (``10A/B`` = ``10A`` or ``10B``) or, for L/R/T, a side (``12L/R``).
    """
    choices = [c.strip() for c in re.split(r"\s+or\s+|/", inner, flags=re.IGNORECASE) if c.strip()]
    out: list[AUToken] = []
    pending: list[str] = []  # side letters waiting for the code that follows them
    for c in choices:
        letter = c.upper()
        if out and not pending and _INTENSITY_ONLY.match(letter):
            prev = out[-1]
            out.append(AUToken(au=prev.au, side=prev.side, intensity=letter, uncertain=prev.uncertain, raw=c))
            continue
        if out and not pending and _SIDE_ONLY.match(letter):
            prev = out[-1]
            out.append(AUToken(au=prev.au, side=letter, intensity=prev.intensity, uncertain=prev.uncertain, raw=c))
            continue
        if _SIDE_ONLY.match(letter):
            pending.append(letter)
            continue
        tok = _token(c, uncertain)
        if tok is None:
            return None
        for side in pending:
            out.append(AUToken(au=tok.au, side=side, intensity=tok.intensity, uncertain=tok.uncertain,
                               raw=f"{side}{tok.au}{tok.intensity or ''}"))
        pending = []
        out.append(tok)
    return out if out and not pending else None


def _part(part: str) -> list[AUToken] | None:
    """The tokens of one ``+``-separated part (a code, or a group of choices), ``None`` if it is no AU."""
    uncertain = False
    inner = part
    if inner.startswith("(") and inner.endswith(")"):
        inner = inner[1:-1].strip()
        # "(4)" marks an uncertain AU; "(R6 or R12)" only groups alternatives.
        uncertain = not re.search(r"\bor\b|/", inner, re.IGNORECASE)
    return _group(inner, uncertain)


def _parts(s: str) -> list[tuple[str, list[AUToken] | None]]:
    """Each part of the string with its tokens (``None``: not an AU). A part that is no AU as a whole but
    whose space-separated words each are one (``12 25``) is those codes: a space only joins what reads as
    one code or group as a whole (``AU 12``, ``R14A or 17A``), and a part with any word that is no code
    stays one unreadable part (``12 and 6``)."""
    out: list[tuple[str, list[AUToken] | None]] = []
    for part in _split_top(s, "+,;&"):
        parsed = _part(part)
        words = part.split()
        if not parsed and len(words) > 1:
            each = [_part(w) for w in words]
            if all(each):
                out.extend(zip(words, each, strict=True))
                continue
        out.append((part, parsed))
    return out


_OR_WORD = re.compile(r"\s+or\s+", re.IGNORECASE)


def _split_top_or(text: str) -> list[str]:
    """Split on the word ``or`` outside parentheses."""
    cuts, depth, start = [], 0, 0
    for m in _OR_WORD.finditer(text):
        depth = sum(1 if c == "(" else -1 if c == ")" else 0 for c in text[:m.start()])
        if depth == 0:
            cuts.append(text[start:m.start()])
            start = m.end()
    return [c.strip() for c in [*cuts, text[start:]]]


def _or_of_combinations(s: str) -> tuple[list[AUToken], list[str]] | None:
    """``4+L10 or 4+R10``: an ``or`` between whole combinations, told by an AU the cell repeats on each side (read as
    ``4+L10 or 4`` ``+R10`` it names AU4 twice). The AUs every combination names are certain; the others are paired
    in order as alternatives where the combinations name as many (uncertain as well where one names only the common
    part: ``4+L10 or 4``), and are each uncertain where they name different numbers (``12+25 or 12+26+27``).
    Codes FACS does not define come back apart, as :func:`parse_aus` keeps them. ``None``: no such cell (``12+25
    or 26`` keeps the ``or`` within its part, as FACS coders mean it)."""
    combos = [c[1:-1].strip() if c.startswith("(") and c.endswith(")") and _split_top(c[1:-1], "+,;&")[1:] else c
              for c in _split_top_or(s)]  # "(4+L10) or (4+R10)"
    if len(combos) < 2 or not any(_split_top(c, "+,;&")[1:] for c in combos):
        return None
    readings, unknown = [], []
    for combo in combos:
        parts = _parts(combo)
        if not parts or any(not p or len(p) != 1 for _, p in parts):
            return None
        unknown += [p[0].raw for _, p in parts if p[0].au not in AUS]
        readings.append([p[0] for _, p in parts if p[0].au in AUS])
    key = lambda t: (t.au, t.side, t.intensity)  # noqa: E731
    shared = {key(t) for t in readings[0]}.intersection(*({key(u) for u in r} for r in readings[1:]))
    if not shared:
        return None
    # an AU every combination names is certain unless one of them marks it uncertain ("(4)+L10 or 4+R10")
    common = [replace(t, uncertain=any(u.uncertain for r in readings for u in r if key(u) == key(t)))
              for t in readings[0] if key(t) in shared]
    rest = [[t for t in r if key(t) not in shared] for r in readings]
    named = [r for r in rest if r]
    unknown = list(dict.fromkeys(unknown))
    if named and len({len(r) for r in named}) == 1:  # paired in order: "4+L10 or 4+R10" -> L10 or R10
        maybe = len(named) < len(rest)  # "4+L10 or 4+R10 or 4": perhaps neither
        return common + [replace(named[0][i], raw=" or ".join(r[i].raw for r in named),
                                 uncertain=named[0][i].uncertain or maybe,
                                 alternatives=tuple(r[i] for r in named[1:])) for i in range(len(named[0]))], unknown
    # combinations of other sizes ("12+25 or 12+26+27"): what they do not share is each uncertain
    extra = list({key(t): replace(t, uncertain=True) for r in rest for t in r}.values())
    return common + extra, unknown


def parse_aus(text: object) -> ParsedAUs:
    """Parse a database AU string (``4+L10``, ``R14A or 17A``, ``(R6 or R12) + R15``, ``A/L12``, ``AU12(k)``,
    ``4+L10 or 4+R10``).

    Never raises: free text goes to ``unparsed``, AU-shaped codes with a number FACS does not define
    go to ``unknown``, so that the caller decides whether that costs the clip. A cell that says the
    AUs are unknown (``?``) sets ``label_unknown``; one that says none acted (``none``, ``-``, ``0``: FACS's
    neutral face) gives no token and nothing unparsed. A whole number written as a float (``12.0``, as
    pandas writes a float column) is that AU; codes separated by spaces (``12 25``) are each read.
    """
    if text is None:
        return ParsedAUs()
    s = str(text).strip()
    whole = _FLOAT_INT.fullmatch(s)
    if whole:  # "0.0" is "0", "12.0" is "12"
        s = whole[1]
    if s.lower() in _NONE_WORDS:
        return ParsedAUs()
    if s.lower() in _UNKNOWN_WORDS:
        return ParsedAUs(label_unknown=True)
    s = s.replace("，", ",").replace("；", ";")
    combined = _or_of_combinations(s)
    if combined is not None:
        return ParsedAUs(tokens=tuple(combined[0]), unknown=tuple(combined[1]))
    tokens: list[AUToken] = []
    unparsed: list[str] = []
    unknown: list[str] = []
    for part, parsed in _parts(s):
        if not parsed:
            unparsed.append(part)
            continue
        bad = [t for t in parsed if t.au not in AUS]
        if bad:
            unknown.extend(dict.fromkeys(t.raw for t in bad))
            parsed = [t for t in parsed if t.au in AUS]
            if not parsed:
                continue
        first, rest = parsed[0], tuple(parsed[1:])
        if rest:
            first = replace(first, raw=part, alternatives=rest)
        tokens.append(first)
    return ParsedAUs(tokens=tuple(tokens), unparsed=tuple(unparsed), unknown=tuple(unknown))
