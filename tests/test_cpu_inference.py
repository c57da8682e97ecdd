"""CPU execution settings: the blocked LM head computes the plain projection, runs only inside
the context, keeps the head's hooks, and leaves the model and environment as they were; the
row-blocked logsumexp equals torch's, and the greedy check it feeds equals argmax == target."""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch
import torch.nn.functional as F

import bench.engine.cpu_inference as cpu
from bench.engine.hf_lm import HFScoringLM, target_logprobs
from bench.api.lm import GenerationSpec, Request


@pytest.mark.parametrize("shape", [(5, 16), (2, 3, 16)])
@pytest.mark.parametrize("bias", [False, True])
def test_blocked_linear_equals_linear(shape, bias):
    gen = torch.Generator().manual_seed(0)
    x, w = torch.randn(*shape, generator=gen), torch.randn(1000, 16, generator=gen)
    b = torch.randn(1000, generator=gen) if bias else None
    got = cpu.blocked_linear(x, w, b, block=64)  # 1000 = 15 blocks of 64 + 40
    assert got.shape == (*shape[:-1], 1000)
    torch.testing.assert_close(got, F.linear(x, w, b), rtol=1e-6, atol=1e-6)


def test_cpu_inference_blocks_the_head_only_when_asked_and_inside(tiny_loaded, monkeypatch):
    model = tiny_loaded.model
    head = model.get_output_embeddings()
    monkeypatch.setattr(cpu, "VOCAB_BLOCK", head.out_features // 3)
    calls = []
    plain_blocked = cpu.blocked_linear
    monkeypatch.setattr(cpu, "blocked_linear", lambda *a: calls.append(a[-1]) or plain_blocked(*a))
    ids = torch.tensor([[1, 5, 9, 2, 7]])
    hook = head.register_forward_pre_hook(lambda _m, args: (args[0] * 0.5,))
    try:
        with torch.inference_mode():
            plain = model(input_ids=ids).logits
            with cpu.cpu_inference(model, blocked_head=True):
                assert os.environ[cpu.FORCE_GQA] == "1"
                blocked = model(input_ids=ids).logits
            again = model(input_ids=ids).logits
            with cpu.cpu_inference(model):
                model(input_ids=ids)
    finally:
        hook.remove()
    assert calls == [head.out_features // 3]
    torch.testing.assert_close(blocked, plain, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(again, plain, rtol=0, atol=0)
    assert "forward" not in vars(head) and cpu.FORCE_GQA not in os.environ


def test_engine_results_do_not_depend_on_the_block(tiny_loaded, monkeypatch):
    lm = HFScoringLM(tiny_loaded)
    requests = [Request("The cat", " sat on the mat."), Request("", "Women are"), Request("A b c", " d")]
    spec = GenerationSpec(max_new_tokens=6, num_samples=3, top_p=0.9, seed=1)
    outputs = []
    for block in (10**9, 7):
        monkeypatch.setattr(cpu, "VOCAB_BLOCK", block)
        outputs.append(([r.logprob for r in lm.loglikelihood(requests)], lm.generate(["The weather", "I"], spec)))
    (ll_plain, gen_plain), (ll_blocked, gen_blocked) = outputs
    assert ll_blocked == pytest.approx(ll_plain, abs=1e-5)
    assert gen_blocked == gen_plain


@pytest.mark.parametrize("rows", [1, 7, 8, 21])  # fewer than, equal to and not a multiple of LSE_ROWS (8)
def test_row_logsumexp_equals_torch_logsumexp(rows):
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, 3000, generator=gen) * 6
    x[0, :] = -math.inf  # an all -inf row stays -inf, as torch's
    if rows > 1:
        x[1, 5] = math.inf
    lse, top = cpu.row_logsumexp(x)
    assert torch.equal(lse, torch.logsumexp(x, -1, keepdim=True))
    assert torch.equal(top, x.amax(-1, keepdim=True))


def test_target_logprobs_equal_log_softmax_and_argmax_with_ties():
    logits = torch.tensor([[1.0, 3.0, 3.0, -2.0], [0.5, 0.5, 0.1, 0.0], [2.0, -1.0, 0.0, 1.0]])
    row, target = torch.tensor([0, 0, 0, 1, 1, 2, 2]), torch.tensor([1, 2, 0, 0, 1, 0, 3])
    logprob, wrong = target_logprobs(logits, row, target)
    torch.testing.assert_close(logprob, torch.log_softmax(logits, -1)[row, target], rtol=0, atol=1e-6)
    assert wrong.tolist() == (logits.argmax(-1)[row] != target).tolist() == [False, True, True, False, True, False,
                                                                              True]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_reuse_freed_memory_is_on_once_set():
    assert cpu.reuse_freed_memory() is True
    assert cpu.reuse_freed_memory() is True
