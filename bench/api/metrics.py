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
from typing import Any, Callable, Iterable, Literal, NamedTuple, Sequence

import numpy as np
from scipy.special import erfc

Direction = Literal["higher", "lower", "target"]
Group = Literal["bias", "toxicity", "truthfulness", "knowledge", "fluency", "diagnostic", "method"]
MWU_ALPHA = 0.05  # mwu_share: a pair differs when its two-sided p-value is below this (HolisticBias)
Aggregate = Literal["mean", "macro", "exp_ratio", "icat", "ratio", "abs_gap", "range", "mwu_share", "none"]


@dataclass(frozen=True)
class MetricSpec:
    key: str  # "<benchmark>/<metric>", the key in result files and wandb
    group: Group  # leaderboard column group
    direction: Direction  # which way is better
    help: str  # one line: what the number measures, with units
    target: float | None = None  # ideal value when direction == "target" (e.g. 50 for SS)
    field: str | None = None  # record field holding the per-example value
    where: dict[str, Any] = dataclasses.field(default_factory=dict)  # record filter (e.g. {"domain": "gender"})
    aggregate: Aggregate = "mean"  # a key of ADDITIVE, GROUPED or BY_RECORDS (how records make the value), or "none"
    scale: float = 1.0  # multiplier of a mean, ratio or gap (100 for percentages)
    denominator: str | None = None  # ratio: record field summed in the denominator
    contrast: tuple[dict[str, Any], dict[str, Any]] | None = None  # abs_gap: the two record filters compared
    by: tuple[str, ...] = ()  # macro, icat, range, mwu_share: record fields whose values name a group

    def __post_init__(self) -> None:
        if self.aggregate == "ratio" and not (self.field and self.denominator):
            raise ValueError(f"metric {self.key}: aggregate 'ratio' needs field and denominator")
        if self.aggregate == "abs_gap" and (not self.field or self.contrast is None or len(self.contrast) != 2):
            raise ValueError(f"metric {self.key}: aggregate 'abs_gap' needs field and two contrast filters")
        if self.aggregate in ("macro", "range", "mwu_share") and not self.by:
            raise ValueError(f"metric {self.key}: aggregate {self.aggregate!r} needs a `by` field")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spec_from_dict(d: dict[str, Any]) -> MetricSpec:
    """The MetricSpec of ``to_dict`` output (a result file's ``metric_specs`` entry); unknown keys are ignored."""
    names = {f.name for f in dataclasses.fields(MetricSpec)}
    return MetricSpec(**{k: v for k, v in d.items() if k in names})


def breakdowns(specs: Iterable[MetricSpec]) -> dict[str, str]:
    """Subset metrics -> their parent metric: a metric is a breakdown (e.g. SS per domain, BBQ s_AMB per
    category) when the same benchmark computes the same quantity (field, aggregate, denominator, contrast)
    on a strictly larger record set, i.e. with a ``where`` that is a proper subset of its own; the parent
    is the narrowest such metric."""
    specs = list(specs)

    def kind(s: MetricSpec) -> tuple:
        return s.key.split("/")[0], s.field, s.aggregate, s.denominator, s.contrast and list(s.contrast)

    parents = {}
    for s in specs:
        wider = [p for p in specs if kind(p) == kind(s) and p.where.items() < s.where.items()]
        if wider:
            parents[s.key] = max(wider, key=lambda p: len(p.where)).key
    return parents


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


class Grouped(NamedTuple):
    fields: Callable[[MetricSpec], tuple[str, ...]]  # the record fields averaged within each group
    finish: Callable[[MetricSpec, np.ndarray], np.ndarray]  # macro means [..., F] -> value [...]


