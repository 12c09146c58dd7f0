# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""`deft` given what it cannot use, or stopped midway: one `error:` line naming the cause and exit 2 (issue 10,
case 5: a clip folder where no face is found; new-user trials), and a run folder the next command accepts."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from deft_fixtures import shards_dir, small_shards_dir, trained_run  # noqa: F401
from typer.testing import CliRunner

from deft_model.cli import app


@pytest.mark.parametrize("marks", [("--onset", "1", "--apex", "4", "--offset", "8"), ()])
def test_predict_on_a_clip_without_a_face_is_a_clear_error(trained_run, tmp_path, marks):
    folder = tmp_path / "noface"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in range(1, 9):  # a textured wall, no face
        cv2.imwrite(str(folder / f"img{n}.jpg"), cv2.GaussianBlur(rng.integers(0, 255, (240, 240), np.uint8), (9, 9), 3))
    r = CliRunner().invoke(app, ["predict", "--run", str(trained_run), str(folder), *marks])
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.exception is None or isinstance(r.exception, SystemExit)
    line = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(line) == 1 and "face" in line[0] and str(folder / "img1.jpg") in line[0]


def _error_line(r) -> str:
    """The one `error:` line of a CLI run that failed as a user error (exit 2, no traceback)."""
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.mark.parametrize("below", [False, True])
def test_train_out_that_is_a_file_is_a_clear_error(small_shards_dir, tmp_path, below):
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    out = f / "run" if below else f
    r = CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(out)])
    line = _error_line(r)
    assert str(f) in line and "file" in line
    assert f.read_text() == "mine"


@pytest.mark.parametrize("opt", ["--epochs", "--max-steps", "--batch-size"])
def test_train_zero_epochs_or_steps_is_refused_not_an_untrained_model(small_shards_dir, tmp_path, opt):
    out = tmp_path / "run"
    r = CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(out), opt, "0"])
    line = _error_line(r)
    assert opt.lstrip("-").replace("-", "_") in line and "at least 1" in line
    assert not out.exists()


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Local stand-ins for the reference config's LLM and vision folders (deft_model.testing)."""
    from deft_model.testing import reference_bases

    return reference_bases(tmp_path_factory.mktemp("bases"))


@pytest.mark.parametrize("which, drop, named", [
    ("llm", ("*.safetensors",), ["weights"]),
    ("llm", ("*.safetensors", "tokenizer*", "chat_template*"), ["weights", "tokenizer"]),
    ("vision", ("*.safetensors",), ["weights"]),
])
def test_a_local_model_folder_missing_files_is_named_with_what_it_lacks(small_shards_dir, bases, tmp_path, which,
                                                                       drop, named):
    import shutil

    llm, vision = bases
    folder = tmp_path / f"my-{which}"
    shutil.copytree(llm if which == "llm" else vision, folder)
    for pattern in drop:
        for f in folder.glob(pattern):
            f.unlink()
    folders = {"llm": str(llm), "vision": str(vision), which: str(folder)}
    r = CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(tmp_path / "run"),
                                 "--config", "reference", "--set", f"llm={folders['llm']}",
                                 "--set", f"vision={folders['vision']}"])
    line = _error_line(r)
    assert str(folder) in line and "local folder" in line and "not a local folder" not in line
    assert "Hugging Face cache" not in line and "offline" not in line
    assert [p for p in ("config", "weights", "tokenizer") if f"no {p}" in line] == named


def _fail_at_step(monkeypatch, n: int, exc: BaseException) -> None:
    """Make the n-th training forward pass raise ``exc`` (an error or a Ctrl-C inside training)."""
    from deft_model.modeling import DeftModel

    forward, calls = DeftModel.forward, []

    def failing(self, *a, **kw):
        calls.append(1)
        if len(calls) == n:
            raise exc
        return forward(self, *a, **kw)

    monkeypatch.setattr(DeftModel, "forward", failing)


