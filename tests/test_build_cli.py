"""End to end: `unimer synth` + `unimer build` on a small synthetic database, as a user runs them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from unimer_builder.cli import app

runner = CliRunner()

DOCUMENTED = [
    "id", "clip_id", "database", "subject", "clip", "onset_frame", "apex_frame", "offset_frame", "apex_source",
    "fps", "duration_s", "duration_class", "emotion", "emotion_composite", "emotion_class", "class_set", "au_text", "aus", "au_unparsed",
    "aus_source", "aus_supported", "regions", "verdicts", "unexplained", "au_sources", "noise_floor", "noise_spread",
    "blinks",
    "moved_regions",
    "head_motion", "flagged", "flag_reasons", "task", "template_id", "instruction", "answer", "messages",
    "onset_image", "apex_image", "frames", "stack_frames", "flow", "flow_image", "landmarks", "crop_size",
    "config_fingerprint",
]


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casme2")
    res = _run("synth", root, "--format", "casme2", "--clips", 6, "--subjects", 2, "--seed", 3, "--frames", 10)
    assert res.exit_code == 0, res.output
    return root


@pytest.fixture(scope="module")
def built(source, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built")
    res = _run("build", source, "--format", "casme2", "--out", out, "--workers", 1, "--seed", 7, "--composite", "labels")
    assert res.exit_code == 0, res.output
    return out


def _digest(out: Path) -> str:
    """Hash of the shard files, in order: the same rows give the same bytes."""
    h = hashlib.sha256()
    for p in sorted((out / "data").glob("*.parquet")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


def test_build_loads_with_datasets(built):
    import datasets

    ds = datasets.load_dataset(str(built), split="train")
    assert len(ds) == 6 * 4  # 6 clips x 4 tasks
    assert set(DOCUMENTED) <= set(ds.column_names)
    row = ds[0]
    assert row["onset_image"].size == (224, 224)
    assert np.asarray(row["flow"], dtype=np.float32).shape[0] == 3
    assert row["messages"][0]["role"] == "user" and row["messages"][-1]["content"] == row["answer"]
    report = json.loads((built / "build_report.json").read_text())
    assert report["counts"]["built"] == 6 and report["counts"]["skipped"] == 0
    # a database `unimer synth` wrote is not the MEGC2019 release itself: built with --composite labels
    from unimer_builder import labels

    assert report["config"]["text"]["composite"] == "labels"
    assert ds["emotion_composite"] == [labels.composite("casme2", e) for e in ds["emotion"]]
    assert report["counts"]["beyond_micro"] == 0 and set(ds["duration_class"]) == {"micro"}
    assert (built / "README.md").read_text().startswith("---")
    assert not (built / ".parts").exists()


def test_same_seed_same_rows_any_worker_count(source, built, tmp_path):
    out = tmp_path / "again"
    res = _run("build", source, "--format", "casme2", "--out", out, "--workers", 2, "--seed", 7, "--composite", "labels")
    assert res.exit_code == 0, res.output
    assert _digest(out) == _digest(built)


def test_killed_build_resumes_to_the_same_rows(source, built, tmp_path, monkeypatch):
    from unimer_builder import pipeline

    out = tmp_path / "resumed"
    real = pipeline.measure_clip
    calls = {"n": 0}

    def dying(clip, cfg, tools):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the user's Ctrl-C while the fourth clip is measured
        return real(clip, cfg, tools)

    monkeypatch.setattr(pipeline, "measure_clip", dying)
    res = _run("build", source, "--format", "casme2", "--out", out, "--workers", 1, "--seed", 7, "--composite", "labels")
    assert res.exit_code != 0  # click turns the interrupt into "Aborted!", exit 1
    assert not (out / "data").exists() and not (out / "build_report.json").exists()
    assert len(list((out / ".parts").glob("*.parquet"))) == 3
    monkeypatch.setattr(pipeline, "measure_clip", real)
    res = _run("build", source, "--format", "casme2", "--out", out, "--workers", 1, "--seed", 7, "--composite", "labels")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "build_report.json").read_text())["counts"]["resumed"] == 3
    assert _digest(out) == _digest(built)


def test_the_sheet_read_is_named_and_a_second_one_beside_it_rebuilds(source, tmp_path):
    """The build named neither the label sheet nor the frames it read (two codings of CASME II differ), a sheet given
    as the root made the report's root its file name (a synthetic database then read as the release, with its
    licence gate), and a rebuild was "up to date" after the sheet changed or another appeared beside it."""
    root = tmp_path / "db"
    shutil.copytree(source, root)
    sheet = next(root.glob("CASME2-coding-*.xlsx"))
    out = tmp_path / "out"
    res = _run("build", sheet, "--out", out, "--workers", 1, "--composite", "labels")  # its format told by its name
    assert res.exit_code == 0, res.output
    report = json.loads((out / "build_report.json").read_text())
    assert report["inputs"] == {"label_file": sheet.name, "frames": "CASME2_RAW_selected",
                                "label_sha256": hashlib.sha256(sheet.read_bytes()).hexdigest()}
    assert (report["root"], report["synthetic"]) == ("db", "default")
    assert f"{sheet.name} (sha256 {report['inputs']['label_sha256'][:12]})" in res.output
    assert f"Labels read from `{sheet.name}` (SHA-256 `{report['inputs']['label_sha256']}`" in \
        (out / "README.md").read_text()
    again = _run("build", sheet, "--out", out, "--workers", 1, "--composite", "labels")
    assert again.exit_code == 0 and "up to date" in again.output, again.output  # unchanged: nothing rebuilt
    res = _run("build", root, "--out", out, "--workers", 1, "--composite", "labels")  # the folder: another root
    assert res.exit_code == 0 and "up to date" not in res.output, res.output
    res = _run("build", root, "--out", out, "--workers", 1, "--composite", "labels")
    assert res.exit_code == 0 and "up to date" in res.output, res.output
    shutil.copy(sheet, root / "CASME2-coding-20140508.xlsx")  # an older coding beside it: no longer up to date
    res = _run("build", root, "--out", out, "--workers", 1, "--composite", "labels")
    assert res.exit_code == 0, res.output
    report = json.loads((out / "build_report.json").read_text())
    assert not report.get("up_to_date") and report["counts"]["resumed"] == report["counts"]["built"]
    assert any("also present, not read: CASME2-coding-20140508.xlsx" in n for n in report["notes"]), report["notes"]
    # with the official list (the default), a clip it names whose label maps otherwise is noted: the synthetic
    # sub01/EP02_01f is "repression", the release's happiness
    res = _run("build", root, "--out", tmp_path / "official", "--workers", 1)
    assert res.exit_code == 0, res.output
    notes = {n["clip_id"]: n["notes"] for n in
             json.loads((tmp_path / "official" / "build_report.json").read_text())["label_notes"]}
    assert notes["casme2/sub01/EP02_01f"] == [
        "the official MEGC2019 list classes this clip positive, where its label 'repression' maps to negative: the "
        "list's class is used (a copy of the label sheet that differs from the release's?)"], notes


def test_bad_clips_are_skipped_and_reported(source, tmp_path):
    root = tmp_path / "broken"
    shutil.copytree(source, root)
    clips = sorted(p for p in (root / "CASME2_RAW_selected").glob("sub*/*") if p.is_dir())
    # One clip whose onset frame shows no face (a grey frame of another size: the search of the next frames for a
    # face ends at the first, which does not match its size, and the onset's own no_face is the reason), one whose
    # last frame is not an image.
    onset = min(clips[0].glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
    cv2.imwrite(str(onset), np.full((240, 240), 128, np.uint8))
    offset = max(clips[1].glob("img*.jpg"), key=lambda p: int(p.stem[3:]))
    offset.write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    res = _run("build", root, "--format", "casme2", "--out", out, "--workers", 1)
    assert res.exit_code == 1, res.output
    report = json.loads((out / "build_report.json").read_text())
    reasons = {s["reason"]: s for s in report["skipped"]}
    assert set(reasons) == {"no_face", "bad_frame"}
    # each names the sheet's row, and the frame at fault in its message
    assert reasons["no_face"]["field"] == "onset" and reasons["no_face"]["file"].startswith("CASME2-coding")
    assert reasons["no_face"]["row"] is not None and onset.name in reasons["no_face"]["message"]
    assert reasons["bad_frame"]["file"].startswith("CASME2-coding") and offset.name in reasons["bad_frame"]["message"]
    assert report["counts"]["built"] == 4
    assert all(s["message"] and s["file"] for s in report["skipped"])


def test_unusable_input_exits_2(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _run("build", empty, "--format", "casme2", "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert "empty" in res.output or "no " in res.output.lower()
    res = _run("build", tmp_path / "nowhere", "--format", "samm", "--out", tmp_path / "o")
    assert res.exit_code == 2
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "windows.csv").write_text("path,onset\n")
    res = _run("build", tmp_path / "mine", "--out", tmp_path / "o")  # a manifest of another name
    assert res.exit_code == 2 and "--format manifest" in res.output
    (tmp_path / "mine" / "windows.csv").write_text("path,onset\nnowhere.mp4,3\n")
    res = _run("build", tmp_path / "mine" / "windows.csv", "--format", "manifest", "--out", tmp_path / "o")
    assert res.exit_code == 2 and "no usable clips found (1 row skipped)" in " ".join(res.output.split())


@pytest.mark.parametrize("option", [("--crop-size", "0"), ("--crop-size", "16"), ("--workers", "-2"), ("--limit", "0")])
def test_option_values_out_of_range_exit_2_without_a_traceback(source, tmp_path, option):
    """--crop-size 0 crashed in the rigid fit with a traceback (exit 1); --workers -2 and --limit -1 were taken.
    The message names the option given, not the setting behind it (``face.crop_size``)."""
    res = _run("build", source, "--format", "casme2", "--out", tmp_path / "o", *option)
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert option[0] in res.output and "crop_size" not in res.output, res.output
    assert not (tmp_path / "o").exists()


def test_drop_policy_removes_unsupported_samples(source, tmp_path):
    out = tmp_path / "drop"
    res = _run("build", source, "--format", "casme2", "--out", out, "--workers", 1, "--policy", "drop")
    assert res.exit_code == 0, res.output
    report = json.loads((out / "build_report.json").read_text())
    assert report["config"]["text"]["composite"] == "official"  # the default, whatever the database's origin
    rows = sum(pq.read_metadata(p).num_rows for p in (out / "data").glob("*.parquet"))
    assert rows == 4 * (6 - report["counts"]["dropped_by_policy"])
    flagged = [r for p in (out / "data").glob("*.parquet") for r in pq.read_table(p, columns=["flagged"]).column(0).to_pylist()]
    assert not any(flagged)


def _editable_copy(source: Path, root: Path):
    """A copy of the synthetic database and its coding sheet opened for editing: (root, sheet, workbook, its
    first worksheet, the header's column names)."""
    import openpyxl

    shutil.copytree(source, root)
    sheet = next(root.glob("CASME2-coding*.xlsx"))
    wb = openpyxl.load_workbook(sheet)
    ws = wb.worksheets[0]
    return root, sheet, wb, ws, [c.value for c in ws[1]]


def test_a_drop_policy_that_drops_every_clip_exits_2_instead_of_writing_a_shard_nothing_loads(source, tmp_path):
    """Every clip contradicting its label under --policy drop wrote a shard of one empty row group and exit 0:
    `datasets` cannot load it ("BatchSize must be greater than 0"; a split of no rows is no split), and the card
    described nothing. It is an unusable input now, as when no clip can be built, saying what to do."""
    root, sheet, wb, ws, header = _editable_copy(source, tmp_path / "wrong")
    truth = {c["clip_id"]: {r for p in c["planted"] for r in p["regions"]}
             for c in json.loads((root / "ground_truth.json").read_text())["clips"]}
    for row in range(2, ws.max_row + 1):  # a label each clip does not move: contradicted
        subject, name = (ws.cell(row=row, column=header.index(k) + 1).value for k in ("Subject", "Filename"))
        moved = truth[f"casme2/sub{int(subject):02d}/{name}"]
        wrong = "15" if any(r.startswith("brow") for r in moved) else "1+2"
        ws.cell(row=row, column=header.index("Action Units") + 1, value=wrong)
    wb.save(sheet)
    out = tmp_path / "out"
    res = _run("build", root, "--format", "casme2", "--out", out, "--workers", 1, "--policy", "drop")
    assert res.exit_code == 2, res.output
    said = " ".join(res.output.split())
    assert "dropped every one of the 6 clips built" in said and "--policy flag" in said and "Traceback" not in said
    assert not (out / "data").exists() and not (out / "README.md").exists() and not (out / ".parts").exists()
    res = _run("build", root, "--format", "casme2", "--out", out, "--workers", 1, "--policy", "flag")
    assert res.exit_code == 0 and not (out / ".parts").exists(), res.output  # the same clips, kept and marked


def test_the_report_names_files_alike_whether_the_root_was_typed_relative_or_absolute(tmp_path, monkeypatch):
    """A root typed relative (`db/manifest.csv`) left `db/manifest.csv, row 3` in the published report where an
    absolute one gave `manifest.csv, row 3`: the report's text depended on the folder the build was run from."""
    db = tmp_path / "db"
    assert _run("synth", db, "--format", "manifest", "--clips", 1, "--subjects", 1, "--frames", 8).exit_code == 0
    with (db / "manifest.csv").open("a") as f:
        f.write("nowhere.mp4,3,4,5,12,,S9,c9,30\n")
    header = (db / "manifest.csv").read_text().splitlines()[0]
    assert header.split(",")[:4] == ["path", "onset", "apex", "offset"], header  # the row above fits the columns
    monkeypatch.chdir(tmp_path)
    skipped = []
    for root, out in (("db/manifest.csv", "rel"), (str(db / "manifest.csv"), "abs")):
        res = _run("build", root, "--format", "manifest", "--out", out, "--workers", 1, "--composite", "labels")
        assert res.exit_code == 1, res.output
        skipped.append(json.loads((tmp_path / out / "build_report.json").read_text())["skipped"])
    assert skipped[0] == skipped[1] and len(skipped[0]) == 1
    assert skipped[0][0]["file"] == "manifest.csv" and "db/" not in json.dumps(skipped[0]), skipped[0]


def test_bad_rows_are_reported_with_file_row_and_field(source, tmp_path):
    root, sheet, wb, ws, header = _editable_copy(source, tmp_path / "badrows")
    ws.cell(row=2, column=header.index("Action Units") + 1, value="4+99")  # no such AU
    ws.cell(row=3, column=header.index("OnsetFrame") + 1, value=99999)  # outside the clip
    wb.save(sheet)
    out = tmp_path / "out"
    res = _run("build", root, "--format", "casme2", "--out", out, "--workers", 1)
    assert res.exit_code == 1, res.output
    report = json.loads((out / "build_report.json").read_text())
    skipped = {s["row"]: s for s in report["skipped"]}
    assert skipped[2]["reason"] == "unknown_au" and skipped[2]["field"] == "Action Units"
    assert skipped[3]["reason"] == "frames_out_of_range" and skipped[3]["field"] == "OnsetFrame"
    assert all(sheet.name in s["file"] for s in skipped.values())
    assert report["counts"]["built"] == 4


def test_readme_demo_command_exits_cleanly(tmp_path):
    """The README's main job as a user runs it, in its own process: synth, build (process pool), score.

    It aborted at interpreter exit ("terminate called without an active exception"), about one run in ten
    under load, while shards were read through pyarrow.dataset (``pq.read_table``): one of Arrow's threads
    dropped the last reference to the schema's Python extension type after the interpreter had begun to
    exit (shards.read_shard; tests/test_shards.py). A subprocess is what catches that.
    """
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "unimer_builder.cli", "demo", str(tmp_path / "demo"), "--clips", "4",
                          "--subjects", "2"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "datasets.load_dataset" in res.stderr
    assert "train on it: deft train --data" in " ".join(res.stderr.split())  # the next step, for a new user
    assert (tmp_path / "demo" / "unimer" / "build_report.json").exists()


def test_the_summary_says_how_many_skips_it_leaves_out_and_counts_in_the_singular():
    """A new user's build hid its 11th skip ("past_end") with no hint that the list went on; "1 clips built"."""
    from unimer_builder.cli import _n, _print_skips, console

    with console.capture() as cap:
        _print_skips([{"clip_id": f"m/s/c{i}", "message": "no face"} for i in range(12)])
    out = cap.get()
    assert "m/s/c9: no face" in out and "m/s/c10" not in out and "... and 2 more" in out
    assert _n(1, "clip") == "1 clip" and _n(2, "clip") == "2 clips" and _n(0, "clip") == "0 clips"


def test_help_texts_are_plain_words_and_every_option_is_explained():
    """`unimer --help` showed the module's developer docstring (``unimer``, :class:`BuildConfig`,
    :func:`...`), `deft predict --help` ``sources``; `unimer demo`'s options, `deft predict`'s --run, --onset,
    --apex and --offset, and several of `deft train`'s and `deft evaluate`'s had no help at all."""
    import re

    import typer

    from deft_model.cli import app as deft_app

    for prog, a in (("unimer", app), ("deft", deft_app)):
        group = typer.main.get_command(a)
        texts = {prog: group.help or ""}
        for name, cmd in group.commands.items():
            texts[f"{prog} {name}"] = cmd.help or ""
            for p in cmd.params:
                if p.name != "help":
                    assert getattr(p, "help", None), f"{prog} {name}: {p.opts[0]} has no help"
                    texts[f"{prog} {name} {p.opts[0]}"] = p.help
        for where, text in texts.items():
            assert not re.search(r"``|:(class|func|data|meth|mod):`", text), (where, text)
    shown = CliRunner().invoke(app, ["--help"], terminal_width=120).output
    assert "BuildConfig" not in shown and "this module" not in shown and "synth" in shown


def test_synth_and_demo_refuse_bad_arguments_in_one_line(tmp_path):
    """`unimer demo DIR --clips 0`, `--format foo`, `--seed -1` and `unimer synth FILE` printed tracebacks."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for args, says in ((["demo", tmp_path / "d", "--clips", "0"], "clips and subjects must be at least 1"),
                       (["demo", tmp_path / "d", "--format", "foo"], "unknown format 'foo'"),
                       (["demo", tmp_path / "d", "--seed", "-1"], "the seed must be 0 or more, not -1"),
                       (["demo", a_file], "is a file, not a folder"),
                       (["synth", a_file, "--clips", "2"], "it is a file, not a folder"),
                       (["synth", tmp_path / "s", "--seed", "-1"], "the seed must be 0 or more"),
                       (["synth", tmp_path / "s", "--framing", "cropped"], "--framing needs --profile hard"),
                       (["synth", tmp_path / "s", "--profile", "hard", "--framing", "tight"],
                        "unknown framing 'tight'; choose one of frame, cropped")):
        res = runner.invoke(app, [str(a) for a in args])
        assert res.exit_code == 2 and says in res.output, (args, res.output, res.exception)
    assert not (tmp_path / "d" / "source").exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("fault,says", [
    ("syntax", "au.j2: cannot load template: TemplateSyntaxError"),
    ("missing", "motion.j2: cannot load template: TemplateNotFound"),
    ("undefined", "explain.j2: variant 0 cannot be rendered: UndefinedError"),
    ("no_variants", "explain.j2: template must define 'n_variants'"),
])
def test_a_broken_template_stops_the_build_before_any_clip(tmp_path, fault, says):
    """A template with a syntax error or a missing file exited 3 (an "environment failure") naming the output folder
    and left .parts and a lock; one naming an undefined variable printed a traceback after some clips were written."""
    from unimer_builder import synthesize
    from unimer_builder.config import TextConfig

    tpl = tmp_path / "tpl"
    shutil.copytree(TextConfig().folder, tpl)
    if fault == "syntax":
        (tpl / "au.j2").write_text((tpl / "au.j2").read_text() + "{% if %}")
    elif fault == "missing":
        (tpl / "motion.j2").unlink()
    elif fault == "undefined":
        (tpl / "explain.j2").write_text((tpl / "explain.j2").read_text().replace("{{ c.kind }}", "{{ c.no_such }}"))
    else:
        text = (tpl / "explain.j2").read_text()
        assert "{% set n_variants = 3 %}" in text
        (tpl / "explain.j2").write_text(text.replace("{% set n_variants = 3 %}", ""))
    src = synthesize(tmp_path / "src", "casme2", clips=1, subjects=1, seed=1, frames=4)
    res = runner.invoke(app, ["build", str(src), "--out", str(tmp_path / "out"), "--format", "casme2", "--workers",
                              "1", "--templates", str(tpl)])
    lines = res.output.splitlines()  # one line: no progress bar started, no blank lines around it
    assert res.exit_code == 2 and len(lines) == 1 and says in lines[0], res.output
    assert not (tmp_path / "out").exists()


def test_a_folder_of_two_databases_sheets_is_not_built_as_one_of_them_unasked(tmp_path):
    """A folder holding a CASME II and a SAMM sheet was built as CASME II, saying nothing of the SAMM clips."""
    from unimer_builder import synthesize

    mix = tmp_path / "mix"
    mix.mkdir()
    for fmt in ("casme2", "samm"):
        src = synthesize(tmp_path / fmt, fmt, clips=2, subjects=1, seed=1, frames=4)
        for p in src.iterdir():
            if p.name != "ground_truth.json":
                (shutil.copytree if p.is_dir() else shutil.copy)(p, mix / p.name)
    res = runner.invoke(app, ["build", str(mix), "--out", str(tmp_path / "out"), "--workers", "1"])
    assert res.exit_code == 2 and "holds the label sheets of casme2 and samm" in res.output, res.output
    assert "--format casme2|samm" in res.output and not (tmp_path / "out").exists()
    res = runner.invoke(app, ["build", str(mix), "--out", str(tmp_path / "out"), "--workers", "1", "--format", "samm",
                              "--composite", "labels"])
    assert res.exit_code == 0, res.output
    # a database's sheet given as a manifest: its columns were listed as near misses of a manifest's
    sheet = next(mix.glob("CASME2-coding-*.xlsx"))
    res = runner.invoke(app, ["build", str(sheet), "--format", "manifest", "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "is a casme2 label sheet by its name, not a manifest: build it with --format " \
        "casme2" in " ".join(res.output.split()), res.output


def test_a_limited_build_and_a_small_synth_say_what_they_did(tmp_path):
    """`--limit 1` reported every official clip it did not look at as "not found"; `synth --clips 2 --subjects 5` said
    "5 subjects" where 2 were written."""
    res = runner.invoke(app, ["synth", str(tmp_path / "db"), "--clips", "2", "--subjects", "5", "--frames", "4"])
    assert res.exit_code == 0 and "wrote 2 casme2 clips of 2 subjects" in " ".join(res.output.split()), res.output
    res = runner.invoke(app, ["build", str(tmp_path / "db"), "--out", str(tmp_path / "out"), "--limit", "1",
                              "--workers", "1"])
    said = " ".join(res.output.split())
    official = json.loads((tmp_path / "out" / "build_report.json").read_text())["official_composite"]
    assert res.exit_code == 0 and official["beyond_limit"] == [] and len(official["missing"]) == official["listed"]
    assert "not looked at" not in said and "were not found" in said  # no official clip is in this database at all
