"""DeftModel: save/load round trip, ablations, LoRA, offline errors, disentanglement loss."""

from __future__ import annotations

import json

import pytest
import torch

from deft_model.configuration import DEFAULT_TRAINING, DeftConfig, load_config, reference_config, tiny_config
from deft_model.data import placeholder_text
from deft_model.experts import disentangle_loss
from deft_model.modeling import DeftModel
from deft_model.tokenizer import OfflineModelError, build_tiny_tokenizer


def _model(**over):
    cfg = tiny_config(emotion_labels=["a", "b", "c"], **over)
    tok = build_tiny_tokenizer(["The emotion is a.", "What emotion?"], list(cfg.placeholders.values()))
    torch.manual_seed(0)
    return DeftModel.from_components(cfg, tok), tok


def _batch(model, tok, B=3):
    cfg = model.config
    ph = placeholder_text(cfg)
    ids = tok([ph + "What emotion? The emotion is a."] * B, add_special_tokens=False, return_tensors="pt").input_ids
    g = torch.Generator().manual_seed(1)
    return dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids.clone(), return_logits=True,
                pixel_values=torch.randn(B, 3, 32, 32, generator=g), frames=torch.rand(B, 4, 32, 32, generator=g),
                flow=torch.randn(B, 3, 16, 16, generator=g), region_stats=torch.randn(B, 17, 8, generator=g),
                emotion_labels=torch.tensor([0, 1, 2][:B]), au_labels=torch.zeros(B, len(cfg.au_list)))


@pytest.mark.parametrize("mode", ["full", "lora"])
def test_save_pretrained_round_trip_gives_identical_logits(tmp_path, mode):
    model, tok = _model(llm_mode=mode)
    if mode == "lora":  # make the adapters non-trivial so that losing them would show
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.1)
    model.eval()
    b = _batch(model, tok)
    with torch.no_grad():
        o1 = model(**b)
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    # the weights (ours, and peft's adapters) are as readable as the run's other files (safetensors alone
    # writes them 0600)
    modes = {str(f.relative_to(tmp_path / "m")): f.stat().st_mode & 0o777 for f in (tmp_path / "m").rglob("*")
             if f.is_file()}
    assert len(set(modes.values())) == 1, modes
    assert ("adapter/adapter_model.safetensors" in modes) == (mode == "lora")
    m2 = DeftModel.from_pretrained(tmp_path / "m")
    m2.eval()
    with torch.no_grad():
        o2 = m2(**b)
    assert torch.equal(o1.logits, o2.logits)
    assert torch.equal(o1.emotion_logits, o2.emotion_logits)
    assert torch.equal(o1.au_logits, o2.au_logits)
    assert m2.config.emotion_labels == ["a", "b", "c"]
    if mode == "lora":
        trainable = [n for n, p in m2.named_parameters() if p.requires_grad and n.startswith("llm.")]
        assert trainable and all("lora_" in n or "embed" in n or "lm_head" in n for n in trainable)


