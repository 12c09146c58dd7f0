"""Random-weight stand-ins for the reference config's Hub models, written to local folders.

``reference_bases(out)`` writes a Qwen2 causal LM (with a byte-level BPE tokenizer in Qwen's chat format)
and a SigLIP model (text + vision, as ``google/siglip-base-patch16-224`` is) with the real architecture
classes, so that training, saving and reloading go through their real ``from_pretrained``. ``full=True``
gives the reference sizes (Qwen2.5-0.5B: 24 layers, 896 wide, a 151,936-row vocabulary padded beyond the
tokenizer as Qwen's is; SigLIP-base: 12 layers, 768 wide, 224 px, 16 px patches); the default is a
reduced width and depth for tests. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

QWEN25_05B = dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                  num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768, tie_word_embeddings=True,
                  rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
QWEN_REDUCED = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True, rms_norm_eps=1e-6,
                    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0})
SIGLIP_BASE_224 = dict(
    vision_config=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                       image_size=224, patch_size=16),
    text_config=dict(vocab_size=32000, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                     num_attention_heads=12, max_position_embeddings=64, bos_token_id=1, eos_token_id=1,
                     pad_token_id=1))
SIGLIP_REDUCED = dict(
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       image_size=32, patch_size=8),
    text_config=dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, max_position_embeddings=16, bos_token_id=1, eos_token_id=1,
                     pad_token_id=1))


def base_tokenizer(texts: list[str] | None = None, vocab_size: int = 512):
    """A Qwen-format tokenizer (``<|im_start|>`` chat template, ``<|endoftext|>`` padding) without the
    DEFT placeholders, as a Hub LLM's tokenizer comes."""
    from unimer_builder import standard_instructions

    from .tokenizer import build_tiny_tokenizer

    corpus = list(texts or []) + list(standard_instructions().values())
    return build_tiny_tokenizer(corpus, placeholders=[], vocab_size=vocab_size)


def reference_bases(out: str | Path, full: bool = False, seed: int = 0, llm_dtype: torch.dtype = torch.bfloat16,
                    texts: list[str] | None = None) -> tuple[Path, Path]:
    """Write ``out/llm`` (Qwen2ForCausalLM + tokenizer) and ``out/vision`` (SiglipModel); return both paths.

    The reduced LLM's vocabulary has exactly the tokenizer's rows, so adding the placeholders grows it (the
    resize path); the full one is padded beyond the tokenizer like Qwen2.5's (no resize)."""
    from transformers import Qwen2Config, Qwen2ForCausalLM, SiglipConfig, SiglipModel

    out = Path(out)
    tok = base_tokenizer(texts)
    torch.manual_seed(seed)
    shape = dict(QWEN25_05B if full else {**QWEN_REDUCED, "vocab_size": len(tok)})
    llm = Qwen2ForCausalLM(Qwen2Config(**shape, bos_token_id=None, eos_token_id=tok.eos_token_id,
                                       pad_token_id=tok.pad_token_id)).to(llm_dtype)
    llm.save_pretrained(out / "llm")
    tok.save_pretrained(out / "llm")
    siglip = SIGLIP_BASE_224 if full else SIGLIP_REDUCED
    SiglipModel(SiglipConfig(**siglip)).save_pretrained(out / "vision")
    return out / "llm", out / "vision"


def reference_shaped_config(llm: str | Path, vision: str | Path, **overrides):
    """The reference preset over local folders, with the experts and inputs at the tiny config's sizes."""
    from .configuration import reference_config

    kw = dict(llm=str(llm), vision=str(vision), n_struct_tokens=2, n_dyn_tokens=2, dyn_dim=32, motion_dim=32,
              stack_len=4, frame_size=32, flow_size=16, lora_r=4, lora_alpha=8,
              training={"batch_size": 4, "max_length": 256, "warmup_steps": 1, "lr": 1e-3, "num_threads": 1})
    kw.update(overrides)
    return reference_config(**kw)
