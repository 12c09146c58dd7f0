"""DeftConfig: one Hugging Face config for the whole DEFT-LLM (experts, LLM, heads, losses, training).

Sub-models are named by a Hub id or local folder (``llm``, ``vision``: loaded with their real
``from_pretrained`` and never stored in a run, only referenced) or given as an inline config
(``text_config``, ``vision_config``: random weights, as the ``tiny`` preset does). As in Llava, the
LLM's config is the ``text_config`` sub-config and the tower's the ``vision_config``; once a named model
is loaded its config is recorded there too, so that the shapes are known without loading it.

Precision: frozen base weights (the LLM outside LoRA, a frozen vision tower) are kept in ``base_dtype``
(``float32`` or ``bfloat16``); every trainable parameter (LoRA, projectors, experts, heads, and the LLM
itself when it is trained in full) is float32, so AdamW updates fp32 master weights.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoConfig, PretrainedConfig

from unimer_builder import AUS, REGION_NAMES, VERIFIABLE_AUS

from .augment import check_augment

EXPERTS = ("structure", "dynamic", "motion")
PLACEHOLDERS = {"structure": "<struct>", "dynamic": "<dyn>", "motion": "<motion>", "heads": "<heads>"}
# Per-region statistics columns of the shard's `regions` list, in this order (see docs/ARCHITECTURE.md).
REGION_STAT_FIELDS = ("mean", "peak", "dx", "dy", "coherence", "strain", "z", "peak_time")
EMOTION_TARGETS = ("canonical", "composite", "class")
LLM_MODES = ("lora", "full", "frozen")
VISION_MODES = ("full", "frozen")
BASE_DTYPES = ("float32", "bfloat16")
# The motion expert's summary: a linear map of all regions side by side, or (runs before issue 9 item 2) their mean.
MOTION_SUMMARIES = ("regions", "mean")
# What the AU head learns: the AUs the database's labels name (AUs inferred from motion where it has no AU
# labels), or only those the builder's dual constraint also found in the motion (the AUs the text states).
AU_TARGETS = ("labelled", "supported")
# Settings a config.json written before they existed must read as the behaviour of that time.
LEGACY_DEFAULTS = {"motion_summary": "mean", "motion_summary_token": False, "recognition_token": False,
                   "au_target": "supported", "emotion_head_input": "both"}

DEFAULT_LOSS_WEIGHTS = {"lm": 1.0, "emotion": 1.0, "au": 1.0, "disentangle": 0.1}
DEFAULT_TRAINING = {
    "epochs": 3,
    "batch_size": 8,
    "lr": 2e-3,
    "weight_decay": 0.0,
    "betas": (0.9, 0.95),
    "warmup_steps": 10,
    "max_grad_norm": 1.0,
    "log_every": 10,
    "save_every": 0,  # steps between checkpoints; 0: once per epoch
    "keep_checkpoints": 2,
    "max_length": 384,
    # None: from the data (the longest tokenised training answer of the task, see DeftConfig.answer_tokens)
    "max_new_tokens": None,
    "group_by_length": True,  # batches of similar length (less padding); order still fixed by seed + epoch
    "num_threads": None,  # torch intra-op threads on CPU; tiny models run fastest (and share a busy CPU best) on 1
    # deft_model.augment settings ({"mirror": p, "rotate_deg", "scale", "amplitude": [lo, hi]}; None: off)
    "augment": {"mirror": 0.5, "rotate_deg": 5.0, "scale": 0.05, "amplitude": [0.8, 1.25]},
    "class_balance": True,  # emotion loss weighted by inverse class frequency of the training rows
}
# Generation budget over the longest training answer of a task: enough that an answer as long as the
# longest one the model saw is never cut, with room for a somewhat longer one.
ANSWER_MARGIN = 1.25
ANSWER_EXTRA_TOKENS = 8
_NOT_CONFIG_KEYS = ("model_type", "transformers_version", "architectures", "_name_or_path", "auto_map")


def sub_config(d: dict | PretrainedConfig | None) -> PretrainedConfig | None:
    """A sub-model config from a dict (``model_type`` names the class) or a config (copied)."""
    if d is None:
        return None
    if isinstance(d, PretrainedConfig):
        return copy.deepcopy(d)
    d = dict(d)
    if "model_type" not in d:
        raise ValueError(f"a sub-model config needs its 'model_type' (e.g. 'qwen2'); got keys {sorted(d)[:8]}")
    model_type = d.pop("model_type")
    for k in _NOT_CONFIG_KEYS:
        d.pop(k, None)
    return AutoConfig.for_model(model_type, **d)


def home_expanded(name: str | None) -> str | None:
    """A base model's folder written from the home folder (``~/models/qwen``): no shell expands it inside a config file
    or after ``--set llm=``, and a Hub id never starts with ``~``."""
    if not (isinstance(name, str) and name.startswith("~")):
        return name
    try:
        return str(Path(name).expanduser())
    except RuntimeError as e:  # ~nosuchuser/..., or no home folder
        raise ValueError(f"base model {name!r}: {e} (write the folder's full path)") from e


class DeftConfig(PretrainedConfig):
    model_type = "deft"
    _auto_class = "AutoConfig"  # save_pretrained writes auto_map and the code file (trust_remote_code)

    def __init__(
        self,
        llm: str | None = None,
        text_config: dict | PretrainedConfig | None = None,
        vision: str | None = None,
        vision_config: dict | PretrainedConfig | None = None,
        experts: list[str] | tuple[str, ...] = EXPERTS,
        n_struct_tokens: int = 4,
        n_dyn_tokens: int = 4,
        dyn_dim: int = 64,
        motion_dim: int = 64,
        image_size: int | None = None,
        image_mean: float | list[float] | None = None,
        image_std: float | list[float] | None = None,
        stack_len: int = 8,
        frame_size: int = 56,
        flow_size: int = 56,
        flow_scale: float = 1.0,
        region_names: list[str] | None = None,
        region_layout: dict[str, list[float]] | None = None,
        region_sigma: float = 0.07,
        region_stat_fields: list[str] | tuple[str, ...] = REGION_STAT_FIELDS,
        motion_summary: str = "regions",
        motion_summary_token: bool = True,
        recognition_token: bool = True,
        au_list: list[int] | None = None,
        au_target: str = "labelled",
        emotion_labels: list[str] | None = None,
        emotion_target: str = "canonical",
        emotion_head_input: str = "experts",
        lm_reduction: str = "sample",
        llm_mode: str = "full",
        vision_mode: str = "full",
        train_embeddings: bool = True,
        base_dtype: str = "float32",
        lora_r: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.0,
        lora_target_modules: list[str] | str | None = None,
        loss_weights: dict[str, float] | None = None,
        disentangle_memory: int = 32,
        expert_dropout: dict[str, float] | None = None,
        placeholders: dict[str, str] | None = None,
        placeholder_ids: dict[str, int] | None = None,
        system_prompt: str | None = None,
        training: dict[str, Any] | None = None,
        answer_tokens: dict[str, int] | None = None,
        build_config: dict | None = None,
        instructions: dict[str, str] | None = None,
        vocab_resized: dict[str, int] | None = None,
        base_fingerprints: dict[str, str] | None = None,
        llm_config: dict | None = None,  # the former name of text_config, still read
        **kwargs,
    ):
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        self.llm = home_expanded(llm)
        self.text_config = sub_config(text_config if text_config is not None else llm_config)
        self.vision = home_expanded(vision)
        self.vision_config = sub_config(vision_config)
        self.experts = list(experts)
        self.n_struct_tokens = n_struct_tokens
        self.n_dyn_tokens = n_dyn_tokens
        self.dyn_dim = dyn_dim
        self.motion_dim = motion_dim
        # the tower's own size unless set (a named tower's is read when it is loaded: resolve_image_size)
        self.image_size = image_size or getattr(self.vision_config, "image_size", None)
        # unset: the vision tower's own, from its image processor's config (modeling.resolve_image_size)
        self.image_mean = list(image_mean) if isinstance(image_mean, (list, tuple)) else image_mean
        self.image_std = list(image_std) if isinstance(image_std, (list, tuple)) else image_std
        self.stack_len = stack_len
        self.frame_size = frame_size
        self.flow_size = flow_size
        self.flow_scale = flow_scale
        self.region_names = list(region_names) if region_names else list(REGION_NAMES)
        self.region_layout = region_layout
        self.region_sigma = region_sigma
        self.region_stat_fields = list(region_stat_fields)
        self.motion_summary = motion_summary
        self.motion_summary_token = bool(motion_summary_token)
        self.recognition_token = bool(recognition_token)
        self.au_list = [int(a) for a in au_list] if au_list else list(VERIFIABLE_AUS)
        self.au_target = au_target
        self.emotion_labels = list(emotion_labels or [])
        self.emotion_target = emotion_target
        self.emotion_head_input = emotion_head_input
        self.lm_reduction = lm_reduction
        self.llm_mode = llm_mode
        self.vision_mode = vision_mode
        self.train_embeddings = train_embeddings
        self.base_dtype = base_dtype
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        # None: the LLM's attention projections (q/k/v/o_proj, or peft's default for its architecture);
        # "all-linear": every linear layer of its blocks (modeling.lora_targets)
        self.lora_target_modules = (list(lora_target_modules) if isinstance(lora_target_modules, (list, tuple))
                                    else lora_target_modules)
        self.loss_weights = {**DEFAULT_LOSS_WEIGHTS, **(loss_weights or {})}
        self.disentangle_memory = int(disentangle_memory)
        self.expert_dropout = {str(k): float(v) for k, v in (expert_dropout or {}).items()}
        self.placeholders = {**PLACEHOLDERS, **(placeholders or {})}
        self.placeholder_ids = dict(placeholder_ids or {})
        self.system_prompt = system_prompt
        self.training = {**DEFAULT_TRAINING, **(training or {})}
        self.answer_tokens = {str(k): int(v) for k, v in (answer_tokens or {}).items()}
        self.build_config = copy.deepcopy(build_config)
        self.instructions = dict(instructions or {})  # task -> the training data's variant-0 instruction
        self.vocab_resized = dict(vocab_resized) if vocab_resized else None
        self.base_fingerprints = dict(base_fingerprints or {})
        self.validate()

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """A saved config (config.json): settings it predates keep the behaviour it was trained with."""
        return super().from_dict({**LEGACY_DEFAULTS, **config_dict}, **kwargs)

    # ----------------------------------------------------------------------------------------------
    def validate(self) -> None:
        bad = [e for e in self.experts if e not in EXPERTS]
        if bad:
            raise ValueError(f"unknown expert(s) {bad}; choose from {list(EXPERTS)}")
        if not self.experts:
            raise ValueError("at least one expert must be switched on (experts: structure, dynamic, motion)")
        twice = sorted({e for e in self.experts if list(self.experts).count(e) > 1})
        if twice:  # each expert has one set of tokens in the prompt: a second copy failed counting them
            raise ValueError(f"expert(s) {twice} listed more than once in experts {list(self.experts)}")
        if self.emotion_target not in EMOTION_TARGETS:
            raise ValueError(f"emotion_target {self.emotion_target!r} is not one of {list(EMOTION_TARGETS)}")
        if self.llm_mode not in LLM_MODES:
            raise ValueError(f"llm_mode {self.llm_mode!r} is not one of {list(LLM_MODES)}")
        if self.vision_mode not in VISION_MODES:
            raise ValueError(f"vision_mode {self.vision_mode!r} is not one of {list(VISION_MODES)}")
        if self.base_dtype not in BASE_DTYPES:
            raise ValueError(f"base_dtype {self.base_dtype!r} is not one of {list(BASE_DTYPES)}")
        if self.lm_reduction not in ("sample", "token"):
            raise ValueError("lm_reduction must be 'sample' (mean per answer, then over rows) or 'token'")
        if self.motion_summary not in MOTION_SUMMARIES:
            raise ValueError(f"motion_summary {self.motion_summary!r} is not one of {list(MOTION_SUMMARIES)}")
        if self.au_target not in AU_TARGETS:
            raise ValueError(f"au_target {self.au_target!r} is not one of {list(AU_TARGETS)}")
        if self.emotion_head_input not in ("experts", "llm", "both"):
            raise ValueError("emotion_head_input must be 'experts', 'llm' or 'both'")
        if self.recognition_token and self.emotion_head_input != "experts":
            raise ValueError("recognition_token gives the LLM the heads' outputs, so the emotion head cannot read the "
                             "LLM: set emotion_head_input to 'experts'")
        if self.llm is None and self.text_config is None:
            raise ValueError("the config names no LLM: set `llm` (hub id or folder) or `text_config` (a dict)")
        if "structure" in self.experts and self.vision is None and self.vision_config is None:
            raise ValueError("the structure expert needs `vision` (hub id or folder) or `vision_config`")
        bad = sorted(set(self.expert_dropout) - set(EXPERTS))
        if bad or any(not 0.0 <= p < 1.0 for p in self.expert_dropout.values()):
            raise ValueError(f"expert_dropout {self.expert_dropout} must map experts ({list(EXPERTS)}) to "
                             "probabilities in [0, 1)")
        unknown = [a for a in self.au_list if a not in AUS]
        if unknown or len(set(self.au_list)) != len(self.au_list):  # an AU999 head trained on no label, unseen
            raise ValueError(f"au_list {self.au_list} must list FACS action units once each"
                             + (f" ({unknown} {'is' if len(unknown) == 1 else 'are'} none)" if unknown else ""))
        check_augment(self.training.get("augment"))
        for key, value in self.training.items():
            _check_training_value(key, value)
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Sizes a model can be built with, named here (``stack_len=0`` was stored and failed in the data loader)."""
        least = {"n_struct_tokens": 1, "n_dyn_tokens": 1, "dyn_dim": 1, "motion_dim": 1, "frame_size": 1,
                 "flow_size": 1, "lora_r": 1, "disentangle_memory": 0,
                 "stack_len": 2}  # the dynamic expert reads frame differences: two frames at least
        for key, low in least.items():
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{key} must be an integer of at least {low}, not {v!r}")
        for key in ("lora_alpha", "region_sigma", "flow_scale"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"{key} must be a number above 0, not {v!r}")
        for key, low in (("image_mean", -math.inf), ("image_std", 0.0)):  # one number, or one per channel (RGB)
            v = getattr(self, key)
            values = v if isinstance(v, list) else [v]
            if v is not None and (len(values) not in (1, 3) or any(
                    isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or not x > low
                    for x in values)):
                raise ValueError(f"{key} must be a number{' above 0' if low == 0 else ''} or a list of three (one per "
                                 f"colour channel), or unset (the vision tower's own), not {v!r}")
        if isinstance(self.lora_dropout, bool) or not isinstance(self.lora_dropout, (int, float)) \
                or not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be a number in [0, 1), not {self.lora_dropout!r}")
        unknown = set(self.loss_weights) - set(DEFAULT_LOSS_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown loss weight(s) {sorted(unknown)}; known: {sorted(DEFAULT_LOSS_WEIGHTS)}")
        tower = getattr(self.vision_config, "image_size", None)
        if "structure" in self.experts and tower and self.image_size and int(self.image_size) != int(tower):
            raise ValueError(f"image_size {self.image_size} differs from the vision tower's own image_size {tower}: "
                             "leave image_size unset (the tower's is used) or use a tower trained at that size")

    @property
    def llm_config(self) -> dict | None:
        """The LLM config as a dict (the former field name)."""
        return None if self.text_config is None else self.text_config.to_dict()

    def n_tokens(self, expert: str) -> int:
        return {"structure": self.n_struct_tokens, "dynamic": self.n_dyn_tokens,
                "motion": len(self.region_names) + int(self.motion_summary_token)}[expert]

    def max_new_tokens(self, task: str | None = None) -> int:
        """Generation budget for a task's answer: the training setting if given, otherwise from the data."""
        fixed = self.training.get("max_new_tokens")
        if fixed:
            return int(fixed)
        known = self.answer_tokens
        n = known.get(task) if task in known else (max(known.values()) if known else None)
        if n is None:
            return 256
        return int(n * ANSWER_MARGIN) + ANSWER_EXTRA_TOKENS

    def request_dict(self) -> dict:
        """The settings a user asks for, without what training fills in (for comparing fold runs)."""
        d = json.loads(json.dumps(self.to_dict(), default=str))
        for k in (*_NOT_CONFIG_KEYS, "placeholder_ids", "answer_tokens", "build_config", "instructions",
                  "vocab_resized", "base_fingerprints", "dtype"):
            d.pop(k, None)
        if not self.emotion_labels:
            d.pop("emotion_labels", None)
        return d


def setting_differences(old: dict, new: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(key, old, new) for each setting that differs between two JSON-like config dicts (``request_dict``),
    nested dicts key by key (``training.lr``)."""
    diffs = []
    for k in sorted(set(old) | set(new)):
        o, n = old.get(k), new.get(k)
        if isinstance(o, dict) and isinstance(n, dict):
            diffs += setting_differences(o, n, f"{prefix}{k}.")
        elif o != n:
            diffs.append((f"{prefix}{k}", o, n))
    return diffs


# DeftConfig's own settings: what an override may name (PretrainedConfig's generic keys are not settings here).
_PARAMS_SIG = inspect.signature(DeftConfig.__init__).parameters
_PARAMS = frozenset(_PARAMS_SIG) - {"self", "kwargs"}


# --- presets ---------------------------------------------------------------------------------------

def check_overrides(overrides: dict) -> dict:
    """Settings as a user gives them (``--set KEY=VALUE``, keyword arguments, a JSON file of their own), checked:
    ``training.lr`` is a key of ``training``, a comma-separated string of experts is their list, and a key the
    config does not have is an error naming it (such a key was stored and ignored: ``--set lr=0.5`` trained at the
    preset's rate, ``--set experts=structure`` asked for the experts s, t, r, ...)."""
    out: dict = {}
    for k, v in overrides.items():
        head, dot, sub = k.partition(".")
        if dot and head == "training":
            _check_training_keys([sub])
            _check_training_value(sub, v)
            out["training"] = {**out.get("training", {}), sub: v}
            continue
        if dot and head in ("text_config", "llm_config", "vision_config"):  # one field, merged onto the preset's
            head = "text_config" if head == "llm_config" else head
            out[head] = {**out.get(head, {}), sub: v}
            continue
        if dot or head not in _PARAMS:
            raise ValueError(f"unknown config key {k!r}{_did_you_mean(k)}")
        if head == "training":
            if not isinstance(v, dict):  # a shell ate the quotes of --set training={"epochs":1}
                raise ValueError(f"training takes a JSON object, not {v!r}: quote it for the shell "
                                 f"(--set 'training={{\"epochs\": 2}}'), or set one key: training.epochs=2")
            _check_training_keys(list(v))
            for sub, x in v.items():
                _check_training_value(sub, x)
            v = {**out.get("training", {}), **v}
        if head == "experts" and isinstance(v, str):
            v = [e.strip() for e in v.split(",") if e.strip()]
        if isinstance(v, np.generic):  # numpy's scalars (a value read from an array) as the Python number they are
            v = v.item()
        _check_value(k, v)
        out[k] = v
    return out


# A setting's annotation -> the JSON values it takes (``--set lora_r=abc`` stored "abc" and failed in peft,
# ``frame_size=abc`` in numpy; both far from the setting named)
_KINDS = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list, tuple),
          "tuple": (list, tuple), "dict": (dict,), "PretrainedConfig": (PretrainedConfig,), "None": (type(None),)}
_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string", "list": "a list",
          "tuple": "a list", "dict": "a JSON object", "PretrainedConfig": "a config", "None": "null"}


