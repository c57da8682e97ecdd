"""Counterfactual data augmentation (Webster et al. 2020; bias-bench ``run_clm.py``), two-sided.

A corpus chunk holding an attribute word of ``bias_type`` is kept twice, as written and swapped
(``methods.text.swap.Swapper``: bias-bench's exact-lowercase whitespace-token match with its
trailing punctuation rule; pairs swapped both ways, triples moved to positions drawn per chunk
from ``random.Random(seed)``); chunks without one are dropped.  Word lists
(``methods.text.words``): bias-bench's ``bias_attribute_words.json`` (57 gender pairs, 6 race
and 6 religion triples); the countergen lists only when named in ``extra_words``.  Then the
shared causal-LM fine-tuning, optionally + NC3 (``cda_nc3``, the paper's configuration).
bias-bench: 2,000 steps, lr 5e-5, 256 sequences per step (GPT-2); LoRA r=8, alpha=16,
dropout 0.1 on all linear layers for larger models (``train.lora=true``).  Deviations: bias-bench
applies CDA to blocks of its tokenized corpus and re-joins the words with single spaces; here
chunks are sentence-aligned and keep their spacing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.data import DataRoot
from methods.finetune.lm import LMFineTuning
from methods.text.swap import Swapper
from methods.text.words import check_bias_type, check_extra, load_tuples


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
class CDA(LMFineTuning):
    """Two-sided CDA on a non-evaluation corpus, then causal-LM fine-tuning."""

    name_base: ClassVar[str] = "cda"
    bias_type: str = "gender"  # gender, race or religion (one model per bias type)
    extra_words: list[str] = field(default_factory=list)  # gender only, opt-in: countergen, countergen_names

    def __post_init__(self) -> None:
        super().__post_init__()
        check_bias_type(self.bias_type)
        check_extra(self.bias_type, self.extra_words)

    def texts(self, chunks: list[str], data: DataRoot, seed: int) -> tuple[list[str], dict[str, Any]]:
        swapper = Swapper(load_tuples(data, self.bias_type, self.extra_words))
        texts, n_attr = augment(chunks, swapper, seed, self.max_examples)
        return texts, {"attribute_chunks": n_attr, "bias_type": self.bias_type, "word_tuples": len(swapper.groups)}
