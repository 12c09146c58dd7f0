"""Synthetic micro-expression databases: the embedded default every test and demo runs on.

``synthesize(out, fmt, clips, subjects, seed, frames)`` writes a database in a real layout plus
``ground_truth.json``; ``render_clip`` renders one clip's frames. Names load lazily, because the
layout writers in ``sources`` import :mod:`.spec` from this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GROUND_TRUTH", "PROTOTYPES", "Plant", "SynthClip", "render_clip", "subject_face", "synthesize"]

_WHERE = {
    "GROUND_TRUTH": "generate", "PROTOTYPES": "generate", "synthesize": "generate",
    "Plant": "motion", "render_clip": "motion", "subject_face": "motion", "SynthClip": "spec",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
