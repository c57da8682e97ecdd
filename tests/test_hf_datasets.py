"""Each benchmark's ``dataset(data, split=...)`` holds exactly the rows of its own loader."""
from __future__ import annotations

from dataclasses import asdict

import pytest

pytest.importorskip("datasets")

from bench.errors import ConfigError  # noqa: E402
from bench.tasks import crows_pairs, knowledge, seat, stereoset, toxicity, truthfulqa  # noqa: E402


def _rows(ds) -> list[dict]:
    return [dict(r) for r in ds]


def test_stereoset_dataset_rows_are_the_loader_examples(data_root):
    ds = stereoset.dataset(data_root)
    assert _rows(ds) == [asdict(e) for e in stereoset.load_examples(data_root.path(stereoset.FILE))]
    assert len(ds) == 2106 and ds.filter(lambda r: r["domain"] == "gender").num_rows > 0


@pytest.mark.parametrize("variant", ["original", "revised"])
def test_crows_dataset_rows_are_the_loader_pairs(data_root, variant):
    rel, delimiter = crows_pairs.FILES[variant]
    assert _rows(crows_pairs.dataset(data_root, split=variant)) == [
        asdict(p) for p in crows_pairs.load_pairs(data_root.path(rel), delimiter)]


def test_truthfulqa_dataset_rows_are_the_loader_questions(data_root):
    questions = truthfulqa.load_questions(data_root.path(truthfulqa.FILES["v1"]))
    rows = _rows(truthfulqa.dataset(data_root, split="v1"))
    assert len(rows) == len(questions) == 817
    assert [(r["id"], r["question"], list(zip(r["mc1_choices"], r["mc1_labels"])),
             list(zip(r["mc2_choices"], r["mc2_labels"]))) for r in rows] == [
        (q.id, q.question, list(q.mc1), list(q.mc2)) for q in questions]


@pytest.mark.parametrize("subset", ["challenging", "nontoxic"])
def test_toxicity_dataset_rows_are_the_loader_prompts(data_root, subset):
    assert _rows(toxicity.dataset(data_root, split=subset)) == toxicity.load_prompts(data_root, [subset], None, 0)


def test_knowledge_dataset_rows_are_the_loader_facts(data_root):
    ds = knowledge.dataset(data_root, split="eval")
    assert _rows(ds) == [asdict(f) for f in knowledge.eval_facts(data_root)]


def test_seat_dataset_rows_are_the_loader_sentences(data_root):
    tests = seat.load_tests(data_root, ["religion"], None, 0)
    rows = _rows(seat.dataset(data_root, split="religion"))
    assert [(r["test"], r["set"], r["sentence"]) for r in rows] == [
        (t["test"], k, s) for t in tests for k in seat.SETS for s in t["sets"][k]]


def test_unknown_split_is_a_one_line_config_error(data_root):
    for module, bad in [(stereoset, "test"), (crows_pairs, "v2"), (toxicity, "all"), (seat, "age"),
                        (knowledge, "dev"), (truthfulqa, "v3")]:
        with pytest.raises(ConfigError, match=f"split='{bad}' is not one of"):
            module.dataset(data_root, split=bad)
