"""`unimer export`: every row, picture and answer read back the way each consumer reads it.

LLaMA-Factory itself does not install beside this project's stack (0.9.5 needs torchaudio, torchvision,
transformers <= 5.6 and datasets <= 4.0), so its loading is reproduced from its documented rules
(``data/README.md`` and ``src/llamafactory/data``: ``dataset_info.json`` attributes, the sharegpt
converter's role alternation, one ``<image>`` per image, image paths under ``media_dir`` = the
dataset_dir), with the data file read by ``datasets.load_dataset("json")`` as LLaMA-Factory does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from unimer_builder import facs, shards
from unimer_builder.cli import app
from unimer_builder.export import IMAGE_TOKEN, MEGC_QUESTIONS

runner = CliRunner()
COLUMNS = ["id", "clip_id", "database", "subject", "clip", "task", "instruction", "answer", "emotion",
           "emotion_composite", "aus_supported", "onset_image", "apex_image", "flow_image"]


@pytest.fixture(scope="module")
def rows(small_build) -> list[dict]:
    return shards.read_shards(small_build, columns=COLUMNS).to_pylist()


def _export(out: Path, fmt: str, dest: Path, *extra: str) -> dict:
    res = runner.invoke(app, ["export", str(out), "--to", fmt, str(dest), *extra], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return json.loads((dest / "export.json").read_text())


def _check_images(dest: Path, paths: list[str], row: dict, kinds=("onset", "apex", "flow")) -> None:
    assert len(paths) == len(kinds)
    for p, k in zip(paths, kinds, strict=True):
        f = dest / p
        assert f.read_bytes() == row[f"{k}_image"]["bytes"], (row["id"], k)
        with Image.open(f) as im:
            im.load()
            assert im.size[0] > 0 and im.mode == ("RGB" if k == "flow" else "L")


def test_sharegpt_round_trip(small_build, rows, tmp_path):
    import datasets

    dest = tmp_path / "sharegpt"
    manifest = _export(small_build, "sharegpt", dest)
    ds = datasets.load_dataset("json", data_files=str(dest / "sharegpt.json"), split="train")
    assert manifest["rows"] == len(ds) == len(rows)
    by_id = {r["id"]: r for r in rows}
    for rec in ds:
        row = by_id.pop(rec["id"])
        human, gpt = rec["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt"
        assert human["value"].startswith(IMAGE_TOKEN * 3) and human["value"].endswith(row["instruction"])
        assert gpt["value"] == row["answer"]
        _check_images(dest, rec["images"], row)
    assert not by_id  # every row came back
    assert manifest["images"] == 3 * len({r["clip_id"] for r in rows}) == len(list(dest.rglob("*.png")))


def _llamafactory_load(dataset_dir: Path, name: str) -> list[dict]:
    """LLaMA-Factory's reading of a local sharegpt dataset, reduced to its documented checks."""
    import datasets

    info = json.loads((dataset_dir / "dataset_info.json").read_text())
    attr = info[name]  # "Undefined dataset" otherwise
    assert attr["formatting"] == "sharegpt" and not attr.get("ranking", False)
    assert not {"hf_hub_url", "ms_hub_url", "script_url"} & set(attr)  # a local file
    cols = {"messages": "conversations", **attr.get("columns", {})}
    tags = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
            **attr.get("tags", {})}
    data_file = dataset_dir / attr["file_name"]
    assert data_file.suffix in (".json", ".jsonl")
    ds = datasets.load_dataset("json", data_files=str(data_file), split="train")
    out = []
    for ex in ds:
        msgs = ex[cols["messages"]]
        assert len(msgs) % 2 == 0  # "Invalid message count"
        for turn, m in enumerate(msgs):  # "Invalid role tag": user, assistant, user, ...
            assert m[tags["role_tag"]] == (tags["user_tag"], tags["assistant_tag"])[turn % 2]
        images = ex[cols["images"]] if "images" in cols else []
        n_tokens = sum(m[tags["content_tag"]].count(IMAGE_TOKEN) for m in msgs)
        assert n_tokens == len(images)  # "The number of images does not match the number of <image> tokens"
        resolved = [dataset_dir / p for p in images]  # media_dir defaults to dataset_dir
        assert all(p.is_file() for p in resolved)
        out.append({"prompt": msgs[:-1], "response": msgs[-1], "images": resolved, "id": ex["id"]})
    return out


