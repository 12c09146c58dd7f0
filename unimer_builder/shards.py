"""The shard contract: the schema, one clip's rows, and how images and flow are encoded and read back.

Layout of a build folder::

    OUT/.parts/<sha256(clip_id)[:20]>-<fingerprint>.parquet   one small file per clip (parts.py: resume state)
    OUT/data/train-00000-of-0000N.parquet                     the shards (consolidate.py)

Column types (see ``docs/ARCHITECTURE.md``, "Shard schema"):

* Images (``onset_image``, ``apex_image``, each item of ``frames``) are ``struct{bytes: binary, path:
  string}`` holding PNG bytes (8-bit grey), which is exactly the storage of ``datasets.Image()``.
  Each image is PNG-encoded once per clip and the same bytes are shared by that clip's rows.
* ``flow_image`` is the onset->apex flow as a colour map (``flowviz.flow_to_rgb``: hue direction,
  saturation magnitude up to ``flowviz.FULL_PX``) at ``crop_size``, RGB PNG: what the Hub's viewer shows.
* ``landmarks`` are the 68 aligned landmarks of the onset frame, ``[[x, y], ...]`` float32 in crop px: the
  geometry of the AU regions (``regions.region_masks``), so that readers can redraw them.
* ``crop_size`` is the side of the aligned crop in px: the unit of ``flow``, ``landmarks`` and every px value
  of ``regions`` (a flow of 256-px crops is 14 % larger than the same motion's at 224).
* ``flow`` is ``(3, F, F)`` float16 (u, v, optical strain; F = ``flow_size``; values in pixels of the
  ``crop_size`` crop, resized with INTER_AREA, never normalised). Parquet stores it as the storage of
  ``datasets.Array3D((3, F, F), "float16")``: ``list<list<list<halffloat>>>``. Part files hold the
  plain nested list (workers need not import ``datasets``); shards hold the Arrow extension type with
  the ``huggingface`` schema metadata, so ``datasets.load_dataset(OUT)`` yields ``Array3D`` and
  decoded images. Read back into numpy without Python objects with :func:`flow_numpy`
  (three ``flatten()`` calls and a reshape: zero-copy over the float16 buffer).
"""

from __future__ import annotations

import functools
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from . import flowviz, labels
from .config import BuildConfig, OutputConfig
from .records import Clip, CrossCheck, Evidence, Sample

COMPRESSION = "zstd"

IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
FLOW_STORAGE = pa.list_(pa.list_(pa.list_(pa.float16())))

