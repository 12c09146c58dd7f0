"""Reading Uni-MER Parquet shards (docs/ARCHITECTURE.md) into model inputs, folds and the collator.

Light columns (ids, labels, text, per-region statistics) are read for every row. Visual columns are
read one row group at a time and decoded once per clip (the 4 task rows of a clip share them) at model
resolution: uint8 onset crop, uint8 frame stack, float16 flow. Nothing else is kept.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from jinja2.exceptions import TemplateError

from unimer_builder import COMPOSITE, FACE_COLUMNS, canonical, read_shard, shard_files

from .configuration import DeftConfig
from .errors import ShardError

BASE_COLUMNS = ("id", "clip_id", "database", "subject", "task", "instruction", "answer", "emotion")
EXPERT_COLUMNS = {"structure": ("onset_image",), "dynamic": ("frames",), "motion": ("flow", "regions")}
TARGET_COLUMNS = {"canonical": "emotion", "composite": "emotion_composite", "class": "emotion_class"}
OPTIONAL_LIGHT = ("emotion_composite", "emotion_class", "aus_supported", "aus", "aus_source", "regions",
                  "noise_floor", "template_id", "unexplained", "duration_s", "duration_class", "moved_regions")
LIGHT = BASE_COLUMNS + OPTIONAL_LIGHT


def data_identity(data_dir: str | Path) -> str:
    """What a run was trained on beyond its folder's path: each shard's name, size and row count. A dataset built
    again into the same folder (other clips, labels or settings) gets another identity, so that a resume or a
    LOSO fold does not reuse a model of the data that was there before."""
    h = hashlib.sha256()
    for f in find_shards(data_dir):
        h.update(f"{f.name}\0{f.stat().st_size}\0{pq.read_metadata(f).num_rows}\n".encode())
    return h.hexdigest()[:16]


def find_shards(data_dir: str | Path) -> list[Path]:
    d = Path(data_dir)
    if d.is_file() and d.suffix == ".parquet":
        return [d]
    if not d.exists():
        raise ShardError(f"data directory {d} does not exist")
    files = sorted((d / "data").glob("*.parquet")) if (d / "data").is_dir() else []
    if not files and (d / ".parts").is_dir():
        try:  # an unfinished build: its clips' parts (found below) are no dataset; the builder says what to do
            shard_files(d)
        except FileNotFoundError as e:
            raise ShardError(str(e)) from None
    files = files or sorted(d.glob("*.parquet"))
    if not files:
        roots = _builds_below(d)
        if len(roots) > 1:  # a folder of several builds was merged into one dataset, each clip as often as built
            shown = ", ".join(str(r) for r in roots[:3]) + (", ..." if len(roots) > 3 else "")
            raise ShardError(f"{d} holds {len(roots)} builds ({shown}): pass one with --data (and others with "
                             f"--extra-data)")
        files = sorted(p for p in d.rglob("*.parquet") if not any(s.startswith(".") for s in p.relative_to(d).parts))
    if not files:
        raise ShardError(f"no Parquet shards (*.parquet) under {d} (expected {d}/data/*.parquet)")
    return files


def _builds_below(d: Path) -> list[Path]:
    """The builder's output folders under ``d`` (each marked by its ``build_report.json``), hidden folders aside."""
    return sorted(p.parent for p in d.rglob("build_report.json")
                  if not any(s.startswith(".") for s in p.relative_to(d).parts))


def build_settings(data_dir: str | Path) -> dict | None:
    """The builder settings that made the shards (``build_report.json``'s ``config``), or None if the
    folder has no report. Prediction on a new clip measures it with the same settings."""
    d = Path(data_dir)
    d = d.parent.parent if d.is_file() else d
    candidates = [d / "build_report.json", d.parent / "build_report.json"]
    if d.is_dir() and not candidates[0].exists():
        below = _builds_below(d)  # --data the folder holding one build (its shards were found below it)
        candidates += [below[0] / "build_report.json"] if len(below) == 1 else []
    for f in candidates:
        if f.exists():
            try:
                return json.loads(f.read_text()).get("config")
            except json.JSONDecodeError as e:
                raise ShardError(f"{f}: not valid JSON ({e})") from e
    return None


def required_columns(config: DeftConfig) -> list[str]:
    cols = list(BASE_COLUMNS)
    for e in config.experts:
        cols += EXPERT_COLUMNS[e]
    if config.emotion_target != "canonical":
        cols.append(TARGET_COLUMNS[config.emotion_target])
    return cols


def fold_key(database: str, subject: str) -> str:
    return f"{database}/{subject}"


# --- decoding --------------------------------------------------------------------------------------

def _decode_png(b: bytes | None, size: int, where: str) -> np.ndarray:
    import cv2

    if b is None:
        raise ShardError(f"{where}: image has no bytes")
    img = cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise ShardError(f"{where}: image bytes are not a decodable PNG/JPEG")
    if img.shape != (size, size):
        img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    return img


