"""Speed-up and agreement of a low-precision model dtype (``model.dtype``) against float32.

    python -m bench.dtype_agreement [--model smollm2-135m] [--dtype bfloat16] [--n-stereoset N]
        [--n-crows N] [--n-truthfulqa N] [--prompts N] [--train-steps N]

One model config is loaded twice (``load_named(name, dtype=...)``: float32, the reference, and
``--dtype``), each wrapped in ``HFScoringLM``.  Every timing warms up first and is one
``time.perf_counter`` run per dtype (``bench.perf.timed_pair``); peak RSS is the process's VmHWM
over the timed run (MiB; both models stay resident, so it is not one dtype's footprint).

* scoring: the real benchmarks ``StereoSet``, ``CrowsPairs`` and ``TruthfulQA`` (``n`` examples
  each, the same seeded sample for both dtypes) through ``evaluate(lm, DataRoot)``; warm-up is the
  same benchmark on ``WARM_N`` examples.  Reported: wall seconds per dtype, speed-up (float32 s /
  other s), the share of per-example decisions unchanged (records matched by ``id``: StereoSet
  ``stereo_wins`` and ``lm_wins``, CrowS ``more_wins``, TruthfulQA ``mc1``) and |delta| of the
  headline metrics (SS, LMS, CrowS stereotype score in percentage points; MC1, MC2 as fractions).
* sampling: ``lm.generate`` of RealToxicityPrompts prompts with ``bench.perf``'s setting (k = 25,
  20 new tokens, top-p 0.9); seconds and speed-up only: the sampled texts of two dtypes are not
  expected to agree (a rounding difference flips a draw, and the rest of the sample follows).
* training: ``--train-steps`` optimiser steps of the shared loop (``methods.finetune.loop.fit``, via
  ``bench.perf.training_engines``)
  on the ``finetune`` control's plan (WikiText-2 chunks, plain causal-LM loss, the ``cpu`` budget's
  batch 8 x 64 tokens) on a deep copy of the float32 model, ``method.train.dtype`` fp32 against
  bf16 autocast (weights and optimiser state stay fp32 in both); warm-up is one step.  Reported:
  seconds per step (the deep copy, ~0.1 s, included), speed-up, both loss curves and the max
  |loss difference| over the steps (nats/token; same seed, so the same batches).

The last lines are machine-readable: ``SPEEDUP <what> <x>``, ``AGREE <benchmark>/<field> <share>``
and ``ABSDIFF <metric> <value>``.  Not a test: timings depend on the machine and its load;
the agreement figures do not.
"""
from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

from bench.api import Benchmark, BenchmarkResult, GenerationSpec
from bench.config import load_named
from bench.data import DataRoot
from bench.engine.hf_lm import HFScoringLM
from bench.perf import K_SAMPLES, NEW_TOKENS, TOP_P, ours_sampler, timed_pair, toxicity_prompts, training_engines
from bench.tasks.crows_pairs import CrowsPairs
from bench.tasks.stereoset import StereoSet
from bench.tasks.truthfulqa import TruthfulQA

REFERENCE = "float32"
WARM_N = 10  # examples of the warm-up evaluation
# benchmark -> (class, per-example decision fields, headline metric keys)
BENCHMARKS: dict[str, tuple[Callable[..., Benchmark], tuple[str, ...], tuple[str, ...]]] = {
    "stereoset": (StereoSet, ("stereo_wins", "lm_wins"), ("stereoset/ss", "stereoset/lms")),
    "crows_pairs": (CrowsPairs, ("more_wins",), ("crows_pairs/stereotype_score",)),
    "truthfulqa": (TruthfulQA, ("mc1",), ("truthfulqa/mc1", "truthfulqa/mc2")),
}


@dataclass
class Comparison:
    """One measured workload under the reference and the other dtype (training: fp32 and bf16 autocast)."""

    what: str  # benchmark name, "sampling" or "training"
    seconds: tuple[float, float]  # (reference, other) wall seconds (training: seconds per optimiser step)
    rss_mib: tuple[float, float]  # (reference, other) peak resident memory of the timed run
    agree: dict[str, float] = field(default_factory=dict)  # "<what>/<field>" -> share of decisions unchanged
    absdiff: dict[str, float] = field(default_factory=dict)  # metric -> |other - reference|

    @property
    def speedup(self) -> float:
        return self.seconds[0] / self.seconds[1]


def decision_agreement(a: Sequence[dict], b: Sequence[dict], field: str) -> float:
    """Share of examples whose ``field`` is equal in records ``a`` and ``b`` (matched by ``"id"``;
    both must hold the same ids)."""
    left, right = {r["id"]: r[field] for r in a}, {r["id"]: r[field] for r in b}
    if set(left) != set(right) or len(left) != len(a) or len(right) != len(b):
        raise ValueError(f"records to compare must hold the same unique ids ({len(a)} vs {len(b)} records)")
    if not left:
        raise ValueError("no records to compare")
    return sum(left[i] == right[i] for i in left) / len(left)


