"""Power analysis: the bootstrap half-width of a paired delta under the independent-shift model
matches the normal formula on Bernoulli records; scaling, MDE and n-for-target arithmetic."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.api.metrics import MetricSpec
from bench.report import power as P
from bench.report.bootstrap import group_by_id
from bench.report.runs import Run, read_run

FIXTURES = Path(__file__).parent / "fixtures" / "results"


def test_half_width_of_a_difference_of_two_proportions():
    rng = np.random.default_rng(0)
    n = 400
    wins = (rng.random(n) < 0.3).astype(float)
    spec = MetricSpec("x/ss", "bias", "target", "", target=50, field="w", scale=100)
    groups = group_by_id([{"id": f"e{i}", "w": w} for i, w in enumerate(wins)])
    p = wins.mean()
    expected = 1.96 * math.sqrt(2 * p * (1 - p) / n) * 100  # two independent proportions
    assert P.paired_half_width(spec, groups, n_boot=4000) == pytest.approx(expected, rel=0.06)
    assert P.paired_half_width(spec, groups, n_boot=4000, rho=0.75) == pytest.approx(expected / 2, rel=0.06)
    lo, hi = P.percentile_interval(P.two_resamples(spec, groups, n_boot=4000)[0])  # the value's own interval
    se = math.sqrt(p * (1 - p) / n) * 100
    assert lo < p * 100 < hi and (hi - lo) / 2 == pytest.approx(1.96 * se, rel=0.06)


def test_scaling_mde_and_n_for_target():
    spec = MetricSpec("x/acc", "knowledge", "higher", "")
    p = P.Power(spec, n0=100, value=0.5, half_width0=0.1)
    assert p.half_width(400) == pytest.approx(0.05)  # sqrt(100 / 400)
    assert p.mde(100) == pytest.approx((1.959964 + 0.841621) / 1.959964 * 0.1, rel=1e-5)
    assert p.n_for(0.02) == 2500 and p.n_for(0.1) == 100
    assert p.n_for(0.02, observed=True) is None
    assert P.Power(spec, 100, 0.5, 0.1, observed0=0.04, n_observed=3).n_for(0.02, observed=True) == 400


def test_fixture_table_lists_headline_metrics_with_observed_widths():
    base = read_run(next(p for p in FIXTURES.glob("runs/*.json") if '"smollm2-135m"' in p.read_text()
                         and '"name": "none"' in p.read_text()))
    others = P.paired_runs(FIXTURES, base)
    assert sorted(r.method for r in others) == ["cda", "inlp", "self_debias"]
    powers = P.analyse(base, n_boot=200, others=others)
    keys = [p.spec.key for p in powers]
    assert "stereoset/ss" in keys and "knowledge/acc" in keys
    assert "stereoset/ss_gender" not in keys and not any(k.startswith("nc/") for k in keys)  # breakdowns, none
    ss = powers[keys.index("stereoset/ss")]
    assert ss.n0 == 40 and ss.n_observed == 3 and 0 < ss.observed0 < ss.half_width0  # pairing helps
    text = P.table(powers, n=1000)
    assert ss.interval[0] < ss.value < ss.interval[1]
    assert f"| stereoset/ss | 40 | {ss.value:.4g} | [{ss.interval[0]:.4g}, {ss.interval[1]:.4g}] |" in text
    assert f"| 2 | {ss.n_for(2.0)} |" in text


def test_macro_averaged_metrics_are_headline_metrics():
    """StereoSet SS/LMS under the bias-bench protocol average per target term (aggregate ``macro``)."""
    rng = np.random.default_rng(0)
    recs = [{"id": f"e{i}", "target": f"t{i % 8}", "domain": "gender" if i % 2 else "race", "w": float(w)}
            for i, w in enumerate(rng.random(160) < 0.6)]
    ss = MetricSpec("stereoset/ss", "bias", "target", "", target=50, field="w", scale=100, aggregate="macro",
                    by=("target",))
    ss_gender = MetricSpec("stereoset/ss_gender", "bias", "target", "", target=50, field="w", scale=100,
                           aggregate="macro", by=("target",), where={"domain": "gender"})
    run = Run(Path("r.json"), {"metrics": {"stereoset/ss": 60.0, "stereoset/ss_gender": 61.0}},
              {s.key: s for s in (ss, ss_gender)})
    assert [s.key for s in P.headline_specs(run)] == ["stereoset/ss"]  # the per-domain breakdown is left out
    assert [s.key for s in P.headline_specs(run, with_breakdowns=True)] == ["stereoset/ss", "stereoset/ss_gender"]
    assert 0 < P.paired_half_width(ss, group_by_id(recs), n_boot=400) < 100


def test_cli_errors_are_one_line(capsys):
    assert P.main(["--results", str(FIXTURES), "--run", "nope"]) == 2
    assert "--run nope: no such result file" in capsys.readouterr().err
    assert P.main(["--results", str(FIXTURES), "--n-boot", "50"]) == 0
    out = capsys.readouterr().out
    assert "stereoset/ss" in out and "stereoset/ss_gender" not in out
    assert P.main(["--results", str(FIXTURES), "--n-boot", "50", "--breakdowns"]) == 0
    assert "| stereoset/ss_gender | 40 |" in capsys.readouterr().out  # n0: the benchmark's ids