def test_a_run_failing_before_its_first_checkpoint_leaves_the_folder_as_it_found_it(small_shards_dir, bases,
                                                                                     tmp_path, monkeypatch):
    import shutil

    from deft_model.train import train

    llm, vision = bases
    partial = tmp_path / "llm-no-weights"
    shutil.copytree(llm, partial, ignore=shutil.ignore_patterns("*.safetensors"))
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cmd = ["train", "--data", str(small_shards_dir), "--out", str(out), "--config", "reference", "--set",
           f"vision={vision}", "--set", "base_dtype=float32", "--max-steps", "1"]
    # it fails after the tokenizer and run.json were written (loading the LLM's weights)
    _error_line(CliRunner().invoke(app, [*cmd, "--set", f"llm={partial}"]))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    r = CliRunner().invoke(app, [*cmd, "--set", f"llm={llm}"])  # the same command, corrected
    assert r.exit_code == 0, r.output
    # an error inside the first epoch (no checkpoint yet) into a new folder: no folder left
    kw = dict(fold="casme2/sub01", epochs=2, seed=0, verbose=False)
    _fail_at_step(monkeypatch, 1, RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        train(small_shards_dir, "tiny", tmp_path / "new", **kw)
    assert not (tmp_path / "new").exists()
    monkeypatch.undo()
    assert train(small_shards_dir, "tiny", tmp_path / "new", **kw) == tmp_path / "new"


def test_a_run_failing_after_a_checkpoint_keeps_it_for_resume_and_drops_a_half_written_one(small_shards_dir, tmp_path,
                                                                                            monkeypatch):
    from accelerate import Accelerator

    from deft_model.train import train

    out = tmp_path / "run"
    kw = dict(fold="casme2/sub01", epochs=2, seed=0, verbose=False)  # 2 steps an epoch, a checkpoint after each
    save_state, calls = Accelerator.save_state, []

    def dies_while_saving_the_second(self, d, *a, **k):  # its files written, its trainer_state.json not yet
        calls.append(d)
        save_state(self, d, *a, **k)
        if len(calls) == 2:
            raise RuntimeError("disk gone")

    monkeypatch.setattr(Accelerator, "save_state", dies_while_saving_the_second)
    with pytest.raises(RuntimeError, match="disk gone"):
        train(small_shards_dir, "tiny", out, **kw)
    assert [d.name for d in (out / "checkpoints").iterdir()] == ["step-0000002"]
    assert (out / "run.json").exists() and (out / "tokenizer").is_dir()
    monkeypatch.undo()
    assert train(small_shards_dir, "tiny", out, resume=True, **kw) == out
    assert [json.loads(ln)["step"] for ln in (out / "log.jsonl").read_text().splitlines()
            if "epoch_end" in ln] == [2, 4]


def test_a_folder_refused_keeps_another_runs_files_in_progress(small_shards_dir, tmp_path):
    """A run refused a folder another run is writing (its run.json, a checkpoint and tokenizer half-written) took
    back those half-written files on its way out, as a failed run of its own would."""
    from deft_model.errors import RunError
    from deft_model.train import train

    out = tmp_path / "run"
    (out / "checkpoints" / "step-0000004").mkdir(parents=True)  # no trainer_state.json yet: being written
    (out / ".tokenizer.tmp").mkdir()
    (out / "run.json").write_text("{}")
    with pytest.raises(RunError, match="already holds a run"):
        train(small_shards_dir, "tiny", out, fold="casme2/sub01", epochs=1, verbose=False)
    assert (out / "checkpoints" / "step-0000004").is_dir() and (out / ".tokenizer.tmp").is_dir()


def test_ctrl_c_in_training_says_where_the_checkpoint_is_and_how_to_resume(small_shards_dir, tmp_path, monkeypatch):
    import shlex

    out = tmp_path / "run"
    cmd = ["train", "--data", str(small_shards_dir), "--out", str(out), "--fold", "casme2/sub01", "--epochs", "2",
           "--seed", "3"]
    _fail_at_step(monkeypatch, 1, KeyboardInterrupt())  # before the first checkpoint: nothing kept
    r = CliRunner().invoke(app, cmd)
    assert r.exit_code == 130, r.output
    assert "Traceback" not in r.output and not out.exists()
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "nothing was kept" in lines[0] and "same command" in lines[0]
    monkeypatch.undo()
    _fail_at_step(monkeypatch, 3, KeyboardInterrupt())  # in epoch 2, after epoch 1's checkpoint
    r = CliRunner().invoke(app, cmd)
    assert r.exit_code == 130, r.output
    assert "Traceback" not in r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and str(out / "checkpoints" / "step-0000002") in lines[0]
    resume = shlex.split(lines[0].split("continue with ", 1)[1])
    assert resume[:2] == ["deft", "train"] and "--resume" in resume
    monkeypatch.undo()
    r = CliRunner().invoke(app, resume[1:])  # the command it gives, as given
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert (run["seed"], run["epochs"], run["held_out"]) == (3, 2, "casme2/sub01")
    assert [json.loads(ln)["step"] for ln in (out / "log.jsonl").read_text().splitlines()
            if "epoch_end" in ln] == [2, 4]


def test_train_refuses_a_folder_whose_files_a_run_would_write_over(small_shards_dir, tmp_path):
    """`deft train --out` into a model folder (or `--out .`) replaced its config.json, weights and tokenizer without
    a word; notes beside a run stay allowed."""
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"a": 1}')
    (out / "notes.txt").write_text("mine")
    line = _error_line(CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(out)]))
    assert "holds files a run writes (config.json)" in line
    assert (out / "config.json").read_text() == '{"a": 1}' and sorted(p.name for p in out.iterdir()) == \
        ["config.json", "notes.txt"]


