"""Leaderboard: result files -> one row per (model, method, bias type) with every metric,
its change against ``none`` on the same model, suite, seed and code version (95% paired
bootstrap interval over examples), and an alignment-tax verdict.  Pure data: rendering is
``bench.report.render``, figures ``bench.report.plots``, the entry point ``bench.report.main``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from bench.api.metrics import MetricSpec, breakdowns
from bench.errors import TaxbenchError
from bench.report.compare import (BASELINE, CAPABILITY, CONTROL, FINETUNING, GROUPS, NOT_IN_CAPABILITY, Change,
                                  Interval, compare_runs, mean_improvement, pool_seeds)
from bench.report.degeneracy import DEFAULT_RULE, DegeneracyRule
from bench.report.runs import Run, load_runs
from bench.report.verdict import verdict


@dataclass
class Entry:
    """One leaderboard row: a run (or the pooled runs of several training seeds) and its comparison
    with ``none`` and, for fine-tuning methods, with the ``finetune`` control."""

    run: Run  # the run; for a seed group the pooled run (``pooled_run``: mean metrics, seeds listed)
    base: Run | None  # the `none` run on the same model, suite and seed (a seed group: pooled likewise)
    changes: dict[str, Change] = field(default_factory=dict)
    bias: Interval | None = None  # bias reduction, points of distance to ideal (> 0 = less biased)
    capability: Interval | None = None  # mean relative capability change, % (> 0 = better)
    verdict: str = ""
    control: Run | None = None  # the `finetune` control run (fine-tuning methods only)
    control_changes: dict[str, Change] = field(default_factory=dict)  # changes against the control
    control_bias: Interval | None = None  # bias reduction against the control, points
    degenerate: str | None = None  # why the degeneracy guard flags the run (None: it does not)
    seed_runs: list[Run] = field(default_factory=list)  # the training-seed runs pooled in this row ([] = one run)

    @property
    def label(self) -> str:
        return self.run.method if self.run.bias_type is None else f"{self.run.method}/{self.run.bias_type}"

    def spread(self, key: str) -> tuple[float, float] | None:
        """(min, max) of ``key`` over the pooled seeds (None for a single run)."""
        values = [r.metrics[key] for r in self.seed_runs if isinstance(r.metrics.get(key), (int, float))]
        return (min(values), max(values)) if len(self.seed_runs) > 1 and values else None


def seed_label(seed) -> str:
    """"seed 0", or "seeds 0,1,2" for a pooled row."""
    return f"seeds {','.join(map(str, seed))}" if isinstance(seed, list) else f"seed {seed}"


def pooled_run(runs: Sequence[Run]) -> Run:
    """One Run standing for several seed runs of a cell: the first run's document with ``metrics`` the
    mean over the runs (metrics every run reports), ``seed`` the list of seeds and ``seed_runs`` their ids
    (its path, and so the site's link, is the first run's file).  A single distinct run is returned as is."""
    runs = list({id(r): r for r in runs}.values())
    if len(runs) == 1:
        return runs[0]
    keys = [k for k, v in runs[0].metrics.items() if all(isinstance(r.metrics.get(k), (int, float)) for r in runs)]
    doc = {**runs[0].doc, "metrics": {k: float(np.mean([r.metrics[k] for r in runs])) for k in keys},
           "seed": [r.doc.get("seed") for r in runs], "seed_runs": [r.doc.get("run_id") for r in runs],
           "run_id": "+".join(str(r.doc.get("run_id")) for r in runs)}
    return Run(runs[0].path, doc, runs[0].specs)


def is_finetuning(run: Run) -> bool:
    return run.method in FINETUNING or "method/steps" in run.doc.get("info", {}).get("method", {})


@dataclass
class Leaderboard:
    entries: list[Entry]
    specs: dict[str, MetricSpec]  # every metric, in column order
    parents: dict[str, str]  # breakdown metric -> its whole-benchmark metric
    bias_keys: list[str]  # metrics averaged into the bias reduction
    capability_keys: list[str]  # metrics averaged into the capability change
    skipped: list[str]
    superseded: list[Run]  # runs of the same cells replaced by newer ones (listed in the table)
    pinned: str | None  # the code version the leaderboard was pinned to, if any
    n_boot: int
    seed: int
    rule: DegeneracyRule = DEFAULT_RULE  # the degeneracy guard applied

    def entry(self, model: str, method: str, bias_type: str | None = None) -> Entry:
        for e in self.entries:
            if (e.run.model, e.run.method) == (model, method) and (bias_type is None or e.run.bias_type == bias_type):
                return e
        raise KeyError(f"no entry for {model}/{method}/{bias_type}")

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(e.run.model for e in self.entries))

    def label(self, e: Entry) -> str:
        """The entry's method label, plus suite and seed when the leaderboard holds several."""
        run = e.run
        return e.label + (f" [{run.doc.get('suite')}, {seed_label(run.doc.get('seed'))}]"
                          if self.multi_suite_seed else "")

    @property
    def multi_suite_seed(self) -> bool:
        """The rows come from more than one (suite, seed): labels and tables name them."""
        return len({(e.run.doc.get("suite"), str(e.run.doc.get("seed"))) for e in self.entries}) > 1

    def headline(self, key: str) -> bool:
        """A whole-benchmark metric (not a per-subset breakdown)."""
        return key in self.specs and key not in self.parents


