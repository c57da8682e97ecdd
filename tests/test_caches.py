"""Cached artifacts are verified before reuse (bench.io.cached_dir): a corrupted, truncated,
NaN-filled or unlisted file, an edited training record or manifest, or a missing/malformed
manifest, is detected and the artifact rebuilt (logged) - on a synthetic folder and on the real
checkpoint, projection and (slow) converted model; stale temp siblings of a killed writer
(folders and single files) are cleaned; modes follow the umask; non-finite model outputs raise
naming the first offending input."""
from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bench.api import MethodContext
from bench.engine.hf_lm import HFScoringLM, NonFiniteError
from bench.io import _HOST, MANIFEST, STALE_AFTER_S, atomic_write_bytes, cached_dir, verify_manifest
from bench.api.lm import Request
from methods import projection
from methods.finetune import checkpoint
from methods.finetune.cda import CDA
from methods.finetune.config import TrainConfig


class Builder:
    """A build function that counts its calls and writes two files."""

    def __init__(self):
        self.calls = 0

    def __call__(self, tmp: Path) -> None:
        self.calls += 1
        (tmp / "weights.bin").write_bytes(bytes(range(256)) * 4)
        (tmp / "sub").mkdir()
        (tmp / "sub" / "meta.json").write_text('{"a": 1}\n')


def _garbage(path: Path) -> None:  # same size, other bytes
    path.write_bytes(b"\xff" * path.stat().st_size)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _extra(path: Path) -> None:
    (path.parent / "planted.txt").write_text("x")


def _no_manifest(path: Path) -> None:
    (path.parent / MANIFEST).unlink()


def _bad_manifest(path: Path) -> None:
    (path.parent / MANIFEST).write_text("{not json")


def test_build_once_then_reuse(tmp_path):
    build, target = Builder(), tmp_path / "art"
    assert cached_dir(target, build, "test artifact") == target
    assert cached_dir(target, build, "test artifact") == target
    assert build.calls == 1
    listed = json.loads((target / MANIFEST).read_text())["files"]
    assert sorted(listed) == ["sub/meta.json", "weights.bin"] and listed["weights.bin"]["bytes"] == 1024
    assert verify_manifest(target) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no temp, no lock file left


@pytest.mark.parametrize("damage, reason", [
    (_garbage, "does not match its sha256"), (_truncate, "has 512 bytes, the manifest says 1024"),
    (_extra, "planted.txt is not in the manifest"), (_no_manifest, "is missing"),
    (_bad_manifest, "unreadable or malformed")])
def test_damage_is_detected_and_rebuilt_with_a_log_line(tmp_path, caplog, damage, reason):
    build, target = Builder(), tmp_path / "art"
    cached_dir(target, build, "test artifact")
    damage(target / "weights.bin")
    assert reason in verify_manifest(target)
    with caplog.at_level(logging.WARNING, logger="bench.io"):
        cached_dir(target, build, "test artifact")
    assert build.calls == 2
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "test artifact" in line and reason in line and "rebuilding" in line
    assert verify_manifest(target) is None and (target / "weights.bin").read_bytes() == bytes(range(256)) * 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]