def test_a_run_folder_with_a_broken_config_json_is_named(tmp_path):
    """A `config.json` that is no JSON object (not JSON, a list, a folder) gave a traceback or a message naming no
    file."""
    from deft_model.runtime import finished, model_dir

    for i, how in enumerate(["not json", "[1, 2]", None]):
        run = tmp_path / f"r{i}"
        run.mkdir()
        if how is None:
            (run / "config.json").mkdir()
        else:
            (run / "config.json").write_text(how)
        assert not finished(run)
        with pytest.raises(FileNotFoundError) as e:
            model_dir(run)
        assert str(run) in str(e.value)


def test_extra_data_that_is_the_data_itself_is_refused(small_shards_dir, tmp_path):
    """`--extra-data` of the build `--data` gives (or a copy) trained each LOSO fold on its own held-out subject
    under the extra data's names, which the leak check never saw."""
    import shutil

    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.errors import ShardError

    copy = tmp_path / "copy"
    shutil.copytree(small_shards_dir, copy)
    for extra in (small_shards_dir, copy):
        with pytest.raises(ShardError, match="is the build --data gives"):
            ShardSet(small_shards_dir, tiny_config(), extra=[extra])
    r = CliRunner().invoke(app, ["evaluate", "--run", str(tmp_path / "ev"), "--data", str(small_shards_dir),
                                 "--max-folds", "-1"])
    said = " ".join(r.output.replace("│", " ").split())
    assert r.exit_code == 2 and "greater than or equal to 1" in said  # -1 ran every fold but the last, as "Partial"


