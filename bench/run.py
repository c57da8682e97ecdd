"""One run: load a model, apply a debiasing method, run a suite of benchmarks, write
the result file.  ``taxbench run [overrides]`` calls ``run(cfg)`` once per Hydra job.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterator

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bench.data import DataRoot, data_manifest_digest
from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.config import build_model_config, check_targets, model_configs
from bench.engine.models import load_model, model_identity, resolve_device
from bench.api import Benchmark, Debiased, Method, MethodContext, ModelConfig
from bench.summary import summary_table
from bench.store import (check_writable, code_version, drop_checkpoints, load_result, new_document, read_checkpoints,
                         run_id, run_paths, versions, write_checkpoint, write_result)
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
        resumed = {} if cfg.force else read_checkpoints(results_dir, rid, list(benchmarks))
        if resumed:
            log.info("%s: resuming; finished before: %s", rid, ", ".join(resumed))
        for name, bench in benchmarks.items():
            part = resumed.get(name)
            if part is None:
                log.info("%s: running %s", rid, name)
                with _timed(timings, name):
                    result = bench.evaluate(debiased.lm_for(bench.name), data)
                part = {"metrics": result.metrics, "specs": {s.key: s.to_dict() for s in result.specs},
                        "records": result.records, "n": result.n, "info": result.info, "seconds": timings[name]}
                write_checkpoint(results_dir, rid, name, part)
            timings[name] = part["seconds"]
            metrics.update(part["metrics"])
            specs.update(part["specs"])
            records.extend({"benchmark": name, **r} for r in part["records"])
            n[name] = part["n"]
            info[name] = part["info"]
            tracker.log(part["metrics"])
        # this process's wall time plus what the resumed benchmarks took when they ran
        timings["total"] = round(time.perf_counter() - start + sum(p["seconds"] for p in resumed.values()), 3)
        doc = new_document(
            rid, model={"name": model_cfg.name, "identity": identity},
            method={"name": method.name, "bias_type": bias_type},
            suite=cfg.get("suite_name"), seed=cfg.seed,
            seeds={"run": cfg.seed, **{f"benchmarks.{k}": getattr(b, "seed", None) for k, b in benchmarks.items()}},
            config=resolved, numbers_config=numbers, versions=versions(code), data=data.checksums(),
            metrics=metrics, metric_specs=specs, n=n, timings=timings, info=info, resumed=list(resumed))
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
