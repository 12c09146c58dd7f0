# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""Other base LLMs than the presets' Qwen2: the real architecture classes of well-known families at a tiny size
(random weights, local folders), each with a tokenizer as its family ships it (GPT-2's: no pad, no chat template;
Llama's: a start token before every text; Gemma's: a template that refuses a system message)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from deft_fixtures import one_thread, small_shards_dir  # noqa: F401
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from deft_model.configuration import reference_config, tiny_config
from deft_model.data import DeftDataset, ShardSet, render_prompt
from deft_model.modeling import DeftModel
from deft_model.predict import predict_dataset
from deft_model.testing import base_tokenizer
from deft_model.tokenizer import build_tiny_tokenizer, load_hub_tokenizer

SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=256, vocab_size=300)
GEMMA_TEMPLATE = ("{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
                  "{{ raise_exception('System role not supported') }}{% endif %}"
                  "{% for message in messages %}{{ '<start_of_turn>' + message['role'] + '\n' + message['content'] "
                  "+ '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}"
                  "{% endif %}")


pytestmark = pytest.mark.usefixtures("one_thread")


def _lora_layers(model: DeftModel) -> set[str]:
    return {n.split(".lora_A")[0].rsplit(".", 1)[-1] for n, _ in model.named_parameters() if ".lora_A." in n}


def _lora_model(config_fn, text_config: dict, **over) -> DeftModel:
    """A LoRA model over an inline LLM of another family (dynamic and motion experts: no tower needed)."""
    cfg = config_fn(llm=None, text_config=text_config, vision=None, vision_config=None, experts=["dynamic", "motion"],
                    n_dyn_tokens=2, dyn_dim=16, motion_dim=16, llm_mode="lora", base_dtype="float32", **over)
    return DeftModel(cfg)


def _bpe(special: list[str], bos: str, eos: str, starts_with_bos: bool) -> PreTrainedTokenizerFast:
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["What emotion does this face show?", "The lip corners pull up."],
                           trainers.BpeTrainer(vocab_size=300, special_tokens=special, show_progress=False,
                                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    if starts_with_bos:
        tk.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tk.token_to_id(bos))])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token=bos, eos_token=eos)


def test_lora_targets_left_unset_are_the_attention_projections_of_the_architecture():
    # GPT-2's attention is one Conv1D c_attn: the former default q/k/v/o_proj matched nothing ("Target modules ...
    # not found in the base model"); peft's default for the model type is taken there, and the setting stays unset
    model = _lora_model(tiny_config, dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, n_positions=256,
                                          vocab_size=300))
    assert _lora_layers(model) == {"c_attn"} and model.config.lora_target_modules is None
    neox = _lora_model(tiny_config, dict(model_type="gpt_neox", **SMALL))
    assert _lora_layers(neox) == {"query_key_value"}
    # a family that has them keeps q/k/v/o_proj, as before (peft's own default for Qwen2 is q/v_proj alone)
    qwen = _lora_model(tiny_config, dict(model_type="qwen2", num_key_value_heads=2, **SMALL))
    assert _lora_layers(qwen) == {"q_proj", "k_proj", "v_proj", "o_proj"}


