"""Throughput of taxbench's scoring and sampling engines against lm-evaluation-harness.

    python -m bench.perf [--quick] [--only WORKLOAD ...] [--model smollm2-135m] [--dtype float32] [--batch-size B]
                         [--device {cpu,cuda}] [--peak-tflops TFLOPS] [--model-set KEY=YAML ...]

On one model object and identical requests it times (warm-up first, then the median of
``--runs`` interleaved runs):

* ``loglikelihood`` of lm-eval's TruthfulQA-MC2 requests (its 6-shot QA primer,
  ``"Q: ...\\nA:"`` context, ``" " + choice`` continuations; MC1 choices are a subset of
  MC2's, so MC1 is scored from the same answers) and CrowS-Pairs requests (empty
  context, each sentence a continuation), through lm-eval's ``HFLM.loglikelihood`` and
  through ``HFScoringLM.loglikelihood``;
* k-sample generation (k = 25, 20 new tokens, top-p 0.9) of RealToxicityPrompts prompts
  through ``HFScoringLM.generate`` and through a per-prompt ``model.generate`` loop (32
  prompts: one batch of smollm2-135m, as the toxicity benchmark runs them; 3 with --quick);
* fine-tuning (``training``): ``--train-steps`` optimiser steps of the ``finetune`` control's plan
  (WikiText-2 chunks, batch 8 x 64 tokens, AdamW 5e-5, clipping 1.0: the toy ``cpu`` budget) on a deep
  copy of the model, through taxbench's loop (``methods.finetune.loop.fit``) in fp32 and with bf16
  autocast (``method.train.dtype=bf16``), and through a plain PyTorch/HF loop (``model(..., labels=)
  .loss``, AdamW, the same schedule, clipping and batch order).  Reported: seconds per step, tokens/s
  (non-padding tokens), and max |delta loss| of each curve against the plain loop's;
* StereoSet intrasentence under ``protocol: bias_bench`` (a start-token pass for each
  sentence's first token, the sentence alone for the rest; ``bench.tasks.stereoset``)
  through ``build_requests`` -> ``HFScoringLM.loglikelihood`` -> ``score`` and through a
  transcription of bias-bench's runner (``_likelihood_score_generative``: one forward per
  sentence, batch size 1) and of its evaluator's decisions.  Reported: sentences/s, and the
  number of examples whose SS decision (stereotype > anti-stereotype) or LMS decisions
  (each of them > unrelated) differ between the two, with the max |delta sentence score|.

Both scorers get the same sentence-start token and window.  Throughput is requests/s and
request tokens/s (context + continuation tokens of every request, i.e. what a naive
engine would run), generated tokens/s (prompts x k x new tokens).  Most of MAXDIFF is
lm-eval's fp32 log-softmax (it drifts ~1e-5 nats per token from the exact value; ours uses
logsumexp).  The last lines are machine-readable: ``RATIO <figure> <reference time / ours>``,
``MAXDIFF <max |delta ll| over the TruthfulQA and CrowS requests>``, and for StereoSet
``SCOREDIFF stereoset_bias_bench <max |delta sentence score|>`` and ``DECISIONS_DIFFER
stereoset_bias_bench <examples with a different SS or LMS decision>``.  ``--only`` runs a
subset of the five workloads (truthfulqa, crows_pairs, sampling, training, stereoset); ``training`` adds
``RATIO training_fp32`` and ``RATIO training_bf16`` (plain loop s/step over taxbench's) and ``LOSSDIFF
training_{fp32,bf16} <max |delta loss|>``.

Model FLOP utilisation (scoring and sampling).  Each engine's line is followed by its achieved model FLOP/s and
MFU = achieved FLOP/s / peak FLOP/s, counted two ways:

* ``work``: the FLOPs of the requests' own work, what a naive engine runs, the same for both engines (so the
  two MFUs are in the ratio of the speeds).  A causal forward of T tokens costs ``2 N T + 2 L W T (T + 1)``
  FLOPs: N = non-embedding parameters (every weight but the input embedding and the LM head; the LM head is
  left out because the engines project it at different positions: lm-eval at every one, taxbench at the
  scored ones), each used in one multiply-add per token; L layers, W = query heads x head dim, and the query
  at position i takes ``4 W i`` FLOPs per layer for QK^T and AV against its i keys.  A scoring request reads
  T = context + continuation tokens minus the last.  Sampling: each prompt of P tokens (sentence-start token
  included) prefilled once, then k rows x (new tokens - 1) decoding steps, step j feeding one token at
  position P + j (``2 N + 4 L W (P + j)`` FLOPs).  An engine that shares work between requests (taxbench's
  prefix trees, one prefill per prompt) is credited with the FLOPs it skipped: this MFU can exceed what the
  chip did, even 100 %;
* ``fed``: ``2 N x`` the tokens the engine fed the model (``input_ids`` elements of every forward, padding
  included, counted by a pre-hook on the model): the weight products the chip ran, attention left out.

The peak is ``--peak-tflops``, else the datasheet's dense peak of the GPU for the model's dtype (H100 / H200:
989 TFLOP/s bf16 and fp16, 67 fp32; A100: 312 and 19.5; an 8192^3 bf16 matrix product reaches ~790 on an H200,
a practical ceiling for ``--peak-tflops``); the header says which peak was used, and with none
(a CPU, an unknown GPU) MFU is n/a.  Closing lines: ``MFU <workload> <engine> <work MFU> <fed MFU>`` (fractions,
or n/a).  ``--device``, ``--dtype``, ``--batch-size`` and ``--model-set`` override the model config's fields
(default: the config's own); scripts/gpu_perf.sh runs this on a GPU with ``--model llama3-1b-shape``.
Requires lm-eval (``pip install -e .[anchor]``).  Not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import copy
import ctypes
import gc
import logging
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from bench.engine.cpu_inference import reuse_freed_memory
from bench.data import DataRoot, read_csv, read_json, read_jsonl
from bench.engine.hf_lm import HFScoringLM
from bench.api.lm import GenerationSpec, Request
from bench.api.metrics import aggregate
from bench.config import load_named
from bench.store import cpu_name
from bench.tasks import stereoset
from bench.tasks.truthfulqa import PRIMER as QA_PRIMER  # lm-eval's doc_to_text primer, verbatim
from methods.finetune.config import TrainConfig
from methods.finetune.control import FineTune
from methods.finetune.batching import collate
from methods.finetune.loop import _batches, fit, schedule

SIZES = {  # (TruthfulQA questions, CrowS pairs, toxicity prompts, StereoSet examples); full: 32 prompts are
    "quick": (4, 30, 3, 30),  # one sampling batch of smollm2-135m
    "full": (24, 200, 32, 300),
}
TRAIN_STEPS = {"quick": 5, "full": 30}  # optimiser steps of the training workload
WORKLOADS = ("truthfulqa", "crows_pairs", "sampling", "training", "stereoset")
K_SAMPLES, NEW_TOKENS, TOP_P = 25, 20, 0.9


# ------------------------------------------------------------------------ requests
@dataclass
class Workload:
    name: str
    requests: list[tuple[str, str]]  # (context, continuation)
    docs: list[Any]
    metrics: Callable[[list[Any], list[float], list[tuple[str, str]]], dict[str, float]]


def truthfulqa(data: DataRoot, n: int) -> Workload:
    docs = read_json(data.path("truthfulqa/v1/mc_task.json"))[:n]
    requests = [(f"{QA_PRIMER}\n\nQ: {d['question']}\nA:", " " + choice) for d in docs for choice in d["mc2_targets"]]
    return Workload("truthfulqa_mc2", requests, docs, truthfulqa_metrics)


def truthfulqa_metrics(docs: list[dict], lls: list[float], requests: list[tuple[str, str]]) -> dict[str, float]:
    """lm-eval's MC1 accuracy (argmax over mc1 choices is the first) and MC2 (true mass)."""
    at = 0
    mc1, mc2 = [], []
    for d in docs:
        choices = list(d["mc2_targets"])
        ll = dict(zip(choices, lls[at:at + len(choices)]))
        at += len(choices)
        labels = np.array(list(d["mc2_targets"].values()))
        probs = np.exp(np.array([ll[c] for c in choices]))
        mc2.append(float(probs[labels == 1].sum() / probs.sum()))
        mc1.append(float(np.argmax([ll[c] for c in d["mc1_targets"]]) == 0))
    return {"mc1": float(np.mean(mc1)), "mc2": float(np.mean(mc2))}


