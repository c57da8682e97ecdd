"""Counterfactual data augmentation (Webster et al. 2020; bias-bench), two-sided.

The corpus (default: WikiText-2 validation, the only WikiText training-side text available) is
packed into chunks of at most ``train.seq_len`` tokens; a chunk with an attribute word of
``bias_type`` is kept twice, as written and swapped (``methods.counterfactual``: gender pairs
both ways, race/religion triples rotated by a per-chunk seeded shift); chunks without one are
dropped.  Then continued causal-LM training (``methods.training``), optionally + NC3.
bias-bench: 2,000 steps, lr 5e-5, 256 sequences per step (GPT-2); LoRA r=8, alpha=16,
dropout 0.1 on all linear layers for larger models (``train.lora=true``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from methods.collapse import NC3_WORDS, nc3_plugin
from methods.counterfactual import BIAS_TYPES, Swapper, load_groups, word_list_files
from methods.training import (PAPER_LM, WIKITEXT_VALID, LMObjective, Plan, TrainConfig, check_method,
                              check_training_files, corpus_chunks, encode_texts, finetune, trainable_copy)


def augment(chunks: list[str], swapper: Swapper, seed: int, max_chunks: int | None = None) -> tuple[list[str], int]:
    """[chunk, counterfactual, ...] for the chunks holding an attribute word; and their number."""
    rng = random.Random(seed)
    texts = []
    for chunk in chunks:
        if max_chunks is not None and len(texts) >= 2 * max_chunks:
            break
        if swapper.contains(chunk):
            texts += [chunk, swapper.counterfactual(chunk, rng)]
    return texts, len(texts) // 2


@dataclass
class CDA:
    """Two-sided CDA on a non-evaluation corpus, then causal-LM fine-tuning."""

    name_base: ClassVar[str] = "cda"
    bias_type: str = "gender"  # gender, race or religion (one model per bias type)
    names: bool = False  # gender: also swap the countergen first-name lists (ambiguous names; off by default)
    data_files: list[str] = field(default_factory=lambda: [WIKITEXT_VALID])  # training corpus (never evaluation sets)
    max_examples: int | None = None  # cap on attribute chunks (each gives 2 examples; None: all)
    nc3_weight: float = 0.0  # lambda of the NC3 regularizer (0: off)
    nc3_words: list[str] = field(default_factory=lambda: list(NC3_WORDS))  # NC3 class word lists
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-5, paper=dict(PAPER_LM)))  # optimiser, budget

    def __post_init__(self) -> None:
        check_method(self)
        check_training_files(self.data_files)
        if self.bias_type not in BIAS_TYPES:
            raise ConfigError(f"method.bias_type={self.bias_type!r} is not one of {list(BIAS_TYPES)}")

    @property
    def name(self) -> str:
        return self.name_base + ("_nc3" if self.nc3_weight > 0 else "")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        files = [*self.data_files, *word_list_files(self.bias_type), *(self.nc3_words if self.nc3_weight > 0 else [])]
        return finetune(self, loaded, ctx, files, self._build(ctx))

    def _build(self, ctx: MethodContext):
        def build(loaded: LoadedModel, cfg: TrainConfig) -> Plan:
            lm = HFScoringLM(loaded)
            chunks, counts = corpus_chunks(lm, ctx.data, self.data_files, cfg.seq_len)
            swapper = Swapper(*load_groups(ctx.data, self.bias_type, self.names))
            texts, n_attr = augment(chunks, swapper, ctx.seed, self.max_examples)
            reg, notes = nc3_plugin(lm, ctx.data, self.nc3_words, self.nc3_weight)
            return Plan(model=trainable_copy(loaded.model),
                        objective=LMObjective(loaded.tokenizer.pad_token_id, reg, self.nc3_weight),
                        items=encode_texts(lm, texts, cfg.seq_len),
                        counts={**counts, "attribute_chunks": n_attr, "train_examples": len(texts)},
                        notes={"bias_type": self.bias_type, **notes})
        return build
