"""Bootstrap replicates of the Mann-Whitney share (aggregate ``mwu_share``, HolisticBias), all resamples at once.

``bench.api.metrics.aggregate`` computes it from the selected records themselves, so rebuilding each resample's
records and rerunning it cost 296 s for one run's HolisticBias/BOLD by-records metrics (1,000 resamples, 2-core
CPU shared with other jobs), most of the leaderboard's time.  Here resample b is its id counts ``counts[b]``
([n_boot, n_ids]) and each record weighs the count of its id.  In each cell (the ``by`` values but the last) the
groups' counts of each distinct value are the records' weights added at (group, value), and ``mwu_pvalues``'s
statistic is evaluated from them: U as a sum over records (each adds to one group's row) instead of a dense
groups x values x groups product, the tie terms over the values that occur in more than one group.  Every count
and U is an integer held exactly, and sigma, z and p follow ``mwu_pvalues``'s expressions, so the share equals
``aggregate``'s bit for bit.  (A transcription of those three lines: ``bench.api.metrics`` is numbers code, hashed
into the published grid's code version, so the two stay side by side, held equal by ``tests/test_by_records.py``.)
``range`` is batched in ``bench.report.bootstrap`` (group totals, as the macro-averages).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.special import erfc

from bench.api.metrics import MWU_ALPHA, MetricSpec


def _flatten(spec: MetricSpec, rows_by_id: Sequence[list[dict]]) -> tuple[np.ndarray, list[tuple], np.ndarray]:
    """Per selected record: its id's index [R], its ``by`` tuple, its ``field`` value [R]."""
    ids = np.array([i for i, rows in enumerate(rows_by_id) for _ in rows], dtype=np.int64)
    keys = [tuple(r[k] for k in spec.by) for rows in rows_by_id for r in rows]
    values = np.array([float(r[spec.field]) for rows in rows_by_id for r in rows])
    return ids, keys, values


class _Cell:
    """The records of one cell: group index [R] (records sorted by group), distinct-value index [R], id index
    [R], the groups' first record positions, and the values that occur in more than one group."""

    def __init__(self, ids: np.ndarray, groups: list, values: np.ndarray):
        names = {k: g for g, k in enumerate(dict.fromkeys(groups))}
        g = np.array([names[k] for k in groups], dtype=np.int64)
        order = np.argsort(g, kind="stable")
        self.group, self.ids = g[order], ids[order]
        uniq, self.value = np.unique(values[order], return_inverse=True)
        self.n_groups, self.n_values = len(names), len(uniq)
        self.starts = np.searchsorted(self.group, np.arange(self.n_groups))
        owners = np.zeros((self.n_groups, self.n_values), dtype=bool)
        owners[self.group, self.value] = True
        self.tied = np.flatnonzero(owners.sum(0) > 1)

    def pvalues(self, weights: np.ndarray) -> np.ndarray:
        """Two-sided Mann-Whitney p-values of every pair of groups with a drawn record, when record r is
        drawn ``weights[self.ids[r]]`` times (``mwu_pvalues`` on the expanded records, pair order aside)."""
        w = weights[self.ids].astype(float)
        c = np.bincount(self.group * self.n_values + self.value, weights=w,
                        minlength=self.n_groups * self.n_values).reshape(self.n_groups, self.n_values)
        n = c.sum(1)
        present = np.flatnonzero(n > 0)
        if len(present) < 2:
            return np.zeros(0)
        below = np.cumsum(c, 1) - c  # each group's drawn values strictly below each distinct value
        u = np.add.reduceat(w[:, None] * below[:, self.value].T, self.starts)  # u[i, j] = #(x_i > x_j)
        cubes = (c ** 3 - c).sum(1)
        ct = c[:, self.tied]  # only values held by two groups add ties between groups
        u += 0.5 * ct @ ct.T
        ties = 3 * (ct ** 2) @ ct.T
        a, b = np.triu_indices(len(present), 1)
        i, j = present[a], present[b]
        n1, n2, total = n[i], n[j], n[i] + n[j]
        tie_sum = cubes[i] + cubes[j] + ties[i, j] + ties[j, i]
        with np.errstate(divide="ignore", invalid="ignore"):
            sigma = np.sqrt(n1 * n2 / 12 * ((total + 1) - tie_sum / (total * (total - 1))))
            z = (np.maximum(u[i, j], u[j, i]) - n1 * n2 / 2 - 0.5) / sigma
        return np.minimum(1.0, erfc(z / math.sqrt(2)))


def mwu_share_replicates(spec: MetricSpec, rows_by_id: Sequence[list[dict]], counts: np.ndarray) -> np.ndarray:
    """[n_boot] share (* scale) of group pairs within each cell whose Mann-Whitney p-value is below
    MWU_ALPHA on each resample (``metrics._mwu_share``; NaN where no pair exists)."""
    ids, keys, values = _flatten(spec, rows_by_id)
    members: dict[tuple, list[int]] = {}
    for r, k in enumerate(keys):
        members.setdefault(k[:-1], []).append(r)
    cells = [_Cell(ids[rs], [keys[r][-1] for r in rs], values[rs]) for rs in map(np.array, members.values())]
    out = np.full(len(counts), np.nan)
    for b, weights in enumerate(counts):
        p = np.concatenate([cell.pvalues(weights) for cell in cells]) if cells else np.zeros(0)
        if p.size:
            out[b] = spec.scale * float(np.mean(p < MWU_ALPHA))
    return out
