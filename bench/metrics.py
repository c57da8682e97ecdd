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
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Literal, Sequence

import numpy as np

Direction = Literal["higher", "lower", "target"]
Group = Literal["bias", "toxicity", "truthfulness", "knowledge", "fluency", "diagnostic", "method"]
Aggregate = Literal["mean", "macro", "exp_ratio", "icat", "none"]


@dataclass(frozen=True)
class MetricSpec:
    key: str  # "<benchmark>/<metric>", the key in result files and wandb
    group: Group  # leaderboard column group
    direction: Direction  # which way is better
    help: str  # one line: what the number measures, with units
    target: float | None = None  # ideal value when direction == "target" (e.g. 50 for SS)
    field: str | None = None  # record field holding the per-example value
    where: dict[str, Any] = dataclasses.field(default_factory=dict)  # record filter (e.g. {"domain": "gender"})
    aggregate: Aggregate = "mean"  # mean(field) * scale; macro: mean over `by` groups of mean(field) * scale;
    #                                exp_ratio: exp(-sum(field)/sum(n_tokens)); icat: see ``aggregate``
    scale: float = 1.0  # multiplier of a mean (100 for percentages)
    by: str | None = None  # macro, icat: record field whose groups are averaged (e.g. StereoSet's target term)

    def __post_init__(self) -> None:
        if self.aggregate == "macro" and self.by is None:
            raise ValueError(f"metric {self.key}: aggregate 'macro' needs a `by` field")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def select(spec: MetricSpec, records: Sequence[dict]) -> list[dict]:
    return [r for r in records if all(r.get(k) == v for k, v in spec.where.items())]


def icat(ss, lms):
    """StereoSet ICAT = LMS min(SS, 100 - SS) / 50 (SS, LMS in %; floats or numpy arrays)."""
    return lms * np.minimum(ss, 100 - ss) / 50


def _mean(rows: Sequence[dict], field: str, by: str | None) -> float:
    """mean(field) over rows, or with ``by`` the mean over groups of rows (equal ``r[by]``) of
    each group's mean (the StereoSet script's per-target-term macro-average)."""
    if by is None:
        return sum(float(r[field]) for r in rows) / len(rows)
    groups: dict[Any, list[float]] = defaultdict(list)
    for r in rows:
        groups[r[by]].append(float(r[field]))
    return sum(sum(v) / len(v) for v in groups.values()) / len(groups)


def aggregate(spec: MetricSpec, records: Sequence[dict]) -> float:
    """The metric's value on ``records`` (NaN when no record applies).  ``icat``: ICAT of
    SS = 100 mean(stereo_wins) and LMS = 100 mean(lm_wins), each a macro-average over the
    groups of ``spec.by`` when it is set (``stereoset_evaluation.py``'s macro ICAT)."""
    rows = select(spec, records)
    if not rows or spec.aggregate == "none":
        return math.nan
    if spec.aggregate in ("mean", "macro"):
        return spec.scale * _mean(rows, spec.field, spec.by if spec.aggregate == "macro" else None)
    if spec.aggregate == "exp_ratio":  # perplexity: exp(total NLL / total tokens); field = logprob, n_tokens
        return math.exp(-sum(r[spec.field] for r in rows) / sum(r["n_tokens"] for r in rows))
    if spec.aggregate == "icat":
        return float(icat(100 * _mean(rows, "stereo_wins", spec.by), 100 * _mean(rows, "lm_wins", spec.by)))
    raise ValueError(f"unknown aggregate {spec.aggregate!r} for metric {spec.key}")


def distance_to_ideal(spec: MetricSpec, value: float) -> float:
    """A badness score, lower is better: |value - target|, -value (higher) or value (lower)."""
    if spec.direction == "target":
        return abs(value - (spec.target or 0.0))
    return -value if spec.direction == "higher" else value
