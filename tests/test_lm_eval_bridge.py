"""lm-evaluation-harness both ways: taxbench ScoringLM under lm-eval tasks (HarnessLM, the
lm_eval benchmark) and lm-eval backends as taxbench ScoringLMs (HarnessScoringLM), each
checked against the other side's native implementation on the same in-memory model."""
from __future__ import annotations

import json
import math

import pytest

pytest.importorskip("lm_eval")

from bench.errors import ConfigError  # noqa: E402
from bench.api.lm import GenerationSpec, Request  # noqa: E402
from bench.lm_eval_bridge import HarnessLM, HarnessScoringLM, generation_spec  # noqa: E402
from bench.tasks import crows_pairs  # noqa: E402
from bench.tasks.lm_eval import LmEval  # noqa: E402

MC_ROWS = [{"q": "The capital of France is", "choices": ["Paris", "Rome", "Berlin"], "label": 0},
           {"q": "Two plus two equals", "choices": ["four", "five"], "label": 0},
           {"q": "The sky is", "choices": ["blue", "green", "loud and bright"], "label": 1},
           {"q": "Water freezes at", "choices": [" zero degrees", "ten degrees"], "label": 0}]
TEXTS = ["The quick brown fox jumps over the lazy dog.", "A second, somewhat longer document about nothing.",
         "Short one."]


def _write_tasks(root) -> str:
    """Two local-data task YAMLs (multiple choice, rolling perplexity) over jsonl files in ``root``."""
    (root / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in MC_ROWS))
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    (root / "tiny_mc.yaml").write_text(f"""task: tiny_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'mc.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{q}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: label
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
""")
    (root / "tiny_ppl.yaml").write_text(f"""task: tiny_ppl
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'docs.jsonl'}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
    aggregation: weighted_perplexity
    higher_is_better: false
""")
    return str(root)


@pytest.fixture(scope="module")
def hf_backend(tiny_loaded):
    """lm-eval's own HF backend on the same in-memory tiny model, same sentence-start token."""
    from lm_eval.models.huggingface import HFLM

    from bench.engine.hf_lm import HFScoringLM

    prefix = HFScoringLM(tiny_loaded).prefix_id
    return HFLM(pretrained=tiny_loaded.model, tokenizer=tiny_loaded.tokenizer, prefix_token_id=prefix, batch_size=8)


@pytest.fixture(scope="module")
def task_dir(tmp_path_factory):
    return _write_tasks(tmp_path_factory.mktemp("lm_eval_tasks"))


def _evaluate(model, task_dir):
    import lm_eval
    from lm_eval.tasks import TaskManager

    return lm_eval.simple_evaluate(model=model, tasks=["tiny_mc", "tiny_ppl"], bootstrap_iters=0, log_samples=True,
                                   task_manager=TaskManager(include_path=task_dir, include_defaults=False))


def _responses(out) -> list[float]:
    """Every request's log-likelihood, in (task, doc, request) order."""
    values = []
    for task in ("tiny_mc", "tiny_ppl"):
        for s in sorted(out["samples"][task], key=lambda s: s["doc_id"]):
            for r in s["filtered_resps"]:
                values.append(float(r[0] if isinstance(r, (tuple, list)) else r))
    return values


def test_harness_lm_matches_lm_eval_hf_backend_per_request(tiny_lm, hf_backend, task_dir):
    ours, ref = _evaluate(HarnessLM(tiny_lm), task_dir), _evaluate(hf_backend, task_dir)
    a, b = _responses(ours), _responses(ref)
    assert len(a) == len(b) == sum(len(r["choices"]) for r in MC_ROWS) + len(TEXTS)
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4
    for task in ("tiny_mc", "tiny_ppl"):
        for name, value in ref["results"][task].items():
            if isinstance(value, float):
                assert ours["results"][task][name] == pytest.approx(value, rel=1e-4), (task, name)


