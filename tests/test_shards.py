"""Rows, part files, shard consolidation and the dataset card, loaded back with ``datasets`` offline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from test_render import make_records

from unimer_builder import render, shards
from unimer_builder.card import write_card
from unimer_builder.config import BuildConfig, FaceConfig, OutputConfig
from unimer_builder.consolidate import consolidate
from unimer_builder.parts import part_path, write_part

CFG = BuildConfig(face=FaceConfig(crop_size=32), output=OutputConfig(image_size=32, stack_len=4, stack_size=16,
                                                                     flow_size=8))

CLIPS = [
    dict(clip="EP01_01"),
    dict(clip="EP02_03f", emotion="disgust", au_text="4+L10", supported=()),
    dict(clip="EP03_02", emotion="others", au_text="6", supported=(6,), subject="sub02"),
    dict(database="smic", subject="s1", clip="s1_ne_01", emotion="negative", au_text=None, inferred=True,
         unexplained=False),
    dict(database="samm", subject="006", clip="006_1_2", emotion="Contempt", au_text="R12+R14", supported=(12,)),
    dict(database="manifest", subject="u1", clip="a", emotion=None, au_text=None, inferred=True, supported=()),
]
N_ROWS = 4 * len(CLIPS) - 1  # the clip without an emotion has no emotion task


def _build_parts(parts: Path, cfg: BuildConfig = CFG, clips=CLIPS) -> list[str]:
    order = []
    for i, kw in enumerate(clips):
        clip, ev, check = make_records(seed=i, size=cfg.face.crop_size, stack=cfg.output.stack_len,
                                       stack_size=cfg.output.stack_size, **kw)
        rows = shards.clip_rows(clip, ev, check, render.render_samples(clip, ev, check, cfg), cfg)
        write_part(parts, clip.clip_id, rows, cfg.fingerprint())
        order.append(clip.clip_id)
    return order


def _report() -> dict:
    return {
        "builder_version": "0.1.0",
        "format": "casme2",
        "counts": {"clips": 7, "built": 6, "skipped": 1, "flagged": 1, "rows": 21},
        "skip_reasons": {"no_face": 1},
        "agreement": {
            "all": {"AU12": {"name": "lip corner puller", "labelled": 2, "supported": 2, "weak": 0,
                             "contradicted": 0, "unverifiable": 0, "support_rate": 1.0}},
            "casme2": {"AU4": {"name": "brow lowerer", "labelled": 1, "supported": 0, "weak": 1,
                               "contradicted": 0, "unverifiable": 0, "support_rate": 0.0}},
        },
        "unexplained_motion": {"AU17": 2},
        "policy": "flag",
    }


def test_clip_rows_columns_and_shared_images():
    # sub01/EP02_01f (happiness) is a clip of the official MEGC2019 composite list
    clip, ev, check = make_records(clip="EP02_01f", size=32, stack=4, stack_size=16)
    samples = render.render_samples(clip, ev, check, CFG)
    rows = shards.clip_rows(clip, ev, check, samples, CFG)
    assert len(rows) == len(samples) == 4
    assert all(list(r) == list(shards.SCHEMA.names) for r in rows)
    r = rows[0]
    assert r["id"] == f"{clip.clip_id}#{samples[0].task}"
    assert r["messages"] == [{"role": "user", "content": samples[0].instruction},
                             {"role": "assistant", "content": samples[0].answer}]
    # each image encoded once per clip: the rows share the very same bytes objects
    assert all(x["onset_image"]["bytes"] is r["onset_image"]["bytes"] for x in rows)
    assert all(x["frames"][2]["bytes"] is r["frames"][2]["bytes"] for x in rows)
    img = cv2.imdecode(np.frombuffer(r["apex_image"]["bytes"], np.uint8), cv2.IMREAD_UNCHANGED)
    assert img.shape == (32, 32) and np.array_equal(img, ev.apex_crop)
    assert len(r["frames"]) == 4 and r["stack_frames"] == [int(x) for x in ev.stack_frames]
    # flow: (3, F, F) float16, area-resized, values still in crop pixels (not normalised)
    flow = r["flow"]
    assert flow.shape == (3, 8, 8) and flow.dtype == np.float16
    want_u = cv2.resize(ev.flow[..., 0], (8, 8), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(flow[0], want_u, atol=2e-3)
    assert abs(float(flow[1].mean()) - float(ev.flow[..., 1].mean())) < 1e-2
    assert r["aus"] == [{"au": 6, "side": None, "intensity": None, "uncertain": False, "alternatives": []},
                        {"au": 12, "side": "L", "intensity": None, "uncertain": False, "alternatives": []},
                        {"au": 4, "side": None, "intensity": None, "uncertain": False, "alternatives": []}]
    assert r["aus_supported"] == [6, 12] and r["apex_source"] == "label"
    assert r["crop_size"] == 32  # the flow's pixel unit travels with every row
    assert r["emotion_composite"] == "positive" and r["class_set"] == "casme2_5"
    assert r["duration_s"] == pytest.approx(0.05) and r["duration_class"] == "micro"  # frames 10..20 at 200 fps
    assert r["config_fingerprint"] == CFG.fingerprint()
    t = shards.rows_to_table(rows)
    assert t.schema.equals(shards.SCHEMA) and t.num_rows == 4
    assert np.array_equal(shards.flow_numpy(t.column("flow"))[2], flow)


def test_parts_resume_and_replace_stale(tmp_path):
    parts = tmp_path / "parts"
    clip, ev, check = make_records(size=32, stack=4, stack_size=16)
    rows = shards.clip_rows(clip, ev, check, render.render_samples(clip, ev, check, CFG), CFG)
    fp = CFG.fingerprint()
    assert not part_path(parts, clip.clip_id, fp).exists()
    p = write_part(parts, clip.clip_id, rows, fp)
    assert p == part_path(parts, clip.clip_id, fp) and p.exists()
    assert "/" not in p.name and clip.clip_id not in p.name
    assert [x.name for x in parts.iterdir()] == [p.name]  # no temp file left behind
    meta = json.loads(pq.read_schema(p).metadata[b"unimer"])
    assert meta == {"clip_id": clip.clip_id, "fingerprint": fp, "flow_size": 8}
    # other settings: the old part of that clip goes, one part per clip at a time
    p2 = write_part(parts, clip.clip_id, [], "otherfp")
    assert not p.exists() and p2.exists() and pq.read_metadata(p2).num_rows == 0
    assert not part_path(parts, clip.clip_id, fp).exists()


def test_consolidate_bounded_ordered_deterministic_atomic(tmp_path):
    parts = tmp_path / "parts"
    order = _build_parts(parts)
    sizes = [sum(pq.read_metadata(part_path(parts, c, CFG.fingerprint())).row_group(i).total_byte_size
                 for i in range(1)) for c in order]
    max_bytes = int(max(sizes) * 2.2)
    out = tmp_path / "out"
    paths = consolidate(parts, out, order[::-1], max_bytes)
    n = len(paths)
    assert n >= 2
    assert [p.name for p in paths] == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    assert sorted(x.name for x in (out / "data").iterdir()) == [p.name for p in paths]
    assert [x.name for x in out.iterdir()] == ["data"]  # no temporary folder left
    for p in paths:
        md = pq.read_metadata(p)
        assert sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups)) <= max_bytes
    t = shards.read_shards(out, ["clip_id", "task"])
    ids = list(dict.fromkeys(t.column("clip_id").to_pylist()))
    assert ids == order[::-1]  # clip order kept; a clip is never split across shards
    assert t.num_rows == N_ROWS

    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    # Same inputs -> byte-identical shards; a rebuild replaces the old set (fewer shards now).
    paths2 = consolidate(parts, out, order[::-1], max_bytes)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths2} == digest
    paths3 = consolidate(parts, out, order[::-1], 10**9)
    assert [p.name for p in paths3] == ["train-00000-of-00001.parquet"]
    assert sorted(x.name for x in (out / "data").iterdir()) == ["train-00000-of-00001.parquet"]
    # a missing part is an error naming the clip, and leaves the existing shards alone
    with pytest.raises(FileNotFoundError, match="nope"):
        consolidate(parts, out, order + ["casme2/sub09/nope"], 10**9)
    assert (out / "data" / "train-00000-of-00001.parquet").exists()


def test_dropped_clip_has_empty_part_and_no_rows(tmp_path):
    parts = tmp_path / "parts"
    order = _build_parts(parts, clips=CLIPS[:2])
    write_part(parts, "casme2/sub01/dropped", [], CFG.fingerprint())
    paths = consolidate(parts, tmp_path / "out", order + ["casme2/sub01/dropped"], 10**9)
    assert pq.read_metadata(paths[0]).num_rows == 8


def test_load_dataset_offline_with_card(tmp_path):
    import datasets

    parts = tmp_path / "parts"
    order = _build_parts(parts)
    out = tmp_path / "out"
    consolidate(parts, out, order, 10**9)
    card = write_card(out, _report(), CFG)
    text = card.read_text()
    assert text.startswith("---\n")
    import yaml

    fm = yaml.safe_load(text.split("---\n")[1])
    assert fm["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}]
    assert fm["license"] == "other" and "micro-expression" in fm["tags"] and fm["task_categories"]
    assert {f["name"] for f in fm["dataset_info"]["features"]} == set(shards.SCHEMA.names)
    for needle in ("2511.10948", "DEFT-LLM", "| AU12 |", "lip corner puller", "flow.preset", "| casme2 | happiness | 1 |",
                   "`config_fingerprint` | " + CFG.fingerprint(), "no_face", "`flow` | Array3D float16 (3, 8, 8)"):
        assert needle in text, needle

    ds = datasets.load_dataset(str(out), split="train")
    n_rows = N_ROWS
    assert ds.num_rows == n_rows
    assert list(ds.features) == list(shards.SCHEMA.names)
    assert isinstance(ds.features["onset_image"], datasets.Image)
    assert isinstance(ds.features["flow"], datasets.Array3D) and ds.features["flow"].shape == (3, 8, 8)
    row = ds[0]
    assert row["onset_image"].size == (32, 32) and row["onset_image"].mode == "L"
    assert len(row["frames"]) == 4 and row["frames"][0].size == (16, 16)
    assert np.asarray(row["flow"]).shape == (3, 8, 8)
    assert row["messages"][1]["role"] == "assistant"
    assert render.parse_answer(row["answer"])  # parsable
    by_task = {}
    for r in ds.select_columns(["id", "task", "answer", "aus_supported", "emotion"]):
        by_task.setdefault(r["task"], []).append(r)
        parsed = render.parse_answer(r["answer"])
        if r["task"] in ("au", "explain"):
            assert parsed["aus"] == sorted(r["aus_supported"])
    assert len(by_task["au"]) == len(CLIPS) and len(by_task["emotion"]) == len(CLIPS) - 1
    # Fast numpy path straight from pyarrow
    t = shards.read_shards(out, ["flow"])
    assert shards.flow_numpy(t.column("flow")).shape == (n_rows, 3, 8, 8)


def test_shards_are_read_by_the_plain_parquet_reader_only():
    """``pq.read_table`` and ``ParquetDataset`` scan through pyarrow.dataset, which can leave the last
    reference to our schema (a Python extension type: ``flow``) to one of Arrow's threads; dropped while the
    interpreter exits, it aborts the process after its work is done (`unimer demo`: exit 134, 4 runs in 44
    under load). Every read goes through ``shards.read_shard``; the reader keeps the extension type."""
    root = Path(__file__).resolve().parent.parent
    offenders = [f"{p.relative_to(root)}:{i}" for folder in ("unimer_builder", "deft_model", "bench")
                 for p in sorted((root / folder).rglob("*.py"))
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if ("read_table(" in line and "pq." in line) or "ParquetDataset" in line or "pyarrow.dataset" in line
                 and "import" in line]
    assert offenders == []


def test_read_file_keeps_columns_and_the_flow_extension_type(tmp_path):
    clip, ev, check = make_records(size=32, stack=4, stack_size=16)
    rows = shards.clip_rows(clip, ev, check, render.render_samples(clip, ev, check, CFG), CFG)
    out = tmp_path / "one.parquet"
    pq.write_table(shards.rows_to_table(rows), out)
    t = shards.read_shard(out, columns=["clip_id", "flow"])
    assert t.column_names == ["clip_id", "flow"] and t.num_rows == len(rows)
    assert t.schema.field("flow").type == shards.SCHEMA.field("flow").type
    assert np.array_equal(shards.flow_numpy(t.column("flow"))[0], rows[0]["flow"])
