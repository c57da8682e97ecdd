"""Neural-Collapse metrics on synthetic features (perfect and imperfect collapse), the
capability check, class tokens and an end-to-end run on tiny-random."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bench.api import RepresentationLM
from bench.tasks import collapse as NC


def _simplex(c: int, h: int, scale: float = 3.0, seed: int = 0) -> torch.Tensor:
    """Centred simplex ETF class means [c, h] in a random orthonormal frame."""
    frame = torch.linalg.qr(torch.randn(h, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]
    etf = torch.eye(c, dtype=torch.float64) - 1.0 / c
    return scale * etf @ frame.T


def test_perfect_collapse_is_zero():
    means = _simplex(4, 6) + 5.0  # a global offset must not matter
    labels = torch.arange(4).repeat_interleave(3)
    feats = means[labels]  # every feature on its class mean
    weights = 2.0 * NC.centre(means)  # classifier rows = scaled centred means (self-duality)
    m = NC.nc_metrics(feats, labels, weights)
    assert m["nc1"] == pytest.approx(0.0, abs=1e-12)
    assert m["nc2_equinorm"] == pytest.approx(0.0, abs=1e-12)
    assert m["nc2_equiangle"] == pytest.approx(0.0, abs=1e-12)  # all cosines -1/(C-1)
    assert m["nc3"] == pytest.approx(0.0, abs=1e-12)
    assert m["unc3"] == pytest.approx(0.0, abs=1e-12)


def test_imperfect_collapse_matches_numpy():
    g = np.random.default_rng(0)
    c, h, per = 3, 5, 8
    means = g.normal(size=(c, h)) * np.array([[1.0], [2.0], [0.5]])
    labels = np.repeat(np.arange(c), per)
    feats = means[labels] + 0.3 * g.normal(size=(c * per, h))
    w = g.normal(size=(c, h))
    m = NC.nc_metrics(torch.tensor(feats), torch.tensor(labels), torch.tensor(w))
    # independent numpy computation of the documented formulas
    mu = np.stack([feats[labels == k].mean(0) for k in range(c)])
    cm = mu - mu.mean(0)
    d = feats - mu[labels]
    sw, sb = d.T @ d / len(feats), cm.T @ cm / c
    assert m["nc1"] == pytest.approx(np.trace(sw @ np.linalg.pinv(sb)) / c, rel=1e-6)
    norms = np.linalg.norm(cm, axis=1)
    assert m["nc2_equinorm"] == pytest.approx(norms.std() / norms.mean())  # numpy std: population (ddof=0)
    u = cm / norms[:, None]
    cos = [u[i] @ u[j] for i in range(c) for j in range(i + 1, c)]
    assert m["nc2_equiangle"] == pytest.approx(np.std(cos))
    assert m["nc3"] == pytest.approx(np.linalg.norm(cm / np.linalg.norm(cm) - w / np.linalg.norm(w)))
    dual = [cm[k] @ w[k] / (np.linalg.norm(cm[k]) * np.linalg.norm(w[k])) for k in range(c)]
    assert m["unc3"] == pytest.approx(np.std(dual, ddof=1))  # the release's torch.std: unbiased
    assert all(v > 0.01 for v in m.values())


def test_more_noise_means_larger_nc1():
    means = _simplex(4, 8)
    labels = torch.arange(4).repeat_interleave(20)
    noise = torch.randn(80, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    w = NC.centre(means)
    small = NC.nc_metrics(means[labels] + 0.1 * noise, labels, w)["nc1"]
    large = NC.nc_metrics(means[labels] + 1.0 * noise, labels, w)["nc1"]
    assert 0 < small < large


def test_unc3_is_differentiable_in_weights():
    means = _simplex(3, 4)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    NC.unc3(means, w).backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0


class WordLM:
    """Not an HFScoringLM: one token per word, and the state predicting a word is a fixed vector
    of that word (perfect within-class collapse); implements the RepresentationLM protocol."""

    name = "words"

    def __init__(self):
        self.vocab: dict[str, int] = {}

    def encode(self, text):
        return [self.vocab.setdefault(" " + w.lower(), len(self.vocab)) for w in text.split()]

    def _vec(self, i):
        return torch.randn(8, generator=torch.Generator().manual_seed(i))

    def per_token_hidden_states(self, texts):
        out = []
        for t in texts:
            ids = torch.tensor(self.encode(t))
            out.append((ids, torch.stack([self._vec(int(i)) for i in ids])))
        return out

    def lm_head_rows(self, ids):
        return torch.stack([self._vec(int(i) + 10_000) for i in ids])

    def hidden_states(self, texts, start_token=True):
        return torch.stack([h.mean(0) for _, h in self.per_token_hidden_states(texts)])

    def decode(self, ids):
        words = {i: w for w, i in self.vocab.items()}
        return "".join(words[int(i)] for i in ids)


def test_collect_keeps_positions_whose_next_token_is_a_class():
    ids = torch.tensor([5, 1, 7, 1, 2])
    h = torch.arange(10, dtype=torch.float32).reshape(5, 2)
    feats, labels = NC.collect([(ids, h)], {1: {}, 2: {}})
    assert labels.tolist() == [1, 1, 2] and feats.tolist() == [[2, 3], [6, 7], [8, 9]]


def test_duck_typed_lm_and_skip(data_root):
    lm = WordLM()
    assert isinstance(lm, RepresentationLM)
    result = NC.Collapse(n=200).evaluate(lm, data_root)
    assert result.metrics["nc/nc1"] == pytest.approx(0.0, abs=1e-9)  # states sit on their class means
    assert result.metrics["nc/nc3"] > 0.1 and result.info["classes"] >= 2
    result = NC.Collapse(n=3).evaluate(object(), data_root)
    assert all(math.isnan(v) for v in result.metrics.values()) and "encode" in result.info["skipped"]


def test_classes_are_single_vocabulary_entries_and_disjoint_on_smollm2(tiny_lm, data_root):
    classes, counts = NC.fairness_classes(data_root, tiny_lm.encode)  # tiny-random has SmolLM2's tokenizer
    assert counts == {"words": 425, "single_token_words": 151, "shared_ids_dropped": 0, "classes": 151}
    assert all(len(tiny_lm.encode(" " + w)) == 1 for v in classes.values() for w in v["words"])
    male = {t for t, v in classes.items() if v["gender"] == "male"}
    female = {t for t, v in classes.items() if v["gender"] == "female"}
    assert not male & female and len(male) == 88 and len(female) == 63
    his, countrywoman = tiny_lm.encode(" his"), tiny_lm.encode(" countrywoman")  # " country" + "woman"
    assert classes[his[0]]["words"] == ["his"] and len(countrywoman) == 2 and countrywoman[0] not in classes


def test_class_rule_drops_split_words_and_shared_ids(tmp_path):
    import hashlib

    from bench.data import DataFile, DataRoot

    lists = {"m.txt": "king\nchairman\nsir\n", "f.txt": "queen\nchairwoman\nsir\n"}
    files = {}
    for rel, text in lists.items():
        (tmp_path / rel).write_text(text)
        files[rel] = DataFile(rel, "-", hashlib.sha256(text.encode()).hexdigest())
    vocab = {" king": [1], " queen": [2], " sir": [3], " chairman": [4, 5], " chairwoman": [4, 6]}
    classes, counts = NC.fairness_classes(DataRoot(tmp_path, download=False, files=files), vocab.__getitem__,
                                          {"male": "m.txt", "female": "f.txt"})
    # " chair" (id 4) is a first fragment, never a class; " sir" (id 3) is on both lists
    assert classes == {1: {"words": ["king"], "gender": "male"}, 2: {"words": ["queen"], "gender": "female"}}
    assert counts == {"words": 6, "single_token_words": 4, "shared_ids_dropped": 1, "classes": 2}


def test_hidden_transform_is_applied(data_root):
    from bench.engine.hf_lm import HFScoringLM
    from bench.config import load_named

    loaded = load_named("tiny-random")  # its own copy: a hidden_transform hooks the model
    texts = NC.load_paragraphs(data_root, 2, seed=0)
    plain = list(NC.per_token_states(HFScoringLM(loaded), texts))
    doubled = list(NC.per_token_states(HFScoringLM(loaded, hidden_transform=lambda h: 2 * h), texts))
    assert len(plain) == 2
    for (ids_a, h_a), (ids_b, h_b) in zip(plain, doubled):
        assert torch.equal(ids_a, ids_b) and torch.allclose(h_b, 2 * h_a, atol=1e-5)


def test_per_token_states_match_the_lm_head(tiny_lm, data_root):
    """The state at position t, through the LM head, gives the logits predicting token t."""
    text = NC.load_paragraphs(data_root, 1, seed=0)[0]
    ids, h = next(NC.per_token_states(tiny_lm, [text]))
    assert ids.tolist() == tiny_lm.encode(text)[: len(ids)]
    with torch.inference_mode():
        full = tiny_lm.model(torch.tensor([[tiny_lm.prefix_id] + ids.tolist()])).logits[0, :-1]
        through_head = tiny_lm.model.get_output_embeddings()(h)
    assert torch.allclose(through_head, full, atol=1e-4)


def test_end_to_end_tiny(tiny_lm, data_root):
    result = NC.Collapse(n=20).evaluate(tiny_lm, data_root)
    assert set(result.metrics) == {f"nc/{k}" for k in NC.METRICS}
    assert all(math.isfinite(v) and v >= 0 for v in result.metrics.values())
    assert result.info["classes"] == len(result.records) >= 2
    assert all(r["count"] >= 3 for r in result.records)
    assert sum(r["count"] for r in result.records) == result.info["features"]


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"min_count": 0}, {"seed": "x"}])
def test_bad_config(kwargs):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="benchmarks.nc."):
        NC.Collapse(**kwargs)
