"""The model package on what the builder really writes (not on hand-made fixture shards)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from unimer_builder.cli import app as unimer


def test_train_and_evaluate_a_fold_on_real_builder_shards(tmp_path):
    from deft_model.evaluate import evaluate_run
    from deft_model.train import train

    runner = CliRunner()
    src, out = tmp_path / "src", tmp_path / "unimer"
    assert runner.invoke(unimer, ["synth", str(src), "-f", "casme2", "--clips", "6", "--subjects", "2",
                                  "--frames", "8"]).exit_code == 0
    res = runner.invoke(unimer, ["build", str(src), "-f", "casme2", "--out", str(out), "--workers", "1"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    model = train(out, "tiny", run, fold="casme2/sub01", max_steps=3, verbose=False)
    assert (model / "config.json").exists()
    assert json.loads((run / "run.json").read_text())["fold"] == "casme2/sub01"
    result = evaluate_run(run, "loso", data=out, generate=True, verbose=False)
    assert result["n_clips"] == 3  # the held-out subject's clips, and only those
    preds = [json.loads(line) for line in (run / "loso_predictions.jsonl").read_text().splitlines()]
    assert {p["subject"] for p in preds} == {"sub01"}
    assert all(p["head"] in {"happiness", "disgust", "repression", "surprise", "others"} for p in preds)
    assert all(set(p["generated_by_task"]) == {"emotion", "au", "explain"} for p in preds)
