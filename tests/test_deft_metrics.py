# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""UF1/UAR/accuracy/AU F1 on hand-computed examples, and pooling over folds."""

from __future__ import annotations

import pytest
from deft_fixtures import small_shards_dir  # noqa: F401

from deft_model.configuration import tiny_config
from deft_model.evaluate import au_metrics, classification_metrics


def test_uf1_uar_hand_computed():
    # classes a (3 samples), b (2), c (1)
    y_true = ["a", "a", "a", "b", "b", "c"]
    y_pred = ["a", "a", "b", "b", "c", "c"]
    m = classification_metrics(y_true, y_pred)
    # a: TP2 FP0 FN1 -> F1 4/5, recall 2/3; b: TP1 FP1 FN1 -> F1 2/4, recall 1/2; c: TP1 FP1 FN0 -> F1 2/3, recall 1
    assert m["uf1"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3) / 3)
    assert m["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert m["acc"] == pytest.approx(4 / 6)
    assert m["per_class"]["b"] == {"tp": 1, "fp": 1, "fn": 1, "n": 2, "f1": 0.5, "recall": 0.5}


def test_missing_prediction_counts_as_wrong_but_not_as_a_false_positive():
    m = classification_metrics(["a", "b"], ["a", None])
    assert m["per_class"]["a"]["fp"] == 0 and m["per_class"]["b"]["fn"] == 1
    assert m["uf1"] == pytest.approx((1 + 0) / 2)
    assert m["acc"] == 0.5


def test_pooled_is_not_the_mean_of_per_fold_scores():
    # fold 1 holds only class a (predicted right), fold 2 class b predicted as a
    pooled = classification_metrics(["a", "b"], ["a", "a"])
    assert pooled["uf1"] == pytest.approx((2 / 3 + 0) / 2)
    assert pooled["uar"] == pytest.approx(0.5)


def test_fixed_class_list_ignores_absent_classes_in_the_mean():
    m = classification_metrics(["negative", "negative"], ["negative", "surprise"], ["negative", "positive", "surprise"])
    assert m["uf1"] == pytest.approx(2 / 3)
    assert m["per_class"]["surprise"]["fp"] == 1


def test_au_f1():
    m = au_metrics([[1, 2], [12], [12, 6]], [[1], [12, 6], [12]], [1, 2, 6, 12])
    # AU1 1.0; AU2 0; AU6 TP0 FP1 FN1 -> 0; AU12 TP2 -> 1.0
    assert m["macro_f1"] == pytest.approx(0.5)
    assert m["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 2))



def _clip(fold: str, i: int, label: str, head: str) -> dict:
    return {"clip_id": f"{fold}/c{i}", "database": fold.split("/")[0], "subject": fold.split("/")[1], "fold": fold,
            "label": label, "head": head, "answer": head, "generated": None, "answer_aus": None,
            "answer_aus_parsed": None, "generated_by_task": {}, "truncated_tasks": [], "emotion_probs": {},
            "aus_true": [12], "aus_pred": [12], "explanation": None}


# fold 1 shows only class a, all right (its own UF1 1.0); fold 2 only b, half right (its own UF1 2/3).
# Pooled: a TP2 FP1 FN0 -> F1 0.8, b TP1 FP0 FN1 -> F1 2/3: UF1 0.733; the per-fold mean would be 0.833.
FOLD_CLIPS = {"casme2/sub01": [("a", "a"), ("a", "a")], "casme2/sub02": [("b", "b"), ("b", "a")]}
POOLED_UF1, POOLED_UAR, FOLD_MEAN_UF1 = (0.8 + 2 / 3) / 2, (1 + 0.5) / 2, (1 + 2 / 3) / 2


def test_loso_reports_uf1_pooled_over_folds_not_the_mean_of_folds(small_shards_dir, tmp_path, monkeypatch):
    from deft_model import evaluate

    def fake_folds(run, protocol, data, config, extra, shards, fold_keys, epochs, seed, generate, say, extra_data=()):
        by_fold = {k: [_clip(k, i, lab, pred) for i, (lab, pred) in enumerate(FOLD_CLIPS[k])] for k in fold_keys}
        return by_fold, [{"epochs": epochs, "seed": seed, "config": {"experts": ["motion"]}}], []

    monkeypatch.setattr(evaluate, "loso_clips", fake_folds)
    res = evaluate.evaluate_run(tmp_path, "loso", data=small_shards_dir, epochs=1, generate=False, verbose=False)
    assert res["folds"] == ["casme2/sub01", "casme2/sub02"] and res["n_clips"] == 4
    assert res["head"]["uf1"] == pytest.approx(POOLED_UF1) and res["head"]["uar"] == pytest.approx(POOLED_UAR)
    assert abs(res["head"]["uf1"] - FOLD_MEAN_UF1) > 0.05  # the two definitions differ on this case
    assert res["per_fold"]["mean_uf1_not_pooled"] == pytest.approx(FOLD_MEAN_UF1)
    assert res["per_fold"]["folds"]["casme2/sub02"]["uf1"] == pytest.approx(2 / 3)
    md = (tmp_path / "loso" / "loso_results.md").read_text()
    assert "| all (pooled) | 4 | 0.733 |" in md
    # what a new user could not read off it: the classes scored, guessing's score, and a partial evaluation
    classes = list(res["head"]["per_class"])
    assert f"Classes scored ({len(classes)}): {', '.join(classes)}; guessing one of these uniformly at random has an " \
           f"expected UAR of {1 / len(classes):.2f}" in md and "Partial" not in md
    assert "| a | 2 | 1.000 | 0.800 |" in md and "| b | 2 | 0.500 | 0.667 |" in md  # the per-class counts
    (tmp_path / "loso" / "loso_baseline_predictions.jsonl").write_text("{}\n")  # an earlier run's, with --baselines
    evaluate.evaluate_run(tmp_path, "loso", data=small_shards_dir, epochs=1, generate=False, verbose=False,
                          max_folds=1)
    assert "**Partial**: 1 held-out subject(s) only" in (tmp_path / "loso" / "loso_results.md").read_text()
    assert not (tmp_path / "loso" / "loso_baseline_predictions.jsonl").exists()


def test_baselines_pool_their_predictions_over_the_same_folds(monkeypatch):
    import numpy as np

    from deft_model import baselines

    folds = [k for k, cs in FOLD_CLIPS.items() for _ in cs]
    data = {"clip_id": [f"c{i}" for i in range(4)], "database": ["casme2"] * 4,
            "subject": [f.split("/")[1] for f in folds], "fold": folds,
            "label": [lab for cs in FOLD_CLIPS.values() for lab, _ in cs], "stats": np.zeros((4, 136)),
            "flow": np.zeros((4, 3, 28, 28), np.float32), "classes": ["a", "b"], "extra": np.zeros(4, bool)}
    monkeypatch.setattr(baselines, "clip_data", lambda *a, **k: data)
    for name in ("_logreg", "_flow_cnn"):
        answers = iter([[p for _, p in cs] for cs in FOLD_CLIPS.values()])  # per fold, in fold order
        monkeypatch.setattr(baselines, name, lambda *a, answers=answers: next(answers))
    res = baselines.evaluate_baselines("unused")
    for b in res.values():
        assert b["n_clips"] == 4
        assert b["uf1"] == pytest.approx(POOLED_UF1) and b["uar"] == pytest.approx(POOLED_UAR)
        assert b["per_fold"]["mean_uf1_not_pooled"] == pytest.approx(FOLD_MEAN_UF1)


def test_a_clip_without_a_label_in_the_class_set_is_scored_for_its_aus_only():
    """A manifest row with a blank emotion, or CASME II's fear under its 5-class set, crashed the pooled confusion
    ("'<' not supported between 'NoneType' and 'str'") after every LOSO fold had trained, and nothing was saved."""
    from deft_model.evaluate import summarise

    clips = [_clip("casme2/sub01", 0, "a", "a"), _clip("casme2/sub01", 1, None, "a"), _clip("casme2/sub02", 2, "b", "a")]
    res = summarise(clips, [12], "loso")
    assert res["n_clips"] == 3 and res["head"]["n"] == 2 and res["head"]["n_unlabelled"] == 1
    assert res["head"]["acc"] == pytest.approx(0.5) and res["au"]["macro_f1"] == pytest.approx(1.0)
    assert res["per_fold"]["folds"]["casme2/sub01"]["acc"] == pytest.approx(1.0)


def test_au_f1_is_scored_against_the_aus_the_head_learns(small_shards_dir, monkeypatch):
    """The AU head learns the labelled AUs by default (``au_target``), but was scored against the motion-supported
    ones: a labelled AU the flow did not support was never a miss (AU F1 0.447 reported, 0.406 against the labels)."""
    from deft_model import evaluate
    from deft_model.data import ShardSet

    cfg = tiny_config(experts=["motion"])
    shards = ShardSet(small_shards_dir, cfg)
    shards.aus_labelled = [[4] for _ in range(shards.n)]  # labels that differ from what the motion supports
    monkeypatch.setattr(evaluate, "head_outputs", lambda ps, cfg: {"emotion": None, "aus": [], "emotion_probs": {}})
    monkeypatch.setattr(evaluate, "explain", lambda *a, **k: {"reasoning": None})
    rows = list(range(shards.n))
    clips = evaluate.clip_predictions(shards, rows, [{"row": r} for r in rows], cfg, "loso")
    assert clips and all(c["aus_true"] == [4] for c in clips)
    assert any(c["aus_supported"] != [4] for c in clips)
    cfg_sup = tiny_config(experts=["motion"], au_target="supported")
    shards.config = cfg_sup
    clips = evaluate.clip_predictions(shards, rows, [{"row": r} for r in rows], cfg_sup, "loso")
    assert all(c["aus_true"] == c["aus_supported"] for c in clips)


def test_uf1_over_a_single_class_is_said_to_be_so():
    """A dataset whose held-out clips were all of one class printed UF1 1.000 and UAR 1.000 without a word: always
    answering that class scores so, and nothing is measured of telling classes apart."""
    from deft_model.evaluate import markdown_table, summarise

    one = [_clip("casme2/sub01", 0, "a", "a"), _clip("casme2/sub02", 1, "a", "a")]
    res = summarise(one, [12], "loso")
    assert res["head"]["uf1"] == pytest.approx(1.0) and res["head"]["n_classes"] == 1
    text = markdown_table(res, "t")
    assert "**One class only**: in all (pooled) every labelled clip is a" in text and "in casme2 every" in text
    two = summarise(one + [_clip("casme2/sub02", 2, "b", "b")], [12], "loso")
    assert two["head"]["n_classes"] == 2 and "One class only" not in markdown_table(two, "t")
    # the composite protocol scores its three classes whatever the clips hold: the note counts those the clips hold
    comp = summarise([_clip("casme2/sub01", 0, "negative", "negative"), _clip("samm/006", 1, "negative", "positive")],
                     [12], "composite")
    assert len(comp["head"]["per_class"]) == 3 and comp["head"]["n_classes"] == 1
    assert "every labelled clip is negative" in markdown_table(comp, "t")
    assert "Classes scored" not in markdown_table(comp, "t")  # it said "(3)" beside the note, guessing at 0.33
    three = summarise([_clip("casme2/sub01", 0, "negative", "negative"), _clip("samm/006", 1, "positive", "positive")],
                      [12], "composite")
    assert "Classes scored (2): negative, positive; guessing one of these uniformly at random has an expected UAR of 0.50" \
        in markdown_table(three, "t") and "No labelled clip is surprise: it is not scored." in markdown_table(three, "t")


def test_au_f1_against_aus_inferred_from_motion_is_said_to_be_so(small_shards_dir, tmp_path):
    """SMIC labels no AUs: its AU targets are the AUs the builder inferred from motion, and its AU F1 was printed
    beside CASME II's as if scored against a coder's labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deft_model.data import ShardSet, find_shards
    from deft_model.evaluate import markdown_table, summarise

    for f in find_shards(small_shards_dir):
        t = pq.read_table(f)
        src = ["inferred" if k % 8 < 4 else "label" for k in range(t.num_rows)]  # every other clip (4 task rows)
        t = t.set_column(t.column_names.index("aus_source"), "aus_source", pa.array(src))
        pq.write_table(t, tmp_path / f.name)
    shards = ShardSet(tmp_path, tiny_config(experts=["motion"]))
    assert shards.au_targets_from_motion() == [k % 8 < 4 for k in range(shards.n)]
    assert all(ShardSet(tmp_path, tiny_config(experts=["motion"], au_target="supported")).au_targets_from_motion())
    clips = [dict(_clip("casme2/sub01", 0, "a", "a"), aus_true_from_motion=True), _clip("casme2/sub02", 1, "b", "b")]
    res = summarise(clips, [12], "loso")
    assert res["au"]["n_from_motion"] == 1
    assert "**AU targets from motion**: in all (pooled), 1 of 2 clips" in markdown_table(res, "t")
    assert "AU targets from motion" not in markdown_table(summarise(clips[1:], [12], "loso"), "t")


def _relabel(shards, clip_id: str, emotion: str | None) -> None:
    """Give one clip of a fixture build another emotion (every column derived from it too)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from unimer_builder import labels

    for f in sorted((shards / "data").glob("*.parquet")):
        t = pq.read_table(f)
        mine = [c == clip_id for c in t.column("clip_id").to_pylist()]
        db = clip_id.split("/")[0]
        new = {"emotion": emotion, "emotion_class": labels.database_class(db, emotion) if emotion else None,
               "emotion_composite": labels.composite(db, emotion) if emotion else None}
        for name, value in new.items():
            col = [value if m else v for m, v in zip(mine, t.column(name).to_pylist(), strict=True)]
            t = t.set_column(t.schema.get_field_index(name), name, pa.array(col, t.schema.field(name).type))
        pq.write_table(t, f)


def test_the_baselines_score_the_clips_and_classes_the_model_scores(tmp_path, monkeypatch):
    """`deft evaluate --baselines --set emotion_target=class` (CASME II's 5-class protocol) scored DEFT-LLM on the
    class set (a fear clip counts for its AUs only) and the baselines on the canonical emotions (the fear clip
    scored, and a class no fold could learn): a "same folds" table that compared different clips and classes."""
    from deft_fixtures import write_shards

    from deft_model import baselines, evaluate

    data = write_shards(tmp_path / "b", n_subjects=3, clips_per_class=1, seed=0, n_files=1, tasks=("emotion", "au"))
    fear = "casme2/sub01/" + sorted(c.split("/")[-1] for c in _clip_ids(data) if c.startswith("casme2/sub01/"))[0]
    _relabel(data, fear, "fear")
    assert fear in baselines.clip_data(data)["clip_id"]
    assert fear not in baselines.clip_data(data, emotion_target="class")["clip_id"]
    asked = {}
    monkeypatch.setattr(baselines, "evaluate_baselines", lambda *a, **k: asked.update(k) or {})
    evaluate.evaluate_run(tmp_path / "run", "loso", data=data, epochs=1, generate=False, verbose=False, max_folds=1,
                          overrides={"emotion_target": "class"}, baselines=True)
    assert asked["emotion_target"] == "class"


def _clip_ids(shards) -> set[str]:
    import pyarrow.parquet as pq

    return {c for f in (shards / "data").glob("*.parquet") for c in pq.read_table(f, columns=["clip_id"]).column(
        "clip_id").to_pylist()}


def test_baselines_that_cannot_be_scored_leave_the_models_results_written(tmp_path, monkeypatch):
    """A fold whose training clips hold one class (scikit-learn: "needs samples of at least 2 classes"), or a subject
    without emotion labels ("fold(s) [...] have no clip with a target"), aborted `deft evaluate --baselines` after every
    fold had trained, with no results written. Such a fold's logistic regression says its one class; a fold with no
    clip to score is left out; and anything else the baselines fail on is recorded beside DEFT-LLM's results."""
    import json

    import numpy as np
    from deft_fixtures import write_shards

    from deft_model import baselines, evaluate

    assert baselines._logreg(np.zeros((3, 2)), ["a", "a", "a"], np.zeros((2, 2)), 0) == ["a", "a"]
    data = write_shards(tmp_path / "b", n_subjects=3, clips_per_class=1, seed=0, n_files=1, tasks=("emotion", "au"))
    for c in _clip_ids(data):
        if c.startswith("casme2/sub03/"):
            _relabel(data, c, None)  # a subject without emotion labels: its clips count for their AUs only
    res = baselines.evaluate_baselines(data, ["casme2/sub01", "casme2/sub02", "casme2/sub03"], seed=0)
    assert res["logreg_regions"]["n_clips"] == 8  # sub01's and sub02's four clips each; sub03 has none to score

    def fail(*a, **k):
        raise RuntimeError("the logistic-regression baseline needs scikit-learn")

    monkeypatch.setattr(baselines, "evaluate_baselines", fail)
    res = evaluate.evaluate_run(tmp_path / "run", "loso", data=data, epochs=1, generate=False, verbose=False,
                                max_folds=1, baselines=True)
    written = json.loads((tmp_path / "run" / "loso" / "loso_results.json").read_text())
    assert written["head"]["n"] == res["head"]["n"] and "scikit-learn" in written["baselines_error"]
    assert "The baselines could not be scored" in (tmp_path / "run" / "loso" / "loso_results.md").read_text()
    from typer.testing import CliRunner

    from deft_model.cli import app

    r = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "run"), "--data", str(data), "--epochs", "1",
                                 "--max-folds", "1", "--no-generate", "--baselines"])
    assert r.exit_code == 2 and "--baselines: the logistic-regression baseline needs scikit-learn" in r.output, r.output
    assert "DEFT-LLM's results are written" in r.output

    def broken(*a, **k):
        raise KeyError("region")  # any fault of the baselines' own: the trained folds' results are still written

    monkeypatch.setattr(baselines, "evaluate_baselines", broken)
    evaluate.evaluate_run(tmp_path / "run", "loso", data=data, epochs=1, generate=False, verbose=False, max_folds=1,
                          baselines=True)
    written = json.loads((tmp_path / "run" / "loso" / "loso_results.json").read_text())
    assert written["baselines_error"] == "KeyError: 'region'"


