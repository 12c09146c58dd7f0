"""Kill a build at random moments, change an input, finish it: the output must be the uninterrupted build's.

``unimer build`` runs as a child process and gets SIGKILL (no clean-up of any kind) at a random moment of
its run, ``kills`` times; then one clip that already has its part (or its rows in a finished build's shards)
gets another emotion label, and the build runs to its end. The shards must be byte for byte those of an
uninterrupted build of the changed input, the changed clip measured again (``report["changed"]``), every
other clip that was done before resumed. Used by ``tests/test_kill_resume.py`` (a few kills) and
``bench/kills.py`` (the full check).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from ..parts import part_meta
from ..sources import read_clips
from ..state import read_state

EMOTIONS = ("happiness", "disgust", "repression", "surprise", "others")
BUILD_ARGS = ("--format", "casme2", "--seed", "7", "--composite", "labels")


def build_command(root: Path, out: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "unimer_builder.cli", "build", str(root), "--out", str(out), *BUILD_ARGS,
            "--workers", str(workers)]


def run_build(root: Path, out: Path, workers: int) -> tuple[int, float, str]:
    """An uninterrupted build: (exit status, seconds, stderr)."""
    t0 = time.perf_counter()
    r = subprocess.run(build_command(root, out, workers), capture_output=True, text=True)
    return r.returncode, time.perf_counter() - t0, r.stderr


def shard_digest(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "data").glob("*.parquet"))}


def done_clips(out: Path) -> set[str]:
    """Clips whose work a re-run would reuse: a part file, or rows in a finished build's state."""
    done = set()
    for p in (out / ".parts").glob("*.parquet") if (out / ".parts").is_dir() else ():
        try:
            done.add(part_meta(p)["clip_id"])
        except Exception:  # noqa: BLE001 - a part being written when the kill came: not done
            pass
    state = read_state(out)
    if state is not None:
        done.update(state["clips"])
    return done


def relabel(root: Path, clip_id: str) -> str:
    """Give the clip's row another emotion in the CASME II sheet; returns the new label."""
    import openpyxl

    row = next(c.source_row for c in read_clips(root, "casme2") if c.clip_id == clip_id)
    sheet = next(root.glob("CASME2-coding*.xlsx"))
    wb = openpyxl.load_workbook(sheet)
    ws = wb.worksheets[0]
    col = [c.value for c in ws[1]].index("Estimated Emotion") + 1
    old = str(ws.cell(row=row, column=col).value).lower()
    new = next(e for e in EMOTIONS if e != old)
    ws.cell(row=row, column=col, value=new)
    wb.save(sheet)
    return new


def kill_and_resume(root: Path, work: Path, kills: int = 10, workers: int = 1, seed: int = 0) -> dict:
    """The whole check on the CASME II-format database at ``root`` (changed in place: pass a copy); ``work``
    holds the builds. Returns what was seen, figures included; ``ok`` says whether every check held."""
    rng = random.Random(seed)
    work.mkdir(parents=True, exist_ok=True)
    code, full_s, err = run_build(root, work / "reference-before", workers)
    if code not in (0, 1):
        raise RuntimeError(f"the uninterrupted build failed ({code}): {err[-2000:]}")
    out = work / "killed"
    moments, finished_early, orphans = [], 0, 0
    for i in range(kills):
        # Spread over the whole run (start-up, clips, consolidation); the last kill comes once that run has
        # finished a clip of its own (not at a share of the uninterrupted build's time, which a loaded machine
        # stretches), so that some clips are done when the input changes.
        last = i == kills - 1
        at = rng.uniform(0.0, 0.1) * full_s if last else rng.uniform(0.05, 1.0) * full_s
        before = len(done_clips(out))
        proc = subprocess.Popen(build_command(root, out, workers), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if last:
                t0 = time.perf_counter()
                while len(done_clips(out)) <= before and proc.poll() is None and time.perf_counter() - t0 < 20 * full_s:
                    time.sleep(0.02)
                at += time.perf_counter() - t0
                proc.wait(timeout=at - (time.perf_counter() - t0))
            else:
                proc.wait(timeout=at)
            finished_early += 1  # the run ended before its kill: the next one starts from nothing, so that it
            if i < kills - 1:  # has a whole build to be killed in
                shutil.rmtree(out)
        except subprocess.TimeoutExpired:
            orphans += _kill_with_watch(proc)
        moments.append(round(at, 2))
    done = sorted(done_clips(out))
    all_ids = [c.clip_id for c in read_clips(root, "casme2")]
    target = rng.choice(done) if done else all_ids[0]
    label = relabel(root, target)
    t0 = time.perf_counter()
    code, _, err = run_build(root, out, workers)
    resume_s = time.perf_counter() - t0
    report = json.loads((out / "build_report.json").read_text()) if (out / "build_report.json").is_file() else {}
    code_ref, ref_s, _ = run_build(root, work / "reference-after", workers)
    same = shard_digest(out) == shard_digest(work / "reference-after")
    expect_changed = [target] if target in done else []
    checks = {
        "exit status as the uninterrupted build's": code == code_ref,
        "shards identical to an uninterrupted build of the changed input": same,
        "the changed clip measured again": report.get("changed") == expect_changed,
        "every other clip done before resumed": report.get("counts", {}).get("resumed") == len(done) - len(expect_changed),
        "no worker left running after a kill": orphans == 0,
    }
    return {"ok": all(checks.values()), "checks": checks, "kills": kills, "kill_moments_s": moments,
            "runs_that_ended_before_their_kill (then started again from nothing)": finished_early, "done_before_change": len(done),
            "clips": len(all_ids), "changed_clip": target, "new_label": label, "uninterrupted_s": round(full_s, 2),
            "final_run_s": round(resume_s, 2), "reference_after_s": round(ref_s, 2), "final_report_counts": report.get("counts"),
            "stderr_tail": err[-1500:] if code not in (0, 1) else ""}


def _kill_with_watch(proc: subprocess.Popen) -> int:
    """SIGKILL the build alone (not its workers); returns how many of its child processes still run 15 s later
    (its pool workers and their resource tracker must end by themselves)."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    proc.kill()
    proc.wait()
    _, alive = psutil.wait_procs(kids, timeout=15)
    for p in alive:  # leave nothing running, but count it
        p.kill()
    return len(alive)
