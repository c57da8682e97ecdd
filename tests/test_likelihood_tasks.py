"""The likelihood benchmarks: metric functions on hand-made answers with known results,
loaders on the real data, error messages, and each evaluate() end to end on tiny-random."""
from __future__ import annotations

import hashlib
import math
from collections import Counter

import pytest

from bench.errors import ConfigError, DataError
from bench.api.lm import Loglikelihood, Request
from bench.api.metrics import aggregate
from bench.tasks import crows_pairs, knowledge, perplexity, stereoset, truthfulqa
from bench.tasks.common import stratified_sample


def ll(logprob: float, n_tokens: int = 1) -> Loglikelihood:
    return Loglikelihood(logprob, False, n_tokens)


def values(specs, records) -> dict[str, float]:
    return {s.key: aggregate(s, records) for s in specs}


# ------------------------------------------------------------------------ sampling
def test_stratified_sample_is_proportional_seeded_and_ordered():
    items = [("a", i) for i in range(60)] + [("b", i) for i in range(30)] + [("c", i) for i in range(10)]
    pick = stratified_sample(items, 10, seed=3, key=lambda x: x[0])
    assert Counter(k for k, _ in pick) == {"a": 6, "b": 3, "c": 1}
    assert pick == sorted(pick, key=items.index)  # input order kept
    assert pick == stratified_sample(items, 10, seed=3, key=lambda x: x[0])
    assert pick != stratified_sample(items, 10, seed=4, key=lambda x: x[0])
    assert stratified_sample(items, None, 0) == items and stratified_sample(items, 500, 0) == items
    tiny = stratified_sample(items, 3, 0, key=lambda x: x[0])  # every stratum gets one when n >= strata
    assert Counter(k for k, _ in tiny) == {"a": 1, "b": 1, "c": 1}
    assert len(stratified_sample(items, 2, 0, key=lambda x: x[0])) == 2


# ----------------------------------------------------------------------- stereoset
def ex(i: int, domain: str) -> stereoset.Example:
    return stereoset.Example(str(i), domain, "t", f"s{i}", f"a{i}", f"u{i}")


def test_stereoset_scores_by_hand():
    examples = [ex(1, "gender"), ex(2, "gender"), ex(3, "race"), ex(4, "race")]
    answers = [ll(-4, 4), ll(-2, 1), ll(-3, 1),  # means -1, -2, -3: the mean (not the sum) decides stereo > anti
               ll(-2), ll(-1), ll(-1.5),  # anti wins; only anti beats unrelated
               ll(-1), ll(-2), ll(-0.5),  # stereo wins; unrelated beats both
               ll(-1), ll(-3), ll(-2)]  # stereo wins; only stereo beats unrelated
    records = stereoset.score(examples, answers)
    assert [r["stereo_wins"] for r in records] == [1, 0, 1, 1]
    assert [r["lm_wins"] for r in records] == [1, 0.5, 0, 0.5]
    got = values(stereoset.metric_specs(["gender", "race"]), records)
    expected = {"stereoset/ss": 75, "stereoset/lms": 50, "stereoset/icat": 25,
                "stereoset/ss_gender": 50, "stereoset/lms_gender": 75, "stereoset/icat_gender": 75,
                "stereoset/ss_race": 100, "stereoset/lms_race": 25, "stereoset/icat_race": 0}
    assert got == pytest.approx(expected)
    assert [r.continuation for r in stereoset.build_requests(examples[:1])] == ["s1", "a1", "u1"]
    assert all(r.context == "" for r in stereoset.build_requests(examples))


def test_stereoset_loads_2106_intrasentence(data_root):
    examples = stereoset.load_examples(data_root.path(stereoset.FILE))
    assert len(examples) == 2106
    assert Counter(e.domain for e in examples) == {"race": 962, "profession": 810, "gender": 255, "religion": 79}
    assert len({e.id for e in examples}) == 2106
    assert examples[0].stereotype == "The chess player was asian."


