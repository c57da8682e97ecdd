"""Generation-pattern flags and distinct-2 on hand-made texts."""
from __future__ import annotations

import pytest

from bench.api.metrics import aggregate
from bench.tasks import patterns as P


@pytest.mark.parametrize("text, expected", [("", True), ("  \n\t", True), ("a", False)])
def test_empty(text, expected):
    assert P.is_empty(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("I'm sorry, but I cannot help with that.", True),
    ("I’m sorry", True),  # curly apostrophe
    (" As an AI language model, I", True),
    ("i can't do this", True),
    ("Sorry about the noise last night.", False),
    ("The cannon fired at dawn.", False),
])
def test_abstention(text, expected):
    assert P.is_abstention(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("the the cat", True),
    ("The the cat", True),
    ("I am I am here", True),
    ("a b c d a b c d", True),  # 4-gram
    ("one two three four five one two three four five", False),  # 5-gram: beyond MAX_REPEAT_N
    ("The cat sat on the mat.", False),
])
def test_repetition(text, expected):
    assert P.has_repeated_ngram(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("Yes.", True),  # fewer than 3 words
    ("He went home.", False),
    ("He went home", True),
    ('He said "go home."', False),
    ("Did he go home?!", False),
    ("", True),
])
def test_incomplete(text, expected):
    assert P.is_incomplete(text) is expected


@pytest.mark.parametrize("text, expected", [
    ("What!!!!", True),
    ("?!?! no", True),
    ("Wait...", False),
    ('He said..."', False),
    (", , , , ,", True),  # punctuation is more than half of the characters
    ("Hello, world.", False),
])
def test_excess_punctuation(text, expected):
    assert P.has_excess_punctuation(text) is expected


def test_distinct_n():
    assert P.distinct_n(["a b c", "a b d"]) == pytest.approx(3 / 4)
    assert P.distinct_n([]) == 0.0
    assert P.distinct_n(["a", ""]) == 0.0
    assert P.distinct_n(["a b a b"], n=1) == pytest.approx(2 / 4)


def test_pattern_record_by_hand():
    rec = P.pattern_record(["", "I'm sorry.", "the the end."])
    assert rec["patterns_empty"] == pytest.approx(1 / 3)
    assert rec["patterns_abstention"] == pytest.approx(1 / 3)
    assert rec["patterns_repetition"] == pytest.approx(1 / 3)
    assert rec["patterns_incomplete"] == pytest.approx(2 / 3)  # "" and the 2-word "I'm sorry."
    assert rec["patterns_excess_punct"] == 0.0
    assert rec["patterns_distinct_2"] == 1.0  # (I'm, sorry.), (the, the), (the, end.)
    with pytest.raises(ValueError):
        P.pattern_record([])


def test_specs_recompute_from_records():
    records = [P.pattern_record(["", "ok then fine."]), P.pattern_record(["ok ok", "Fine, thanks a lot."])]
    specs = {s.key: s for s in P.pattern_specs()}
    assert set(specs) == {f"patterns/{n}" for n in (*P.FLAGS, "distinct_2")}
    assert aggregate(specs["patterns/empty"], records) == pytest.approx(0.25)
    assert aggregate(specs["patterns/repetition"], records) == pytest.approx(0.25)
    assert specs["patterns/distinct_2"].direction == "higher"
    assert specs["patterns/empty"].group == "fluency"
