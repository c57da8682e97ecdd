"""SEAT: the Sentence Encoder Association Test (May et al. 2019) on the model's sentence
encodings, ``lm.hidden_states`` (mean-pooled last layer, after any debiasing projection).

``protocol: bias_bench`` (default) encodes as bias-bench's ``bias_bench/benchmark/seat/seat.py``
``_encode``: each sentence's own tokens (``tokenizer(text)``, no start token), last hidden state
mean-pooled over all of them, L2-normalised; each set is deduplicated (bias-bench keys a set's
encodings by sentence text, first occurrence kept).  ``protocol: clean`` (today's variant)
runs the start token in front, pools over the text's tokens and keeps duplicates.

For target sets X, Y and attribute sets A, B of a test, with cosine similarity cos:

    s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
    d = (mean_{x in X} s(x, A, B) - mean_{y in Y} s(y, A, B)) / std_{w in X u Y} s(w, A, B)   (ddof=1)

p-value (one-sided permutation test, as in sent-bias / bias-bench ``weat.py``): the share of
partitions (X_i, Y_i) of X u Y with |X_i| = |X| and sum_{x in X_i} s(x) >= sum_{x in X} s(x)
(ties count, conservative).  Exact over all partitions when there are at most
``n_permutations`` of them; otherwise ``n_permutations - 1`` seeded random partitions plus
the observed one counted as exceeding (their "bias by 1"); the random partitions are this
module's seeded draws, not bias-bench's ``np.random.shuffle`` stream.

``seat/abs_effect_<type>`` = mean |d| over the tests bias-bench runs for that type
(``TESTS``, from its ``batch_jobs/_experiment_configuration.sh``); each test's d and p are in
the records.  ``n`` caps every set of every test at n sentences (seeded draw, after
deduplication; None: all, as bias-bench).  Sizes: smoke n=8 (0.5 s on tiny-random);
default and full n=null (3,116 distinct sentences).
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np

from bench.data import DataRoot, read_json
from bench.errors import ConfigError, DataError
from bench.data.hf_datasets import from_rows
from bench.io import stable_hash
from bench.progress import progress
from bench.api.lm import ScoringLM
from bench.api.metrics import MetricSpec, aggregate
from bench.api import BenchmarkResult
from bench.tasks.common import check_choice, check_config

TESTS = {
    "gender": ("sent-weat6", "sent-weat6b", "sent-weat7", "sent-weat7b", "sent-weat8", "sent-weat8b"),
    "race": ("sent-angry_black_woman_stereotype", "sent-angry_black_woman_stereotype_b", "sent-weat3",
             "sent-weat3b", "sent-weat4", "sent-weat5", "sent-weat5b"),
    "religion": ("sent-religion1", "sent-religion1b", "sent-religion2", "sent-religion2b"),
}
SETS = ("targ1", "targ2", "attr1", "attr2")
PROTOCOLS = ("bias_bench", "clean")
_BATCH = 8192  # random partitions per vectorised step


@dataclass
class SEAT:
    name: ClassVar[str] = "seat"
    DATA_FILES: ClassVar[tuple[str, ...]] = ("bias_bench/seat/",)
    n: int | None = None  # max sentences per set of each test, drawn with seed (None: all)
    seed: int = 0  # set subsampling and permutation-test seed
    bias_types: list[str] = field(default_factory=lambda: ["gender", "race", "religion"])  # which tests run
    n_permutations: int = 100_000  # partitions for the p-value (exact test when there are fewer)
    protocol: str = "bias_bench"  # bias_bench: bias-bench's encoder, deduplicated sets | clean (module doc)

    def __post_init__(self) -> None:
        check_config(self)
        check_choice(self.protocol, PROTOCOLS, f"benchmarks.{self.name}.protocol")
        unknown = [b for b in self.bias_types if b not in TESTS]
        if unknown or not self.bias_types:
            raise ConfigError(f"benchmarks.seat.bias_types={self.bias_types!r}: choose from {list(TESTS)}")
        if self.n is not None and self.n < 2:
            raise ConfigError(f"benchmarks.seat.n must be null or >= 2 (ddof=1 needs two sentences), got {self.n}")
        if self.n_permutations < 1:
            raise ConfigError(f"benchmarks.seat.n_permutations must be >= 1, got {self.n_permutations}")

    def evaluate(self, lm: ScoringLM, data: DataRoot) -> BenchmarkResult:
        bare = self.protocol == "bias_bench"
        tests = load_tests(data, self.bias_types, self.n, self.seed, dedupe=bare)
        sentences = sorted({s for t in tests for name in SETS for s in t["sets"][name]})
        vectors = lm.hidden_states(sentences, start_token=not bare).double().numpy()
        encode = dict(zip(sentences, vectors))
        records = [score_test(t, {k: np.stack([encode[s] for s in t["sets"][k]]) for k in SETS},
                              self.n_permutations, self.seed)
                   for t in progress(tests, desc=f"SEAT tests ({self.n_permutations} permutations each)", unit="test")]
        specs = metric_specs(self.bias_types)
        return BenchmarkResult(metrics={s.key: aggregate(s, records) for s in specs}, specs=specs, records=records,
                               n=len(records), info={"sentences": len(sentences), "protocol": self.protocol,
                                                     "n_permutations": self.n_permutations,
                                                     "tests": {b: list(TESTS[b]) for b in self.bias_types}})


def load_tests(data: DataRoot, bias_types: Sequence[str], n: int | None, seed: int,
               dedupe: bool = True) -> list[dict[str, Any]]:
    """The selected tests, each ``{"test", "bias_type", "sets": {set: [sentences]}, "categories"}``;
    ``dedupe``: each set's repeated sentences dropped (first occurrence kept, as a dict keyed by text)."""
    tests = []
    for bias_type in bias_types:
        for test in TESTS[bias_type]:
            path = data.path(f"bias_bench/seat/{test}.jsonl")
            raw = read_json(path)  # one pretty-printed JSON object despite the extension
            if not isinstance(raw, dict) or any(not raw.get(k, {}).get("examples") for k in SETS):
                raise DataError(f"{path}: expected an object with non-empty {list(SETS)}[*].examples")
            sets = {k: list(dict.fromkeys(raw[k]["examples"]) if dedupe else raw[k]["examples"]) for k in SETS}
            if n is not None:
                sets = {k: _draw(v, n, stable_hash([seed, test, k])) for k, v in sets.items()}
            tests.append({"test": test, "bias_type": bias_type, "sets": sets,
                          "categories": {k: raw[k].get("category", k) for k in SETS}})
    return tests