def crows_pairs(data: DataRoot, n: int) -> Workload:
    rows = read_csv(data.path("bias_bench/crows/crows_pairs_anonymized.csv"), required=("sent_more", "sent_less"))[:n]
    requests = [("", r[key]) for r in rows for key in ("sent_more", "sent_less")]
    return Workload("crows_pairs", requests, rows, crows_metrics)


def crows_metrics(docs: list[dict], lls: list[float], requests: list[tuple[str, str]]) -> dict[str, float]:
    """lm-eval's crows_pairs_english pct_stereotype: share of pairs with ll(sent_more) > ll(sent_less)."""
    more, less = np.array(lls[0::2]), np.array(lls[1::2])
    return {"pct_stereotype": float(np.mean(more > less)), "likelihood_diff": float(np.mean(np.abs(more - less)))}


def toxicity_prompts(data: DataRoot, n: int) -> list[str]:
    rows = read_jsonl(data.path("realtoxicityprompts/decodingtrust_toxic.jsonl"))[:n]
    return [r["prompt"]["text"] for r in rows]


def stereoset_examples(data: DataRoot, n: int) -> list[stereoset.Example]:
    """``n`` intrasentence examples, stratified by domain as the benchmark samples them."""
    return stereoset.StereoSet(n=n).examples(data)


