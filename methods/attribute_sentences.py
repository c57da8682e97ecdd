"""Sentences that mention (or avoid) a bias type's attribute words, for fitting INLP and
SentenceDebias, and their counterfactual swaps.

Word lists: ``bias_bench/bias_attribute_words.json`` (gender: [male, female] pairs;
race, religion: triples).  A text token matches a word case-insensitively, also with a
trailing ``. , ? ! ; :``.  Text comes from non-evaluation corpora only (never StereoSet,
CrowS-Pairs, SEAT, TruthfulQA or RealToxicityPrompts):

- ``wikitext2``: WikiText-2 validation (light detokenisation, ``<unk>`` tokens dropped,
  headings skipped, split into sentences);
- ``bold``: every BOLD prompt (Wikipedia sentence beginnings);
- ``winobias``: the WinoBias sentences (brackets and numbering removed).
"""
from __future__ import annotations

import random
import re
from typing import Iterable, Sequence

from bench.data import DataRoot, read_json, read_lines
from bench.errors import ConfigError

WORDS_FILE = "bias_bench/bias_attribute_words.json"
BIAS_TYPES = ("gender", "race", "religion")
CORPORA = {
    "wikitext2": ("wikitext2/tokens_v1/valid.txt",),
    "bold": tuple(f"bold/prompts/{n}_prompt.json" for n in
                  ("gender", "race", "religious_ideology", "profession", "political_ideology")),
    "winobias": tuple(f"winobias/data/{kind}_stereotyped_type{t}.txt.{split}" for kind in ("pro", "anti")
                      for t in (1, 2) for split in ("dev", "test")),
}
MIN_WORDS = 5  # shorter sentences are skipped (bias-bench)
_TRAILING = ".,?!;:"


def check_bias_type(bias_type: str) -> None:
    if bias_type not in BIAS_TYPES:
        raise ConfigError(f"method.bias_type={bias_type!r} is not one of {list(BIAS_TYPES)}")


def check_corpora(corpora: Sequence[str]) -> None:
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown or not corpora:
        raise ConfigError(f"method.corpora={list(corpora)!r} must be a non-empty subset of {sorted(CORPORA)}")


def corpus_files(corpora: Sequence[str]) -> list[str]:
    """Data-root paths read for ``corpora`` (plus the word list)."""
    return [WORDS_FILE] + [f for c in corpora for f in CORPORA[c]]


def attribute_tuples(data: DataRoot, bias_type: str) -> list[tuple[str, ...]]:
    """Lower-case word tuples of ``bias_type`` (gender: (male, female); others: triples)."""
    return [tuple(w.lower() for w in t) for t in read_json(data.path(WORDS_FILE))[bias_type]]


# ---------------------------------------------------------------------------- corpora
def _detokenise_wikitext(line: str) -> str:
    line = line.replace(" @-@ ", "-").replace(" @,@ ", ",").replace(" @.@ ", ".").replace("<unk>", " ")
    line = re.sub(r" +([.,;:!?)\]]|n't|'s|'re|'ve|'m|'ll|'d)(?=\s|$)", r"\1", line)
    return re.sub(r"([(\[]) +", r"\1", re.sub(r"\s+", " ", line)).strip()


def _wikitext(path) -> Iterable[str]:
    for line in read_lines(path):
        if line.strip().startswith("="):  # section heading
            continue
        yield from re.split(r"(?<=[.!?]) (?=[A-Z\"'(])", _detokenise_wikitext(line))


def _bold(path) -> Iterable[str]:
    for people in read_json(path).values():
        for prompts in people.values():
            yield from (p.strip() for p in prompts)


def _winobias(path) -> Iterable[str]:
    for line in read_lines(path):
        yield re.sub(r"^\d+\s+", "", line).replace("[", "").replace("]", "").strip()


_READERS = {"wikitext2": _wikitext, "bold": _bold, "winobias": _winobias}