def _draw(items: list[str], n: int, seed: str) -> list[str]:
    if len(items) <= n:
        return items
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def association(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """s(w, A, B) for each row of ``w`` [n, H] given attribute encodings ``a``, ``b``."""
    w, a, b = _unit(w), _unit(a), _unit(b)
    return (w @ a.T).mean(1) - (w @ b.T).mean(1)


def effect_size(x: np.ndarray, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """SEAT effect size d (encodings [n, H]; std with ddof=1 over X u Y)."""
    sx, sy = association(x, a, b), association(y, a, b)
    return float((sx.mean() - sy.mean()) / np.concatenate([sx, sy]).std(ddof=1))


def p_value(sx: np.ndarray, sy: np.ndarray, n_permutations: int, rng: np.random.Generator) -> float:
    """One-sided permutation p-value of sum(sx) over partitions of sx u sy (see module doc)."""
    s_all = np.concatenate([sx, sy])
    m, k = len(s_all), len(sx)
    observed = sx.sum()
    tol = 1e-9 * (abs(observed) + 1.0)  # sums in another order may differ by rounding
    if math.comb(m, k) <= n_permutations:
        parts = np.array(list(itertools.combinations(range(m), k)))
        return float(np.mean(s_all[parts].sum(1) >= observed - tol))
    hits, left = 1, n_permutations - 1  # the observed partition, counted as exceeding
    while left > 0:
        size = min(left, _BATCH)
        parts = rng.random((size, m)).argsort(1)[:, :k]
        hits += int((s_all[parts].sum(1) >= observed - tol).sum())
        left -= size
    return hits / n_permutations


def score_test(test: dict[str, Any], enc: dict[str, np.ndarray], n_permutations: int, seed: int) -> dict[str, Any]:
    """The record of one test from its encodings ``enc[set]`` [n_set, H]."""
    x, y, a, b = (enc[k] for k in SETS)
    d = effect_size(x, y, a, b)
    rng = np.random.default_rng(int(stable_hash([seed, test["test"]]), 16))
    p = p_value(association(x, a, b), association(y, a, b), n_permutations, rng)
    cats = test["categories"]
    return {"id": test["test"], "bias_type": test["bias_type"], "effect_size": d, "abs_effect_size": abs(d),
            "p_value": p, "sizes": {k: len(v) for k, v in enc.items()},
            "categories": f"{cats['targ1']} vs {cats['targ2']} / {cats['attr1']} vs {cats['attr2']}"}


def metric_specs(bias_types: Sequence[str]) -> list[MetricSpec]:
    return [MetricSpec(key=f"seat/abs_effect_{b}", group="bias", direction="lower",
                       help=f"mean |SEAT effect size d| over bias-bench's {len(TESTS[b])} {b} tests (ideal 0)",
                       field="abs_effect_size", where={"bias_type": b}) for b in bias_types]


def dataset(data: DataRoot, split: str = "gender"):
    """The sentences of bias type ``split``'s tests (gender | race | religion) as a ``datasets.Dataset``,
    one row per (test, set, sentence): test, bias_type, set (targ1 | targ2 | attr1 | attr2), category,
    sentence.  Each test file is one JSON object, so rows come from ``load_tests`` (all sentences)."""
    if split not in TESTS:
        raise ConfigError(f"split={split!r} is not one of {list(TESTS)}")
    return from_rows([{"test": t["test"], "bias_type": t["bias_type"], "set": k, "category": t["categories"][k],
                       "sentence": s} for t in load_tests(data, [split], None, 0) for k in SETS for s in t["sets"][k]])