def _check_value(key: str, value) -> None:
    """A top-level setting given as the type its parameter takes (by :class:`DeftConfig`'s annotation)."""
    kinds = [part.strip().split("[")[0] for part in str(_PARAMS_SIG[key].annotation).split("|")]
    kinds = [k for k in kinds if k in _KINDS]
    if not kinds:
        return
    ok = any(isinstance(value, _KINDS[k]) for k in kinds)
    if isinstance(value, bool) and "bool" not in kinds:  # true is no integer here
        ok = False
    if not ok:
        raise ValueError(f"{key} takes {' or '.join(_WORDS[k] for k in kinds)}, not {value!r}")


def _check_training_keys(keys: list[str]) -> None:
    for sub in keys:
        if sub not in DEFAULT_TRAINING:
            near = difflib.get_close_matches(sub, list(DEFAULT_TRAINING), n=1)
            hint = f" (did you mean training.{near[0]}?)" if near else f"; known: {', '.join(DEFAULT_TRAINING)}"
            raise ValueError(f"unknown training key {sub!r}{hint}")


# The least value of each numeric training setting (an integer where the second item says so) and whether it may
# equal it: ``--set training.lr=-1`` failed in torch's optimiser ("Invalid learning rate: -1.0"), naming no setting
_TRAINING_RANGES = {"epochs": (1, True, True), "batch_size": (1, True, True), "lr": (0, False, False),
                    "weight_decay": (0, False, True), "warmup_steps": (0, True, True),
                    "max_grad_norm": (0, False, True), "log_every": (0, True, True), "save_every": (0, True, True),
                    "keep_checkpoints": (0, True, True), "max_length": (1, True, True),
                    "max_new_tokens": (1, True, True), "num_threads": (1, True, True)}


