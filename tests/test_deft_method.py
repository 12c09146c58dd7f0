# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""The method changes of issue 9 item 2: augmentation, expert dropout, class balance, the motion summary,
the AU target, and runs saved before them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from deft_fixtures import shards_dir, write_shards  # noqa: F401

from deft_model.augment import Augmenter, check_augment, mirror_index, mirror_text
from deft_model.configuration import REGION_STAT_FIELDS, tiny_config
from deft_model.data import DeftDataset, ShardSet, data_identity, placeholder_text
from deft_model.experts import MotionExpert
from deft_model.modeling import DeftModel
from deft_model.tokenizer import build_tiny_tokenizer
from deft_model.train import build_tokenizer, class_weights

NAMES = tiny_config().region_names
FIELDS = list(REGION_STAT_FIELDS)


def _stats(rng) -> np.ndarray:
    st = rng.normal(0, 1, (len(NAMES), len(FIELDS))).astype(np.float32)
    st[:, FIELDS.index("coherence")] = rng.uniform(0, 1, len(NAMES))
    return st


def _item(rng, size=16) -> dict:
    return {"row": 0, "prompt_ids": [1, 2], "answer_ids": [5, 6, 7], "answer_ids_mirrored": [5, 8, 7],
            "emotion": 2, "au": np.array([1, 0, 1], np.float32),
            "onset": rng.integers(0, 255, (32, 32), dtype=np.uint8),
            "frames": rng.integers(0, 255, (4, 32, 32), dtype=np.uint8),
            "flow": rng.normal(0, 1, (3, size, size)).astype(np.float16), "region_stats": _stats(rng)}


def _only(**kw) -> dict:
    return {"mirror": 0.0, "angle": 0.0, "scale": 1.0, "amplitude": 1.0, **kw}


def test_mirror_text_swaps_the_subjects_sides_and_nothing_else():
    s = "The right lip corner moves up and outward; AU14 (left), R12, L2+L1. Right brow: leftward? Bright."
    assert mirror_text(s) == ("The left lip corner moves up and outward; AU14 (right), L12, R2+R1. "
                              "Left brow: leftward? Bright.")
    assert mirror_text(mirror_text(s)) == s


def test_mirror_flips_flow_swaps_region_sides_and_keeps_the_labels():
    rng = np.random.default_rng(0)
    aug = Augmenter({"mirror": 1.0}, NAMES, FIELDS, seed=0)
    item = _item(rng)
    m = aug.apply(item, _only(mirror=True))
    f0, f1 = item["flow"].astype(np.float32), m["flow"].astype(np.float32)
    assert np.allclose(f1[0], -f0[0][:, ::-1]) and np.allclose(f1[1:], f0[1:][:, :, ::-1])
    assert np.array_equal(m["onset"], item["onset"][:, ::-1])
    assert np.array_equal(m["frames"], item["frames"][:, :, ::-1])
    st0, st1 = item["region_stats"], m["region_stats"]
    dx, z = FIELDS.index("dx"), FIELDS.index("z")
    r, l_ = NAMES.index("lip_corner_R"), NAMES.index("lip_corner_L")
    assert st1[l_, z] == st0[r, z] and st1[r, z] == st0[l_, z]
    assert st1[l_, dx] == -st0[r, dx]
    nose = NAMES.index("nose")
    assert st1[nose, z] == st0[nose, z] and st1[nose, dx] == -st0[nose, dx]
    # the AU targets carry no side and the emotion none: unchanged; the answer is the mirrored one
    assert np.array_equal(m["au"], item["au"]) and m["emotion"] == item["emotion"]
    assert m["answer_ids"] == [5, 8, 7] and "answer_ids_mirrored" not in m
    # mirrored twice is the clip itself
    back = aug.apply({**m, "answer_ids_mirrored": None}, _only(mirror=True))
    assert np.allclose(back["flow"].astype(np.float32), f0) and np.allclose(back["region_stats"], st0)


