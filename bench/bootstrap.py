"""Paired bootstrap over examples: the sampling distribution of a metric in two runs
scored on the same example ids.

Each resample draws the ids both runs scored (sorted, with replacement) and
recomputes the metric in both runs on the records of the drawn ids, exactly as
``bench.metrics.aggregate`` would on the resampled records.  All records sharing
an id move together (a cluster bootstrap when a benchmark writes several records
per example).  Draws for benchmark ``b`` come from
``np.random.default_rng([seed, zlib.crc32(b.encode())]).integers(0, n, (n_boot, n))``,
so different benchmarks are resampled independently and any run can be replayed.
"""
from __future__ import annotations

import math
import zlib
from functools import lru_cache
from typing import Sequence

import numpy as np

from bench.metrics import MetricSpec, aggregate, icat, select

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
    draws = rng.integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n), dtype=np.int64)
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1)
    counts.setflags(write=False)
    return counts


def _fields(spec: MetricSpec) -> list[str]:
    return ["stereo_wins", "lm_wins"] if spec.aggregate == "icat" else [spec.field]


def _grouped(spec: MetricSpec) -> bool:
    return spec.aggregate == "macro" or (spec.aggregate == "icat" and spec.by is not None)


def _stats(spec: MetricSpec, rows: list[dict], index: dict) -> np.ndarray:
    """Additive sufficient statistics of one id's selected records, [(F + 1) * G] flattened from
    [F + 1, G]: per ``by`` group g (``index``: group value -> g; G = 1 when ungrouped), the sum of
    each of the F fields, then the weight (records; tokens for exp_ratio)."""
    fields = _fields(spec)
    out = np.zeros((len(fields) + 1, len(index)))
    for r in rows:
        g = index[r[spec.by]] if _grouped(spec) else 0
        for k, f in enumerate(fields):
            out[k, g] += float(r[f])
        out[-1, g] += float(r["n_tokens"]) if spec.aggregate == "exp_ratio" else 1.0
    return out.ravel()


def _from_totals(spec: MetricSpec, t: np.ndarray, n_groups: int) -> np.ndarray:
    """Metric value from summed statistics t [n_boot, (F + 1) * G]: each field's mean per group,
    averaged over the groups present in the resample; NaN where no record applied."""
    t = t.reshape(len(t), -1, n_groups)
    present = t[:, -1] > 0  # [n_boot, G]
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(present[:, None], t[:, :-1] / t[:, -1:], 0.0).sum(-1) / present.sum(-1)[:, None]
    if spec.aggregate == "exp_ratio":
        return np.exp(-means[:, 0])
    if spec.aggregate == "icat":
        return icat(100 * means[:, 0], 100 * means[:, 1])
    return spec.scale * means[:, 0]


def replicates(spec: MetricSpec, groups: Groups, ids: Sequence[str], counts: np.ndarray) -> np.ndarray:
    """[n_boot] the metric on each resample; ``counts[b, i]`` copies of ``groups[ids[i]]``."""
    if spec.aggregate in ("mean", "macro", "exp_ratio", "icat"):
        rows = [select(spec, groups[i]) for i in ids]
        keys = (sorted({r[spec.by] for rs in rows for r in rs}, key=str) if _grouped(spec) else []) or [None]
        index = {k: g for g, k in enumerate(keys)}
        stats = np.array([_stats(spec, rs, index) for rs in rows], dtype=float).reshape(len(ids), -1)
        return _from_totals(spec, counts @ stats, len(keys))
    return np.array([aggregate(spec, [r for i, c in zip(ids, row) for _ in range(c) for r in groups[i]])
                     for row in counts])


def paired_replicates(spec: MetricSpec, base: Groups, other: Groups, n_boot: int, seed: int,
                      stream: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Resampled values of ``spec`` in the base run and the other run, on shared ids.

    None when the metric cannot be recomputed (aggregate "none", or no shared id)."""
    ids = sorted(set(base) & set(other))
    if spec.aggregate == "none" or not ids:
        return None
    counts = resample_counts(len(ids), n_boot, seed, stream)
    return replicates(spec, base, ids, counts), replicates(spec, other, ids, counts)


def percentile_interval(reps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of finite replicates (NaN, NaN when fewer than half are finite)."""
    reps = np.asarray(reps, dtype=float)
    finite = reps[np.isfinite(reps)]
    if finite.size < max(1, reps.size // 2):
        return math.nan, math.nan
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def excludes_zero(lo: float, hi: float) -> bool:
    """True when the interval [lo, hi] is finite and lies strictly on one side of 0."""
    return bool(np.isfinite(lo) and np.isfinite(hi) and (lo > 0 or hi < 0))