def test_stereoset_bad_line_names_file_and_line(tmp_path):
    good = ('{"type": "intrasentence", "target": "x", "bias_type": "gender", "context": "c BLANK", '
            '"stereotype": "s", "anti-stereotype": "a", "unrelated": "u"}')
    path = tmp_path / "ss.jsonl"
    path.write_text(good + "\n" + good.replace('"gender"', '"age"') + "\n")
    with pytest.raises(DataError, match=r"ss\.jsonl, line 2: bias_type 'age'"):
        stereoset.load_examples(path)
    path.write_text(good + "\n\n" + good.replace('"unrelated": "u"', '"unrelated": ""') + "\n")
    with pytest.raises(DataError, match=r"ss\.jsonl, line 3: field 'unrelated'"):
        stereoset.load_examples(path)
    path.write_text(good + "\n{oops\n")
    with pytest.raises(DataError, match=r"ss\.jsonl, line 2: not valid JSON"):
        stereoset.load_examples(path)


def test_stereoset_config_errors(data_root):
    with pytest.raises(ConfigError, match=r"benchmarks\.stereoset\.n"):
        stereoset.StereoSet(n=0)
    with pytest.raises(ConfigError, match=r"benchmarks\.stereoset\.domains has unknown value\(s\) \['sports'\]"):
        stereoset.StereoSet(domains=["sports"]).examples(data_root)
    only = stereoset.StereoSet(n=10, domains=["religion"]).examples(data_root)
    assert len(only) == 10 and {e.domain for e in only} == {"religion"}


# --------------------------------------------------------------------- crows-pairs
def test_crows_pairs_sum_and_mean_by_hand():
    pairs = [crows_pairs.Pair("0", "gender", "stereo", "m0", "l0"),
             crows_pairs.Pair("1", "gender", "antistereo", "m1", "l1"),
             crows_pairs.Pair("2", "race_color", "stereo", "m2", "l2")]
    answers = [ll(-6, 3), ll(-5, 1),  # sum: less wins; mean: more wins (-2 > -5)
               ll(-3, 1), ll(-4, 1),  # more wins either way
               ll(-9, 3), ll(-4, 2)]  # less wins either way
    by_sum = crows_pairs.score(pairs, answers, "sum")
    by_mean = crows_pairs.score(pairs, answers, "mean")
    assert [r["more_wins"] for r in by_sum] == [0, 1, 0]
    assert [r["more_wins"] for r in by_mean] == [1, 1, 0]
    specs = crows_pairs.metric_specs(["gender", "race_color"])
    assert values(specs, by_sum) == pytest.approx({"crows_pairs/stereotype_score": 100 / 3,
                                                   "crows_pairs/stereotype_score_gender": 50,
                                                   "crows_pairs/stereotype_score_race_color": 0})
    assert values(specs, by_mean)["crows_pairs/stereotype_score_gender"] == 100
    assert crows_pairs.build_requests(pairs[:1]) == [Request("", "m0"), Request("", "l0")]
    assert crows_pairs.normalise("Race-color") == "race_color" == crows_pairs.normalise("race-color")


def test_crows_pairs_loads_all_variants(data_root):
    counts = {}
    for variant, (rel, delimiter) in crows_pairs.FILES.items():
        counts[variant] = Counter(p.bias_type for p in crows_pairs.load_pairs(data_root.path(rel), delimiter))
    assert sum(counts["original"].values()) == 1508 and counts["original"]["race_color"] == 516
    assert sum(counts["revised"].values()) == 1467 and "stereo" not in counts["revised"]
    assert counts["revised"]["race_color"] == 500  # 499 + the "Race-color" row
    assert sum(counts["revised+210"].values()) == 1677 and counts["revised+210"]["autre"] == 11


def test_crows_pairs_errors(tmp_path, data_root):
    path = tmp_path / "c.csv"
    path.write_text(",sent_more,sent_less,stereo_antistereo,bias_type\n0,a,b,stereo,gender\n1,a,b,sideways,gender\n")
    with pytest.raises(DataError, match=r"c\.csv, data row 2 \(id 1\): stereo_antistereo='sideways'"):
        crows_pairs.load_pairs(path)
    path.write_text(",sent_more,sent_less,stereo_antistereo,bias_type\n0,a,,stereo,gender\n")
    with pytest.raises(DataError, match=r"c\.csv, line 2"):
        crows_pairs.load_pairs(path)
    with pytest.raises(ConfigError, match=r"benchmarks\.crows_pairs\.variant='v3'"):
        crows_pairs.CrowsPairs(variant="v3")
    with pytest.raises(ConfigError, match=r"benchmarks\.crows_pairs\.score"):
        crows_pairs.CrowsPairs(score="max")
    with pytest.raises(ConfigError, match=r"benchmarks\.crows_pairs\.bias_types"):
        crows_pairs.CrowsPairs(bias_types=["autre"]).pairs(data_root)  # only in revised+210


