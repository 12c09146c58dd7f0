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
    timings: dict[str, float] = field(default_factory=dict)
    resumed: bool = False


_STATE: dict = {}


def _worker_init(threads: int) -> None:
    """Hold each worker to its share of the cores: TV-L1 threads otherwise oversubscribe."""
    import cv2

    cv2.setNumThreads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def _tools(cfg: BuildConfig):
    """Per-process detector and TV-L1 object, created once: model loading must not be per clip."""
    key = (cfg.crop_size, cfg.flow)
    if _STATE.get("key") != key:
        from .face import FaceAligner
        from .flow import make_tvl1

        _STATE.update(key=key, aligner=FaceAligner(cfg.crop_size), tvl1=make_tvl1(cfg.flow))
    return _STATE["aligner"], _STATE["tvl1"]


def process_clip(clip: Clip, cfg: BuildConfig, parts_dir: str) -> ClipSummary | Skip:
    """All per-clip stages; an ``InputError`` becomes a ``Skip`` naming file, row and field."""
    from . import shards
    from .crosscheck import cross_check
    from .evidence import compute_evidence
    from .render import render_samples

    t0 = time.perf_counter()
    try:
        aligner, tvl1 = _tools(cfg)
        ev = compute_evidence(clip, cfg, aligner=aligner, tvl1=tvl1)
    except InputError as e:
        return Skip(clip.clip_id, e.reason, e.message, e.file, e.row, e.field)
    check = cross_check(clip, ev, cfg)
    dropped = cfg.policy == "drop" and check.flagged
    rows: list[dict] = []
    t1 = time.perf_counter()
    if not dropped:
        samples = render_samples(clip, ev, check, cfg)
        rows = shards.clip_rows(clip, ev, check, samples, cfg)
    shards.write_part(Path(parts_dir), clip.clip_id, rows, cfg.fingerprint())
    timings = dict(ev.timings)
    timings["output"] = time.perf_counter() - t1
    timings["total"] = time.perf_counter() - t0
    return ClipSummary(
        clip_id=clip.clip_id, database=clip.database, rows=len(rows),
        flagged=check.flagged and cfg.policy == "flag", dropped=dropped, aus_source=check.aus_source,
        apex_source="estimated" if ev.apex_estimated else "label",
        verdicts=[(v.au, v.verdict) for v in check.verdicts],
        unexplained=[u.au for u in check.unexplained], timings=timings,
    )


def summary_from_part(path: Path, database: str) -> ClipSummary:
    """Rebuild a clip's summary from its part file (a resumed build computes nothing again)."""
    import pyarrow.parquet as pq

    cols = ["clip_id", "flagged", "aus_source", "apex_source", "verdicts", "unexplained"]
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
    )


def run_clips(
    clips: Iterable[Clip],
    cfg: BuildConfig,
    parts_dir: Path,
    workers: int = 1,
    on_done: Callable[[ClipSummary | Skip], None] | None = None,
) -> Iterator[ClipSummary | Skip]:
    """Yield one outcome per clip as it finishes (any order); resumes from existing parts."""
    from . import shards

    fp = cfg.fingerprint()
    todo: list[Clip] = []
    for clip in clips:
        part = shards.part_path(parts_dir, clip.clip_id, fp)
        if part.exists():
            out = summary_from_part(part, clip.database)
            if on_done:
                on_done(out)
            yield out
        else:
            todo.append(clip)
    if not todo:
        return
    if workers <= 1:
        _worker_init(cv2_threads_single())
        for clip in todo:
            out = process_clip(clip, cfg, str(parts_dir))
            if on_done:
                on_done(out)
            yield out
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        pending = set()
        it = iter(todo)
        # Keep a bounded number of clips in flight so the parent's memory does not grow with the input.
        for clip in it:
            pending.add(pool.submit(process_clip, clip, cfg, str(parts_dir)))
            if len(pending) >= workers * 2:
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


def cv2_threads_single() -> int:
    """One worker owns the machine: let OpenCV use every core."""
    return os.cpu_count() or 1
