"""``unimer``: synthesise a database, build Uni-MER shards from one, check them, publish them.

Exit status of ``build``: 0 every clip built, 1 some clips skipped (the report lists them), 2 the
input is unusable (nothing was written).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    from rich.markup import escape

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
) -> None:
    """Write a small database in a real on-disk format, with planted micro-movements and ground truth."""
    from .sources import FORMATS
    from .synth.generate import PROFILES, synthesize
    from .validation.media import MediaUnavailable

    if format not in FORMATS:
        _fail(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if profile not in PROFILES:
        _fail(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if identities is not None and profile != "hard":
        _fail("--identities needs --profile hard")
    try:
        root = synthesize(out, format, clips=clips, subjects=subjects, seed=seed, frames=frames, profile=profile,
                          identities=identities)
    except (ValueError, MediaUnavailable) as e:
        _fail(str(e))
    console.print(f"wrote {clips} {format} clips of {subjects} subjects ({profile} profile) to {root} "
                  f"(truth: {root / 'ground_truth.json'})")


@app.command()
def build(
    root: Path = typer.Argument(..., help="Database root (or a manifest CSV/Parquet)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: data/*.parquet, README.md, build_report.json."),
    format: str = typer.Option(None, "--format", "-f", help="casme2 | samm | smic | casme3 | manifest (default: detect)."),
    workers: int = typer.Option(0, help="Worker processes (0: one per core)."),
    limit: int = typer.Option(None, help="Build only the first N clips."),
    seed: int = typer.Option(0, help="Seed for template choice; same seed, same rows."),
    templates: Path = typer.Option(None, help="Folder of Jinja2 templates (default: the packaged ones)."),
    policy: str = typer.Option("flag", help="keep | flag | drop samples whose labelled AUs motion does not support."),
    preset: str = typer.Option("fast", help="TV-L1 preset: opencv | fast | faster."),
    crop_size: int = typer.Option(224, help="Aligned face crop size in px (flow resolution)."),
    flow_backend: str = typer.Option("opencv", help="TV-L1 implementation: opencv (CPU) | torch (the same solver in torch)."),
    device: str = typer.Option("auto", help="Device of --flow-backend torch: cpu | cuda | auto (CUDA when present)."),
    keep_parts: bool = typer.Option(False, help="Keep the per-clip part files after the shards are written."),
    au_detector: str = typer.Option(
        "flow", help="flow | py-feat: py-feat's AUs on the onset and apex frames as a second, appearance-based "
                     "opinion (needs unimer[pyfeat]: CUDA torch, its torchvision, Hub access for the weights)."),
    face_detector: str = typer.Option("dlib", help="dlib | py-feat: what finds the face and eyes the alignment starts from."),
    composite: str = typer.Option(
        None, help="official | labels: emotion_composite from the official MEGC2019 list (CASME II, SAMM, SMIC) "
                   "or from the label mapping alone (default: labels for a database `unimer synth` wrote, "
                   "whose root holds ground_truth.json; official otherwise)."),
) -> None:
    """Build motion-verified instruction shards from a micro-expression database."""
    import os

    from .config import POLICIES, BuildConfig, FlowConfig
    from .errors import UnusableInput
    from .executors import ClipSummary, run_clips
    from .records import Clip, Skip
    from .sources import detect_format, read_clips

    if policy not in POLICIES:
        _fail(f"--policy must be one of {', '.join(POLICIES)}, not {policy!r}")
    if not root.exists():
        _fail(f"{root}: no such file or folder")
    fmt = format or detect_format(root)
    if fmt is None:
        _fail(f"{root}: cannot tell the database format; pass --format")
    try:
        flow = FlowConfig.from_preset(preset, **_flow_backend(flow_backend, device))
    except ValueError as e:
        _fail(str(e))
    from .labels import COMPOSITE_MODES

    if composite is None:
        composite = "labels" if root.is_dir() and (root / "ground_truth.json").is_file() else "official"
    if composite not in COMPOSITE_MODES:
        _fail(f"--composite must be one of {', '.join(COMPOSITE_MODES)}, not {composite!r}")
    from .config import AU_DETECTORS, FACE_DETECTORS

    if au_detector not in AU_DETECTORS:
        _fail(f"--au-detector must be one of {', '.join(AU_DETECTORS)}, not {au_detector!r}")
    if face_detector not in FACE_DETECTORS:
        _fail(f"--face-detector must be one of {', '.join(FACE_DETECTORS)}, not {face_detector!r}")
    cfg = BuildConfig(crop_size=crop_size, flow=flow, seed=seed, policy=policy, composite=composite,
                      au_detector=au_detector, face_detector=face_detector,
                      **({"templates_dir": str(templates)} if templates else {}))
    if templates and not templates.is_dir():
        _fail(f"{templates}: templates folder not found")

    clips: list[Clip] = []
    skips: list[Skip] = []
    try:
        for item in read_clips(root, fmt):
            if isinstance(item, Skip):
                skips.append(item)
            elif limit is None or len(clips) < limit:
                clips.append(item)
    except UnusableInput as e:
        _fail(str(e))
    if not clips:
        for s in skips[:20]:
            console.print(f"  skipped {s.clip_id}: {s.message}")
        _fail(f"{root}: no usable clips found ({len(skips)} rows skipped)")

    if "py-feat" in (au_detector, face_detector):
        from .pyfeat_backend import PyFeatUnavailable, get

        try:
            get()  # imported and its weights loaded here, once, before any clip: a failure is one line and exit 2
        except PyFeatUnavailable as e:
            _fail(str(e))
    workers = workers or os.cpu_count() or 1
    workers = min(workers, len(clips))
    out.mkdir(parents=True, exist_ok=True)
    parts = out / ".parts"
    parts.mkdir(exist_ok=True)
    summaries: dict[str, ClipSummary] = {}
    t0 = time.perf_counter()
    columns = (TextColumn("[bold]building"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("build", total=len(clips), note="")
        for res in run_clips(clips, cfg, parts, workers=workers):
            if isinstance(res, Skip):
                skips.append(res)
                bar.update(task, advance=1, note=f"[yellow]skipped {res.clip_id}: {res.reason}")
            else:
                summaries[res.clip_id] = res
                bar.update(task, advance=1, note=res.clip_id)

    from . import shards
    from .card import write_card
    from .report import build_report, write_json_atomic

    ordered = [summaries[c.clip_id] for c in clips if c.clip_id in summaries]
    order = [s.clip_id for s in ordered if not s.dropped]
    shard_paths = shards.consolidate(parts, out, order, cfg.shard_max_bytes)
    report = build_report(ordered, skips, cfg, str(root), fmt, [str(p.relative_to(out)) for p in shard_paths],
                          time.perf_counter() - t0, workers)
    write_json_atomic(out / "build_report.json", report)
    write_card(out, report, cfg)
    if not keep_parts:
        shutil.rmtree(parts, ignore_errors=True)
    _print_summary(report, out)
    raise typer.Exit(1 if skips else 0)


def _flow_backend(backend: str, device: str) -> dict[str, str]:
    """``backend`` and the resolved ``device`` for FlowConfig (torch is imported only for its backend)."""
    from .config import FLOW_BACKENDS

    if backend not in FLOW_BACKENDS:
        raise ValueError(f"--flow-backend must be one of {', '.join(FLOW_BACKENDS)}, not {backend!r}")
    if backend == "opencv":
        if device not in ("auto", "cpu"):
            raise ValueError(f"--device {device} applies to --flow-backend torch; OpenCV's TV-L1 runs on the CPU")
        return {"backend": backend, "device": "cpu"}
    from .flow_torch import resolve_device

    return {"backend": backend, "device": str(resolve_device(device))}


def _print_summary(report: dict, out: Path) -> None:
    c = report["counts"]
    t = Table(title=f"Uni-MER build → {out}", show_header=False)
    for k in ("clips", "built", "skipped", "dropped_by_policy", "flagged", "rows", "apex_estimated", "aus_inferred",
              "beyond_micro"):
        t.add_row(k.replace("_", " "), str(c[k]))
    t.add_row("shards", str(len(report["shards"])))
    t.add_row("seconds", f"{report['run']['seconds']:.1f}")
    console.print(t)
    beyond = report["durations"]["beyond_micro"]
    if beyond:
        console.print(f"[yellow]{len(beyond)} clips last longer than a micro-expression[/yellow] "
                      f"(> {report['durations']['bounds_s']['micro']} s; full list in build_report.json):")
        for b in beyond[:5]:
            console.print(f"  {b['clip_id']}: {b['duration_s']} s ({b['class']})")
    if report["skipped"]:
        console.print("[yellow]skipped clips[/yellow] (full list in build_report.json):")
        for s in report["skipped"][:10]:
            console.print(f"  {s['clip_id']}: {s['message']}")


@app.command()
def demo(
    out: Path = typer.Argument(Path("out/demo"), help="Folder for the synthetic database and the built dataset."),
    format: str = typer.Option("casme2", "--format", "-f"),
    clips: int = typer.Option(24),
    subjects: int = typer.Option(4),
    seed: int = typer.Option(0),
) -> None:
    """Synthesise a database and build Uni-MER from it: the whole pipeline, offline, in a minute."""
    from .synth.generate import synthesize

    root = synthesize(out / "source", format, clips=clips, subjects=subjects, seed=seed)
    console.print(f"synthetic {format} database: {root}")
    try:
        build(root=root, out=out / "unimer", format=format, workers=0, limit=None, seed=seed, templates=None,
              policy="flag", preset="fast", crop_size=224, flow_backend="opencv", device="auto",
              keep_parts=False, composite="labels", au_detector="flow", face_detector="dlib")
    except typer.Exit as e:
        if e.exit_code == 0:
            _print_truth(root / "ground_truth.json", out / "unimer")
            console.print(f"load it: datasets.load_dataset({str(out / 'unimer')!r}, split='train')")
        raise


@app.command()
def truth(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    ground_truth: Path = typer.Option(..., "--truth", help="ground_truth.json written by `unimer synth`."),
) -> None:
    """Score a build of a synthetic database against what was planted."""
    _print_truth(ground_truth, out)


def _print_truth(truth_file: Path, out: Path) -> None:
    from .groundtruth import score

    s = score(truth_file, out)
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
    public: bool = typer.Option(False, help="Create the repo public (default private: the source databases are licensed)."),
) -> None:
    """Publish a built dataset (card, shards, report) to the Hugging Face Hub."""
    from .hub import push as push_folder

    try:
        url = push_folder(out, repo_id, token=token, private=not public)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        _fail(str(e))
    console.print(f"pushed: {url}")


@app.command()
def inspect(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    clip: str = typer.Option(None, "--clip", help="Write only this clip's page (a clip_id, e.g. casme2/sub01/EP02_01f)."),
    open_: bool = typer.Option(False, "--open", help="Open the page in a web browser."),
    dest: Path = typer.Option(None, help="Report folder (default OUT/inspect)."),
) -> None:
    """A static HTML report of a build (opens offline): each clip's pictures, regions, verdicts and answers."""
    from .inspect_report import write_report

    try:
        page = write_report(out, dest, clip)
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(str(e).strip('"'))
    console.print(f"report: {page}")
    if open_:
        import webbrowser

        webbrowser.open(page.resolve().as_uri())


@app.command()
def export(
    out: Path = typer.Argument(..., help="A built dataset folder."),
    to: str = typer.Option(..., "--to", help="sharegpt | llamafactory | megc-vqa"),
    dest: Path = typer.Argument(..., help="Folder to write the export into (created; replaced if an earlier export)."),
    images: str = typer.Option("onset,apex,flow", help="Pictures per sample, in order: any of onset, apex, flow."),
    name: str = typer.Option("unimer", help="Dataset name in LLaMA-Factory's dataset_info.json."),
) -> None:
    """Write the build for a trainer: ShareGPT, LLaMA-Factory (dataset_info.json + images) or MEGC ME-VQA."""
    from .export import export as run_export

    try:
        summary = run_export(out, to, dest, images=tuple(x.strip() for x in images.split(",") if x.strip()),
                             name=name)
    except (FileNotFoundError, ValueError, FileExistsError) as e:
        _fail(str(e))
    console.print(f"{to}: {summary['rows']} rows, {summary['images']} images -> {dest} ({', '.join(summary['files'])})")


if __name__ == "__main__":
    app()