def test_subjects_whose_names_make_one_folder_get_a_fold_folder_each(tmp_path, small_shards_dir):  # noqa: F811
    """Subjects `p 1` and `p_1` both had the fold folder `manifest__p_1`: the second fold reused the first's model,
    trained on its own held-out subject (an assert caught it, with a traceback; under `python -O`, nothing did). A
    folder holding another fold's model is that fold's mismatch, trained again."""
    import json
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from deft_model import evaluate

    dirs = evaluate.fold_dirs(["manifest/p 1", "manifest/p_1", "manifest/p3", "casme2/sub01"])
    assert len(set(dirs.values())) == 4
    assert dirs["manifest/p3"] == "manifest__p3" and dirs["casme2/sub01"] == "casme2__sub01"  # as before: reused
    assert dirs["manifest/p 1"].startswith("manifest__p_1-") and dirs["manifest/p_1"].startswith("manifest__p_1-")
    assert evaluate.fold_dirs(["manifest/p_1", "manifest/p 1"]) == evaluate.fold_dirs(["manifest/p 1", "manifest/p_1"])
    assert len(set(evaluate.fold_dirs(["manifest/Sub01", "manifest/sub01"]).values())) == 2  # case-insensitive disks
    # a fold folder holding another fold's model (a copy, or a folder an older version named) is trained again
    run = tmp_path / "run"
    evaluate.evaluate_run(run, "loso", data=small_shards_dir, epochs=1, generate=False, verbose=False, max_folds=1)
    folds = run / "loso" / "folds"
    shutil.copytree(folds / "casme2__sub01", folds / "casme2__sub02")
    evaluate.evaluate_run(run, "loso", data=small_shards_dir, epochs=1, generate=False, verbose=False)
    assert json.loads((folds / "casme2__sub02" / "run.json").read_text())["fold"] == "casme2/sub02"
    # end to end: subjects `p 1` and `p_1` (one folder before) each get their own model, trained without themselves
    data = tmp_path / "collide"
    shutil.copytree(small_shards_dir, data)
    for f in (data / "data").glob("*.parquet"):
        t = pq.read_table(f)
        for name in ("subject", "clip_id", "id"):
            col = [v.replace("sub01", "p 1").replace("sub02", "p_1") for v in t.column(name).to_pylist()]
            t = t.set_column(t.schema.get_field_index(name), name, pa.array(col, pa.string()))
        pq.write_table(t, f)
    other = tmp_path / "other"
    evaluate.evaluate_run(other, "loso", data=data, epochs=1, generate=False, verbose=False)
    runs = [json.loads(p.read_text()) for p in sorted((other / "loso" / "folds").glob("*/run.json"))]
    assert sorted(r["fold"] for r in runs) == ["casme2/p 1", "casme2/p_1"]
    assert all(r["fold"] not in r["train_subjects"] for r in runs)


