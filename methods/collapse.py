"""The Neural-Collapse fairness regularizer NC3 (Xu et al., ICLR 2025) and ``method=nc``.

Classes are vocabulary ids: the first sub-token of " " + word for each word of the fairness word
lists (default ADEPT male + female; words sharing a first sub-token share a class).  During
training, ``NC3Regularizer`` keeps running (cumulative, detached) class means mu_c of the
last-layer hidden states h_t whose next token is class c, over every batch seen so far; mu_G is
the mean of the class means of the classes seen at least once, and

    sim_c = cos(mu_c - mu_G, w_c),   L_NC3 = std_c(sim_c)   (population std over seen classes),

with w_c the LM-head row of class c.  The class means are constants, so the NC3 gradient flows
through W only.  With tied embeddings (SmolLM2, Gemma) the LM-head rows are the input-embedding
rows of the class tokens: the NC3 term moves those embedding rows and nothing else (with LoRA,
``methods.training`` keeps the embedding trainable when NC3 is on).  With fewer than two seen
classes the loss is 0.  It is a plug-in (``method.nc3_weight``, 0 = off) of every training
method, and ``NC`` is the plain variant: causal-LM loss on the corpus + lambda * L_NC3.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import torch
import torch.nn.functional as F

from bench.data import DataRoot, read_lines
from bench.errors import ConfigError, DataError
from bench.engine.hf_lm import HFScoringLM
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from methods.training import (PAPER_LM, WIKITEXT_VALID, LMObjective, Plan, TrainConfig, check_method,
                              check_training_files, corpus_chunks, encode_texts, finetune, trainable_copy)

NC3_WORDS = ["fairness_nc_words/adept/male.txt", "fairness_nc_words/adept/female.txt"]


def class_ids(lm: HFScoringLM, data: DataRoot, files: Sequence[str]) -> list[int]:
    """Sorted class token ids: the first sub-token of " " + word over every word of ``files``."""
    ids: set[int] = set()
    for rel in files:
        words = [w.strip() for w in read_lines(data.path(rel)) if w.strip()]
        if not words:
            raise DataError(f"{rel}: no words for the NC3 classes")
        ids |= {lm.encode(" " + w)[0] for w in words}
    return sorted(ids)


class NC3Regularizer:
    """Running class means + the L_NC3 loss (module docstring).  Call with hidden states
    [B, T, H], their next-token labels [B, T], a mask [B, T] and the head weight [V, H]."""

    def __init__(self, ids: Sequence[int]):
        self.ids = torch.tensor(sorted(ids), dtype=torch.long)
        self.counts: torch.Tensor | None = None  # [C]
        self.totals: torch.Tensor | None = None  # [C, H] fp32 sums of hidden states

    def update(self, hidden: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> None:
        h = hidden.detach().float().reshape(-1, hidden.shape[-1])
        y, m = labels.reshape(-1).cpu(), mask.reshape(-1).bool().cpu()
        if self.totals is None:
            self.counts = torch.zeros(len(self.ids))
            self.totals = torch.zeros(len(self.ids), h.shape[-1])
        hit = (y[:, None] == self.ids[None, :]) & m[:, None]  # [N, C]
        self.counts += hit.sum(0)
        self.totals += hit.float().T @ h.cpu()

    def loss(self, weight: torch.Tensor) -> torch.Tensor:
        seen = (self.counts > 0).nonzero()[:, 0] if self.counts is not None else torch.zeros(0, dtype=torch.long)
        if len(seen) < 2:
            return weight.sum() * 0.0
        means = self.totals[seen] / self.counts[seen, None]
        centred = (means - means.mean(0)).to(weight.device)
        rows = weight[self.ids[seen].to(weight.device)].float()
        sims = F.cosine_similarity(centred, rows, dim=-1)
        return sims.std(correction=0)

    def __call__(self, hidden, labels, mask, weight) -> torch.Tensor:
        self.update(hidden, labels, mask)
        return self.loss(weight)


def nc3_plugin(lm: HFScoringLM, data: DataRoot, files: Sequence[str], weight: float) -> tuple[NC3Regularizer | None, dict]:
    """The regularizer for ``weight`` > 0 (else None) and the notes to report."""
    if weight <= 0:
        return None, {}
    ids = class_ids(lm, data, files)
    return NC3Regularizer(ids), {"nc3_weight": weight, "nc3_classes": len(ids)}


@dataclass
class NC:
    """Causal-LM fine-tuning on the corpus + nc3_weight * L_NC3 (no augmentation)."""

    name: ClassVar[str] = "nc"
    nc3_weight: float = 10.0  # lambda of L_NC3 (the release used 5 to 100)
    nc3_words: list[str] = field(default_factory=lambda: list(NC3_WORDS))  # lists whose words' first sub-tokens are the classes
    data_files: list[str] = field(default_factory=lambda: [WIKITEXT_VALID])  # training corpus (never evaluation sets)
    max_examples: int | None = None  # cap on training chunks (None: all)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=5e-5, paper=dict(PAPER_LM)))  # optimiser, budget

    def __post_init__(self) -> None:
        check_method(self)
        check_training_files(self.data_files)
        if self.nc3_weight <= 0:
            raise ConfigError(f"method.nc3_weight must be > 0 for method=nc, got {self.nc3_weight}")
        if not self.nc3_words:
            raise ConfigError("method.nc3_words is empty")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        return finetune(self, loaded, ctx, [*self.data_files, *self.nc3_words], self._build(ctx))

    def _build(self, ctx: MethodContext):
        def build(loaded: LoadedModel, cfg: TrainConfig) -> Plan:
            lm = HFScoringLM(loaded)
            chunks, counts = corpus_chunks(lm, ctx.data, self.data_files, cfg.seq_len)
            items = encode_texts(lm, chunks[:self.max_examples], cfg.seq_len)
            reg, notes = nc3_plugin(lm, ctx.data, self.nc3_words, self.nc3_weight)
            objective = LMObjective(loaded.tokenizer.pad_token_id, reg, self.nc3_weight)
            return Plan(model=trainable_copy(loaded.model), objective=objective, items=items,
                        counts={**counts, "train_examples": len(items)}, notes=notes)
        return build