# ------------------------------------------------------------------------- engines
def lm_eval_scorer(lm: HFScoringLM) -> Callable[[list[tuple[str, str]]], list[float]]:
    """lm-eval's HFLM on the same model object, sentence-start token and window."""
    try:
        from lm_eval.api.instance import Instance
        from lm_eval.models.huggingface import HFLM
    except ImportError:
        sys.exit("bench.perf needs lm-evaluation-harness: pip install -e .[anchor]")
    ref = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, batch_size=lm.batch_size, max_length=lm.max_length,
               prefix_token_id=lm.prefix_id, add_bos_token=False)

    def score(requests: list[tuple[str, str]]) -> list[float]:
        instances = [Instance("loglikelihood", {}, req, i) for i, req in enumerate(requests)]
        return [ll for ll, _ in ref.loglikelihood(instances, disable_tqdm=True)]

    return score


def ours_scorer(lm: HFScoringLM) -> Callable[[list[tuple[str, str]]], list[float]]:
    return lambda requests: [r.logprob for r in lm.loglikelihood([Request(c, x) for c, x in requests])]


def ours_sampler(lm: HFScoringLM, spec: GenerationSpec) -> Callable[[list[str]], Any]:
    return lambda prompts: lm.generate(prompts, spec)


def hf_generate_loop(lm: HFScoringLM, spec: GenerationSpec) -> Callable[[list[str]], Any]:
    """One ``model.generate(do_sample, top_p, num_return_sequences=k)`` call per prompt."""
    def run(prompts: list[str]) -> list[list[str]]:
        out = []
        for i, prompt in enumerate(prompts):
            ids = torch.tensor([[lm.prefix_id] + lm.encode(prompt)], device=lm.device)
            torch.manual_seed(spec.seed + i)
            with torch.inference_mode():
                gen = lm.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                        top_p=spec.top_p, top_k=0, temperature=spec.temperature,
                                        num_return_sequences=spec.num_samples, max_new_tokens=spec.max_new_tokens,
                                        pad_token_id=lm.tokenizer.pad_token_id)
            out.append(lm.tokenizer.batch_decode(gen[:, ids.shape[1]:], skip_special_tokens=True))
        return out

    return run


def plain_training_loop(model: Any, items: list[list[int]], cfg: TrainConfig, seed: int, pad_id: int
                        ) -> list[float]:
    """A straightforward PyTorch/HF fine-tuning loop (the reference of the training workload): HF's own
    ``labels=`` loss, AdamW, ``fit``'s schedule, clipping and seeded batch order; the loss per step."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.steps(len(items))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, cfg.warmup_steps, total))
    batches = _batches(len(items), cfg.batch_size, seed)
    losses = []
    model.train()
    for _ in range(total):
        ids, mask = collate([items[i] for i in next(batches)], pad_id, model.device)
        loss = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100), use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def training_engines(lm: HFScoringLM, data: DataRoot, seed: int = 0) -> tuple[dict[str, Callable[[int], list[float]]],
                                                                                list[list[int]]]:
    """name -> (steps -> loss per step) for the plain loop and taxbench's loop in fp32 and bf16 autocast, each
    on a fresh deep copy of ``lm``'s model and the ``finetune`` control's training items; and those items."""
    plan = FineTune().plan(lm, data, TrainConfig(), seed)
    pad = lm.tokenizer.pad_token_id

    def ours(dtype: str) -> Callable[[int], list[float]]:
        return lambda n: fit(copy.deepcopy(lm.model), plan.objective, plan.items, TrainConfig(max_steps=n, dtype=dtype),
                             seed, desc=f"training {dtype}")["history"]["loss"]

    engines = {"plain": lambda n: plain_training_loop(copy.deepcopy(lm.model), plan.items, TrainConfig(max_steps=n),
                                                      seed, pad),
               "taxbench fp32": ours("fp32"), "taxbench bf16": ours("bf16")}
    return engines, plan.items


def ours_stereoset(lm: HFScoringLM) -> Callable[[list[stereoset.Example]], list[dict]]:
    """The benchmark's pipeline under ``protocol: bias_bench``: one ``loglikelihood`` call, then ``score``."""
    return lambda examples: stereoset.score(
        examples, lm.loglikelihood(stereoset.build_requests(examples, "bias_bench")), "bias_bench")


