"""Where per-region evidence stops: recall of planted motion at a fixed false rate on still regions.

    python bench/detection_limit.py [--profile hard] [--identities train|heldout] [--formats casme2 smic]
                                    [--clips 40] [--subjects 5] [--rates 0.01 0.03] [--set NAME=VALUE ...]

The ground-truth bench (bench/ground_truth.py) scores verdicts, which stack several tests and thresholds;
this one scores the two statistics every verdict rests on, one region at a time, so that a miss can be told
from a threshold set too high or from evidence too weak for any threshold. For every built clip and region
the generator's truth (``region_motion_crop``) says how far the region was moved. A region it moved by
``--least`` crop px or more is *moved*; one it moved by less than 0.03 px is *still* (the rest, spill, is
left out). Two statistics, as the build stored them:

* ``z``: the region's mean flow magnitude over the noise floor, over its noise (``RegionStats.z``);
* ``along``: its mean flow vector's component along a direction, over its noise (what a label is judged on,
  ``crosscheck._judge``): along the planted motion for a moved region; for a still region once along each
  AU direction FACS gives it (each a test a label of that AU would make there).

For each statistic the threshold that leaves ``--rates`` of the still tests above it, and the share of moved
regions above that threshold per band of planted motion (``--edges``); then the share of still tests and
of moved regions above the builder's own thresholds (``check.z_weak``, ``z_supported``, ``z_unexplained``),
and the flow's gain (the measured component along the planted motion over the planted motion's length).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import numpy as np

import unimer_builder as u
from unimer_builder import facs
from unimer_builder.config import parse_setting
from unimer_builder.shards import read_shard

STILL_PX = 0.03  # truth below this: a still region


def _own_directions() -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {}
    for au in sorted(facs.VERIFIABLE_AUS):
        for r in facs.regions_for(au):
            v = facs.expected_vector(au, r)
            if v not in out.setdefault(r.name, []):
                out[r.name].append(v)
    return out


def region_samples(src: Path, out: Path, least: float) -> tuple[list[dict], list[dict]]:
    """(moved, still) samples of one build: ``{"z", "along", "planted", "gain"}`` and ``{"z", "along"}``."""
    truth = {t["clip_id"]: t for t in json.loads((src / "ground_truth.json").read_text())["clips"]}
    own = _own_directions()
    moved, still = [], []
    for shard in sorted((out / "data").glob("*.parquet")):
        seen = set()
        for row in read_shard(shard, columns=["clip_id", "regions"]).to_pylist():
            if row["clip_id"] in seen or row["clip_id"] not in truth:
                continue  # one row per task: a clip's regions once
            seen.add(row["clip_id"])
            planted = truth[row["clip_id"]].get("region_motion_crop", {})
            for g in row["regions"]:
                if not g["noise"] or g["noise"] <= 0:
                    continue
                px, py = planted.get(g["name"], (0.0, 0.0))
                p = math.hypot(px, py)
                if p >= least:
                    along = (g["dx"] * px + g["dy"] * py) / p
                    moved.append({"z": g["z"], "along": along / g["noise"], "planted": p, "gain": along / p})
                elif p < STILL_PX:
                    for ex, ey in own.get(g["name"], []):
                        still.append({"z": g["z"], "along": (g["dx"] * ex + g["dy"] * ey) / g["noise"]})
    return moved, still


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="hard", choices=["default", "hard"])
    ap.add_argument("--identities", default="train")
    ap.add_argument("--formats", nargs="+", default=["casme2", "smic"])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--frames", type=int, default=14)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--least", type=float, default=0.2, help="crop px: a region moved at least this far is moved")
    ap.add_argument("--edges", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--rates", type=float, nargs="+", default=[0.01, 0.03])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    cfg = u.BuildConfig().with_(**{"text.composite": "labels"})
    for item in args.set:
        name, value = parse_setting(item)
        cfg = cfg.with_(**{name: value})
    moved: list[dict] = []
    still: list[dict] = []
    with tempfile.TemporaryDirectory() as d:
        for fmt in args.formats:
            src, out = Path(d) / fmt, Path(d) / f"{fmt}-out"
            u.synthesize(src, fmt, clips=args.clips, subjects=args.subjects, seed=args.seed, frames=args.frames,
                         profile=args.profile, identities=args.identities if args.profile == "hard" else None)
            u.build(src, out, cfg, fmt, args.workers)
            m, s = region_samples(src, out, args.least)
            moved += m
            still += s
    edges = [args.least, *sorted(args.edges), math.inf]
    bands = [(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    names = [f"{a:g}-{b:g}" if b < math.inf else f">= {a:g}" for a, b in bands]
    planted = np.array([m["planted"] for m in moved])
    counts = ", ".join(f"{n} px {int(((planted >= a) & (planted < b)).sum())}" for n, (a, b) in zip(names, bands,
                                                                                                    strict=True))
    print(f"profile {args.profile}, identities {args.identities}, formats {' '.join(args.formats)}, "
          f"{args.clips} clips each; moved regions: {counts}; still tests: {len(still)}\n")
    print("| statistic | still tests above | threshold | " + " | ".join(f"moved {n} px" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    for stat in ("z", "along"):
        ms = np.array([m[stat] for m in moved])
        ss = np.array([s[stat] for s in still])
        rows = [(f"{r:.0%}", float(np.quantile(ss, 1 - r))) for r in args.rates]
        rows += [(f"{(ss >= t).mean():.1%}", t) for t in (cfg.check.z_weak, cfg.check.z_supported,
                                                           cfg.check.z_unexplained)]
        for what, t in rows:
            rec = [ms[(planted >= a) & (planted < b)] for a, b in bands]
            cells = " | ".join(f"{(x >= t).mean():.2f}" if len(x) else "n/a" for x in rec)
            print(f"| {stat} | {what} | {t:.1f} | {cells} |")
    gain = np.array([m["gain"] for m in moved])
    print("\nmedian gain (measured along the planted motion / planted): " + ", ".join(
        f"{n} px {np.median(gain[(planted >= a) & (planted < b)]):.2f}" for n, (a, b) in zip(names, bands, strict=True)
        if ((planted >= a) & (planted < b)).any()))


if __name__ == "__main__":
    main()
