"""End to end through the command line: a run writes a complete result file, a second
call skips it, force=true reruns it."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SMOKE_METRICS = ["stereoset/ss", "stereoset/lms", "stereoset/icat", "stereoset/ss_gender", "stereoset/ss_race",
                 "stereoset/ss_religion", "stereoset/ss_profession", "crows_pairs/stereotype_score",
                 "truthfulqa/mc1", "truthfulqa/mc2", "knowledge/acc", "perplexity/wikitext2",
                 "toxicity/expected_max", "toxicity/probability", "toxicity/mean", "seat/abs_effect_gender",
                 "nc/nc1", "nc/nc3", "nc/unc3", "patterns/incomplete", "patterns/distinct_2"]


def taxbench(*args: str, results: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", *args, "logger=none",
                           f"paths.results_dir={results}"], capture_output=True, text=True, env=env, timeout=900)


def result_files(results: Path) -> list[Path]:
    return sorted((results / "runs").glob("*.json"))


def test_smoke_run_writes_skips_and_forces(tmp_path):
    first = taxbench("model=tiny-random", "suite=smoke", results=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    [path] = result_files(tmp_path)
    doc = json.loads(path.read_text())
    for key in ("schema_version", "run_id", "config", "versions", "data", "metrics", "n", "timings",
                "records_path", "metric_specs", "seeds"):
        assert key in doc, key
    missing = [m for m in SMOKE_METRICS if m not in doc["metrics"]]
    assert not missing, missing
    assert set(doc["versions"]) >= {"python", "torch", "torch_threads", "transformers", "taxbench", "git_commit"}
    assert doc["versions"]["torch_threads"] >= 1 and doc["versions"]["cpu"].strip()
    assert all(len(sha) == 64 for sha in doc["data"].values()) and doc["data"]
    records = (path.parent / doc["records_path"]).read_text().splitlines()
    assert {json.loads(r)["benchmark"] for r in records} >= {"stereoset", "crows_pairs", "truthfulqa"}
    mtime = path.stat().st_mtime_ns

    second = taxbench("model=tiny-random", "suite=smoke", results=tmp_path)
    assert second.returncode == 0 and "skipped" in second.stderr + second.stdout
    assert path.stat().st_mtime_ns == mtime

    third = taxbench("model=tiny-random", "suite=smoke", "force=true", results=tmp_path)
    assert third.returncode == 0, third.stderr[-3000:]
    assert path.stat().st_mtime_ns != mtime
    assert json.loads(path.read_text())["metrics"] == doc["metrics"]  # same config and seed: same numbers


@pytest.mark.slow
def test_smollm2_tiny_sizes(tmp_path):
    sizes = ["benchmarks.stereoset.n=8", "benchmarks.crows_pairs.n=8", "benchmarks.truthfulqa.n=3",
             "benchmarks.knowledge.n=8", "benchmarks.perplexity.n=1", "benchmarks.toxicity.n=2",
             "benchmarks.toxicity.num_samples=2", "benchmarks.seat.n=4", "benchmarks.nc.n=10"]
    out = taxbench("model=smollm2-135m", "suite=smoke", *sizes, results=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    [path] = result_files(tmp_path)
    metrics = json.loads(path.read_text())["metrics"]
    assert 1 < metrics["perplexity/wikitext2"] < 1000  # a trained model, not a random one
    assert 0 <= metrics["truthfulqa/mc2"] <= 1
