# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""Shard reading, folds, the collator and input errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deft_fixtures import shards_dir, two_db_dir, write_shards  # noqa: F401

from deft_model.configuration import tiny_config
from deft_model.data import DeftCollator, DeftDataset, ShardError, ShardSet, find_shards
from deft_model.train import build_tokenizer


def test_reads_light_columns_and_decodes_visuals_once_per_clip(shards_dir):
    cfg = tiny_config()
    s = ShardSet(shards_dir, cfg)
    assert s.n == 4 * 4 * 2 * 4
    assert s.subjects() == [f"casme2/sub0{i}" for i in range(1, 5)]
    assert s.emotion_labels() == ["disgust", "happiness", "repression", "surprise"]
    assert s.region_stats.shape == (s.n, 17, 8)
    s.load_visuals()
    assert s.decoded.all() and s.flow.shape == (32, 3, 16, 16) and s.frames.shape == (32, 4, 32, 32)
    # the four task rows of a clip share one decoded clip
    assert len(set(s.row_clip[:4])) == 1
    happy = [r for r in range(s.n) if s.emotion[r] == "happiness"][0]
    lip = cfg.region_names.index("lip_corner_L")
    assert s.region_stats[happy, lip, cfg.region_stat_fields.index("z")] > 10
    assert set(s.aus[happy]) == {6, 12}


def test_loso_folds_never_train_on_the_held_out_subject(two_db_dir):
    s = ShardSet(two_db_dir, tiny_config())
    keys = s.subjects()
    assert "samm/sub01" in keys and "casme2/sub01" in keys  # same subject name in two databases = two folds
    for key in keys:
        train, test = s.split(key)
        assert {s.folds[r] for r in test} == {key}
        assert key not in {s.folds[r] for r in train}
        assert len(train) + len(test) == s.n


def test_fold_errors_are_clear(two_db_dir, tmp_path):
    s = ShardSet(two_db_dir, tiny_config())
    with pytest.raises(ShardError, match="ambiguous"):
        s.split("sub01")
    with pytest.raises(ShardError, match="matches no subject"):
        s.split("sub99")
    assert s.resolve_fold("samm/sub02") == "samm/sub02"
    # composite protocol: a subject whose clips all drop out of the composite set is an empty fold
    d = write_shards(tmp_path / "c", n_subjects=2, clips_per_class=1, databases=("samm",))
    sc = ShardSet(d, tiny_config(emotion_target="composite"))
    sc.emotion_composite = [None if f == "samm/sub02" else c for f, c in zip(sc.folds, sc.emotion_composite, strict=False)]
    with pytest.raises(ShardError, match="no rows to evaluate"):
        sc.split("samm/sub02")


def test_an_unfinished_build_is_no_dataset(tmp_path):
    """A build interrupted before its shards keeps its measured clips in ``.parts``: ``deft train --data`` found
    them by searching the folder and trained on part of the database without a word."""
    d = write_shards(tmp_path / "b", n_subjects=2, clips_per_class=1)
    (d / "data").rename(d / ".parts")
    with pytest.raises(ShardError, match="has not finished.*same `unimer build` command again"):
        find_shards(d)


def test_a_folder_of_several_builds_is_refused_and_one_of_one_build_is_that_build(tmp_path):
    """`deft train --data runs_parent` with two builds below it trained on both, every clip twice, without a word; a
    folder holding one build was read, but its build settings were not found (predict measured with defaults)."""
    import json

    from deft_model.data import build_settings

    for name in ("a", "b"):
        b = write_shards(tmp_path / "multi" / name, n_subjects=2, clips_per_class=1, n_files=1)
        (b / "build_report.json").write_text(json.dumps({"config": {"face": {"crop_size": 224}, "name": name}}))
    with pytest.raises(ShardError, match=r"multi holds 2 builds \(.*multi/a, .*multi/b\): pass one with --data"):
        find_shards(tmp_path / "multi")
    (tmp_path / "one").mkdir()
    (tmp_path / "multi" / "a").rename(tmp_path / "one" / "a")
    assert find_shards(tmp_path / "one") == find_shards(tmp_path / "one" / "a")
    assert build_settings(tmp_path / "one")["name"] == "a" == build_settings(tmp_path / "one" / "a")["name"]


def test_missing_required_column_is_named(tmp_path):
    d = write_shards(tmp_path / "x", n_subjects=1, clips_per_class=1, drop_columns=("flow",), n_files=1)
    with pytest.raises(ShardError, match=r"missing required column\(s\) \['flow'\]"):
        ShardSet(d, tiny_config())
    # switching the motion expert off makes flow unnecessary
    ShardSet(d, tiny_config(experts=["structure", "dynamic"]))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no Parquet shards"):
        find_shards(tmp_path / "empty")
    with pytest.raises(ShardError, match="does not exist"):
        find_shards(tmp_path / "nowhere")


