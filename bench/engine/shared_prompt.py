"""k continuations of one prompt decode against one copy of the prompt's keys and values.

The sampling engine decodes k rows per prompt (k samples or beams).  Copying the prompt's
cache to each row holds it k times: at the toxicity benchmark's batch (32 prompts x k=25 x
~43 prompt tokens + 20 new ones, smollm2-135m: 46 KB a token over its 30 layers) that is
2.3 GB, three times what a per-prompt ``generate`` loop holds.  ``SharedPromptLayer`` keeps
the prompts' keys and values once, [P, kv heads, prompt length, head dim], and each row's own
generated ones in a ``PreallocatedLayer`` buffer [P k, kv heads, room, head dim];
``shared_prompt_attention`` attends a row's queries to both parts under one softmax: the
prompt part as a matrix product of the k rows' queries (all query heads of a key/value
group) against their prompt's keys, so the prompt is read once per prompt instead of once
per row.  Scores, softmax and weighted sums are the same dot products as SDPA's, up to
floating-point summation order (tests/test_scoring_engine.py holds every step's logits equal
to the row-copy path's, fed the same tokens, for several prompt batches and k).

Used for models whose attention is a plain scaled softmax (no logit soft-capping, no attention
sinks or chunks), under ``shared_prompt(model)``, which routes the model's attention to
``IMPLEMENTATION`` for a decoding step.  Sliding-window layers (Gemma 3) qualify while the
padded prompt plus every new token fits the window, where the window masks nothing (the
engine checks; the attention raises otherwise); the engine falls back to per-row copies
otherwise.
"""
from __future__ import annotations

import contextlib

import torch
from transformers import AttentionInterface

from bench.engine.attention import attention_implementation
from bench.engine.cache_layers import PreallocatedLayer

IMPLEMENTATION = "taxbench_shared_prompt"  # attention implementation name; masks: none (the function masks)


class SharedPromptLayer(PreallocatedLayer):
    """One layer's cache for k rows per prompt: ``prompt_keys``/``prompt_values`` [P, kv heads, Lp, D] once,
    ``prompt_mask`` [P, Lp] (True: a real token, False: left padding), and the rows' generated keys/values
    ``keys``/``values`` [P k, kv heads, n, D], preallocated with ``room`` positions."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, k: int, room: int):
        p, heads, _, dim = keys.shape
        super().__init__(keys.new_empty(p * k, heads, 0, dim), values.new_empty(p * k, heads, 0, dim), room)
        self.prompt_keys, self.prompt_values, self.prompt_mask, self.k = keys, values, mask.bool(), k

    def get_seq_length(self) -> int:
        return self.prompt_keys.shape[-2] + self.keys.shape[-2]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Rows ``indices`` of the generated part, reordered in place; each row must stay with its prompt
        (beam origins do: row p k + j continues row p k + origin)."""
        if not torch.equal(indices // self.k, torch.arange(len(indices), device=indices.device) // self.k):
            raise ValueError("shared-prompt cache: a row cannot move to another prompt")
        super().batch_select_indices(indices)


def shared_prompt_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                            attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                            sliding_window: int | None = None, shared_cache=None, **kwargs) -> tuple[torch.Tensor, None]:
    """Attention of query [P k, heads, q, D] to the row's prompt (``shared_cache.layers[module.layer_idx]``)
    and to its own keys/values [P k, kv heads, n, D] (``key``, ``value``, the new q last: causal within
    them); returns [P k, q, heads, D] as transformers' attention functions do.  A ``sliding_window`` must
    hold the whole sequence (prompt + n positions)."""
    layer = shared_cache.layers[module.layer_idx]
    rows, heads, q_len, dim = query.shape
    p, kv_heads, prompt_len, _ = layer.prompt_keys.shape
    if sliding_window is not None and prompt_len + key.shape[-2] > sliding_window:
        raise ValueError(f"shared-prompt attention: {prompt_len} + {key.shape[-2]} positions exceed the "
                         f"{sliding_window}-token sliding window of layer {module.layer_idx}")
    k, group = rows // p, heads // kv_heads
    scale = dim ** -0.5 if scaling is None else scaling
    # the prompt part: the k rows' queries of one key/value head group as one [k group q, D] matrix
    q = query.view(p, k, kv_heads, group * q_len, dim).transpose(1, 2).reshape(p, kv_heads, k * group * q_len, dim)
    prompt_scores = (q @ layer.prompt_keys.transpose(-1, -2)) * scale  # [P, kv heads, k group q, Lp]
    prompt_scores = prompt_scores.masked_fill(~layer.prompt_mask[:, None, None, :], float("-inf"))
    prompt_scores = prompt_scores.view(p, kv_heads, k, group * q_len, prompt_len).transpose(1, 2)
    prompt_scores = prompt_scores.reshape(rows, kv_heads, group * q_len, prompt_len)
    own = query.view(rows, kv_heads, group * q_len, dim)
    own_scores = (own @ key.transpose(-1, -2)) * scale  # [P k, kv heads, group q, n]
    n = key.shape[-2]
    if q_len > 1:  # query i sees the own keys up to its position n - q_len + i
        later = torch.arange(n, device=key.device)[None, :] > torch.arange(n - q_len, n, device=key.device)[:, None]
        own_scores = own_scores.masked_fill(later.repeat(group, 1), float("-inf"))
    # in float32 for half-precision models, as transformers' eager attention
    weights = torch.softmax(torch.cat([prompt_scores, own_scores], -1), -1, dtype=torch.float32).to(query.dtype)
    to_prompt = weights[..., :prompt_len].reshape(p, k, kv_heads, group * q_len, prompt_len).transpose(1, 2)
    out = (to_prompt.reshape(p, kv_heads, k * group * q_len, prompt_len) @ layer.prompt_values)
    out = out.view(p, kv_heads, k, group * q_len, dim).transpose(1, 2).reshape(rows, kv_heads, group * q_len, dim)
    out = out + weights[..., prompt_len:] @ value
    return out.reshape(rows, heads, q_len, dim).transpose(1, 2).contiguous(), None


AttentionInterface.register(IMPLEMENTATION, shared_prompt_attention)


def supports(model: torch.nn.Module) -> bool:
    """Whether the model's attention is a plain scaled softmax that ``shared_prompt_attention`` reproduces
    (sliding windows aside: the caller keeps the decode within them)."""
    config = getattr(model.config, "text_config", None) or model.config
    plain = all(getattr(config, name, None) in (None, 0, 0.0, False) for name in
                ("attn_logit_softcapping", "attention_chunk_size"))
    return plain and model.config._attn_implementation in ("sdpa", "eager")


def shared_prompt(model: torch.nn.Module) -> contextlib.AbstractContextManager[None]:
    """The model's attention runs ``shared_prompt_attention`` inside the block (pass ``shared_cache=`` to the call)."""
    return attention_implementation(model, IMPLEMENTATION)
