"""The benchmarks: one module per benchmark, each a typed config class with ``evaluate`` and
``DATA_FILES`` (the evaluation data it reads; a path ending in "/" covers a folder).

``benchmark_classes`` finds them by scanning this package, so a new benchmark is one module
plus one ``conf/benchmark/<name>.yaml``; ``evaluation_files`` is what no method may train on.
"""
from __future__ import annotations

import importlib
import pkgutil
from functools import cache


@cache
def benchmark_classes() -> dict[str, type]:
    """Benchmark name -> class, for every class of this package with ``evaluate`` and ``DATA_FILES``."""
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and callable(getattr(obj, "evaluate", None)) \
                    and hasattr(obj, "DATA_FILES"):
                found[obj.name] = obj
    return dict(sorted(found.items()))


def evaluation_files() -> tuple[str, ...]:
    """Every data file (or folder, ending in "/") a benchmark evaluates on, sorted."""
    return tuple(sorted({rel for cls in benchmark_classes().values() for rel in cls.DATA_FILES}))


def is_evaluation_file(rel: str) -> bool:
    """``rel`` (relative to the data root) is, or lies in, a benchmark's evaluation data."""
    return any(rel == f or (f.endswith("/") and rel.startswith(f)) for f in evaluation_files())
