"""``LMFineTuning``: the base of the causal-LM fine-tuning methods (finetune, CDA, Dropout, NC).

The corpus (``data_files``, default WikiText-2 validation, the only WikiText training-side text
available) is read by ``methods.text.corpus`` and packed into chunks of at most
``train.seq_len`` tokens; a method's ``texts`` hook turns the chunks into training texts (CDA
augments; the others keep them, capped at ``max_examples``); each text is encoded as
[sentence-start] + tokens.  The objective is the causal-LM loss + ``nc3_weight`` x L_NC3.
A subclass declares its own fields and overrides ``texts`` and/or ``hooks``; the corpus, budget
and trainer are the same for all of them.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, ContextManager, Sequence

import torch

from bench.data import DataRoot
from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from methods.finetune.checkpoint import Plan, finetune
from methods.finetune.config import TrainConfig, check_method, check_training_files
from methods.finetune.loop import LMObjective
from methods.finetune.nc3 import NC3_WORDS, nc3_plugin
from methods.text.corpus import WIKITEXT_VALID, pack_chunks, read_corpus


def token_counter(lm: HFScoringLM) -> Callable[[list[str]], list[int]]:
    return lambda texts: [len(x) for x in lm.tokenizer(texts, add_special_tokens=False).input_ids] if texts else []


def encode_texts(lm: HFScoringLM, texts: Sequence[str], seq_len: int) -> list[list[int]]:
    """[sentence-start] + tokens, truncated to ``seq_len`` tokens."""
    if not texts:
        return []
    ids = lm.tokenizer(list(texts), add_special_tokens=False).input_ids
    return [[lm.prefix_id] + x[:seq_len - 1] for x in ids]


def corpus_chunks(lm: HFScoringLM, data: DataRoot, files: Sequence[str], seq_len: int) -> tuple[list[str], dict[str, int]]:
    paragraphs, counts = read_corpus(data, files)
    chunks = pack_chunks(paragraphs, token_counter(lm), seq_len - 1)
    return chunks, {**counts, "corpus_chunks": len(chunks)}


@dataclass
class LMFineTuning:
    """Causal-LM fine-tuning on a non-evaluation corpus (+ optional NC3)."""

    name_base: ClassVar[str] = "lm"
    data_files: list[str] = field(default_factory=lambda: [WIKITEXT_VALID])  # training corpus (never evaluation sets)
    max_examples: int | None = None  # cap on training chunks (CDA: on attribute chunks, 2 examples each; None: all)
    nc3_weight: float = 0.0  # lambda of the NC3 regularizer (0: off)
    nc3_words: list[str] = field(default_factory=lambda: list(NC3_WORDS))  # NC3 class word lists (one group each)
    train: TrainConfig = field(default_factory=TrainConfig)  # optimiser, schedule and budgets (config.py)

    def __post_init__(self) -> None:
        check_method(self)
        check_training_files(self.data_files)
        if self.nc3_weight > 0 and not self.nc3_words:
            raise ConfigError("method.nc3_words is empty")

    @property
    def name(self) -> str:
        return self.name_base + ("_nc3" if self.nc3_weight > 0 else "")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        return finetune(self, loaded, ctx)

    def texts(self, chunks: list[str], data: DataRoot, seed: int) -> tuple[list[str], dict[str, Any]]:
        """Training texts from the corpus chunks, and (counts, notes) entries: the first ``max_examples``."""
        return chunks[:self.max_examples], {}

    def hooks(self, model: torch.nn.Module) -> ContextManager:
        """Modules active during training only (none here)."""
        return contextlib.nullcontext()

    def plan(self, lm: HFScoringLM, data: DataRoot, cfg: TrainConfig, seed: int) -> Plan:
        chunks, counts = corpus_chunks(lm, data, self.data_files, cfg.seq_len)
        texts, extra = self.texts(chunks, data, seed)
        reg, notes = nc3_plugin(lm, data, self.nc3_words, self.nc3_weight)
        counts.update({k: v for k, v in extra.items() if isinstance(v, int)})
        notes.update({k: v for k, v in extra.items() if not isinstance(v, int)})
        return Plan(objective=LMObjective(lm.tokenizer.pad_token_id, reg, self.nc3_weight),
                    items=encode_texts(lm, texts, cfg.seq_len), counts={**counts, "train_examples": len(texts)},
                    notes=notes, train_head=reg is not None, hooks=self.hooks)