# ---------------------------------------------------------------------- truthfulqa
def question() -> truthfulqa.Question:
    return truthfulqa.Question("7", "Is it?", mc1=(("Yes.", 1), ("No.", 0), ("Maybe.", 0)),
                               mc2=(("Yes.", 1), ("Sure.", 1), ("No.", 0)))


def test_truthfulqa_mc1_mc2_by_hand():
    assert truthfulqa.mc1([1, 0, 0], [-2.0, -1.0, -3.0]) == 0.0
    assert truthfulqa.mc1([1, 0, 0], [-1.0, -1.0, -3.0]) == 1.0  # tie: the first choice, as numpy.argmax
    assert truthfulqa.mc1([0, 1], [-5.0, -1.0]) == 1.0
    expected = (math.exp(-1) + math.exp(-2)) / (math.exp(-1) + math.exp(-2) + math.exp(-1.5))
    assert truthfulqa.mc2([1, 1, 0], [-1.0, -2.0, -1.5]) == pytest.approx(expected, rel=1e-12)
    assert truthfulqa.mc2([1, 0], [-2000.0, -2001.0]) == pytest.approx(1 / (1 + math.exp(-1)))  # no underflow

    q = question()
    requests = truthfulqa.build_requests([q])
    ctx = truthfulqa.PRIMER + "\n\nQ: Is it?\nA:"
    assert requests == [Request(ctx, " Yes."), Request(ctx, " No."), Request(ctx, " Maybe."), Request(ctx, " Sure.")]
    answers = dict(zip(requests, [ll(-1), ll(-1.5), ll(-3), ll(-2)]))
    [record] = truthfulqa.score([q], answers)
    assert record["id"] == "7" and record["mc1"] == 1.0 and record["mc2"] == pytest.approx(expected)


def test_truthfulqa_primer_is_lm_eval_verbatim():
    lm_eval = pytest.importorskip("lm_eval")
    jinja2, yaml = pytest.importorskip("jinja2"), pytest.importorskip("yaml")
    from pathlib import Path

    cfg = yaml.safe_load((Path(lm_eval.__file__).parent / "tasks/truthfulqa/truthfulqa_mc1.yaml").read_text())
    assert jinja2.Template(cfg["doc_to_text"]).render(question="Why?") == truthfulqa.context("Why?")


def test_truthfulqa_loads_both_versions(data_root):
    v1 = truthfulqa.load_questions(data_root.path(truthfulqa.FILES["v1"]))
    assert len(v1) == 817 and v1[0].question == "What happens if you eat a pomegranate?"
    assert all(q.mc1[0][1] == 1 for q in v1)
    assert len(truthfulqa.load_questions(data_root.path(truthfulqa.FILES["2025"]))) == 790


def test_truthfulqa_bad_item_names_file_and_item(tmp_path):
    path = tmp_path / "mc.json"
    path.write_text('[{"question": "q", "mc1_targets": {"a": 1, "b": 0}, "mc2_targets": {"a": 1, "b": 0}},'
                    ' {"question": "q", "mc1_targets": {"a": 1, "b": 1}, "mc2_targets": {"a": 1, "b": 0}}]')
    with pytest.raises(DataError, match=r"mc\.json, item 1: mc1_targets has 2 non-empty choices with 2 true"):
        truthfulqa.load_questions(path)
    with pytest.raises(ConfigError, match=r"benchmarks\.truthfulqa\.version"):
        truthfulqa.TruthfulQA(version="v3")
    assert truthfulqa.TruthfulQA(version=2025).version == "2025"  # as Hydra parses version=2025


# ----------------------------------------------------------------------- knowledge
FACT = knowledge.Fact("u1", "P106", "Ada", "mathematician")


def test_knowledge_render_and_requests():
    assert knowledge.render(FACT, "[X] is a [Y] by profession .") == "Ada is a mathematician by profession."
    assert knowledge.render(FACT, "[X] is a [Y] .", obj="poet") == "Ada is a poet."
    reqs = knowledge.build_requests(FACT, "[X] is a [Y] by profession .", ["mathematician", "poet"])
    assert reqs == [Request("Ada is a ", "mathematician by profession."), Request("Ada is a ", "poet by profession.")]
    [req] = knowledge.build_requests(FACT, "[Y] participated in the [X] .", ["Bo"])
    assert req == Request("", "Bo participated in the Ada.")


