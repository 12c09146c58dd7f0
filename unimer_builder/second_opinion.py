"""A second, appearance-based source of AUs beside the flow: py-feat's AU detection on the onset and apex
frames, combined with the flow's verdicts.

The flow measures motion; py-feat's AU classifiers read appearance (shape and texture) one frame at a
time. What py-feat says of an AU is its presence probability's change from the onset frame to the apex
frame (:func:`pyfeat_view`):

* ``rises``: up by at least ``RISE_MIN`` and present at the apex (at least ``PRESENT_MIN``);
* ``flat``: anything else (no rise, or still judged absent at the apex);
* ``undetected``: py-feat has no classifier for the AU (its 20 AUs: 1, 2, 4-7, 9-12, 14, 15, 17, 20, 23-26,
  28, 43);
* ``no_face``: py-feat found no face where the builder aligned one, in the onset or the apex frame.

A single frame's probability jitters: in the output tables py-feat ships (``001.csv``, ``002.csv``: two real
videos, one face per frame) AU10 moves by 0.30 between neighbouring frames at the median and AU12 by 0.07,
and 6 % of neighbouring-frame pairs would pass as a rise under this rule, mostly AU7, AU10, AU25 and AU28
(``bench/pyfeat_agreement.py`` prints the table). A rise smaller than ``RISE_MIN`` is therefore no rise, and
no AU is stated on py-feat's word alone.

:func:`combine` joins the two sources on a :class:`~unimer_builder.records.CrossCheck`:

* **No AU labels** (SMIC, manifests without ``aus``): py-feat takes the place of a label. An AU is stated
  (``supported``, and in the text) only when both sources support it: py-feat sees it rise and the flow
  either inferred it (or an AU the flow cannot tell from it: py-feat then names which) or, judged like a
  labelled AU, finds its region moving its way. AUs from one source only are recorded in
  ``CrossCheck.sources`` with that source, and not stated.
* **AU labels**: the label stays the authority on what is stated; py-feat's view is added to each verdict
  (``agree`` / ``disagree`` with the flow's), and AUs py-feat sees rise that no label names are recorded.

Everything here works on plain records; nothing imports py-feat (see :mod:`.pyfeat_backend`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from . import facs
from .config import CheckConfig
from .pyfeat_table import FexTable
from .records import AUSource, CrossCheck, Verdict

SOURCE = "py-feat"
# The defaults of the build's settings check.pyfeat_rise_min and check.pyfeat_present_min (config.py).
RISE_MIN = CheckConfig.pyfeat_rise_min  # presence probability, onset -> apex
PRESENT_MIN = CheckConfig.pyfeat_present_min  # presence probability at the apex
# A blink (AU45) and closed eyes (AU43) look the same in one frame (lids shut); py-feat codes that AU43.
ALIASES: dict[int, int] = {45: 43}
VIEWS = ("rises", "flat", "undetected", "no_face")


@dataclass(frozen=True)
class AppearanceAU:
    """One AU as py-feat saw it: presence probability on the onset and on the apex frame."""

    au: int
    onset: float
    apex: float

    @property
    def rise(self) -> float:
        return self.apex - self.onset


@dataclass(frozen=True)
class Appearance:
    """py-feat's reading of a clip's onset and apex frames."""

    aus: dict[int, AppearanceAU] = field(default_factory=dict)  # every AU py-feat reports, when it found the face
    detected: tuple[int, ...] = ()  # AUs py-feat has classifiers for (its table's AU columns)
    face: bool = True  # the subject's face was found in both frames
    note: str = ""  # why not, when ``face`` is False


def appearance_from_table(table: FexTable, onset_frame: int, apex_frame: int,
                          near: tuple[float, float, float, float] | None = None) -> Appearance:
    """py-feat's view of a clip from its result table: the subject's face (the one overlapping ``near``, the
    builder's face box in the onset frame, as x, y, w, h) in the onset and the apex frame."""
    faces = {}
    for name, frame in (("onset", onset_frame), ("apex", apex_frame)):
        f = table.face_in(frame, near)
        if f is None:
            where = " where the builder aligned it" if near is not None and table.in_frame(frame) else ""
            return Appearance(detected=table.au_numbers, face=False,
                              note=f"py-feat found no face{where} in the {name} frame ({table.source}, frame {frame})")
        faces[name] = f
    common = sorted(set(faces["onset"].aus) & set(faces["apex"].aus))
    return Appearance(aus={au: AppearanceAU(au, faces["onset"].aus[au], faces["apex"].aus[au]) for au in common},
                      detected=table.au_numbers)


def pyfeat_view(app: Appearance, au: int, rise_min: float = RISE_MIN, present_min: float = PRESENT_MIN
                ) -> tuple[str, AppearanceAU | None]:
    """What py-feat says of ``au`` (one of :data:`VIEWS`) and the reading it rests on."""
    key = au if au in app.detected else ALIASES.get(au, au)
    if key not in app.detected:
        return "undetected", None
    if not app.face:
        return "no_face", None
    a = app.aus.get(key)
    if a is None:
        return "no_face", None  # the face was found, but py-feat gave this AU no value
    return ("rises" if a.rise >= rise_min and a.apex >= present_min else "flat"), a


@functools.cache
def motion_equivalents(au: int) -> frozenset[int]:
    """AUs that move the same regions the same way as ``au`` (itself included): the flow cannot tell them
    apart (AU14/18/23, AU26/27, AU43/45), appearance can."""
    def key(a: int) -> tuple:
        return tuple((r.name, facs.expected_vector(a, r)) for r in facs.regions_for(a))

    if au not in facs.VERIFIABLE_AUS:
        return frozenset({au})
    k = key(au)
    return frozenset(a for a in facs.VERIFIABLE_AUS if key(a) == k)


def _agreement(flow: str, view: str) -> str | None:
    """Whether py-feat agrees with the flow's verdict; None where either takes no side."""
    if view not in ("rises", "flat") or flow not in ("supported", "contradicted"):
        return None
    flow_yes = flow == "supported"
    return "agree" if flow_yes == (view == "rises") else "disagree"


def _said_by(flow_yes: bool, pyfeat_yes: bool) -> str:
    return {(True, True): "both", (True, False): "flow", (False, True): SOURCE}.get((flow_yes, pyfeat_yes), "neither")


def _reading(a: AppearanceAU | None, view: str) -> str:
    if a is None:
        return {"undetected": "py-feat has no classifier for it", "no_face": "py-feat found no face"}.get(view, view)
    return f"py-feat AU{a.au} {a.onset:.2f} -> {a.apex:.2f} ({'rises' if view == 'rises' else 'no rise'})"


def _source(v: Verdict | None, au: int, labelled: bool, view: str, a: AppearanceAU | None, said_by: str,
            agreement: str | None, stated: bool) -> AUSource:
    return AUSource(au=au, side=v.side if v else None, labelled=labelled, flow=v.verdict if v else "none",
                    pyfeat=view, pyfeat_onset=a.onset if a else None, pyfeat_apex=a.apex if a else None,
                    said_by=said_by, agreement=agreement, stated=stated)


def combine(check: CrossCheck, app: Appearance, flow: Mapping[int, Verdict], region_order: tuple[str, ...] = (),
            rise_min: float = RISE_MIN, present_min: float = PRESENT_MIN) -> CrossCheck:
    """The cross-check with py-feat's view joined in (see the module docstring).

    ``flow`` holds the flow's dual-constraint verdict of AUs no label names, judged as if one did
    (:func:`.crosscheck.judge_aus`); it needs at least the AUs py-feat sees rise. ``region_order`` orders
    the moved regions (default: :data:`facs.REGION_NAMES`).
    """
    def view(au: int) -> tuple[str, AppearanceAU | None]:
        return pyfeat_view(app, au, rise_min, present_min)

    rising = sorted(au for au in app.aus if view(au)[0] == "rises")
    if check.aus_source == "label":
        return _combine_labelled(check, flow, view, rising)
    return _combine_inferred(check, flow, view, rising, region_order or facs.REGION_NAMES)


def _combine_labelled(check: CrossCheck, flow: Mapping[int, Verdict], view, rising: list[int]) -> CrossCheck:
    verdicts, sources = [], []
    named: set[int] = set()
    for v in check.verdicts:
        named.add(v.au)
        named.add(ALIASES.get(v.au, v.au))
        pv, a = view(v.au)
        agreement = _agreement(v.verdict, pv)
        verdicts.append(replace(v, pyfeat=pv, agreement=agreement))
        sources.append(_source(v, v.au, True, pv, a, _said_by(v.verdict == "supported", pv == "rises"), agreement,
                               v.au in check.supported))
    for au in rising:  # seen by py-feat, named by no label: recorded, never stated
        if au in named:
            continue
        fv = flow.get(au)
        pv, a = view(au)
        sources.append(_source(fv, au, False, pv, a, _said_by(fv is not None and fv.verdict == "supported", True),
                               _agreement(fv.verdict if fv else "none", pv), False))
    return replace(check, verdicts=verdicts, sources=sources, second_opinion=SOURCE)


def _combine_inferred(check: CrossCheck, flow: Mapping[int, Verdict], view, rising: list[int],
                      region_order: tuple[str, ...]) -> CrossCheck:
    inferred = [v for v in check.verdicts if v.verdict == "supported"]
    verdicts, sources = [], []
    stated: list[Verdict] = []
    matched: set[int] = set()
    for v in inferred:
        pv, a = view(v.au)
        name = v.au
        if pv != "rises":  # py-feat may name a look-alike the flow cannot tell from this AU
            alike = [b for b in rising if b in motion_equivalents(v.au) and b not in matched]
            if alike:
                name = alike[0]
                pv, a = view(name)
        if pv == "rises":
            matched.add(name)
            matched.add(ALIASES.get(name, name))
            got = replace(v, au=name, reason=f"inferred from motion and appearance: {_strip(v.reason)}; {_reading(a, pv)}",
                          pyfeat=pv, agreement="agree")
            stated.append(got)
            verdicts.append(got)
            sources.append(_source(got, name, False, pv, a, "both", "agree", True))
        else:
            agreement = _agreement("supported", pv)
            verdicts.append(replace(v, reason=f"inferred from motion only, not stated: {_strip(v.reason)}; "
                                              f"{_reading(a, pv)}", pyfeat=pv, agreement=agreement))
            sources.append(_source(v, v.au, False, pv, a, "flow", agreement, False))
    for au in rising:
        if au in matched:
            continue
        pv, a = view(au)
        fv = flow.get(au)
        if fv is not None and fv.verdict == "supported":  # the flow, checking the AU py-feat names, supports it
            got = replace(fv, reason=f"named by appearance, supported by motion: {fv.reason}; {_reading(a, pv)}",
                          pyfeat=pv, agreement="agree")
            stated.append(got)
            verdicts.append(got)
            sources.append(_source(got, au, False, pv, a, "both", "agree", True))
        else:
            agreement = _agreement(fv.verdict if fv else "none", pv)
            if fv is not None:
                verdicts.append(replace(fv, reason=f"named by appearance only, not stated: {fv.reason}; "
                                                   f"{_reading(a, pv)}", pyfeat=pv, agreement=agreement))
            sources.append(_source(fv, au, False, pv, a, SOURCE, agreement, False))
    carrying = {v.region for v in stated}
    moved = [n for n in region_order if n in set(check.moved) | carrying]
    return replace(check, verdicts=sorted(verdicts, key=lambda v: v.au),
                   supported=sorted({v.au for v in stated}), sources=sorted(sources, key=lambda s: s.au),
                   moved=moved, second_opinion=SOURCE)


_INFERRED = re.compile(r"^inferred from motion(?: \([^)]*\))?: ")


def _strip(reason: str) -> str:
    """A flow reason without the prefix of the flow-only inference."""
    return _INFERRED.sub("", reason, count=1)