def _image_bytes(v) -> bytes | None:
    if isinstance(v, dict):
        return v.get("bytes")
    return v


def _flow_array(col: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    """Array3D column (extension, nested lists, or fixed-size lists) -> (n, 3, F, F) float16."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if isinstance(arr.type, pa.ExtensionType):
        arr = arr.storage
    n = len(arr)
    if arr.null_count:
        raise ShardError(f"{where}: column 'flow' has null rows")
    vals = arr
    while pa.types.is_list(vals.type) or pa.types.is_large_list(vals.type) or pa.types.is_fixed_size_list(vals.type):
        vals = vals.flatten()
    flat = vals.to_numpy(zero_copy_only=False)
    if n == 0:
        return np.zeros((0, 3, 1, 1), np.float16)
    per = flat.size // n
    side = int(round((per / 3) ** 0.5))
    if per * n != flat.size or 3 * side * side != per:
        raise ShardError(f"{where}: column 'flow' is not (3, F, F) per row ({per} values per row)")
    return flat.reshape(n, 3, side, side).astype(np.float16, copy=False)


def _resize_flow(flow: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if flow.shape[-1] == size:
        return flow
    return np.stack([cv2.resize(c.astype(np.float32), (size, size), interpolation=cv2.INTER_AREA)
                     for c in flow]).astype(np.float16)


def _check_extra(data_dir: Path, extra: list[Path]) -> None:
    """Extra training data must be other builds than ``data_dir`` and than each other: the same build (or a copy of
    it, by :func:`data_identity`) given again trained every LOSO fold on its own held-out subject, under the
    extra data's own names, which no leak check sees."""
    seen = {data_dir.resolve(): ("--data", data_identity(data_dir))}
    for d in extra:
        ident = data_identity(d)
        same = seen.get(d.resolve()) or next((v for v in seen.values() if v[1] == ident), None)
        if same is not None:
            raise ShardError(f"--extra-data {d} is the build {same[0]} gives (the same shards): its subjects would "
                             f"train their own held-out folds; give another build")
        clip = _same_footage(data_dir, d)
        if clip is not None:
            raise ShardError(f"--extra-data {d} holds the clips --data gives, built again (clip {clip}: the same window, "
                             f"label and face): its subjects would train their own held-out folds; give a build of "
                             f"other footage")
        seen[d.resolve()] = (f"--extra-data {d}", ident)


_WINDOW = ("clip_id", "onset_frame", "apex_frame", "offset_frame", "au_text")


def _clip_faces(data_dir: Path, images_of: set[tuple] | None = None) -> dict[tuple, dict]:
    """One row per clip: its window and label (the key), its subject, and what shows its face at the onset where the
    shards carry it (normalised landmarks; with ``images_of``, the onset crops of those clips only: a build's crops
    are most of its bytes)."""
    import pyarrow.compute as pc

    out: dict[tuple, dict] = {}
    if images_of is not None and not images_of:
        return out
    for f in find_shards(data_dir):
        names = pq.read_schema(f).names
        if not set(_WINDOW) <= set(names):
            continue
        extra = ("onset_image",) if images_of is not None else ("database", "subject", "landmarks", "crop_size")
        table = read_shard(f, columns=[*_WINDOW, *(c for c in extra if c in names)])
        if images_of is not None:
            if "onset_image" not in names:
                continue
            ids = pa.array(sorted({k[0] for k in images_of}), pa.string())
            table = table.filter(pc.is_in(table.column("clip_id"), value_set=ids))
        for r in table.to_pylist():
            key = tuple(r[c] for c in _WINDOW)
            if images_of is None or key in images_of:
                out.setdefault(key, r)
    return out


def _same_face(a: dict, b: dict) -> bool | None:
    """Whether two clips of one window and label show the same face at their onsets: their onset crops correlating
    at 0.6 or more (32 px), or their landmarks (over the crop) within 1 % of the crop; None: nothing to compare.
    Measured on hard-profile builds of one seed: a Cropped copy's onset crops correlate 0.66-0.94 with the whole
    frames' in 7 of 8 clips (landmarks 0.5-4.7 % apart), other people's -0.41-0.27 (landmarks 3.2-4.7 % apart)."""
    import cv2

    votes = []
    pics = [(r.get("onset_image") or {}).get("bytes") for r in (a, b)]
    if all(pics):
        imgs = [cv2.resize(cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_GRAYSCALE), (32, 32),
                           interpolation=cv2.INTER_AREA).astype(float).ravel() for p in pics]
        x, y = (i - i.mean() for i in imgs)
        votes.append((x @ y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9) >= 0.6)
    if a.get("landmarks") is not None and b.get("landmarks") is not None and a.get("crop_size") and b.get("crop_size"):
        la = np.asarray(a["landmarks"], float) / float(a["crop_size"])
        lb = np.asarray(b["landmarks"], float) / float(b["crop_size"])
        if la.shape == lb.shape:
            votes.append(np.median(np.hypot(*(la - lb).T)) < 0.01)
    return bool(any(votes)) if votes else None