def test_knowledge_candidates_and_ranking():
    objects = ["chemist", "mathematician", "painter", "physicist", "poet"]
    cands = knowledge.candidates(FACT, objects, known={"mathematician", "poet"}, k=10, seed=0)
    assert cands[0] == "mathematician" and sorted(cands[1:]) == ["chemist", "painter", "physicist"]
    three = knowledge.candidates(FACT, objects, known={"mathematician"}, k=3, seed=0)
    assert len(three) == 3 and len(set(three)) == 3
    assert three == knowledge.candidates(FACT, objects, {"mathematician"}, 3, 0)
    records = knowledge.score([[ll(-2), ll(-3), ll(-1)],  # one distractor above: rank 2
                               [ll(-2), ll(-2), ll(-5)],  # tie goes to the true object
                               [ll(-9), ll(-1), ll(-2)]])  # rank 3
    assert [r["rank"] for r in records] == [2, 1, 3]
    assert values(knowledge.SPECS, records) == pytest.approx({"knowledge/acc": 1 / 3,
                                                             "knowledge/mrr": (1 / 2 + 1 + 1 / 3) / 3})


def test_knowledge_split_is_disjoint_deterministic_and_covers_all(data_root):
    every = knowledge.all_facts(data_root)
    train, evals = knowledge.train_facts(data_root), knowledge.eval_facts(data_root)
    train_ids, eval_ids = {f.uuid for f in train}, {f.uuid for f in evals}
    assert not train_ids & eval_ids and len(train_ids | eval_ids) == len(every) == 29411
    assert 0.45 < len(train) / len(every) < 0.55
    assert [f.uuid for f in knowledge.train_facts(data_root)] == [f.uuid for f in train]
    uuid = "6a9d91c1-eb9b-4142-8371-3c063ec40700"  # the first P19 fact; its sha256 ends in an even digit
    assert knowledge.split_of(uuid) == ("train" if int(hashlib.sha256(uuid.encode()).hexdigest()[-1], 16) % 2 == 0
                                        else "eval")
    try:  # the contrastive method builds its fact corruptions from the same train split
        from methods.contrastive_data import in_train_split
    except ImportError:
        return
    assert all(in_train_split(u) for u in train_ids) and not any(in_train_split(u) for u in eval_ids)
    assert len(knowledge.relations(data_root)) == 41
    assert set(knowledge.relations(data_root)) <= set(knowledge.templates(data_root))


def test_knowledge_config_errors(data_root, tiny_lm):
    with pytest.raises(ConfigError, match=r"benchmarks\.knowledge\.num_candidates"):
        knowledge.Knowledge(num_candidates=1)
    with pytest.raises(ConfigError, match=r"benchmarks\.knowledge\.relations has unknown value\(s\) \['P0'\]"):
        knowledge.Knowledge(relations=["P0"]).evaluate(tiny_lm, data_root)


# ---------------------------------------------------------------------- perplexity
def test_perplexity_from_given_nlls():
    articles = [perplexity.Article("0", "A", "a"), perplexity.Article("1", "B", "b")]
    records = perplexity.score(articles, [(-10.0, 5), (-20.0, 5)])
    assert values(perplexity.SPECS, records) == pytest.approx({"perplexity/wikitext2": math.exp(3.0)})
    assert records[1] == {"id": "1", "title": "B", "logprob": -20.0, "n_tokens": 5}


def test_perplexity_articles(tmp_path, data_root):
    path = tmp_path / "w.raw"
    path.write_bytes(b" = One = \r\n Text one . \r\n = = Part = = \r\n More . \r\n = Two = \r\n Text two . \r\n")
    one, two = perplexity.load_articles(path)
    assert (one.title, one.text) == ("One", " = One = \n Text one . \n = = Part = = \n More . ")
    assert (two.id, two.title, two.text) == ("1", "Two", " = Two = \n Text two . ")
    path.write_bytes(b" Text before . \r\n = One = \r\n x \r\n")
    with pytest.raises(DataError, match=r"w\.raw, line 1: expected an article heading"):
        perplexity.load_articles(path)
    real = perplexity.load_articles(data_root.path(perplexity.FILE))
    assert len(real) == 62 and real[0].title == "Robert Boulter"
    with pytest.raises(ConfigError, match=r"benchmarks\.perplexity\.stride"):
        perplexity.Perplexity(max_length=64, stride=128)
    with pytest.raises(ConfigError, match=r"benchmarks\.perplexity\.max_chars"):
        perplexity.Perplexity(max_chars=0)
    assert perplexity.truncate(" = T = \n one two three", 16) == " = T = \n one two"
    assert perplexity.truncate("short", 16) == "short" and perplexity.truncate("x" * 20, 5) == "xxxxx"


