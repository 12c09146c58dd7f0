"""Errors a user can act on; the CLI prints them as one line and exits 2."""

from __future__ import annotations

import os


class ShardError(ValueError):
    """Unusable shards: missing files or columns, empty folds."""


class RunError(RuntimeError):
    """A run folder that cannot be used as asked (already finished, half-written, trained differently)."""


class OfflineModelError(RuntimeError):
    """A named model (Hub id or local folder) that cannot be loaded."""


def offline_message(name: str, what: str, err: BaseException) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    where = "it is not a local folder and not in the local Hugging Face cache"
    hint = (" (HF_HUB_OFFLINE is set: the model cannot be loaded offline; download it once with network"
            " access or point the config at a local folder)") if offline else ""
    return f"cannot load {what} {name!r}: {where}{hint}. Underlying error: {type(err).__name__}: {err}"
