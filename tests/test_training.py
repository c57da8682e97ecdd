"""The shared fine-tuning path on tiny-random: every method lowers its loss, NaN guard,
checkpoint reuse and keys (derived from what the plan reads), budgets, LoRA, the loss curve,
dropout inserted for training only, the corpus helpers."""
from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict
import math
from pathlib import Path

import pytest
import torch

from bench.data import DataFile, DataRoot
from bench.errors import ConfigError, TrainingError
from bench.io import write_manifest
from bench.api import MethodContext, Request
from methods.finetune import checkpoint
from methods.finetune.cda import CDA
from methods.finetune.checkpoint import RecordingDataRoot, checkpoint_key
from methods.finetune.config import TrainConfig
from methods.finetune.control import FineTune
from methods.finetune.dropout import Dropout, training_dropout
from methods.finetune.loop import _optimizer, schedule
from methods.finetune.nc import NC
from methods.text.corpus import detokenize, pack_chunks, read_corpus

FAST = dict(max_steps=8, batch_size=4, lr=1e-2, warmup_steps=0, seq_len=32)


def _ctx(data_root, tmp_path: Path, budget: str = "cpu", seed: int = 0) -> MethodContext:
    return MethodContext(data=data_root, cache_dir=tmp_path, seed=seed, code_version="test", budget=budget)


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", [
    FineTune(max_examples=4, train=TrainConfig(**FAST)),
    CDA(max_examples=2, train=TrainConfig(**FAST)),
    CDA(bias_type="religion", max_examples=2, train=TrainConfig(**FAST)),
    CDA(max_examples=2, nc3_weight=1.0, train=TrainConfig(**FAST)),
    Dropout(max_examples=4, train=TrainConfig(**FAST)),
    NC(max_examples=4, nc3_weight=1.0, train=TrainConfig(**FAST)),
], ids=["finetune", "cda", "cda-religion", "cda_nc3", "dropout", "nc"])
def test_every_method_lowers_its_loss_and_records_its_curve(method, tiny_loaded, data_root, tmp_path):
    before = _params(tiny_loaded.model)
    info = (debiased := method.prepare(tiny_loaded, _ctx(data_root, tmp_path))).info
    assert info["method/steps"] == 8 and info["method/train_seconds"] > 0
    curve = info["method/loss_curve"]
    assert len(curve["loss"]) == 8 and curve["loss"][0] == info["method/loss_first"]
    assert curve["loss"][-1] < curve["loss"][0] and info["method/lm_last"] < info["method/lm_first"]
    n = info["method/n_train_examples"]
    assert info["method/epochs"] == pytest.approx(8 * 4 / n)  # steps x batch / examples
    assert info["method/train_examples_drawn"] == 32 and 0 < info["method/unique_train_tokens"] <= 32 * n
    assert info["method/identity"] == f"{tiny_loaded.identity}+{method.name}@{info['method/checkpoint_key']}"
    assert all(torch.equal(v, tiny_loaded.model.state_dict()[k]) for k, v in before.items())  # base untouched
    trained = debiased.lm.model.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in before.items())
    assert debiased.lm.loglikelihood([Request("The", " cat")])[0].n_tokens == 1


def test_unique_tokens_are_the_training_items_tokens(tiny_loaded, data_root, tmp_path):
    method = FineTune(max_examples=3, train=TrainConfig(**{**FAST, "max_steps": 1}))
    info = method.prepare(tiny_loaded, _ctx(data_root, tmp_path)).info
    from bench.engine.hf_lm import HFScoringLM

    plan = method.plan(HFScoringLM(tiny_loaded), RecordingDataRoot(data_root), method.train, 0)
    assert info["method/unique_train_tokens"] == sum(len(x) for x in plan.items) and len(plan.items) == 3


def test_finetune_control_refuses_nc3_and_nc_needs_it():
    with pytest.raises(ConfigError, match="method=nc"):
        FineTune(nc3_weight=1.0)
    with pytest.raises(ConfigError, match="nc3_weight must be > 0"):
        NC(nc3_weight=0.0)
    assert FineTune().name == "finetune" and NC().name == "nc" and Dropout(nc3_weight=2.0).name == "dropout_nc3"


# ------------------------------------------------------------------------------ dropout
def _logits(model, ids):
    return model(input_ids=ids).logits


