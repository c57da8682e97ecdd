"""Bad input gets one clear line naming the culprit, a non-zero exit, no result file
for the failed run, and leaves finished results untouched.

Each case runs the real command line in a subprocess against a results folder that
already holds a finished result file.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bench.io import atomic_write_json

FAST = ["model=tiny-random", "suite=smoke", "only=[stereoset]", "logger=none"]
DATA = Path(os.environ["TAXBENCH_DATA"])


def taxbench(args: list[str], results: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", *args, f"paths.results_dir={results}"],
                          capture_output=True, text=True, env=full_env, timeout=600)


@pytest.fixture()
def results(tmp_path) -> Path:
    """A results folder with one finished (unrelated) run in it."""
    folder = tmp_path / "results"
    atomic_write_json(folder / "runs" / "finished.json", {"schema_version": 1, "run_id": "finished", "metrics": {}})
    return folder


def assert_clean_failure(out: subprocess.CompletedProcess, results: Path, *needles: str) -> str:
    assert out.returncode != 0, out.stdout[-2000:]
    message = out.stderr
    for needle in needles:
        assert needle in message, f"{needle!r} not in:\n{message[-3000:]}"
    assert sorted(p.name for p in (results / "runs").iterdir()) == ["finished.json"]
    assert json.loads((results / "runs" / "finished.json").read_text())["run_id"] == "finished"
    return message


def one_line_error(message: str) -> str:
    lines = [line for line in message.splitlines() if line.startswith("taxbench: error:")]
    assert len(lines) == 1, message[-3000:]
    return lines[0]


@pytest.mark.parametrize("group", ["model", "method", "suite"])
def test_unknown_group_option_lists_valid_names(group, results):
    out = taxbench([f"{group}=no-such-{group}", "logger=none"], results)
    message = assert_clean_failure(out, results, f"Could not find '{group}/no-such-{group}'", "Available options")
    expected = {"model": "smollm2-135m", "method": "none", "suite": "default"}[group]
    assert expected in message


def test_unknown_benchmark_lists_valid_names(results):
    out = taxbench([*FAST[:2], "only=[no_such_bench]", "logger=none"], results)
    line = one_line_error(assert_clean_failure(out, results, "no_such_bench"))
    assert "stereoset" in line and "crows_pairs" in line


@pytest.mark.parametrize("override,needle", [
    ("model.batch_size=abc", "model.batch_size must be int"),
    ("model.batch_size=0", "model.batch_size must be > 0"),
    ("model.batch_size=-3", "model.batch_size must be > 0"),
    ("model.dtype=float8", "model.dtype='float8'"),
    ("model.device=cuda", "model.device=cuda"),
    ("benchmarks.stereoset.n=0", "benchmarks.stereoset.n must be > 0"),
    ("benchmarks.stereoset.n=-5", "benchmarks.stereoset.n must be > 0"),
    ("seed=abc", "seed must be an integer"),
    ("+model.no_such_option=1", "unknown model option(s) ['no_such_option']"),
])
def test_bad_override(override, needle, results):
    if override == "model.device=cuda" and __import__("torch").cuda.is_available():
        pytest.skip("a GPU is visible")
    out = taxbench([*FAST, override], results)
    assert needle in one_line_error(assert_clean_failure(out, results))


def test_missing_data_file_without_download(results, tmp_path):
    out = taxbench([*FAST, f"paths.data_root={tmp_path / 'empty'}", "paths.download=false"], results)
    line = one_line_error(assert_clean_failure(out, results))
    assert "stereoset/stereoset_dev_full.jsonl" in line and "missing" in line


def test_checksum_mismatch_names_the_file(results, tmp_path):
    root = tmp_path / "data"
    (root / "stereoset").mkdir(parents=True)
    text = (DATA / "stereoset" / "stereoset_dev_full.jsonl").read_text()
    (root / "stereoset" / "stereoset_dev_full.jsonl").write_text(text.replace("chess", "chest", 1))
    out = taxbench([*FAST, f"paths.data_root={root}", "paths.download=false"], results)
    line = one_line_error(assert_clean_failure(out, results))
    assert "checksum mismatch" in line and "stereoset_dev_full.jsonl" in line


def test_unreachable_download_source(results, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = taxbench([*FAST, f"paths.data_root={tmp_path / 'empty'}"], results,
                   env={"TAXBENCH_DATA_MIRROR": f"http://127.0.0.1:{port}"})
    line = one_line_error(assert_clean_failure(out, results))
    assert "cannot download data file stereoset/stereoset_dev_full.jsonl" in line


@pytest.mark.parametrize("content,needle", [
    ('{"schema_version": 99, "run_id": "x", "metrics": {}}', "schema_version 99"),
    ('{"schema_version": 1, "run_id": ', "is not valid JSON"),
])
def test_existing_result_file_of_unknown_schema_or_corrupt(content, needle, results, tmp_path):
    scratch = tmp_path / "scratch"
    ok = taxbench([*FAST, "benchmarks.stereoset.n=4"], scratch)
    assert ok.returncode == 0, ok.stderr[-3000:]
    [done] = (scratch / "runs").glob("*.json")
    shutil.copytree(scratch / "records", results / "records")
    (results / "runs" / done.name).write_text(content)
    out = taxbench([*FAST, "benchmarks.stereoset.n=4"], results)
    assert out.returncode != 0
    assert needle in one_line_error(out.stderr)
    assert (results / "runs" / done.name).read_text() == content  # left for the user to inspect
