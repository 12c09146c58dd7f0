"""Tokenizers: an in-process byte-level BPE for the tiny config, or a hub tokenizer plus placeholders.

The tiny tokenizer is trained deterministically (sorted, de-duplicated texts) on the training rows'
instructions and answers plus the FACS vocabulary, so the same data gives the same vocabulary on every
process of a multi-process run. Either way the expert placeholders (``<struct>``, ``<dyn>``,
``<motion>``) are added as special tokens and the tokenizer is saved with the run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from unimer_builder import AUS, COMPOSITE, DIRECTION_WORDS, EMOTIONS, REGIONS

from .errors import OfflineModelError, local_folder_message, offline_message
from .hubaccess import cache_only

PAD = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def base_vocabulary() -> list[str]:
    """Words every answer may use: AU names and phrases, region phrases, emotion words."""
    words = [f"AU{a} {i.name}. {i.phrase}." for a, i in AUS.items()]
    words += [r.phrase for r in REGIONS] + list(DIRECTION_WORDS)
    words += list(EMOTIONS) + list(COMPOSITE)
    return words


def build_tiny_tokenizer(texts: Iterable[str], placeholders: Iterable[str], vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    placeholders = list(placeholders)
    corpus = sorted(set(t for t in texts if t) | set(base_vocabulary()))
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    special = [PAD, IM_START, IM_END, *placeholders]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token=IM_END, pad_token=PAD, bos_token=None,
        additional_special_tokens=[IM_START, *placeholders],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def load_hub_tokenizer(name: str, placeholders: Iterable[str]):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(name, **cache_only(name))
    except Exception as e:  # noqa: BLE001 - rewrite to a message that names the model
        raise OfflineModelError(offline_message(name, "tokenizer", e)) from e
    if not tok("The lip corners pull up.", add_special_tokens=False)["input_ids"]:
        # transformers returns a tokenizer without a vocabulary for a folder that holds weights and a config but no
        # tokenizer files: every answer encoded to nothing and training "succeeded" on empty targets
        why = (f"it has no vocabulary ({len(tok)} tokens; a model folder needs its tokenizer files too: "
               "tokenizer.json or tokenizer_config.json with the vocabulary files)")
        raise OfflineModelError(local_folder_message(Path(name), "tokenizer", why) if Path(name).is_dir()
                                else f"cannot load tokenizer {name!r}: {why}")
    missing = [p for p in placeholders if p not in tok.get_vocab()]
    if missing:
        tok.add_tokens(missing, special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.chat_template is None:
        # prompts are encoded without special tokens (the template places them): the start token a tokenizer puts
        # before every text (Llama's <s>, OPT's </s>) goes in the template, or the base model never saw a prompt
        # without it
        starts = tok.bos_token_id is not None and tok("a")["input_ids"][:1] == [tok.bos_token_id]
        tok.chat_template = ("{{ bos_token }}" if starts else "") + CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok


def load_tokenizer(path: str | Path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    tok.padding_side = "right"
    return tok