def _same_footage(data_dir: Path, extra_dir: Path) -> str | None:
    """A clip of ``data_dir`` that ``extra_dir`` holds again (the same window, label and face: a rebuild with other
    settings, a Cropped copy), where most of its subject's clips the two share by window and label show the same
    face; else None. Other people (the hard profile's other identities) share windows and labels for a seed, never
    faces; one subject seen again is a leak into its own fold."""
    mine, theirs = _clip_faces(data_dir), _clip_faces(extra_dir)
    shared = set(sorted(set(mine) & set(theirs), key=str)[:400])
    pics = [_clip_faces(d, shared) for d in (data_dir, extra_dir)]
    votes: dict[tuple, list[tuple[str, bool]]] = {}
    for k in sorted(shared, key=str):
        same = _same_face({**mine[k], **pics[0].get(k, {})}, {**theirs[k], **pics[1].get(k, {})})
        if same is not None:
            votes.setdefault((mine[k].get("database"), mine[k].get("subject")), []).append((k[0], same))
    for subject_votes in votes.values():
        same = [clip for clip, v in subject_votes if v]
        if 2 * len(same) > len(subject_votes):
            return same[0]
    return None


def _mark_extra(table: pa.Table, k: int) -> pa.Table:
    """Rows of the k-th extra training database, renamed so that they can never collide with the data's own
    (``extra<k>:`` before id, clip id and subject: a clip or subject of the same name stays another one)."""
    for col in ("id", "clip_id", "subject"):
        i = table.schema.get_field_index(col)
        vals = [None if v is None else f"extra{k}:{v}" for v in table.column(col).to_pylist()]
        table = table.set_column(i, col, pa.array(vals, pa.string()))
    return table


# --- the shard set -------------------------------------------------------------------------------

