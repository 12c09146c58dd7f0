"""``unimer``: synthesise a database, build Uni-MER shards from one, check them, publish them.

Options become a :class:`BuildConfig` (an option left out takes its default there) and the work is
:func:`unimer_builder.pipeline.build`'s; this module only parses, prints and sets the exit status.

The exit statuses of ``build`` are the user's help text, :data:`HELP` (README, "Exit status"). Each failure is
one line naming the path and the cause, never a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import webbrowser
from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from . import pipeline
from .config import (
    AU_DETECTORS,
    FACE_DETECTORS,
    FLOW_BACKENDS,
    POLICIES,
    TVL1_PRESETS,
    BuildConfig,
    FlowConfig,
)
from .errors import EnvironmentFailure, UnusableInput
from .executors_ray import RayUnavailable
from .export import export as run_export
from .groundtruth import score
from .hub import plan as push_plan
from .hub import push as push_folder
from .inspect_report import write_report
from .labels import COMPOSITE_MODES
from .pyfeat_backend import PyFeatUnavailable
from .records import Skip
from .sources import FORMATS
from .sources.frames import FFMPEG_QUIET
from .synth.generate import FRAMINGS, GROUND_TRUTH, PROFILES, synthesize
from .validation.media import MediaUnavailable

# The user's help, not the module docstring above (it is for developers: Sphinx roles would show as typed).
HELP = ("Build Uni-MER, micro-expression instruction data checked against the face's motion, from a MER database; "
        "look at it, export it, publish it.\n\n"
        "Exit status of build: 0 every clip built, 1 some clips skipped (build_report.json lists them), 2 the input "
        "or the options cannot be used (nothing written), 3 the environment failed (the output folder cannot be "
        "written, the disk is full, another build holds the folder), 130 interrupted (run it again to resume).")
for _k, _v in FFMPEG_QUIET.items():  # the command line's processes and their workers; not the library's callers
    os.environ.setdefault(_k, _v)
app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    # One line, whatever the terminal's width; brackets in the message (unimer[pyfeat]) are text, not markup.
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def synth(
    out: Path = typer.Argument(..., help="Folder to write the synthetic database into."),
    format: str = typer.Option("casme2", "--format", "-f", help="casme2 | samm | smic | casme3 | manifest"),
    clips: int = typer.Option(24, help="Number of clips."),
    subjects: int = typer.Option(4, help="Number of subjects."),
    seed: int = typer.Option(0, help="Seed: the same seed writes the same files."),
    frames: int = typer.Option(14, help="Frames per clip."),
    profile: str = typer.Option("default", help="default (one face photo, clean frames) | hard (real people's "
                                "faces in 640x480 frames: pose, head motion, blinks, flicker, noise, JPEG)."),
    identities: str = typer.Option(None, help="hard profile: train | heldout | all | comma-separated names "
                                   "(one per subject; default train)."),
    framing: str = typer.Option("frame", help="hard profile: frame (640x480, as recorded) | cropped (each clip's "
                                "frames cut to the face, as the databases' Cropped releases store them)."),
) -> None:
    """Write a small database in a real on-disk format, with planted micro-movements and ground truth."""
    if format not in FORMATS:
        _fail(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if profile not in PROFILES:
        _fail(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if identities is not None and profile != "hard":
        _fail("--identities needs --profile hard")
    if framing not in FRAMINGS:
        _fail(f"unknown framing {framing!r}; choose one of {', '.join(FRAMINGS)}")
    if framing != "frame" and profile != "hard":
        _fail("--framing needs --profile hard")
    try:
        root = synthesize(out, format, clips=clips, subjects=subjects, seed=seed, frames=frames, profile=profile,
                          identities=identities, framing=framing)
    except (ValueError, MediaUnavailable) as e:
        _fail(str(e))
    framed = ", cut to the face" if framing == "cropped" else ""
    console.print(f"wrote {_n(clips, f'{format} clip')} of {_n(min(subjects, clips), 'subject')} ({profile} profile{framed}) "
                  f"to {root} "
                  f"(truth: {root / GROUND_TRUTH}); build it with --composite labels (it is not the release)")


_D = BuildConfig()  # the defaults every option below falls back to (one default per setting: config.py)


def _choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        _fail(f"{option} must be one of {', '.join(choices)}, not {value!r}")


@app.command()
def build(
    root: Path = typer.Argument(..., help="Database root, or a manifest (.csv, .parquet, .xlsx): one row per window, "
                                          "columns path,onset[,apex,offset,aus,emotion,subject,clip,fps]; a video's "
                                          "frames count from 0 (README, 'Your own manifest')."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: data/*.parquet, README.md, build_report.json."),
    format: str = typer.Option(None, "--format", "-f", help="casme2 | samm | smic | casme3 | manifest (default: detect)."),
    workers: int = typer.Option(0, min=0, help="Worker processes (0: one per core; with --executor ray one per CPU of "
                                               "the cluster)."),
    executor: str = typer.Option("local", help="local (this machine: one process or a process pool) | ray (Ray actors "
                                               "on a cluster; needs unimer\\[ray], and ROOT and --out on a path every "
                                               "node reaches: README, 'On a Ray cluster'). Same rows either way."),
    ray_address: str = typer.Option(None, help="--executor ray: the cluster: auto | HOST:PORT | ray://HOST:PORT | local "
                                               "(default: $RAY_ADDRESS, else the cluster `ray start` left on this "
                                               "machine, else a new one on this machine)."),
    limit: int = typer.Option(None, min=1, help="Build only the first N clips."),
    seed: int = typer.Option(None, help=f"Seed for template choice; same seed, same rows (default {_D.text.seed})."),
    templates: Path = typer.Option(None, help="Folder of Jinja2 templates (default: the packaged ones)."),
    policy: str = typer.Option(None, help="keep | flag | drop samples whose labelled AUs motion does not support, "
                                          "or whose noise floor is over check.max_floor "
                                          f"(default {_D.check.policy})."),
    preset: str = typer.Option(None, help=f"TV-L1 preset: {' | '.join(TVL1_PRESETS)} (default {_D.flow.preset})."),
    crop_size: int = typer.Option(None, help=f"Aligned face crop size in px: the flow's pixel unit (default "
                                             f"{_D.face.crop_size})."),
    flow_backend: str = typer.Option(None, help="TV-L1 implementation: opencv (CPU) | torch (the same solver in torch) "
                                                f"(default {_D.flow.backend})."),
    device: str = typer.Option(None, help="Device of --flow-backend torch: cpu | cuda | auto (default auto: CUDA when "
                                          "present)."),
    keep_parts: bool = typer.Option(False, help="Keep the per-clip part files after the shards are written."),
    images: bool = typer.Option(True, "--images/--no-images", help="--no-images: leave the face pixel columns "
                                "(onset_image, apex_image, frames) out of the shards, for subjects whose licence "
                                "forbids publishing their faces; the card says so."),
    au_detector: str = typer.Option(
        None, help="flow | py-feat: py-feat's AUs on the onset and apex frames as a second, appearance-based "
                   "opinion (needs unimer\\[pyfeat]: CUDA torch, its torchvision, Hub access for the weights) "
                   f"(default {_D.check.au_detector})."),
    face_detector: str = typer.Option(None, help="dlib | py-feat: what finds the face and eyes the alignment starts "
                                                 f"from (default {_D.face.detector})."),
    composite: str = typer.Option(
        None, help="official | labels: emotion_composite from the official MEGC2019 list for CASME II, SAMM and "
                   "SMIC clips, or from the label mapping alone (default official). A database in those formats "
                   "that is not the release itself, such as one `unimer synth` wrote, needs labels: its clips are "
                   "in no official list."),
) -> None:
    """Build motion-verified instruction shards from a micro-expression database."""
    _choice("--executor", executor, pipeline.EXECUTORS)
    if ray_address is not None and executor != "ray":
        _fail("--ray-address needs --executor ray")
    cfg = _build_config(seed=seed, templates=templates, policy=policy, preset=preset, crop_size=crop_size,
                        flow_backend=flow_backend, device=device, au_detector=au_detector,
                        face_detector=face_detector, composite=composite)
    if not root.exists():
        _fail(f"{root}: no such file or folder")
    report = _run_build(root, out, cfg, format, workers, limit, keep_parts, images, executor, ray_address)
    raise typer.Exit(1 if report["skipped"] else 0)


def _build_config(seed, templates, policy, preset, crop_size, flow_backend, device, au_detector, face_detector,
                  composite) -> BuildConfig:
    """The options given, over the defaults of :class:`BuildConfig`."""
    _choice("--policy", policy, POLICIES)
    _choice("--composite", composite, COMPOSITE_MODES)
    _choice("--au-detector", au_detector, AU_DETECTORS)
    _choice("--face-detector", face_detector, FACE_DETECTORS)
    _choice("--flow-backend", flow_backend, FLOW_BACKENDS)
    _choice("--preset", preset, tuple(TVL1_PRESETS))
    if templates is not None and not templates.is_dir():
        _fail(f"{templates}: templates folder not found")
    flow = FlowConfig.from_preset(preset) if preset else _D.flow
    try:
        flow = replace(flow, **_flow_backend(flow_backend or flow.backend, device or "auto"))
    except ValueError as e:
        _fail(str(e))
    options = {"text.seed": ("--seed", seed), "text.templates": ("--templates", None if templates is None
                                                                  else str(templates)),
               "text.composite": ("--composite", composite), "check.policy": ("--policy", policy),
               "check.au_detector": ("--au-detector", au_detector), "face.detector": ("--face-detector", face_detector),
               "face.crop_size": ("--crop-size", crop_size)}
    given = {k: v for k, (_, v) in options.items() if v is not None}
    try:
        return _D.with_(flow=flow, **given)
    except ValueError as e:  # a value out of range (--crop-size 0): one line naming the option, not a traceback
        msg = str(e)
        _fail(next((option + msg[len(name):] for name, (option, _) in options.items()
                    if name in given and msg.startswith(name)), msg))


def _stop(bar: Progress) -> None:
    """Stop the progress bar if it ever started (stopping one that never did printed blank lines around errors)."""
    if bar.live.is_started:
        bar.stop()


@contextlib.contextmanager
def _terminate_as_interrupt(stopped_by: list[int]):
    """SIGTERM and SIGHUP (a batch scheduler's time limit, `timeout`, a closed terminal) end the build as Ctrl-C
    does: its workers ended, the clips done kept, a line saying how to resume, exit 128 + the signal. They killed
    the process outright, with no word and the workers' semaphores leaked. Main thread only (where Python can set
    handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, _frame):
        stopped_by.append(signum)
        raise KeyboardInterrupt

    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _run_build(root: Path, out: Path, cfg: BuildConfig, fmt: str | None, workers: int, limit: int | None,
               keep_parts: bool, images: bool = True, executor: str = "local", ray_address: str | None = None) -> dict:
    """:func:`pipeline.build` with a progress bar; the summary table after; input errors as one line."""
    columns = (TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    bar = Progress(*columns, console=console, transient=False)
    task = bar.add_task("build", total=None, note="")

    def progress(outcome, total: int) -> None:
        if outcome is None:  # the input is read and the tools are ready: the clips start
            bar.start()
            bar.update(task, total=total)
            return
        note = f"[yellow]skipped {outcome.clip_id}: {outcome.reason}" if isinstance(outcome, Skip) else outcome.clip_id
        bar.update(task, advance=1, note=note)

    stopped_by: list[int] = []
    try:
        with _terminate_as_interrupt(stopped_by):
            report = pipeline.build(root, out, cfg, fmt, workers, limit, keep_parts=keep_parts, images=images,
                                    progress=progress, executor=executor, ray_address=ray_address)
    except UnusableInput as e:
        _stop(bar)
        for s in e.skipped[:20]:
            console.print(f"  skipped {s.clip_id}: {s.message}")
        _fail(str(e))
    except (PyFeatUnavailable, RayUnavailable) as e:
        _stop(bar)
        _fail(str(e))
    except EnvironmentFailure as e:
        _stop(bar)
        _fail(str(e), 3)
    except KeyboardInterrupt:
        _stop(bar)
        how = f" by {signal.Signals(stopped_by[0]).name}" if stopped_by else ""
        _fail(f"interrupted{how}; the clips done so far are kept in {out / '.parts'}: run the same command again to "
              f"resume", 128 + (stopped_by[0] if stopped_by else signal.SIGINT))
    finally:
        _stop(bar)
    if report.get("up_to_date"):
        c = report["counts"]
        console.print(f"{out}: up to date (same input, settings and options as its finished build): nothing "
                      f"rebuilt, no file written; {_n(c['built'], 'clip')} built, {c['skipped']} skipped", soft_wrap=True)
        _print_skips([{**s, "clip_id": f"skipped {s['clip_id']}"} for s in report["skipped"]])
        return report
    _print_summary(report, out, limit)
    return report


def _flow_backend(backend: str, device: str) -> dict[str, str]:
    """``backend`` and the resolved ``device`` for FlowConfig (torch is imported only for its backend)."""
    if backend == "opencv":
        if device not in ("auto", "cpu"):
            raise ValueError(f"--device {device} applies to --flow-backend torch; OpenCV's TV-L1 runs on the CPU")
        return {"backend": backend, "device": "cpu"}
    from .flow_torch import resolve_device  # torch: imported only when its backend is asked for

    return {"backend": backend, "device": str(resolve_device(device))}


def _print_summary(report: dict, out: Path, limit: int | None = None) -> None:
    c = report["counts"]
    t = Table(title=f"Uni-MER build → {out}", show_header=False)
    for k in ("clips", "built", "skipped", "dropped_by_policy", "flagged", "rows", "resumed", "changed",
              "damaged_parts", "apex_estimated", "aus_inferred", "beyond_micro", "label_notes"):
        t.add_row(k.replace("_", " "), str(c[k]))
    t.add_row("shards", str(len(report["shards"])))
    inputs = report.get("inputs") or {}
    if inputs.get("label_file"):
        t.add_row("labels", f"{inputs['label_file']} (sha256 {inputs['label_sha256'][:12]})")
    if inputs.get("frames"):
        t.add_row("frames", inputs["frames"])
    t.add_row("seconds", f"{report['run']['seconds']:.1f}")
    console.print(t)
    beyond = report["durations"]["beyond_micro"]
    if beyond:
        console.print(f"[yellow]{_n(len(beyond), 'clip')} {'lasts' if len(beyond) == 1 else 'last'} longer than a "
                      f"micro-expression[/yellow] "
                      f"(> {report['durations']['bounds_s']['micro']} s; full list in build_report.json):")
        for b in beyond[:5]:
            console.print(f"  {b['clip_id']}: {b['duration_s']} s ({b['class']})")
    official = report.get("official_composite")
    if official and official.get("beyond_limit"):
        console.print(f"{len(official['beyond_limit'])} of the {official['listed']} clips the official MEGC2019 list "
                      f"names for this database were not looked at (--limit {limit} builds the first usable clips "
                      f"only)")
    if official and official["missing"]:
        console.print(f"[yellow]{len(official['missing'])} of the {official['listed']} clips the official MEGC2019 list "
                      f"names for this database were not found[/yellow] (neither built nor skipped: no row of the "
                      f"label sheet names them, or for SMIC no folder holds them; full list in build_report.json): "
                      f"{', '.join(official['missing'][:5])}"
                      f"{' ...' if len(official['missing']) > 5 else ''}")
    for note in report.get("notes") or []:
        console.print(f"[yellow]note[/yellow]: {note}")
    notes = report.get("label_notes") or []
    if notes:
        console.print(f"[yellow]{_n(len(notes), 'clip')} built with a note[/yellow] (a label cell read otherwise, "
                      f"frames missing, several faces; full list in build_report.json):")
        for n in notes[:5]:
            console.print(f"  {n['clip_id']}: {'; '.join(n['notes'])}")
    if report.get("inspect_removed"):
        console.print(f"[yellow]the inspection report of the earlier build ({out}/inspect) was removed[/yellow]: "
                      f"run `unimer inspect {out}` for this one")
    if report.get("changed"):
        its = "its" if len(report["changed"]) == 1 else "their"
        console.print(f"[yellow]{_n(len(report['changed']), 'clip')} built again[/yellow]: {its} label row or frame "
                      f"files changed since {its} part or shard was made: {', '.join(report['changed'][:5])}"
                      f"{' ...' if len(report['changed']) > 5 else ''}")
    if report.get("damaged_parts"):
        console.print(f"[yellow]{_n(len(report['damaged_parts']), 'part file')} could not be read[/yellow] (removed, "
                      f"clips built again): {', '.join(report['damaged_parts'][:5])}")
    if report["skipped"]:
        console.print("[yellow]skipped clips[/yellow] (full list in build_report.json):")
        _print_skips(report["skipped"])


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _print_skips(skipped: list, most: int = 10) -> None:
    for s in skipped[:most]:
        console.print(f"  {s['clip_id']}: {s['message']}")
    if len(skipped) > most:
        console.print(f"  ... and {len(skipped) - most} more")


@app.command()
def demo(
    out: Path = typer.Argument(Path("out/demo"), help="Folder for the synthetic database and the built dataset."),
    format: str = typer.Option("casme2", "--format", "-f", help="casme2 | samm | smic | casme3 | manifest"),
    clips: int = typer.Option(24, help="Number of clips."),
    subjects: int = typer.Option(4, help="Number of subjects."),
    seed: int = typer.Option(0, help="Seed: the same seed writes the same database and rows."),
) -> None:
    """Synthesise a database and build Uni-MER from it: the whole pipeline, offline, in a minute."""
    try:
        root = synthesize(out / "source", format, clips=clips, subjects=subjects, seed=seed)
    except (ValueError, MediaUnavailable) as e:
        _fail(str(e))
    console.print(f"synthetic {format} database: {root}")
    # A synthetic database is not the MEGC2019 release: its composite classes come from the labels.
    cfg = _D.with_(**{"text.seed": seed, "text.composite": "labels"})
    report = _run_build(root, out / "unimer", cfg, format, 0, None, False)
    if report["skipped"]:
        raise typer.Exit(1)
    _print_truth(root / GROUND_TRUTH, out / "unimer")
    console.print(f"load it: datasets.load_dataset({str(out / 'unimer')!r}, split='train')")
    console.print(f"look at it: unimer inspect {out / 'unimer'}; train on it: deft train --data {out / 'unimer'} "
                  f"--out runs/tiny")


@app.command()
def truth(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    ground_truth: Path = typer.Option(..., "--truth", help="ground_truth.json written by `unimer synth`."),
) -> None:
    """Score a build of a synthetic database against what was planted."""
    _print_truth(ground_truth, out)


def _print_truth(truth_file: Path, out: Path) -> None:
    try:
        s = score(truth_file, out)
    except (FileNotFoundError, ValueError) as e:
        _fail(str(e))
    except OSError as e:  # a file that cannot be read (permissions): the environment's, named
        _fail(f"{e.filename or out}: {' '.join(str(e.strerror or e).split())}", 3)
    t = Table(title="against the planted ground truth")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_column("n", justify="right")
    for k, v in s.items():
        if v["n"]:  # a figure with nothing to count (no blinks, no AU labels) is left out
            t.add_row(k, f"{v['rate']:.3f}", str(v["n"]))
    console.print(t)


@app.command()
def push(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    repo_id: str = typer.Argument(None, help="Hub dataset repo, e.g. your-name/micro-expression-instructions-casme2 "
                                             "(default: your account and the name the card suggests)."),
    token: str = typer.Option(None, envvar="HF_TOKEN", help="Hub token (default: $HF_TOKEN or the cached login)."),
    public: bool = typer.Option(False, help="Create the repo public (default private: the source databases are licensed); "
                                "needed to push into an existing public repo, refused for an existing private one."),
    images: bool = typer.Option(True, "--images/--no-images", help="--no-images: upload the shards without the face "
                                "pixel columns (onset_image, apex_image, frames) and a card that says so; the build "
                                "folder is left as it is."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the repo, its visibility and the files that would "
                                 "be uploaded, and upload nothing (works offline, without a token)."),
) -> None:
    """Publish a built dataset (card, shards, report) to the Hugging Face Hub."""
    try:
        if dry_run:
            p = push_plan(out, repo_id, private=not public, images=images)
            console.print(f"would push to {p['repo_id']} ({'private' if p['private'] else 'public'}), "
                          f"{'with' if p['images'] else 'without'} the face images:", soft_wrap=True)
            for f, size in p["files"].items():
                console.print(f"  {f}  {size:,} bytes", soft_wrap=True)
            if p["stripped"]:
                console.print("(the build's sizes: the shards and card pushed are copies without the face columns, "
                              "the shards smaller)", soft_wrap=True)
            console.print(f"the repo's {p['replaces']} not among these would be deleted"
                          + ("; access requests would be switched on (manual approval), as the card's form asks"
                             if p["access_requests"] else ""), soft_wrap=True)
            return
        url = push_folder(out, repo_id, token=token, private=not public, images=images)
    except EnvironmentFailure as e:  # the Hub cannot be reached
        _fail(str(e), 3)
    except (OSError, ValueError, RuntimeError) as e:
        _fail(str(e))
    console.print(f"pushed: {url}" + ("" if images else " (without the face images)"))


@app.command()
def inspect(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    clip: str = typer.Option(None, "--clip", help="Write only this clip's page (a clip_id, e.g. casme2/sub01/EP02_01f)."),
    open_: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
    dest: Path = typer.Option(None, help="Report folder (default OUT/inspect)."),
) -> None:
    """A static HTML report of a build (opens offline): each clip's pictures, regions, verdicts and answers."""
    try:
        page = write_report(out, dest, clip)
    except (FileNotFoundError, KeyError, ValueError, FileExistsError) as e:
        _fail(str(e).strip('"'))
    except OSError as e:
        _io_failure(e, out, dest or out / "inspect", "the report")
    console.print(f"report: {page}")
    if open_:
        webbrowser.open(page.resolve().as_uri())


def _io_failure(err: OSError, build: Path, dest: Path, what: str) -> None:
    """One line for an ``OSError`` of ``export`` or ``inspect``: a shard pyarrow cannot read (no errno) is the
    build's fault (exit 2); a file that cannot be made, read or written is the environment's (exit 3), named."""
    cause = " ".join((err.strerror or str(err) or type(err).__name__).split())
    if err.errno is None:
        _fail(f"{build}: a shard cannot be read ({cause}); build it again")
    where = Path(err.filename) if err.filename else dest
    writing = where == dest or dest in where.parents
    _fail(f"{where}: cannot write {what} ({cause})" if writing else f"{where}: {cause}", 3)


@app.command()
def export(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    to: str = typer.Option(..., "--to", help="sharegpt | llamafactory | megc-vqa"),
    dest: Path = typer.Argument(..., help="Folder to write the export into (created; replaced if an earlier export)."),
    images: str = typer.Option(None, help="Pictures per sample, in order: any of onset, apex, flow (default "
                                          "onset,apex,flow; megc-vqa's files carry none)."),
    name: str = typer.Option("unimer", help="Dataset name in LLaMA-Factory's dataset_info.json."),
) -> None:
    """Write the build for a trainer: ShareGPT, LLaMA-Factory (dataset_info.json + images) or MEGC ME-VQA."""
    if to == "megc-vqa" and images:
        _fail(f"--to megc-vqa writes no pictures (the challenge's files carry none): drop --images {images}")
    try:
        summary = run_export(out, to, dest, images=tuple(x.strip() for x in (images if images is not None else
                                                                              "onset,apex,flow").split(",")
                                                         if x.strip()), name=name)
    except (FileNotFoundError, ValueError, FileExistsError) as e:
        _fail(str(e))
    except OSError as e:
        _io_failure(e, out, dest, "the export")
    console.print(f"{to}: {summary['rows']} rows, {summary['images']} images -> {dest} ({', '.join(summary['files'])})")


if __name__ == "__main__":
    app()
