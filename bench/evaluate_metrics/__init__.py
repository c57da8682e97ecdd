"""The suite's metric definitions as local Hugging Face ``evaluate`` modules.

``evaluate.load(str(MODULES / "stereoset"))`` (also crows_pairs, realtoxicityprompts) loads a
module from this folder, offline; each computes from per-example model scores with the
benchmark's own scoring and ``bench.api.metrics.aggregate``, so its numbers are the suite's.
WinoBias and BBQ modules are not here (their benchmarks are not on this branch).
"""
from pathlib import Path

MODULES = Path(__file__).resolve().parent
