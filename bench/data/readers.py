"""Readers of the benchmark data files: each error names the file and line of the bad row."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Iterator

from bench.errors import DataError


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; DataError names file and line."""
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {line_no}: not valid JSON ({exc.msg})") from exc
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {line_no}: expected a JSON object, got {type(row).__name__}")
            yield line_no, row


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every object of a JSON-lines file, in file order."""
    return [row for _, row in jsonl_rows(path)]


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from exc


def read_csv(path: Path, required: tuple[str, ...] = (), delimiter: str = ",") -> list[dict[str, str]]:
    """Rows as dicts; a row with a missing required field is an error naming its line."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path}: header lacks column(s) {missing}")
        rows = []
        for row in reader:
            bad = [c for c in required if not (row.get(c) or "").strip()]
            if bad or None in row:
                raise DataError(f"{path}, line {reader.line_num}: malformed row (empty or extra field(s) {bad or 'extra'})")
            rows.append(row)
    return rows


def read_lines(path: Path) -> Iterator[str]:
    """Non-blank lines without their newline."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield line.rstrip("\n")
