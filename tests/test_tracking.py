"""What ``WandbTracker`` logs, read back from the offline run directory: the run record (id,
group, job type, resume, scrubbed config), summary, per-example and continuation tables (sampled),
the loss curve, and the multirun summary run with the leaderboard table and plots."""
from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.tracking import NullTracker, WandbTracker, continuation_table, record_table, sample_rows

wandb = pytest.importorskip("wandb")
pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

BLOCK, HEADER = 32768, 7  # the .wandb file is a LevelDB-style log: 32 KiB blocks, 7-byte record headers


def read_records(path: Path) -> list:
    """The protobuf Records of an offline run's ``run-<id>.wandb`` file."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, out, chunk = HEADER, [], b""  # the file header is 7 bytes too
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        if left < HEADER or kind == 0:  # block trailer / zero padding
            pos += left
            continue
        if pos + HEADER + length > len(data):  # still being written
            break
        chunk += data[pos + HEADER:pos + HEADER + length]
        pos += HEADER + length
        if kind in (1, 4):  # FULL or LAST fragment
            record = pb.Record()
            record.ParseFromString(chunk)
            out.append(record)
            chunk = b""
    return out


def offline_run(root: Path, run_id: str, timeout: float = 60.0) -> tuple[Path, list]:
    """The run directory and records; ``finish()`` returns before wandb's service has written the
    file, so this waits (up to ``timeout`` s) for the run's final ``exit`` record."""
    (run_dir,) = (root / "wandb").glob(f"offline-run-*-{run_id}")
    deadline = time.monotonic() + timeout
    while True:
        records = read_records(run_dir / f"run-{run_id}.wandb")
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return run_dir, records
        time.sleep(0.2)


def logged(records: list) -> tuple[dict, dict, list[dict]]:
    """(run record, final summary values, history rows) with JSON-decoded values."""
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    summary, history = {}, []
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "summary":
            summary.update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.summary.update})
        elif kind == "history":
            history.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item})
    return run, summary, history


def table(run_dir: Path, key: str) -> dict:
    (path,) = (run_dir / "files" / "media" / "table" / Path(key).parent).glob(f"{Path(key).name}_*.table.json")
    return json.loads(path.read_text())


DOC = {"metrics": {"stereoset/ss": 60.0, "toxicity/mean": 0.25, "toxicity/label": "n/a"},
       "n": {"stereoset": 5, "toxicity": 2}, "timings": {"stereoset": 1.5, "total": 4.0},
       "info": {"method": {"method/loss_curve": {"loss": [3.0, 2.5, 2.25], "lm": [2.0, 1.5, 1.0]}}}}
RECORDS = ([{"benchmark": "stereoset", "id": f"s{i}", "ss": float(i % 2), "domain": "gender"} for i in range(5)]
           + [{"benchmark": "toxicity", "id": "t0", "prompt": "p0", "continuations": ["a", "b"], "toxicity": [0.1, 0.9]},
              {"benchmark": "toxicity", "id": "t1", "prompt": "p1", "continuations": ["c", "d"], "toxicity": [0.2, 0.3]}])


def test_tables_are_built_from_records():
    columns, rows = record_table([{"id": "a", "x": [1, 2]}, {"id": "b", "y": 3}])
    assert columns == ["id", "x", "y"] and rows == [["a", "[1, 2]", None], ["b", None, 3]]
    columns, rows = continuation_table(RECORDS[5:])
    assert columns == ["id", "prompt", "k", "continuation", "toxicity"]
    assert rows == [["t0", "p0", 0, "a", 0.1], ["t0", "p0", 1, "b", 0.9], ["t1", "p1", 0, "c", 0.2],
                    ["t1", "p1", 1, "d", 0.3]]
    picked = sample_rows(list(range(10)), 4, "k")
    assert len(picked) == 4 and picked == sorted(picked) and picked == sample_rows(list(range(10)), 4, "k")
    assert sample_rows([1, 2], 4, "k") == [1, 2]


