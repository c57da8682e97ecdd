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
from methods.attribute_sentences import (CORPORA, attribute_tuples, classify, collect_classes, corpus_sentences,
                                         counterfactual_groups, probe_classes, quotas, split_sentences)
from methods.inlp import INLP, PER_CLASS, fit_inlp, nullspace_projection, rowspace_projection
from methods.projection import probe_accuracy, probe_report
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
    P, _ = fit_inlp(X_tr, y_tr, n_iterations=4)
    assert np.allclose(P, P.T, atol=1e-8) and np.allclose(P @ P, P, atol=1e-8)
    assert np.linalg.norm(U.T @ P) < 0.3  # the planted subspace is (almost) gone
    assert probe_accuracy(X_tr, y_tr, X_te, y_te) > 0.9
    assert probe_accuracy(X_tr @ P, y_tr, X_te @ P, y_te) < 0.45  # majority rate: 1/3
    assert 3 <= X.shape[1] - round(np.trace(P)) <= 12  # at most 3 directions per iteration
    # two classes (race, religion: bias vs neutral): one direction per iteration
    binary = y % 2
    Xb = X + 3 * np.outer(binary, U[:, 0])
    P, _ = fit_inlp(Xb[:600], binary[:600], n_iterations=2)
    assert X.shape[1] - round(np.trace(P)) == 2
    assert probe_accuracy(Xb[:600] @ P, binary[:600], Xb[600:] @ P, binary[600:]) < 0.7  # majority: 2/3


def test_nullspace_projection_by_hand():
    # N(e1) ∩ N(e1 + e2) in R^3 is span(e3): P = diag(0, 0, 1)
    e = np.eye(3)
    P = nullspace_projection([rowspace_projection(e[:1]), rowspace_projection(e[:1] + e[1:2])], 3)
    assert np.allclose(P, np.diag([0.0, 0.0, 1.0]))


def test_inlp_is_the_reference_formula():
    """P = I − P_R(Σ_i P_R(W_i)) with P_R(W) = B Bᵀ, B = scipy.linalg.orth(Wᵀ) (bias-bench's
    get_rowspace_projection / get_projection_to_intersection_of_nullspaces), from the weights
    of each iteration; each W_i is trained on X projected by the previous iterations."""
    from scipy.linalg import orth
    from sklearn.svm import LinearSVC

    X, y, _ = planted(n=300, dim=10, seed=2)
    P, weights = fit_inlp(X, y, n_iterations=3, seed=0)
    ref = [orth(W.T) @ orth(W.T).T for W in weights]
    Q = np.sum(ref, axis=0)
    assert np.allclose(P, np.eye(10) - orth(Q) @ orth(Q).T, atol=1e-8)
    # iteration 2's classifier is the one trained on X P_1 (bias-bench: is_autoregressive=True)
    P1 = np.eye(10) - ref[0]
    W2 = LinearSVC(fit_intercept=False, dual=False, random_state=0).fit(X @ P1, y).coef_
    assert np.allclose(weights[1], W2, atol=1e-6)
    assert np.allclose(weights[1] @ weights[0].T, 0, atol=1e-6)  # each new W lies in the nullspace so far


def test_held_out_probe_accuracy_by_hand():
    """Feature 0 carries the class everywhere; feature 1 carries it in training and is inverted
    on the held-out rows.  Before: the probe leans on both, feature 0 twice as strong, and gets
    every held-out row right; after removing feature 0 the retrained probe reads feature 1 only
    and gets every held-out row wrong.  Scoring on the training rows would give 1.0 both times."""
    s_tr = np.array([1, -1] * 10)
    s_te = np.array([1, -1] * 5)
    X_tr = np.stack([2.0 * s_tr, 1.0 * s_tr], 1)
    X_te = np.stack([2.0 * s_te, -1.0 * s_te], 1)
    y_tr, y_te = (s_tr > 0).astype(int), (s_te > 0).astype(int)
    report = probe_report(X_tr, y_tr, X_te, y_te, np.diag([0.0, 1.0]), seed=0)
    assert report == {"acc_before": 1.0, "acc_after": 0.0, "acc_majority": 0.5}
    assert probe_report(X_tr, y_tr, X_tr, y_tr, np.diag([0.0, 1.0]), seed=0)["acc_after"] == 1.0


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
    # groups come from methods.counterfactual.Swapper: every attribute word moves k places round its tuple
    religion = attribute_tuples(data_root, "religion")
    text = "we saw the mosque and the church there"
    groups, by_corpus = counterfactual_groups({"a": [text, "no attribute words in here"]}, religion, None, 0)
    assert groups == [(text, "we saw the synagogue and the mosque there", "we saw the church and the synagogue there")]
    assert by_corpus == {"a": 1}
    [(plain, swapped)], _ = counterfactual_groups({"a": ["then his father said that she was late"]}, gender, None, 0)
    assert swapped == "then her mother said that he was late"