def test_a_one_sided_movement_is_seen_on_the_other_side_by_the_motion_expert_after_a_mirror():
    """The flow and the statistics stay consistent: the expert's pooled flow at the right lip corner becomes
    the left one's, its outward motion (image left) outward on the other side (image right)."""
    size = 32
    me = MotionExpert(NAMES, None, 0.07, size, len(FIELDS), 8, 3, 16)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    r, l_ = NAMES.index("lip_corner_R"), NAMES.index("lip_corner_L")
    blob = np.exp(-((xx - 0.31) ** 2 + (yy - 0.59) ** 2) / (2 * 0.06**2))
    flow = np.zeros((3, size, size), np.float32)
    flow[0], flow[1] = -2.0 * blob, -1.0 * blob  # the subject's right lip corner: outward (image left) and up
    item = {"flow": flow.astype(np.float16), "region_stats": np.zeros((len(NAMES), len(FIELDS)), np.float32)}
    m = Augmenter({"mirror": 1.0}, NAMES, FIELDS, 0).apply(item, _only(mirror=True))
    pool = lambda f: torch.einsum("chw,rhw->rc", torch.tensor(f.astype(np.float32)), me.masks)  # noqa: E731
    before, after = pool(item["flow"]), pool(m["flow"])
    assert before[r, 0] < -0.5 and abs(before[l_, 0]) < 0.1 * abs(before[r, 0])
    assert torch.allclose(after[l_, 0], -before[r, 0], rtol=0.05) and torch.allclose(after[l_, 1], before[r, 1], rtol=0.05)


def test_rotation_and_amplitude_move_the_flow_and_the_statistics_alike():
    rng = np.random.default_rng(1)
    aug = Augmenter({"rotate_deg": 10, "amplitude": [0.5, 2.0]}, NAMES, FIELDS, seed=0)
    item = _item(rng, size=24)
    item["flow"][:] = 0
    item["flow"][0] = 1.0  # a uniform motion to the right (image axes)
    dx, dy = FIELDS.index("dx"), FIELDS.index("dy")
    item["region_stats"][:, dx], item["region_stats"][:, dy] = 1.0, 0.0
    m = aug.apply(item, _only(angle=10.0, amplitude=1.5))
    centre = m["flow"][:2, 12, 12].astype(np.float32)
    t = np.deg2rad(10.0)
    want = 1.5 * np.array([np.cos(t), -np.sin(t)])  # counter-clockwise on screen (y down), as OpenCV turns
    assert np.allclose(centre, want, atol=1e-2)
    assert np.allclose(m["region_stats"][:, [dx, dy]], want, atol=1e-5)  # the statistics turn the same way
    for f in ("mean", "peak", "z", "strain"):
        assert np.allclose(m["region_stats"][:, FIELDS.index(f)], 1.5 * item["region_stats"][:, FIELDS.index(f)])
    co = FIELDS.index("coherence")
    assert np.array_equal(m["region_stats"][:, co], item["region_stats"][:, co])
    assert np.array_equal(m["au"], item["au"]) and m["answer_ids"] == item["answer_ids"]  # not mirrored


def test_draws_are_fixed_by_seed_epoch_and_index_and_settings_are_checked():
    aug = Augmenter({"mirror": 0.5, "rotate_deg": 5, "scale": 0.05, "amplitude": [0.8, 1.25]}, NAMES, FIELDS, 3)
    assert aug.draw(1, 7) == aug.draw(1, 7)
    draws = [aug.draw(e, i) for e in range(4) for i in range(25)]
    assert 20 < sum(d["mirror"] for d in draws) < 80
    assert all(-5 <= d["angle"] <= 5 and 0.95 <= d["scale"] <= 1.05 and 0.8 <= d["amplitude"] <= 1.25 for d in draws)
    assert len({d["angle"] for d in draws}) == len(draws)
    assert check_augment(None) is None and check_augment({}) is None
    with pytest.raises(ValueError, match="unknown augment"):
        check_augment({"flip": 0.5})
    with pytest.raises(ValueError, match="unknown augment"):
        tiny_config(training={"augment": {"flip": 0.5}})
    assert list(mirror_index(["a_R", "b", "a_L"])) == [2, 1, 0]


