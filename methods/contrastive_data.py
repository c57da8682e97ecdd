"""Offline, seeded construction of the contrastive sources (Korkmaz et al. 2025, adapted).

The release trains on TL;DR (Reddit post -> summary) sources whose positives are the reference
summary and its back-translations and whose negatives are entity swaps, masked-and-refilled
entities, low-confidence system outputs and GPT-Neo toxic rewrites, each target with spaCy
named-entity marks.  That data and those augmentation models are not reachable offline (the
release's ``data/tldr`` training sources are not in any registered file), so taxbench builds
sources of the same shape from registered data:

A ``Source`` is (context, positives, negatives): every target is a sequence "context + target";
InfoNCE runs within a source, and CE is taken on the *last* positive (the release's ``ce_pos``).

- **Group sources** (ToxiGen, every group's prompts *and* demonstrations, both kinds).  A prompt
  line of ``prompts/neutral_<group>_1k.txt`` holds 4-6 neutral statements ("- a\\n- b\\n...",
  with a literal backslash-n); a demonstrations file holds one statement per line and is read as
  one list.  For each statement that holds an attribute word of ``bias_type`` (CDA word lists),
  one source: context = the ``context_items`` statements before it in its list (cyclically),
  written as the ToxiGen bullet list; positives = (statement, its two-sided counterfactual);
  negatives = the ``n_negatives`` hate statements of the *same* group (prompts + demonstrations)
  nearest to the statement by word Jaccard (ties: file order), the closest thing to a toxic
  rewrite of it that the data holds.  Marks: the attribute words (the spans where a text and its
  swap differ); statements without one are pooled over all their tokens.  (context, statement)
  pairs are deduplicated.
- **Fact sources** (``fact_ratio`` per group source; LAMA T-REx facts of the knowledge
  benchmark's TRAIN split only, ``bench.tasks.knowledge.train_facts``).  Three templates of the
  relation (LAMA + ParaRel) are drawn: context = the fact in the first, positives = the fact in
  the other two (paraphrases, as the release's back-translations), negatives = entity swaps:
  the positives' templates with the object replaced by another train-split object of the
  relation that is not an object of this subject.  Marks: the object (the fact-marked entity).

Nothing comes from an evaluation split: ToxiGen is not a suite benchmark
(``methods.finetune.config.check_training_files`` checks its files and the word lists), and facts are
train-split only (the eval half is what the knowledge benchmark scores).
"""
from __future__ import annotations

import difflib
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import PurePosixPath

from bench.data import DataRoot, read_jsonl, read_lines
from bench.errors import ConfigError, DataError
from bench.tasks import knowledge
from bench.tasks.knowledge import Fact
from methods.finetune.config import check_training_files
from methods.text.swap import Swapper

TOXIGEN = "toxigen/"
_WORD = re.compile(r"\w+(?:-\w+)*")
Span = tuple[int, int]


@dataclass(frozen=True)
class Source:
    id: str  # "group/<group>/<file line>/<item>" or "fact/<relation>/<uuid>"
    context: str  # the source text every target is conditioned on
    positives: tuple[str, ...]  # faithful, non-toxic targets (>= 2); CE is on the last
    negatives: tuple[str, ...]  # toxic or factually corrupted targets
    negative_kinds: tuple[str, ...]  # per negative: "toxic" or "entity_swap"
    marks: tuple[tuple[Span, ...], ...]  # per target (positives, then negatives): marked char spans

    @property
    def targets(self) -> tuple[str, ...]:
        return self.positives + self.negatives


