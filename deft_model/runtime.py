"""Loading a finished run, and the process settings training and prediction share.

A finished run keeps its model at the run folder's root (``RUN/config.json``, ``RUN/model.safetensors``,
``RUN/adapter/``, the tokenizer files), so that ``AutoModel.from_pretrained(RUN)`` and
``AutoTokenizer.from_pretrained(RUN)`` load it. Runs written before that layout hold the same files in
``RUN/model/``; they are still read.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .configuration import DeftConfig
from .errors import RunError

MODEL_MARK = "config.json"


def model_dir(run: str | Path) -> Path:
    run = Path(run)
    for d in (run, run / "model"):
        if (d / MODEL_MARK).exists() and _model_type(d / MODEL_MARK) == "deft":
            return d
    raise FileNotFoundError(_no_model(run))


def _model_type(path: Path) -> str | None:
    """The ``model_type`` a model's ``config.json`` names; a file that is no JSON object (a user's own, a folder of
    that name) is no deft model, named as such."""
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{path}: not a model's config.json ({e})") from None
    return cfg.get("model_type") if isinstance(cfg, dict) else None


def _no_model(run: Path) -> str:
    """Why ``run`` holds no model, and what to do: a newcomer's run folder is often mistyped, unfinished or a LOSO
    evaluation's, and "train one first" sent them to train again."""
    if not run.exists():
        return f"run folder {run} does not exist"
    if (run / "run.json").exists():
        try:
            data = json.loads((run / "run.json").read_text()).get("data", "DATA")
        except (OSError, ValueError, AttributeError):
            data = "DATA"
        cmd = f"deft train --data {data} --out {run} --resume"
        return f"{run} is an unfinished run (stopped before its final model): continue it with `{cmd}`"
    folds = sorted(p.parent for pattern in ("folds/*/run.json", "*/folds/*/run.json") for p in run.glob(pattern))
    if folds:
        return f"{run} holds evaluation folds, not one model: pass one fold's run, e.g. --run {folds[0]}"
    return f"{run} holds no trained model (expected {run}/config.json); train one with `deft train` first"


def finished(run: str | Path) -> bool:
    try:
        model_dir(run)
        return True
    except FileNotFoundError:
        return False


def quiet_hf() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def set_cpu_threads(cfg: DeftConfig, device) -> None:
    n = cfg.training.get("num_threads")
    if n and torch.device(device).type == "cpu":
        torch.set_num_threads(int(n))


def load_run(run: str | Path):
    """(model in eval mode, tokenizer) of a finished run."""
    from .modeling import DeftModel
    from .tokenizer import load_tokenizer

    d = model_dir(run)
    quiet_hf()
    model = DeftModel.from_pretrained(str(d))
    set_cpu_threads(model.config, next(model.parameters()).device)
    try:
        tok = load_tokenizer(d)
    except Exception as e:  # noqa: BLE001
        raise RunError(f"{d}: the run's tokenizer cannot be loaded ({e})") from e
    return model, tok


def stopped_early(run: dict) -> int | None:
    """The steps a finished run trained where ``--max-steps`` stopped it short of its epochs (its run.json); None
    where it trained them all. A run from before the steps were recorded: its ``max_steps``, if any."""
    if run.get("steps") is not None and run.get("steps_planned") is not None:
        return int(run["steps"]) if run["steps"] < run["steps_planned"] else None
    return run.get("max_steps")
