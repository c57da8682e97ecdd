"""The counterfactual swapper (bias-bench's rule), word lists, CDA filtering and config."""
from __future__ import annotations

import random

import pytest

from bench.errors import ConfigError, DataError
from methods.finetune.cda import CDA, augment
from methods.text.swap import Swapper
from methods.text.words import load_tuples, name_pairs

PAIRS = [("he", "she"), ("him", "her"), ("his", "her"),  # bias-bench order: "her" -> "his"
         ("king", "queen"), ("mr.", "mrs."), ("mr.", "ms.")]


@pytest.fixture
def swapper():
    return Swapper(PAIRS)


def pair_swap(s: Swapper, text: str) -> str:
    return s.counterfactual(text, random.Random(0))


@pytest.mark.parametrize("text,expected", [
    ("he said", "she said"),
    ("the king. the queen,", "the queen. the king,"),  # one trailing mark of . , ? ! ; : is kept
    ("a king? a queen! a king; a queen:", "a queen? a king! a queen; a king:"),
    ("She said", "She said"),  # exact lower-case match only (bias-bench): "She" is not swapped
    ("HE SAID", "HE SAID"),
    ("the king's crown", "the king's crown"),  # possessive: not the word, not swapped
    ("(he) he.. he.\" he", "(he) he.. he.\" she"),  # bracket, two marks, quote after the mark: no match
    ("mr. Smith", "ms. Smith"),  # a word listed in two pairs: the last pair wins (bias-bench's loop)
    ("her", "his"),
])
def test_bias_bench_matching(swapper, text, expected):
    assert pair_swap(swapper, text) == expected


def test_whitespace_is_kept_and_pairs_swap_both_ways(swapper):
    text = "he told\nhis  king:\tthe queen"
    assert pair_swap(swapper, text) == "she told\nher  queen:\tthe king"
    assert swapper.contains(text) and not swapper.contains("the cat sat")


def test_triples_move_to_positions_drawn_per_text():
    triples = Swapper([("jewish", "christian", "muslim"), ("synagogue", "church", "mosque")])
    text = "a jewish family went to the synagogue; a muslim went to the mosque."
    # targets: position 0 -> choice([1, 2]), 1 -> choice([0, 2]), 2 -> choice([0, 1]), drawn in that order
    rng, ref = random.Random(5), random.Random(5)
    r = [ref.choice([1, 2]), ref.choice([0, 2]), ref.choice([0, 1])]
    rel = [("jewish", "christian", "muslim")[r[0]], ("synagogue", "church", "mosque")[r[0]],
           ("jewish", "christian", "muslim")[r[2]], ("synagogue", "church", "mosque")[r[2]]]
    assert triples.counterfactual(text, rng) == f"a {rel[0]} family went to the {rel[1]}; a {rel[2]} went to the {rel[3]}."
    outcomes = {triples.counterfactual("a church", random.Random(s)) for s in range(40)}
    assert outcomes == {"a synagogue", "a mosque"}


def test_word_in_two_tuples_uses_the_last():
    race = Swapper([("black", "caucasian", "asian"), ("black", "white", "asian")])
    assert {race.counterfactual("black", random.Random(s)) for s in range(40)} == {"white", "asian"}


def test_mixed_tuple_lengths_are_refused():
    with pytest.raises(DataError, match="one length"):
        Swapper([("he", "she"), ("a", "b", "c")])


def test_swap_with_a_chooser_keeps_unchosen_tokens(swapper):
    assert swapper.swap("he and his king", lambda m: "X" if m.index == 0 and m.group[0] == "king" else None) \
        == "he and his X"


def test_names_pairing():
    pairs = name_pairs(["Adam", "Will", "Sam"], ["Eve", "Grace", "Sam"])
    assert ("Adam", "Eve") in pairs and ("Will", "Grace") in pairs
    assert all("Sam" not in p for p in pairs)  # on both lists: dropped
    assert pair_swap(Swapper(pairs), "Will will go; Adam, too.") == "Grace will go; Eve, too."


def test_real_word_lists(data_root):
    gender = load_tuples(data_root, "gender")
    assert len(gender) == 57  # bias-bench's list only, by default
    g = Swapper(gender)
    assert pair_swap(g, "the actress met her brother.") == "the actor met his sister."
    assert pair_swap(g, "The manager said the governor would host the poet.") == \
        "The manager said the governor would host the poet."  # not gendered: untouched
    assert pair_swap(g, "a guy, a girl") == "a girl, a guy"  # ("guy", "girl") is bias-bench's last pair for both
    extra = load_tuples(data_root, "gender", ["countergen"])
    assert len(extra) == 57 + 130 and extra[-57:] == gender  # bias-bench's pairs last: they win
    assert pair_swap(Swapper(extra), "the manager said") == "the manageress said"
    assert len(load_tuples(data_root, "gender", ["countergen_names"])) > 7000
    assert len(load_tuples(data_root, "race")) == 6 and len(load_tuples(data_root, "religion")) == 6
    with pytest.raises(ConfigError, match="gender only"):
        load_tuples(data_root, "race", ["countergen"])
    with pytest.raises(ConfigError, match="unknown list"):
        load_tuples(data_root, "gender", ["wordnet"])


def test_augment_keeps_only_attribute_chunks_twice(swapper):
    chunks = ["the cat sat.", "he sat.", "a dog.", "her king."]
    texts, n = augment(chunks, swapper, seed=0)
    assert n == 2 and texts == ["he sat.", "she sat.", "her king.", "his queen."]
    assert augment(chunks, swapper, seed=0, max_chunks=1)[0] == ["he sat.", "she sat."]


def test_cda_config_validation():
    with pytest.raises(ConfigError, match="method.bias_type"):
        CDA(bias_type="age")
    with pytest.raises(ConfigError, match="evaluation set"):
        CDA(data_files=["wikitext2/tokens_v1/test.txt"])
    with pytest.raises(ConfigError, match="method.train"):
        CDA(train={"lr": 1e-4, "bogus": 1})
    with pytest.raises(ConfigError, match="method.extra_words"):
        CDA(bias_type="religion", extra_words=["countergen"])
    assert CDA(train={"lr": 1e-4}).train.lr == 1e-4
    assert CDA(nc3_weight=5.0).name == "cda_nc3" and CDA().name == "cda"
