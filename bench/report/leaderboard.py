"""Leaderboard: result files -> one row per (model, method, bias type) with every metric,
its change against ``none`` on the same model, suite, seed and code version (95% paired
bootstrap interval over examples), and an alignment-tax verdict.  Pure data: rendering is
``bench.report.render``, figures ``bench.report.plots``, the entry point ``bench.report.main``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from bench.api.metrics import MetricSpec, breakdowns
from bench.errors import TaxbenchError
from bench.report.compare import (BASELINE, CAPABILITY, GROUPS, NOT_IN_CAPABILITY, Change, Interval, compare_runs,
                                  mean_improvement)
from bench.report.runs import Run, load_runs
from bench.report.verdict import verdict


@dataclass
class Entry:
    """One leaderboard row: a run and its comparison with ``none``."""

    run: Run
    base: Run | None  # the `none` run on the same model, suite and seed
    changes: dict[str, Change] = field(default_factory=dict)
    bias: Interval | None = None  # bias reduction, points of distance to ideal (> 0 = less biased)
    capability: Interval | None = None  # mean relative capability change, % (> 0 = better)
    verdict: str = ""

    @property
    def label(self) -> str:
        return self.run.method if self.run.bias_type is None else f"{self.run.method}/{self.run.bias_type}"


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
        return e.label + (f" [{run.doc.get('suite')}, seed {run.doc.get('seed')}]" if self.multi_suite_seed else "")

    @property
    def multi_suite_seed(self) -> bool:
        """The rows come from more than one (suite, seed): labels and tables name them."""
        return len({(e.run.doc.get("suite"), e.run.doc.get("seed")) for e in self.entries}) > 1

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


def build(results_dir: str | Path = "results", n_boot: int = 1000, seed: int = 0,
          bias_keys: Sequence[str] | None = None, capability_keys: Sequence[str] | None = None,
          pin: str | None = None) -> Leaderboard:
    """Read result files and compare every run with the ``none`` run of the same model, suite, seed
    and code version (bootstrap: n_boot resamples, seed); ``pin``: only runs of that code version.

    bias_keys default: whole-benchmark bias metrics with a target (SS, CrowS: points from 50, one scale);
    capability_keys default: whole-benchmark truthfulness/knowledge/fluency metrics with a direction,
    except NOT_IN_CAPABILITY."""
    loaded = load_runs(results_dir, pin)
    runs = loaded.latest
    if not runs:
        raise TaxbenchError(f"no readable result files in {Path(results_dir) / 'runs'}"
                            + (f" at code version {pin}" if pin else ""))
    specs, parents = _column_order(runs)
    headline = set(specs) - set(parents)
    if bias_keys is None:
        bias_keys = [k for k in headline if specs[k].group == "bias" and specs[k].direction == "target"]
    if capability_keys is None:
        capability_keys = [k for k in headline if specs[k].group in CAPABILITY and specs[k].direction != "target"
                           and not k.startswith(NOT_IN_CAPABILITY)]
    bias_keys = [k for k in specs if k in bias_keys]  # column order
    capability_keys = [k for k in specs if k in capability_keys]
    bases = {(r.model, r.doc.get("suite"), r.doc.get("seed"), r.code_version): r for r in runs if r.method == BASELINE}
    entries = []
    for run in sorted(runs, key=lambda r: (r.model, r.method != BASELINE, r.method, str(r.bias_type),
                                          str(r.doc.get("suite")), str(r.doc.get("seed")))):
        base = bases.get((run.model, run.doc.get("suite"), run.doc.get("seed"), run.code_version))
        entry = Entry(run, base if run.method != BASELINE else None)
        if entry.base is not None:
            entry.changes = compare_runs(entry.base, run, n_boot, seed)
            entry.bias = mean_improvement([entry.changes[k] for k in bias_keys if k in entry.changes], False)
            entry.capability = mean_improvement(
                [entry.changes[k] for k in capability_keys if k in entry.changes], True)
        entry.verdict = verdict(run.method, entry.base is not None, entry.bias, entry.changes, headline,
                                f"no `{BASELINE}` run at code {run.code_version} to compare with")
        entries.append(entry)
    return Leaderboard(entries, specs, parents, bias_keys, capability_keys, loaded.skipped, loaded.superseded,
                       loaded.pinned, n_boot, seed)
