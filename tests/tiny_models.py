"""Random tiny models of real architectures for tests (no weights to download)."""
from __future__ import annotations

import torch


def tiny_gemma3(tokenizer, window: int, **config):
    """A random 3-layer Gemma 3 (two sliding-window layers of ``window`` tokens, one global layer, query
    pre-attention scaling, grouped key/value heads) for ``tokenizer``; ``config`` overrides fields."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    fields = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, query_pre_attn_scalar=12,
                  sliding_window=window, max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"], attn_implementation="sdpa")
    torch.manual_seed(0)
    return Gemma3ForCausalLM(Gemma3TextConfig(**{**fields, **config}))
