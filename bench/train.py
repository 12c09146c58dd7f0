"""DEFT-LLM on a synthetic Uni-MER build: LOSO beside the baselines, training throughput, the reference shape.

    python bench/train.py loso        [--clips 40 --subjects 5 --epochs 20 --seeds 0,1 --profile default|hard
                                       --identities train|heldout --data-seed 0 --set KEY=JSON --probe
                                       --extra-data BUILD --extra-train CLIPS --no-generate]
    python bench/train.py throughput  [--steps 60]
    python bench/train.py reference   [--steps 2]

loso:       `unimer synth` + `unimer build` (CASME II format, 5 classes), then for every seed `deft evaluate
            --protocol loso` with every expert, without the motion-semantics expert and with it alone, and
            the two baselines (logistic regression on the region statistics, an STSTNet-like flow CNN) on
            the same folds. UF1/UAR pooled over folds; AU F1 of the AU head and of the explanation against
            the AUs the generator planted; emotion accuracy of the LM's answers beside the head's; answers
            cut at their token budget; wall time and peak RSS of each evaluation process. Epochs and
            every baseline setting are fixed in advance (choose DEFT-LLM's on a database of training
            identities: --identities train --data-seed 1). --probe: what each expert's summary carries
            (the subject; a new subject's emotion), to tell an identity shortcut.
throughput: `deft train` on every subject for a fixed number of steps; samples per second, peak RSS, and
            the data loader's share of the step time (from the run's log.jsonl).
reference:  the reference config at its real shape (Qwen2.5-0.5B-shaped LLM, SigLIP-base-shaped tower,
            random weights in local folders, nothing downloaded) trained for a few steps at batch 1 on the
            CPU with a bfloat16 and a float32 base: seconds per step and peak RSS; then the size of the
            run's saved model (adapters, experts, projectors, heads) beside a full checkpoint of the same
            model.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
           "print('PEAK_KIB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
VARIANTS = (("all experts", None), ("without motion-semantics", "structure,dynamic"), ("motion-semantics only", "motion"))


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (seconds, peak RSS MiB of the process tree's largest process, output)."""
    t = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", WRAPPER, *cmd], capture_output=True, text=True, env=env)
    secs = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    peak = int(res.stdout.rsplit("PEAK_KIB", 1)[1].split()[0]) / 1024
    return secs, peak, res.stdout


def dataset(tmp: Path, clips: int, subjects: int, profile: str = "default", identities: str | None = None,
            seed: int = 0, name: str = "") -> Path:
    out = tmp / f"{name}unimer"
    if not (out / "build_report.json").exists():
        import unimer_builder as u

        u.synthesize(tmp / f"{name}src", "casme2", clips=clips, subjects=subjects, seed=seed, profile=profile,
                     identities=identities)
        # A synthetic database is not the MEGC2019 release: its composite classes come from the labels.
        u.build(tmp / f"{name}src", out, u.BuildConfig().with_(**{"text.composite": "labels"}), "casme2")
    return out


