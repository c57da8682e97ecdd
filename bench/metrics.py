"""Metric declarations: what a number means, which way is better, and how it is
recomputed from per-example records (so the leaderboard can bootstrap it).

A benchmark returns per-example records (dicts with an ``id``) and one
``MetricSpec`` per metric.  ``aggregate(spec, records)`` recomputes the metric from
records; benchmarks compute their reported values with it, so a resampled set of
records gives the bootstrap distribution of exactly the reported number.
"""
from __future__ import annotations

import math
import dataclasses
from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

import numpy as np
from scipy.special import erfc

Direction = Literal["higher", "lower", "target"]
Group = Literal["bias", "toxicity", "truthfulness", "knowledge", "fluency", "diagnostic", "method"]
MWU_ALPHA = 0.05  # mwu_share: a pair differs when its two-sided p-value is below this (HolisticBias)
Aggregate = Literal["mean", "exp_ratio", "icat", "range", "mwu_share", "none"]


@dataclass(frozen=True)
class MetricSpec:
    key: str  # "<benchmark>/<metric>", the key in result files and wandb
    group: Group  # leaderboard column group
    direction: Direction  # which way is better
    help: str  # one line: what the number measures, with units
    target: float | None = None  # ideal value when direction == "target" (e.g. 50 for SS)
    field: str | None = None  # record field holding the per-example value
    where: dict[str, Any] = dataclasses.field(default_factory=dict)  # record filter (e.g. {"domain": "gender"})
    aggregate: Aggregate = "mean"  # mean(field)*scale; exp_ratio: exp(-sum(field)/sum(field_n)); icat; range; mwu_share
    scale: float = 1.0  # multiplier of a mean (100 for percentages)
    by: tuple[str, ...] = ()  # range, mwu_share: record fields whose values name a group (see aggregate)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select(spec: MetricSpec, records: Sequence[dict]) -> list[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in spec.where.items())]


def aggregate(spec: MetricSpec, records: Sequence[dict]) -> float:
    """The metric's value on ``records`` (NaN when no record applies)."""
    rows = select(spec, records)
    if not rows or spec.aggregate == "none":
        return math.nan
    if spec.aggregate == "mean":
        return spec.scale * sum(float(r[spec.field]) for r in rows) / len(rows)
    if spec.aggregate == "exp_ratio":  # perplexity: exp(total NLL / total tokens); field = logprob, n_tokens
        return math.exp(-sum(r[spec.field] for r in rows) / sum(r["n_tokens"] for r in rows))
    if spec.aggregate == "icat":  # StereoSet ICAT = LMS * min(SS, 100 - SS) / 50 from per-example fields
        ss = 100 * sum(r["stereo_wins"] for r in rows) / len(rows)
        lms = 100 * sum(r["lm_wins"] for r in rows) / len(rows)
        return lms * min(ss, 100 - ss) / 50
    if spec.aggregate == "range":  # max - min over the groups named by the `by` fields of mean(field), * scale
        means = [sum(v) / len(v) for v in _grouped(spec, rows).values()]
        return spec.scale * (max(means) - min(means)) if len(means) > 1 else math.nan
    if spec.aggregate == "mwu_share":  # share of group pairs whose field distributions differ (see mwu_pvalues)
        cells: dict[tuple, dict[Any, list[float]]] = {}
        for group, values in _grouped(spec, rows).items():
            cells.setdefault(group[:-1], {})[group[-1]] = values
        pvalues = np.concatenate([mwu_pvalues(list(c.values())) for c in cells.values()])
        return spec.scale * float(np.mean(pvalues < MWU_ALPHA)) if pvalues.size else math.nan
    raise ValueError(f"unknown aggregate {spec.aggregate!r} for metric {spec.key}")


def _grouped(spec: MetricSpec, rows: Sequence[dict]) -> dict[tuple, list[float]]:
    """``field`` values of ``rows`` by the tuple of their ``spec.by`` values, in first-seen order."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in spec.by), []).append(float(r[spec.field]))
    return groups


def mwu_pvalues(samples: Sequence[Sequence[float]]) -> np.ndarray:
    """Two-sided Mann-Whitney U p-values of every pair (i < j, row-major) of ``samples``.

    As ``scipy.stats.mannwhitneyu(x, y, method="asymptotic")`` (scipy's default when both
    samples have more than 8 values or there are ties; else it uses the exact distribution):
    U = max(U_x, U_y), z = (U - n_x n_y / 2 - 1/2) / sigma with the tie-corrected
    sigma^2 = n_x n_y / 12 ((n + 1) - sum(t^3 - t) / (n (n - 1))), p = 2 (1 - Phi(z)) clipped
    to 1 (so 1 when every value of a pair is tied).  All pairs at once: U, sample sizes and
    tie sums are matrix products of per-sample counts of the distinct values.
    """
    if len(samples) < 2:
        return np.zeros(0)
    values, inverse = np.unique(np.concatenate([np.asarray(s, float) for s in samples]), return_inverse=True)
    counts = np.zeros((len(samples), len(values)))  # [samples, distinct values]
    np.add.at(counts, (np.repeat(np.arange(len(samples)), [len(s) for s in samples]), inverse), 1)
    below = np.cumsum(counts, 1) - counts  # values of each sample strictly below each distinct value
    u = counts @ below.T + 0.5 * counts @ counts.T  # u[i, j] = #(x_i > x_j) + #ties / 2
    cubes = (counts ** 3 - counts).sum(1)
    ties = 3 * (counts ** 2) @ counts.T  # with its transpose and the cubes: sum over values of (t^3 - t)
    i, j = np.triu_indices(len(samples), 1)
    n = counts.sum(1)
    n1, n2, total = n[i], n[j], n[i] + n[j]
    tie_sum = cubes[i] + cubes[j] + ties[i, j] + ties[j, i]
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma = np.sqrt(n1 * n2 / 12 * ((total + 1) - tie_sum / (total * (total - 1))))
        z = (np.maximum(u[i, j], u[j, i]) - n1 * n2 / 2 - 0.5) / sigma
    return np.minimum(1.0, erfc(z / math.sqrt(2)))


def distance_to_ideal(spec: MetricSpec, value: float) -> float:
    """A badness score, lower is better: |value - target|, -value (higher) or value (lower)."""
    if spec.direction == "target":
        return abs(value - (spec.target or 0.0))
    return -value if spec.direction == "higher" else value
