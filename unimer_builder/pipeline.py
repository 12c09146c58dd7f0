"""The one composition of a build: read the clips, run the per-clip stages, consolidate, report, card.

    import unimer_builder as u
    report = u.build("CASME2", "out", u.BuildConfig())

:func:`build` is what ``unimer build``, ``unimer demo``, the benches and the tests call. Per clip
(:func:`process_clip`): frames -> face -> flow -> regions (:func:`.evidence.compute_evidence`) ->
dual constraint (:func:`.crosscheck.cross_check`, with py-feat's second opinion when asked) -> text
(:func:`.render.render_samples`) -> rows (:func:`.shards.clip_rows`) -> its part file (:mod:`.parts`).
The per-clip work runs in an executor (:mod:`.executors`: in this process, or a warm process pool); each
process makes its :class:`~unimer_builder.tools.Tools` once (:func:`init_worker`), and a worker hands back
only a small :class:`~unimer_builder.records.ClipSummary`, so the parent never holds pixels. A clip whose
part exists for the same settings (:meth:`BuildConfig.fingerprint`) and the same inputs
(:func:`.inputs.clip_inputs`: its label row and frame files) is not computed again: that is how a killed
build resumes. A finished build leaves its state (:mod:`.state`): run again on unchanged input it does
nothing; with some clips changed, only those are measured again (the others come back out of the shards).
The output folder is held by one build at a time (:func:`.output.claim`).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import pyarrow as pa

from . import labels, render
from .atomic import write_json, write_text
from .card import render_card
from .config import BuildConfig
from .consolidate import SHARD_MAX_BYTES, consolidate
from .crosscheck import cross_check
from .errors import EnvironmentFailure, InputError, UnusableInput
from .evidence import compute_evidence
from .executors import InProcess, WorkerPool
from .executors_ray import RayPool, RayUnavailable
from .inputs import clip_inputs
from .node import current_node
from .output import claim
from .parts import PartStore, summarize
from .pyfeat_backend import PyFeat, PyFeatUnavailable, second_opinion
from .records import Clip, ClipSummary, CrossCheck, Evidence, Skip
from .report import build_report, relative_to_root
from .shards import clip_rows
from .sources import (
    FORMATS,
    database_sheet,
    detect_format,
    find_files,
    provenance,
    read_clips,
    sheet_formats,
    subjects_note,
)
from .sources.frames import FrameReader
from .state import read_state, recover_parts, request_key, write_state
from .tools import Tools

__all__ = ["EXECUTORS", "Tools", "build", "close_executor", "init_worker", "make_executor", "make_ray_executor",
           "measure_clip", "process_clip", "read_input", "run_clips", "write_clip"]

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
EXECUTORS = ("local", "ray")  # where the per-clip work runs (build's ``executor``)
UNFINISHED = ("error", "worker_lost")  # skips of a clip the cluster failed to build: a re-run tries it again

Outcome = ClipSummary | Skip


# --- one clip --------------------------------------------------------------------------------------


@dataclass
class Measured:
    """A clip measured and cross-checked, not yet written."""

    clip: Clip
    evidence: Evidence
    check: CrossCheck
    seconds: float
    notes: list[str] = field(default_factory=list)  # what reading its frames found (FrameReader.notes)


def measure_clip(clip: Clip, cfg: BuildConfig, tools: Tools) -> Measured | Skip:
    """Evidence and cross-check of a clip (and py-feat's second opinion when asked); an ``InputError``
    becomes a ``Skip`` naming file, row and field."""
    t0 = time.perf_counter()
    reader = FrameReader(clip)
    try:
        ev = compute_evidence(clip, cfg, tools, reader=reader)
    except InputError as e:
        return Skip(clip.clip_id, e.reason, e.message, e.file, e.row, e.field)
    check = cross_check(clip, ev, cfg)
    if cfg.check.au_detector == "py-feat":
        t1 = time.perf_counter()
        check = second_opinion(clip, ev, check, cfg, reader, tools.pyfeat)
        ev.timings["pyfeat"] = time.perf_counter() - t1
    return Measured(clip, ev, check, time.perf_counter() - t0, list(reader.notes))


def write_clip(measured: Measured | Skip, cfg: BuildConfig, parts: PartStore, inputs: str) -> Outcome:
    """Text, rows and the part file of a measured clip (``inputs``: its :func:`.inputs.clip_inputs`, taken
    before it was measured); a ``Skip`` gets an empty part saying so, so a resumed build does not measure the
    clip again. PNG encoding and Parquet writing release the GIL, so this can run in a thread beside the next
    clip's measurement."""
    if isinstance(measured, Skip):
        parts.write(measured.clip_id, inputs, [], measured)
        return measured
    clip, ev, check = measured.clip, measured.evidence, measured.check
    dropped = cfg.check.policy == "drop" and check.flagged
    rows: list[dict] = []
    t1 = time.perf_counter()
    if not dropped:
        rows = clip_rows(clip, ev, check, render.render_samples(clip, ev, check, cfg), cfg)
    summary = summarize(
        clip, ev.face, [*measured.notes, *labels.composite_note(clip, cfg.text.composite)], ev.times, rows=len(rows),
        flagged=check.flagged and cfg.check.policy == "flag", dropped=dropped,
        aus_source=check.aus_source, apex_source="estimated" if ev.apex_estimated else "label",
        verdicts=[(v.au, v.verdict) for v in check.verdicts], unexplained=[u.au for u in check.unexplained],
        sources=[(s.au, s.labelled, s.said_by, s.agreement) for s in check.sources], node=current_node())
    parts.write(clip.clip_id, inputs, rows, summary)
    summary.timings = dict(ev.timings)
    summary.timings["output"] = time.perf_counter() - t1
    summary.timings["total"] = measured.seconds + summary.timings["output"]
    return summary


def process_clip(clip: Clip, cfg: BuildConfig, tools: Tools, parts: PartStore) -> Outcome:
    """All per-clip stages, its part file written: the clip's summary, or the ``Skip`` that says why not."""
    inputs = clip_inputs(clip)
    return write_clip(measure_clip(clip, cfg, tools), cfg, parts, inputs)


# --- per process -----------------------------------------------------------------------------------


def init_worker(cfg: BuildConfig, threads: int) -> Tools:
    """Make a process ready for clips: hold it to ``threads`` OpenCV threads (TV-L1's threads otherwise
    oversubscribe the cores), make its tools, and pay its other one-time costs before the first clip.

    Compiling the Jinja2 templates and pyarrow's first conversion (which imports pandas, ~0.3-0.6 s) once
    here: otherwise the first clip of every worker carried about a second of start-up in its ``face``/
    ``output`` timings, which inflated the per-clip means of short builds. A bad templates folder is left
    for the clip to report.
    """
    cv2.setNumThreads(threads)
    for var in THREAD_ENV:
        os.environ.setdefault(var, str(threads))
    tools = Tools.create(cfg)
    pa.array([0])
    try:
        for task in cfg.text.tasks:
            render.n_variants(task, cfg.text.folder)
    except (FileNotFoundError, ValueError):
        pass
    return tools


def _measure_task(tools: Tools, job: tuple[Clip, str], cfg: BuildConfig) -> tuple[Measured | Skip, str]:
    clip, inputs = job
    return measure_clip(clip, cfg, tools), inputs


def _write_task(tools: Tools, measured: tuple[Measured | Skip, str], cfg: BuildConfig, parts: PartStore) -> Outcome:
    return write_clip(measured[0], cfg, parts, measured[1])


def make_executor(cfg: BuildConfig, workers: int, threads: int | None = None, kind: str = "local",
                  ray_address: str | None = None) -> InProcess | WorkerPool | RayPool:
    """An executor for ``workers`` processes: this one (its tools made here) or a pool whose workers each run
    :func:`init_worker`. ``threads``: OpenCV threads per worker (default: the cores shared out). Where py-feat
    is asked for and cannot run, :class:`.pyfeat_backend.PyFeatUnavailable` is raised here, before any clip.
    ``kind="ray"``: :func:`make_ray_executor` (``workers`` 0: one per CPU of the cluster)."""
    if kind == "ray":
        return make_ray_executor(cfg, workers, threads or 1, ray_address)
    if kind != "local":
        raise ValueError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")
    workers = max(1, workers)
    threads = threads or max(1, (os.cpu_count() or 1) // workers)
    if workers == 1:
        # With more than one core, clip i's output stage runs in a helper thread while clip i+1 is
        # measured: the measurement is mostly single-threaded outside TV-L1.
        return InProcess(init_worker(cfg, threads), overlap=threads > 1)
    if "py-feat" in (cfg.face.detector, cfg.check.au_detector):
        PyFeat()  # loaded here first: where it cannot run, one clear error before any worker starts
    return WorkerPool(workers, init_worker, (cfg, threads))


def make_ray_executor(cfg: BuildConfig, workers: int = 0, threads: int = 1, address: str | None = None,
                      max_retries: int = 3) -> RayPool:
    """Ray actors of ``threads`` CPUs each, each running :func:`init_worker` once (so ``threads`` OpenCV and
    BLAS threads: a node runs no more threads than Ray gave CPUs). A clip whose code raised, or whose worker was
    lost more than ``max_retries`` times, comes back as a ``Skip`` (reason ``error`` / ``worker_lost``; no part
    is written for it, so a re-run measures it again)."""
    if "py-feat" in (cfg.face.detector, cfg.check.au_detector):
        PyFeat()  # as for a local pool: one clear error here where it cannot run (checked on the driver)
    pool = RayPool(workers, init_worker, (cfg, threads), address=address, cpus_per_worker=threads,
                   max_retries=max_retries, failed=_failed_clip, env=dict.fromkeys(THREAD_ENV, str(threads)))
    pool.start()  # every actor's tools made before the first clip (and an actor that cannot start: one error)
    return pool


def _failed_clip(job: tuple[Clip, str], reason: str, why: str) -> Skip:
    clip = job[0]  # run_clips hands out (clip, its inputs)
    return Skip(clip.clip_id, reason, f"{clip.clip_id}: not built on the cluster: {why}", clip.source_file,
                clip.source_row)


def close_executor(executor: InProcess | WorkerPool | RayPool) -> None:
    if isinstance(executor, WorkerPool | RayPool):
        executor.shutdown()
    elif isinstance(executor.state, Tools):
        executor.state.close()


def run_clips(clips: Iterable[Clip], cfg: BuildConfig, parts: PartStore, executor: InProcess | WorkerPool,
              inputs: dict[str, str] | None = None) -> Iterator[Outcome]:
    """One outcome per clip: first those whose part already exists for these settings and inputs (read
    back, not computed), then the others as ``executor`` finishes them (:func:`make_executor`, or an
    :class:`.executors.InProcess` holding this process's tools, or a started :class:`.executors.WorkerPool`
    initialised with :func:`init_worker` for the same settings). ``inputs``: clip_id -> its
    :func:`.inputs.clip_inputs` (computed here when not given)."""
    todo = []
    for clip in clips:
        key = inputs[clip.clip_id] if inputs is not None else clip_inputs(clip)
        outcome = parts.load(clip.clip_id, key)
        if outcome is not None:
            yield outcome
        else:
            todo.append((clip, key))
    if todo:
        yield from executor.map(functools.partial(_measure_task, cfg=cfg), todo,
                                then=functools.partial(_write_task, cfg=cfg, parts=parts))


class _OnDemand:
    """An executor made on its first use: a build whose clips all resume starts no worker and loads no model."""

    def __init__(self, make: Callable[[], InProcess | WorkerPool]):
        self._make, self.inner = make, None

    @property
    def workers(self) -> int:
        return self.inner.workers if self.inner is not None else 0

    def start(self) -> None:
        if self.inner is None:
            self.inner = self._make()

    def map(self, fn, items, then=None):
        self.start()
        return self.inner.map(fn, items, then=then)

    def close(self) -> None:
        if self.inner is not None:
            close_executor(self.inner)

    def terminate(self) -> None:
        """End a local pool's workers now (on Ctrl-C: they ignore SIGINT, the build stops here)."""
        if isinstance(self.inner, WorkerPool):
            self.inner.terminate()


# --- a whole build ---------------------------------------------------------------------------------


_TABLE = re.compile(r"\.(csv|xlsx|xls)$", re.IGNORECASE)


def _sheets_by_columns(root: Path) -> str:
    """The end of a "cannot tell the format" error where a table in the folder (or two below) is a database's label
    sheet by its columns under a name the readers do not look for (HTNet's ``cas(me)3_part_A_edited.csv``): what
    it is, and to give it itself (:func:`..sources.database_sheet`)."""
    if not root.is_dir():
        return ""
    said = [(t, what) for t in find_files(root, _TABLE, depth=2)[:20] if (what := database_sheet(t))]
    return "".join(f"; {t} {what}" if what.startswith("is ") else
                   f"; {t} is {what.removeprefix('not a manifest but ')} (give that file itself)" for t, what in said[:3])


def read_input(root: Path | str, fmt: str | None = None, limit: int | None = None
               ) -> tuple[str, list[Clip], list[Skip]]:
    """The format (detected when None), the usable clips (the first ``limit``) and the skipped rows;
    ``UnusableInput`` when the input cannot be used or holds no usable clip."""
    root = Path(root)
    if not root.exists():
        raise UnusableInput(f"{root}: no such file or folder")
    if fmt is None:
        fmt = detect_format(root)
        found = sheet_formats(root) if fmt != "manifest" else []  # a manifest is the user's choice of clips
        if len(found) > 1:
            raise UnusableInput(f"{root}: holds the label sheets of {' and '.join(found)}; pass the one to build: "
                                f"--format {'|'.join(found)}")
    if fmt == "manifest" and root.is_file() and (db := detect_format(root)) not in (None, "manifest"):
        # its columns were listed as near misses of a manifest's ("'OnsetFrame' (probably 'onset')")
        raise UnusableInput(f"{root}: is a {db} label sheet by its name, not a manifest: build it with --format {db}")
    if fmt is None:
        raise UnusableInput(f"{root}: cannot tell the database format (no label sheet, SMIC folders or manifest.csv "
                            f"found); pass it: --format {'|'.join(FORMATS)} (a manifest of another name: pass the "
                            f"file itself with --format manifest){_sheets_by_columns(root)}")
    clips: list[Clip] = []
    skips: list[Skip] = []
    for item in read_clips(root, fmt):
        if isinstance(item, Skip):
            skips.append(item)
        elif limit is None or len(clips) < limit:
            clips.append(item)
    if not clips:
        rows = f"{len(skips)} row{'' if len(skips) == 1 else 's'}"
        raise UnusableInput(f"{root}: no usable clips found ({rows} skipped)", skipped=skips)
    return fmt, clips, skips


def build(
    root: Path | str,
    out: Path | str,
    cfg: BuildConfig | None = None,
    fmt: str | None = None,
    workers: int = 0,
    limit: int | None = None,
    *,
    keep_parts: bool = False,
    shard_bytes: int = SHARD_MAX_BYTES,
    images: bool = True,
    progress: Callable[[Outcome | None, int], None] | None = None,
    executor: str | InProcess | WorkerPool | RayPool | None = None,
    threads: int | None = None,
    ray_address: str | None = None,
) -> dict:
    """Build the database at ``root`` (a folder, or a manifest file) into ``out``: ``data/*.parquet``,
    ``README.md`` (the card) and ``build_report.json``; returns the report.

    ``fmt``: casme2 | samm | smic | casme3 | manifest (None: detected). ``workers``: processes (0: one per
    core). ``limit``: only the first N usable clips. ``keep_parts``: keep ``out/.parts`` (the resume
    state) after the shards are written. ``shard_bytes``: uncompressed bytes per shard. ``images=False``:
    the shards leave out the face pixels (:data:`.shards.FACE_COLUMNS`), and the card says so.
    ``progress(outcome, total)`` is called once with ``None`` when the clips start, then as each clip
    finishes. ``executor``: ``"local"`` (default: this process or a local pool of ``workers``), ``"ray"`` (Ray
    actors on the cluster at ``ray_address``, ``workers`` 0: one per CPU there; ``root`` and ``out`` must then
    be paths every node reaches, see README "On a Ray cluster"), or one to use and leave running (see
    :func:`run_clips`); a made one gets ``threads`` OpenCV threads per worker (:func:`make_executor`). The
    rows do not depend on it.

    A re-run on unchanged input, settings and options finds the build finished and does nothing: it returns
    the report written then (``report["up_to_date"]`` is True; no file is touched). Clips whose inputs changed
    are measured again (``report["changed"]``), the others resumed.

    Raises :class:`UnusableInput` when nothing can be built (nothing is written then),
    :class:`.errors.EnvironmentFailure` when the output folder cannot be made, written or locked, or the disk
    fills (the previous ``data/`` stays whole; a re-run resumes), and
    :class:`.pyfeat_backend.PyFeatUnavailable` where py-feat is asked for and cannot run. A clip that cannot
    be built is skipped: the report lists it (``report["skipped"]``) with file, row and field.
    """
    cfg = cfg if cfg is not None else BuildConfig()
    # The root as an absolute path (not resolved: a linked manifest's paths stay its own): every message names
    # files by it, and the report writes them relative to it, so a root typed relative (`db/manifest.csv`) left
    # `db/...` in the published report, whose text then depended on the folder the build was run from.
    root, out = Path(os.path.abspath(root)), Path(out)
    if not cfg.text.folder.is_dir():
        raise UnusableInput(f"{cfg.text.folder}: templates folder not found")
    try:
        render.check_templates(cfg)
    except render.TemplateError as e:
        raise UnusableInput(str(e)) from None
    kind = executor if isinstance(executor, str) else "local" if executor is None else None
    remote = kind == "ray" or isinstance(executor, RayPool)
    if remote:  # other processes, on other machines, open the clips' frames and write the parts
        out = out.resolve()
    fmt, clips, skips = read_input(root, fmt)
    # the usable clips past --limit are not built, but they are there: the report does not call them missing
    unread = [c.clip_id for c in clips[limit:]] if limit is not None else []
    clips = clips[:limit] if limit is not None else clips
    made = not out.exists()
    try:
        with claim(out):
            try:
                return _build_claimed(root, out, cfg, fmt, clips, skips, workers, keep_parts, shard_bytes, images,
                                      progress, executor if kind is None else None, threads,
                                      "ray" if remote else "local", ray_address, unread)
            except OSError as e:
                raise EnvironmentFailure.from_os(e, str(out)) from None
            except render.TemplateError as e:  # a branch the check before the build could not reach
                raise UnusableInput(str(e)) from None
    except (UnusableInput, PyFeatUnavailable, RayUnavailable) as e:
        # every clip failed as it was measured, or a tool asked for cannot run: the folder this build made goes, as
        # for unreadable input; unless it keeps the parts of clips measured for a re-run that finishes the clips a
        # cluster failed
        if made and not getattr(e, "resumable", False):
            shutil.rmtree(out, ignore_errors=True)
        raise


def _build_claimed(root: Path, out: Path, cfg: BuildConfig, fmt: str, clips: list[Clip], skips: list[Skip],
                   workers: int, keep_parts: bool, shard_bytes: int, images: bool, progress, executor,
                   threads: int | None, kind: str = "local", ray_address: str | None = None,
                   unread: list[str] = ()) -> dict:
    """:func:`build` once the output folder is held; ``unread``: the usable clips ``--limit`` left out."""
    t0 = time.perf_counter()
    settings = cfg.fingerprint()
    inputs = {c.clip_id: clip_inputs(c) for c in clips}
    provided, read_notes = provenance(root, fmt, clips)  # the label file read (its hash) and the others present
    options = {"shard_bytes": int(shard_bytes), "images": bool(images), "format": fmt, "root": root.name,
               "provided": provided, "read_notes": read_notes}
    key = request_key(settings, options, [(c.clip_id, inputs[c.clip_id]) for c in clips],
                      [relative_to_root(s, root) for s in skips])
    state = read_state(out)
    if state is not None and state.get("key") == key and (out / "build_report.json").is_file():
        report = json.loads((out / "build_report.json").read_text(encoding="utf-8"))
        report["up_to_date"] = True
        return report

    parts = PartStore(out / ".parts", settings)
    parts.folder.mkdir(parents=True, exist_ok=True)
    changed = sorted(cid for cid, k in inputs.items() if parts.other_inputs(cid, k)
                     or (state is not None and state.get("settings") == settings
                         and cid in state["clips"] and state["clips"][cid].get("inputs") != k))
    if state is not None:
        recover_parts(out, state, parts, inputs)
    if kind == "ray":  # at most one actor per clip, and per CPU of the cluster (RayPool)
        workers = min(workers or len(clips), len(clips))
    else:
        workers = min(workers or os.cpu_count() or 1, len(clips))
    runner = executor if executor is not None else _OnDemand(
        lambda: make_executor(cfg, workers, threads, kind, ray_address))
    if isinstance(runner, _OnDemand) and not all(parts.path(c.clip_id, inputs[c.clip_id]).exists() for c in clips):
        runner.start()  # clips to measure: the tools (and py-feat's one clear error) before the first clip
    summaries: dict[str, ClipSummary] = {}
    outcomes: dict[str, tuple[str, Outcome]] = {}
    try:
        if progress is not None:
            progress(None, len(clips))
        for outcome in run_clips(clips, cfg, parts, runner, inputs):
            outcomes[outcome.clip_id] = (inputs[outcome.clip_id], outcome)
            if isinstance(outcome, Skip):
                skips.append(outcome)
            else:
                summaries[outcome.clip_id] = outcome
            if progress is not None:
                progress(outcome, len(clips))
    except KeyboardInterrupt:
        if isinstance(runner, _OnDemand):
            runner.terminate()
        raise
    finally:
        if isinstance(runner, _OnDemand):
            runner.close()
    ordered = [summaries[c.clip_id] for c in clips if c.clip_id in summaries]
    unfinished = any(isinstance(o, Skip) and o.reason in UNFINISHED for _, o in outcomes.values())
    if not ordered and not unfinished:
        # Every clip failed as it was measured (a video window past its end, no face in any onset): no dataset
        # to write, as when no row could be read (exit 2, nothing written), not an empty one with a card.
        if parts.folder.is_dir() and not any(parts.folder.iterdir()):
            parts.folder.rmdir()
        why = skips[0].message if len(skips) == 1 else f"all {len(skips)} skipped"
        raise UnusableInput(f"{root}: no clip could be built ({why})", skipped=skips)
    if not ordered:  # every clip is one a cluster did not finish (the others failed as they were read or measured)
        pending = sum(isinstance(o, Skip) and o.reason in UNFINISHED for _, o in outcomes.values())
        raise UnusableInput(f"{root}: no clip was built: the cluster did not finish any of the {pending} clip"
                            f"{'s' * (pending != 1)} it was given (each listed); run the build again to measure them",
                            skipped=skips)
    kept = [s.clip_id for s in ordered if not s.dropped]
    if not kept:
        # Every clip built was dropped by the policy: a dataset of no rows neither loads (`datasets` has no empty
        # split) nor says anything: exit 2, as when no clip could be built, with what to do instead, and nothing
        # written (clips a cluster did not finish keep their parts, for the re-run that builds them).
        pending = sum(isinstance(o, Skip) and o.reason in UNFINISHED for _, o in outcomes.values())
        if not unfinished and not keep_parts:
            shutil.rmtree(parts.folder, ignore_errors=True)
        raise UnusableInput(f"{root}: no row left to write: --policy drop dropped every one of the {len(ordered)} "
                            f"clip{'s' * (len(ordered) != 1)} built (a labelled AU contradicted or not seen in each); "
                            f"build with --policy flag to keep them, marked, with the reasons"
                            + (f" ({pending} more not finished: run the build again to measure them)" if pending
                               else ""), skipped=skips, resumable=unfinished)
    made: dict = {}

    def describe(staged: list[Path]) -> None:
        # the report and the card of the staged shards, made before the swap: a kill after it leaves their writing
        # only (milliseconds), not the card's reading of every shard, between the new data and their description
        shard_names = [f"data/{p.name}" for p in staged]
        made["report"] = build_report(ordered, skips, cfg, root, fmt, shard_names, time.perf_counter() - t0,
                                      runner.workers, changed=changed, damaged=sorted(set(parts.damaged)),
                                      executor=kind, notes=[*read_notes, *subjects_note(fmt, clips, set(summaries))],
                                      inputs=provided, unread=unread)
        made["card"] = render_card(out, made["report"], cfg, shards=staged)

    shards = consolidate(parts.folder, out, kept, shard_bytes,
                         parts={c.clip_id: parts.path(c.clip_id, inputs[c.clip_id]) for c in clips},
                         images=images, before_swap=describe)
    shard_names = [str(p.relative_to(out)) for p in shards]
    report = made["report"]
    # An inspection report (`unimer inspect`, OUT/inspect/) of the shards just replaced would show clips that are
    # gone and miss new ones: it is removed, and the summary says to make it again.
    if (out / "inspect" / "index.html").is_file():
        shutil.rmtree(out / "inspect", ignore_errors=True)
        report["inspect_removed"] = not (out / "inspect").exists()  # a link, or a file not ours to remove, stays
    write_json(out / "build_report.json", report)
    write_text(out / "README.md", made["card"])
    # A clip the cluster failed to build (executors_ray) has no part: the build is not finished, and a re-run
    # builds just those clips from the parts kept here.
    if not unfinished:
        write_state(out, key, settings, options, {c.clip_id: outcomes[c.clip_id] for c in clips}, shard_names)
    if not keep_parts and not unfinished:
        shutil.rmtree(parts.folder, ignore_errors=True)
    return report
