"""Prediction: load a run, predict shard rows (heads + greedy answers), or a clip folder via the builder's
motion evidence."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch

from unimer_builder.render import parse_answer

from .configuration import DeftConfig
from .data import DeftCollator, DeftDataset, ShardError, ShardSet


@functools.lru_cache(maxsize=4)
def standard_instructions(templates_dir: str | None = None) -> dict[str, str]:
    """Task -> the instruction of template variant 0 of every builder task (``render.TASKS``), rendered
    from the builder's own templates, so that a clip is asked in the wording the model was trained on."""
    from unimer_builder import render
    from unimer_builder.config import BuildConfig

    bc = BuildConfig()
    env = render.environment(str(templates_dir or bc.templates_dir))
    ctx = {"crop_size": bc.crop_size}  # the only context an instruction may name
    out = {}
    for task in render.TASKS:
        text = env.get_template(f"{task}.j2").module.instruction(0, ctx)
        out[task] = " ".join(str(text).split())
    return out


def model_dir(run: str | Path) -> Path:
    run = Path(run)
    for d in (run / "model", run):
        if (d / "config.json").exists():
            return d
    raise FileNotFoundError(f"{run} holds no trained model (expected {run}/model/config.json); "
                            "train one with `deft train` first")


def load_run(run: str | Path):
    from .modeling import DeftModel
    from .tokenizer import load_tokenizer

    d = model_dir(run)
    from .train import quiet_hf, set_cpu_threads

    quiet_hf()

    model = DeftModel.from_pretrained(str(d))
    model.eval()
    set_cpu_threads(model.config, next(model.parameters()).device)
    tok = load_tokenizer(d)
    return model, tok


# --- batched prediction -------------------------------------------------------------------------