_f32 = pa.float32()
SCHEMA = pa.schema([
    ("id", pa.string()),
    ("clip_id", pa.string()),
    ("database", pa.string()),
    ("subject", pa.string()),
    ("clip", pa.string()),
    ("onset_frame", pa.int32()),
    ("apex_frame", pa.int32()),
    ("offset_frame", pa.int32()),
    ("apex_source", pa.string()),
    ("fps", _f32),
    ("duration_s", _f32),
    ("duration_class", pa.string()),
    ("emotion", pa.string()),
    ("emotion_composite", pa.string()),
    ("emotion_class", pa.string()),
    ("class_set", pa.string()),
    ("au_text", pa.string()),
    ("aus", pa.list_(pa.struct([("au", pa.int32()), ("side", pa.string()), ("intensity", pa.string()),
                                ("uncertain", pa.bool_()),
                                ("alternatives", pa.list_(pa.struct([("au", pa.int32()), ("side", pa.string()),
                                                                     ("intensity", pa.string())])))]))),
    ("au_unparsed", pa.list_(pa.string())),
    ("aus_source", pa.string()),
    ("aus_supported", pa.list_(pa.int32())),
    ("regions", pa.list_(pa.struct([("name", pa.string()), ("mean", _f32), ("peak", _f32), ("dx", _f32),
                                    ("dy", _f32), ("coherence", _f32), ("strain", _f32), ("z", _f32),
                                    ("peak_time", _f32), ("head", _f32),
                                    ("noise", _f32), ("match", _f32),
                                    ("apex_share", _f32), ("dis_dx", _f32), ("dis_dy", _f32)]))),
    ("verdicts", pa.list_(pa.struct([("au", pa.int32()), ("side", pa.string()), ("region", pa.string()),
                                     ("verdict", pa.string()), ("z", _f32), ("direction_cos", _f32),
                                     ("timing_ok", pa.bool_()), ("reason", pa.string()), ("pyfeat", pa.string()),
                                     ("agreement", pa.string())]))),
    ("unexplained", pa.list_(pa.struct([("region", pa.string()), ("au", pa.int32()), ("z", _f32),
                                        ("dx", _f32), ("dy", _f32)]))),
    ("au_sources", pa.list_(pa.struct([("au", pa.int32()), ("side", pa.string()), ("labelled", pa.bool_()),
                                       ("flow", pa.string()), ("pyfeat", pa.string()), ("pyfeat_onset", _f32),
                                       ("pyfeat_apex", _f32), ("said_by", pa.string()), ("agreement", pa.string()),
                                       ("stated", pa.bool_())]))),
    ("noise_floor", _f32),
    ("noise_spread", _f32),
    ("head_motion", pa.struct([("tx", _f32), ("ty", _f32), ("rotation", _f32), ("scale", _f32), ("yaw", _f32),
                               ("pitch", _f32)])),
    ("blinks", pa.list_(pa.int32())),
    ("moved_regions", pa.list_(pa.string())),
    ("flagged", pa.bool_()),
    ("flag_reasons", pa.list_(pa.string())),
    ("task", pa.string()),
    ("template_id", pa.string()),
    ("instruction", pa.string()),
    ("answer", pa.string()),
    ("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
    ("onset_image", IMAGE),
    ("apex_image", IMAGE),
    ("frames", pa.list_(IMAGE)),
    ("stack_frames", pa.list_(pa.int32())),
    ("flow", FLOW_STORAGE),
    ("flow_image", IMAGE),
    ("landmarks", pa.list_(pa.list_(_f32))),
    ("crop_size", pa.int32()),
    ("config_fingerprint", pa.string()),
])
COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
# The columns that hold the face's pixels: a build or a push with ``--no-images`` leaves them out (subjects of
# licence-restricted databases). ``flow`` and ``flow_image`` stay: they hold the motion between the frames,
# not the face's appearance (a still face is white in ``flow_image``), and ``landmarks`` are 68 points.
FACE_COLUMNS: tuple[str, ...] = ("onset_image", "apex_image", "frames")


# --- datasets features ---------------------------------------------------------------------------


def _dtype_feature(t: pa.DataType):
    import datasets

    if pa.types.is_struct(t):
        if t == IMAGE:
            return datasets.Image()
        return {t.field(i).name: _dtype_feature(t.field(i).type) for i in range(t.num_fields)}
    if pa.types.is_list(t):
        return datasets.List(_dtype_feature(t.value_type))
    return datasets.features.features.generate_from_arrow_type(t)


@functools.lru_cache(maxsize=8)
def features(flow_size: int = OutputConfig.flow_size, images: bool = True):
    """The ``datasets.Features`` of a shard: Image for PNG structs, Array3D for ``flow``; without the face
    pixel columns where ``images`` is False."""
    import datasets

    feats = {}
    for f in SCHEMA:
        if not images and f.name in FACE_COLUMNS:
            continue
        if f.name == "flow":
            feats[f.name] = datasets.Array3D(shape=(3, flow_size, flow_size), dtype="float16")
        else:
            feats[f.name] = _dtype_feature(f.type)
    return datasets.Features(feats)


@functools.lru_cache(maxsize=8)
def shard_schema(flow_size: int = OutputConfig.flow_size, images: bool = True) -> pa.Schema:
    """SCHEMA with ``flow`` as datasets' Array3D extension type and the ``huggingface`` metadata (without the
    face pixel columns where ``images`` is False)."""
    feats = features(flow_size, images)
    hf = feats.arrow_schema
    fields = [hf.field("flow") if f.name == "flow" else f for f in SCHEMA if images or f.name not in FACE_COLUMNS]
    return pa.schema(fields).with_metadata({b"huggingface": hf.metadata[b"huggingface"]})


def flow_numpy(column, flow_size: int | None = None) -> np.ndarray:
    """``flow`` column (Array3D or nested lists, chunked or not) -> ``(N, 3, F, F)`` float16 array."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    n = len(column)
    if n == 0:
        f = flow_size or 0
        return np.zeros((0, 3, f, f), np.float16)
    flat = column.flatten().flatten().flatten().to_numpy(zero_copy_only=False)
    f = flow_size or int(round((flat.size / (3 * n)) ** 0.5))
    return flat.reshape(n, 3, f, f)


def _flow_array(flows: list[np.ndarray]) -> pa.Array:
    """Nested list array from equal-shape (3, F, F) float16 arrays, without Python lists."""
    if not flows:
        return pa.array([], type=FLOW_STORAGE)
    a = np.ascontiguousarray(np.stack(flows).astype(np.float16, copy=False))
    n, c, h, w = a.shape
    values = pa.array(a.reshape(-1))
    rows_ = pa.ListArray.from_arrays(pa.array(np.arange(0, n * c * h + 1, dtype=np.int32) * w), values)
    chans = pa.ListArray.from_arrays(pa.array(np.arange(0, n * c + 1, dtype=np.int32) * h), rows_)
    return pa.ListArray.from_arrays(pa.array(np.arange(0, n + 1, dtype=np.int32) * c), chans)


# --- rows ----------------------------------------------------------------------------------------


# PNG settings: the "average" row filter with run-length deflate. On face crops (noisy or clean) this
# encodes about 2x faster than zlib level 3 with adaptive filters (the old setting) and the files come
# out ~9 % smaller; the pixels are the same (PNG is lossless). Measured in bench/README.md.
@functools.lru_cache(maxsize=1)
def _png_params() -> list[int]:
    return [cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE,
            cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_AVG]


def _png(img: np.ndarray, size: int | None = None) -> bytes:
    img = np.asarray(img)
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if size and img.shape[:2] != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", img, _png_params())
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def reduce_flow(flow: np.ndarray, strain: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 2) flow + (H, W) strain -> (3, size, size) float16; values stay in crop pixels."""
    u = np.asarray(flow[..., 0], np.float32)
    v = np.asarray(flow[..., 1], np.float32)
    s = np.asarray(strain, np.float32)
    out = [cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) if c.shape != (size, size) else c
           for c in (u, v, s)]
    return np.stack(out).astype(np.float16)


