"""DeftModel: experts + projectors + a causal LLM (optionally LoRA through peft) + emotion/AU heads.

Llava's layout: the experts' tokens replace the placeholder tokens of the prompt (``<struct>``, ``<dyn>``,
``<motion>``; the count is checked before ``masked_scatter``), and ``generate`` is GenerationMixin's, with
the expert inputs merged on the first (prefill) step only. The loss is the hybrid objective: LM loss on
answer tokens, emotion cross-entropy, AU BCE, and the decorrelation of the experts' summaries.

What a saved model holds (``save_pretrained``; ``from_pretrained`` and ``AutoModel.from_pretrained`` read it):

* ``config.json`` (with ``auto_map`` and the code files beside it, for ``trust_remote_code``);
* ``model.safetensors``: the experts, projectors and heads, every trained parameter, the rows added to a
  named LLM's vocabulary, and any sub-model given only as an inline config (random init cannot be
  re-created);
* ``adapter/``: the LoRA adapters as peft saves them (``adapter_config.json``, ``adapter_model.safetensors``;
  ``PeftModel.from_pretrained(base, RUN/adapter)`` loads them onto the base alone).

A sub-model named by Hub id or folder (``config.llm``, ``config.vision``) and frozen is not stored: it is
loaded by name on reload and checked against the fingerprint recorded when the run was built.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForCausalLM,
    GenerationMixin,
    PreTrainedModel,
)
from transformers.image_processing_base import ImageProcessingMixin
from transformers.pytorch_utils import Conv1D
from transformers.utils import ModelOutput

from .configuration import DeftConfig, sub_config
from .errors import OfflineModelError, offline_message
from .experts import DynamicExpert, MotionExpert, StructureExpert, SummaryMemory, disentangle_loss
from .hubaccess import cache_only

WEIGHTS = "model.safetensors"
ADAPTER_DIR = "adapter"
EXTRA_ROWS = {"input": "extra_vocab_rows.input", "output": "extra_vocab_rows.output"}
EXPERT_INPUTS = ("pixel_values", "frames", "flow", "region_stats")


@dataclass
class DeftOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    cache: object | None = None
    emotion_logits: torch.Tensor | None = None
    au_logits: torch.Tensor | None = None
    losses: dict | None = None


def _dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def fingerprint(module: nn.Module, samples: int = 4096) -> str:
    """A short hash of every parameter's shape and of evenly spaced values of each: tells a named base that
    changed on the Hub (or on disk) since a run was trained on it. Sampling keeps it cheap (no full copy of
    a 150k-row embedding) while any re-initialisation or fine-tuning of a tensor changes the sampled values."""
    h = hashlib.sha256()
    for name, p in module.named_parameters():
        flat = p.detach().reshape(-1)
        k = min(samples, flat.numel())
        idx = torch.arange(k) * (flat.numel() - 1) // max(1, k - 1)
        h.update(f"{name}{tuple(p.shape)}".encode())
        h.update(flat[idx].float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def load_named_llm(name: str, dtype: torch.dtype):
    try:
        return AutoModelForCausalLM.from_pretrained(name, dtype=dtype, **cache_only(name))
    except Exception as e:  # noqa: BLE001 - rewrite to a message that names the model
        raise OfflineModelError(offline_message(name, "LLM", e)) from e


def load_named_vision(name: str, dtype: torch.dtype):
    """The vision tower of any HF vision(-language) checkpoint (SigLIP, CLIP, a bare vision model).

    From a vision-language checkpoint only the tower is loaded: its text weights are expected to go
    unused (not reported), while a tower weight missing from the checkpoint is an error."""
    from transformers import MODEL_MAPPING
    from transformers.utils import logging as hf_logging

    try:
        cfg = AutoConfig.from_pretrained(name, **cache_only(name))
        vcfg = getattr(cfg, "vision_config", None)
        if vcfg is None:
            return AutoModel.from_pretrained(name, dtype=dtype, **cache_only(name))
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        try:
            tower, info = MODEL_MAPPING[type(vcfg)].from_pretrained(name, dtype=dtype, output_loading_info=True,
                                                                   **cache_only(name))
        finally:
            hf_logging.set_verbosity(level)
    except Exception as e:  # noqa: BLE001
        raise OfflineModelError(offline_message(name, "vision model", e)) from e
    if info.get("missing_keys"):
        raise OfflineModelError(f"vision model {name!r}: the checkpoint lacks tower weights "
                                f"{sorted(info['missing_keys'])[:5]}")
    return tower


# LoRA's layers where lora_target_modules is unset and the LLM has them: the attention projections of Qwen2, Llama,
# Mistral, Gemma (the project's default from the start); another family's are peft's choice for its model type
ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


def lora_targets(llm: nn.Module, wanted: list[str] | str | None) -> list[str] | str:
    """The ``target_modules`` for peft. ``None``: :data:`ATTENTION_PROJECTIONS` where the LLM has all four, else
    peft's default for its model type (``c_attn`` for GPT-2, ``query_key_value`` for GPT-NeoX; q/k/v_proj alone
    matched nothing there) or every linear layer where peft has none (Phi-3's fused ``qkv_proj``). A name of a list
    that matches no layer is an error naming the layers there are: peft wrapped whatever else matched (``o_proj`` on
    OPT, whose attention output is ``out_proj``, was left without LoRA, without a word)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = llm.config.model_type
    names = [n for n, _ in llm.named_modules()]
    if wanted is None:
        if set(ATTENTION_PROJECTIONS) <= {n.rsplit(".", 1)[-1] for n in names}:
            return list(ATTENTION_PROJECTIONS)
        return TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type, "all-linear")
    if isinstance(wanted, str):  # "all-linear" or a regular expression peft matches against whole module names
        if wanted != "all-linear" and not any(re.fullmatch(wanted, n) for n in names):
            missing = [wanted]
        else:
            return wanted
    else:
        missing = [t for t in wanted if not any(n == t or n.endswith(f".{t}") for n in names)]
    if missing:
        linear = dict.fromkeys(n.rsplit(".", 1)[-1] for n, m in llm.named_modules() if isinstance(m, (nn.Linear, Conv1D)))
        raise ValueError(f"lora_target_modules {missing} name no layer of the LLM ({model_type}); its linear layers are "
                         f"{list(linear)}: set lora_target_modules to some of them, to \"all-linear\", or leave it "
                         f"unset (its attention projections)")
    return list(wanted)


