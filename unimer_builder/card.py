"""The dataset card: ``OUT/README.md`` (Hub YAML front matter + prose) from ``data_cards/README.md.j2``.

The front matter declares the licence of the source database (``license: other`` with ``license_name``/
``license_link`` from ``data_cards/licenses.yaml``, and the Hub's access-request form for licensed
sources), the ``default`` config over ``data/train-*.parquet`` and the full
``dataset_info.features`` (images as ``image``, flow as ``array3_d``), so that
``datasets.load_dataset(OUT)`` and the Hub's viewer agree with the shards' own schema metadata.
Counts per database and emotion are read from the shards themselves; the AU agreement tables and the
skip reasons come from the build report.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import jinja2
import yaml

from . import flowviz
from .atomic import write_text
from .config import TASKS, BuildConfig, package_folder
from .groundtruth import read_truth
from .shards import FACE_COLUMNS, features, open_shard, read_shard, shard_files

PAPER = {
    "title": "DEFT-LLM: Disentangled Expert Feature Tuning for Micro-Expression Recognition",
    "authors": "Ren Zhang, Huilai Li, Chao Qi, Guoliang Xu, Tianyu Zhou, Wei Wei, Jianqin Yin",
    "arxiv": "2511.10948",
    "bibtex": (
        "@article{zhang2025deftllm,\n"
        "  title   = {DEFT-LLM: Disentangled Expert Feature Tuning for Micro-Expression Recognition},\n"
        "  author  = {Zhang, Ren and Li, Huilai and Qi, Chao and Xu, Guoliang and Zhou, Tianyu and Wei, Wei and Yin, Jianqin},\n"
        "  journal = {arXiv preprint arXiv:2511.10948},\n"
        "  year    = {2025}\n"
        "}"
    ),
}

TASK_CATEGORIES = ["video-classification", "image-text-to-text", "visual-question-answering"]
TAGS = ["micro-expression", "facial-action-units", "facs", "optical-flow", "affective-computing",
        "instruction-tuning", "uni-mer"]


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                        (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")):
        if n < limit:
            return name
    return "n>10M"


def _shard_stats(out_dir: Path, files: list[Path] | None = None) -> dict:
    files = files if files is not None else shard_files(out_dir)
    rows = 0
    num_bytes = 0
    download = 0
    clips: dict[str, tuple[str, str | None]] = {}
    tasks: Counter = Counter()
    flagged_clips: set[str] = set()
    inferred_clips: set[str] = set()
    flow_size = None
    images = True
    for f in files:
        md = open_shard(f).metadata
        rows += md.num_rows
        num_bytes += sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        download += f.stat().st_size
        t = read_shard(f, columns=["clip_id", "database", "emotion", "task", "flagged", "aus_source"])
        for cid, db, emo, task, flagged, src in zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True):
            clips.setdefault(cid, (db, emo))
            tasks[task] += 1
            if flagged:
                flagged_clips.add(cid)
            if src == "inferred":
                inferred_clips.add(cid)
        if flow_size is None:
            schema = open_shard(f).schema_arrow
            images = all(c in schema.names for c in FACE_COLUMNS)
            ext = schema.field("flow").type
            shape = getattr(ext, "shape", None)
            flow_size = int(shape[-1]) if shape else None
    by_db: Counter = Counter(db for db, _ in clips.values())
    by_db_emotion: Counter = Counter((db, emo if emo is not None else "(none)") for db, emo in clips.values())
    return {
        "files": [f"data/{f.name}" for f in files],
        "rows": rows,
        "clips": len(clips),
        "num_bytes": num_bytes,
        "download_size": download,
        "tasks": dict(sorted(tasks.items())),
        "by_database": dict(sorted(by_db.items())),
        "by_database_emotion": [
            {"database": db, "emotion": emo, "clips": n} for (db, emo), n in sorted(by_db_emotion.items())
        ],
        "flagged_clips": len(flagged_clips),
        "inferred_clips": len(inferred_clips),
        "flow_size": flow_size,
        "images": images,  # the face pixel columns (shards.FACE_COLUMNS) are in the shards
    }


def _licence_table() -> dict:
    return yaml.safe_load((package_folder("data_cards") / "licenses.yaml").read_text(encoding="utf-8"))


def synthetic_profile_of(root: Path | str | None) -> str | None:
    """For a database root: ``None`` (not one `unimer synth` wrote), ``"default"`` (one public-domain photo) or
    the profile its ground_truth.json names.

    Only a ground truth `unimer synth` writes counts (read as ``unimer truth`` reads it, with the format and seed
    it records): a ``ground_truth.json`` of a researcher's own beside a licensed release made its card public
    domain and ungated. Anything else, unreadable included, leaves the database's own licence, gated."""
    if not root or not (Path(root) / "ground_truth.json").is_file():
        return None
    try:
        truth = read_truth(Path(root) / "ground_truth.json")
    except (OSError, ValueError):
        return None
    if not (isinstance(truth.get("format"), str) and isinstance(truth.get("seed"), int)):
        return None
    return str(truth.get("profile") or "default")


