"""TV-L1 presets and crop sizes: time per clip (one onset->apex TV-L1 call) and end-point error
against the planted synthetic displacement; then, per preset, the builder on real footage.

    python bench/flow_presets.py [--pairs 8] [--sizes 128 224 256] [--threads 0] [--real | --real-only]

Real footage (``--real``): every annotated window of ``validation/real_footage.csv`` built with each preset
(the builder's own pyramid rule deepens it for large motion), scored as ``bench/real_footage.py`` does:
windows and checks passed, still windows with motion reported, and the mean TV-L1 seconds per clip.

Pairs come from the synthetic generator (``synth.motion.render_clip``): a subject's face with the AUs of
an emotion prototype planted as smooth Gaussian bumps (1-2 px at the apex, 288x288 frames, sensor noise
sigma 1-2 grey levels as in `unimer synth`), without head jitter so that the planted field g is the
whole truth. The builder's aligner (dlib 68 points, eye-based similarity M) makes the crops; the true
crop flow is g carried through M: ``truth(q) = A g(M^-1 q)`` with A the linear part of M.

EPE = mean |flow - truth| (crop px) over the face (convex hull of the 68 landmarks), reported also in
original-frame px (divided by M's scale) so that crop sizes compare. "do nothing" is the EPE of a zero
flow. Time is the median of the pairs' TV-L1 calls, with --threads OpenCV threads (0: all cores, as
`unimer build --workers 1` runs it). Preset rows come from ``config.TVL1_PRESETS``; each pair runs at the
pyramid depth the builder would choose (``FlowConfig.scales_for`` of the planted motion's 99th percentile).
"""

from __future__ import annotations

import argparse
import os
import time

import cv2
import numpy as np

from unimer_builder.config import TVL1_PRESETS, FaceConfig, FlowConfig
from unimer_builder.face import FaceAligner, warp
from unimer_builder.flow import make_tvl1, tvl1_flow
from unimer_builder.synth.motion import Plant, render_clip
from unimer_builder.validation import real_footage as rf

# Emotion prototypes of the generator (synth/generate.py), planted bilaterally.
PROTOTYPES = [(6, 12), (1, 2), (4, 9), (14, 17), (4, 7), (1, 15), (1, 2, 5, 20), (10, 25)]


def planted_pair(i: int, rng: np.random.Generator):
    """(onset, apex) uint8 frames and the planted apex field g (HxWx2, frame px)."""
    aus = PROTOTYPES[i % len(PROTOTYPES)]
    plants = [Plant(au, None, float(rng.uniform(1.0, 2.0))) for au in aus]
    clip = render_clip(1 + i % 4, plants, rng, frames=14, jitter=False)
    return clip.frames[0], clip.frames[clip.apex_offset], clip.field


def truth_in_crop(g: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    warped = cv2.warpAffine(g, matrix, (size, size), flags=cv2.INTER_LINEAR)
    return warped @ matrix[:, :2].T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 224, 256])
    ap.add_argument("--threads", type=int, default=0, help="OpenCV threads (0: every core)")
    ap.add_argument("--repeat", type=int, default=2, help="timing passes; each pair's best is kept")
    ap.add_argument("--real", action="store_true", help="also build the real-footage windows with every preset")
    ap.add_argument("--real-only", action="store_true", help="only the real-footage table")
    ap.add_argument("--workers", type=int, default=0, help="build workers for --real (0: one per core)")
    args = ap.parse_args()
    if not args.real_only:
        synthetic(args)
    if args.real or args.real_only:
        real(args)


def real(args) -> None:
    """Each preset on the annotated real-footage windows (the same scoring as bench/real_footage.py)."""
    windows = rf.load_windows()
    print(f"\nreal footage: {len(windows)} annotated windows (validation/real_footage.csv)\n")
    print("| preset | windows passed | checks passed | still windows with motion reported | "
          "still windows with a region at z_supported | TV-L1 s per clip | build s |")
    print("|---|---|---|---|---|---|---|")
    for name in TVL1_PRESETS:
        t = time.perf_counter()
        ev = rf.evaluate(windows, preset=name, workers=args.workers)
        secs = time.perf_counter() - t
        ok, n = ev.checks
        still = ev.still
        tvl1 = ev.report.get("run", {}).get("mean_stage_seconds", {}).get("tvl1", float("nan"))
        print(f"| {name} | {sum(s.passed for s in ev.scores)}/{len(ev.scores)} | {ok}/{n} | "
              f"{sum(bool(s.moved) for s in still)}/{len(still)} | {sum(bool(s.raw) for s in still)}/{len(still)} | "
              f"{tvl1:.3f} | {secs:.0f} |", flush=True)


def synthetic(args) -> None:
    cv2.setNumThreads(args.threads or os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    pairs = [planted_pair(i, rng) for i in range(args.pairs)]
    print(f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads, nproc {os.cpu_count()}, "
          f"load1 {os.getloadavg()[0]:.2f}; {args.pairs} pairs; EPE over the face hull\n")
    print("| preset | crop px | ms per clip (TV-L1) | EPE crop px | EPE frame px | do nothing, frame px |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        aligner = FaceAligner(FaceConfig(crop_size=size))
        prepared = []
        for onset, apex, g in pairs:
            face = aligner.align(onset)
            truth = truth_in_crop(g, face.matrix, size)
            hull = cv2.convexHull(np.rint(face.landmarks).astype(np.int32))
            mask = np.zeros((size, size), np.uint8)
            cv2.fillConvexPoly(mask, hull, 1)
            scale = float(np.hypot(*face.matrix[0, :2]))  # crop px per frame px
            prepared.append((warp(onset, face), warp(apex, face), truth, mask.astype(bool), scale))
        for name in TVL1_PRESETS:
            cfg = FlowConfig.from_preset(name)
            tvl1 = make_tvl1(cfg)
            tvl1_flow(tvl1, prepared[0][0], prepared[0][1])  # first-call allocations
            times = np.full((args.repeat, len(prepared)), np.inf)
            epes, epes_frame, zero = [], [], []
            for r in range(args.repeat):
                for k, (a, b, truth, mask, scale) in enumerate(prepared):
                    t = time.perf_counter()
                    # the builder's pyramid rule, with the planted motion standing in for its DIS estimate
                    flow = tvl1_flow(tvl1, a, b, cfg.scales_for(float(np.percentile(np.linalg.norm(truth, axis=2)[mask], 99))))
                    times[r, k] = time.perf_counter() - t
                    if r == 0:
                        e = float(np.linalg.norm(flow - truth, axis=2)[mask].mean())
                        epes.append(e)
                        epes_frame.append(e / scale)
                        zero.append(float(np.linalg.norm(truth, axis=2)[mask].mean()) / scale)
            ms = 1000 * float(np.median(times.min(axis=0)))
            print(f"| {name} | {size} | {ms:.0f} | {np.mean(epes):.3f} | {np.mean(epes_frame):.3f} | "
                  f"{np.mean(zero):.3f} |", flush=True)


if __name__ == "__main__":
    main()
