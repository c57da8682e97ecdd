"""Self-Debias: α and p̃ by hand, and every score and sampled token coming from p̃."""
from __future__ import annotations

import json
import math

import pytest
import torch

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api.lm import GenerationSpec, Request
from bench.api import MethodContext
from methods.self_debias import TOXICITY_PREFIXES, SelfDebias, SelfDebiasLM, bias_prefix, debias_logprobs

PREFIX = "The following text contains a threat:\n"
LAM = 1e5  # a random model's distributions are nearly flat: a large λ makes α visible


def test_debias_logprobs_by_hand():
    p = torch.tensor([0.5, 0.3, 0.2])
    prefixed = torch.tensor([[0.3, 0.5, 0.2], [0.2, 0.2, 0.6]])  # max: [0.3, 0.5, 0.6] -> Δ = [-0.2, 0.2, 0.4]
    # λ = 5: α = [1, e^-1, e^-2]
    got = debias_logprobs(p.log(), prefixed.log(), lam=5.0, eps=0.01).exp()
    want = torch.tensor([0.5, 0.3 * math.exp(-1), 0.2 * math.exp(-2)])
    assert torch.allclose(got, want / want.sum(), atol=1e-6)
    # λ = 50: e^-10 and e^-20 fall below ε = 0.01, so α = [1, 0.01, 0.01]
    got = debias_logprobs(p.log(), prefixed.log(), lam=50.0, eps=0.01).exp()
    want = torch.tensor([0.5, 0.003, 0.002])
    assert torch.allclose(got, want / want.sum(), atol=1e-6)
    # leading batch dimensions: plain [..., V], prefixed [P, ..., V]
    batch = debias_logprobs(p.log().expand(4, 3), prefixed.log()[:, None].expand(2, 4, 3), 50.0, 0.01)
    assert torch.allclose(batch.exp(), got.expand(4, 3), atol=1e-6)


def test_prefixes_that_agree_with_the_model_change_nothing():
    p = torch.tensor([0.6, 0.3, 0.1])
    assert torch.allclose(debias_logprobs(p.log(), p.log()[None], 50.0, 0.01).exp(), p, atol=1e-6)


def manual_logprob(lm, pair, prefix_ids, lam=LAM, eps=0.01):
    """Σ log p̃ of a pair's continuation, from token_logprobs of the plain and the prefixed pair."""
    ctx, cont = pair
    pref_ctx = ((lm.prefix_id,) + prefix_ids + ctx[1:]) if ctx[:1] == (lm.prefix_id,) else prefix_ids + ctx
    plain, prefixed = lm.token_logprobs([pair, (pref_ctx, cont)])
    delta = (prefixed.double().exp() - plain.double().exp()).clamp_min(0)
    alpha = torch.maximum(torch.exp(-lam * delta), torch.tensor(eps, dtype=torch.float64))
    p_tilde = alpha * plain.double().exp()
    p_tilde = p_tilde / p_tilde.sum(-1, keepdim=True)
    return float(p_tilde.log().gather(-1, torch.tensor(cont)[:, None]).sum())


REQUESTS = [Request("", "The cat sat on the mat."), Request("The dog", " barked at the moon"),
            Request("Question: why is the sky blue?\nAnswer:", " Because of scattering.")]


def test_loglikelihood_is_the_debiased_distribution(tiny_lm):
    sd = SelfDebiasLM(tiny_lm, [PREFIX], lam=LAM)
    got = sd.loglikelihood(REQUESTS)
    plain = tiny_lm.loglikelihood(REQUESTS)
    ids = tuple(tiny_lm.encode(PREFIX))
    for request, g, p in zip(REQUESTS, got, plain):
        want = manual_logprob(tiny_lm, tiny_lm.encode_pair(request), ids)
        assert g.logprob == pytest.approx(want, abs=1e-3)
        assert g.n_tokens == p.n_tokens
        assert abs(g.logprob - p.logprob) > 1e-2  # p̃ is not p
    # chunking (one pair per token_logprobs call) changes nothing
    tiny = SelfDebiasLM(tiny_lm, [PREFIX], lam=LAM, max_floats=1)
    assert [r.logprob for r in tiny.loglikelihood(REQUESTS)] == pytest.approx([r.logprob for r in got], abs=1e-4)


def test_several_prefixes_take_the_max(tiny_lm):
    prefixes = list(TOXICITY_PREFIXES[:3])
    sd = SelfDebiasLM(tiny_lm, prefixes, lam=LAM)
    pair = tiny_lm.encode_pair(REQUESTS[1])
    ids = [tuple(tiny_lm.encode(p)) for p in prefixes]
    rows = tiny_lm.token_logprobs([pair] + [(i + pair[0], pair[1]) for i in ids])
    want = debias_logprobs(rows[0], torch.stack(rows[1:]), LAM, 0.01)
    want = float(want.gather(-1, torch.tensor(pair[1])[:, None]).sum())
    assert sd.loglikelihood([REQUESTS[1]])[0].logprob == pytest.approx(want, abs=1e-4)


