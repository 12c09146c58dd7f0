"""Frame access for a clip, from a folder of images or from a video file.

Each frame is decoded at most once per reader (decoding dominates everything but the flow), and
always to 8-bit grey: colour adds nothing to TV-L1 or to the landmark model.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..records import Clip


class FrameReader:
    def __init__(self, clip: Clip):
        self.clip = clip
        self._cache: dict[int, np.ndarray] = {}
        self._video: list[np.ndarray] | None = None

    @property
    def numbers(self) -> list[int]:
        """Available frame numbers, ascending."""
        if self.clip.video:
            return list(range(len(self._decode_video())))
        return sorted(self.clip.frames)

    def get(self, n: int) -> np.ndarray:
        if n in self._cache:
            return self._cache[n]
        if self.clip.video:
            frames = self._decode_video()
            if not 0 <= n < len(frames):
                raise InputError("missing_frame", f"frame {n} is outside the video's {len(frames)} frames",
                                 self.clip.video, self.clip.source_row, "frame")
            img = frames[n]
        else:
            path = self.clip.frames.get(n)
            if path is None:
                raise InputError("missing_frame", f"frame {n} of clip {self.clip.clip_id} is missing",
                                 self.clip.source_file, self.clip.source_row, "frame")
            img = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if img is None:
                reason = "missing_frame" if not Path(path).exists() else "bad_frame"
                raise InputError(reason, f"cannot read frame {n} ({path})", path, self.clip.source_row, "frame")
        self._cache[n] = img
        return img

    def _decode_video(self) -> list[np.ndarray]:
        if self._video is None:
            cap = cv2.VideoCapture(str(self.clip.video))
            if not cap.isOpened():
                raise InputError("bad_frame", "cannot open video", self.clip.video, self.clip.source_row, "path")
            frames = []
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img)
            cap.release()
            if not frames:
                raise InputError("bad_frame", "video has no decodable frames", self.clip.video,
                                 self.clip.source_row, "path")
            self._video = frames
        return self._video
