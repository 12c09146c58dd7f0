# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""Training, resume, LOSO evaluation, prediction and the CLI (tiny config, fake shards)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from deft_fixtures import shards_dir, small_shards_dir, trained_run, two_db_dir, write_shards  # noqa: F401
from typer.testing import CliRunner

from deft_model.cli import app
from deft_model.data import DeftDataset, ShardSet
from deft_model.train import RunError, train

ROOT = Path(__file__).resolve().parent.parent


def _log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()]


def _weights(run: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(run / "model.safetensors"))


def test_resume_continues_the_same_loss_curve(shards_dir, tmp_path):
    kw = dict(fold="casme2/sub01", epochs=2, seed=3, log_every=1, save_every=5, verbose=False)
    train(shards_dir, "tiny", tmp_path / "a", **kw)
    # "killed" after step 7: the last checkpoint is step 5; the log already holds steps 6-7
    assert train(shards_dir, "tiny", tmp_path / "b", stop_after=7, **kw) is None
    assert not (tmp_path / "b" / "model").exists()
    with pytest.raises(RunError, match="--resume"):
        train(shards_dir, "tiny", tmp_path / "b", **kw)
    # killed again inside the second epoch (checkpoint at step 15 = 3 batches into epoch 2), then finished
    assert train(shards_dir, "tiny", tmp_path / "b", resume=True, stop_after=17, **kw) is None
    train(shards_dir, "tiny", tmp_path / "b", resume=True, **kw)
    la = [r for r in _log(tmp_path / "a") if "loss" in r]
    lb = [r for r in _log(tmp_path / "b") if "loss" in r]
    assert [r["step"] for r in la] == [r["step"] for r in lb] == list(range(1, 25))
    np.testing.assert_allclose([r["loss"] for r in la], [r["loss"] for r in lb], rtol=1e-5, atol=1e-6)
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-5, atol=1e-6, err_msg=k)
    # a finished run refuses a second training into the same folder
    with pytest.raises(RunError, match="finished"):
        train(shards_dir, "tiny", tmp_path / "a", **kw)


def test_trained_run_layout_and_held_out_subject(trained_run):
    run = json.loads((trained_run / "run.json").read_text())
    assert run["held_out"] == "casme2/sub01" and "casme2/sub01" not in run["train_subjects"]
    assert (trained_run / "model.safetensors").exists() and (trained_run / "config.json").exists()
    assert (trained_run / "tokenizer.json").exists()
    log = _log(trained_run)
    assert any(r.get("epoch_end") for r in log)
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0]
    # each logged window times the step and the data loader apart (bench/train.py reports their ratio)
    timed = [r for r in log if "loss" in r]
    assert timed and all(r["step_s"] > 0 and r["data_s"] >= 0 for r in timed)


def test_evaluate_single_fold_run_and_predict_row(trained_run, shards_dir):
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", "--run", str(trained_run), "--protocol", "loso"])
    assert r.exit_code == 0, r.output
    res = json.loads((trained_run / "loso_results.json").read_text())
    assert res["folds"] == ["casme2/sub01"] and res["n_clips"] == 8
    for k in ("uf1", "uar", "acc"):
        assert res["head"][k] is not None and res["answer"][k] is not None
    assert "| all (pooled) |" in (trained_run / "loso_results.md").read_text()
    preds = [json.loads(ln) for ln in (trained_run / "loso_predictions.jsonl").read_text().splitlines()]
    assert {p["fold"] for p in preds} == {"casme2/sub01"}
    r = runner.invoke(app, ["predict", "--run", str(trained_run), "--row", "casme2/sub01/EP01_01#explain",
                            "--data", str(shards_dir)])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["emotion"] in out["emotion_probs"] and isinstance(out["aus"], list)
    assert out["reasoning"] is not None and "lip corner" in out["motion"]  # the clip's planted smile, measured
    assert set(out["generated"]) == {"emotion", "au", "motion", "explain", "instruction"}
    assert set(out["sources"]) >= {"emotion", "aus", "motion", "reasoning", "generated"}
    # composite protocol on a canonical-target run maps the predictions to negative/positive/surprise
    r = runner.invoke(app, ["evaluate", "--run", str(trained_run), "--protocol", "composite", "--no-generate"])
    assert r.exit_code == 0, r.output
    comp = json.loads((trained_run / "composite_results.json").read_text())
    assert set(comp["head"]["per_class"]) <= {"negative", "positive", "surprise"}