def test_rolling_is_the_debiased_distribution(tiny_lm):
    text = "The quick brown fox jumps over the lazy dog. " * 4
    sd = SelfDebiasLM(tiny_lm, [PREFIX], lam=LAM)
    [(got, n)] = sd.loglikelihood_rolling([text], max_length=16, stride=8)
    windows = tiny_lm.rolling_windows(text, 16, 8)
    ids = tuple(tiny_lm.encode(PREFIX))
    assert n == len(tiny_lm.encode(text))
    assert got == pytest.approx(sum(manual_logprob(tiny_lm, w, ids) for w in windows), abs=1e-3)
    [(plain, _)] = tiny_lm.loglikelihood_rolling([text], max_length=16, stride=8)
    assert abs(got - plain) > 1e-2


def test_prefix_is_kept_when_the_context_is_truncated(tiny_lm):
    sd = SelfDebiasLM(tiny_lm, [PREFIX])
    prefix = tuple(tiny_lm.encode(PREFIX))
    sd.lm.max_length = len(prefix) + 8
    ctx, cont = tuple(range(100, 120)), (7, 8, 9)
    assert sd.prefixed((ctx, cont), prefix) == (prefix + ctx[-5:], cont)
    start = (tiny_lm.prefix_id,) + ctx
    assert sd.prefixed((start, cont), prefix) == ((tiny_lm.prefix_id,) + prefix + ctx[-4:], cont)
    assert sd.prefixed(((tiny_lm.prefix_id,), cont), prefix) == ((tiny_lm.prefix_id,) + prefix, cont)
    with pytest.raises(ConfigError):
        sd.prefixed((ctx, tuple(range(10))), prefix)


def test_greedy_generation_follows_p_tilde(tiny_lm):
    prompt = "Once upon a time"
    sd = SelfDebiasLM(tiny_lm, [PREFIX], lam=LAM)
    spec = GenerationSpec(max_new_tokens=5, do_sample=False)
    [[text]] = sd.generate([prompt], spec)
    # the same greedy decode by hand: next token = argmax p̃ from the plain and prefixed streams
    eos = tiny_lm.tokenizer.eos_token_id
    plain_ctx = (tiny_lm.prefix_id,) + tuple(tiny_lm.encode(prompt))
    pref_ctx = (tiny_lm.prefix_id,) + tuple(tiny_lm.encode(PREFIX + prompt))
    tokens, plain_tokens = [], []
    for _ in range(spec.max_new_tokens):
        rows = tiny_lm.token_logprobs([(plain_ctx + tuple(tokens), (0,)), (pref_ctx + tuple(tokens), (0,))])
        nxt = int(debias_logprobs(rows[0][0], rows[1][:1], LAM, 0.01).argmax())
        plain_tokens.append(int(rows[0][0].argmax()))
        if nxt == eos:
            break
        tokens.append(nxt)
    assert text == tiny_lm.tokenizer.decode(tokens, skip_special_tokens=True)
    [[plain_text]] = tiny_lm.generate([prompt], spec)
    assert tokens[:1] != plain_tokens[:1] or text != plain_text  # the reweighting changed the decode


def test_beam_search_follows_p_tilde(tiny_lm):
    """Self-Debias's own protocol (3 beams, fixed length): the engine equals a naive beam search
    over p̃, whose plain and prefixed distributions exclude end-of-text (the reference's
    min-length processor runs before its debiasing processor)."""
    prompt, beams, steps = "Once upon a time", 3, 4
    sd = SelfDebiasLM(tiny_lm, [PREFIX], lam=LAM)
    spec = GenerationSpec(max_new_tokens=steps, min_new_tokens=steps, do_sample=False, num_beams=beams)
    [[text]] = sd.generate([prompt], spec)
    eos = tiny_lm.tokenizer.eos_token_id
    plain_ctx = (tiny_lm.prefix_id,) + tuple(tiny_lm.encode(prompt))
    pref_ctx = (tiny_lm.prefix_id,) + tuple(tiny_lm.encode(PREFIX + prompt))
    hyps = [((), 0.0)]
    for _ in range(steps):
        candidates = []
        for tokens, score in hyps:
            rows = tiny_lm.token_logprobs([(plain_ctx + tokens, (0,)), (pref_ctx + tokens, (0,))])
            plain, prefixed = (torch.log_softmax(r[0].index_fill(0, torch.tensor([eos]), -math.inf), -1) for r in rows)
            p_tilde = debias_logprobs(plain, prefixed[None], LAM, 0.01)
            candidates += [(tokens + (t,), score + float(p_tilde[t])) for t in range(len(p_tilde))]
        hyps = sorted(candidates, key=lambda c: -c[1])[:beams]
    assert text == tiny_lm.tokenizer.decode(list(hyps[0][0]), skip_special_tokens=True)