def test_quotas_by_hand():
    assert quotas({"a": 1, "b": 2}, None) == {"a": 1, "b": 2}
    assert quotas({"a": 1, "b": 2}, 5) == {"a": 1, "b": 2}
    # 2 of 3: exact shares 2/3 and 4/3 -> floors 0, 1; the larger remainder (a's 2/3) takes the last one
    assert quotas({"a": 1, "b": 2}, 2) == {"a": 1, "b": 1}
    assert quotas({"a": 10, "b": 30, "c": 0}, 8) == {"a": 2, "b": 6, "c": 0}


def test_classes_are_balanced_within_each_corpus_and_counted(data_root):
    tuples = attribute_tuples(data_root, "gender")
    a = [f"he went to the market {i} times" for i in range(3)] + \
        ["she went to the market today"] + [f"it rained on the hills {i} times" for i in range(5)]
    b = [f"his car was parked at {i} pm" for i in range(2)] + [f"her car was parked at {i} pm" for i in range(4)] + \
        [f"the car was parked at {i} pm" for i in range(4)]
    classes, counts = collect_classes({"a": a, "b": b}, tuples, None, seed=3)
    assert counts == {"a": 1, "b": 2}  # the rarest class of each corpus: a's 1 female, b's 2 male
    assert {k: len(v) for k, v in classes.items()} == {"male": 3, "female": 3, "neutral": 3}
    assert all(classify(s, tuples)[0] == "male" for s in classes["male"])
    assert sum(s.startswith("her") for s in classes["female"]) == 2  # 2 from b, 1 from a
    assert all(len(s.split()) >= 4 for s in classes["neutral"])
    assert (classes, counts) == collect_classes({"a": a, "b": b}, tuples, None, seed=3)
    assert collect_classes({"a": a, "b": b}, tuples, 2, seed=3)[1] == {"a": 1, "b": 1}
    fit, held = split_sentences({"a": a, "b": b}, 0.3, seed=0)
    assert {k: len(v) for k, v in held.items()} == {"a": 3, "b": 3} and not set(fit["a"]) & set(held["a"])
    assert sorted(fit["b"] + held["b"]) == sorted(b)
    with pytest.raises(ConfigError, match="method.corpora"):  # one female sentence cannot feed both sides
        probe_classes({"a": a}, {"a": ["it rained on the hill again today"]}, tuples, None, 0.3, seed=0)


def test_default_corpora_give_the_cpu_budget_for_gender(data_root):
    """The counts the default INLP (cpu budget) fits on: 2,000 gender sentences per class exist."""
    tuples = attribute_tuples(data_root, "gender")
    fit, held = split_sentences(corpus_sentences(data_root, list(CORPORA)), 0.3, seed=0)
    data = probe_classes(fit, held, tuples, PER_CLASS["cpu"], 0.3, seed=0)
    assert {k: len(v) for k, v in data["train"].items()} == {"male": 1400, "female": 1400, "neutral": 1400}
    assert {k: len(v) for k, v in data["test"].items()} == {"male": 600, "female": 600, "neutral": 600}
    assert sum(data["train_by_corpus"].values()) == 1400 and set(data["train_by_corpus"]) == set(CORPORA)


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
    method = INLP(n_per_class=20, n_iterations=2, corpora=["toxigen"])
    loaded = fresh()
    plain = HFScoringLM(loaded)
    plain_states = plain.hidden_states(TEXTS)
    plain_ll = plain.loglikelihood([Request("", TEXTS[0])])[0].logprob
    debiased = method.prepare(loaded, ctx)
    info = debiased.info
    assert len(calls) == 1 and {spec.key for spec in inlp_module.INFO_SPECS} <= set(info)
    assert info["method/inlp_n_per_class"] == info["method/inlp_n_per_class_requested"] == 20
    assert (info["method/inlp_n_train"], info["method/inlp_n_test"]) == (3 * 14, 3 * 6)  # 70 / 30 of 20 per class
    assert info["method/inlp_n_train_per_class_by_corpus"] == {"toxigen": 14}
    assert 0 <= info["method/inlp_acc_after"] <= 1 and info["method/inlp_acc_majority"] == pytest.approx(1 / 3)
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
    INLP(n_per_class=20, n_iterations=3, corpora=["toxigen"]).prepare(fresh(), ctx)
    assert len(calls) == 2
    method.prepare(fresh(), dataclasses.replace(ctx, seed=1))
    assert len(calls) == 3 and len(list((ctx.cache_dir / "inlp").iterdir())) == 3