def test_dropout_is_active_in_training_only_and_leaves_no_trace(tiny_loaded):
    model = copy.deepcopy(tiny_loaded.model)
    ids = torch.tensor([tiny_loaded.tokenizer("the king said that he would go home").input_ids])
    with torch.no_grad():
        base = _logits(model.eval(), ids)
        with training_dropout(model, 0.15, 0.15, 0.15):
            assert model.model.layers[0].self_attn.attention_dropout == 0.15
            model.train()
            torch.manual_seed(0)
            a = _logits(model, ids)
            torch.manual_seed(1)
            b = _logits(model, ids)
            torch.manual_seed(0)
            a_again = _logits(model, ids)
            model.eval()
            in_eval = _logits(model, ids)
        model.train()
        after = _logits(model, ids)  # hooks removed: no dropout left in training mode either
    assert not torch.allclose(a, b) and torch.equal(a, a_again)  # varies with the seed, reproducible
    assert not torch.allclose(a, base)
    assert torch.equal(in_eval, base) and torch.equal(after, base)
    assert model.model.layers[0].self_attn.attention_dropout == 0.0
    assert not any(m._forward_hooks for m in model.modules())


def test_each_dropout_kind_changes_training_outputs(tiny_loaded):
    model = copy.deepcopy(tiny_loaded.model).train()
    ids = torch.tensor([tiny_loaded.tokenizer("she said that the queen would go home").input_ids])
    with torch.no_grad():
        plain = _logits(model, ids)  # tiny-random has no dropout of its own
        for rates in [(0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)]:
            with training_dropout(model, *rates):
                torch.manual_seed(0)
                assert not torch.allclose(_logits(model, ids), plain), rates


def test_dropout_checkpoint_has_the_base_modules_and_config(tiny_loaded, data_root, tmp_path):
    info = Dropout(max_examples=4, train=TrainConfig(**{**FAST, "max_steps": 2})).prepare(
        tiny_loaded, _ctx(data_root, tmp_path)).info
    folder = tmp_path / "checkpoints" / info["method/checkpoint_key"]
    saved = json.loads((folder / "config.json").read_text())
    assert saved["attention_dropout"] == tiny_loaded.model.config.attention_dropout == 0.0
    from safetensors import safe_open

    with safe_open(next(folder.glob("*.safetensors")), "pt") as f:
        keys = set(f.keys())
    assert keys <= set(tiny_loaded.model.state_dict())


# -------------------------------------------------------------------- checkpoint and key
def test_nan_loss_stops_with_the_step_and_leaves_no_checkpoint(tiny_loaded, data_root, tmp_path):
    broken = copy.deepcopy(tiny_loaded)
    with torch.no_grad():
        broken.model.get_output_embeddings().weight[0, 0] = float("nan")
    with pytest.raises(TrainingError, match="at step 1 of 8; no checkpoint"):
        CDA(max_examples=2, train=TrainConfig(**FAST)).prepare(broken, _ctx(data_root, tmp_path))
    assert not (tmp_path / "checkpoints").exists() or not any((tmp_path / "checkpoints").iterdir())


def test_second_prepare_reuses_the_checkpoint(tiny_loaded, data_root, tmp_path, monkeypatch):
    method = CDA(max_examples=2, train=TrainConfig(**{**FAST, "max_steps": 2}))
    first = method.prepare(tiny_loaded, _ctx(data_root, tmp_path))
    folder = tmp_path / "checkpoints" / first.info["method/checkpoint_key"]
    assert list(folder.glob("*.safetensors")) and not list(folder.glob("*.bin"))

    def no_training(*_a, **_k):
        raise AssertionError("trained again")

    monkeypatch.setattr(checkpoint, "fit", no_training)
    second = method.prepare(tiny_loaded, _ctx(data_root, tmp_path))
    assert second.info == first.info
    a, b = first.lm.model.state_dict(), second.lm.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_broken_checkpoint_raises_instead_of_falling_back(tiny_loaded, data_root, tmp_path):
    method = CDA(max_examples=2, train=TrainConfig(**{**FAST, "max_steps": 1}))
    key = method.prepare(tiny_loaded, _ctx(data_root, tmp_path)).info["method/checkpoint_key"]
    folder = tmp_path / "checkpoints" / key
    for weights in folder.glob("*.safetensors"):
        weights.write_bytes(b"not safetensors")
    write_manifest(folder)  # passes verification (a corrupted folder is retrained: tests/test_caches.py)
    with pytest.raises(TrainingError, match="cannot load the trained checkpoint"):
        method.prepare(tiny_loaded, _ctx(data_root, tmp_path))


