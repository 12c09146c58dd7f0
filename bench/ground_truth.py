"""How often the dual constraint agrees with planted motion, per database format.

    python bench/ground_truth.py [--clips 40] [--subjects 5] [--formats casme2 samm smic casme3 manifest]

Synthesises each format (seeded), builds it with `unimer build`, scores the build against
`ground_truth.json` and prints one row per format with the four figures of issue 2.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from typer.testing import CliRunner

from unimer_builder.cli import app
from unimer_builder.groundtruth import score

TARGETS = {"moved_labelled_supported": 0.95, "unmoved_labelled_not_supported": 0.90,
           "unlabelled_motion_reported": 0.90, "text_direction_correct": 0.95}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--formats", nargs="+", default=["casme2", "samm", "smic", "casme3", "manifest"])
    args = ap.parse_args()
    runner = CliRunner()
    header = " | ".join(f"{k} (≥{v:.2f})" for k, v in TARGETS.items())
    print(f"| format | clips | {header} | exact direction word | seconds |")
    print("|---|---|" + "---|" * len(TARGETS) + "---|---|")
    with tempfile.TemporaryDirectory() as d:
        for fmt in args.formats:
            src, out = Path(d) / fmt, Path(d) / f"{fmt}-out"
            t = time.perf_counter()
            res = runner.invoke(app, ["synth", str(src), "-f", fmt, "--clips", str(args.clips), "--subjects",
                                      str(args.subjects), "--seed", str(args.seed)])
            assert res.exit_code == 0, res.output
            res = runner.invoke(app, ["build", str(src), "-f", fmt, "--out", str(out), "--workers", str(args.workers)])
            assert res.exit_code in (0, 1), res.output
            s = score(src / "ground_truth.json", out)
            cells = " | ".join("n/a" if s[k]["rate"] is None else f"{s[k]['rate']:.3f} ({s[k]['hits']}/{s[k]['n']})"
                               for k in TARGETS)
            e = s["text_direction_exact_word"]
            exact = "n/a" if e["rate"] is None else f"{e['rate']:.3f}"
            print(f"| {fmt} | {args.clips} | {cells} | {exact} | {time.perf_counter() - t:.0f} |", flush=True)


if __name__ == "__main__":
    main()