# The pixel normalisation of a tower whose image processor says none (an inline config, a folder without
# preprocessor_config.json): SigLIP's, the presets' tower
DEFAULT_IMAGE_NORM = 0.5


def _tower_norm(name: str) -> tuple | None:
    """A vision tower's pixel normalisation as its image processor applies it (its class fills what its config leaves
    out; ``do_normalize`` false is mean 0, std 1), or None where its folder or repo has no image processor."""
    try:
        proc = AutoImageProcessor.from_pretrained(name, **cache_only(name))
    except OSError:  # no preprocessor_config.json
        return None
    except (ImportError, ValueError, KeyError):  # a processor class this install cannot build: its config's values
        d, _ = ImageProcessingMixin.get_image_processor_dict(name, **cache_only(name))
        proc = SimpleNamespace(do_normalize=d.get("do_normalize", True), image_mean=d.get("image_mean", DEFAULT_IMAGE_NORM),
                               image_std=d.get("image_std", DEFAULT_IMAGE_NORM))
    if not getattr(proc, "do_normalize", True):
        return 0.0, 1.0
    return proc.image_mean, proc.image_std


def resolve_image_norm(config: DeftConfig) -> None:
    """Fill an unset ``config.image_mean`` / ``image_std`` with the vision tower's own, as its image processor applies
    them (per colour channel): CLIP's and DINOv2's are ImageNet-like (mean 0.48, std 0.27), not SigLIP's 0.5/0.5,
    and a frozen tower fed pixels normalised otherwise sees other images than it was trained on."""
    if config.image_mean is not None and config.image_std is not None:
        return
    norm = _tower_norm(config.vision) if config.vision is not None else None
    for key, value in zip(("image_mean", "image_std"), norm or (DEFAULT_IMAGE_NORM, DEFAULT_IMAGE_NORM), strict=True):
        if getattr(config, key) is None:
            setattr(config, key, [float(v) for v in value] if isinstance(value, (list, tuple)) else float(value))


