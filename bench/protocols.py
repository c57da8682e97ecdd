"""The two plug-in points of a run: a benchmark and a debiasing method.

Both are plain classes that Hydra instantiates from ``_target_`` configs; neither
inherits from anything.  A benchmark is a typed config with ``evaluate``; a method
is a typed config with ``prepare``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bench.data import DataRoot
from bench.lm import ScoringLM
from bench.metrics import MetricSpec
from bench.models import LoadedModel


@dataclass
class BenchmarkResult:
    metrics: dict[str, float]  # "<benchmark>/<metric>" -> value
    specs: list[MetricSpec]  # one per metric key (direction, group, how to recompute)
    records: list[dict[str, Any]]  # per-example records, each with a stable "id"
    n: int  # examples evaluated
    info: dict[str, Any] = field(default_factory=dict)  # e.g. the toxicity scorer used, seeds


@runtime_checkable
class Benchmark(Protocol):
    name: str  # prefix of its metric keys

    def evaluate(self, lm: ScoringLM, data: DataRoot) -> BenchmarkResult: ...


@dataclass
class MethodContext:
    """What a method may use besides the model."""

    data: DataRoot  # the data root (training corpora, word lists)
    cache_dir: Path  # where fitted projections and checkpoints live (keyed by content)
    seed: int  # the run's seed
    code_version: str  # taxbench version + method code hash: part of every artifact key
    budget: str = "cpu"  # training budget: "cpu" (minutes on smollm2-135m) or "paper" (the papers' values)
    benchmarks: tuple[str, ...] = ()  # Benchmark.name of each benchmark the run scores (for Debiased.views)


@dataclass
class Debiased:
    lm: ScoringLM  # what the benchmarks score
    info: dict[str, Any] = field(default_factory=dict)  # "method/<key>": value, recorded in the result file
    specs: list[MetricSpec] = field(default_factory=list)  # specs of the numeric info values reported as metrics
    views: dict[str, ScoringLM] = field(default_factory=dict)  # Benchmark.name -> the LM it scores instead of lm

    def lm_for(self, benchmark: str) -> ScoringLM:
        """The LM the benchmark named ``benchmark`` (its ``Benchmark.name``) scores."""
        return self.views.get(benchmark, self.lm)


@runtime_checkable
class Method(Protocol):
    name: str

    def prepare(self, loaded: LoadedModel, ctx: MethodContext) -> Debiased: ...
