"""`deft` command line: train, evaluate, predict. Heavy modules are imported inside the commands.

Several processes: ``accelerate launch --num_processes 2 [--cpu] -m deft_model.cli train ...`` (or
``accelerate launch $(which deft) train ...``) runs the same training under DDP.
"""

from __future__ import annotations

import json
import shlex
import signal
import sys
import threading
from pathlib import Path

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="DEFT-LLM: train, evaluate and predict micro-expressions from Uni-MER shards.")
_STOPPED: list[int] = []  # the signal (SIGTERM, SIGHUP) that ended the command as Ctrl-C does


@app.callback()
def _stop_as_ctrl_c(ctx: typer.Context) -> None:
    """SIGTERM and SIGHUP (`timeout`, a scheduler's limit, a closed terminal) end a command as Ctrl-C does: a run
    stopped before its first checkpoint takes back what it wrote, and the line says how to go on; they killed it
    without a word, its half-made run folder refusing the same command. Main thread only; restored after. A signal
    the process was started ignoring stays ignored (`nohup deft train ... &` goes on after the terminal closes), and
    a platform without SIGHUP (Windows) handles SIGTERM alone."""
    _STOPPED.clear()
    if threading.current_thread() is not threading.main_thread():
        return

    def stop(signum, _frame):
        _STOPPED.append(signum)
        raise KeyboardInterrupt

    sigs = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None))
            if s is not None and signal.getsignal(s) is not signal.SIG_IGN]
    old = {sig: signal.signal(sig, stop) for sig in sigs}
    ctx.call_on_close(lambda: [signal.signal(sig, h) for sig, h in old.items()])


def _interrupted_by(msg: str) -> None:
    """Fail with ``msg`` after Ctrl-C or a stop signal: exit 128 + the signal."""
    how = f" by {signal.Signals(_STOPPED[0]).name}" if _STOPPED else ""
    _fail(msg.replace("interrupted", f"interrupted{how}", 1), 128 + (_STOPPED[0] if _STOPPED else signal.SIGINT))


_SET_HELP = ("config override KEY=VALUE (JSON or text), repeatable: lora_r=16, training.lr=1e-4, "
             "training='{\"epochs\": 2}'; an unknown key is an error")


def _fail(msg: str, code: int = 2):
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(code)


def _overrides(experts: str | None, set_: list[str] | None) -> dict:
    ov: dict = {}
    if experts:
        ov["experts"] = [e.strip() for e in experts.split(",") if e.strip()]
    for kv in set_ or []:
        if "=" not in kv:
            _fail(f"--set expects KEY=VALUE (JSON value), got {kv!r}")
        k, v = kv.split("=", 1)
        try:
            ov[k] = json.loads(v)
        except json.JSONDecodeError:
            ov[k] = v
    return ov


def _user_errors():
    from unimer_builder import InputError

    from .errors import OfflineModelError, RunError, ShardError

    return (ShardError, OfflineModelError, RunError, InputError, FileNotFoundError, ValueError)


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="folder with the builder's Parquet shards (DIR/data/*.parquet)"),
    config: str = typer.Option(None, "--config", help="tiny (default) | reference | FILE.json"),
    out: Path = typer.Option(..., "--out", help="run folder"),
    fold: str = typer.Option(None, "--fold", help="hold out this subject (database/subject or subject)"),
    epochs: int = typer.Option(None, "--epochs", help="passes over the data (default: the config's)"),
    seed: int = typer.Option(None, "--seed", help="default 0"),
    resume: bool = typer.Option(False, "--resume", help="continue from the run's last checkpoint, with the run's "
                                "settings: an option given must be the run's, except a higher --epochs (trains on)"),
    batch_size: int = typer.Option(None, "--batch-size", help="rows per step (default: the config's)"),
    max_steps: int = typer.Option(None, "--max-steps", help="stop after N optimiser steps (a quick look)"),
    experts: str = typer.Option(None, "--experts", help="comma list, e.g. structure,dynamic (ablation)"),
    set_: list[str] = typer.Option(None, "--set", help=_SET_HELP),
    log_every: int = typer.Option(None, "--log-every", help="log the losses every N steps (default: the config's)"),
    save_every: int = typer.Option(None, "--save-every", help="checkpoint every N steps (0: every epoch)"),
    extra_data: list[Path] = typer.Option(None, "--extra-data", help="another build to train on as well, never held "
                                          "out (repeatable; e.g. other subjects or synthetic identities)"),
):
    """Train DEFT-LLM on the shards (all task rows; emotion and AU heads on every row)."""
    from .train import train as run_train

    before = _model_stamp(out)
    try:
        final = run_train(data, config, out, fold=fold, epochs=epochs, seed=seed, resume=resume,
                          batch_size=batch_size, max_steps=max_steps, overrides=_overrides(experts, set_),
                          log_every=log_every, save_every=save_every, extra_data=extra_data or None)
    except _user_errors() as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _interrupted_by(_interrupted(data, out))
    finally:
        _end_distributed()
    if before is not None and before == _model_stamp(out):  # a finished run resumed: nothing was trained
        typer.echo(f"model unchanged in {final}")
    else:
        typer.echo(f"model saved to {final} (load it with AutoModel.from_pretrained after `import deft_model`)")