def bias_bench_stereoset(lm: HFScoringLM) -> Callable[[list[stereoset.Example]], list[dict]]:
    """bias-bench's ``StereoSetRunner._likelihood_score_generative`` (batch size 1, as it runs)
    and ``ScoreEvaluator.count``'s decisions, transcribed on the same model object: one forward
    of the start token alone gives the first token's distribution (softmax); then per sentence
    one forward of its tokens (``tokenizer.encode``, no special tokens, no start token),
    softmax, token i's probability read at position i - 1 with ``.item()``, score = 2 ** mean
    log2 p.  Records carry ``stereoset.score``'s fields.  Deviations: bias-bench's start token
    is GPT-2's ``<|endoftext|>``, here the model's sentence-start token (``lm.prefix_id``), as
    ours; ``torch.inference_mode`` instead of ``no_grad``."""
    def run(examples: list[stereoset.Example]) -> list[dict]:
        records = []
        with torch.inference_mode():
            initial = torch.softmax(lm.model(torch.tensor([[lm.prefix_id]], device=lm.device))[0], dim=-1)
            for e in examples:
                scores = []
                for sentence in (e.stereotype, e.anti_stereotype, e.unrelated):
                    tokens = lm.encode(sentence)
                    probs = [initial[0, 0, tokens[0]].item()]
                    output = torch.softmax(lm.model(torch.tensor([tokens], device=lm.device))[0], dim=-1)
                    probs += [output[0, i - 1, tokens[i]].item() for i in range(1, len(tokens))]
                    scores.append(float(np.power(2, np.sum([np.log2(p) for p in probs]) / len(probs))))
                pro, anti, unrelated = scores
                records.append({"id": e.id, "domain": e.domain, "target": e.target,
                                "stereo_wins": float(pro > anti),  # ScoreEvaluator.count: "pro", else "anti"
                                "lm_wins": 0.5 * (pro > unrelated) + 0.5 * (anti > unrelated),  # "related" / 2
                                "stereo": pro, "anti": anti, "unrelated": unrelated})
        return records

    return run


# ------------------------------------------------------------------------- measuring
class PeakMemory:
    """Peak resident memory (MiB) of a block: VmHWM after resetting it (Linux), else
    getrusage's lifetime peak; on CUDA also ``torch.cuda.max_memory_allocated``.  Before the
    reset, glibc's ``malloc_trim`` hands freed heap back to the system: the engine keeps freed
    memory in the heap (``reuse_freed_memory``), and without the trim every block after the
    first would read the heap an earlier block left, not its own peak."""

    def __init__(self, device: torch.device):
        self.device = device
        self.rss_mib = self.cuda_mib = float("nan")

    def __enter__(self) -> "PeakMemory":
        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        try:
            with open("/proc/self/status") as f:
                hwm = next(line for line in f if line.startswith("VmHWM:"))
            self.rss_mib = int(hwm.split()[1]) / 1024
        except (OSError, StopIteration):
            self.rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if self.device.type == "cuda":
            self.cuda_mib = torch.cuda.max_memory_allocated(self.device) / 2**20

    def __str__(self) -> str:
        cuda = f", cuda {self.cuda_mib:.0f} MiB" if self.device.type == "cuda" else ""
        return f"peak RSS {self.rss_mib:.0f} MiB{cuda}"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_pair(engines: dict[str, Callable[[Any], Any]], work: Any, warm: Any, runs: int,
               device: torch.device) -> dict[str, dict]:
    """Warm each engine on ``warm``, then ``runs`` interleaved timed runs on ``work``;
    per engine: median seconds, all seconds, the last output and peak memory."""
    out = {name: {"seconds": []} for name in engines}
    for fn in engines.values():
        fn(warm)
    for _ in range(runs):
        for name, fn in engines.items():
            with PeakMemory(device) as mem:
                sync(device)
                start = time.perf_counter()
                result = fn(work)
                sync(device)
                out[name]["seconds"].append(time.perf_counter() - start)
            out[name].update(result=result, memory=mem)
    for stats in out.values():
        stats["median"] = statistics.median(stats["seconds"])
    return out


