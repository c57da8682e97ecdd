"""The Neural-Collapse fairness regularizer NC3 (Xu et al., ICLR 2025), a plug-in
(``method.nc3_weight``, 0 = off) of every fine-tuning method.

Classes: ``bench.tasks.collapse.fairness_classes``, the class rule shared with the NC
diagnostic (as the release: words that are one vocabulary entry in their leading-space form;
disjoint male/female ids).  Default lists: ADEPT male + female; 151 classes on SmolLM2's
tokenizer (88 male, 63 female).  During training, ``NC3Regularizer`` keeps running (cumulative,
detached) class means mu_c of the last-layer hidden states h_t whose next token is class c, over
every batch seen so far, and L_NC3 = ``bench.tasks.collapse.unc3`` of the means of the classes
seen at least once and their LM-head rows w_c:

    sim_c = cos(mu_c - mu_G, w_c),  mu_G = mean_c mu_c,   L_NC3 = std_c(sim_c)  (unbiased std),

as the release's ``Statistics.similarity`` + ``sims.std()``.  The class means are constants, so
the gradient flows through W only.  With tied embeddings (SmolLM2, Gemma) the LM-head rows are the
input-embedding rows of the class tokens: NC3 moves those rows and nothing else (with LoRA,
``Plan.train_head`` keeps the embedding trainable).  With fewer than two seen classes the loss is 0.
"""
from __future__ import annotations

from typing import Sequence

import torch

from bench.data import DataRoot
from bench.errors import DataError
from bench.engine.hf_lm import HFScoringLM
from bench.tasks.collapse import fairness_classes, unc3

NC3_WORDS = ["fairness_nc_words/adept/male.txt", "fairness_nc_words/adept/female.txt"]


def class_ids(lm: HFScoringLM, data: DataRoot, files: Sequence[str]) -> tuple[list[int], dict[str, int]]:
    """Sorted class token ids of the word lists ``files`` (one group per file) and the rule's counts."""
    classes, counts = fairness_classes(data, lm.encode, {rel: rel for rel in files})
    if len(classes) < 2:
        raise DataError(f"NC3 needs >= 2 classes; the word lists {list(files)} give {len(classes)} single-token words")
    return sorted(classes), counts


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
        means = (self.totals[seen] / self.counts[seen, None]).to(weight.device)
        return unc3(means, weight[self.ids[seen].to(weight.device)].float())

    def __call__(self, hidden, labels, mask, weight) -> torch.Tensor:
        self.update(hidden, labels, mask)
        return self.loss(weight)


def nc3_plugin(lm: HFScoringLM, data: DataRoot, files: Sequence[str], weight: float) -> tuple[NC3Regularizer | None, dict]:
    """The regularizer for ``weight`` > 0 (else None) and the notes to report."""
    if weight <= 0:
        return None, {}
    ids, counts = class_ids(lm, data, files)
    return NC3Regularizer(ids), {"nc3_weight": weight, "nc3_classes": len(ids),
                                 "nc3_words_single_token": counts["single_token_words"],
                                 "nc3_words": counts["words"], "nc3_shared_ids_dropped": counts["shared_ids_dropped"]}
