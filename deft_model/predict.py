"""Prediction: a shard row or a clip folder -> emotion and AUs (the model's heads), the motion measured,
an explanation built from the heads, and the language model's own answers.

One input path. A clip folder goes through the builder's ``compute_evidence`` -> ``cross_check`` ->
``clip_rows`` (in memory, with the builder settings that made the training shards, recorded in the
model's config) -> :meth:`ShardSet.from_table` -> the training :class:`DeftDataset` and collator; a
shard row goes through the same ShardSet and dataset. So a clip reaches the model as the same tensors
its shard row would.

Faithful explanations. ``emotion``/``aus`` are the heads' outputs (probabilities averaged over the
clip's four task prompts, as evaluation pools them). ``motion`` is the builder's measurement of the
clip (the region statistics the motion expert reads) and ``reasoning`` states that motion, the AUs the
AU head predicts and the emotion the emotion head predicts, both rendered through the builder's own
templates (``render_prediction``), so the explanation cannot contradict the heads and is never cut.
The language model's free answers to the four task instructions are reported beside them under
``generated``, with whether they were cut at the token budget (from the longest training answer of the
task) and whether what they say agrees with the heads; they are not presented as the explanation,
because nothing ties free text to what the heads predict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from unimer_builder import (
    TASKS,
    BuildConfig,
    Sample,
    build_config_from_dict,
    clip_from_folder,
    clip_rows,
    compute_evidence,
    cross_check,
    parse_answer,
    render_prediction,
    rows_to_table,
    standard_instructions,
)

from .configuration import DeftConfig
from .data import DeftCollator, DeftDataset, ShardSet
from .errors import ShardError
from .runtime import load_run

SOURCES = {
    "emotion": "model: emotion head (probabilities averaged over the clip's task prompts)",
    "aus": "model: AU head (probability > 0.5)",
    "motion": "builder: motion measured on the clip (TV-L1 flow, region statistics): the regions above the "
              "builder's threshold, and those moving a predicted AU's way above its weak threshold, in its motion template",
    "reasoning": "model heads (emotion, AUs) over the builder's measured motion, in the builder's explain template: "
                 "a predicted AU is described as moving only where a label of it would be supported by that motion",
    "generated": "model: the language model's free answers to the task instructions (greedy decoding), reading the "
                 "experts' tokens and, where the model has a recognition token, the heads' probabilities",
}


def build_config_of(cfg: DeftConfig) -> tuple[BuildConfig, bool]:
    """The builder settings of the model's training data (and whether they were recorded), with the installed
    builder's templates: explanations are rendered by the installed builder's code, which its own templates
    match (a templates folder recorded at build time may have changed since, or be gone)."""
    if cfg.build_config:
        bc = build_config_from_dict(cfg.build_config)
        return bc.with_(**{"text.templates": None}), True  # None: the installed builder's templates
    return BuildConfig(), False


def instructions_of(cfg: DeftConfig, bc: BuildConfig) -> dict[str, str]:
    """Task -> instruction to ask a new clip: the training data's own variant-0 wording where the model's config
    recorded it, the builder's standard instruction otherwise."""
    return {**standard_instructions(bc), **{t: q for t, q in cfg.instructions.items() if t in TASKS}}


# --- batched prediction -------------------------------------------------------------------------

def _to_device(batch: dict, device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else v) for k, v in batch.items()}