def _f(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def _mean_sd(xs: list[float | None]) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return f"{statistics.mean(xs):.3f} ± {statistics.stdev(xs):.3f}" if len(xs) > 1 else f"{xs[0]:.3f}"


def _planted_f1(truth: dict, preds: list[dict], key: str) -> float:
    tp = fp = fn = 0
    for c in preds:
        planted, pred = truth[c["clip_id"]], set(c.get(key) or [])
        tp, fp, fn = tp + len(planted & pred), fp + len(pred - planted), fn + len(planted - pred)
    return 2 * tp / max(1, 2 * tp + fp + fn)


def loso(args) -> None:
    tmp = Path(args.tmp)
    data = dataset(tmp, args.clips, args.subjects, args.profile, args.identities, args.data_seed)
    truth = {c["clip_id"]: {p["au"] for p in c["planted"]}
             for c in json.loads((tmp / "src" / "ground_truth.json").read_text())["clips"]}
    if args.extra_train:
        # Training identities only (never the held-out ones): another synthetic database every fold also trains on.
        args.extra_data = [*args.extra_data, dataset(tmp, args.extra_train, 6, "hard", "train", args.data_seed + 1,
                                                     name="extra_")]
    seeds = [int(s) for s in args.seeds.split(",")]
    deft = [sys.executable, "-m", "deft_model.cli"]
    rows: dict[str, list[dict]] = {}
    probes: list[dict] = []
    for seed in seeds:
        for i, (name, experts) in enumerate(VARIANTS):
            run = tmp / f"run-s{seed}-v{i}"
            cmd = [*deft, "evaluate", "--run", str(run), "--protocol", "loso", "--data", str(data), "--epochs",
                   str(args.epochs), "--seed", str(seed)] + (["--experts", experts] if experts else []) \
                + (["--baselines"] if i == 0 else []) + [a for kv in args.set for a in ("--set", kv)] \
                + ([] if args.generate else ["--no-generate"]) \
                + [a for d in args.extra_data for a in ("--extra-data", str(d))]
            print(f"$ {' '.join(cmd[2:])}", flush=True)
            secs, peak, _ = timed(cmd)
            res = json.loads((run / "loso" / "loso_results.json").read_text())
            preds = [json.loads(x) for x in (run / "loso" / "loso_predictions.jsonl").read_text().splitlines()]
            rows.setdefault(f"DEFT-LLM, {name}", []).append({
                "uf1": res["head"]["uf1"], "uar": res["head"]["uar"], "acc": res["head"]["acc"],
                "answer_acc": res["answer"]["acc"], "au_head": _planted_f1(truth, preds, "aus_pred"),
                "au_expl": _planted_f1(truth, preds, "explanation_aus"),
                "au_answer": _planted_f1(truth, preds, "answer_aus") if args.generate else None, "cut": res["answer"]["truncated_rate"],
                "secs": secs, "peak": peak})
            for b in (res.get("baselines") or {}).values():
                rows.setdefault(b["title"], []).append({"uf1": b["uf1"], "uar": b["uar"], "acc": b["acc"]})
            if i == 0 and args.probe:
                probes.append(expert_probe(run, data))
    print(f"\nsynthetic CASME II format (profile {args.profile}{', identities ' + args.identities if args.identities else ''}, "
          f"synth seed {args.data_seed}): {args.clips} clips, {args.subjects} subjects, "
          f"5 classes; tiny config, {args.epochs} epochs per fold fixed in advance; LOSO ({args.subjects} folds), "
          f"predictions pooled over folds; seeds {seeds} (mean ± sd over seeds)\n")
    print("| model | UF1 | UAR | Acc (head) | Acc (LM answer) | AU F1 vs planted: head / explanation / LM answer "
          "| answers cut | wall s | peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, rs in rows.items():
        def col(k, rs=rs):
            return _mean_sd([r.get(k) for r in rs])
        au = " / ".join(col(k) for k in ("au_head", "au_expl", "au_answer")) if "au_head" in rs[0] else "–"
        wall = f"{statistics.mean(r['secs'] for r in rs):.0f}" if "secs" in rs[0] else "–"
        peak = f"{max(r['peak'] for r in rs):.0f}" if "peak" in rs[0] else "–"
        print(f"| {name} | {col('uf1')} | {col('uar')} | {col('acc')} | {col('answer_acc')} | {au} | "
              f"{col('cut')} | {wall} | {peak} |")
    if args.set:
        print(f"\nconfig overrides (every DEFT-LLM row): {' '.join(args.set)}")
    if args.extra_data:
        what = [str(d) for d in args.extra_data[:len(args.extra_data) - bool(args.extra_train)]]
        if args.extra_train:
            what.append(f"a synthetic build of the training identities ({args.extra_train} clips, 6 subjects, hard "
                        f"profile, synth seed {args.data_seed + 1})")
        print(f"\nevery fold, DEFT-LLM's and the baselines', also trained on: {'; '.join(what)}")
    print("\nper seed (UF1):")
    for name, rs in rows.items():
        print(f"  {name}: " + ", ".join(_f(r["uf1"]) for r in rs))
    if probes:
        print("\nwhat each expert's summary carries (all experts; mean over folds and seeds): the subject among the "
              "training subjects (5-fold CV) and the held-out subject's emotion (logistic regression probes)\n")
        print("| expert | subject (chance) | held-out emotion accuracy (chance 1/classes) |")
        print("|---|---|---|")
        for name in probes[0]:
            sub = statistics.mean(p[name]["subject"] for p in probes)
            ch = statistics.mean(p[name]["chance"] for p in probes)
            emo = statistics.mean(p[name]["emotion"] for p in probes)
            print(f"| {name} | {sub:.3f} ({ch:.3f}) | {emo:.3f} |")


def expert_probe(run: Path, data: Path) -> dict[str, dict[str, float]]:
    """What each expert's summary carries, fold by fold of a finished LOSO run: the subject (logistic regression,
    5-fold cross-validation over the clips of the fold's training subjects; chance 1 / their number) and the
    emotion of the held-out subject (logistic regression fitted on the training subjects' clips). An expert
    whose summary tells the subject but not a new subject's emotion is an identity shortcut."""
    import numpy as np
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from deft_model.data import DeftCollator, DeftDataset, ShardSet
    from deft_model.runtime import load_run

    out: dict[str, dict[str, list]] = {}
    for fdir in sorted((run / "loso" / "folds").iterdir()):
        model, tok = load_run(fdir)
        info = json.loads((fdir / "run.json").read_text())
        shards = ShardSet(data, model.config)
        rows = [r for r in range(shards.n) if shards.task[r] == "emotion"]
        ds = DeftDataset(shards, rows, tok, with_answer=False)
        coll = DeftCollator(tok.pad_token_id, generation=True)
        batch = coll([ds[i] for i in range(len(ds))])
        with torch.no_grad():
            ex, _ = model.encode_experts(**{k: batch[k] for k in ("pixel_values", "frames", "flow", "region_stats")
                                             if k in batch})
        held = np.array([shards.folds[r] == info["held_out"] for r in rows])
        subj = np.array([shards.folds[r] for r in rows])
        emo = np.array([shards.targets()[r] for r in rows])
        for name, (_, summary) in ex.items():
            x = summary.float().numpy()
            clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
            subject = cross_val_score(clf, x[~held], subj[~held], cv=5).mean()
            emotion = (clf.fit(x[~held], emo[~held]).predict(x[held]) == emo[held]).mean()
            rec = out.setdefault(name, {"subject": [], "emotion": [], "chance": []})
            rec["subject"].append(subject)
            rec["emotion"].append(emotion)
            rec["chance"].append(1 / len(set(subj[~held])))
    return {k: {m: float(np.mean(v)) for m, v in r.items()} for k, r in out.items()}


def throughput(args) -> None:
    tmp = Path(args.tmp)
    data = dataset(tmp, args.clips, args.subjects)
    run = tmp / "throughput"
    cmd = [sys.executable, "-m", "deft_model.cli", "train", "--data", str(data), "--config", "tiny", "--out",
           str(run), "--max-steps", str(args.steps), "--seed", "0"]
    secs, peak, _ = timed(cmd)
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in logs if "step_s" in r][1:]  # the first window carries start-up allocations
    batch = json.loads((run / "config.json").read_text()).get("training", {}).get("batch_size", 8)
    step = sum(r["step_s"] for r in steps) / len(steps)
    data_s = sum(r["data_s"] for r in steps) / len(steps)
    print(f"tiny config, CPU, batch {batch}, {args.steps} steps ({len(steps) * 10} timed)")
    print(f"step (forward+backward+optimiser): {1000 * step:.1f} ms; data loader: {1000 * data_s:.1f} ms "
          f"({100 * data_s / (step + data_s):.1f} % of the step, target < 10 %)")
    print(f"samples per second: {batch / (step + data_s):.1f}")
    print(f"process: {secs:.1f} s wall including start-up, peak RSS {peak:.0f} MiB")


def _dir_bytes(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def _tokens_per_sample(model, tok, data: Path) -> float:
    """Mean prompt + answer tokens of the training rows (what one batch-1 step processes)."""
    from deft_model.data import ShardSet, render_prompt

    shards = ShardSet(data, model.config)
    n = [len(tok(render_prompt(tok, model.config, shards.instruction[r]), add_special_tokens=False).input_ids)
         + len(tok(shards.answer[r], add_special_tokens=False).input_ids) + 1 for r in range(shards.n)]
    return statistics.mean(n)


def reference(args) -> None:
    import torch
    from safetensors.torch import save_file

    import deft_model  # noqa: F401
    from deft_model.runtime import load_run
    from deft_model.testing import reference_bases

    tmp = Path(args.tmp)
    data = dataset(tmp, args.clips, args.subjects)
    bases = tmp / "reference_bases"
    t = time.perf_counter()
    if not (bases / "llm" / "config.json").exists():
        reference_bases(bases, full=True)
    print(f"random-weight reference-shaped bases written in {time.perf_counter() - t:.0f} s: "
          f"LLM {_dir_bytes(bases / 'llm') / 2**20:.0f} MiB (bf16), vision {_dir_bytes(bases / 'vision') / 2**20:.0f} MiB")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU on this machine"
    print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; {gpu}; torch "
          f"{torch.__version__}\n")
    print("| base dtype | s per step (batch 1, fwd+bwd+AdamW; the first step included) | tokens in those steps "
          "| peak RSS MiB | peak GPU MiB | trainable parameters |")
    print("|---|---|---|---|---|---|")
    runs = {}
    for dtype in ("float32", "bfloat16"):
        run = tmp / f"reference-{dtype}"
        cfg = tmp / f"reference-{dtype}.json"
        cfg.write_text(json.dumps({"preset": "reference", "llm": str(bases / "llm"), "vision": str(bases / "vision"),
                                   "base_dtype": dtype, "training": {"batch_size": 1, "log_every": 1,
                                                                     "num_threads": os.cpu_count()}}))
        if not (run / "config.json").exists():
            cmd = [sys.executable, "-m", "deft_model.cli", "train", "--data", str(data), "--config", str(cfg), "--out",
                   str(run), "--max-steps", str(args.steps), "--seed", "0"]
            _, peak, _ = timed(cmd)
            (run / "peak_rss_mib.txt").write_text(f"{peak:.0f}\n")
        peak = float((run / "peak_rss_mib.txt").read_text())
        logs = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
        steps = [r for r in logs if "step_s" in r]
        model, tok = load_run(run)
        n_train = sum(p.numel() for p in model.trainable_parameters())
        runs[dtype] = (run, model)
        secs = ", ".join(f"{r['step_s']:.1f}" for r in steps)
        tokens = ", ".join(str(r.get("tokens", "?")) for r in steps)
        gpu_peak = max((r["gpu_peak_mib"] for r in steps if "gpu_peak_mib" in r), default=None)
        print(f"| {dtype} | {secs} | {tokens} (data mean {_tokens_per_sample(model, tok, data):.0f}) "
              f"| {peak:.0f} | {'–' if gpu_peak is None else gpu_peak} | {n_train / 1e6:.1f} M |", flush=True)
    run, model = runs["bfloat16"]
    saved = _dir_bytes(run / "adapter") + (run / "model.safetensors").stat().st_size
    full = tmp / "full_checkpoint.safetensors"
    state, seen = {}, set()
    for k, v in model.state_dict().items():  # what saving everything would write (tied weights once)
        if (v.data_ptr(), v.shape) not in seen:
            seen.add((v.data_ptr(), v.shape))
            state[k] = v.contiguous()
    save_file(state, str(full))
    ck = sorted((run / "checkpoints").glob("step-*"))
    ck_bytes = _dir_bytes(ck[-1]) if ck else None
    print(f"\nsaved model (bf16 base): adapters {_dir_bytes(run / 'adapter') / 2**20:.1f} MiB + experts, projectors, "
          f"heads {(run / 'model.safetensors').stat().st_size / 2**20:.1f} MiB = {saved / 2**20:.1f} MiB; "
          f"a full checkpoint of the same model: {full.stat().st_size / 2**20:.0f} MiB "
          f"({full.stat().st_size / saved:.0f}x)")
    if ck_bytes:
        print(f"training checkpoint (stored weights + AdamW state + RNG): {ck_bytes / 2**20:.1f} MiB")
    full.unlink()
    del torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["loso", "throughput", "reference"])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--profile", default="default", help="unimer synth --profile (default | hard)")
    ap.add_argument("--identities", default=None, help="unimer synth --identities (hard profile: train | heldout | ...)")
    ap.add_argument("--data-seed", type=int, default=0, help="unimer synth --seed")
    ap.add_argument("--set", action="append", default=[], help="deft evaluate --set KEY=JSON for every DEFT-LLM "
                    "variant (repeatable; for choices made on training identities)")
    ap.add_argument("--extra-data", action="append", default=[], help="deft evaluate --extra-data: a build every fold "
                    "and both baselines also train on (repeatable; e.g. the training identities' build)")
    ap.add_argument("--extra-train", type=int, default=0, metavar="CLIPS", help="synthesize and build CLIPS clips "
                    "of the training identities (hard profile, 6 subjects, synth seed --data-seed + 1) and add the "
                    "build as --extra-data")
    ap.add_argument("--probe", action="store_true", help="probe what each expert's summary carries (subject, emotion)")
    ap.add_argument("--no-generate", dest="generate", action="store_false",
                    help="skip the LM's answers (head and baselines only: a quicker sweep)")
    ap.add_argument("--steps", type=int, default=None, help="training steps (throughput: 60, reference: 2)")
    ap.add_argument("--tmp", default=None, help="work folder (kept, reused); default: a temporary one")
    args = ap.parse_args()
    args.steps = args.steps or {"throughput": 60, "reference": 2}.get(args.what)
    with tempfile.TemporaryDirectory() as d:
        args.tmp = args.tmp or d
        {"loso": loso, "throughput": throughput, "reference": reference}[args.what](args)


if __name__ == "__main__":
    main()
