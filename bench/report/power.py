"""Power analysis of a leaderboard delta from one baseline run's per-example records.

    python -m bench.report.power --results results/published [--run <run_id>] [--n 1000] [--n-boot 2000] [--breakdowns]

For each headline metric (a whole-benchmark metric the bootstrap can recompute: aggregate in
``ADDITIVE``, ``GROUPED`` (StereoSet's per-term macro-averages) or ``BY_RECORDS``, not a per-subset breakdown) it prints
the run's value with its own 95% percentile bootstrap interval (example ids resampled), at the run's number of
example ids n0 and at ``--n``, the 95% half-width of a paired delta and the minimum detectable
effect (80% power, two-sided 5% test), and the n that a target half-width (``TARGETS``) needs.

Model (no second run is needed, hence an assumption): a method run is the baseline plus a
shift, with example-level noise as large as the baseline's and *independent* of it.  The delta's
sampling distribution is then that of the difference of two independent resamples of the
baseline: ``rep_a - rep_b``, each ``bench.report.bootstrap.replicates`` of the same records
(the aggregate's own ``finish``) under independent draws of the example ids.  The half-width is
half the 95% percentile interval of that difference, i.e. about ``1.96 sqrt(2) SE``.  A real
paired delta has a positive correlation rho between the runs' per-example values, which
shrinks the variance by (1 - rho): ``--rho`` applies that factor (0, the default, is the
conservative independent model; 1 would be a run identical to the baseline).  Where the results
folder holds method runs on the same model, suite and code version, the table also gives the
*observed* paired half-width (median over those runs of the leaderboard's own paired bootstrap,
``bench.report.compare.paired_replicates``) and the n it implies, which is what a suite size
should be chosen by.

Other n: the standard error scales as sqrt(n0 / n) (delta method: every aggregate is a smooth
function of per-example means), so ``half_width(n) = half_width(n0) sqrt(n0 / n)``,
``mde(n) = (z_.975 + z_.80) / z_.975 * half_width(n)`` and the n for a target half-width h is
``ceil(n0 (half_width(n0) / h)^2)``.  n counts example ids (bootstrap clusters: a toxicity
prompt with its k continuations, a WikiText-2 document).
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import norm

from bench.api.metrics import ADDITIVE, BY_RECORDS, GROUPED, MetricSpec
from bench.errors import TaxbenchError
from bench.report.bootstrap import (
    percentile_interval,
    replicates,
    resample_counts,
)
from bench.report.compare import BASELINE, GROUPS, paired_replicates
from bench.report.leaderboard import breakdowns
from bench.report.runs import Run, load_runs

LEVEL, POWER = 0.95, 0.80
Z_ALPHA = float(norm.ppf(1 - (1 - LEVEL) / 2))  # 1.96
Z_BETA = float(norm.ppf(POWER))  # 0.84
# Target half-widths of a paired delta (issue 18), in the metric's own units: points for SS, CrowS
# and the WinoBias TPR gaps; a proportion for TruthfulQA MC2, knowledge accuracy and toxicity.
TARGETS = {"stereoset/ss": 2.0, "crows_pairs/stereotype_score": 2.0, "winobias/tpr_gap_type1": 2.0,
           "winobias/tpr_gap_type2": 2.0, "truthfulqa/mc2": 0.02, "knowledge/acc": 0.02,
           "toxicity/expected_max": 0.02}


@dataclass(frozen=True)
class Power:
    """Power of a paired delta of one metric, under the independent-shift model (module docstring)."""

    spec: MetricSpec
    n0: int  # example ids in the baseline run
    value: float  # the metric in the baseline run
    half_width0: float  # 95% half-width of a paired delta at n0
    rho: float = 0.0  # assumed correlation of the two runs' per-example values
    observed0: float = math.nan  # median observed paired half-width at n0 over method runs (NaN: none)
    n_observed: int = 0  # method runs behind observed0
    interval: tuple[float, float] = (math.nan, math.nan)  # 95% percentile bootstrap interval of value

    def half_width(self, n: int) -> float:
        return self.half_width0 * math.sqrt(self.n0 / n)

    def mde(self, n: int) -> float:
        """Smallest true delta detected with probability POWER by a two-sided test at 1 - LEVEL."""
        return (Z_ALPHA + Z_BETA) / Z_ALPHA * self.half_width(n)

    def n_for(self, half_width: float, observed: bool = False) -> int | None:
        """Example ids needed for a 95% half-width of at most ``half_width`` (observed: from the observed
        paired half-width; None when there is none)."""
        hw = self.observed0 if observed else self.half_width0
        return math.ceil(self.n0 * (hw / half_width) ** 2) if math.isfinite(hw) else None


def two_resamples(spec: MetricSpec, groups: dict[str, list[dict]], n_boot: int = 2000, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Two independent arrays of ``n_boot`` bootstrap replicates of the metric on the same records (example
    ids resampled); the first one's percentile interval is the value's."""
    ids = sorted(groups)
    stream = spec.key.split("/")[0]
    return (replicates(spec, groups, ids, resample_counts(len(ids), n_boot, seed, stream)),
            replicates(spec, groups, ids, resample_counts(len(ids), n_boot, seed, stream + "/power")))


