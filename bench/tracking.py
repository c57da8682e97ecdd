"""Experiment trackers: a view of the result file, never its source of truth.

``WandbTracker`` logs one wandb run per job (deterministic id = run_id, resumable),
offline by default; ``NullTracker`` logs nothing (``logger=none``).  ``scrub`` removes secrets
from a config before it is logged or written to a result file.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class NullTracker:
    def start(self, run_id: str, config: dict[str, Any], group: str, job_type: str, name: str) -> None: ...

    def log(self, metrics: dict[str, float]) -> None: ...

    def log_images(self, paths: list[Path]) -> None: ...

    def finish(self) -> None: ...


@dataclass
class WandbTracker:
    project: str = "taxbench"  # wandb project
    mode: str = "offline"  # offline (default), online or disabled
    dir: str = "results/wandb"  # where offline runs are stored (sync later with `wandb sync`)
    entity: str | None = None  # wandb entity (team or user), online mode only

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

    def finish(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None
