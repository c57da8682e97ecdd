"""What a benchmark is: a typed config with ``evaluate(lm, data) -> BenchmarkResult``.

Hydra instantiates it from a ``_target_`` config; it inherits from nothing.  ``DATA_FILES`` on
the class lists every data file (relative to the data root) it may read: the manifest test and
the fine-tuning methods' leak guard are derived from these declarations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from bench.api.data import DataSource
from bench.api.lm import ScoringLM
from bench.api.metrics import MetricSpec


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
    DATA_FILES: ClassVar[tuple[str, ...]]  # every data file it may read (evaluation data: never trained on)

    def evaluate(self, lm: ScoringLM, data: DataSource) -> BenchmarkResult: ...
