"""Uni-MER builder: motion-verified instruction data from micro-expression databases.

The names below are the builder's public surface: what other packages (``deft_model``) and users import.
The modules behind them may be reorganised; these names stay.

* building: :func:`build` (a whole database -> shards, card, report), :class:`BuildConfig` and its parts,
  :func:`build_config_from_dict` (settings as a report recorded them), :func:`synthesize` (a synthetic
  database with ground truth)
* reading clips: :func:`read_clips` (a database), :func:`clip_from_folder` (one folder of frames)
* measuring: :class:`Tools` (what a process loads once), :func:`compute_evidence` (face, TV-L1 flow,
  strain, region statistics), :func:`cross_check`
* rows: :func:`clip_rows` and :func:`rows_to_table` give shard rows (:data:`SCHEMA`) in memory,
  :func:`flow_numpy` reads a ``flow`` column back
* text: :func:`render_samples`, :func:`standard_instructions`, :func:`render_prediction` (a model's
  prediction in the templates' wording), :func:`parse_answer`
* vocabulary: :data:`REGION_NAMES`, :data:`VERIFIABLE_AUS`, :data:`AUS`, :data:`REGIONS`, emotion labels
"""

from ._version import __version__
from .atomic import write_json
from .config import (
    TASKS,
    BuildConfig,
    CheckConfig,
    FaceConfig,
    FlowConfig,
    HeadConfig,
    OutputConfig,
    RegionConfig,
    TextConfig,
    build_config_from_dict,
)
from .crosscheck import cross_check
from .errors import InputError, UnusableInput
from .evidence import compute_evidence
from .facs import (
    AUS,
    DIRECTION_WORDS,
    EMOTION_AUS,
    REGION_BY_NAME,
    REGION_NAMES,
    REGIONS,
    VERIFIABLE_AUS,
    au_name,
    direction_word,
)
from .labels import COMPOSITE, EMOTIONS, canonical, composite, database_class, default_class_set
from .pipeline import build
from .records import Clip, ClipSummary, CrossCheck, Evidence, RegionStats, Sample, Skip
from .render import parse_answer, render_prediction, render_samples, standard_instructions
from .shards import FACE_COLUMNS, SCHEMA, clip_rows, flow_numpy, read_shard, rows_to_table, shard_files
from .sources import FORMATS, clip_from_folder, read_clips
from .synth.generate import synthesize
from .tools import Tools

__all__ = [
    "AUS", "BuildConfig", "COMPOSITE", "CheckConfig", "Clip", "ClipSummary", "CrossCheck", "DIRECTION_WORDS",
    "EMOTIONS", "EMOTION_AUS", "Evidence", "FACE_COLUMNS", "FORMATS", "FaceConfig", "FlowConfig", "HeadConfig", "InputError",
    "OutputConfig", "REGIONS", "REGION_BY_NAME", "REGION_NAMES", "RegionConfig", "RegionStats", "SCHEMA", "Sample",
    "Skip", "TASKS", "TextConfig", "Tools", "UnusableInput", "VERIFIABLE_AUS", "__version__", "au_name", "build",
    "build_config_from_dict", "canonical", "clip_from_folder", "clip_rows", "composite", "compute_evidence",
    "cross_check", "database_class", "default_class_set", "direction_word", "flow_numpy", "parse_answer",
    "read_clips", "read_shard", "render_prediction", "shard_files", "render_samples", "rows_to_table", "standard_instructions", "synthesize",
    "write_json",
]