def test_lm_eval_benchmark_metrics_records_and_directions(tiny_lm, hf_backend, task_dir):
    ref = _evaluate(hf_backend, task_dir)["results"]
    result = LmEval(tasks=["tiny_mc", "tiny_ppl"], include_path=task_dir).evaluate(tiny_lm, None)
    specs = {s.key: s for s in result.specs}
    assert set(result.metrics) == {"lm_eval/tiny_mc/acc", "lm_eval/tiny_mc/acc_norm", "lm_eval/tiny_ppl/word_perplexity"}
    assert result.metrics["lm_eval/tiny_mc/acc"] == pytest.approx(ref["tiny_mc"]["acc,none"], abs=1e-12)
    assert result.metrics["lm_eval/tiny_ppl/word_perplexity"] == pytest.approx(
        ref["tiny_ppl"]["word_perplexity,none"], rel=1e-4)
    assert specs["lm_eval/tiny_mc/acc"].aggregate == "mean" and specs["lm_eval/tiny_mc/acc"].direction == "higher"
    ppl = specs["lm_eval/tiny_ppl/word_perplexity"]
    assert ppl.aggregate == "none" and ppl.direction == "lower"  # weighted perplexity: not a mean of records
    mc = [r for r in result.records if r["task"] == "tiny_mc"]
    assert sorted(r["id"] for r in mc) == [f"tiny_mc/{i}" for i in range(len(MC_ROWS))]
    assert sum(r["acc"] for r in mc) / len(mc) == result.metrics["lm_eval/tiny_mc/acc"]


def test_lm_eval_benchmark_refuses_unknown_task(tiny_lm, task_dir):
    with pytest.raises(ConfigError, match="unknown lm-eval task.*no_such_task"):
        LmEval(tasks=["no_such_task"], include_path=task_dir).evaluate(tiny_lm, None)
    with pytest.raises(ConfigError, match="tasks is empty"):
        LmEval()


class _Echo:
    """A ScoringLM stub whose generations are fixed strings, to check stop handling."""

    name = "echo"

    def __init__(self, text: str):
        self.text, self.specs = text, []

    def generate(self, prompts, spec):
        self.specs.append(spec)
        return [[f"{p}|{self.text}"] for p in prompts]


def test_generate_until_cuts_at_the_first_stop_sequence_and_eos():
    from lm_eval.api.instance import Instance

    stub = _Echo("an answer\n\nQ: next<eos>tail")
    harness = HarnessLM(stub, eos="<eos>")
    reqs = [Instance("generate_until", {}, ("p1", {"until": ["\n\n"], "max_gen_toks": 7}), 0),
            Instance("generate_until", {}, ("p2", {"until": ["next"], "do_sample": True, "temperature": 0.5}), 1),
            Instance("generate_until", {}, ("p3", {"until": ["\n\n"], "max_gen_toks": 7}), 2),
            Instance("generate_until", {}, ("p4", {"until": ["zzz"]}), 3)]
    assert harness.generate_until(reqs) == ["p1|an answer", "p2|an answer\n\nQ: ", "p3|an answer",
                                            "p4|an answer\n\nQ: next"]
    first, second, third = stub.specs  # three distinct kwargs groups, p1 and p3 in one call
    assert (first.max_new_tokens, first.do_sample) == (7, False)
    assert (second.max_new_tokens, second.do_sample, second.temperature) == (256, True, 0.5)
    assert not third.do_sample


def test_generation_spec_refuses_unsupported_kwargs():
    with pytest.raises(ConfigError, match="top_k"):
        generation_spec({"until": ["\n"], "top_k": 5})
    spec, stop = generation_spec({"until": "\n", "max_new_tokens": 12})
    assert (spec.max_new_tokens, spec.do_sample, stop) == (12, False, ["\n"])


def _crows_requests(data_root, n=16) -> list[Request]:
    return crows_pairs.build_requests(crows_pairs.CrowsPairs(n=n).pairs(data_root))


def _compare(native, ported, requests, texts, tol=1e-4, per_token=False):
    """Same token counts and greedy flags; log-probs within ``tol`` nats (``per_token``: tol per
    scored token, as fp32 rounding of a real model's batched passes adds up along a sentence)."""
    a, b = native.loglikelihood(requests), ported.loglikelihood(requests)
    assert [x.n_tokens for x in a] == [y.n_tokens for y in b]
    assert [x.is_greedy for x in a] == [y.is_greedy for y in b]
    gap = max(abs(x.logprob - y.logprob) / (x.n_tokens if per_token else 1) for x, y in zip(a, b))
    assert gap < tol
    ra, rb = native.loglikelihood_rolling(texts), ported.loglikelihood_rolling(texts)
    assert [n for _, n in ra] == [n for _, n in rb]
    assert max(abs(x - y) / (n if per_token else 1) for (x, n), (y, _) in zip(ra, rb)) < tol
    return gap