def test_options_a_command_cannot_use_are_refused_not_ignored(trained_run, shards_dir, tmp_path):
    """`evaluate` of a trained --fold run took --epochs, --seed, --config, --experts and --set and evaluated the run as
    it was; `predict --row` took --onset and --apex; an unfinished run given to `evaluate --data` got a LOSO evaluation
    started inside it."""
    r = CliRunner().invoke(app, ["evaluate", "--run", str(trained_run), "--epochs", "50", "--seed", "9"])
    line = _error_line(r)
    assert "--epochs, --seed set the folds a LOSO evaluation trains" in line
    r = CliRunner().invoke(app, ["predict", "--run", str(trained_run), "--row", "casme2/sub01/EP01_01#explain",
                                 "--data", str(shards_dir), "--onset", "1", "--apex", "5"])
    assert "--onset, --apex apply to a clip folder or video" in _error_line(r)
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text(json.dumps({"data": str(shards_dir)}))
    r = CliRunner().invoke(app, ["evaluate", "--run", str(unfinished), "--data", str(shards_dir), "--max-folds", "1"])
    assert "is an unfinished run" in _error_line(r) and sorted(p.name for p in unfinished.iterdir()) == ["run.json"]


def test_a_resume_on_another_data_folder_names_that_alone(trained_run, small_shards_dir):
    """A resume given another --data folder also said "other shards in that folder (built again since)"."""
    r = CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(trained_run), "--resume"])
    line = _error_line(r)
    assert "trained with other settings than given: data" in line and "built again" not in line


@pytest.mark.parametrize("command", ["evaluate", "predict"])
@pytest.mark.parametrize("below", [False, True])
def test_a_run_that_is_a_file_is_named_as_the_run_option(trained_run, shards_dir, command, below):
    """`evaluate --run FILE` was told to "give --out" (an option it lacks), `predict --run FILE` that FILE "holds
    no trained model (expected FILE/config.json)"."""
    f = trained_run / "config.json"
    run = f / "x" if below else f
    extra = ["--data", str(shards_dir)] + (["--row", "casme2/sub01/EP01_01#emotion"] if command == "predict" else [])
    before = f.read_bytes()
    line = _error_line(CliRunner().invoke(app, [command, "--run", str(run), *extra]))
    assert f"--run {f}" in line and "is a file, not a folder" in line and "--out" not in line
    assert f.read_bytes() == before


@pytest.mark.parametrize("setting, named", [
    ("training.lr=-1", "training.lr must be above 0"),
    ("training.lr=0", "training.lr must be above 0"),
    ("training.epochs=2.5", "training.epochs takes a whole number"),
    ("training.warmup_steps=-2", "training.warmup_steps must be at least 0"),
    ("training.betas=[0.9]", "training.betas takes two numbers"),
    ("training.max_length=0", "training.max_length must be at least 1"),
    ("training.group_by_length=3", "training.group_by_length takes true or false"),
])
def test_a_training_setting_out_of_range_names_its_key(small_shards_dir, tmp_path, setting, named):
    """`--set training.lr=-1` failed in torch's optimiser with "Invalid learning rate: -1.0", naming no setting."""
    out = tmp_path / "run"
    line = _error_line(CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(out),
                                                "--set", setting]))
    assert named in line, line
    assert not out.exists()


def test_a_config_file_with_a_training_setting_out_of_range_names_it(small_shards_dir, tmp_path):
    cfg = tmp_path / "mine.json"
    cfg.write_text(json.dumps({"preset": "tiny", "training": {"lr": -0.001}}))
    line = _error_line(CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out",
                                                str(tmp_path / "run"), "--config", str(cfg)]))
    assert str(cfg) in line and "training.lr must be above 0" in line


def test_an_expert_named_twice_is_refused(small_shards_dir, tmp_path):
    """`--experts motion,motion` failed in the collator: "the prompts hold 288 <motion> tokens, expected 18 ..."."""
    out = tmp_path / "run"
    line = _error_line(CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(out),
                                                "--experts", "motion,motion"]))
    assert "['motion'] listed more than once" in line and not out.exists()


