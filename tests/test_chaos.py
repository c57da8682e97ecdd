"""Chaos test: a multirun SIGKILLed (whole process group) at pseudo-random points and restarted,
with one cached artifact corrupted before the final rerun, ends with exactly the results of an
uninterrupted run: every result file parses and has its records, the metrics are equal, the
rebuilt artifacts equal the reference's, no temp or lock file is left, and the corruption was
detected (bench.io's WARNING) and rebuilt, not reused.

Kill schedule (fixed seed).  Jobs: method=none, inlp, cda (in that order; inlp fits a projection,
cda trains a checkpoint).  ``SCHEDULE``: kills 0 and 1 fire in the first records and result
writes (the temp file seen, not yet renamed); kills 2-5 wait ``d ~ U(0.05, 0.8) * reference wall
time``, and 3 and 5 then wait for the next new temp (``*.tmp``) anywhere under results/cache, so
they land inside a write (a records or result file, a manifest, a fit or a training run).
Every phase-1 kill fires at the latest when cda's checkpoint build starts (its temp folder
appears), so the checkpoint is never committed in phase 1.  The last kill fires as soon as the checkpoint is committed (its manifest
is in place) and before cda's result exists; its weights are then overwritten with garbage and
the final rerun must detect that, retrain, and match the reference.  The children's ``os.fsync``
sleeps ``FSYNC_DELAY_S``, which widens every atomic write's temp-file window (so kills can land
in it) without changing anything written.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from safetensors.torch import load_file

from bench.config import model_configs
from bench.data import default_cache_dir
from bench.engine.models import _convert_gguf
from bench.io import MANIFEST, sha256_file, verify_manifest
from bench.store import load_result

SWEEP = ["-m", "model=tiny-random", "suite=smoke", "only=[stereoset,crows_pairs]", "method=none,inlp,cda",
         "logger=none"]
FSYNC_DELAY_S = 0.2
# Phase-1 kills: (after a random delay?, then inside the next write under results/<this>; "": anywhere, None: no)
SCHEDULE = [(False, "records"), (False, "runs"), (True, None), (True, ""), (True, None), (True, "")]
SLOW_FSYNC = ("import os, sys, time; _fsync = os.fsync; "
              f"os.fsync = lambda fd: (time.sleep({FSYNC_DELAY_S}), _fsync(fd))[1]; "
              "from bench.cli import main; sys.exit(main())")


def _folders(root: Path) -> tuple[Path, Path]:
    """results and cache folders under ``root``; the cache gets the converted tokenizer model
    (the tiny model's tokenizer) as a symlink to the user's verified copy: it is an input here,
    not a subject (tests/test_caches.py covers its corruption)."""
    results, cache = root / "results", root / "cache"
    converted, _ = _convert_gguf(model_configs()["smollm2-135m"], default_cache_dir())
    (cache / "models").mkdir(parents=True)
    (cache / "models" / converted.name).symlink_to(converted, target_is_directory=True)
    return results, cache


def _start(results: Path, cache: Path, logs: Path, tag: str, slow: bool) -> subprocess.Popen:
    prog = ["-c", SLOW_FSYNC] if slow else ["-m", "bench.cli"]
    cmd = [sys.executable, *prog, "run", *SWEEP, f"paths.results_dir={results}", f"paths.cache_dir={cache}",
           f"hydra.sweep.dir={logs / tag}"]
    out = open(logs / f"{tag}.log", "w")
    try:
        return subprocess.Popen(cmd, env={**os.environ, "WANDB_MODE": "disabled"}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        out.close()


def _walk(*roots: Path) -> list[Path]:
    """Every file and folder under ``roots`` (symlinks not followed)."""
    found = []
    for root in roots:
        for folder, dirs, files in os.walk(root):
            found += [Path(folder) / name for name in [*dirs, *files]]
    return found


def _temps(*roots: Path) -> list[Path]:
    return [p for p in _walk(*roots) if p.name.endswith(".tmp")]


def _leftovers(*roots: Path) -> list[Path]:
    """Temp siblings (bench.io), lock files and write probes (bench.store)."""
    return [p for p in _walk(*roots) if p.name.endswith((".tmp", ".lock")) or p.name.startswith(".write-probe-")]


def _metrics(results: Path) -> dict[str, dict]:
    return {p.name: load_result(p)["metrics"] for p in sorted((results / "runs").glob("*.json"))}


def _artifact(cache: Path, kind: str) -> Path | None:
    """The committed artifact folder of ``kind``; a temp folder being built holds a manifest too before its rename."""
    root = cache / "artifacts" / kind
    committed = [p for p in root.glob("*") if not p.name.endswith(".tmp") and (p / MANIFEST).exists()] \
        if root.is_dir() else []
    assert len(committed) <= 1
    return committed[0] if committed else None


def _wait(proc: subprocess.Popen, until, timeout: float = 600) -> bool:
    """Poll every 10 ms until ``until()`` holds (True) or the process exits (False)."""
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if until():
            return True
        time.sleep(0.01)
    return False


def _kill(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def test_sigkilled_multirun_with_a_corrupt_cache_ends_like_a_clean_one(tmp_path):
    ref_results, ref_cache = _folders(tmp_path / "reference")
    logs = tmp_path / "logs"
    logs.mkdir()
    start = time.perf_counter()
    ref = _start(ref_results, ref_cache, logs, "reference", slow=False)
    assert ref.wait(timeout=900) == 0, (logs / "reference.log").read_text()[-3000:]
    wall = time.perf_counter() - start
    expected = _metrics(ref_results)
    assert len(expected) == 3

    results, cache = _folders(tmp_path / "chaos")
    rng = random.Random(0)
    ckpt_dir = cache / "artifacts" / "checkpoints"
    building = lambda: ckpt_dir.is_dir() and any(p.name.endswith(".tmp") for p in ckpt_dir.iterdir())  # noqa: E731
    kills, left_by_kills = 0, set()
    for i, (delayed, inside) in enumerate(SCHEDULE):
        proc = _start(results, cache, logs, f"kill{i}", slow=True)
        delay = rng.uniform(0.05, 0.8) * wall if delayed else 0.0
        t0 = time.time()
        if not _wait(proc, lambda: building() or time.time() - t0 >= delay):
            assert proc.returncode == 0, (logs / f"kill{i}.log").read_text()[-3000:]
            continue
        if inside is not None and not building():  # on to the next new temp there: inside a write
            where = [results / inside] if inside else [results, cache]
            old = set(_temps(*where))
            _wait(proc, lambda: building() or bool(set(_temps(*where)) - old))
        if proc.poll() is None:
            _kill(proc)
            kills += 1
            left_by_kills |= set(_leftovers(results, cache))
    assert _artifact(cache, "checkpoints") is None  # never committed in phase 1

    proc = _start(results, cache, logs, "last_kill", slow=True)
    assert _wait(proc, lambda: _artifact(cache, "checkpoints") is not None), (logs / "last_kill.log").read_text()[-3000:]
    _kill(proc)
    kills += 1
    finished_before_rerun = len(list((results / "runs").glob("*.json")))
    assert finished_before_rerun == 2  # none and inlp; cda's checkpoint is there, its result is not
    weights = _artifact(cache, "checkpoints") / "model.safetensors"
    weights.write_bytes(b"\xff" * weights.stat().st_size)  # same size, other bytes

    rerun = _start(results, cache, logs, "rerun", slow=True)
    assert rerun.wait(timeout=900) == 0, (logs / "rerun.log").read_text()[-3000:]
    log = (logs / "rerun.log").read_text()
    assert f"cached cda checkpoint {weights.parent} failed verification ({weights} does not match its sha256" in log
    assert log.count("skipped") == finished_before_rerun

    assert _metrics(results) == expected  # each result once, valid, equal to the uninterrupted run
    for name in expected:
        doc = load_result(results / "runs" / name)
        records = (results / "runs" / doc["records_path"]).resolve()
        lines = records.read_text().splitlines()
        assert lines and all(json.loads(line)["benchmark"] in ("stereoset", "crows_pairs") for line in lines)
        assert records.read_bytes() == (ref_results / "records" / records.name).read_bytes()
    for kind, artifact in [("checkpoints", "model.safetensors"), ("inlp", "projection.safetensors")]:
        ours, theirs = _artifact(cache, kind), _artifact(ref_cache, kind)
        assert ours.name == theirs.name and verify_manifest(ours) is None
        a, b = load_file(ours / artifact), load_file(theirs / artifact)
        assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # the rebuild is the reference's
    assert sha256_file(weights) == sha256_file(_artifact(ref_cache, "checkpoints") / "model.safetensors")
    assert not _leftovers(results, cache)
    in_results = {p.parent.name for p in left_by_kills if results in p.parents}
    assert {"records", "runs"} <= in_results  # kills 0 and 1 did leave half-done writes, now cleaned
    print(f"\nchaos: reference {wall:.1f} s, {kills} kills, {len(left_by_kills)} temp/lock paths left by kills "
          f"(all cleaned: {sorted(p.name for p in left_by_kills)}), 0 results lost, 1 artifact corrupted and rebuilt")