def _column_order(runs: Sequence[Run]) -> tuple[dict[str, MetricSpec], dict[str, str]]:
    specs: dict[str, MetricSpec] = {}
    for run in runs:
        for key, spec in run.specs.items():
            if key in run.metrics and spec.group in GROUPS:
                specs.setdefault(key, spec)
    parents, order = breakdowns(specs.values()), list(specs)
    specs = dict(sorted(specs.items(), key=lambda kv: (GROUPS.index(kv[1].group), kv[0] in parents,
                                                       order.index(kv[0]))))
    return specs, parents


def axis_keys(runs: Sequence[Run], columns: tuple[dict[str, MetricSpec], dict[str, str]] | None = None
              ) -> tuple[list[str], list[str]]:
    """The metrics behind the alignment-tax axes, in column order: (bias reduction: whole-benchmark bias
    metrics with a target; capability change: whole-benchmark truthfulness/knowledge/fluency metrics with
    a direction, except NOT_IN_CAPABILITY).  ``columns``: the runs' ``_column_order``, when already made."""
    specs, parents = columns or _column_order(runs)
    headline = [k for k in specs if k not in parents]
    bias = [k for k in headline if specs[k].group == "bias" and specs[k].direction == "target"]
    capability = [k for k in headline if specs[k].group in CAPABILITY and specs[k].direction != "target"
                  and not k.startswith(NOT_IN_CAPABILITY)]
    return bias, capability


