"""Knowledge retention on LAMA T-REx facts (Petroni et al. 2019; ParaRel-filtered facts,
41 relations): does the model still rank the true object of a held-out fact first?

Split: a fact belongs to the training split when sha256(uuid), read as an integer, is
even, else to the eval split (about half each): deterministic, independent of seeds and
of which relations are loaded.  Fine-tuning methods take their facts from
``train_facts(data)`` (or test ``split_of``); only eval facts are scored.

Scoring: the LAMA template of the fact's relation (e.g. "[X] was born in [Y] .") is
rendered as a sentence ("Allan Peiper was born in Alexandra.").  Each candidate object
fills [Y]; context = the text before [Y], continuation = the object and the rest of the
sentence.  The context is common to all candidates, so ranking by the continuation's
log-likelihood ranks whole sentences, which also handles the 6 relations whose [Y] is
not last (e.g. "[X] plays [Y] music.").  Candidates = the true object + up to
``num_candidates - 1`` distinct other objects of the same relation (seeded per fact),
never an object known true for the same subject.  A fact is correct when no distractor
scores strictly higher (total log-likelihood; ties go to the true object).
"""
from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Sequence

from bench.data import DataRoot, jsonl_rows
from bench.errors import ConfigError, DataError
from bench.data.hf_datasets import load_file
from bench.api.lm import Loglikelihood, Request, ScoringLM
from bench.api.metrics import MetricSpec, aggregate
from bench.api import BenchmarkResult
from bench.tasks.common import check_choice, check_config, keep_only, require_text, stratified_sample

TEMPLATES = "lama/relations.jsonl"
FACTS_DIR = "lama/trex_lms_vocab"
SPLIT_RULE = "train iff int(sha256(uuid)) is even"


@dataclass(frozen=True)
class Fact:
    uuid: str  # LAMA's fact id
    relation: str  # Wikidata property, e.g. "P19"
    subject: str  # fills [X]
    obj: str  # fills [Y]


def split_of(uuid: str) -> str:
    """"train" or "eval": ``SPLIT_RULE``."""
    return "train" if int(hashlib.sha256(uuid.encode()).hexdigest(), 16) % 2 == 0 else "eval"


def render(fact: Fact, template: str, obj: str | None = None) -> str:
    """The template as a sentence: [X] = subject, [Y] = ``obj`` (default the true object)."""
    return _natural(template).replace("[X]", fact.subject).replace("[Y]", fact.obj if obj is None else obj)


def _natural(template: str) -> str:
    return template.replace(" .", ".").strip()


def load_templates(path: Path) -> dict[str, str]:
    templates = {}
    for line_no, row in jsonl_rows(path):
        where = f"{path}, line {line_no}"
        require_text(row, ("relation", "template"), where)
        if row["template"].count("[X]") != 1 or row["template"].count("[Y]") != 1:
            raise DataError(f"{where}: template {row['template']!r} needs exactly one [X] and one [Y]")
        templates[row["relation"]] = row["template"]
    return templates


def load_facts(path: Path, relation: str) -> list[Fact]:
    facts = []
    for line_no, row in jsonl_rows(path):
        require_text(row, ("sub_label", "obj_label", "uuid"), f"{path}, line {line_no}")
        facts.append(Fact(row["uuid"], relation, row["sub_label"], row["obj_label"]))
    return facts


def relations(data: DataRoot) -> list[str]:
    """Relations with a declared fact file, e.g. ["P1001", "P101", ...]."""
    prefix = FACTS_DIR + "/"
    return sorted(Path(p).stem for p in data.files if p.startswith(prefix) and p.endswith(".jsonl"))


def all_facts(data: DataRoot, only: Sequence[str] | None = None) -> list[Fact]:
    """Every fact of the relations ``only`` (None: all), both splits, in file order."""
    return [f for r in (only or relations(data)) for f in load_facts(data.path(f"{FACTS_DIR}/{r}.jsonl"), r)]


def templates(data: DataRoot) -> dict[str, str]:
    return load_templates(data.path(TEMPLATES))


def train_facts(data: DataRoot) -> list[Fact]:
    """The training split: what fine-tuning methods may use (never scored)."""
    return [f for f in all_facts(data) if split_of(f.uuid) == "train"]


def eval_facts(data: DataRoot) -> list[Fact]:
    return [f for f in all_facts(data) if split_of(f.uuid) == "eval"]


def object_index(facts: Sequence[Fact]) -> tuple[dict[str, list[str]], dict[tuple[str, str], set[str]]]:
    """(sorted objects of each relation, objects true for each (relation, subject))."""
    objects: dict[str, set[str]] = defaultdict(set)
    known: dict[tuple[str, str], set[str]] = defaultdict(set)
    for f in facts:
        objects[f.relation].add(f.obj)
        known[f.relation, f.subject].add(f.obj)
    return {r: sorted(o) for r, o in objects.items()}, dict(known)


