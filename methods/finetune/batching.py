"""A micro-batch's two layouts: right-padded rows (``collate``) and one packed row (``pack``).

A right-padded micro-batch runs the model over B x (longest item) positions.  On the ``finetune``
control's WikiText-2 chunks (8 items of <= 64 tokens) about a fifth of them are padding: 394 real
tokens a step on average, where the padded rows hold about 500.  ``pack`` lays the items in one row
[1, N] (N = the sum of their lengths), each item's position ids restarting at 0, and the model's
attention runs ``packed_attention``: each item's queries attend to its own keys only (transformers'
SDPA attention, causal, on the item's split), so every real token's logits are the padded batch's up
to floating-point summation order, at N positions instead of B x width.

Used where the model's attention is a plain scaled softmax routed through transformers'
attention interface (``shared_prompt.supports``: no soft-capping or attention chunks) and a probe
on the first micro-batch (``packing_matches``: eval mode, fp32, no autocast) finds the packed
logits within ``PROBE_ATOL`` of the padded ones; the loop keeps padded rows otherwise (e.g. a
model that ignores position ids or builds its own mask).

On CPU the attention runs in fp32 also under bf16 autocast (the other layers stay bf16): torch's
bf16 CPU flash-attention backward took 160 ms of a 0.82 s step (smollm2-135m, 8 x <= 64 tokens,
profiled over 6 steps), and with fp32 attention the packed bf16 step took 0.66 against 0.83 s.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from bench.engine import shared_prompt
from bench.engine.attention import attention_implementation

IMPLEMENTATION = "taxbench_packed"  # attention implementation name; masks: none (the function masks)
PROBE_ATOL = 1e-3  # max |packed - padded| logit (fp32) for the probe to accept packing
PROBE_ITEMS = 4  # items of the first micro-batch that the probe runs both ways


def collate(items: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, T] and attention mask [B, T] (T: the longest item)."""
    width = max(len(x) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for row, x in enumerate(items):
        ids[row, :len(x)] = torch.tensor(x)
        mask[row, :len(x)] = 1
    return ids.to(device), mask.to(device)


def pack(items: Sequence[Sequence[int]], device: torch.device) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """ids [1, N], position ids [1, N] (0 at each item's first token) and the items' lengths."""
    ids = torch.tensor([t for x in items for t in x], dtype=torch.long, device=device)[None]
    positions = torch.cat([torch.arange(len(x)) for x in items]).to(device)[None]
    return ids, positions, [len(x) for x in items]


def packed_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                     attention_mask: torch.Tensor | None, sliding_window: int | None = None,
                     segments: Sequence[int] = (), **kwargs: Any) -> tuple[torch.Tensor, None]:
    """Attention of query [1, heads, N, D] to key/value [1, kv heads, N, D] within each segment (an item:
    ``segments`` are their lengths, summing to N), causal, and within a ``sliding_window`` (a query sees
    the ``sliding_window`` latest positions, itself included) where a segment is longer than it;
    returns [1, N, heads, D] as transformers' attention functions do."""
    if sum(segments) != query.shape[2]:
        raise ValueError(f"packed attention: segments sum to {sum(segments)}, the row has {query.shape[2]} positions")
    dtype = value.dtype  # under autocast the rotated query and key are fp32, the value bf16
    if query.device.type == "cpu":  # fp32 attention on CPU (module docstring)
        query, key, value = query.float(), key.float(), value.float()
    outs = []
    # split, not slicing: a slice's backward fills a zero tensor of the whole row for each segment
    for q, k, v in zip(*(x.split(list(segments), dim=2) for x in (query, key, value))):
        n, mask = q.shape[2], None
        if sliding_window is not None and n > sliding_window:
            i = torch.arange(n, device=query.device)
            mask = ((i[None, :] <= i[:, None]) & (i[None, :] > i[:, None] - sliding_window))[None, None]
        with torch.autocast(query.device.type, enabled=False):
            outs.append(sdpa_attention_forward(module, q, k, v, mask, is_causal=True, **kwargs)[0])
    return torch.cat(outs, 1).to(dtype), None


AttentionInterface.register(IMPLEMENTATION, packed_attention)


def packed_logits(model: Any, items: Sequence[Sequence[int]], **kwargs: Any) -> tuple[Any, torch.Tensor, torch.Tensor]:
    """The model's output on the packed items, their ids [1, N] and a mask [1, N] that is 0 at each item's
    first token, so ``mask[:, 1:]`` marks the targets whose context is their own item (``lm_loss``'s mask)."""
    ids, positions, lengths = pack(items, model.device)
    with attention_implementation(model, IMPLEMENTATION):
        out = model(input_ids=ids, position_ids=positions, segments=lengths, use_cache=False, **kwargs)
    return out, ids, (positions > 0).long()


def unpack(values: torch.Tensor, mask: torch.Tensor, rows: Sequence[int] | None = None) -> torch.Tensor:
    """Right-padded [R, T, *] from ``values`` [N, *] of a packed row's tokens: the real positions of ``mask``
    [B, T] (row by row, as ``pack`` lays them) get their values, padding gets zeros; ``rows``: those rows only."""
    n = values.shape[0]
    index = torch.full(mask.shape, n, dtype=torch.long, device=values.device)
    index[mask.bool()] = torch.arange(n, device=values.device)
    index = index if rows is None else index[list(rows)]
    return torch.cat([values, values.new_zeros(1, *values.shape[1:])])[index]


def packing_matches(model: Any, items: Sequence[Sequence[int]], pad_id: int) -> bool:
    """Whether the packed forward of the first PROBE_ITEMS ``items`` gives the right-padded forward's logits at
    every real token (within PROBE_ATOL; eval mode, no autocast, no gradient): the check before a loop packs."""
    items = items[:PROBE_ITEMS]
    if len(items) < 2 or not shared_prompt.supports(model):
        return False
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.autocast(model.device.type, enabled=False):
            ids, mask = collate(items, pad_id, model.device)
            padded = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            out, _, _ = packed_logits(model, items)
    finally:
        model.train(training)
    real = padded[mask.bool()]  # [N, V], the items' tokens in order
    return real.shape == out.logits[0].shape and bool((real - out.logits[0]).abs().max() <= PROBE_ATOL)