def test_generation_passes_prefixed_variants_and_combine(tiny_lm, monkeypatch):
    seen = {}

    def spy(variants, spec, combine):
        seen.update(variants=variants, combine=combine)
        return [["x"] * spec.num_samples for _ in variants]

    sd = SelfDebiasLM(tiny_lm, list(TOXICITY_PREFIXES), lam=50.0)
    monkeypatch.setattr(tiny_lm, "sample", spy)
    sd.generate(["Hello", "World"], GenerationSpec(num_samples=2))
    assert seen["variants"][1] == ["World"] + [p + "World" for p in TOXICITY_PREFIXES]
    lp = torch.log_softmax(torch.randn(2, 7, 2, 11), -1)  # [B, 1 + P, k, V]
    want = debias_logprobs(lp[:, 0], lp[:, 1:].transpose(0, 1), 50.0, 0.01)
    assert torch.allclose(seen["combine"](lp), want)


def test_sampling_is_seeded(tiny_lm):
    sd = SelfDebiasLM(tiny_lm, list(TOXICITY_PREFIXES[:2]), lam=50.0)
    spec = GenerationSpec(max_new_tokens=4, num_samples=3, seed=1)
    first = sd.generate(["Hi there", "A b c"], spec)
    assert first == sd.generate(["Hi there", "A b c"], spec)
    assert len(first) == 2 and all(len(r) == 3 for r in first)


class Recorder:
    """Wraps the tiny HFScoringLM's token_logprobs and sample, recording which debiasing prefix
    each prefixed input carries (by its token ids or text)."""

    def __init__(self, lm, monkeypatch, prefixes):
        self.ids = {tuple(lm.encode(p)): p for p in prefixes}
        self.seen: list[str] = []
        real_logprobs, real_sample = lm.token_logprobs, lm.sample

        def token_logprobs(pairs):
            for ctx, _ in pairs:
                text = ctx[1:] if ctx[:1] == (lm.prefix_id,) else ctx
                self.seen += [p for ids, p in self.ids.items() if text[:len(ids)] == ids]
            return real_logprobs(pairs)

        def sample(variants, spec, combine=None):
            self.seen += [p for v in variants for t in v for p in prefixes if t.startswith(p)]
            return real_sample(variants, spec, combine=combine)

        monkeypatch.setattr(lm, "token_logprobs", token_logprobs)
        monkeypatch.setattr(lm, "sample", sample)

    def take(self) -> set[str]:
        out, self.seen = set(self.seen), []
        return out


class FakeBench:
    """A benchmark of one kind of call, named like a real one."""

    def __init__(self, name, call):
        self.name, self.call = name, call

    def evaluate(self, lm):
        return self.call(lm)


CALLS = {"stereoset": lambda lm: lm.loglikelihood([Request("The nurse", " said that")]),
         "crows_pairs": lambda lm: lm.loglikelihood([Request("", "The man was sad.")]),
         "perplexity": lambda lm: lm.loglikelihood_rolling(["A short article about rivers and hills."]),
         "truthfulqa": lambda lm: lm.loglikelihood([Request("Q: what is 2+2?\nA:", " 4")]),
         "toxicity": lambda lm: lm.generate(["You are a"], GenerationSpec(max_new_tokens=2, num_samples=1, seed=0))}


@pytest.mark.parametrize("target", ["bias", "toxicity"])
def test_each_benchmark_is_scored_under_its_declared_prefixes(tiny_loaded, data_root, tmp_path, monkeypatch, target):
    ctx = MethodContext(data=data_root, cache_dir=tmp_path, seed=0, code_version="test", benchmarks=tuple(CALLS))
    method = SelfDebias(bias_type="religion", target=target)
    debiased = method.prepare(tiny_loaded, ctx)
    bias, toxicity = {bias_prefix("religion")}, set(TOXICITY_PREFIXES)
    rec = Recorder(debiased.lm.lm, monkeypatch, sorted(bias | toxicity))
    want = {"stereoset": bias, "crows_pairs": bias, "toxicity": toxicity,  # their references' prefixes
            "perplexity": bias if target == "bias" else toxicity,  # capability: the target harm's prefixes
            "truthfulqa": bias if target == "bias" else toxicity}
    for name, call in CALLS.items():
        FakeBench(name, call).evaluate(debiased.lm_for(name))
        assert rec.take() == want[name], name
    assert debiased.info["method/prefixes_by_benchmark"] == {b: "bias" if p == bias else "toxicity"
                                                             for b, p in want.items()}
    assert debiased.info["method/target"] == target
    assert debiased.info["method/prefix_texts"] == {"bias": sorted(bias), "toxicity": list(TOXICITY_PREFIXES)}
    # a benchmark the run did not announce scores the target's LM; {} puts every benchmark on the target
    debiased.lm_for("knowledge").loglikelihood([Request("Paris is in", " France")])
    assert rec.take() == (bias if target == "bias" else toxicity)
    flat = SelfDebias(bias_type="religion", target=target, harm_prefixes={}).prepare(tiny_loaded, ctx)
    assert set(flat.info["method/prefixes_by_benchmark"].values()) == {target}