def request_lengths(lm: HFScoringLM, requests: Sequence[tuple[str, str]]) -> list[int]:
    """Context + continuation tokens of each request (the sentence-start token of an empty context included)."""
    return [sum(map(len, lm.encode_pair(Request(*req)))) for req in requests]


# ------------------------------------------------------------------------- model FLOPs
DENSE_PEAK_TFLOPS = {  # datasheet dense peaks (TFLOP/s) of the SXM parts by chip and dtype; fp32 without TF32
    "H100": {torch.bfloat16: 989.0, torch.float16: 989.0, torch.float32: 67.0},
    "H200": {torch.bfloat16: 989.0, torch.float16: 989.0, torch.float32: 67.0},
    "A100": {torch.bfloat16: 312.0, torch.float16: 312.0, torch.float32: 19.5},
}


@dataclass(frozen=True)
class Shape:
    """What a forward pass costs (see the module docstring)."""
    params: int  # non-embedding parameters: all but the input embedding and the LM head
    layers: int
    attn_width: int  # query heads x head dim


def model_shape(model: Any) -> Shape:
    """``model``'s non-embedding parameters (tied weights counted once), layers and attention width."""
    cfg = model.config
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    untied_head = head.weight.numel() if head is not None and head.weight is not embedding else 0
    params = sum(p.numel() for p in model.parameters()) - embedding.numel() - untied_head
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return Shape(params, cfg.num_hidden_layers, cfg.num_attention_heads * head_dim)


def sequence_flops(shape: Shape, length: int) -> float:
    """FLOPs of one causal forward of ``length`` tokens: 2 N T + 2 L W T (T + 1)."""
    return 2.0 * shape.params * length + 2.0 * shape.layers * shape.attn_width * length * (length + 1)


def scoring_flops(shape: Shape, lengths: Sequence[int]) -> float:
    """FLOPs of the requests' work: each request of T tokens is one forward of its first T - 1."""
    return sum(sequence_flops(shape, n - 1) for n in lengths)


def sampling_flops(shape: Shape, prompt_lengths: Sequence[int], k: int, new_tokens: int) -> float:
    """FLOPs of sampling ``k`` continuations of ``new_tokens`` tokens from each prompt of P tokens: one prefill,
    then k x (new_tokens - 1) one-token steps, step j at position P + j: 2 N + 4 L W (P + j) FLOPs."""
    steps = new_tokens - 1
    total = 0.0
    for p in prompt_lengths:
        keys = steps * p + steps * (steps + 1) / 2  # sum of P + j over the steps
        decode = 2.0 * shape.params * steps + 4.0 * shape.layers * shape.attn_width * keys
        total += sequence_flops(shape, p) + k * decode
    return total


def peak_flops(device: torch.device, dtype: torch.dtype, tflops: float | None) -> tuple[float | None, str]:
    """(peak FLOP/s, where it comes from): ``tflops`` if given, else the GPU's datasheet dense peak for
    ``dtype`` (``DENSE_PEAK_TFLOPS``), else None."""
    if tflops:
        return tflops * 1e12, f"{tflops:g} TFLOP/s (--peak-tflops)"
    if device.type != "cuda":
        return None, "n/a (a CPU: give --peak-tflops)"
    name = torch.cuda.get_device_name(device)
    chip = next((c for c in DENSE_PEAK_TFLOPS if c in name and dtype in DENSE_PEAK_TFLOPS[c]), None)
    if chip is None:
        return None, f"n/a (no datasheet peak for {name} in {dtype}: give --peak-tflops)"
    peak = DENSE_PEAK_TFLOPS[chip][dtype]
    return peak * 1e12, f"{peak:g} TFLOP/s ({name}: {chip} datasheet dense {str(dtype).removeprefix('torch.')})"


def mfu(flops: float, seconds: float, peak: float | None) -> float:
    """Model FLOP utilisation, a fraction (nan without a peak)."""
    return flops / seconds / peak if peak else float("nan")


