"""What a debiasing method is: a typed config with ``prepare(loaded, ctx) -> Debiased``.

Hydra instantiates it from a ``_target_`` config; it inherits from nothing.  ``prepare``
returns the ``ScoringLM`` every benchmark scores (the plain model, a fine-tuned checkpoint,
or a wrapper acting at inference time) and what the method reports about itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from bench.api.data import DataSource
from bench.api.lm import ScoringLM
from bench.api.metrics import MetricSpec
from bench.api.model import LoadedModel


@dataclass
class MethodContext:
    """What a method may use besides the model."""

    data: DataSource  # the data root (training corpora, word lists)
    cache_dir: Path  # where fitted projections and checkpoints live (keyed by content)
    seed: int  # the run's seed
    code_version: str  # taxbench version + method code hash: part of every artifact key
    budget: str = "cpu"  # training budget: "cpu" (minutes on smollm2-135m) or "paper" (the papers' values)
    # The engine's ScoringLM over a loaded model (the run passes bench.engine's HFScoringLM), so a method
    # can wrap the plain model without importing an engine; None outside a run.
    scoring_lm: Callable[[LoadedModel], ScoringLM] | None = None
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