@torch.no_grad()
def predict_dataset(model, tok, ds: DeftDataset, generate_rows: set[int] | None = None,
                    batch_size: int = 16, max_new_tokens: int | None = None, **generate_kwargs) -> list[dict]:
    """Head outputs for every row of ``ds`` and generated answers for rows in ``generate_rows``.

    Each answer may use the token budget of its task (``DeftConfig.max_new_tokens``) unless
    ``max_new_tokens`` is given; ``truncated`` says when an answer reached it without ending."""
    cfg: DeftConfig = model.config
    device = next(model.parameters()).device
    coll = DeftCollator(tok.pad_token_id, max_length=int(cfg.training["max_length"]), image_mean=cfg.image_mean,
                        image_std=cfg.image_std, generation=True)
    vocab = model.language_model.get_input_embeddings().num_embeddings
    # rows the tokenizer has no token for, the experts' placeholders (a generated one has no expert input to take its
    # place: "the prompts hold 1 <dyn> tokens but no input for expert 'dynamic'"), and whatever the caller suppresses
    placeholders = [t for t in tok.convert_tokens_to_ids(list(cfg.placeholders.values())) if t not in (None, tok.unk_token_id)]
    suppress = list(range(len(tok), vocab)) + placeholders + list(generate_kwargs.pop("suppress_tokens", None) or [])
    out: list[dict] = []
    for i in range(0, len(ds), batch_size):
        items = [ds[j] for j in range(i, min(len(ds), i + batch_size))]
        batch = _to_device(coll(items), device)
        rows = batch.pop("rows").tolist()
        o = model(**{k: v for k, v in batch.items() if k not in ("emotion_labels", "au_labels")})
        emo = torch.softmax(o.emotion_logits.float(), -1).cpu().numpy()
        au = torch.sigmoid(o.au_logits.float()).cpu().numpy()
        texts: dict[int, dict] = {}
        groups: dict[tuple[str, int], list[int]] = {}
        for k, r in enumerate(rows):  # one task and prompt length per generate call
            if generate_rows is not None and r in generate_rows:
                groups.setdefault((ds.s.task[r], len(items[k]["prompt_ids"])), []).append(k)
        for (task, _), ks in groups.items():
            budget = int(max_new_tokens or cfg.max_new_tokens(task))
            sub = _to_device(coll([items[k] for k in ks]), device)
            ids = model.generate(input_ids=sub["input_ids"], attention_mask=sub["attention_mask"],
                                 **{k: sub[k] for k in ("pixel_values", "frames", "flow", "region_stats") if k in sub},
                                 max_new_tokens=budget, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                 suppress_tokens=suppress or None, **{"do_sample": False, **generate_kwargs})
            new = ids[:, sub["input_ids"].shape[1]:].tolist()
            for k, seq in zip(ks, new, strict=True):
                ended = tok.eos_token_id in seq
                seq = seq[: seq.index(tok.eos_token_id)] if ended else seq
                texts[k] = {"text": tok.decode(seq, skip_special_tokens=True).strip(), "tokens": len(seq),
                            "max_new_tokens": budget, "truncated": not ended and len(seq) >= budget}
        for k, r in enumerate(rows):
            g = texts.get(k)
            out.append({"row": r, "emotion_probs": emo[k], "au_probs": au[k],
                        "generated": g["text"] if g else None, "generation": g})
    return out


# --- from head outputs to the JSON a user reads ------------------------------------------------------

def region_dicts(stats: np.ndarray, cfg: DeftConfig) -> list[dict]:
    """A row's (R, S) region statistics as the builder's region records."""
    return [{"name": n, **{f: float(stats[i, j]) for j, f in enumerate(cfg.region_stat_fields)}}
            for i, n in enumerate(cfg.region_names)]


def head_outputs(preds: list[dict], cfg: DeftConfig) -> dict:
    """Emotion and AUs of one clip from its rows' head outputs (averaged over the rows)."""
    probs = np.mean([p["emotion_probs"] for p in preds], 0)
    aup = np.mean([p["au_probs"] for p in preds], 0)
    labels = cfg.emotion_labels
    return {
        "emotion": labels[int(np.argmax(probs))] if labels else None,
        "emotion_probs": {lab: round(float(p), 4) for lab, p in zip(labels, probs, strict=False)},
        "aus": [int(a) for a, p in zip(cfg.au_list, aup, strict=True) if p > 0.5],
        "au_probs": {f"AU{a}": round(float(p), 4) for a, p in zip(cfg.au_list, aup, strict=True)},
    }


def explain(heads: dict, stats: np.ndarray | list[dict] | None, floor: float | None, cfg: DeftConfig,
            bc: BuildConfig, measured: Sequence[int] = (), built: dict | None = None) -> dict[str, str | None]:
    """``motion`` and ``reasoning`` texts: the measured motion and the heads' AUs and emotion, rendered with
    the builder's templates (variant 0). ``stats``: the builder's region records of the clip
    (:meth:`ShardSet.region_records`: with each region's noise, the builder judges a predicted AU as it judges a
    label), or the model's (R, S) region features where there are none. ``measured``: the AUs the clip's row shows
    (:meth:`ShardSet.measured_aus`), for those the builder measures by the face's landmarks (lips, jaw, eyes);
    ``built``: what the clip's row says (:meth:`ShardSet.built`: the regions the build reports as moving, the clip's
    duration class), so that the text says what the build says."""
    if stats is None:
        return {"motion": None, "reasoning": None}
    regions = stats if isinstance(stats, list) else region_dicts(stats, cfg)
    fl = float(floor or 0.0)
    return {task: render_prediction("motion" if task == "motion" else "explain", regions, heads["aus"],
                                    heads["emotion"], fl, bc, measured=measured, built=built)
            for task in ("motion", "reasoning")}