def _model_stamp(out: Path) -> int | None:
    """When the run's final model was written (ns), or None where it has none."""
    from .runtime import MODEL_MARK, model_dir

    try:
        return (model_dir(out) / MODEL_MARK).stat().st_mtime_ns
    except (FileNotFoundError, ValueError):
        return None


def _interrupted(data: Path, out: Path) -> str:
    """Ctrl-C during training: where the run stands and the command that continues it (a run stopped before
    its first checkpoint has taken back what it wrote)."""
    from .train import _latest_checkpoint

    if not (out / "run.json").exists():
        return f"interrupted before the first checkpoint; nothing was kept in {out}: run the same command again"
    ck = _latest_checkpoint(out)
    cmd = shlex.join(["deft", "train", "--data", str(data), "--out", str(out), "--resume"])
    where = f"the last checkpoint is {ck}" if ck else "no checkpoint was saved yet"
    return f"interrupted; {where}: continue with {cmd}"


def _run_folder(run: Path, what: str) -> None:
    """``--run`` names a folder (or one to be made): a file there failed as "holds no trained model (expected
    FILE/config.json)" or told to "give --out" a folder, an option the command lacks."""
    for p in (run, *run.parents):
        if p.exists():
            if not p.is_dir():
                where = "" if p == run else f" (above {run})"
                _fail(f"--run {p}{where} is a file, not a folder; give --run {what}")
            return


