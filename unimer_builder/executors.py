"""Run the per-clip stages over many clips: in this process or in a local process pool.

A worker turns one ``Clip`` into one Parquet part file (``shards.write_part``) and hands back only a
small summary, so the parent never holds pixels and memory stays flat however many clips there are.
A part that already exists for the same config fingerprint is not computed again: that is how a
killed build resumes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

from .config import BuildConfig
from .errors import InputError
from .records import Clip, Skip


@dataclass
class ClipSummary:
    """What the report needs of a built clip (no arrays)."""

    clip_id: str
    database: str
    rows: int
    flagged: bool
    dropped: bool
    aus_source: str
    apex_source: str
    verdicts: list[tuple[int, str]] = field(default_factory=list)  # (au, verdict)
    unexplained: list[int | None] = field(default_factory=list)  # implied AU per unexplained motion
    # With a second opinion: (au, labelled, said_by, agreement) per AU of CrossCheck.sources.
    sources: list[tuple[int, bool, str, str | None]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    resumed: bool = False
    duration_s: float | None = None  # onset -> offset, from the label (see labels.duration_class)
    duration_class: str | None = None  # micro | macro | long | None (unknown)


def _set_duration(summary: ClipSummary, clip: Clip) -> ClipSummary:
    from . import labels

    summary.duration_s = labels.duration_s(clip.onset, clip.offset, clip.fps)
    summary.duration_class = labels.duration_class(clip.onset, clip.apex, clip.offset, clip.fps)
    return summary


_STATE: dict = {}


THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(threads: int, cfg: BuildConfig | None = None) -> None:
    """Hold each worker to its share of the cores (TV-L1 threads otherwise oversubscribe), then
    warm it for ``cfg``: see :func:`warm`."""
    import cv2

    cv2.setNumThreads(threads)
    for var in THREAD_ENV:
        os.environ.setdefault(var, str(threads))
    if cfg is not None:
        warm(cfg)


def warm(cfg: BuildConfig) -> float:
    """Pay a process's one-time costs before its first clip; returns the seconds spent.

    Loads dlib's models and the TV-L1 object, compiles the Jinja2 templates, and makes pyarrow's first
    conversion (which imports pandas, ~0.3-0.6 s). Without this the first clip of every worker carried
    about a second of start-up in its ``face``/``output`` timings, which inflated the per-clip means
    of short builds (the "0.36 s output" of a 24-clip, 2-worker demo). Errors are left for the clip
    itself to raise (a bad templates folder fails the clip, not the pool).
    """
    t0 = time.perf_counter()
    try:
        import pyarrow as pa

        from . import render, shards  # noqa: F401

        pa.array([0])
        _tools(cfg)
        if cfg.au_detector == "py-feat":
            from .pyfeat_backend import get

            get()
        for task in cfg.tasks:
            render._module(str(cfg.templates_dir), task)
    except Exception:  # noqa: BLE001 - reported by the clip that hits it
        pass
    return time.perf_counter() - t0


def _tools(cfg: BuildConfig):
    """Per-process detector and TV-L1 object, created once: model loading must not be per clip."""
    key = (cfg.crop_size, cfg.flow, cfg.face_detector)
    if _STATE.get("key") != key:
        from .face import FaceAligner
        from .flow import make_tvl1

        _STATE.update(key=key, aligner=FaceAligner(cfg.crop_size, cfg.face_detector), tvl1=make_tvl1(cfg.flow))
    return _STATE["aligner"], _STATE["tvl1"]


def process_clip(clip: Clip, cfg: BuildConfig, parts_dir: str) -> ClipSummary | Skip:
    """All per-clip stages; an ``InputError`` becomes a ``Skip`` naming file, row and field."""
    got = _measure(clip, cfg)
    return got if isinstance(got, Skip) else _output(clip, cfg, parts_dir, *got)


def _measure(clip: Clip, cfg: BuildConfig):
    """Evidence and cross-check of a clip: ``(evidence, check, t0)`` or a ``Skip``."""
    from .crosscheck import cross_check
    from .evidence import compute_evidence
    from .sources.frames import FrameReader

    t0 = time.perf_counter()
    reader = FrameReader(clip)
    try:
        aligner, tvl1 = _tools(cfg)
        ev = compute_evidence(clip, cfg, aligner=aligner, tvl1=tvl1, reader=reader)
    except InputError as e:
        return Skip(clip.clip_id, e.reason, e.message, e.file, e.row, e.field)
    check = cross_check(clip, ev, cfg)
    if cfg.au_detector == "py-feat":
        from .pyfeat_backend import second_opinion

        t1 = time.perf_counter()
        check = second_opinion(clip, ev, check, cfg, reader)
        ev.timings["pyfeat"] = time.perf_counter() - t1
    return ev, check, time.perf_counter() - t0


def _output(clip: Clip, cfg: BuildConfig, parts_dir: str, ev, check, measured: float) -> ClipSummary:
    """Text, rows and the part file of a measured clip (PNG encoding and Parquet writing release the GIL,
    so this can run in a thread beside the next clip's measurement)."""
    from . import shards
    from .render import render_samples

    dropped = cfg.policy == "drop" and check.flagged
    rows: list[dict] = []
    t1 = time.perf_counter()
    if not dropped:
        samples = render_samples(clip, ev, check, cfg)
        rows = shards.clip_rows(clip, ev, check, samples, cfg)
    shards.write_part(Path(parts_dir), clip.clip_id, rows, cfg.fingerprint())
    timings = dict(ev.timings)
    timings["output"] = time.perf_counter() - t1
    timings["total"] = measured + timings["output"]
    return _set_duration(ClipSummary(
        clip_id=clip.clip_id, database=clip.database, rows=len(rows),
        flagged=check.flagged and cfg.policy == "flag", dropped=dropped, aus_source=check.aus_source,
        apex_source="estimated" if ev.apex_estimated else "label",
        verdicts=[(v.au, v.verdict) for v in check.verdicts],
        unexplained=[u.au for u in check.unexplained], timings=timings,
        sources=[(s.au, s.labelled, s.said_by, s.agreement) for s in check.sources],
    ), clip)


def _run_in_process(todo: list[Clip], cfg: BuildConfig, parts_dir: str, threads: int) -> Iterator[ClipSummary | Skip]:
    """One worker in this process. With more than one core for it, clip i's output stage (render, PNG,
    part file) runs in one helper thread while clip i+1 is measured: the measurement is mostly
    single-threaded outside TV-L1, so the helper uses a core that would otherwise idle. Outcomes come
    in input order; at most two clips are in flight."""
    if threads <= 1 or not OVERLAP_OUTPUT or len(todo) < 2:
        for clip in todo:
            yield process_clip(clip, cfg, parts_dir)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="unimer-output") as helper:
        prev = None
        for clip in todo:
            got = _measure(clip, cfg)
            if isinstance(got, Skip):
                nxt = got
            else:
                nxt = helper.submit(_output, clip, cfg, parts_dir, *got)
            if prev is not None:
                yield prev if isinstance(prev, Skip) else prev.result()
            prev = nxt
        if prev is not None:
            yield prev if isinstance(prev, Skip) else prev.result()