def toxigen_files(data: DataRoot) -> dict[tuple[str, str], list[str]]:
    """{(kind, group): registered files} over every ToxiGen prompt and demonstrations file;
    kind is "neutral" or "hate"; group from the file name (``hate_muslim_sentences.txt`` ->
    ("hate", "muslim"))."""
    files: dict[tuple[str, str], list[str]] = defaultdict(list)
    for rel in sorted(data.files):
        if rel.startswith(TOXIGEN) and rel.endswith(".txt") and ("/prompts/" in rel or "/demonstrations/" in rel):
            stem = PurePosixPath(rel).stem.removesuffix("_1k").removesuffix("_sentences")
            kind, _, group = stem.partition("_")
            if kind not in ("neutral", "hate") or not group:
                raise DataError(f"{rel}: expected <neutral|hate>_<group> in the file name")
            files[kind, group].append(rel)
    if not files:
        raise DataError("no ToxiGen prompt or demonstrations files are registered (toxigen/prompts, toxigen/demonstrations)")
    return dict(files)


def statement_lists(path) -> list[list[str]]:
    """The statement lists of a ToxiGen file: one per prompt line ("- a\\n- b\\n-"; literal
    backslash-n), or, for a demonstrations file (no bullets), the whole file as one list."""
    lines = list(read_lines(path))
    if not any(line.lstrip().startswith("-") for line in lines):
        items = [line.strip() for line in lines if line.strip()]
        return [items] if items else []
    lists = []
    for line in lines:
        items = [s.strip().removeprefix("-").strip() for s in line.split("\\n")]
        if any(items):
            lists.append([s for s in items if s])
    if not lists:
        raise DataError(f"{path}: no '- statement' items")
    return lists


def bullet_list(items: list[str]) -> str:
    """Statements as the ToxiGen prompt writes them, ending with the bullet of the next one."""
    return "".join(f"- {s}\n" for s in items) + "-"


def attribute_spans(text: str, swapper: Swapper) -> tuple[Span, ...]:
    """Char spans of ``text``'s attribute words: the word runs that differ between ``text`` and
    its swap (a swap replaces each attribute entry in place, so the word alignment is exact)."""
    words = list(_WORD.finditer(text))
    swapped = [m.group().lower() for m in _WORD.finditer(swapper.swap(text, lambda m: m.group[(m.index + 1) % len(m.group)]))]
    spans = []
    matcher = difflib.SequenceMatcher(None, [m.group().lower() for m in words], swapped, autojunk=False)
    for op, i1, i2, _, _ in matcher.get_opcodes():
        if op != "equal" and i2 > i1:
            spans.append((words[i1].start(), words[i2 - 1].end()))
    return tuple(spans)


def jaccard(a: str, b: str) -> float:
    x, y = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return len(x & y) / len(x | y) if x | y else 0.0


def nearest(text: str, pool: list[str], k: int) -> list[str]:
    """The ``k`` statements of ``pool`` nearest to ``text`` by word Jaccard (ties: pool order)."""
    order = sorted(range(len(pool)), key=lambda i: (-jaccard(text, pool[i]), i))
    return [pool[i] for i in order[:k]]


def group_sources(data: DataRoot, swapper: Swapper, rng: random.Random, n_negatives: int,
                  context_items: int) -> tuple[list[Source], dict[str, int]]:
    files = toxigen_files(data)
    counts: Counter = Counter()
    sources, seen = [], set()
    for (kind, group), rels in sorted(files.items()):
        if kind != "neutral":
            continue
        hate = list(dict.fromkeys(s for rel in files.get(("hate", group), []) for items in statement_lists(data.path(rel))
                                  for s in items))
        if not hate:
            continue
        near: dict[str, list[str]] = {}
        for rel in rels:
            for line, items in enumerate(statement_lists(data.path(rel))):
                for i, text in enumerate(items):
                    counts["toxigen_statements"] += 1
                    context = bullet_list([items[(i - k) % len(items)] for k in range(min(context_items, len(items) - 1), 0, -1)])
                    if (context, text) in seen or not swapper.contains(text):
                        continue
                    seen.add((context, text))
                    swapped = swapper.counterfactual(text, rng)
                    if text not in near:
                        near[text] = nearest(text, hate, n_negatives)
                    negatives = tuple(near[text])
                    targets = (text, swapped, *negatives)
                    sources.append(Source(f"group/{group}/{PurePosixPath(rel).parent.name}/{line}/{i}", context,
                                          (text, swapped), negatives, ("toxic",) * len(negatives),
                                          tuple(attribute_spans(t, swapper) for t in targets)))
                    counts[f"group_sources_{group}"] += 1
                    counts["positives_original"] += 1
                    counts["positives_counterfactual"] += 1
                    counts["negatives_toxic"] += len(negatives)
        counts["unique_neutral_statements_with_attribute_words"] += len(near)
    return sources, dict(counts)


