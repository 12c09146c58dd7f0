"""DeftModel: experts + projectors + an AutoModelForCausalLM (optionally LoRA) + emotion/AU heads.

Expert tokens replace the placeholder tokens (``<struct>``, ``<dyn>``, ``<motion>``) of the prompt.
The loss is the hybrid objective: LM loss on answer tokens only, emotion cross-entropy and AU BCE heads,
and a disentanglement term between the experts' pooled summaries; weights are in the config.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers.utils import ModelOutput

from .configuration import DeftConfig
from .experts import DynamicExpert, MotionExpert, StructureExpert, disentangle_loss
from .tokenizer import OfflineModelError, offline_message


@dataclass
class DeftOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    emotion_logits: torch.Tensor | None = None
    au_logits: torch.Tensor | None = None
    losses: dict | None = None


def _config_from_dict(d: dict):
    d = dict(d)
    model_type = d.pop("model_type")
    for k in ("transformers_version", "architectures", "_name_or_path"):
        d.pop(k, None)
    return AutoConfig.for_model(model_type, **d)


def _clean_dict(cfg) -> dict:
    d = cfg.to_dict()
    for k in ("transformers_version", "_name_or_path", "architectures"):
        d.pop(k, None)
    return d


def load_pretrained_llm(name: str):
    try:
        return AutoModelForCausalLM.from_pretrained(name)
    except Exception as e:  # noqa: BLE001
        raise OfflineModelError(offline_message(name, "LLM", e)) from e


def load_pretrained_vision(name: str):
    """The vision tower of any HF vision(-language) checkpoint (SigLIP, CLIP, a bare vision model)."""
    from transformers import MODEL_MAPPING

    try:
        cfg = AutoConfig.from_pretrained(name)
        vcfg = getattr(cfg, "vision_config", None)
        if vcfg is not None:
            cls = MODEL_MAPPING[type(vcfg)]
            return cls.from_pretrained(name)
        return AutoModel.from_pretrained(name)
    except Exception as e:  # noqa: BLE001
        raise OfflineModelError(offline_message(name, "vision model", e)) from e


class DeftModel(PreTrainedModel):
    config_class = DeftConfig
    base_model_prefix = "deft"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _supports_sdpa = True
    _keys_to_ignore_on_load_unexpected = []

    def __init__(self, config: DeftConfig, llm: nn.Module | None = None, vision: nn.Module | None = None):
        super().__init__(config)
        config.validate()
        if llm is None:
            if config.llm_config is None:
                raise ValueError(f"config names LLM {config.llm!r} but carries no llm_config: build it with "
                                 "DeftModel.from_components(config, tokenizer)")
            llm = AutoModelForCausalLM.from_config(_config_from_dict(config.llm_config))
        self.llm = llm
        d = self.llm.config.get_text_config().hidden_size
        self.experts = nn.ModuleDict()
        if "structure" in config.experts:
            if vision is None:
                if config.vision_config is None:
                    raise ValueError(f"config names vision model {config.vision!r} but carries no vision_config")
                vision = AutoModel.from_config(_config_from_dict(config.vision_config))
            self.experts["structure"] = StructureExpert(vision, config.n_struct_tokens, d)
        if "dynamic" in config.experts:
            self.experts["dynamic"] = DynamicExpert(config.dyn_dim, config.n_dyn_tokens, d)
        if "motion" in config.experts:
            self.experts["motion"] = MotionExpert(
                config.region_names, config.region_layout, config.region_sigma, config.flow_size,
                len(config.region_stat_fields), config.motion_dim, len(config.au_list), d, config.flow_scale)
        n_exp = len(self.experts)
        head_in = {"experts": d * n_exp, "llm": d, "both": d * (n_exp + 1)}[config.emotion_head_input]
        n_cls = max(1, len(config.emotion_labels))
        self.emotion_head = nn.Sequential(nn.LayerNorm(head_in), nn.Linear(head_in, d), nn.GELU(), nn.Linear(d, n_cls))
        if "motion" not in config.experts:  # the AU head then reads the other experts' summaries
            self.au_head = nn.Sequential(nn.LayerNorm(d * n_exp), nn.Linear(d * n_exp, len(config.au_list)))
        if config.llm_mode == "lora":
            self._inject_lora()
        self.post_init()
        self.apply_trainability()

    # ----------------------------------------------------------------------------------------------
    def _init_weights(self, module):  # sub-modules keep their own (PyTorch / HF) initialisation
        return

    def _inject_lora(self):
        from peft import LoraConfig, inject_adapter_in_model

        cfg = self.config
        lc = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                        target_modules=cfg.lora_target_modules, bias="none")
        self.llm = inject_adapter_in_model(lc, self.llm)

    def apply_trainability(self) -> None:
        """Freeze / unfreeze per config: llm_mode (lora|full|frozen), vision_mode, train_embeddings."""
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

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        model = super().from_pretrained(*args, **kwargs)
        model.apply_trainability()  # loading materialises parameters anew: re-apply the freezing
        return model

    def trainable_parameters(self):
        return [p for p in self.parameters() if p.requires_grad]

    @classmethod
    def from_components(cls, config: DeftConfig, tokenizer) -> DeftModel:
        """Build for training: load named hub sub-models (real from_pretrained), fit vocab and placeholders."""
        config.placeholder_ids = {e: tokenizer.convert_tokens_to_ids(config.placeholders[e]) for e in config.experts}
        unk = [e for e, i in config.placeholder_ids.items() if i is None or i == tokenizer.unk_token_id]
        if unk:
            raise ValueError(f"the tokenizer lacks placeholder token(s) for {unk}")
        llm = vision = None
        if config.llm is not None and config.llm_config is None:
            llm = load_pretrained_llm(config.llm)
            config.llm_config = _clean_dict(llm.config)
        elif config.llm_config is not None:
            config.llm_config = {**config.llm_config, "vocab_size": max(len(tokenizer), 8)}
        if "structure" in config.experts and config.vision is not None and config.vision_config is None:
            vision = load_pretrained_vision(config.vision)
            config.vision_config = _clean_dict(vision.config)
        if "structure" in config.experts:
            vc = config.vision_config
            config.image_size = config.image_size or vc.get("image_size", 224)
        model = cls(config, llm=llm, vision=vision)
        if llm is not None and len(tokenizer) > model.llm.get_input_embeddings().num_embeddings:
            model.llm.resize_token_embeddings(len(tokenizer))
            config.llm_config = _clean_dict(model.llm.config)
        return model

    # ----------------------------------------------------------------------------------------------
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
                out[name] = (tokens, summary)
        if au_logits is None:
            au_logits = self.au_head(torch.cat([s for _, s in out.values()], -1))
        return out, au_logits

    def embed(self, input_ids: torch.Tensor, experts: dict) -> torch.Tensor:
        emb_layer = self.llm.get_input_embeddings()
        embeds = emb_layer(input_ids)
        for name, (tokens, _) in experts.items():
            tid = self.config.placeholder_ids[name]
            mask = input_ids == tid
            n = int(mask.sum())
            if n != tokens.shape[0] * tokens.shape[1]:
                raise ValueError(f"expert {name!r}: the prompts hold {n} {self.config.placeholders[name]} tokens, "
                                 f"expected {tokens.shape[1]} per row x {tokens.shape[0]} rows")
            embeds = embeds.masked_scatter(mask.unsqueeze(-1), tokens.to(embeds.dtype))
        return embeds

    def forward(self, input_ids, attention_mask=None, labels=None, prompt_end=None, pixel_values=None,
                frames=None, flow=None, region_stats=None, emotion_labels=None, au_labels=None, au_valid=None,
                return_logits: bool = False, **kwargs) -> DeftOutput:
        experts, au_logits = self.encode_experts(pixel_values, frames, flow, region_stats)
        embeds = self.embed(input_ids, experts)
        position_ids = None
        if attention_mask is not None:  # left padding (prediction) gets the same positions as training
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp_(min=0)
        # The decoder gives the final (normed) hidden states; the LM head then runs only where it is
        # needed: on answer positions while training (prompt logits are never used), everywhere otherwise.
        h = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask, position_ids=position_ids,
                                   use_cache=False).last_hidden_state
        lm_head = self.llm.get_output_embeddings()
        logits = None
        w = self.config.loss_weights
        losses: dict[str, torch.Tensor] = {}
        if labels is not None:
            shift_labels = labels[:, 1:]
            sel = shift_labels != -100
            lg = lm_head(h[:, :-1][sel]).float()
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
            logits = lm_head(h)
        feats = [s for _, s in experts.values()] if self.config.emotion_head_input != "llm" else []
        if self.config.emotion_head_input in ("llm", "both"):
            if prompt_end is None:
                prompt_end = torch.full((h.shape[0],), h.shape[1] - 1, device=h.device, dtype=torch.long)
            feats.append(h[torch.arange(h.shape[0], device=h.device), prompt_end].float())
        emotion_logits = self.emotion_head(torch.cat(feats, -1))
        if emotion_labels is not None and (emotion_labels >= 0).any():
            losses["emotion"] = F.cross_entropy(emotion_logits, emotion_labels, ignore_index=-100)
        if au_labels is not None:
            valid = au_valid if au_valid is not None else torch.ones(au_labels.shape[0], device=au_labels.device)
            per = F.binary_cross_entropy_with_logits(au_logits, au_labels.float(), reduction="none").mean(-1)
            losses["au"] = (per * valid).sum() / valid.sum().clamp(min=1)
        if len(experts) > 1 and (labels is not None or emotion_labels is not None):
            losses["disentangle"] = disentangle_loss([s.float() for _, s in experts.values()])
        loss = None
        if losses:
            loss = sum(w.get(k, 1.0) * v for k, v in losses.items())
        return DeftOutput(loss=loss, logits=logits, emotion_logits=emotion_logits, au_logits=au_logits,
                          losses={k: v.detach() for k, v in losses.items()})

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, pixel_values=None, frames=None, flow=None,
                 region_stats=None, max_new_tokens: int = 48, eos_token_id=None, pad_token_id=None, **kwargs):
        """Greedy answers for left-padded prompts; returns only the new token ids."""
        experts, _ = self.encode_experts(pixel_values, frames, flow, region_stats)
        embeds = self.embed(input_ids, experts)
        return self.llm.generate(inputs_embeds=embeds, attention_mask=attention_mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)


AutoConfig.register("deft", DeftConfig, exist_ok=True)
AutoModel.register(DeftConfig, DeftModel, exist_ok=True)
