"""``unimer export``: a build in the formats that trainers and challenges read.

* ``sharegpt``: ``sharegpt.json``, a JSON list of ``{"id", "clip_id", "task", "conversations": [{"from":
  "human", "value"}, {"from": "gpt", "value"}], "images": [...]}`` (ShareGPT's turns, with LLaMA-Factory's ``images`` list); the human
  turn starts with one ``<image>`` per picture.
* ``llamafactory``: ``<name>.json`` in LLaMA-Factory's ``sharegpt`` formatting with OpenAI-style tags
  (``messages`` of ``{"role", "content"}``, ``images``) and ``dataset_info.json`` describing it, so that
  ``dataset_dir=DEST`` and ``dataset=<name>`` train on it. LLaMA-Factory checks that a sample has as many
  ``<image>`` tokens as images, that roles alternate user/assistant, and resolves image paths against its
  ``media_dir`` (by default the dataset_dir): the paths here are relative to DEST.
* ``megc-vqa``: ``me_vqa.jsonl``, the MEGC ME-VQA challenge's JSON-lines (``dataset, subject, filename,
  question, answer``): per clip the coarse class, the fine class and the action units (FACS names,
  lowercase, comma-separated: "cheek raiser, lip corner puller"), in the challenge's question wording.
  The AU answer lists the AUs label and motion both support (``aus_supported``), or with
  ``megc_aus="labelled"`` every labelled AU; a clip without AU labels (SMIC) gets no AU question, as in the
  challenge's own files (AUs inferred from motion alone are no annotation). ``filename`` is the clip's name,
  with its onset where the database's ids need it (CAS(ME)^3's ``a`` at 978 and 1179 are ``a_978``,
  ``a_1179``; SMIC's other cameras are ``s3_sur_07_VIS``), so that dataset, subject and filename name one
  clip. No pictures: the challenge's files carry none.

Pictures (``images/<clip slug>/{onset,apex,flow}.png``) are written once per clip and shared by its rows.
The export is written beside DEST and swapped in; an existing DEST is replaced only if it holds an
earlier export (``export.json``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import facs
from .atomic import staged_folder, swap_in
from .inspect_report import slug
from .shards import FACE_COLUMNS, open_shard, shard_files

FORMATS = ("sharegpt", "llamafactory", "megc-vqa")
IMAGE_COLUMNS = {"onset": "onset_image", "apex": "apex_image", "flow": "flow_image"}
IMAGE_WORDS = {"onset": "the onset frame", "apex": "the apex frame",
               "flow": "the onset-to-apex optical flow as colours"}
IMAGE_TOKEN = "<image>"  # LLaMA-Factory's IMAGE_PLACEHOLDER and the LLaVA/ShareGPT convention
MANIFEST = "export.json"
_RESERVED = frozenset({MANIFEST, "dataset_info.json"})  # files of a LLaMA-Factory export besides NAME.json
MEGC_QUESTIONS = {
    "coarse": "What is the coarse expression class?",
    "fine": "What is the fine-grained expression class?",
    "au_one": "What is the action unit?",
    "au_many": "What are the action units?",
}
TEXT_COLUMNS = ("id", "clip_id", "database", "subject", "clip", "task", "instruction", "answer", "emotion",
                "emotion_composite", "aus", "aus_supported", "aus_source")


def prompt(instruction: str, images: tuple[str, ...]) -> str:
    """The user turn: one image token per picture, a line saying which picture is which, the instruction."""
    if not images:
        return instruction
    names = ", ".join(IMAGE_WORDS[k] for k in images)
    return f"{IMAGE_TOKEN * len(images)}\nImages: {names}.\n{instruction}"


def megc_questions(row: dict, aus: str = "supported") -> list[tuple[str, str]]:
    """(question, answer) pairs of one clip in the MEGC ME-VQA wording; a question without an answer
    (no composite class, no emotion label, no AU) is left out."""
    qa = []
    if row.get("emotion_composite"):
        qa.append((MEGC_QUESTIONS["coarse"], row["emotion_composite"].lower()))
    if row.get("emotion"):
        qa.append((MEGC_QUESTIONS["fine"], row["emotion"].strip().lower()))
    if aus not in ("supported", "labelled"):
        raise ValueError(f"megc_aus must be 'supported' or 'labelled', not {aus!r}")
    if row.get("aus_source") != "label":  # inferred from the motion alone: no annotation to answer with
        codes = []
    elif aus == "supported":
        codes = list(row.get("aus_supported") or [])
    else:
        codes = [t["au"] for t in row.get("aus") or []]
    names = list(dict.fromkeys(facs.au_name(int(a)).lower() for a in codes))
    if names:
        qa.append((MEGC_QUESTIONS["au_one" if len(names) == 1 else "au_many"], ", ".join(names)))
    return qa


def megc_filename(row: dict) -> str:
    """The clip's name, and what its id adds to it: CAS(ME)^3's onset (clips of one stimulus share a name) and
    SMIC's camera where it is not the high-speed one the challenge lists (``s3_sur_07_VIS``)."""
    clip, cid = row["clip"], row["clip_id"]
    if not cid.endswith(f"/{clip}"):
        return f"{clip}_{cid.rsplit('/', 1)[-1]}"
    parts = cid.split("/")  # database/variant/subject/clip for a database of several cameras (records.clip_id)
    return f"{clip}_{parts[1]}" if len(parts) == 4 and parts[1] != "HS" else clip