def test_a_failed_build_leaves_nothing(tmp_path):
    def broken(tmp: Path) -> None:
        (tmp / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cached_dir(tmp_path / "art", broken, "test artifact")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------- stale temps
def test_stale_temps_are_cleaned_before_a_build(tmp_path, caplog):
    target = tmp_path / "art"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f".art.{gone.pid}@{_HOST}.0000aaaa.tmp"
    dead.mkdir()
    (dead / "model.safetensors").write_bytes(b"x" * 100)
    live = tmp_path / f".art.{os.getppid()}@{_HOST}.0000eeee.tmp"
    live.mkdir()  # a running writer on this host (the parent process): kept
    old_remote = tmp_path / ".art.12345@elsewhere.0000bbbb.tmp"
    old_remote.write_bytes(b"y")
    os.utime(old_remote, (time.time() - STALE_AFTER_S - 60,) * 2)
    fresh_remote = tmp_path / ".art.12345@elsewhere.0000cccc.tmp"
    fresh_remote.write_bytes(b"z")  # may be a live writer on another host: kept
    other = tmp_path / ".other.1@elsewhere.0000dddd.tmp"
    other.write_bytes(b"w")
    os.utime(other, (time.time() - STALE_AFTER_S - 60,) * 2)  # another artifact's: not touched
    with caplog.at_level(logging.INFO, logger="bench.io"):
        cached_dir(target, Builder(), "test artifact")
    assert not dead.exists() and not old_remote.exists()
    assert live.exists() and fresh_remote.exists() and other.exists()
    removed = [r.getMessage() for r in caplog.records if "stale temp" in r.getMessage()]
    assert len(removed) == 2 and any(dead.name in m for m in removed)


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = tmp_path / f".result.json.{gone.pid}@{_HOST}.0000aaaa.tmp"  # as a SIGKILL mid-write leaves it
    dead.write_bytes(b'{"half": ')
    live = tmp_path / f".result.json.{os.getppid()}@{_HOST}.0000bbbb.tmp"  # a running writer: kept
    live.write_bytes(b"{")
    atomic_write_bytes(tmp_path / "result.json", b"{}")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "result.json"])


# ----------------------------------------------------------------- umask
@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_modes_follow_the_umask(tmp_path, mask, file_mode, dir_mode):
    def build(tmp: Path) -> None:
        fd = os.open(tmp / "secretive.bin", os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors does
        os.close(fd)
        (tmp / "sub").mkdir(mode=0o700)

    old = os.umask(mask)
    try:
        target = cached_dir(tmp_path / "art", build, "test artifact")
        atomic_write_bytes(tmp_path / "result.json", b"{}")
    finally:
        os.umask(old)
    mode = lambda p: p.stat().st_mode & 0o777  # noqa: E731
    assert mode(target) == mode(target / "sub") == dir_mode
    assert mode(target / "secretive.bin") == mode(target / MANIFEST) == mode(tmp_path / "result.json") == file_mode


# ----------------------------------------------------------------- the real artifacts
def _nan_tensor(path: Path) -> None:  # a valid safetensors file of the same size, one value NaN
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    first = sorted(tensors)[0]
    tensors[first] = tensors[first].clone()
    tensors[first].view(-1)[0] = float("nan")
    size = path.stat().st_size
    save_file(tensors, str(path), metadata=metadata)
    assert path.stat().st_size == size


@pytest.mark.parametrize("damage, reason", [(lambda p: p.write_bytes(p.read_bytes()[:-8]), "bytes"),
                                            (_nan_tensor, "does not match its sha256")], ids=["truncated", "nan"])
def test_corrupt_projection_is_refitted(tmp_path, caplog, damage, reason):
    path = tmp_path / "inlp" / "key" / projection.ARTIFACT
    calls = []

    def fit():
        calls.append(1)
        return {"P": torch.eye(4)}, {"acc_after": 0.5}

    assert torch.equal(projection.load_or_fit(path, fit)[0]["P"], torch.eye(4))
    damage(path)
    with caplog.at_level(logging.WARNING, logger="bench.io"):
        again = projection.load_or_fit(path, fit)
    assert len(calls) == 2 and "fitted projection inlp" in caplog.text and reason in caplog.text
    assert torch.equal(again[0]["P"], torch.eye(4)) and again[1] == {"acc_after": 0.5}
    projection.load_or_fit(path, fit)
    assert len(calls) == 2  # verified: reused


FAST = dict(max_steps=2, batch_size=2, lr=1e-2, warmup_steps=0, seq_len=32)


def _edit_record(folder: Path) -> None:
    record = json.loads((folder / checkpoint.RECORD).read_text())
    (folder / checkpoint.RECORD).write_text(json.dumps({**record, "steps": record["steps"] + 1}, indent=1) + "\n")


def _manifest_mismatch(folder: Path) -> None:  # the manifest itself edited: another sha256 for the weights
    doc = json.loads((folder / MANIFEST).read_text())
    doc["files"]["model.safetensors"]["sha256"] = "0" * 64
    (folder / MANIFEST).write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, named, reason", [
    (lambda f: _garbage(f / "model.safetensors"), "model.safetensors", "does not match its sha256"),
    (lambda f: _nan_tensor(f / "model.safetensors"), "model.safetensors", "does not match its sha256"),
    (_edit_record, checkpoint.RECORD, "the manifest"),
    (lambda f: (f / MANIFEST).unlink(), MANIFEST, "is missing"),
    (_manifest_mismatch, "model.safetensors", "does not match its sha256")],
    ids=["weights-garbage", "weights-nan", "train-record-edited", "manifest-missing", "manifest-mismatch"])