class ShardSet:
    """All rows' light columns plus per-clip decoded visuals for the experts a config switches on.

    Rows come from the Parquet shards under ``data_dir`` or, through :meth:`from_table`, from a table
    in memory (one clip's rows as the builder's ``clip_rows`` makes them, for prediction): both are read
    by the same code, so a clip predicted from its folder reaches the model as its shard row would."""

    def __init__(self, data_dir: str | Path, config: DeftConfig, extra: Sequence[str | Path] = ()):
        self.data_dir = Path(data_dir)
        self.extra_dirs = [Path(d) for d in extra]
        main_files = find_shards(data_dir)
        _check_extra(self.data_dir, self.extra_dirs)
        extra_files = [(k, f) for k, d in enumerate(self.extra_dirs) for f in find_shards(d)]
        self.files = main_files + [f for _, f in extra_files]
        self._table: pa.Table | None = None
        need = required_columns(config)
        names_per_file = []
        for f in self.files:
            try:
                names = set(pq.read_schema(f).names)
            except Exception as e:  # noqa: BLE001
                raise ShardError(f"{f}: not a readable Parquet file ({e})") from e
            self._check_columns(names, need, config, f"shard {f}")
            names_per_file.append(names)
        counts = [pq.ParquetFile(f).metadata.num_rows for f in self.files]
        tables = [read_shard(f, columns=[c for c in LIGHT if c in names]) for f, names in
                  zip(self.files, names_per_file, strict=True)]
        self.n_main_files = len(main_files)
        for j, (k, _) in enumerate(extra_files):  # extra training data: ids of its own, never a fold
            tables[len(main_files) + j] = _mark_extra(tables[len(main_files) + j], k)
        self._setup(tables, counts, config)

    @classmethod
    def from_table(cls, table: pa.Table, config: DeftConfig, where: str = "in-memory rows") -> ShardSet:
        """Rows held in memory (e.g. ``rows_to_table(clip_rows(...))``), read exactly as shard rows are."""
        self = cls.__new__(cls)
        self.data_dir = Path(where)
        self.extra_dirs = []
        self.files = [Path(where)]
        self._table = table
        self._check_columns(set(table.column_names), required_columns(config), config, where)
        self._setup([table.select([c for c in LIGHT if c in table.column_names])], [len(table)], config)
        return self

    @staticmethod
    def _check_columns(names: set[str], need: list[str], config: DeftConfig, what: str) -> None:
        missing = [c for c in need if c not in names]
        if missing:
            faceless = set(missing) <= set(FACE_COLUMNS) and {"flow", "regions"} <= names
            hint = ("; the shards hold no face pixels (built with `unimer build --no-images`): a model of the motion "
                    "expert alone reads them (`deft train` or `deft evaluate` with `--experts motion`)" if faceless
                    else "")
            raise ShardError(f"{what} is missing required column(s) {missing} "
                             f"(needed for experts {config.experts}, target {config.emotion_target!r}){hint}")
        if not ({"aus_supported", "aus"} & names):
            raise ShardError(f"{what} is missing required column 'aus_supported' (or its fallback 'aus')")

    def _setup(self, tables: list[pa.Table], counts: list[int], config: DeftConfig) -> None:
        self.config = config
        full = []
        for t in tables:
            for c in LIGHT:
                if c not in t.column_names:
                    t = t.append_column(c, pa.nulls(len(t)))
            full.append(t.select(list(LIGHT)))
        table = pa.concat_tables(full, promote_options="permissive")
        if len(table) == 0:
            raise ShardError(f"the shards under {self.data_dir} hold no rows")
        self.n = len(table)
        self.file_of_row = np.concatenate([np.full(n, i) for i, n in enumerate(counts)])
        # rows of extra training data (ShardSet(..., extra=...)): always trained on, never held out
        self.is_extra = self.file_of_row >= getattr(self, "n_main_files", len(counts))
        g = {c: table.column(c).to_pylist() for c in BASE_COLUMNS if c != "instruction" and c != "answer"}
        self.ids: list[str] = g["id"]
        self.clip_ids: list[str] = g["clip_id"]
        self.database: list[str] = g["database"]
        self.subject: list[str] = g["subject"]
        self.task: list[str] = g["task"]
        self.emotion: list[str] = g["emotion"]
        self.instruction: list[str] = table.column("instruction").to_pylist()
        self.answer: list[str] = table.column("answer").to_pylist()
        for c in ("id", "clip_id", "database", "subject", "task", "instruction", "answer"):
            vals = getattr(self, {"id": "ids", "clip_id": "clip_ids"}.get(c, c))
            bad = [i for i, v in enumerate(vals) if v is None]
            if bad:
                raise ShardError(f"{self._where(bad[0])}: column {c!r} is null")
        self.emotion_composite = table.column("emotion_composite").to_pylist()
        self.emotion_class = table.column("emotion_class").to_pylist()
        self.folds: list[str] = [fold_key(d, s) for d, s in zip(self.database, self.subject, strict=False)]
        self.aus = self._au_lists(table)
        self.aus_labelled = self._labelled_aus(table)
        # the AUs the builder's unexplained motion names (a parting, a jaw's drop, a blink its landmarks measured)
        self._unexplained_aus = [sorted({int(u["au"]) for u in us or () if u and u.get("au") is not None})
                                 for us in table.column("unexplained").to_pylist()]
        has_regions = table.column("regions").null_count < len(table)
        self.region_stats = self._region_stats(table) if "motion" in config.experts or has_regions else None
        # the builder's own region records (noise, head, match, ... beside the model's fields): what an explanation
        # is judged on, as the builder judges a label (deft predict's text)
        self._regions = table.column("regions").combine_chunks() if has_regions else None
        self.noise_floor = table.column("noise_floor").to_pylist()
        # what the build's row says of its clip beyond the model's inputs: its length and class, the regions it
        # reports as moving (None in builds that predate a column): a prediction's text follows the build's
        self._built = {c: table.column(c).to_pylist() for c in ("duration_s", "duration_class", "moved_regions")}
        self.template_id = table.column("template_id").to_pylist()
        self.row_of_id = {r: i for i, r in enumerate(self.ids)}
        self.clip_index: dict[str, int] = {}
        for c in self.clip_ids:
            self.clip_index.setdefault(c, len(self.clip_index))
        self.row_clip = np.array([self.clip_index[c] for c in self.clip_ids], np.int64)
        self._visuals_loaded = False

    def _where(self, row: int) -> str:
        f = self.files[int(self.file_of_row[row])]
        start = int(np.searchsorted(self.file_of_row, self.file_of_row[row]))
        return f"{f} row {row - start + 1}"

    def _au_lists(self, table: pa.Table) -> list[list[int]]:
        sup = table.column("aus_supported").to_pylist()
        lab = table.column("aus").to_pylist()
        out = []
        for s, a in zip(sup, lab, strict=False):
            if s is not None:
                out.append([int(x) for x in s])
            elif a is not None:
                out.append([int(t["au"]) for t in a if t and t.get("au") is not None])
            else:
                out.append([])
        return out

    def _labelled_aus(self, table: pa.Table) -> list[list[int]]:
        """The AUs each row's label names (``aus``); where the database has no AU labels for the clip
        (``aus_source`` is ``inferred``) or the column is absent, the supported AUs."""
        lab = table.column("aus").to_pylist()
        src = table.column("aus_source").to_pylist()
        out = []
        self.aus_labelled_by_motion = [a is None or source == "inferred" for a, source in zip(lab, src, strict=True)]
        for k, (a, source) in enumerate(zip(lab, src, strict=True)):
            if a is None or source == "inferred":
                out.append(list(self.aus[k]))
            else:
                out.append(sorted({int(t["au"]) for t in a if t and t.get("au") is not None}))
        return out

    def au_targets(self) -> list[list[int]]:
        """What the AU head learns per row (``DeftConfig.au_target``)."""
        return self.aus_labelled if self.config.au_target == "labelled" else self.aus

    def au_targets_from_motion(self) -> list[bool]:
        """Per row, whether its AU target comes from the builder's motion rather than a coder's labels (SMIC labels
        no AUs: its targets are the AUs inferred from motion; ``au_target`` "supported" takes the motion's)."""
        return list(self.aus_labelled_by_motion) if self.config.au_target == "labelled" else [True] * self.n

    def region_records(self, row: int) -> list[dict] | None:
        """Row ``row``'s region statistics as the builder wrote them (every field), or None without any."""
        return None if self._regions is None else self._regions[row].as_py()

    def measured_aus(self, row: int) -> list[int]:
        """The AUs row ``row``'s clip shows by the builder's measurement: those label and motion support (or inferred
        ones) and those its unexplained motion names; what an explanation says of AUs the landmarks measure."""
        return sorted(set(self.aus[row]) | set(self._unexplained_aus[row]))


    def built(self, r: int) -> dict:
        """What row ``r``'s build says of its clip for a prediction's text (``render.prediction_context``'s
        ``built``): the database, the clip's duration and class, the regions reported as moving."""
        return {"database": self.database[r], **{c: v[r] for c, v in self._built.items()}}

    def explanation_regions(self, row: int) -> list[dict] | np.ndarray | None:
        """What an explanation of row ``row`` is judged on: the builder's records, else the model's features."""
        return self.region_records(row) or (self.region_stats[row] if self.region_stats is not None else None)

    def _region_stats(self, table: pa.Table) -> np.ndarray:
        cfg = self.config
        R, S = len(cfg.region_names), len(cfg.region_stat_fields)
        col = table.column("regions").combine_chunks()
        out = np.zeros((self.n, R, S), np.float32)
        if col.null_count == len(col):
            raise ShardError(f"column 'regions' is empty in every row of {self.data_dir}")
        if len(col) != self.n:
            raise ShardError("column 'regions' has an unexpected length")
        lengths = col.value_lengths().fill_null(0).to_numpy()
        structs = col.flatten()
        if structs.type.get_field_index("name") < 0:
            raise ShardError("column 'regions' has no field 'name'")
        names = structs.field("name").to_numpy(zero_copy_only=False)
        rindex = {n: i for i, n in enumerate(cfg.region_names)}
        sel = np.array([rindex.get(n, -1) for n in names], np.int64)
        row = np.repeat(np.arange(self.n), lengths)
        keep = sel >= 0
        for j, fld in enumerate(cfg.region_stat_fields):
            if structs.type.get_field_index(fld) < 0:
                continue  # e.g. peak_time absent: stays 0
            v = structs.field(fld).to_numpy(zero_copy_only=False)
            v = np.nan_to_num(np.asarray(v, dtype=np.float32), nan=0.0)
            out[row[keep], sel[keep], j] = v[keep]
        return out

    # -- visuals -----------------------------------------------------------------------------------
    def load_visuals(self, rows: Sequence[int] | None = None) -> None:
        """Decode the visuals of the clips of ``rows`` (all rows if None), one row group at a time."""
        cfg = self.config
        n_clips = len(self.clip_index)
        if "structure" in cfg.experts and not cfg.image_size:
            raise ValueError("the config's image_size is unknown until its vision tower is resolved "
                             "(deft_model.modeling.resolve_image_size)")
        if not self._visuals_loaded:
            self.onset = np.zeros((n_clips, cfg.image_size or 1, cfg.image_size or 1), np.uint8) \
                if "structure" in cfg.experts else None
            self.frames = np.zeros((n_clips, cfg.stack_len, cfg.frame_size, cfg.frame_size), np.uint8) \
                if "dynamic" in cfg.experts else None
            self.flow = np.zeros((n_clips, 3, cfg.flow_size, cfg.flow_size), np.float16) \
                if "motion" in cfg.experts else None
            self.decoded = np.zeros(n_clips, bool)
            self._visuals_loaded = True
        wanted = np.zeros(n_clips, bool)
        wanted[self.row_clip if rows is None else self.row_clip[np.asarray(list(rows), np.int64)]] = True
        wanted &= ~self.decoded
        if not wanted.any():
            return
        vis_cols = [c for e in cfg.experts for c in EXPERT_COLUMNS[e] if c != "regions"]
        row0 = 0
        for nrg, read in self._row_groups():
            clips = self.row_clip[row0: row0 + nrg]
            first = np.zeros(nrg, bool)
            seen: set[int] = set()
            for i, c in enumerate(clips):
                if wanted[c] and c not in seen:
                    first[i] = True
                    seen.add(int(c))
            if first.any():
                take = np.nonzero(first)[0]
                t = read(vis_cols).take(pa.array(take))
                self._decode(t, clips[take], row0 + take)
                wanted[clips[take]] = False
            row0 += nrg

    def _row_groups(self):
        """(rows, read(columns) -> table) per row group of the shards, or the one in-memory table."""
        if self._table is not None:
            yield len(self._table), self._table.select
            return
        for f in self.files:
            pf = pq.ParquetFile(f)
            for rg in range(pf.num_row_groups):
                yield pf.metadata.row_group(rg).num_rows, (lambda cols, pf=pf, rg=rg: pf.read_row_group(rg, columns=cols))

    def _decode(self, t: pa.Table, clips: np.ndarray, rows: np.ndarray) -> None:
        cfg = self.config
        if "structure" in cfg.experts:
            imgs = t.column("onset_image").to_pylist()
            for c, r, v in zip(clips, rows, imgs, strict=False):
                self.onset[c] = _decode_png(_image_bytes(v), cfg.image_size, f"{self._where(r)} column 'onset_image'")
        if "dynamic" in cfg.experts:
            stacks = t.column("frames").to_pylist()
            for c, r, st in zip(clips, rows, stacks, strict=False):
                if not st:
                    raise ShardError(f"{self._where(r)}: column 'frames' is empty")
                idx = np.linspace(0, len(st) - 1, cfg.stack_len).round().astype(int)
                for k, j in enumerate(idx):
                    self.frames[c, k] = _decode_png(_image_bytes(st[j]), cfg.frame_size,
                                                    f"{self._where(r)} column 'frames'[{j}]")
        if "motion" in cfg.experts:
            fl = _flow_array(t.column("flow"), f"{self._where(int(rows[0]))}")
            for c, f in zip(clips, fl, strict=False):
                self.flow[c] = _resize_flow(f, cfg.flow_size)
        self.decoded[clips] = True

    # -- labels and folds --------------------------------------------------------------------------
    def targets(self) -> list[str | None]:
        t = self.config.emotion_target
        if t == "canonical":
            return [canonical(e) for e in self.emotion]
        if t == "composite":
            return list(self.emotion_composite)
        return list(self.emotion_class)

    def emotion_labels(self) -> list[str]:
        """The class set: the data's own targets, never extra training data's (a SMIC build added to CASME II
        gave a head of 7 classes, 2 of them never in a held-out fold); extra rows whose target is outside it
        train the AU head and the language model only, as evaluation scores such clips on their AUs only."""
        if self.config.emotion_target == "composite":
            return list(COMPOSITE)
        return sorted({t for t, x in zip(self.targets(), self.is_extra, strict=True) if t and not x})

    def foreign_targets(self, classes: Sequence[str]) -> dict[str, int]:
        """Targets of extra training data outside ``classes`` -> their number of clips."""
        clips: dict[str, set[str]] = {}
        for t, x, c in zip(self.targets(), self.is_extra, self.clip_ids, strict=True):
            if x and t and t not in classes:
                clips.setdefault(t, set()).add(c)
        return {t: len(c) for t, c in sorted(clips.items())}

    def instructions(self, rows: Sequence[int]) -> dict[str, str]:
        """Task -> the instruction of template variant 0 as ``rows`` word it (the wording a model trained on
        them knows); tasks with no variant-0 row are left out."""
        out: dict[str, str] = {}
        for r in rows:
            tid = self.template_id[r]
            if tid and tid == f"{self.task[r]}/0":
                out.setdefault(self.task[r], self.instruction[r])
        return out

    def subjects(self) -> list[str]:
        """The folds: the subjects of the data (not of extra training data)."""
        return sorted({f for f, x in zip(self.folds, self.is_extra, strict=True) if not x})

    def resolve_fold(self, fold: str) -> str:
        keys = self.subjects()
        if fold in keys:
            return fold
        matches = [k for k in keys if k.split("/", 1)[1] == fold]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise ShardError(f"fold {fold!r} is ambiguous: {matches}; name it as database/subject")
        raise ShardError(f"fold {fold!r} matches no subject in {self.data_dir} (known: {', '.join(keys[:20])}"
                         f"{' ...' if len(keys) > 20 else ''})")

    def split(self, fold: str | None) -> tuple[list[int], list[int]]:
        """(train rows, held-out rows) for a subject-held-out fold; rows without a target are dropped
        under the composite protocol."""
        keep = np.ones(self.n, bool)
        if self.config.emotion_target == "composite":
            keep = np.array([t is not None for t in self.targets()])
        if fold is None:
            return list(np.nonzero(keep)[0]), []
        key = self.resolve_fold(fold)
        held = np.array([k == key for k in self.folds]) & ~self.is_extra
        test = list(np.nonzero(held & keep)[0])
        train = list(np.nonzero(~held & keep)[0])
        if not test:
            raise ShardError(f"fold {key!r} has no rows to evaluate (emotion target {self.config.emotion_target!r})")
        if not train:
            why = " with a composite label (emotion_composite)" if self.config.emotion_target == "composite" else ""
            alone = ("; the data holds this one subject only: holding it out leaves nothing to train on (LOSO needs "
                     "two subjects or more; `deft train` without --fold trains on it)"
                     if len(self.subjects()) == 1 else "")
            raise ShardError(f"fold {key!r} leaves no training rows{why}{alone}")
        return train, test


