"""Paired bootstrap over examples: the sampling distribution of a metric in two runs
scored on the same example ids.

Each resample draws the ids both runs scored (sorted, with replacement) and
recomputes the metric in both runs on the records of the drawn ids, exactly as
``bench.api.metrics.aggregate`` would on the resampled records.  All records sharing
an id move together (a cluster bootstrap when a benchmark writes several records
per example).  Draws for benchmark ``b`` come from
``np.random.default_rng([seed, zlib.crc32(b.encode())]).integers(0, n, (n_boot, n))``,
so different benchmarks are resampled independently and any run can be replayed.
"""
from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from bench.api.metrics import (ADDITIVE, BY_RECORDS, GROUPED, MetricSpec, group_totals, is_grouped, macro_means,
                                select, totals)
from bench.report.by_records import mwu_share_replicates

Groups = dict[str, list[dict]]  # example id -> its records


def group_by_id(records: Sequence[dict]) -> Groups:
    groups: Groups = {}
    for r in records:
        groups.setdefault(str(r["id"]), []).append(r)
    return groups


@lru_cache(maxsize=64)
def resample_counts(n: int, n_boot: int, seed: int, stream: str) -> np.ndarray:
    """[n_boot, n] how often each of n sorted ids is drawn in each resample."""
    rng = np.random.default_rng([seed, zlib.crc32(stream.encode())])
    counts = rng.integers(0, n, size=(n_boot, n))  # the draws, each row replaced by its counts in place
    for row in counts:  # (one [n_boot, n] array, not two: HolisticBias full has n = 549,120)
        row[:] = np.bincount(row, minlength=n)
    counts.setflags(write=False)
    return counts


def resampled_group_totals(per_id: Sequence[dict[tuple, np.ndarray]], counts: np.ndarray) -> np.ndarray | None:
    """[n_boot, G, K] each group's K summed statistics over each resample's drawn ids, from each id's
    {group: [K]} (groups in first-seen order); None when no id has a group."""
    keys = {g: j for j, g in enumerate(dict.fromkeys(g for d in per_id for g in d))}
    if not keys:
        return None
    width = len(next(v for d in per_id for v in d.values()))
    stats = np.zeros((len(per_id), len(keys), width))
    for i, d in enumerate(per_id):
        for g, v in d.items():
            stats[i, keys[g]] = v
    return (counts @ stats.reshape(len(per_id), -1)).reshape(len(counts), len(keys), width)


def range_replicates(spec: MetricSpec, rows_by_id: Sequence[list[dict]], counts: np.ndarray) -> np.ndarray:
    """[n_boot] max - min over the groups with a drawn record of mean(field), * scale (``metrics._range``;
    NaN with fewer than 2 groups): each group's weighted sum over its weighted record count."""
    per_id = []
    for rows in rows_by_id:
        sums: dict[tuple, np.ndarray] = {}
        for r in rows:
            sums.setdefault(tuple(r[k] for k in spec.by), np.zeros(2))[:] += (float(r[spec.field]), 1.0)
        per_id.append(sums)
    t = resampled_group_totals(per_id, counts)
    if t is None:
        return np.full(len(counts), np.nan)
    present = t[..., 1] > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        means = t[..., 0] / t[..., 1]
    spread = np.where(present, means, -np.inf).max(1) - np.where(present, means, np.inf).min(1)
    return np.where(present.sum(1) > 1, spec.scale * spread, np.nan)


# The aggregates computed from the records themselves (bench.api.metrics.BY_RECORDS), all resamples at once.
BY_RECORDS_REPLICATES: dict[str, Callable[[MetricSpec, Sequence[list[dict]], np.ndarray], np.ndarray]] = {
    "range": range_replicates, "mwu_share": mwu_share_replicates}


def replicates(spec: MetricSpec, groups: Groups, ids: Sequence[str], counts: np.ndarray) -> np.ndarray:
    """[n_boot] the metric on each resample; ``counts[b, i]`` copies of ``groups[ids[i]]``: the summed
    statistics of the drawn ids through the aggregate's own ``finish`` (NaN where it is undefined)."""
    rows_by_id = [select(spec, groups[i]) for i in ids]  # once: a resample's selected records are its ids' ones
    if spec.aggregate in BY_RECORDS:
        return BY_RECORDS_REPLICATES[spec.aggregate](spec, rows_by_id, counts)
    if is_grouped(spec):  # per id: [G, F + 1] group totals, summed over each resample's drawn ids
        t = resampled_group_totals([group_totals(spec, rows) for rows in rows_by_id], counts)
        if t is None:
            return np.full(len(counts), np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            return GROUPED[spec.aggregate].finish(spec, macro_means(t))
    some = next((rows for rows in rows_by_id if rows), None)
    if some is None:
        return np.full(len(counts), np.nan)
    k = len(totals(spec, some))
    t = counts @ np.array([totals(spec, rows) if rows else np.zeros(k) for rows in rows_by_id])
    with np.errstate(divide="ignore", invalid="ignore"):
        return ADDITIVE[spec.aggregate].finish(spec, t)


def shared_ids(spec: MetricSpec, base: Groups, other: Groups) -> tuple[str, ...] | None:
    """The sorted ids both runs scored, the ids a paired bootstrap resamples; None when the metric cannot
    be recomputed from records (aggregate "none") or no id is shared."""
    ids = tuple(sorted(set(base) & set(other)))
    if not (spec.aggregate in ADDITIVE or spec.aggregate in GROUPED or spec.aggregate in BY_RECORDS) or not ids:
        return None
    return ids


def percentile_interval(reps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of finite replicates (NaN, NaN when fewer than half are finite)."""
    reps = np.asarray(reps, dtype=float)
    finite = reps[np.isfinite(reps)]
    if finite.size < max(1, reps.size // 2):
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


# Float32 rounding of equal values: model outputs are float32 (about 1e-7 relative per operation, 1e-6 after the
# sums behind a metric), so an interval inside +-FLOAT_NOISE is two computations of one number, not an effect
# (e.g. SEAT of Self-Debias, which leaves the embeddings unchanged: deltas of 1e-15 to 1e-6).
FLOAT_NOISE = 1e-5


def excludes_zero(lo: float, hi: float, noise: float = FLOAT_NOISE) -> bool:
    """True when the interval [lo, hi] is finite and lies on one side of 0, beyond float rounding (``noise``)."""
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > noise or hi < -noise))