@pytest.mark.parametrize("text_config, want", [
    # the preset's seven Qwen2 layers, as before
    (dict(model_type="qwen2", num_key_value_heads=2, **SMALL),
     {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
    # Phi-3's fused qkv_proj and gate_up_proj were left without LoRA (only o_proj and down_proj matched)
    (dict(model_type="phi3", bos_token_id=1, eos_token_id=2, pad_token_id=2, **SMALL), {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}),
    # OPT's out_proj, fc1 and fc2 were left without LoRA (only q/k/v_proj matched)
    (dict(model_type="opt", hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
          word_embed_proj_dim=64, max_position_embeddings=256, vocab_size=300),
     {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}),
])
def test_the_reference_preset_adapts_every_linear_layer_of_another_llm(text_config, want):
    model = _lora_model(reference_config, text_config)
    assert _lora_layers(model) == want and model.config.lora_target_modules == "all-linear"


def test_lora_target_names_matching_no_layer_are_an_error_naming_the_layers_there_are():
    opt = dict(model_type="opt", hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
               word_embed_proj_dim=64, max_position_embeddings=256, vocab_size=300)
    # peft adapted q/k/v_proj and said nothing of o_proj (OPT's is out_proj)
    with pytest.raises(ValueError, match=r"lora_target_modules \['o_proj'\] name no layer of the LLM \(opt\); its "
                                         r"linear layers are \['k_proj', 'v_proj', 'q_proj', 'out_proj', 'fc1'"):
        _lora_model(tiny_config, opt, lora_target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])


def test_a_chat_template_refusing_a_system_message_gets_the_system_prompt_in_the_user_turn():
    tok = base_tokenizer()
    tok.chat_template = GEMMA_TEMPLATE  # Gemma's: raise_exception('System role not supported')
    cfg = reference_config(system_prompt="You are a FACS coder.")
    prompt = render_prompt(tok, cfg, "What emotion is shown?")
    assert prompt.startswith("<start_of_turn>user\nYou are a FACS coder.\n\n<struct>")
    assert prompt.endswith("What emotion is shown?<end_of_turn>\n<start_of_turn>model\n")


def test_a_tokenizer_without_chat_template_keeps_the_start_token_it_puts_before_every_text(tmp_path):
    placeholders = list(reference_config().placeholders.values())
    cfg = reference_config(system_prompt=None)
    for name, starts in (("llama", True), ("gpt2", False)):
        special = ["<unk>", "<s>", "</s>"] if starts else ["<|endoftext|>"]
        _bpe(special, special[-2 if starts else 0], special[-1], starts).save_pretrained(tmp_path / name)
        tok = load_hub_tokenizer(str(tmp_path / name), placeholders)
        ids = tok(render_prompt(tok, cfg, "What emotion does this face show?"), add_special_tokens=False).input_ids
        # Llama's <s> was lost: prompts are encoded without special tokens and the fallback template had none
        assert (ids[0] == tok.bos_token_id) == starts, name
        assert ids.count(tok.bos_token_id) == int(starts)


def test_a_gpt2_folder_with_its_own_tokenizer_builds_with_lora_and_grows_its_tied_vocabulary(tmp_path):
    tok = _bpe(["<|endoftext|>"], "<|endoftext|>", "<|endoftext|>", False)
    GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256, vocab_size=len(tok))).save_pretrained(
        tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    cfg = reference_config(llm=str(tmp_path / "gpt2"), vision=None, experts=["dynamic", "motion"], n_dyn_tokens=2,
                           dyn_dim=16, motion_dim=16, base_dtype="float32", system_prompt=None)
    tok = load_hub_tokenizer(cfg.llm, list(cfg.placeholders.values()))
    model = DeftModel.from_components(cfg, tok)
    assert _lora_layers(model) == {"c_attn", "c_proj", "c_fc"}
    lm = model.language_model
    assert lm.get_input_embeddings().num_embeddings == len(tok) and lm.get_output_embeddings().weight is \
        lm.get_input_embeddings().weight


def test_generation_never_emits_an_expert_placeholder(small_shards_dir):
    # an untrained or drifting LLM that picks <dyn> failed the next step: "the prompts hold 1 <dyn> tokens but no
    # input for expert 'dynamic' was given"
    cfg = tiny_config(experts=["dynamic", "motion"])
    shards = ShardSet(small_shards_dir, cfg)
    cfg.emotion_labels = shards.emotion_labels()
    tok = build_tiny_tokenizer(list(shards.answer), list(cfg.placeholders.values()))
    torch.manual_seed(0)
    model = DeftModel.from_components(cfg, tok).eval()
    dyn = cfg.placeholder_ids["dynamic"]

    def prefer_dyn(module, args, out):
        out = out.clone()
        out[..., dyn] += 1e4
        return out

    model.llm.get_output_embeddings().register_forward_hook(prefer_dyn)
    ds = DeftDataset(shards, [0], tok, with_answer=False)
    g = predict_dataset(model, tok, ds, {0}, max_new_tokens=3)[0]["generation"]
    assert g["tokens"] > 0


def test_a_tower_s_own_pixel_normalisation_is_read_from_its_image_processor(tmp_path):
    """Every tower's pixels were normalised by SigLIP's 0.5/0.5: a CLIP or DINOv2 tower (ImageNet-like, per channel)
    saw other images than it was trained on. Left unset, the normalisation is the tower's image processor's, per
    colour channel; a tower folder without one keeps 0.5."""
    import json

    from transformers import CLIPVisionConfig, CLIPVisionModel

    from deft_model.data import DeftCollator
    from deft_model.modeling import resolve_image_size

    clip_mean, clip_std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    tower = tmp_path / "clip"
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(tower)
    bare = tmp_path / "bare"
    CLIPVisionModel.from_pretrained(tower).save_pretrained(bare)
    (tower / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "CLIPImageProcessor", "image_mean": clip_mean, "image_std": clip_std}))
    cfg = tiny_config(vision=str(tower), vision_config=None)
    resolve_image_size(cfg)
    assert (cfg.image_size, cfg.image_mean, cfg.image_std) == (32, clip_mean, clip_std)
    own = tiny_config(vision=str(tower), vision_config=None, image_mean=0.5, image_std=0.25)  # set: kept
    resolve_image_size(own)
    assert (own.image_mean, own.image_std) == (0.5, 0.25)
    plain = tiny_config(vision=str(bare), vision_config=None)
    resolve_image_size(plain)
    assert (plain.image_mean, plain.image_std) == (0.5, 0.5)
    # what the config leaves out is the processor class's own (CLIP's std); a processor that does not normalise: 0/1
    for held, want in (({"image_mean": [0.1, 0.2, 0.3]}, ([0.1, 0.2, 0.3], clip_std)), ({"do_normalize": False}, (0.0, 1.0))):
        (bare / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "CLIPImageProcessor", **held}))
        part = tiny_config(vision=str(bare), vision_config=None)
        resolve_image_size(part)
        assert np.allclose(part.image_mean, want[0]) and np.allclose(part.image_std, want[1]), held
    # per channel in the batch: a grey onset becomes three channels, each normalised by its own mean and std
    item = {"prompt_ids": [1], "answer_ids": [2], "emotion": 0, "au": np.zeros(3, np.float32),
            "row": 0, "onset": np.full((32, 32), 128, np.uint8)}
    px = DeftCollator(0, image_mean=cfg.image_mean, image_std=cfg.image_std)([item])["pixel_values"]
    want = [(128 / 255 - m) / s for m, s in zip(clip_mean, clip_std, strict=True)]
    assert px.shape == (1, 3, 32, 32) and torch.allclose(px[0, :, 0, 0], torch.tensor(want), atol=1e-5)
    for bad in ({"image_std": [0.2, 0.0, 0.2]}, {"image_mean": [0.5, 0.5]}, {"image_std": "wide"}):
        with pytest.raises(ValueError, match=r"image_(mean|std) (must be a number|takes a number)"):
            tiny_config(**bad)