@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_ctrl_c_in_evaluate_or_predict_says_so(trained_run, shards_dir, tmp_path, monkeypatch, command):
    """Ctrl-C exited 130 without a word (train says where its run stands)."""
    import deft_model.evaluate
    import deft_model.predict

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(deft_model.evaluate, "evaluate_run", stop)
    monkeypatch.setattr(deft_model.predict, "predict_row", stop)
    args = (["evaluate", "--run", str(tmp_path / "loso"), "--data", str(shards_dir)] if command == "evaluate" else
            ["predict", "--run", str(trained_run), "--data", str(shards_dir), "--row", "casme2/sub01/EP01_01#emotion"])
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 130, r.output
    lines = [ln for ln in r.output.splitlines() if ln.startswith("error: interrupted")]
    assert len(lines) == 1, r.output
    if command == "evaluate":
        assert str(tmp_path / "loso" / "loso" / "folds") in lines[0] and "same command again" in lines[0]


@pytest.mark.parametrize("opt", ["--log-every", "--save-every"])
def test_a_negative_log_or_save_interval_is_refused(small_shards_dir, tmp_path, opt):
    """``--save-every -1`` checkpointed (and ``--log-every -1`` logged) at every step: ``g % -1 == 0``."""
    out = tmp_path / "run"
    line = _error_line(CliRunner().invoke(app, ["train", "--data", str(small_shards_dir), "--out", str(out), opt, "-1"]))
    assert f"{opt.lstrip('-').replace('-', '_')} must be at least 0" in line and not out.exists()


def test_a_config_files_training_settings_are_checked_by_the_config_itself():
    """A saved or hand-made config read by ``from_dict`` (no ``--set``) is range-checked too."""
    from deft_model.configuration import DeftConfig, tiny_config

    d = tiny_config().to_dict()
    with pytest.raises(ValueError, match=r"training\.lr must be above 0"):
        DeftConfig.from_dict({**d, "training": {**d["training"], "lr": -0.1}})
    with pytest.raises(ValueError, match=r"training\.save_every must be at least 0"):
        DeftConfig.from_dict({**d, "training": {**d["training"], "save_every": -1}})


def test_extra_data_that_rebuilds_the_datas_clips_is_refused(small_shards_dir, tmp_path):
    """A rebuild of the `--data` database with other settings (another crop or image size, a Cropped copy) passed
    the check on the shards' names and sizes and trained each LOSO fold on its own held-out subject's clips."""
    from deft_fixtures import write_shards

    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.errors import ShardError

    again = write_shards(tmp_path / "again", n_subjects=2, clips_per_class=1, seed=0, n_files=1, image_size=48)
    with pytest.raises(ShardError, match="holds the clips --data gives, built again"):
        ShardSet(small_shards_dir, tiny_config(), extra=[again])
    other = write_shards(tmp_path / "other", n_subjects=2, clips_per_class=1, seed=5, n_files=1, image_size=48)
    assert ShardSet(small_shards_dir, tiny_config(), extra=[other]).n == 2 * 32  # other faces, the same names


def test_emotion_labels_a_config_lists_must_be_the_datas_classes(small_shards_dir, tmp_path):
    """A config whose emotion_labels held a typo ("sadnes") and missed the data's other classes trained a head of
    the one class both named and scored it over every class of the data (UF1 0.08), without a word."""
    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.train import train

    own = ShardSet(small_shards_dir, tiny_config()).emotion_labels()
    typo = own[1][:-1]
    with pytest.raises(ValueError, match=rf"missing .*{typo!r} is no class there \(did you mean {own[1]!r}\?\)"):
        train(small_shards_dir, tiny_config(emotion_labels=[own[0], typo]), tmp_path / "r", epochs=1, verbose=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match=rf"missing \[{own[-1]!r}\]; leave emotion_labels out"):  # a subset alone
        train(small_shards_dir, tiny_config(emotion_labels=own[:-1]), tmp_path / "r", epochs=1, verbose=False)
    done = train(small_shards_dir, tiny_config(emotion_labels=own[::-1]), tmp_path / "ok", max_steps=1, verbose=False)
    assert done is not None  # the data's classes in another order are the data's classes