def test_cli_bad_inputs_give_clear_errors(tmp_path, shards_dir):
    runner = CliRunner()
    d = write_shards(tmp_path / "noflow", n_subjects=1, clips_per_class=1, drop_columns=("flow",), n_files=1)
    r = runner.invoke(app, ["train", "--data", str(d), "--out", str(tmp_path / "r1")])
    assert r.exit_code == 2 and "missing required column(s) ['flow']" in r.output
    r = runner.invoke(app, ["train", "--data", str(shards_dir), "--out", str(tmp_path / "r2"), "--fold", "sub77"])
    assert r.exit_code == 2 and "matches no subject" in r.output
    r = runner.invoke(app, ["train", "--data", str(shards_dir), "--out", str(tmp_path / "r3"), "--config", "reference"])
    assert r.exit_code == 2 and "Qwen/Qwen2.5-0.5B-Instruct" in r.output and "offline" in r.output
    r = runner.invoke(app, ["train", "--data", str(shards_dir), "--out", str(tmp_path / "r4"), "--experts", "motion,smell"])
    assert r.exit_code == 2 and "unknown expert" in r.output
    r = runner.invoke(app, ["predict", "--run", str(tmp_path / "nothing"), "--row", "x", "--data", str(shards_dir)])
    assert r.exit_code == 2 and "run folder" in r.output and "does not exist" in r.output
    # a new user's run folders: empty, unfinished, a LOSO evaluation's; each says what it is and what to do
    (tmp_path / "empty").mkdir()
    (tmp_path / "stopped").mkdir()
    (tmp_path / "stopped" / "run.json").write_text(json.dumps({"data": "demo/unimer"}))
    (tmp_path / "loso" / "loso" / "folds" / "casme2__sub01").mkdir(parents=True)
    (tmp_path / "loso" / "loso" / "folds" / "casme2__sub01" / "run.json").write_text("{}")
    for run, said in (("empty", "holds no trained model"),
                      ("stopped", "is an unfinished run (stopped before its final model): continue it with "
                                  f"`deft train --data demo/unimer --out {tmp_path / 'stopped'} --resume`"),
                      ("loso", f"holds evaluation folds, not one model: pass one fold's run, e.g. --run "
                               f"{tmp_path / 'loso' / 'loso' / 'folds' / 'casme2__sub01'}")):
        r = runner.invoke(app, ["predict", "--run", str(tmp_path / run), "--row", "x", "--data", str(shards_dir)])
        assert r.exit_code == 2 and said in " ".join(r.output.split()), r.output
    r = runner.invoke(app, ["predict", "--run", str(tmp_path / "empty"), str(tmp_path), "--row", "x",
                            "--data", str(shards_dir)])
    assert r.exit_code == 2 and "or --row, not both" in r.output
    r = runner.invoke(app, ["train", "--data", str(shards_dir), "--out", str(tmp_path / "typo"), "--resume"])
    assert r.exit_code == 2 and "holds no run to resume" in r.output and not (tmp_path / "typo" / "run.json").exists()
    r = runner.invoke(app, ["evaluate", "--run", str(tmp_path / "r5"), "--data", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "does not exist" in r.output


def test_ablation_trains_without_the_motion_expert(shards_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(shards_dir), "--out", str(tmp_path / "abl"), "--fold", "sub02",
                            "--experts", "structure,dynamic", "--max-steps", "3", "--log-every", "1"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "abl" / "config.json").read_text())
    assert cfg["experts"] == ["structure", "dynamic"]
    assert not any(k.startswith("experts.motion") for k in _weights(tmp_path / "abl"))


def test_clip_folder_prediction(trained_run, tmp_path, shards_dir):
    from deft_model.predict import predict_clip, predict_row
    from unimer_builder import InputError, clip_from_folder, facs, render
    from unimer_builder.synth.generate import synthesize

    root = Path(synthesize(tmp_path / "syn", "manifest", clips=2, subjects=1, seed=0))
    gt = {c["clip_id"]: c for c in json.loads((root / "ground_truth.json").read_text())["clips"]}["manifest/S01/c01"]
    folder = root / "clips" / "S01" / "c01"
    # the frame listing and range checks are the builder's
    clip = clip_from_folder(folder, None, None, None)
    assert (clip.onset, clip.offset, len(clip.frames)) == (0, 13, 14)
    with pytest.raises(InputError, match="apex frame 20 is outside the frames present"):
        clip_from_folder(folder, gt["onset"], 20, None)
    with pytest.raises(InputError, match="offset frame 2 comes before onset frame 5"):
        clip_from_folder(folder, 5, None, 2)

    res = predict_clip(trained_run, folder, onset=gt["onset"], apex=gt["apex"], offset=gt["offset"])
    cfg = json.loads((trained_run / "config.json").read_text())
    assert (res["onset"], res["apex"], res["offset"]) == (gt["onset"], gt["apex"], gt["offset"])
    assert res["emotion"] in cfg["emotion_labels"] and set(res["emotion_probs"]) == set(cfg["emotion_labels"])
    assert isinstance(res["aus"], list) and set(res["aus"]) <= set(cfg["au_list"])
    assert set(res["au_probs"]) == {f"AU{a}" for a in cfg["au_list"]}
    for task in render.TASKS:  # the LM's own answers, each with its budget and whether it was cut
        g = res["generated"][task]
        assert isinstance(g["text"], str) and g["max_new_tokens"] >= cfg["answer_tokens"][task]
        assert set(g["aus"]) <= set(facs.AUS) and g["truncated"] == (f"generated.{task}" in res["truncated"])
    # the explanation states the heads' emotion and AUs over the motion the builder measured on the clip
    said = render.parse_answer(res["reasoning"])
    assert said == {"emotion": res["emotion"], "aus": sorted(res["aus"])}
    assert "cheek" in res["motion"] or "lip corner" in res["motion"], res["motion"]  # the planted smile
    assert res["build_settings"].startswith("builder defaults")  # fixture shards carry no build_report.json
    assert res["notes"] == []
    # a row's prediction has the same keys (a script reads either alike), the row's own window among them
    row = predict_row(trained_run, shards_dir, "casme2/sub01/EP01_01#explain")
    assert set(row) == set(res), set(row) ^ set(res)
    assert res["clip_id"] == clip_from_folder(folder, gt["onset"], gt["apex"], gt["offset"]).clip_id
    assert res["id"] is None and res["answer"] is None and row["clip"] is None
    assert row["onset"] < row["apex"] <= row["offset"] and isinstance(row["apex_estimated"], bool)
    assert set(row["head_motion"]) >= {"tx", "ty", "rotation", "scale"} and row["notes"] == []
    # an apex on the onset frame carries no timing (the builder's rule): it is estimated, and the answer says so
    res = predict_clip(trained_run, folder, onset=gt["onset"], apex=gt["onset"], offset=gt["offset"])
    assert res["apex_estimated"] and res["notes"] == [
        f"the apex given ({gt['onset']}) is the onset frame: it was estimated from the motion ({res['apex']})"]
    # a video without an offset runs to its last frame, and says which (it said "offset": null)
    import cv2

    frames = [cv2.imread(str(p)) for p in sorted(folder.iterdir())]
    video = tmp_path / "c01.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"FFV1"), 30, frames[0].shape[1::-1])
    for f in frames:
        vw.write(f)
    vw.release()
    res = predict_clip(trained_run, video, onset=0)
    assert res["offset"] == len(frames) - 1


def test_lora_training_changes_only_adapters_and_experts(small_shards_dir, tmp_path):
    from accelerate.utils import set_seed
    from safetensors.torch import load_file

    from deft_model.configuration import DeftConfig, config_kwargs
    from deft_model.modeling import DeftModel
    from deft_model.tokenizer import load_tokenizer

    out = tmp_path / "lora"
    train(small_shards_dir, "tiny", out, fold="casme2/sub01", max_steps=2, seed=0, verbose=False,
          overrides={"llm_mode": "lora", "train_embeddings": False})
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["llm_mode"] == "lora"
    # the untrained model, rebuilt exactly as train() built it
    cfg = DeftConfig(**config_kwargs(run["config"]))
    set_seed(run["seed"])
    init = DeftModel.from_components(cfg, load_tokenizer(out / "tokenizer")).state_dict()
    final = load_file(str(out / "model.safetensors"))
    adapter = load_file(str(out / "adapter" / "adapter_model.safetensors"))  # peft's own file and key names
    assert json.loads((out / "adapter" / "adapter_config.json").read_text())["r"] == cfg.lora_r
    assert adapter and all("lora_" in k for k in adapter) and not any("lora_" in k for k in final)
    assert set(final) <= set(init)
    changed = {k for k in final if not torch.equal(final[k], init[k])}
    assert any(k.startswith("experts.") for k in changed)
    init_lora = {k for k in init if "lora_B" in k}
    assert all(not init[k].any() for k in init_lora)  # peft's zero-initialised B ...
    assert any(v.any() for k, v in adapter.items() if "lora_B" in k)  # ... moved by training
    base_llm = [k for k in final if k.startswith("llm.")]
    assert base_llm and not changed & set(base_llm), sorted(changed & set(base_llm))[:5]
    assert all(k.startswith(("experts.", "emotion_head.", "au_head.", "recognition.", "memory.")) for k in changed)


def test_resume_from_an_epoch_end_checkpoint_logs_each_epoch_end_once(small_shards_dir, tmp_path):
    # the held-out fold trains 16 rows = 2 steps per epoch: save_every=2 falls on each epoch's last step
    kw = dict(fold="casme2/sub01", epochs=2, seed=1, log_every=1, save_every=2, verbose=False)
    train(small_shards_dir, "tiny", tmp_path / "a", **kw)
    assert train(small_shards_dir, "tiny", tmp_path / "b", stop_after=3, **kw) is None  # killed in epoch 2
    state = json.loads((tmp_path / "b" / "checkpoints" / "step-0000002" / "trainer_state.json").read_text())
    assert state == {"global_step": 2, "epoch": 1, "step_in_epoch": 0}
    train(small_shards_dir, "tiny", tmp_path / "b", resume=True, **kw)
    lb = _log(tmp_path / "b")
    assert [(r["step"], r["epoch"]) for r in lb if r.get("epoch_end")] == [(2, 0), (4, 1)]
    assert [r["step"] for r in lb if "loss" in r] == [1, 2, 3, 4]
    la = [r["loss"] for r in _log(tmp_path / "a") if "loss" in r]
    np.testing.assert_allclose(la, [r["loss"] for r in lb if "loss" in r], rtol=1e-5, atol=1e-6)


def test_resume_with_other_settings_is_an_error_naming_them_but_more_epochs_train_on(small_shards_dir, tmp_path):
    out = tmp_path / "run"
    kw = dict(fold="casme2/sub01", epochs=2, seed=3, log_every=1, verbose=False)  # 2 steps an epoch
    assert train(small_shards_dir, "tiny", out, stop_after=3, **kw) is None  # killed in epoch 2
    runner = CliRunner()
    resume = ["train", "--data", str(small_shards_dir), "--out", str(out), "--resume", "--log-every", "1"]
    r = runner.invoke(app, [*resume, "--set", "training.lr=0.1", "--seed", "5", "--batch-size", "4"])
    assert r.exit_code == 2, r.output
    line = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1
    for change in ("training.lr 0.003 -> 0.1", "seed 3 -> 5", "batch_size 8 -> 4"):
        assert change in line[0], line[0]
    r = runner.invoke(app, [*resume, "--epochs", "1", "--config", "reference"])  # fewer epochs, another preset
    assert r.exit_code == 2 and "epochs 2 -> 1" in r.output and "'Qwen/Qwen2.5-0.5B-Instruct'" in r.output, r.output
    assert _log(out)[-1]["step"] == 3  # nothing trained by the refused commands
    # the run's own settings, given again, and more epochs: it trains on to 3 epochs
    r = runner.invoke(app, [*resume, "--seed", "3", "--fold", "sub01", "--config", "tiny", "--epochs", "3"])
    assert r.exit_code == 0, r.output
    assert [x["step"] for x in _log(out) if x.get("epoch_end")] == [2, 4, 6]
    assert json.loads((out / "run.json").read_text())["epochs"] == 3
    # a finished run asked for more epochs trains on from its last checkpoint; asked for as many, it is done
    r = runner.invoke(app, [*resume, "--set", "training.epochs=4"])
    assert r.exit_code == 0, r.output
    assert [x["step"] for x in _log(out) if x.get("epoch_end")] == [2, 4, 6, 8]
    assert [x["step"] for x in _log(out) if "loss" in x] == list(range(1, 9))
    r = runner.invoke(app, [*resume, "--epochs", "4"])
    assert r.exit_code == 0 and "nothing to resume" in r.output, r.output
    assert f"model unchanged in {out}" in r.output and "model saved" not in r.output  # it said "saved"


def test_loso_retrains_a_fold_trained_differently(small_shards_dir, tmp_path):
    from deft_model.evaluate import evaluate_run

    kw = dict(data=small_shards_dir, seed=0, folds=["casme2/sub01"], generate=False, verbose=False)
    fdir = tmp_path / "loso" / "folds" / "casme2__sub01"

    def fold_info():
        return json.loads((fdir / "run.json").read_text()), (fdir / "model.safetensors").stat().st_mtime_ns

    res = evaluate_run(tmp_path, "loso", epochs=1, **kw)
    info, t1 = fold_info()
    assert info["epochs"] == res["epochs"] == 1 and res["reused_folds"] == []
    res = evaluate_run(tmp_path, "loso", epochs=1, **kw)  # same request: the fold model is reused
    assert res["reused_folds"] == ["casme2/sub01"] and fold_info()[1] == t1
    res = evaluate_run(tmp_path, "loso", epochs=2, **kw)  # other epochs: retrained, and reported as used
    info, t2 = fold_info()
    assert info["epochs"] == res["epochs"] == 2 and res["reused_folds"] == [] and t2 != t1
    assert sum(1 for r in _log(fdir) if r.get("epoch_end")) == 2
    res = evaluate_run(tmp_path, "loso", epochs=2, overrides={"experts": ["motion"]}, **kw)  # other config
    info, _ = fold_info()
    assert info["config"]["experts"] == res["experts"] == ["motion"] and res["reused_folds"] == []
    res = evaluate_run(tmp_path, "loso", epochs=2, **{**kw, "seed": 5})  # other seed
    assert fold_info()[0]["seed"] == res["seed"] == 5 and res["reused_folds"] == []


def test_a_dataset_built_again_into_the_same_folder_is_not_taken_for_the_one_a_model_was_trained_on(tmp_path):
    """Runs and LOSO folds knew their data by its path only: a dataset built again into the same folder (other
    clips, labels, classes) reused the fold models of the one before, scored as if trained on it, and a resume
    trained on. The shards' names, sizes and row counts now tell them apart."""
    import shutil

    from deft_model.errors import RunError
    from deft_model.evaluate import evaluate_run
    from deft_model.train import train

    data = write_shards(tmp_path / "data", n_subjects=2, clips_per_class=1, seed=0, n_files=1)
    kw = dict(data=data, seed=0, folds=["casme2/sub01"], generate=False, verbose=False, epochs=1)
    assert evaluate_run(tmp_path / "ev", "loso", **kw)["reused_folds"] == []
    assert evaluate_run(tmp_path / "ev", "loso", **kw)["reused_folds"] == ["casme2/sub01"]  # the same data
    run = tmp_path / "run"
    assert train(data, "tiny", run, fold="casme2/sub01", epochs=2, seed=0, verbose=False, stop_after=1) is None
    shutil.rmtree(data / "data")
    write_shards(data, n_subjects=2, clips_per_class=2, seed=1, n_files=1)  # built again: other clips
    assert evaluate_run(tmp_path / "ev", "loso", **kw)["reused_folds"] == []
    with pytest.raises(RunError, match="built again"):
        train(data, "tiny", run, fold="casme2/sub01", epochs=2, seed=0, verbose=False, resume=True)


@pytest.mark.slow
def test_loso_smoke_learns_from_motion(shards_dir, tmp_path):
    from deft_model.evaluate import evaluate_run

    res = evaluate_run(tmp_path / "loso", "loso", data=shards_dir, epochs=6, seed=0, verbose=False)
    assert res["n_folds"] == 4 and res["n_clips"] == 32
    for key in res["folds"]:
        info = json.loads((tmp_path / "loso" / "loso" / "folds" / key.replace("/", "__") / "run.json").read_text())
        assert info["held_out"] == key and key not in info["train_subjects"]
    assert res["head"]["uf1"] >= 0.8, res["head"]
    assert res["au"]["macro_f1"] >= 0.8


@pytest.mark.slow
def test_accelerate_launch_two_processes(shards_dir, tmp_path):
    # `--multi_gpu` only picks accelerate's torchrun launcher (`--cpu` alone starts one process without an MPI
    # hostfile); with no visible GPU the trainer runs both processes on CPU over gloo.
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")
    acc = Path(sys.executable).parent / "accelerate"
    cmd = [str(acc), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "deft_model.cli", "train", "--data", str(shards_dir), "--out",
           str(tmp_path / "ddp"), "--fold", "sub01", "--max-steps", "3", "--log-every", "1", "--save-every", "2"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    run = json.loads((tmp_path / "ddp" / "run.json").read_text())
    assert run["num_processes"] == 2
    log = _log(tmp_path / "ddp")
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
    assert (tmp_path / "ddp" / "model.safetensors").exists()
    ck = tmp_path / "ddp" / "checkpoints" / "step-0000002"
    assert (ck / "trainer_state.json").exists() and (ck / "random_states_1.pkl").exists()
    from safetensors.torch import load_file

    assert not any(k.startswith("module.") for k in load_file(str(ck / "model.safetensors")))  # the stored weights


def _forced(model, emotion: int, aus: list[int]):
    """The model with its heads' last layers set to give ``emotion`` and exactly ``aus``, whatever the input."""
    import copy

    m = copy.deepcopy(model)
    cfg = m.config
    au_head = m.experts["motion"].au_head if "motion" in m.experts else m.au_head[-1]
    emo_head = m.emotion_head[-1]
    with torch.no_grad():
        for lin, on in ((emo_head, [emotion]), (au_head, [cfg.au_list.index(a) for a in aus])):
            lin.weight.zero_()
            lin.bias.fill_(-20.0)
            lin.bias[on] = 20.0
    return m


def test_predicted_fields_come_from_the_heads_and_the_measurement(trained_run, shards_dir, monkeypatch):
    from deft_model import predict
    from deft_model.runtime import load_run
    from unimer_builder import parse_answer, render_prediction

    model, tok = load_run(trained_run)
    labels = model.config.emotion_labels
    outs = []
    for emotion, aus in ((labels.index("surprise"), [1, 2]), (labels.index("disgust"), [4, 9, 10])):
        monkeypatch.setattr(predict, "load_run", lambda run, m=_forced(model, emotion, aus): (m, tok))
        out = predict.predict_row(trained_run, shards_dir, "casme2/sub01/EP01_01#explain")  # a planted smile
        assert out["emotion"] == labels[emotion] and out["aus"] == aus
        assert parse_answer(out["reasoning"]) == {"emotion": labels[emotion], "aus": aus}
        outs.append(out)
    assert outs[0]["reasoning"] != outs[1]["reasoning"]
    # the motion is the clip's measurement, whatever the heads say: the same for both, and the smile's
    shards = ShardSet(shards_dir, model.config)
    r = shards.row_of_id["casme2/sub01/EP01_01#explain"]
    measured = predict.region_dicts(shards.region_stats[r], model.config)
    want = render_prediction("motion", measured, [], None, shards.noise_floor[r])
    assert outs[0]["motion"] == outs[1]["motion"] == want and "lip corner" in want
    other = predict.predict_row(trained_run, shards_dir, "casme2/sub01/EP01_03#explain")  # surprise: brows
    assert other["motion"] != want and "brow" in other["motion"]
    assert outs[0]["sources"]["motion"].startswith("builder") and outs[0]["sources"]["aus"].startswith("model")


def test_generated_answers_use_the_training_answer_lengths_and_say_when_cut(trained_run, shards_dir):
    from deft_model.predict import predict_dataset
    from deft_model.runtime import load_run

    model, tok = load_run(trained_run)
    cfg = model.config
    shards = ShardSet(shards_dir, cfg)
    longest = max(len(tok(a, add_special_tokens=False).input_ids) + 1
                  for a, t in zip(shards.answer, shards.task, strict=True) if t == "explain")
    assert cfg.answer_tokens["explain"] >= longest - 5  # from the training rows' tokenised answers
    assert cfg.max_new_tokens("explain") > cfg.answer_tokens["explain"] > cfg.answer_tokens["emotion"]
    rows = [shards.row_of_id["casme2/sub01/EP01_01#explain"]]
    ds = DeftDataset(shards, rows, tok, with_answer=False)
    full = predict_dataset(model, tok, ds, set(rows))[0]["generation"]
    assert full["max_new_tokens"] == cfg.max_new_tokens("explain")
    assert full["truncated"] == (full["tokens"] == full["max_new_tokens"])
    endless = predict_dataset(model, tok, ds, set(rows), max_new_tokens=3, suppress_tokens=[tok.eos_token_id])
    assert endless[0]["generation"]["truncated"] and endless[0]["generation"]["tokens"] == 3


def test_a_new_clip_is_asked_in_the_training_datas_wording(trained_run, shards_dir):
    from deft_fixtures import TEMPLATES

    from deft_model.configuration import tiny_config
    from deft_model.predict import build_config_of, predict_row
    from unimer_builder import BuildConfig

    cfg = json.loads((trained_run / "config.json").read_text())
    want = {t: TEMPLATES[t][0] for t in ("emotion", "au", "motion", "explain")}
    assert cfg["instructions"] == want  # variant 0 as the training rows word it
    assert predict_row(trained_run, shards_dir, "casme2/sub01/EP01_01#au")["asked"] == want
    # explanations are rendered with the installed builder's templates, whatever path the build recorded
    d = BuildConfig().to_dict()
    moved = tiny_config(build_config={**d, "text": {**d["text"], "templates": str(ROOT / "tests")}})
    assert build_config_of(moved)[0].text.folder == BuildConfig().text.folder


def test_a_run_loads_through_automodel_and_trust_remote_code(trained_run, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    import deft_model

    assert type(AutoModel.from_pretrained(trained_run)) is deft_model.DeftModel
    assert AutoTokenizer.from_pretrained(trained_run).convert_tokens_to_ids("<motion>") is not None
    code = ("import sys; from transformers import AutoModel; "
            f"m = AutoModel.from_pretrained({str(trained_run)!r}, trust_remote_code=True); "
            "assert 'deft_model' not in sys.modules, 'deft_model was imported'; "
            "print(type(m).__module__, m.can_generate())")
    env = dict(os.environ, HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "transformers_modules" in p.stdout and "True" in p.stdout


def test_baselines_on_the_same_folds(trained_run, shards_dir):
    from deft_model.baselines import evaluate_baselines

    res = evaluate_baselines(shards_dir, seed=0)
    assert set(res) == {"logreg_regions", "flow_cnn"}
    assert res["logreg_regions"]["n_clips"] == res["flow_cnn"]["n_clips"] == 32
    assert res["logreg_regions"]["uf1"] >= 0.9  # the fixtures plant each class's motion in the statistics
    assert res["flow_cnn"]["uf1"] > 0.25  # above chance (4 classes)
    runner = CliRunner()
    r = runner.invoke(app, ["evaluate", "--run", str(trained_run), "--no-generate", "--baselines"])
    assert r.exit_code == 0, r.output
    out = json.loads((trained_run / "loso_results.json").read_text())
    assert out["baselines"]["logreg_regions"]["n_clips"] == out["n_clips"] == 8  # the run's held-out fold only
    assert "logistic regression on region statistics" in r.output and "flow CNN" in r.output


def test_composite_evaluation_of_a_build_without_composite_labels_says_how_to_build_one(tmp_path):
    """The README's synthetic build (no --composite) gave `deft evaluate --protocol composite` the error "fold
    'casme2/sub01' leaves no training rows", hiding that no row had a composite label."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = write_shards(tmp_path / "d", n_subjects=2, clips_per_class=1, n_files=1)
    for f in (d / "data").glob("*.parquet"):
        t = pq.read_table(f)
        i = t.schema.get_field_index("emotion_composite")
        pq.write_table(t.set_column(i, "emotion_composite", pa.nulls(t.num_rows, pa.string())), f)
    r = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "runs"), "--protocol", "composite",
                                 "--data", str(d), "--epochs", "1", "--no-generate"])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "has a composite label (emotion_composite is empty)" in said, r.output
    assert "--composite labels" in said and not (tmp_path / "runs" / "composite").exists()


def test_composite_evaluation_names_the_clips_without_a_composite_label(tmp_path):
    """A synthetic build without --composite whose ids match a few clips of the official list scored those few
    alone, and said nothing of the rest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = write_shards(tmp_path / "d", n_subjects=2, clips_per_class=1, n_files=1)
    for f in (d / "data").glob("*.parquet"):
        t = pq.read_table(f)
        keep = [c.endswith("_01") or c.endswith("_02") for c in t.column("clip").to_pylist()]
        comp = [v if k else None for v, k in zip(t.column("emotion_composite").to_pylist(), keep, strict=True)]
        i = t.schema.get_field_index("emotion_composite")
        pq.write_table(t.set_column(i, "emotion_composite", pa.array(comp, pa.string())), f)
    extra = write_shards(tmp_path / "x", n_subjects=1, clips_per_class=1, n_files=1, seed=3)
    for f in (extra / "data").glob("*.parquet"):  # never scored: its clips are not counted either way
        t = pq.read_table(f)
        i = t.schema.get_field_index("emotion_composite")
        pq.write_table(t.set_column(i, "emotion_composite", pa.nulls(t.num_rows, pa.string())), f)
    r = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "runs"), "--protocol", "composite",
                                 "--data", str(d), "--epochs", "1", "--max-folds", "1", "--no-generate",
                                 "--extra-data", str(extra)])
    said = " ".join(r.output.split())
    assert "note: 4 of 8 clips have no composite label and are not scored" in said, r.output
    assert "--composite labels" in said


def test_loso_names_fold_folders_of_subjects_the_data_does_not_hold(small_shards_dir, tmp_path):
    """An evaluation of other data in the same --run folder left its folds there without a word (not pooled)."""
    other = tmp_path / "runs" / "loso" / "folds" / "samm__007"
    other.mkdir(parents=True)
    r = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "runs"), "--data", str(small_shards_dir),
                                 "--epochs", "1", "--max-folds", "1", "--no-generate"])
    said = " ".join(r.output.split())
    assert r.exit_code == 0, r.output
    assert "also holds 1 fold(s) of subjects not in" in said and "samm__007" in said and other.is_dir()
    assert "samm/007" not in json.loads((tmp_path / "runs" / "loso" / "loso_results.json").read_text())["folds"]


def test_a_predicted_row_carries_the_note_on_its_label(trained_run, two_db_dir):
    """The notes reach the prediction itself (the builds' settings note is held by
    tests/test_deft_on_builder_output.py): a SAMM row labelled anger, no class of this CASME II model."""
    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.predict import predict_row

    samm = ShardSet(two_db_dir, tiny_config())
    row = next(i for i, (d, e) in enumerate(zip(samm.database, samm.emotion, strict=True)) if d == "samm" and e == "anger")
    res = predict_row(trained_run, two_db_dir, samm.ids[row])
    assert any("'anger' is not among the model's classes" in n for n in res["notes"]), res["notes"]
