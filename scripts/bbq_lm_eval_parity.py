"""BBQ parity with lm-evaluation-harness's ``bbq_multiple_choice`` on the local data.

For a seeded sample of questions (bench.tasks.bbq's stratified sample), lm-eval's own task
code (``lm_eval/tasks/bbq/utils.py``: ``process_docs``, ``doc_to_choice``,
``process_results_multiple_choice``; the yaml's ``doc_to_text`` template rendered with
jinja2 as lm-eval does; target delimiter " ") scores the questions with lm-eval's ``HFLM``
on the same model weights, and taxbench's BBQ scores them with ``HFScoringLM``.
Reported: max |loglik difference| over all requests, per-question agreement of the
prediction and of ``acc``, both accuracies, and agreement of the biased-answer indices on
every row of the 7 files (no model needed).  Exit status 1 when any check fails.

    PYTHONPATH=. python scripts/bbq_lm_eval_parity.py --n 200 [--model smollm2-135m] [--tol 1e-3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import datasets
import jinja2
import yaml
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks.bbq import utils as U

from bench.data import DataRoot
from bench.engine.hf_lm import HFScoringLM
from bench.config import load_named
from bench.tasks import bbq as B


def lm_eval_docs(data: DataRoot) -> dict[str, dict]:
    """Every row of the 7 files after lm-eval's ``process_docs``, by taxbench question id."""
    rows = [row for c in B.CATEGORIES for _, row in B.raw_rows(data.path(B.FILES[c]))]
    docs = U.process_docs(datasets.Dataset.from_list(rows))
    return {f"{d['category']}/{d['example_id']}": d for d in docs}


def doc_to_text_template() -> jinja2.Template:
    task_yaml = Path(U.__file__).with_name("bbq_multiple_choice.yaml").read_text()
    task_yaml = task_yaml.replace("!function ", "")  # the yaml's tags name functions; only doc_to_text is read here
    return jinja2.Template(yaml.safe_load(task_yaml)["doc_to_text"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200, help="questions (stratified sample of bench.tasks.bbq)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--tol", type=float, default=1e-3, help="largest allowed |loglik difference| (nats)")
    args = ap.parse_args(argv)

    data = DataRoot()
    docs = lm_eval_docs(data)
    every = B.BBQ().questions(data)
    biased_same = sum(tuple(U.doc_to_biased_answer(docs[q.id])) == q.biased for q in every)
    print(f"biased-answer indices equal to lm-eval's on {biased_same} / {len(every)} rows")

    bench = B.BBQ(n=args.n, seed=args.seed)
    questions = bench.questions(data)
    loaded = load_named(args.model)
    ours = HFScoringLM(loaded).loglikelihood(B.build_requests(questions))

    template = doc_to_text_template()
    instances, contexts_equal = [], 0
    for q in questions:
        doc = docs[q.id]
        ctx = template.render(**doc)
        contexts_equal += ctx == B.context(q) and U.doc_to_choice(doc) == B.choices(q)
        instances += [Instance("loglikelihood", doc, (ctx, " " + c), j) for j, c in enumerate(U.doc_to_choice(doc))]
    theirs = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=16).loglikelihood(instances)

    k = len(B.UNKNOWN_RESPONSES) + 2
    diff = max(abs(a.logprob - t[0]) for a, t in zip(ours, theirs))
    records = B.score(questions, ours)
    same_pred = same_acc = 0
    acc_theirs = 0.0
    for i, (q, r) in enumerate(zip(questions, records)):
        result = U.process_results_multiple_choice(docs[q.id], theirs[k * i:k * (i + 1)])
        lls = [t[0] for t in theirs[k * i:k * (i + 1)]]
        same_pred += B.choices(q)[max(range(k), key=lambda j: (lls[j], -j))] == r["answer"]
        same_acc += result["acc"] == r["correct"]
        acc_theirs += result["acc"]
    acc_ours = sum(r["correct"] for r in records)
    print(f"{len(questions)} questions x {k} choices, model {args.model}")
    print(f"prompt and choices identical: {contexts_equal} / {len(questions)}")
    print(f"max |loglik(taxbench) - loglik(lm-eval HFLM)| = {diff:.2e} nats over {len(ours)} requests")
    print(f"same prediction: {same_pred} / {len(questions)}; same acc: {same_acc} / {len(questions)}")
    print(f"acc: taxbench {acc_ours / len(questions):.4f}, lm-eval {acc_theirs / len(questions):.4f}")
    ok = (biased_same == len(every) and contexts_equal == len(questions) and diff <= args.tol
          and same_acc == len(questions))
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