def test_llamafactory_round_trip(small_build, rows, tmp_path):
    dest = tmp_path / "lf"
    manifest = _export(small_build, "llamafactory", dest, "--name", "microexp")
    assert manifest["files"] == ["microexp.json", "dataset_info.json"]
    loaded = _llamafactory_load(dest, "microexp")
    by_id = {r["id"]: r for r in rows}
    assert len(loaded) == len(rows)
    for ex in loaded:
        row = by_id.pop(ex["id"])
        assert ex["prompt"][-1]["content"].endswith(row["instruction"])
        assert ex["response"] == {"role": "assistant", "content": row["answer"]}
        _check_images(dest, [str(p.relative_to(dest)) for p in ex["images"]], row)
    assert not by_id


def test_llamafactory_without_pictures_has_no_image_tokens(small_build, rows, tmp_path):
    dest = tmp_path / "lf-text"
    manifest = _export(small_build, "llamafactory", dest, "--images", "")
    assert manifest["images"] == 0 and not (dest / "images").exists()
    assert "images" not in json.loads((dest / "dataset_info.json").read_text())["unimer"]["columns"]
    loaded = _llamafactory_load(dest, "unimer")
    assert sorted(e["prompt"][0]["content"] for e in loaded) == sorted(r["instruction"] for r in rows)


def test_megc_vqa_round_trip(small_build, rows, tmp_path):
    import datasets
    import pandas as pd

    dest = tmp_path / "megc"
    manifest = _export(small_build, "megc-vqa", dest)
    path = dest / "me_vqa.jsonl"
    df = pd.read_json(path, lines=True, dtype=False)
    assert list(df.columns) == ["dataset", "subject", "filename", "question", "answer"]
    assert len(datasets.load_dataset("json", data_files=str(path), split="train")) == len(df) == manifest["rows"]
    assert set(df["question"]) <= set(MEGC_QUESTIONS.values())
    clips = {r["clip_id"]: r for r in rows}
    assert any(r["emotion_composite"] is None for r in clips.values())  # the build has such a clip
    assert len(df.groupby(["dataset", "subject", "filename"])) == len(clips)
    for r in clips.values():
        got = df[(df.dataset == r["database"]) & (df.subject == r["subject"]) & (df.filename == r["clip"])]
        qa = dict(zip(got["question"], got["answer"], strict=True))
        # no coarse question where the composite protocol leaves the clip out ("others")
        coarse = qa.pop(MEGC_QUESTIONS["coarse"], None)
        assert coarse == (r["emotion_composite"].lower() if r["emotion_composite"] else None)
        assert qa.pop(MEGC_QUESTIONS["fine"]) == r["emotion"].lower()
        names = [facs.au_name(a).lower() for a in r["aus_supported"]]
        if names:
            key = MEGC_QUESTIONS["au_one" if len(names) == 1 else "au_many"]
            assert qa.pop(key).split(", ") == names
        assert not qa


def test_megc_vqa_refuses_pictures_it_cannot_carry(small_build, tmp_path):
    """`--to megc-vqa --images flow` wrote no picture and said nothing of it."""
    res = runner.invoke(app, ["export", str(small_build), "--to", "megc-vqa", str(tmp_path / "m"), "--images", "flow"])
    assert res.exit_code == 2 and "writes no pictures" in res.output and not (tmp_path / "m").exists(), res.output


def test_export_refuses_a_folder_that_is_not_an_export(small_build, tmp_path):
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    res = runner.invoke(app, ["export", str(small_build), "--to", "sharegpt", str(dest)])
    assert res.exit_code == 2 and "not an earlier export" in res.output
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    res = runner.invoke(app, ["export", str(small_build), "--to", "alpaca", str(tmp_path / "x")])
    assert res.exit_code == 2 and "sharegpt" in res.output and not (tmp_path / "x").exists()


def test_a_build_without_face_images_names_the_option_that_exports_it(no_images_build, tmp_path):
    """A `--no-images` build exported with the default pictures said "rebuild with this version of the builder"
    (it is this version's build): the error names the build's mode and `--images flow`, which exports it."""
    res = runner.invoke(app, ["export", str(no_images_build), "--to", "sharegpt", str(tmp_path / "a")])
    assert res.exit_code == 2
    assert "--no-images" in res.output and "--images flow" in res.output and "rebuild" not in res.output
    assert not (tmp_path / "a").exists()
    manifest = _export(no_images_build, "sharegpt", tmp_path / "b", "--images", "flow")
    assert manifest["pictures"] == ["flow"] and manifest["images"] == manifest["clips"]


def test_a_destination_that_is_a_file_is_one_error_line(small_build, tmp_path):
    """An export into a path that is a file (or below one) was a NotADirectoryError traceback."""
    f = tmp_path / "notes.txt"
    f.write_text("mine")
    for dest in (f, f / "export"):
        res = runner.invoke(app, ["export", str(small_build), "--to", "sharegpt", str(dest)])
        assert res.exit_code == 2 and "is a file" in res.output, res.output
    assert f.read_text() == "mine"


