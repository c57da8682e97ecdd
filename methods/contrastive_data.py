"""Offline, seeded construction of the contrastive examples (Korkmaz et al. 2025 adapted).

A *source* groups the examples that are contrasted with each other (InfoNCE runs within a source):

- group source (one per unique neutral ToxiGen statement about a group of ``bias_type``):
  positives = the neutral statement and its counterfactual (attribute words swapped with the
  CDA word lists; when it has none, the next neutral statement of the group instead);
  negatives = ``n_negatives`` hateful statements about the same group (seeded draw).
  ToxiGen ``prompts/{neutral,hate}_<group>_1k.txt``: each line is one prompt of 4-6 items
  "- statement" joined by the two characters backslash-n; the 1,000 lines repeat a few dozen
  unique statements, which are deduplicated in file order.
- fact source (``fact_ratio`` per group source): a LAMA T-REx fact of the knowledge benchmark's
  TRAIN split (``bench.tasks.knowledge.train_facts``: sha256(uuid) even; only the odd half is
  scored) rendered with two templates of its relation (LAMA + ParaRel paraphrases) as
  positives (+ their counterfactuals when they hold an attribute word); negatives = the same
  templates with the object replaced by ``n_negatives`` other train-split objects of the
  relation that are not an object of this subject.

Nothing comes from an evaluation split: ToxiGen is not in the suite, and facts are train-split only.
"""
from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from bench.data import DataRoot, read_jsonl, read_lines
from bench.errors import ConfigError, DataError
from bench.tasks import knowledge
from bench.tasks.knowledge import Fact
from methods.counterfactual import Swapper

GROUPS = {"gender": ["women"],
          "race": ["asian", "black", "chinese", "latino", "mexican", "middle_east", "native_american"],
          "religion": ["jewish", "muslim"]}
TOXIGEN = "toxigen/prompts/{kind}_{group}_1k.txt"


@dataclass(frozen=True)
class Source:
    id: str  # "group/<group>/<i>" or "fact/<relation>/<uuid>"
    positives: tuple[str, ...]  # faithful, non-toxic statements (>= 2)
    negatives: tuple[str, ...]  # toxic or factually corrupted statements


def data_files(data: DataRoot, bias_type: str, groups: list[str] | None) -> list[str]:
    """Every file the examples are built from (their checksums key the checkpoint)."""
    facts = [rel for rel in data.files if rel.startswith(("lama/trex_lms_vocab/", "lama/pararel_patterns/"))]
    toxigen = [TOXIGEN.format(kind=k, group=g) for g in (groups or GROUPS[bias_type]) for k in ("neutral", "hate")]
    return [knowledge.TEMPLATES, *sorted(facts), *toxigen]


def toxigen_statements(path) -> list[str]:
    items = []
    for line in read_lines(path):
        for item in line.split("\\n"):
            item = item.strip().removeprefix("-").strip()
            if item:
                items.append(item)
    if not items:
        raise DataError(f"{path}: no '- statement' items")
    return list(dict.fromkeys(items))


def render(template: str, subject: str, obj: str) -> str:
    text = template.replace("[X]", subject).replace("[Y]", obj)
    return " ".join(text.split()).replace(" .", ".").replace(" ,", ",")


def group_sources(data: DataRoot, groups: list[str], swapper: Swapper, rng: random.Random,
                  n_negatives: int) -> tuple[list[Source], dict[str, int]]:
    sources, counts = [], defaultdict(int)
    for group in groups:
        neutral = toxigen_statements(data.path(TOXIGEN.format(kind="neutral", group=group)))
        hate = toxigen_statements(data.path(TOXIGEN.format(kind="hate", group=group)))
        for i, text in enumerate(neutral):
            swapped = swapper.counterfactual(text, rng)
            if swapped != text:
                second, kind = swapped, "positives_counterfactual"
            elif len(neutral) > 1:
                second, kind = neutral[(i + 1) % len(neutral)], "positives_other_neutral"
            else:
                continue
            negatives = tuple(rng.sample(hate, min(n_negatives, len(hate))))
            sources.append(Source(f"group/{group}/{i}", (text, second), negatives))
            counts["positives_neutral"] += 1
            counts[kind] += 1
            counts["negatives_toxic"] += len(negatives)
    return sources, dict(counts)


def load_train_facts(data: DataRoot) -> tuple[dict[str, list[Fact]], dict[str, list[str]]]:
    """Knowledge TRAIN-split facts and templates (LAMA first, then ParaRel) per relation."""
    facts: dict[str, list[Fact]] = defaultdict(list)
    for f in knowledge.train_facts(data):
        facts[f.relation].append(f)
    templates = {}
    for r, lama in knowledge.templates(data).items():
        patterns = f"lama/pararel_patterns/{r}.jsonl"
        extra = [p["pattern"] for p in read_jsonl(data.path(patterns))] if patterns in data.files else []
        templates[r] = list(dict.fromkeys(render(t, "[X]", "[Y]") for t in [lama, *extra]))
    return dict(facts), templates


def fact_sources(data: DataRoot, n: int, swapper: Swapper, rng: random.Random,
                 n_negatives: int) -> tuple[list[Source], dict[str, int]]:
    facts, templates = load_train_facts(data)
    usable = [f for r in sorted(facts) if len(templates[r]) >= 2 for f in facts[r]]
    objects, known = knowledge.object_index([f for r in facts for f in facts[r]])
    sources, counts = [], defaultdict(int)
    for f in rng.sample(usable, min(n, len(usable))):
        wrong = [o for o in objects[f.relation] if o not in known[f.relation, f.subject]]
        if not wrong:
            continue
        tpls = rng.sample(templates[f.relation], 2)
        positives = [render(t, f.subject, f.obj) for t in tpls]
        swapped = [s for s in (swapper.counterfactual(p, rng) for p in positives) if s not in positives]
        corrupt = rng.sample(wrong, min(n_negatives, len(wrong)))
        negatives = tuple(render(tpls[i % 2], f.subject, o) for i, o in enumerate(corrupt))
        sources.append(Source(f"fact/{f.relation}/{f.uuid}", tuple(positives + swapped), negatives))
        counts["positives_fact"] += len(positives)
        counts["positives_fact_counterfactual"] += len(swapped)
        counts["negatives_corrupted_fact"] += len(negatives)
    return sources, dict(counts)


def build_sources(data: DataRoot, bias_type: str, swapper: Swapper, seed: int, groups: list[str] | None = None,
                  fact_ratio: float = 1.0, n_negatives: int = 2) -> tuple[list[Source], dict[str, int]]:
    """Group sources, then ``round(fact_ratio * #group sources)`` fact sources; and the counts."""
    groups = groups or GROUPS[bias_type]
    unknown = [g for g in groups if TOXIGEN.format(kind="neutral", group=g) not in data.files]
    if unknown:
        raise ConfigError(f"method.groups: no ToxiGen neutral/hate files for {unknown}")
    rng = random.Random(seed)
    by_group, group_counts = group_sources(data, groups, swapper, rng, n_negatives)
    by_fact, fact_counts = fact_sources(data, round(fact_ratio * len(by_group)), swapper, rng, n_negatives)
    counts = {"group_sources": len(by_group), "fact_sources": len(by_fact), **group_counts, **fact_counts}
    return by_group + by_fact, counts
