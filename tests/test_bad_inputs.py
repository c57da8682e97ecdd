"""Bad input gets exit code 2 and exactly one line on stderr naming the culprit (option or file),
no traceback, no result file for the failed run, and leaves finished results untouched.

Each case of the table runs the real command line in a subprocess against a results folder that
already holds a finished result file.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from bench.io import atomic_write_json

FAST = ["model=tiny-random", "suite=smoke", "only=[stereoset]", "logger=none"]
DATA = Path(os.environ["TAXBENCH_DATA"])
STEREOSET = DATA / "stereoset" / "stereoset_dev_full.jsonl"


def taxbench(command: str, args: list[str], results: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    where = ([f"paths.results_dir={results}", f"hydra.run.dir={tempfile.mkdtemp(prefix='hydra-')}"] if command == "run"
             else ["--results", str(results)])
    full_env = {**os.environ, "WANDB_MODE": "disabled", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench.cli", command, *args, *where],
                          capture_output=True, text=True, env=full_env, timeout=600)


def _finished(folder: Path) -> Path:
    """A results folder with one finished (unrelated) run in it."""
    atomic_write_json(folder / "runs" / "finished.json", {"schema_version": 1, "run_id": "finished", "metrics": {}})
    return folder


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """A real finished run of FAST + n=4 (its result and records), made once."""
    scratch = tmp_path_factory.mktemp("done") / "results"
    ok = taxbench("run", [*FAST, "benchmarks.stereoset.n=4"], scratch)
    assert ok.returncode == 0, ok.stderr[-3000:]
    return scratch


@dataclass
class Case:
    id: str
    args: list[str] | Callable[[Path], list[str]]  # arguments, or a function of a scratch folder that prepares them
    needles: tuple[str, ...]  # each must be in the error line
    command: str = "run"
    results: Callable[[Path, Path], Path] | None = None  # (scratch, done) -> results folder (default: finished)
    env: dict = field(default_factory=dict)
    after: Callable[[Path], None] | None = None  # extra check on the scratch folder


def _folder(tmp: Path, name: str, files: dict[str, str] | None = None) -> Path:
    folder = tmp / name
    folder.mkdir()
    for rel, text in (files or {}).items():
        (folder / rel).write_text(text)
    return folder


def _file(tmp: Path, name: str = "a_file") -> Path:
    (tmp / name).write_text("not a folder\n")
    return tmp / name


def _hf(path: str) -> list[str]:
    return ["model=hf", f"model.path={path}", "model.name=x", "suite=smoke", "only=[stereoset]", "logger=none"]


def _existing_result(content: str) -> Callable[[Path, Path], Path]:
    """The real run's records, and its result file overwritten with ``content``."""
    def make(tmp: Path, done: Path) -> Path:
        results = _finished(tmp / "results")
        shutil.copytree(done / "records", results / "records")
        [result] = (done / "runs").glob("*.json")
        (results / "runs" / result.name).write_text(content)
        return results
    return make


def _checksum_mismatch(tmp: Path) -> list[str]:
    (tmp / "data" / "stereoset").mkdir(parents=True)
    (tmp / "data" / "stereoset" / STEREOSET.name).write_text(STEREOSET.read_text().replace("chess", "chest", 1))
    return [*FAST, f"paths.data_root={tmp / 'data'}", "paths.download=false"]


def _unreachable_mirror() -> dict:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        return {"TAXBENCH_DATA_MIRROR": f"http://127.0.0.1:{s.getsockname()[1]}"}


def _records_is_a_file(tmp: Path, done: Path) -> Path:
    results = _finished(tmp / "results")
    (results / "records").write_text("not a folder\n")
    return results


def _no_file_created(tmp: Path) -> None:
    assert not (tmp / "pwned").exists()


