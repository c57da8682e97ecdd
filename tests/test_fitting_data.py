"""No benchmark text in the fitting data of INLP and SentenceDebias, and the evaluation-set guard
(derived from each benchmark's ``DATA_FILES``) covering every file a benchmark module names.

A cross-check of the declarations: the files are also derived from the modules' source: every string literal
of every ``bench/tasks/*.py`` (module constants such as FILE / FILES / SUBSETS / CORPUS, and
f-string paths such as SEAT's ``f"bias_bench/seat/{test}.jsonl"``, read as a glob) is matched
against the registered data files (``bench/data_files.json``); a literal naming a folder covers
the files under it.  A new benchmark module is covered without editing this test."""
from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

from bench.data import load_manifest
from bench.errors import ConfigError
from methods.attribute_sentences import CORPORA, corpus_files
from methods.finetune.config import check_training_files

TASKS = Path(__file__).resolve().parent.parent / "bench" / "tasks"
REGISTERED = sorted(load_manifest())
# Files a benchmark module names that are not its evaluation data: vocabularies (the collapse
# diagnostic's word classes, which NC3 shares by design; WinoBias's occupation lists and readme) and
# the WinoBias dev split (its ``split`` option can read it; it evaluates on test; methods may fit on dev).
NOT_EVALUATION = {"fairness_nc_words/adept/male.txt", "fairness_nc_words/adept/female.txt",
                  "winobias/data/male_occupations.txt", "winobias/data/female_occupations.txt", "winobias/data/Readme.md",
                  *(f"winobias/data/{s}_stereotyped_type{t}.txt.dev" for s in ("pro", "anti") for t in (1, 2))}


def literal_patterns(source: str) -> set[str]:
    """Every string literal of ``source``; an f-string becomes a glob (``*`` per placeholder)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.JoinedStr):
            out.add("".join(v.value if isinstance(v, ast.Constant) else "*" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            out.add(node.value)
    return out


def files_named(patterns: set[str], registered: list[str]) -> set[str]:
    """Registered files a pattern names: equal, under the named folder, or matching a glob whose
    literal start names a folder (``f"{FOLDER}/{r}.jsonl"`` -> ``*/*.jsonl`` names nothing; the
    constant FOLDER names its files)."""
    return {f for f in registered for p in patterns if "/" in p.split("*")[0]
            and (f == p or f.startswith(p.rstrip("/") + "/") or ("*" in p and fnmatch.fnmatch(f, p)))}


def benchmark_files() -> dict[str, set[str]]:
    return {path.stem: files_named(literal_patterns(path.read_text()), REGISTERED)
            for path in sorted(TASKS.glob("*.py"))}


def test_the_derivation_finds_each_benchmarks_files():
    files = benchmark_files()
    # one hand-checked file per kind of declaration: FILE, FILES dict, dict of tuples, f-string, folder
    assert "stereoset/stereoset_dev_full.jsonl" in files["stereoset"]
    assert "truthfulqa/v1/mc_task.json" in files["truthfulqa"]
    assert "bias_bench/crows/crows_pairs_anonymized.csv" in files["crows_pairs"]
    assert "bias_bench/seat/weat6.jsonl" in files["seat"]
    assert "lama/trex_lms_vocab/P19.jsonl" in files["knowledge"]
    assert "realtoxicityprompts/decodingtrust_toxic.jsonl" in files["toxicity"]
    assert files_named({"a/b.txt", "a/c", "x/*.json", "*/*.csv", "nodir"},
                       ["a/b.txt", "a/c/d.txt", "a/cd.txt", "x/y.json", "z/w.csv"]) == {"a/b.txt", "a/c/d.txt", "x/y.json"}
    assert not files["knowledge"] & {"bbq/data/Age.jsonl", "stereoset/stereoset_dev_full.jsonl"}


def test_the_guard_covers_every_benchmark_file():
    uncovered = {}
    for bench, files in benchmark_files().items():
        for rel in sorted(files - NOT_EVALUATION):
            try:
                check_training_files([rel])
                uncovered.setdefault(bench, []).append(rel)
            except ConfigError:
                pass
    assert not uncovered, f"benchmark modules name these files but their DATA_FILES do not declare them: {uncovered}"


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_no_fitting_corpus_is_benchmark_data(corpus):
    everything = set().union(*benchmark_files().values()) - NOT_EVALUATION
    assert not set(CORPORA[corpus]) & everything
    check_training_files(list(CORPORA[corpus]), "method.corpora")  # the guard accepts it
    assert set(CORPORA[corpus]) <= set(REGISTERED)  # and every file is registered (url + sha256)
    assert set(corpus_files([corpus])) - set(CORPORA[corpus]) == {"bias_bench/bias_attribute_words.json"}
