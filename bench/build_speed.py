"""Builder cost against the optical-flow floor, worker scaling, and memory against build size.

    python bench/build_speed.py overhead [--clips 30] [--repeat 3] [--preset fast] [--crop 224]
    python bench/build_speed.py scaling  [--clips 40] [--repeat 3]
    python bench/build_speed.py memory   [--small 20 --large 200] [--workers 1]
    python bench/build_speed.py ray      [--clips 20] [--repeat 3] [--small 20 --large 200]

overhead: builder wall time per clip (one worker, as `unimer build --workers 1` runs it: the whole
          `unimer_builder.build` call, its tools already made) divided by the time of TV-L1 calls alone on
          the same aligned onset/apex crops, with the same TV-L1 object, parameters and OpenCV threads, made
          inside the same build (each builder call is duplicated and the duplicate timed; see overhead()).
          With the output stage overlapped (default) and strictly sequential; best of --repeat and the median.
scaling:  clips per second of 1 worker x 1 OpenCV thread, 1 worker x all cores, and 2 workers x 1 thread
          (a warm pool handed to build(): spawned and models loaded before the clock starts; the start-up is
          printed separately, and a cold build() with its own pool is timed too). Best of --repeat each,
          measured round-robin so that load from other processes hits every variant alike.
memory:   peak RSS of a process running `unimer_builder.build` and its workers (each one's own high-water
          mark, read from /proc) for the large database against the small one, and of consolidation alone.
ray:      clips per second of `--executor ray` (a local Ray cluster of all cores, one 1-thread actor per core)
          against the local pool (as many 1-thread workers), both warm, builds alternated, the start-ups
          printed apart; then peak RSS of a whole build(executor="ray") in its own local Ray cluster (driver,
          actors, Ray's own processes) for the small database against the large one.

Everything is measured on synthetic casme2 clips (`unimer synth`, seed 0, 4 subjects, 14 frames of
288x288 px); --tmp keeps the databases between runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2

import unimer_builder as u
from unimer_builder import pipeline
from unimer_builder.executors import InProcess, WorkerPool


def synth(root: Path, clips: int, subjects: int = 4, fmt: str = "casme2") -> Path:
    if not (root / "ground_truth.json").exists():
        u.synthesize(root, fmt, clips=clips, subjects=subjects, seed=0)
    return root


def build_timed(root: Path, cfg, out: Path, **kw) -> tuple[float, dict, float]:
    """(seconds of :func:`unimer_builder.build`, its report, seconds after the last clip: consolidation,
    report and card). ``kw`` go to build (``executor=`` a warm one, ``workers=``)."""
    shutil.rmtree(out, ignore_errors=True)
    last = [0.0]

    def progress(outcome, total: int) -> None:
        last[0] = time.perf_counter()

    t = time.perf_counter()
    report = u.build(root, out, cfg, "casme2", progress=progress, **{"workers": 1, **kw})
    end = time.perf_counter()
    return end - t, report, end - last[0]


def machine() -> str:
    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "?")
    load1 = os.getloadavg()[0]
    return f"nproc={os.cpu_count()} cpu='{model}' opencv={cv2.__version__} load1={load1:.2f}"


def overhead(args) -> None:
    import numpy as np

    tmp = Path(args.tmp)
    root = synth(tmp / f"src{args.clips}", args.clips)
    cfg = u.BuildConfig().with_(flow=u.FlowConfig.from_preset(args.preset), **{"face.crop_size": args.crop})
    tools = pipeline.init_worker(cfg, 1)  # what build() makes for one worker
    build_timed(root, cfg, tmp / "warm", executor=InProcess(tools), limit=2)  # first-call allocations, alike
    print(machine())
    print(f"preset={args.preset} crop={args.crop} clips={args.clips} opencv_threads={cv2.getNumThreads()} "
          f"repeats={args.repeat}")

    # The floor is measured inside the very build it is compared with: the builder's TV-L1 object is
    # wrapped so that each of its calls is made twice on the same crops, once timed as "TV-L1 alone"
    # and once used by the builder (alternating which comes first). The builder's own wall time is the
    # build's wall time minus the duplicate calls. Load from other processes then hits both alike.
    class Twice:
        def __init__(self, real):
            self.real, self.alone, self.calls = real, 0.0, 0

        def calc(self, a, b, out):
            self.calls += 1
            if self.calls % 2:
                t = time.perf_counter()
                self.real.calc(a, b, None)
                self.alone += time.perf_counter() - t
                return self.real.calc(a, b, out)
            flow = self.real.calc(a, b, out)
            t = time.perf_counter()
            self.real.calc(a, b, None)
            self.alone += time.perf_counter() - t
            return flow

        def setScalesNumber(self, n):  # noqa: N802 - OpenCV's name
            self.real.setScalesNumber(n)

    n = args.clips
    variants = {"overlapped output (default)": True, "strictly sequential": False}
    rows: dict[str, list[tuple[float, float, float, dict]]] = {k: [] for k in variants}
    real = tools.tvl1
    try:
        for i in range(args.repeat):
            line = []
            for name, overlap in variants.items():
                twice = tools.tvl1 = Twice(real)
                sec, report, c_sec = build_timed(root, cfg, tmp / "out", executor=InProcess(tools, overlap=overlap))
                b, f = (sec - twice.alone) / n, twice.alone / n
                rows[name].append((b, f, c_sec / n, report))
                line.append(f"{name}: builder {1000 * b:6.1f}, TV-L1 alone {1000 * f:6.1f} ms/clip, ratio {b / f:.3f}")
            print(f"  repeat {i + 1}: " + "; ".join(line) + f"  (load1 {os.getloadavg()[0]:.2f})", flush=True)
    finally:
        tools.tvl1 = real
        tools.close()
    for name, rs in rows.items():
        ratios = [r[0] / r[1] for r in rs]
        k = int(np.argmin(ratios))
        b, f, c, report = rs[k]
        means = report["run"]["mean_stage_seconds"]  # its "tvl1" holds the duplicate calls too
        print(f"{name}: builder {1000 * b:.1f} ms/clip, TV-L1 alone {1000 * f:.1f} ms/clip (same build), "
              f"ratio {b / f:.3f} best of {args.repeat}, median {statistics.median(ratios):.3f}  target <= 1.15")
        print("    stages of that build, ms per clip: "
              + ", ".join(f"{key} {1000 * means.get(key, 0.0):.1f}" for key in ("decode", "face", "rest", "output"))
              + f", after the last clip (consolidation, report, card) {1000 * c:.1f}")


def scaling(args) -> None:
    tmp = Path(args.tmp)
    root = synth(tmp / f"src{args.clips}", args.clips)
    cfg = u.BuildConfig().with_(flow=u.FlowConfig.from_preset(args.preset), **{"face.crop_size": args.crop})
    cores = os.cpu_count() or 1
    n = args.clips
    warm = {t: InProcess(pipeline.init_worker(cfg, t)) for t in sorted({1, cores})}  # tools made once each

    def in_process(threads: int) -> float:
        cv2.setNumThreads(threads)
        return n / build_timed(root, cfg, tmp / "out", executor=warm[threads])[0]

    print(machine())
    in_process(1)  # warm the in-process models and templates
    t = time.perf_counter()
    pool = WorkerPool(2, pipeline.init_worker, (cfg, 1))
    startup = pool.start()
    print(f"{n} clips, preset={args.preset}, crop={args.crop}, {cores} cores; pool of 2 workers x 1 thread: "
          f"start-up {startup:.2f} s (spawn, imports, models, templates; {time.perf_counter() - t:.2f} s with the "
          f"executor)")
    runs: dict[str, list[float]] = {"1w x 1t": [], f"1w x {cores}t": [], "2w x 1t (warm pool)": [],
                                    "2w x 1t (cold, own pool)": []}
    with pool:
        for i in range(args.repeat):
            runs["1w x 1t"].append(in_process(1))
            runs[f"1w x {cores}t"].append(in_process(cores))
            runs["2w x 1t (warm pool)"].append(n / build_timed(root, cfg, tmp / "out", executor=pool)[0])
            runs["2w x 1t (cold, own pool)"].append(n / build_timed(root, cfg, tmp / "out", workers=2, threads=1)[0])
            print(f"  repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items())
                  + f" clips/s (load1 {os.getloadavg()[0]:.2f})", flush=True)
    for ex in warm.values():
        pipeline.close_executor(ex)
    best = {k: max(v) for k, v in runs.items()}
    for k, v in best.items():
        print(f"{k:26s}: {v:6.2f} clips/s (best of {args.repeat})")
    one_1t, one_all = best["1w x 1t"], best[f"1w x {cores}t"]
    two, cold = best["2w x 1t (warm pool)"], best["2w x 1t (cold, own pool)"]
    print(f"per-core scaling, 2w x 1t / 1w x 1t   : {two / one_1t:.2f}x warm pool, {cold / one_1t:.2f}x cold  "
          f"(target >= 1.7)")
    print(f"against 1 worker on all cores         : {two / one_all:.2f}x warm pool, {cold / one_all:.2f}x cold")
    print(f"TV-L1's own threading, 1w x {cores}t / 1w x 1t: {one_all / one_1t:.2f}x")


# --- memory ----------------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _hwm_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for ln in f:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1]) / 1024
    except OSError:
        return None
    return None


def peak_rss(cmd: list[str], name=None) -> tuple[float, dict, float]:
    """Run ``cmd``; (its own peak RSS MiB, {descendant: peak RSS MiB}, seconds). Each process's VmHWM (a
    high-water mark) is sampled every 20 ms until it exits. Descendants are keyed by pid, or, given
    ``name(pid)`` (the latest name wins, once a process is an "actor" it stays one), grouped by name into
    lists."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks: dict[int, float] = {}
    roles: dict[int, str] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            todo = [proc.pid]
            while todo:
                p = todo.pop()
                h = _hwm_mib(p)
                if h is not None:
                    peaks[p] = max(peaks.get(p, 0.0), h)
                    if name is not None and p != proc.pid and roles.get(p) != "actor":
                        roles[p] = name(p)
                todo += _children(p)
            stop.wait(0.02)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    rc = proc.wait()
    stop.set()
    th.join()
    if rc not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} exited {rc}")
    parent = peaks.pop(proc.pid, 0.0)
    if name is None:
        return parent, peaks, time.perf_counter() - t
    by_role: dict[str, list[float]] = {}
    for pid, mib in peaks.items():
        by_role.setdefault(roles.get(pid, "?"), []).append(mib)
    return parent, by_role, time.perf_counter() - t


