"""Kill ``unimer build`` (SIGKILL) at random moments, change one clip's label, run it to its end: the output
must be byte for byte an uninterrupted build's of the changed input (issue 10).

    python bench/kills.py --kills 12 --clips 6 --workers 2 [--seed 0] [--tmp /tmp/kills]

Prints every check (exit status, identical shards, the changed clip measured again and only it, the others
resumed, no pool worker left running after a kill), the kill moments and the timings.
``tests/test_kill_resume.py`` runs a small version of the same check (unimer_builder.validation.kills).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--subjects", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tmp", type=Path, default=None, help="work folder (default: a temporary one, removed)")
    a = ap.parse_args()

    from unimer_builder import synthesize
    from unimer_builder.validation.kills import kill_and_resume

    tmp = a.tmp or Path(tempfile.mkdtemp(prefix="unimer-kills-"))
    try:
        shutil.rmtree(tmp / "src", ignore_errors=True)
        shutil.rmtree(tmp / "work", ignore_errors=True)
        root = synthesize(tmp / "src", "casme2", clips=a.clips, subjects=a.subjects, seed=a.seed, frames=10)
        t0 = time.perf_counter()
        res = kill_and_resume(root, tmp / "work", kills=a.kills, workers=a.workers, seed=a.seed)
        res["bench_s"] = round(time.perf_counter() - t0, 1)
        res["load1"] = round(os.getloadavg()[0], 2)
    finally:
        if a.tmp is None:
            shutil.rmtree(tmp, ignore_errors=True)
    for k, v in res["checks"].items():
        print(f"{'ok  ' if v else 'FAIL'} {k}")
    print(json.dumps({k: v for k, v in res.items() if k != "checks"}, indent=1))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