def build(results_dir: str | Path = "results", n_boot: int = 1000, seed: int = 0,
          bias_keys: Sequence[str] | None = None, capability_keys: Sequence[str] | None = None,
          pin: str | None = None, group_seeds: bool = True, rule: DegeneracyRule = DEFAULT_RULE) -> Leaderboard:
    """Read result files and compare every run with the ``none`` run of the same model, suite, seed
    and code version (bootstrap: n_boot resamples, seed; a seed without a ``none`` run uses seed 0's,
    ``none`` being deterministic apart from sampling), and every fine-tuning method also with the
    ``finetune`` control of the same model, suite, seed and code version; ``pin``: only runs of that
    code version.  ``group_seeds``: runs differing only in seed form one row (``pool_seeds``: mean over
    seeds, two-level bootstrap interval, spread in ``Entry.spread``).  ``rule``: the degeneracy guard.

    bias_keys, capability_keys default: ``axis_keys`` (SS, CrowS: points from 50, one scale)."""
    loaded = load_runs(results_dir, pin)
    runs = loaded.latest
    if not runs:
        raise TaxbenchError(f"no readable result files in {Path(results_dir) / 'runs'}"
                            + (f" at code version {pin}" if pin else ""))
    specs, parents = _column_order(runs)
    headline = set(specs) - set(parents)
    default_bias, default_capability = axis_keys(runs, (specs, parents))
    bias_keys = [k for k in specs if k in (default_bias if bias_keys is None else bias_keys)]  # column order
    capability_keys = [k for k in specs if k in (default_capability if capability_keys is None else capability_keys)]
    def context(r: Run, seed_: int | None = None) -> tuple:
        return r.model, r.doc.get("suite"), r.doc.get("seed") if seed_ is None else seed_, r.code_version

    bases = {context(r): r for r in runs if r.method == BASELINE}
    controls: dict[tuple, list[Run]] = {}
    for r in runs:
        if r.method == CONTROL:
            controls.setdefault(context(r), []).append(r)
    cells: dict[tuple, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.model, r.method != BASELINE, r.method, str(r.bias_type),
                                          str(r.doc.get("suite")), str(r.doc.get("seed")))):
        cell = (run.model, run.method, run.bias_type, run.doc.get("suite"), run.code_version)
        cells.setdefault(cell if group_seeds else (*cell, run.doc.get("seed")), []).append(run)
    entries = []
    for cell_runs in cells.values():
        base_of = {id(r): bases.get(context(r)) or bases.get(context(r, 0)) if r.method != BASELINE else None
                   for r in cell_runs}
        control_of = {id(r): _control(r, controls.get(context(r), [])) for r in cell_runs}
        run = pooled_run(cell_runs)
        compared = all(base_of[id(r)] is not None for r in cell_runs)
        entry = Entry(run, pooled_run([base_of[id(r)] for r in cell_runs]) if compared else None,
                      seed_runs=cell_runs if len(cell_runs) > 1 else [])
        stream = "/".join(map(str, (run.model, run.method, run.bias_type)))
        if compared:
            entry.changes = pool_seeds([compare_runs(base_of[id(r)], r, n_boot, seed) for r in cell_runs],
                                       n_boot, seed, stream)
            entry.bias = mean_improvement([entry.changes[k] for k in bias_keys if k in entry.changes], False)
            entry.capability = mean_improvement(
                [entry.changes[k] for k in capability_keys if k in entry.changes], True)
            entry.degenerate = "; ".join(f"{seed_label(r.doc.get('seed'))}: {why}" if entry.seed_runs else why
                                         for r in cell_runs
                                         if (why := rule.reason(r.metrics, base_of[id(r)].metrics)))  or None
        if all(control_of[id(r)] is not None for r in cell_runs):
            entry.control = pooled_run([control_of[id(r)] for r in cell_runs])
            entry.control_changes = pool_seeds([compare_runs(control_of[id(r)], r, n_boot, seed) for r in cell_runs],
                                               n_boot, seed, stream + "/control")
            entry.control_bias = mean_improvement(
                [entry.control_changes[k] for k in bias_keys if k in entry.control_changes], False)
        entry.verdict = verdict(run.method, entry.base is not None, entry.bias, entry.changes, headline,
                                f"no `{BASELINE}` run at code {run.code_version} to compare with",
                                control_bias=entry.control_bias, needs_control=is_finetuning(run),
                                degenerate=entry.degenerate)
        entries.append(entry)
    return Leaderboard(entries, specs, parents, bias_keys, capability_keys, loaded.skipped, loaded.superseded,
                       loaded.pinned, n_boot, seed, rule)


def _control(run: Run, candidates: list[Run]) -> Run | None:
    """The ``finetune`` control of a fine-tuning run: of the same bias type if there is one, else one without."""
    if not is_finetuning(run) or run.method == CONTROL:
        return None
    same = [c for c in candidates if c.bias_type == run.bias_type] or [c for c in candidates if c.bias_type is None]
    return same[0] if same else None