def test_hybrid_loss_has_all_terms_and_backpropagates():
    model, tok = _model()
    b = _batch(model, tok)
    out = model(**b)
    assert set(out.losses) == {"lm", "emotion", "au", "disentangle"}
    out.loss.backward()
    for name in ("structure", "dynamic", "motion"):
        grads = [p.grad for p in model.experts[name].parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_lm_loss_ignores_prompt_labels():
    model, tok = _model()
    b = _batch(model, tok)
    b2 = dict(b)
    b2["labels"] = torch.full_like(b["labels"], -100)
    b2["labels"][:, -3:] = b["labels"][:, -3:]
    b2["labels"][0, -1] = -100  # answers of different lengths: 3, 2, 3 tokens
    out = model(**b2)
    ce = torch.nn.functional.cross_entropy(out.logits[:, -4:-1].transpose(1, 2), b2["labels"][:, -3:],
                                           ignore_index=-100, reduction="none")
    per_row = ce.sum(1) / (b2["labels"][:, -3:] != -100).sum(1)
    assert torch.allclose(out.losses["lm"], per_row.mean(), atol=1e-6)  # lm_reduction="sample"
    model.config.lm_reduction = "token"
    out = model(**b2)
    assert torch.allclose(out.losses["lm"], ce.sum() / 8, atol=1e-6)
    # training without return_logits computes no full logits
    b2.pop("return_logits")
    assert model(**b2).logits is None


@pytest.mark.parametrize("experts", [["structure", "dynamic"], ["motion"], ["dynamic", "motion"]])
def test_ablation_switches_experts_off(experts, tmp_path):
    model, tok = _model(experts=experts)
    assert sorted(model.experts) == sorted(experts)
    b = _batch(model, tok)
    for e in ("structure", "dynamic", "motion"):
        tid = tok.convert_tokens_to_ids(model.config.placeholders[e])
        assert ((b["input_ids"] == tid).sum() > 0) == (e in experts)
    out = model(**b)
    assert torch.isfinite(out.loss)
    assert out.au_logits.shape == (3, len(model.config.au_list))
    model.save_pretrained(tmp_path / "m")
    assert DeftModel.from_pretrained(tmp_path / "m").config.experts == experts


def test_config_rejects_unknown_expert_and_empty_experts():
    with pytest.raises(ValueError, match="unknown expert"):
        tiny_config(experts=["structure", "optical"])
    with pytest.raises(ValueError, match="at least one expert"):
        tiny_config(experts=[])


def test_config_file_with_preset_and_overrides(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"preset": "tiny", "experts": ["motion"], "training": {"epochs": 7}}))
    cfg = load_config(p)
    assert cfg.experts == ["motion"] and cfg.training["epochs"] == 7 and cfg.training["batch_size"] == 8
    assert cfg.llm_config["hidden_size"] == 64 and cfg.text_config.hidden_size == 64
    # a training key merges onto the preset's training, not onto DEFAULT_TRAINING
    tiny = tiny_config().training
    p.write_text(json.dumps({"preset": "tiny", "training": {"lr": 1e-3}}))
    cfg = load_config(p)
    assert cfg.training["lr"] == 1e-3
    assert cfg.training["epochs"] == tiny["epochs"] == 12 and cfg.training["max_length"] == tiny["max_length"] == 256
    assert cfg.training["num_threads"] == tiny["num_threads"]
    # call overrides merge key by key too
    cfg = load_config(p, training={"batch_size": 4})
    assert cfg.training["batch_size"] == 4 and cfg.training["lr"] == 1e-3 and cfg.training["epochs"] == 12
    # without a preset the file's training completes DEFAULT_TRAINING
    p.write_text(json.dumps({**tiny_config().to_dict(), "training": {"lr": 1e-3}}))
    assert load_config(p).training == {**DEFAULT_TRAINING, "lr": 1e-3}
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        load_config(tmp_path / "nope.json")


def test_unknown_settings_are_errors_naming_the_key_and_dotted_training_keys_work(tmp_path):
    """`deft train --set lr=0.5` (or a typo) was stored in config.json and ignored: the run trained at the preset's
    rate, exit 0; `--set experts=structure` asked for the experts s, t, r, u, ..."""
    from deft_model.cli import _overrides

    with pytest.raises(ValueError, match=r"unknown config key 'lr' \(a training setting: training.lr=VALUE\)"):
        load_config("tiny", **_overrides(None, ["lr=0.5"]))
    with pytest.raises(ValueError, match=r"'trainng' \(did you mean training\?\)"):
        load_config("tiny", **_overrides(None, ['trainng={"epochs": 1}']))
    with pytest.raises(ValueError, match=r"unknown training key 'epoch' \(did you mean training.epochs\?\)"):
        load_config("tiny", training={"epoch": 1})
    with pytest.raises(ValueError, match=r"training takes a JSON object, not '\{epochs:1\}': quote it"):
        load_config("tiny", **_overrides(None, ["training={epochs:1}"]))  # the shell ate the quotes
    with pytest.raises(ValueError, match=r"training.lr takes a number, not 'abc'"):  # was float()'s bare message
        load_config("tiny", **_overrides(None, ["training.lr=abc"]))
    with pytest.raises(ValueError, match=r"training.epochs takes a number, not '2x'"):
        load_config("tiny", training={"epochs": "2x"})
    cfg = load_config("tiny", **_overrides(None, ["training.lr=0.5", "training.epochs=2", "experts=structure"]))
    assert cfg.training["lr"] == 0.5 and cfg.training["epochs"] == 2 and cfg.experts == ["structure"]
    assert cfg.training["batch_size"] == tiny_config().training["batch_size"]
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"preset": "tiny", "epochs": 3}))
    with pytest.raises(ValueError, match=r"c.json: unknown config key 'epochs'"):
        load_config(p)


