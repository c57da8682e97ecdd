"""Parity numbers of bench/lm_eval_bridge.py on smollm2-135m (the issue-19 note):
A: a local TruthfulQA-MC1 lm-eval task (a seeded sample of N questions, no primer) through HarnessLM vs lm-eval's HF
backend on the same in-memory model (per-request log-likelihoods), and on Self-Debias through the lm_eval
benchmark; B: lm-eval's HF backend as a ScoringLM (HarnessScoringLM) vs the native engine on CrowS and StereoSet.
Usage: PYTHONPATH=. python scripts/lm_eval_parity.py 40
"""
import json, sys, time, tempfile
from pathlib import Path
import lm_eval
from lm_eval.models.huggingface import HFLM
from lm_eval.tasks import TaskManager
from bench.data import DataRoot
from bench.config import load_named
from bench.engine.hf_lm import HFScoringLM
from bench.lm_eval_bridge import HarnessLM, HarnessScoringLM
from bench.api import MethodContext
from bench.tasks import crows_pairs, stereoset, truthfulqa
from bench.tasks.lm_eval import LmEval
from methods.self_debias import SelfDebias
N = int(sys.argv[1])
data = DataRoot(download=False)
root = Path(tempfile.mkdtemp())
qs = truthfulqa.stratified_sample(truthfulqa.load_questions(data.path(truthfulqa.FILES["v1"])), N, 0)
(root / "tqa.jsonl").write_text("".join(json.dumps({"question": q.question, "choices": [c for c, _ in q.mc1], "label": 0}) + "\n" for q in qs))
(root / "tqa_mc1_local.yaml").write_text(f"""task: tqa_mc1_local
dataset_path: json
dataset_kwargs:
  data_files:
    test: {root / 'tqa.jsonl'}
test_split: test
output_type: multiple_choice
doc_to_text: "Q: {{{{question}}}}\\nA:"
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
loaded = load_named("smollm2-135m")
native = HFScoringLM(loaded)
hf = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, prefix_token_id=native.prefix_id, batch_size=16)
tm = TaskManager(include_path=str(root), include_defaults=False)
def run(model):
    t = time.time()
    out = lm_eval.simple_evaluate(model=model, tasks=["tqa_mc1_local"], bootstrap_iters=0, log_samples=True, task_manager=tm)
    ll = [float(r[0]) for s in sorted(out["samples"]["tqa_mc1_local"], key=lambda s: s["doc_id"]) for r in s["filtered_resps"]]
    return out["results"]["tqa_mc1_local"], ll, time.time() - t
r_hf, ll_hf, t_hf = run(hf)
r_ad, ll_ad, t_ad = run(HarnessLM(native))
print(f"A parity: {len(ll_hf)} requests, max |adapter - lm-eval hf| = {max(abs(a-b) for a,b in zip(ll_hf, ll_ad)):.2e} nats")
print(f"A lm-eval hf: acc={r_hf['acc,none']:.4f} acc_norm={r_hf['acc_norm,none']:.4f} ({t_hf:.1f}s); adapter: acc={r_ad['acc,none']:.4f} acc_norm={r_ad['acc_norm,none']:.4f} ({t_ad:.1f}s)")
ctx = MethodContext(data=data, cache_dir=Path("/tmp/eco/art"), seed=0, code_version="x")
deb = SelfDebias(bias_type="gender").prepare(load_named("smollm2-135m"), ctx).lm
t = time.time()
res = LmEval(tasks=["tqa_mc1_local"], include_path=str(root)).evaluate(deb, data)
print(f"A self_debias/gender via lm_eval benchmark: {res.metrics} n={res.n} ({time.time()-t:.1f}s)")
res0 = LmEval(tasks=["tqa_mc1_local"], include_path=str(root)).evaluate(native, data)
print(f"A none via lm_eval benchmark: {res0.metrics}")
ported = HarnessScoringLM(hf, "smollm2-135m@lm_eval-hf")
for name, bench in [("crows_pairs", crows_pairs.CrowsPairs(n=100)), ("stereoset", stereoset.StereoSet(n=60))]:
    t = time.time(); a = bench.evaluate(native, data); ta = time.time() - t
    t = time.time(); b = bench.evaluate(ported, data); tb = time.time() - t
    key = f"{name}/ss" if name == "stereoset" else f"{name}/stereotype_score"
    fields = ["score_more", "score_less"] if name == "crows_pairs" else ["stereo", "anti", "unrelated"]
    gap = max(abs(x[f] - y[f]) for x, y in zip(a.records, b.records) for f in fields)
    print(f"B {name} n={a.n}: native {key}={a.metrics[key]:.4f} ({ta:.1f}s), lm-eval hf {key}={b.metrics[key]:.4f} ({tb:.1f}s); all metrics equal: {a.metrics == b.metrics}; max |score gap| = {gap:.2e}")
