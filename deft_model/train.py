"""Training under accelerate: `deft train` and `accelerate launch -m deft_model.cli train` run this.

Run folder layout::

    RUN/run.json            data, fold, seed, epochs, held-out and training subjects, the request and the
                            full config
    RUN/tokenizer/          the tokenizer (built once, reused on resume and by every process)
    RUN/log.jsonl           one line per logged step / epoch (losses, lr, step and data-loading time)
    RUN/checkpoints/step-N/ accelerate state (optimiser, scheduler, RNG) + trainer_state.json + the model's
                            stored weights only (adapters, experts, projectors, heads; never a named base)
    RUN/config.json, RUN/model.safetensors, RUN/adapter/, RUN/tokenizer*.json
                            the final model at the run's root (``AutoModel.from_pretrained(RUN)``), written
                            last, config.json last of all: its presence marks a finished run

Epochs are fixed (no checkpoint selection on held-out data).
"""

from __future__ import annotations

import difflib
import json
import math
import os
import shutil
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from unimer_builder import TASKS, write_json

from .configuration import (
    LEGACY_DEFAULTS,
    DeftConfig,
    check_overrides,
    config_kwargs,
    load_config,
    setting_differences,
)
from .data import DeftCollator, DeftDataset, EpochSampler, ShardSet, build_settings, data_identity
from .errors import FolderRefused, RunError, ShardError
from .modeling import DeftModel, as_requested_now, resolve_image_size
from .runtime import MODEL_MARK, finished, quiet_hf, set_cpu_threads

__all__ = ["RunError", "ShardError", "build_tokenizer", "train"]


def _latest_checkpoint(out: Path) -> Path | None:
    ck = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]) if p.name.split("-")[1].isdigit() else -1)
    ck = [c for c in ck if (c / "trainer_state.json").exists()]
    return ck[-1] if ck else None


def _check_out_folder(out: Path) -> None:
    """The run folder, and the nearest existing path above it, must be folders: a file there made ``mkdir``
    fail with a traceback. A folder that is no run must not hold files a run writes (its ``config.json``, weights,
    tokenizer and code): training wrote over a user's own files of those names (``--out .``, a model folder)
    without a word; other files (notes) stay beside the run."""
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = f"run folder {out}" if p == out else f"{p} (above run folder {out})"
                raise RunError(f"{where} is an existing file, not a folder; give --out a new folder or a run's")
            break
    if out.is_dir() and not (out / "run.json").exists():
        folds = sorted(p.parent for pattern in ("folds/*/run.json", "*/folds/*/run.json") for p in out.glob(pattern))
        if folds:  # a LOSO/composite evaluation: a model trained beside its folds left neither usable
            raise RunError(f"run folder {out} holds an evaluation's folds ({folds[0].relative_to(out)}, ...), not a "
                           f"run; give --out a new or empty folder, or a run's")
    if out.is_dir() and not (out / "run.json").exists() and not finished(out):
        clash = sorted(p.name for p in out.iterdir() if p.name in _FINAL_FILES or p.suffix == ".safetensors"
                       or p.name in _CODE_FILES)
        if clash:
            shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
            raise RunError(f"run folder {out} holds files a run writes ({shown}) and no deft run; give --out a new "
                           f"or empty folder, or a run's")