def test_a_setting_of_the_wrong_type_or_size_is_an_error_naming_it(tmp_path):
    """`--set lora_r=abc` was stored and failed inside peft, `frame_size=abc` inside numpy, and `stack_len=0` was
    stored and failed in the data loader: none named the setting."""
    from deft_model.cli import _overrides

    for given, says in (("lora_r=abc", r"lora_r takes an integer, not 'abc'"),
                        ("frame_size=abc", r"frame_size takes an integer, not 'abc'"),
                        ("lora_dropout=high", r"lora_dropout takes a number, not 'high'"),
                        ("recognition_token=1", r"recognition_token takes true or false, not 1"),
                        ("llm=3", r"llm takes a string or null, not 3"),
                        ("stack_len=0", r"stack_len must be an integer of at least 2, not 0"),
                        ("lora_r=0", r"lora_r must be an integer of at least 1, not 0"),
                        ("lora_dropout=1", r"lora_dropout must be a number in \[0, 1\), not 1"),
                        ("flow_scale=-1", r"flow_scale must be a number above 0, not -1")):
        with pytest.raises(ValueError, match=says):
            load_config("tiny", **_overrides(None, [given]))
    p = tmp_path / "c.json"  # a user's own file is checked as --set is
    p.write_text(json.dumps({"preset": "tiny", "lora_r": "8"}))
    with pytest.raises(ValueError, match=r"c.json: lora_r takes an integer, not '8'"):
        load_config(p)
    cfg = load_config("tiny", **_overrides(None, ["lora_r=16", "lora_dropout=0.1", "stack_len=2", "llm=null"]))
    assert (cfg.lora_r, cfg.lora_dropout, cfg.stack_len) == (16, 0.1, 2)
    import numpy as np  # a value read from an array is the number it holds, stored as Python's

    cfg = load_config("tiny", stack_len=np.int64(6), lora_alpha=np.float32(8.0))
    assert (cfg.stack_len, cfg.lora_alpha) == (6, 8.0) and type(cfg.stack_len) is int and json.loads(cfg.to_json_string())


def test_a_hub_name_is_read_from_the_cache_only_where_the_hub_cannot_be_reached(monkeypatch, request, tmp_path):
    """Without HF_HUB_OFFLINE, `deft train --config reference` on a machine that cannot resolve the Hub retried for
    about a minute (five backoffs) before saying the model was not cached."""
    import socket

    from deft_model import hubaccess, modeling

    def no_dns(*a, **k):
        raise socket.gaierror(-2, "Name or service not known")

    seen = {}

    def not_cached(name, **kw):
        seen.update(kw)
        raise OSError("couldn't find them in the cached files")

    import huggingface_hub
    import transformers

    from deft_model.configuration import reference_config
    from deft_model.tokenizer import load_hub_tokenizer

    monkeypatch.setattr(hubaccess.constants, "HF_HUB_OFFLINE", False)
    for k in ("HF_HUB_OFFLINE", *hubaccess._PROXIES):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr(hubaccess.socket, "getaddrinfo", no_dns)
    for owner in (modeling.AutoModelForCausalLM, modeling.AutoConfig, transformers.AutoTokenizer):
        monkeypatch.setattr(owner, "from_pretrained", staticmethod(not_cached))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", not_cached)
    hubaccess.hub_unreachable.cache_clear()
    request.addfinalizer(hubaccess.hub_unreachable.cache_clear)
    name = "Qwen/Qwen2.5-0.5B-Instruct"
    for load in (lambda: modeling.load_named_llm(name, torch.float32), lambda: load_hub_tokenizer(name, []),
                 lambda: modeling.load_named_vision(name, torch.float32),
                 lambda: modeling.resolve_image_size(reference_config(emotion_labels=["a"])),
                 lambda: modeling._resolve(name, {})):
        seen.clear()
        with pytest.raises(OfflineModelError, match=r"the Hub cannot be reached from this machine, so only the local "
                                                    r"cache was read"):
            load()
        assert seen["local_files_only"] is True
    assert hubaccess.cache_only(tmp_path) == {}  # a local folder is read as it is
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # a cluster's nodes reach the Hub through it
    hubaccess.hub_unreachable.cache_clear()
    assert hubaccess.cache_only(name) == {}
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setattr(hubaccess.socket, "getaddrinfo", lambda *a, **k: [])  # the Hub resolves: asked as before
    hubaccess.hub_unreachable.cache_clear()
    assert hubaccess.cache_only("Qwen/Qwen2.5-0.5B-Instruct") == {}


