"""Nucleus sampling and its pruned top-k (``bench.engine.nucleus``) against full sorts."""
from __future__ import annotations

import math

import pytest
import torch

from bench.engine.nucleus import NUCLEUS_GROWTH, NUCLEUS_K, nucleus, top_k


def reference_nucleus(scores: torch.Tensor, top_p: float, u: torch.Tensor) -> torch.Tensor:
    """Sort the whole vocabulary: keep tokens whose preceding mass is below top_p; inverse CDF."""
    probs = torch.softmax(scores, -1)
    p, order = probs.sort(-1, descending=True)
    p = torch.where(p.cumsum(-1) - p < top_p, p, torch.zeros_like(p))
    cdf = p.cumsum(-1)
    return order.gather(-1, torch.searchsorted(cdf, u[:, None] * cdf[:, -1:]))[:, 0]


def test_nucleus_by_hand_and_against_full_sort():
    scores = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.15), math.log(0.05)]])
    # top_p 0.7 keeps {0.5, 0.3}: u = 0.9 -> 0.72 of mass 0.8 falls in the second token
    assert nucleus(scores, 0.7, torch.tensor([0.9])).tolist() == [1]
    assert nucleus(scores, 0.7, torch.tensor([0.6])).tolist() == [0]  # 0.48 < 0.5
    assert nucleus(scores, 1.0, torch.tensor([0.99])).tolist() == [3]
    gen = torch.Generator().manual_seed(0)
    peaked = torch.randn(6, 5000, generator=gen) * 4
    flat = torch.randn(6, 5000, generator=gen) * 0.01  # nucleus of thousands of tokens (> NUCLEUS_K)
    scores = torch.cat([peaked, flat])
    u = torch.rand(12, generator=gen)
    assert (torch.softmax(flat, -1).sort(-1, descending=True)[0][:, :NUCLEUS_K].sum(-1) < 0.9).all()
    assert torch.equal(nucleus(scores, 0.9, u), reference_nucleus(scores, 0.9, u))


def test_nucleus_of_every_width_on_a_large_vocabulary():
    """Rows whose nuclei end in each pass (NUCLEUS_K, x NUCLEUS_GROWTH, ..., the whole vocabulary), on a
    vocabulary big enough for the pruned top-k to prune, and not a multiple of its block size."""
    gen = torch.Generator().manual_seed(1)
    vocab = 50_257
    rows = [torch.randn(vocab, generator=gen) * scale for scale in (8.0, 4.0, 2.0, 1.0, 0.5, 0.01)]
    scores = torch.stack(rows * 4)
    u = torch.rand(scores.shape[0], generator=gen)
    sizes = (torch.softmax(scores, -1).sort(-1, descending=True)[0].cumsum(-1) < 0.9).sum(-1) + 1
    assert min(sizes) <= NUCLEUS_K < NUCLEUS_K * NUCLEUS_GROWTH ** 2 < max(sizes), sizes
    assert torch.equal(nucleus(scores, 0.9, u), reference_nucleus(scores, 0.9, u))


@pytest.mark.parametrize("rows, vocab", [(1, 49_152), (5, 50_257), (3, 4096), (2, 17)])
@pytest.mark.parametrize("k", [1, 7, 256, 1024, 4096])
def test_top_k_values_equal_torch_topk(rows, vocab, k):
    gen = torch.Generator().manual_seed(rows * vocab + k)
    scores = torch.randn(rows, vocab, generator=gen)
    scores[:, vocab - 1] = 10.0  # the largest token lies in the tail outside the strided blocks (vocab % B)
    values, index = top_k(scores, k)
    expected = scores.topk(min(k, vocab), -1).values
    assert torch.equal(values, expected)
    assert torch.equal(scores.gather(1, index), values)
    assert all(len(set(r)) == len(r) for r in index.tolist())


def test_top_k_with_ties_and_clustered_maxima():
    """The k largest tokens all in a few blocks (a run of adjacent ids, then one stride apart), and
    tied values: the values still equal torch.topk's and each index points at its value, once."""
    vocab, k = 49_152, 256
    scores = torch.full((3, vocab), -5.0)
    scores[0, 1000:1000 + 2 * k] = torch.linspace(3.0, 1.0, 2 * k)  # adjacent ids
    scores[1, torch.arange(16) * (vocab // 16) + 7] = 9.0  # one block's 16 tokens (B = 16 at k = 256), tied
    scores[1, 5000:5000 + k] = 2.0  # more ties below them
    scores[2, ::97] = 1.0  # 507 tied tokens spread over the vocabulary
    values, index = top_k(scores, k)
    assert torch.equal(values, scores.topk(k, -1).values)
    assert torch.equal(scores.gather(1, index), values)
    assert all(len(set(r)) == k for r in index.tolist())
