"""Benchmark data as Hugging Face ``datasets.Dataset`` objects, for users who inspect, filter
and map examples with ``datasets``.

``load_file(data, rel)`` reads one declared data file, checksum-verified by
``DataRoot.path``, through datasets' packaged ``json`` or ``csv`` builder, offline
(``HF_DATASETS_OFFLINE=1`` unless set), with the Arrow cache under ``<taxbench cache>/datasets``.
CSV cells stay strings (no type inference, no NA conversion), as ``bench.data.read_csv``
reads them.  Each benchmark module's ``dataset(data, split=...)`` shapes these rows into its
examples' fields; files that are one JSON object rather than rows (TruthfulQA, SEAT) go
through ``datasets.Dataset.from_list`` on the benchmark's own loader instead.
"""
from __future__ import annotations

import csv
import os
from typing import Any, Sequence

from bench.data.registry import DataRoot

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # read before datasets is imported


def load_file(data: DataRoot, rel: str, delimiter: str | None = None, line_numbers: bool = False):
    """The declared file ``rel`` as one ``datasets.Dataset`` (csv for .csv/.tsv, else json lines/list).
    ``line_numbers`` adds a ``line`` column (1-based line of each row in a json-lines file without
    blank lines, the numbering ``bench.tasks.common.jsonl_rows`` gives)."""
    import datasets

    path = str(data.path(rel))
    if rel.endswith((".csv", ".tsv")):
        sep = delimiter or ("\t" if rel.endswith(".tsv") else ",")
        with open(path, encoding="utf-8", newline="") as f:
            header = next(csv.reader(f, delimiter=sep))
        features = datasets.Features({name: datasets.Value("string") for name in header})
        ds = datasets.load_dataset("csv", data_files={"train": path}, split="train", cache_dir=str(data.cache_dir / "datasets"),
                                   delimiter=sep, names=header, header=0, features=features,
                                   keep_default_na=False, na_filter=False)
    else:
        ds = datasets.load_dataset("json", data_files={"train": path}, split="train", cache_dir=str(data.cache_dir / "datasets"))
    if line_numbers:
        ds = ds.add_column("line", list(range(1, len(ds) + 1)))
    return ds


def from_rows(rows: Sequence[dict[str, Any]]):
    """A ``datasets.Dataset`` of already-parsed rows (files that are not row-shaped)."""
    import datasets

    return datasets.Dataset.from_list(list(rows))