def test_reference_config_names_hub_models_and_fails_offline_clearly():
    cfg = reference_config(emotion_labels=["a"])
    assert cfg.llm.startswith("Qwen/") and "siglip" in cfg.vision
    from deft_model.tokenizer import load_hub_tokenizer

    with pytest.raises(OfflineModelError, match=r"Qwen/Qwen2\.5-0\.5B-Instruct.*offline"):
        load_hub_tokenizer(cfg.llm, ["<struct>"])
    tok = build_tiny_tokenizer(["x"], list(cfg.placeholders.values()))
    with pytest.raises(OfflineModelError, match=r"cannot load LLM 'Qwen/Qwen2\.5-0\.5B-Instruct'.*offline"):
        DeftModel.from_components(cfg, tok)


def test_disentangle_loss_is_high_for_correlated_and_low_for_independent_summaries():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(512, 4, generator=g)
    b = torch.randn(512, 4, generator=g)
    assert disentangle_loss([a, a]) > 0.2
    assert disentangle_loss([a, b]) < 0.01
    assert disentangle_loss([a[:1], b[:1]]) == 0  # one clip and no memory: no correlation to measure


def test_disentangle_loss_at_batch_size_1_uses_the_memory_of_recent_clips():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(65, 4, generator=g)
    b = torch.randn(65, 4, generator=g)
    cur_a = a[:1].clone().requires_grad_(True)
    # the recent clips' summaries of two experts are the same features: one clip is enough to measure it
    corr = disentangle_loss([cur_a, a[:1]], memory=[a[1:], a[1:]])
    indep = disentangle_loss([cur_a, b[:1]], memory=[a[1:], b[1:]])
    assert corr > 0.2 and indep < 0.05
    corr.backward()
    assert cur_a.grad is not None and cur_a.grad.abs().sum() > 0  # the current clip is pushed, not the memory


def test_disentangle_term_is_non_zero_and_trains_the_experts_at_batch_size_1():
    model, tok = _model(loss_weights={"lm": 0.0, "emotion": 0.0, "au": 0.0, "disentangle": 1.0})
    model.train()
    seen = []
    for i in range(3):
        b = {k: (v[i:i + 1] if torch.is_tensor(v) and v.dim() and v.shape[0] == 3 else v) for k, v in _batch(model, tok).items()}
        out = model(**b)
        seen.append(float(out.losses["disentangle"]))
        if i == 2:
            model.zero_grad()
            out.loss.backward()  # the decorrelation term alone
            for name in ("structure", "dynamic", "motion"):
                grads = [p.grad for p in model.experts[name].parameters() if p.requires_grad]
                assert any(g is not None and g.abs().sum() > 0 for g in grads), name
    assert seen[0] == 0 and seen[1] > 0 and seen[2] > 0, seen
    assert int(model.memory.count) == 3
    model.eval()
    model(**_batch(model, tok))
    assert int(model.memory.count) == 3  # evaluation does not write the training memory