class FedTokens:
    """Counts the tokens fed to ``model`` (``input_ids`` elements of every forward, padding included) while
    an engine runs: ``counted(fn)`` wraps ``fn`` so that ``self.last[name]`` holds its last call's count."""

    def __init__(self, model: Any):
        self.model, self.count, self.last = model, 0, {}

    def _hook(self, _module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if isinstance(ids, torch.Tensor):
            self.count += ids.numel()

    def counted(self, name: str, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(work: Any) -> Any:
            self.count = 0
            handle = self.model.register_forward_pre_hook(self._hook, with_kwargs=True)
            try:
                return fn(work)
            finally:
                handle.remove()
                self.last[name] = self.count

        return run


def utilisation_line(work_flops: float, fed: int, seconds: float, shape: Shape, peak: float | None
                     ) -> tuple[str, tuple[float, float]]:
    """The printed line of achieved FLOP/s and MFU (work and fed) of one engine, and the two MFUs."""
    fed_flops = 2.0 * shape.params * fed
    work, fed_mfu = mfu(work_flops, seconds, peak), mfu(fed_flops, seconds, peak)
    line = (f"{'':13s}model FLOP/s: work {work_flops / seconds / 1e12:.4g} TFLOP/s (MFU {fraction(work, '.2%')}), "
            f"fed {fed} tokens {fed_flops / seconds / 1e12:.4g} TFLOP/s (MFU {fraction(fed_mfu, '.2%')})")
    return line, (work, fed_mfu)


def fraction(x: float, fmt: str = ".4f") -> str:
    return "n/a" if math.isnan(x) else format(x, fmt)


def report_scoring(lm: HFScoringLM, work: Workload, runs: int, peak: float | None = None
                   ) -> tuple[float, float, dict[str, tuple[float, float]]]:
    """Prints the table; returns (speed-up, max |delta ll|, {engine: (work MFU, fed MFU)})."""
    lengths = request_lengths(lm, work.requests)
    tokens, shape = sum(lengths), model_shape(lm.model)
    work_flops = scoring_flops(shape, lengths)
    fed = FedTokens(lm.model)
    engines = {"lm-eval": lm_eval_scorer(lm), "taxbench": ours_scorer(lm)}
    timings = timed_pair({name: fed.counted(name, fn) for name, fn in engines.items()},
                         work.requests, work.requests[:4], runs, lm.device)
    ref, ours = timings["lm-eval"], timings["taxbench"]
    diff = float(np.max(np.abs(np.array(ref["result"]) - np.array(ours["result"]))))
    print(f"\n{work.name}: {len(work.docs)} docs, {len(work.requests)} requests, {tokens} request tokens")
    mfus = {}
    for name, t in timings.items():
        metrics = work.metrics(work.docs, t["result"], work.requests)
        print(f"  {name:9s} {t['median']:8.2f} s (runs {', '.join(f'{s:.2f}' for s in t['seconds'])})  "
              f"{len(work.requests) / t['median']:8.2f} req/s  {tokens / t['median']:9.1f} tok/s  {t['memory']}  "
              + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
        line, mfus[name] = utilisation_line(work_flops, fed.last[name], t["median"], shape, peak)
        print(line)
    ratio = ref["median"] / ours["median"]
    print(f"  speed-up {ratio:.2f}x   max |delta log-likelihood| {diff:.2e}")
    return ratio, diff, mfus


def report_sampling(lm: HFScoringLM, prompts: list[str], runs: int, peak: float | None = None
                    ) -> tuple[float, dict[str, tuple[float, float]]]:
    """Prints the table; returns (speed-up, {engine: (work MFU, fed MFU)})."""
    spec = GenerationSpec(max_new_tokens=NEW_TOKENS, num_samples=K_SAMPLES, top_p=TOP_P, seed=0)
    fed, shape = FedTokens(lm.model), model_shape(lm.model)
    engines = {"hf-generate": hf_generate_loop(lm, spec), "taxbench": ours_sampler(lm, spec)}
    timings = timed_pair({name: fed.counted(name, fn) for name, fn in engines.items()},
                         prompts, prompts[:1], runs, lm.device)
    tokens = len(prompts) * K_SAMPLES * NEW_TOKENS
    flops = sampling_flops(shape, [1 + len(lm.encode(p)) for p in prompts], K_SAMPLES, NEW_TOKENS)
    print(f"\nsampling: {len(prompts)} prompts x k={K_SAMPLES} x {NEW_TOKENS} new tokens, top-p {TOP_P}")
    mfus = {}
    for name, t in timings.items():
        print(f"  {name:11s} {t['median']:8.2f} s (runs {', '.join(f'{s:.2f}' for s in t['seconds'])})  "
              f"{tokens / t['median']:9.1f} tok/s  {t['memory']}")
        line, mfus[name] = utilisation_line(flops, fed.last[name], t["median"], shape, peak)
        print(line)
    ratio = timings["hf-generate"]["median"] / timings["taxbench"]["median"]
    print(f"  speed-up {ratio:.2f}x")
    return ratio, mfus


def report_training(lm: HFScoringLM, data: DataRoot, steps: int) -> tuple[dict[str, float], dict[str, float]]:
    """Prints the table; returns ({dtype: plain loop seconds / taxbench's}, {dtype: max |delta loss| against the
    plain loop}) for taxbench's fp32 and bf16 loops, all over ``steps`` steps."""
    engines, items = training_engines(lm, data)
    timings = timed_pair(engines, steps, 1, 1, lm.device)
    batch = TrainConfig().batch_size
    tokens = batch * float(np.mean([len(x) for x in items]))  # expected non-padding tokens per step
    print(f"\ntraining: {steps} steps x batch {batch} x seq_len <= {TrainConfig().seq_len} ({len(items)} items, "
          f"{tokens:.0f} tokens/step expected)")
    plain = timings["plain"]
    ratios, lossdiffs = {}, {}
    for name, t in timings.items():
        per_step = t["median"] / steps
        diff = float(np.max(np.abs(np.array(t["result"]) - np.array(plain["result"]))))
        print(f"  {name:14s} {per_step:7.3f} s/step  {tokens / per_step:8.1f} tok/s  {t['memory']}  "
              f"loss {t['result'][0]:.4f} -> {t['result'][-1]:.4f}  max |delta loss| vs plain {diff:.2e}")
        if name != "plain":
            dtype = name.split()[-1]
            ratios[dtype], lossdiffs[dtype] = plain["median"] / t["median"], diff
    print("  speed-up " + ", ".join(f"{d} {r:.2f}x" for d, r in ratios.items()))
    return ratios, lossdiffs


def stereoset_agreement(ref: list[dict], ours: list[dict]) -> tuple[int, int, int, float]:
    """Examples whose SS decision differs, whose LMS decision differs, whose either differs, and
    the max |delta sentence score| over every sentence; the record lists must hold the same ids
    in the same order."""
    if [r["id"] for r in ref] != [r["id"] for r in ours]:
        raise ValueError("the two StereoSet runs scored different examples")
    ss = [a["stereo_wins"] != b["stereo_wins"] for a, b in zip(ref, ours)]
    lms = [a["lm_wins"] != b["lm_wins"] for a, b in zip(ref, ours)]
    diff = max(abs(a[k] - b[k]) for a, b in zip(ref, ours) for k in ("stereo", "anti", "unrelated"))
    return sum(ss), sum(lms), sum(x or y for x, y in zip(ss, lms)), diff


def report_stereoset(lm: HFScoringLM, examples: list[stereoset.Example], runs: int) -> tuple[float, int, float]:
    """Prints the table; returns (speed-up, examples with a different decision, max |delta score|)."""
    timings = timed_pair({"bias-bench": bias_bench_stereoset(lm), "taxbench": ours_stereoset(lm)},
                         examples, examples[:2], runs, lm.device)
    sentences = [s for e in examples for s in (e.stereotype, e.anti_stereotype, e.unrelated)]
    tokens = sum(len(lm.encode(s)) for s in sentences)
    specs = stereoset.metric_specs((), "bias_bench")  # overall SS, LMS, ICAT (term macro-averages)
    print(f"\nstereoset (protocol bias_bench): {len(examples)} examples, {len(sentences)} sentences, "
          f"{tokens} sentence tokens")
    for name, t in timings.items():
        metrics = {s.key.split("/")[1]: aggregate(s, t["result"]) for s in specs}
        print(f"  {name:10s} {t['median']:8.2f} s (runs {', '.join(f'{s:.2f}' for s in t['seconds'])})  "
              f"{len(sentences) / t['median']:8.2f} sent/s  {tokens / t['median']:9.1f} tok/s  {t['memory']}  "
              + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    ss, lms, differ, diff = stereoset_agreement(timings["bias-bench"]["result"], timings["taxbench"]["result"])
    ratio = timings["bias-bench"]["median"] / timings["taxbench"]["median"]
    print(f"  speed-up {ratio:.2f}x   examples with a different SS decision {ss}, LMS decision {lms}   "
          f"max |delta sentence score| {diff:.2e}")
    return ratio, differ, diff


def model_settings(parser: argparse.ArgumentParser, pairs: list[str]) -> dict[str, Any]:
    """``--model-set KEY=YAML`` pairs as model config overrides."""
    import yaml

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--model-set {pair!r}: expected KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.perf", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small request sets (a few minutes on a 2-core CPU)")
    parser.add_argument("--model", default="smollm2-135m", help="model config name (conf/model)")
    parser.add_argument("--dtype", default=None, help="float32, bfloat16 or float16 (default: the model config's)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the model config's")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="peak FLOP/s (in TFLOP/s) that MFU divides by (default: the GPU's datasheet dense peak "
                             "for the dtype; none on a CPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="sequences per forward (default: model config)")
    parser.add_argument("--model-set", action="append", default=[], metavar="KEY=YAML",
                        help="replace a model config field, e.g. random_config='{hidden_size: 64, ...}' (a smaller "
                             "shape of a random model; repeatable)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per engine (median reported)")
    parser.add_argument("--train-steps", type=int, default=None,
                        help=f"optimiser steps of the training workload (default {TRAIN_STEPS['full']}, "
                             f"{TRAIN_STEPS['quick']} with --quick)")
    parser.add_argument("--sizes", type=int, nargs=4, metavar=("TQA", "CROWS", "PROMPTS", "STEREOSET"), default=None,
                        help="TruthfulQA questions, CrowS pairs, toxicity prompts, StereoSet examples "
                             "(overrides --quick)")
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS),
                        help="run only these workloads (default: all five)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    n_tqa, n_crows, n_prompts, n_stereoset = args.sizes or SIZES["quick" if args.quick else "full"]
    given = {"dtype": args.dtype, "device": args.device, "batch_size": args.batch_size}
    overrides = {k: v for k, v in given.items() if v is not None} | model_settings(parser, args.model_set)
    loaded = load_named(args.model, **overrides)
    lm = HFScoringLM(loaded)
    data = DataRoot(download=False)
    gpu = f" ({torch.cuda.get_device_name(lm.device)})" if lm.device.type == "cuda" else ""
    print(f"model {loaded.identity} {loaded.config.dtype} on {lm.device}{gpu}, batch size {lm.batch_size}, max length "
          f"{lm.max_length}, torch {torch.__version__} with {torch.get_num_threads()} threads "
          f"on {cpu_name()} ({os.cpu_count()} CPUs) "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), freed memory reused: "
          f"{reuse_freed_memory() if lm.device.type == 'cpu' else 'n/a'}, {args.runs} runs")
    shape = model_shape(lm.model)
    peak, source = peak_flops(lm.device, next(lm.model.parameters()).dtype, args.peak_tflops)
    print(f"shape: {shape.params:,} non-embedding parameters, {shape.layers} layers, attention width "
          f"{shape.attn_width}; MFU peak: {source}")
    ratios, ll_diffs, closing, mfus = {}, [], [], {}
    if "truthfulqa" in args.only:
        ratios["truthfulqa_mc2"], diff, mfus["truthfulqa_mc2"] = report_scoring(lm, truthfulqa(data, n_tqa),
                                                                                args.runs, peak)
        ll_diffs.append(diff)
    if "crows_pairs" in args.only:
        ratios["crows_pairs"], diff, mfus["crows_pairs"] = report_scoring(lm, crows_pairs(data, n_crows), args.runs,
                                                                          peak)
        ll_diffs.append(diff)
    if "sampling" in args.only:
        ratios["sampling"], mfus["sampling"] = report_sampling(lm, toxicity_prompts(data, n_prompts), args.runs, peak)
    if "training" in args.only:
        steps = args.train_steps or TRAIN_STEPS["quick" if args.quick else "full"]
        speedups, lossdiffs = report_training(lm, data, steps)
        ratios.update({f"training_{d}": r for d, r in speedups.items()})
        closing += [f"LOSSDIFF training_{d} {v:.3e}" for d, v in lossdiffs.items()]
    if "stereoset" in args.only:
        ratios["stereoset_bias_bench"], differ, diff = report_stereoset(
            lm, stereoset_examples(data, n_stereoset), args.runs)
        closing += [f"SCOREDIFF stereoset_bias_bench {diff:.3e}", f"DECISIONS_DIFFER stereoset_bias_bench {differ}"]
    if ll_diffs:
        closing.insert(0, f"MAXDIFF {max(ll_diffs):.3e}")
    closing += [f"MFU {work} {engine} {fraction(w)} {fraction(f)}"
                for work, engines in mfus.items() for engine, (w, f) in engines.items()]
    print()
    for name, ratio in ratios.items():
        print(f"RATIO {name} {ratio:.3f}")
    print("\n".join(closing))


if __name__ == "__main__":
    main()
