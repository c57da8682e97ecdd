"""Comparing a method run with the ``none`` run: per-metric changes with paired bootstrap
intervals, and the averages behind the alignment-tax axes (bias reduction, capability change)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from bench.api.metrics import MetricSpec, distance_to_ideal
from bench.report.bootstrap import (
    excludes_zero,
    percentile_interval,
    resample_counts,
    shared_ids,
)
from bench.report.runs import Run

GROUPS = ("bias", "toxicity", "truthfulness", "knowledge", "fluency", "diagnostic")  # column groups, in order
CAPABILITY = ("truthfulness", "knowledge", "fluency")  # groups whose loss is the alignment tax
# Left out of the default capability change (still in the table and the verdict): generation-pattern shares,
# drawn in the intelligibility figure; a relative change of a share near 0 means nothing.
NOT_IN_CAPABILITY = ("patterns/",)
BASELINE = "none"
CONTROL = "finetune"  # the fine-tuning control: plain continued LM training, same corpus, budget and trainer
# Methods that fine-tune the model (also any run whose method info has "method/steps"): compared with CONTROL too.
FINETUNING = ("cda", "dropout", "nc", "cda_nc3", "contrastive", "contrastive_nc3")


@dataclass(frozen=True)
class Interval:
    est: float  # point estimate
    lo: float = math.nan  # 95% bootstrap percentile interval
    hi: float = math.nan

    @property
    def sig(self) -> bool:
        return excludes_zero(self.lo, self.hi)

    @classmethod
    def of(cls, est: float, reps: np.ndarray | None) -> "Interval":
        return cls(est, *percentile_interval(reps)) if reps is not None else cls(est)


def improvement(spec: MetricSpec, base, value):
    """How much better ``value`` is than ``base`` (arrays allowed): distance-to-ideal reduction."""
    return distance_to_ideal(spec, base) - distance_to_ideal(spec, value)


@dataclass
class Change:
    """One metric of a method run against the ``none`` run."""

    spec: MetricSpec
    base: float  # value in the `none` run
    value: float  # value in this run
    reps: tuple[np.ndarray, np.ndarray] | None  # bootstrap replicates (base, this run)

    @cached_property
    def delta(self) -> Interval:
        return Interval.of(self.value - self.base, None if self.reps is None else self.reps[1] - self.reps[0])

    @cached_property
    def dist(self) -> Interval | None:
        """Change of |value - target| (target metrics; negative = closer to the target)."""
        if self.spec.direction != "target":
            return None
        t = self.spec.target
        d = None if self.reps is None else np.abs(self.reps[1] - t) - np.abs(self.reps[0] - t)
        return Interval.of(abs(self.value - t) - abs(self.base - t), d)

    @property
    def effect(self) -> int:
        """+1 significantly better, -1 significantly worse, 0 otherwise."""
        iv = self.dist or self.delta
        if not iv.sig:
            return 0
        better = iv.est < 0 if self.spec.direction in ("lower", "target") else iv.est > 0
        return 1 if better else -1


def paired_replicates(spec: MetricSpec, base: Run, run: Run, n_boot: int, seed: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """[n_boot] resampled values of ``spec`` in ``base`` and in ``run`` under the same draws of their shared
    ids (stream: the benchmark), each run's replicates memoised (``Run.replicates``); None without records
    or shared ids (``shared_ids``)."""
    gb, gr = base.groups(spec), run.groups(spec)
    ids = None if gb is None or gr is None else shared_ids(spec, gb, gr)
    if ids is None:
        return None
    stream = spec.key.split("/")[0]
    return base.replicates(spec, ids, n_boot, seed, stream), run.replicates(spec, ids, n_boot, seed, stream)


def compare_runs(base: Run, run: Run, n_boot: int, seed: int) -> dict[str, Change]:
    changes = {}
    for key, spec in run.specs.items():
        if not all(isinstance(r.metrics.get(key), (int, float)) for r in (base, run)):
            continue
        reps = paired_replicates(spec, base, run, n_boot, seed)
        changes[key] = Change(spec, float(base.metrics[key]), float(run.metrics[key]), reps)
    return changes


def mean_improvement(changes: list[Change], relative: bool) -> Interval | None:
    """Distance-to-ideal reduction averaged over metrics, first within each group, then over groups
    (relative: each in % of |base|, metrics with base 0 left out; a lower-is-better metric as the
    relative change of its reciprocal, e.g. perplexity as per-token probability, so that every term
    lies in [-100, inf) and one broken model cannot swamp the average).  The interval comes from the
    same average of the replicates."""
    if relative:
        changes = [c for c in changes if c.base != 0 and math.isfinite(c.base)]
    if not changes:
        return None

    def one(c: Change, base, value):
        if not relative:
            return improvement(c.spec, base, value)
        with np.errstate(divide="ignore", invalid="ignore"):
            if c.spec.direction == "lower":
                return 100 * (base / value - 1)
            return 100 * improvement(c.spec, base, value) / np.abs(base)

    def average(values: list) -> Any:
        groups = list(dict.fromkeys(c.spec.group for c in changes))
        return np.mean([np.mean([v for c, v in zip(changes, values) if c.spec.group == g], axis=0) for g in groups],
                       axis=0)

    est = float(average([one(c, c.base, c.value) for c in changes]))
    if any(c.reps is None for c in changes):
        return Interval(est)
    return Interval.of(est, average([one(c, *c.reps) for c in changes]))


def seed_weights(n_seeds: int, n_boot: int, seed: int, stream: str) -> np.ndarray:
    """[n_boot, n_seeds] resampling weights of training seeds: how often each seed is drawn, / n_seeds."""
    return resample_counts(n_seeds, n_boot, seed, "seeds/" + stream) / n_seeds


def pool_seeds(per_seed: list[dict[str, Change]], n_boot: int, seed: int, stream: str) -> dict[str, Change]:
    """Changes of a method over training seeds (each seed's changes against its own baseline):
    value and base are means over seeds; the replicates come from a two-level bootstrap: replicate b
    draws the seeds with replacement (``seed_weights``, stream ``seeds/<stream>``) and averages the
    drawn seeds' paired replicate b.  Replicate b resamples the same example ids in every seed (the
    seeds scored the same examples), so example and seed variance both enter the interval.  Only
    metrics every seed has are pooled; without replicates in some seed, no interval."""
    keys = [k for k in per_seed[0] if all(k in ch for ch in per_seed)]
    w = seed_weights(len(per_seed), n_boot, seed, stream)
    out = {}
    for k in keys:
        cs = [ch[k] for ch in per_seed]
        reps = None
        if all(c.reps is not None and len(c.reps[0]) == n_boot for c in cs):
            reps = tuple(np.einsum("bs,sb->b", w, np.stack([c.reps[i] for c in cs])) for i in (0, 1))
        out[k] = Change(cs[0].spec, float(np.mean([c.base for c in cs])), float(np.mean([c.value for c in cs])),
                        reps)
    return out
