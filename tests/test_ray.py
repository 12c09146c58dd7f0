"""`unimer build --executor ray` on a local Ray cluster (head with 2 CPUs, started here): the same rows as a local
build, a killed driver resumed, a lost worker's item retried, a failing item reported instead of failing the map.

Small on purpose (4 clips): the cluster's start-up is most of the time. Marked ``ray``: ``-m 'not ray'`` leaves
them out; CI runs them (``ray`` is in the ``dev`` extra).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from unimer_builder.cli import app

ray = pytest.importorskip("ray", reason="unimer[ray] not installed")

pytestmark = pytest.mark.ray

ROOT = Path(__file__).resolve().parent.parent
BUILD = ["--format", "casme2", "--seed", "7", "--composite", "labels"]
runner = CliRunner()


@pytest.fixture(scope="module")
def head():
    """A local Ray cluster for this module: its head node of 2 CPUs (nodes can be added: ``Cluster.add_node``),
    this process connected to it."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    try:
        ray.init(address=c.address, log_to_driver=False)
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def cluster(head) -> str:
    """The cluster's address (GCS), for drivers in other processes."""
    return head.address


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    from unimer_builder import synthesize

    return synthesize(tmp_path_factory.mktemp("src"), "casme2", clips=4, subjects=2, seed=3, frames=10)