def test_composite_evaluation_says_why_a_clip_of_others_is_not_scored(tmp_path):
    """A build made with `--composite labels` whose `others` clips have no composite class was told those clips were
    missing from the official MEGC2019 list, and to build with `--composite labels`, which it had done."""
    from deft_fixtures import write_shards
    from typer.testing import CliRunner

    from deft_model.cli import app

    data = write_shards(tmp_path / "b", n_subjects=2, clips_per_class=1, seed=0, n_files=1, tasks=("emotion", "au"))
    _relabel(data, sorted(c for c in _clip_ids(data) if c.startswith("casme2/sub02/"))[0], "others")
    r = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "run"), "--protocol", "composite", "--data",
                                 str(data), "--epochs", "1", "--max-folds", "1", "--no-generate"])
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "1 of 8 clips are not scored: their emotion (blank, others, ...) has no composite class" in said, said
    assert "--composite labels" not in said and "official MEGC2019 list" not in said


def test_a_fold_run_stopped_by_max_steps_is_evaluated_as_such(tmp_path, small_shards_dir):  # noqa: F811
    """`deft train --fold ... --max-steps 2` then `deft evaluate --run` reported the config's 12 epochs, as if the
    model had been trained that long."""
    import json

    from deft_model import evaluate
    from deft_model.train import train

    run = tmp_path / "fold"
    train(small_shards_dir, "tiny", run, fold="casme2/sub01", max_steps=2, seed=0, verbose=False)
    res = evaluate.evaluate_run(run, "loso", generate=False, verbose=False)
    assert res["max_steps"] == 2
    assert json.loads((run / "loso_results.json").read_text())["max_steps"] == 2
    assert "**Stopped early**: the model was trained for 2 step(s)" in (run / "loso_results.md").read_text()
    # a --max-steps its epochs never reach did not stop it (a review's finding: "trained for 10000 step(s)")
    whole = tmp_path / "whole"
    train(small_shards_dir, "tiny", whole, fold="casme2/sub01", epochs=1, max_steps=10000, seed=0, verbose=False)
    assert evaluate.evaluate_run(whole, "loso", generate=False, verbose=False)["max_steps"] is None
    assert "Stopped early" not in (whole / "loso_results.md").read_text()


