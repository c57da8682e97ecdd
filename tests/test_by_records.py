"""The batched replicates of the by-records aggregates equal ``aggregate`` on each resample's expanded records."""
import random

import numpy as np
import pytest

from bench.api.metrics import BY_RECORDS, MetricSpec, aggregate, select
from bench.report.bootstrap import BY_RECORDS_REPLICATES, replicates, resample_counts


def expanded(rows_by_id, row):
    """A resample's records: ``row[i]`` copies of id i's records (as the bootstrap defines it)."""
    return [r for rows, c in zip(rows_by_id, row) for _ in range(c) for r in rows]


def records(seed: int, n_ids: int = 60) -> list[dict]:
    """Ids with 1-3 records over 2 templates x 5 descriptors in 2 axes; values on a coarse grid, so that
    values tie within and across descriptors (the tie terms of the Mann-Whitney statistic)."""
    rng = random.Random(seed)
    out = []
    for i in range(n_ids):
        for k in range(rng.randint(1, 3)):
            out.append({"id": str(i), "axis": rng.choice(["age", "ability"]), "template": rng.choice("ab"),
                        "descriptor": rng.choice("vwxyz"), "score": rng.randint(0, 6) / 4})
    return out


SPECS = [MetricSpec("hb/share", "bias", "lower", "h", field="score", aggregate="mwu_share", scale=100.0,
                    by=("axis", "template", "descriptor")),
         MetricSpec("hb/age/share", "bias", "lower", "h", field="score", where={"axis": "age"},
                    aggregate="mwu_share", scale=100.0, by=("template", "descriptor")),
         MetricSpec("hb/spread", "bias", "lower", "h", field="score", aggregate="range", by=("descriptor",)),
         MetricSpec("hb/age/spread", "bias", "lower", "h", field="score", where={"axis": "age"},
                    aggregate="range", by=("template", "descriptor"))]


def test_every_by_records_aggregate_is_batched():
    assert set(BY_RECORDS_REPLICATES) == set(BY_RECORDS)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.key)
def test_batched_replicates_equal_aggregate_on_expanded_records(spec, seed):
    groups: dict[str, list[dict]] = {}
    for r in records(seed):
        groups.setdefault(r["id"], []).append(r)
    ids = sorted(groups)
    counts = resample_counts(len(ids), 200, seed, spec.key)
    got = replicates(spec, groups, ids, counts)
    rows_by_id = [select(spec, groups[i]) for i in ids]
    want = np.array([aggregate(spec, expanded(rows_by_id, row)) for row in counts])
    assert np.isnan(want).sum() == np.isnan(got).sum()
    if spec.aggregate == "mwu_share":  # integer statistics, the same expressions: bit for bit
        np.testing.assert_array_equal(got, want)
    else:  # sums in another order
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert np.unique(want[np.isfinite(want)]).size > 5  # the resamples differ: the check has teeth


def test_sparse_resamples_give_nan_where_aggregate_does():
    """Resamples that draw a single group (range: < 2 groups) or no pair in any cell (mwu_share) are NaN."""
    rows = [{"id": "0", "d": "x", "t": "a", "v": 1.0}, {"id": "1", "d": "y", "t": "a", "v": 2.0},
            {"id": "2", "d": "y", "t": "a", "v": 3.0}]
    groups = {r["id"]: [r] for r in rows}
    counts = np.array([[3, 0, 0], [1, 1, 0], [0, 2, 1]])
    spread = MetricSpec("k/s", "bias", "lower", "h", field="v", aggregate="range", by=("d",))
    share = MetricSpec("k/m", "bias", "lower", "h", field="v", aggregate="mwu_share", by=("t", "d"))
    np.testing.assert_array_equal(replicates(spread, groups, ["0", "1", "2"], counts), [np.nan, 1.0, np.nan])
    got = replicates(share, groups, ["0", "1", "2"], counts)
    assert np.isnan(got[0]) and np.isnan(got[2]) and got[1] == aggregate(share, rows[:2])