def _iter_rows(out_dir: Path, image_columns: list[str]):
    for f in shard_files(out_dir):
        pf = open_shard(f)
        missing = [c for c in (*TEXT_COLUMNS, *image_columns) if c not in pf.schema_arrow.names]
        if missing and set(missing) <= set(FACE_COLUMNS):  # this version's build, made without the faces
            have = [k for k, c in IMAGE_COLUMNS.items() if c not in FACE_COLUMNS]
            raise ValueError(f"{out_dir}: built without face images (--no-images): no {', '.join(missing)}; "
                             f"export its motion with --images {','.join(have)} (or --images '' for text only)")
        if missing:
            raise ValueError(f"{f}: missing column(s) {missing}; rebuild with this version of the builder")
        for batch in pf.iter_batches(batch_size=64, columns=[*TEXT_COLUMNS, *image_columns], use_threads=False):
            for i, r in enumerate(batch.to_pylist()):
                yield f, i, r


def _write_images(row: dict, images: tuple[str, ...], stage: Path, where: str) -> list[str]:
    rel = []
    for k in images:
        png = row.get(IMAGE_COLUMNS[k])
        if not png or not png.get("bytes"):
            raise ValueError(f"{where}: column {IMAGE_COLUMNS[k]!r} has no image")
        p = Path("images") / slug(row["clip_id"]) / f"{k}.png"
        target = stage / p
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(png["bytes"])
        rel.append(p.as_posix())
    return rel