def _generated(preds: list[dict], tasks: list[str], heads: dict) -> dict:
    out = {}
    for task, p in zip(tasks, preds, strict=True):
        g = p.get("generation")
        if g is None:
            continue
        parsed = parse_answer(g["text"])
        agrees = {}
        if task in ("emotion", "explain"):
            agrees["emotion"] = parsed["emotion"] == heads["emotion"]
        if task in ("au", "explain"):
            agrees["aus"] = parsed["aus"] == sorted(heads["aus"])
        out[task] = {**g, "emotion": parsed["emotion"], "aus": parsed["aus"], "agrees_with_heads": agrees}
    return out


def predict_clip_rows(model, tok, shards: ShardSet, rows: list[int], bc: BuildConfig, extra_row: int | None = None
                      ) -> dict:
    """The JSON for one clip whose task rows (one per entry of ``TASKS``, in that order) are ``rows``."""
    cfg = model.config
    ask = rows + ([extra_row] if extra_row is not None else [])
    ds = DeftDataset(shards, ask, tok, with_answer=False)
    preds = predict_dataset(model, tok, ds, generate_rows=set(ask))
    task_preds = preds[: len(rows)]
    heads = head_outputs(task_preds, cfg)
    r0 = rows[0]
    stats = shards.explanation_regions(r0)
    res = {**heads, **explain(heads, stats, shards.noise_floor[r0], cfg, bc, shards.measured_aus(r0),
                              shards.built(r0))}
    res["generated"] = _generated(task_preds, [shards.task[r] for r in rows], heads)
    if extra_row is not None:
        g = preds[-1]["generation"]
        res["answer"] = g["text"]
        res["generated"]["instruction"] = {**g, **parse_answer(g["text"])}
    res["asked"] = {shards.task[r]: shards.instruction[r] for r in rows}
    res["truncated"] = sorted(f"generated.{k}" for k, g in res["generated"].items() if g["truncated"])
    res["sources"] = dict(SOURCES)
    return res


def _task_rows_table(row_table: pa.Table, instructions: dict[str, str]) -> pa.Table:
    """One clip's row repeated once per task, with the task's standard instruction and no answer."""
    n = len(instructions)
    t = row_table.take(pa.array([0] * n))
    cols = {"task": list(instructions), "instruction": list(instructions.values()), "answer": [""] * n,
            "id": [f"{row_table.column('clip_id')[0].as_py()}#{k}" for k in instructions]}
    for name, vals in cols.items():
        t = t.set_column(t.schema.get_field_index(name), name, pa.array(vals, t.schema.field(name).type))
    return t


def predict_row(run: str | Path, data: str | Path, row_id: str) -> dict:
    """Predict the clip of one shard row (``<clip_id>#<task>``; a bare clip id picks its first row): the four
    task instructions in the builder's standard wording, plus the row's own instruction."""
    model, tok = load_run(run)
    cfg = model.config
    bc, recorded = build_config_of(cfg)
    shards = ShardSet(data, cfg)
    r = shards.row_of_id.get(row_id)
    if r is None:
        cands = [i for i, c in enumerate(shards.clip_ids) if c == row_id]
        if not cands:
            raise ShardError(f"no row with id {row_id!r} (or clip id) in {data}")
        r = cands[0]
    table = _task_rows_table(_read_row(shards, r), instructions_of(cfg, bc))
    own = _read_row(shards, r)
    one = ShardSet.from_table(pa.concat_tables([table, own]), cfg, where=f"{shards._where(r)} (as asked)")
    res = predict_clip_rows(model, tok, one, list(range(len(TASKS))), bc, extra_row=len(TASKS))
    rec = own.select(["onset_frame", "apex_frame", "apex_source", "offset_frame", "head_motion"]).to_pylist()[0]
    res.update({"id": shards.ids[r], "clip_id": shards.clip_ids[r], "database": shards.database[r],
                "subject": shards.subject[r], "instruction": shards.instruction[r],
                "reference_answer": shards.answer[r], "label": shards.emotion[r], "clip": None,
                "onset": rec["onset_frame"], "apex": rec["apex_frame"],
                "apex_estimated": rec["apex_source"] == "estimated", "offset": rec["offset_frame"],
                "head_motion": rec["head_motion"], "notes": _other_build(data, cfg) + _unknown_class(shards, r, cfg),
                "build_settings": "the row's own, as built into the shards"})
    return res