def test_dataset_mirrors_the_answer_text_and_only_while_training(shards_dir):
    cfg = tiny_config(training={"augment": {"mirror": 1.0}})
    s = ShardSet(shards_dir, cfg)
    rows = list(range(s.n))
    # an answer that names a side (the fixture's answers name none): the subject's sides are swapped
    s.answer[0] = "The right lip corner moves; AU14 (left)."
    tok = build_tokenizer(cfg, s, rows)
    ds = DeftDataset(s, rows, tok, augment=cfg.training["augment"], seed=0)
    item = ds[0]
    assert tok.decode(item["answer_ids"][:-1]) == "The left lip corner moves; AU14 (right)."
    assert np.array_equal(item["flow"][0], -s.flow[s.row_clip[0]][0][:, ::-1])
    plain = DeftDataset(s, rows, tok)  # evaluation and prediction: no augmentation
    assert tok.decode(plain[0]["answer_ids"][:-1]) == s.answer[0]
    assert np.array_equal(plain[0]["flow"], s.flow[s.row_clip[0]])


def _model(**over):
    cfg = tiny_config(emotion_labels=["a", "b", "c"], **over)
    tok = build_tiny_tokenizer(["The emotion is a.", "What emotion?"], list(cfg.placeholders.values()))
    torch.manual_seed(0)
    return DeftModel.from_components(cfg, tok), tok


def _inputs(B: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    return dict(pixel_values=torch.randn(B, 3, 32, 32, generator=g), frames=torch.rand(B, 4, 32, 32, generator=g),
                flow=torch.randn(B, 3, 16, 16, generator=g), region_stats=torch.randn(B, 17, 8, generator=g))


def test_expert_dropout_zeroes_whole_experts_of_some_clips_while_training_only():
    model, _ = _model(expert_dropout={"structure": 0.5})
    model.train()
    out, _ = model.encode_experts(**_inputs(64))
    gone = (out["structure"][0].abs().sum((1, 2)) == 0) & (out["structure"][1].abs().sum(1) == 0)
    assert 10 < int(gone.sum()) < 54
    assert (out["motion"][0].abs().sum((1, 2)) > 0).all() and (out["dynamic"][0].abs().sum((1, 2)) > 0).all()
    model.eval()
    out, _ = model.encode_experts(**_inputs(64))
    assert (out["structure"][0].abs().sum((1, 2)) > 0).all()
    with pytest.raises(ValueError, match="expert_dropout"):
        tiny_config(expert_dropout={"optical": 0.5})


def test_class_balance_weights_rare_classes_up():
    w = class_weights(np.array([0, 0, 0, 1, -100, 2, 2]), 4)
    assert w[3] == 0 and w[1] > w[2] > w[0] > 0
    assert torch.isclose(w[:3].mean(), torch.tensor(1.0))
    model, tok = _model()
    cfg = model.config
    ph = placeholder_text(cfg)
    ids = tok([ph + "What emotion? The emotion is a."] * 3, add_special_tokens=False, return_tensors="pt").input_ids
    labels = torch.tensor([0, 1, 1])
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), emotion_labels=labels, **_inputs(3))
    model.set_class_weights(torch.tensor([3.0, 1.0, 1.0]))
    model.train()
    out = model(**batch)
    want = torch.nn.functional.cross_entropy(out.emotion_logits, labels, weight=torch.tensor([3.0, 1.0, 1.0]))
    assert torch.isclose(out.losses["emotion"], want)
    assert not torch.isclose(want, torch.nn.functional.cross_entropy(out.emotion_logits, labels))
    model.eval()  # scores never weighted
    out = model(**batch)
    assert torch.isclose(out.losses["emotion"], torch.nn.functional.cross_entropy(out.emotion_logits, labels))