# ------------------------------------------------------------ end to end, tiny-random
CASES = [
    (stereoset.StereoSet(n=8), ["stereoset/ss", "stereoset/lms", "stereoset/icat", "stereoset/ss_gender",
                                "stereoset/ss_race", "stereoset/ss_religion", "stereoset/ss_profession"]),
    (crows_pairs.CrowsPairs(n=10), ["crows_pairs/stereotype_score", "crows_pairs/stereotype_score_race_color"]),
    (crows_pairs.CrowsPairs(n=4, variant="revised", score="mean"), ["crows_pairs/stereotype_score"]),
    (truthfulqa.TruthfulQA(n=3), ["truthfulqa/mc1", "truthfulqa/mc2"]),
    (truthfulqa.TruthfulQA(n=2, version="2025"), ["truthfulqa/mc1", "truthfulqa/mc2"]),
    (knowledge.Knowledge(n=6, num_candidates=4), ["knowledge/acc", "knowledge/mrr"]),
    (perplexity.Perplexity(n=2, max_chars=1500, max_length=64, stride=32), ["perplexity/wikitext2"]),
]


@pytest.mark.parametrize("bench,keys", CASES, ids=lambda c: getattr(c, "name", ""))
def test_evaluate_end_to_end_on_tiny(bench, keys, tiny_lm, data_root):
    result = bench.evaluate(tiny_lm, data_root)
    assert set(keys) <= set(result.metrics)
    assert {s.key for s in result.specs} == set(result.metrics)
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert result.n == len(result.records) == bench.n
    ids = [r["id"] for r in result.records]
    assert all(isinstance(i, str) and i for i in ids) and len(set(ids)) == len(ids)
    assert values(result.specs, result.records) == result.metrics  # recomputable from records (bootstrap)


def test_evaluate_is_seeded(tiny_lm, data_root):
    first = crows_pairs.CrowsPairs(n=9, seed=1).evaluate(tiny_lm, data_root)
    again = crows_pairs.CrowsPairs(n=9, seed=1).evaluate(tiny_lm, data_root)
    other = crows_pairs.CrowsPairs(n=9, seed=2).evaluate(tiny_lm, data_root)
    assert again.records == first.records and again.metrics == first.metrics
    assert [r["id"] for r in other.records] != [r["id"] for r in first.records]
    assert len({r["bias_type"] for r in first.records}) == 9  # one pair per bias type


@pytest.mark.slow
def test_truthfulqa_on_smollm2(smollm2_loaded, data_root):
    from bench.engine.hf_lm import HFScoringLM

    result = truthfulqa.TruthfulQA(n=5).evaluate(HFScoringLM(smollm2_loaded), data_root)
    assert result.n == 5
    assert 0.0 <= result.metrics["truthfulqa/mc1"] <= 1.0
    assert 0.05 < result.metrics["truthfulqa/mc2"] < 0.95
    assert all(0.0 < r["mc2"] < 1.0 for r in result.records)


@pytest.mark.parametrize("name", ["stereoset", "crows_pairs", "truthfulqa", "knowledge", "perplexity", "winobias",
                                  "bbq"])
def test_benchmark_conf_matches_its_dataclass(name):
    import dataclasses

    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from bench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"+benchmark@probe={name}"])
    bench = instantiate(cfg.probe, _convert_="all")
    assert bench.name == name
    defaults = {f.name: f.default for f in dataclasses.fields(bench)}
    assert {k: v for k, v in OmegaConf.to_container(cfg.probe).items() if k != "_target_"} == defaults
    raw = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "benchmark" / f"{name}.yaml"))
    assert set(raw) == {"defaults"}  # the YAML only names its schema: the defaults live in the dataclass
