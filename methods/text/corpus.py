"""The plain-text corpus reader of the fine-tuning methods (WikiText-2 by default).

- ``detokenize``: undo WikiText's Moses-style spacing (" @-@ " -> "-", " , " -> ", ", ...);
- ``read_corpus``: runs of consecutive sentences of plain-text files: paragraphs, split where a
  sentence holding WikiText's ``<unk>`` is dropped; headings ("= Title =") are skipped;
- ``pack_chunks``: consecutive sentences packed into chunks of at most ``max_tokens`` tokens
  (as bias-bench groups its corpus into blocks), across paragraphs.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

from bench.data import DataRoot

WIKITEXT_VALID = "wikitext2/tokens_v1/valid.txt"  # the default corpus (WikiText-2's train split is not available)
_MOSES = [(" @-@ ", "-"), (" @,@ ", ","), (" @.@ ", "."), (" ,", ","), (" .", "."), (" ;", ";"), (" :", ":"),
          (" !", "!"), (" ?", "?"), (" 's", "'s"), (" n't", "n't"), ("( ", "("), (" )", ")"), ("[ ", "["), (" ]", "]")]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


def detokenize(text: str) -> str:
    """Undo WikiText's Moses-style spacing (" @-@ " -> "-", " , " -> ", ", ...)."""
    for a, b in _MOSES:
        text = text.replace(a, b)
    text = re.sub(r'" ([^"]*?) "', r'"\1"', text)
    return re.sub(r" {2,}", " ", text).strip()


def read_corpus(data: DataRoot, files: Sequence[str]) -> tuple[list[list[str]], dict[str, int]]:
    """Runs of consecutive sentences of ``files`` (module docstring).  Returns (runs, counts)."""
    runs, kept, dropped = [], 0, 0
    for rel in files:
        with open(data.path(rel), encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if not line or (line.startswith("=") and line.endswith("=")):
                    continue
                run: list[str] = []
                for sentence in filter(str.strip, _SENTENCE_END.split(detokenize(line))):
                    if "<unk>" in sentence:
                        dropped += 1
                        runs, run = runs + [run] if run else runs, []
                    else:
                        kept += 1
                        run.append(sentence)
                if run:
                    runs.append(run)
    return runs, {"corpus_sentences": kept, "corpus_sentences_dropped_unk": dropped}


def pack_chunks(runs: list[list[str]], count_tokens: Callable[[list[str]], list[int]], max_tokens: int) -> list[str]:
    """Pack consecutive sentences into chunks of at most ``max_tokens`` tokens: " " joins
    sentences of a run, "\\n" joins runs; a sentence longer than ``max_tokens`` is a chunk of its
    own (truncated when encoded)."""
    flat = [(s, i > 0) for run in runs for i, s in enumerate(run)]
    lengths = count_tokens([s for s, _ in flat])
    chunks, current, size = [], "", 0
    for (sentence, same_run), n in zip(flat, lengths):
        if current and size + 1 + n > max_tokens:
            chunks.append(current)
            current, size = "", 0
        current, size = (current + (" " if same_run else "\n") + sentence, size + 1 + n) if current else (sentence, n)
    if current:
        chunks.append(current)
    return chunks
