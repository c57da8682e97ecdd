"""Toxicity scorers: text -> toxicity score in [0, 1], pluggable by name.

Every scorer has ``key`` (short identity used in metric keys, e.g. ``profanity_check``),
``info`` (what was used: package/model versions, held-out AUC; never a secret) and
``score(texts) -> list[float]``.  ``ScorerOptions`` holds the config fields that choose and
configure one (a base of every benchmark config that scores toxicity).  ``score_texts`` is
how benchmarks call them: a blank text scores 0.0 without asking the scorer (there is
nothing toxic in it, and remote APIs reject empty comments), and each distinct text is
scored once.

| name | where | what |
|---|---|---|
| embedding_lr (default) | offline | logistic regression on MiniLM sentence embeddings, trained on Davidson et al. tweets (first use: ~minutes, then cached) |
| profanity_check (fast) | offline | alt-profanity-check: TF-IDF + linear SVM, calibrated |
| hf | hub/folder | any sequence classifier, probability of the label named ``toxic_label`` |
| detoxify | network (first use) | Detoxify ``toxicity`` head |
| perspective | network | Perspective API TOXICITY summary score |

``minilm`` is the sentence encoder behind ``embedding_lr``, not a scorer of its own.  Measured
ROC AUC and calibration of each scorer on held-out labelled data (Davidson tweets, ToxiGen
demonstrations): README.md in this folder, ``python -m bench.scorers.validity``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Sequence

from bench.data import DataRoot
from bench.errors import ConfigError

DEFAULT_SCORER = "embedding_lr"  # best-measured offline scorer (README.md here); profanity_check is the fast option
SCORERS = ("embedding_lr", "profanity_check", "hf", "detoxify", "perspective")


class ToxicityScorer(Protocol):
    key: str  # short identity, part of every toxicity metric key
    info: dict[str, Any]  # what was used (recorded in results); never holds secrets

    def score(self, texts: Sequence[str]) -> list[float]:
        """Toxicity in [0, 1] of each text, in order."""
        ...


def score_texts(scorer: ToxicityScorer, texts: Sequence[str]) -> list[float]:
    """Scores of ``texts``: blank texts 0.0, each distinct non-blank text scored once."""
    distinct = sorted({t for t in texts if t.strip()})
    scores = dict(zip(distinct, scorer.score(distinct))) if distinct else {}
    return [float(scores[t]) if t.strip() else 0.0 for t in texts]


def build_scorer(name: str, data: DataRoot, cache_dir: Path, model: str | None = None, toxic_label: str = "toxic",
                 qps: float = 1.0, api_key_env: str = "PERSPECTIVE_API_KEY", batch_size: int = 32,
                 device: str = "cpu") -> ToxicityScorer:
    """The scorer called ``name`` (option names as in the toxicity benchmark's config)."""
    if name == "profanity_check":
        from bench.scorers.profanity import ProfanityCheckScorer
        return ProfanityCheckScorer()
    if name == "embedding_lr":
        from bench.scorers.embedding_lr import EmbeddingLRScorer
        return EmbeddingLRScorer(data, cache_dir, batch_size=batch_size)
    if name == "hf":
        if not model:
            raise ConfigError("benchmarks.toxicity.scorer=hf needs benchmarks.toxicity.model=<hub id or folder of a sequence classifier>")
        from bench.scorers.hf_classifier import HFClassifierScorer
        return HFClassifierScorer(model, toxic_label, batch_size=batch_size, device=device)
    if name == "detoxify":
        from bench.scorers.detoxify_scorer import DetoxifyScorer
        return DetoxifyScorer(model or "original", batch_size=batch_size, device=device)
    if name == "perspective":
        from bench.scorers.perspective import PerspectiveScorer
        return PerspectiveScorer.from_env(api_key_env, qps=qps)
    raise ConfigError(f"benchmarks.toxicity.scorer={name!r} is not one of {list(SCORERS)}")


@dataclass
class ScorerOptions:
    """The toxicity-scorer fields of a benchmark config (a base class of its dataclass)."""

    scorer: str = DEFAULT_SCORER  # embedding_lr (default) | profanity_check (fast) | hf | detoxify | perspective
    model: str | None = None  # hf: hub id or folder of the classifier; detoxify: model type (original)
    toxic_label: str = "toxic"  # hf: the label whose probability is the score
    qps: float = 1.0  # perspective: queries per second
    api_key_env: str = "PERSPECTIVE_API_KEY"  # perspective: environment variable holding the API key
    scorer_batch_size: int = 32  # texts per scorer forward pass (embedding_lr, hf, detoxify)

    def check_scorer(self, option: str) -> None:
        """``option`` is the config path of the scorer field, e.g. ``benchmarks.bold.scorer``."""
        if self.scorer not in SCORERS:
            raise ConfigError(f"{option}={self.scorer!r} is not one of {list(SCORERS)}")

    def make_scorer(self, data: DataRoot) -> ToxicityScorer:
        return build_scorer(self.scorer, data, data.cache_dir, model=self.model, toxic_label=self.toxic_label,
                            qps=self.qps, api_key_env=self.api_key_env, batch_size=self.scorer_batch_size)