def test_a_config_file_changes_the_presets_llm_field_by_field(tmp_path):
    """One field of the tiny LLM in a file replaced its whole config: a default Qwen2 of 32 layers and a 151,936-token
    vocabulary, which stalled a CPU; a misspelt field was taken; a JSON list printed a traceback."""
    from deft_model.configuration import load_config, tiny_config

    tiny = tiny_config().text_config
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"preset": "tiny", "text_config": {"model_type": "qwen2", "hidden_size": 96}}))
    t = load_config(one).text_config
    assert (t.hidden_size, t.num_hidden_layers, t.vocab_size) == (96, tiny.num_hidden_layers, tiny.vocab_size)
    bare = tmp_path / "bare.json"  # no model_type: the preset's
    bare.write_text(json.dumps({"preset": "tiny", "llm_config": {"num_hidden_layers": 1}}))
    assert load_config(bare).text_config.num_hidden_layers == 1 and load_config(bare).text_config.vocab_size == tiny.vocab_size
    window = tmp_path / "window.json"  # the per-layer attention kinds follow the window asked for
    window.write_text(json.dumps({"preset": "tiny", "text_config": {"use_sliding_window": True, "max_window_layers": 1,
                                                                    "sliding_window": 8}}))
    assert load_config(window).text_config.layer_types == ["full_attention", "sliding_attention"]
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({"preset": "tiny", "text_config": {"hidden_sizee": 64}}))
    with pytest.raises(ValueError, match=r"typo.json: text_config.hidden_sizee: .* \(did you mean text_config.hidden_size\?\)"):
        load_config(typo)
    listed = tmp_path / "list.json"
    listed.write_text('["tiny"]')
    with pytest.raises(ValueError, match=r"list.json: a JSON object of settings"):
        load_config(listed)
    other = tmp_path / "other.json"  # another model type is another model: replaced whole
    other.write_text(json.dumps({"preset": "tiny", "text_config": {"model_type": "gpt2", "n_layer": 1, "n_embd": 32,
                                                                   "n_head": 2, "vocab_size": 64}}))
    assert load_config(other).text_config.model_type == "gpt2"