def _to_device(batch: dict, device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


@torch.no_grad()
def predict_dataset(model, tok, ds: DeftDataset, generate_rows: set[int] | None = None,
                    batch_size: int = 16, max_new_tokens: int | None = None) -> list[dict]:
    """Head outputs for every row of ``ds`` and greedy answers for rows in ``generate_rows``."""
    cfg: DeftConfig = model.config
    device = next(model.parameters()).device
    max_new = int(max_new_tokens or cfg.training.get("max_new_tokens", 48))
    coll = DeftCollator(tok.pad_token_id, max_length=int(cfg.training["max_length"]), image_mean=cfg.image_mean,
                        image_std=cfg.image_std, generation=True)
    out: list[dict] = []
    for i in range(0, len(ds), batch_size):
        items = [ds[j] for j in range(i, min(len(ds), i + batch_size))]
        batch = _to_device(coll(items), device)
        rows = batch.pop("rows").tolist()
        o = model(**{k: v for k, v in batch.items() if k not in ("emotion_labels", "au_labels")})
        emo = torch.softmax(o.emotion_logits.float(), -1).cpu().numpy()
        au = torch.sigmoid(o.au_logits.float()).cpu().numpy()
        gen_idx = [k for k, r in enumerate(rows) if generate_rows is not None and r in generate_rows]
        texts: dict[int, str] = {}
        if gen_idx:
            # left-padded prompts, one length group at a time keeps positions identical to training
            by_len: dict[int, list[int]] = {}
            for k in gen_idx:
                by_len.setdefault(len(items[k]["prompt_ids"]), []).append(k)
            for ks in by_len.values():
                sub = _to_device(coll([items[k] for k in ks]), device)
                sub.pop("rows")
                ids = model.generate(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"],
                                     pixel_values=sub.get("pixel_values"), frames=sub.get("frames"),
                                     flow=sub.get("flow"), region_stats=sub.get("region_stats"),
                                     max_new_tokens=max_new, eos_token_id=tok.eos_token_id,
                                     pad_token_id=tok.pad_token_id)
                for k, seq in zip(ks, ids, strict=False):
                    texts[k] = tok.decode(seq, skip_special_tokens=True).strip()
        for k, r in enumerate(rows):
            out.append({"row": r, "emotion_probs": emo[k], "au_probs": au[k], "generated": texts.get(k)})
    return out


def motion_summary(region_stats: np.ndarray, cfg: DeftConfig, top: int = 3) -> str:
    """A plain description of the strongest region motion (from the measured statistics)."""
    from unimer_builder import facs

    fields = cfg.region_stat_fields
    zi, dxi, dyi = fields.index("z"), fields.index("dx"), fields.index("dy")
    order = np.argsort(-region_stats[:, zi])[:top]
    parts = []
    for i in order:
        z = float(region_stats[i, zi])
        if z < 2.0:
            continue
        reg = facs.REGION_BY_NAME[cfg.region_names[i]]
        word = facs.direction_word(float(region_stats[i, dxi]), float(region_stats[i, dyi]), reg)
        parts.append(f"{reg.phrase} moves {word} (z={z:.1f})")
    return "; ".join(parts) if parts else "no region moves clearly above the noise floor"


def _result(cfg: DeftConfig, pred: dict, texts: dict[str, str], region_stats) -> dict:
    probs = pred["emotion_probs"]
    labels = cfg.emotion_labels
    aus = [int(a) for a, p in zip(cfg.au_list, pred["au_probs"], strict=False) if p > 0.5]
    res = {
        "emotion": labels[int(np.argmax(probs))] if labels else None,
        "emotion_probs": {lab: round(float(p), 4) for lab, p in zip(labels, probs, strict=False)},
        "aus": aus,
        "au_probs": {f"AU{a}": round(float(p), 4) for a, p in zip(cfg.au_list, pred["au_probs"], strict=False)},
        "answer_emotion": parse_answer(texts.get("emotion"))["emotion"],
        "answer_aus": parse_answer(texts.get("au"))["aus"],
        "motion": texts.get("motion"),
        "reasoning": texts.get("explain"),
    }
    if region_stats is not None:
        res["measured_motion"] = motion_summary(region_stats, cfg)
    return res


class _Shim:
    """A one-clip ShardSet stand-in for DeftDataset (several instructions over the same visuals)."""

    def __init__(self, cfg, instructions, onset, frames, flow, region_stats):
        self.config = cfg
        n = len(instructions)
        self.instruction = list(instructions)
        self.answer = [""] * n
        self.row_clip = np.zeros(n, np.int64)
        self.onset = onset[None] if onset is not None else None
        self.frames = frames[None] if frames is not None else None
        self.flow = flow[None] if flow is not None else None
        self.region_stats = np.repeat(region_stats[None], n, 0) if region_stats is not None else None
        self.aus = [[] for _ in range(n)]

    def load_visuals(self, rows):
        return None

    def targets(self):
        return [None] * len(self.instruction)


def _predict_visuals(model, tok, onset, frames, flow, region_stats, extra_instruction: str | None = None) -> dict:
    cfg = model.config
    tasks = dict(standard_instructions())
    if extra_instruction:
        tasks["answer"] = extra_instruction
    names = list(tasks)
    shim = _Shim(cfg, [tasks[n] for n in names], onset, frames, flow, region_stats)
    ds = DeftDataset(shim, range(len(names)), tok, with_answer=False)
    preds = predict_dataset(model, tok, ds, generate_rows=set(range(len(names))))
    texts = {n: p["generated"] for n, p in zip(names, preds, strict=False)}
    res = _result(cfg, preds[0], texts, region_stats)
    if extra_instruction:
        res["answer"] = texts["answer"]
    return res


def predict_row(run: str | Path, data: str | Path, row_id: str) -> dict:
    """Predict one shard row by id (``<clip_id>#<task>``); a bare clip id picks its first row."""
    model, tok = load_run(run)
    cfg = model.config
    shards = ShardSet(data, cfg)
    r = shards.row_of_id.get(row_id)
    if r is None:
        cands = [i for i, c in enumerate(shards.clip_ids) if c == row_id]
        if not cands:
            raise ShardError(f"no row with id {row_id!r} (or clip id) in {data}")
        r = cands[0]
    shards.load_visuals([r])
    c = int(shards.row_clip[r])
    res = _predict_visuals(
        model, tok, shards.onset[c] if shards.onset is not None else None,
        shards.frames[c] if shards.frames is not None else None,
        shards.flow[c] if shards.flow is not None else None,
        shards.region_stats[r] if shards.region_stats is not None else None,
        extra_instruction=shards.instruction[r])
    res.update({"id": shards.ids[r], "clip_id": shards.clip_ids[r], "database": shards.database[r],
                "subject": shards.subject[r], "instruction": shards.instruction[r],
                "reference_answer": shards.answer[r], "label": shards.emotion[r]})
    return res


def clip_from_folder(folder: str | Path, onset: int | None, apex: int | None, offset: int | None):
    """A Clip over a folder of numbered frames, listed and range-checked by the builder's own helpers."""
    from unimer_builder.records import Clip
    from unimer_builder.sources import _common

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"clip folder {folder} does not exist")
    frames = _common.list_frames(folder)
    if not frames:
        raise ShardError(f"clip folder {folder} holds no numbered image frames (e.g. img12.jpg)")
    onset = min(frames) if onset is None else onset
    offset = max(frames) if offset is None else offset
    row = _common.Row(database="manifest", file=str(folder), row=None, id=str(folder))
    skip = _common.check_frames(row, frames, folder, onset, apex, offset,
                                {"onset": "--onset", "apex": "--apex", "offset": "--offset"})
    if skip is not None:
        raise ShardError(f"clip folder {folder}: {skip.message}")
    return Clip(database="manifest", subject="user", clip=folder.name, onset=onset, apex=apex, offset=offset,
                frames=frames, source_file=str(folder))