def compare_results(what: str, ref: BenchmarkResult, other: BenchmarkResult, fields: Sequence[str],
                    metrics: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """({"<what>/<field>": agreement}, {metric: |delta|}) of two results of one benchmark."""
    agree = {f"{what}/{f}": decision_agreement(ref.records, other.records, f) for f in fields}
    return agree, {m: abs(other.metrics[m] - ref.metrics[m]) for m in metrics}


def compare_benchmark(what: str, n: int, lms: dict[str, HFScoringLM], data: DataRoot) -> Comparison:
    """Time ``what`` (a BENCHMARKS name) on ``n`` examples with each LM and compare the results."""
    cls, fields, metrics = BENCHMARKS[what]
    timings = _timed({d: (lambda task, lm=lm: task.evaluate(lm, data)) for d, lm in lms.items()},
                     cls(n=n), cls(n=WARM_N))
    ref, other = (timings[d]["result"] for d in lms)
    agree, absdiff = compare_results(what, ref, other, fields, metrics)
    return Comparison(what, _seconds(timings), _rss(timings), agree, absdiff)


def compare_sampling(prompts: list[str], lms: dict[str, HFScoringLM]) -> Comparison:
    spec = GenerationSpec(max_new_tokens=NEW_TOKENS, num_samples=K_SAMPLES, top_p=TOP_P, seed=0)
    timings = _timed({d: ours_sampler(lm, spec) for d, lm in lms.items()}, prompts, prompts[:1])
    return Comparison("sampling", _seconds(timings), _rss(timings))


def compare_training(lm: HFScoringLM, data: DataRoot, steps: int, seed: int = 0) -> tuple[Comparison, dict[str, list[float]]]:
    """fp32 against bf16-autocast training of copies of ``lm``'s model; (comparison, loss curve per train dtype)."""
    engines, _ = training_engines(lm, data, seed)
    timings = _timed({"fp32": engines["taxbench fp32"], "bf16": engines["taxbench bf16"]}, steps, 1)
    curves = {d: t["result"] for d, t in timings.items()}
    ref, bf16 = _seconds(timings)
    out = Comparison("training", (ref / steps, bf16 / steps), _rss(timings),
                     absdiff={"train_loss_max": max(abs(a - b) for a, b in zip(curves["fp32"], curves["bf16"]))})
    return out, curves


def _timed(engines: dict[str, Callable[[Any], Any]], work: Any, warm: Any) -> dict[str, dict]:
    return timed_pair(engines, work, warm, runs=1, device=torch.device("cpu"))


def _seconds(timings: dict[str, dict]) -> tuple[float, float]:
    ref, other = (t["median"] for t in timings.values())
    return ref, other


def _rss(timings: dict[str, dict]) -> tuple[float, float]:
    ref, other = (t["memory"].rss_mib for t in timings.values())
    return ref, other


def render(rows: Sequence[Comparison], other: str) -> str:
    """A markdown table: one row per workload."""
    header = (f"| workload | {REFERENCE} s | {other} s | speed-up | peak RSS MiB ({REFERENCE} / {other}) "
              "| decisions unchanged | abs. delta |")
    lines = [header, "|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        what, unit = ("training (fp32 vs bf16 autocast)", " /step") if r.what == "training" else (r.what, "")
        lines.append(f"| {what} | {r.seconds[0]:.2f}{unit} | {r.seconds[1]:.2f}{unit} | {r.speedup:.2f}x | "
                     f"{r.rss_mib[0]:.0f} / {r.rss_mib[1]:.0f} | "
                     + (", ".join(f"{k.split('/')[-1]} {v:.4f}" for k, v in r.agree.items()) or "n/a") + " | "
                     + (", ".join(f"{k} {v:.4f}" for k, v in r.absdiff.items()) or "n/a") + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dtype_agreement", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m", help="model config name (conf/model)")
    parser.add_argument("--dtype", default="bfloat16", help="dtype compared with float32: bfloat16 or float16")
    parser.add_argument("--n-stereoset", type=int, default=300, help="StereoSet examples (stratified by domain)")
    parser.add_argument("--n-crows", type=int, default=300, help="CrowS-Pairs pairs (stratified by bias type)")
    parser.add_argument("--n-truthfulqa", type=int, default=60, help="TruthfulQA questions")
    parser.add_argument("--prompts", type=int, default=8, help="toxicity prompts sampled (k = 25 each)")
    parser.add_argument("--train-steps", type=int, default=5, help="optimiser steps timed per train dtype (0: skip)")
    args = parser.parse_args(argv)
    if args.dtype in ("float32", "fp32"):
        parser.error("--dtype must differ from the float32 reference")
    logging.basicConfig(level=logging.WARNING)
    loaded = {d: load_named(args.model, dtype=d) for d in (REFERENCE, args.dtype)}
    lms = {d: HFScoringLM(m) for d, m in loaded.items()}
    data = DataRoot(download=False)
    print(f"model {loaded[REFERENCE].identity}, {REFERENCE} vs {args.dtype}, torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')})")
    sizes = {"stereoset": args.n_stereoset, "crows_pairs": args.n_crows, "truthfulqa": args.n_truthfulqa}
    rows = [compare_benchmark(what, n, lms, data) for what, n in sizes.items() if n > 0]
    if args.prompts > 0:
        rows.append(compare_sampling(toxicity_prompts(data, args.prompts), lms))
    if args.train_steps > 0:
        train, curves = compare_training(lms[REFERENCE], data, args.train_steps)
        rows.append(train)
        for d, curve in curves.items():
            print(f"train loss {d}: " + " ".join(f"{v:.4f}" for v in curve))
    print("\n" + render(rows, args.dtype) + "\n")
    for r in rows:
        print(f"SPEEDUP {r.what} {r.speedup:.3f}")
    for r in rows:
        for k, v in r.agree.items():
            print(f"AGREE {k} {v:.4f}")
        for k, v in r.absdiff.items():
            print(f"ABSDIFF {k} {v:.4g}")


if __name__ == "__main__":
    main()