def _check_training_value(key: str, value) -> None:
    """A training setting given as the kind and range it takes (``--set training.lr=abc`` failed deep in the
    optimiser with "could not convert string to float: 'abc'", ``training.lr=-1`` with "Invalid learning rate"; both
    named no setting). Settings a config does not know are left to :func:`_check_training_keys`."""
    default = DEFAULT_TRAINING.get(key)
    numeric = key in _TRAINING_RANGES or isinstance(default, (int, float)) and not isinstance(default, bool)
    if key in ("max_new_tokens", "num_threads") and value is None:  # None: from the data / torch's own
        return
    if numeric and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"training.{key} takes a number, not {value!r}")
    if numeric and not math.isfinite(value):
        raise ValueError(f"training.{key} takes a finite number, not {value!r}")
    if key in _TRAINING_RANGES:
        low, integer, inclusive = _TRAINING_RANGES[key]
        if integer and value != int(value):
            raise ValueError(f"training.{key} takes a whole number, not {value!r}")
        if not (value >= low if inclusive else value > low):
            raise ValueError(f"training.{key} must be {'at least' if inclusive else 'above'} {low}, not {value!r}")
    if key == "betas" and (not isinstance(value, (list, tuple)) or len(value) != 2
                           or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                      for b in value)):
        raise ValueError(f"training.betas takes two numbers in [0, 1) (Adam's), not {value!r}")
    if key in ("group_by_length", "class_balance") and not isinstance(value, bool):
        raise ValueError(f"training.{key} takes true or false, not {value!r}")


