"""SentenceDebias (Liang et al., ACL 2020), as bias-bench runs it.

Counterfactual groups: each fitting-side corpus sentence that holds an attribute word, moved
round its word tuples by ``methods.text.swap.Swapper`` (gender: the sentence and its swap;
race, religion: the three rotations; see ``attribute_sentences.counterfactual_groups``).  Every
variant is embedded (mean-pooled final hidden states), L2-normalised, centred on its group's
mean; the bias direction v is the first principal component of all centred embeddings.  At
inference every final hidden state becomes x − (x·v / v·v) v before the LM head (scoring,
generation and ``hidden_states``).

Held-out probe: the corpus sentences are split first (``test_fraction`` of each corpus held out);
the groups come from the fitting side only.  The INLP probe protocol (balanced class sentences,
``projection.probe_report``) reports how well a linear SVM still reads the class after removing v.

Deviations from bias-bench: text from WikiText-2 validation + ToxiGen demonstrations + Davidson
tweets (bias-bench: 2.5% of English Wikipedia), kept in its case (bias-bench lower-cases); one
group per sentence with every attribute word swapped together (bias-bench: one group per
attribute word present, only that word replaced).
"""
from __future__ import annotations

import logging
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
from methods.attribute_sentences import (CORPORA, attribute_tuples, check_corpora, corpus_files, corpus_sentences, counterfactual_groups, probe_classes, split_sentences)
from methods.text.words import check_bias_type
from methods.projection import (artifact_path, budget_size, class_features, embed, load_or_fit, probe_report,
                                probe_specs, projected_lm)

log = logging.getLogger(__name__)
# counterfactual groups by train_budget (gender: a group is one sentence per class); paper: all
GROUPS = {"smoke": 12, "cpu": 2000, "paper": None}
# probe sentences per class (fitting + held-out) by train_budget: a report, so smaller than INLP's
PROBE_PER_CLASS = {"smoke": 15, "cpu": 500, "paper": 2000}
INFO_SPECS = [  # the numbers prepare() reports in Debiased.info (not recomputable from records)
    MetricSpec("method/sentence_debias_n_groups", "method", "higher", "counterfactual groups embedded",
               aggregate="none"),
    MetricSpec("method/sentence_debias_explained_variance", "method", "higher", "share (0-1) of the "
               "group-centred embedding variance along the removed direction", aggregate="none"),
] + probe_specs("sentence_debias", "states with the bias direction removed")


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
    n_groups: int | None = None  # counterfactual groups embedded; None: by train_budget (smoke 12, cpu 2,000, paper all)
    corpora: list[str] = field(default_factory=lambda: list(CORPORA))  # text sources: wikitext2, toxigen, davidson, winobias_dev
    normalize: bool = True  # L2-normalise embeddings before centring (bias-bench, Liang et al.)
    test_fraction: float = 0.3  # share of each corpus's sentences held out for the before/after probe accuracy
    probe_per_class: int | None = None  # probe sentences per class (fitting + held-out); None: by train_budget (smoke 15, cpu 500, paper 2,000)

    def __post_init__(self) -> None:
        check_fields(self, "method")
        check_bias_type(self.bias_type)
        check_corpora(self.corpora)
        if self.n_groups is not None and self.n_groups < 2:
            raise ConfigError(f"method.n_groups must be >= 2 or null, got {self.n_groups}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"method.test_fraction must be in (0, 1), got {self.test_fraction}")
        if self.probe_per_class is not None and self.probe_per_class < 10:
            raise ConfigError(f"method.probe_per_class must be >= 10 or null, got {self.probe_per_class}")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        n = self.n_groups or budget_size(ctx.budget, GROUPS)
        probe = self.probe_per_class or budget_size(ctx.budget, PROBE_PER_CLASS)
        config = {**asdict(self), "n_groups": n, "probe_per_class": probe}
        path = artifact_path(ctx, self.name, loaded, config, corpus_files(self.corpora))
        tensors, info = load_or_fit(path, lambda: self.fit(HFScoringLM(loaded), ctx, n, probe))
        return Debiased(projected_lm(loaded, tensors["P"], self.name), info, INFO_SPECS)

    def fit(self, lm: HFScoringLM, ctx: MethodContext, n_groups: int | None, probe_per_class: int) -> tuple[dict, dict]:
        start = time.perf_counter()
        tuples = attribute_tuples(ctx.data, self.bias_type)
        fit, held = split_sentences(corpus_sentences(ctx.data, self.corpora), self.test_fraction, ctx.seed)
        groups, by_corpus = counterfactual_groups(fit, tuples, n_groups, ctx.seed)
        if len(groups) < 2:
            raise ConfigError(f"method.corpora={self.corpora} hold fewer than 2 {self.bias_type} sentences")
        states = embed(lm, [s for g in groups for s in g]).view(len(groups), len(tuples[0]), -1)
        v, explained = bias_direction(states, self.normalize)
        P = removal_matrix(v)
        data = probe_classes(fit, held, tuples, probe_per_class, self.test_fraction, ctx.seed)
        X_tr, y_tr = class_features(lm, data["train"])
        X_te, y_te = class_features(lm, data["test"])
        probe = probe_report(X_tr, y_tr, X_te, y_te, P.numpy(), ctx.seed)
        info = {"method/sentence_debias_n_groups": len(groups), "method/sentence_debias_n_groups_requested": n_groups,
                "method/sentence_debias_n_groups_by_corpus": by_corpus,
                "method/sentence_debias_explained_variance": explained,
                **{f"method/sentence_debias_{k}": x for k, x in probe.items()},
                "method/sentence_debias_probe_n_train": len(y_tr), "method/sentence_debias_probe_n_test": len(y_te),
                "method/sentence_debias_fit_seconds": round(time.perf_counter() - start, 1)}
        log.info("SentenceDebias fitted: %s", info)
        return {"P": P, "v": v}, info