CASES = [
    # composition (Hydra): unknown names and wrong types
    *[Case(f"unknown-{g}", [f"{g}=no-such-{g}", "logger=none"],
           (f"Could not find '{g}/no-such-{g}'", "Available options", expected))
      for g, expected in (("model", "smollm2-135m"), ("method", "none"), ("suite", "default"))],
    Case("stereoset-n-abc", [*FAST, "benchmarks.stereoset.n=abc"], ("benchmarks.stereoset.n=abc", "Integer")),
    Case("unknown-benchmark", [*FAST[:2], "only=[no_such_bench]", "logger=none"],
         ("no_such_bench", "stereoset", "crows_pairs")),
    Case("only-empty", [*FAST[:2], "only=[]", "logger=none"], ("only=[] selects no benchmarks",)),
    # options
    Case("batch-size-abc", [*FAST, "model.batch_size=abc"], ("model.batch_size must be int",)),
    Case("batch-size-0", [*FAST, "model.batch_size=0"], ("model.batch_size must be > 0",)),
    Case("batch-size-neg", [*FAST, "model.batch_size=-3"], ("model.batch_size must be > 0",)),
    Case("dtype", [*FAST, "model.dtype=float8"], ("model.dtype='float8'",)),
    Case("stereoset-n-0", [*FAST, "benchmarks.stereoset.n=0"], ("benchmarks.stereoset.n must be > 0",)),
    Case("stereoset-n-neg", [*FAST, "benchmarks.stereoset.n=-5"], ("benchmarks.stereoset.n must be > 0",)),
    Case("seed-abc", [*FAST, "seed=abc"], ("seed must be an integer",)),
    Case("unknown-model-option", [*FAST, "+model.no_such_option=1"], ("unknown model option(s) ['no_such_option']",)),
    Case("force-abc", [*FAST, "force=abc"], ("force must be true or false", "'abc'")),
    Case("download-maybe", [*FAST, "paths.download=maybe"], ("paths.download must be true or false", "'maybe'")),
    # models
    Case("hf-no-path", ["model=hf", "model.name=x", *FAST[1:]], ("model.path has no value",)),
    Case("hf-empty-folder", lambda t: _hf(str(_folder(t, "empty"))), ("model.path=", "empty", "cannot load")),
    Case("hf-corrupt-config", lambda t: _hf(str(_folder(t, "corrupt", {"config.json": "{not json"}))),
         ("model.path=", "corrupt", "cannot load")),
    Case("hf-missing-path", lambda t: _hf(str(t / "nowhere")), ("model.path=", "nowhere", "cannot load")),
    Case("random-hidden-30", [*FAST, "model.random_config.hidden_size=30"], ("model.random_config=", "30")),
    Case("toxicity-hf-empty", lambda t: [*FAST[:2], "only=[toxicity]", "logger=none", "benchmarks.toxicity.scorer=hf",
                                         f"benchmarks.toxicity.model={_folder(t, 'clf')}"],
         ("benchmarks.toxicity.model=", "clf", "cannot load a sequence classifier")),
    # data
    Case("data-missing-no-download", lambda t: [*FAST, f"paths.data_root={t / 'empty'}", "paths.download=false"],
         ("stereoset/stereoset_dev_full.jsonl", "missing")),
    Case("data-checksum", _checksum_mismatch, ("checksum mismatch", "stereoset_dev_full.jsonl")),
    Case("data-unreachable", lambda t: [*FAST, f"paths.data_root={t / 'empty'}"],
         ("cannot download data file stereoset/stereoset_dev_full.jsonl",), env=_unreachable_mirror()),
    Case("data-root-is-a-file", lambda t: [*FAST, f"paths.data_root={_file(t)}"], ("data root", "a_file", "not a folder"),
         env={"TAXBENCH_DATA_MIRROR": "http://127.0.0.1:9"}),  # a download attempt would fail differently
    # results folder
    Case("results-parent-is-a-file", FAST, ("paths.results_dir=", "a_file"),
         results=lambda t, d: _file(t) / "results"),
    Case("records-is-a-file", FAST, ("paths.results_dir=", "records"), results=_records_is_a_file),
    Case("result-schema-99", [*FAST, "benchmarks.stereoset.n=4"], ("schema_version 99",),
         results=_existing_result('{"schema_version": 99, "run_id": "x", "metrics": {}}')),
    Case("result-corrupt", [*FAST, "benchmarks.stereoset.n=4"], ("is not valid JSON",),
         results=_existing_result('{"schema_version": 1, "run_id": ')),
    Case("result-not-object", [*FAST, "benchmarks.stereoset.n=4"], ("not an object",),
         results=_existing_result("[1, 2, 3]")),
    # config that would run code
    Case("target-builtins-open", lambda t: [*FAST, "method._target_=builtins.open", f"+method._args_=[{t / 'pwned'},w]"],
         ("method._target_='builtins.open'", "TAXBENCH_PLUGINS"), after=_no_file_created),
    Case("logger-target-os", [*FAST[:3], "logger=none", "logger._target_=os.getcwd"], ("logger._target_='os.getcwd'",)),
    # leaderboard
    Case("n-boot-neg", ["--n-boot", "-5"], ("--n-boot", "-5"), command="leaderboard"),
    Case("n-boot-1", ["--n-boot", "1"], ("--n-boot", "got 1"), command="leaderboard"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line(case: Case, tmp_path, done):
    results = case.results(tmp_path, done) if case.results else _finished(tmp_path / "results")
    before = {p.name: p.read_bytes() for p in (results / "runs").iterdir()} if (results / "runs").is_dir() else {}
    args = case.args(tmp_path) if callable(case.args) else case.args
    out = taxbench(case.command, args, results, case.env)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    assert "Traceback" not in out.stderr + out.stdout, out.stderr[-3000:]
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("taxbench: error: "), out.stderr[-3000:]
    for needle in case.needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    after = {p.name: p.read_bytes() for p in (results / "runs").iterdir()} if (results / "runs").is_dir() else {}
    assert after == before  # no new result file, finished ones untouched
    if case.after:
        case.after(tmp_path)


def test_cuda_without_gpu_is_one_line(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is visible")
    out = taxbench("run", [*FAST, "model.device=cuda"], _finished(tmp_path / "results"))
    assert out.returncode == 2 and out.stderr.splitlines() == [
        "taxbench: error: model.device=cuda but no CUDA device is visible; use model.device=cpu"]


def test_unwritable_results_fail_before_the_model_loads(tmp_path):
    out = taxbench("run", FAST, _file(tmp_path) / "results")
    assert out.returncode == 2 and "running stereoset" not in out.stdout and "load_model" not in out.stdout


def _leaderboard_results(tmp: Path, done: Path) -> Path:
    results = tmp / "results"
    shutil.copytree(done, results)
    return results


def test_leaderboard_skips_bad_files_with_one_line_each(tmp_path, done):
    """A records line that is not an object, and a folder named like a result file: each is one warning
    line naming the file; the leaderboard of the readable runs is still written."""
    results = _leaderboard_results(tmp_path, done)
    [records] = (results / "records").glob("*.jsonl")
    records.write_text("[1, 2]\n" + records.read_text())
    (results / "runs" / "x.json").mkdir()
    out = taxbench("leaderboard", ["--n-boot", "50"], results)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    lines = out.stderr.splitlines()
    assert [line for line in lines if not line.startswith("taxbench: warning: ")] == []
    assert any("x.json" in line for line in lines) and any(records.name in line and "line 1" in line for line in lines)
    assert (results / "leaderboard.md").exists()


def test_leaderboard_with_no_readable_file_is_one_error(tmp_path):
    results = tmp_path / "results"
    (results / "runs" / "x.json").mkdir(parents=True)
    out = taxbench("leaderboard", ["--n-boot", "50"], results)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    errors = [line for line in out.stderr.splitlines() if not line.startswith("taxbench: warning: ")]
    assert len(errors) == 1 and errors[0].startswith("taxbench: error: no readable result files"), out.stderr