def _did_you_mean(key: str) -> str:
    if key in DEFAULT_TRAINING:
        return f" (a training setting: training.{key}=VALUE)"
    near = difflib.get_close_matches(key, sorted(_PARAMS | {f"training.{t}" for t in DEFAULT_TRAINING}), n=1)
    return f" (did you mean {near[0]}?)" if near else ""


def _merge(kw: dict, overrides: dict) -> None:
    """Overrides replace preset values; a ``training`` dict is merged key by key, and so is a sub-model's config
    (``text_config``, ``vision_config``) of the preset's model type: one field changed in a file turned the tiny
    LLM into a default Qwen2 of 32 layers and a 151,936-token vocabulary, and a misspelt field was taken."""
    for k, v in overrides.items():
        if k == "llm_config":
            k = "text_config"
        if k == "training" and isinstance(v, dict):
            kw["training"] = {**kw.get("training", DEFAULT_TRAINING), **v}
        elif k in ("text_config", "vision_config") and isinstance(v, dict) and isinstance(kw.get(k), dict) \
                and v.get("model_type", kw[k].get("model_type")) == kw[k].get("model_type"):
            known = set(kw[k]) | set(AutoConfig.for_model(kw[k]["model_type"]).to_dict())
            for field in v:
                if field not in known:
                    near = difflib.get_close_matches(field, sorted(known), n=1)
                    raise ValueError(f"{k}.{field}: a {kw[k]['model_type']} config has no such field"
                                     + (f" (did you mean {k}.{near[0]}?)" if near else ""))
            base = dict(kw[k])
            if "layer_types" not in v:  # derived from the layer count and the sliding window: made again from them
                base.pop("layer_types", None)
            kw[k] = {**base, **v}
        else:
            kw[k] = v