def test_package_import_registers_the_auto_classes_and_generation(tmp_path):
    from transformers import AutoConfig, AutoModel

    import deft_model

    model, tok = _model()
    model.save_pretrained(tmp_path / "m")
    assert type(AutoConfig.from_pretrained(tmp_path / "m")) is deft_model.DeftConfig
    m2 = AutoModel.from_pretrained(tmp_path / "m")
    assert type(m2) is DeftModel and DeftModel.can_generate()
    for f in ("configuration.py", "modeling.py", "experts.py"):  # code for trust_remote_code
        assert (tmp_path / "m" / f).exists()
    b = _batch(m2, tok)
    gen = dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"], pixel_values=b["pixel_values"],
               frames=b["frames"], flow=b["flow"], region_stats=b["region_stats"], max_new_tokens=5,
               pad_token_id=tok.pad_token_id)
    greedy = m2.generate(**gen, do_sample=False)
    # greedy decoding with the cache equals re-running the whole prompt each step without one
    ids, att = b["input_ids"], b["attention_mask"]
    with torch.no_grad():
        for _ in range(5):
            nxt = m2(input_ids=ids, attention_mask=att, **{k: b[k] for k in ("pixel_values", "frames", "flow",
                                                                            "region_stats")}).logits[:, -1].argmax(-1)
            ids, att = torch.cat([ids, nxt[:, None]], 1), torch.cat([att, torch.ones_like(att[:, :1])], 1)
    assert torch.equal(greedy, ids)
    torch.manual_seed(0)
    sampled = m2.generate(**gen, do_sample=True, temperature=5.0)
    assert sampled.shape == greedy.shape and not torch.equal(sampled, greedy)


def test_inline_llm_config_never_shrinks_the_vocabulary():
    cfg = tiny_config(emotion_labels=["a"])
    tok = build_tiny_tokenizer(["The emotion is a."], list(cfg.placeholders.values()))
    assert len(tok) < cfg.text_config.vocab_size == 1024
    model = DeftModel.from_components(cfg, tok)
    assert model.llm.get_input_embeddings().num_embeddings == 1024 and cfg.vocab_resized is None
    small = tiny_config(emotion_labels=["a"], text_config={**tiny_config().llm_config, "vocab_size": 16})
    model = DeftModel.from_components(small, tok)  # the tokenizer needs more rows: grown, and recorded
    assert model.llm.get_input_embeddings().num_embeddings == len(tok)
    assert small.vocab_resized == {"from": 16, "to": len(tok)}


def test_tiny_tokenizer_is_deterministic_and_has_placeholders():
    texts = ["The emotion is happiness.", "Which AUs are active?"] * 3
    t1 = build_tiny_tokenizer(texts, ["<struct>", "<dyn>", "<motion>"])
    t2 = build_tiny_tokenizer(list(reversed(texts)), ["<struct>", "<dyn>", "<motion>"])
    assert t1.get_vocab() == t2.get_vocab()
    ids = t1("<struct><struct><dyn>", add_special_tokens=False).input_ids
    assert ids == [t1.convert_tokens_to_ids("<struct>")] * 2 + [t1.convert_tokens_to_ids("<dyn>")]


def test_deft_config_is_a_pretrained_config():
    from transformers import PretrainedConfig

    assert issubclass(DeftConfig, PretrainedConfig)
    cfg = tiny_config()
    d = cfg.to_dict()
    assert DeftConfig(**{k: v for k, v in d.items() if k not in ("model_type", "transformers_version")}).experts == cfg.experts


def test_a_run_in_the_layout_before_peft_wrapping_still_loads(tmp_path):
    """Runs saved before issue 9 keep the model in RUN/model/, the LLM's keys without peft's wrapper prefix,
    the adapters inside model.safetensors and no decorrelation memory; they load with the same logits."""
    import shutil

    from safetensors.torch import save_file

    model, tok = _model(llm_mode="lora")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)
    model.eval()
    b = _batch(model, tok)
    with torch.no_grad():
        o1 = model(**b)
    model.save_pretrained(tmp_path / "new")
    old = tmp_path / "old" / "model"
    old.mkdir(parents=True)
    shutil.copy(tmp_path / "new" / "config.json", old / "config.json")
    save_file({k.replace("llm.base_model.model.", "llm.", 1): v.contiguous() for k, v in model.state_dict().items()
               if not k.startswith("memory.")}, str(old / "model.safetensors"))
    m2 = DeftModel.from_pretrained(tmp_path / "old")
    with torch.no_grad():
        o2 = m2(**b)
    assert torch.equal(o1.logits, o2.logits) and torch.equal(o1.emotion_logits, o2.emotion_logits)