def test_a_stop_signal_ends_training_as_ctrl_c_does(small_shards_dir, tmp_path):
    """SIGTERM (`timeout`, a scheduler's limit) killed `deft train` without a word, and a run stopped before its first
    checkpoint left run.json behind, so the same command was refused ("already holds a run")."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deft_model.cli", "train", "--data", str(small_shards_dir), "--out", str(out),
           "--batch-size", "1", "--epochs", "500", "--save-every", "100000", "--log-every", "1"]  # 32 steps an epoch
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and p.poll() is None and not (
            (out / "log.jsonl").is_file() and (out / "log.jsonl").read_text().count("\n") >= 2):
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()[0]  # still training, before any checkpoint
    p.send_signal(signal.SIGTERM)
    said = " ".join(p.communicate(timeout=120)[0].split())
    assert p.returncode == 128 + signal.SIGTERM, said
    assert "interrupted by SIGTERM before the first checkpoint; nothing was kept" in said and "Traceback" not in said
    assert not out.exists() or not any(out.iterdir())
    again = subprocess.run([*cmd[:-8], "--max-steps", "1"], capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr


def test_training_into_an_evaluations_folder_is_refused(small_shards_dir, tmp_path):
    """`deft train --out` an evaluation's folder trained a model beside its LOSO folds: the evaluation could no longer
    go on, and a plain `deft evaluate --run` wrote the one model's results beside the folds'."""
    from deft_model.errors import RunError
    from deft_model.train import train

    ev = tmp_path / "ev"
    (ev / "loso" / "folds" / "casme2__sub01").mkdir(parents=True)
    (ev / "loso" / "folds" / "casme2__sub01" / "run.json").write_text("{}")
    with pytest.raises(RunError, match=r"holds an evaluation's folds \(loso/folds/casme2__sub01"):
        train(small_shards_dir, "tiny", ev, max_steps=1, verbose=False)
    with pytest.raises(RunError, match=r"holds an evaluation's folds \(folds/casme2__sub01"):  # its protocol's folder
        train(small_shards_dir, "tiny", ev / "loso", max_steps=1, verbose=False)
    assert sorted(p.name for p in ev.iterdir()) == ["loso"] and sorted(p.name for p in (ev / "loso").iterdir()) == ["folds"]


def test_a_resume_keeps_the_runs_own_log_and_checkpoint_cadence(small_shards_dir, tmp_path):
    """`--save-every` and `--log-every` were not recorded: a run saved every 3 steps, resumed without them, fell back
    to one checkpoint an epoch and a log line every 10 steps."""
    from deft_model.train import train

    out = tmp_path / "r"

    def saved():
        return {int(p.name.split("-")[1]) for p in (out / "checkpoints").iterdir()}

    kw = dict(verbose=False)
    assert train(small_shards_dir, "tiny", out, epochs=1, batch_size=1, save_every=3, log_every=1, stop_after=4,
                 **kw) is None  # 32 steps an epoch
    assert saved() == {3}
    assert train(small_shards_dir, "tiny", out, resume=True, stop_after=7, **kw) is None
    assert 6 in saved()
    # a cadence given on a resume is the run's from then on
    assert train(small_shards_dir, "tiny", out, resume=True, save_every=5, stop_after=11, **kw) is None
    assert json.loads((out / "run.json").read_text())["save_every"] == 5
    assert train(small_shards_dir, "tiny", out, resume=True, stop_after=16, **kw) is None
    assert 15 in saved()
    assert train(small_shards_dir, "tiny", out, resume=True, stop_after=18, **kw) is None
    steps = [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert steps == list(range(1, steps[-1] + 1)) and steps[-1] >= 16  # every step logged, none twice


def test_a_config_files_invalid_value_names_the_file_and_au_list_holds_facs_aus(tmp_path):
    """`stack_len: 1` in a file was named without the file; `au_list: [1, 2, 999]` trained an AU999 head on no label."""
    from deft_model.configuration import load_config, tiny_config

    short = tmp_path / "short.json"
    short.write_text(json.dumps({"preset": "tiny", "stack_len": 1}))
    with pytest.raises(ValueError, match=r"short.json: stack_len must be an integer of at least 2"):
        load_config(short)
    odd = tmp_path / "odd.json"
    odd.write_text(json.dumps({"preset": "tiny", "au_list": [1, 2, 999]}))
    with pytest.raises(ValueError, match=r"odd.json: au_list \[1, 2, 999\] must list FACS action units once each \(\[999\] is none\)"):
        load_config(odd)
    with pytest.raises(ValueError, match="once each"):
        tiny_config(au_list=[12, 12])
    assert tiny_config(au_list=[12, 6, 43]).au_list == [12, 6, 43]


def test_composite_on_a_build_without_emotions_says_so(tmp_path):
    """A manifest build without an emotion column, built with --composite labels, was told to build with
    `--composite labels`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from deft_fixtures import write_shards

    from deft_model.evaluate import evaluate_run

    d = write_shards(tmp_path / "d", n_subjects=2, clips_per_class=1, seed=0, n_files=1)
    for f in (d / "data").glob("*.parquet"):
        t = pq.read_table(f)
        for col in ("emotion", "emotion_composite", "emotion_class"):
            t = t.set_column(t.schema.get_field_index(col), col, pa.nulls(t.num_rows, pa.string()))
        pq.write_table(t, f)
    with pytest.raises(ValueError, match="has an emotion label: the composite classes are mapped from emotions"):
        evaluate_run(tmp_path / "ev", protocol="composite", data=d, epochs=1, generate=False, verbose=False)


