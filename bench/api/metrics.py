"""Metric declarations: what a number means, which way is better, and how it is
recomputed from per-example records (so the leaderboard can bootstrap it).

A benchmark returns per-example records (dicts with an ``id``) and one
``MetricSpec`` per metric.  ``aggregate(spec, records)`` recomputes the metric from
records; benchmarks compute their reported values with it, so a resampled set of
records gives the bootstrap distribution of exactly the reported number.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal, NamedTuple, Sequence

import numpy as np

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
    aggregate: Aggregate = "mean"  # a key of ADDITIVE (how records make the value), or "none" (not recomputable)
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


# --------------------------------------------------------------- aggregates
# The one registry of aggregates.  An additive aggregate is a function ``finish`` of the sums of
# per-record statistics ``stats``.  ``aggregate`` sums them over the records; the bootstrap
# (bench.report.bootstrap) sums them over resampled example ids and calls the same ``finish``, so
# the reported value and every replicate come from one formula.  ``finish`` takes totals [..., k],
# returns NaN where the value is undefined (an empty side, a zero denominator), and uses IEEE
# arithmetic only (exp through ``math.exp``), so the value equals plain Python's bit for bit.
_exp = np.vectorize(math.exp, otypes=[float])


class Additive(NamedTuple):
    stats: Callable[[MetricSpec, dict], tuple[float, ...]]  # one record's additive statistics
    finish: Callable[[MetricSpec, np.ndarray], np.ndarray]  # summed statistics [..., k] -> value [...]


def icat(ss: Any, lms: Any) -> Any:
    """StereoSet ICAT = LMS min(SS, 100 - SS) / 50 (percent scales; scalars or arrays)."""
    return lms * np.minimum(ss, 100 - ss) / 50


ADDITIVE: dict[str, Additive] = {
    # mean(field) * scale
    "mean": Additive(lambda spec, r: (float(r[spec.field]), 1.0),
                     lambda spec, t: spec.scale * t[..., 0] / t[..., 1]),
    # perplexity: exp(-sum(field) / sum(n_tokens)); field = summed log-prob of a record's n_tokens
    "exp_ratio": Additive(lambda spec, r: (float(r[spec.field]), float(r["n_tokens"])),
                          lambda spec, t: _exp(-t[..., 0] / t[..., 1])),
    # StereoSet ICAT from per-example stereo_wins and lm_wins (micro-averaged SS and LMS)
    "icat": Additive(lambda spec, r: (float(r["stereo_wins"]), float(r["lm_wins"]), 1.0),
                     lambda spec, t: icat(100 * t[..., 0] / t[..., 2], 100 * t[..., 1] / t[..., 2])),
    # scale * sum(field) / sum(denominator), e.g. BBQ s_DIS (NaN when the denominator sums to 0)
    "ratio": Additive(lambda spec, r: (float(r[spec.field]), float(r[spec.denominator])),
                      lambda spec, t: np.where(t[..., 1] != 0, spec.scale * t[..., 0] / t[..., 1], np.nan)),
    # scale * |mean(field | contrast[0]) - mean(field | contrast[1])|, e.g. a WinoBias TPR gap (NaN: a side is empty)
    "abs_gap": Additive(lambda spec, r: tuple(x for f in spec.contrast for x in
                                              ((float(r[spec.field]), 1.0) if matches(r, f) else (0.0, 0.0))),
                        lambda spec, t: np.where((t[..., 1] > 0) & (t[..., 3] > 0),
                                                 spec.scale * np.abs(t[..., 0] / t[..., 1] - t[..., 2] / t[..., 3]),
                                                 np.nan)),
}


def totals(spec: MetricSpec, rows: Sequence[dict]) -> np.ndarray:
    """Summed statistics [k] of ``rows`` (sequential sums, in record order)."""
    stats = ADDITIVE[spec.aggregate].stats
    return np.array([sum(column) for column in zip(*(stats(spec, r) for r in rows))], dtype=float)


def aggregate(spec: MetricSpec, records: Sequence[dict]) -> float:
    """The metric's value on ``records`` (NaN when no record applies or the aggregate is "none")."""
    rows = select(spec, records)
    if not rows or spec.aggregate == "none":
        return math.nan
    if spec.aggregate not in ADDITIVE:
        raise ValueError(f"unknown aggregate {spec.aggregate!r} for metric {spec.key}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(ADDITIVE[spec.aggregate].finish(spec, totals(spec, rows)))


def distance_to_ideal(spec: MetricSpec, value: float) -> float:
    """A badness score, lower is better: |value - target|, -value (higher) or value (lower)."""
    if spec.direction == "target":
        return abs(value - (spec.target or 0.0))
    return -value if spec.direction == "higher" else value
