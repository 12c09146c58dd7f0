"""The dual constraint: a labelled AU is stated only where the measured motion agrees with it.

For every labelled AU token the regions FACS puts it in (:func:`facs.regions_for`) are examined:

* **supported**: the region moved (``z >= z_supported``), in the AU's direction
  (``cos >= cos_supported`` with :func:`facs.expected_vector`), peaking near the apex
  (``|peak_time - apex_time| <= timing_tolerance``; unknown timing counts as fine);
* **contradicted**: nothing moved (``z < z_weak``) or it moved the other way (``cos <= cos_contradicted``);
* **weak**: anything in between (some motion, a loose direction, or a peak far from the apex);
* **unverifiable**: the AU has no region the flow can check (AU8, AU11, head and eye AUs, ...).

A bilateral label takes the better side, an ``or`` group the best alternative. Strong motion
(``z >= z_unexplained``) in regions that no labelled AU covers is reported as *unexplained*, with the
AU whose expected direction fits it best, unless it is spill-over from a much stronger neighbour moving
the same way. A database without AU labels gets its AUs from such motion alone (``aus_source =
"inferred"``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from . import facs
from .config import BuildConfig
from .flow import interocular
from .records import AUToken, Clip, CrossCheck, Evidence, RegionStats, Unexplained, Verdict
from .regions import region_centres

_RANK = {"supported": 3, "weak": 2, "contradicted": 1, "unverifiable": 0}

SPILL_SCALE = 0.25  # IOD: how far motion spills from a region (Gaussian fall-off between centres)
SPILL_SHARE = 0.5  # a region whose expected spill reaches this share of its own motion is spill
SPILL_COS = 0.5  # only neighbours moving the same way (cosine) spill
MATCH_COS = 0.5  # an unexplained/inferred region names the best-fitting AU only from this cosine on
INFER_COHERENCE = 0.5  # inferred AUs need coherent motion (|sum v| / sum |v|)


def _cos(dx: float, dy: float, ex: float, ey: float) -> float:
    n = math.hypot(dx, dy) * math.hypot(ex, ey)
    return float((dx * ex + dy * ey) / n) if n > 1e-12 else 0.0


def apex_time(clip: Clip, ev: Evidence) -> float | None:
    """Apex position as a share of onset..offset (0 = onset, 1 = offset)."""
    offset = clip.offset if clip.offset is not None else (ev.stack_frames[-1] if ev.stack_frames else None)
    if offset is None or offset <= clip.onset:
        return None
    return float((ev.apex - clip.onset) / (offset - clip.onset))


def _judge(au: int, side: str | None, rs: RegionStats, cfg: BuildConfig, t_apex: float | None) -> Verdict:
    region = facs.REGION_BY_NAME[rs.name]
    ex, ey = facs.expected_vector(au, region)
    cos = _cos(rs.dx, rs.dy, ex, ey)
    timing_ok = None
    if rs.peak_time is not None and t_apex is not None:
        timing_ok = bool(abs(rs.peak_time - t_apex) <= cfg.timing_tolerance)
    went = facs.direction_word(rs.dx, rs.dy, region)
    want = facs.direction_word(ex, ey, region)
    where = region.phrase
    if rs.z >= cfg.z_supported and cos >= cfg.cos_supported and timing_ok is not False:
        verdict, reason = "supported", f"{where} moves {went} (z={rs.z:.1f}, cos={cos:.2f})"
    elif rs.z < cfg.z_weak:
        verdict, reason = "contradicted", f"no motion above the noise floor in {where} (z={rs.z:.1f})"
    elif cos <= cfg.cos_contradicted:
        verdict, reason = "contradicted", f"{where} moves {went}, not {want} (cos={cos:.2f})"
    else:
        bits = []
        if rs.z < cfg.z_supported:
            bits.append(f"little motion (z={rs.z:.1f})")
        if cos < cfg.cos_supported:
            bits.append(f"direction {went}, expected {want} (cos={cos:.2f})")
        if timing_ok is False:
            bits.append(f"peaks at {rs.peak_time:.2f} of the clip, apex at {t_apex:.2f}")
        verdict, reason = "weak", f"{where}: " + "; ".join(bits)
    return Verdict(au=au, side=side, region=rs.name, verdict=verdict, z=float(rs.z), direction_cos=cos,
                   timing_ok=timing_ok, reason=reason)


def _score(v: Verdict) -> tuple:
    return (_RANK[v.verdict], v.z * max(v.direction_cos, 0.0), v.z)


def judge_token(tok: AUToken, stats: dict[str, RegionStats], cfg: BuildConfig, t_apex: float | None) -> Verdict:
    """Verdict of one labelled token: best region, best side, best choice of an ``or`` group.

    Each choice is judged with its own side (``(R6 or R12)`` checks only the right lip corner), and
    the verdict names the choice that carried it (its AU, side and, for a group, the label's text).
    """
    best: Verdict | None = None
    for choice in tok.choices():
        for r in facs.regions_for(choice.au, choice.side):
            if r.name not in stats:
                continue
            v = _judge(choice.au, choice.side, stats[r.name], cfg, t_apex)
            if best is None or _score(v) > _score(best):
                best = v
    if best is None:
        names = " or ".join(f"{facs.au_label(c.au, c.side)} ({facs.au_name(c.au)})" for c in tok.choices())
        return Verdict(au=tok.au, side=tok.side, region="", verdict="unverifiable", z=float("nan"),
                       direction_cos=float("nan"), timing_ok=None,
                       reason=f"{names}: no face region the flow can check")
    if tok.alternatives:
        best = replace(best, reason=f"{best.reason}; the best reading of the label {tok.raw!r}")
    if tok.uncertain:
        best = replace(best, reason=best.reason + " (label marked uncertain)")
    return best


def match_au(rs: RegionStats) -> tuple[int | None, float]:
    """The verifiable AU whose expected vector in this region best fits the measured direction."""
    region = facs.REGION_BY_NAME[rs.name]
    best, best_cos = None, -2.0
    for au in facs.VERIFIABLE_AUS:
        if region.family not in facs.AUS[au].regions:
            continue
        c = _cos(rs.dx, rs.dy, *facs.expected_vector(au, region))
        if c > best_cos + 1e-9:
            best, best_cos = au, c
    return (best, best_cos) if best_cos >= MATCH_COS else (None, best_cos)


def _spill_over(rs: RegionStats, stats: dict[str, RegionStats], centres: dict[str, np.ndarray], iod: float,
                floor: float) -> bool:
    """True when ``rs``'s motion is explained as spill from stronger neighbours moving the same way.

    Each stronger neighbour is expected to spill ``excess * exp(-d^2 / (2 (SPILL_SCALE * IOD)^2))``
    (d: distance between region centres, excess: mean magnitude above the floor); the region is
    spill-over when the neighbours' expected spill reaches SPILL_SHARE of its own excess. Raised brows
    then explain the upper lids 0.25 IOD below them, but not an outer brow 0.53 IOD from the inner one.
    """
    own = rs.mean - floor
    if own <= 0:
        return False
    spill = 0.0
    for other in stats.values():
        ex = other.mean - floor
        if other.name == rs.name or ex <= own or _cos(rs.dx, rs.dy, other.dx, other.dy) < SPILL_COS:
            continue
        d = float(np.hypot(*(centres[other.name] - centres[rs.name]))) / (SPILL_SCALE * iod)
        spill += ex * math.exp(-0.5 * d * d)
    return spill >= SPILL_SHARE * own


def _strong(stats: dict[str, RegionStats], skip: set[str], cfg: BuildConfig, ev: Evidence,
            min_coherence: float = 0.0) -> list[RegionStats]:
    centres = region_centres(ev.face.landmarks)
    iod = interocular(ev.face.landmarks)
    out = []
    for rs in sorted(stats.values(), key=lambda r: -r.z):
        if rs.name in skip or rs.z < cfg.z_unexplained or rs.coherence < min_coherence:
            continue
        if _spill_over(rs, stats, centres, iod, ev.floor):
            continue
        out.append(rs)
    return out


def cross_check(clip: Clip, evidence: Evidence, cfg: BuildConfig) -> CrossCheck:
    """Verdicts for the clip's labelled AUs, unexplained motion, and the supported AU list."""
    stats = {r.name: r for r in evidence.regions}
    t_apex = apex_time(clip, evidence)

    if not clip.au_labelled:
        verdicts: list[Verdict] = []
        unexplained: list[Unexplained] = []
        by_au: dict[int, list[tuple[RegionStats, float]]] = {}
        for rs in _strong(stats, set(), cfg, evidence, INFER_COHERENCE):
            au, c = match_au(rs)
            if au is None:
                unexplained.append(Unexplained(rs.name, None, float(rs.z), float(rs.dx), float(rs.dy)))
            else:
                by_au.setdefault(au, []).append((rs, c))
        for au in sorted(by_au):
            hits = by_au[au]
            sides = {facs.REGION_BY_NAME[r.name].side for r, _ in hits}
            side = next(iter(sides)) if len(sides) == 1 and None not in sides else None
            rs, c = max(hits, key=lambda h: h[0].z)
            v = _judge(au, side, rs, cfg, t_apex)
            verdicts.append(Verdict(au=au, side=side, region=rs.name, verdict="supported", z=float(rs.z),
                                    direction_cos=c, timing_ok=v.timing_ok, reason="inferred from motion: "
                                    + v.reason))
        return CrossCheck(verdicts=verdicts, unexplained=unexplained, aus_source="inferred",
                          supported=sorted(by_au), flagged=False, flag_reasons=[])

    verdicts = []
    covered: set[str] = set()
    supported: set[int] = set()
    reasons: list[str] = []
    for tok in clip.aus.tokens:
        v = judge_token(tok, stats, cfg, t_apex)
        verdicts.append(v)
        for choice in tok.choices():
            covered.update(r.name for r in facs.regions_for(choice.au, choice.side))
        if v.verdict == "supported":
            supported.add(v.au)
        elif v.verdict != "unverifiable":
            reasons.append(f"{facs.au_label(v.au, v.side)} {v.verdict}: {v.reason}")

    unexplained = []
    for rs in _strong(stats, covered, cfg, evidence):
        au, _ = match_au(rs)
        unexplained.append(Unexplained(rs.name, au, float(rs.z), float(rs.dx), float(rs.dy)))
    return CrossCheck(verdicts=verdicts, unexplained=unexplained, aus_source="label",
                      supported=sorted(supported), flagged=bool(reasons), flag_reasons=reasons)