def test_key_changes_with_config_budget_seed_and_data(tiny_loaded, data_root, tmp_path):
    ctx = _ctx(data_root, tmp_path)
    sums = {"f": "1"}
    base = checkpoint_key(CDA(), tiny_loaded, ctx, sums)
    assert base == checkpoint_key(CDA(), tiny_loaded, ctx, sums)
    others = [checkpoint_key(CDA(train=TrainConfig(lr=1e-4)), tiny_loaded, ctx, sums),
              checkpoint_key(CDA(bias_type="race"), tiny_loaded, ctx, sums),
              checkpoint_key(CDA(nc3_weight=1.0), tiny_loaded, ctx, sums),
              checkpoint_key(CDA(), tiny_loaded, _ctx(data_root, tmp_path, "paper"), sums),
              checkpoint_key(CDA(), tiny_loaded, _ctx(data_root, tmp_path, seed=1), sums),
              checkpoint_key(CDA(), tiny_loaded, ctx, {"f": "2"})]
    assert len({base, *others}) == 7


def test_recording_root_lists_exactly_the_files_opened(data_root):
    data = RecordingDataRoot(data_root)
    data.path("bias_bench/bias_attribute_words.json")
    data_root.path("word_lists/countergen_gender_pairs.json")  # read elsewhere: not this plan's
    assert list(data.checksums()) == ["bias_bench/bias_attribute_words.json"]


def test_the_key_is_derived_from_what_the_plan_reads(tiny_loaded, data_root, tmp_path, monkeypatch):
    train = TrainConfig(**{**FAST, "max_steps": 1})
    plain = CDA(max_examples=2, train=train).prepare(tiny_loaded, _ctx(data_root, tmp_path)).info
    original = CDA.texts

    def texts_reading_one_more_file(self, chunks, data, seed):  # same config, one more file read
        data.path("word_lists/countergen_gender_pairs.json")
        return original(self, chunks, data, seed)

    monkeypatch.setattr(CDA, "texts", texts_reading_one_more_file)
    more = CDA(max_examples=2, train=train).prepare(tiny_loaded, _ctx(data_root, tmp_path)).info
    assert more["method/checkpoint_key"] != plain["method/checkpoint_key"]
    record = json.loads((tmp_path / "checkpoints" / more["method/checkpoint_key"] / "taxbench_train.json").read_text())
    assert sorted(record["data"]) == ["bias_bench/bias_attribute_words.json", "wikitext2/tokens_v1/valid.txt",
                                      "word_lists/countergen_gender_pairs.json"]


def test_nc3_word_files_are_part_of_the_key_only_when_read(tiny_loaded, data_root, tmp_path):
    train = TrainConfig(**{**FAST, "max_steps": 1})
    for method, expect in [(FineTune(max_examples=2, train=train), ["wikitext2/tokens_v1/valid.txt"]),
                           (NC(max_examples=2, nc3_weight=1.0, train=train),
                            ["fairness_nc_words/adept/female.txt", "fairness_nc_words/adept/male.txt",
                             "wikitext2/tokens_v1/valid.txt"])]:
        key = method.prepare(tiny_loaded, _ctx(data_root, tmp_path)).info["method/checkpoint_key"]
        record = json.loads((tmp_path / "checkpoints" / key / "taxbench_train.json").read_text())
        assert sorted(record["data"]) == expect


def test_lora_trains_and_merges(tiny_loaded, data_root, tmp_path):
    train = TrainConfig(**{**FAST, "lora": True, "lora_r": 4, "lr": 5e-2})
    debiased = CDA(max_examples=2, train=train).prepare(tiny_loaded, _ctx(data_root, tmp_path))
    assert debiased.info["method/loss_last"] < debiased.info["method/loss_first"]
    keys = debiased.lm.model.state_dict().keys()
    assert keys == tiny_loaded.model.state_dict().keys()  # merged: plain weights, no adapter tensors


