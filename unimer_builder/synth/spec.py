"""What the synthetic generator hands to a database layout writer: one clip's frames and labels."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SynthClip:
    subject: int  # 1-based subject number; each layout spells it its own way (sub01, 006, s1, spNO.1)
    index: int  # 1-based clip number within the subject
    frames: list[np.ndarray]  # HxW uint8 grey (or HxWx3 BGR), onset first, offset last
    first_frame: int  # database frame number of frames[0] (onset); numbering is consecutive
    apex_offset: int  # index into frames of the apex
    emotion: str  # the database's own spelling ("happiness", "Anger", "negative", "happy")
    au_text: str | None  # the database's AU string, e.g. "L12+6" (None for SMIC)
    fps: float = 200.0
    extra: dict = field(default_factory=dict)  # objective class, stimulus letter, ...

    @property
    def onset(self) -> int:
        return self.first_frame

    @property
    def apex(self) -> int:
        return self.first_frame + self.apex_offset

    @property
    def offset(self) -> int:
        return self.first_frame + len(self.frames) - 1
