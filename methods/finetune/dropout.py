"""Dropout debiasing (Webster et al. 2020): continued causal-LM training on the CDA corpus (no
augmentation) with dropout at ``p_*`` (0.15 each, the paper's rate) on every architecture.

The Llama (SmolLM2) and Gemma 3 configs have no residual or embedding dropout fields (only
``attention_dropout``), so raising config fields would leave them out.  Instead, while training
only (``hooks``, a context manager ``finetune`` enters around ``fit``):
- embedding: dropout on the input-embedding output (after Gemma's embedding scale);
- residual: dropout on each sublayer's output just before it is added to the residual stream,
  as GPT-2's ``resid_pdrop``: Llama-style layers ``self_attn`` and ``mlp`` outputs; layers with
  post-sublayer norms (Gemma 2/3) the ``post_attention_layernorm`` and
  ``post_feedforward_layernorm`` outputs;
- attention: each attention module's ``attention_dropout`` rate (applied to the attention
  probabilities in training mode by transformers' attention functions) is set to ``p_attention``.
All are no-ops in eval mode, and on exit the hooks are removed and the attention rates restored,
so the saved checkpoint has the base model's modules and config.  The dropout masks draw from
torch's global generator, seeded by ``fit``.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator

import torch
import torch.nn.functional as F

from bench.errors import ConfigError
from methods.finetune.lm import LMFineTuning


def _dropout_output(p: float):
    """Forward hook: dropout (training mode only) on a module's output or its first element."""
    def hook(module: torch.nn.Module, _inputs: Any, output: Any) -> Any:
        if isinstance(output, tuple):
            return (F.dropout(output[0], p, module.training), *output[1:])
        return F.dropout(output, p, module.training)
    return hook


def residual_branches(layer: torch.nn.Module) -> list[torch.nn.Module]:
    """The modules whose outputs are added to the residual stream in ``layer``."""
    if hasattr(layer, "post_feedforward_layernorm"):  # Gemma 2/3: norm after each sublayer
        return [layer.post_attention_layernorm, layer.post_feedforward_layernorm]
    if hasattr(layer, "self_attn") and hasattr(layer, "mlp"):  # Llama-style pre-norm layer
        return [layer.self_attn, layer.mlp]
    raise ConfigError(f"method=dropout: no residual branches found in {type(layer).__name__}")


@contextlib.contextmanager
def training_dropout(model: torch.nn.Module, p_embedding: float, p_residual: float,
                     p_attention: float) -> Iterator[None]:
    """Dropout hooks and attention rates on ``model`` for the duration of the block."""
    layers = model.get_decoder().layers
    attention = [layer.self_attn for layer in layers]
    if not all(hasattr(a, "attention_dropout") for a in attention):
        raise ConfigError(f"method=dropout: {type(attention[0]).__name__} has no attention_dropout rate")
    handles = [model.get_input_embeddings().register_forward_hook(_dropout_output(p_embedding))]
    handles += [m.register_forward_hook(_dropout_output(p_residual)) for layer in layers
                for m in residual_branches(layer)]
    saved = [a.attention_dropout for a in attention]
    for a in attention:
        a.attention_dropout = p_attention
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for a, rate in zip(attention, saved):
            a.attention_dropout = rate


@dataclass
class Dropout(LMFineTuning):
    """Continued training with embedding, residual and attention dropout."""

    name_base: ClassVar[str] = "dropout"
    p_embedding: float = 0.15  # dropout on the token embeddings (training only)
    p_residual: float = 0.15  # dropout on each sublayer output before the residual add (training only)
    p_attention: float = 0.15  # dropout on the attention probabilities (training only)

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("p_embedding", "p_residual", "p_attention"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"method.{name} must be in [0, 1), got {getattr(self, name)}")

    def hooks(self, model: torch.nn.Module):
        return training_dropout(model, self.p_embedding, self.p_residual, self.p_attention)
