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
from deft_fixtures import shards_dir, trained_run, write_shards  # noqa: F401
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
    pytest.importorskip("unimer_builder.evidence", reason="builder motion evidence not written yet")
    import cv2

    from deft_model.predict import predict_clip

    try:
        from unimer_builder.synth.motion import render_clip  # type: ignore[attr-defined]
        frames = render_clip()
    except Exception:  # noqa: BLE001 - any face will do: the astronaut of scikit-image
        from skimage import data

        face = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
        frames = [np.roll(face, k // 3, axis=0) for k in range(8)]
    clip = tmp_path / "clip"
    clip.mkdir()
    for i, f in enumerate(frames, start=1):
        cv2.imwrite(str(clip / f"img{i}.jpg"), np.asarray(f))
    try:
        res = predict_clip(trained_run, clip, onset=1, apex=4, offset=len(frames))
    except Exception as e:  # noqa: BLE001
        if "face" in str(e).lower():
            pytest.skip(f"the builder found no face in the test frames: {e}")
        raise
    assert res["emotion"] in res["emotion_probs"] and "reasoning" in res


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
