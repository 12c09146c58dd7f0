"""A window late in a video: reached by a seek (the default) against decoding every frame before it, side by side.

    python bench/video_seek.py [--frames 9] [--repeat 3]

For each video of the real-footage windows (``unimer_builder/validation/real_footage.csv``, fetched through
``validation.media``) longer than ``FrameReader.seek_after`` frames, a window of ``--frames`` frames ending 3
frames before its last is read by ``FrameReader`` as a build reads it, with seeking and with
``seek_after = inf`` (decoded from frame 0), best of ``--repeat``; the frames read must be equal.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from unimer_builder.records import Clip
from unimer_builder.sources.frames import FrameReader
from unimer_builder.validation import media
from unimer_builder.validation import real_footage as rf


def _read(clip: Clip, seek: bool) -> tuple[float, list[np.ndarray]]:
    reader = FrameReader(clip)
    if not seek:
        reader.seek_after = float("inf")
    t = time.perf_counter()
    frames = [reader.get(n) for n in range(clip.onset, clip.offset + 1)]
    return time.perf_counter() - t, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=9)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    print("| video | frames | window | sought, s | decoded from 0, s | ratio | frames equal |")
    print("|---|---|---|---|---|---|---|")
    total = [0.0, 0.0]
    for dist, member in sorted({(w.media, w.member) for w in rf.load_windows()}):
        video = str(media.media_file(dist, member))
        probe = Clip(database="manifest", subject="s", clip="c", onset=0, apex=None, offset=None, video=video,
                     source_file="bench", source_row=2)
        n = len(FrameReader(probe)._packet_times())
        onset = n - 3 - a.frames
        if onset <= FrameReader.seek_after:
            continue
        clip = Clip(database="manifest", subject="s", clip="c", onset=onset, apex=None, offset=onset + a.frames - 1,
                    video=video, source_file="bench", source_row=2)
        sought = min((_read(clip, True) for _ in range(a.repeat)), key=lambda r: r[0])
        counted = min((_read(clip, False) for _ in range(a.repeat)), key=lambda r: r[0])
        equal = all(np.array_equal(x, y) for x, y in zip(sought[1], counted[1], strict=True))
        total[0] += sought[0]
        total[1] += counted[0]
        print(f"| {member} | {n} | {onset}-{clip.offset} | {sought[0]:.3f} | {counted[0]:.3f} | "
              f"{counted[0] / sought[0]:.1f}x | {'yes' if equal else 'NO'} |")
    print(f"| all | | | {total[0]:.3f} | {total[1]:.3f} | {total[1] / total[0]:.1f}x | |")


if __name__ == "__main__":
    main()
