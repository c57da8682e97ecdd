"""Top-p (nucleus) sampling by inverse CDF, and the exact top-k it searches with.

``nucleus(scores, top_p, uniforms)`` samples one token per row of ``scores`` [N, vocab] from the row's
nucleus: the most probable tokens, in descending order, whose preceding mass is below ``top_p``; token
i of the nucleus is chosen when ``uniform x nucleus mass`` falls in its slice of the nucleus CDF.  It
equals sorting the whole vocabulary (the test's reference) but sorts only the top ``NUCLEUS_K`` tokens of
each row, then x``NUCLEUS_GROWTH`` as many for the rows they do not cover.  Sampled rows have wide
nuclei: at smollm2-135m's toxicity sampling (top-p 0.9), nucleus sizes had a median of 100-230 tokens,
a 90th percentile of ~1,000 and a maximum of ~5,000 over 300-row steps.

``top_k(scores, k)`` is ``torch.topk`` (the same values, in the same descending order; tied values may
come with other indices) that scans most of each row once instead of k-selecting over it.  The vocabulary
is split into ``nb`` strided blocks of B tokens (block j: tokens j, j + nb, j + 2 nb, ...); the k
largest tokens of a row lie in the k blocks with the largest maxima (an element outside them is below k
block maxima, so below k other elements), so ``topk`` runs over the k blocks' B x k tokens only.  B is
the power of two nearest sqrt(vocab / k), which balances the two top-k passes (over nb block maxima and
over B x k tokens).  On a 2-core VM (2026-12-07, processor not recorded), with 300 rows of smollm2-135m's
sampling logits (49,152 tokens): top-256 in 18.7 against 24.0 ms, and a whole ``nucleus`` step in 46 against
72 ms (5 steps).
"""
from __future__ import annotations

import math

import torch

from bench.engine.cpu_inference import row_logsumexp

NUCLEUS_K = 256  # tokens first sorted per row for its top-p nucleus
NUCLEUS_GROWTH = 4  # factor by which the sorted tokens grow for the rows a pass does not cover


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest values of each row of ``scores`` [N, V], descending, and their indices: two
    [N, min(k, V)] tensors, the values equal to ``scores.topk(k, -1)``'s (strided-block pruning, above).
    The last V mod B tokens (outside every block) are always candidates."""
    N, V = scores.shape
    k = min(k, V)
    B = 1 << max(0, round(math.log2(math.sqrt(V / k))))
    blocks = V // B
    if B < 2 or k >= blocks:
        return scores.topk(k, -1)
    best = scores[:, :blocks * B].view(N, B, blocks).amax(1).topk(k, -1, sorted=False)[1]  # [N, k] block ids
    index = (best[:, None, :] + blocks * torch.arange(B, device=scores.device)[:, None]).view(N, B * k)
    if blocks * B < V:
        index = torch.cat([index, torch.arange(blocks * B, V, device=scores.device).expand(N, -1)], -1)
    top, at = scores.gather(1, index).topk(k, -1)
    return top, index.gather(1, at)


def nucleus(scores: torch.Tensor, top_p: float, uniforms: torch.Tensor) -> torch.Tensor:
    """One token per row of ``scores`` [N, vocab] (unnormalised log-probs) from its top-p nucleus, by
    inverse CDF at ``uniforms`` [N] in [0, 1) -> token ids [N]."""
    vocab = scores.shape[-1]
    lse, _ = row_logsumexp(scores)
    if top_p >= 1.0:
        cdf = (scores - lse).exp_().cumsum(-1)
        return torch.searchsorted(cdf, uniforms[:, None] * cdf[:, -1:]).clamp(max=vocab - 1)[:, 0]
    out = torch.empty(scores.shape[0], dtype=torch.long, device=scores.device)
    rows = torch.arange(scores.shape[0], device=scores.device)
    k = NUCLEUS_K
    while rows.numel():
        k = min(k, vocab)
        every = rows.numel() == scores.shape[0]  # no row copies on the first pass
        top, index = top_k(scores if every else scores[rows], k)
        probs = (top - (lse if every else lse[rows])).exp_()
        mass = probs.cumsum(-1)
        covered = (mass[:, -1] >= top_p) | (k == vocab)
        probs, mass, index, at = probs[covered], mass[covered], index[covered], rows[covered]
        cdf = probs.masked_fill_(mass - probs >= top_p, 0.0).cumsum(-1)
        pick = torch.searchsorted(cdf, uniforms[at, None] * cdf[:, -1:]).clamp(max=k - 1)
        out[at] = index.gather(-1, pick)[:, 0]
        rows = rows[~covered]
        k *= NUCLEUS_GROWTH
    return out
