"""A killed sweep resumes without loss or corruption; numbers are deterministic;
secrets never reach an output file."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from bench.config import CONF_DIR
from bench.run import build_benchmarks, collect_parts, run
from bench.store import checkpoint_dir, write_checkpoint

SWEEP = ["-m", "model=tiny-random", "suite=smoke", "only=[stereoset,crows_pairs,truthfulqa]", "seed=0,1,2",
         "logger=none"]


def _cmd(results: Path, sweep_dir: Path) -> list[str]:
    return [sys.executable, "-m", "bench.cli", "run", *SWEEP, f"paths.results_dir={results}",
            f"hydra.sweep.dir={sweep_dir}"]


def _metrics(results: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())["metrics"] for p in sorted((results / "runs").glob("*.json"))}


def test_sigkill_mid_sweep_then_rerun_recomputes_only_unfinished(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    reference = tmp_path / "reference"
    done = subprocess.run(_cmd(reference, tmp_path / "mr0"), env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _metrics(reference)
    assert len(expected) == 3

    results = tmp_path / "results"
    proc = subprocess.Popen(_cmd(results, tmp_path / "mr1"), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and not list((results / "runs").glob("*.json")):
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # mid-sweep: at least one job finished, others not
    proc.wait()
    finished = {p.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*.json")}
    assert 1 <= len(finished) < 3

    rerun = subprocess.run(_cmd(results, tmp_path / "mr2"), env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert rerun.stderr.count("skipped") + rerun.stdout.count("skipped") == len(finished)
    for name, mtime in finished.items():  # finished runs were not recomputed
        assert (results / "runs" / name).stat().st_mtime_ns == mtime
    assert _metrics(results) == expected  # every result exists once, is valid JSON, equals the clean sweep
    leftovers = [p for p in results.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers


def _run_once(overrides: list[str], results: Path, artifacts: Path) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[*overrides, "logger=none", f"paths.results_dir={results}",
                                           f"paths.artifacts_dir={artifacts}"])
    return json.loads(run(cfg).read_text())


METHODS = sorted(p.stem for p in (CONF_DIR / "method").glob("*.yaml"))


@pytest.mark.parametrize("method", METHODS)
def test_same_config_and_seed_give_bit_identical_metrics(method, tmp_path):
    overrides = ["model=tiny-random", "suite=smoke", f"method={method}"]
    first = _run_once(overrides, tmp_path / "a", tmp_path / "artifacts_a")
    second = _run_once(overrides, tmp_path / "b", tmp_path / "artifacts_b")  # fresh artifacts: refit / retrain
    assert first["metrics"] == second["metrics"]
    assert first["run_id"] == second["run_id"]
    assert first["seeds"]["run"] == 0 and all(k.startswith(("run", "benchmarks.")) for k in first["seeds"])


def test_api_keys_never_reach_output_files(tmp_path):
    secret = "sk-taxbench-test-7f3a9c"
    env = {**os.environ, "WANDB_MODE": "offline", "PERSPECTIVE_API_KEY": secret, "WANDB_API_KEY": secret}
    out = subprocess.run([sys.executable, "-m", "bench.cli", "run", "model=tiny-random", "suite=smoke",
                          "only=[stereoset]", "logger=wandb", f"paths.results_dir={tmp_path}",
                          f"hydra.run.dir={tmp_path / 'hydra'}"],
                         env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files) and any(p.parent.name == "runs" for p in files)
    leaked = [str(p) for p in files if secret.encode() in p.read_bytes()]
    assert not leaked
    assert secret not in out.stdout + out.stderr


def test_result_without_records_is_rerun_not_skipped(tmp_path, caplog):
    overrides = ["model=tiny-random", "suite=smoke", "only=[stereoset]", "benchmarks.stereoset.n=4"]
    first = _run_once(overrides, tmp_path / "r", tmp_path / "artifacts")
    records = tmp_path / "r" / "records" / f"{first['run_id']}.jsonl"
    expected = records.read_bytes()
    records.unlink()
    with caplog.at_level("WARNING", logger="taxbench"):
        second = _run_once(overrides, tmp_path / "r", tmp_path / "artifacts")
    assert "records" in caplog.text and "missing: rerunning" in caplog.text
    assert second["run_id"] == first["run_id"] and second["created"] >= first["created"]
    assert records.read_bytes() == expected and second["metrics"] == first["metrics"]


def test_config_values_from_secret_env_vars_stay_out_of_the_result_file(tmp_path, monkeypatch):
    secret = "sk-taxbench-env-5b1d2e"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    doc = _run_once(["model=tiny-random", "suite=smoke", "only=[stereoset]", "benchmarks.stereoset.n=4",
                     "+my_api_key=${oc.env:OPENAI_API_KEY}", "+note=key-${oc.env:OPENAI_API_KEY}",
                     "+harmless=${oc.env:TAXBENCH_DATA}"], tmp_path / "r", tmp_path / "artifacts")
    written = [p for p in (tmp_path / "r").rglob("*") if p.is_file()]
    assert written and not [p for p in written if secret.encode() in p.read_bytes()]
    assert "my_api_key" not in doc["config"] and "note" not in doc["config"]
    assert doc["config"]["harmless"] == os.environ["TAXBENCH_DATA"] and doc["config"]["seed"] == 0


def test_job_that_dies_mid_suite_resumes_at_its_first_unfinished_benchmark(tmp_path, monkeypatch, caplog):
    """Benchmarks finished before a crash are checkpointed; the rerun evaluates the rest (and any benchmark
    whose checkpoint does not read) and writes the metrics and records of an uninterrupted job: a sampled
    benchmark (toxicity, under Self-Debias) must not depend on what ran before it in the process."""
    overrides = ["model=tiny-random", "suite=smoke", "method=self_debias",
                 "only=[stereoset,crows_pairs,truthfulqa,toxicity]"]
    clean = _run_once(overrides, tmp_path / "clean", tmp_path / "artifacts_clean")
    clean_records = (tmp_path / "clean" / "records" / f"{clean['run_id']}.jsonl").read_bytes()

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        built = build_benchmarks(compose("config", overrides=overrides))
    calls, crash_at = [], ["toxicity"]
    for cls in {type(b) for b in built.values()}:
        def evaluate(self, lm, data, _real=cls.evaluate):
            calls.append(self.name)
            if self.name in crash_at:
                raise RuntimeError("killed mid-suite")
            return _real(self, lm, data)
        monkeypatch.setattr(cls, "evaluate", evaluate)

    results, artifacts = tmp_path / "r", tmp_path / "artifacts"
    with pytest.raises(RuntimeError, match="killed mid-suite"):
        _run_once(overrides, results, artifacts)
    assert calls == ["stereoset", "crows_pairs", "truthfulqa", "toxicity"]
    assert not list((results / "runs").glob("*.json"))
    partial = checkpoint_dir(results, clean["run_id"])
    assert sorted(p.stem for p in partial.glob("*.json")) == ["crows_pairs", "stereoset", "truthfulqa"]
    (partial / "crows_pairs.json").write_text('{"run_id": "trunc')  # a checkpoint cut short by the crash

    calls.clear()
    crash_at.clear()
    with caplog.at_level("WARNING", logger="taxbench"):
        resumed = _run_once(overrides, results, artifacts)
    assert "crows_pairs.json does not read" in caplog.text
    assert calls == ["crows_pairs", "toxicity"]
    assert resumed["resumed"] == ["stereoset", "truthfulqa"] and clean["resumed"] == []
    assert resumed["run_id"] == clean["run_id"] and resumed["metrics"] == clean["metrics"]
    assert (results / "records" / f"{clean['run_id']}.jsonl").read_bytes() == clean_records
    assert not (results / "partial").exists()  # the result file holds everything the checkpoints held


def _worker(results: Path, names: list[str], compute, outcome: dict, tag: str) -> None:
    """One process of a job (a thread here: ``flock`` treats each ``open`` as its own claimant, as it
    treats two processes)."""
    try:
        outcome[tag] = collect_parts(names, compute, results, "rid0", reuse=True, finished=lambda: False)
    except Exception as exc:  # noqa: BLE001 - the test reads it
        outcome[tag] = exc


def test_two_processes_started_with_one_job_split_its_benchmarks(tmp_path):
    """Each takes a benchmark nobody holds, then waits for the other's and reads its checkpoint: every
    benchmark is computed once, and both end with the same parts."""
    names = ["stereoset", "crows_pairs", "truthfulqa", "knowledge", "toxicity"]
    both_busy, calls, outcome = threading.Barrier(2, timeout=60), [], {}

    def compute_as(tag):
        def compute(name):
            calls.append((tag, name))
            if len([c for c in calls if c[0] == tag]) == 1:
                both_busy.wait()  # each holds its first claim while the other takes its own
            part = {"metrics": {f"{name}/x": len(name)}, "seconds": 1.0}
            write_checkpoint(tmp_path, "rid0", name, part)
            return part
        return compute

    threads = [threading.Thread(target=_worker, args=(tmp_path, names, compute_as(t), outcome, t)) for t in "AB"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    (parts_a, computed_a, _), (parts_b, computed_b, _) = outcome["A"], outcome["B"]
    assert sorted(name for _, name in calls) == sorted(names)  # none twice
    assert computed_a and computed_b and not computed_a & computed_b and computed_a | computed_b == set(names)
    assert {k: v["metrics"] for k, v in parts_a.items()} == {k: v["metrics"] for k, v in parts_b.items()} \
        == {name: {f"{name}/x": len(name)} for name in names}


def test_a_benchmark_whose_holder_dies_is_computed_by_the_process_waiting_for_it(tmp_path):
    names = ["stereoset", "crows_pairs"]
    holding, release, outcome = threading.Event(), threading.Event(), {}

    def dies(name):
        holding.set()
        release.wait(60)
        raise RuntimeError("killed")

    def works(name):
        if name == "crows_pairs":
            release.set()  # B has passed A's claim on stereoset and will wait for it; A dies now
        part = {"metrics": {name: 1.0}, "seconds": 1.0}
        write_checkpoint(tmp_path, "rid0", name, part)
        return part

    a = threading.Thread(target=_worker, args=(tmp_path, names[:1], dies, outcome, "A"))
    a.start()
    assert holding.wait(60)
    _worker(tmp_path, names, works, outcome, "B")
    a.join(60)
    assert isinstance(outcome["A"], RuntimeError)
    parts, computed, _ = outcome["B"]
    assert computed == set(names) and sorted(parts) == sorted(names)
