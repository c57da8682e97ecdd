"""Experiment trackers: a view of the result file, never its source of truth.

``WandbTracker`` logs one wandb run per job (deterministic id = run_id, ``resume="allow"``,
group = experiment, job_type = method), offline by default; ``NullTracker`` logs nothing
(``logger=none``).  ``scrub`` removes secrets from a config before it is logged or written to a result file.

Per job (``log_result``, from the written result document and its records):
- the run summary: every numeric metric, ``n/<benchmark>`` and ``timings/<stage>``;
- ``records/<benchmark>``: a ``wandb.Table`` of the per-example records (one column per record
  field, lists and dicts as JSON), a seeded sample of ``max_rows`` rows (original order) when larger;
- ``continuations/<benchmark>``: one row per (prompt, continuation) with its toxicity score, for
  benchmarks whose records carry ``continuations`` and ``toxicity`` lists (toxicity, BOLD), same cap;
- the fine-tuning loss curve (info ``method/loss_curve``): ``train/<part>`` against ``train/step``.
Per multirun (``log_leaderboard``, one summary run of the group): the leaderboard table and plots.
"""
from __future__ import annotations

import json
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|password)", re.IGNORECASE)
MIN_SECRET_CHARS = 8  # shorter environment values (flags, "1") are not treated as secrets


def _secret_values() -> tuple[str, ...]:
    """Values of environment variables whose name looks like a secret (OPENAI_API_KEY, HF_TOKEN, ...)."""
    return tuple(v for k, v in os.environ.items() if SECRET_KEY.search(k) and len(v) >= MIN_SECRET_CHARS)


def scrub(obj: Any, _secrets: tuple[str, ...] | None = None) -> Any:
    """Copy of a (resolved) config tree without secrets: entries whose key looks like a secret, and
    entries whose value contains the value of a secret-named environment variable (so
    ``+note=${oc.env:OPENAI_API_KEY}`` is dropped whatever its key)."""
    secrets = _secret_values() if _secrets is None else _secrets

    def leaks(v: Any) -> bool:
        return isinstance(v, str) and any(s in v for s in secrets)

    if isinstance(obj, dict):
        return {k: scrub(v, secrets) for k, v in obj.items() if not SECRET_KEY.search(str(k)) and not leaks(v)}
    if isinstance(obj, list):
        return [scrub(v, secrets) for v in obj if not leaks(v)]
    return obj


def _cell(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, tuple, dict)) else value


def sample_rows(rows: Sequence[Any], max_rows: int, seed: str) -> list[Any]:
    """``rows`` when at most ``max_rows``, else ``max_rows`` of them drawn with ``seed`` (original order)."""
    if len(rows) <= max_rows:
        return list(rows)
    return [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), max_rows))]


def record_table(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): one column per record field (first-seen order), a missing field as None."""
    columns = list(dict.fromkeys(k for r in records for k in r))
    return columns, [[_cell(r.get(c)) for c in columns] for r in records]


def continuation_table(records: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """(columns, rows): id, prompt, continuation index, continuation, toxicity, one row per continuation."""
    columns = ["id", "prompt", "k", "continuation", "toxicity"]
    rows = [[r.get("id"), r.get("prompt"), k, text, score]
            for r in records for k, (text, score) in enumerate(zip(r["continuations"], r["toxicity"], strict=True))]
    return columns, rows


def _scored_continuations(records: Sequence[dict[str, Any]]) -> bool:
    return bool(records) and all(isinstance(r.get("continuations"), list) and isinstance(r.get("toxicity"), list)
                                 for r in records)


def summary_values(doc: dict[str, Any]) -> dict[str, float]:
    """The numeric metrics of a result document, with ``n/<benchmark>`` and ``timings/<stage>``."""
    out = {k: v for k, v in doc.get("metrics", {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update({f"n/{k}": v for k, v in doc.get("n", {}).items()})
    out.update({f"timings/{k}": v for k, v in doc.get("timings", {}).items()})
    return out


def wandb_id(text: str) -> str:
    """``text`` as a wandb run id (letters, digits, ``-`` and ``_`` only)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


@dataclass
class NullTracker:
    def start(self, run_id: str, config: dict[str, Any], group: str, job_type: str, name: str) -> None: ...

    def log(self, metrics: dict[str, float]) -> None: ...

    def log_images(self, paths: list[Path]) -> None: ...

    def log_result(self, doc: dict[str, Any], records: Sequence[dict[str, Any]]) -> None: ...

    def log_leaderboard(self, frame: Any, plots: Sequence[Path]) -> None: ...

    def finish(self) -> None: ...


@dataclass
class WandbTracker:
    project: str = "taxbench"  # wandb project
    mode: str = "offline"  # offline (default), online or disabled
    dir: str = "results/wandb"  # where offline runs are stored (sync later with `wandb sync`)
    entity: str | None = None  # wandb entity (team or user), online mode only
    max_rows: int = 2000  # rows per records / continuations table (a seeded sample when there are more)

    def __post_init__(self) -> None:
        self._run = None

    def start(self, run_id: str, config: dict[str, Any], group: str, job_type: str, name: str) -> None:
        import wandb

        Path(self.dir).mkdir(parents=True, exist_ok=True)
        mode = os.environ.get("WANDB_MODE", self.mode)
        self._run = wandb.init(project=self.project, entity=self.entity, dir=self.dir, mode=mode, id=run_id,
                               resume="allow", group=group, job_type=job_type, name=name,
                               config=scrub(config), reinit="finish_previous")

    def log(self, metrics: dict[str, float]) -> None:
        if self._run is not None:
            self._run.log(dict(metrics))

    def log_images(self, paths: list[Path]) -> None:
        if self._run is not None:
            import wandb

            self._run.log({Path(p).stem: wandb.Image(str(p)) for p in paths})

    def _table(self, key: str, table: tuple[list[str], list[list[Any]]]) -> None:
        import wandb

        columns, rows = table
        self._run.log({key: wandb.Table(columns=columns, data=sample_rows(rows, self.max_rows, key),
                                        allow_mixed_types=True)})

    def log_result(self, doc: dict[str, Any], records: Sequence[dict[str, Any]]) -> None:
        """Summary, per-example and continuation tables and the loss curve of a written run (module doc)."""
        if self._run is None:
            return
        self._run.summary.update(summary_values(doc))
        by_bench: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            by_bench.setdefault(r["benchmark"], []).append({k: v for k, v in r.items() if k != "benchmark"})
        for name, rows in by_bench.items():
            self._table(f"records/{name}", record_table(rows))
            if _scored_continuations(rows):
                self._table(f"continuations/{name}", continuation_table(rows))
        curve = doc.get("info", {}).get("method", {}).get("method/loss_curve")
        if curve:
            self._run.define_metric("train/step")
            self._run.define_metric("train/*", step_metric="train/step")
            for step in range(len(curve["loss"])):
                self._run.log({"train/step": step + 1, **{f"train/{part}": v[step] for part, v in curve.items()}})

    def log_leaderboard(self, frame: Any, plots: Sequence[Path]) -> None:
        """The leaderboard (a pandas DataFrame) as table ``leaderboard`` and each plot as an image."""
        if self._run is None:
            return
        import wandb

        self._run.log({"leaderboard": wandb.Table(dataframe=frame.astype(object).where(frame.notna(), None),
                                                  allow_mixed_types=True)})
        self.log_images(list(plots))

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
