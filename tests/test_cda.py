"""Counterfactual swapping: case, punctuation, multi-word entries, both directions, tuples; CDA filtering."""
from __future__ import annotations

import random

import pytest

from bench.errors import ConfigError
from methods.cda import CDA, augment
from methods.counterfactual import Swapper, load_groups, match_case, name_pairs

PAIRS = [("he", "she"), ("his", "her"), ("king", "queen"), ("father", "mother"), ("mr", "mrs"),
         ("best man", "maid of honour")]


@pytest.fixture
def swapper():
    return Swapper(PAIRS)


@pytest.mark.parametrize("text,expected", [
    ("he said", "she said"),
    ("She said", "He said"),  # Title both ways
    ("HE SAID", "SHE SAID"),
    ("the King.", "the Queen."),
    ("a king, a queen; a father: a mother!", "a queen, a king; a mother: a father!"),
    ("Is it his? yes", "Is it her? yes"),
    ("Mr. Smith", "Mrs. Smith"),
    ("the king's crown", "the queen's crown"),  # possessive
    ("(father)", "(mother)"),
    ("thekingdom, shelf, he-man", "thekingdom, shelf, he-man"),  # inside words: untouched
])
def test_gender_swap_keeps_case_and_punctuation(swapper, text, expected):
    assert swapper.swap(text) == expected


def test_multi_word_entries_both_directions(swapper):
    assert swapper.swap("He was the best man.") == "She was the maid of honour."
    assert swapper.swap("She was the Maid of Honour!") == "He was the Best Man!"
    assert swapper.swap("the maid  of honour") == "the best man"  # any whitespace between words
    assert swapper.swap("the best, man") == "the best, man"  # punctuation splits a multi-word entry


def test_swap_twice_is_identity_for_pairs(swapper):
    text = "He told his father: the King is here."
    assert swapper.swap(swapper.swap(text)) == text
    assert swapper.contains(text) and not swapper.contains("the cat sat")


def test_tuples_rotate_every_member():
    triples = Swapper([("jewish", "christian", "muslim"), ("synagogue", "church", "mosque")])
    text = "A Jewish family went to the synagogue; a Muslim went to the MOSQUE."
    assert triples.swap(text, 1) == "A Christian family went to the church; a Jewish went to the SYNAGOGUE."
    assert triples.swap(text, 2) == "A Muslim family went to the mosque; a Christian went to the CHURCH."
    # both shifts together reach every other member: two-sided for tuples
    assert triples.swap(triples.swap(text, 1), 2) == text
    rng = random.Random(0)
    shifts = {triples.counterfactual("a church", rng) for _ in range(50)}
    assert shifts == {"a mosque", "a synagogue"}


def test_word_in_two_tuples_uses_the_last():
    race = Swapper([("black", "caucasian", "asian"), ("black", "white", "asian")])
    assert race.swap("black", 1) == "white"
    assert race.swap("caucasian", 1) == "asian"


def test_match_case():
    assert match_case("HE", "she") == "SHE"
    assert match_case("he", "Zsa Zsa") == "zsa zsa"
    assert match_case("Maid of Honour", "best man") == "Best Man"
    assert match_case("King", "maid of honour") == "Maid of honour"
    assert match_case("mcKing", "queen") == "queen"


def test_names_are_case_sensitive_and_paired():
    pairs = name_pairs(["Adam", "Will", "Sam"], ["Eve", "Grace", "Sam"])
    assert ("Adam", "Eve") in pairs and ("Will", "Grace") in pairs
    assert all("Sam" not in p for p in pairs)  # on both lists: dropped
    s = Swapper([("he", "she")], pairs)
    assert s.swap("Will will go; Adam too.") == "Grace will go; Eve too."


def test_real_word_lists(data_root):
    words, names = load_groups(data_root, "gender")
    assert len(words) == 57 + 130 and names == []
    g = Swapper(words)
    assert g.swap("The actress met her nephew.") == "The actor met his niece."
    assert g.swap("Himself, the Prince!") == "Herself, the Princess!"
    _, names = load_groups(data_root, "gender", names=True)
    assert len(names) > 7000
    race = Swapper(*load_groups(data_root, "race"))
    assert race.swap("An African village", 1) == "An Caucasian village"
    religion = Swapper(*load_groups(data_root, "religion"))
    assert religion.swap("the rabbi and the imam", 1) == "the priest and the rabbi"


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
    assert CDA(train={"lr": 1e-4}).train.lr == 1e-4
    assert CDA(nc3_weight=5.0).name == "cda_nc3" and CDA().name == "cda"