def export(out_dir: Path | str, fmt: str, dest: Path | str, images: tuple[str, ...] = ("onset", "apex", "flow"),
           name: str = "unimer", megc_aus: str = "supported") -> dict:
    """Export the build in ``out_dir`` as ``fmt`` into ``dest``; returns the manifest written there."""
    out_dir, dest = Path(out_dir), Path(dest)
    if fmt not in FORMATS:
        raise ValueError(f"--to must be one of {', '.join(FORMATS)}, not {fmt!r}")
    bad = [k for k in images if k not in IMAGE_COLUMNS]
    if bad:
        raise ValueError(f"unknown picture(s) {bad}; choose from {', '.join(IMAGE_COLUMNS)}")
    twice = sorted({k for k in images if images.count(k) > 1})
    if twice:  # each sample would show the same picture twice ("the onset frame, the onset frame")
        raise ValueError(f"--images names {', '.join(twice)} more than once; name each picture once")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # it names a file in DEST: no path, no hidden file
        raise ValueError(f"--name must be letters, digits, '.', '_' or '-' (it names DEST/NAME.json), "
                         f"not {name!r}")
    if fmt == "llamafactory" and f"{name}.json".lower() in _RESERVED:  # the samples were written over, exit 0
        raise ValueError(f"--name {name!r} would name the samples file {name}.json, which the export writes "
                         f"otherwise ({', '.join(sorted(_RESERVED))}); choose another name")
    if fmt == "megc-vqa":
        images = ()
    blocking = next((p for p in (dest, *dest.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:  # else a NotADirectoryError traceback
        what = "it" if blocking == dest else str(blocking)
        raise FileExistsError(f"{dest}: {what} is a file, not a folder; choose another folder")
    if dest.exists() and any(dest.iterdir()) and not (dest / MANIFEST).is_file():
        raise FileExistsError(f"{dest}: exists and is not an earlier export ({MANIFEST} missing); choose another folder")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with staged_folder(dest) as stage:
        records: list[dict] = []
        clips: set[str] = set()
        for f, i, row in _iter_rows(out_dir, [IMAGE_COLUMNS[k] for k in images]):
            where = f"{f}, row {i + 1} ({row['id']})"
            for col in ("instruction", "answer"):
                if not row.get(col):
                    raise ValueError(f"{where}: empty {col!r}")
            if fmt == "megc-vqa":
                if row["clip_id"] in clips:
                    continue
                clips.add(row["clip_id"])
                records += [{"dataset": row["database"], "subject": row["subject"], "filename": megc_filename(row),
                             "question": q, "answer": a} for q, a in megc_questions(row, megc_aus)]
                continue
            clips.add(row["clip_id"])
            pics = _write_images(row, images, stage, where)
            user = prompt(row["instruction"], images)
            if fmt == "sharegpt":
                records.append({"id": row["id"], "clip_id": row["clip_id"], "task": row["task"],
                                "conversations": [{"from": "human", "value": user},
                                                  {"from": "gpt", "value": row["answer"]}],
                                "images": pics})
            else:
                records.append({"id": row["id"], "clip_id": row["clip_id"], "task": row["task"],
                                "messages": [{"role": "user", "content": user},
                                             {"role": "assistant", "content": row["answer"]}],
                                "images": pics})
        files = _write_records(stage, fmt, records, name, bool(images))
        # the build by its folder's name and its settings' fingerprint: the export goes to other machines, and a
        # path of this one says nothing there
        report = out_dir / "build_report.json"
        built = json.loads(report.read_text(encoding="utf-8")) if report.is_file() else {}
        manifest = {"format": fmt, "source": out_dir.resolve().name,
                    "config_fingerprint": built.get("config_fingerprint"), "rows": len(records), "clips": len(clips),
                    "images": sum(1 for p in (stage / "images").rglob("*.png")) if images else 0,
                    "pictures": list(images), "files": files}
        if fmt == "megc-vqa":
            manifest["megc_aus"] = megc_aus
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        swap_in(stage, dest)
        return manifest


def _write_records(stage: Path, fmt: str, records: list[dict], name: str, with_images: bool) -> list[str]:
    def dump(obj) -> str:
        return json.dumps(obj, ensure_ascii=False, indent=1) + "\n"

    if fmt == "sharegpt":
        (stage / "sharegpt.json").write_text(dump(records), encoding="utf-8")
        return ["sharegpt.json"]
    if fmt == "megc-vqa":
        lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        (stage / "me_vqa.jsonl").write_text(lines, encoding="utf-8")
        return ["me_vqa.jsonl"]
    file_name = f"{name}.json"
    (stage / file_name).write_text(dump(records), encoding="utf-8")
    columns = {"messages": "messages", **({"images": "images"} if with_images else {})}
    info = {name: {"file_name": file_name, "formatting": "sharegpt", "columns": columns,
                   "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                            "assistant_tag": "assistant"}}}
    (stage / "dataset_info.json").write_text(dump(info), encoding="utf-8")
    return [file_name, "dataset_info.json"]