def test_a_row_whose_label_the_model_does_not_know_is_predicted_with_a_note(small_shards_dir):
    """`deft predict --row` of a clip labelled fear, a class the model was never given, said nothing of it."""
    from deft_model.configuration import tiny_config
    from deft_model.data import ShardSet
    from deft_model.predict import _unknown_class

    shards = ShardSet(small_shards_dir, tiny_config())
    own = shards.emotion_labels()
    r = shards.targets().index(own[0])
    assert _unknown_class(shards, r, tiny_config(emotion_labels=own)) == []
    (note,) = _unknown_class(shards, r, tiny_config(emotion_labels=own[1:]))
    assert f"the row's label {own[0]!r} is not among the model's classes" in note


def test_a_hangup_the_process_was_started_ignoring_stays_ignored(small_shards_dir, tmp_path, monkeypatch):
    """`nohup deft train ... &` ignores SIGHUP so that the run goes on after the terminal closes: the stop handler
    replaced that and ended it. Where a platform has no SIGHUP (Windows) every command, --help included, crashed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "deft_model.cli", "train", "--data", str(small_shards_dir), "--out", str(out),
           "--batch-size", "1", "--epochs", "500", "--save-every", "100000", "--log-every", "1"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and p.poll() is None and not (
                (out / "log.jsonl").is_file() and (out / "log.jsonl").read_text().count("\n") >= 2):
            time.sleep(0.1)
        p.send_signal(signal.SIGHUP)
        time.sleep(3)
        assert p.poll() is None  # still training
    finally:
        p.send_signal(signal.SIGTERM)
        said = p.communicate(timeout=120)[0]
    assert p.returncode == 128 + signal.SIGTERM, said
    monkeypatch.delattr(signal, "SIGHUP")
    r = CliRunner().invoke(app, ["predict", "--help"])
    assert r.exit_code == 0, r.output


def test_a_bad_override_is_not_blamed_on_a_sound_config_file(tmp_path):
    """`--config ok.json --set stack_len=1` said "config file ok.json: stack_len ...": the file was fine."""
    from deft_model.configuration import load_config

    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"preset": "tiny", "lora_r": 4}))
    with pytest.raises(ValueError, match=r"stack_len must be an integer of at least 2") as e:
        load_config(ok, stack_len=1)
    assert "ok.json" not in str(e.value)


def test_the_same_face_is_told_by_the_onset_crop_or_the_landmarks():
    """Rebuilt clips are told from other people under the same clip ids by either signal a build keeps (a build
    without images keeps the landmarks only)."""
    import cv2

    from deft_model.data import _same_face

    rng = np.random.default_rng(0)
    lm = rng.uniform(40, 180, (68, 2))

    def png(seed):
        img = cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, (64, 64)).astype(np.float32), (0, 0), 3)
        return {"bytes": cv2.imencode(".png", cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8))[1].tobytes()}

    face = {"landmarks": lm.tolist(), "crop_size": 224}
    assert _same_face(face, {"landmarks": (lm * 160 / 224 + 0.3).tolist(), "crop_size": 160})  # another crop size
    assert not _same_face(face, {"landmarks": (lm + rng.normal(0, 0.04 * 224, lm.shape)).tolist(), "crop_size": 224})
    assert _same_face({"onset_image": png(1)}, {"onset_image": png(1)})
    assert not _same_face({"onset_image": png(1)}, {"onset_image": png(2)})
    assert _same_face({"onset_image": png(1)}, {}) is None


def test_set_changes_one_field_of_a_sub_models_config():
    """`--set text_config.hidden_size=96` was refused ("did you mean text_config?") while `training.lr=...` worked."""
    from deft_model.configuration import load_config, tiny_config

    cfg = load_config("tiny", **{"text_config.hidden_size": 96, "llm_config.num_hidden_layers": 1,
                                 "vision_config.hidden_size": 48})
    assert (cfg.text_config.hidden_size, cfg.text_config.num_hidden_layers, cfg.vision_config.hidden_size) == (96, 1, 48)
    assert cfg.text_config.vocab_size == tiny_config().text_config.vocab_size
    with pytest.raises(ValueError, match=r"text_config.hidden_sizee: .*did you mean text_config.hidden_size"):
        load_config("tiny", **{"text_config.hidden_sizee": 96})
