"""INLP and SentenceDebias: the fitted maps on planted data, the content-keyed cache, and
prepare() end to end on the tiny model.

``prepare`` hooks the projection onto the model's LM head, so every test that prepares
gets its own copy of the tiny model (``fresh``)."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api.lm import Request
from bench.api import MethodContext
from methods import inlp as inlp_module
from methods import sentence_debias as sd_module
from methods.attribute_sentences import (attribute_tuples, classify, collect_classes, corpus_sentences,
                                         counterfactual_groups, swap_attributes)
from methods.inlp import INLP, fit_inlp, nullspace_projection, probe_accuracy, rowspace_projection
from methods.sentence_debias import SentenceDebias, bias_direction, removal_matrix


@pytest.fixture
def fresh(tiny_loaded):
    def make():
        return dataclasses.replace(tiny_loaded, model=copy.deepcopy(tiny_loaded.model))
    return make


@pytest.fixture
def ctx(data_root, tmp_path):
    return MethodContext(data=data_root, cache_dir=tmp_path, seed=0, code_version="test")


# ------------------------------------------------------------------------- INLP maths
def planted(n=900, dim=24, seed=0):
    """Three classes whose means differ in a planted 2-d subspace U; isotropic noise elsewhere."""
    rng = np.random.default_rng(seed)
    U = np.linalg.qr(rng.normal(size=(dim, 2)))[0]
    means = 3 * np.stack([U[:, 0], U[:, 1], -(U[:, 0] + U[:, 1])])
    y = np.arange(n) % 3
    return rng.normal(size=(n, dim)) + means[y], y, U


def test_rowspace_projection_is_an_orthogonal_projection():
    W = np.random.default_rng(1).normal(size=(2, 6))
    P = rowspace_projection(W)
    assert np.allclose(P, P.T) and np.allclose(P @ P, P)
    assert np.allclose(P @ W.T, W.T) and round(np.trace(P)) == 2
    assert np.allclose(rowspace_projection(np.zeros((1, 4))), 0)
    N = nullspace_projection([P], 6)
    assert np.allclose(W @ N, 0)


def test_inlp_removes_a_planted_attribute():
    X, y, U = planted()
    X_tr, y_tr, X_te, y_te = X[:600], y[:600], X[600:], y[600:]
    P = fit_inlp(X_tr, y_tr, n_iterations=4)
    assert np.allclose(P, P.T, atol=1e-8) and np.allclose(P @ P, P, atol=1e-8)
    assert np.linalg.norm(U.T @ P) < 0.3  # the planted subspace is (almost) gone
    assert probe_accuracy(X_tr, y_tr, X_te, y_te) > 0.9
    assert probe_accuracy(X_tr @ P, y_tr, X_te @ P, y_te) < 0.45  # majority rate: 1/3
    assert 3 <= X.shape[1] - round(np.trace(P)) <= 12  # at most 3 directions per iteration
    # two classes (race, religion: bias vs neutral): one direction per iteration
    binary = y % 2
    Xb = X + 3 * np.outer(binary, U[:, 0])
    P = fit_inlp(Xb[:600], binary[:600], n_iterations=2)
    assert X.shape[1] - round(np.trace(P)) == 2
    assert probe_accuracy(Xb[:600] @ P, binary[:600], Xb[600:] @ P, binary[600:]) < 0.7  # majority: 2/3


# --------------------------------------------------------------- SentenceDebias maths
def test_sentence_debias_finds_and_removes_the_planted_direction():
    rng = np.random.default_rng(0)
    dim, groups = 16, 200
    v = torch.tensor(rng.normal(size=dim))
    v = v / v.norm()
    base = torch.tensor(rng.normal(size=(groups, 1, dim))) * 3
    shift = torch.tensor(rng.normal(size=(groups, 1, 1))) * torch.tensor([1.0, -1.0]).view(1, 2, 1) * v
    E = base + shift + 0.05 * torch.tensor(rng.normal(size=(groups, 2, dim)))
    for normalize in (False, True):
        v_hat, explained = bias_direction(E, normalize=normalize)
        assert abs(float(v_hat @ v)) > 0.98 and explained > 0.5
    P = removal_matrix(v_hat)
    x = torch.tensor(rng.normal(size=(5, dim)))
    assert torch.allclose((x @ P) @ v_hat, torch.zeros(5, dtype=torch.float64), atol=1e-10)
    u = x[0] - (x[0] @ v_hat) * v_hat  # orthogonal to v: kept
    assert torch.allclose(u @ P, u, atol=1e-10)
    assert torch.allclose(x @ P, x - torch.outer(x @ v_hat, v_hat) / (v_hat @ v_hat), atol=1e-10)


# ---------------------------------------------------------------- attribute sentences
def test_classes_and_counterfactuals(data_root):
    gender = attribute_tuples(data_root, "gender")
    assert classify("Then he sat down, tired.", gender) == ("male", 1)
    assert classify("She told him to leave now.", gender) is None
    assert classify("The weather was fine all day.", gender) == ("neutral", -1)
    assert classify("The Muslim prayer was long today.", attribute_tuples(data_root, "religion")) == ("bias", 1)
    assert swap_attributes("He saw his father. He left.", "he", "she") == "She saw his father. She left."
    assert swap_attributes("Mr. Smith and the king, today", "king", "queen") == "Mr. Smith and the queen, today"
    groups = counterfactual_groups("The mosque and the church stood there.", attribute_tuples(data_root, "religion"))
    assert groups == [("The mosque and the synagogue stood there.", "The mosque and the church stood there.",
                       "The mosque and the mosque stood there."),  # "church" -> each member of its triple
                      ("The synagogue and the church stood there.", "The church and the church stood there.",
                       "The mosque and the church stood there.")]  # then "mosque"


def test_collected_sentences_are_balanced_clipped_and_seeded(data_root):
    tuples = attribute_tuples(data_root, "gender")
    sentences = corpus_sentences(data_root, ["bold"])
    classes = collect_classes(sentences, tuples, 20, seed=3)
    assert {k: len(v) for k, v in classes.items()} == {"male": 20, "female": 20, "neutral": 20}
    assert all(classify(s, tuples)[0] == "male" for s in classes["male"])
    assert all(len(s.split()) >= 4 for s in classes["neutral"])
    assert classes == collect_classes(sentences, tuples, 20, seed=3)
    assert classes != collect_classes(sentences, tuples, 20, seed=4)
    with pytest.raises(ConfigError, match="method.corpora"):
        corpus_sentences(data_root, ["stereoset"])


# ------------------------------------------------------------------- cache + prepare
TEXTS = ["The doctor said that she would call back.", "He bought a new car yesterday."]


def counting(monkeypatch, cls):
    calls = []
    original = cls.fit

    def fit(self, *args):
        calls.append(self)
        return original(self, *args)

    monkeypatch.setattr(cls, "fit", fit)
    return calls


def test_inlp_prepare_end_to_end_and_cache(fresh, ctx, monkeypatch):
    calls = counting(monkeypatch, INLP)
    method = INLP(n_per_class=12, n_iterations=2, corpora=["bold"])
    loaded = fresh()
    plain = HFScoringLM(loaded)
    plain_states = plain.hidden_states(TEXTS)
    plain_ll = plain.loglikelihood([Request("", TEXTS[0])])[0].logprob
    debiased = method.prepare(loaded, ctx)
    info = debiased.info
    assert len(calls) == 1 and set(info) == {spec.key for spec in inlp_module.INFO_SPECS}
    assert info["method/inlp_n_per_class"] == 12 and info["method/inlp_n_train"] + info["method/inlp_n_test"] == 36
    assert 0 <= info["method/inlp_acc_after"] <= 1 and info["method/inlp_acc_majority"] == pytest.approx(1 / 3, abs=0.05)
    [artifact] = list((ctx.cache_dir / "inlp").glob("*/projection.safetensors"))
    P = debiased.lm.hidden_transform.matrix
    assert torch.allclose(P, P.T, atol=1e-5) and torch.allclose(P @ P, P, atol=1e-5)
    assert info["method/inlp_rank_removed"] >= 1
    # hidden states, scoring and generation all see x P
    assert torch.allclose(debiased.lm.hidden_states(TEXTS), plain_states @ P, atol=1e-5)
    ids = [plain.prefix_id] + plain.encode(TEXTS[0])
    with torch.inference_mode():
        h = loaded.model.get_decoder()(input_ids=torch.tensor([ids])).last_hidden_state[0]
        logits = (h @ P) @ loaded.model.get_output_embeddings().weight.T
    want = float(torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None]).sum())
    got = debiased.lm.loglikelihood([Request("", TEXTS[0])])[0].logprob
    assert got == pytest.approx(want, abs=1e-3) and abs(got - plain_ll) > 1e-4

    # a second prepare reuses the artifact; a changed config or seed refits
    mtime = artifact.stat().st_mtime_ns
    again = method.prepare(fresh(), ctx)
    assert len(calls) == 1 and artifact.stat().st_mtime_ns == mtime and again.info == info
    assert torch.equal(again.lm.hidden_transform.matrix, P)
    INLP(n_per_class=12, n_iterations=3, corpora=["bold"]).prepare(fresh(), ctx)
    assert len(calls) == 2
    method.prepare(fresh(), dataclasses.replace(ctx, seed=1))
    assert len(calls) == 3 and len(list((ctx.cache_dir / "inlp").iterdir())) == 3


def test_train_budget_sets_the_default_sizes(fresh, ctx, monkeypatch):
    sizes = []
    for cls in (INLP, SentenceDebias):
        monkeypatch.setattr(cls, "fit", lambda self, lm, c, n: (sizes.append(n) or ({"P": torch.eye(32)}, {})))
    for budget in ("smoke", "cpu", "paper"):
        INLP(corpora=["bold"]).prepare(fresh(), dataclasses.replace(ctx, budget=budget))
        SentenceDebias(corpora=["bold"]).prepare(fresh(), dataclasses.replace(ctx, budget=budget))
    assert sizes == [15, 12, 200, 200, 10_000, None]
    assert INLP(corpora=["bold"], n_per_class=50).prepare(fresh(), ctx) and sizes[-1] == 50
    with pytest.raises(ConfigError, match="train_budget"):
        INLP(corpora=["bold"]).prepare(fresh(), dataclasses.replace(ctx, budget="huge"))


def test_sentence_debias_prepare_end_to_end_and_cache(fresh, ctx, monkeypatch):
    calls = counting(monkeypatch, SentenceDebias)
    method = SentenceDebias(n_groups=8, corpora=["winobias"])
    loaded = fresh()
    plain_states = HFScoringLM(loaded).hidden_states(TEXTS)
    debiased = method.prepare(loaded, ctx)
    assert set(debiased.info) == {spec.key for spec in sd_module.INFO_SPECS}
    assert debiased.info["method/sentence_debias_n_groups"] == 8
    assert 0 < debiased.info["method/sentence_debias_explained_variance"] <= 1
    P = debiased.lm.hidden_transform.matrix
    states = debiased.lm.hidden_states(TEXTS)
    [artifact] = list((ctx.cache_dir / "sentence_debias").glob("*/projection.safetensors"))
    from safetensors.torch import load_file

    v = load_file(artifact)["v"]
    assert torch.allclose(states @ v, torch.zeros(len(TEXTS)), atol=1e-4)  # the bias component is gone
    assert torch.allclose(states, plain_states - torch.outer(plain_states @ v, v), atol=1e-4)  # the rest is kept
    assert torch.allclose(P, torch.eye(len(v)) - torch.outer(v, v), atol=1e-5)
    method.prepare(fresh(), ctx)
    assert len(calls) == 1
    SentenceDebias(n_groups=8, corpora=["winobias"], normalize=False).prepare(fresh(), ctx)
    assert len(calls) == 2


def test_config_errors_name_the_option():
    for cls, bad, key in [(INLP, {"bias_type": "age"}, "method.bias_type"), (INLP, {"n_iterations": 0}, "method.n_iterations"),
                          (INLP, {"corpora": ["stereoset"]}, "method.corpora"), (INLP, {"test_fraction": 1.0}, "method.test_fraction"),
                          (SentenceDebias, {"n_groups": 1}, "method.n_groups"), (SentenceDebias, {"normalize": "yes"}, "method.normalize")]:
        with pytest.raises(ConfigError, match=key):
            cls(**bad)


@pytest.mark.slow
def test_inlp_lowers_gender_probe_accuracy_on_smollm2(smollm2_loaded, ctx):
    loaded = dataclasses.replace(smollm2_loaded, model=copy.deepcopy(smollm2_loaded.model))
    info = INLP(n_per_class=40).prepare(loaded, ctx).info
    assert info["method/inlp_acc_after"] < info["method/inlp_acc_before"]
