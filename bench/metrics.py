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

Direction = Literal["higher", "lower", "target"]
Group = Literal["bias", "toxicity", "truthfulness", "knowledge", "fluency", "diagnostic", "method"]
Aggregate = Literal["mean", "exp_ratio", "icat", "ratio", "abs_gap", "none"]


@dataclass(frozen=True)
class MetricSpec:
    key: str  # "<benchmark>/<metric>", the key in result files and wandb
    group: Group  # leaderboard column group
    direction: Direction  # which way is better
    help: str  # one line: what the number measures, with units
    target: float | None = None  # ideal value when direction == "target" (e.g. 50 for SS)
    field: str | None = None  # record field holding the per-example value
    where: dict[str, Any] = dataclasses.field(default_factory=dict)  # record filter (e.g. {"domain": "gender"})
    aggregate: Aggregate = "mean"  # how records make the value: see ``aggregate``
    scale: float = 1.0  # multiplier of a mean, ratio or gap (100 for percentages)
    denominator: str | None = None  # ratio: record field summed in the denominator
    contrast: tuple[dict[str, Any], dict[str, Any]] | None = None  # abs_gap: the two record filters compared

    def __post_init__(self) -> None:
        if self.aggregate == "ratio" and not (self.field and self.denominator):
            raise ValueError(f"metric {self.key}: aggregate 'ratio' needs field and denominator")
        if self.aggregate == "abs_gap" and (not self.field or self.contrast is None or len(self.contrast) != 2):
            raise ValueError(f"metric {self.key}: aggregate 'abs_gap' needs field and two contrast filters")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def matches(record: dict, where: dict[str, Any]) -> bool:
    return all(record.get(k) == v for k, v in where.items())


def select(spec: MetricSpec, records: Sequence[dict]) -> list[dict]:
    return [r for r in records if matches(r, spec.where)]


def aggregate(spec: MetricSpec, records: Sequence[dict]) -> float:
    """The metric's value on the records selected by ``spec.where`` (NaN when none applies):

    - mean: scale * mean(field)
    - exp_ratio: exp(-sum(field) / sum(n_tokens)) (perplexity from log-probs)
    - icat: StereoSet ICAT from the stereo_wins / lm_wins fields
    - ratio: scale * sum(field) / sum(denominator) (NaN when the denominator sums to 0)
    - abs_gap: scale * |mean(field | contrast[0]) - mean(field | contrast[1])| (NaN when a side is empty)
    """
    rows = select(spec, records)
    if not rows or spec.aggregate == "none":
        return math.nan
    if spec.aggregate == "mean":
        return spec.scale * sum(float(r[spec.field]) for r in rows) / len(rows)
    if spec.aggregate == "ratio":
        den = sum(float(r[spec.denominator]) for r in rows)
        return spec.scale * sum(float(r[spec.field]) for r in rows) / den if den else math.nan
    if spec.aggregate == "abs_gap":
        sides = [[float(r[spec.field]) for r in rows if matches(r, f)] for f in spec.contrast]
        if not all(sides):
            return math.nan
        return spec.scale * abs(sum(sides[0]) / len(sides[0]) - sum(sides[1]) / len(sides[1]))
    if spec.aggregate == "exp_ratio":  # perplexity: exp(total NLL / total tokens); field = logprob, n_tokens
        return math.exp(-sum(r[spec.field] for r in rows) / sum(r["n_tokens"] for r in rows))
    if spec.aggregate == "icat":  # StereoSet ICAT = LMS * min(SS, 100 - SS) / 50 from per-example fields
        ss = 100 * sum(r["stereo_wins"] for r in rows) / len(rows)
        lms = 100 * sum(r["lm_wins"] for r in rows) / len(rows)
        return lms * min(ss, 100 - ss) / 50
    raise ValueError(f"unknown aggregate {spec.aggregate!r} for metric {spec.key}")


def distance_to_ideal(spec: MetricSpec, value: float) -> float:
    """A badness score, lower is better: |value - target|, -value (higher) or value (lower)."""
    if spec.direction == "target":
        return abs(value - (spec.target or 0.0))
    return -value if spec.direction == "higher" else value
