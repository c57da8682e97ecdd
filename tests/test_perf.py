"""bench.perf's reference runners: a transcription of bias-bench's ``_likelihood_score_generative``
must give the benchmark's ``bias_bench`` sentence scores and decisions on the tiny random model (and
differ from the ``clean`` protocol's, so the comparison can tell a start token in context from none);
the plain training loop must train as taxbench's fp32 loop does; the model-FLOP and MFU arithmetic, by hand."""
from __future__ import annotations

import math

import pytest
import torch

from bench.perf import (FedTokens, Shape, bias_bench_stereoset, mfu, model_shape, ours_stereoset, peak_flops,
                        sampling_flops, scoring_flops, sequence_flops, stereoset_agreement, stereoset_examples,
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


def _llama(tied: bool = True, **shape):
    from transformers import LlamaConfig, LlamaForCausalLM

    kwargs = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                  vocab_size=50, tie_word_embeddings=tied) | shape
    return LlamaForCausalLM(LlamaConfig(**kwargs))


def test_model_flops_by_hand():
    # per layer: q 8x8 + k 8x4 + v 8x4 + o 8x8 = 192, MLP 3 x 8x16 = 384, two norms 16: 592; x 2 + final norm 8
    shape = Shape(params=1192, layers=2, attn_width=8)
    assert model_shape(_llama()) == model_shape(_llama(tied=False)) == shape  # embedding and LM head left out
    assert sequence_flops(shape, 3) == 2 * 1192 * 3 + 2 * 2 * 8 * 3 * 4 == 7536
    assert scoring_flops(shape, [4, 2]) == 7536 + 2 * 1192 + 2 * 2 * 8 * 1 * 2 == 9984  # a request reads T - 1
    # one prompt of 2 tokens, k = 3, 4 new tokens: prefill 2 tokens, then 3 rows x steps at positions 3, 4, 5
    prefill = 2 * 1192 * 2 + 2 * 2 * 8 * 2 * 3
    steps = sum(2 * 1192 + 4 * 2 * 8 * pos for pos in (3, 4, 5))
    assert (prefill, steps) == (4960, 7920)
    assert sampling_flops(shape, [2], 3, 4) == 4960 + 3 * 7920 == 28720
    assert mfu(28720, 2.0, 1e4) == pytest.approx(1.436) and math.isnan(mfu(28720, 2.0, None))


def test_llama3_1b_shape_has_llama_3_2_1b_parameter_count():
    """conf/model/llama3-1b-shape.yaml: 1,235,814,400 parameters (Llama-3.2-1B's), 973,146,112 of them outside
    the tied embedding (16 x 60,821,504 + the final norm's 2,048); built on the meta device, no memory."""
    from bench.config import model_configs

    with torch.device("meta"):
        model = _llama(**model_configs()["llama3-1b-shape"].random_config)
    assert sum(p.numel() for p in model.parameters()) == 1_235_814_400
    assert model_shape(model) == Shape(973_146_112, 16, 2048)


def test_peak_flops_and_fed_tokens():
    cpu = torch.device("cpu")
    assert peak_flops(cpu, torch.bfloat16, None)[0] is None
    assert peak_flops(cpu, torch.bfloat16, 500.0)[0] == 5e14
    model = _llama().eval()
    fed = FedTokens(model)
    run = fed.counted("x", lambda ids: (model(ids), model(input_ids=ids[:, :2])))
    with torch.inference_mode():
        run(torch.zeros(3, 5, dtype=torch.long))
        model(torch.zeros(1, 4, dtype=torch.long))  # outside the engine: not counted, hook removed
    assert fed.last == {"x": 15 + 6} and not model._forward_pre_hooks