def test_a_rows_duration_reaches_the_prediction_text(tmp_path):
    """The shards' duration columns (a macro window) are read with the rows, for `deft predict`'s wording; a build
    without them reads as unknown."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deft_fixtures import write_shards

    from deft_model.data import ShardSet

    data = write_shards(tmp_path / "b", n_subjects=2, clips_per_class=1, seed=0, n_files=1, tasks=("emotion", "au"))
    shards = ShardSet(data, tiny_config())
    assert {(b["duration_s"], b["duration_class"], b["moved_regions"]) for b in map(shards.built, range(shards.n))} \
        == {(None, None, None)}
    for f in (data / "data").glob("*.parquet"):
        t = pq.read_table(f)
        t = t.append_column("duration_s", pa.array([0.9] * len(t), pa.float32()))
        pq.write_table(t.append_column("duration_class", pa.array(["macro"] * len(t))), f)
    shards = ShardSet(data, tiny_config())
    (seconds, klass), = {(b["duration_s"], b["duration_class"]) for b in map(shards.built, range(shards.n))}
    assert klass == "macro" and seconds == pytest.approx(0.9)
    # and reaches the text: `deft predict --row` on a fold model of these shards words the clip as the build does
    from deft_model.predict import predict_row
    from deft_model.train import train

    run = tmp_path / "run"
    train(data, "tiny", run, fold="casme2/sub01", max_steps=1, seed=0, verbose=False)
    out = predict_row(run, data, shards.ids[[i for i in range(shards.n) if shards.folds[i] == "casme2/sub01"][0]])
    assert "longer than a micro-expression" in out["reasoning"], out["reasoning"]