def corpus_sentences(data: DataRoot, corpora: Sequence[str]) -> list[str]:
    """Distinct sentences of at least ``MIN_WORDS`` words from ``corpora``, in file order."""
    check_corpora(corpora)
    seen: dict[str, None] = {}
    for corpus in corpora:
        for rel in CORPORA[corpus]:
            for s in _READERS[corpus](data.path(rel)):
                if len(s.split()) >= MIN_WORDS:
                    seen.setdefault(s, None)
    return list(seen)


# ------------------------------------------------------------------------- matching
def _core(token: str) -> str:
    return token.lower().rstrip(_TRAILING)


def matches(token: str, words: set[str] | dict) -> str | None:
    """The attribute word ``token`` spells (``"He,"`` -> ``"he"``, ``"Mr."`` -> ``"mr."``), or None."""
    low = token.lower()
    if low in words:
        return low
    core = _core(token)
    return core if core in words else None


def classify(sentence: str, tuples: Sequence[tuple[str, ...]]) -> tuple[str, int] | None:
    """INLP class of a sentence and the word index of its last attribute word.

    Gender: "male" / "female" (words of one side only; both sides -> None) or "neutral";
    race, religion: "bias" (any member of any tuple) or "neutral".  Neutral index: -1."""
    tokens = sentence.split()
    if len(tuples[0]) == 2:
        sides = [{t[0] for t in tuples}, {t[1] for t in tuples}]
        hits = [[i for i, tok in enumerate(tokens) if matches(tok, side)] for side in sides]
        if hits[0] and hits[1]:
            return None
        if hits[0] or hits[1]:
            return ("male", hits[0][-1]) if hits[0] else ("female", hits[1][-1])
        return "neutral", -1
    members = {w for t in tuples for w in t}
    hits = [i for i, tok in enumerate(tokens) if matches(tok, members)]
    return ("bias", hits[-1]) if hits else ("neutral", -1)


def class_names(tuples: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """INLP classes: gender (pairs) -> male, female, neutral; tuples of three -> bias, neutral."""
    return ("male", "female", "neutral") if len(tuples[0]) == 2 else ("bias", "neutral")


def collect_classes(sentences: Sequence[str], tuples: Sequence[tuple[str, ...]], n_per_class: int,
                    seed: int) -> dict[str, list[str]]:
    """Up to ``n_per_class`` clipped sentences per class, as bias-bench's INLP data: the corpus is
    shuffled (``seed``); an attribute sentence is cut after a random word at or after its last
    attribute word, a neutral one after a random word from the fourth on (so pooled states look
    like a causal LM's running contexts).  Case is kept (bias-bench lower-cases)."""
    rng = random.Random(seed)
    order = list(sentences)
    rng.shuffle(order)
    out: dict[str, list[str]] = {c: [] for c in class_names(tuples)}
    for s in order:
        found = classify(s, tuples)
        if found is None or len(out[found[0]]) >= n_per_class:
            continue
        label, idx = found
        words = s.split()
        cut = rng.randint(idx + 1, len(words)) if idx >= 0 else rng.randint(4, len(words))
        out[label].append(" ".join(words[:cut]))
        if all(len(v) >= n_per_class for v in out.values()):
            break
    return out


# ---------------------------------------------------------------------- counterfactuals
def swap_attributes(sentence: str, word: str, replacement: str) -> str:
    """Replace every token spelling ``word`` by ``replacement`` (keeping trailing punctuation
    and a leading capital)."""
    out = []
    for tok in sentence.split(" "):
        hit = matches(tok, {word})
        if hit is None:
            out.append(tok)
            continue
        new = replacement + tok[len(hit):]
        out.append(new[:1].upper() + new[1:] if tok[:1].isupper() else new)
    return " ".join(out)


def counterfactual_groups(sentence: str, tuples: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """For every tuple and every member of it in ``sentence``, the sentence with that member
    replaced by each member of the tuple in turn (bias-bench's SentenceDebias augmentation)."""
    present = {matches(tok, {w for t in tuples for w in t}) for tok in sentence.split()} - {None}
    groups = []
    for t in tuples:
        for word in t:
            if word in present:
                groups.append(tuple(sentence if m == word else swap_attributes(sentence, word, m) for m in t))
    return groups
