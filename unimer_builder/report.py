"""``build_report.json``: what was built, what was skipped and why, and how well labels and motion agree."""

from __future__ import annotations

import os
import platform
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import cv2

from . import labels
from ._version import __version__
from .card import synthetic_profile_of
from .config import BuildConfig
from .facs import au_name
from .pyfeat_backend import version_of
from .records import ClipSummary, Skip
from .second_opinion import SOURCE

VERDICTS = ("supported", "weak", "contradicted", "unverifiable")


def _agreement(summaries: list[ClipSummary]) -> dict[str, dict]:
    counts: dict[int, Counter] = defaultdict(Counter)
    for s in summaries:
        if s.aus_source != "label":
            continue
        for au, verdict in s.verdicts:
            counts[au][verdict] += 1
    out = {}
    for au in sorted(counts):
        c = counts[au]
        checked = c["supported"] + c["weak"] + c["contradicted"]
        out[f"AU{au}"] = {
            "name": au_name(au), "labelled": sum(c.values()), **{v: c[v] for v in VERDICTS},
            "support_rate": round(c["supported"] / checked, 4) if checked else None,
        }
    return out


def _second_opinion(summaries: list[ClipSummary], cfg: BuildConfig) -> dict | None:
    """With ``--au-detector py-feat``: per labelled AU, how often py-feat agrees with the flow's verdict; per AU
    no label names, which source said it (both, the flow only, py-feat only)."""
    if cfg.check.au_detector != "py-feat":
        return None
    labelled: dict[int, Counter] = defaultdict(Counter)
    unnamed: dict[int, Counter] = defaultdict(Counter)
    for s in summaries:
        for au, is_labelled, said_by, agreement in s.sources:
            if is_labelled:
                labelled[au][agreement or "no_call"] += 1
            else:
                unnamed[au][said_by] += 1
    lab = {}
    for au in sorted(labelled):
        c = labelled[au]
        called = c["agree"] + c["disagree"]
        lab[f"AU{au}"] = {"name": au_name(au), "agree": c["agree"], "disagree": c["disagree"],
                          "no_call": c["no_call"], "agreement_rate": round(c["agree"] / called, 4) if called else None}
    unl = {f"AU{au}": {"name": au_name(au), "both": unnamed[au]["both"], "flow_only": unnamed[au]["flow"],
                       "py-feat_only": unnamed[au][SOURCE]} for au in sorted(unnamed)}
    return {"source": SOURCE, "rise_min": cfg.check.pyfeat_rise_min, "present_min": cfg.check.pyfeat_present_min,
            "labelled": lab, "unlabelled": unl}


def _durations(summaries: list[ClipSummary]) -> dict:
    """Clips by duration class; every clip longer than a micro-expression listed by name."""
    counts = Counter(s.duration_class or "unknown" for s in summaries)
    beyond = [{"clip_id": s.clip_id, "duration_s": round(s.duration_s, 3), "class": s.duration_class}
              for s in sorted(summaries, key=lambda s: (-(s.duration_s or 0.0), s.clip_id))
              if s.duration_class in ("macro", "long")]
    return {
        "bounds_s": {"micro": labels.MICRO_MAX_S, "micro_onset_phase": labels.MICRO_ONSET_MAX_S,
                     "macro": labels.MACRO_MAX_S},
        "counts": {k: counts[k] for k in (*labels.DURATION_CLASSES, "unknown")},
        "beyond_micro": beyond,
    }


def _official(fmt: str, summaries: list[ClipSummary], skips: list[Skip], cfg: BuildConfig, unread: Sequence[str] = ()
              ) -> dict | None:
    """With ``--composite official``, for a database of the MEGC2019 list: how many of its official clips the
    source holds (built, skipped, or past ``--limit``), which it does not hold at all, and, for a ``--limit``
    build (``unread``: the usable clips it left out), those it did not look at."""
    if cfg.text.composite != "official" or fmt not in labels.official_databases():
        return None
    seen = [s.clip_id for s in summaries] + [s.clip_id for s in skips]
    total, missing = labels.official_missing(fmt, [*seen, *unread])
    out = {"listed": total, "found": total - len(missing), "missing": missing}
    if unread:
        out["beyond_limit"] = sorted(set(labels.official_missing(fmt, seen)[1]) - set(missing))
    return out


def _prefixes(root: Path | str) -> list[tuple[str, str]]:
    """(path prefix, what it is written as) for the database's folder (the folder of a sheet or manifest file) and
    the folder above it, which holds the label sheet of a root given as the frames' folder, longest first."""
    root = Path(root)
    base = root if root.is_dir() else root.parent
    pairs = {}
    for b, say in ((base.parent, ".."), (base, ".")):
        for p in (str(b.absolute()), str(b.resolve())):
            if len(p) > 1:  # never the filesystem's top
                pairs[p] = say
    return sorted(pairs.items(), key=lambda kv: len(kv[0]), reverse=True)


_START = r"(?<![^\s'\"(\[=:,])"  # a path begins the text or follows a delimiter: /mnt/data is not /data
_END = r"(?=$|[\s'\"),:;\]]|\.(?:$|\s))"  # a whole component: /data/db is not the start of /data/db2


def _relative(text: str, prefixes: list[tuple[str, str]]) -> str:
    for p, say in prefixes:
        text = re.sub(_START + re.escape(p) + r"(" + re.escape(os.sep) + r"|" + _END + r")",
                      lambda m, say=say: ("" if say == "." else say + "/") if m.group(1) else say, text)
    home = str(Path.home())
    if len(home) > 1:  # a file outside the root (a manifest may name any path): at least not the user's home
        text = re.sub(_START + re.escape(home + os.sep), "~" + os.sep, text)
    return text