def tiny_config(**overrides) -> DeftConfig:
    """Random weights, builds offline in well under a second: a 2-layer 64-d Qwen2 and a tiny SigLIP."""
    text_config = dict(
        model_type="qwen2", vocab_size=1024, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        tie_word_embeddings=False, bos_token_id=None, eos_token_id=None, pad_token_id=None,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    vision_config = dict(
        model_type="siglip_vision_model", image_size=32, patch_size=8, num_channels=3, hidden_size=32,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
    )
    kw: dict[str, Any] = dict(
        text_config=text_config, vision_config=vision_config, n_struct_tokens=2, n_dyn_tokens=2,
        dyn_dim=32, motion_dim=32, stack_len=4, frame_size=32, flow_size=16,
        llm_mode="full", vision_mode="full", train_embeddings=True,
        training={**DEFAULT_TRAINING, "epochs": 12, "batch_size": 8, "lr": 3e-3, "max_length": 256,
                  "warmup_steps": 5, "num_threads": 1},
    )
    _merge(kw, check_overrides(overrides))
    return DeftConfig(**kw)


def reference_config(**overrides) -> DeftConfig:
    """Real hub models, for GPU users: Qwen2.5-0.5B-Instruct with LoRA and a frozen SigLIP-base tower, both
    in bfloat16; the trainable parts (LoRA, experts, projectors, heads) in float32."""
    kw: dict[str, Any] = dict(
        llm="Qwen/Qwen2.5-0.5B-Instruct", vision="google/siglip-base-patch16-224",
        n_struct_tokens=8, n_dyn_tokens=8, dyn_dim=256, motion_dim=256,
        stack_len=8, frame_size=112, flow_size=56, llm_mode="lora", vision_mode="frozen",
        train_embeddings=False, base_dtype="bfloat16", lora_r=16, lora_alpha=32, lora_dropout=0.05,
        lora_target_modules="all-linear",  # Qwen2's q/k/v/o and gate/up/down_proj; another LLM's own layers
        training={**DEFAULT_TRAINING, "epochs": 3, "batch_size": 8, "lr": 2e-4, "max_length": 512,
                  "warmup_steps": 50},
        system_prompt="You are an expert in facial micro-expressions and the Facial Action Coding System.",
    )
    _merge(kw, check_overrides(overrides))
    return DeftConfig(**kw)


PRESETS = {"tiny": tiny_config, "reference": reference_config}


def config_kwargs(d: dict) -> dict:
    """A saved config dict (config.json, run.json's config) as DeftConfig keyword arguments."""
    return {k: v for k, v in d.items() if k not in _NOT_CONFIG_KEYS}


def load_config(spec: str | Path | DeftConfig, **overrides) -> DeftConfig:
    """``tiny`` / ``reference`` / a JSON file (optionally ``{"preset": "tiny", ...overrides}``)."""
    if isinstance(spec, DeftConfig):
        if not overrides:
            return copy.deepcopy(spec)
        kw = config_kwargs(spec.to_dict())
        _merge(kw, check_overrides(overrides))
        return DeftConfig(**kw)
    s = str(spec)
    if s in PRESETS:
        return PRESETS[s](**overrides)
    p = Path(s)
    if not p.exists():
        raise FileNotFoundError(f"config {s!r} is neither a preset ({', '.join(PRESETS)}) nor an existing JSON file")
    if p.is_dir():
        p = p / "config.json"
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"config file {p} is not valid JSON: {e}") from e
    if not isinstance(d, dict):
        raise ValueError(f"config file {p}: a JSON object of settings ({{\"preset\": \"tiny\", ...}}), not a "
                         f"{type(d).__name__}")
    preset = d.pop("preset", None)
    saved = d.get("model_type") == DeftConfig.model_type
    if saved:  # a saved model's config
        d = {**LEGACY_DEFAULTS, **d}
    d = config_kwargs(d)
    if not saved:  # a user's own file: its keys are checked as --set's are
        try:
            d = check_overrides(d)
        except ValueError as e:
            raise ValueError(f"config file {p}: {e}") from None
    kw: dict[str, Any] = {}
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"config file {p}: unknown preset {preset!r}; choose one of {list(PRESETS)}")
        kw = config_kwargs(PRESETS[preset]().to_dict())
    # the file's keys, then the call's overrides; a ``training`` dict is merged key by key onto the
    # preset's training (or onto DEFAULT_TRAINING without a preset)
    try:
        _merge(kw, d)
    except ValueError as e:
        raise ValueError(f"config file {p}: {e}") from None
    own = dict(kw)
    _merge(kw, check_overrides(overrides))
    try:
        return DeftConfig(**kw)
    except ValueError as e:  # validate()'s, naming the field: and the file, where the file's own values fail
        try:
            DeftConfig(**own)
        except ValueError:
            raise ValueError(f"config file {p}: {e}") from None
        raise
