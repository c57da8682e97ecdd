r"""Neural-Collapse diagnostics on fairness words (Papyan et al. 2020; Wu & Papyan 2024,
"Linguistic Collapse"; Xu et al. 2025, "Collapsed Language Models Promote Fairness").

Classes (``fairness_classes``, the one class rule of the project, shared with the NC3
regularizer of ``methods.finetune.nc3``): as in Xu et al.'s release, a word of
``fairness_nc_words/adept/{male,female}.txt`` defines a class only when it is a single
vocabulary entry of the model in its leading-space form (``encode(" " + word)`` is one id: the
"Ġword" entry of byte-level BPE, the "▁word" entry of SentencePiece); a word that splits is
skipped, never mapped to its first fragment, and an id listed by both genders is dropped from
both, so the male and female id sets are disjoint.  Classes defined per tokenizer (of the 425
distinct listed words): SmolLM2 (smollm2-135m, tiny-random) 151 = 88 male + 63 female ids,
none shared; Gemma 3 (gemma3-270m): not measured yet (its weights were not installed where this
was written); every run reports the count (``info["classes_defined"]`` here, ``method/nc3_classes``
for the regularizer).  Only classes seen ``min_count`` times in the scanned text are kept.
Features are last-layer hidden states h (after any ``hidden_transform``, i.e. what the LM
head sees) at the positions whose *next* token is a class token, collected from ``n``
WikiText-2 test paragraphs (seeded draw; None: all 2,183).  Classes seen fewer than
``min_count`` times are dropped.  Sizes: smoke n=20 (tiny-random); default n=30 (~5k tokens,
~4 classes: a coarse reading; 35-60 s on smollm2-135m with one CPU thread); full n=null
(~293k tokens; 52 classes, 3,198 features on smollm2's tokenizer).

With C kept classes, N features, class means mu_c,
global mean mu_G = mean_c mu_c (unweighted, as in Wu & Papyan), centred means
m_c = mu_c - mu_G (rows of M [C, H]), and LM-head rows w_c (rows of W [C, H]):

- ``nc1`` = Tr(Sigma_W Sigma_B^+) / C, with
  Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T and Sigma_B = (1/C) sum_c m_c m_c^T
  (^+ = Moore-Penrose pseudo-inverse).  0 when every feature sits on its class mean.
- ``nc2_equinorm`` = std_c ||m_c|| / mean_c ||m_c|| (coefficient of variation).
- ``nc2_equiangle`` = std over pairs c < c' of cos(m_c, m_c').
- ``nc3`` = || M / ||M||_F - W / ||W||_F ||_F (self-duality distance, in [0, 2]).
- ``unc3`` = std_c cos(m_c, w_c) (uniform duality; Xu et al.'s L_NC3 regulariser).
``unc3`` uses the unbiased std (``torch.std``'s default, as the release's ``sims.std()``) and is
the one UNC3 function of the project: the NC3 regularizer's L_NC3 is ``unc3`` of its running
class means.  The NC2 spreads are population stds (ddof=0).  Lower is more collapsed for all five.

The math is in pure, differentiable torch functions of (features [N, H], labels [N],
W [C, H]) or of class means, so training code (the NC3 regulariser) can reuse them.

The model must be a ``RepresentationLM`` (``bench.api.lm``: ``encode``,
``per_token_hidden_states``, ``lm_head_rows``, ``decode``); for any other model the metrics are
NaN and ``info["skipped"]`` says why.
"""
from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Iterator, Mapping, Sequence

import torch

from bench.data import DataRoot, read_lines
from bench.errors import ConfigError, DataError
from bench.io import stable_hash
from bench.api.lm import RepresentationLM, ScoringLM
from bench.api.metrics import MetricSpec
from bench.api import BenchmarkResult
from bench.tasks.common import check_config

log = logging.getLogger(__name__)
WORD_FILES = {"male": "fairness_nc_words/adept/male.txt", "female": "fairness_nc_words/adept/female.txt"}
CORPUS = "wikitext2/raw_v1_hf_derived/wiki.test.raw"
METRICS = {
    "nc1": "within-class over between-class variability Tr(Sigma_W Sigma_B^+)/C of fairness-word states",
    "nc2_equinorm": "coefficient of variation of the centred class-mean norms",
    "nc2_equiangle": "std of pairwise cosines of centred class means",
    "nc3": "distance between Frobenius-normalised centred class means and LM-head rows (0-2)",
    "unc3": "std over classes of cos(class mean - global mean, LM-head row)",
}


