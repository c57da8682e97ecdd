"""Result files: one JSON document per run at ``<results_dir>/runs/<run_id>.json``
plus its per-example records at ``<results_dir>/records/<run_id>.jsonl``.

The records file is written first and the result file last, each atomically: a result file that
exists is complete and its records are there.  While a run is under way, each finished benchmark is
checkpointed at ``<results_dir>/partial/<run_id>/<benchmark>.json``, so an interrupted job resumes at
the first unfinished benchmark, and processes started with the same job share its benchmarks (each
claims one nobody holds, see ``claim``); the folder goes once the result is written.  ``run_id``
hashes everything that can change a number (model identity and settings, method config, benchmark
configs, seed, code version), never paths, loggers or batch sizes.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import shutil
import platform
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from bench import __version__
from bench.errors import TaxbenchError
from bench.io import atomic_write_bytes, atomic_write_json, stable_hash

log = logging.getLogger("taxbench")
SCHEMA_VERSION = 1
# Source files whose change can change a number (reporting code - leaderboard, plots, CLI - is left out,
# so editing a figure does not invalidate finished runs).
NUMBERS_CODE = ("bench/api", "bench/engine", "bench/data", "bench/tasks", "bench/scorers", "methods")
_REPO = Path(__file__).resolve().parent.parent


def code_version() -> str:
    """taxbench version + hash of the scoring, metric and method source files."""
    h = hashlib.sha256()
    for entry in NUMBERS_CODE:
        root = _REPO / entry
        for path in sorted([*root.rglob("*.py"), *root.rglob("*.json")]) if root.is_dir() else [root]:
            h.update(path.relative_to(_REPO).as_posix().encode())
            h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_REPO, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``'s "model name" on Linux), else ``platform.processor()``:
    CPU timings differ by processor, e.g. the matrix-product rate of two 2-core VMs by 2x."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown processor"


def versions(code: str) -> dict[str, Any]:
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),  # sampled metrics may differ by a ulp-level draw across thread counts
            "transformers": transformers.__version__, "taxbench": __version__,
            "code_version": code, "git_commit": git_commit(), "platform": platform.platform(),
            "cpu": cpu_name()}


def run_id(numbers_config: dict[str, Any]) -> str:
    return stable_hash(numbers_config, length=16)


def run_paths(results_dir: Path, rid: str) -> tuple[Path, Path]:
    results_dir = Path(results_dir)
    return results_dir / "runs" / f"{rid}.json", results_dir / "records" / f"{rid}.jsonl"


def load_result(path: Path) -> dict[str, Any]:
    """Read a result file; an older schema is migrated, an unknown one refused with a message."""
    try:
        doc = json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise TaxbenchError(f"result file {path} is not valid JSON (line {exc.lineno}): delete it to rerun") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxbenchError(f"result file {path} cannot be read ({exc}): delete it to rerun") from exc
    if not isinstance(doc, dict):
        raise TaxbenchError(f"result file {path} holds a JSON {type(doc).__name__}, not an object: delete it to rerun")
    version = doc.get("schema_version", 0)
    if version == 0 and "metrics" in doc:  # pre-release files: no schema_version, no metric_specs
        doc = {**doc, "schema_version": SCHEMA_VERSION, "metric_specs": doc.get("metric_specs", {})}
    elif version != SCHEMA_VERSION:
        raise TaxbenchError(f"result file {path} has schema_version {version}; this taxbench reads "
                            f"{SCHEMA_VERSION} (rerun with force=true to rewrite it)")
    return doc


def check_writable(results_dir: Path) -> None:
    """Create ``runs/`` and ``records/`` and write (then remove) a probe file in each, so an unwritable
    results folder fails before any model is loaded, not after every benchmark ran."""
    for folder in (path.parent for path in run_paths(results_dir, "probe")):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
                pass
        except OSError as exc:
            raise TaxbenchError(f"paths.results_dir={results_dir}: cannot write {folder} "
                                f"({exc.strerror or exc}); fix its permissions or choose another folder") from exc


def write_result(results_dir: Path, doc: dict[str, Any], records: list[dict[str, Any]]) -> Path:
    result_path, records_path = run_paths(results_dir, doc["run_id"])
    lines = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in records)
    atomic_write_bytes(records_path, lines.encode())
    doc = {**doc, "records_path": f"../records/{records_path.name}"}
    atomic_write_json(result_path, doc)
    return result_path


def new_document(rid: str, **fields: Any) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "run_id": rid,
            "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **fields}


# ------------------------------------------------------------------ benchmark checkpoints
def checkpoint_dir(results_dir: Path, rid: str) -> Path:
    """Where run ``rid`` keeps its finished benchmarks until its result file is written."""
    return Path(results_dir) / "partial" / rid


def write_checkpoint(results_dir: Path, rid: str, benchmark: str, part: dict[str, Any]) -> None:
    """Keep one finished benchmark of run ``rid``: ``part`` holds its metrics, metric specs, records,
    n, info and seconds, as the result file will.  The run id hashes the benchmark's config and the
    code version, so a checkpoint is only ever read back by the same computation."""
    atomic_write_json(checkpoint_dir(results_dir, rid) / f"{benchmark}.json",
                      {"run_id": rid, "benchmark": benchmark, **part})


def read_checkpoint(results_dir: Path, rid: str, name: str) -> dict[str, Any] | None:
    """Benchmark ``name`` of run ``rid`` as an earlier or a parallel process finished it, or None; a
    checkpoint that does not read (or names another run or benchmark) is skipped with a warning, and
    its benchmark runs again."""
    path = checkpoint_dir(results_dir, rid) / f"{name}.json"
    if not path.exists():
        return None
    try:
        part = json.loads(path.read_text())
        if part.get("run_id") != rid or part.get("benchmark") != name:
            raise ValueError(f"it holds run {part.get('run_id')} benchmark {part.get('benchmark')}")
    except (OSError, ValueError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        log.warning("checkpoint %s does not read (%s): rerunning %s", path, exc, name)
        return None
    return part


@contextmanager
def claim(results_dir: Path, rid: str, name: str, wait: bool) -> Iterator[bool]:
    """Hold benchmark ``name`` of run ``rid`` while this process computes it: yields True with the
    claim, False (only when ``wait`` is false) if another process holds it.  The claim is an advisory
    ``flock`` on ``<benchmark>.lock`` beside the checkpoints; the operating system releases it when its
    process ends, so a killed process never blocks a rerun.  POSIX filesystems (local, or NFS with
    working locks)."""
    path = checkpoint_dir(results_dir, rid) / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def drop_checkpoints(results_dir: Path, rid: str) -> None:
    """Remove run ``rid``'s checkpoints (its result file holds everything they held)."""
    folder = checkpoint_dir(results_dir, rid)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        folder.parent.rmdir()  # ``partial/`` itself, once no other run is under way
    except OSError:
        pass
