"""Evaluation protocols: leave-one-subject-out and composite 3-class (MEGC2019).

UF1 and UAR are computed on predictions pooled over all folds (the field's definition): for each class
c present in the ground truth, F1_c = 2TP/(2TP+FP+FN) and recall_c = TP/N_c; UF1 and UAR are their
unweighted means. Predictions are per clip: the head's probabilities averaged over the clip's task
rows; the answer-based prediction parses the greedy answer of the clip's ``emotion`` row (falling back
to its ``explain`` row). Folds train for a fixed number of epochs; nothing is selected on the held-out
subject.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

NONE_LABEL = "<none>"
PROTOCOLS = ("loso", "composite")


# --- metrics --------------------------------------------------------------------------------------

def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str | None],
                           classes: Sequence[str] | None = None) -> dict:
    """UF1, UAR and accuracy over ``classes`` (default: the classes present in ``y_true``).

    A missing prediction (None) is wrong: a false negative for the true class, a false positive for
    no class."""
    y_pred = [NONE_LABEL if p is None else p for p in y_pred]
    if len(y_true) != len(y_pred):
        raise ValueError("y_true and y_pred differ in length")
    n = len(y_true)
    if n == 0:
        return {"n": 0, "uf1": None, "uar": None, "acc": None, "per_class": {}}
    classes = list(classes) if classes is not None else sorted(set(y_true))
    per = {}
    f1s, recalls = [], []
    for c in classes:
        tp = sum(1 for t, p in zip(y_true, y_pred, strict=False) if t == c and p == c)
        fp = sum(1 for t, p in zip(y_true, y_pred, strict=False) if t != c and p == c)
        fn = sum(1 for t, p in zip(y_true, y_pred, strict=False) if t == c and p != c)
        nc = tp + fn
        denom = 2 * tp + fp + fn
        f1 = 2 * tp / denom if denom else 0.0
        rec = tp / nc if nc else 0.0
        per[c] = {"tp": tp, "fp": fp, "fn": fn, "n": nc, "f1": f1, "recall": rec}
        if nc:  # classes absent from the ground truth would only add zeros
            f1s.append(f1)
            recalls.append(rec)
    acc = sum(1 for t, p in zip(y_true, y_pred, strict=False) if t == p) / n
    return {"n": n, "uf1": float(np.mean(f1s)) if f1s else None, "uar": float(np.mean(recalls)) if recalls else None,
            "acc": acc, "per_class": per}


def au_metrics(true_sets: Sequence[Sequence[int]], pred_sets: Sequence[Sequence[int]], au_list: Sequence[int]) -> dict:
    """Per-AU F1 (macro over AUs present in the ground truth) and micro F1 over all AU decisions."""
    per, f1s = {}, []
    TP = FP = FN = 0
    for a in au_list:
        tp = sum(1 for t, p in zip(true_sets, pred_sets, strict=False) if a in t and a in p)
        fp = sum(1 for t, p in zip(true_sets, pred_sets, strict=False) if a not in t and a in p)
        fn = sum(1 for t, p in zip(true_sets, pred_sets, strict=False) if a in t and a not in p)
        TP, FP, FN = TP + tp, FP + fp, FN + fn
        if tp + fn:
            f1 = 2 * tp / (2 * tp + fp + fn)
            per[f"AU{a}"] = {"f1": f1, "n": tp + fn}
            f1s.append(f1)
    micro = 2 * TP / (2 * TP + FP + FN) if (2 * TP + FP + FN) else None
    return {"macro_f1": float(np.mean(f1s)) if f1s else None, "micro_f1": micro, "per_au": per}


# --- per-clip predictions -----------------------------------------------------------------------

def clip_predictions(shards, rows: Sequence[int], preds: list[dict], cfg, protocol: str) -> list[dict]:
    """Pool row predictions per clip; map labels to the protocol's class set."""
    from unimer_builder import labels as L
    from unimer_builder.render import parse_answer

    targets = shards.targets()
    by_clip: dict[str, list[dict]] = {}
    for p in preds:
        by_clip.setdefault(shards.clip_ids[p["row"]], []).append(p)
    out = []
    for clip, ps in by_clip.items():
        r0 = ps[0]["row"]
        db = shards.database[r0]
        probs = np.mean([p["emotion_probs"] for p in ps], 0)
        aup = np.mean([p["au_probs"] for p in ps], 0)
        head = cfg.emotion_labels[int(np.argmax(probs))]
        texts = {shards.task[p["row"]]: p["generated"] for p in ps if p.get("generated") is not None}
        parsed = {task: parse_answer(text) for task, text in texts.items()}
        gen_text, gen = None, None
        for task in ("emotion", "explain"):
            if task in parsed:
                gen_text, gen = texts[task], parsed[task]["emotion"]
                if gen is not None:
                    break
        # A generated AU answer "parses" when it names AU codes (or, like its reference, says none).
        au_task = "au" if "au" in parsed else ("explain" if "explain" in parsed else None)
        gen_aus = parsed[au_task]["aus"] if au_task else None
        au_parsed = None if au_task is None else bool(gen_aus) or not shards.aus[r0]
        truth = targets[r0]
        if protocol == "composite":
            truth = shards.emotion_composite[r0]
            if cfg.emotion_target != "composite":
                head = L.composite(db, head)
                gen = L.composite(db, gen) if gen else None
            elif gen is not None and gen not in L.COMPOSITE:
                gen = L.composite(db, gen)
        elif gen is not None and cfg.emotion_target == "class":
            gen = L.database_class(db, gen)
        out.append({
            "clip_id": clip, "database": db, "subject": shards.subject[r0], "fold": shards.folds[r0],
            "label": truth, "head": head, "answer": gen, "generated": gen_text,
            "answer_aus": gen_aus, "answer_aus_parsed": au_parsed, "generated_by_task": texts,
            "emotion_probs": {c: round(float(x), 4) for c, x in zip(cfg.emotion_labels, probs, strict=False)},
            "aus_true": sorted(set(shards.aus[r0])),
            "aus_pred": [int(a) for a, x in zip(cfg.au_list, aup, strict=False) if x > 0.5],
        })
    return out


