"""Dropout debiasing (Webster et al. 2020): continued causal-LM training on the CDA corpus (no
augmentation) with the model's dropout rates raised to ``p`` (0.15).

Only rates the architecture's config declares can be raised: residual (``resid_pdrop``,
``hidden_dropout``, ``hidden_dropout_prob``), embedding (``embd_pdrop``, ``embed_dropout``) and
attention (``attention_dropout``, ``attn_pdrop``, ``attention_probs_dropout_prob``).  Llama-style
models (SmolLM2) and Gemma 3 have ``attention_dropout`` only; info reports the fields changed
(``method/dropout_fields``) and the kinds the architecture lacks (``method/dropout_missing``).
The model is rebuilt from the edited config, so modules that read a rate at construction use it;
the saved config keeps the raised rates, which do nothing in eval mode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from methods.collapse import NC3_WORDS, nc3_plugin
from methods.training import (PAPER_LM, WIKITEXT_VALID, LMObjective, Plan, TrainConfig, check_method,
                              check_training_files, corpus_chunks, encode_texts, finetune, trainable_copy)

DROPOUT_FIELDS = {
    "residual": ("resid_pdrop", "hidden_dropout", "hidden_dropout_prob"),
    "embedding": ("embd_pdrop", "embed_dropout"),
    "attention": ("attention_dropout", "attn_pdrop", "attention_probs_dropout_prob"),
}


def dropout_overrides(config: Any, p: float) -> tuple[dict[str, float], list[str]]:
    """({config field: p} for the dropout fields ``config`` has, [kinds it has none of])."""
    changed, missing = {}, []
    for kind, names in DROPOUT_FIELDS.items():
        present = [n for n in names if hasattr(config, n)]
        changed.update({n: p for n in present})
        if not present:
            missing.append(kind)
    return changed, missing


@dataclass
class Dropout:
    """Continued training with raised dropout."""

    name_base: ClassVar[str] = "dropout"
    p: float = 0.15  # dropout rate set on every dropout field of the architecture
    data_files: list[str] = field(default_factory=lambda: [WIKITEXT_VALID])  # training corpus (never evaluation sets)
    max_examples: int | None = None  # cap on training chunks (None: all)
    nc3_weight: float = 0.0  # lambda of the NC3 regularizer (0: off)
    nc3_words: list[str] = field(default_factory=lambda: list(NC3_WORDS))  # NC3 class word lists
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-5, paper=dict(PAPER_LM)))  # optimiser, budget

    def __post_init__(self) -> None:
        check_method(self)
        check_training_files(self.data_files)
        if not 0 < self.p < 1:
            raise ConfigError(f"method.p must be in (0, 1), got {self.p}")

    @property
    def name(self) -> str:
        return self.name_base + ("_nc3" if self.nc3_weight > 0 else "")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        files = [*self.data_files, *(self.nc3_words if self.nc3_weight > 0 else [])]
        return finetune(self, loaded, ctx, files, self._build(ctx))

    def _build(self, ctx: MethodContext):
        def build(loaded: LoadedModel, cfg: TrainConfig) -> Plan:
            lm = HFScoringLM(loaded)
            chunks, counts = corpus_chunks(lm, ctx.data, self.data_files, cfg.seq_len)
            items = encode_texts(lm, chunks[:self.max_examples], cfg.seq_len)
            overrides, missing = dropout_overrides(loaded.model.config, self.p)
            reg, notes = nc3_plugin(lm, ctx.data, self.nc3_words, self.nc3_weight)
            arch = type(loaded.model.config).__name__
            notes = {"dropout_fields": ",".join(sorted(overrides)) or "none",
                     "dropout_missing": (f"{', '.join(missing)} (no such field in {arch})" if missing else "none"), **notes}
            return Plan(model=trainable_copy(loaded.model, overrides),
                        objective=LMObjective(loaded.tokenizer.pad_token_id, reg, self.nc3_weight),
                        items=items, counts={**counts, "train_examples": len(items)}, notes=notes)
        return build