def _unknown_class(shards: ShardSet, r: int, cfg: DeftConfig) -> list[str]:
    """A note where the row's label is no class the model knows (a CASME II model asked of a SAMM clip's fear)."""
    target = shards.targets()[r]
    if not target or target in (cfg.emotion_labels or []):
        return []
    return [f"the row's label {target!r} is not among the model's classes {list(cfg.emotion_labels)}: its emotion "
            f"cannot come out right"]


def _other_build(data: str | Path, cfg: DeftConfig) -> list[str]:
    """A note where the row's build measured with other settings than the model's training data (its
    build_report.json's against the run's record; text settings aside): the experts then read motion on another
    scale (a row built at crop 112 read its lip corner at 1.10 px, 2.69 px at the training build's 224), and the
    prediction was given without a word."""
    report = Path(data) / "build_report.json"
    if not cfg.build_config or not report.is_file():
        return []
    try:
        theirs = dict(build_config_from_dict(json.loads(report.read_text(encoding="utf-8"))["config"]).settings())
    except (OSError, ValueError, KeyError, TypeError):
        return []
    mine = dict(build_config_from_dict(cfg.build_config).settings())
    differ = [k for k in mine if not k.startswith("text.") and k in theirs and theirs[k] != mine[k]]
    if not differ:
        return []
    shown = ", ".join(f"{k} {theirs[k]!r} (trained on {mine[k]!r})" for k in differ[:3])
    more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
    return [f"{data} was built with other settings than the model's training data: {shown}{more}; the experts read "
            f"its motion as measured there"]


def _read_row(shards: ShardSet, r: int) -> pa.Table:
    """Row ``r`` of the shards with every column, read from its row group only."""
    import pyarrow.parquet as pq

    f = shards.files[int(shards.file_of_row[r])]
    k = r - int(np.searchsorted(shards.file_of_row, shards.file_of_row[r]))
    pf = pq.ParquetFile(f)
    for rg in range(pf.num_row_groups):
        n = pf.metadata.row_group(rg).num_rows
        if k < n:
            return pf.read_row_group(rg).slice(k, 1)
        k -= n
    raise ShardError(f"{f}: row {r} not found")


def clip_table(cfg: DeftConfig, folder: str | Path, onset: int | None = None, apex: int | None = None,
               offset: int | None = None, instructions: dict[str, str] | None = None):
    """A clip folder as shard rows in memory (one per instruction), measured by the builder with the settings
    that made the model's training data: (table, evidence, clip, build settings, recorded?)."""
    bc, recorded = build_config_of(cfg)
    clip = clip_from_folder(folder, onset, apex, offset)
    ev = compute_evidence(clip, bc)
    check = cross_check(clip, ev, bc)
    asked = instructions or instructions_of(cfg, bc)
    samples = [Sample(task=t, template_id=f"{t}/0", instruction=q, answer="") for t, q in asked.items()]
    return rows_to_table(clip_rows(clip, ev, check, samples, bc)), ev, clip, bc, recorded


def predict_clip(run: str | Path, folder: str | Path, onset: int | None = None, apex: int | None = None,
                 offset: int | None = None) -> dict:
    """Run the builder's motion evidence on a clip folder, then the model, through the training input path."""
    model, tok = load_run(run)
    cfg = model.config
    table, ev, clip, bc, recorded = clip_table(cfg, folder, onset, apex, offset)
    shards = ShardSet.from_table(table, cfg, where=str(folder))
    res = predict_clip_rows(model, tok, shards, list(range(len(TASKS))), bc)
    notes = []
    if apex is not None and ev.apex != apex:  # the builder's rule: an apex on the onset frame carries no timing
        notes.append(f"the apex given ({apex}) is the onset frame: it was estimated from the motion ({ev.apex})"
                     if apex == clip.onset else f"the apex given ({apex}) was not used: estimated at {ev.apex}")
    # the keys of a row's prediction (predict_row), a clip having no shard row: a script reads either alike
    res.update({"id": None, "clip_id": clip.clip_id, "database": None, "subject": None, "instruction": None,
                "answer": None, "reference_answer": None, "label": None})
    res.update({"clip": str(folder), "onset": clip.onset, "apex": ev.apex, "apex_estimated": ev.apex_estimated,
                "offset": clip.offset if clip.offset is not None else ev.offset, "head_motion": ev.head_motion,
                "notes": notes,
                "build_settings": "as recorded from the training data's build_report.json" if recorded else
                "builder defaults (the training data had no build_report.json)"})
    return res
