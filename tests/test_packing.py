"""Packed training micro-batches (methods/finetune/batching.py) against right-padded rows: the same logits at
every real token, the same loss and gradients (NC3 included), on a Llama and on a Gemma 3 whose sliding
window is shorter than some items; the probe refuses models it cannot match."""
from __future__ import annotations

import copy

import pytest
import torch
from transformers import AttentionInterface

from methods.finetune import batching
from methods.finetune.batching import collate, packed_logits, packing_matches
from methods.finetune.loop import LMObjective
from methods.finetune.nc3 import NC3Regularizer
from tiny_models import tiny_gemma3


def models(tiny_loaded) -> dict:
    return {"llama": tiny_loaded.model, "gemma3 window 5": tiny_gemma3(tiny_loaded.tokenizer, window=5)}


def random_items(lengths: list[int], vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]


PAD = 0
BATCHES = [[4, 9], [7, 1, 12], [12, 3, 8, 12, 5, 2, 9, 6]]  # item lengths: batch sizes 2, 3 and 8


@pytest.mark.parametrize("lengths", BATCHES)
@pytest.mark.parametrize("name", ["llama", "gemma3 window 5"])
def test_packed_logits_equal_padded_rows(tiny_loaded, name, lengths):
    model = models(tiny_loaded)[name].eval()
    items = random_items(lengths, model.config.vocab_size, seed=len(lengths))
    with torch.no_grad():
        ids, mask = collate(items, PAD, model.device)
        padded = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[mask.bool()]  # [N, V]
        out, packed_ids, target_mask = packed_logits(model, items)
    assert torch.equal(packed_ids[0], ids[mask.bool()])
    assert out.logits.shape[:2] == (1, sum(lengths))
    torch.testing.assert_close(out.logits[0], padded, atol=1e-5, rtol=1e-5)
    starts = torch.tensor([0] + lengths[:-1]).cumsum(0)
    assert target_mask[0].nonzero().flatten().tolist() == [i for i in range(sum(lengths)) if i not in starts]
    assert packing_matches(model, items, PAD)


@pytest.mark.parametrize("lengths", BATCHES[1:])
def test_packed_loss_and_gradients_equal_padded_rows_with_nc3(tiny_loaded, lengths):
    """The LM loss plus NC3 (whose class means see each item's own next tokens only) and every gradient."""
    model = copy.deepcopy(tiny_loaded.model)  # output_hidden_states leaves transformers' capture hooks on a model
    items = random_items(lengths, model.config.vocab_size, seed=1)
    classes = sorted({t for x in items for t in x[1:]})[:6]
    results = {}
    model.train()
    for packing in (False, True):
        objective = LMObjective(PAD, NC3Regularizer(classes), weight=0.5, packing=packing)
        loss, parts = objective(model, items)
        loss.backward()
        results[packing] = (loss.detach(), parts, {n: p.grad.clone() for n, p in model.named_parameters()})
        model.zero_grad(set_to_none=True)
    model.eval()
    (loss0, parts0, grads0), (loss1, parts1, grads1) = results[False], results[True]
    assert parts0["nc3"] > 0
    torch.testing.assert_close(loss1, loss0, atol=1e-6, rtol=1e-6)
    assert parts1 == pytest.approx(parts0, abs=1e-6)
    for name, grad in grads0.items():
        torch.testing.assert_close(grads1[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_packed_attention_runs_in_fp32_under_bf16_autocast(tiny_loaded):
    """Under autocast the rotated query/key are fp32 and the value bf16: the attention casts all three."""
    model = tiny_loaded.model.eval()
    items = random_items([6, 11, 3], model.config.vocab_size, seed=2)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ids, mask = collate(items, PAD, model.device)
        padded = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[mask.bool()].float()
        out, _, _ = packed_logits(model, items)
    torch.testing.assert_close(out.logits[0].float(), padded, atol=0.05, rtol=0.05)


def test_the_first_call_decides_packing_and_keeps_it(tiny_loaded):
    model = tiny_loaded.model
    items = random_items([5, 8, 2], model.config.vocab_size, seed=3)
    objective = LMObjective(PAD)
    assert objective.packing is None
    with torch.no_grad():
        objective(model, items)
    assert objective.packing is True
    single = LMObjective(PAD)
    with torch.no_grad():
        single(model, items[:1])
    assert single.packing is False  # one item: nothing to pack


def test_the_probe_refuses_soft_capping_and_an_attention_that_leaks_across_items(tiny_loaded):
    items = random_items([5, 8, 4], tiny_loaded.model.config.vocab_size, seed=4)
    capped = tiny_gemma3(tiny_loaded.tokenizer, window=5, attn_logit_softcapping=50.0)
    assert not packing_matches(capped, items, PAD)

    def leaky(module, query, key, value, attention_mask, segments=(), **kwargs):  # causal over the whole row
        return batching.packed_attention(module, query, key, value, attention_mask, segments=[sum(segments)],
                                         **kwargs)

    AttentionInterface.register(batching.IMPLEMENTATION, leaky)
    try:
        assert not packing_matches(tiny_loaded.model, items, PAD)
    finally:
        AttentionInterface.register(batching.IMPLEMENTATION, batching.packed_attention)
    assert packing_matches(tiny_loaded.model, items, PAD)
