"""Fitting text for INLP and SentenceDebias: sentences that mention (or avoid) a bias type's
attribute words, balanced classes, and counterfactual groups.

Word lists: ``bias_bench/bias_attribute_words.json`` (gender: [male, female] pairs; race,
religion: triples), lower-cased.  Text comes only from corpora that no benchmark reads and that
``methods.training.check_training_files`` (the project's one evaluation-set guard) accepts:

- ``wikitext2``: WikiText-2 validation (light detokenisation, ``<unk>`` tokens dropped, headings
  skipped, split into sentences).  The test split is the perplexity benchmark's; no train split
  is available.
- ``toxigen``: ToxiGen's human-written demonstrations (one statement a line, every group; hate
  and neutral).
- ``davidson``: the tweets of Davidson et al. (2017) with HTML entities decoded and the retweet
  marker, @-mentions and links removed (mostly offensive text; the ``embedding_lr`` toxicity
  scorer is trained on it, but no benchmark scores it).
- ``winobias_dev``: the WinoBias dev split (the benchmark evaluates on the test split), line
  numbers and brackets removed; every sentence holds a gendered pronoun.

The LAMA facts are not offered: their files hold both halves of the knowledge benchmark's split.

Class matching (INLP): a whitespace token is an attribute word when its lower-case form, or that
form without a trailing ``. , ? ! ; :``, is listed (bias-bench: the exact lower-case token).
Counterfactuals (SentenceDebias) come from ``methods.text.swap.Swapper``, the project's one
swapper, over the same word tuples (``methods.text.words``).
"""
from __future__ import annotations

import html
import random
import re
from typing import Iterable, Sequence

from bench.data import DataRoot, load_manifest, read_csv, read_lines
from bench.errors import ConfigError
from methods.finetune.config import check_training_files
from methods.text.corpus import read_corpus
from methods.text.swap import Swapper
from methods.text.words import BIAS_WORDS, load_tuples

CORPORA = {
    "wikitext2": ("wikitext2/tokens_v1/valid.txt",),
    "toxigen": tuple(sorted(p for p in load_manifest() if p.startswith("toxigen/demonstrations/"))),
    "davidson": ("davidson_hate_speech/labeled_data.csv",),
    "winobias_dev": tuple(f"winobias/data/{s}_stereotyped_type{t}.txt.dev" for s in ("pro", "anti") for t in (1, 2)),
}
MIN_WORDS = 5  # shorter sentences are skipped (bias-bench)
MIN_PROBE = 2  # fewest balanced sentences per class either side of the held-out split (a probe needs some)
_TRAILING = ".,?!;:"


def check_corpora(corpora: Sequence[str]) -> None:
    unknown = [c for c in corpora if c not in CORPORA]
    if unknown or not corpora:
        raise ConfigError(f"method.corpora={list(corpora)!r} must be a non-empty subset of {sorted(CORPORA)}")
    check_training_files([f for c in corpora for f in CORPORA[c]], "method.corpora")


def corpus_files(corpora: Sequence[str]) -> list[str]:
    """Data-root paths read for ``corpora`` (plus the word list)."""
    return [BIAS_WORDS] + [f for c in corpora for f in CORPORA[c]]


def attribute_tuples(data: DataRoot, bias_type: str) -> list[tuple[str, ...]]:
    """Lower-case word tuples of ``bias_type`` (gender: (male, female); others: triples): bias-bench's list."""
    return [tuple(w.lower() for w in t) for t in load_tuples(data, bias_type)]


# ---------------------------------------------------------------------------- corpora
def _wikitext(data: DataRoot, rel: str) -> Iterable[str]:
    """The project's one WikiText reader (methods.text.corpus): detokenised sentences, <unk> ones dropped."""
    for run in read_corpus(data, [rel])[0]:
        yield from run


def _toxigen(data: DataRoot, rel: str) -> Iterable[str]:
    for line in read_lines(data.path(rel)):
        yield line.strip().lstrip("- ").strip()


_WINOBIAS_LINE = re.compile(r"^\d+\s+")


def _winobias(data: DataRoot, rel: str) -> Iterable[str]:
    for line in read_lines(data.path(rel)):
        yield re.sub(r"\s+", " ", _WINOBIAS_LINE.sub("", line).replace("[", "").replace("]", "")).strip()


_TWEET_NOISE = re.compile(r"^(?:RT\s+)+|\bRT\s+@\w+:?|@\w+:?|https?://\S+")


def _davidson(data: DataRoot, rel: str) -> Iterable[str]:
    for row in read_csv(data.path(rel), required=("tweet",)):
        yield re.sub(r"\s+", " ", _TWEET_NOISE.sub(" ", html.unescape(row["tweet"]))).strip()


_READERS = {"wikitext2": _wikitext, "toxigen": _toxigen, "davidson": _davidson, "winobias_dev": _winobias}


def corpus_sentences(data: DataRoot, corpora: Sequence[str]) -> dict[str, list[str]]:
    """Per corpus, its distinct sentences of at least ``MIN_WORDS`` words, in file order (a
    sentence already seen in an earlier corpus is not repeated)."""
    check_corpora(corpora)
    seen: set[str] = set()
    out: dict[str, list[str]] = {}
    for corpus in corpora:
        out[corpus] = []
        for rel in CORPORA[corpus]:
            for s in _READERS[corpus](data, rel):
                if len(s.split()) >= MIN_WORDS and s not in seen:
                    seen.add(s)
                    out[corpus].append(s)
    return out