def test_corrupt_checkpoint_is_retrained_not_reused(tiny_loaded, data_root, tmp_path, monkeypatch, caplog,
                                                    damage, named, reason):
    ctx = MethodContext(data=data_root, cache_dir=tmp_path, seed=0, code_version="test", budget="cpu")
    method = CDA(max_examples=2, train=TrainConfig(**FAST))
    first = method.prepare(tiny_loaded, ctx)
    a = {k: v.clone() for k, v in first.lm.model.state_dict().items()}  # the weights may be mmapped
    folder = tmp_path / "checkpoints" / first.info["method/checkpoint_key"]
    assert (folder / "model.safetensors").exists()
    damage(folder)
    trained = []
    real_fit = checkpoint.fit
    monkeypatch.setattr(checkpoint, "fit", lambda *a, **k: trained.append(1) or real_fit(*a, **k))
    with caplog.at_level(logging.WARNING, logger="bench.io"):
        second = method.prepare(tiny_loaded, ctx)
    [line] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert trained == [1] and "cda checkpoint" in line and named in line and reason in line
    b = second.lm.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the rebuild is the same checkpoint
    assert verify_manifest(folder) is None and second.info["method/steps"] == first.info["method/steps"]


@pytest.mark.slow
def test_corrupt_converted_model_is_reconverted(tmp_path, caplog):
    from bench.config import model_configs
    from bench.engine import models

    cfg = model_configs()["smollm2-135m"]
    folder, _ = models._convert_gguf(cfg, tmp_path)
    _truncate(folder / "config.json")
    with caplog.at_level(logging.WARNING, logger="bench.io"):
        assert models._convert_gguf(cfg, tmp_path)[0] == folder
    assert "converted model smollm2-135m" in caplog.text and "config.json" in caplog.text
    assert verify_manifest(folder) is None


# ----------------------------------------------------------------- non-finite outputs
def test_nan_loglikelihood_names_the_first_input(tiny_loaded):
    broken = copy.deepcopy(tiny_loaded)
    with torch.no_grad():
        broken.model.get_output_embeddings().weight[5, 0] = float("nan")
    lm = HFScoringLM(broken)
    with pytest.raises(NonFiniteError, match=r"non-finite log-likelihood for input 0 of 2 \('The cat sat'\)"):
        lm.loglikelihood([Request("The cat", " sat"), Request("A dog", " ran")])
    with pytest.raises(NonFiniteError, match="rolling log-likelihood for input 0"):
        lm.loglikelihood_rolling(["one two three"])


def test_nan_hidden_state_names_the_offending_text(tiny_loaded):
    broken = copy.deepcopy(tiny_loaded)
    lm = HFScoringLM(broken)
    queen = lm.encode(" queen")[0]
    with torch.no_grad():
        broken.model.get_input_embeddings().weight[queen] = float("nan")  # only texts with " queen"
    texts = ["the king left", "the queen left", "a queen"]
    with pytest.raises(NonFiniteError, match=r"hidden states for input 1 of 3 \('the queen left'\)"):
        lm.hidden_states(texts)
    with pytest.raises(NonFiniteError, match="hidden states for input 1 of 3"):
        lm.per_token_hidden_states(texts)
    assert torch.isfinite(lm.hidden_states([texts[0]])).all()