def test_the_region_summary_tells_which_region_moves_where_the_mean_cannot():
    """Two clips with the same movement in different regions (no flow, the statistics of two regions swapped):
    the mean of the region tokens cannot tell them apart before the region embeddings have learnt anything;
    the summary over the regions side by side can."""
    torch.manual_seed(0)
    st = torch.zeros(1, len(NAMES), len(FIELDS))
    st[0, NAMES.index("lip_corner_L")] = torch.tensor([2.0, 3.0, 1.0, -1.0, 0.9, 0.1, 8.0, 0.5])
    swapped = st.clone()
    swapped[0, [NAMES.index("lip_corner_L"), NAMES.index("brow_inner_L")]] = st[0, [NAMES.index("brow_inner_L"),
                                                                                      NAMES.index("lip_corner_L")]]
    flow = torch.zeros(1, 3, 16, 16)
    for mode, differs in (("mean", False), ("regions", True)):
        me = MotionExpert(NAMES, None, 0.07, 16, len(FIELDS), 8, 3, 16, summary=mode)
        a, b = me(flow, st)[1], me(flow, swapped)[1]
        assert (not torch.allclose(a, b, atol=1e-6)) == differs, mode


def test_au_target_is_the_label_or_the_supported_aus(tmp_path):
    d = write_shards(tmp_path / "s", n_subjects=2, clips_per_class=1)
    cfg = tiny_config(experts=["motion"])
    s = ShardSet(d, cfg)
    # a labelled AU the motion did not support, and a clip without AU labels (inferred from motion)
    s.aus_labelled[0] = sorted(set(s.aus_labelled[0]) | {10})
    assert 10 not in s.aus[0]
    tok = build_tokenizer(cfg, s, range(s.n))
    ai = cfg.au_list.index(10)
    assert DeftDataset(s, [0], tok)[0]["au"][ai] == 1  # au_target "labelled" (the default)
    s.config = tiny_config(experts=["motion"], au_target="supported")
    assert DeftDataset(s, [0], tok)[0]["au"][ai] == 0
    import pyarrow as pa

    t = pa.table({"aus": [[{"au": 4, "side": None}], None, [{"au": 12, "side": "R"}]],
                  "aus_source": ["label", "label", "inferred"]})
    s.aus = [[4, 9], [6], [12, 6]]
    assert s._labelled_aus(t) == [[4], [6], [12, 6]]


