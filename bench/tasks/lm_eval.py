"""Any lm-evaluation-harness task as a capability benchmark of the alignment tax.

The tasks run through lm-eval's own ``simple_evaluate`` on ``bench.lm_eval_bridge.HarnessLM``
wrapping the (debiased) ``ScoringLM`` of the run, so prompts, few-shot sampling, filters and
metrics are lm-eval's.  lm-eval's logged samples become records, one per (task, document):
``{"id": "<task>/<doc_id>", "task": <task>, "<metric>": value, ...}`` (``<metric>/<filter>``
for a filter other than ``none``), plus ``"in:<group>": True`` for every lm-eval group the
task belongs to.

Metrics: ``lm_eval/<task>/<metric>`` (``/<filter>`` unless ``none``), direction from the
task's ``higher_is_better``.  A metric lm-eval aggregates by ``mean`` is recomputed from the
records (``aggregate(spec, records)`` equals lm-eval's number; intervals work); a group's
metric is the mean over its tasks' records (lm-eval's ``weight_by_size: true``, e.g. MMLU).
Other aggregations (perplexity, corpus BLEU/F1, unweighted group means) are reported as
lm-eval computes them, with ``aggregate: none`` (no intervals).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from bench.data import DataRoot
from bench.errors import ConfigError
from bench.api.lm import ScoringLM
from bench.api.metrics import Group, MetricSpec, aggregate, select
from bench.api import BenchmarkResult
from bench.tasks.common import check_choice, check_config

GROUPS = ("knowledge", "truthfulness", "fluency", "bias", "toxicity", "diagnostic")


@dataclass
class LmEval:
    """lm-evaluation-harness tasks scored on the run's (debiased) model."""

    name: ClassVar[str] = "lm_eval"
    tasks: list[str] = field(default_factory=list)  # lm-eval task or group names, e.g. [hellaswag, mmlu]
    n: int | None = None  # the first n documents of each task (lm-eval's limit; None: all)
    num_fewshot: int | None = None  # few-shot examples (None: each task's default)
    seed: int = 0  # lm-eval's random, numpy, torch and few-shot seeds
    include_path: str | None = None  # folder of extra task YAMLs (e.g. local-data tasks)
    group: str = "knowledge"  # leaderboard group of the metrics: knowledge | truthfulness | fluency | ...

    def __post_init__(self) -> None:
        check_config(self)
        if not self.tasks:
            raise ConfigError("benchmarks.lm_eval.tasks is empty: name lm-eval tasks, e.g. [hellaswag, arc_easy]")
        check_choice(self.group, GROUPS, "benchmarks.lm_eval.group")

    def evaluate(self, lm: ScoringLM, data: DataRoot) -> BenchmarkResult:
        import lm_eval
        from lm_eval.tasks import TaskManager

        from bench.lm_eval_bridge import HarnessLM

        tokenizer = getattr(lm, "tokenizer", None)
        manager = TaskManager(include_path=self.include_path)
        unknown = [t for t in self.tasks if t not in manager.all_tasks]
        if unknown:
            raise ConfigError(f"benchmarks.lm_eval.tasks: unknown lm-eval task(s) {unknown}"
                              + ("" if self.include_path else " (local YAMLs need benchmarks.lm_eval.include_path)"))
        out = lm_eval.simple_evaluate(
            model=HarnessLM(lm, eos=getattr(tokenizer, "eos_token", None)), tasks=list(self.tasks),
            num_fewshot=self.num_fewshot, limit=self.n, bootstrap_iters=0, log_samples=True, task_manager=manager,
            random_seed=self.seed, numpy_random_seed=self.seed, torch_random_seed=self.seed,
            fewshot_random_seed=self.seed)
        records = sample_records(out["samples"], out.get("group_subtasks", {}))
        specs, reported = metric_specs(out, records, self.group)
        metrics = {s.key: reported[s.key] if s.aggregate == "none" else aggregate(s, records) for s in specs}
        return BenchmarkResult(metrics, specs, records, len(records),
                               info={"tasks": list(self.tasks), "lm_eval_version": out.get("lm_eval_version"),
                                     "n-shot": out.get("n-shot"), "versions": out.get("versions")})


def _field(metric: str, filt: str) -> str:
    return metric if filt == "none" else f"{metric}/{filt}"


def _groups_of(group_subtasks: dict[str, list[str]]) -> dict[str, list[str]]:
    """task -> every group containing it (transitively)."""
    parents: dict[str, set[str]] = {}
    for group, members in group_subtasks.items():
        for m in members:
            parents.setdefault(m, set()).add(group)

    def up(name: str) -> set[str]:
        direct = parents.get(name, set())
        return direct.union(*(up(g) for g in direct)) if direct else set()

    return {t: sorted(up(t)) for t in parents}


def sample_records(samples: dict[str, list[dict]], group_subtasks: dict[str, list[str]]) -> list[dict[str, Any]]:
    """One record per (task, doc_id) from lm-eval's logged samples (numeric metric values only)."""
    groups = _groups_of(group_subtasks)
    records: dict[tuple[str, Any], dict[str, Any]] = {}
    for task, rows in samples.items():
        for s in rows:
            rec = records.setdefault((task, s["doc_id"]), {"id": f"{task}/{s['doc_id']}", "task": task,
                                                           **{f"in:{g}": True for g in groups.get(task, [])}})
            for metric in s["metrics"]:
                value = s[metric]
                if isinstance(value, (bool, int, float)):
                    rec[_field(metric, s["filter"])] = float(value)
    return list(records.values())


def metric_specs(out: dict[str, Any], records: list[dict], group: Group) -> tuple[list[MetricSpec], dict[str, float]]:
    """Specs of every numeric ``<metric>,<filter>`` of lm-eval's results, and lm-eval's values by key."""
    specs, reported = [], {}
    for task, res in out["results"].items():
        better = out.get("higher_is_better", {}).get(task, {})
        leaf = task in out["samples"]
        for name, value in res.items():
            if "," not in name or "_stderr" in name or not isinstance(value, (int, float)):
                continue
            metric, filt = name.split(",", 1)
            key = f"lm_eval/{task}/{_field(metric, filt)}"
            where = {"task": task} if leaf else {f"in:{task}": True}
            direction = "lower" if better.get(metric) is False else "higher"
            spec = MetricSpec(key, group, direction, f"lm-eval {task}: {metric} (filter {filt}), mean over documents",
                              field=_field(metric, filt), where=where)
            rows = select(spec, records)
            is_mean = bool(rows) and all(spec.field in r for r in rows) and math.isclose(
                aggregate(spec, rows), float(value), rel_tol=1e-9, abs_tol=1e-12)
            if not is_mean:
                spec = MetricSpec(key, group, direction, f"lm-eval {task}: {metric} (filter {filt}), as lm-eval "
                                  "aggregates it (not a mean over documents: no intervals)", aggregate="none")
            specs.append(spec)
            reported[key] = float(value)
    return specs, reported