def test_a_target_pattern_matching_no_layer_is_an_error_naming_the_layers_there_are():
    opt = dict(model_type="opt", hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4,
               word_embed_proj_dim=64, max_position_embeddings=256, vocab_size=300)
    with pytest.raises(ValueError, match=r"lora_target_modules \['q_proj,v_proj'\] name no layer of the LLM \(opt\)"):
        _lora_model(tiny_config, opt, lora_target_modules="q_proj,v_proj")  # peft's "Target modules ... not found"
    assert _lora_layers(_lora_model(tiny_config, opt, lora_target_modules=r".*\.(q_proj|v_proj)")) == {"q_proj", "v_proj"}


def test_runs_requested_before_the_presets_spelled_their_settings_anew_are_the_same_request(tmp_path):
    """The tiny and reference presets once spelled out their LoRA targets and a 0.5/0.5 normalisation that they now
    leave to the LLM and the tower (the same layers, the same numbers): compared as spelled, every LOSO fold of an
    earlier run was trained again and a resume with the run's own command refused."""
    import json

    from transformers import CLIPVisionConfig, CLIPVisionModel

    from deft_model.configuration import setting_differences
    from deft_model.modeling import as_requested_now

    for preset, lora in ((tiny_config, ["q_proj", "k_proj", "v_proj", "o_proj"]),
                         (reference_config, ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])):
        new = preset()
        old = {**new.request_dict(), "lora_target_modules": lora, "image_mean": 0.5, "image_std": 0.5}
        assert setting_differences(old, new.request_dict())  # as spelled: three differences
        assert setting_differences(as_requested_now(old, new), new.request_dict()) == []
    # a tower normalised otherwise was fed other pixels then: that stays a difference
    tower = tmp_path / "clip"
    CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                     image_size=32, patch_size=8)).save_pretrained(tower)
    (tower / "preprocessor_config.json").write_text(json.dumps({"image_processor_type": "CLIPImageProcessor"}))
    clip = tiny_config(vision=str(tower), vision_config=None)
    old = {**clip.request_dict(), "image_mean": 0.5, "image_std": 0.5}
    assert [d[0] for d in setting_differences(as_requested_now(old, clip), clip.request_dict())] == ["image_mean",
                                                                                                      "image_std"]


def test_a_batch_of_a_model_whose_tower_was_never_resolved_is_normalised_as_siglip_s():
    from deft_model.data import DeftCollator

    item = {"prompt_ids": [1], "answer_ids": [2], "emotion": 0, "au": np.zeros(3, np.float32), "row": 0,
            "onset": np.full((8, 8), 255, np.uint8)}
    px = DeftCollator(0, image_mean=None, image_std=None)([item])["pixel_values"]  # tiny_config() before resolving
    assert torch.allclose(px, torch.ones(1, 3, 8, 8))