# Macro-averages: each field's mean within every group of ``by`` (e.g. StereoSet's target term), then
# the mean over the groups present (stereoset_evaluation.py's per-term averaging), then ``finish``.
# The bootstrap sums each group's field totals and counts over resampled ids (so a resample averages
# over the groups it drew) and calls the same ``finish``.  ``icat`` is grouped when ``by`` is set.
GROUPED: dict[str, Grouped] = {
    "macro": Grouped(lambda spec: (spec.field,), lambda spec, m: spec.scale * m[..., 0]),
    "icat": Grouped(lambda spec: ("stereo_wins", "lm_wins"), lambda spec, m: icat(100 * m[..., 0], 100 * m[..., 1])),
}


def is_grouped(spec: MetricSpec) -> bool:
    return spec.aggregate in GROUPED and bool(spec.by)


def group_totals(spec: MetricSpec, rows: Sequence[dict]) -> dict[tuple, np.ndarray]:
    """Per group of ``spec.by`` (first-seen order): [sum of each field..., record count]."""
    fields = GROUPED[spec.aggregate].fields(spec)
    out: dict[tuple, list[float]] = {}
    for r in rows:
        acc = out.setdefault(tuple(r[k] for k in spec.by), [0.0] * (len(fields) + 1))
        for i, f in enumerate(fields):
            acc[i] += float(r[f])
        acc[-1] += 1.0
    return {g: np.array(v) for g, v in out.items()}


def macro_means(t: np.ndarray) -> np.ndarray:
    """Group totals [..., G, F + 1] -> mean over present groups of each field's group mean [..., F]."""
    present = t[..., -1] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(present[..., None], t[..., :-1] / t[..., -1:], 0.0)
        return means.sum(-2) / present.sum(-1)[..., None]


def _range(spec: MetricSpec, rows: Sequence[dict]) -> float:
    """max - min over the groups named by the ``by`` fields of mean(field), * scale (NaN: < 2 groups)."""
    means = [sum(v) / len(v) for v in _grouped(spec, rows).values()]
    return spec.scale * (max(means) - min(means)) if len(means) > 1 else math.nan


def _mwu_share(spec: MetricSpec, rows: Sequence[dict]) -> float:
    """Share (* scale) of pairs of groups (the last ``by`` field, within each value of the others) whose
    ``field`` distributions differ by a two-sided Mann-Whitney U test at MWU_ALPHA (``mwu_pvalues``)."""
    cells: dict[tuple, dict[Any, list[float]]] = {}
    for group, values in _grouped(spec, rows).items():
        cells.setdefault(group[:-1], {})[group[-1]] = values
    pvalues = np.concatenate([mwu_pvalues(list(c.values())) for c in cells.values()])
    return spec.scale * float(np.mean(pvalues < MWU_ALPHA)) if pvalues.size else math.nan


# Aggregates that are not sums of per-record statistics: computed from the selected records; the
# bootstrap recomputes them on the records of each resample of example ids.
BY_RECORDS: dict[str, Callable[[MetricSpec, Sequence[dict]], float]] = {"range": _range, "mwu_share": _mwu_share}


def totals(spec: MetricSpec, rows: Sequence[dict]) -> np.ndarray:
    """Summed statistics [k] of ``rows`` (sequential sums, in record order)."""
    stats = ADDITIVE[spec.aggregate].stats
    return np.array([sum(column) for column in zip(*(stats(spec, r) for r in rows))], dtype=float)


def aggregate(spec: MetricSpec, records: Sequence[dict]) -> float:
    """The metric's value on ``records`` (NaN when no record applies or the aggregate is "none")."""
    rows = select(spec, records)
    if not rows or spec.aggregate == "none":
        return math.nan
    if spec.aggregate in BY_RECORDS:
        return BY_RECORDS[spec.aggregate](spec, rows)
    if is_grouped(spec):
        t = np.stack(list(group_totals(spec, rows).values()))
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(GROUPED[spec.aggregate].finish(spec, macro_means(t)))
    if spec.aggregate not in ADDITIVE:
        raise ValueError(f"unknown aggregate {spec.aggregate!r} for metric {spec.key}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(ADDITIVE[spec.aggregate].finish(spec, totals(spec, rows)))


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