def difference_half_width(a: np.ndarray, b: np.ndarray, rho: float = 0.0) -> float:
    """95% half-width of ``a - b`` (replicates of two independent resamples), times sqrt(1 - rho)."""
    lo, hi = percentile_interval(a - b, LEVEL)
    return (hi - lo) / 2 * math.sqrt(1 - rho)


def paired_half_width(spec: MetricSpec, groups: dict[str, list[dict]], n_boot: int = 2000, seed: int = 0,
                      rho: float = 0.0) -> float:
    """95% half-width of ``rep_a - rep_b`` (two independent bootstrap resamples of the same records),
    times sqrt(1 - rho)."""
    return difference_half_width(*two_resamples(spec, groups, n_boot, seed), rho)


def headline_specs(run: Run, with_breakdowns: bool = False) -> list[MetricSpec]:
    """The run's whole-benchmark metrics with a value that the bootstrap can recompute, in column order;
    ``with_breakdowns``: also their per-subset metrics (BBQ per category, BOLD per group, ...)."""
    specs = [s for k, s in run.specs.items() if isinstance(run.metrics.get(k), (int, float)) and s.group in GROUPS
             and (s.aggregate in ADDITIVE or s.aggregate in GROUPED or s.aggregate in BY_RECORDS)]
    parents = {} if with_breakdowns else breakdowns(specs)
    return sorted((s for s in specs if s.key not in parents), key=lambda s: GROUPS.index(s.group))


def observed_half_width(spec: MetricSpec, base: Run, others: Sequence[Run], n_boot: int, seed: int
                        ) -> tuple[float, int]:
    """Median over ``others`` of the 95% half-width of their paired delta against ``base`` (as the
    leaderboard computes it), and how many runs had one."""
    widths = []
    for other in others:
        reps = None if spec.key not in other.specs else paired_replicates(spec, base, other, n_boot, seed)
        if reps is not None:
            lo, hi = percentile_interval(reps[1] - reps[0], LEVEL)
            if math.isfinite(lo):
                widths.append((hi - lo) / 2)
    return (float(np.median(widths)), len(widths)) if widths else (math.nan, 0)


def analyse(run: Run, n_boot: int = 2000, seed: int = 0, rho: float = 0.0, others: Sequence[Run] = (),
            with_breakdowns: bool = False) -> list[Power]:
    """Power of every headline metric of ``run`` (``with_breakdowns``: and of every per-subset metric);
    ``others``: method runs paired with it (observed widths)."""
    out = []
    for spec in headline_specs(run, with_breakdowns):
        groups = run.groups(spec)
        if not groups:
            continue
        a, b = two_resamples(spec, groups, n_boot, seed)
        observed, k = observed_half_width(spec, run, others, n_boot, seed)
        out.append(Power(spec, len(groups), float(run.metrics[spec.key]), difference_half_width(a, b, rho), rho,
                         observed, k, percentile_interval(a, LEVEL)))
    return out


