"""SEAT: effect size and permutation p-value against hand computations; test selection;
end-to-end on tiny-random."""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from bench.errors import ConfigError
from bench.api.metrics import aggregate
from bench.tasks.seat import SEAT, SETS, TESTS, association, effect_size, load_tests, metric_specs, p_value

# A worked example in 2-D: A = {e1}, B = {e2}.
X = np.array([[1.0, 0.0], [1.0, 1.0]])
Y = np.array([[0.0, 1.0], [1.0, 2.0]])
A, B = np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])
# s(w) = cos(w, e1) - cos(w, e2): x1 -> 1, x2 -> 0, y1 -> -1, y2 -> 1/sqrt5 - 2/sqrt5
S_BY_HAND = [1.0, 0.0, -1.0, -1 / math.sqrt(5)]


def test_association_by_hand():
    assert association(np.vstack([X, Y]), A, B) == pytest.approx(S_BY_HAND)


def test_effect_size_by_hand():
    d = (statistics.mean(S_BY_HAND[:2]) - statistics.mean(S_BY_HAND[2:])) / statistics.stdev(S_BY_HAND)  # ddof=1
    assert effect_size(X, Y, A, B) == pytest.approx(d)
    assert d == pytest.approx(1.223607 / math.sqrt(2.15 / 3), abs=1e-6)  # 1.44538
    assert effect_size(Y, X, A, B) == pytest.approx(-d)
    assert effect_size(3 * X, Y, 0.5 * A, B) == pytest.approx(d)  # cosines ignore scale


def test_exact_permutation_p_value():
    # partitions of {1, 0, -1, -1/sqrt5} into pairs: only {1, 0} reaches the observed sum 1
    sx, sy = np.array(S_BY_HAND[:2]), np.array(S_BY_HAND[2:])
    assert p_value(sx, sy, 100, np.random.default_rng(0)) == pytest.approx(1 / 6)
    assert p_value(sy, sx, 100, np.random.default_rng(0)) == pytest.approx(1.0)  # every partition sum >= min


def test_sampled_permutation_p_value():
    rng = np.random.default_rng(0)
    sx, sy = rng.normal(1.0, 0.1, 20), rng.normal(-1.0, 0.1, 20)  # C(40, 20) partitions: sampled
    p = p_value(sx, sy, 2000, np.random.default_rng(1))
    assert p == pytest.approx(1 / 2000)  # only the observed partition, counted once (bias by 1)
    same = rng.normal(0.0, 1.0, 40)
    p1 = p_value(same[:20], same[20:], 2000, np.random.default_rng(5))
    assert p1 == p_value(same[:20], same[20:], 2000, np.random.default_rng(5))  # seeded
    assert 0.01 < p1 < 0.99


def test_bias_bench_tests_exist_and_subsample(data_root):
    tests = load_tests(data_root, list(TESTS), None, seed=0)
    assert [t["test"] for t in tests] == [name for names in TESTS.values() for name in names]
    assert all(len(t["sets"]["targ1"]) == len(t["sets"]["targ2"]) for t in tests)
    small = load_tests(data_root, ["gender"], 5, seed=0)
    assert all(len(t["sets"][k]) == 5 for t in small for k in SETS)
    assert small == load_tests(data_root, ["gender"], 5, seed=0)
    assert set(small[0]["sets"]["targ1"]) <= set(tests[0]["sets"]["targ1"])


def test_metric_is_mean_abs_effect_per_type():
    records = [{"id": "a", "bias_type": "gender", "abs_effect_size": 0.2},
               {"id": "b", "bias_type": "gender", "abs_effect_size": 0.6},
               {"id": "c", "bias_type": "race", "abs_effect_size": 1.0}]
    specs = {s.key: s for s in metric_specs(["gender", "race"])}
    assert aggregate(specs["seat/abs_effect_gender"], records) == pytest.approx(0.4)
    assert aggregate(specs["seat/abs_effect_race"], records) == pytest.approx(1.0)
    assert all(s.direction == "lower" and s.group == "bias" for s in specs.values())


@pytest.mark.parametrize("kwargs", [{"bias_types": ["age"]}, {"n": 1}, {"n_permutations": 0}])
def test_bad_config(kwargs):
    with pytest.raises(ConfigError, match="benchmarks.seat."):
        SEAT(**kwargs)


def test_end_to_end_tiny(tiny_lm, data_root):
    result = SEAT(n=6, n_permutations=500).evaluate(tiny_lm, data_root)
    assert set(result.metrics) == {"seat/abs_effect_gender", "seat/abs_effect_race", "seat/abs_effect_religion"}
    assert len(result.records) == 17 and all(0.0 < r["p_value"] <= 1.0 for r in result.records)
    assert all(math.isfinite(v) and v >= 0 for v in result.metrics.values())
    only = SEAT(n=6, n_permutations=500, bias_types=["religion"]).evaluate(tiny_lm, data_root)
    assert set(only.metrics) == {"seat/abs_effect_religion"} and len(only.records) == 4
    assert only.metrics["seat/abs_effect_religion"] == pytest.approx(result.metrics["seat/abs_effect_religion"])
