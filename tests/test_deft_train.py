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
from deft_fixtures import shards_dir, small_shards_dir, trained_run, write_shards  # noqa: F401
from typer.testing import CliRunner

from deft_model.cli import app
from deft_model.train import RunError, train

ROOT = Path(__file__).resolve().parent.parent


def _log(run: Path) -> list[dict]:
    return [json.loads(ln) for ln in (run / "log.jsonl").read_text().splitlines() if ln.strip()]


def _weights(run: Path) -> dict:
    from safetensors.numpy import load_file

    return load_file(str(run / "model" / "model.safetensors"))


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
    assert (trained_run / "model" / "model.safetensors").exists()
    assert (trained_run / "model" / "tokenizer.json").exists()
    log = _log(trained_run)
    assert any(r.get("epoch_end") for r in log)
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses[-1] < losses[0]
    step = [r["step_s"] for r in log if "step_s" in r]
    data = [r["data_s"] for r in log if "data_s" in r]
    assert sum(data) < 0.1 * sum(step)  # data loading stays under 10 % of step time


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
    assert out["reasoning"] is not None and out["motion"] is not None and "lip corner" in out["measured_motion"]
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
    assert r.exit_code == 2 and "no trained model" in r.output


def test_ablation_trains_without_the_motion_expert(shards_dir, tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--data", str(shards_dir), "--out", str(tmp_path / "abl"), "--fold", "sub02",
                            "--experts", "structure,dynamic", "--max-steps", "3", "--log-every", "1"])
    assert r.exit_code == 0, r.output
    cfg = json.loads((tmp_path / "abl" / "model" / "config.json").read_text())
    assert cfg["experts"] == ["structure", "dynamic"]
    assert not any(k.startswith("experts.motion") for k in _weights(tmp_path / "abl"))


def test_clip_folder_prediction(trained_run, tmp_path):
    from deft_model.data import ShardError
    from deft_model.predict import clip_from_folder, predict_clip, standard_instructions
    from unimer_builder import facs, render
    from unimer_builder.config import BuildConfig
    from unimer_builder.crosscheck import cross_check
    from unimer_builder.evidence import compute_evidence
    from unimer_builder.synth.generate import synthesize

    root = Path(synthesize(tmp_path / "syn", "manifest", clips=2, subjects=1, seed=0))
    gt = {c["clip_id"]: c for c in json.loads((root / "ground_truth.json").read_text())["clips"]}["manifest/S01/c01"]
    folder = root / "clips" / "S01" / "c01"
    # the frame listing and range checks are the builder's
    clip = clip_from_folder(folder, None, None, None)
    assert (clip.onset, clip.offset, len(clip.frames)) == (0, 13, 14)
    with pytest.raises(ShardError, match="apex frame 20 is outside the frames present"):
        clip_from_folder(folder, gt["onset"], 20, None)
    with pytest.raises(ShardError, match="offset frame 2 comes before onset frame 5"):
        clip_from_folder(folder, 5, None, 2)

    res = predict_clip(trained_run, folder, onset=gt["onset"], apex=gt["apex"], offset=gt["offset"])
    cfg = json.loads((trained_run / "model" / "config.json").read_text())
    assert (res["onset"], res["apex"], res["offset"]) == (gt["onset"], gt["apex"], gt["offset"])
    assert res["emotion"] in cfg["emotion_labels"] and set(res["emotion_probs"]) == set(cfg["emotion_labels"])
    assert isinstance(res["aus"], list) and set(res["aus"]) <= set(cfg["au_list"])
    assert set(res["au_probs"]) == {f"AU{a}" for a in cfg["au_list"]}
    assert isinstance(res["answer_aus"], list) and set(res["answer_aus"]) <= set(facs.AUS)
    for key in ("motion", "reasoning", "measured_motion"):
        assert isinstance(res[key], str) and res[key].strip(), key
    # the planted happiness motion (cheeks and lip corners rise) reaches the model's region statistics
    assert "cheek" in res["measured_motion"] or "lip corner" in res["measured_motion"], res["measured_motion"]

    # the model is asked in the builder's wording: variant 0 of every task's template
    bc = BuildConfig(stack_len=4)
    c = clip_from_folder(folder, gt["onset"], gt["apex"], gt["offset"])
    ev = compute_evidence(c, bc)
    ctx = render.build_context(c, ev, cross_check(c, ev, bc), bc)
    asked = standard_instructions()
    assert list(asked) == list(render.TASKS)
    for task in render.TASKS:
        assert asked[task] == render.render_task(task, 0, ctx, bc.templates_dir)[0], task


def test_lora_training_changes_only_adapters_and_experts(small_shards_dir, tmp_path):
    from accelerate.utils import set_seed
    from safetensors.torch import load_file

    from deft_model.configuration import DeftConfig
    from deft_model.modeling import DeftModel
    from deft_model.tokenizer import load_tokenizer

    out = tmp_path / "lora"
    train(small_shards_dir, "tiny", out, fold="casme2/sub01", max_steps=2, seed=0, verbose=False,
          overrides={"llm_mode": "lora", "train_embeddings": False})
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["llm_mode"] == "lora"
    # the untrained model, rebuilt exactly as train() built it
    cfg = DeftConfig(**{k: v for k, v in run["config"].items() if k not in ("model_type", "transformers_version")})
    set_seed(run["seed"])
    init = DeftModel.from_components(cfg, load_tokenizer(out / "tokenizer")).state_dict()
    final = load_file(str(out / "model" / "model.safetensors"))
    assert set(final) <= set(init)
    changed = {k for k in final if not torch.equal(final[k], init[k])}
    assert any("lora_" in k for k in changed) and any(k.startswith("experts.") for k in changed)
    base_llm = [k for k in final if k.startswith("llm.") and "lora_" not in k]
    assert base_llm and not changed & set(base_llm), sorted(changed & set(base_llm))[:5]
    assert all("lora_" in k or k.startswith(("experts.", "emotion_head.", "au_head.")) for k in changed)


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


def test_loso_retrains_a_fold_trained_differently(small_shards_dir, tmp_path):
    from deft_model.evaluate import evaluate_run

    kw = dict(data=small_shards_dir, seed=0, folds=["casme2/sub01"], generate=False, verbose=False)
    fdir = tmp_path / "loso" / "folds" / "casme2__sub01"

    def fold_info():
        return json.loads((fdir / "run.json").read_text()), (fdir / "model" / "model.safetensors").stat().st_mtime_ns

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
    assert (tmp_path / "ddp" / "model" / "model.safetensors").exists()
    ck = tmp_path / "ddp" / "checkpoints" / "step-0000002"
    assert (ck / "trainer_state.json").exists() and (ck / "random_states_1.pkl").exists()
