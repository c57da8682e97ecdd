"""The local ``evaluate`` modules reproduce the suite's numbers: on hand-computed inputs, and on
the per-example records of every committed result of the grid (results/published/; the fixtures' records
carry no model scores)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

evaluate = pytest.importorskip("evaluate")

from bench.evaluate_metrics import MODULES  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RUNS = sorted((REPO / "results" / "published" / "runs").glob("*.json"))


@pytest.fixture(scope="module")
def modules():
    return {name: evaluate.load(str(MODULES / name)) for name in ("stereoset", "crows_pairs", "realtoxicityprompts")}


def test_modules_on_hand_computed_examples(modules):
    # ex 1: stereo > anti, stereo > unrelated > anti -> stereo_wins 1, lm_wins .5; ex 2: anti > stereo > unrelated -> 0, 1
    ss = modules["stereoset"].compute(stereo=[-4.9, -8.5], anti=[-5.8, -8.4], unrelated=[-5.5, -8.6],
                                      domain=["profession", "race"])
    assert (ss["ss"], ss["lms"], ss["icat"]) == (50.0, 75.0, 75.0)
    assert (ss["ss_profession"], ss["lms_profession"], ss["icat_profession"]) == (100.0, 50.0, 0.0)
    # bias-bench protocol: SS is the mean over target terms of each term's share; term a: wins 1, 0; term b: 1
    three = dict(stereo=[-1.0, -2.0, -1.0], anti=[-2.0, -1.0, -2.0], unrelated=[-9.0, -9.0, -9.0])
    assert modules["stereoset"].compute(**three, target=["a", "a", "b"])["ss"] == pytest.approx(75.0)
    assert modules["stereoset"].compute(**three, target=["a", "a", "b"], protocol="clean")["ss"] == pytest.approx(200 / 3)
    crows = modules["crows_pairs"].compute(score_more=[-30.1, -25.0, -3.0], score_less=[-31.0, -24.2, -4.0])
    assert crows == {"stereotype_score": pytest.approx(200 / 3)}
    tox = modules["realtoxicityprompts"].compute(toxicity=[[0.1, 0.7], [0.2, 0.3]], subset=["a", "b"], threshold=0.5)
    assert tox["expected_max"] == pytest.approx(0.5) and tox["probability"] == 0.5 and tox["mean"] == pytest.approx(0.325)
    assert (tox["a/expected_max"], tox["b/probability"]) == (0.7, 0.0)


def _records(run: Path) -> tuple[dict, dict[str, list[dict]]]:
    doc = json.loads(run.read_text())
    by_bench: dict[str, list[dict]] = {}
    for line in (run.parent / doc["records_path"]).read_text().splitlines():
        r = json.loads(line)
        by_bench.setdefault(r["benchmark"], []).append(r)
    return doc, by_bench


def _suite(doc: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix):]: v for k, v in doc["metrics"].items() if k.startswith(prefix) and "/patterns/" not in k}


@pytest.mark.parametrize("run", RUNS, ids=lambda p: p.stem)
def test_modules_reproduce_committed_results(modules, run):
    doc, recs = _records(run)
    checked = 0
    if "stereoset" in recs:
        rs = recs["stereoset"]
        got = modules["stereoset"].compute(stereo=[r["stereo"] for r in rs], anti=[r["anti"] for r in rs],
                                           unrelated=[r["unrelated"] for r in rs], domain=[r["domain"] for r in rs],
                                           target=[r["target"] for r in rs],
                                           protocol=doc["config"]["benchmarks"]["stereoset"].get("protocol", "clean"))
        assert got == pytest.approx(_suite(doc, "stereoset/"), abs=1e-9)
        checked += 1
    if "crows_pairs" in recs and doc["config"]["benchmarks"]["crows_pairs"].get("score", "sum") == "sum":
        rs = recs["crows_pairs"]
        got = modules["crows_pairs"].compute(score_more=[r["score_more"] for r in rs],
                                             score_less=[r["score_less"] for r in rs],
                                             bias_type=[r["bias_type"] for r in rs])
        assert got == pytest.approx(_suite(doc, "crows_pairs/"), abs=1e-9)
        checked += 1
    if "toxicity" in recs:
        rs = recs["toxicity"]
        got = modules["realtoxicityprompts"].compute(
            toxicity=[r["toxicity"] for r in rs], subset=[r["subset"] for r in rs],
            threshold=doc["info"]["toxicity"]["threshold"])
        assert got == pytest.approx(_suite(doc, "toxicity/"), abs=1e-6)  # records keep scores to 6 decimals
        checked += 1
    assert checked, f"{run} has none of the three benchmarks"
