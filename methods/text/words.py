"""Attribute word lists and the bias types they define.

``BIAS_TYPES`` is the one list of bias types of the project.  ``load_tuples(data, bias_type,
extra)`` returns the word tuples of a bias type: bias-bench's ``bias_attribute_words.json``
(gender: 57 (male, female) pairs; race, religion: 6 triples each), as bias-bench's
``run_clm.py`` loads it, plus the opt-in extra lists named in ``extra`` (gender only):

- ``countergen``: the 130 single-word pairs of ``word_lists/countergen_gender_pairs.json``
  (many are not gendered in use: "manager"/"manageress", "host"/"hostess"), read before the
  bias-bench pairs so a bias-bench pair wins where both list a word (as "last match wins" in
  bias-bench's loop);
- ``countergen_names``: that file's 131st entry, 2,943 male and 5,001 female first names, as
  pairs (``name_pairs``); multi-word names ("Zsa Zsa") are skipped, as the swapper matches
  single whitespace-separated words.
"""
from __future__ import annotations

from typing import Sequence

from bench.data import DataRoot, read_json
from bench.errors import ConfigError, DataError

BIAS_TYPES = ("gender", "race", "religion")
BIAS_WORDS = "bias_bench/bias_attribute_words.json"
COUNTERGEN = "word_lists/countergen_gender_pairs.json"
EXTRA_LISTS = ("countergen", "countergen_names")

Tuples = list[tuple[str, ...]]


def check_bias_type(bias_type: str, option: str = "method.bias_type") -> None:
    if bias_type not in BIAS_TYPES:
        raise ConfigError(f"{option}={bias_type!r} is not one of {list(BIAS_TYPES)}")


def check_extra(bias_type: str, extra: Sequence[str], option: str = "method.extra_words") -> None:
    unknown = [e for e in extra if e not in EXTRA_LISTS]
    if unknown:
        raise ConfigError(f"{option} has unknown list(s) {unknown}; valid: {list(EXTRA_LISTS)}")
    if extra and bias_type != "gender":
        raise ConfigError(f"{option}={list(extra)} exists for bias_type=gender only, got {bias_type!r}")


def name_pairs(male: list[str], female: list[str]) -> list[tuple[str, str]]:
    """First names as pairs: male i <-> female i mod len(female) and back; names on both lists are
    dropped (ambiguous).  The lists have unequal length, so the pairing is arbitrary but fixed."""
    both = set(male) & set(female)
    male = [m for m in male if m not in both]
    female = [f for f in female if f not in both]
    pairs = [(m, female[i % len(female)]) for i, m in enumerate(male)]
    pairs += [(male[j % len(male)], f) for j, f in enumerate(female)]
    return pairs


def _countergen(data: DataRoot, names: bool) -> Tuples:
    path = data.path(COUNTERGEN)
    entries = read_json(path).get("correspondances")
    if not isinstance(entries, list):
        raise DataError(f"{path}: no 'correspondances' list")
    out: Tuples = []
    for e in entries:
        male, female = e.get("male"), e.get("female")
        if not male or not female:
            raise DataError(f"{path}: entry without male/female words: {str(e)[:80]}")
        if len(male) == len(female) == 1 and not names:
            out.append((male[0], female[0]))
        elif len(male) > 1 and names:
            out += [p for p in name_pairs(male, female) if " " not in p[0] + p[1]]
    return out


def load_tuples(data: DataRoot, bias_type: str, extra: Sequence[str] = ()) -> Tuples:
    """The word tuples of ``bias_type``: the opt-in ``extra`` lists first, bias-bench's last."""
    check_bias_type(bias_type)
    check_extra(bias_type, extra)
    tuples: Tuples = []
    for name in EXTRA_LISTS:  # fixed order, whatever the order of ``extra``
        if name in extra:
            tuples += _countergen(data, names=name == "countergen_names")
    table = read_json(data.path(BIAS_WORDS))
    if bias_type not in table:
        raise DataError(f"{BIAS_WORDS}: no {bias_type!r} word list")
    return tuples + [tuple(t) for t in table[bias_type]]
