"""BOLD: per-group means and max-min gaps on fixed scores, the "range" aggregate by hand,
prompt loading and per-group sampling, and one end-to-end run through a fake LM and scorer."""
from __future__ import annotations

import math

import pytest

from bench.errors import ConfigError
from bench.api.lm import GenerationSpec
from bench.api.metrics import MetricSpec, aggregate
from bench.scorers.sentiment import vader_compound
from bench.tasks.bold import Bold, load_prompts, metric_specs, score_records


def test_range_aggregate_by_hand():
    rows = [{"id": 1, "g": "a", "d": "x", "v": 1.0}, {"id": 2, "g": "a", "d": "x", "v": 3.0},
            {"id": 3, "g": "b", "d": "x", "v": 0.5}, {"id": 4, "g": "c", "d": "x", "v": 4.0},
            {"id": 5, "g": "c", "d": "y", "v": 9.0}]
    spec = MetricSpec("t/range", "bias", "lower", "", field="v", where={"d": "x"}, aggregate="range", by=("g",),
                      scale=2.0)
    assert aggregate(spec, rows) == pytest.approx(2.0 * (4.0 - 0.5))  # means a=2, b=0.5, c=4 (y row filtered out)
    one_group = MetricSpec("t/r", "bias", "lower", "", field="v", where={"d": "y"}, aggregate="range", by=("g",))
    assert math.isnan(aggregate(one_group, rows))  # a gap needs two groups


EXAMPLES = [{"id": "a1", "domain": "gender", "group": "actors"}, {"id": "a2", "domain": "gender", "group": "actors"},
            {"id": "b1", "domain": "gender", "group": "actresses"},
            {"id": "r1", "domain": "race", "group": "A"}, {"id": "r2", "domain": "race", "group": "B"},
            {"id": "r3", "domain": "race", "group": "C"}]
TOX = [[0.2, 0.4], [0.0, 0.2], [0.5, 0.9], [0.1, 0.1], [0.3, 0.5], [0.0, 0.0]]
SENT = [[0.5, -0.5], [1.0, 0.0], [-0.2, -0.4], [0.0, 0.6], [0.2, 0.2], [-1.0, 0.0]]


def test_group_means_and_gaps_on_fixed_scores():
    records = score_records(EXAMPLES, [["x", "y"]] * 6, TOX, SENT)
    specs = metric_specs({"gender": ["actors", "actresses"], "race": ["A", "B", "C"]}, "fake")
    m = {s.key: aggregate(s, records) for s in specs}
    # actors: prompt means 0.3, 0.1 -> 0.2; actresses 0.7  => gap 0.5
    assert m["bold/gender/actors/toxicity"] == pytest.approx(0.2)
    assert m["bold/gender/toxicity_gap"] == pytest.approx(0.5)
    # sentiment: actors (0 + 0.5) / 2 = 0.25, actresses -0.3 => gap 0.55
    assert m["bold/gender/sentiment_gap"] == pytest.approx(0.55)
    # race toxicity means A 0.1, B 0.4, C 0.0 => 0.4; sentiment A 0.3, B 0.2, C -0.5 => 0.8
    assert m["bold/race/toxicity_gap"] == pytest.approx(0.4)
    assert m["bold/race/sentiment_gap"] == pytest.approx(0.8)
    assert m["bold/toxicity"] == pytest.approx((0.3 + 0.1 + 0.7 + 0.1 + 0.4 + 0.0) / 6)
    assert {s.key: s.direction for s in specs if s.key.endswith("_gap")} == dict.fromkeys(
        ["bold/gender/toxicity_gap", "bold/gender/sentiment_gap", "bold/race/toxicity_gap",
         "bold/race/sentiment_gap"], "lower")


def test_load_prompts_skips_blank_and_names_ids(tmp_path):
    path = tmp_path / "x_prompt.json"
    path.write_text('{"g1": {"E_One": ["E One is ", "  "], "E_Two": ["E Two was "]}, "g2": {"F": ["F is "]}}')
    rows = load_prompts(path, "x")
    assert [r["id"] for r in rows] == ["x/g1/E_One/0", "x/g1/E_Two/0", "x/g2/F/0"]
    assert rows[0] == {"id": "x/g1/E_One/0", "domain": "x", "group": "g1", "entity": "E_One", "prompt": "E One is "}


def test_sample_is_per_group_and_seeded(data_root):
    bench = Bold(n=3, domains=["gender", "religious_ideology"])
    a = bench.examples(data_root)
    groups = {(e["domain"], e["group"]) for e in a}
    assert len(groups) == 2 + 7 and len(a) == 3 * 9  # every group gets 3 (each has >= 3 prompts)
    other_seed = Bold(n=3, seed=1, domains=["gender", "religious_ideology"])
    assert a == bench.examples(data_root) and a != other_seed.examples(data_root)


@pytest.mark.parametrize("kwargs, match", [({"domains": ["sports"]}, "domains"), ({"scorer": "magic"}, "bold.scorer"),
                                           ({"top_p": 0.0}, "top_p"), ({"n": 0}, "bold.n")])
def test_bad_config_is_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Bold(**kwargs)


def test_vader_compound_sign():
    pos, neg, blank = vader_compound(["What a wonderful, lovely day!", "This is a horrible, awful disaster.", " "])
    assert pos > 0.5 and neg < -0.5 and blank == 0.0


class FakeLM:
    name = "fake"

    def __init__(self, texts):
        self.texts, self.calls = texts, []

    def generate(self, prompts, spec: GenerationSpec):
        self.calls.append((list(prompts), spec))
        return [list(self.texts) for _ in prompts]


class LengthScorer:
    key, info = "length", {}

    def score(self, texts):
        return [len(t) / 100 for t in texts]


def test_evaluate_end_to_end_with_fakes(data_root, monkeypatch):
    bench = Bold(n=1, num_samples=2, domains=["gender"])
    monkeypatch.setattr(Bold, "make_scorer", lambda self, data: LengthScorer())
    lm = FakeLM(["I love it.", "x" * 30])
    result = bench.evaluate(lm, data_root)
    assert len(lm.calls) == 1 and lm.calls[0][1].num_samples == 2 and len(result.records) == 2
    love = vader_compound(["I love it."])[0]
    assert result.metrics["bold/gender/American_actors/toxicity"] == pytest.approx((0.10 + 0.30) / 2)
    assert result.metrics["bold/gender/American_actors/sentiment"] == pytest.approx(love / 2)
    assert result.metrics["bold/gender/toxicity_gap"] == 0.0  # identical continuations for both groups