def _end_distributed() -> None:
    """Tear the process group down before exit (a gloo group left to the interpreter's exit can abort it)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@app.command()
def evaluate(
    run: Path = typer.Option(..., "--run", help="a `deft train --fold` run, or a folder for LOSO fold runs"),
    protocol: str = typer.Option("loso", "--protocol", help="loso | composite"),
    data: Path = typer.Option(None, "--data", help="shards (needed to train missing LOSO folds)"),
    config: str = typer.Option(None, "--config", help="tiny | reference | FILE.json, for folds trained here "
                                                     "(default tiny)"),
    epochs: int = typer.Option(None, "--epochs", help="epochs of each fold trained here (default: the config's)"),
    seed: int = typer.Option(None, "--seed", help="seed of the folds trained here (default 0)"),
    generate: bool = typer.Option(True, "--generate/--no-generate", help="also parse greedy answers"),
    max_folds: int = typer.Option(None, "--max-folds", min=1, help="only the first K subjects (quick look; partial)"),
    experts: str = typer.Option(None, "--experts", help="comma list, e.g. structure,dynamic (ablation)"),
    set_: list[str] = typer.Option(None, "--set", help=_SET_HELP),
    baselines: bool = typer.Option(False, "--baselines", help="also score logistic regression on region statistics "
                                   "and a flow CNN on the same folds"),
    extra_data: list[Path] = typer.Option(None, "--extra-data", help="another build every fold (and the baselines) "
                                          "also trains on, never held out or scored (repeatable)"),
):
    """LOSO / composite evaluation; UF1 and UAR on predictions pooled over folds; JSON + Markdown."""
    from .evaluate import evaluate_run
    from .runtime import _no_model, finished

    _run_folder(run, "a `deft train --fold` run folder, or a folder for LOSO fold runs")
    if finished(run):  # a trained --fold run is evaluated as it was trained: these were ignored without a word
        given = [name for name, v in (("--config", config), ("--epochs", epochs), ("--seed", seed),
                                      ("--max-folds", max_folds), ("--experts", experts)) if v is not None]
        given += [name for name, v in (("--set", set_), ("--extra-data", extra_data)) if v]
        if given:
            _fail(f"{', '.join(given)} set the folds a LOSO evaluation trains; {run} is a trained run, evaluated as "
                  f"it was trained (a LOSO evaluation needs a folder of its own: --run NEW --data DIR)")
    elif (run / "run.json").exists():  # an unfinished `deft train` run: a LOSO evaluation was started inside it
        _fail(_no_model(run))
    try:
        res = evaluate_run(run, protocol, data=data, config=config or "tiny", epochs=epochs,
                           seed=seed if seed is not None else 0, generate=generate,
                           max_folds=max_folds, overrides=_overrides(experts, set_), baselines=baselines,
                           extra_data=extra_data or [])
    except _user_errors() as e:
        _fail(str(e))
    except KeyboardInterrupt:  # the folds finished are kept; the one in training resumes from its checkpoint
        _interrupted_by("interrupted; nothing was evaluated" if finished(run) else
                        f"interrupted; the LOSO folds trained so far are kept under {run / protocol / 'folds'} (the "
                        f"one in training from its last checkpoint): run the same command again to go on")
    d = Path(res["results_dir"])
    typer.echo((d / f"{protocol}_results.md").read_text())
    typer.echo(f"results: {d / f'{protocol}_results.json'}")
    if res.get("baselines_error"):  # DEFT-LLM's results are written; what --baselines asked for is not
        _fail(f"--baselines: {res['baselines_error']} (DEFT-LLM's results are written without them)")


@app.command()
def predict(
    run: Path = typer.Option(..., "--run", help="a `deft train` run folder"),
    clip: Path = typer.Argument(None, help="a clip folder of numbered frames, or a video file (frames from 0)"),
    onset: int = typer.Option(None, "--onset", help="onset frame number (default: the first frame; a video's is 0)"),
    apex: int = typer.Option(None, "--apex", help="apex frame number (default: estimated from motion)"),
    offset: int = typer.Option(None, "--offset", help="offset frame number (default: the last frame)"),
    row: str = typer.Option(None, "--row", help="a shard row id (<clip_id>#<task>) instead of a clip folder"),
    data: Path = typer.Option(None, "--data", help="shards holding --row"),
):
    """Predict emotion and AUs (the model's heads), the measured motion, an explanation built from them, and
    the language model's own answers, as JSON (its "sources" says which field comes from where)."""
    from .predict import predict_clip, predict_row

    _run_folder(run, "the run folder of `deft train`")
    try:
        if row is not None:
            if clip is not None:
                _fail(f"give a clip ({clip}) or --row, not both")
            if data is None:
                _fail("--row needs --data DIR")
            marks = [name for name, v in (("--onset", onset), ("--apex", apex), ("--offset", offset)) if v is not None]
            if marks:  # a row's window is the one its build measured: they were ignored without a word
                _fail(f"{', '.join(marks)} apply to a clip folder or video; --row {row} is predicted on the window "
                      f"its build measured")
            res = predict_row(run, data, row)
        elif clip is not None:
            if data is not None:
                _fail(f"--data applies to --row; a clip ({clip}) is measured from its own frames")
            res = predict_clip(run, clip, onset, apex, offset)
        else:
            _fail("give a clip folder or a video file, or --row ID --data DIR")
    except _user_errors() as e:
        _fail(str(e))
    except KeyboardInterrupt:
        _interrupted_by("interrupted; nothing was predicted")
    for note in res.get("notes") or []:
        typer.echo(f"note: {note}", err=True)
    json.dump(res, sys.stdout, indent=1, default=float)
    sys.stdout.write("\n")


if __name__ == "__main__":
    app()