@pytest.fixture(scope="module")
def local(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    res = runner.invoke(app, ["build", str(source), "--out", str(out), "--workers", "1", *BUILD], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _table(out: Path):
    return pq.read_table(sorted((out / "data").glob("train-*.parquet")))


def _same_rows(a: Path, b: Path) -> None:
    ta, tb = _table(a), _table(b)
    assert ta.column_names == tb.column_names and ta.num_rows == tb.num_rows > 0
    for name in ta.column_names:
        assert ta.column(name).equals(tb.column(name)), f"column {name} differs"
    names = sorted(p.name for p in (a / "data").glob("*.parquet"))
    assert names == sorted(p.name for p in (b / "data").glob("*.parquet"))
    for n in names:  # same rows, same order: the same bytes
        assert (a / "data" / n).read_bytes() == (b / "data" / n).read_bytes(), n


def test_ray_build_has_the_rows_of_a_local_build(cluster, source, local, tmp_path):
    out = tmp_path / "ray"
    res = runner.invoke(app, ["build", str(source), "--out", str(out), "--executor", "ray", "--ray-address", cluster,
                              *BUILD], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "building" in res.output and "rows" in res.output  # the local build's progress bar and summary
    _same_rows(local, out)
    report = json.loads((out / "build_report.json").read_text())
    assert report["run"]["executor"] == "ray" and report["run"]["workers"] == 2
    assert report["counts"]["built"] == 4 and report["counts"]["resumed"] == 0
    # which node built which clip: every clip once, on this cluster's one node (host/node id)
    node = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
    assert list(report["nodes"]) == [node]
    assert report["nodes"][node]["clip_ids"] == sorted(set(_table(local).column("clip_id").to_pylist()))
    assert json.loads((local / "build_report.json").read_text())["run"]["executor"] == "local"
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2:  # the build's actors are gone: their CPUs are free again
        assert time.monotonic() < deadline, ray.available_resources()
        time.sleep(0.1)


def test_killed_driver_resumes_to_the_same_rows(cluster, source, local, tmp_path):
    out = tmp_path / "resumed"
    cmd = [sys.executable, "-m", "unimer_builder.cli", "build", str(source), "--out", str(out), "--executor", "ray",
           "--ray-address", cluster, *BUILD]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = out / ".parts"
    deadline = time.monotonic() + 120
    try:
        while not list(parts.glob("*.parquet")):  # the first clip's part is written: the build is under way
            assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "no part written in 120 s"
            time.sleep(0.05)
    finally:
        driver.send_signal(signal.SIGKILL)  # the driver dies without a word: no cleanup of its own runs
        driver.wait()
    assert not (out / "build_report.json").exists() and not (out / "data").exists()
    done = len(list(parts.glob("*.parquet")))
    assert 1 <= done < 4, done

    res = runner.invoke(app, ["build", str(source), "--out", str(out), "--executor", "ray", "--ray-address", cluster,
                              *BUILD], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((out / "build_report.json").read_text())
    assert report["counts"]["built"] == 4 and report["counts"]["resumed"] >= done
    assert sum(n["clips"] for n in report["nodes"].values()) == 4
    _same_rows(local, out)


def test_a_lost_nodes_clips_are_built_elsewhere_and_a_failed_clip_is_built_by_a_rerun(head, source, local, tmp_path):
    from unimer_builder import BuildConfig, TextConfig, build, read_clips
    from unimer_builder.pipeline import make_ray_executor

    out = tmp_path / "out"
    victim = sorted(c.clip_id for c in read_clips(source, "casme2") if hasattr(c, "clip_id"))[1]
    extra = head.add_node(num_cpus=1)  # a second machine joins: 3 CPUs in all
    cfg = BuildConfig(text=TextConfig(seed=7, composite="labels"))
    pool = make_ray_executor(cfg, 3)  # one actor per CPU, spread: one of them on the new node
    real_map = pool.map

    def breaking(fn, jobs, then=None):  # the victim's label turns into one the clip's code cannot take
        jobs = ((dataclasses.replace(clip, onset="x") if clip.clip_id == victim else clip, key) for clip, key in jobs)
        return real_map(fn, jobs, then)

    def progress(outcome, total):
        if outcome is None:  # the tools are loaded everywhere, no clip is handed out yet: the node dies
            head.remove_node(extra)

    pool.map = breaking
    try:
        assert extra.node_id[:12] in {n.rsplit("/", 1)[1] for n, _ in pool.nodes()}
        report = build(source, out, cfg, "casme2", executor=pool, progress=progress)
    finally:
        pool.shutdown()
    assert pool.retried >= 1  # the clip handed to the dead node's actor was built by another one
    assert not any(extra.node_id[:12] in n for n in report["nodes"])
    assert report["counts"]["built"] == 3 and [s["clip_id"] for s in report["skipped"]] == [victim]
    assert report["skipped"][0]["reason"] == "error" and "TypeError" in report["skipped"][0]["message"]
    # not finished: no state claims it is, and the parts stay for the re-run, which builds the victim only
    assert not (out / ".unimer-state.json").exists() and len(list((out / ".parts").glob("*.parquet"))) == 3
    report = build(source, out, cfg, "casme2", workers=1, executor="ray")
    assert report["counts"]["built"] == 4 and report["counts"]["resumed"] == 3 and not report["skipped"]
    _same_rows(local, out)


def test_a_failed_clip_beside_clips_the_policy_drops_is_no_empty_dataset(cluster, source, tmp_path):
    """A cluster failed one clip and --policy drop dropped every other: nothing to write, exit 2, saying that a
    clip is not finished, and the parts kept for the re-run that measures it."""
    from unimer_builder import BuildConfig, TextConfig, UnusableInput, build, read_clips
    from unimer_builder.config import CheckConfig
    from unimer_builder.pipeline import make_ray_executor

    out = tmp_path / "out"
    victim = sorted(c.clip_id for c in read_clips(source, "casme2") if hasattr(c, "clip_id"))[0]
    # no label can be supported at this z: every clip built is flagged, and dropped
    cfg = BuildConfig(text=TextConfig(seed=7, composite="labels"), check=CheckConfig(z_supported=1000.0, policy="drop"))
    pool = make_ray_executor(cfg, 2)
    real_map = pool.map

    def breaking(fn, jobs, then=None):
        jobs = ((dataclasses.replace(clip, onset="x") if clip.clip_id == victim else clip, key) for clip, key in jobs)
        return real_map(fn, jobs, then)

    pool.map = breaking
    try:
        with pytest.raises(UnusableInput, match=r"--policy drop dropped every one of the 3 clips built.*"
                                                r"\(1 more not finished: run the build again to measure them\)"):
            build(source, out, cfg, "casme2", executor=pool)
    finally:
        pool.shutdown()
    assert not (out / "data").exists() and not (out / "README.md").exists()
    assert len(list((out / ".parts").glob("*.parquet"))) == 3  # kept: the re-run measures the victim only
    measured = {p.name: p.stat().st_mtime_ns for p in (out / ".parts").glob("*.parquet")}
    with pytest.raises(UnusableInput, match=r"dropped every one of the 4 clips built \(a labelled AU contradicted or "
                                            r"not seen in each\); build with --policy flag to keep them, marked, with "
                                            r"the reasons$"):
        build(source, out, cfg, "casme2", workers=1, executor="ray", keep_parts=True)
    now = {p.name: p.stat().st_mtime_ns for p in (out / ".parts").glob("*.parquet")}
    assert len(now) == 4 and all(now[n] == t for n, t in measured.items())  # the three were not measured again


def test_a_cluster_that_finished_no_clip_says_so_not_that_a_policy_dropped_them(cluster, source, tmp_path):
    """Every clip failed on the cluster: the message spoke of --policy drop dropping "every one of the 0 clips
    built" under the default policy."""
    from unimer_builder import BuildConfig, TextConfig, UnusableInput, build
    from unimer_builder.pipeline import make_ray_executor

    cfg = BuildConfig(text=TextConfig(seed=7, composite="labels"))
    pool = make_ray_executor(cfg, 2)
    real_map = pool.map
    pool.map = lambda fn, jobs, then=None: real_map(fn, ((dataclasses.replace(c, onset="x"), k) for c, k in jobs), then)
    try:
        with pytest.raises(UnusableInput, match=r"no clip was built: the cluster did not finish any of the 4 clips") \
                as err:
            build(source, tmp_path / "out", cfg, "casme2", executor=pool)
    finally:
        pool.shutdown()
    assert "policy" not in str(err.value) and len(err.value.skipped) == 4


# --- the executor itself: retries and failures (toy work, no models) --------------------------------------


def _work(state, item):
    """Dies (the whole worker process, as a lost node would) the first time it meets item 2 and every time it
    meets item 4; raises for item 3."""
    flag = Path(state) / f"died-{item}"
    if item == 4 or (item == 2 and not flag.exists()):
        flag.touch()
        os._exit(1)
    if item == 3:
        raise ValueError("bad item 3")
    return item * 10


def _then(state, out):
    return out + 1


def _failed(item, reason, message):
    return ("failed", item, reason, message)


def test_lost_worker_is_retried_and_a_failing_item_is_reported(cluster, tmp_path):
    from ray import cloudpickle

    from unimer_builder.executors_ray import RayPool

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # this module is not importable by the workers
    try:
        with RayPool(2, str, (str(tmp_path),), max_retries=1, failed=_failed) as pool:
            assert pool.workers == 2 and not pool.owns_connection  # joined the running cluster, will not stop it
            pool.start()
            out = sorted(pool.map(_work, range(7), then=_then), key=lambda r: r[1] if isinstance(r, tuple) else r // 10)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert out[:2] == [1, 11]
    assert out[2] == 21  # its worker died once; the item ran again on the restarted actor
    assert out[3][:3] == ("failed", 3, "error") and "bad item 3" in out[3][3]
    assert out[4][:3] == ("failed", 4, "worker_lost")  # died on every try: reported, the map went on
    assert out[5:] == [51, 61]
    assert ray.is_initialized()  # the module's cluster is still up