# ------------------------------------------------------------------ metric math (pure)
def class_means(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean feature of each class: [C, H] (a class without samples gets NaN)."""
    sums = torch.zeros(num_classes, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=num_classes).to(features.dtype)
    return sums / counts[:, None]


def centre(means: torch.Tensor) -> torch.Tensor:
    """Class means minus their unweighted average mu_G: [C, H]."""
    return means - means.mean(0, keepdim=True)


def nc1(features: torch.Tensor, labels: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    within = features - means[labels]
    sigma_w = within.T @ within / features.shape[0]
    m = centre(means)
    sigma_b = m.T @ m / means.shape[0]
    return torch.trace(sigma_w @ torch.linalg.pinv(sigma_b, hermitian=True)) / means.shape[0]


def nc2_equinorm(means: torch.Tensor) -> torch.Tensor:
    norms = centre(means).norm(dim=1)
    return norms.std(correction=0) / norms.mean()


def _off_diagonal_cosines(rows: torch.Tensor) -> torch.Tensor:
    unit = torch.nn.functional.normalize(rows, dim=1)
    i, j = torch.triu_indices(len(rows), len(rows), offset=1)
    return (unit @ unit.T)[i, j]


def nc2_equiangle(means: torch.Tensor) -> torch.Tensor:
    return _off_diagonal_cosines(centre(means)).std(correction=0)


def nc3(means: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    m = centre(means)
    return (m / m.norm() - weights / weights.norm()).norm()


def duality_cosines(means: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """cos(mu_c - mu_G, w_c) for each class: [C]; differentiable in both arguments."""
    return torch.nn.functional.cosine_similarity(centre(means), weights, dim=1)


def unc3(means: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """std_c cos(mu_c - mu_G, w_c), unbiased (the release's ``sims.std()``); differentiable."""
    return duality_cosines(means, weights).std()


def nc_metrics(features: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> dict[str, float]:
    """All five diagnostics (float64) from features [N, H], labels [N] in [0, C) and W [C, H]."""
    features, weights = features.double(), weights.double()
    means = class_means(features, labels, weights.shape[0])
    return {"nc1": float(nc1(features, labels, means)), "nc2_equinorm": float(nc2_equinorm(means)),
            "nc2_equiangle": float(nc2_equiangle(means)), "nc3": float(nc3(means, weights)),
            "unc3": float(unc3(means, weights))}


# --------------------------------------------------------------------- data
def fairness_classes(data: DataRoot, encode: Callable[[str], list[int]],
                     groups: Mapping[str, str] = WORD_FILES) -> tuple[dict[int, dict[str, Any]], dict[str, int]]:
    """The class rule (module docstring): token id -> {"words": [...], "gender": group name} for
    the words of ``groups`` (group name -> word-list file) that are one vocabulary entry with a
    leading space; ids of more than one group are dropped.  Also returns the counts
    {"words", "single_token_words", "shared_ids_dropped", "classes"}."""
    out: dict[int, dict[str, Any]] = {}
    owners: dict[int, set[str]] = {}
    n_words = n_single = 0
    for group, rel in groups.items():
        words = list(dict.fromkeys(w.strip() for w in read_lines(data.path(rel)) if w.strip()))
        if not words:
            raise DataError(f"{rel}: no words for the fairness classes")
        for word in words:
            n_words += 1
            ids = encode(" " + word)
            if len(ids) != 1:
                continue
            n_single += 1
            owners.setdefault(ids[0], set()).add(group)
            out.setdefault(ids[0], {"words": [], "gender": group})["words"].append(word)
    shared = [t for t, g in owners.items() if len(g) > 1]
    for t in shared:
        del out[t]
    return out, {"words": n_words, "single_token_words": n_single, "shared_ids_dropped": len(shared),
                 "classes": len(out)}


def load_paragraphs(data: DataRoot, n: int | None, seed: int) -> list[str]:
    """WikiText-2 test paragraphs (headings skipped); ``n`` drawn with ``seed``, file order kept."""
    paragraphs = [p.strip() for p in read_lines(data.path(CORPUS)) if not p.strip().startswith("=")]
    if n is None or n >= len(paragraphs):
        return paragraphs
    keep = sorted(random.Random(stable_hash(["collapse", seed])).sample(range(len(paragraphs)), n))
    return [paragraphs[i] for i in keep]


# ----------------------------------------------------------- model capabilities
def per_token_states(lm: RepresentationLM, texts: Sequence[str], chunk: int = 32) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per text, shortest first (less padding): (ids of its tokens [T], final hidden states
    predicting them [T, H] fp32 CPU), computed ``chunk`` texts at a time so memory stays bounded."""
    texts = sorted(texts, key=len)
    for start in range(0, len(texts), chunk):
        yield from lm.per_token_hidden_states(texts[start:start + chunk])


def collect(states: Iterable[tuple[torch.Tensor, torch.Tensor]], token_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Features [N, H] whose next token is in ``token_ids`` and their token ids [N]."""
    wanted = torch.tensor(sorted(token_ids))
    feats, labels = [], []
    for ids, h in states:
        hit = torch.isin(ids, wanted)
        feats.append(h[hit])
        labels.append(ids[hit])
    if not feats:
        return torch.zeros(0, 0), torch.zeros(0, dtype=torch.long)
    return torch.cat(feats), torch.cat(labels)


# ------------------------------------------------------------------ benchmark
@dataclass
class Collapse:
    name: ClassVar[str] = "nc"
    DATA_FILES: ClassVar[tuple[str, ...]] = (CORPUS,)  # evaluation text (the word lists are resources)
    n: int | None = None  # WikiText-2 test paragraphs to scan, drawn with seed (None: all)
    seed: int = 0  # paragraph draw seed
    min_count: int = 3  # drop classes (tokens) seen fewer times

    def __post_init__(self) -> None:
        check_config(self)
        if self.min_count < 1:
            raise ConfigError(f"benchmarks.nc.min_count must be >= 1, got {self.min_count}")

    def evaluate(self, lm: ScoringLM, data: DataRoot) -> BenchmarkResult:
        specs = metric_specs()
        reason = None if isinstance(lm, RepresentationLM) else \
            f"{type(lm).__name__} is not a RepresentationLM (encode, per_token_hidden_states, lm_head_rows, decode)"
        if reason is None:
            classes, _ = fairness_classes(data, lm.encode)
            paragraphs = load_paragraphs(data, self.n, self.seed)
            features, token_labels = collect(per_token_states(lm, paragraphs), classes)
            counts = torch.bincount(token_labels).tolist() if len(token_labels) else []
            kept = [t for t in sorted(classes) if t < len(counts) and counts[t] >= self.min_count]
            if len(kept) < 2:
                reason = f"only {len(kept)} class token(s) seen >= {self.min_count} times in {len(paragraphs)} paragraphs"
        if reason is not None:
            log.warning("collapse: metrics are NaN: %s", reason)
            return BenchmarkResult(metrics={s.key: math.nan for s in specs}, specs=specs, records=[], n=0,
                                   info={"skipped": reason})
        index = {t: i for i, t in enumerate(kept)}
        select = torch.tensor([int(t) in index for t in token_labels.tolist()])
        labels = torch.tensor([index[int(t)] for t in token_labels[select].tolist()], dtype=torch.long)
        features, weights = features[select], lm.lm_head_rows(kept)
        values = nc_metrics(features, labels, weights)
        records = class_records(lm, kept, classes, features, labels, weights)
        return BenchmarkResult(
            metrics={f"nc/{k}": v for k, v in values.items()}, specs=specs, records=records, n=len(records),
            info={"paragraphs": len(paragraphs), "features": len(labels), "classes": len(kept),
                  "classes_defined": len(classes), "min_count": self.min_count})


def class_records(lm: RepresentationLM, kept: Sequence[int], classes: dict, features: torch.Tensor, labels: torch.Tensor,
                  weights: torch.Tensor) -> list[dict[str, Any]]:
    means = class_means(features.double(), labels, len(kept))
    cos = duality_cosines(means, weights.double()).tolist()
    norms = centre(means).norm(dim=1).tolist()
    counts = torch.bincount(labels, minlength=len(kept)).tolist()
    return [{"id": f"token-{t}", "token": lm.decode([t]), "words": classes[t]["words"],
             "gender": classes[t]["gender"], "count": counts[i], "duality_cos": cos[i], "centred_mean_norm": norms[i]}
            for i, t in enumerate(kept)]


def metric_specs() -> list[MetricSpec]:
    return [MetricSpec(key=f"nc/{k}", group="diagnostic", direction="lower", help=h, aggregate="none")
            for k, h in METRICS.items()]
