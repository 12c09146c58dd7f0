"""How much of a planted sub-pixel motion TV-L1 reads, and how noisy its region means are, per setting.

    python bench/flow_attenuation.py [--faces 12] [--amplitudes 0.3 0.6 1.2 2.5] [--seed 1]

Onset frames of a hard-profile synthetic SMIC (real faces in 640x480 frames, ``unimer synth --profile hard``)
are aligned as the builder aligns them; a smooth upward Gaussian bump (sigma 0.15 IOD) is warped in at ten AU
regions, and both crops get their own sensor noise (sigma 1-3) and JPEG (75-95). Printed per TV-L1 setting: the
share of the planted region mean that the flow's region mean reads (by amplitude), the standard deviation of
region means on a pair with no motion (noise and JPEG only), and their ratio at 0.6 px. No registration, no head
motion: what TV-L1 itself does to a micro-expression's motion (bench/README.md section 6).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

import unimer_builder as u
from unimer_builder import flow as fl
from unimer_builder import regions as rg
from unimer_builder.config import BuildConfig, FlowConfig
from unimer_builder.face import FaceAligner, interocular, warp
from unimer_builder.tools import Tools

REGIONS = ["brow_outer_R", "brow_outer_L", "lower_lid_R", "lower_lid_L", "cheek_R", "cheek_L", "lip_corner_R",
           "lip_corner_L", "chin", "nose"]
SETTINGS = {"fast (default)": ("fast", {}), "fast, lambda 0.3": ("fast", {"lambda_": 0.3}),
            "fast, lambda 0.5": ("fast", {"lambda_": 0.5}), "fast, no median": ("fast", {"median_filtering": 1}),
            "fast, 5 warps": ("fast", {"warps": 5}), "opencv": ("opencv", {})}


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    return cv2.imdecode(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1], 0)


def faces(n: int, seed: int) -> list[np.ndarray]:
    """Onset frames of a hard synthetic SMIC, one per clip."""
    with tempfile.TemporaryDirectory() as d:
        root = u.synthesize(Path(d) / "smic", "smic", clips=n, subjects=5, seed=seed, frames=8, profile="hard")
        out = []
        for clip in u.read_clips(root, "smic"):
            if hasattr(clip, "frames") and clip.frames:
                out.append(cv2.imread(str(clip.frames[clip.onset]), cv2.IMREAD_GRAYSCALE))
        return out[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--faces", type=int, default=12)
    ap.add_argument("--amplitudes", type=float, nargs="+", default=[0.3, 0.6, 1.2, 2.5])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    cfg = BuildConfig()
    aligner = FaceAligner(cfg.face)
    rng = np.random.default_rng(args.seed)
    pairs = []  # (onset, {amp: apex}, still, masks, planted field per amp 1)
    for img in faces(args.faces, args.seed):
        face = aligner.align(img)
        crop = warp(img, face).astype(np.float32)
        s = crop.shape[0]
        lm = face.landmarks.astype(np.float64)
        masks = rg.region_masks(lm, s, within=rg.face_mask(lm, s, cfg.regions), cfg=cfg.regions)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        bump = np.zeros((s, s), np.float32)
        for name in REGIONS:
            ys, xs = np.nonzero(masks[name])
            bump += np.exp(-((xx - xs.mean()) ** 2 + (yy - ys.mean()) ** 2) / (2 * (0.15 * interocular(lm)) ** 2))
        q, sigma = int(rng.integers(75, 96)), float(rng.uniform(1, 3))

        def shot(im, q=q, sigma=sigma):
            return _jpeg(np.clip(im + rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8), q)

        # the apex b with b(p + F(p)) = a(p): F = -amp * bump upward
        apex = {a: shot(cv2.remap(crop, xx, yy + a * bump, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
                for a in args.amplitudes}
        pairs.append((shot(crop), apex, shot(crop), masks, bump))
    print(f"{len(pairs)} faces; read = flow's region mean / planted region mean (upward); noise = sd of region "
          f"means with no motion\n")
    print("| setting | " + " | ".join(f"read at {a:g} px" for a in args.amplitudes) + " | noise sd px | "
          "signal / noise at 0.6 px |")
    print("|---|" + "---|" * (len(args.amplitudes) + 2))
    for label, (preset, over) in SETTINGS.items():
        fc = FlowConfig.from_preset(preset, **over)
        reads = {a: [] for a in args.amplitudes}
        noise = []
        with Tools.create(cfg.with_(flow=fc)) as t:
            for onset, apex, still, masks, bump in pairs:
                z = fl.tvl1_flow(t.tvl1, onset, still, fc.nscales)
                noise += [float(z[..., 1][masks[n]].mean()) for n in REGIONS]
                for a in args.amplitudes:
                    f = fl.tvl1_flow(t.tvl1, onset, apex[a], fc.nscales)
                    reads[a] += [float(-f[..., 1][masks[n]].mean() / (a * bump[masks[n]].mean())) for n in REGIONS]
        sd = float(np.std(noise))
        mid = min(args.amplitudes, key=lambda a: abs(a - 0.6))
        planted = np.mean([0.6 * bump[masks[n]].mean() for *_, masks, bump in pairs for n in REGIONS])
        cells = " | ".join(f"{np.mean(reads[a]):.2f}" for a in args.amplitudes)
        print(f"| {label} | {cells} | {sd:.3f} | {np.mean(reads[mid]) * planted / sd:.1f} |", flush=True)


if __name__ == "__main__":
    main()