def candidates(fact: Fact, objects: Sequence[str], known: set[str], k: int, seed: int) -> list[str]:
    """[true object] + up to k - 1 distractors from ``objects`` (the relation's, sorted) that are
    not in ``known`` (objects true for the subject), seeded by (seed, uuid)."""
    pool = [o for o in objects if o not in known and o != fact.obj]
    return [fact.obj] + random.Random(f"{seed}:{fact.uuid}").sample(pool, min(k - 1, len(pool)))


def build_requests(fact: Fact, template: str, objects: Sequence[str]) -> list[Request]:
    """One request per object: (text before [Y], object + rest of the sentence)."""
    filled = _natural(template).replace("[X]", fact.subject)
    before, after = filled.split("[Y]")
    return [Request(before, obj + after) for obj in objects]


def score(answers: Sequence[Sequence[Loglikelihood]]) -> list[dict]:
    """Per fact (answers for [true, distractors...]): rank of the true object, correct, reciprocal rank."""
    out = []
    for row in answers:
        true = row[0].logprob
        rank = 1 + sum(a.logprob > true for a in row[1:])
        out.append({"rank": rank, "correct": float(rank == 1), "rr": 1.0 / rank, "n_candidates": len(row)})
    return out


SPECS = [
    MetricSpec("knowledge/acc", "knowledge", "higher", "LAMA T-REx held-out facts: share where the true object "
               "outranks every distractor by log-likelihood", field="correct"),
    MetricSpec("knowledge/mrr", "knowledge", "higher", "LAMA T-REx held-out facts: mean reciprocal rank of the "
               "true object among the candidates", field="rr"),
]


@dataclass
class Knowledge:
    """Cloze-style factual recall on the eval split of LAMA T-REx."""

    n: int | None = None  # eval facts, stratified by relation (None: the whole eval split, ~14.7k)
    seed: int = 0  # seed of the fact sample and of the distractors
    num_candidates: int = 10  # objects ranked per fact (true + distractors); fewer where a relation has fewer
    relations: list[str] | None = None  # keep only these relations (e.g. [P19, P36]); None: all 41

    name = "knowledge"
    # both splits live in these files (SPLIT_RULE): methods read the train half through ``split`` only
    DATA_FILES: ClassVar[tuple[str, ...]] = (TEMPLATES, FACTS_DIR + "/")

    def __post_init__(self) -> None:
        check_config(self)
        if self.num_candidates < 2:
            raise ConfigError(f"benchmarks.{self.name}.num_candidates must be >= 2, got {self.num_candidates}")

    def evaluate(self, lm: ScoringLM, data: DataRoot) -> BenchmarkResult:
        tmpl = templates(data)
        facts = all_facts(data, self._relations(data))
        missing = sorted({f.relation for f in facts} - set(tmpl))
        if missing:
            raise DataError(f"{data.path(TEMPLATES)}: no template for relation(s) {missing}")
        objects, known = object_index(facts)
        chosen = stratified_sample([f for f in facts if split_of(f.uuid) == "eval"], self.n, self.seed,
                                   key=lambda f: f.relation)
        cands = [candidates(f, objects[f.relation], known[f.relation, f.subject], self.num_candidates, self.seed)
                 for f in chosen]
        requests = [build_requests(f, tmpl[f.relation], objs) for f, objs in zip(chosen, cands)]
        flat = lm.loglikelihood([r for rs in requests for r in rs])
        answers, start = [], 0
        for rs in requests:
            answers.append(flat[start:start + len(rs)])
            start += len(rs)
        records = [{"id": f.uuid, "relation": f.relation, **rec} for f, rec in zip(chosen, score(answers))]
        return BenchmarkResult({s.key: aggregate(s, records) for s in SPECS}, SPECS, records, len(records),
                               info={"facts": FACTS_DIR, "templates": TEMPLATES, "split": SPLIT_RULE,
                                     "num_candidates": self.num_candidates})

    def _relations(self, data: DataRoot) -> list[str]:
        return keep_only(relations(data), lambda r: r, self.relations, f"benchmarks.{self.name}.relations")


def dataset(data: DataRoot, split: str = "eval"):
    """The facts of ``split`` (train | eval, ``SPLIT_RULE``) of every relation as a ``datasets.Dataset``
    with ``Fact``'s fields (uuid, relation, subject, obj), in ``all_facts`` order."""
    import datasets

    check_choice(split, ("train", "eval"), "split")
    parts = []
    for relation in relations(data):
        rows = load_file(data, f"{FACTS_DIR}/{relation}.jsonl")
        parts.append(rows.map(lambda r: {"uuid": r["uuid"], "relation": relation, "subject": r["sub_label"],
                                         "obj": r["obj_label"]}, remove_columns=rows.column_names))
    return datasets.concatenate_datasets(parts).filter(lambda r: split_of(r["uuid"]) == split)
