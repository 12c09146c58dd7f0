"""Uni-MER builder: motion-verified instruction data from micro-expression databases.

The names below are the builder's public surface: what other packages (``deft_model``) may import. The
modules behind them may be reorganised; these names stay.

* reading clips: :func:`read_clips` (a database), :func:`clip_from_folder` (one folder of frames)
* measuring: :func:`compute_evidence` (face, TV-L1 flow, strain, region statistics), :func:`cross_check`
* rows: :func:`clip_rows` and :func:`rows_to_table` give shard rows (:data:`SCHEMA`) in memory,
  :func:`flow_numpy` reads a ``flow`` column back
* text: :func:`standard_instructions`, :func:`render_prediction` (a model's prediction in the templates'
  wording), :func:`parse_answer`
* vocabulary: :data:`REGION_NAMES`, :data:`VERIFIABLE_AUS`, :data:`AUS`, :data:`REGIONS`, emotion labels
"""

__version__ = "0.1.0"

from .config import BuildConfig, FlowConfig, build_config_from_dict  # noqa: E402
from .crosscheck import cross_check  # noqa: E402
from .errors import InputError, UnusableInput  # noqa: E402
from .evidence import compute_evidence  # noqa: E402
from .facs import (  # noqa: E402
    AUS,
    DIRECTION_WORDS,
    REGION_BY_NAME,
    REGION_NAMES,
    REGIONS,
    VERIFIABLE_AUS,
    au_name,
    direction_word,
)
from .labels import COMPOSITE, EMOTIONS, canonical, composite, database_class, default_class_set  # noqa: E402
from .records import Clip, CrossCheck, Evidence, RegionStats, Sample  # noqa: E402
from .render import TASKS, parse_answer, render_prediction, standard_instructions  # noqa: E402
from .shards import SCHEMA, clip_rows, flow_numpy, rows_to_table  # noqa: E402
from .sources import FORMATS, clip_from_folder, read_clips  # noqa: E402

__all__ = [
    "AUS", "BuildConfig", "COMPOSITE", "Clip", "CrossCheck", "DIRECTION_WORDS", "EMOTIONS", "Evidence", "FORMATS",
    "FlowConfig", "InputError", "REGIONS", "REGION_BY_NAME", "REGION_NAMES", "RegionStats", "SCHEMA", "Sample",
    "TASKS", "UnusableInput", "VERIFIABLE_AUS", "au_name", "build_config_from_dict", "canonical", "clip_from_folder",
    "clip_rows", "composite", "compute_evidence", "cross_check", "database_class", "default_class_set",
    "direction_word", "flow_numpy", "parse_answer", "read_clips", "render_prediction", "rows_to_table",
    "standard_instructions",
]