def paired_runs(results_dir: str | Path, base: Run) -> list[Run]:
    """Method runs on the base run's model, suite, seed and code version."""
    return [r for r in load_runs(results_dir).latest if r.method != BASELINE and r.model == base.model
            and (r.doc.get("suite"), r.doc.get("seed"), r.code_version)
            == (base.doc.get("suite"), base.doc.get("seed"), base.code_version)]


def table(powers: Sequence[Power], n: int | None, targets: dict[str, float] = TARGETS) -> str:
    """A markdown table: metric, n0, value and its 95% interval, half-width and MDE of a paired delta at n0 (and
    at n), target, n needed (model), observed paired half-width at n0 and the n it implies."""
    head = ["metric", "n0", "value", "value 95% CI", "±95% at n0", "MDE at n0"] + ([f"±95% at n={n}", f"MDE at n={n}"] if n else []) \
        + ["target ±", "n needed", "observed ±95% at n0 (runs)", "n needed (observed)"]
    rows = []
    for p in powers:
        t = targets.get(p.spec.key)
        obs = f"{p.observed0:.3g} ({p.n_observed})" if p.n_observed else "–"
        ci = f"[{p.interval[0]:.4g}, {p.interval[1]:.4g}]" if math.isfinite(p.interval[0]) else "–"
        rows.append([p.spec.key, str(p.n0), f"{p.value:.4g}", ci, f"{p.half_width0:.3g}", f"{p.mde(p.n0):.3g}"]
                    + ([f"{p.half_width(n):.3g}", f"{p.mde(n):.3g}"] if n else [])
                    + ([f"{t:g}", str(p.n_for(t))] if t else ["–", "–"])
                    + [obs, str(p.n_for(t, observed=True) or "–") if t else "–"])
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def pick_run(results_dir: str | Path, run_id: str | None) -> Run:
    """The run with ``run_id``, else the newest ``none`` run (the first by model name) in ``results_dir``."""
    runs = load_runs(results_dir).latest
    if run_id is not None:
        found = [r for r in runs if r.doc.get("run_id") == run_id or r.path.stem == run_id]
        if not found:
            raise TaxbenchError(f"--run {run_id}: no such result file in {Path(results_dir) / 'runs'}")
        return found[0]
    bases = sorted((r for r in runs if r.method == BASELINE), key=lambda r: (r.model, str(r.doc.get("suite"))))
    if not bases:
        raise TaxbenchError(f"no `{BASELINE}` run in {Path(results_dir) / 'runs'}: pass --run")
    return bases[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxbench power", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results", help="results folder holding runs/ and records/")
    parser.add_argument("--run", default=None, help="run id of the baseline (default: the first `none` run)")
    parser.add_argument("--n", type=int, default=None, help="also report half-width and MDE at this many examples")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--rho", type=float, default=0.0, help="assumed correlation of the paired runs (0: independent)")
    parser.add_argument("--breakdowns", action="store_true",
                        help="also every per-subset metric (per category, group, axis, type); its n0 is the benchmark's ids")
    args = parser.parse_args(argv)
    try:
        if not 0 <= args.rho < 1:
            raise TaxbenchError(f"--rho {args.rho}: must be in [0, 1)")
        if args.n is not None and args.n < 1:
            raise TaxbenchError(f"--n {args.n}: must be a positive number of examples")
        run = pick_run(args.results, args.run)
        powers = analyse(run, args.n_boot, args.seed, args.rho, paired_runs(args.results, run), args.breakdowns)
    except TaxbenchError as exc:
        print(f"power: error: {exc}", file=sys.stderr)
        return 2
    print(f"# Power of a paired delta: {run.model} / {run.method} / suite {run.doc.get('suite')} "
          f"({run.path.name}, code {run.code_version})\n")
    print(f"Model: independent shift, rho = {args.rho:g}; {args.n_boot} resamples, seed {args.seed}; "
          f"MDE = {POWER:.0%} power, two-sided {1 - LEVEL:.0%}.\n")
    print(table(powers, args.n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