# What a finished run writes at its root besides the run files (save_pretrained: its config, weights, tokenizer and
# the model's own code, for trust_remote_code)
_FINAL_FILES = frozenset({MODEL_MARK, "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                          "special_tokens_map.json", "chat_template.jinja", "pytorch_model.bin"})
_CODE_FILES = frozenset(p.name for p in Path(__file__).parent.glob("*.py"))


def _resume_epochs(out: Path, run: dict, data, config, overrides, fold, seed, epochs, batch_size, max_steps,
                   extra_data) -> int:
    """The epochs a resume trains to: the run's, or more if asked. Any other setting given that differs from
    the run's is an error naming each (old -> new): a resume used to ignore them silently. A setting not given
    (None) is the run's own."""
    asked = check_overrides(overrides or {})
    diffs = []
    if (config is not None or asked) and run.get("request") is not None:  # (older runs kept no request)
        saved = DeftConfig(**config_kwargs({**LEGACY_DEFAULTS, **run["request"]}))
        new = load_config(config if config is not None else saved, **(overrides or {}))
        diffs += [d for d in setting_differences(as_requested_now(saved.request_dict(), new), new.request_dict())
                  if d[0] != "training.epochs"]
    saved_fold = run.get("fold")
    if fold is not None and fold not in (saved_fold, (saved_fold or "").partition("/")[2]):
        diffs.append(("fold", saved_fold, fold))
    given = {"data": str(Path(data).resolve()), "seed": seed, "batch_size": batch_size, "max_steps": max_steps,
             "extra_data": None if extra_data is None else [str(Path(d).resolve()) for d in extra_data]}
    for k, v in given.items():
        was = run.get(k) or [] if k == "extra_data" else run.get(k)
        if v is not None and v != was:
            diffs.append((k, was, v))
    if run.get("data_identity") and data is not None and given["data"] == run.get("data") \
            and run["data_identity"] != data_identity(data):  # the same folder, built again (another is named above)
        diffs.append(("data", "the shards it was trained on", "other shards in that folder (built again since)"))
    want = epochs if epochs is not None else asked.get("training", {}).get("epochs")
    if want is not None and int(want) < run["epochs"]:
        diffs.append(("epochs", run["epochs"], int(want)))
    if diffs:
        raise FolderRefused(f"run folder {out} was trained with other settings than given: "
                       f"{'; '.join(f'{k} {_short(o)} -> {_short(n)}' for k, o, n in diffs)}. A resume keeps the run's settings "
                       "(leave them out or give the same; more epochs train it longer); use a new --out for others")
    return max(run["epochs"], int(want)) if want is not None else run["epochs"]


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reopen(out: Path, run: dict, main: bool) -> None:
    """A finished run asked for more epochs continues from the checkpoint at its last epoch's end: the final
    model's mark (config.json) goes first, so that a run stopped on the way is resumed, not taken as finished."""
    ckpt = _latest_checkpoint(out)
    state = json.loads((ckpt / "trainer_state.json").read_text()) if ckpt else {}
    if state.get("epoch") != run["epochs"] or state.get("step_in_epoch") != 0:
        why = f"it stopped at max_steps {run['max_steps']}" if run.get("max_steps") else "its last checkpoint is gone"
        raise FolderRefused(f"run folder {out} cannot be trained on: {why}; train a new run with more epochs")
    if main:
        (out / MODEL_MARK).unlink(missing_ok=True)


def _check_counts(**counts: int | None) -> None:
    """Epochs, batch size and max_steps are at least 1 (None: not set): ``--epochs 0`` saved an untrained model."""
    for name, n in counts.items():
        if n is not None and n < 1:
            raise ValueError(f"{name} must be at least 1 (got {n}): a run with none trains nothing")


def build_tokenizer(cfg: DeftConfig, shards: ShardSet, rows) -> object:
    from .tokenizer import build_tiny_tokenizer, load_hub_tokenizer

    placeholders = [cfg.placeholders[e] for e in ("structure", "dynamic", "motion", "heads")]
    if cfg.llm is None:
        texts = [shards.instruction[r] for r in rows] + [shards.answer[r] for r in rows]
        vocab = int(getattr(cfg.text_config, "vocab_size", 512) or 512)
        return build_tiny_tokenizer(texts, placeholders, vocab)
    return load_hub_tokenizer(cfg.llm, placeholders)


def _distributed_cpu() -> bool:
    """Several processes (torchrun / `accelerate launch --multi_gpu`) on a machine with no GPU: gloo on CPU.

    (`accelerate launch --cpu --num_processes N` starts one process unless given an MPI hostfile.)"""
    import os

    ranked = "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1
    return ranked and not torch.cuda.is_available()


def class_weights(labels, n_classes: int) -> torch.Tensor:
    """Inverse class frequency of the training rows (mean 1 over the classes present; absent classes 0)."""
    lab = torch.as_tensor(labels)
    counts = torch.bincount(lab[lab >= 0], minlength=n_classes).float()
    w = torch.where(counts > 0, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
    return w * (counts > 0).sum() / w.sum()


def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        if total <= warmup:
            return 1.0
        p = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p))
    return f


def train(data: str | Path, config: str | Path | DeftConfig | None = None, out: str | Path = "runs/deft",
          fold: str | None = None, epochs: int | None = None, seed: int | None = None, resume: bool = False,
          max_steps: int | None = None, batch_size: int | None = None, shards: ShardSet | None = None,
          log_every: int | None = None, save_every: int | None = None, overrides: dict | None = None,
          verbose: bool = True, stop_after: int | None = None, extra_data: list[str | Path] | None = None) -> Path | None:
    """Train one model (optionally holding out subject ``fold``); returns the final model folder.

    ``config`` (default ``tiny``), ``seed`` (default 0) and the other settings left as None are, with
    ``resume``, the run's own; given, they must be the run's (``epochs`` may be raised: the run, finished or
    not, trains on from its last checkpoint to that many epochs).

    ``extra_data``: further Uni-MER builds whose clips are always trained on and never held out (other
    subjects, e.g. synthetic identities the held-out database does not use).

    ``stop_after`` stops after that many global steps without finishing (as if the job were killed; the
    last checkpoint stays for ``resume``); returns None then.

    A run that fails or is interrupted before its first checkpoint takes back what it wrote (``run.json``,
    the tokenizer, the log), so that the corrected command is not refused as a run in that folder; after a
    checkpoint the folder stays as it is for ``resume``."""
    out = Path(out)
    _check_out_folder(out)
    before = {n for n in _RUN_FILES if (out / n).exists()} if out.exists() else None
    try:
        return _train(data, config, out, fold=fold, epochs=epochs, seed=seed, resume=resume, max_steps=max_steps,
                      batch_size=batch_size, shards=shards, log_every=log_every, save_every=save_every,
                      overrides=overrides, verbose=verbose, stop_after=stop_after, extra_data=extra_data)
    except FolderRefused:
        raise
    except BaseException:
        _take_back(out, before)
        raise


# What training writes into a run folder besides the final model.
_RUN_FILES = ("run.json", "tokenizer", "log.jsonl", "checkpoints")
_STAGING = (".tokenizer.tmp", ".model.tmp")


def _take_back(out: Path, before: set[str] | None) -> None:
    """After a failed run: staging folders and half-written checkpoints go; with no checkpoint saved, so do the
    run files this run created (``before``: the ones there already; None: the folder did not exist)."""
    if int(os.environ.get("RANK", "0")) != 0 or not out.is_dir():
        return
    for d in [*(out / n for n in _STAGING), *(out / "checkpoints").glob("step-*")]:
        if d.is_dir() and (d.name in _STAGING or not (d / "trainer_state.json").exists()):
            shutil.rmtree(d, ignore_errors=True)
    for f in [*out.glob(".*.tmp-*"), *(out / "checkpoints").glob("*/.*.tmp-*")]:  # write_json's, if killed writing
        f.unlink(missing_ok=True)
    if _latest_checkpoint(out) is not None:
        return
    for name in _RUN_FILES:
        p = out / name
        if before is not None and name in before:
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    if before is None and not any(out.iterdir()):
        out.rmdir()


def _train(data, config, out: Path, fold, epochs, seed, resume, max_steps, batch_size, shards, log_every, save_every,
           overrides, verbose, stop_after, extra_data) -> Path | None:
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs, set_seed

    acc = Accelerator(cpu=_distributed_cpu(),
                      kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    say = (lambda *a: acc.print(*a)) if verbose else (lambda *a: None)
    run_file = out / "run.json"
    if resume and not run_file.exists() and not finished(out):
        # a mistyped --out started a new run from scratch without a word
        raise FolderRefused(f"run folder {out} holds no run to resume (no {run_file.name}); drop --resume to start one "
                            f"there")
    run = json.loads(run_file.read_text()) if resume and run_file.exists() else None
    if run is not None:  # a resume: what is asked must be what the run was trained with (or more epochs)
        epochs = _resume_epochs(out, run, data=data, config=config, overrides=overrides, fold=fold, seed=seed,
                                epochs=epochs, batch_size=batch_size, max_steps=max_steps, extra_data=extra_data)
    if finished(out):
        if not resume:
            raise FolderRefused(f"run folder {out} already holds a finished model; use a new --out")
        if run is None or epochs == run["epochs"]:
            say(f"{out}: already finished; nothing to resume")
            return out
        _reopen(out, run, acc.is_main_process)
    ckpt = _latest_checkpoint(out)
    request = None
    if run is not None:
        cfg = DeftConfig(**config_kwargs({**LEGACY_DEFAULTS, **run["config"]}))
        request = run.get("request")
        data, fold, seed, extra_data = run["data"], run["fold"], run["seed"], run.get("extra_data") or []
        max_steps, batch_size = run.get("max_steps"), run.get("batch_size", batch_size)
        # the run's own cadence where the resume does not set one (a run saved every 5 steps fell back to one
        # checkpoint an epoch)
        cadence = {k: v for k, v in (("log_every", log_every), ("save_every", save_every)) if v is not None}
        log_every = log_every if log_every is not None else run.get("log_every")
        save_every = save_every if save_every is not None else run.get("save_every")
        if any(run.get(k) != v for k, v in cadence.items()) and acc.is_main_process:  # the run's from now on
            run = {**run, **cadence}
            write_json(run_file, run, indent=1)
        if epochs != run["epochs"]:
            say(f"{out}: training on to {epochs} epochs (it was trained for {run['epochs']})")
            if acc.is_main_process:
                write_json(run_file, {**run, "epochs": epochs}, indent=1)
    else:
        if ckpt is not None or run_file.exists():
            raise FolderRefused(f"run folder {out} already holds a run; pass --resume to continue it or use a new --out")
        cfg = load_config(config if config is not None else "tiny", **(overrides or {}))
        request = cfg.request_dict()
        resume = False
        seed = 0 if seed is None else seed
    tr = cfg.training
    epochs = int(epochs if epochs is not None else tr["epochs"])
    bs = int(batch_size if batch_size is not None else tr["batch_size"])
    _check_counts(epochs=epochs, batch_size=bs, max_steps=max_steps)
    log_every = int(log_every if log_every is not None else tr["log_every"])
    save_every = int(save_every if save_every is not None else tr["save_every"])
    for name, n, zero in (("log_every", log_every, "no log"), ("save_every", save_every, "a checkpoint per epoch")):
        if n < 0:  # g % -1 == 0: a log line and a checkpoint at every step
            raise ValueError(f"{name} must be at least 0 (0: {zero}), not {n}")

    extra_data = [str(Path(d).resolve()) for d in extra_data or []]
    if shards is not None and [str(d.resolve()) for d in shards.extra_dirs] != extra_data:
        raise ValueError(f"the shards given hold extra data {shards.extra_dirs}, not {extra_data}")
    if shards is None or shards.config.experts != cfg.experts or shards.config.emotion_target != cfg.emotion_target:
        shards = ShardSet(data, cfg, extra=extra_data)
    else:
        shards.config = cfg
    own = shards.emotion_labels()
    if cfg.emotion_labels and sorted(cfg.emotion_labels) != sorted(own):
        # a typo, or a list of another database's classes: the head learnt the classes both name, and the
        # evaluation scored every class of the data, without a word (UF1 0.08)
        missing, unknown = sorted(set(own) - set(cfg.emotion_labels)), sorted(set(cfg.emotion_labels) - set(own))
        near = {u: difflib.get_close_matches(u, own, 1) for u in unknown}
        raise ValueError(
            f"emotion_labels {list(cfg.emotion_labels)} (the config) are not the classes of {data} for target "
            f"{cfg.emotion_target!r} {own}: " + "; ".join(
                [*([f"missing {missing}"] if missing else []),
                 *[f"{u!r} is no class there" + (f" (did you mean {near[u][0]!r}?)" if near[u] else "")
                   for u in unknown]]) + "; leave emotion_labels out to take the data's own")
    if not cfg.emotion_labels:
        cfg.emotion_labels = own
    if not cfg.emotion_labels:
        raise ShardError(f"no emotion labels found in {data} for target {cfg.emotion_target!r}")
    foreign = shards.foreign_targets(cfg.emotion_labels)
    if foreign:
        say(f"note: extra data's labels {foreign} (clips) are not among the data's classes {cfg.emotion_labels}: "
            "those clips train the AU head and the language model only (--set emotion_target=composite maps "
            "every database to negative/positive/surprise)")
    train_rows, held_rows = shards.split(fold)
    held_key = shards.resolve_fold(fold) if fold else None
    train_subjects = sorted({shards.folds[r] for r in train_rows})
    assert held_key not in train_subjects

    out.mkdir(parents=True, exist_ok=True)
    tok_dir = out / "tokenizer"
    if acc.is_main_process and not (tok_dir / "tokenizer_config.json").exists():
        tok = build_tokenizer(cfg, shards, train_rows)
        staging = out / ".tokenizer.tmp"  # moved into place whole: a half-saved tokenizer is never reused
        shutil.rmtree(staging, ignore_errors=True)
        tok.save_pretrained(staging)
        shutil.rmtree(tok_dir, ignore_errors=True)
        staging.replace(tok_dir)
    acc.wait_for_everyone()
    from .tokenizer import load_tokenizer

    tok = load_tokenizer(tok_dir)
    resolve_image_size(cfg)
    ds = DeftDataset(shards, train_rows, tok, augment=tr.get("augment"), seed=seed)
    if not cfg.answer_tokens:  # the generation budget per task, from the training answers
        cfg.answer_tokens = {t: max(len(a) for a, r in zip(ds.answer_ids, ds.rows, strict=True) if shards.task[r] == t)
                             for t in TASKS if any(shards.task[r] == t for r in ds.rows)}
    if cfg.build_config is None:
        cfg.build_config = build_settings(data)
    if not cfg.instructions:
        cfg.instructions = shards.instructions(train_rows)
    if acc.is_main_process and not run_file.exists():
        write_json(run_file, {
            "data": str(Path(data).resolve()), "data_identity": data_identity(data), "extra_data": extra_data,
            "fold": held_key, "seed": seed, "epochs": epochs,
            "max_steps": max_steps, "batch_size": bs, "log_every": log_every, "save_every": save_every,
            "held_out": held_key, "train_subjects": train_subjects,
            "n_train_rows": len(train_rows), "n_held_out_rows": len(held_rows),
            "num_processes": acc.num_processes, "request": request, "config": cfg.to_dict()}, indent=1)

    set_cpu_threads(cfg, acc.device)
    quiet_hf()
    if cfg.base_dtype == "bfloat16" and acc.device.type == "cpu" and "AVX512" not in torch.backends.cpu.get_cpu_capability():
        say(f"note: base_dtype bfloat16 on a CPU without native bfloat16 matrix units "
            f"({torch.backends.cpu.get_cpu_capability()}) is many times slower than float32 "
            "(bench/README.md); --set base_dtype=float32 for CPU training")
    set_seed(seed)
    model = DeftModel.from_components(cfg, tok)
    if tr.get("class_balance"):
        model.set_class_weights(class_weights(ds.emotion, len(cfg.emotion_labels)))
    collator = DeftCollator(tok.pad_token_id, max_length=int(tr["max_length"]), image_mean=cfg.image_mean,
                            image_std=cfg.image_std)
    lengths = [len(p) + len(a) for p, a in zip(ds.prompt_ids, ds.answer_ids, strict=False)] if tr.get("group_by_length", True) else None
    sampler = EpochSampler(len(ds), seed, lengths=lengths, batch_size=bs)
    loader = torch.utils.data.DataLoader(ds, batch_size=bs, sampler=sampler, collate_fn=collator, num_workers=0)
    params = model.trainable_parameters()
    opt = torch.optim.AdamW(params, lr=float(tr["lr"]), weight_decay=float(tr["weight_decay"]),
                            betas=tuple(tr.get("betas", (0.9, 0.999))), foreach=True)
    model, opt, loader = acc.prepare(model, opt, loader)
    _checkpoint_only_stored_weights(acc)
    steps_per_epoch = len(loader)
    total = epochs * steps_per_epoch if not max_steps else min(max_steps, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(int(tr["warmup_steps"]), total))
    acc.register_for_checkpointing(sched)

    state = {"global_step": 0, "epoch": 0, "step_in_epoch": 0}
    if resume and ckpt is not None:
        acc.load_state(str(ckpt))
        state = json.loads((ckpt / "trainer_state.json").read_text())
        say(f"resumed from {ckpt} (step {state['global_step']})")
        if acc.is_main_process and (out / "log.jsonl").exists():  # drop lines past the checkpoint
            lines = [ln for ln in (out / "log.jsonl").read_text().splitlines()
                     if ln.strip() and json.loads(ln).get("step", 0) <= state["global_step"]]
            (out / "log.jsonl").write_text("".join(ln + "\n" for ln in lines))
    acc.wait_for_everyone()

    def log(rec: dict):
        if acc.is_main_process:
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(rec) + "\n")

    def checkpoint(st: dict):
        d = out / "checkpoints" / f"step-{st['global_step']:07d}"
        acc.save_state(str(d))
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_json(d / "trainer_state.json", st, indent=None)  # written whole: it marks a usable checkpoint
            keep = int(tr.get("keep_checkpoints", 2))
            old = sorted((out / "checkpoints").glob("step-*"))[:-keep] if keep > 0 else []
            for o in old:
                shutil.rmtree(o, ignore_errors=True)
        acc.wait_for_everyone()

    g = state["global_step"]
    window: dict[str, float] = {}
    n_window = 0
    t_step = t_data = 0.0
    n_tokens = 0
    model.train()
    done = max_steps is not None and g >= max_steps
    for epoch in range(state["epoch"], epochs):
        if done:
            break
        # accelerate's loaders re-seed the sampler from their own iteration counter on every __iter__:
        # set it explicitly (also on the skipping loader of a resumed epoch) so the order is seed + epoch
        sampler.set_epoch(epoch)
        loader.set_epoch(epoch)
        ds.set_epoch(epoch)
        skip = state["step_in_epoch"] if epoch == state["epoch"] else 0
        it = acc.skip_first_batches(loader, skip) if skip else loader
        if skip and hasattr(it, "set_epoch"):
            it.set_epoch(epoch)
        k = skip
        t0 = time.perf_counter()
        correct = seen = 0
        for batch in it:
            t1 = time.perf_counter()
            batch.pop("rows")
            outp = model(**batch)
            acc.backward(outp.loss)
            if tr["max_grad_norm"]:
                acc.clip_grad_norm_(params, float(tr["max_grad_norm"]))
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            g += 1
            k += 1
            t2 = time.perf_counter()
            t_data += t1 - t0
            n_tokens += int(batch["attention_mask"].sum())
            t_step += t2 - t1
            lab = batch["emotion_labels"]
            m = lab >= 0
            correct += int((outp.emotion_logits.argmax(-1)[m] == lab[m]).sum())
            seen += int(m.sum())
            window["loss"] = window.get("loss", 0.0) + float(outp.loss.detach())
            for kk, v in outp.losses.items():
                window[kk] = window.get(kk, 0.0) + float(v)
            n_window += 1
            if log_every and g % log_every == 0:
                vals = torch.tensor([window[kk] / n_window for kk in sorted(window)], device=acc.device)
                vals = acc.reduce(vals, "mean")
                rec = {"step": g, "epoch": epoch, **{kk: round(float(v), 6) for kk, v in zip(sorted(window), vals, strict=False)},
                       "lr": sched.get_last_lr()[0], "step_s": round(t_step / n_window, 5),
                       "data_s": round(t_data / n_window, 5), "tokens": round(n_tokens / n_window)}
                if acc.device.type == "cuda":  # the most the accelerator has held so far (peak RSS says nothing of it)
                    rec["gpu_peak_mib"] = round(torch.cuda.max_memory_allocated(acc.device) / 2**20)
                log(rec)
                say(json.dumps(rec))
                window, n_window, t_step, t_data, n_tokens = {}, 0, 0.0, 0.0, 0
            last = k >= steps_per_epoch
            # the last step of an epoch is checkpointed after the epoch-end bookkeeping, as the start of the
            # next epoch (a checkpoint "inside" a finished epoch would log its epoch_end again on resume)
            if save_every and g % save_every == 0 and not last:
                checkpoint({"global_step": g, "epoch": epoch, "step_in_epoch": k})
            if max_steps is not None and g >= max_steps:
                done = True
                break
            if stop_after is not None and g >= stop_after and not last:
                acc.wait_for_everyone()
                return None
            t0 = time.perf_counter()
        if not done:
            acc_t = acc.reduce(torch.tensor([correct, seen], device=acc.device, dtype=torch.float), "sum")
            rec = {"step": g, "epoch": epoch, "epoch_end": True,
                   "train_emotion_acc": round(float(acc_t[0] / max(1.0, float(acc_t[1]))), 4)}
            log(rec)
            say(json.dumps(rec))
            checkpoint({"global_step": g, "epoch": epoch + 1, "step_in_epoch": 0})
            if stop_after is not None and g >= stop_after:
                acc.wait_for_everyone()
                return None
    acc.wait_for_everyone()
    if acc.is_main_process:
        # how far it went: a --max-steps larger than the epochs' steps never stopped it (stopped_early)
        info = json.loads(run_file.read_text())
        info.update({"steps": g, "steps_planned": epochs * steps_per_epoch})
        write_json(run_file, info, indent=1)
        _save_final(acc.unwrap_model(model), tok, out)
    acc.wait_for_everyone()
    return out



def _checkpoint_only_stored_weights(acc) -> None:
    """Accelerate checkpoints hold the model's stored weights (adapters, experts, projectors, heads, extra
    vocabulary rows), not the named base: a LOSO run's checkpoints then weigh megabytes, not gigabytes."""

    def save_hook(models, weights, output_dir):
        for i, m in enumerate(models):
            weights[i] = acc.unwrap_model(m).stored_state_dict(adapters=True)

    def load_hook(models, input_dir):
        for i, m in enumerate(models):
            f = Path(input_dir) / ("model.safetensors" if i == 0 else f"model_{i}.safetensors")
            acc.unwrap_model(m).load_stored_state_dict(load_file(str(f)), str(f))
        models.clear()  # loaded here; accelerate must not load them again

    acc.register_save_state_pre_hook(save_hook)
    acc.register_load_state_pre_hook(load_hook)


def _save_final(model, tok, out: Path) -> None:
    """The model and tokenizer at the run's root, config.json moved in last (it marks the run finished)."""
    tmp = out / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    for item in sorted(tmp.iterdir(), key=lambda p: p.name == MODEL_MARK):
        dest = out / item.name
        if dest.is_dir():
            shutil.rmtree(dest)
        item.replace(dest)
    tmp.rmdir()