# ------------------------------------------------------------------------------- budgets
def test_budget_profiles_and_validation():
    cfg = TrainConfig()
    assert cfg.resolve("cpu") is cfg
    paper = cfg.resolve("paper")
    assert (paper.max_steps, paper.grad_accum, paper.seq_len, paper.max_epochs) == (2000, 32, 128, 1.0)
    assert cfg.resolve("smoke").max_steps == 3
    assert TrainConfig(max_steps=None, epochs=2.0, batch_size=4, grad_accum=2).steps(20) == 5
    assert TrainConfig(max_steps=10, batch_size=4, grad_accum=2).epochs_over(40) == 2.0
    with pytest.raises(ConfigError, match="train_budget"):
        cfg.resolve("huge")
    with pytest.raises(ConfigError, match="method.train.paper has unknown"):
        TrainConfig(paper={"steps": 1})
    with pytest.raises(ConfigError, match="method.train.optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ConfigError, match="method.train.lr must be float"):
        TrainConfig(lr="fast")


def test_paper_budget_refuses_a_small_corpus_before_training(tiny_loaded, data_root, tmp_path):
    with pytest.raises(ConfigError, match=r"train_budget=paper: 2000 steps x 256 examples would pass [0-9.]+ times"):
        FineTune().prepare(tiny_loaded, _ctx(data_root, tmp_path, "paper"))
    assert not (tmp_path / "checkpoints").exists()
    # a schedule within max_epochs trains: 2 steps x 4 over 8 examples = 1 epoch
    train = TrainConfig(**{**FAST, "max_steps": 2, "max_epochs": 1.0})
    assert FineTune(max_examples=8, train=train).prepare(tiny_loaded, _ctx(data_root, tmp_path)).info[
        "method/epochs"] == 1.0


def test_yaml_train_blocks_only_override_the_method_default():
    default = CDA(train={"lr": 1e-4})
    assert default.train == TrainConfig(lr=1e-4)  # every other field from TrainConfig's defaults


@pytest.mark.parametrize("kind", ["adamw", "adam"])
def test_fused_optimizer_updates_as_the_default_implementation(kind):
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(300, 16, generator=gen), torch.randn(16, generator=gen)]
    fused, plain = ([torch.nn.Parameter(t.clone()) for t in start] for _ in range(2))
    cfg = TrainConfig(optimizer=kind, lr=1e-2)
    opt = _optimizer(fused, cfg)
    ref = (torch.optim.Adam(plain, lr=cfg.lr) if kind == "adam" else
           torch.optim.AdamW(plain, lr=cfg.lr, weight_decay=cfg.weight_decay))
    assert opt.defaults["fused"] and not ref.defaults["fused"]
    for _ in range(20):
        for a, b in zip(fused, plain):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    assert all(torch.allclose(a, b, atol=1e-6, rtol=0) and not torch.equal(a, t) for a, b, t in zip(fused, plain, start))


def test_schedule_warms_up_then_decays_to_zero():
    factors = [schedule(s, 2, 6) for s in range(6)]
    assert factors == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]


@pytest.mark.parametrize("name,cls", [("finetune", FineTune), ("cda", CDA), ("cda_nc3", CDA), ("dropout", Dropout),
                                      ("nc", NC)])
def test_yaml_configs_instantiate_to_the_dataclass_defaults(name, cls):
    import yaml
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from bench.config import CONF_DIR

    raw = yaml.safe_load((CONF_DIR / "method" / f"{name}.yaml").read_text())
    assert "train" not in raw  # YAML only overrides; the defaults live in the dataclasses
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"method={name}", "bias_type=gender"])
    expected = cls(nc3_weight=raw["nc3_weight"]) if "nc3_weight" in raw else cls()
    assert asdict(instantiate(cfg.method, _convert_="all")) == asdict(expected)


def test_method_fields_override_without_plus():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from bench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["method=cda", "method.train.lr=1e-4", "method.max_examples=7"])
    method = instantiate(cfg.method, _convert_="all")
    assert method.train == TrainConfig(lr=1e-4) and method.max_examples == 7


def test_bf16_autocast_trains(tiny_loaded, data_root, tmp_path):
    info = NC(max_examples=4, nc3_weight=1.0, train=TrainConfig(**{**FAST, "max_steps": 2, "dtype": "bf16"})).prepare(
        tiny_loaded, _ctx(data_root, tmp_path)).info
    assert info["method/steps"] == 2 and all(math.isfinite(v) for v in info["method/loss_curve"]["loss"])


# -------------------------------------------------------------------------------- corpus
def test_detokenize_and_pack():
    assert detokenize("a 3 @-@ 2 win , the \" best \" ( ever ) .") == 'a 3-2 win, the "best" (ever).'
    runs = [["one two.", "three.", "four five six."], ["seven."], ["eight nine ten eleven twelve."]]
    count = lambda texts: [len(t.split()) for t in texts]  # noqa: E731
    assert pack_chunks(runs, count, 4) == ["one two. three.", "four five six.", "seven.", "eight nine ten eleven twelve."]
    assert pack_chunks(runs, count, 8) == ["one two. three. four five six.", "seven.\neight nine ten eleven twelve."]


def test_read_corpus_drops_headings_and_unk_sentences(tmp_path):
    text = " = Title = \n\n A b @-@ c . A <unk> d . E f . \n G h .\n"
    (tmp_path / "c.txt").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    root = DataRoot(tmp_path, download=False, files={"c.txt": DataFile("c.txt", "-", digest)})
    runs, counts = read_corpus(root, ["c.txt"])
    assert runs == [["A b-c."], ["E f."], ["G h."]]
    assert counts == {"corpus_sentences": 3, "corpus_sentences_dropped_unk": 1}