def _f(x) -> float | None:
    return None if x is None else float(x)


def clip_rows(clip: Clip, ev: Evidence, check: CrossCheck, samples: list[Sample], cfg: BuildConfig) -> list[dict]:
    """One row per sample: the clip's columns (shared objects) joined with each sample's text."""
    if not samples:
        return []
    out = cfg.output
    onset_png = {"bytes": _png(ev.onset_crop, out.image_size), "path": "onset.png"}
    apex_png = {"bytes": _png(ev.apex_crop, out.image_size), "path": "apex.png"}
    frame_nums = [int(n) for n in ev.stack_frames]
    frames = [{"bytes": _png(f, out.stack_size), "path": f"frame_{frame_nums[i] if i < len(frame_nums) else i}.png"}
              for i, f in enumerate(ev.stack)]
    flow = reduce_flow(ev.flow, ev.strain, out.flow_size)
    flow_png = {"bytes": flowviz.png_rgb(flowviz.flow_to_rgb(ev.flow)), "path": "flow.png"}
    hm = ev.head_motion or {}
    base = {
        "clip_id": clip.clip_id,
        "database": clip.database,
        "subject": clip.subject,
        "clip": clip.clip,
        "onset_frame": int(clip.onset),
        "apex_frame": int(ev.apex),
        "offset_frame": None if clip.offset is None else int(clip.offset),
        "apex_source": "estimated" if ev.apex_estimated else "label",
        "fps": _f(clip.fps),
        "duration_s": labels.duration_s(clip.onset, clip.offset, clip.fps, ev.times),
        "duration_class": labels.duration_class(clip.onset, clip.apex, clip.offset, clip.fps, ev.times),
        "emotion": clip.emotion,
        "emotion_composite": labels.composite_of(clip, cfg.text.composite),
        "emotion_class": labels.database_class(clip.database, clip.emotion),
        "class_set": labels.default_class_set(clip.database),
        "au_text": clip.au_text,
        "aus": [{"au": t.au, "side": t.side, "intensity": t.intensity, "uncertain": bool(t.uncertain),
                 "alternatives": [{"au": a.au, "side": a.side, "intensity": a.intensity} for a in t.alternatives]}
                for t in clip.aus.tokens],
        "au_unparsed": list(clip.aus.unparsed) + list(clip.aus.unknown),
        "aus_source": check.aus_source,
        "aus_supported": sorted(int(a) for a in check.supported),
        "regions": [{"name": r.name, "mean": r.mean, "peak": r.peak, "dx": r.dx, "dy": r.dy,
                     "coherence": r.coherence, "strain": r.strain, "z": r.z, "peak_time": _f(r.peak_time),
                     "head": r.head, "noise": r.noise, "match": r.match,
                     "apex_share": _f(r.apex_share), "dis_dx": _f(r.dis_dx), "dis_dy": _f(r.dis_dy)}
                    for r in ev.regions],
        "verdicts": [{"au": v.au, "side": v.side, "region": v.region, "verdict": v.verdict, "z": v.z,
                      "direction_cos": v.direction_cos, "timing_ok": v.timing_ok, "reason": v.reason,
                      "pyfeat": v.pyfeat, "agreement": v.agreement}
                     for v in check.verdicts],
        "unexplained": [{"region": u.region, "au": u.au, "z": u.z, "dx": u.dx, "dy": u.dy}
                        for u in check.unexplained],
        "au_sources": [asdict(s) for s in check.sources],
        "noise_floor": float(ev.floor),
        "noise_spread": float(ev.floor_spread),
        "head_motion": {k: _f(hm.get(k)) for k in ("tx", "ty", "rotation", "scale", "yaw", "pitch")},
        "blinks": [int(n) for n in ev.blinks],
        "moved_regions": list(check.moved),
        "flagged": bool(check.flagged),
        "flag_reasons": list(check.flag_reasons),
        "onset_image": onset_png,
        "apex_image": apex_png,
        "frames": frames,
        "stack_frames": frame_nums,
        "flow": flow,
        "flow_image": flow_png,
        "landmarks": np.asarray(ev.face.landmarks, np.float32).tolist(),
        "crop_size": int(ev.face.size),
        "config_fingerprint": cfg.fingerprint(),
    }
    rows = []
    for s in samples:
        row = {
            "id": f"{clip.clip_id}#{s.task}",
            **base,
            "task": s.task,
            "template_id": s.template_id,
            "instruction": s.instruction,
            "answer": s.answer,
            "messages": [{"role": "user", "content": s.instruction}, {"role": "assistant", "content": s.answer}],
        }
        rows.append({name: row[name] for name in COLUMNS})
    return rows


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows (as :func:`clip_rows` makes them) -> a table of :data:`SCHEMA` (flow as nested lists)."""
    if not rows:
        return SCHEMA.empty_table()
    arrays = []
    for field in SCHEMA:
        if field.name == "flow":
            arrays.append(_flow_array([np.asarray(r["flow"]) for r in rows]))
        else:
            arrays.append(pa.array([r[field.name] for r in rows], type=field.type))
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


# --- shards --------------------------------------------------------------------------------------


def shard_name(i: int, n: int) -> str:
    return f"train-{i:05d}-of-{n:05d}.parquet"


def as_shard_table(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table of :data:`SCHEMA` (as parts hold it) in ``schema`` (:func:`shard_schema`): ``flow`` as the
    Array3D extension type."""
    ext = schema.field("flow").type
    cols = []
    for f in schema:
        col = t.column(f.name)
        if f.name == "flow":
            chunks = [c.storage if isinstance(c, pa.ExtensionArray) else c for c in col.chunks]
            col = pa.chunked_array([pa.ExtensionArray.from_storage(ext, c.cast(ext.storage_type))
                                    for c in chunks], type=ext)
        elif col.type != f.type:
            col = col.cast(f.type)
        cols.append(col)
    return pa.Table.from_arrays(cols, schema=schema)