def test_method_prepare_and_config(tiny_loaded, data_root, tmp_path):
    ctx = MethodContext(data=data_root, cache_dir=tmp_path, seed=0, code_version="test")
    debiased = SelfDebias(bias_type="race").prepare(tiny_loaded, ctx)
    lm = debiased.lm
    assert lm.scoring_ids == [tuple(lm.lm.encode(bias_prefix("race")))] and lm.prefixes == [bias_prefix("race")]
    assert "race/color" in bias_prefix("race") and bias_prefix("race").endswith(": ")
    assert debiased.views == {} and debiased.lm_for("toxicity") is lm  # no benchmarks announced
    assert lm.hidden_states(["a b"]).shape == (1, tiny_loaded.model.config.hidden_size)
    toxic = SelfDebias(target="toxicity").prepare(tiny_loaded, ctx).lm
    assert len(toxic.scoring_ids) == 6 and toxic.prefixes == list(TOXICITY_PREFIXES)
    for bad, key in [({"target": "both"}, "method.target"), ({"bias_type": "age"}, "method.bias_type"),
                     ({"harm_prefixes": {"stereoset": "gender"}}, "method.harm_prefixes.stereoset"),
                     ({"epsilon": 0.0}, "method.epsilon"), ({"lam": "big"}, "method.lam")]:
        with pytest.raises(ConfigError, match=key):
            SelfDebias(**bad)


def test_a_run_scores_each_benchmark_under_its_prefixes(tmp_path):
    """Through bench.run: target=toxicity puts perplexity (capability) under the toxicity prefixes
    and keeps StereoSet under the bias prefix; the numbers are those of the matching wrapper."""
    from hydra import compose, initialize_config_dir

    from bench.data import DataRoot
    from bench.config import CONF_DIR, load_named
    from bench.run import build_benchmarks, run

    overrides = ["model=tiny-random", "suite=smoke", "method=self_debias", "method.target=toxicity",
                 "only=[stereoset,perplexity]", "logger=none", f"paths.results_dir={tmp_path}",
                 f"paths.artifacts_dir={tmp_path / 'artifacts'}"]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    doc = json.loads(run(cfg).read_text())
    assert doc["info"]["method"]["method/prefixes_by_benchmark"] == {"stereoset": "bias", "perplexity": "toxicity"}
    benches = build_benchmarks(cfg)
    base = HFScoringLM(load_named("tiny-random"))
    data = DataRoot(cfg.paths.data_root, download=False)
    for name, prefixes in (("perplexity", list(TOXICITY_PREFIXES)), ("stereoset", [bias_prefix("gender")])):
        want = benches[name].evaluate(SelfDebiasLM(base, prefixes), data).metrics
        assert {k: doc["metrics"][k] for k in want} == pytest.approx(want, nan_ok=True), name


def test_bare_requests_debias_each_part(tiny_lm):
    """A bare request (StereoSet's bias_bench protocol) is the start-token pair of its first token
    plus the pair of its later tokens after the first, each debiased; the prefix goes before the
    sentence's first token (no start token), as in bias-bench's Self-Debias StereoSet runner."""
    sd = SelfDebiasLM(tiny_lm, [PREFIX], lam=LAM)
    ids = tuple(tiny_lm.encode(PREFIX))
    sentence = "The cat sat on the mat."
    tokens = tuple(tiny_lm.encode(sentence))
    (got,) = sd.loglikelihood([Request("", sentence, bare=True)])
    want = (manual_logprob(tiny_lm, ((tiny_lm.prefix_id,), tokens[:1]), ids)
            + manual_logprob(tiny_lm, (tokens[:1], tokens[1:]), ids))
    assert got.logprob == pytest.approx(want, abs=1e-3)
    assert got.n_tokens == len(tokens)
    assert abs(got.logprob - sd.loglikelihood([Request("", sentence)])[0].logprob) > 1e-2
