"""Small fake Uni-MER shards that follow docs/ARCHITECTURE.md's schema, for the deft_model tests.

Each clip's emotion is decidable from its motion: every class plants its AUs' motion (flow blobs at
the canonical region centres, moving in the FACS direction, and matching per-region statistics), while
the onset face is a per-subject random texture that says nothing about the emotion. Frames brighten
faintly where the motion is, so the dynamic expert sees some of it too.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from unimer_builder import facs, labels

# Class -> planted AUs (subject's sides implied by region families).
CLASS_AUS: dict[str, tuple[int, ...]] = {
    "happiness": (6, 12),
    "surprise": (1, 2),
    "disgust": (4, 9),
    "repression": (15, 17),
    "anger": (4, 7),
    "contempt": (14,),
    "negative": (4, 15),  # SMIC's classes
    "positive": (6, 12),
}
DATABASE_CLASSES = {"casme2": ("happiness", "surprise", "disgust", "repression"),
                    "samm": ("happiness", "surprise", "anger"),
                    "smic": ("negative", "positive", "surprise")}
# Canonical aligned-face region centres (x, y in [0, 1]); deft_model.experts uses the same defaults.
from deft_model.experts import DEFAULT_REGION_LAYOUT  # noqa: E402

TEMPLATES = {
    "emotion": ["What emotion does this micro-expression show?", "Name the emotion of this clip."],
    "au": ["Which action units are active?", "List the facial action units you see."],
    "motion": ["Describe the facial motion.", "How does the face move?"],
    "explain": ["Explain which emotion this is and why.", "What emotion is shown, and what motion supports it?"],
}


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _answer(task: str, emotion: str, aus: tuple[int, ...]) -> str:
    au_txt = ", ".join(f"AU{a} ({facs.au_name(a)})" for a in aus)
    motion = "; ".join(facs.AUS[a].phrase for a in aus)
    if task == "emotion":
        return f"The emotion is {emotion}."
    if task == "au":
        return f"Active action units: {au_txt}."
    if task == "motion":
        return f"{motion[0].upper()}{motion[1:]}."
    return f"{motion[0].upper()}{motion[1:]} ({', '.join(f'AU{a}' for a in aus)}), which indicates {emotion}."


def _nested_list(values: np.ndarray, shape: tuple[int, ...]) -> pa.Array:
    """(n, *shape) array -> list<list<...<halffloat>>> as the datasets Array3D storage writes it."""
    n = values.shape[0]
    arr: pa.Array = pa.array(values.reshape(-1))
    dims = [n, *shape]
    for level in range(len(dims) - 1, 0, -1):
        count = int(np.prod(dims[:level]))
        offsets = pa.array(np.arange(count + 1, dtype=np.int32) * dims[level])
        arr = pa.ListArray.from_arrays(offsets, arr)
    return arr


def make_clip(rng: np.random.Generator, subject_tex: np.ndarray, emotion: str, image_size: int,
              stack_len: int, stack_size: int, flow_size: int, amp: float = 1.5):
    aus = CLASS_AUS[emotion]
    F = flow_size
    yy, xx = np.mgrid[0:F, 0:F].astype(np.float32) / (F - 1)
    u = rng.normal(0, 0.05, (F, F)).astype(np.float32)
    v = rng.normal(0, 0.05, (F, F)).astype(np.float32)
    moved: dict[str, tuple[float, float]] = {}
    for au in aus:
        for reg in facs.regions_for(au):
            ex, ey = facs.expected_vector(au, reg)
            a = amp * rng.uniform(0.7, 1.3)
            moved[reg.name] = (ex * a, ey * a)
    jitter = rng.normal(0, 0.015, 2)
    for name, (dx, dy) in moved.items():
        cx, cy = DEFAULT_REGION_LAYOUT[name]
        g = np.exp(-(((xx - cx - jitter[0]) ** 2 + (yy - cy - jitter[1]) ** 2) / (2 * 0.05**2)))
        u += dx * g
        v += dy * g
    strain = np.sqrt(np.gradient(u, axis=1) ** 2 + np.gradient(v, axis=0) ** 2)
    flow = np.stack([u, v, strain]).astype(np.float16)
    stats = []
    for r in facs.REGIONS:
        if r.name in moved:
            dx, dy = moved[r.name]
            mag = float(np.hypot(dx, dy))
            stats.append(dict(name=r.name, mean=mag * 0.8, peak=mag, dx=dx * 0.8, dy=dy * 0.8,
                              coherence=float(rng.uniform(0.8, 0.95)), strain=float(rng.uniform(0.02, 0.05)),
                              z=float(mag / 0.05), peak_time=float(rng.uniform(0.3, 0.6))))
        else:
            dx, dy = rng.normal(0, 0.03, 2)
            stats.append(dict(name=r.name, mean=float(abs(rng.normal(0.06, 0.01))), peak=0.1, dx=float(dx),
                              dy=float(dy), coherence=float(rng.uniform(0.1, 0.4)),
                              strain=float(rng.uniform(0.0, 0.01)), z=float(rng.normal(0, 1)),
                              peak_time=float(rng.uniform(0, 1))))
    onset = cv2.resize(subject_tex, (image_size, image_size), interpolation=cv2.INTER_AREA)
    noise = rng.normal(0, 3, onset.shape)
    onset = np.clip(onset + noise, 0, 255).astype(np.uint8)
    S = stack_size
    ys, xs = np.mgrid[0:S, 0:S].astype(np.float32) / (S - 1)
    bump = np.zeros((S, S), np.float32)
    for name in moved:
        cx, cy = DEFAULT_REGION_LAYOUT[name]
        bump += np.exp(-(((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * 0.05**2)))
    base = cv2.resize(subject_tex, (S, S), interpolation=cv2.INTER_AREA).astype(np.float32)
    frames = []
    for t in range(stack_len):
        phase = np.sin(np.pi * t / max(1, stack_len - 1))
        f = base + 12 * phase * bump + rng.normal(0, 2, (S, S))
        frames.append(np.clip(f, 0, 255).astype(np.uint8))
    return dict(flow=flow, regions=stats, onset=onset, apex=onset, frames=frames, aus=aus)


def write_shards(out: str | Path, n_subjects: int = 4, clips_per_class: int = 2, seed: int = 0,
                 databases: tuple[str, ...] = ("casme2",), tasks: tuple[str, ...] = ("emotion", "au", "motion", "explain"),
                 image_size: int = 32, stack_len: int = 4, stack_size: int = 32, flow_size: int = 16,
                 drop_columns: tuple[str, ...] = (), n_files: int = 2, amp: float = 1.5) -> Path:
    """Write ``out/data/train-0000k-of-0000n.parquet``; returns ``out``."""
    out = Path(out)
    (out / "data").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    for db in databases:
        for s in range(1, n_subjects + 1):
            subject = f"sub{s:02d}"
            tex = cv2.GaussianBlur(rng.uniform(0, 255, (64, 64)).astype(np.float32), (0, 0), 3)
            tex = cv2.normalize(tex, None, 40, 220, cv2.NORM_MINMAX).astype(np.uint8)
            k = 0
            for emotion in DATABASE_CLASSES[db]:
                for _ in range(clips_per_class):
                    k += 1
                    clip = f"EP{s:02d}_{k:02d}"
                    c = make_clip(rng, tex, emotion, image_size, stack_len, stack_size, flow_size, amp=amp)
                    au_text = "+".join(str(a) for a in c["aus"])
                    clip_id = f"{db}/{subject}/{clip}"
                    for task in tasks:
                        variant = int(rng.integers(0, len(TEMPLATES[task])))
                        instruction = TEMPLATES[task][variant]
                        answer = _answer(task, emotion, c["aus"])
                        rows.append(dict(
                            id=f"{clip_id}#{task}", clip_id=clip_id, database=db, subject=subject, clip=clip,
                            onset_frame=1, apex_frame=4, offset_frame=8, apex_source="label", fps=200.0,
                            emotion=emotion, emotion_composite=labels.composite(db, emotion),
                            emotion_class=labels.database_class(db, emotion), class_set=labels.default_class_set(db),
                            au_text=au_text,
                            aus=[dict(au=a, side=None, intensity=None, uncertain=False) for a in c["aus"]],
                            au_unparsed=[], aus_source="label", aus_supported=list(c["aus"]),
                            regions=c["regions"],
                            verdicts=[dict(au=a, side=None, region=facs.regions_for(a)[0].name, verdict="supported",
                                           z=10.0, direction_cos=0.9, timing_ok=True, reason="") for a in c["aus"]],
                            unexplained=[], noise_floor=0.05, noise_spread=0.01,
                            head_motion=dict(tx=0.0, ty=0.0, rotation=0.0, scale=1.0), flagged=False,
                            flag_reasons=[], task=task, template_id=f"{task}/{variant}", instruction=instruction,
                            answer=answer, messages=[dict(role="user", content=instruction),
                                                     dict(role="assistant", content=answer)],
                            onset_image=dict(bytes=_png(c["onset"]), path=None),
                            apex_image=dict(bytes=_png(c["apex"]), path=None),
                            frames=[dict(bytes=_png(f), path=None) for f in c["frames"]],
                            flow=c["flow"], config_fingerprint="fixture"))
    columns = [k for k in rows[0] if k not in drop_columns]
    chunks = np.array_split(np.arange(len(rows)), n_files)
    for i, idx in enumerate(chunks):
        part = [rows[j] for j in idx]
        data = {}
        for col in columns:
            vals = [r[col] for r in part]
            if col == "flow":
                data[col] = _nested_list(np.stack(vals), vals[0].shape)
            elif col in ("onset_frame", "apex_frame", "offset_frame"):
                data[col] = pa.array(vals, pa.int32())
            elif col in ("fps", "noise_floor", "noise_spread"):
                data[col] = pa.array(vals, pa.float32())
            elif col == "aus_supported":
                data[col] = pa.array(vals, pa.list_(pa.int32()))
            elif col in ("onset_image", "apex_image"):
                data[col] = pa.array(vals, pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
            elif col == "frames":
                data[col] = pa.array(vals, pa.list_(pa.struct([("bytes", pa.binary()), ("path", pa.string())])))
            elif col in ("au_unparsed", "flag_reasons"):
                data[col] = pa.array(vals, pa.list_(pa.string()))
            elif col == "unexplained":
                data[col] = pa.array(vals, pa.list_(pa.struct([("region", pa.string()), ("au", pa.int32()),
                                                                ("z", pa.float32()), ("dx", pa.float32()),
                                                                ("dy", pa.float32())])))
            else:
                data[col] = pa.array(vals)
        pq.write_table(pa.table(data), out / "data" / f"train-{i:05d}-of-{n_files:05d}.parquet",
                       row_group_size=64)
    return out


# --- pytest fixtures (import them into a test module to use them) ------------------------------------
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def shards_dir(tmp_path_factory) -> Path:
    """4 subjects x 4 classes x 2 clips x 4 tasks (128 rows) of CASME II-shaped fake shards."""
    return write_shards(tmp_path_factory.mktemp("deft_shards"), n_subjects=4, clips_per_class=2, seed=0)


@pytest.fixture(scope="session")
def small_shards_dir(tmp_path_factory) -> Path:
    """2 subjects x 4 classes x 1 clip x 4 tasks (32 rows): a held-out fold trains 2 steps per epoch."""
    return write_shards(tmp_path_factory.mktemp("deft_small"), n_subjects=2, clips_per_class=1, seed=0, n_files=1)


@pytest.fixture(scope="session")
def two_db_dir(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("deft_two_db"), n_subjects=3, clips_per_class=1, seed=1,
                        databases=("casme2", "samm"))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, shards_dir) -> Path:
    """A tiny model trained for 2 epochs with subject casme2/sub01 held out."""
    from deft_model.train import train

    out = tmp_path_factory.mktemp("deft_run") / "run"
    train(shards_dir, "tiny", out, fold="casme2/sub01", epochs=2, seed=0, verbose=False)
    return out


@pytest.fixture
def one_thread():
    """Small models run fastest on one thread, and do not fight the other tests for the cores (a module imports it
    and uses it in every test with ``pytestmark``)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
