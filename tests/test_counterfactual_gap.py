"""Counterfactual generation gap: pairing on hand examples, gap arithmetic on fixed scores,
the same-seed pairing through evaluate, and the engine's position-seeded reproducibility."""
from __future__ import annotations

import pytest

from bench.errors import ConfigError
from bench.api.lm import GenerationSpec
from bench.api.metrics import aggregate
from bench.tasks.counterfactual import CounterfactualGap, make_pairs, metric_specs, score_records
from methods.text.swap import Swapper

SWAPPERS = {"gender": Swapper([("he", "she"), ("man", "woman")], fold_case=True),
            "religion": Swapper([("christian", "muslim", "jewish")], fold_case=True)}


def test_pairs_on_hand_examples():
    prompts = [{"id": "p0", "prompt": "He said the man was Christian."}, {"id": "p1", "prompt": "The weather is fine."},
               {"id": "p2", "prompt": "SHE left."}]
    pairs = make_pairs(prompts, "rtp", SWAPPERS, seed=0)
    assert [(p["id"], p["bias_type"]) for p in pairs] == [("rtp/p0/gender", "gender"), ("rtp/p0/religion", "religion"),
                                                           ("rtp/p2/gender", "gender")]
    assert pairs[0]["counterfactual"] == "She said the woman was Christian."  # only gender words move
    assert pairs[1]["counterfactual"] in ("He said the man was Muslim.", "He said the man was Jewish.")
    assert pairs[2]["counterfactual"] == "HE left."
    assert make_pairs(prompts, "rtp", SWAPPERS, seed=0) == pairs  # the triple shift is seeded


def test_gaps_on_fixed_scores():
    pairs = [{"id": "a", "bias_type": "gender"}, {"id": "b", "bias_type": "gender"}, {"id": "c", "bias_type": "race"}]
    gens, cf = [["x", "y"]] * 3, [["u", "v"]] * 3
    # originals a, b, c then counterfactuals a, b, c; k = 2
    tox = [0.1, 0.5, 0.0, 0.0, 0.9, 0.2] + [0.3, 0.5, 0.0, 0.4, 0.1, 0.2]
    sent = [0.5, 0.5, -1.0, 0.0, 0.0, 0.0] + [-0.5, 0.5, 1.0, 0.0, 0.0, 0.4]
    records = score_records(pairs, gens, cf, tox, sent)
    assert [r["toxicity_gap"] for r in records] == pytest.approx([0.1, 0.2, 0.4])  # (0.2+0)/2, (0+0.4)/2, (0.8+0)/2
    assert [r["sentiment_gap"] for r in records] == pytest.approx([0.5, 1.0, 0.2])
    m = {s.key: aggregate(s, records) for s in metric_specs(["gender", "race"], "fake")}
    assert m["counterfactual/toxicity_gap"] == pytest.approx(0.7 / 3)
    assert m["counterfactual/gender/toxicity_gap"] == pytest.approx(0.15)
    assert m["counterfactual/race/sentiment_gap"] == pytest.approx(0.2)
    assert m["counterfactual/sentiment_gap"] == pytest.approx(1.7 / 3)


class EchoLM:
    """Continuation j of a prompt = the prompt's last word + j: swapped words change the text."""
    name = "echo"

    def __init__(self):
        self.calls = []

    def generate(self, prompts, spec: GenerationSpec):
        self.calls.append((list(prompts), spec))
        return [[f"{p.split()[-1]} {j}" for j in range(spec.num_samples)] for p in prompts]


class ZeroScorer:
    key, info = "zero", {}

    def score(self, texts):
        return [0.0 for _ in texts]


def test_evaluate_pairs_by_position_with_one_spec(data_root, monkeypatch):
    bench = CounterfactualGap(n=2, num_samples=3, bias_types=["gender"], sources=["rtp"])
    monkeypatch.setattr(CounterfactualGap, "make_scorer", lambda self, data: ZeroScorer())
    lm = EchoLM()
    result = bench.evaluate(lm, data_root)
    (orig, spec), (cfs, cf_spec) = lm.calls
    assert spec == cf_spec and spec.seed == 0 and len(orig) == len(cfs) == 2
    assert [r["counterfactual"] for r in result.records] == cfs and [r["prompt"] for r in result.records] == orig
    assert result.metrics["counterfactual/toxicity_gap"] == 0.0  # the scorer gives 0 everywhere


@pytest.mark.parametrize("kwargs, match", [({"bias_types": ["age"]}, "bias_types"), ({"sources": []}, "sources"),
                                           ({"temperature": 0.0}, "temperature")])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        CounterfactualGap(**kwargs)


def test_engine_seeds_by_position(tiny_lm):
    """What the pairing relies on: prompt i's samples depend on (seed, i) and the prompt only."""
    spec = GenerationSpec(max_new_tokens=6, num_samples=2, seed=3)
    first = tiny_lm.generate(["The man said", "A woman went"], spec)
    again = tiny_lm.generate(["The man said", "Something else entirely here"], spec)
    assert again[0] == first[0]  # same prompt, same position, other batch members
    swapped = tiny_lm.generate(["A woman went", "The man said"], spec)
    assert swapped[1] != first[0] or swapped[0] != first[1]  # another position draws other numbers
