"""Concurrent builders of one cached artifact (bench.io.cached_dir): the work is done once and
every builder gets the same verified folder; a commit that finds the folder already there
(a filesystem without locks) keeps the winner's copy instead of failing with Errno 39."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.io import MANIFEST, _commit, cached_dir, verify_manifest, write_manifest

REPO = Path(__file__).resolve().parent.parent
BUILDER = """
import os, sys, time
from pathlib import Path
from bench.io import cached_dir
target, log, go = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.005)

def build(tmp):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(1.0)  # long enough for the other process to arrive while this one builds
    (tmp / "who").write_text(str(os.getpid()))

print(cached_dir(target, build, "shared artifact").joinpath("who").read_text())
"""


def test_two_processes_started_together_build_once(tmp_path):
    target, log, go = tmp_path / "art", tmp_path / "builds.log", tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", BUILDER, str(target), str(log), str(go)], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    time.sleep(0.5)  # both are importing / polling
    go.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    builders = log.read_text().split()
    assert len(builders) == 1  # the work was done once
    assert [out.strip() for out, _ in outs] == builders * 2  # both got the builder's folder
    assert verify_manifest(target) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art", "builds.log", "go"]  # no temp, no lock left


def test_threads_build_once(tmp_path):
    calls, results = [], []

    def build(tmp: Path) -> None:
        calls.append(1)
        time.sleep(0.3)
        (tmp / "x").write_text("built")

    threads = [threading.Thread(target=lambda: results.append(cached_dir(tmp_path / "art", build, "t")))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [tmp_path / "art"] * 4


def test_commit_onto_an_existing_folder_keeps_the_winner(tmp_path):
    target = tmp_path / "art"

    def build(tmp: Path) -> None:  # another writer commits first, as on a filesystem without locks
        target.mkdir()
        (target / "x").write_text("winner")
        write_manifest(target)
        (tmp / "x").write_text("loser")

    assert cached_dir(target, build, "t") == target
    assert (target / "x").read_text() == "winner" and verify_manifest(target) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # the loser's temp folder is gone

    loser = tmp_path / ".art.1@h.00.tmp"
    loser.mkdir()
    (loser / "x").write_text("late")
    _commit(loser, target)  # a direct late commit: no OSError, winner kept
    assert not loser.exists() and json.loads((target / MANIFEST).read_text())["files"]["x"]["bytes"] == 6
