"""Issue 10: fault-proof builds. One test (or a few) per numbered case of the issue, on a 3-clip synthetic
CASME II database; the kill-at-random-moments check is ``tests/test_kill_resume.py`` (and ``bench/kills.py``)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from unimer_builder import BuildConfig, TextConfig, pipeline
from unimer_builder.cli import app
from unimer_builder.errors import UnusableInput
from unimer_builder.inputs import clip_inputs
from unimer_builder.sources import read_clips
from unimer_builder.sources.frames import decode_grey

CFG = BuildConfig(text=TextConfig(seed=7, composite="labels"))
ARGS = ("--format", "casme2", "--workers", 1, "--seed", 7, "--composite", "labels")
runner = CliRunner()


def _cli(*args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


def _digest(out: Path, names=("data",)) -> dict[str, str]:
    """sha256 of every file under ``out`` (hidden files aside, unless named)."""
    files = [p for p in sorted(out.rglob("*")) if p.is_file() and not any(x.startswith(".") for x in p.relative_to(out).parts)]
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
            if p.relative_to(out).parts[0] in names}


def _report(out: Path) -> dict:
    return json.loads((out / "build_report.json").read_text())


def _clip_dirs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "CASME2_RAW_selected").glob("sub*/*") if p.is_dir())


def _frames(folder: Path) -> list[Path]:
    return sorted(folder.glob("img*.jpg"), key=lambda p: int(p.stem[3:]))


def _set_emotion(root: Path, row: int, value: str) -> None:
    import openpyxl

    sheet = next(root.glob("CASME2-coding*.xlsx"))
    wb = openpyxl.load_workbook(sheet)
    ws = wb.worksheets[0]
    header = [c.value for c in ws[1]]
    ws.cell(row=row, column=header.index("Estimated Emotion") + 1, value=value)
    wb.save(sheet)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    from unimer_builder import synthesize

    return synthesize(tmp_path_factory.mktemp("faults_src"), "casme2", clips=3, subjects=2, seed=5, frames=8)


@pytest.fixture(scope="module")
def finished(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faults_out")
    report = pipeline.build(source, out, CFG, "casme2", workers=1)
    assert report["counts"]["built"] == 3
    return out


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, copy_function=shutil.copy2)  # same mtimes: the same inputs
    return dest


def _interrupt_at_third_clip(monkeypatch):
    """Ctrl-C while the third clip is measured (in process); returns the real measure_clip."""
    real = pipeline.measure_clip
    calls = {"n": 0}

    def dying(clip, cfg, tools):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(clip, cfg, tools)

    monkeypatch.setattr(pipeline, "measure_clip", dying)
    return real


def _no_measuring(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a clip was measured")

    monkeypatch.setattr(pipeline, "measure_clip", refuse)


# --- 1. resume never ships stale rows --------------------------------------------------------------


def test_inputs_fingerprint_follows_the_label_row_and_the_frame_files(source, tmp_path):
    root = _copy(source, tmp_path / "db")
    before = {c.clip_id: clip_inputs(c) for c in read_clips(root, "casme2")}
    assert before == {c.clip_id: clip_inputs(c) for c in read_clips(_copy(root, tmp_path / "moved"), "casme2")}
    _set_emotion(root, 2, "surprise")
    frame = _frames(_clip_dirs(root)[-1])[3]
    frame.write_bytes(frame.read_bytes())  # same bytes, new mtime: a replaced frame
    after = {c.clip_id: clip_inputs(c) for c in read_clips(root, "casme2")}
    relabelled = next(c.clip_id for c in read_clips(root, "casme2") if c.source_row == 2)
    refilmed = next(c.clip_id for c in read_clips(root, "casme2") if Path(c.frames[c.onset]).parent == frame.parent)
    assert {k for k in before if before[k] != after[k]} == {relabelled, refilmed}
    # another database with the same clip ids (other frames): every clip differs
    from unimer_builder import synthesize

    other = synthesize(tmp_path / "other", "casme2", clips=3, subjects=2, seed=6, frames=8)
    theirs = {c.clip_id: clip_inputs(c) for c in read_clips(other, "casme2")}
    assert set(theirs) == set(before) and all(theirs[k] != before[k] for k in before)


def test_a_finished_build_rebuilds_only_the_changed_clip(source, finished, tmp_path):
    root = _copy(source, tmp_path / "db")
    out = _copy(finished, tmp_path / "out")
    _set_emotion(root, 2, "surprise")
    changed_id = next(c.clip_id for c in read_clips(root, "casme2") if c.source_row == 2)
    res = _cli("build", root, "--out", out, *ARGS)
    assert res.exit_code == 0, res.output
    assert "1 clip built again: its label row or frame files changed since its part" in " ".join(res.output.split())
    r = _report(out)
    assert r["changed"] == [changed_id] and r["counts"]["resumed"] == 2 and r["counts"]["changed"] == 1
    emotions = dict(zip(*(pq.read_table(out / "data", columns=["clip_id", "emotion"]).column(c).to_pylist()
                          for c in ("clip_id", "emotion")), strict=False))
    assert emotions[changed_id] == "surprise"
    fresh = tmp_path / "fresh"
    assert _cli("build", root, "--out", fresh, *ARGS).exit_code == 0
    assert _digest(out) == _digest(fresh)  # the others came back out of the shards, byte for byte


def test_a_killed_build_with_a_changed_input_rebuilds_that_clip(source, finished, tmp_path, monkeypatch):
    root = _copy(source, tmp_path / "db")
    out = tmp_path / "out"
    real = _interrupt_at_third_clip(monkeypatch)
    res = _cli("build", root, "--out", out, *ARGS)
    assert res.exit_code == 130 and "resume" in res.output
    assert len(list((out / ".parts").glob("*.parquet"))) == 2
    monkeypatch.setattr(pipeline, "measure_clip", real)
    first = _frames(_clip_dirs(root)[0])  # a clip that has a part: its frames replaced (re-encoded)
    for p in first:
        cv2.imwrite(str(p), cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 80])
    res = _cli("build", root, "--out", out, *ARGS)
    assert res.exit_code == 0, res.output
    r = _report(out)
    assert r["counts"]["resumed"] == 1 and len(r["changed"]) == 1 and r["changed"][0].endswith(first[0].parent.name)
    fresh = tmp_path / "fresh"
    assert _cli("build", root, "--out", fresh, *ARGS).exit_code == 0
    assert _digest(out) == _digest(fresh)
    assert _digest(out) != _digest(finished)


def test_a_finished_build_run_again_does_no_work(source, finished, tmp_path, monkeypatch):
    out = _copy(finished, tmp_path / "out")
    before = _digest(out, names=("data", "README.md", "build_report.json"))
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != ".unimer.lock"}
    _no_measuring(monkeypatch)
    res = _cli("build", source, "--out", out, *ARGS)
    assert res.exit_code == 0, res.output
    assert "up to date" in res.output and "nothing rebuilt" in res.output
    assert _digest(out, names=("data", "README.md", "build_report.json")) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # not a file written
    # other output options are another request: the shards are made again from the same clips, none measured
    res = _cli("build", source, "--out", out, *ARGS, "--no-images")
    assert res.exit_code == 0, res.output
    assert _report(out)["counts"]["resumed"] == 3


# --- 2-4. frames ---------------------------------------------------------------------------------


def test_what_reads_a_build_tells_an_unfinished_one_to_finish(source, tmp_path, monkeypatch):
    """export, inspect, push and truth on a build interrupted before its shards: the same build command finishes
    it (its measured clips are kept), which "run `unimer build` first" did not say."""
    out = tmp_path / "unfinished"
    _interrupt_at_third_clip(monkeypatch)
    _cli("build", source, "--out", out, *ARGS)
    assert list((out / ".parts").glob("*.parquet")) and not (out / "data").exists()
    for args in (["export", out, "--to", "sharegpt", tmp_path / "export"], ["inspect", out, "--dest", tmp_path / "html"],
                 ["push", out, "a/b", "--dry-run"], ["truth", out, "--truth", source / "ground_truth.json"]):
        res = _cli(*args)
        assert res.exit_code == 2, (args[0], res.output)
        said = " ".join(res.output.split())
        assert "has not finished" in said and "same `unimer build` command again" in said, (args[0], said)


def test_a_build_left_with_one_subject_names_the_subjects_whose_clips_were_skipped(source, tmp_path):
    """Every clip of one subject skipped as measured (no face) left a build of one subject, whose note said "the
    label sheet names no other subject": the sheet names two."""
    root = _copy(source, tmp_path / "db")
    gone = [d for d in _clip_dirs(root) if d.parent.name != _clip_dirs(root)[0].parent.name]
    for d in gone:
        for f in _frames(d):
            cv2.imwrite(str(f), np.full(cv2.imread(str(f)).shape, 128, np.uint8))  # no face
    report = pipeline.build(root, tmp_path / "out", CFG, "casme2", workers=1)
    assert report["counts"]["built"] == len(_clip_dirs(root)) - len(gone) >= 2
    (note,) = report["notes"]
    assert note.endswith(f"the clips of {gone[0].parent.name!r} were all skipped (build_report.json says why)"), note


