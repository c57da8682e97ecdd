"""One run: load a model, apply a debiasing method, run a suite of benchmarks, write
the result file.  ``taxbench run [overrides]`` calls ``run(cfg)`` once per Hydra job.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bench.data import DataRoot, data_manifest_digest
from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.config import build_model_config, check_targets, model_configs
from bench.engine.models import load_model, model_identity, resolve_device
from bench.api import Benchmark, Debiased, Method, MethodContext, ModelConfig
from bench.summary import summary_table
from bench.store import (check_writable, claim, code_version, drop_checkpoints, load_result, new_document,
                         read_checkpoint, run_id, run_paths, versions, write_checkpoint, write_result)
from bench.tracking import scrub
from bench.validate import check_fields

log = logging.getLogger("taxbench")


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    timings[stage] = round(time.perf_counter() - start, 3)


def _as_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj) if is_dataclass(obj) else dict(vars(obj))


def _instantiate(node: DictConfig, what: str) -> Any:
    try:
        obj = instantiate(node, _convert_="all")
    except Exception as exc:  # Hydra wraps the class's own error; surface its message
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"{what}: {cause}") from exc
    check_fields(obj, what)
    return obj


def build_benchmarks(cfg: DictConfig) -> dict[str, Benchmark]:
    """The suite's benchmarks, or the subset named by ``only``."""
    if not cfg.get("benchmarks"):
        raise ConfigError("the suite selects no benchmarks (benchmarks is empty)")
    names = list(cfg.benchmarks)
    only = cfg.get("only")
    if only is not None:
        only = [only] if isinstance(only, str) else list(only)
        if not only or only == [""]:
            raise ConfigError(f"only={only} selects no benchmarks; omit it (only=null) to run the whole suite: {names}")
        unknown = [b for b in only if b not in names]
        if unknown:
            raise ConfigError(f"unknown benchmark(s) {unknown} in only=...; valid names: {names}")
        names = only
    benches = {name: _instantiate(cfg.benchmarks[name], f"benchmarks.{name}") for name in names}
    for name, bench in benches.items():
        if not isinstance(bench, Benchmark):
            raise ConfigError(f"benchmarks.{name}: {type(bench).__name__} has no evaluate(lm, data)")
        n = getattr(bench, "n", None)
        if n is not None and n <= 0:
            raise ConfigError(f"benchmarks.{name}.n must be > 0 (or null for all examples), got {n}")
    return benches


def numbers_config(cfg: DictConfig, model_cfg: ModelConfig, identity: str, method: Method,
                   benchmarks: dict[str, Benchmark], code: str) -> dict[str, Any]:
    """Everything that can change a number of this run (hashed into run_id)."""
    model = {k: v for k, v in asdict(model_cfg).items() if k not in ("batch_size", "device")}
    model["device_type"] = resolve_device(model_cfg.device).type  # kernels differ by device: a GPU rerun is a new run
    return {"model": model, "model_identity": identity, "method": {"class": type(method).__name__, **_as_dict(method)},
            "benchmarks": {n: {"class": type(b).__name__, **_as_dict(b)} for n, b in benchmarks.items()},
            "data_manifest": data_manifest_digest(), "seed": cfg.seed, "code_version": code}


BOOLEAN_OPTIONS = ("force", "paths.download")


def check_options(cfg: DictConfig) -> None:
    """The job's top-level options have their types, and every ``_target_`` is allowed."""
    if not isinstance(cfg.seed, int) or isinstance(cfg.seed, bool):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    for key in BOOLEAN_OPTIONS:
        value = OmegaConf.select(cfg, key)
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
    check_targets(OmegaConf.to_container(cfg, resolve=True))  # method, benchmarks, logger: before instantiation


def _finished(result_path: Path, records_path: Path, rid: str) -> bool:
    """Whether the run is done: its result file reads and its records file exists (else it reruns)."""
    load_result(result_path)  # refuses a corrupt or unknown-schema file with a clear message
    if not records_path.exists():
        log.warning("run %s has a result file but its records %s are missing: rerunning it", rid, records_path)
        return False
    return True


def collect_parts(names: list[str], compute: Callable[[str], dict[str, Any]], results_dir: Path, rid: str,
                  reuse: bool, finished: Callable[[], bool]
                  ) -> tuple[dict[str, dict[str, Any]], set[str], float] | None:
    """Every benchmark's part (metrics, specs, records, n, info, seconds) by name, the names computed
    here, and the seconds spent waiting; None if another process wrote the run's result meanwhile
    (``finished`` tells).

    A benchmark is computed here (``compute`` also checkpoints it) unless its checkpoint is there,
    from an interrupted earlier process or from a process running the same job in parallel.  The first
    pass claims (``claim``) each benchmark nobody holds, in order; the second waits for the ones other
    processes hold and reads their checkpoints, or computes a benchmark whose holder died.  So N
    processes started with one job split its benchmarks and each ends with the same result.
    ``reuse=False`` (``force=true``) ignores checkpoints: every benchmark is computed here."""
    parts: dict[str, dict[str, Any]] = {}
    computed: set[str] = set()
    waited = 0.0
    for wait in (False, True):
        for name in names:
            if name in parts:
                continue
            asked = time.perf_counter()
            with claim(results_dir, rid, name, wait) as held:
                waited += time.perf_counter() - asked if wait else 0.0
                if not held:
                    continue
                part = read_checkpoint(results_dir, rid, name) if reuse else None
                if part is not None:
                    log.info("%s: %s was finished by an earlier or parallel process (checkpoint)", rid, name)
                elif reuse and finished():  # another process finished the run and cleaned up
                    return None
                else:
                    part = compute(name)
                    computed.add(name)
                parts[name] = part
    return parts, computed, waited