def open_shard(path: Path | str) -> pq.ParquetFile:
    """A shard opened for reading; one that is no Parquet file (cut short, written over) is a ``ValueError`` naming
    it (pyarrow's "Parquet magic bytes not found in footer" named no file)."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        if isinstance(e, OSError) and e.errno is not None:  # the file cannot be opened at all: the environment's
            if e.filename is None:  # pyarrow's names no file: the message then blamed the command's destination
                raise OSError(e.errno, " ".join(str(e.strerror or e).split()), str(path)) from e
            raise
        raise ValueError(f"{path}: not a readable shard ({e}); build it again") from e


def read_shard(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file, read in the calling thread by the plain Parquet reader.

    Not ``pq.read_table``: it scans through ``pyarrow.dataset``, which can leave the last reference to
    the file's schema to one of Arrow's threads. Our schema holds a Python extension type (``flow``,
    datasets' Array3D); dropped there while the interpreter exits, it needs the GIL that is gone, and
    the process aborts after its work is done ("terminate called without an active exception", exit
    134: `unimer demo` 4 times in 44 under load)."""
    with open_shard(path) as pf:
        return pf.read(columns=columns, use_threads=False)


def shard_files(out: Path | str) -> list[Path]:
    """A build's shards (``OUT/data/train-*.parquet``), for whatever reads a build (export, inspect, push, the card,
    the ground-truth score); where there are none, ``FileNotFoundError`` says why: no such folder, a build that has
    not finished (its measured clips wait in ``.parts``: the same command finishes it; "run `unimer build` first"
    sent its user to start over), or a folder no build wrote."""
    out = Path(out)
    files = sorted((out / "data").glob("train-*.parquet"))
    if files:
        return files
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: no such folder; give the output folder of `unimer build`")
    if (out / ".parts").is_dir() and any((out / ".parts").glob("*.parquet")):
        raise FileNotFoundError(f"{out}: no shards yet (data/train-*.parquet): its build has not finished; run the "
                                f"same `unimer build` command again to finish it (the clips measured so far are kept)")
    raise FileNotFoundError(f"{out / 'data'}: no shards (train-*.parquet); give the output folder of `unimer build`")


def read_shards(out_dir: Path | str, columns: list[str] | None = None) -> pa.Table:
    """All shards of a build as one table (for checks and the card); flow stays Arrow."""
    return pa.concat_tables([read_shard(f, columns=columns) for f in shard_files(out_dir)])