# LoRA target lists a request of before 2026-12-04 spelled out that today's presets leave unset (the tiny preset's
# q/k/v/o, still what an unset list gives where the LLM has them) or name "all-linear" (the reference preset's
# seven Qwen2 layers, the same layers)
_FORMER_LORA = {("q_proj", "k_proj", "v_proj", "o_proj"): None,
                ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"): "all-linear"}


def as_requested_now(old: dict, new: DeftConfig) -> dict:
    """An older run's request (``request_dict``) in today's spelling where it asks for what ``new`` asks for: its
    LoRA target list where ``new`` names the same layers the way today's presets do, its 0.5/0.5 normalisation where
    ``new`` leaves it to a tower whose own is 0.5 (the presets' towers). Compared as spelled, every LOSO fold of
    such a run was trained again and a resume with its own command refused, for settings that did not change."""
    out = dict(old)
    lora = out.get("lora_target_modules")
    if isinstance(lora, list) and tuple(lora) in _FORMER_LORA and _FORMER_LORA[tuple(lora)] == new.lora_target_modules:
        out["lora_target_modules"] = new.lora_target_modules
    if new.image_mean is None or new.image_std is None:
        probe = copy.deepcopy(new)
        resolve_image_norm(probe)
        for key in ("image_mean", "image_std"):
            if getattr(new, key) is None and out.get(key) == DEFAULT_IMAGE_NORM and \
                    getattr(probe, key) in (DEFAULT_IMAGE_NORM, [DEFAULT_IMAGE_NORM] * 3):
                out[key] = None
    return out


def resolve_image_size(config: DeftConfig) -> None:
    """Fill ``config.image_size`` with the vision tower's own (from its config; a named tower's config is
    read, not its weights); an explicit size that differs from the tower's is an error (``validate``); and the
    pixel normalisation (:func:`resolve_image_norm`)."""
    if "structure" not in config.experts:
        return
    resolve_image_norm(config)
    vcfg = config.vision_config
    if vcfg is None and config.vision is not None:
        try:
            cfg = AutoConfig.from_pretrained(config.vision, **cache_only(config.vision))
        except Exception as e:  # noqa: BLE001
            raise OfflineModelError(offline_message(config.vision, "vision model", e)) from e
        vcfg = getattr(cfg, "vision_config", None) or cfg
    tower = getattr(vcfg, "image_size", None)
    if tower and config.image_size and int(config.image_size) != int(tower):
        raise ValueError(f"image_size {config.image_size} differs from the vision tower's own image_size {tower}: "
                         "leave image_size unset (the tower's is used) or use a tower trained at that size")
    config.image_size = int(config.image_size or tower or 224)


def _text_dict(cfg) -> dict:
    d = cfg.to_dict()
    for k in ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"):
        d.pop(k, None)
    return d


def _as_umask_allows(path: Path) -> None:
    """safetensors writes its file readable by its owner only (0600), unlike every other file of a run: a model
    shared on a cluster or a group folder must be readable as the user's umask says, like the rest."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


class DeftModel(PreTrainedModel, GenerationMixin):
    config_class = DeftConfig
    _auto_class = "AutoModel"  # save_pretrained writes auto_map and the code files (trust_remote_code)
    base_model_prefix = "deft"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _supports_sdpa = True

    def __init__(self, config: DeftConfig, llm: nn.Module | None = None, vision: nn.Module | None = None):
        super().__init__(config)
        config.validate()
        if llm is None:
            if config.text_config is None:
                raise ValueError(f"config names LLM {config.llm!r} but carries no text_config: build it with "
                                 "DeftModel.from_components(config, tokenizer) or DeftModel.from_pretrained(folder)")
            llm = AutoModelForCausalLM.from_config(config.text_config)
        want = getattr(config.text_config, "vocab_size", None)
        if want and llm.get_input_embeddings().num_embeddings < want:  # placeholders added to a named base
            llm.resize_token_embeddings(want, mean_resizing=False)
        self.llm = llm
        d = self.llm.config.get_text_config().hidden_size
        self.experts = nn.ModuleDict()
        if "structure" in config.experts:
            if vision is None:
                if config.vision_config is None:
                    raise ValueError(f"config names vision model {config.vision!r} but carries no vision_config")
                vision = AutoModel.from_config(config.vision_config)
            self.experts["structure"] = StructureExpert(vision, config.n_struct_tokens, d)
        if "dynamic" in config.experts:
            self.experts["dynamic"] = DynamicExpert(config.dyn_dim, config.n_dyn_tokens, d)
        if "motion" in config.experts:
            self.experts["motion"] = MotionExpert(
                config.region_names, config.region_layout, config.region_sigma, config.flow_size,
                len(config.region_stat_fields), config.motion_dim, len(config.au_list), d, config.flow_scale,
                config.motion_summary)
        n_exp = len(self.experts)
        head_in = {"experts": d * n_exp, "llm": d, "both": d * (n_exp + 1)}[config.emotion_head_input]
        n_cls = max(1, len(config.emotion_labels))
        self.emotion_head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, d), nn.GELU(), nn.Linear(d, n_cls))
        if config.recognition_token:  # the heads' outputs as one token for the LLM (see forward)
            self.recognition = nn.Linear(n_cls + len(config.au_list), d)
        if "motion" not in config.experts:  # the AU head then reads the other experts' summaries
            self.au_head = nn.Sequential(nn.LayerNorm(d * n_exp), nn.Linear(d * n_exp, len(config.au_list)))
        self.memory = SummaryMemory(n_exp, config.disentangle_memory, d) if n_exp > 1 else None
        self.class_weights: torch.Tensor | None = None  # set for training (training.class_balance)
        self.post_init()
        # after post_init: HF's weight initialisation must not touch the adapters (lora_B starts at zero)
        if config.llm_mode == "lora":
            self._wrap_lora()
        self.apply_trainability()

    # ----------------------------------------------------------------------------------------------
    def _init_weights(self, module):  # sub-modules keep their own (PyTorch / HF) initialisation
        return

    def _wrap_lora(self):
        """LoRA on the layers ``lora_target_modules`` names (:func:`lora_targets`); the setting stays as asked (a
        run's request is compared with a resumed one's), and the layers chosen are peft's adapter config's."""
        from peft import LoraConfig, get_peft_model

        cfg = self.config
        lc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=lora_targets(self.llm, cfg.lora_target_modules), bias="none")
        self.llm = get_peft_model(self.llm, lc, autocast_adapter_dtype=True)

    @property
    def language_model(self) -> nn.Module:
        """The causal LM itself (under the LoRA wrapper, if any)."""
        return self.llm.get_base_model() if hasattr(self.llm, "get_base_model") else self.llm

    def apply_trainability(self) -> None:
        """Freeze per config (llm_mode, vision_mode, train_embeddings); then dtypes: every trainable
        parameter float32 (the optimiser's master weights), frozen base weights in ``base_dtype``."""
        cfg = self.config
        for name, p in self.llm.named_parameters():
            if cfg.llm_mode == "full":
                p.requires_grad_(True)
            elif cfg.llm_mode == "lora":
                p.requires_grad_("lora_" in name)
            else:
                p.requires_grad_(False)
        if cfg.train_embeddings and cfg.llm_mode != "full":
            for mod in (self.llm.get_input_embeddings(), self.llm.get_output_embeddings()):
                if mod is not None:
                    for p in mod.parameters():
                        p.requires_grad_(True)
        if "structure" in self.experts:
            for p in self.experts["structure"].vision.parameters():
                p.requires_grad_(cfg.vision_mode == "full")
        base = _dtype(cfg.base_dtype)
        for p in self.parameters():
            want = torch.float32 if p.requires_grad else (base if self._is_base_param(p) else torch.float32)
            if p.dtype != want:
                p.data = p.data.to(want)

    def _is_base_param(self, p: torch.Tensor) -> bool:
        ids = getattr(self, "_base_param_ids", None)
        if ids is None:
            ids = {id(q) for n, q in self.llm.named_parameters() if "lora_" not in n}
            if "structure" in self.experts:
                ids |= {id(q) for q in self.experts["structure"].vision.parameters()}
            self._base_param_ids = ids
        return id(p) in ids

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    def compute_dtype(self) -> torch.dtype:
        """The dtype the decoder layers run in (that of their frozen or trained weights)."""
        for n, p in self.llm.get_decoder().named_parameters():
            if "lora_" not in n:
                return p.dtype
        return torch.float32

    # -- building for training --------------------------------------------------------------------
    @classmethod
    def from_components(cls, config: DeftConfig, tokenizer) -> DeftModel:
        """Build for training: load named sub-models (their real from_pretrained), fit the vocabulary to the
        tokenizer (never shrinking it; a resize is recorded in ``config.vocab_resized``) and the placeholders."""
        slots = list(config.experts) + (["heads"] if config.recognition_token else [])
        config.placeholder_ids = {e: tokenizer.convert_tokens_to_ids(config.placeholders[e]) for e in slots}
        unk = [e for e, i in config.placeholder_ids.items() if i is None or i == tokenizer.unk_token_id]
        if unk:
            raise ValueError(f"the tokenizer lacks placeholder token(s) for {unk}")
        llm, vision = cls._load_named(config)
        if llm is not None:
            config.text_config = sub_config(_text_dict(llm.config))
        if vision is not None:
            config.vision_config = sub_config(_text_dict(vision.config))
        resolve_image_size(config)
        have = config.text_config.vocab_size
        if len(tokenizer) > have:
            config.vocab_resized = {"from": int(have), "to": int(len(tokenizer))}
            config.text_config.vocab_size = int(len(tokenizer))
        return cls(config, llm=llm, vision=vision)

    @staticmethod
    def _load_named(config: DeftConfig):
        """The sub-models the config names, loaded by name, with their fingerprints checked or recorded."""
        llm = vision = None
        base = _dtype(config.base_dtype)
        if config.llm is not None:
            llm = load_named_llm(config.llm, base if config.llm_mode != "full" else torch.float32)
        if "structure" in config.experts and config.vision is not None:
            vision = load_named_vision(config.vision, base if config.vision_mode == "frozen" else torch.float32)
        for key, name, mod in (("llm", config.llm, llm), ("vision", config.vision, vision)):
            if mod is None:
                continue
            fp = fingerprint(mod)
            want = config.base_fingerprints.get(key)
            if want and want != fp:
                raise OfflineModelError(
                    f"{key} model {name!r} is not the one this run was trained on (fingerprint {fp} != {want}): "
                    "its weights changed since; point the config at the original weights")
            config.base_fingerprints[key] = fp
        return llm, vision

    # -- saving and loading -----------------------------------------------------------------------
    def _not_stored(self) -> set[str]:
        """State-dict keys that a reload re-creates from a named base (frozen, unchanged weights)."""
        cfg = self.config
        skip: set[str] = set()
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        if cfg.llm is not None:
            skip |= {f"llm.{k}" for k in self.llm.state_dict() if "lora_" not in k}
        if cfg.vision is not None and "structure" in self.experts:
            skip |= {f"experts.structure.vision.{k}" for k in self.experts["structure"].vision.state_dict()}
        return skip - trainable

    def stored_state_dict(self, adapters: bool = True) -> dict[str, torch.Tensor]:
        """What a checkpoint must hold to re-create this model on top of its named bases (see module doc)."""
        skip = self._not_stored()
        out, seen = {}, set()
        for k, v in self.state_dict().items():
            if k in skip or (not adapters and "lora_" in k):
                continue
            key = (v.data_ptr(), v.shape) if v.numel() else (k,)
            if key in seen:  # tied weights are stored once
                continue
            seen.add(key)
            out[k] = v.detach().contiguous()
        rs = self.config.vocab_resized
        if rs and self.config.llm is not None:
            n0 = int(rs["from"])
            emb_in, emb_out = self.llm.get_input_embeddings(), self.llm.get_output_embeddings()
            if not emb_in.weight.requires_grad:
                out[EXTRA_ROWS["input"]] = emb_in.weight[n0:].detach().contiguous()
            if emb_out is not None and emb_out.weight is not emb_in.weight and not emb_out.weight.requires_grad:
                out[EXTRA_ROWS["output"]] = emb_out.weight[n0:].detach().contiguous()
        return out

    def load_stored_state_dict(self, sd: dict[str, torch.Tensor], where: str = "checkpoint") -> None:
        """Inverse of :meth:`stored_state_dict`: every stored key must fit, every key not re-created from a
        named base must be there."""
        sd = dict(sd)
        extra = {k: sd.pop(v) for k, v in EXTRA_ROWS.items() if v in sd}
        own = set(self.state_dict())
        unexpected = sorted(set(sd) - own)
        if unexpected:
            raise ValueError(f"{where}: weights {unexpected[:5]} do not belong to this model (config mismatch?)")
        res = self.load_state_dict(sd, strict=False)
        tied = {k for k in res.missing_keys if self._is_tied_duplicate(k, sd)}
        optional = {k for k in res.missing_keys if k.startswith("memory.")}  # training state: starts empty
        if not any("lora_" in k for k in sd):  # the adapters come from adapter/
            optional |= {k for k in res.missing_keys if "lora_" in k}
        missing = sorted(set(res.missing_keys) - self._not_stored() - tied - optional)
        if missing:
            raise ValueError(f"{where}: weights missing for {missing[:5]} ({len(missing)} in all)")
        n0 = int(self.config.vocab_resized["from"]) if self.config.vocab_resized else None
        with torch.no_grad():
            if "input" in extra:
                self.llm.get_input_embeddings().weight[n0:].copy_(extra["input"])
            if "output" in extra:
                self.llm.get_output_embeddings().weight[n0:].copy_(extra["output"])

    def _is_tied_duplicate(self, key: str, sd: dict) -> bool:
        params = dict(self.named_parameters(remove_duplicate=False))
        p = params.get(key)
        return p is not None and any(params.get(k) is p for k in sd if k != key)

    def save_pretrained(self, save_directory, is_main_process: bool = True, **kwargs) -> None:
        """config.json (+ code files and ``auto_map`` for ``trust_remote_code``), ``model.safetensors`` with
        what the named bases do not give, and the LoRA adapters under ``adapter/`` (peft's format)."""
        from transformers.dynamic_module_utils import custom_object_save

        if not is_main_process:
            return
        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        self.config.architectures = [type(self).__name__]
        if self._auto_class is not None:
            custom_object_save(self, out, config=self.config)
        self.config.save_pretrained(out)
        save_file(self.stored_state_dict(adapters=False), str(out / WEIGHTS), metadata={"format": "pt"})
        if self.config.llm_mode == "lora":
            self.llm.save_pretrained(str(out / ADAPTER_DIR), save_embedding_layers=False)
        for f in out.rglob("*.safetensors"):  # ours and peft's adapter_model.safetensors
            _as_umask_allows(f)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config: DeftConfig | None = None,
                        **kwargs) -> DeftModel:
        """Load a saved model (a folder or Hub repo): named bases by name, then the stored weights and the
        adapters. A run folder whose model sits in ``RUN/model/`` (the layout before runs kept it at the
        root) is read there."""
        path = _resolve(pretrained_model_name_or_path, kwargs)
        if not isinstance(config, DeftConfig):
            config = DeftConfig.from_pretrained(str(path))
        llm, vision = cls._load_named(config)
        model = cls(config, llm=llm, vision=vision)
        weights = path / WEIGHTS
        if not weights.exists():
            raise FileNotFoundError(f"{path} holds no {WEIGHTS}")
        sd = load_file(str(weights))
        if config.llm_mode == "lora" and not any(k.startswith("llm.base_model.") for k in sd):
            # saved before the LLM sat under peft's wrapper (runs in the RUN/model/ layout): the same weights,
            # the adapters among them
            sd = {f"llm.base_model.model.{k[4:]}" if k.startswith("llm.") else k: v for k, v in sd.items()}
        model.load_stored_state_dict(sd, str(weights))
        if config.llm_mode == "lora" and not any("lora_" in k for k in sd):
            model._load_adapter(path / ADAPTER_DIR)
        model.apply_trainability()
        device = kwargs.get("device_map") or kwargs.get("device")
        if isinstance(device, (str, torch.device)) and str(device) != "auto":
            model.to(device)
        model.eval()
        return model

    def _load_adapter(self, folder: Path) -> None:
        from peft import set_peft_model_state_dict

        f = folder / "adapter_model.safetensors"
        if not f.exists():
            raise FileNotFoundError(f"{folder}: no adapter_model.safetensors (the run's LoRA adapters)")
        res = set_peft_model_state_dict(self.llm, load_file(str(f)))
        bad = [k for k in res.unexpected_keys if "lora_" in k]
        if bad:
            raise ValueError(f"{f}: adapter weights {bad[:3]} do not fit this model's LoRA layers")

    # ----------------------------------------------------------------------------------------------
    def set_class_weights(self, weights: torch.Tensor | None) -> None:
        """Weights of the emotion loss per class (``training.class_balance``); not part of the saved model."""
        self.class_weights = None if weights is None else weights.float()

    def _drop_experts(self, out: dict[str, tuple]) -> dict[str, tuple]:
        """Expert dropout (training only): each clip loses each expert of ``config.expert_dropout`` with its
        probability; its tokens and summary become zeros, so the heads and the LLM cannot lean on any one
        expert alone (the structure expert in particular, whose onset face tells the subject, not the emotion)."""
        p = self.config.expert_dropout
        if not self.training or not p:
            return out
        for name, rate in p.items():
            if name in out and rate > 0:
                tokens, summary = out[name]
                keep = (torch.rand(tokens.shape[0], device=tokens.device) >= rate).to(tokens.dtype)
                out[name] = (tokens * keep[:, None, None], summary * keep[:, None].to(summary.dtype))
        return out

    def encode_experts(self, pixel_values=None, frames=None, flow=None, region_stats=None):
        out: dict[str, tuple] = {}
        au_logits = None
        for name, expert in self.experts.items():
            if name == "structure":
                out[name] = expert(pixel_values)
            elif name == "dynamic":
                out[name] = expert(frames)
            else:
                tokens, summary, au_logits = expert(flow, region_stats)
                if self.config.motion_summary_token:  # the summary the heads read, as one more token for the LLM
                    tokens = torch.cat([tokens, summary[:, None]], 1)
                out[name] = (tokens, summary)
        out = self._drop_experts(out)
        if au_logits is None:
            au_logits = self.au_head(torch.cat([s for _, s in out.values()], -1))
        return out, au_logits

    def embed(self, input_ids: torch.Tensor, experts: dict, heads: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with the experts' tokens (and the heads' recognition token) at their placeholders."""
        emb_layer = self.llm.get_input_embeddings()
        embeds = emb_layer(input_ids).to(self.compute_dtype())
        slots = list(self.experts) + (["heads"] if self.config.recognition_token else [])
        for name in slots:
            tid = self.config.placeholder_ids[name]
            mask = input_ids == tid
            n = int(mask.sum())
            tokens = heads if name == "heads" else (experts[name][0] if name in experts else None)
            if tokens is None:
                if n:
                    raise ValueError(f"the prompts hold {n} {self.config.placeholders[name]} tokens but no input for "
                                     f"expert {name!r} was given")
                continue
            if n != tokens.shape[0] * tokens.shape[1]:
                raise ValueError(f"expert {name!r}: the prompts hold {n} {self.config.placeholders[name]} tokens, "
                                 f"expected {tokens.shape[1]} per row x {tokens.shape[0]} rows")
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), tokens.to(embeds.dtype))
        return embeds

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, cache=None, use_cache=None,
                logits_to_keep: int = 0, labels=None, prompt_end=None, pixel_values=None, frames=None, flow=None,
                region_stats=None, emotion_labels=None, au_labels=None, au_valid=None, return_logits: bool = False,
                **kwargs) -> DeftOutput:
        have_inputs = any(x is not None for x in (pixel_values, frames, flow, region_stats))
        experts, au_logits = self.encode_experts(pixel_values, frames, flow, region_stats) if have_inputs else ({}, None)
        emotion_logits = heads = None
        if experts and self.config.emotion_head_input == "experts":
            emotion_logits = self.emotion_head(torch.cat([s for _, s in experts.values()], -1))
            if self.config.recognition_token:
                # what the heads recognise, detached: the LLM states the model's own recognition, and its LM loss
                # does not move the heads
                probs = torch.cat([torch.softmax(emotion_logits.float(), -1), torch.sigmoid(au_logits.float())], -1)
                heads = self.recognition(probs.detach())[:, None]
        embeds = self.embed(input_ids, experts, heads)
        if position_ids is None and attention_mask is not None and cache is None:
            # left padding (prediction) gets the same positions as the right-padded training rows
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)
        # The decoder gives the final (normed) hidden states; the LM head then runs only where it is
        # needed: on answer positions while training (prompt logits are never used), everywhere otherwise.
        dec = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                     cache=cache, use_cache=bool(use_cache))
        h = dec.last_hidden_state
        lm_head = self.llm.get_output_embeddings()
        head_dtype = lm_head.weight.dtype
        logits = None
        w = self.config.loss_weights
        losses: dict[str, torch.Tensor] = {}
        if labels is not None:
            shift_labels = labels[:, 1:]
            sel = shift_labels != -100
            lg = lm_head(h[:, :-1][sel].to(head_dtype)).float()
            tgt = shift_labels[sel]
            if self.config.lm_reduction == "sample":  # every answer counts the same, short or long
                ce = F.cross_entropy(lg, tgt, reduction="none")
                row = torch.nonzero(sel)[:, 0]
                per = torch.zeros(labels.shape[0], device=ce.device).index_add_(0, row, ce)
                cnt = sel.sum(1)
                has = cnt > 0
                losses["lm"] = (per[has] / cnt[has]).mean() if has.any() else ce.sum() * 0
            else:
                losses["lm"] = F.cross_entropy(lg, tgt) if tgt.numel() else lg.sum() * 0
        if labels is None or return_logits:
            keep = h[:, -logits_to_keep:] if logits_to_keep else h
            logits = lm_head(keep.to(head_dtype)).float()
        if experts and emotion_logits is None:
            feats = [s for _, s in experts.values()] if self.config.emotion_head_input != "llm" else []
            if self.config.emotion_head_input in ("llm", "both"):
                if prompt_end is None:
                    prompt_end = torch.full((h.shape[0],), h.shape[1] - 1, device=h.device, dtype=torch.long)
                feats.append(h[torch.arange(h.shape[0], device=h.device), prompt_end].float())
            emotion_logits = self.emotion_head(torch.cat(feats, -1))
        if emotion_labels is not None and emotion_logits is not None and (emotion_labels >= 0).any():
            cw = self.class_weights
            cw = cw.to(emotion_logits.device) if cw is not None and self.training else None
            losses["emotion"] = F.cross_entropy(emotion_logits, emotion_labels, weight=cw, ignore_index=-100)
        if au_labels is not None and au_logits is not None:
            valid = au_valid if au_valid is not None else torch.ones(au_labels.shape[0], device=au_labels.device)
            per = F.binary_cross_entropy_with_logits(au_logits, au_labels.float(), reduction="none").mean(-1)
            losses["au"] = (per * valid).sum() / valid.sum().clamp(min=1)
        if len(experts) > 1 and (labels is not None or emotion_labels is not None):
            summaries = [s.float() for _, s in experts.values()]
            memory = self.memory.read() if self.memory is not None else None
            losses["disentangle"] = disentangle_loss(summaries, memory)
            if self.training and self.memory is not None:
                self.memory.push(summaries)
        loss = None
        if losses:
            loss = sum(w.get(k, 1.0) * v for k, v in losses.items())
        return DeftOutput(loss=loss, logits=logits, cache=dec.cache if use_cache else None,
                          emotion_logits=emotion_logits, au_logits=au_logits,
                          losses={k: v.detach() for k, v in losses.items()})

    def prepare_inputs_for_generation(self, input_ids, cache=None, is_first_iteration: bool | None = False, **kwargs):
        """GenerationMixin's inputs, with the expert inputs passed on the prefill step only (as Llava passes
        its pixels): later steps feed the new tokens and the cache, which already holds the expert tokens."""
        expert_inputs = {k: kwargs.pop(k, None) for k in EXPERT_INPUTS}
        model_inputs = super().prepare_inputs_for_generation(input_ids, cache=cache,
                                                             is_first_iteration=is_first_iteration, **kwargs)
        if is_first_iteration or not kwargs.get("use_cache", True):
            model_inputs.update({k: v for k, v in expert_inputs.items() if v is not None})
        return model_inputs


def _resolve(name_or_path, kwargs: dict) -> Path:
    p = Path(str(name_or_path))
    if p.is_dir():
        if not (p / "config.json").exists() and (p / "model" / "config.json").exists():
            return p / "model"
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), revision=kwargs.get("revision"), **cache_only(name_or_path)))
    except Exception as e:  # noqa: BLE001
        raise OfflineModelError(offline_message(str(name_or_path), "DEFT model", e)) from e