# --- prompts and the dataset -----------------------------------------------------------------------

def placeholder_text(config: DeftConfig) -> str:
    heads = config.placeholders["heads"] if config.recognition_token else ""
    return "".join(config.placeholders[e] * config.n_tokens(e) for e in config.experts) + heads


def render_prompt(tokenizer, config: DeftConfig, instruction: str) -> str:
    """The prompt in the tokenizer's chat format. A template that refuses a system message (Gemma's "System role not
    supported", Mistral's "Conversation roles must alternate") gets the system prompt at the head of the user turn,
    as those models are instructed."""
    user = f"{placeholder_text(config)}\n{instruction}"
    if config.system_prompt:
        msgs = [{"role": "system", "content": config.system_prompt}, {"role": "user", "content": user}]
        try:
            return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        except TemplateError:
            user = f"{config.system_prompt}\n\n{user}"
    return tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                         add_generation_prompt=True)


class DeftDataset(torch.utils.data.Dataset):
    """Rows of a ShardSet as tokenised examples with their (shared, per-clip) visual inputs.

    With ``augment`` (training only: ``deft_model.augment``) each item is transformed by a draw seeded by
    (``seed``, the epoch set by :meth:`set_epoch`, the item's index); a mirrored item's answer is the
    answer with the subject's left and right swapped, tokenised here once."""

    def __init__(self, shards: ShardSet, rows: Sequence[int], tokenizer, with_answer: bool = True,
                 augment: dict | None = None, seed: int = 0):
        self.s = shards
        self.cfg = shards.config
        self.rows = np.asarray(list(rows), np.int64)
        shards.load_visuals(self.rows)
        cfg = self.cfg
        self.tokenizer = tokenizer
        prompts: dict[str, list[int]] = {}
        self.prompt_ids: list[list[int]] = []
        self.answer_ids: list[list[int]] = []
        eos = tokenizer.eos_token_id
        answers = [shards.answer[r] for r in self.rows]
        enc = tokenizer(answers, add_special_tokens=False).input_ids if with_answer and len(answers) else []
        for k, r in enumerate(self.rows):
            ins = shards.instruction[r]
            if ins not in prompts:
                prompts[ins] = tokenizer(render_prompt(tokenizer, cfg, ins), add_special_tokens=False).input_ids
            self.prompt_ids.append(prompts[ins])
            self.answer_ids.append(list(enc[k]) + [eos] if with_answer else [])
        self.augmenter = None
        self.epoch = 0
        self.answer_ids_mirrored: list[list[int] | None] = [None] * len(self.rows)
        if augment:
            from .augment import Augmenter, mirror_text

            self.augmenter = Augmenter(augment, cfg.region_names, cfg.region_stat_fields, seed)
            if with_answer and self.augmenter.spec["mirror"] > 0:
                for k, a in enumerate(answers):
                    m = mirror_text(a)
                    if m != a:
                        self.answer_ids_mirrored[k] = tokenizer(m, add_special_tokens=False).input_ids + [eos]
        label_index = {c: i for i, c in enumerate(cfg.emotion_labels)}
        targets = shards.targets()
        self.emotion = np.array([label_index.get(targets[r], -100) if targets[r] else -100 for r in self.rows],
                                np.int64)
        au_index = {a: i for i, a in enumerate(cfg.au_list)}
        self.au = np.zeros((len(self.rows), len(cfg.au_list)), np.float32)
        au_targets = shards.au_targets()
        for k, r in enumerate(self.rows):
            for a in au_targets[r]:
                if a in au_index:
                    self.au[k, au_index[a]] = 1.0

    def __len__(self):
        return len(self.rows)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict:
        r = int(self.rows[i])
        c = int(self.s.row_clip[r])
        item = {"row": r, "prompt_ids": self.prompt_ids[i], "answer_ids": self.answer_ids[i],
                "emotion": int(self.emotion[i]), "au": self.au[i]}
        if self.s.onset is not None:
            item["onset"] = self.s.onset[c]
        if self.s.frames is not None:
            item["frames"] = self.s.frames[c]
        if self.s.flow is not None:
            item["flow"] = self.s.flow[c]
            item["region_stats"] = self.s.region_stats[r]
        if self.augmenter is not None:
            item["answer_ids_mirrored"] = self.answer_ids_mirrored[i]
            item = self.augmenter.apply(item, self.augmenter.draw(self.epoch, i))
        return item