def relative_to_root(skip: Skip, root: Path | str) -> dict:
    """A skip as the report lists it: its file, and the paths its message names, relative to the database root
    (the folder of a manifest file), so that the report (which is published) holds no path of this machine; a
    file outside the root (a manifest may name any path) keeps its path, the user's home written ``~``."""
    prefixes = _prefixes(root)
    d = asdict(skip)
    d["file"] = _relative(d["file"], prefixes)
    d["message"] = _relative(d["message"], prefixes)
    return d


def _nodes(summaries: list[ClipSummary]) -> dict[str, dict]:
    """Which node built which clip (``local`` on one machine; ``host/ray-node-id`` on a Ray cluster; resumed
    clips: where their part was written), sorted by node."""
    by_node: dict[str, list[str]] = defaultdict(list)
    for s in summaries:
        by_node[s.node or "unknown"].append(s.clip_id)
    return {n: {"clips": len(ids), "clip_ids": sorted(ids)} for n, ids in sorted(by_node.items())}


def _published(cfg: BuildConfig) -> dict:
    """The settings as the report publishes them: a templates folder of one's own by its name (the fingerprint
    holds its files' text), not by a path of this machine."""
    d = cfg.to_dict()
    if d["text"].get("templates") is not None:
        d["text"] = {**d["text"], "templates": Path(str(d["text"]["templates"])).resolve().name}  # "." too
    return d


def build_report(
    summaries: list[ClipSummary], skips: list[Skip], cfg: BuildConfig, root: Path | str, fmt: str,
    shards: list[str], seconds: float, workers: int, changed: list[str] = (), damaged: list[str] = (),
    executor: str = "local", notes: list[str] = (), inputs: dict | None = None, unread: Sequence[str] = (),
) -> dict:
    """The report of a build of ``root``. It names the database by its folder's name only, and every file
    relative to it. ``changed``: clips measured again because their inputs changed since their part or shard
    was made; ``damaged``: clips whose part file could not be read (measured again); ``notes``: what the
    build as a whole should say (``label_notes`` are each clip's); ``inputs``: the label file read, its SHA-256 and
    the frames' folder (:func:`.sources.provenance`); ``unread``: the usable clips ``--limit`` left out."""
    root = Path(root)
    base = root if root.is_dir() else root.parent  # a label sheet or manifest given itself: its folder
    prefixes = _prefixes(root)
    by_db: dict[str, list[ClipSummary]] = defaultdict(list)
    for s in summaries:
        by_db[s.database].append(s)
    built = [s for s in summaries if not s.dropped]
    unexplained = Counter("none" if a is None else f"AU{a}" for s in summaries for a in s.unexplained)
    stage_totals: Counter = Counter()
    timed = [s for s in summaries if s.timings]
    for s in timed:
        stage_totals.update(s.timings)
    return {
        "builder_version": __version__,
        "root": base.name,
        "synthetic": synthetic_profile_of(base),
        "format": fmt,
        "inputs": dict(inputs or {}),
        "counts": {
            "clips": len(summaries) + len(skips),
            "built": len(built),
            "skipped": len(skips),
            "dropped_by_policy": sum(s.dropped for s in summaries),
            "flagged": sum(s.flagged for s in summaries),
            "resumed": sum(s.resumed for s in summaries),
            "changed": len(changed),
            "damaged_parts": len(damaged),
            "rows": sum(s.rows for s in summaries),
            "apex_estimated": sum(s.apex_source == "estimated" for s in summaries),
            "aus_inferred": sum(s.aus_source == "inferred" for s in summaries),
            "beyond_micro": sum(s.duration_class in ("macro", "long") for s in summaries),
            "label_notes": sum(bool(s.label_notes) for s in summaries),
        },
        "durations": _durations(summaries),
        "official_composite": _official(fmt, summaries, skips, cfg, unread),
        "notes": list(notes),
        "label_notes": [{"clip_id": s.clip_id, "notes": [_relative(n, prefixes) for n in s.label_notes]}
                        for s in sorted(summaries, key=lambda s: s.clip_id) if s.label_notes],
        "skip_reasons": dict(sorted(Counter(s.reason for s in skips).items())),
        "skipped": [relative_to_root(s, root) for s in sorted(skips, key=lambda s: s.clip_id)],
        "changed": list(changed),
        "damaged_parts": list(damaged),
        "agreement": {"all": _agreement(summaries), **{db: _agreement(v) for db, v in sorted(by_db.items())}},
        "unexplained_motion": dict(sorted(unexplained.items())),
        "second_opinion": _second_opinion(summaries, cfg),
        "shards": shards,
        "config": _published(cfg),
        "config_fingerprint": cfg.fingerprint(),
        "policy": cfg.check.policy,
        "nodes": _nodes(summaries),
        "run": {
            "seconds": round(seconds, 3), "workers": workers, "executor": executor,
            "mean_stage_seconds": {k: round(v / len(timed), 4) for k, v in sorted(stage_totals.items())} if timed else {},
            "opencv": cv2.__version__, "python": platform.python_version(), **_torch_version(cfg),
            **_pyfeat_version(cfg),
        },
    }


def _torch_version(cfg: BuildConfig) -> dict[str, str]:
    """torch's version when it computed the flow (not imported otherwise)."""
    if cfg.flow.backend != "torch":
        return {}
    return {"torch": version_of("torch")}


def _pyfeat_version(cfg: BuildConfig) -> dict[str, str]:
    """py-feat's version (and torchvision's) when it gave AUs or found faces."""
    if "py-feat" not in (cfg.face.detector, cfg.check.au_detector):
        return {}
    return {"py-feat": version_of("py-feat"), "torchvision": version_of("torchvision")}
