"""Evaluation protocols: leave-one-subject-out and composite 3-class (MEGC2019).

UF1 and UAR are computed on predictions pooled over all folds (the field's definition): for each class
c present in the ground truth, F1_c = 2TP/(2TP+FP+FN) and recall_c = TP/N_c; UF1 and UAR are their
unweighted means; each fold's own scores are reported beside them, for information only. Predictions
are per clip: the head's probabilities averaged over the clip's task rows; the explanation is the one
``deft predict`` gives (the heads over the measured motion, in the builder's templates); the answer-based
prediction parses the greedy answer of the clip's ``emotion`` row (falling back to its ``explain`` row).
Folds train for a fixed number of epochs; nothing is selected on the held-out subject. ``baselines=True``
scores ``deft_model.baselines`` on the same folds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from unimer_builder import COMPOSITE, composite, database_class, parse_answer

from .configuration import load_config
from .data import DeftDataset, ShardSet, data_identity
from .errors import RunError
from .modeling import as_requested_now
from .predict import build_config_of, explain, head_outputs, predict_dataset
from .runtime import finished, load_run, stopped_early

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
            "acc": acc, "per_class": per, "n_classes": len(f1s)}  # n_classes: those the ground truth holds


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
    """Pool row predictions per clip; map labels to the protocol's class set.

    ``head``/``aus_pred`` are the heads (averaged over the clip's rows, as ``deft predict`` does);
    ``explanation`` is the explanation ``deft predict`` gives for them (heads over the measured motion,
    in the builder's templates); ``answer``/``answer_aus`` are parsed from the LM's own answers."""
    bc, _ = build_config_of(cfg)
    targets = shards.targets()
    # the AUs scored are those the AU head learns (``au_target``: the labels by default), not always the motion's
    # supported ones: a labelled AU the flow did not support was never counted as missed (AU F1 0.447 vs 0.406)
    au_truth = shards.au_targets()
    by_motion = shards.au_targets_from_motion()
    by_clip: dict[str, list[dict]] = {}
    for p in preds:
        by_clip.setdefault(shards.clip_ids[p["row"]], []).append(p)
    out = []
    for clip, ps in by_clip.items():
        r0 = ps[0]["row"]
        db = shards.database[r0]
        heads = head_outputs(ps, cfg)
        head = heads["emotion"]
        gens = {shards.task[p["row"]]: p["generation"] for p in ps if p.get("generation") is not None}
        texts = {task: g["text"] for task, g in gens.items()}
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
        au_parsed = None if au_task is None else bool(gen_aus) or not au_truth[r0]
        stats = shards.explanation_regions(r0)
        reasoning = explain(heads, stats, shards.noise_floor[r0], cfg, bc, shards.measured_aus(r0),
                            shards.built(r0))["reasoning"]
        said = parse_answer(reasoning) if reasoning else {"emotion": None, "aus": None}
        truth = targets[r0]
        if protocol == "composite":
            truth = shards.emotion_composite[r0]
            if cfg.emotion_target != "composite":
                head = composite(db, head)
                gen = composite(db, gen) if gen else None
            elif gen is not None and gen not in COMPOSITE:
                gen = composite(db, gen)
        elif gen is not None and cfg.emotion_target == "class":
            gen = database_class(db, gen)
        out.append({
            "clip_id": clip, "database": db, "subject": shards.subject[r0], "fold": shards.folds[r0],
            "label": truth, "head": head, "answer": gen, "generated": gen_text,
            "answer_aus": gen_aus, "answer_aus_parsed": au_parsed, "generated_by_task": texts,
            "truncated_tasks": sorted(t for t, g in gens.items() if g["truncated"]),
            "emotion_probs": heads["emotion_probs"],
            "aus_true": sorted(set(au_truth[r0])), "aus_true_from_motion": bool(by_motion[r0]),
            "aus_supported": sorted(set(shards.aus[r0])),
            "aus_pred": heads["aus"],
            "explanation": reasoning, "explanation_emotion": said["emotion"], "explanation_aus": said["aus"],
            "explanation_agrees": (said["emotion"] == heads["emotion"] and said["aus"] == sorted(heads["aus"])
                                   if reasoning else None),
        })
    return out


def summarise(clips: list[dict], au_list: Sequence[int], protocol: str) -> dict:
    """Scores of clips pooled over every fold they come from (the field's definition: one confusion
    matrix over all held-out predictions), with each fold's own scores beside them for information."""

    def block(cs):
        # a clip without a label in the target class set (a blank emotion, CASME II's fear under its class set) is
        # scored for its AUs only: it crashed the pooled confusion after every fold had trained
        labelled = [c for c in cs if c["label"] is not None]
        classes = list(COMPOSITE) if protocol == "composite" else None
        head = classification_metrics([c["label"] for c in labelled], [c["head"] for c in labelled], classes)
        head["n_unlabelled"] = len(cs) - len(labelled)
        gen_cs = [c for c in labelled if c["generated"] is not None]
        ans = classification_metrics([c["label"] for c in gen_cs], [c["answer"] for c in gen_cs], classes)
        ans["parsed_rate"] = (sum(1 for c in gen_cs if c["answer"] is not None) / len(gen_cs)) if gen_cs else None
        au_cs = [c for c in cs if c.get("answer_aus_parsed") is not None]
        ans["au_parsed_rate"] = (sum(c["answer_aus_parsed"] for c in au_cs) / len(au_cs)) if au_cs else None
        both = [c for c in gen_cs if c.get("answer_aus_parsed") is not None]
        ans["both_parsed_rate"] = (sum(c["answer"] is not None and c["answer_aus_parsed"] for c in both) / len(both)
                                   if both else None)
        ans["au"] = au_metrics([c["aus_true"] for c in au_cs], [c["answer_aus"] for c in au_cs], au_list)
        tr = [c for c in cs if c.get("generated_by_task")]
        ans["truncated_rate"] = (sum(bool(c.get("truncated_tasks")) for c in tr) / len(tr)) if tr else None
        au = au_metrics([c["aus_true"] for c in cs], [c["aus_pred"] for c in cs], au_list)
        ex_cs = [c for c in cs if c.get("explanation")]
        expl = {"n_clips": len(ex_cs),
                "au": au_metrics([c["aus_true"] for c in ex_cs], [c["explanation_aus"] for c in ex_cs], au_list),
                "agrees_with_heads_rate": (sum(bool(c["explanation_agrees"]) for c in ex_cs) / len(ex_cs)
                                           if ex_cs else None)}
        au["n_from_motion"] = sum(bool(c.get("aus_true_from_motion")) for c in cs)
        return {"n_clips": len(cs), "head": head, "answer": ans, "au": au, "explanation": expl}

    res = block(clips)
    res["per_database"] = {db: block([c for c in clips if c["database"] == db])
                           for db in sorted({c["database"] for c in clips})}
    res["per_fold"] = per_fold_scores(clips, protocol)
    return res


def per_fold_scores(clips: list[dict], protocol: str) -> dict:
    """Each fold's own head UF1/UAR (over the classes its subject shows) and their mean: for information
    only. The headline figures are pooled, never this mean."""
    classes = list(COMPOSITE) if protocol == "composite" else None
    folds = {}
    for key in sorted({c["fold"] for c in clips}):
        cs = [c for c in clips if c["fold"] == key]
        lab = [c for c in cs if c["label"] is not None]
        m = classification_metrics([c["label"] for c in lab], [c["head"] for c in lab], classes)
        folds[key] = {"n_clips": len(cs), "uf1": m["uf1"], "uar": m["uar"], "acc": m["acc"]}
    vals = [f["uf1"] for f in folds.values() if f["uf1"] is not None]
    return {"folds": folds, "mean_uf1_not_pooled": float(np.mean(vals)) if vals else None}


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def markdown_table(res: dict, title: str) -> str:
    lines = [f"### {title}", "",
             "| scope | clips | UF1 (head) | UAR (head) | Acc (head) | UF1 (answer) | UAR (answer) | Acc (answer) "
             "| AU F1 (head) | AU F1 (explanation) | AU F1 (answer) | answers parsed (emotion / AUs) | answers cut |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    rows = [("all (pooled)", res)] + list(res.get("per_database", {}).items())
    for name, b in rows:
        lines.append(f"| {name} | {b['n_clips']} | {_fmt(b['head']['uf1'])} | {_fmt(b['head']['uar'])} | "
                     f"{_fmt(b['head']['acc'])} | {_fmt(b['answer']['uf1'])} | {_fmt(b['answer']['uar'])} | "
                     f"{_fmt(b['answer']['acc'])} | {_fmt(b['au']['macro_f1'])} | "
                     f"{_fmt(b.get('explanation', {}).get('au', {}).get('macro_f1'))} | "
                     f"{_fmt(b['answer'].get('au', {}).get('macro_f1'))} | "
                     f"{_fmt(b['answer'].get('parsed_rate'))} / {_fmt(b['answer'].get('au_parsed_rate'))} | "
                     f"{_fmt(b['answer'].get('truncated_rate'))} |")
    # AU F1 against AUs the builder inferred from motion measures agreement with the builder, not with a coder
    inferred = [(name, b["au"]["n_from_motion"], b["n_clips"]) for name, b in rows if b["au"].get("n_from_motion")]
    if inferred:
        lines += ["", "**AU targets from motion**: " + "; ".join(f"in {name}, {k} of {n} clips" for name, k, n in inferred)
                  + " are scored against AUs the builder's motion check gives (SMIC's, inferred from motion: it labels "
                    "no AUs; with `au_target` \"supported\", the labelled AUs the motion supports), not against a "
                    "coder's labels alone."]
    # UF1 and UAR over one class are 1.000 for a model that always answers it: a scope whose labelled clips are all of
    # one class is said to be so (a dataset built again with one class scored "1.000" over it, unflagged)
    one = [(name, next(c for c, v in b["head"]["per_class"].items() if v["n"])) for name, b in rows
           if b["head"].get("n_classes") == 1]
    if one:
        lines += ["", "**One class only**: " + "; ".join(f"in {name} every labelled clip is {c}" for name, c in one)
                  + ". UF1 and UAR there are over that class alone (always answering it scores 1.000): no measure of "
                    "telling classes apart."]
    lines += ["", "AU F1 is scored against each clip's AU target, what the AU head learns (`au_target`: the labelled AUs "
                  "by default, or those the motion supports). Answers cut: the share of generated answers that reached "
                  "their token budget (their emotion or AUs may be missing); – where answers were not generated."]
    # what a figure is worth: the classes scored, and what guessing scores on them
    per_class = res.get("head", {}).get("per_class") or {}
    listed = list(per_class or res.get("emotion_labels") or [])
    # UF1 and UAR average over the classes the labelled clips hold (a class of the set without one adds nothing)
    classes = [c for c in listed if not per_class or per_class[c]["n"]]
    absent = [c for c in listed if c not in classes]
    if len(classes) > 1:
        lines += ["", f"Classes scored ({len(classes)}): {', '.join(classes)}; guessing one of these uniformly at random "
                      f"has an expected UAR of {1 / len(classes):.2f}, whatever the class balance."
                      + (f" No labelled clip is {' or '.join(absent)}: {'it is' if len(absent) == 1 else 'they are'} "
                         f"not scored." if absent else "")]
    if res.get("partial"):
        lines += ["", f"**Partial**: {res.get('n_folds')} held-out subject(s) only (`--max-folds`), not a full "
                      f"{res.get('protocol', '')} figure."]
    if res.get("max_steps"):
        lines += ["", f"**Stopped early**: the model was trained for {res['max_steps']} step(s) (`--max-steps`), "
                      f"short of its {res.get('epochs')} epochs."]
    per = res.get("head", {}).get("per_class") or {}
    if per:  # which classes the pooled figures come from (the JSON holds the same counts)
        lines += ["", "| class (emotion head, pooled) | clips | recall | F1 |", "|---|---|---|---|"]
        lines += [f"| {c} | {v['n']} | {_fmt(v['recall'] if v['n'] else None)} | {_fmt(v['f1'])} |"
                  for c, v in per.items()]
    pf = res.get("per_fold")
    if pf:
        lines += ["", "Per-fold head UF1 (for information; the figures above pool all folds' predictions): "
                      + ", ".join(f"{k} {_fmt(v['uf1'])}" for k, v in pf["folds"].items())
                      + f"; their mean {_fmt(pf['mean_uf1_not_pooled'])}."]
    base = res.get("baselines")
    if base:
        lines += ["", "| same folds | clips | UF1 | UAR | Acc |", "|---|---|---|---|---|",
                  f"| DEFT-LLM (emotion head, experts: {', '.join(res.get('experts') or [])}) | {res['head'].get('n')} | "
                  f"{_fmt(res['head']['uf1'])} | {_fmt(res['head']['uar'])} | {_fmt(res['head']['acc'])} |"]
        for b in base.values():
            lines.append(f"| {b['title']} | {b.get('n_clips')} | {_fmt(b['uf1'])} | {_fmt(b['uar'])} | {_fmt(b['acc'])} |")
        if any(b.get("n_clips") != res["head"].get("n") for b in base.values()):
            lines += ["", "The baselines scored other clips than DEFT-LLM (see `clips`): the rows do not compare."]
    if res.get("baselines_error"):
        lines += ["", f"The baselines could not be scored: {res['baselines_error']}"]
    return "\n".join(lines) + "\n"


# --- protocols ----------------------------------------------------------------------------------

def _safe(key: str) -> str:
    return key.replace("/", "__").replace(" ", "_")


def fold_dirs(keys) -> dict[str, str]:
    """Each subject's fold folder name: its key made path-safe, and where two keys make the same name (subjects
    ``p 1`` and ``p_1``) each of those with its key's hash, so that no fold finds another's model as its own."""
    keys = sorted(set(keys))
    names = {k: _safe(k) for k in keys}
    folded = [n.casefold() for n in names.values()]  # one folder on a case-insensitive disk (macOS, Windows)
    clash = {n for n in names.values() if folded.count(n.casefold()) > 1}
    return {k: f"{n}-{hashlib.sha1(k.encode()).hexdigest()[:8]}" if n in clash else n for k, n in names.items()}


def predict_fold(model_path: Path, shards, held_rows: Sequence[int], protocol: str, generate: bool = True,
                 batch_size: int = 16) -> list[dict]:
    """The clips of ``held_rows`` predicted by the model of ``model_path`` (heads, explanations, answers)."""
    model, tok = load_run(model_path)
    cfg = model.config
    saved = shards.config
    shards.config = cfg
    try:
        ds = DeftDataset(shards, held_rows, tok, with_answer=False)
        gen_rows = None
        if generate:
            # one row per clip and task is enough
            seen, gen_rows = set(), set()
            for r in sorted(held_rows):
                k = (shards.clip_ids[r], shards.task[r])
                if shards.task[r] in ("emotion", "au", "explain") and k not in seen:
                    seen.add(k)
                    gen_rows.add(r)
        preds = predict_dataset(model, tok, ds, gen_rows, batch_size=batch_size)
        return clip_predictions(shards, held_rows, preds, cfg, protocol)
    finally:
        shards.config = saved


_NOT_COMPARED = ("model_type", "transformers_version")
_FILLED_AT_TRAIN = ("emotion_labels", "placeholder_ids")  # compared only when the request sets them


def _jsonable(x):
    return json.loads(json.dumps(x, default=str))


def _fold_mismatch(fdir: Path, data, cfg, epochs: int, seed: int, extra_data: Sequence = (), key: str | None = None
                   ) -> str | None:
    """Why the fold folder ``fdir`` (finished or partial) does not hold the requested training; None if it
    does or holds nothing yet. Configs are compared as requested (run.json's ``request``), not as
    training filled them in."""
    if not (fdir / "run.json").exists():
        if fdir.exists() and any(fdir.iterdir()):
            return "its folder holds no run.json"
        return None
    info = json.loads((fdir / "run.json").read_text())
    diffs = []
    if key is not None and info.get("fold") not in (None, key):  # a folder another fold's model took (renamed since)
        diffs.append(f"it holds fold {info.get('fold')!r}")
    if info.get("epochs") != epochs:
        diffs.append(f"epochs {info.get('epochs')} != {epochs}")
    if info.get("seed") != seed:
        diffs.append(f"seed {info.get('seed')} != {seed}")
    if (stopped_early(info) if finished(fdir) else info.get("max_steps")) is not None:
        diffs.append(f"it stopped at max_steps {info['max_steps']}")
    if info.get("data") != str(Path(data).resolve()):
        diffs.append(f"data {info.get('data')} != {Path(data).resolve()}")
    elif info.get("data_identity") and info["data_identity"] != data_identity(data):
        diffs.append(f"the shards in {Path(data).resolve()} are not the ones it was trained on (built again since)")
    extra = [str(Path(d).resolve()) for d in extra_data]
    if (info.get("extra_data") or []) != extra:
        diffs.append(f"extra training data {info.get('extra_data') or []} != {extra}")
    if info.get("request") is not None:
        old, new, skip = _jsonable(as_requested_now(info["request"], cfg)), _jsonable(cfg.request_dict()), ()
    else:  # runs from before run.json kept the request
        old, new, skip = _jsonable(info.get("config", {})), _jsonable(cfg.to_dict()), _FILLED_AT_TRAIN
    for k in sorted(set(old) | set(new)):
        if k in _NOT_COMPARED or (k in skip and not new.get(k)):
            continue
        if old.get(k) != new.get(k):
            diffs.append(f"config {k} {old.get(k)!r} != {new.get(k)!r}" if k == "experts" else f"config {k} differs")
    return "; ".join(diffs) or None


def loso_clips(run: Path, protocol: str, data, config, extra: dict, shards: ShardSet, fold_keys: list[str],
               epochs: int, seed: int, generate: bool, say, extra_data: Sequence = ()
               ) -> tuple[dict[str, list[dict]], list[dict], list[str]]:
    """Train (or reuse) one model per held-out subject and predict its clips: ({fold: clips}, the fold runs'
    run.json, reused folds)."""
    from .train import train

    by_fold: dict[str, list[dict]] = {}
    used, reused = [], []
    dirs = fold_dirs([*shards.subjects(), *fold_keys])
    for i, key in enumerate(fold_keys):
        fdir = run / protocol / "folds" / dirs[key]
        _, held = shards.split(key)
        fold_cfg = load_config(config, **extra)
        why = _fold_mismatch(fdir, data, fold_cfg, epochs, seed, extra_data, key)
        if why:
            say(f"[{protocol}] fold {key}: {why}; retraining it")
            shutil.rmtree(fdir)
        elif finished(fdir):
            reused.append(key)
        if not finished(fdir):
            train(data, fold_cfg, fdir, fold=key, epochs=epochs, seed=seed, resume=(fdir / "run.json").exists(),
                  shards=shards, verbose=False, extra_data=list(extra_data))
        info = json.loads((fdir / "run.json").read_text())
        if info.get("fold") != key or key in info["train_subjects"]:  # not an assert: `python -O` drops those
            raise RunError(f"{fdir} holds the model of fold {info.get('fold')!r}, not of {key!r} (its training "
                           f"subjects: {info['train_subjects']}): remove the folder and evaluate again")
        used.append(info)
        by_fold[key] = predict_fold(fdir, shards, held, protocol, generate)
        labelled = [c for c in by_fold[key] if c["label"] is not None]  # the rest count for their AUs only
        ok = sum(c["head"] == c["label"] for c in labelled)
        rest = len(by_fold[key]) - len(labelled)
        say(f"[{protocol}] fold {i + 1}/{len(fold_keys)} {key}: {ok}/{len(labelled)} clips right (head)"
            + (f"; {rest} without an emotion target" if rest else ""))
    return by_fold, used, reused


def evaluate_run(run: str | Path, protocol: str = "loso", data: str | Path | None = None, config="tiny",
                 epochs: int | None = None, seed: int = 0, generate: bool = True, max_folds: int | None = None,
                 folds: Sequence[str] | None = None, overrides: dict | None = None, verbose: bool = True,
                 baselines: bool = False, extra_data: Sequence[str | Path] = ()) -> dict:
    """Evaluate ``run``.

    * ``run`` holds a finished ``deft train --fold`` model: evaluate it on its held-out subject.
    * otherwise: leave-one-subject-out over ``data``: train (or reuse) one model per subject under
      ``run/<protocol>/folds/<db>__<subject>/`` (:func:`fold_dirs`: with a hash where two subjects would share a
      folder) and pool every fold's held-out predictions.
    ``baselines``: also score the baselines (``deft_model.baselines``) on the same folds and seed.
    ``extra_data``: further builds every fold (and the baselines) also trains on; never held out or scored.
    Writes ``<protocol>_results.json``, ``.md`` and ``_predictions.jsonl``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {list(PROTOCOLS)}")
    run = Path(run)
    say = print if verbose else (lambda *a, **k: None)
    single = finished(run)
    reused: list[str] = []  # LOSO folds whose existing model matched the request
    if single:
        info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
        if not info.get("fold"):
            raise ValueError(f"{run} was trained on every subject (no --fold): nothing is held out to evaluate")
        model, _ = load_run(run)
        cfg = model.config
        used = [{"epochs": info.get("epochs"), "seed": info.get("seed"), "max_steps": stopped_early(info),
                 "config": {"experts": list(cfg.experts)}}]
        data = data or info["data"]
        shards = ShardSet(data, cfg)
        _, held = shards.split(info["fold"])
        if protocol == "composite":
            held = [r for r in held if shards.emotion_composite[r] is not None]
        fold_keys = [info["fold"]]
        by_fold = {info["fold"]: predict_fold(run, shards, held, protocol, generate)}
        out_dir = run
    else:
        if data is None:
            raise ValueError("LOSO evaluation trains one model per subject: pass --data DIR")
        extra = dict(overrides or {})
        if protocol == "composite":
            extra["emotion_target"] = "composite"
        cfg = load_config(config, **extra)
        shards = ShardSet(data, cfg, extra=extra_data)
        fold_keys = list(folds) if folds else shards.subjects()
        if protocol == "composite":
            comp = {shards.folds[r] for r in range(shards.n) if shards.emotion_composite[r] is not None}
            if not comp and not any(e for e, x in zip(shards.emotion, shards.is_extra, strict=True) if not x):
                raise ValueError(f"no row of {data} has an emotion label: the composite classes are mapped from "
                                 f"emotions (a manifest without an emotion column has none): give the clips their "
                                 f"emotions and build again")
            if not comp:  # a synthetic or own build without --composite: it failed as "leaves no training rows"
                raise ValueError(f"no row of {data} has a composite label (emotion_composite is empty): the official "
                                 f"MEGC2019 list names only the real databases' clips; build with `unimer build ... "
                                 f"--composite labels` to take it from the emotion labels")
            fold_keys = [k for k in fold_keys if k in comp]
            mine = {c for c, x in zip(shards.clip_ids, shards.is_extra, strict=True) if not x}  # --extra-data: unscored
            unscored = {c: (d, e) for c, d, e, comp_label in zip(shards.clip_ids, shards.database, shards.emotion,
                                                                  shards.emotion_composite, strict=True)
                        if comp_label is None and c in mine}
            # an emotion with no composite class (others, a blank one) has none under any rule; the rest are clips the
            # official list does not name (a synthetic build whose ids happen to match a few listed clips scored those)
            classless = {c for c, (d, e) in unscored.items() if not e or composite(d, e) is None}
            if classless:
                say(f"[{protocol}] note: {len(classless)} of {len(mine)} clips are not scored: their emotion (blank, "
                    f"others, ...) has no composite class (negative, positive, surprise)")
            if len(unscored) > len(classless):
                say(f"[{protocol}] note: {len(unscored) - len(classless)} of {len(mine)} clips have no composite label "
                    f"and are not scored (the official MEGC2019 list does not name them); for a database the list "
                    f"does not cover (your own, a synthetic one), `unimer build ... --composite labels` takes each "
                    f"clip's from its emotion label")
        if max_folds:
            fold_keys = fold_keys[:max_folds]
        if not fold_keys:
            raise ValueError(f"no subjects to evaluate in {data} under protocol {protocol!r}")
        out_dir = run / protocol
        mine = set(fold_dirs(shards.subjects()).values())
        stale = sorted(p.name for p in (out_dir / "folds").glob("*") if p.is_dir() and p.name not in mine)
        if stale:  # an evaluation of other data in this folder: its folds stay, and are not pooled here
            say(f"[{protocol}] note: {out_dir / 'folds'} also holds {len(stale)} fold(s) of subjects not in {data} "
                f"({', '.join(stale[:3])}{' ...' if len(stale) > 3 else ''}): left as they are, not pooled")
        want_epochs = int(epochs if epochs is not None else cfg.training["epochs"])
        by_fold, used, reused = loso_clips(run, protocol, data, config, extra, shards, fold_keys, want_epochs, seed,
                                           generate, say, extra_data)
    clips = [c for key in fold_keys for c in by_fold[key]]
    res = summarise(clips, cfg.au_list, protocol)
    # what the fold models were actually trained with (from their run.json), not what was asked for
    ep = sorted({u.get("epochs") for u in used}, key=str)
    sd = sorted({u.get("seed") for u in used}, key=str)
    ex = sorted({tuple(u.get("config", {}).get("experts") or ()) for u in used})
    res.update({"protocol": protocol, "folds": fold_keys, "n_folds": len(fold_keys),
                "partial": bool(max_folds) and not single,
                "epochs": ep[0] if len(ep) == 1 else ep, "seed": sd[0] if len(sd) == 1 else sd,
                # a single fold run stopped by --max-steps (LOSO refuses such folds): its epochs were never reached
                "max_steps": next((u["max_steps"] for u in used if u.get("max_steps")), None),
                "emotion_labels": list(cfg.emotion_labels or (used[0].get("config", {}).get("emotion_labels") or [])
                                       if used else cfg.emotion_labels),
                "experts": list(ex[0]) if len(ex) == 1 else [list(e) for e in ex],
                "reused_folds": reused, "extra_data": [str(Path(d).resolve()) for d in extra_data],
                # which data the figures are of: another build evaluated into the same run replaced them silently
                "data": str(Path(data).resolve()), "data_identity": data_identity(data)})
    # an earlier run's baseline predictions would stand beside results that no longer hold them
    (out_dir / f"{protocol}_baseline_predictions.jsonl").unlink(missing_ok=True)
    if baselines:
        from .baselines import evaluate_baselines

        say(f"[{protocol}] baselines on the same {len(fold_keys)} fold(s)")
        # a single fold run trained beside its own extra data: the baselines train on it too
        base_extra = list(extra_data) or (list(info.get("extra_data") or []) if single else [])
        try:
            res["baselines"] = evaluate_baselines(data, fold_keys, protocol=protocol, seed=int(sd[0] if sd else seed),
                                                  out_dir=out_dir, extra_data=base_extra,
                                                  emotion_target=cfg.emotion_target)
        except Exception as e:  # noqa: BLE001 - every fold model is trained: its results are written whatever failed
            res["baselines_error"] = str(e) if isinstance(e, (ValueError, RuntimeError)) else f"{type(e).__name__}: {e}"
            say(f"[{protocol}] note: the baselines could not be scored ({e}); DEFT-LLM's results are written "
                f"without them")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{protocol}_results.json").write_text(json.dumps(res, indent=1, default=float))
    (out_dir / f"{protocol}_results.md").write_text(markdown_table(res, f"DEFT-LLM, {protocol} protocol "
                                                                       f"({len(fold_keys)} fold(s), experts: {', '.join(cfg.experts)})"))
    with open(out_dir / f"{protocol}_predictions.jsonl", "w") as f:
        for c in clips:
            f.write(json.dumps(c, default=float) + "\n")
    res["results_dir"] = str(out_dir)
    return res
