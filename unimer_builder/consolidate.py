"""Parts -> shards: size-bounded Parquet files in ``OUT/data`` that ``datasets`` and the Hub read."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import staged_folder, swap_in
from .config import OutputConfig
from .parts import find_part, part_meta
from .shards import COMPRESSION, FACE_COLUMNS, SCHEMA, as_shard_table, shard_name, shard_schema

# Uncompressed bytes per row group inside a shard (at most a shard). Consolidation holds about one row
# group of parts in memory, so this bounds its memory whatever the build size: with 32 MiB a 200-clip build
# consolidated at +100 MiB over a 20-clip one, with 8 MiB at +11 MiB (bench/README.md, "Memory").
# 8 MiB is ~14 clips (56 rows) of 224 px crops: still large for readers (datasets streams by row group).
ROW_GROUP_BYTES = 8 * 1024 * 1024
SHARD_MAX_BYTES = 64 * 1024 * 1024  # per shard, before compression (pipeline.build's default)

# Dictionary encoding and min/max statistics only for the flat (non-nested) columns of a shard: on the
# PNG and flow columns dictionaries cost ~40 % of the shard write and made the file larger (zstd already
# removes the repeats of a clip's images across its rows), and statistics of PNG bytes serve no reader.
_FLAT_COLUMNS = tuple(f.name for f in SCHEMA if not pa.types.is_nested(f.type))


def consolidate(
    parts_dir: Path | str,
    out_dir: Path | str,
    clip_order: list[str],
    max_bytes: int,
    fingerprint: str | None = None,
    *,
    parts: Mapping[str, Path] | None = None,
    images: bool = True,
    before_swap: Callable[[list[Path]], None] | None = None,
) -> list[Path]:
    """Stream the clips' parts, in ``clip_order``, into ``OUT/data/train-XXXXX-of-NNNNN.parquet``.

    Shards are bounded by ``max_bytes`` of uncompressed data (a clip is never split; a clip larger
    than the bound gets a shard of its own). At most one row group (<= ROW_GROUP_BYTES) is in memory. The
    new ``data/`` is written beside the old one and swapped in with two renames (:mod:`.atomic`), so a
    reader sees the old complete set or the new complete set, never a half-written shard. Same parts, same order ->
    byte-identical shards. With ``fingerprint`` only parts of those settings are used; ``parts`` names each
    clip's part file outright. ``images=False`` leaves out the face pixel columns (:data:`.shards.FACE_COLUMNS`).
    ``before_swap`` is given the staged shards before they are swapped in: what describes them (the report, the
    card) is made there, so that only its writing is left between the swap and a complete build.
    """
    parts_dir, out_dir = Path(parts_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(set(clip_order)) != len(clip_order):
        raise ValueError("clip_order lists a clip more than once")

    # Plan from the parts' footers only.
    plan: list[tuple[Path, int]] = []
    flow_sizes = set()
    for cid in clip_order:
        p = parts[cid] if parts is not None else find_part(parts_dir, cid, fingerprint)
        meta = part_meta(p)
        if meta["rows"] == 0:
            continue
        if meta.get("flow_size"):
            flow_sizes.add(int(meta["flow_size"]))
        plan.append((p, meta["bytes"]))
    if len(flow_sizes) > 1:
        raise ValueError(f"{parts_dir}: parts disagree on flow_size {sorted(flow_sizes)}; rebuild them")
    flow_size = flow_sizes.pop() if flow_sizes else OutputConfig.flow_size
    groups: list[list[Path]] = []
    size = 0
    for p, b in plan:
        if not groups or (size + b > max_bytes and groups[-1]):
            groups.append([])
            size = 0
        groups[-1].append(p)
        size += b
    if not groups:
        groups = [[]]  # an empty build still gets one (empty) shard so that the folder loads
    schema = shard_schema(flow_size, images)
    row_group_bytes = max(1, min(ROW_GROUP_BYTES, max_bytes))

    paths: list[Path] = []
    with staged_folder(out_dir / "data") as tmp:
        n = len(groups)
        for i, group in enumerate(groups):
            name = shard_name(i, n)
            with pq.ParquetWriter(tmp / name, schema, compression=COMPRESSION, use_dictionary=list(_FLAT_COLUMNS),
                                  write_statistics=list(_FLAT_COLUMNS)) as writer:
                buf: list[pa.Table] = []
                buf_bytes = 0
                for p in group:
                    with pq.ParquetFile(p) as pf:
                        t = pf.read(use_threads=False)
                    buf.append(as_shard_table(t, schema))
                    buf_bytes += t.nbytes
                    if buf_bytes >= row_group_bytes:
                        # One row group from the parts' chunks as they are: combining them first would
                        # copy the whole row group once more.
                        writer.write_table(pa.concat_tables(buf))
                        buf, buf_bytes = [], 0
                if buf:
                    writer.write_table(pa.concat_tables(buf))
                elif not group:
                    writer.write_table(schema.empty_table())
            paths.append(out_dir / "data" / name)
        if before_swap is not None:
            before_swap([tmp / p.name for p in paths])
        swap_in(tmp, out_dir / "data")
    return paths


def strip_images(src_data: Path | str, dest_data: Path | str) -> list[Path]:
    """Copies of the shards in ``src_data`` without the face pixel columns (:data:`.shards.FACE_COLUMNS`), same
    names, same row groups, into the existing folder ``dest_data`` (one row group in memory at a time)."""
    dest_data = Path(dest_data)
    out = []
    for src in sorted(Path(src_data).glob("train-*.parquet")):
        with pq.ParquetFile(src) as pf:
            keep = [n for n in pf.schema_arrow.names if n not in FACE_COLUMNS]
            flow = pf.schema_arrow.field("flow").type
            schema = shard_schema(int(flow.shape[-1]) if getattr(flow, "shape", None) else OutputConfig.flow_size,
                                  images=False)
            with pq.ParquetWriter(dest_data / src.name, schema, compression=COMPRESSION,
                                  use_dictionary=list(_FLAT_COLUMNS), write_statistics=list(_FLAT_COLUMNS)) as w:
                for i in range(pf.num_row_groups):
                    w.write_table(as_shard_table(pf.read_row_group(i, columns=keep, use_threads=False), schema))
                if pf.num_row_groups == 0:
                    w.write_table(schema.empty_table())
        out.append(dest_data / src.name)
    return out
