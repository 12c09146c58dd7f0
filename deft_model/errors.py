"""Errors a user can act on; the CLI prints them as one line and exits 2."""

from __future__ import annotations

import os
from pathlib import Path

from .hubaccess import hub_unreachable


class ShardError(ValueError):
    """Unusable shards: missing files or columns, empty folds."""


class RunError(RuntimeError):
    """A run folder that cannot be used as asked (already finished, half-written, trained differently)."""


class FolderRefused(RunError):
    """A run folder refused as it stands (another run's, finished, trained otherwise): nothing in it is touched,
    not even the half-written files a failed run of one's own takes back (another process may be writing them)."""


class OfflineModelError(RuntimeError):
    """A named model (Hub id or local folder) that cannot be loaded."""


# What a local model folder needs, by part: file name patterns (any one will do).
_PARTS = {"config": ("config.json",),
          "weights": ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json"),
          "tokenizer": ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")}
# The parts each kind of named model is read from (an LLM folder also gives the run its tokenizer).
_NEEDS = {"LLM": ("config", "weights", "tokenizer"), "tokenizer": ("config", "weights", "tokenizer")}


def local_folder_message(folder: Path, what: str, underlying: str) -> str:
    """A named model that is an existing folder but cannot be loaded: which of its parts are missing (an
    offline or download message would send the user looking in the wrong place)."""
    needs = _NEEDS.get(what, ("config", "weights"))
    missing = [part for part in needs if not any(any(folder.glob(g)) for g in _PARTS[part])]
    if missing:
        want = {"config": "config.json", "weights": "weights (*.safetensors or pytorch_model.bin)",
                "tokenizer": "tokenizer files (tokenizer.json, or tokenizer_config.json with its vocabulary)"}
        return (f"cannot load {what} from the local folder {folder}: it has no {' and no '.join(missing)} files "
                f"(a model folder needs {', '.join(want[p] for p in needs)})")
    return f"cannot load {what} from the local folder {folder}: {underlying}"


def offline_message(name: str, what: str, err: BaseException) -> str:
    """Why a named model could not be loaded: a local folder's missing files, else that it is not cached."""
    if Path(name).is_dir():
        return local_folder_message(Path(name), what, f"{type(err).__name__}: {err}")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    if Path(name).is_absolute() or name.startswith("."):  # a folder's path, not a Hub id: it moved or went
        what_is = "a file, not a model folder" if Path(name).exists() else "no such folder (moved or deleted?)"
        return (f"cannot load {what} {name!r}: {what_is}; a config names its base models by `llm` and `vision` (a "
                f"trained run in its config.json): point them at the model's folder. Underlying error: "
                f"{type(err).__name__}: {err}")
    where = "it is not a local folder and not in the local Hugging Face cache"
    hint = (" (HF_HUB_OFFLINE is set: the model cannot be loaded offline; download it once with network"
            " access or point the config at a local folder)") if offline else \
        (" (the Hub cannot be reached from this machine, so only the local cache was read; download it once with "
         "network access or point the config at a local folder)") if hub_unreachable() else ""
    return f"cannot load {what} {name!r}: {where}{hint}. Underlying error: {type(err).__name__}: {err}"
