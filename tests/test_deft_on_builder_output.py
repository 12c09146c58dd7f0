"""The model package on what the builder really writes (not on hand-made fixture shards)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import unimer_builder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A synthetic CASME II database (2 subjects, 6 clips) and its unimer build."""
    tmp = tmp_path_factory.mktemp("built")
    src, out = tmp / "src", tmp / "unimer"
    unimer_builder.synthesize(src, "casme2", clips=6, subjects=2, frames=8)
    cfg = unimer_builder.BuildConfig(text=unimer_builder.TextConfig(composite="labels"))
    assert not unimer_builder.build(src, out, cfg, "casme2", workers=1)["skipped"]
    return src, out


def test_train_and_evaluate_a_fold_on_real_builder_shards(built, tmp_path):
    from deft_model.evaluate import evaluate_run
    from deft_model.predict import predict_clip
    from deft_model.train import train

    src, out = built
    run = tmp_path / "run"
    model = train(out, "tiny", run, fold="casme2/sub01", max_steps=3, verbose=False)
    assert (model / "config.json").exists()
    info = json.loads((run / "run.json").read_text())
    assert info["fold"] == "casme2/sub01"
    # the builder settings of the training data travel with the model
    assert info["config"]["build_config"] == json.loads((out / "build_report.json").read_text())["config"]
    result = evaluate_run(run, "loso", data=out, generate=True, verbose=False)
    assert result["n_clips"] == 3  # the held-out subject's clips, and only those
    preds = [json.loads(line) for line in (run / "loso_predictions.jsonl").read_text().splitlines()]
    assert {p["subject"] for p in preds} == {"sub01"}
    assert all(p["head"] in {"happiness", "disgust", "repression", "surprise", "others"} for p in preds)
    assert all(set(p["generated_by_task"]) == {"emotion", "au", "explain"} for p in preds)
    clip = next(c for c in unimer_builder.read_clips(src, "casme2") if c.clip_id == preds[0]["clip_id"])
    res = predict_clip(run, Path(next(iter(clip.frames.values()))).parent, clip.onset, clip.apex, clip.offset)
    assert res["build_settings"].startswith("as recorded")
    assert res["emotion"] in res["emotion_probs"] and res["reasoning"]


def test_a_clip_folder_reaches_the_model_as_its_shard_rows_do(built):
    """One input path: the same clip through training's reading of the shards and through prediction's
    measurement of its folder gives the same tensors, bit for bit."""
    from deft_model.configuration import tiny_config
    from deft_model.data import DeftCollator, DeftDataset, ShardSet, build_settings
    from deft_model.predict import clip_table
    from deft_model.train import build_tokenizer

    src, out = built
    cfg = tiny_config(build_config=build_settings(out))
    shards = ShardSet(out, cfg)
    cfg.emotion_labels = shards.emotion_labels()
    tok = build_tokenizer(cfg, shards, range(shards.n))
    coll = DeftCollator(tok.pad_token_id, generation=True)
    checked = 0
    for clip in unimer_builder.read_clips(src, "casme2"):
        rows = [r for r in range(shards.n) if shards.clip_ids[r] == clip.clip_id]
        if not rows:
            continue
        folder = Path(next(iter(clip.frames.values()))).parent
        table, *_ = clip_table(cfg, folder, clip.onset, clip.apex, clip.offset,
                               instructions={shards.task[r]: shards.instruction[r] for r in rows})
        one = ShardSet.from_table(table, cfg, where=str(folder))
        a = coll([DeftDataset(shards, rows, tok, with_answer=False)[i] for i in range(len(rows))])
        b = coll([DeftDataset(one, range(len(rows)), tok, with_answer=False)[i] for i in range(len(rows))])
        for key in ("input_ids", "attention_mask", "pixel_values", "frames", "flow", "region_stats"):
            assert torch.equal(a[key], b[key]), (clip.clip_id, key)
        checked += 1
    assert checked >= 2


