"""bench.perf's reference runners: a transcription of bias-bench's ``_likelihood_score_generative``
must give the benchmark's ``bias_bench`` sentence scores and decisions on the tiny random model (and
differ from the ``clean`` protocol's, so the comparison can tell a start token in context from none);
the plain training loop must train as taxbench's fp32 loop does."""
from __future__ import annotations

import math

import pytest
import torch

from bench.perf import (bias_bench_stereoset, ours_stereoset, stereoset_agreement, stereoset_examples,
                        training_engines)
from methods.finetune.config import TrainConfig
from bench.tasks import stereoset

KEYS = ("stereo", "anti", "unrelated")


def test_bias_bench_runner_matches_benchmark_pipeline(tiny_lm, data_root):
    examples = stereoset_examples(data_root, 8)
    ref, ours = bias_bench_stereoset(tiny_lm)(examples), ours_stereoset(tiny_lm)(examples)
    assert [r["id"] for r in ref] == [e.id for e in examples]
    for a, b in zip(ref, ours):
        for k in KEYS:  # geometric-mean probabilities of a random model are ~1/vocab: compare relatively
            assert a[k] == pytest.approx(b[k], rel=1e-5, abs=0)
        assert (a["stereo_wins"], a["lm_wins"]) == (b["stereo_wins"], b["lm_wins"])
    ss, lms, differ, diff = stereoset_agreement(ref, ours)
    assert (ss, lms, differ) == (0, 0, 0) and diff < 1e-5 * max(r[k] for r in ref for k in KEYS)

    # the clean protocol (start token in context, nats per token) is a different score: exp of it differs
    clean = stereoset.score(examples, tiny_lm.loglikelihood(stereoset.build_requests(examples, "clean")), "clean")
    assert any(math.exp(c[k]) != pytest.approx(a[k], rel=1e-3) for a, c in zip(ref, clean) for k in KEYS)


def test_stereoset_agreement_counts_flipped_decisions():
    base = {"stereo": 0.3, "anti": 0.2, "unrelated": 0.1, "stereo_wins": 1.0, "lm_wins": 1.0}
    ref = [{"id": "1", **base}, {"id": "2", **base}, {"id": "3", **base}]
    ours = [{"id": "1", **base, "stereo": 0.25},  # same decisions, score moved by 0.05
            {"id": "2", **base, "stereo_wins": 0.0, "lm_wins": 0.5},  # both decisions flipped
            {"id": "3", **base, "lm_wins": 0.5}]
    ss, lms, differ, diff = stereoset_agreement(ref, ours)
    assert (ss, lms, differ) == (1, 2, 2) and diff == pytest.approx(0.05)
    with pytest.raises(ValueError, match="different examples"):
        stereoset_agreement(ref, ours[::-1])


def test_plain_training_loop_is_taxbenchs_fp32_loop_step_for_step(tiny_lm, data_root):
    """The training workload's reference: HF's labels= loss, AdamW and fit's schedule, clipping and batch order
    give fit's fp32 loss curve (so its speed ratio compares the same work); bf16 autocast trains too."""
    engines, items = training_engines(tiny_lm, data_root)
    assert items and all(1 < len(x) <= TrainConfig().seq_len for x in items)
    plain, ours, bf16 = (engines[k](4) for k in ("plain", "taxbench fp32", "taxbench bf16"))
    assert len(plain) == len(ours) == len(bf16) == 4
    assert plain == pytest.approx(ours, abs=1e-5)
    assert plain[0] == pytest.approx(bf16[0], abs=0.05) and plain != bf16  # autocast runs, loss close
    before = {k: v.clone() for k, v in tiny_lm.model.state_dict().items()}
    engines["plain"](2)
    assert all(torch.equal(v, tiny_lm.model.state_dict()[k]) for k, v in before.items())  # trains a copy