def test_collator_masks_prompt_tokens(shards_dir):
    cfg = tiny_config()
    s = ShardSet(shards_dir, cfg)
    cfg.emotion_labels = s.emotion_labels()
    rows = [0, 1, 2, 3]
    tok = build_tokenizer(cfg, s, range(s.n))
    ds = DeftDataset(s, rows, tok)
    items = [ds[i] for i in range(len(rows))]
    b = DeftCollator(tok.pad_token_id)(items)
    for i, it in enumerate(items):
        p, a = len(it["prompt_ids"]), len(it["answer_ids"])
        assert (b["labels"][i, :p] == -100).all()
        assert b["labels"][i, p:p + a].tolist() == it["answer_ids"]
        assert (b["labels"][i, p + a:] == -100).all()
        assert b["attention_mask"][i].sum() == p + a
        assert b["input_ids"][i, :p].tolist() == it["prompt_ids"]
        assert it["answer_ids"][-1] == tok.eos_token_id
        assert b["prompt_end"][i] == p - 1
        assert tok.decode(it["answer_ids"], skip_special_tokens=True) == s.answer[rows[i]]
    n_motion = (b["input_ids"] == tok.convert_tokens_to_ids("<motion>")).sum(1)
    assert (n_motion == cfg.n_tokens("motion")).all() and cfg.n_tokens("motion") == 18  # 17 regions + summary
    assert ((b["input_ids"] == tok.convert_tokens_to_ids("<heads>")).sum(1) == 1).all()
    assert b["pixel_values"].shape == (4, 3, 32, 32) and b["flow"].dtype == torch.float32
    g = DeftCollator(tok.pad_token_id, generation=True)(items)
    assert "labels" not in g
    for i, it in enumerate(items):  # left padding, prompt only
        p = len(it["prompt_ids"])
        assert g["input_ids"][i, -p:].tolist() == it["prompt_ids"]
        assert g["attention_mask"][i].sum() == p


def test_reads_datasets_array3d_and_image_features(tmp_path):
    """The builder may write through `datasets` (Array3D extension, Image struct): read it too."""
    import datasets

    src = write_shards(tmp_path / "src", n_subjects=1, clips_per_class=1, n_files=1)
    s0 = ShardSet(src, tiny_config())
    s0.load_visuals()
    ds = datasets.Dataset.from_parquet(str(find_shards(src)[0]))
    feats = ds.features.copy()
    feats["flow"] = datasets.Array3D((3, 16, 16), "float16")
    feats["onset_image"] = datasets.Image()
    feats["frames"] = [datasets.Image()]
    ds = ds.cast(feats)
    (tmp_path / "hf" / "data").mkdir(parents=True)
    ds.to_parquet(str(tmp_path / "hf" / "data" / "train-00000-of-00001.parquet"))
    s1 = ShardSet(tmp_path / "hf", tiny_config())
    s1.load_visuals()
    assert np.array_equal(s0.flow, s1.flow) and np.array_equal(s0.onset, s1.onset)
    assert np.array_equal(s0.frames, s1.frames)


def test_holding_out_the_only_subject_says_the_data_has_one(tmp_path):
    """A one-subject dataset's LOSO fold said only "leaves no training rows", not that the data holds one subject
    (the builder says so of such a build)."""
    data = write_shards(tmp_path / "one", n_subjects=1, clips_per_class=1, seed=0, n_files=1)
    with pytest.raises(ShardError, match="leaves no training rows; the data holds this one subject only"):
        ShardSet(data, tiny_config()).split("casme2/sub01")
    two = write_shards(tmp_path / "two", n_subjects=2, clips_per_class=1, seed=0, n_files=1)
    train, test = ShardSet(two, tiny_config()).split("casme2/sub01")
    assert train and test


def test_a_build_without_face_pixels_is_told_to_train_the_motion_expert(tmp_path, shards_dir):
    """A `unimer build --no-images` shard failed with "missing required column(s) ['onset_image', 'frames']" and no
    word of the experts that read it."""
    import pyarrow.parquet as pq

    from unimer_builder.shards import FACE_COLUMNS

    for f in find_shards(shards_dir):
        t = pq.read_table(f)
        pq.write_table(t.drop_columns([c for c in FACE_COLUMNS if c in t.column_names]), tmp_path / f.name)
    with pytest.raises(ShardError, match=r"no face pixels \(built with `unimer build --no-images`\).*--experts motion"):
        ShardSet(tmp_path, tiny_config())
    assert ShardSet(tmp_path, tiny_config(experts=["motion"])).n == ShardSet(shards_dir, tiny_config()).n
