"""The interfaces of taxbench, and nothing else.

Benchmarks (``bench.tasks``), methods (``methods``), the engine (``bench.engine``) and the
scorers talk to each other only through these types:

- ``lm``: ``Request`` / ``Loglikelihood`` / ``GenerationSpec`` and the ``ScoringLM`` protocol every
  benchmark scores through; ``RepresentationLM`` for the benchmarks that read hidden states.
- ``metrics``: ``MetricSpec`` and the one ``aggregate`` that computes a metric's value from
  per-example records (the reported number and every bootstrap replicate).
- ``benchmark``: ``Benchmark`` / ``BenchmarkResult``.  ``method``: ``Method`` / ``MethodContext`` / ``Debiased``.
- ``model``: ``ModelConfig`` / ``LoadedModel``.  ``data``: ``DataSource`` (what a data root offers).
"""
from bench.api.benchmark import Benchmark, BenchmarkResult
from bench.api.data import DataSource
from bench.api.lm import GenerationSpec, Loglikelihood, RepresentationLM, Request, ScoringLM
from bench.api.method import Debiased, Method, MethodContext
from bench.api.metrics import MetricSpec, aggregate
from bench.api.model import LoadedModel, ModelConfig

__all__ = ["Benchmark", "BenchmarkResult", "DataSource", "Debiased", "GenerationSpec", "LoadedModel", "Loglikelihood",
           "Method", "MethodContext", "MetricSpec", "ModelConfig", "RepresentationLM", "Request", "ScoringLM",
           "aggregate"]
