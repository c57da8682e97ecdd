"""INLP, iterative nullspace projection (Ravfogel et al., ACL 2020), as bias-bench runs it.

Features: mean-pooled final hidden states of corpus sentences of each class (gender:
male / female / neutral; race, religion: bias / neutral; see ``attribute_sentences``),
classes balanced.  ``n_iterations`` times, a linear SVM (LinearSVC, no intercept, primal)
is trained on the features projected so far; P_R(W_i) = B Bᵀ with B an orthonormal basis of
W_iᵀ; the features are re-projected onto the intersection of the nullspaces,
P = I − P_R(Σ_i P_R(W_i)).  At inference every final hidden state x becomes P x before the
LM head (scoring, generation and ``hidden_states``).

Reported (``Debiased.info``): held-out accuracy of a fresh classifier before and after the
projection, the majority-class rate, and the sentence counts.

Deviations from bias-bench: the text is WikiText-2 validation + BOLD prompts + WinoBias
(bias-bench: 2.5% of English Wikipedia), so classes hold far fewer than 10,000 sentences
(race and religion about 500); sentences keep their case; one train/test split (70/30).
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import ClassVar

import numpy as np
import torch

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.api.metrics import MetricSpec
from bench.api import LoadedModel
from bench.api import Debiased, MethodContext
from bench.validate import check_fields
from methods.attribute_sentences import (CORPORA, attribute_tuples, check_bias_type, check_corpora,
                                         collect_classes, corpus_files, corpus_sentences)
from methods.projection import artifact_path, budget_size, embed, load_or_fit, projected_lm

log = logging.getLogger(__name__)
# sentences per class by train_budget: cpu ~1-2 minutes on smollm2-135m with 2 CPU cores; paper: bias-bench
PER_CLASS = {"smoke": 15, "cpu": 200, "paper": 10_000}
INFO_SPECS = [  # the numbers prepare() reports in Debiased.info (not recomputable from records)
    MetricSpec("method/inlp_acc_before", "method", "higher", "held-out accuracy (0-1) of a linear SVM "
               "reading the attribute class from mean-pooled final hidden states, before the projection",
               aggregate="none"),
    MetricSpec("method/inlp_acc_after", "method", "lower", "the same probe's accuracy (0-1) retrained on "
               "projected states; the majority-class rate means nothing linear is left", aggregate="none"),
    MetricSpec("method/inlp_acc_majority", "method", "higher", "majority-class rate (0-1) of the held-out "
               "sentences: chance level of the probe", aggregate="none"),
    MetricSpec("method/inlp_n_per_class", "method", "higher", "sentences per class used (balanced)", aggregate="none"),
    MetricSpec("method/inlp_n_train", "method", "higher", "sentences the classifiers were fitted on", aggregate="none"),
    MetricSpec("method/inlp_n_test", "method", "higher", "held-out sentences of the before/after accuracy",
               aggregate="none"),
    MetricSpec("method/inlp_rank_removed", "method", "higher", "dimensions of the hidden state projected out",
               aggregate="none"),
]


def rowspace_projection(W: np.ndarray) -> np.ndarray:
    """Orthogonal projection [H, H] onto the row space of W [k, H]."""
    if np.allclose(W, 0):
        return np.zeros((W.shape[1], W.shape[1]))
    U, S, _ = np.linalg.svd(W.T, full_matrices=False)
    rank = int((S > S.max() * max(W.shape) * np.finfo(S.dtype).eps).sum())
    B = U[:, :rank]
    return B @ B.T


def nullspace_projection(rowspaces: list[np.ndarray], dim: int) -> np.ndarray:
    """Projection onto the intersection of the nullspaces: I − P_R(Σ_i P_R(W_i)) (Ben-Israel)."""
    if not rowspaces:
        return np.eye(dim)
    return np.eye(dim) - rowspace_projection(np.sum(rowspaces, axis=0))


def _classifier(seed: int):
    from sklearn.svm import LinearSVC

    return LinearSVC(fit_intercept=False, dual=False, random_state=seed)


def fit_inlp(X: np.ndarray, y: np.ndarray, n_iterations: int, seed: int = 0) -> np.ndarray:
    """The INLP projection P [H, H] (symmetric, idempotent) from features X [N, H], labels y [N]."""
    rowspaces, P = [], np.eye(X.shape[1])
    for _ in range(n_iterations):
        W = np.atleast_2d(_classifier(seed).fit(X @ P, y).coef_)
        rowspaces.append(rowspace_projection(W))
        P = nullspace_projection(rowspaces, X.shape[1])
    return P


def probe_accuracy(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                   seed: int = 0) -> float:
    """Held-out accuracy of a linear SVM trained on (X_train, y_train)."""
    return float((_classifier(seed).fit(X_train, y_train).predict(X_test) == y_test).mean())


@dataclass
class INLP:
    name: ClassVar[str] = "inlp"
    bias_type: str = "gender"  # gender | race | religion: which attribute classes become unreadable
    n_iterations: int = 10  # classifiers trained and projected out (bias-bench: 10 for GPT-2, 80 for BERT)
    n_per_class: int | None = None  # sentences per class; None: by train_budget (smoke 15, cpu 200, paper 10,000), capped by the corpus
    corpora: list[str] = field(default_factory=lambda: list(CORPORA))  # text sources: wikitext2, bold, winobias
    test_fraction: float = 0.3  # share of sentences held out for the before/after accuracy

    def __post_init__(self) -> None:
        check_fields(self, "method")
        check_bias_type(self.bias_type)
        check_corpora(self.corpora)
        if self.n_iterations < 1:
            raise ConfigError(f"method.n_iterations must be >= 1, got {self.n_iterations}")
        if self.n_per_class is not None and self.n_per_class < 10:
            raise ConfigError(f"method.n_per_class must be >= 10 or null, got {self.n_per_class}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"method.test_fraction must be in (0, 1), got {self.test_fraction}")

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased:
        n = self.n_per_class or budget_size(ctx.budget, PER_CLASS)
        path = artifact_path(ctx, self.name, loaded, {**asdict(self), "n_per_class": n},
                             corpus_files(self.corpora))
        tensors, info = load_or_fit(path, lambda: self.fit(HFScoringLM(loaded), ctx, n))
        return Debiased(projected_lm(loaded, tensors["P"], self.name), info, INFO_SPECS)

    def fit(self, lm: HFScoringLM, ctx: MethodContext, n_per_class: int) -> tuple[dict, dict]:
        from sklearn.model_selection import train_test_split

        start = time.perf_counter()
        tuples = attribute_tuples(ctx.data, self.bias_type)
        classes = collect_classes(corpus_sentences(ctx.data, self.corpora), tuples, n_per_class, ctx.seed)
        n = min(len(v) for v in classes.values())
        if n < 10:
            raise ConfigError(f"method.corpora={self.corpora} hold only {n} sentences of some "
                              f"{self.bias_type} class; add corpora")
        if n < n_per_class:
            log.warning("INLP: the corpora hold %d sentences of the rarest %s class; using %d per class",
                        n, self.bias_type, n)
        texts = [s for v in classes.values() for s in v[:n]]
        y = np.repeat(np.arange(len(classes)), n)
        X = embed(lm, texts).double().numpy()
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=self.test_fraction, stratify=y,
                                                  random_state=ctx.seed)
        P = fit_inlp(X_tr, y_tr, self.n_iterations, ctx.seed)
        info = {"method/inlp_acc_before": probe_accuracy(X_tr, y_tr, X_te, y_te, ctx.seed),
                "method/inlp_acc_after": probe_accuracy(X_tr @ P, y_tr, X_te @ P, y_te, ctx.seed),
                "method/inlp_acc_majority": float(np.bincount(y_te).max() / len(y_te)),
                "method/inlp_n_per_class": n, "method/inlp_n_train": len(y_tr), "method/inlp_n_test": len(y_te),
                "method/inlp_rank_removed": int(round(X.shape[1] - np.trace(P)))}
        log.info("INLP fitted in %.1f s: %s", time.perf_counter() - start, info)
        return {"P": torch.from_numpy(P)}, info
