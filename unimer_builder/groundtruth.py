"""Score a build of a synthetic database against what the generator planted.

Each figure is a rate with its count:
- ``moved_labelled_supported``: labelled AUs that were planted and judged supported;
- ``moved_labelled_not_contradicted``: labelled AUs that were planted and not judged contradicted: the other
  side of the first figure, since a contradicted label is one the text calls wrong (a sub-pixel AU the flow
  cannot see is contradicted where its regions show nothing above their noise);
- ``unmoved_labelled_not_supported``: labelled AUs that were not planted and not judged supported;
- ``unlabelled_motion_reported``: planted motion that no label names, reported as unexplained in one of
  its regions (databases with AU labels);
- ``inferred_aus_recovered``: for databases without AU labels (SMIC), planted AUs recovered as inferred AUs;
- ``inferred_aus_planted``: the other side of it, inferred AUs that were planted (a blink's AU45 counts
  where the clip blinks): what the recall costs in AUs the text states that nothing made;
- ``unexplained_aus_planted``: the same for databases with AU labels: AUs the unexplained motion names that
  were planted (or a motion twin of a planted AU, which motion cannot tell from it; a blink's AU45 where the
  clip blinks): motion the text attributes to an AU that nothing made;
- ``text_direction_correct``: regions the motion text describes for a planted AU whose stated direction
  word points within 45 degrees of the displacement planted there (the eight compass words quantise
  direction; a word one sector off is right only when the motion lies near that sector's edge);
- ``text_direction_exact_word``: the stricter figure, the stated word is the planted motion's own word;
- ``blinks_at_apex_reported_as_au45``: blinks (hard profile) whose lids are still visibly closed at the
  apex (at least :data:`BLINK_VISIBLE_CROP_PX` of lid motion in the crop), reported as AU45 (an
  unexplained or inferred AU45, or a verdict on it).

The truth for a region is the displacement really planted there, with overlapping bumps summed, in crop
axes where the truth gives them (``region_motion_crop``, hard profile: a rolled or turned face), else in
image axes. :func:`breakdown` splits the figures by amplitude bin (``amplitude_bin`` of the planted AU,
hard profile), by identity, and by the planted amplitude itself (:func:`amplitude_band`, hard profile:
``amplitude_crop_px``) where the bins are too coarse to show where detection stops.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from pathlib import Path

from .facs import DIRECTION_WORDS, REGION_BY_NAME, direction_word, motion_twins, out_sign
from .shards import read_shard, shard_files

_COLUMNS = ["clip_id", "task", "aus_source", "aus_supported", "verdicts", "unexplained", "answer", "onset_frame",
            "offset_frame", "au_text"]


def _rate(hits: int, n: int) -> dict:
    return {"rate": (hits / n) if n else None, "n": n, "hits": hits}


def _stated_direction(answer: str, phrase: str) -> str | None:
    """The direction word stated in the clause that names ``phrase`` (longest word wins)."""
    for clause in re.split(r"[.;\n]", answer):
        if phrase in clause:
            words = [w for w in DIRECTION_WORDS if re.search(rf"\b{re.escape(w)}\b", clause)]
            return max(words, key=len) if words else None
    return None


def planted_field(planted: list[dict], at: list[float]) -> tuple[float, float]:
    """The displacement really planted at a point: the sum of every AU's Gaussian bumps there.

    Neighbouring bumps add up (AU4's glabella bump pulls the inner brows straight down), so the
    truth for a region is this sum, not one AU's nominal direction.
    """
    x, y = at
    gx = gy = 0.0
    for p in planted:
        for name, (cx, cy) in p["centres"].items():
            sx, sy = p["sigma_px"][name]
            w = math.exp(-((x - cx) ** 2) / (2 * sx * sx) - ((y - cy) ** 2) / (2 * sy * sy))
            dx, dy = p["direction_by_region"][name]
            gx += p["amplitude_px"] * dx * w
            gy += p["amplitude_px"] * dy * w
    return gx, gy


def word_vector(word: str, region) -> tuple[float, float]:
    """Image vector (x right, y down) at the centre of a direction word's sector for ``region``."""
    if word.startswith("toward the subject's"):
        return (1.0, 0.0) if word.endswith("left") else (-1.0, 0.0)
    k = DIRECTION_WORDS.index(word)
    out, up = math.cos(k * math.pi / 4), math.sin(k * math.pi / 4)
    return out * out_sign(region), -up


def _within(word: str, truth: list[float], region, degrees: float) -> bool:
    """The stated word's direction lies within ``degrees`` of the planted displacement."""
    wx, wy = word_vector(word, region)
    tx, ty = truth
    n = math.hypot(wx, wy) * math.hypot(tx, ty)
    return n > 0 and (wx * tx + wy * ty) / n >= math.cos(math.radians(degrees))


def load_rows(out: Path) -> dict[str, dict]:
    """clip_id -> {verdicts, unexplained, aus_source, aus_supported, answers: {task: answer}}."""
    clips: dict[str, dict] = {}
    for shard in shard_files(out):  # a folder that is no build had printed an empty table
        for r in read_shard(shard, columns=_COLUMNS).to_pylist():  # not pq.read_table: see read_shard
            c = clips.setdefault(r["clip_id"], {**r, "answers": {}})
            c["answers"][r["task"]] = r["answer"]
    return clips


KEYS = ("moved_labelled_supported", "moved_labelled_not_contradicted", "unmoved_labelled_not_supported",
        "unlabelled_motion_reported",
        "inferred_aus_recovered", "inferred_aus_planted", "unexplained_aus_planted", "text_direction_correct",
        "text_direction_exact_word",
        "blinks_at_apex_reported_as_au45")
BLINK_VISIBLE_CROP_PX = 1.0  # lid motion at the apex from which a blink counts as visible to onset->apex flow


def read_truth(truth_file: Path) -> dict:
    """``ground_truth.json`` as ``unimer synth`` wrote it; a file that is missing or is none is a
    ``FileNotFoundError`` or ``ValueError`` naming it."""
    p = Path(truth_file)
    if p.is_dir():
        inside = p / "ground_truth.json"
        raise FileNotFoundError(f"{p}: a folder, not the ground truth file"
                                + (f"; give {inside}" if inside.is_file() else " (`unimer synth` writes ground_truth.json "
                                   "beside the database)"))
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such file (the ground_truth.json `unimer synth` writes)")
    try:
        truth = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: not JSON ({e})") from e
    if not isinstance(truth, dict) or not isinstance(truth.get("clips"), list):
        raise ValueError(f"{p}: not a ground truth written by `unimer synth` (no list of clips)")
    for i, c in enumerate(truth["clips"]):
        if not (isinstance(c, dict) and isinstance(c.get("clip_id"), str) and isinstance(c.get("planted"), list)):
            raise ValueError(f"{p}: clip {i + 1} of its list is not one `unimer synth` writes (a clip_id and its list "
                             f"of planted AUs)")
    return truth


def _same_database(truth: dict, rows: dict[str, dict], truth_file: Path, out: Path) -> None:
    """The build is of the database the truth describes, clip by clip (its window and its label): every synthetic
    database of a format has the same clip ids (casme2/sub01/EP02_01f is a real CASME II id too), so a build of
    another seed, or of the real release, was scored against this truth without a word."""
    for t in truth["clips"]:
        r = rows.get(t.get("clip_id"))
        if r is None:
            continue
        for field, mine in (("onset_frame", t.get("onset")), ("offset_frame", t.get("offset")),
                            ("au_text", t.get("au_text"))):
            if mine is not None and r.get(field) is not None and str(r[field]) != str(mine):
                raise ValueError(f"{out} is not a build of the database {truth_file} describes: clip {t['clip_id']} "
                                 f"has {field} {r[field]!r} there, {mine!r} in the truth; score a build of the database "
                                 f"`unimer synth` wrote beside that file")


def items(truth_file: Path, out: Path, rows: dict[str, dict] | None = None) -> list[dict]:
    """Every scored item: ``{"key", "ok", "clip_id", "identity", "au", "bin", "amplitude"}`` (``bin``: the
    planted AU's amplitude bin, ``amplitude``: its crop px at the apex; None where the truth has none). ``rows``:
    the clips' rows as :func:`load_rows` reads them from the build ``out`` (given: scored without reading ``out``; a
    row without ``answers`` scores no text)."""
    truth = read_truth(truth_file)
    rows = load_rows(out) if rows is None else rows
    if not any(t["clip_id"] in rows for t in truth["clips"]):  # else an empty table that reads as a score
        raise ValueError(f"no clip of {out} is in {truth_file} ({len(truth['clips'])} clips): score a build of the "
                         f"database `unimer synth` wrote beside that file")
    _same_database(truth, rows, truth_file, out)
    found: list[dict] = []

    for t in truth["clips"]:
        r = rows.get(t["clip_id"])
        if r is None:
            continue  # skipped or dropped: the report says why; not a verdict either way
        who = t.get("identity", "astronaut")  # the default profile draws one photo

        planted = {p["au"]: p for p in t["planted"]}

        def count(key: str, ok: bool, au: int, amp_bin: str | None = None, t=t, who=who, planted=planted) -> None:
            amp = planted[au].get("amplitude_crop_px") if amp_bin is not None and au in planted else None
            found.append({"key": key, "ok": bool(ok), "clip_id": t["clip_id"], "identity": who, "au": au,
                          "bin": amp_bin, "amplitude": amp})

        verdict_of: dict[int, str] = {}
        judged: dict[int, set[str]] = defaultdict(set)  # every verdict of an AU (L12 and R12 are two)
        for v in r["verdicts"]:
            judged[v["au"]].add(v["verdict"])
            if verdict_of.get(v["au"]) != "supported":
                verdict_of[v["au"]] = v["verdict"]
        labelled = {int(re.sub(r"\D", "", a) or -1) for a in t.get("labelled", [])}
        unmoved = set(t.get("labelled_not_moved", []))
        if r["aus_source"] == "label":
            for au in sorted(labelled & set(planted)):
                count("moved_labelled_supported", verdict_of.get(au) == "supported", au, planted[au].get("amplitude_bin"))
                # called wrong only where every verdict on it says so
                count("moved_labelled_not_contradicted", judged[au] != {"contradicted"}, au,
                      planted[au].get("amplitude_bin"))
            for au in sorted(unmoved):
                count("unmoved_labelled_not_supported", verdict_of.get(au) != "supported", au)
            reported = {u["region"] for u in r["unexplained"]}
            for m in t.get("moved_not_labelled", []):
                count("unlabelled_motion_reported", bool(reported & set(m["regions"])), m["au"],
                      planted.get(m["au"], {}).get("amplitude_bin"))
            made = set(planted) | {a for p in planted for a in motion_twins(p)} | ({45} if t.get("blinks") else set())
            for au in sorted({int(u["au"]) for u in r["unexplained"] if u["au"] is not None}):
                count("unexplained_aus_planted", au in made, au,
                      planted[au].get("amplitude_bin") if au in planted else None)
        else:
            for au in sorted(planted):
                count("inferred_aus_recovered", au in set(r["aus_supported"]), au, planted[au].get("amplitude_bin"))
            for au in sorted(set(r["aus_supported"])):
                made = au in planted or (au == 45 and bool(t.get("blinks")))
                count("inferred_aus_planted", made, au, planted[au].get("amplitude_bin") if au in planted else None)
        named = {u["au"] for u in r["unexplained"]} | {v["au"] for v in r["verdicts"]} | set(r["aus_supported"])
        for b in t.get("blinks", []):
            lid = max((math.hypot(*v) for v in b.get("apex_motion_crop", {}).values()), default=0.0)
            if lid >= BLINK_VISIBLE_CROP_PX:
                count("blinks_at_apex_reported_as_au45", 45 in named, 45)
        answers = r.get("answers") or {}
        motion = answers.get("motion") or answers.get("explain") or ""
        supported = set(r["aus_supported"])
        true_motion = t.get("region_motion_crop") or t.get("region_motion", {})
        for au, p in planted.items():
            if au not in supported:
                continue
            for name in p["regions"]:
                region = REGION_BY_NAME[name]
                stated = _stated_direction(motion, region.phrase)
                if stated is None:
                    continue
                truth_v = true_motion[name] if name in true_motion else planted_field(t["planted"], p["centres"][name])
                exact = stated == direction_word(*truth_v, region)
                count("text_direction_exact_word", exact, au, p.get("amplitude_bin"))
                count("text_direction_correct", exact or _within(stated, truth_v, region, 45.0), au,
                      p.get("amplitude_bin"))
    return found


def amplitude_band(amplitude: float, edges: list[float]) -> str:
    """The band of ``edges`` (ascending crop px) that ``amplitude`` falls in: ``"< 0.5"``, ``"0.5-1"``, ...,
    ``">= 5"``."""
    if amplitude < edges[0]:
        return f"< {edges[0]:g}"
    for lo, hi in zip(edges, edges[1:], strict=False):
        if amplitude < hi:
            return f"{lo:g}-{hi:g}"
    return f">= {edges[-1]:g}"


def aggregate(found: list[dict]) -> dict[str, dict]:
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for it in found:
        hits[it["key"]][0] += int(it["ok"])
        hits[it["key"]][1] += 1
    return {k: _rate(*hits[k]) for k in KEYS}


def score(truth_file: Path, out: Path) -> dict[str, dict]:
    """Every figure of :data:`KEYS` over the whole build."""
    return aggregate(items(truth_file, out))


def breakdown(truth_file: Path, out: Path, by: str) -> dict[str, dict[str, dict]]:
    """The figures per value of ``by`` (``"bin"``: amplitude bin of the planted AU; ``"identity"``; ``"au"``)."""
    found = items(truth_file, out)
    groups: dict[str, list[dict]] = defaultdict(list)
    for it in found:
        if it[by] is not None:
            groups[it[by]].append(it)
    return {g: aggregate(v) for g, v in sorted(groups.items())}
