"""SentenceDebias (Liang et al., ACL 2020), as bias-bench runs it.

Counterfactual groups: each corpus sentence that holds an attribute word, with that word
replaced by each member of its tuple (gender: the pair; race, religion: the triple; see
``attribute_sentences.counterfactual_groups``).  Every variant is embedded (mean-pooled final
hidden states), L2-normalised, centred on its group's mean; the bias direction v is the
first principal component of all centred embeddings.  At inference every final hidden state
becomes x − (x·v / v·v) v before the LM head (scoring, generation and ``hidden_states``).

Deviations from bias-bench: text from WikiText-2 validation + BOLD prompts + WinoBias
(bias-bench: 2.5% of English Wikipedia) and kept in its case (bias-bench lower-cases).
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import torch

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api.metrics import MetricSpec
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from bench.validate import check_fields
from methods.attribute_sentences import (CORPORA, attribute_tuples, check_bias_type, check_corpora,
                                         corpus_files, corpus_sentences, counterfactual_groups)
from methods.projection import artifact_path, budget_size, embed, load_or_fit, projected_lm

log = logging.getLogger(__name__)
# counterfactual groups by train_budget: cpu ~1-2 minutes on smollm2-135m with 2 CPU cores; paper: all
GROUPS = {"smoke": 12, "cpu": 200, "paper": None}
INFO_SPECS = [  # the numbers prepare() reports in Debiased.info (not recomputable from records)
    MetricSpec("method/sentence_debias_n_groups", "method", "higher", "counterfactual groups embedded",
               aggregate="none"),
    MetricSpec("method/sentence_debias_explained_variance", "method", "higher", "share (0-1) of the "
               "group-centred embedding variance along the removed direction", aggregate="none"),
]


def bias_direction(embeddings: torch.Tensor, normalize: bool = True) -> tuple[torch.Tensor, float]:
    """First principal component (unit [H]) of group-centred embeddings [G, K, H], and the share
    of the centred variance it explains."""
    E = embeddings.double()
    if normalize:
        E = E / E.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    E = (E - E.mean(1, keepdim=True)).reshape(-1, E.shape[-1])
    _, S, Vh = torch.linalg.svd(E, full_matrices=False)
    return Vh[0], float(S[0] ** 2 / (S ** 2).sum())


def removal_matrix(v: torch.Tensor) -> torch.Tensor:
    """I − v vᵀ / (v·v): x P = x − (x·v / v·v) v."""
    v = v.double()
    return torch.eye(v.numel(), dtype=torch.float64) - torch.outer(v, v) / (v @ v)


@dataclass
class SentenceDebias:
    name: ClassVar[str] = "sentence_debias"
    bias_type: str = "gender"  # gender | race | religion: which counterfactual word tuples define the direction
    n_groups: int | None = None  # counterfactual groups embedded; None: by train_budget (smoke 12, cpu 200, paper all)
    corpora: list[str] = field(default_factory=lambda: list(CORPORA))  # text sources: wikitext2, bold, winobias
    normalize: bool = True  # L2-normalise embeddings before centring (bias-bench, Liang et al.)

    def __post_init__(self) -> None:
        check_fields(self, "method")
        check_bias_type(self.bias_type)
        check_corpora(self.corpora)
        if self.n_groups is not None and self.n_groups < 2:
            raise ConfigError(f"method.n_groups must be >= 2 or null, got {self.n_groups}")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        n = self.n_groups or budget_size(ctx.budget, GROUPS)
        path = artifact_path(ctx, self.name, loaded, {**asdict(self), "n_groups": n}, corpus_files(self.corpora))
        tensors, info = load_or_fit(path, lambda: self.fit(HFScoringLM(loaded), ctx, n))
        return Debiased(projected_lm(loaded, tensors["P"], self.name), info, INFO_SPECS)

    def groups(self, ctx: MethodContext, n_groups: int | None) -> list[tuple[str, ...]]:
        """Counterfactual groups from the shuffled (seeded) corpus, at most ``n_groups``."""
        tuples = attribute_tuples(ctx.data, self.bias_type)
        sentences = corpus_sentences(ctx.data, self.corpora)
        random.Random(ctx.seed).shuffle(sentences)
        out: list[tuple[str, ...]] = []
        for s in sentences:
            out.extend(counterfactual_groups(s, tuples))
            if n_groups is not None and len(out) >= n_groups:
                return out[:n_groups]
        return out

    def fit(self, lm: HFScoringLM, ctx: MethodContext, n_groups: int | None) -> tuple[dict, dict]:
        start = time.perf_counter()
        groups = self.groups(ctx, n_groups)
        if len(groups) < 2:
            raise ConfigError(f"method.corpora={self.corpora} hold fewer than 2 {self.bias_type} sentences")
        k = len(groups[0])
        states = embed(lm, [s for g in groups for s in g]).view(len(groups), k, -1)
        v, explained = bias_direction(states, self.normalize)
        info = {"method/sentence_debias_n_groups": len(groups),
                "method/sentence_debias_explained_variance": explained}
        log.info("SentenceDebias fitted in %.1f s: %s", time.perf_counter() - start, info)
        return {"P": removal_matrix(v), "v": v}, info