def synthetic_profile(report: dict) -> str | None:
    """:func:`synthetic_profile_of` the build's database, as its report records it (a report from before that
    record: looked up at its root)."""
    if "synthetic" in report:
        return report["synthetic"]
    return synthetic_profile_of(report.get("root"))


def is_synthetic(report: dict) -> bool:
    """A build of a database `unimer synth` wrote (its root held ground_truth.json): the card names the
    generator's photos as the source instead of a database's licence. Nothing else is decided by it (the
    composite rule is the explicit ``text.composite`` setting)."""
    return synthetic_profile(report) is not None


def source_licence(databases: list[str], synthetic: bool | str = False) -> dict:
    """``{name, title, link, gated, sources}``: the licence the source database(s) put on the build.

    One database: its own entry of ``data_cards/licenses.yaml``. Several: every one applies, so the card
    names them all and is gated if any is. A database the table lacks is treated as licence-restricted.
    """
    table = _licence_table()
    if synthetic:  # True or "default": variations of one photo; another profile has its own entry
        entry = table.get(f"synthetic-{synthetic}", table["synthetic"]) if isinstance(synthetic, str) else table["synthetic"]
        return {**entry, "sources": [entry]}
    unknown = {"name": "source-database-license", "title": "the source database's own licence", "link": None,
               "gated": True}
    entries = [table.get(db, {**unknown, "title": f"the licence of {db}"}) for db in sorted(set(databases))]
    if len(entries) == 1:
        return {**entries[0], "sources": entries}
    return {"name": "source-database-licenses", "title": "; ".join(e["title"] for e in entries), "link": None,
            "gated": any(e["gated"] for e in entries), "sources": entries}


def default_repo_name(databases: list[str], synthetic: bool = False) -> str:
    """A Hub repo name no one will take for opendatalab's UniMER (math formula recognition, on the Hub as
    UniMER_Dataset): it says micro-expression first and never spells "unimer"."""
    tag = "synthetic" if synthetic else "-".join(sorted(set(databases))) or "data"
    return f"micro-expression-instructions-{tag}"


GATED_PROMPT = ("This dataset is derived from {title}. Request access only if you have signed that licence "
                "agreement with the database's owners; the same terms apply here (research use, no "
                "redistribution).")


def gating(licence: dict) -> dict:
    """The Hub's access-request form (``extra_gated_*`` keys): name, affiliation and the licence checkbox."""
    return {
        "extra_gated_prompt": GATED_PROMPT.format(title=licence["title"]),
        "extra_gated_fields": {
            "Name": "text",
            "Affiliation": "text",
            "I have signed the source database's licence agreement and will use this data under its terms":
                "checkbox",
        },
    }


