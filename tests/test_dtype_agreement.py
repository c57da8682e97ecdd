"""bench.dtype_agreement: the agreement arithmetic on hand-made records, and the module's
comparisons on the tiny random model (float32 against itself is exact; bfloat16 runs)."""
from __future__ import annotations

import math

import pytest
import torch

from bench.api import BenchmarkResult
from bench.dtype_agreement import (Comparison, compare_benchmark, compare_results, compare_training,
                                   decision_agreement, render)


def test_decision_agreement_matches_records_by_id():
    a = [{"id": "1", "x": 1.0}, {"id": "2", "x": 0.0}, {"id": "3", "x": 0.5}, {"id": "4", "x": 1.0}]
    b = [{"id": "4", "x": 0.0}, {"id": "3", "x": 0.5}, {"id": "2", "x": 0.0}, {"id": "1", "x": 1.0}]  # shuffled
    assert decision_agreement(a, b, "x") == 3 / 4  # only id 4 flipped
    assert decision_agreement(a, a, "x") == 1.0


def test_decision_agreement_refuses_different_or_duplicate_ids():
    a = [{"id": "1", "x": 1.0}, {"id": "2", "x": 0.0}]
    with pytest.raises(ValueError, match="same unique ids"):
        decision_agreement(a, [{"id": "1", "x": 1.0}, {"id": "3", "x": 0.0}], "x")
    with pytest.raises(ValueError, match="same unique ids"):
        decision_agreement(a + [{"id": "1", "x": 0.0}], a + [{"id": "2", "x": 0.0}], "x")
    with pytest.raises(ValueError, match="no records"):
        decision_agreement([], [], "x")


def test_compare_results_absolute_metric_deltas():
    records = [{"id": "a", "mc1": 1.0}, {"id": "b", "mc1": 0.0}]
    ref = BenchmarkResult({"truthfulqa/mc1": 0.50, "truthfulqa/mc2": 0.40}, [], records, 2)
    other = BenchmarkResult({"truthfulqa/mc1": 0.25, "truthfulqa/mc2": 0.45}, [],
                            [{"id": "b", "mc1": 1.0}, {"id": "a", "mc1": 1.0}], 2)
    agree, absdiff = compare_results("truthfulqa", ref, other, ["mc1"], ["truthfulqa/mc1", "truthfulqa/mc2"])
    assert agree == {"truthfulqa/mc1": 0.5}
    assert absdiff == pytest.approx({"truthfulqa/mc1": 0.25, "truthfulqa/mc2": 0.05})


def test_comparison_speedup_and_table():
    row = Comparison("crows_pairs", (6.0, 2.0), (900.0, 600.0), {"crows_pairs/more_wins": 0.98},
                     {"crows_pairs/stereotype_score": 0.5})
    assert row.speedup == 3.0
    table = render([row], "bfloat16")
    assert "| crows_pairs | 6.00 | 2.00 | 3.00x | 900 / 600 | more_wins 0.9800 | crows_pairs/stereotype_score 0.5000 |" \
        in table


def test_float32_against_itself_agrees_exactly(tiny_loaded, data_root):
    from bench.engine.hf_lm import HFScoringLM

    lms = {"float32": HFScoringLM(tiny_loaded), "copy": HFScoringLM(tiny_loaded)}
    row = compare_benchmark("crows_pairs", 12, lms, data_root)
    assert row.agree == {"crows_pairs/more_wins": 1.0}
    assert row.absdiff == {"crows_pairs/stereotype_score": 0.0}
    assert all(s > 0 for s in row.seconds)


def test_bfloat16_scores_and_trains_on_the_tiny_model(tiny_loaded, data_root):
    from bench.config import load_named
    from bench.engine.hf_lm import HFScoringLM

    lms = {"float32": HFScoringLM(tiny_loaded), "bfloat16": HFScoringLM(load_named("tiny-random", dtype="bfloat16"))}
    row = compare_benchmark("stereoset", 12, lms, data_root)
    assert set(row.agree) == {"stereoset/stereo_wins", "stereoset/lm_wins"}
    assert all(0.0 <= v <= 1.0 for v in row.agree.values())
    assert all(math.isfinite(v) and v >= 0 for v in row.absdiff.values())

    before = [p.detach().clone() for p in tiny_loaded.model.parameters()]
    train, curves = compare_training(lms["float32"], data_root, steps=2)
    assert [len(c) for c in curves.values()] == [2, 2]
    # same seed and batches: bf16 autocast moves the loss (~ln 49152 = 10.8 nats) by rounding only
    assert train.absdiff["train_loss_max"] == pytest.approx(max(abs(a - b) for a, b in zip(*curves.values())))
    assert train.absdiff["train_loss_max"] < 0.1
    assert all(torch.equal(a, p) for a, p in zip(before, tiny_loaded.model.parameters()))  # trained copies
