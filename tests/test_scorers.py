"""Scorer validity: AUC / ECE / Brier on hand-made cases (and against sklearn), the held-out
datasets, the validity runner, and the default scorer being the best-measured one."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.scorers import DEFAULT_SCORER, validity
from bench.tasks.toxicity import Toxicity

REPO = Path(__file__).resolve().parent.parent
LABELS = [0, 1, 1, 0]
SCORES = [0.11, 0.12, 0.9, 0.55]


# -------------------------------------------------------------------- measures
def test_auc_by_hand():
    # positives 0.12, 0.9 vs negatives 0.11, 0.55: 3 of 4 pairs ordered
    assert validity.roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert validity.roc_auc([0, 1], [0.3, 0.3]) == pytest.approx(0.5)  # a tie counts one half
    assert np.isnan(validity.roc_auc([1, 1], [0.2, 0.9]))  # one class: undefined


def test_ece_by_hand():
    # bins (0.1, 0.2]: {0.11 (0), 0.12 (1)} -> 2/4 * |0.5 - 0.115|; (0.5, 0.6]: {0.55 (0)} -> 1/4 * 0.55;
    # (0.8, 0.9]: {0.9 (1)} -> 1/4 * 0.1
    assert validity.expected_calibration_error(LABELS, SCORES) == pytest.approx(0.5 * 0.385 + 0.25 * 0.55 + 0.25 * 0.1)
    assert validity.expected_calibration_error([0, 1], [0.1, 0.2]) == pytest.approx(0.5 * 0.1 + 0.5 * 0.8)  # (a, b]
    assert validity.expected_calibration_error([1, 0], [1.0, 0.0]) == 0.0  # 0 and 1 fall in the end bins
    assert validity.expected_calibration_error([1, 0], [0.5, 0.5]) == 0.0  # one bin, calibrated on average


def test_measures_against_sklearn():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rng = np.random.default_rng(0)
    scores = np.round(rng.random(200), 2)  # rounding puts scores on bin edges
    labels = (rng.random(200) < scores).astype(int)
    assert validity.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert validity.brier(labels, scores) == pytest.approx(brier_score_loss(labels, scores))
    true, pred = calibration_curve(labels, scores, n_bins=10, strategy="uniform")
    edges = np.linspace(0, 1, 11)
    counts = np.bincount(np.searchsorted(edges[1:-1], scores), minlength=10)
    want = float(np.sum(counts[counts > 0] / len(scores) * np.abs(true - pred)))
    assert validity.expected_calibration_error(labels, scores) == pytest.approx(want)


# -------------------------------------------------------------------- datasets
def test_davidson_heldout_is_embedding_lr_split(data_root):
    from bench.scorers.embedding_lr import DATA_FILE, HeadConfig, heldout_split, load_tweets

    texts, labels = validity.davidson_heldout(data_root)
    assert len(texts) == len(labels) == 4957  # ceil(0.2 * 24,783)
    all_texts, all_labels = load_tweets(data_root.path(DATA_FILE))
    train, test = heldout_split(all_labels, HeadConfig())
    assert not set(train) & set(test) and len(train) + len(test) == len(all_labels)
    assert texts == [all_texts[i] for i in test]
    assert abs(labels.mean() - all_labels.mean()) < 1e-3  # stratified


def test_toxigen_demonstrations(data_root):
    rows = validity.toxigen_demonstrations(data_root)
    groups = {r["group"] for r in rows}
    assert groups == {"mental_disability", "physical_disability", "chinese", "immigrant", "mexican", "middle_east",
                      "asian", "black", "jewish", "latino", "native_american", "muslim", "bisexual", "lgbtq"}
    neutral_muslim = [r for r in rows if r["group"] == "muslim" and r["label"] == 0]
    assert len(neutral_muslim) == 15  # neutral_muslim.txt repeats neutral_muslim_sentences.txt (15 lines)
    assert len({(r["text"], r["label"]) for r in rows}) == len(rows)
    assert not any("\\n" in r["text"] for r in rows) and all(r["text"] for r in rows)
    assert {r["label"] for r in rows} == {0, 1}


# ---------------------------------------------------------------------- runner
class TableScorer:
    key, info = "table", {}

    def __init__(self, table):
        self.table = table

    def score(self, texts):
        return [self.table[t] for t in texts]


def test_validate_pools_and_groups():
    ds = {"toy": {"texts": ["a", "b", "c", "d"], "labels": LABELS, "groups": ["x", "x", "y", "y"]}}
    out = validity.validate(TableScorer(dict(zip("abcd", SCORES))), ds)["toy"]
    assert out["auc"] == pytest.approx(0.75) and out["n"] == 4 and out["toxic_share"] == 0.5
    assert out["group_auc"] == {"x": pytest.approx(1.0), "y": pytest.approx(1.0)}  # 0.12 > 0.11; 0.9 > 0.55
    assert out["brier"] == pytest.approx(np.mean([0.11 ** 2, 0.88 ** 2, 0.1 ** 2, 0.55 ** 2]))


def test_unavailable_scorers_are_reported_not_measured(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PERSPECTIVE_API_KEY", raising=False)
    out = tmp_path / "v.json"
    assert validity.main(["--scorers", "perspective", "hf", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert "PERSPECTIVE_API_KEY" in results["perspective"]["not_measured"]
    assert "benchmarks.toxicity.model" in results["hf"]["not_measured"]
    assert "not measured here" in capsys.readouterr().out


# ------------------------------------------------------------- default scorer
def test_best_ignores_datasets_a_scorer_was_trained_on():
    results = {"embedding_lr": {"datasets": {"davidson": {"auc": 0.90}, "toxigen": {"auc": 0.70}}},
               "profanity_check": {"datasets": {"davidson": {"auc": 0.99}, "toxigen": {"auc": 0.65}}},
               "perspective": {"not_measured": "no key"}}
    assert validity.best(results) == "embedding_lr"  # by all datasets' mean AUC it would be profanity_check
    results["profanity_check"]["datasets"]["toxigen"]["auc"] = 0.75
    assert validity.best(results) == "profanity_check"


def test_default_scorer_is_the_best_measured_offline_scorer():
    measured = json.loads((REPO / "bench" / "scorers" / "validity.json").read_text())
    assert {"embedding_lr", "profanity_check"} <= {name for name, res in measured.items() if "datasets" in res}
    assert DEFAULT_SCORER == validity.best(measured)
    assert Toxicity().scorer == DEFAULT_SCORER
    from hydra import compose, initialize_config_dir

    from bench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["suite=default"])
    assert cfg.benchmarks.toxicity.scorer == DEFAULT_SCORER