def test_the_export_names_its_build_by_folder_and_fingerprint_not_by_this_machines_path(small_build, tmp_path):
    """export.json recorded the build's absolute path, which says nothing on the machine the export goes to."""
    manifest = _export(small_build, "sharegpt", tmp_path / "ex")
    report = json.loads((small_build / "build_report.json").read_text())
    assert manifest["source"] == small_build.name and manifest["config_fingerprint"] == report["config_fingerprint"]
    assert str(small_build.parent) not in (tmp_path / "ex" / "export.json").read_text()


def test_a_destination_that_cannot_be_written_is_one_error_line_and_exit_3(small_build, tmp_path, monkeypatch):
    """An export into a folder it may not write (no permission, a read-only or full disk) ended in a
    PermissionError traceback and exit 1: one line naming the destination, exit 3 (the environment failed), as a
    build says it. The same for the inspection report's folder."""
    import unimer_builder.cli as cli

    def refused(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli, "run_export", refused)
    res = runner.invoke(app, ["export", str(small_build), "--to", "sharegpt", str(tmp_path / "ro" / "ex")])
    assert res.exit_code == 3 and "Traceback" not in res.output, res.output
    assert "cannot write the export (Permission denied)" in " ".join(res.output.split())
    monkeypatch.setattr(cli, "write_report", refused)
    res = runner.invoke(app, ["inspect", str(small_build), "--dest", str(tmp_path / "ro" / "r")])
    assert res.exit_code == 3 and "cannot write the report (Permission denied)" in " ".join(res.output.split())
    res = runner.invoke(app, ["inspect", str(small_build)])  # the default folder, named as such
    assert res.exit_code == 3 and f"{small_build / 'inspect'}: cannot write" in "".join(res.output.split("\n"))


def test_a_shard_that_cannot_be_read_is_blamed_on_the_build_not_the_destination(small_build, tmp_path):
    """pyarrow's OSError for a damaged shard (no errno) read as the destination's fault: "cannot write the
    export (Couldn't deserialize thrift ...)", exit 3, over two lines."""
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(small_build, damaged)
    shard = sorted((damaged / "data").glob("*.parquet"))[0]
    data = bytearray(shard.read_bytes())
    data[-12:-8] = b"\xff\xff\xff\x7f"  # the footer's length: beyond the file
    shard.write_bytes(bytes(data))
    garbage = tmp_path / "garbage"  # written over: pyarrow's "Parquet magic bytes not found" named no file
    shutil.copytree(small_build, garbage)
    sorted((garbage / "data").glob("*.parquet"))[0].write_bytes(b"not parquet")
    for build in (damaged, garbage):
        for args in (["export", str(build), "--to", "sharegpt", str(tmp_path / "ex")], ["inspect", str(build)],
                     ["push", str(build), "me/x", "--dry-run"]):
            res = runner.invoke(app, args)
            said = "".join(res.output.split("\n"))
            assert res.exit_code == 2 and f"{shard.name}: not a readable shard" in said, res.output
            assert "cannot write" not in said and "Traceback" not in said and len(res.output.strip().splitlines()) <= 3
    from unimer_builder import BuildConfig, card

    with pytest.raises(ValueError, match=f"{shard.name}: not a readable shard"):  # the card reads them too
        card.render_card(garbage, json.loads((garbage / "build_report.json").read_text()), BuildConfig())


def test_a_shard_that_cannot_be_opened_is_named_not_the_destination(small_build, tmp_path, monkeypatch):
    """pyarrow's PermissionError names no file: export and inspect blamed their destination ("cannot write the
    export"), and `unimer truth` printed a traceback."""
    import pyarrow.parquet as pq

    real = pq.ParquetFile
    first = sorted((small_build / "data").glob("*.parquet"))[0]

    def refused(path, *a, **k):
        if Path(path) == first:
            raise PermissionError(13, "Failed to open local file. Detail: [errno 13] Permission denied")
        return real(path, *a, **k)

    monkeypatch.setattr(shards.pq, "ParquetFile", refused)
    truth = tmp_path / "t.json"
    truth.write_text(json.dumps({"clips": [{"clip_id": "casme2/sub01/EP02_01f", "planted": []}]}))
    for args in (["export", str(small_build), "--to", "sharegpt", str(tmp_path / "ex")],
                 ["inspect", str(small_build), "--dest", str(tmp_path / "rep")],
                 ["truth", str(small_build), "--truth", str(truth)]):
        res = runner.invoke(app, args)
        said = "".join(res.output.split("\n"))
        assert res.exit_code == 3 and f"{first}: " in said and "Permission denied" in said, res.output
        assert "cannot write" not in said, said