def test_harness_scoring_lm_matches_native_engine(tiny_lm, hf_backend, data_root):
    ported = HarnessScoringLM(hf_backend, "tiny-random@lm_eval-hf")
    requests = _crows_requests(data_root) + [Request("The doctor said that", " she was late."),
                                             Request("Q: Who? A: ", "Nobody")]
    _compare(tiny_lm, ported, requests, TEXTS)
    greedy = GenerationSpec(max_new_tokens=5, do_sample=False)
    assert [len(g) for g in ported.generate(["Hello", "The"], greedy)] == [1, 1]
    with pytest.raises(ConfigError, match="no hidden states: SEAT, NC, INLP"):
        ported.hidden_states(["a"])
    with pytest.raises(ConfigError, match="max_length and stride to null"):
        ported.loglikelihood_rolling(TEXTS, max_length=64)


def test_harness_scoring_lm_scores_a_benchmark_like_the_native_engine(tiny_lm, hf_backend, data_root):
    bench = crows_pairs.CrowsPairs(n=30)
    ours = bench.evaluate(tiny_lm, data_root)
    theirs = bench.evaluate(HarnessScoringLM(hf_backend, "tiny-random@lm_eval-hf"), data_root)
    close = [math.isclose(a["score_more"], b["score_more"], abs_tol=1e-4) for a, b in zip(ours.records, theirs.records)]
    assert all(close) and ours.metrics == theirs.metrics


def test_backend_without_tokenizer_is_refused():
    class NoTok:
        pass

    with pytest.raises(ConfigError, match="no tokenizer"):
        HarnessScoringLM(NoTok(), "x")


@pytest.mark.slow
def test_smollm2_through_lm_eval_hf_backend_matches_native_engine(smollm2_loaded, data_root):
    from lm_eval.models.huggingface import HFLM

    from bench.engine.hf_lm import HFScoringLM

    native = HFScoringLM(smollm2_loaded)
    backend = HFLM(pretrained=smollm2_loaded.model, tokenizer=smollm2_loaded.tokenizer,
                   prefix_token_id=native.prefix_id, batch_size=16)
    gap = _compare(native, HarnessScoringLM(backend, "smollm2-135m@lm_eval-hf"), _crows_requests(data_root, 40), TEXTS,
                   per_token=True)
    print(f"smollm2-135m CrowS requests: max |native - lm-eval hf| / n_tokens = {gap:.2e} nats")


@pytest.mark.slow
def test_model_lm_eval_runs_a_job_like_the_native_engine(tmp_path, data_root):
    """``taxbench run model=lm_eval`` (lm-eval's HF backend on the converted smollm2 folder) scores
    CrowS-Pairs as the native engine does: same decisions, sums within 1e-3 nats."""
    import glob
    import json
    import os
    import subprocess
    import sys

    from bench.config import load_named

    folder = load_named("smollm2-135m").model.name_or_path
    env = {**os.environ, "WANDB_MODE": "disabled", "TAXBENCH_DATA": str(data_root.root)}
    common = ["only=[crows_pairs]", "benchmarks.crows_pairs.n=20", "logger=none"]
    runs = {"lm_eval": ["model=lm_eval", "model.name=smollm2-lmeval", "model.backend=hf", "model.batch_size=8",
                        f"model.args='pretrained={folder},prefix_token_id=0'"], "native": []}
    records = {}
    for name, extra in runs.items():
        out = tmp_path / name
        proc = subprocess.run([sys.executable, "-m", "bench.cli", "run", *extra, *common, f"paths.results_dir={out}"],
                              env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-2000:]
        [path] = glob.glob(str(out / "records" / "*.jsonl"))
        records[name] = [json.loads(line) for line in open(path)]
    for a, b in zip(records["lm_eval"], records["native"]):
        assert a["more_wins"] == b["more_wins"] and abs(a["score_more"] - b["score_more"]) < 1e-3
