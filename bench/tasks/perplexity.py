"""WikiText-2 perplexity (Merity et al. 2017): raw v1 test split, sliding windows.

The file (HF ``wikitext-2-raw-v1`` test, empty rows dropped, CRLF) is split into its 62
articles at the level-1 headings (" = Title = "); an article's text is its lines joined
with "\\n", heading included.  Each article is scored from the sentence-start token with
``lm.loglikelihood_rolling`` (windows of ``max_length`` tokens advanced by ``stride``, every
token scored once with up to ``max_length - stride`` tokens of context).
``max_chars`` keeps only each article's beginning (a size knob: whole articles average
~20k characters, ~5k tokens).  PPL = exp(total NLL / total tokens) over the selected
articles: a token-level number, comparable across methods on one model (not across
tokenizers).  bias-bench joins all rows into one text instead, so absolute values differ
slightly from papers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

from bench.data import DataRoot
from bench.errors import ConfigError, DataError
from bench.api.lm import ScoringLM
from bench.api.metrics import MetricSpec, aggregate
from bench.api import BenchmarkResult
from bench.tasks.common import check_config, stratified_sample

FILE = "wikitext2/raw_v1_hf_derived/wiki.test.raw"
HEADING = re.compile(r"^ = ([^=].*) = $")  # level 1 only: " = = Section = = " does not match


@dataclass(frozen=True)
class Article:
    id: str  # "<index>" in file order
    title: str
    text: str


def load_articles(path: Path) -> list[Article]:
    lines = path.read_text(encoding="utf-8").replace("\r\n", "\n").split("\n")
    starts = [i for i, line in enumerate(lines) if HEADING.match(line)]
    if not starts or starts[0] != 0:
        raise DataError(f"{path}, line 1: expected an article heading ' = Title = ' "
                        f"({'none in the file' if not starts else 'text before the first one'})")
    articles = []
    for k, (begin, end) in enumerate(zip(starts, starts[1:] + [len(lines)])):
        text = "\n".join(lines[begin:end]).strip("\n")
        if text == lines[begin]:
            raise DataError(f"{path}, line {begin + 1}: article {HEADING.match(lines[begin]).group(1)!r} has no text")
        articles.append(Article(str(k), HEADING.match(lines[begin]).group(1), text))
    return articles


def truncate(text: str, max_chars: int | None) -> str:
    """The first ``max_chars`` characters of ``text``, without a cut word (None: all)."""
    if max_chars is None or len(text) <= max_chars:
        return text
    head = text[:max_chars]
    if not text[max_chars].isspace() and " " in head.strip():
        head = head[:head.rfind(" ")]
    return head.rstrip()


def score(articles: Sequence[Article], totals: Sequence[tuple[float, int]]) -> list[dict]:
    """Records from ``loglikelihood_rolling`` totals (sum log-prob in nats, n_tokens) per article."""
    return [{"id": a.id, "title": a.title, "logprob": lp, "n_tokens": n} for a, (lp, n) in zip(articles, totals)]


SPECS = [MetricSpec("perplexity/wikitext2", "fluency", "lower", "WikiText-2 raw test token perplexity, "
                    "exp(total NLL / total tokens), sliding window", field="logprob", aggregate="exp_ratio")]


@dataclass
class Perplexity:
    """Token perplexity on WikiText-2 raw test articles."""

    n: int | None = None  # articles, seeded sample (None: all 62, ~300k tokens)
    seed: int = 0  # seed of the article sample
    max_chars: int | None = None  # score only each article's first max_chars characters (None: whole articles)
    max_length: int = 1024  # window length in tokens (capped at model.max_length)
    stride: int = 512  # tokens between window starts (= tokens newly scored per window)

    name = "perplexity"
    # the test split in both of its released forms (raw, and tokenised: the same text)
    DATA_FILES: ClassVar[tuple[str, ...]] = (FILE, "wikitext2/tokens_v1/test.txt")

    def __post_init__(self) -> None:
        check_config(self)
        if self.max_chars is not None and self.max_chars <= 0:
            raise ConfigError(f"benchmarks.{self.name}.max_chars must be > 0 or null, got {self.max_chars}")
        if self.max_length <= 1:
            raise ConfigError(f"benchmarks.{self.name}.max_length must be > 1, got {self.max_length}")
        if not 0 < self.stride <= self.max_length:
            raise ConfigError(f"benchmarks.{self.name}.stride must be in (0, max_length={self.max_length}], "
                              f"got {self.stride}")

    def evaluate(self, lm: ScoringLM, data: DataRoot) -> BenchmarkResult:
        articles = stratified_sample(load_articles(data.path(FILE)), self.n, self.seed)
        texts = [truncate(a.text, self.max_chars) for a in articles]
        records = score(articles, lm.loglikelihood_rolling(texts, self.max_length, self.stride))
        return BenchmarkResult({s.key: aggregate(s, records) for s in SPECS}, SPECS, records, len(records),
                               info={"file": FILE, "max_length": self.max_length, "stride": self.stride,
                                     "max_chars": self.max_chars,
                                     "tokens": sum(r["n_tokens"] for r in records)})