def test_train_budget_sets_the_default_sizes(fresh, ctx, monkeypatch):
    sizes = []
    monkeypatch.setattr(INLP, "fit", lambda self, lm, c, n: (sizes.append(n) or ({"P": torch.eye(32)}, {})))
    monkeypatch.setattr(SentenceDebias, "fit", lambda self, lm, c, n, probe: (sizes.append((n, probe)) or
                                                                              ({"P": torch.eye(32)}, {})))
    for budget in ("smoke", "cpu", "paper"):
        INLP(corpora=["toxigen"]).prepare(fresh(), dataclasses.replace(ctx, budget=budget))
        SentenceDebias(corpora=["toxigen"]).prepare(fresh(), dataclasses.replace(ctx, budget=budget))
    assert sizes == [15, (12, 15), 2000, (2000, 500), 10_000, (None, 2000)]
    assert INLP(corpora=["toxigen"], n_per_class=50).prepare(fresh(), ctx) and sizes[-1] == 50
    with pytest.raises(ConfigError, match="train_budget"):
        INLP(corpora=["toxigen"]).prepare(fresh(), dataclasses.replace(ctx, budget="huge"))


def test_sentence_debias_prepare_end_to_end_and_cache(fresh, ctx, monkeypatch):
    calls = counting(monkeypatch, SentenceDebias)
    method = SentenceDebias(n_groups=8, corpora=["toxigen"], probe_per_class=20)
    loaded = fresh()
    plain_states = HFScoringLM(loaded).hidden_states(TEXTS)
    debiased = method.prepare(loaded, ctx)
    info = debiased.info
    assert {spec.key for spec in sd_module.INFO_SPECS} <= set(info)
    assert info["method/sentence_debias_n_groups"] == 8 and info["method/sentence_debias_n_groups_by_corpus"] == {"toxigen": 8}
    assert (info["method/sentence_debias_probe_n_train"], info["method/sentence_debias_probe_n_test"]) == (42, 18)
    assert info["method/sentence_debias_acc_majority"] == pytest.approx(1 / 3)
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
    SentenceDebias(n_groups=8, corpora=["toxigen"], probe_per_class=20, normalize=False).prepare(fresh(), ctx)
    assert len(calls) == 2


def test_config_errors_name_the_option():
    for cls, bad, key in [(INLP, {"bias_type": "age"}, "method.bias_type"), (INLP, {"n_iterations": 0}, "method.n_iterations"),
                          (INLP, {"corpora": ["stereoset"]}, "method.corpora"), (INLP, {"corpora": ["bold"]}, "method.corpora"),
                          (INLP, {"test_fraction": 1.0}, "method.test_fraction"),
                          (SentenceDebias, {"n_groups": 1}, "method.n_groups"), (SentenceDebias, {"normalize": "yes"}, "method.normalize"),
                          (SentenceDebias, {"test_fraction": 0.0}, "method.test_fraction"),
                          (SentenceDebias, {"probe_per_class": 3}, "method.probe_per_class")]:
        with pytest.raises(ConfigError, match=key):
            cls(**bad)


@pytest.mark.slow
def test_inlp_lowers_gender_probe_accuracy_on_smollm2(smollm2_loaded, ctx):
    loaded = dataclasses.replace(smollm2_loaded, model=copy.deepcopy(smollm2_loaded.model))
    info = INLP(n_per_class=200).prepare(loaded, ctx).info  # 60 held-out sentences per class
    assert info["method/inlp_acc_after"] < info["method/inlp_acc_before"]