@dataclass
class DeftCollator:
    """Pads token ids; labels are -100 on the prompt and padding so only answer tokens carry LM loss.

    ``generation=True`` left-pads prompts only (for ``generate``)."""

    pad_token_id: int
    max_length: int = 384
    image_mean: float | list[float] = 0.5  # one number, or one per colour channel
    image_std: float | list[float] = 0.5
    generation: bool = False

    def __call__(self, items: list[dict]) -> dict:
        seqs, labs, ends = [], [], []
        for it in items:
            p = list(it["prompt_ids"])
            a = [] if self.generation else list(it["answer_ids"])
            if len(p) >= self.max_length:
                raise ValueError(f"prompt of row {it['row']} is {len(p)} tokens, more than max_length={self.max_length}")
            a = a[: self.max_length - len(p)]
            seqs.append(p + a)
            labs.append([-100] * len(p) + a)
            ends.append(len(p) - 1)
        L = max(len(s) for s in seqs)
        B = len(items)
        ids = torch.full((B, L), self.pad_token_id, dtype=torch.long)
        att = torch.zeros((B, L), dtype=torch.long)
        labels = torch.full((B, L), -100, dtype=torch.long)
        for i, (s, lab) in enumerate(zip(seqs, labs, strict=False)):
            n = len(s)
            if self.generation:
                ids[i, L - n:] = torch.tensor(s)
                att[i, L - n:] = 1
                ends[i] = L - 1
            else:
                ids[i, :n] = torch.tensor(s)
                att[i, :n] = 1
                labels[i, :n] = torch.tensor(lab)
        batch = {"input_ids": ids, "attention_mask": att, "prompt_end": torch.tensor(ends, dtype=torch.long),
                 "emotion_labels": torch.tensor([it["emotion"] for it in items], dtype=torch.long),
                 "au_labels": torch.from_numpy(np.stack([it["au"] for it in items])),
                 "rows": torch.tensor([it["row"] for it in items], dtype=torch.long)}
        if not self.generation:
            batch["labels"] = labels
        if "onset" in items[0]:
            x = torch.from_numpy(np.stack([it["onset"] for it in items])).float().div_(255.0)
            # a config whose tower was never resolved (a model built directly, DeftModel(config)): SigLIP's 0.5
            mean, std = (torch.tensor(0.5 if v is None else v, dtype=torch.float32).reshape(-1, 1, 1)
                         for v in (self.image_mean, self.image_std))
            batch["pixel_values"] = (x.unsqueeze(1).expand(-1, 3, -1, -1) - mean) / std  # grey, as three channels
        if "frames" in items[0]:
            batch["frames"] = torch.from_numpy(np.stack([it["frames"] for it in items])).float().div_(255.0)
        if "flow" in items[0]:
            batch["flow"] = torch.from_numpy(np.stack([it["flow"] for it in items]).astype(np.float32))
            batch["region_stats"] = torch.from_numpy(np.stack([it["region_stats"] for it in items]))
        return batch