def test_truncated_and_corrupt_jpegs_do_not_decode(source, tmp_path):
    """Real JPEG files (the synthetic database's face frames, written by OpenCV) cut or damaged: OpenCV's
    ``imread`` (the builder's decoder before) returns an image for every one of them, grey where data is
    missing; strict decoding refuses them."""
    data = _frames(_clip_dirs(source)[0])[2].read_bytes()
    whole = decode_grey(data)
    assert np.array_equal(whole, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE))
    flipped = bytearray(data)
    for i in np.random.default_rng(0).integers(len(data) // 3, len(data) - 10, 12):
        flipped[i] ^= 0x55
    zeroed = bytearray(data)
    zeroed[len(data) // 2: len(data) // 2 + 500] = bytes(500)
    damaged = {"cut in half": data[: len(data) // 2], "last 100 bytes cut": data[:-100],
               "end marker cut": data[:-2], "bits flipped": bytes(flipped), "zeroed run": bytes(zeroed)}
    for what, bad in damaged.items():
        (tmp_path / "bad.jpg").write_bytes(bad)
        assert cv2.imread(str(tmp_path / "bad.jpg"), cv2.IMREAD_GRAYSCALE) is not None, what
        with pytest.raises(ValueError):
            decode_grey(bad)
    assert np.array_equal(decode_grey(data + bytes(64)), whole)  # padding after the end marker is harmless
    ok, png = cv2.imencode(".png", whole)
    with pytest.raises(ValueError):
        decode_grey(png.tobytes()[:-200])


def test_jpeg_frames_are_read_upright_by_their_exif_orientation(source):
    """A frame stored sideways or mirrored with an EXIF orientation tag (phones write them) is read as it
    displays, exactly as OpenCV reads it: simplejpeg alone returned it as stored, so a sideways face was no
    face and a mirrored one swapped its left and right AUs."""
    import io

    from PIL import Image

    face = decode_grey(_frames(_clip_dirs(source)[0])[2].read_bytes())
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        buf = io.BytesIO()
        Image.fromarray(face).save(buf, "JPEG", quality=95, exif=exif.tobytes())
        data = buf.getvalue()
        want = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
        got = decode_grey(data)
        assert got.shape == want.shape and np.array_equal(got, want), orientation
        if orientation > 1:
            assert got.shape != face.shape or not np.array_equal(got, decode_grey(data[:2] + data[2:].replace(
                b"Exif\x00\x00", b"Nope\x00\x00", 1))), orientation


def test_a_face_stored_sideways_is_named_in_the_no_face_reason(source, tmp_path):
    """A video stored sideways (no rotation tag) was skipped as "no face found" and nothing more."""
    from dataclasses import replace

    from unimer_builder.records import Clip
    from unimer_builder.tools import Tools

    clip = next(c for c in read_clips(source, "casme2") if isinstance(c, Clip))
    window = {n: p for n, p in clip.frames.items() if clip.onset <= n <= clip.offset}
    with Tools.create(CFG) as tools:
        for k, how in ((1, "90° clockwise"), (-1, "90° anticlockwise"), (2, "180°")):
            folder = tmp_path / f"turn{k}"
            folder.mkdir()
            for p in window.values():
                cv2.imwrite(str(folder / Path(p).name), np.rot90(cv2.imread(p), k))
            turned = replace(clip, frames={n: str(folder / Path(p).name) for n, p in window.items()})
            skip = pipeline.measure_clip(turned, CFG, tools)
            flipped = (" or, where the recording was flipped top to bottom rather than turned, flip it back: turned, "
                       "a flipped face stays mirrored, its left and right sides swapped") if k == 2 else ""
            assert skip.reason == "no_face" and skip.message.endswith(
                f"no face found upright in onset frame {clip.onset}; one is found with the frame turned {how}: "
                f"rotate the frames{flipped}"), skip
        first = cv2.imread(window[clip.onset])
        video = tmp_path / "sideways.avi"
        vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30, first.shape[:2])
        for n in sorted(window):
            vw.write(np.ascontiguousarray(np.rot90(cv2.imread(window[n]), 1)))
        vw.release()
        at_start = replace(clip, frames={}, video=str(video), onset=0, apex=None, offset=None)
        skip = pipeline.measure_clip(at_start, CFG, tools)
        assert skip.message.endswith("no face found upright in onset frame 0; one is found with the frame turned 90° "
                                     "clockwise: rotate the video losslessly (ffmpeg -i IN -vf transpose=1 -c:v ffv1 "
                                     "OUT.mkv)"), skip


def test_an_onset_frame_without_a_face_is_no_face_though_the_next_frames_hold_one(source, tmp_path, monkeypatch):
    """Where the detector misses the onset's face, a later frame's box is carried back (a head tilted back for a
    frame or two). An onset that holds no face at all (a black frame, noise, a flat picture, a title card before
    the face) must still be the onset's no_face: checked against the frame the face was found in, since the apex
    may come before it, be the onset itself, or be estimated on a faceless frame. A face the detector merely
    missed at the onset keeps a cut at the apex the apex's fault."""
    from dataclasses import replace

    from unimer_builder.face import FaceAligner
    from unimer_builder.records import Clip
    from unimer_builder.tools import Tools

    clip = next(c for c in read_clips(source, "casme2") if isinstance(c, Clip))
    window = {n: p for n, p in clip.frames.items() if clip.onset <= n <= clip.offset}
    ns = sorted(window)
    first = cv2.imread(window[clip.onset])
    card = np.full_like(first, 40)
    cv2.putText(card, "TITLE", (10, first.shape[0] // 2), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (230, 230, 230), 3)
    onsets = {"black": np.zeros_like(first), "noise": np.random.default_rng(0).integers(0, 256, first.shape, np.uint8),
              "flat": np.full_like(first, 200), "title": card}

    def frames_with(blank: dict[int, np.ndarray], name: str) -> dict[int, str]:
        folder = tmp_path / name
        folder.mkdir()
        for n, p in window.items():
            cv2.imwrite(str(folder / Path(p).name), blank[n] if n in blank else cv2.imread(p))
        return {n: str(folder / Path(p).name) for n, p in window.items()}

    with Tools.create(CFG) as tools:
        for kind, img in onsets.items():
            # the face first found two frames on; the apex before it, on the onset, or estimated
            frames = frames_with({ns[0]: img, ns[1]: img}, kind)
            for apex in (ns[1], ns[0], None):
                skip = pipeline.measure_clip(replace(clip, frames=frames, apex=apex), CFG, tools)
                assert (skip.reason, skip.file, skip.row, skip.field) == \
                    ("no_face", clip.source_file, clip.source_row, "onset"), (kind, apex, skip)
                assert re.search(re.escape(frames[ns[0]]) + f": no face found in onset frame {clip.onset}: the face "
                                 f"found in frame {ns[2]} does " r"not match it \(normalised correlation 0\.[0-7]\d\)$",
                                 skip.message), (kind, apex, skip)
        # an onset blurred past the detector still correlates with the face two frames on (0.93 for a 31 px Gaussian)
        # but holds no texture for the flow: no face the build can measure
        frames = frames_with({ns[0]: cv2.GaussianBlur(first, (31, 31), 0)}, "blurred")
        skip = pipeline.measure_clip(replace(clip, frames=frames), CFG, tools)
        assert (skip.reason, skip.field) == ("no_face", "onset") and re.search(
            rf"onset frame {clip.onset}: it is blurred \(its face's gradient energy is 0\.[0-4]\d of frame {ns[1]}'s",
            skip.message), skip
        # the onset's face missed by the detector, the apex a cut to black: the apex's no_face, as without the miss
        frames = frames_with({clip.apex: np.zeros_like(first)}, "cut")
        onset_grey = cv2.imread(frames[clip.onset], cv2.IMREAD_GRAYSCALE)
        real = FaceAligner._find

        def blind(self, grey):
            return (None, 0) if grey.shape == onset_grey.shape and np.array_equal(grey, onset_grey) else \
                real(self, grey)

        monkeypatch.setattr(FaceAligner, "_find", blind)
        skip = pipeline.measure_clip(replace(clip, frames=frames), CFG, tools)
        assert (skip.reason, skip.field) == ("no_face", "apex") and "does not match the onset's" in skip.message, skip


def test_a_truncated_video_is_built_from_its_whole_frames_with_a_note(source, tmp_path):
    """A video cut short was built without a word, its last frame that decoded (in part) used as a whole."""
    frames = _frames(_clip_dirs(source)[0])
    first = cv2.imread(str(frames[0]))
    vw = cv2.VideoWriter(str(tmp_path / "take.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 30, first.shape[1::-1])
    for f in frames:
        vw.write(cv2.imread(str(f)))
    vw.release()
    data = (tmp_path / "take.avi").read_bytes()
    (tmp_path / "take.avi").write_bytes(data[: int(len(data) * 0.5)])  # more frames lost than frames.MISCOUNT
    (tmp_path / "manifest.csv").write_text("path,onset,aus\ntake.avi,0,12\n")
    report = pipeline.build(tmp_path / "manifest.csv", tmp_path / "out", CFG, workers=1)
    ((note,),) = [n["notes"] for n in report["label_notes"]]
    assert note.startswith("the video's frames end at frame "), note
    assert f"records {len(frames)} (a truncated file" in note, note


def test_bad_frames_and_duplicate_frame_numbers_are_skips_naming_the_files(source, tmp_path):
    root = _copy(source, tmp_path / "db")
    a, b, c = _clip_dirs(root)
    truncated = _frames(a)[4]
    truncated.write_bytes(truncated.read_bytes()[:-300])
    odd = _frames(b)[3]
    cv2.imwrite(str(odd), cv2.resize(cv2.imread(str(odd)), (160, 216)))  # a 160x216 frame mid-clip
    first = _frames(c)[2]
    twin = first.with_name(f"img0{first.stem[3:]}.jpg")  # img2263.jpg and img02263.jpg
    shutil.copy(first, twin)
    out = tmp_path / "out"
    res = _cli("build", root, "--out", out, *ARGS)
    # every clip of this database is broken: nothing to write (exit 2), each skip listed with its reason
    assert res.exit_code == 2 and not out.exists(), res.output
    with pytest.raises(UnusableInput) as err:
        pipeline.build(root, out, CFG, "casme2", workers=1)
    assert not out.exists()
    skipped = {"/".join(s.clip_id.split("/")[-2:]): s for s in err.value.skipped}
    a, b, c = (f"{d.parent.name}/{d.name}" for d in (a, b, c))
    # the skip's file is the sheet whose row it gives; the frame is named in the message
    assert skipped[a].reason == "bad_frame" and skipped[a].file.endswith(".xlsx") and skipped[a].row is not None
    assert "does not decode completely" in skipped[a].message and str(truncated) in skipped[a].message
    assert skipped[b].reason == "bad_frame" and odd.name in skipped[b].message
    assert "160x216" in skipped[b].message
    dup = skipped[c]
    assert dup.reason == "duplicate_frame" and first.name in dup.message and twin.name in dup.message


# --- 5. environment failures: exit 3, one line ---------------------------------------------------


def _one_error_line(res, *needles: str) -> str:
    lines = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_output_path_that_is_a_file_or_under_a_file_exits_3(source, tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    res = _cli("build", source, "--out", f, *ARGS)
    assert res.exit_code == 3
    _one_error_line(res, str(f), "is a file")
    res = _cli("build", source, "--out", f / "out", *ARGS)
    assert res.exit_code == 3
    _one_error_line(res, str(f), "is a file")
    assert f.read_text() == "x"


def test_disk_full_exits_3_and_a_rerun_resumes(source, finished, tmp_path, monkeypatch):
    """ENOSPC raised where a part is written (the real thing, on a small filesystem: the next test)."""
    from unimer_builder import parts as parts_mod

    out = tmp_path / "out"
    real = parts_mod.write_part
    calls = {"n": 0}

    def full(parts_dir, clip_id, rows, fingerprint, extra=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(parts_dir))
        return real(parts_dir, clip_id, rows, fingerprint, extra)

    monkeypatch.setattr(parts_mod, "write_part", full)
    res = _cli("build", source, "--out", out, *ARGS)
    assert res.exit_code == 3
    _one_error_line(res, "No space left on device", str(out))
    monkeypatch.setattr(parts_mod, "write_part", real)
    res = _cli("build", source, "--out", out, *ARGS)
    # the part of the clip measured while the failed write ran (the output step overlaps the next clip) stays
    assert res.exit_code == 0 and 1 <= _report(out)["counts"]["resumed"] <= 2
    assert _digest(out) == _digest(finished)


ROFS_AND_FULL = r'''
import json, os, subprocess, sys
src, ref, out, limit = sys.argv[1:5]
def build(*extra):
    r = subprocess.run([sys.executable, "-m", "unimer_builder.cli", "build", src, "--out", out, "--format", "casme2",
                        "--workers", "1", "--seed", "7", "--composite", "labels", *extra], capture_output=True, text=True)
    return r.returncode, [l for l in r.stderr.splitlines() if l.startswith("error:")], "Traceback" in r.stderr
res = {}
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + limit, "tmpfs", out], check=True)
res["first"] = build("--limit", "1")  # a finished build of one clip: data/ to keep whole
filler = os.path.join(out, "filler")
with open(filler, "wb") as f:  # fill the disk, leaving a few KiB
    try:
        while True:
            f.write(b"\0" * 65536); f.flush()
    except OSError:
        pass
os.truncate(filler, max(0, os.path.getsize(filler) - 96 * 1024))
res["full"] = build()
import pyarrow.parquet as pq
res["data_after_full"] = sorted(os.listdir(os.path.join(out, "data")))
res["rows_after_full"] = pq.read_table(os.path.join(out, "data")).num_rows
res["hidden"] = sorted(n for n in os.listdir(out) if n.startswith(".data"))
os.remove(filler)
res["again"] = build()
import hashlib
dig = lambda d: {n: hashlib.sha256(open(os.path.join(d, n), "rb").read()).hexdigest() for n in sorted(os.listdir(d))}
res["same"] = dig(os.path.join(out, "data")) == dig(os.path.join(ref, "data"))
subprocess.run(["mount", "-o", "remount,ro", out], check=True)
res["ro"] = build()
print(json.dumps(res))
'''


def _namespace_ok() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux") or not shutil.which("unshare") or not _namespace_ok(),
                    reason="needs Linux user and mount namespaces (unshare -rm) for a small and a read-only filesystem")
def test_full_and_read_only_filesystems_exit_3_and_keep_data_whole(source, finished, tmp_path):
    """A real small filesystem (tmpfs in a private mount namespace): the disk fills mid-build, then the
    filesystem turns read-only."""
    out = tmp_path / "mnt"
    out.mkdir()
    script = tmp_path / "fill.py"
    script.write_text(ROFS_AND_FULL)
    r = subprocess.run(["unshare", "-rm", sys.executable, str(script), str(source), str(finished), str(out), "4m"],
                       capture_output=True, text=True, timeout=900, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["first"][0] == 0
    code, lines, tb = res["full"]
    assert code == 3 and len(lines) == 1 and not tb and "No space left on device" in lines[0], res["full"]
    assert res["data_after_full"] == ["train-00000-of-00001.parquet"] and res["rows_after_full"] == 4
    assert res["hidden"] == []  # no staging or old copy of data/ left
    assert res["again"][0] == 0 and res["same"], res
    code, lines, tb = res["ro"]
    assert code == 3 and len(lines) == 1 and not tb and "Read-only file system" in lines[0], res["ro"]


def test_unreadable_part_files_count_as_missing(source, finished, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = _interrupt_at_third_clip(monkeypatch)
    assert _cli("build", source, "--out", out, *ARGS).exit_code == 130
    monkeypatch.setattr(pipeline, "measure_clip", real)
    zero, cut = sorted((out / ".parts").glob("*.parquet"))
    zero.write_bytes(b"")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    res = _cli("build", source, "--out", out, *ARGS)
    assert res.exit_code == 0, res.output
    r = _report(out)
    assert r["counts"]["damaged_parts"] == 2 and r["counts"]["resumed"] == 0 and len(r["damaged_parts"]) == 2
    assert _digest(out) == _digest(finished)


# --- 6-8. one build per folder, workers, the data/ swap -------------------------------------------


def test_a_second_build_into_a_held_folder_exits_3_naming_the_holder(source, tmp_path):
    from unimer_builder.output import claim

    out = tmp_path / "out"
    with claim(out):
        for _ in range(2):  # a refused build leaves the holder's name for the next one
            res = _cli("build", source, "--out", out, *ARGS)
            assert res.exit_code == 3
            _one_error_line(res, str(out), f"pid {os.getpid()}", "another build")
    assert not (out / ".parts").exists() and not (out / "data").exists()
    assert (out / ".unimer.lock").read_text() == ""  # and the holder's, once it is done, names no build


def test_pool_workers_exit_when_the_build_is_killed(tmp_path):
    """Killed a few seconds into the workers' work, the build's workers exit too. Twelve clips: the module's three
    were built in under 4 s of the workers' start on an idle machine, and the test found no worker to watch."""
    from unimer_builder import synthesize

    psutil = pytest.importorskip("psutil")
    source = synthesize(tmp_path / "src", "casme2", clips=12, subjects=2, seed=5, frames=8)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "unimer_builder.cli", "build", str(source), "--out", str(out),
                             *map(str, ARGS[:2]), "--workers", "2", "--composite", "labels"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.time() + 120
        kids: list = []
        while time.time() < deadline:  # both workers started, and a few seconds into their work
            kids = [k for k in parent.children(recursive=True) if "resource_tracker" not in " ".join(k.cmdline())]
            if len(kids) >= 2 and time.time() - min(k.create_time() for k in kids) > 4:
                break
            time.sleep(0.2)
        assert len(kids) >= 2, "the pool did not start"
        everyone = parent.children(recursive=True)
        proc.kill()
        proc.wait()
        gone, alive = psutil.wait_procs(everyone, timeout=20)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_kill_between_the_two_renames_of_the_swap_is_repaired(source, finished, tmp_path, monkeypatch):
    out = _copy(finished, tmp_path / "out")
    os.rename(out / "data", out / ".data.old-4242")  # killed after the first rename
    (out / ".data.tmp-4242").mkdir()
    (out / ".data.tmp-4242" / "train-00000-of-00001.parquet").write_bytes(b"half")
    _no_measuring(monkeypatch)
    res = _cli("build", source, "--out", out, *ARGS)
    assert res.exit_code == 0 and "up to date" in res.output
    assert _digest(out) == _digest(finished)
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".data")) == []


def test_a_build_that_fails_describing_its_new_shards_leaves_the_old_build_whole(source, finished, tmp_path,
                                                                                  monkeypatch):
    """The report and the card were made after the new shards were swapped in: a failure or a kill there (the card
    reads every shard) left the new data under the old card and report until a re-run."""
    from unimer_builder import card

    out = _copy(finished, tmp_path / "out")
    before = _digest(out, ("data", "README.md", "build_report.json"))

    def fail(*a, **k):
        raise RuntimeError("killed while the card was made")

    monkeypatch.setattr(card, "_shard_stats", fail)
    with pytest.raises(RuntimeError, match="killed while"):
        pipeline.build(source, out, CFG.with_(**{"text.seed": 8}), "casme2", workers=1)
    assert _digest(out, ("data", "README.md", "build_report.json")) == before
    monkeypatch.undo()
    pipeline.build(source, out, CFG.with_(**{"text.seed": 8}), "casme2", workers=1)
    after = _digest(out, ("data", "README.md", "build_report.json"))
    assert after["README.md"] != before["README.md"] and after != before


# --- 9-11. publishing -----------------------------------------------------------------------------


def test_build_without_images_leaves_out_every_face_pixel_column(source, finished, tmp_path, monkeypatch):
    import datasets

    from unimer_builder.shards import FACE_COLUMNS

    out = tmp_path / "out"
    assert pipeline.build(source, out, CFG, "casme2", workers=1, images=False)["counts"]["built"] == 3
    ds = datasets.load_dataset(str(out), split="train")
    assert not set(FACE_COLUMNS) & set(ds.column_names)
    full = pq.read_table(finished / "data")
    assert ds.num_rows == full.num_rows and "flow" in ds.column_names
    card = (out / "README.md").read_text()
    assert "No face images" in card and all(f"`{c}`" in card for c in FACE_COLUMNS)
    assert "aligned grey face crops" not in card and "No face images" not in (finished / "README.md").read_text()


def test_report_paths_are_relative_to_the_database_root(source, tmp_path):
    root = _copy(source, tmp_path / "db")
    shutil.rmtree(_clip_dirs(root)[0])
    out = tmp_path / "out"
    assert _cli("build", root, "--out", out, *ARGS).exit_code == 1
    text = (out / "build_report.json").read_text()
    assert str(tmp_path) not in text and str(Path.home()) + "/" not in text
    r = json.loads(text)
    assert r["root"] == "db" and r["synthetic"] == "default"
    assert r["skipped"][0]["message"].startswith("CASME2-coding") and "CASME2_RAW_selected/sub01" in r["skipped"][0]["message"]
    assert "synthetic" in (out / "README.md").read_text().lower()


def test_16_bit_frames_are_read_by_the_bits_they_use_and_float_frames_are_refused_by_name(source, tmp_path):
    """A 12-bit camera's frames saved as 16-bit PNGs use the low 12 bits: OpenCV's grey decoding drops the low
    8 and left them black (0-15, no face found). Each clip's frames share one scale, from the first frame read,
    so that a darker frame stays darker. A 32-bit float TIFF was "does not decode completely"."""
    from unimer_builder.records import Clip
    from unimer_builder.sources.frames import FrameReader, UnsupportedSamples

    face = decode_grey(_frames(_clip_dirs(source)[0])[2].read_bytes())
    for bits in (12, 16):
        ok, png = cv2.imencode(".png", face.astype(np.uint16) << (bits - 8))
        assert np.array_equal(decode_grey(png.tobytes()), face), bits
    darker = (face // 2).astype(np.uint16) << 4
    paths = {}
    for n, img in ((0, face.astype(np.uint16) << 4), (1, darker)):
        paths[n] = str(tmp_path / f"img{n}.png")
        cv2.imwrite(paths[n], img)
    clip = Clip(database="manifest", subject="s", clip="c", onset=0, apex=1, offset=1, frames=paths)
    reader = FrameReader(clip)
    assert np.array_equal(reader.get(0), face) and np.array_equal(reader.get(1), face // 2)
    ok, tif = cv2.imencode(".tiff", face.astype(np.float32) / 255)
    with pytest.raises(UnsupportedSamples, match="32-bit floating point"):
        decode_grey(tif.tobytes())


def test_a_folder_no_build_wrote_is_refused_and_left_as_it_was(source, tmp_path):
    """`--out .` from a project folder, or the manifest's own folder: a build replaces OUT/data/ and OUT/README.md
    whole, and a researcher's source videos under data/ were deleted so (exit 0, no word)."""
    project = tmp_path / "study"
    (project / "data" / "videos").mkdir(parents=True)
    (project / "data" / "videos" / "P01_take1.mp4").write_bytes(b"not really a video")
    (project / "README.md").write_text("my study")
    before = {p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file()}
    res = _cli("build", source, "--out", project, *ARGS)
    assert res.exit_code == 2
    _one_error_line(res, str(project), "no build wrote", "README.md", "data")
    after = {p.relative_to(project): p.read_bytes() for p in project.rglob("*") if p.is_file()}
    assert after == before
    # an empty folder, and an earlier build's, are the build's to write
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _cli("build", source, "--out", empty, *ARGS, "--limit", 1).exit_code in (0, 1)
    assert (empty / "build_report.json").is_file()
    assert _cli("build", source, "--out", empty, *ARGS, "--limit", 1).exit_code in (0, 1)


def test_a_video_upside_down_is_told_both_fixes_a_turn_and_a_flip():
    """A video flipped top to bottom (not turned) shows its face upside down as a turned one does, and dlib cannot tell
    them apart: told only to turn it 180°, it would be built mirrored, its left and right AUs swapped."""
    from unimer_builder.evidence import _turn_hint
    from unimer_builder.records import Clip

    clip = Clip(database="manifest", subject="s", clip="c", onset=0, apex=None, offset=None, video="/v/c.mp4",
                source_file="/v/manifest.csv", source_row=2)
    hint = _turn_hint(clip, "180°")
    assert "ffmpeg -i IN -vf hflip,vflip -c:v ffv1 OUT.mkv" in hint and "flip it back (-vf vflip)" in hint
    assert "vflip)" not in _turn_hint(clip, "90° clockwise")