def front_matter(stats: dict, cfg: BuildConfig, licence: dict | None = None, gated: bool | None = None) -> dict:
    licence = licence or source_licence(list(stats.get("by_database") or {}))
    feats = features(stats.get("flow_size") or cfg.output.flow_size, stats.get("images", True))
    keys = {"license": "other", "license_name": licence["name"]}
    if licence.get("link"):
        keys["license_link"] = licence["link"]
    if licence["gated"] if gated is None else gated:
        keys.update(gating(licence))
    return {
        "pretty_name": "Micro-expression instructions with motion evidence (Uni-MER builder)",
        **keys,
        "task_categories": TASK_CATEGORIES,
        "tags": TAGS,
        "size_categories": [_size_category(stats["rows"])],
        "configs": [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*.parquet"}]}],
        "dataset_info": {
            "config_name": "default",
            "features": feats._to_yaml_list(),
            "splits": [{"name": "train", "num_bytes": stats["num_bytes"], "num_examples": stats["rows"]}],
            "download_size": stats["download_size"],
            "dataset_size": stats["num_bytes"],
        },
    }


def _settings(cfg: BuildConfig, report: dict | None = None) -> list[tuple[str, str]]:
    """Every setting of the build (``BuildConfig.settings``), the templates by name, and the fingerprint; the
    templates' name and the fingerprint as the build's report recorded them where it did (a card rendered again
    from the report, ``unimer push --no-images``, has the name of a folder that is not here to hash)."""
    recorded = report or {}
    published = ((recorded.get("config") or {}).get("text") or {}).get("templates")
    out = []
    for key, v in cfg.settings():
        if key == "text.templates":
            v = published if published else "packaged" if v is None else Path(v).resolve().name
        elif key == "regions.shapes":
            v = "; ".join(f"{f} {' '.join(f'{x:g}' for x in rest)}" for f, *rest in v)
        elif isinstance(v, (list, tuple)):
            v = ", ".join(str(x) for x in v)
        out.append((key, str(v)))
    out.append(("config_fingerprint", recorded.get("config_fingerprint") or cfg.fingerprint()))
    return out


def _agreement_tables(report: dict) -> list[dict]:
    """``report["agreement"]`` = {scope: {"AU12": {name, labelled, supported, ...}}} -> table dicts."""
    agreement = report.get("agreement") or {}
    scopes = (["all"] if "all" in agreement else []) + sorted(k for k in agreement if k != "all")
    return _tables({k: agreement[k] for k in scopes})


def _tables(scopes: dict) -> list[dict]:
    """{scope: {"AU12": {column: value}}} -> table dicts (scope, columns, rows), in the given order."""
    tables = []
    for scope, per_au in scopes.items():
        if not isinstance(per_au, dict) or not per_au:
            continue
        cols: list[str] = []
        for v in per_au.values():
            for k in (v if isinstance(v, dict) else {}):
                if k not in cols:
                    cols.append(k)
        rows = []
        for au, v in per_au.items():
            v = v if isinstance(v, dict) else {"value": v}
            rows.append([str(au)] + [_cell(v.get(c)) for c in cols])
        tables.append({"scope": scope, "columns": cols, "rows": rows})
    return tables


def _second_opinion(report: dict) -> dict | None:
    """The report's py-feat section with its two tables, or None when no second opinion was asked for."""
    so = report.get("second_opinion")
    if not so:
        return None
    return {**so, "tables": _tables({"labelled": so.get("labelled") or {}, "unlabelled": so.get("unlabelled") or {}})}


def _cell(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v).replace("|", "/")


def render_card(out_dir: Path | str, report: dict, cfg: BuildConfig, template_dir: Path | str | None = None,
                gated: bool | None = None, shards: list[Path] | None = None) -> str:
    """The card's text; ``gated`` overrides the licence table's choice of an access-request form; ``shards``: the
    files to describe where they are not yet in ``OUT/data`` (staged by a build)."""
    out_dir = Path(out_dir)
    stats = _shard_stats(out_dir, shards)
    synthetic = synthetic_profile(report)
    licence = source_licence(list(stats["by_database"]), synthetic or False)
    meta = front_matter(stats, cfg, licence, gated)
    fm = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir or package_folder("data_cards"))),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False,
        keep_trailing_newline=True,
    )
    return env.get_template("README.md.j2").render(
        front_matter=fm.rstrip("\n"),
        stats=stats,
        cfg=cfg,
        settings=_settings(cfg, report),
        counts=report.get("counts") or {},
        skip_reasons=report.get("skip_reasons") or {},
        unexplained=report.get("unexplained_motion") or {},
        agreement=_agreement_tables(report),
        second_opinion=_second_opinion(report),
        policy=report.get("policy", cfg.check.policy),
        builder_version=report.get("builder_version", ""),
        source_format=report.get("format", ""),
        inputs=report.get("inputs") or {"label_file": None},
        tasks=TASKS,
        paper=PAPER,
        licence=licence,
        gated_form="extra_gated_fields" in meta,
        synthetic=bool(synthetic),
        repo_name=default_repo_name(list(stats["by_database"]), bool(synthetic)),
        flow_full_px=flowviz.FULL_PX,
        direction_colours=flowviz.DIRECTION_COLOURS,
        face_columns=FACE_COLUMNS,
    )


def write_card(out_dir: Path | str, report: dict, cfg: BuildConfig, gated: bool | None = None) -> Path:
    """Render ``OUT/README.md`` (atomically) from the shards in ``OUT/data`` and the build report."""
    out_dir = Path(out_dir)
    return write_text(out_dir / "README.md", render_card(out_dir, report, cfg, gated=gated))
