"""Faces cut to their frame, as the databases' ``Cropped`` releases store them: how many the detector finds.

    python bench/cropped_faces.py [--frames 3] [--margins 0 0.05 0.1 0.2]

For each video of the real-footage windows (``unimer_builder/validation/real_footage.csv``, fetched through
``validation.media``), ``--frames`` frames evenly spread over it (decoded in order): where the builder's detector
finds a face, the frame is cut to that face's 68 landmarks widened by ``margin`` of their box at the sides and
below and by a quarter of its height more above (the brows), then searched again, side by side, with the last
attempt of a frame widened by its edge pixels (``face.detect_pad``, the default) and without it (0).
"""

from __future__ import annotations

import argparse

import cv2
import numpy as np

from unimer_builder.config import FaceConfig
from unimer_builder.face import FaceAligner, interocular
from unimer_builder.validation import media
from unimer_builder.validation import real_footage as rf


def _frames(path, k: int) -> list[np.ndarray]:
    """``k`` frames evenly spread over the video, decoded in order (a count first, then only those kept)."""
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.grab():
        count += 1
    cap.release()
    picks = {int(t * (count - 1)) for t in np.linspace(0.15, 0.85, k)} if count else set()
    cap = cv2.VideoCapture(str(path))
    greys = []
    for n in range(max(picks, default=-1) + 1):
        if not cap.grab():
            break
        if n in picks:
            greys.append(cv2.cvtColor(cap.retrieve()[1], cv2.COLOR_BGR2GRAY))
    cap.release()
    return greys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    a = ap.parse_args()
    padded, stored = FaceAligner(FaceConfig()), FaceAligner(FaceConfig(detect_pad=0))
    videos = sorted({(w.media, w.member) for w in rf.load_windows()})
    counts = {m: [0, 0, 0, 0] for m in a.margins}
    missed: list[str] = []
    for dist, member in videos:
        for n, grey in enumerate(_frames(media.media_file(dist, member), a.frames)):
            found = padded.find(grey)
            if found is None:
                continue
            (x0, y0), (x1, y1) = found[1].min(0), found[1].max(0)
            w, h = x1 - x0, y1 - y0
            for m in a.margins:
                box = (max(int(x0 - m * w), 0), max(int(y0 - (0.25 + m) * h), 0), int(x1 + m * w), int(y1 + m * h))
                crop = np.ascontiguousarray(grey[box[1]:box[3], box[0]:box[2]])
                hits = bool(stored.detect_all(crop)), bool(padded.detect_all(crop))
                again = padded.find(crop) if hits[1] else None  # the right face: its landmarks where the uncut frame's lie
                right = again is not None and float(np.median(np.hypot(*(again[1] + box[:2] - found[1]).T))) < \
                    0.1 * interocular(found[1])
                c = counts[m]
                c[0] += 1
                c[1] += hits[0]
                c[2] += hits[1]
                c[3] += right
                if hits[1] and not hits[0]:
                    missed.append(f"{member} (pick {n + 1}) at margin {m:g}: {crop.shape[1]}x{crop.shape[0]} px")
    print(f"{len(videos)} videos, {a.frames} frames each\n")
    print("| margin | faces | found as stored | found, widened last (default) | of those, landmarks within 0.1 IOD |")
    print("|---|---|---|---|---|")
    for m, (n, s, p, r) in counts.items():
        print(f"| {m:g} | {n} | {s} | {p} | {r} |")
    print("\nfound only widened:\n" + "\n".join(f"  {x}" for x in missed))


if __name__ == "__main__":
    main()