def test_an_explanation_is_judged_on_the_builders_own_region_records(built, monkeypatch):
    """`deft predict` judged a predicted AU on the model's region features, which hold no noise: a bilateral AU was
    never pooled and corners the builder takes as carried or stretched were described as AU12's rise."""
    import pyarrow.parquet as pq

    from deft_model import evaluate
    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.predict import explain, region_dicts

    _, out = built
    cfg = tiny_config(experts=["motion"])
    shards = ShardSet(out, cfg)
    first = pq.read_table(sorted((out / "data").glob("*.parquet"))[0], columns=["regions"]).column("regions")[0].as_py()
    assert shards.region_records(0) == first and all(r["noise"] > 0 for r in first)
    heads = {"aus": [6, 12], "emotion": "happiness"}
    bc = unimer_builder.BuildConfig()
    texts = explain(heads, shards.region_records(0), shards.noise_floor[0], cfg, bc)
    assert texts["reasoning"] == unimer_builder.render_prediction("explain", first, [6, 12], "happiness",
                                                                  shards.noise_floor[0], bc)
    assert "noise" not in region_dicts(shards.region_stats[0], cfg)[0]  # the features alone: the fallback
    seen = []
    monkeypatch.setattr(evaluate, "explain", lambda heads, stats, *a: seen.append(stats) or {"reasoning": None})
    rows = [r for r in range(shards.n) if shards.clip_ids[r] == shards.clip_ids[0]]
    preds = [{"row": r, "emotion_probs": np.full(4, 0.25), "au_probs": np.zeros(len(cfg.au_list)),
              "generation": None} for r in rows]
    clips = evaluate.clip_predictions(shards, rows, preds, tiny_config(experts=["motion"], emotion_labels=list("abcd")),
                                      "loso")
    assert seen == [first]  # evaluation scores the explanation deft predict gives
    assert clips[0]["aus_true_from_motion"] is False  # CASME II's coder labelled its AUs
    by_motion = ShardSet(out, tiny_config(experts=["motion"], au_target="supported"))
    clips = evaluate.clip_predictions(by_motion, rows, preds, by_motion.config, "loso")
    assert clips[0]["aus_true_from_motion"] is True


def test_an_explanation_is_told_what_the_builder_measured_by_landmarks(built):
    """A predicted AU25 on a clip whose lips parted by their landmarks was said not to move (the flow alone judged
    it): the explanation is given the AUs the clip's row shows, label-and-motion supported or named as unexplained."""
    import pyarrow.parquet as pq

    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet

    _, out = built
    shards = ShardSet(out, tiny_config(experts=["motion"]))
    rows = pq.read_table(sorted((out / "data").glob("*.parquet")), columns=["aus_supported", "unexplained"]).to_pylist()
    want = [sorted(set(r["aus_supported"] or []) | {u["au"] for u in r["unexplained"] or [] if u["au"] is not None})
            for r in rows]
    assert [shards.measured_aus(k) for k in range(shards.n)] == want
    assert any(set(w) - set(shards.aus[k]) for k, w in enumerate(want))  # unexplained motion adds AUs somewhere


def test_the_model_package_imports_only_the_builders_public_surface():
    public = set(unimer_builder.__all__)
    for f in sorted((ROOT / "deft_model").glob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("unimer_builder"):
                assert node.module == "unimer_builder", f"{f.name}:{node.lineno} imports {node.module}"
                names = {a.name for a in node.names}
                assert names <= public, f"{f.name}:{node.lineno} imports {sorted(names - public)}"
            if isinstance(node, ast.Import):
                bad = [a.name for a in node.names if a.name.startswith("unimer_builder.")]
                assert not bad, f"{f.name}:{node.lineno} imports {bad}"


def test_a_rebuild_of_the_data_with_other_settings_is_no_extra_training_data(built, tmp_path):
    """Read by the faces' landmarks where the rebuild keeps no pictures (--no-images, another crop size)."""
    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.errors import ShardError

    src, out = built
    again = tmp_path / "again"
    cfg = unimer_builder.BuildConfig(text=unimer_builder.TextConfig(composite="labels")).with_(**{"face.crop_size": 160})
    unimer_builder.build(src, again, cfg, "casme2", workers=1, images=False)
    with pytest.raises(ShardError, match="built again"):
        ShardSet(out, tiny_config(), extra=[again])


def test_a_row_of_a_build_with_other_settings_is_predicted_with_a_note(built, tmp_path):
    """`deft predict --row ... --data OTHER` of a build at another crop size read its motion on another scale (a lip
    corner 1.10 px, 2.69 px at the training build's) with no note."""
    from deft_model.configuration import tiny_config
    from deft_model.predict import _other_build

    src, out = built
    cfg = tiny_config()
    cfg.build_config = json.loads((out / "build_report.json").read_text())["config"]
    assert _other_build(out, cfg) == []
    other = tmp_path / "other"
    unimer_builder.build(src, other, unimer_builder.BuildConfig(text=unimer_builder.TextConfig(composite="labels"))
                         .with_(**{"face.crop_size": 160}), "casme2", workers=1, limit=1)
    (note,) = _other_build(other, cfg)
    assert "face.crop_size 160 (trained on 224)" in note and "text." not in note