def test_a_name_that_is_no_plain_file_name_is_refused(small_build, tmp_path):
    """`--name ../x` wrote x.json beside the export folder, outside it, and dataset_info.json pointed there."""
    # dataset_info and export named the samples file as the descriptor or the marker: written over, exit 0
    for name in ("../escaped", "a/b", ".hidden", "", "dataset_info", "export", "Export"):
        res = runner.invoke(app, ["export", str(small_build), "--to", "llamafactory", "--name", name,
                                  str(tmp_path / "lf")])
        assert res.exit_code == 2 and "--name" in res.output, (name, res.output)
    res = runner.invoke(app, ["export", str(small_build), "--to", "sharegpt", "--images", "onset,onset", str(tmp_path / "s")])
    assert res.exit_code == 2 and "--images names onset more than once" in res.output, res.output
    assert list(tmp_path.iterdir()) == []
    _export(small_build, "llamafactory", tmp_path / "lf", "--name", "casme2_me-v1.0")
    assert (tmp_path / "lf" / "casme2_me-v1.0.json").is_file()


def test_megc_vqa_names_each_clip_once_and_answers_aus_only_from_labels():
    """Two CAS(ME)^3 clips of one stimulus (``a`` at onsets 978 and 1179) were both ``filename: a``, each question
    twice with two answers; SMIC's AUs, inferred from the motion alone, were answered as if annotated."""
    from unimer_builder.export import megc_filename, megc_questions

    base = {"database": "casme3", "subject": "spNO.1", "clip": "a", "emotion": "happy", "emotion_composite": "positive",
            "aus": [{"au": 12, "side": None}], "aus_supported": [12], "aus_source": "label"}
    one, two = ({**base, "clip_id": f"casme3/spNO.1/a/{n}"} for n in (978, 1179))
    assert [megc_filename(one), megc_filename(two)] == ["a_978", "a_1179"]
    for db, cid, clip in (("casme2", "casme2/sub01/EP02_01f", "EP02_01f"), ("smic", "smic/HS/s3/s3_sur_07", "s3_sur_07"),
                          ("samm", "samm/006/006_1_2", "006_1_2")):
        assert megc_filename({"database": db, "clip_id": cid, "clip": clip}) == clip
    assert (MEGC_QUESTIONS["au_one"], "lip corner puller") in megc_questions(one)
    smic = {**base, "database": "smic", "aus": [], "aus_supported": [4, 9], "aus_source": "inferred"}
    for aus in ("supported", "labelled"):
        assert [q for q, _ in megc_questions(smic, aus)] == [MEGC_QUESTIONS["coarse"], MEGC_QUESTIONS["fine"]]


def test_megc_vqa_lines_name_one_clip_each_through_the_export(small_build, tmp_path, monkeypatch):
    """The export itself, not only its helper: CAS(ME)^3 clips of one stimulus and SMIC's cameras of one clip each get
    lines of their own (one dataset, subject and filename per clip)."""
    import pandas as pd

    from unimer_builder import export as ex

    base = {"id": "x#au", "task": "au", "instruction": "q", "answer": "a", "emotion": "happy",
            "emotion_composite": "positive", "aus": [{"au": 12, "side": None}], "aus_supported": [12],
            "aus_source": "label"}
    rows = [{**base, "clip_id": f"casme3/spNO.1/a/{n}", "database": "casme3", "subject": "spNO.1", "clip": "a"}
            for n in (978, 1179)]
    rows += [{**base, "clip_id": f"smic/{v}/s3/s3_sur_07", "database": "smic", "subject": "s3", "clip": "s3_sur_07",
              "aus": [], "aus_supported": [], "aus_source": "inferred"} for v in ("HS", "VIS", "NIR")]
    monkeypatch.setattr(ex, "_iter_rows", lambda out_dir, cols: ((Path("s.parquet"), i, r) for i, r in enumerate(rows)))
    ex.export(small_build, "megc-vqa", tmp_path / "m", images=())
    df = pd.read_json(tmp_path / "m" / "me_vqa.jsonl", lines=True, dtype=False)
    keys = df.groupby(["dataset", "subject", "filename"]).size()
    assert sorted(k[2] for k in keys.index) == ["a_1179", "a_978", "s3_sur_07", "s3_sur_07_NIR", "s3_sur_07_VIS"]
    assert (keys == 3).sum() == 2 and (keys == 2).sum() == 3  # coarse, fine and AUs; SMIC's no AU question