OVERLAP_OUTPUT = True  # see _run_in_process; False runs the stages strictly one after the other


def summary_from_part(path: Path, database: str) -> ClipSummary:
    """Rebuild a clip's summary from its part file (a resumed build computes nothing again)."""
    import pyarrow.parquet as pq

    cols = ["clip_id", "flagged", "aus_source", "apex_source", "verdicts", "unexplained", "au_sources"]
    t = pq.read_table(path, columns=cols)
    if t.num_rows == 0:
        return ClipSummary(clip_id=path.stem, database=database, rows=0, flagged=True, dropped=True,
                           aus_source="label", apex_source="label", resumed=True)
    r = t.slice(0, 1).to_pylist()[0]
    return ClipSummary(
        clip_id=r["clip_id"], database=database, rows=t.num_rows, flagged=bool(r["flagged"]), dropped=False,
        aus_source=r["aus_source"], apex_source=r["apex_source"],
        verdicts=[(v["au"], v["verdict"]) for v in r["verdicts"]],
        unexplained=[u["au"] for u in r["unexplained"]], resumed=True,
        sources=[(s["au"], s["labelled"], s["said_by"], s["agreement"]) for s in r["au_sources"]],
    )


class WorkerPool:
    """A process pool whose workers are limited to ``threads`` OpenCV threads each and warmed for
    ``cfg`` (models loaded, templates compiled) in their initializer.

    ``run_clips`` makes one per build. A caller that builds several times (a benchmark, a service)
    can make one itself, :meth:`start` it (spawns every worker and waits until each is warm; returns
    the seconds that took) and pass it to ``run_clips(pool=...)``, so the per-process start-up
    (interpreter spawn, cv2/dlib imports, a ~100 MB landmark model) is paid once, not per build.
    The ``spawn`` context is used because forking a process that already runs OpenCV threads is unsafe.
    """

    def __init__(self, workers: int, cfg: BuildConfig, threads: int | None = None):
        self.workers = max(1, int(workers))
        self.threads = threads or max(1, (os.cpu_count() or 1) // self.workers)
        self.cfg = cfg
        self.executor = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                            initargs=(self.threads, cfg))

    def start(self) -> float:
        t0 = time.perf_counter()
        seen: set[int] = set()
        while len(seen) < self.workers:
            seen.update(f.result() for f in [self.executor.submit(_ping) for _ in range(self.workers)])
        return time.perf_counter() - t0

    def submit(self, *args):
        return self.executor.submit(*args)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()


