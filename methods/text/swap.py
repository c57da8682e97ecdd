"""The counterfactual swapper of the project, with bias-bench's matching rule.

Matching (bias-bench ``experiments/run_clm.py``: ``_create_bias_attribute_words`` and
``gender_counterfactual_augmentation`` / ``ternary_counterfactual_augmentation``): the text is
split on whitespace; a token matches a list word when it equals the word exactly (case-sensitive:
the lists are lower case, so "He" at a sentence start is not swapped, as in bias-bench) or the
word followed by one of ``. , ? ! ; :`` (the mark is kept).  "(he", "he's" and "he.\"" do not
match.  When several tuples list a token, the last one wins (bias-bench's loop overwrites); the
punctuated forms come after all plain forms, as in bias-bench's augmented list.

Replacement: in a pair, the other member (male <-> female, both directions).  In a longer tuple
(race, religion triples), the member at position p becomes the member at a position r_p != p;
``counterfactual`` draws r_p uniformly once per text for every position p (bias-bench draws
``random.choice([1, 2])``, ``([0, 2])``, ``([0, 1])`` per example), from the caller's seeded
``random.Random``, so a run is reproducible.

Deliberate deviation: the text around the swapped tokens is kept as written; bias-bench
re-joins the whitespace-split words with single spaces (newlines collapse).

``fold_case=True`` (not bias-bench's rule; the counterfactual-prompt benchmark uses it, since
prompts start with capitals) matches tokens case-insensitively and gives the replacement the
token's case ("He" -> "She", "SHE" -> "HE").
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from bench.errors import DataError

PUNCTUATION = (".", ",", "?", "!", ";", ":")  # bias-bench's trailing marks
_TOKEN = re.compile(r"\S+")


@dataclass(frozen=True)
class Match:
    start: int  # character offsets of the token in the text
    end: int
    group: tuple[str, ...]  # the word tuple that lists it
    index: int  # its position in that tuple
    suffix: str  # trailing punctuation kept after the replacement ("" if none)
    case: str = "as_listed"  # as_listed | title | upper: the case the replacement takes (fold_case only)


class Swapper:
    """Counterfactual swapping over word tuples (module docstring)."""

    def __init__(self, groups: Sequence[tuple[str, ...]], fold_case: bool = False):
        self.fold_case = fold_case
        self.groups = [tuple(g.lower() for g in group) if fold_case else tuple(group) for group in groups]
        arities = {len(g) for g in self.groups}
        if len(arities) > 1 or min(arities, default=2) < 2:
            raise DataError(f"word tuples must all have one length >= 2, got lengths {sorted(arities)}")
        self.arity = arities.pop() if arities else 2
        self._table: dict[str, tuple[tuple[str, ...], int, str]] = {}
        for suffix in ("", *PUNCTUATION):  # bias-bench's list order: plain words, then each mark
            for group in self.groups:
                for i, word in enumerate(group):
                    self._table[word + suffix] = (group, i, suffix)

    def matches(self, text: str) -> Iterator[Match]:
        """The attribute tokens of ``text``, left to right."""
        for tok in _TOKEN.finditer(text):
            word = tok.group()
            hit = self._table.get(word.lower() if self.fold_case else word)
            if hit is not None:
                case = "as_listed" if not self.fold_case or word.islower() else \
                    "upper" if word.isupper() and len(word.rstrip("".join(PUNCTUATION))) > 1 else "title"
                yield Match(tok.start(), tok.end(), *hit, case=case)

    def contains(self, text: str) -> bool:
        return next(self.matches(text), None) is not None

    def swap(self, text: str, choose: Callable[[Match], str | None]) -> str:
        """``text`` with each attribute token replaced by ``choose(match)`` + its punctuation
        (None: kept as written)."""
        out, last = [], 0
        for m in self.matches(text):
            word = choose(m)
            if word is not None:
                word = word.upper() if m.case == "upper" else word[:1].upper() + word[1:] if m.case == "title" else word
                out += [text[last:m.start], word + m.suffix]
                last = m.end
        return "".join(out) + text[last:]

    def counterfactual(self, text: str, rng: random.Random) -> str:
        """bias-bench's counterfactual of ``text``: pairs swapped, longer tuples by drawn positions."""
        if self.arity > 2:
            targets = [rng.choice([j for j in range(self.arity) if j != p]) for p in range(self.arity)]
            return self.swap(text, lambda m: m.group[targets[m.index]])
        return self.swap(text, lambda m: m.group[1 - m.index])
