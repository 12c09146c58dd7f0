"""A finished build run again: unchanged input (nothing to do), one clip relabelled, one clip's part damaged,
each timed as a fraction of the build's own time, in one run (issue 10).

    python bench/rerun.py --clips 12 --workers 2 [--tmp /tmp/rerun]

Every run is ``unimer build`` as a user runs it (a new process: start-up included). Prints the seconds of
each, its fraction of the full build, whether the shards are the same bytes as the full build's (the no-op
run) or as a fresh build of the changed input (the relabelled run), and what the report counted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--tmp", type=Path, default=None)
    a = ap.parse_args()

    from unimer_builder import synthesize
    from unimer_builder.validation.kills import relabel, run_build, shard_digest

    tmp = a.tmp or Path(tempfile.mkdtemp(prefix="unimer-rerun-"))
    rows = []
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        root = synthesize(tmp / "src", "casme2", clips=a.clips, subjects=a.subjects, seed=0, frames=10)
        out = tmp / "out"

        def run(what: str, folder: Path = out) -> dict:
            code, s, err = run_build(root, folder, a.workers)
            if code not in (0, 1):
                raise SystemExit(f"{what}: exit {code}\n{err[-2000:]}")
            report = json.loads((folder / "build_report.json").read_text())
            return {"run": what, "s": s, "exit": code, "up_to_date": "up to date" in err,
                    "resumed": report["counts"]["resumed"], "changed": report["counts"].get("changed"),
                    "digest": shard_digest(folder)}

        full = run("full build")
        rows.append(full)
        noop = run("re-run, input unchanged")
        noop["same bytes"] = noop["digest"] == full["digest"]
        rows.append(noop)
        from unimer_builder.sources import read_clips

        relabel(root, next(iter(read_clips(root, "casme2"))).clip_id)
        one = run("re-run, one clip relabelled")
        one["same bytes"] = one["digest"] == run("fresh build of the relabelled input", tmp / "fresh")["digest"]
        rows.append(one)
    finally:
        if a.tmp is None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"{a.clips} clips, {a.workers} workers, load1 {os.getloadavg()[0]:.2f}")
    print(f"{'run':32} {'seconds':>8} {'of build':>9} {'resumed':>8} {'changed':>8}  same bytes")
    for r in rows:
        print(f"{r['run']:32} {r['s']:8.2f} {r['s'] / full['s']:9.3f} {r['resumed']:8} {r['changed']!s:>8}  "
              f"{r.get('same bytes', '')}{'  (up to date: nothing done)' if r['up_to_date'] else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