def _ping() -> int:
    time.sleep(0.05)  # long enough that one warm worker cannot answer every ping of a round
    return os.getpid()


def run_clips(
    clips: Iterable[Clip],
    cfg: BuildConfig,
    parts_dir: Path,
    workers: int = 1,
    on_done: Callable[[ClipSummary | Skip], None] | None = None,
    pool: WorkerPool | None = None,
) -> Iterator[ClipSummary | Skip]:
    """Yield one outcome per clip as it finishes (any order); resumes from existing parts.

    ``pool`` (a started :class:`WorkerPool` for the same ``cfg``) is used instead of a new pool and
    left running; ``workers`` is then ignored.
    """
    from . import shards

    fp = cfg.fingerprint()
    todo: list[Clip] = []
    for clip in clips:
        part = shards.part_path(parts_dir, clip.clip_id, fp)
        if part.exists():
            out = _set_duration(summary_from_part(part, clip.database), clip)
            if on_done:
                on_done(out)
            yield out
        else:
            todo.append(clip)
    if not todo:
        return
    if pool is None and workers <= 1:
        threads = cv2_threads_single()
        _worker_init(threads, cfg)
        for out in _run_in_process(todo, cfg, str(parts_dir), threads):
            if on_done:
                on_done(out)
            yield out
        return
    own = pool is None
    if own:
        pool = WorkerPool(workers, cfg)
    try:
        pending = set()
        it = iter(todo)
        # Keep a bounded number of clips in flight so the parent's memory does not grow with the input.
        for clip in it:
            pending.add(pool.submit(process_clip, clip, cfg, str(parts_dir)))
            if len(pending) >= pool.workers * 2:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                out = fut.result()
                if on_done:
                    on_done(out)
                yield out
                nxt = next(it, None)
                if nxt is not None:
                    pending.add(pool.submit(process_clip, nxt, cfg, str(parts_dir)))
    finally:
        if own:
            pool.shutdown()


def cv2_threads_single() -> int:
    """One worker owns the machine: let OpenCV use every core."""
    return os.cpu_count() or 1
