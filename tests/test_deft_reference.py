# ruff: noqa: F811  (pytest fixtures imported from deft_fixtures are redefined as arguments)
"""The reference config end to end on reference-SHAPED models: the real Qwen2 and SigLIP classes at a
reduced width and depth, random weights saved to local folders, so that every from_pretrained runs for
real: bfloat16 base, float32 trainable parts, LoRA saved as peft saves it, base referenced by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from deft_fixtures import one_thread, small_shards_dir  # noqa: F401
from safetensors.torch import load_file
from transformers import AutoModel

import deft_model  # noqa: F401  (registers the Auto classes)
from deft_model.data import placeholder_text
from deft_model.errors import OfflineModelError
from deft_model.modeling import DeftModel
from deft_model.testing import reference_bases, reference_shaped_config
from deft_model.tokenizer import load_hub_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return reference_bases(tmp_path_factory.mktemp("reference_bases"))


def _batch(model, tok, B=2):
    cfg = model.config
    ph = placeholder_text(cfg)
    ids = tok([ph + "What emotion does this facial micro-expression show?"] * B, add_special_tokens=False,
              return_tensors="pt").input_ids
    g = torch.Generator().manual_seed(1)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids.clone(), return_logits=True,
                pixel_values=torch.randn(B, 3, 32, 32, generator=g), frames=torch.rand(B, 4, 32, 32, generator=g),
                flow=torch.randn(B, 3, 16, 16, generator=g), region_stats=torch.randn(B, 17, 8, generator=g),
                emotion_labels=torch.tensor([0, 1][:B]), au_labels=torch.zeros(B, len(cfg.au_list)))


def test_reference_shaped_model_trains_in_fp32_over_a_bf16_base_and_reloads_exactly(bases, tmp_path):
    own = tmp_path / "bases"  # a private copy: the end of the test changes the base
    shutil.copytree(bases[0].parent, own)
    llm_dir, vision_dir = own / "llm", own / "vision"
    cfg = reference_shaped_config(llm_dir, vision_dir, emotion_labels=["a", "b"])
    tok = load_hub_tokenizer(str(llm_dir), list(cfg.placeholders.values()))
    base_rows = len(tok) - len(cfg.placeholders)
    torch.manual_seed(0)
    model = DeftModel.from_components(cfg, tok)
    # the tower's own image size; the vocabulary grown (never shrunk) for the placeholders, and recorded
    assert cfg.image_size == 32 and cfg.vocab_resized == {"from": base_rows, "to": len(tok)}
    dtypes = {n: p.dtype for n, p in model.named_parameters()}
    assert all(dt == torch.float32 for n, dt in dtypes.items() if model.get_parameter(n).requires_grad)
    assert {dt for n, dt in dtypes.items() if ".vision." in n or (n.startswith("llm.") and "lora_" not in n)} \
        == {torch.bfloat16}
    # two AdamW steps on the fp32 master weights
    b = _batch(model, tok)
    opt = torch.optim.AdamW(model.trainable_parameters(), lr=1e-2)
    for _ in range(2):
        model(**b).loss.backward()
        opt.step()
        opt.zero_grad()
    assert any(p.abs().sum() > 0 for n, p in model.named_parameters() if "lora_B" in n)
    model.eval()
    with torch.no_grad():
        o1 = model(**b)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    stored = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert not any(k.startswith("llm.") for k in stored)  # the base LLM is referenced by name, not stored
    assert not any(".vision." in k for k in stored)
    assert stored["extra_vocab_rows.input"].shape[0] == len(cfg.placeholders)  # only the placeholder rows it added
    adapter = json.loads((tmp_path / "m" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(llm_dir) and adapter["r"] == cfg.lora_r
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["auto_map"] == {"AutoConfig": "configuration.DeftConfig", "AutoModel": "modeling.DeftModel"}
    m2 = AutoModel.from_pretrained(tmp_path / "m")
    assert isinstance(m2, DeftModel) and m2.can_generate()
    with torch.no_grad():
        o2 = m2(**b)
    # same weights, same dtypes, same ops: equal to the last bit (tolerance 0)
    assert torch.equal(o1.logits, o2.logits)
    assert torch.equal(o1.emotion_logits, o2.emotion_logits) and torch.equal(o1.au_logits, o2.au_logits)
    # sampling goes through GenerationMixin
    gen = m2.generate(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"],
                      frames=b["frames"], flow=b["flow"], region_stats=b["region_stats"], max_new_tokens=4,
                      do_sample=True, top_k=5, pad_token_id=tok.pad_token_id)
    assert gen.shape == (2, b["input_ids"].shape[1] + 4)
    # a base whose weights changed since is refused, by name
    reference_bases(own, seed=1)
    with pytest.raises(OfflineModelError, match="not the one this run was trained on"):
        AutoModel.from_pretrained(tmp_path / "m")
    shutil.rmtree(llm_dir)
    with pytest.raises(OfflineModelError, match=rf"cannot load LLM '{llm_dir}'"):
        AutoModel.from_pretrained(tmp_path / "m")


def test_reference_shaped_run_trains_saves_evaluates_and_predicts(bases, small_shards_dir, tmp_path):
    from deft_model.evaluate import evaluate_run
    from deft_model.predict import predict_row
    from deft_model.train import train

    run = tmp_path / "run"
    cfg = reference_shaped_config(*bases)
    train(small_shards_dir, cfg, run, fold="casme2/sub01", max_steps=2, save_every=1, seed=0, verbose=False)
    ck = load_file(str(run / "checkpoints" / "step-0000001" / "model.safetensors"))
    assert any("lora_" in k for k in ck) and any(k.startswith("experts.") for k in ck)
    assert not any(k.startswith("llm.") and "lora_" not in k for k in ck)  # no base weights in checkpoints
    res = evaluate_run(run, "loso", data=small_shards_dir, generate=True, verbose=False)
    assert res["n_clips"] == 4 and res["head"]["uf1"] is not None
    assert res["explanation"]["agrees_with_heads_rate"] == 1.0
    out = predict_row(run, small_shards_dir, "casme2/sub01/EP01_01#explain")
    assert out["emotion"] in out["emotion_probs"] and "lip corner" in out["motion"]


def test_reference_config_errors_name_the_model_and_the_size(bases, tmp_path):
    from deft_model.modeling import resolve_image_size

    cfg = reference_shaped_config(*bases, image_size=224)
    with pytest.raises(ValueError, match=r"image_size 224 differs from the vision tower's own image_size 32"):
        resolve_image_size(cfg)
    cfg = reference_shaped_config(tmp_path / "no_such_llm", bases[1])
    tok = load_hub_tokenizer(str(bases[0]), list(cfg.placeholders.values()))
    with pytest.raises(OfflineModelError, match=r"cannot load LLM .*no_such_llm'?: no such folder \(moved or deleted\?\); "
                                                r"a config names its base models by `llm` and `vision`"):
        DeftModel.from_components(cfg, tok)


def test_a_model_folder_without_its_tokenizer_files_is_an_error_naming_it(bases, tmp_path):
    """A folder holding only an LLM's weights and config (a common partial copy) loaded as a tokenizer without a
    vocabulary: every answer encoded to nothing and `deft train` exited 0 having learnt nothing."""
    import shutil

    llm, _ = bases
    assert load_hub_tokenizer(str(llm), ["<struct>"])("a smile", add_special_tokens=False)["input_ids"]
    bare = tmp_path / "llm_weights_only"
    bare.mkdir()
    for f in llm.iterdir():
        if f.name in ("config.json", "generation_config.json") or f.suffix == ".safetensors":
            shutil.copy(f, bare / f.name)
    with pytest.raises(OfflineModelError, match=r"local folder .*llm_weights_only: it has no tokenizer files"):
        load_hub_tokenizer(str(bare), ["<struct>"])


def test_a_base_model_folder_written_from_home_is_found(bases, tmp_path, monkeypatch):
    """`llm: ~/models/qwen` in a config file (or `--set llm=~/...`, which no shell expands) was read as a Hub id."""
    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    for base in bases:
        (home / "models" / base.name).symlink_to(base, target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    cfg = reference_shaped_config(f"~/models/{bases[0].name}", f"~/models/{bases[1].name}")
    assert cfg.llm == str(home / "models" / bases[0].name) and cfg.vision == str(home / "models" / bases[1].name)
    tok = load_hub_tokenizer(cfg.llm, list(cfg.placeholders.values()))
    assert DeftModel.from_components(cfg, tok).config.llm == cfg.llm


def test_a_home_folder_that_cannot_be_found_is_named():
    from deft_model.configuration import home_expanded

    with pytest.raises(ValueError, match=r"base model '~no_such_user_here/x'"):
        home_expanded("~no_such_user_here/x")
    assert home_expanded("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