def test_a_model_saved_before_the_region_summary_loads_as_it_was_trained(tmp_path):
    model, tok = _model(motion_summary="mean", motion_summary_token=False, au_target="supported")
    model.save_pretrained(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    for k in ("motion_summary", "motion_summary_token", "au_target"):
        cfg.pop(k)
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    m2 = DeftModel.from_pretrained(tmp_path / "m")
    assert m2.config.motion_summary == "mean" and m2.config.au_target == "supported"
    assert m2.config.n_tokens("motion") == len(NAMES)
    model.eval()
    b = _inputs(2)
    with torch.no_grad():
        assert torch.equal(model.encode_experts(**b)[1], m2.encode_experts(**b)[1])
    assert tiny_config().motion_summary == "regions" and tiny_config().au_target == "labelled"


def test_the_llm_reads_the_summary_the_heads_read_as_a_motion_token():
    model, tok = _model(recognition_token=False)
    cfg = model.config
    assert cfg.n_tokens("motion") == len(cfg.region_names) + 1
    ph = placeholder_text(cfg)
    ids = tok([ph + "What emotion?"], add_special_tokens=False, return_tensors="pt").input_ids
    model.eval()
    out, _ = model.encode_experts(**_inputs(1))
    tokens, summary = out["motion"]
    assert tokens.shape[1] == len(cfg.region_names) + 1 and torch.equal(tokens[:, -1], summary)
    emb = model.embed(ids, out)
    last = int((ids[0] == cfg.placeholder_ids["motion"]).nonzero()[-1])
    assert torch.allclose(emb[0, last], summary[0].to(emb.dtype))
    assert tiny_config(motion_summary_token=False).n_tokens("motion") == len(cfg.region_names)


def test_the_recognition_token_gives_the_llm_the_heads_outputs_without_training_the_heads_through_it():
    model, tok = _model(emotion_head_input="experts", recognition_token=True,
                        loss_weights={"lm": 1.0, "emotion": 0.0, "au": 0.0, "disentangle": 0.0})
    cfg = model.config
    ph = placeholder_text(cfg)
    ids = tok([ph + "What emotion? The emotion is a."] * 2, add_special_tokens=False, return_tensors="pt").input_ids
    batch = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids.clone(), **_inputs(2))
    out = model(**batch)
    out.loss.backward()  # the LM loss alone
    assert model.recognition.weight.grad.abs().sum() > 0
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.emotion_head.parameters())
    # the token is the heads' probabilities, projected
    model.eval()
    experts, au = model.encode_experts(**_inputs(2))
    probs = torch.cat([torch.softmax(model.emotion_head(torch.cat([s for _, s in experts.values()], -1)), -1),
                       torch.sigmoid(au)], -1)
    emb = model.embed(ids, experts, model.recognition(probs)[:, None])
    pos = int((ids[0] == cfg.placeholder_ids["heads"]).nonzero()[0])
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=torch.ones_like(ids), **_inputs(2))
    assert torch.allclose(emb[0, pos], model.recognition(probs)[0], atol=1e-6)
    assert torch.allclose(o.emotion_logits, model.emotion_head(torch.cat([s for _, s in experts.values()], -1)))
    with pytest.raises(ValueError, match="recognition_token"):
        tiny_config(recognition_token=True, emotion_head_input="both")


def test_extra_training_data_is_always_trained_on_and_never_held_out(tmp_path):
    """Another build (same database and subject names, other clips) added to every fold's training set: its rows
    keep ids of their own, are never a fold, never in a held-out set, and the baselines train on them too."""
    from deft_model.baselines import evaluate_baselines

    main = write_shards(tmp_path / "main", n_subjects=3, clips_per_class=1, seed=0)
    other = write_shards(tmp_path / "other", n_subjects=2, clips_per_class=1, seed=1)
    cfg = tiny_config(experts=["motion"])
    alone, both = ShardSet(main, cfg), ShardSet(main, cfg, extra=[other])
    assert both.subjects() == alone.subjects() == ["casme2/sub01", "casme2/sub02", "casme2/sub03"]
    assert both.n == alone.n + ShardSet(other, cfg).n
    assert len(both.clip_index) == len(alone.clip_index) + len(ShardSet(other, cfg).clip_index)  # no clip merged
    assert all(c.startswith("extra0:") for c, x in zip(both.clip_ids, both.is_extra, strict=True) if x)
    train, test = both.split("casme2/sub01")
    assert not both.is_extra[test].any() and [both.ids[r] for r in test] == [alone.ids[r] for r in alone.split("sub01")[1]]
    assert set(np.nonzero(both.is_extra)[0]) <= set(train)
    both.load_visuals()
    r = int(np.nonzero(both.is_extra)[0][0])
    o = ShardSet(other, cfg)
    o.load_visuals()
    assert np.array_equal(both.flow[both.row_clip[r]], o.flow[o.row_clip[0]])  # its own clip's flow
    res = evaluate_baselines(main, ["casme2/sub01", "casme2/sub02"], seed=0, extra_data=[other])
    assert res["logreg_regions"]["n_clips"] == sum(1 for c in set(alone.clip_ids) if "/sub01/" in c or "/sub02/" in c)


