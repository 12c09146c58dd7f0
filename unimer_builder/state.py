"""What a finished build leaves for the next run: ``OUT/.unimer-state.json``.

It records, for the settings and output options of the build, every clip's inputs fingerprint
(:func:`.inputs.clip_inputs`) and outcome (its summary, or why it was skipped), the skipped label rows, and
the shards with their sizes and modification times. A re-run with the same request (:func:`request_key`) and
untouched shards has nothing to do: the build returns the report it finished with and writes nothing.
When only some clips changed, the rows of the others are taken back out of the shards into part files
(:func:`recover_parts`) and only the changed clips are measured again. The file is written last, after the
shards, the report and the card, so a build killed before then leaves no state that claims it finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import write_json
from .parts import PartStore, outcome_of_record, outcome_record
from .records import ClipSummary, Skip
from .shards import SCHEMA

STATE_NAME = ".unimer-state.json"
VERSION = 1


def request_key(settings: str, options: dict, clips: list[tuple[str, str]], skips: list[dict]) -> str:
    """Hash of what decides a build's files: settings, output options, (clip, inputs) in order, skipped rows."""
    blob = json.dumps({"settings": settings, "options": options, "clips": clips, "skips": skips},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _shard_files(out: Path, names: list[str]) -> list[list]:
    files = []
    for name in names:
        st = (out / name).stat()
        files.append([name, st.st_size, st.st_mtime_ns])
    return files


def write_state(out: Path, key: str, settings: str, options: dict, outcomes: dict[str, tuple[str, ClipSummary | Skip]],
                shards: list[str]) -> Path:
    """``outcomes``: clip_id -> (inputs, outcome) of every clip measured or resumed; ``shards`` relative to
    ``out``."""
    return write_json(out / STATE_NAME, {
        "version": VERSION, "key": key, "settings": settings, "options": options,
        "clips": {cid: {"inputs": inputs, **outcome_record(o)} for cid, (inputs, o) in outcomes.items()},
        "shards": _shard_files(out, shards),
    }, indent=None)


def read_state(out: Path) -> dict | None:
    """The state a finished build left, when readable, of this version, and its shards untouched; else None."""
    try:
        state = json.loads((out / STATE_NAME).read_text(encoding="utf-8"))
        if state.get("version") != VERSION:
            return None
        for name, size, mtime in state["shards"]:
            st = (out / name).stat()
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def _as_part_table(t: pa.Table) -> pa.Table:
    """Shard rows (``flow`` as datasets' Array3D) as a part holds them (:data:`SCHEMA`)."""
    cols = []
    for f in SCHEMA:
        col = t.column(f.name)
        if isinstance(col.type, pa.ExtensionType):
            col = pa.chunked_array([c.storage for c in col.chunks], type=col.type.storage_type)
        cols.append(col.cast(f.type) if col.type != f.type else col)
    return pa.Table.from_arrays(cols, schema=SCHEMA).combine_chunks()


def recover_parts(out: Path, state: dict, parts: PartStore, want: dict[str, str]) -> list[str]:
    """Part files, from the finished build's shards and state, for the clips of ``want`` (clip_id -> inputs)
    that the state holds for the same settings and inputs and that have no part yet; returns their ids.
    Shards that left out the face images cannot give complete rows: then nothing is recovered."""
    if state.get("settings") != parts.fingerprint or not state.get("options", {}).get("images", True):
        return []
    todo: dict[str, ClipSummary | Skip] = {}
    for cid, inputs in want.items():
        rec = state["clips"].get(cid)
        if rec is None or rec.get("inputs") != inputs or parts.path(cid, inputs).exists():
            continue
        todo[cid] = outcome_of_record(rec)
    done = []
    for cid, o in list(todo.items()):  # skipped and dropped clips: nothing in the shards
        if isinstance(o, Skip) or o.rows == 0:
            parts.write(cid, want[cid], [], o)
            done.append(cid)
            del todo[cid]
    for name, _size, _mtime in state["shards"] if todo else ():
        with pq.ParquetFile(out / name) as pf:
            for i in range(pf.num_row_groups):
                t = pf.read_row_group(i, use_threads=False)
                ids = t.column("clip_id").to_pylist()
                start = 0
                while start < len(ids):
                    cid = ids[start]
                    end = start
                    while end < len(ids) and ids[end] == cid:
                        end += 1
                    if cid in todo and todo[cid].rows == end - start:
                        parts.write(cid, want[cid], _as_part_table(t.slice(start, end - start)), todo.pop(cid))
                        done.append(cid)
                    start = end
    return done