def test_null_tracker_accepts_everything():
    t = NullTracker()
    t.start("x", {}, "g", "none", "n")
    t.log_result(DOC, RECORDS)
    t.log_leaderboard(pd.DataFrame({"a": [1]}), [])
    t.finish()


def test_offline_run_logs_config_summary_tables_and_curve(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    tracker = WandbTracker(dir=str(tmp_path), max_rows=3)
    tracker.start("run123", {"model": {"name": "tiny"}, "perspective_api_key": "sk-x", "seed": 0},
                  group="alignment_tax", job_type="cda", name="tiny/cda/gender")
    tracker.log({"stereoset/ss": 60.0})
    tracker.log_result(DOC, RECORDS)
    tracker.finish()

    run_dir, records = offline_run(tmp_path, "run123")
    run, summary, history = logged(records)
    assert (run.run_id, run.run_group, run.job_type, run.display_name) == ("run123", "alignment_tax", "cda",
                                                                           "tiny/cda/gender")
    assert run.resume  # resume="allow"
    config = {i.key: json.loads(i.value_json) for i in run.config.update}
    assert config["model"] == {"name": "tiny"} and config["seed"] == 0 and "perspective_api_key" not in config
    assert {k: summary[k] for k in ("stereoset/ss", "toxicity/mean", "n/stereoset", "n/toxicity",
                                    "timings/total")} == {"stereoset/ss": 60.0, "toxicity/mean": 0.25,
                                                          "n/stereoset": 5, "n/toxicity": 2, "timings/total": 4.0}
    assert "toxicity/label" not in summary  # not a number
    curve = [(h["train/step"], h["train/loss"], h["train/lm"]) for h in history if "train/step" in h]
    assert curve == [(1, 3.0, 2.0), (2, 2.5, 1.5), (3, 2.25, 1.0)]

    ss = table(run_dir, "records/stereoset")
    assert ss["columns"] == ["id", "ss", "domain"]
    ids = [row[0] for row in ss["data"]]
    assert len(ids) == 3 and ids == sorted(ids) and set(ids) <= {f"s{i}" for i in range(5)}  # sampled, in order
    tox = table(run_dir, "records/toxicity")
    assert tox["columns"] == ["id", "prompt", "continuations", "toxicity"] and len(tox["data"]) == 2
    conts = table(run_dir, "continuations/toxicity")
    assert conts["columns"] == ["id", "prompt", "k", "continuation", "toxicity"]
    assert len(conts["data"]) == 3 and all(row in continuation_table(RECORDS[5:])[1] for row in conts["data"])
    assert not list((run_dir / "files" / "media" / "table").glob("continuations/stereoset_*"))


def test_leaderboard_summary_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    plot = tmp_path / "tradeoff.png"
    fig.savefig(plot)
    plt.close(fig)
    frame = pd.DataFrame({"model": ["tiny", "tiny"], "method": ["none", "cda"], "stereoset/ss": [60.0, float("nan")]})
    tracker = WandbTracker(dir=str(tmp_path / "w"))
    tracker.start("leaderboard-g", {}, group="g", job_type="leaderboard", name="g/leaderboard")
    tracker.log_leaderboard(frame, [plot])
    tracker.finish()
    run_dir, records = offline_run(tmp_path / "w", "leaderboard-g")
    run, summary, _ = logged(records)
    assert (run.run_group, run.job_type) == ("g", "leaderboard")
    lb = table(run_dir, "leaderboard")
    assert lb["columns"] == ["model", "method", "stereoset/ss"]
    assert lb["data"] == [["tiny", "none", 60.0], ["tiny", "cda", None]]
    assert summary["tradeoff/_type"] == "image-file" and summary["leaderboard/_type"] == "table-file"
    assert list((run_dir / "files" / "media" / "images").glob("tradeoff_*.png"))