def object_span(template: str, fact: Fact, obj: str) -> tuple[str, Span]:
    """The fact rendered with ``obj`` and the char span of ``obj`` in it."""
    marked = knowledge.render(fact, template, "\0")
    start = marked.index("\0")
    return marked.replace("\0", obj), (start, start + len(obj))


def load_train_facts(data: DataRoot) -> tuple[dict[str, list[Fact]], dict[str, list[str]]]:
    """Knowledge TRAIN-split facts and templates (LAMA first, then ParaRel) per relation."""
    facts: dict[str, list[Fact]] = defaultdict(list)
    for f in knowledge.train_facts(data):
        facts[f.relation].append(f)
    templates = {}
    for r, lama in knowledge.templates(data).items():
        patterns = f"lama/pararel_patterns/{r}.jsonl"
        extra = [p["pattern"] for p in read_jsonl(data.path(patterns))] if patterns in data.files else []
        templates[r] = list(dict.fromkeys(" ".join(t.split()) for t in [lama, *extra]))
    return dict(facts), templates


def fact_sources(data: DataRoot, n: int, rng: random.Random, n_negatives: int) -> tuple[list[Source], dict[str, int]]:
    facts, templates = load_train_facts(data)
    usable = [f for r in sorted(facts) if len(templates.get(r, [])) >= 3 for f in facts[r]]
    objects, known = knowledge.object_index([f for r in facts for f in facts[r]])
    sources, counts = [], Counter()
    for f in rng.sample(usable, min(n, len(usable))):
        wrong = [o for o in objects[f.relation] if o not in known[f.relation, f.subject]]
        if not wrong:
            continue
        first, *paraphrases = rng.sample(templates[f.relation], 3)
        positives = [object_span(t, f, f.obj) for t in paraphrases]
        negatives = [object_span(paraphrases[i % 2], f, o) for i, o in enumerate(rng.sample(wrong, min(n_negatives, len(wrong))))]
        sources.append(Source(f"fact/{f.relation}/{f.uuid}", knowledge.render(f, first),
                              tuple(t for t, _ in positives), tuple(t for t, _ in negatives),
                              ("entity_swap",) * len(negatives), tuple((s,) for _, s in positives + negatives)))
        counts["positives_fact_paraphrase"] += len(positives)
        counts["negatives_entity_swap"] += len(negatives)
    return sources, dict(counts)


def build_sources(data: DataRoot, swapper: Swapper, seed: int, fact_ratio: float = 1.0, n_negatives: int = 2,
                  context_items: int = 2) -> tuple[list[Source], dict[str, int]]:
    """Group sources, then ``round(fact_ratio * #group sources)`` fact sources, seeded; and the counts."""
    rng = random.Random(seed)
    check_training_files(sorted(rel for rels in toxigen_files(data).values() for rel in rels),
                         "method (contrastive ToxiGen files)")
    by_group, group_counts = group_sources(data, swapper, rng, n_negatives, context_items)
    if not by_group:
        raise ConfigError("method.bias_type: no ToxiGen neutral statement holds an attribute word of this bias type")
    by_fact, fact_counts = fact_sources(data, round(fact_ratio * len(by_group)), rng, n_negatives)
    counts = {"group_sources": len(by_group), "fact_sources": len(by_fact), **group_counts, **fact_counts}
    return by_group + by_fact, counts