def test_extra_data_of_another_class_set_keeps_the_datas_classes(tmp_path):
    """A SMIC build (negative/positive/surprise) added to CASME II: the model's classes stay CASME II's (they had
    become the union, a head with classes no held-out clip has); SMIC's clips whose label is outside them train
    the AU head and the language model only, as `deft evaluate` scores such clips on their AUs only."""
    from typer.testing import CliRunner

    from deft_model.baselines import clip_data
    from deft_model.cli import app
    from deft_model.configuration import DeftConfig, config_kwargs

    main = write_shards(tmp_path / "casme2", n_subjects=2, clips_per_class=1, seed=0, tasks=("emotion", "au"))
    smic = write_shards(tmp_path / "smic", n_subjects=2, clips_per_class=1, seed=1, databases=("smic",),
                        tasks=("emotion", "au"))
    for target in ("canonical", "class"):
        cfg = tiny_config(emotion_target=target)
        both = ShardSet(main, cfg, extra=[smic])
        assert both.emotion_labels() == ShardSet(main, cfg).emotion_labels() == ["disgust", "happiness",
                                                                                  "repression", "surprise"]
        assert both.foreign_targets(both.emotion_labels()) == {"negative": 2, "positive": 2}
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(main), "--extra-data", str(smic), "--out", str(out),
                                 "--fold", "sub01", "--max-steps", "1"])
    assert r.exit_code == 0, r.output
    assert "'negative': 2, 'positive': 2" in r.output and "AU head" in r.output
    cfg = DeftConfig(**config_kwargs(json.loads((out / "run.json").read_text())["config"]))
    assert cfg.emotion_labels == ["disgust", "happiness", "repression", "surprise"]
    both = ShardSet(main, cfg, extra=[smic])
    ds = DeftDataset(both, list(range(both.n)), build_tokenizer(cfg, both, range(both.n)))
    for k, r in enumerate(ds.rows):
        label = cfg.emotion_labels[ds.emotion[k]] if ds.emotion[k] >= 0 else None
        assert label == (both.targets()[r] if both.targets()[r] in cfg.emotion_labels else None)
        assert ds.au[k].any()  # every clip still trains the AU head
    d = clip_data(main, extra_data=[smic])  # the baselines: no AU head, so SMIC's foreign clips are left out
    assert d["classes"] == cfg.emotion_labels
    assert sorted(c for c, x in zip(d["label"], d["extra"], strict=True) if x) == ["surprise", "surprise"]


def test_loso_with_extra_training_data_records_it_and_retrains_a_fold_trained_without(tmp_path):
    from deft_model.evaluate import evaluate_run

    main = write_shards(tmp_path / "main", n_subjects=2, clips_per_class=1, seed=0, tasks=("emotion",))
    other = write_shards(tmp_path / "other", n_subjects=1, clips_per_class=1, seed=1, tasks=("emotion",))
    kw = dict(protocol="loso", data=main, epochs=1, generate=False, max_folds=1, verbose=False,
              overrides={"experts": ["motion"]})
    evaluate_run(tmp_path / "run", **kw)
    n0 = json.loads(next((tmp_path / "run" / "loso" / "folds").iterdir()).joinpath("run.json").read_text())
    res = evaluate_run(tmp_path / "run", extra_data=[other], **kw)
    info = json.loads(next((tmp_path / "run" / "loso" / "folds").iterdir()).joinpath("run.json").read_text())
    assert res["reused_folds"] == [] and info["extra_data"] == [str(other.resolve())]
    assert res["data"] == str(main.resolve()) and res["data_identity"] == data_identity(main)  # what was scored
    assert info["n_train_rows"] == n0["n_train_rows"] + ShardSet(other, tiny_config(experts=["motion"])).n
    assert res["n_clips"] == res["per_fold"]["folds"]["casme2/sub01"]["n_clips"]