def run(cfg: DictConfig) -> Path:
    """Execute one job; returns the path of its result file (existing one when skipped)."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    check_options(cfg)
    cache = Path(cfg.paths.cache_dir)
    model_cfg = build_model_config(cfg)
    method: Method = _instantiate(cfg.method, "method")
    if model_cfg.source == "lm_eval" and method.name != "none":
        raise ConfigError(f"model=lm_eval scores an lm-eval backend as it is: method={method.name} needs the weights "
                          "(use method=none)")
    benchmarks = build_benchmarks(cfg)
    identity = model_identity(model_cfg, model_configs(), cache)
    code = code_version()  # read once: the files may change while a long job runs
    numbers = numbers_config(cfg, model_cfg, identity, method, benchmarks, code)
    rid = run_id(numbers)
    results_dir = Path(cfg.paths.results_dir)
    result_path, records_path = run_paths(results_dir, rid)
    if result_path.exists() and not cfg.force and _finished(result_path, records_path, rid):
        log.info("run %s exists (%s): skipped; force=true reruns it", rid, result_path)
        drop_checkpoints(results_dir, rid)  # left behind if a process was killed between its result and cleanup
        return result_path
    check_writable(results_dir)  # before any work: a read-only results folder must not lose a finished job

    resolved = scrub(OmegaConf.to_container(cfg, resolve=True))  # the result file's copy: no secrets
    tracker = _instantiate(cfg.logger, "logger")
    bias_type = getattr(method, "bias_type", None)
    tracker.start(rid, resolved, group=cfg.get("experiment_name") or "adhoc", job_type=method.name,
                  name=f"{model_cfg.name}/{method.name}" + (f"/{bias_type}" if bias_type else ""))
    try:
        data = DataRoot(cfg.paths.data_root, download=cfg.paths.download, cache_dir=cache)
        if model_cfg.source == "lm_eval":  # any lm-eval backend, scored as it is (no weights to debias)
            from bench.lm_eval_bridge import load_harness_lm  # the optional extra: imported only here

            with _timed(timings, "load_model"):
                debiased = Debiased(load_harness_lm(model_cfg.backend, model_cfg.args, model_cfg.name,
                                                    model_cfg.batch_size, resolve_device(model_cfg.device).type))
        else:
            with _timed(timings, "load_model"):
                loaded = load_model(model_cfg, model_configs(), cache)
            ctx = MethodContext(data=data, cache_dir=Path(cfg.paths.artifacts_dir), seed=cfg.seed,
                                code_version=code, budget=cfg.get("train_budget", "cpu"), scoring_lm=HFScoringLM,
                                benchmarks=tuple(b.name for b in benchmarks.values()))
            with _timed(timings, "method"):
                debiased = method.prepare(loaded, ctx)
        specs = {s.key: s.to_dict() for s in debiased.specs}
        metrics: dict[str, float] = {k: debiased.info[k] for k in specs if k in debiased.info}
        records, n, info = [], {}, {"method": debiased.info}

        def written() -> bool:  # by a parallel process: it writes the records first, the result last
            return result_path.exists() and records_path.exists()

        def compute(name: str) -> dict[str, Any]:
            log.info("%s: running %s", rid, name)
            with _timed(timings, name):
                result = benchmarks[name].evaluate(debiased.lm_for(benchmarks[name].name), data)
            part = {"metrics": result.metrics, "specs": {s.key: s.to_dict() for s in result.specs},
                    "records": result.records, "n": result.n, "info": result.info, "seconds": timings[name]}
            write_checkpoint(results_dir, rid, name, part)
            return part

        collected = collect_parts(list(benchmarks), compute, results_dir, rid, reuse=not cfg.force,
                                  finished=written)
        if collected is None:
            log.info("run %s was finished by another process meanwhile (%s)", rid, result_path)
            drop_checkpoints(results_dir, rid)
            return result_path
        parts, computed, waited = collected
        resumed = [name for name in benchmarks if name not in computed]
        for name in benchmarks:
            part = parts[name]
            timings[name] = part["seconds"]
            metrics.update(part["metrics"])
            specs.update(part["specs"])
            records.extend({"benchmark": name, **r} for r in part["records"])
            n[name] = part["n"]
            info[name] = part["info"]
            tracker.log(part["metrics"])
        # the job's compute time: this process's wall time less its waits, plus what the benchmarks it
        # read from checkpoints took when they ran
        timings["total"] = round(time.perf_counter() - start - waited
                                 + sum(parts[name]["seconds"] for name in resumed), 3)
        doc = new_document(
            rid, model={"name": model_cfg.name, "identity": identity},
            method={"name": method.name, "bias_type": bias_type},
            suite=cfg.get("suite_name"), seed=cfg.seed,
            seeds={"run": cfg.seed, **{f"benchmarks.{k}": getattr(b, "seed", None) for k, b in benchmarks.items()}},
            config=resolved, numbers_config=numbers, versions=versions(code), data=data.checksums(),
            metrics=metrics, metric_specs=specs, n=n, timings=timings, info=info, resumed=resumed)
        if written() and not cfg.force:  # a parallel process got there first, from the same parts
            log.info("run %s was written by another process (%s)", rid, result_path)
            return result_path
        try:
            path = write_result(results_dir, doc, records)
        except OSError as exc:
            raise ConfigError(f"paths.results_dir={results_dir}: cannot write the result of run {rid} ({exc})") from exc
        drop_checkpoints(results_dir, rid)
        tracker.log({"timings/" + k: v for k, v in timings.items()})
        tracker.log_result(doc, records)
        log.info("wrote %s", path)
        log.info("%s", summary_table(doc))
        return path
    finally:
        tracker.finish()
