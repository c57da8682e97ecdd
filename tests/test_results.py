"""Result files: run ids that cannot collide, atomic writes, schema handling."""
from __future__ import annotations

import json

import pytest

from bench.errors import TaxbenchError
from bench.io import atomic_write_json
from bench.store import SCHEMA_VERSION, load_result, new_document, run_id, write_result

BASE = {"model": {"name": "m", "dtype": "float32"}, "model_identity": "m@0123", "method": {"class": "NoMethod"},
        "benchmarks": {"stereoset": {"n": 10, "seed": 0}}, "data_manifest": "abc", "seed": 0,
        "code_version": "0.1.0+aaa"}


@pytest.mark.parametrize("path,value", [
    (("model_identity",), "m@4567"),                 # other weights
    (("model", "dtype"), "bfloat16"),               # other numerics
    (("method", "class"), "INLP"),                  # other method
    (("benchmarks", "stereoset", "n"), 11),         # other benchmark config
    (("data_manifest",), "abd"),                    # other data checksums
    (("seed",), 1),                                 # other seed
    (("code_version",), "0.1.0+bbb"),               # other metric/method code
])
def test_every_component_changes_the_run_id(path, value):
    changed = json.loads(json.dumps(BASE))
    node = changed
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert run_id(changed) != run_id(BASE)


def test_run_id_ignores_dict_order():
    assert run_id(dict(reversed(list(BASE.items())))) == run_id(BASE)


def test_write_then_load_roundtrip(tmp_path):
    doc = new_document("r1", metrics={"a/b": 1.0})
    path = write_result(tmp_path, doc, [{"benchmark": "a", "id": "0", "x": 1}])
    loaded = load_result(path)
    assert loaded["metrics"] == {"a/b": 1.0} and loaded["schema_version"] == SCHEMA_VERSION
    assert (path.parent / loaded["records_path"]).read_text().count("\n") == 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_old_schema_is_migrated_and_unknown_refused(tmp_path):
    old = tmp_path / "old.json"
    atomic_write_json(old, {"run_id": "x", "metrics": {"a/b": 2.0}})
    assert load_result(old)["schema_version"] == SCHEMA_VERSION
    future = tmp_path / "future.json"
    atomic_write_json(future, {"schema_version": 99, "run_id": "y", "metrics": {}})
    with pytest.raises(TaxbenchError, match="schema_version 99"):
        load_result(future)
    broken = tmp_path / "broken.json"
    broken.write_text('{"run_id": ')
    with pytest.raises(TaxbenchError, match="broken.json is not valid JSON"):
        load_result(broken)


def test_atomic_write_leaves_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"v": 1})

    def boom(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
