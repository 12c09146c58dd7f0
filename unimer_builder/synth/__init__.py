"""Synthetic micro-expression databases with their ground truth.

``synthesize(out, fmt, clips, subjects, seed, frames, profile=...)`` writes a database in a real layout
plus ``ground_truth.json``. The ``default`` profile is the embedded one every test and demo runs on
(variations of one face photo, :mod:`.motion`); the ``hard`` profile (:mod:`.scene`) places several real
people's faces (:mod:`.identities`) in 640x480 frames with head pose and motion, blinks, flicker,
noise and JPEG compression, and amplitudes from micro to macro.
"""

from __future__ import annotations

from .generate import FRAMINGS, GROUND_TRUTH, PROFILES, PROTOTYPES, synthesize
from .motion import Plant, render_clip, subject_face

__all__ = ["FRAMINGS", "GROUND_TRUTH", "PROFILES", "PROTOTYPES", "Plant", "render_clip", "subject_face", "synthesize"]