class EpochSampler(torch.utils.data.Sampler):
    """Deterministic shuffle per epoch (seed + epoch), so a resumed run sees the same batches.

    With ``lengths`` and ``batch_size`` it groups rows of similar length into batches (sorted inside
    shuffled windows of ``window`` batches, then the full batches shuffled; a partial batch comes last):
    the short emotion answers then do not pay for the padding of long explanations."""

    def __init__(self, n: int, seed: int, shuffle: bool = True, lengths: Sequence[int] | None = None,
                 batch_size: int = 1, window: int = 16):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self.lengths = None if lengths is None else np.asarray(lengths)
        self.batch_size, self.window = batch_size, window

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.n))
        rng = np.random.default_rng(self.seed + self.epoch)
        perm = rng.permutation(self.n)
        if self.lengths is None or self.batch_size <= 1:
            return iter(perm.tolist())
        bs = self.batch_size
        span = bs * self.window
        batches = []
        for i in range(0, self.n, span):
            chunk = perm[i:i + span]
            chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            batches += [chunk[j:j + bs] for j in range(0, len(chunk), bs)]
        full = [b for b in batches if len(b) == bs]
        part = [b for b in batches if len(b) < bs]
        order = rng.permutation(len(full))
        out = [full[k] for k in order]
        rest = np.concatenate(part) if part else np.zeros(0, np.int64)
        out += [rest[j:j + bs] for j in range(0, len(rest), bs)]
        return iter(np.concatenate(out).tolist() if out else [])

    def __len__(self):
        return self.n