def split_sentences(sentences: dict[str, Sequence[str]], test_fraction: float, seed: int
                    ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(fit, held-out): each corpus shuffled (``seed``), ``round(test_fraction * len)`` of its
    sentences held out, so no held-out probe sentence shares a source with the fitting data."""
    rng = random.Random(seed)
    fit, held = {}, {}
    for corpus, texts in sentences.items():
        order = list(texts)
        rng.shuffle(order)
        k = round(test_fraction * len(order))
        held[corpus], fit[corpus] = order[:k], order[k:]
    return fit, held


# ------------------------------------------------------------------------- matching
def matches(token: str, words: set[str]) -> str | None:
    """The attribute word ``token`` spells (``"He,"`` -> ``"he"``, ``"Mr."`` -> ``"mr."``), or None."""
    low = token.lower()
    if low in words:
        return low
    core = low.rstrip(_TRAILING)
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


def quotas(available: dict[str, int], total: int | None) -> dict[str, int]:
    """How many of ``total`` to take from each source holding ``available[source]``: all when
    ``total`` is None or not smaller than the sum, else shares proportional to ``available``
    (largest remainders, ties in source order), never more than a source holds."""
    whole = sum(available.values())
    if total is None or total >= whole:
        return dict(available)
    exact = {k: total * v / whole for k, v in available.items()}
    out = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: out[k] - exact[k])[:total - sum(out.values())]:
        out[k] += 1
    return out


def collect_classes(sentences: dict[str, Sequence[str]], tuples: Sequence[tuple[str, ...]],
                    n_per_class: int | None, seed: int) -> tuple[dict[str, list[str]], dict[str, int]]:
    """Balanced, clipped INLP sentences: ({class: sentences}, {corpus: sentences per class}).

    Classes are balanced within each corpus (every class takes the same number from it, the
    rarest class's count), so the corpus (genre) tells nothing about the class; ``n_per_class``
    (None: all) is shared over the corpora by ``quotas``.  Each corpus is shuffled (``seed``); an
    attribute sentence is cut after a random word at or after its last attribute word, a neutral
    one after a random word from the fourth on, as bias-bench (pooled states then look like a
    causal LM's running contexts).  Case is kept (bias-bench lower-cases)."""
    rng = random.Random(seed)
    names = class_names(tuples)
    pools: dict[str, dict[str, list[tuple[str, int]]]] = {}
    for corpus, texts in sentences.items():
        order = list(texts)
        rng.shuffle(order)
        pools[corpus] = {c: [] for c in names}
        for s in order:
            found = classify(s, tuples)
            if found is not None:
                pools[corpus][found[0]].append((s, found[1]))
    take = quotas({c: min(len(v) for v in p.values()) for c, p in pools.items()}, n_per_class)
    out: dict[str, list[str]] = {c: [] for c in names}
    for corpus, pool in pools.items():
        for label, rows in pool.items():
            for s, idx in rows[:take[corpus]]:
                words = s.split()
                cut = rng.randint(idx + 1, len(words)) if idx >= 0 else rng.randint(4, len(words))
                out[label].append(" ".join(words[:cut]))
    return out, take


# ---------------------------------------------------------------------- counterfactuals
def counterfactual_groups(sentences: dict[str, Sequence[str]], tuples: Sequence[tuple[str, ...]],
                          n_groups: int | None, seed: int) -> tuple[list[tuple[str, ...]], dict[str, int]]:
    """SentenceDebias groups: for each sentence holding an attribute word, the sentence moved
    k = 0 .. n-1 places round every tuple (``Swapper.swap``; gender: (sentence, swapped)).
    Returns (groups, {corpus: groups}); ``n_groups`` (None: all) is shared over the corpora by
    ``quotas``, each corpus shuffled (``seed``).  bias-bench makes one group per attribute word
    present, replacing that word only; here every attribute word of the sentence moves together."""
    swapper = Swapper(groups=list(tuples))
    arity = len(tuples[0])
    rng = random.Random(seed)
    pools: dict[str, list[str]] = {}
    for corpus, texts in sentences.items():
        order = [s for s in texts if swapper.contains(s)]
        rng.shuffle(order)
        pools[corpus] = order
    take = quotas({c: len(v) for c, v in pools.items()}, n_groups)
    groups = [tuple(swapper.swap(s, lambda m, k=k: m.group[(m.index + k) % arity]) for k in range(arity))
              for c, v in pools.items() for s in v[:take[c]]]
    return groups, take


def probe_classes(fit: dict[str, Sequence[str]], held: dict[str, Sequence[str]], tuples: Sequence[tuple[str, ...]],
                  n_per_class: int | None, test_fraction: float, seed: int) -> dict[str, dict]:
    """Balanced class sentences for fitting/training ("train", from ``fit``) and for the held-out
    probe ("test", from ``held``): ``n_per_class`` (None: all) split ``1 - test_fraction`` :
    ``test_fraction``.  Also returns per-corpus counts per class ("train_by_corpus", "test_by_corpus")."""
    n_test = None if n_per_class is None else round(n_per_class * test_fraction)
    train, train_counts = collect_classes(fit, tuples, None if n_per_class is None else n_per_class - n_test, seed)
    test, test_counts = collect_classes(held, tuples, n_test, seed)
    sizes = (len(next(iter(train.values()))), len(next(iter(test.values()))))
    if min(sizes) < MIN_PROBE:
        raise ConfigError(f"method.corpora={list(fit)} hold only {sizes[0]} + {sizes[1]} balanced sentences of "
                          f"some class (fitting + held-out, at least {MIN_PROBE} each needed); add corpora")
    return {"train": train, "test": test, "train_by_corpus": train_counts, "test_by_corpus": test_counts}
