"""Attribute word lists and two-sided counterfactual swapping (CDA, contrastive positives).

Word lists (``load_groups``):
- gender: the 57 (male, female) pairs of ``bias_bench/bias_attribute_words.json`` plus the 130
  word pairs of ``word_lists/countergen_gender_pairs.json``; its 131st entry (2,943 male and
  5,001 female first names) only with ``names=True``, see ``name_pairs``.
- race, religion: the 6 triples of ``bias_attribute_words.json`` each.

Swapping rule (``Swapper``).  A word (or multi-word entry) belongs to the last tuple that lists
it (as in bias-bench's loop, where the last match wins; gender lists are read countergen first,
bias-bench last, so "her" -> "his" as in bias-bench); with shift k it becomes the member k places
further in that tuple (i -> (i + k) mod n).  Gender pairs have n = 2, so k = 1 is male <-> female
in both directions.  For triples, bias-bench draws a random other member per tuple position; here
one k in {1, .., n-1} is drawn per chunk from a seeded generator, so every race/religion word of a
chunk moves one (or two) places round its tuple, reproducibly.  Matching is case-insensitive on
whole words (a word is letters, digits and inner hyphens, so "king's", "he." and "(she" match,
"he-man" does not); the replacement copies the case pattern (lower, Capitalised, UPPER) and the
text around it, so trailing punctuation is kept.  Names are matched case-sensitively (as listed)
because many are also common words ("Will", "Grace").
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass, field

from bench.data import DataRoot, read_json
from bench.errors import ConfigError, DataError

BIAS_WORDS = "bias_bench/bias_attribute_words.json"
COUNTERGEN = "word_lists/countergen_gender_pairs.json"
BIAS_TYPES = ("gender", "race", "religion")
_WORD = re.compile(r"\w+(?:-\w+)*")


def word_list_files(bias_type: str) -> list[str]:
    return [BIAS_WORDS, COUNTERGEN] if bias_type == "gender" else [BIAS_WORDS]


def name_pairs(male: list[str], female: list[str]) -> list[tuple[str, str]]:
    """First names as pairs: male i <-> female i mod len(female) and back; names on both lists are
    dropped (ambiguous).  The lists have unequal length, so the pairing is arbitrary but fixed."""
    both = set(male) & set(female)
    male = [m for m in male if m not in both]
    female = [f for f in female if f not in both]
    pairs = [(m, female[i % len(female)]) for i, m in enumerate(male)]
    pairs += [(male[j % len(male)], f) for j, f in enumerate(female)]
    return pairs


Tuples = list[tuple[str, ...]]


def load_groups(data: DataRoot, bias_type: str, names: bool = False) -> tuple[Tuples, Tuples]:
    """(word tuples, case-sensitive name tuples) for ``bias_type``."""
    if bias_type not in BIAS_TYPES:
        raise ConfigError(f"method.bias_type={bias_type!r} is not one of {list(BIAS_TYPES)}")
    bias_bench = [tuple(t) for t in read_json(data.path(BIAS_WORDS))[bias_type]]
    if bias_type != "gender":
        return bias_bench, []
    words: Tuples = []
    path = data.path(COUNTERGEN)
    entries = read_json(path).get("correspondances")
    if not isinstance(entries, list):
        raise DataError(f"{path}: no 'correspondances' list")
    named: Tuples = []
    for e in entries:
        male, female = e.get("male"), e.get("female")
        if not male or not female:
            raise DataError(f"{path}: entry without male/female words: {str(e)[:80]}")
        if len(male) == len(female) == 1:
            words.append((male[0], female[0]))
        elif names:
            named.extend(name_pairs(male, female))
    return words + bias_bench, named


def match_case(source: str, target: str) -> str:
    """``target`` written in the case pattern of ``source`` (lower, Title, UPPER; else as listed)."""
    letters = [c for c in source if c.isalpha()]
    if len(letters) > 1 and all(c.isupper() for c in letters):
        return target.upper()
    if source.islower():
        return target.lower()
    if source[:1].isupper():  # Capitalised: every word when the source capitalises several, else the first
        if sum(w[:1].isupper() for w in source.split()) > 1:
            return " ".join(w[:1].upper() + w[1:] for w in target.split(" "))
        return target[:1].upper() + target[1:]
    return target


@dataclass
class Swapper:
    """Two-sided swapping over word tuples (see module docstring)."""

    groups: list[tuple[str, ...]]  # case-insensitive tuples (pairs for gender, triples for race/religion)
    names: list[tuple[str, ...]] = field(default_factory=list)  # case-sensitive tuples (first names)

    def __post_init__(self) -> None:
        self._lower: dict[str, tuple[tuple[str, ...], int]] = {}
        self._exact: dict[str, tuple[tuple[str, ...], int]] = {}
        for table, tuples, norm in ((self._lower, self.groups, str.lower), (self._exact, self.names, str)):
            for tup in tuples:
                for i, w in enumerate(tup):
                    table[" ".join(norm(w).split())] = (tup, i)
        self.max_words = max((len(k.split()) for k in [*self._lower, *self._exact]), default=1)
        self.arity = max((len(t) for t in self.groups + self.names), default=2)

    def _lookup(self, span: str) -> tuple[tuple[str, ...], int] | None:
        key = " ".join(span.split())
        return self._exact.get(key) or self._lower.get(key.lower())

    def _matches(self, text: str):
        """Yield (start, end, tuple, index) of attribute entries, longest first, left to right."""
        words = list(_WORD.finditer(text))
        i = 0
        while i < len(words):
            for n in range(min(self.max_words, len(words) - i), 0, -1):
                seq = words[i:i + n]
                if any(text[a.end():b.start()].strip() or not text[a.end():b.start()] for a, b in zip(seq, seq[1:])):
                    continue  # multi-word entries must be separated by whitespace only
                hit = self._lookup(text[seq[0].start():seq[-1].end()])
                if hit:
                    yield seq[0].start(), seq[-1].end(), hit[0], hit[1]
                    i += n
                    break
            else:
                i += 1

    def contains(self, text: str) -> bool:
        return next(self._matches(text), None) is not None

    def swap(self, text: str, shift: int = 1) -> str:
        """``text`` with every attribute entry moved ``shift`` places round its tuple."""
        out, last = [], 0
        for start, end, tup, i in self._matches(text):
            out += [text[last:start], match_case(text[start:end], tup[(i + shift) % len(tup)])]
            last = end
        return "".join(out) + text[last:]

    def counterfactual(self, text: str, rng: random.Random) -> str:
        """One two-sided counterfactual: shift 1 for pairs, a drawn shift for longer tuples."""
        return self.swap(text, rng.randint(1, self.arity - 1) if self.arity > 2 else 1)
