"""The shared trainer on tiny-random: every method lowers its loss on a fixed batch, NaN guard,
checkpoint reuse and keys, LoRA, corpus helpers."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from bench.errors import ConfigError, TrainingError
from bench.api import MethodContext
from methods import training
from methods.cda import CDA
from methods.collapse import NC
from methods.contrastive import Contrastive
from methods.dropout import Dropout, dropout_overrides
from methods.training import TrainConfig, _schedule, checkpoint_key, detokenize, pack_chunks, read_corpus

FAST = dict(max_steps=8, batch_size=4, lr=1e-2, warmup_steps=0, seq_len=32)


def _ctx(data_root, tmp_path: Path, budget: str = "cpu") -> MethodContext:
    return MethodContext(data=data_root, cache_dir=tmp_path, seed=0, code_version="test", budget=budget)


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", [
    CDA(max_examples=2, train=TrainConfig(**FAST)),
    CDA(bias_type="religion", max_examples=2, train=TrainConfig(**FAST)),
    Dropout(max_examples=4, train=TrainConfig(**FAST)),
    NC(max_examples=4, nc3_weight=1.0, train=TrainConfig(**FAST)),
    Contrastive(max_examples=4, train=TrainConfig(**{**FAST, "optimizer": "adam"})),
    Contrastive(max_examples=4, scaling="constant", nc3_weight=1.0, train=TrainConfig(**FAST)),
], ids=["cda", "cda-religion", "dropout", "nc", "contrastive", "contrastive-constant-nc3"])
def test_every_method_lowers_its_loss_on_a_fixed_batch(method, tiny_loaded, data_root, tmp_path):
    before = _params(tiny_loaded.model)
    debiased = method.prepare(tiny_loaded, _ctx(data_root, tmp_path))
    info = debiased.info
    assert info["method/steps"] == 8 and info["method/train_seconds"] > 0
    parts = ["ce", "cl"] if isinstance(method, Contrastive) else ["loss", "lm"]
    for part in parts:
        assert info[f"method/{part}_last"] < info[f"method/{part}_first"], (part, info)
    assert info["method/identity"] == f"{tiny_loaded.identity}+{method.name}@{info['method/checkpoint_key']}"
    assert all(torch.equal(v, tiny_loaded.model.state_dict()[k]) for k, v in before.items())  # base untouched
    trained = debiased.lm.model.state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in before.items())
    assert debiased.lm.loglikelihood([("The", " cat")])[0].n_tokens == 1


def test_info_reports_counts_and_dropout_fields(tiny_loaded, data_root, tmp_path):
    info = Dropout(max_examples=4, train=TrainConfig(**{**FAST, "max_steps": 1})).prepare(
        tiny_loaded, _ctx(data_root, tmp_path)).info
    assert info["method/dropout_fields"] == "attention_dropout"
    assert info["method/dropout_missing"].startswith("residual, embedding")
    assert info["method/n_train_examples"] == 4 and info["method/n_corpus_chunks"] > 1000
    changed, missing = dropout_overrides(tiny_loaded.model.config, 0.15)
    assert changed == {"attention_dropout": 0.15} and missing == ["residual", "embedding"]


def test_dropout_copy_really_uses_the_raised_rate(tiny_loaded):
    clone = training.trainable_copy(tiny_loaded.model, {"attention_dropout": 0.15})
    attn = clone.model.layers[0].self_attn
    assert attn.attention_dropout == 0.15 and tiny_loaded.model.model.layers[0].self_attn.attention_dropout == 0.0
    assert all(torch.equal(a, b) for a, b in zip(clone.state_dict().values(), tiny_loaded.model.state_dict().values()))


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

    monkeypatch.setattr(training, "fit", no_training)
    second = method.prepare(tiny_loaded, _ctx(data_root, tmp_path))
    assert second.info == first.info
    a, b = first.lm.model.state_dict(), second.lm.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_broken_checkpoint_raises_instead_of_falling_back(tiny_loaded, data_root, tmp_path):
    method = CDA(max_examples=2, train=TrainConfig(**{**FAST, "max_steps": 1}))
    key = method.prepare(tiny_loaded, _ctx(data_root, tmp_path)).info["method/checkpoint_key"]
    for weights in (tmp_path / "checkpoints" / key).glob("*.safetensors"):
        weights.write_bytes(b"not safetensors")
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
              checkpoint_key(CDA(), tiny_loaded, MethodContext(data_root, tmp_path, 1, "test"), sums),
              checkpoint_key(CDA(), tiny_loaded, ctx, {"f": "2"})]
    assert len({base, *others}) == 7


def test_lora_trains_and_merges(tiny_loaded, data_root, tmp_path):
    train = TrainConfig(**{**FAST, "lora": True, "lora_r": 4, "lr": 5e-2})
    debiased = CDA(max_examples=2, train=train).prepare(tiny_loaded, _ctx(data_root, tmp_path))
    assert debiased.info["method/loss_last"] < debiased.info["method/loss_first"]
    keys = debiased.lm.model.state_dict().keys()
    assert keys == tiny_loaded.model.state_dict().keys()  # merged: plain weights, no adapter tensors


def test_budget_profiles_and_validation():
    cfg = TrainConfig(paper={"max_steps": 2000, "grad_accum": 32})
    assert cfg.resolve("cpu") is cfg
    assert (cfg.resolve("paper").max_steps, cfg.resolve("paper").grad_accum) == (2000, 32)
    assert cfg.resolve("smoke").max_steps == 3
    assert TrainConfig(max_steps=None, epochs=2.0, batch_size=4, grad_accum=2).steps(20) == 5
    with pytest.raises(ConfigError, match="train_budget"):
        cfg.resolve("huge")
    with pytest.raises(ConfigError, match="method.train.paper has unknown"):
        TrainConfig(paper={"steps": 1})
    with pytest.raises(ConfigError, match="method.train.optimizer"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ConfigError, match="method.train.lr must be float"):
        TrainConfig(lr="fast")


def test_schedule_warms_up_then_decays_to_zero():
    factors = [_schedule(s, 2, 6) for s in range(6)]
    assert factors == [0.5, 1.0, 1.0, 0.75, 0.5, 0.25]


def test_detokenize_and_pack():
    assert detokenize("a 3 @-@ 2 win , the \" best \" ( ever ) .") == 'a 3-2 win, the "best" (ever).'
    runs = [["one two.", "three.", "four five six."], ["seven."], ["eight nine ten eleven twelve."]]
    count = lambda texts: [len(t.split()) for t in texts]  # noqa: E731
    assert pack_chunks(runs, count, 4) == ["one two. three.", "four five six.", "seven.", "eight nine ten eleven twelve."]
    assert pack_chunks(runs, count, 8) == ["one two. three. four five six.", "seven.\neight nine ten eleven twelve."]


def test_read_corpus_drops_headings_and_unk_sentences(tmp_path):
    import hashlib

    from bench.data import DataFile, DataRoot

    text = " = Title = \n\n A b @-@ c . A <unk> d . E f . \n G h .\n"
    (tmp_path / "c.txt").write_text(text)
    digest = hashlib.sha256(text.encode()).hexdigest()
    root = DataRoot(tmp_path, download=False, files={"c.txt": DataFile("c.txt", "-", digest)})
    runs, counts = read_corpus(root, ["c.txt"])
    assert runs == [["A b-c."], ["E f."], ["G h."]]
    assert counts == {"corpus_sentences": 3, "corpus_sentences_dropped_unk": 1}


@pytest.mark.parametrize("name,cls", [("cda", CDA), ("dropout", Dropout), ("nc", NC), ("contrastive", Contrastive)])
def test_yaml_defaults_equal_the_dataclass_defaults(name, cls):
    from dataclasses import asdict

    import yaml
    from hydra.utils import instantiate

    from bench.config import CONF_DIR

    raw = yaml.safe_load((CONF_DIR / "method" / f"{name}.yaml").read_text())
    if "bias_type" in raw:
        raw["bias_type"] = "gender"
    assert asdict(instantiate(raw, _convert_="all")) == asdict(cls())


def test_bf16_autocast_trains(tiny_loaded, data_root, tmp_path):
    info = NC(max_examples=4, nc3_weight=1.0, train=TrainConfig(**{**FAST, "max_steps": 2, "dtype": "bf16"})).prepare(
        tiny_loaded, _ctx(data_root, tmp_path)).info
    assert info["method/steps"] == 2 and info["method/loss_last"] == info["method/loss_last"]  # finite, not NaN