def memory(args) -> None:
    tmp = Path(args.tmp)
    print(machine())
    dbs = {n: synth(tmp / f"src{n}", n) for n in (args.small, args.large)}
    results = {}
    for n, root in dbs.items():
        out = tmp / f"out{n}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-c", "import sys, unimer_builder as u; u.build(sys.argv[1], sys.argv[2], "
               "u.BuildConfig(), 'casme2', int(sys.argv[3]), keep_parts=True)", str(root), str(out), str(args.workers)]
        parent, workers, sec = peak_rss(cmd)
        # Consolidation alone, in a fresh process, from the parts the build kept.
        code = ("import resource, sys; from pathlib import Path; "
                "from unimer_builder.consolidate import SHARD_MAX_BYTES, consolidate; "
                "from unimer_builder.parts import part_meta; o = Path(sys.argv[1]); "
                "order = [part_meta(p)['clip_id'] for p in sorted((o / '.parts').glob('*.parquet'))]; "
                "consolidate(o / '.parts', o, order, SHARD_MAX_BYTES); "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        base = ("import resource, pyarrow.parquet, unimer_builder.consolidate; "
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        cons = int(subprocess.run([sys.executable, "-c", code, str(out)], check=True, capture_output=True,
                                  text=True).stdout.split()[-1]) / 1024
        imports = int(subprocess.run([sys.executable, "-c", base], check=True, capture_output=True,
                                     text=True).stdout.split()[-1]) / 1024
        results[n] = (parent, workers, sec, cons, imports)
        w = ", ".join(f"{v:.0f}" for v in workers.values()) or "none"
        print(f"build of {n:4d} clips, {args.workers} worker(s): parent peak RSS {parent:7.1f} MiB, workers' "
              f"[{w}] MiB ({sec:.0f} s); consolidation alone {cons:.1f} MiB (its imports alone {imports:.1f} MiB)",
              flush=True)
    (ps, ws, _, cs, imp), (pl, wl, _, cl, _) = results[args.small], results[args.large]
    tot_s = ps + sum(ws.values())
    tot_l = pl + sum(wl.values())
    print(f"ratio {args.large}/{args.small} clips: parent {pl / ps:.3f}"
          + (f", largest worker {max(wl.values()) / max(ws.values()):.3f}, whole tree {tot_l / tot_s:.3f}"
             if ws and wl else "")
          + f", consolidation {cl / cs:.3f} (above its imports: {cl - imp:.1f} vs {cs - imp:.1f} MiB)"
          + "  target <= 1.2")


# --- ray ------------------------------------------------------------------------------------------


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _role(cmd: str) -> str:
    """What a process of a Ray build is, from its command line (Ray retitles its workers ``ray::<what>``)."""
    if cmd.startswith("ray::_Worker"):
        return "actor"
    if cmd.startswith("ray::"):
        return cmd.split()[0]  # ray::IDLE (a worker no actor took), ray::DashboardAgent, ...
    argv = cmd.split()
    names = [Path(a).name for a in argv[:3] if not a.startswith("-")]
    return " ".join(n for n in names if not n.startswith("python") or len(names) == 1) or "?"  # raylet, gcs_server, x.py


def ray_bench(args) -> None:
    """--executor ray against the local pool: clips/s side by side (both warm), start-up apart, and the
    memory of a whole build(executor="ray") (driver, actors, Ray's own processes) for 20 vs 200 clips."""
    import ray

    tmp = Path(args.tmp)
    n = args.clips
    root = synth(tmp / f"src{n}", n)
    cfg = u.BuildConfig().with_(flow=u.FlowConfig.from_preset(args.preset),
                                **{"face.crop_size": args.crop, "text.composite": "labels"})
    cores = os.cpu_count() or 1
    print(machine())
    t = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    up = time.perf_counter() - t
    t = time.perf_counter()
    remote = pipeline.make_ray_executor(cfg, cores, 1)  # actors made and initialised (make_ray_executor starts them)
    actors = time.perf_counter() - t
    t = time.perf_counter()
    local = pipeline.make_executor(cfg, cores, 1)
    spawn = local.start()
    print(f"start-up: Ray local cluster of {cores} CPUs {up:.2f} s; {remote.workers} actors x 1 thread "
          f"{actors:.2f} s; local pool of {local.workers} workers x 1 thread {spawn:.2f} s "
          f"({time.perf_counter() - t:.2f} s with the executor)")

    def once(executor, out: Path) -> float:
        sec, report, _ = build_timed(root, cfg, out, executor=executor)
        assert report["counts"]["built"] == n, report["counts"]
        return n / sec

    runs: dict[str, list[float]] = {"local pool (warm)": [], "ray actors (warm)": []}
    try:
        once(remote, tmp / "warm-ray")  # first clips of each process: allocations, caches
        once(local, tmp / "warm-local")
        for i in range(args.repeat):
            runs["local pool (warm)"].append(once(local, tmp / "out-local"))
            runs["ray actors (warm)"].append(once(remote, tmp / "out-ray"))
            print(f"  repeat {i + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in runs.items())
                  + f" clips/s (load1 {os.getloadavg()[0]:.2f})", flush=True)
        same = _digest(tmp / "out-local") == _digest(tmp / "out-ray")
    finally:
        pipeline.close_executor(remote)
        pipeline.close_executor(local)
        ray.shutdown()
    for k, v in runs.items():
        print(f"{k:20s}: {max(v):6.2f} clips/s best of {args.repeat}, median {statistics.median(v):.2f}")
    best = max(runs["ray actors (warm)"]) / max(runs["local pool (warm)"])
    med = statistics.median(runs["ray actors (warm)"]) / statistics.median(runs["local pool (warm)"])
    print(f"ray / local: {best:.3f} (best), {med:.3f} (medians)  target >= 0.9; shards byte-identical: {same}")

    results = {}
    for m in (args.small, args.large):
        src = synth(tmp / f"src{m}", m)
        out = tmp / f"ray-out{m}"
        shutil.rmtree(out, ignore_errors=True)
        cmd = [sys.executable, "-c", "import sys, unimer_builder as u; u.build(sys.argv[1], sys.argv[2], "
               "u.BuildConfig().with_(**{'text.composite': 'labels'}), 'casme2', executor='ray', ray_address='local')",
               str(src), str(out)]
        driver, roles, sec = peak_rss(cmd, name=lambda p: _role(_cmdline(p)))
        results[m] = (driver, roles)
        print(f"build(executor='ray') of {m:4d} clips ({sec:.0f} s): driver peak RSS {driver:7.1f} MiB; "
              + "; ".join(f"{r} [{', '.join(f'{v:.0f}' for v in sorted(vs))}] MiB" for r, vs in sorted(roles.items())),
              flush=True)
    (ds, rs), (dl, rl) = results[args.small], results[args.large]
    print(f"ratio {args.large}/{args.small} clips: driver {dl / ds:.3f}, largest actor "
          f"{max(rl.get('actor', [0])) / max(rs.get('actor', [1])):.3f}, whole tree "
          f"{(dl + sum(map(sum, rl.values()))) / (ds + sum(map(sum, rs.values()))):.3f}  target <= 1.2")


def _digest(out: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted((out / "data").glob("*.parquet")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["overhead", "scaling", "memory", "ray"])
    ap.add_argument("--clips", type=int, default=None, help="clips (overhead 30, scaling 40)")
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--crop", type=int, default=224)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", type=int, default=20)
    ap.add_argument("--large", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1, help="memory: --workers of the builds")
    ap.add_argument("--tmp", default=None, help="work folder (kept); default: a temporary one")
    args = ap.parse_args()
    args.clips = args.clips or {"overhead": 30, "scaling": 40, "ray": 20}.get(args.what, 30)
    with tempfile.TemporaryDirectory() as d:
        args.tmp = args.tmp or d
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
        {"overhead": overhead, "scaling": scaling, "memory": memory, "ray": ray_bench}[args.what](args)


if __name__ == "__main__":
    main()
