"""Score a build of a synthetic database against what the generator planted.

Four figures, each a rate with its count:
- ``moved_labelled_supported``: labelled AUs that were planted and judged supported;
- ``unmoved_labelled_not_supported``: labelled AUs that were not planted and not judged supported;
- ``unlabelled_motion_reported``: planted motion that no label names, reported as unexplained (or, for
  databases without AU labels, recovered as an inferred AU);
- ``text_direction_correct``: regions the motion text describes for a planted AU, whose stated direction
  is the planted one.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from .facs import DIRECTION_WORDS, REGION_BY_NAME, direction_word

_COLUMNS = ["clip_id", "task", "aus_source", "aus_supported", "verdicts", "unexplained", "answer"]


def _rate(hits: int, n: int) -> dict:
    return {"rate": (hits / n) if n else None, "n": n, "hits": hits}


def _stated_direction(answer: str, phrase: str) -> str | None:
    """The direction word stated in the clause that names ``phrase`` (longest word wins)."""
    for clause in re.split(r"[.;\n]", answer):
        if phrase in clause:
            words = [w for w in DIRECTION_WORDS if re.search(rf"\b{re.escape(w)}\b", clause)]
            return max(words, key=len) if words else None
    return None


def load_rows(out: Path) -> dict[str, dict]:
    """clip_id -> {verdicts, unexplained, aus_source, aus_supported, answers: {task: answer}}."""
    clips: dict[str, dict] = {}
    for shard in sorted((Path(out) / "data").glob("*.parquet")):
        for r in pq.read_table(shard, columns=_COLUMNS).to_pylist():
            c = clips.setdefault(r["clip_id"], {**r, "answers": {}})
            c["answers"][r["task"]] = r["answer"]
    return clips


def score(truth_file: Path, out: Path) -> dict[str, dict]:
    truth = json.loads(Path(truth_file).read_text())
    rows = load_rows(out)
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def count(key: str, ok: bool) -> None:
        hits[key][0] += int(ok)
        hits[key][1] += 1

    for t in truth["clips"]:
        r = rows.get(t["clip_id"])
        if r is None:
            continue  # skipped or dropped: the report says why; not a verdict either way
        verdict_of: dict[int, str] = {}
        for v in r["verdicts"]:
            if verdict_of.get(v["au"]) != "supported":
                verdict_of[v["au"]] = v["verdict"]
        labelled = {int(re.sub(r"\D", "", a) or -1) for a in t.get("labelled", [])}
        planted = {p["au"]: p for p in t["planted"]}
        unmoved = set(t.get("labelled_not_moved", []))
        if r["aus_source"] == "label":
            for au in sorted(labelled & set(planted)):
                count("moved_labelled_supported", verdict_of.get(au) == "supported")
            for au in sorted(unmoved):
                count("unmoved_labelled_not_supported", verdict_of.get(au) != "supported")
            reported = {u["region"] for u in r["unexplained"]}
            for m in t.get("moved_not_labelled", []):
                count("unlabelled_motion_reported", bool(reported & set(m["regions"])))
        else:
            for au in sorted(planted):
                count("unlabelled_motion_reported", au in set(r["aus_supported"]))
        motion = r["answers"].get("motion") or r["answers"].get("explain") or ""
        for au, p in planted.items():
            if au not in set(r["aus_supported"]):
                continue
            for name in p["regions"]:
                region = REGION_BY_NAME[name]
                stated = _stated_direction(motion, region.phrase)
                if stated is None:
                    continue
                expected = direction_word(p["direction_by_region"][name][0], p["direction_by_region"][name][1], region) \
                    if "direction_by_region" in p else direction_word(p["direction"][0], p["direction"][1], region)
                count("text_direction_correct", stated == expected)
    keys = ("moved_labelled_supported", "unmoved_labelled_not_supported", "unlabelled_motion_reported",
            "text_direction_correct")
    return {k: _rate(*hits[k]) for k in keys}