def summarise(clips: list[dict], au_list: Sequence[int], protocol: str) -> dict:
    from unimer_builder import labels as L

    def block(cs):
        y = [c["label"] for c in cs]
        classes = list(L.COMPOSITE) if protocol == "composite" else None
        head = classification_metrics(y, [c["head"] for c in cs], classes)
        gen_cs = [c for c in cs if c["generated"] is not None]
        ans = classification_metrics([c["label"] for c in gen_cs], [c["answer"] for c in gen_cs], classes)
        ans["parsed_rate"] = (sum(1 for c in gen_cs if c["answer"] is not None) / len(gen_cs)) if gen_cs else None
        au_cs = [c for c in cs if c.get("answer_aus_parsed") is not None]
        ans["au_parsed_rate"] = (sum(c["answer_aus_parsed"] for c in au_cs) / len(au_cs)) if au_cs else None
        both = [c for c in gen_cs if c.get("answer_aus_parsed") is not None]
        ans["both_parsed_rate"] = (sum(c["answer"] is not None and c["answer_aus_parsed"] for c in both) / len(both)
                                   if both else None)
        ans["au"] = au_metrics([c["aus_true"] for c in au_cs], [c["answer_aus"] for c in au_cs], au_list)
        au = au_metrics([c["aus_true"] for c in cs], [c["aus_pred"] for c in cs], au_list)
        return {"n_clips": len(cs), "head": head, "answer": ans, "au": au}

    res = block(clips)
    res["per_database"] = {db: block([c for c in clips if c["database"] == db])
                           for db in sorted({c["database"] for c in clips})}
    return res


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown_table(res: dict, title: str) -> str:
    lines = [f"### {title}", "",
             "| scope | clips | UF1 (head) | UAR (head) | Acc (head) | UF1 (answer) | UAR (answer) | Acc (answer) "
             "| AU F1 (head) | AU F1 (answer) | answers parsed (emotion / AUs) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [("all (pooled)", res)] + list(res.get("per_database", {}).items())
    for name, b in rows:
        lines.append(f"| {name} | {b['n_clips']} | {_fmt(b['head']['uf1'])} | {_fmt(b['head']['uar'])} | "
                     f"{_fmt(b['head']['acc'])} | {_fmt(b['answer']['uf1'])} | {_fmt(b['answer']['uar'])} | "
                     f"{_fmt(b['answer']['acc'])} | {_fmt(b['au']['macro_f1'])} | "
                     f"{_fmt(b['answer'].get('au', {}).get('macro_f1'))} | "
                     f"{_fmt(b['answer'].get('parsed_rate'))} / {_fmt(b['answer'].get('au_parsed_rate'))} |")
    return "\n".join(lines) + "\n"


# --- protocols ----------------------------------------------------------------------------------

def _safe(key: str) -> str:
    return key.replace("/", "__").replace(" ", "_")


def predict_fold(model_path: Path, shards, held_rows: Sequence[int], protocol: str, generate: bool = True,
                 batch_size: int = 16) -> list[dict]:
    from .data import DeftDataset
    from .predict import load_run, predict_dataset

    model, tok = load_run(model_path)
    cfg = model.config
    saved = shards.config
    shards.config = cfg
    try:
        ds = DeftDataset(shards, held_rows, tok, with_answer=False)
        gen_rows = None
        if generate:
            gen_rows = {r for r in held_rows if shards.task[r] in ("emotion", "au", "explain")}
            # one row per clip and task is enough
            seen, keep = set(), set()
            for r in sorted(gen_rows):
                k = (shards.clip_ids[r], shards.task[r])
                if k not in seen:
                    seen.add(k)
                    keep.add(r)
            gen_rows = keep
        preds = predict_dataset(model, tok, ds, gen_rows, batch_size=batch_size)
        return clip_predictions(shards, held_rows, preds, cfg, protocol)
    finally:
        shards.config = saved


_NOT_COMPARED = ("model_type", "transformers_version")
_FILLED_AT_TRAIN = ("emotion_labels", "placeholder_ids")  # compared only when the request sets them


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def _fold_mismatch(fdir: Path, data, cfg, epochs: int, seed: int) -> str | None:
    """Why the fold folder ``fdir`` (finished or partial) does not hold the requested training; None if it
    does or holds nothing yet."""
    if not (fdir / "run.json").exists():
        if fdir.exists() and any(fdir.iterdir()):
            return "its folder holds no run.json"
        return None
    info = json.loads((fdir / "run.json").read_text())
    diffs = []
    if info.get("epochs") != epochs:
        diffs.append(f"epochs {info.get('epochs')} != {epochs}")
    if info.get("seed") != seed:
        diffs.append(f"seed {info.get('seed')} != {seed}")
    if info.get("max_steps") is not None:
        diffs.append(f"it stopped at max_steps {info['max_steps']}")
    if info.get("data") != str(Path(data).resolve()):
        diffs.append(f"data {info.get('data')} != {Path(data).resolve()}")
    old, new = _jsonable(info.get("config", {})), _jsonable(cfg.to_dict())
    for k in sorted(set(old) | set(new)):
        if k in _NOT_COMPARED or (k in _FILLED_AT_TRAIN and not new.get(k)):
            continue
        if old.get(k) != new.get(k):
            diffs.append(f"config {k} {old.get(k)!r} != {new.get(k)!r}" if k == "experts" else f"config {k} differs")
    return "; ".join(diffs) or None


def evaluate_run(run: str | Path, protocol: str = "loso", data: str | Path | None = None, config="tiny",
                 epochs: int | None = None, seed: int = 0, generate: bool = True, max_folds: int | None = None,
                 folds: Sequence[str] | None = None, overrides: dict | None = None, verbose: bool = True) -> dict:
    """Evaluate ``run``.

    * ``run/model`` exists (a ``deft train --fold`` run): evaluate that model on its held-out subject.
    * otherwise: leave-one-subject-out over ``data``: train (or reuse) one model per subject under
      ``run/<protocol>/folds/<db>__<subject>/`` and pool every fold's held-out predictions.
    Writes ``run/<protocol>_results.json``, ``.md`` and ``_predictions.jsonl``.
    """
    from .configuration import load_config
    from .data import ShardSet
    from .train import train

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    run = Path(run)
    say = print if verbose else (lambda *a, **k: None)
    single = (run / "model" / "config.json").exists()
    used: list[dict] = []  # run.json of every evaluated model
    reused: list[str] = []  # LOSO folds whose existing model matched the request
    if single:
        info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
        if not info.get("fold"):
            raise ValueError(f"{run} was trained on every subject (no --fold): nothing is held out to evaluate")
        from .predict import load_run

        model, _ = load_run(run)
        cfg = model.config
        used.append({"epochs": info.get("epochs"), "seed": info.get("seed"), "config": {"experts": list(cfg.experts)}})
        shards = ShardSet(data or info["data"], cfg)
        _, held = shards.split(info["fold"])
        if protocol == "composite":
            held = [r for r in held if shards.emotion_composite[r] is not None]
        clips = predict_fold(run, shards, held, protocol, generate)
        fold_keys = [info["fold"]]
        out_dir = run
    else:
        if data is None:
            raise ValueError("LOSO evaluation trains one model per subject: pass --data DIR")
        extra = dict(overrides or {})
        if protocol == "composite":
            extra["emotion_target"] = "composite"
        cfg = load_config(config, **extra)
        shards = ShardSet(data, cfg)
        fold_keys = list(folds) if folds else shards.subjects()
        if protocol == "composite":
            comp = {shards.folds[r] for r in range(shards.n) if shards.emotion_composite[r] is not None}
            fold_keys = [k for k in fold_keys if k in comp]
        if max_folds:
            fold_keys = fold_keys[:max_folds]
        if not fold_keys:
            raise ValueError(f"no subjects to evaluate in {data} under protocol {protocol!r}")
        out_dir = run / protocol
        want_epochs = int(epochs if epochs is not None else cfg.training["epochs"])
        clips = []
        for i, key in enumerate(fold_keys):
            fdir = out_dir / "folds" / _safe(key)
            _, held = shards.split(key)
            fold_cfg = load_config(config, **extra)
            why = _fold_mismatch(fdir, data, fold_cfg, want_epochs, seed)
            if why:
                say(f"[{protocol}] fold {key}: {why}; retraining it")
                shutil.rmtree(fdir)
            elif (fdir / "model" / "config.json").exists():
                reused.append(key)
            if not (fdir / "model" / "config.json").exists():
                train(data, fold_cfg, fdir, fold=key, epochs=want_epochs, seed=seed,
                      resume=(fdir / "run.json").exists(), shards=shards, verbose=False)
            info = json.loads((fdir / "run.json").read_text())
            assert key not in info["train_subjects"], f"fold {key} leaked into its own training set"
            used.append(info)
            fc = predict_fold(fdir, shards, held, protocol, generate)
            clips += fc
            ok = sum(c["head"] == c["label"] for c in fc)
            say(f"[{protocol}] fold {i + 1}/{len(fold_keys)} {key}: {ok}/{len(fc)} clips right (head)")
    res = summarise(clips, cfg.au_list, protocol)
    # what the fold models were actually trained with (from their run.json), not what was asked for
    ep = sorted({u.get("epochs") for u in used}, key=str)
    sd = sorted({u.get("seed") for u in used}, key=str)
    ex = sorted({tuple(u.get("config", {}).get("experts") or ()) for u in used})
    res.update({"protocol": protocol, "folds": fold_keys, "n_folds": len(fold_keys),
                "partial": bool(max_folds) and not single,
                "epochs": ep[0] if len(ep) == 1 else ep, "seed": sd[0] if len(sd) == 1 else sd,
                "emotion_labels": list(cfg.emotion_labels or (used[0].get("config", {}).get("emotion_labels") or [])
                                       if used else cfg.emotion_labels),
                "experts": list(ex[0]) if len(ex) == 1 else [list(e) for e in ex],
                "reused_folds": reused})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{protocol}_results.json").write_text(json.dumps(res, indent=1, default=float))
    (out_dir / f"{protocol}_results.md").write_text(markdown_table(res, f"DEFT-LLM, {protocol} protocol "
                                                                       f"({len(fold_keys)} fold(s), experts: {', '.join(cfg.experts)})"))
    with open(out_dir / f"{protocol}_predictions.jsonl", "w") as f:
        for c in clips:
            f.write(json.dumps(c, default=float) + "\n")
    res["results_dir"] = str(out_dir)
    return res