def evidence_inputs(ev, cfg: DeftConfig):
    """records.Evidence -> (onset, frames, flow, region_stats) at the model's resolution."""
    import cv2

    from .data import _resize_flow

    onset = cv2.resize(ev.onset_crop, (cfg.image_size, cfg.image_size), interpolation=cv2.INTER_AREA) \
        if cfg.image_size else None
    st = np.asarray(ev.stack)
    idx = np.linspace(0, len(st) - 1, cfg.stack_len).round().astype(int)
    frames = np.stack([cv2.resize(st[i], (cfg.frame_size, cfg.frame_size), interpolation=cv2.INTER_AREA) for i in idx])
    fl = np.concatenate([np.asarray(ev.flow, np.float32).transpose(2, 0, 1), np.asarray(ev.strain, np.float32)[None]])
    flow = _resize_flow(fl.astype(np.float16), cfg.flow_size)
    stats = np.zeros((len(cfg.region_names), len(cfg.region_stat_fields)), np.float32)
    by = {r.name: r for r in ev.regions}
    for i, n in enumerate(cfg.region_names):
        if n in by:
            for j, f in enumerate(cfg.region_stat_fields):
                v = getattr(by[n], f, None)
                stats[i, j] = 0.0 if v is None or not np.isfinite(v) else float(v)
    return onset, frames, flow, stats


def predict_clip(run: str | Path, folder: str | Path, onset: int | None = None, apex: int | None = None,
                 offset: int | None = None, build_config=None) -> dict:
    """Run the builder's motion evidence on a clip folder, then the model."""
    from unimer_builder.config import BuildConfig
    from unimer_builder.evidence import compute_evidence

    model, tok = load_run(run)
    cfg = model.config
    clip = clip_from_folder(folder, onset, apex, offset)
    bc = build_config or BuildConfig(stack_len=cfg.stack_len)
    ev = compute_evidence(clip, bc)
    o, f, fl, st = evidence_inputs(ev, cfg)
    res = _predict_visuals(model, tok, o if "structure" in cfg.experts else None,
                           f if "dynamic" in cfg.experts else None,
                           fl if "motion" in cfg.experts else None, st if "motion" in cfg.experts else None)
    res.update({"clip": str(folder), "onset": clip.onset, "apex": ev.apex, "apex_estimated": ev.apex_estimated,
                "offset": clip.offset, "head_motion": ev.head_motion})
    return res
