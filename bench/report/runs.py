"""Result files as the report reads them: one ``Run`` per file, the newest per leaderboard cell.

A cell is (model and its dtype, method, bias type, suite, seed).  When several files share a cell, the run at
the newest code version wins (by the creation time of that version's newest run; within a
version, the newest run); every other run of the cell is *superseded* and listed in the
leaderboard, so runs of different code versions are never mixed silently.  ``pin`` keeps only
the runs of one code version.  Unreadable files are skipped with a ``ResultFileWarning``.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.api.metrics import MetricSpec, spec_from_dict
from bench.errors import TaxbenchError
from bench.report.bootstrap import Groups, group_by_id, replicates, resample_counts
from bench.store import load_result


class ResultFileWarning(UserWarning):
    """A result or records file was skipped."""


@dataclass
class Run:
    path: Path  # the result file
    doc: dict[str, Any]
    specs: dict[str, MetricSpec]
    _groups: dict[str, Groups | None] = field(default_factory=dict, repr=False)
    _replicates: dict[tuple, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        """The model's name, with its dtype when not the float32 reference (``smollm2-135m (bfloat16)``):
        a cell, its ``none`` baseline and its control are then always of one dtype."""
        dtype = self.doc.get("config", {}).get("model", {}).get("dtype", "float32")
        return self.doc["model"]["name"] + ("" if dtype == "float32" else f" ({dtype})")

    @property
    def method(self) -> str:
        return self.doc["method"]["name"]

    @property
    def bias_type(self) -> str | None:
        return self.doc["method"].get("bias_type")

    @property
    def key(self) -> tuple:
        return self.model, self.method, self.bias_type, self.doc.get("suite"), self.doc.get("seed")

    @property
    def code_version(self) -> str:
        versions = self.doc.get("versions", {})
        return str(versions.get("code_version") or versions.get("taxbench"))

    @property
    def metrics(self) -> dict[str, float]:
        return self.doc.get("metrics", {})

    @cached_property
    def records(self) -> dict[str, list[dict]]:
        """Per-example records by benchmark ({} when the records file is missing or unreadable: warns)."""
        rel = self.doc.get("records_path")
        path = self.path.parent / rel if rel else None
        by_bench: dict[str, list[dict]] = {}
        try:
            if path is None or not path.exists():
                raise TaxbenchError("records file missing")
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    r = json.loads(line)
                    if not isinstance(r, dict):
                        raise TaxbenchError(f"line {lineno} is a JSON {type(r).__name__}, not an object")
                    by_bench.setdefault(r.get("benchmark", ""), []).append(r)
        except (TaxbenchError, json.JSONDecodeError, OSError, UnicodeDecodeError) as exc:
            warnings.warn(f"no intervals for {self.path}: records {path}: {exc}", ResultFileWarning, stacklevel=2)
            return {}
        return by_bench

    def groups(self, spec: MetricSpec) -> Groups | None:
        """Records of the benchmark that produced ``spec``, by example id (None if not found).

        The benchmark is the key's prefix, else the only benchmark whose records carry spec.field."""
        by_bench = self.records
        name = spec.key.split("/")[0]
        if name not in by_bench:
            carriers = [b for b, rs in by_bench.items() if spec.field and all(spec.field in r for r in rs)]
            name = carriers[0] if len(carriers) == 1 else None
        if name is None:
            return None
        if name not in self._groups:
            try:
                self._groups[name] = group_by_id(by_bench[name])
            except KeyError:
                warnings.warn(f"no intervals for {name} of {self.path}: a record has no id", ResultFileWarning,
                              stacklevel=2)
                self._groups[name] = None
        return self._groups[name]

    def replicates(self, spec: MetricSpec, ids: tuple[str, ...], n_boot: int, seed: int, stream: str) -> np.ndarray:
        """[n_boot] ``bootstrap.replicates`` of ``spec`` on these ids of ``groups(spec)`` under the draws
        ``resample_counts(len(ids), n_boot, seed, stream)``, memoised: a ``none`` baseline or ``finetune``
        control compared with many runs is resampled once, not once per comparison (same arrays)."""
        key = (repr(spec), ids, n_boot, seed, stream)
        if key not in self._replicates:
            groups = self.groups(spec)
            assert groups is not None, f"{self.path}: no records for {spec.key}"
            self._replicates[key] = replicates(spec, groups, ids, resample_counts(len(ids), n_boot, seed, stream))
        return self._replicates[key]


def read_run(path: Path) -> Run:
    doc = load_result(path)
    for part in ("model", "method"):
        if not isinstance(doc.get(part), dict) or "name" not in doc[part]:
            raise TaxbenchError(f"no {part}.name")
    return Run(Path(path), doc, {k: spec_from_dict(v) for k, v in doc.get("metric_specs", {}).items()})


@dataclass
class Runs:
    latest: list[Run]  # the newest run of each cell
    superseded: list[Run]  # every other run of those cells (older code versions or older reruns)
    skipped: list[str]  # messages for unreadable files
    pinned: str | None = None  # the code version kept, when pinned


def load_runs(results_dir: str | Path, pin: str | None = None) -> Runs:
    """Read ``<results_dir>/runs/*.json``; the newest run per cell (``pin``: only runs of that code version)."""
    by_cell: dict[tuple, list[Run]] = {}
    skipped = []
    for path in sorted((Path(results_dir) / "runs").glob("*.json")):
        try:
            run = read_run(path)
        except (TaxbenchError, KeyError, TypeError, ValueError, AttributeError, OSError) as exc:
            msg = f"skipping result file {path}: {exc}"
            warnings.warn(msg, ResultFileWarning, stacklevel=2)
            skipped.append(msg)
            continue
        if pin is None or run.code_version == pin:
            by_cell.setdefault(run.key, []).append(run)
    newest_of_version: dict[str, str] = {}
    for cell in by_cell.values():
        for r in cell:
            newest_of_version[r.code_version] = max(newest_of_version.get(r.code_version, ""), r.doc.get("created", ""))
    latest, superseded = [], []
    for cell in by_cell.values():
        cell.sort(key=lambda r: (newest_of_version[r.code_version], r.code_version, r.doc.get("created", ""),
                                 r.path.name))
        latest.append(cell[-1])
        superseded.extend(cell[:-1])
    return Runs(latest, superseded, skipped, pin)
