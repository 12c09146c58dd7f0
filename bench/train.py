"""DEFT-LLM on a synthetic Uni-MER build: LOSO accuracy, the motion expert's share, training throughput.

    python bench/train.py loso        [--clips 40 --subjects 5 --epochs 30]
    python bench/train.py throughput  [--steps 60]

loso:       `unimer synth` + `unimer build` (CASME II format, 5 classes), then `deft evaluate --protocol loso`
            with every expert and again without the motion-semantics expert. Prints UF1/UAR pooled over
            folds (emotion head and parsed generated answers), AU F1, the share of generated answers that
            parse, wall time and peak RSS of each evaluation process.
throughput: `deft train` on every subject for a fixed number of steps; samples per second, peak RSS, and
            the data loader's share of the step time (from the run's log.jsonl).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS MiB of the process tree's largest process, output)."""
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True)
    secs = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    peak = int(res.stdout.rsplit("PEAK_KIB", 1)[1].split()[0]) / 1024
    return secs, peak, res.stdout


def dataset(tmp: Path, clips: int, subjects: int) -> Path:
    out = tmp / "unimer"
    if not (out / "build_report.json").exists():
        unimer = [sys.executable, "-m", "unimer_builder.cli"]
        subprocess.run([*unimer, "synth", str(tmp / "src"), "-f", "casme2", "--clips", str(clips),
                        "--subjects", str(subjects), "--seed", "0"], check=True, capture_output=True)
        subprocess.run([*unimer, "build", str(tmp / "src"), "-f", "casme2", "--out", str(out)],
                       check=True, capture_output=True)
    return out


def loso(args) -> None:
    tmp = Path(args.tmp)
    data = dataset(tmp, args.clips, args.subjects)
    deft = [sys.executable, "-m", "deft_model.cli"]
    rows = []
    for name, experts in (("all experts", None), ("without motion-semantics", "structure,dynamic")):
        run = tmp / f"run-{name.split()[0]}"
        cmd = [*deft, "evaluate", "--run", str(run), "--protocol", "loso", "--data", str(data), "--epochs",
               str(args.epochs), "--seed", "0"] + (["--experts", experts] if experts else [])
        secs, peak, _ = timed(cmd)
        res = json.loads((run / "loso" / "loso_results.json").read_text())
        rows.append((name, res, secs, peak))
    print(f"synthetic CASME II format: {args.clips} clips, {args.subjects} subjects, 5 classes; tiny config, "
          f"{args.epochs} epochs per fold, LOSO ({args.subjects} folds), predictions pooled over folds\n")
    print("| experts | UF1 head | UAR head | UF1 answer | AU F1 head | answers parsed: emotion / AUs | wall s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, res, secs, peak in rows:
        h, a = res["head"], res["answer"]

        def f(x):
            return "–" if x is None else f"{x:.3f}"

        print(f"| {name} | {f(h['uf1'])} | {f(h['uar'])} | {f(a['uf1'])} | {f(res['au']['macro_f1'])} | "
              f"{f(a.get('parsed_rate'))} / {f(a.get('au_parsed_rate'))} | {secs:.0f} | {peak:.0f} |")
    truth = {c["clip_id"]: {p["au"] for p in c["planted"]}
             for c in json.loads((tmp / "src" / "ground_truth.json").read_text())["clips"]}
    for name, _, _, _ in rows:
        run = tmp / f"run-{name.split()[0]}" / "loso" / "loso_predictions.jsonl"
        tp = fp = fn = 0
        for line in run.read_text().splitlines():
            c = json.loads(line)
            planted, pred = truth[c["clip_id"]], set(c["aus_pred"])
            tp, fp, fn = tp + len(planted & pred), fp + len(pred - planted), fn + len(planted - pred)
        print(f"AU head against the planted AUs ({name}): micro F1 {2 * tp / max(1, 2 * tp + fp + fn):.3f} "
              f"(tp {tp}, fp {fp}, fn {fn})")
    full, ablated = rows[0][1]["head"]["uf1"], rows[1][1]["head"]["uf1"]
    print(f"\nUF1 drop without the motion-semantics expert: {full - ablated:+.3f} ({full:.3f} -> {ablated:.3f})")


def throughput(args) -> None:
    tmp = Path(args.tmp)
    data = dataset(tmp, args.clips, args.subjects)
    run = tmp / "throughput"
    cmd = [sys.executable, "-m", "deft_model.cli", "train", "--data", str(data), "--config", "tiny", "--out",
           str(run), "--max-steps", str(args.steps), "--seed", "0"]
    secs, peak, _ = timed(cmd)
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "step_s" in r][1:]  # the first window carries start-up allocations
    batch = json.loads((run / "model" / "config.json").read_text()).get("training", {}).get("batch_size", 8)
    step = sum(r["step_s"] for r in steps) / len(steps)
    data_s = sum(r["data_s"] for r in steps) / len(steps)
    print(f"tiny config, CPU, batch {batch}, {args.steps} steps ({len(steps) * 10} timed)")
    print(f"step (forward+backward+optimiser): {1000 * step:.1f} ms; data loader: {1000 * data_s:.1f} ms "
          f"({100 * data_s / (step + data_s):.1f} % of the step, target < 10 %)")
    print(f"samples per second: {batch / (step + data_s):.1f}")
    print(f"process: {secs:.1f} s wall including start-up, peak RSS {peak:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["loso", "throughput"])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--tmp", default=None, help="work folder (kept, reused); default: a temporary one")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        args.tmp = args.tmp or d
        {"loso": loso, "throughput": throughput}[args.what](args)


if __name__ == "__main__":
    main()
