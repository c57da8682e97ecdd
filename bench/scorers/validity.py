"""Validity of the toxicity scorers on held-out labelled data: ROC AUC and calibration.

    python -m bench.scorers.validity [--scorers embedding_lr profanity_check] [--out FILE.json]

Datasets (toxic = 1):

- ``davidson``: the 20% held-out split of the Davidson et al. (2017) tweets that
  ``embedding_lr`` is measured on (``embedding_lr.heldout_split`` with the default
  ``HeadConfig``: stratified, seed 0; 4,957 tweets, 83% toxic), labels as ``embedding_lr``
  (hate speech or offensive language = toxic), tweets cleaned as ``embedding_lr.clean``.
  Not held out for ``profanity_check``: its author's write-up (victorzhou.com, "Building a
  Better Profanity Detection Library with scikit-learn") names these tweets as part of its
  training data, so its Davidson numbers are optimistic (``NOT_HELD_OUT``).
- ``toxigen``: the human-written ToxiGen demonstrations (Hartvigsen et al. 2022),
  ``toxigen/demonstrations/<axis>/{hate,neutral}_<group>*.txt``: a ``hate_`` line is toxic,
  a ``neutral_`` line is not; the group is the file's target group; each (text, label) counts
  once (``neutral_muslim.txt`` repeats ``neutral_muslim_sentences.txt``).  Mostly implicit hate
  without profanity; no scorer here was trained on it.  Per-group AUC is reported beside the
  pooled one.

Measures (scores in [0, 1]):

- ``auc``: ROC AUC (ties count one half), threshold-free ranking quality;
- ``ece``: expected calibration error over ``BINS`` = 10 equal-width score bins,
  sum over bins of (share of texts in the bin) x |share toxic - mean score|;
- ``brier``: mean squared error of the score against the 0/1 label.

Calibration depends on the base rate: ``embedding_lr`` is fit with balanced class weights
(a score of 0.5 means "as likely toxic as not" under equal priors), so on Davidson's 83% toxic
held-out split its scores are low by design.  ``best`` ranks scorers by mean AUC over the
datasets held out for all of them (here: ToxiGen), the toxicity benchmark's default scorer
(``bench.scorers.DEFAULT_SCORER``) is that scorer, and a test keeps the two equal on the
committed ``validity.json``.  Scorers that cannot run offline (``hf`` without a
local model, ``detoxify``, ``perspective``) are listed as not measured with the reason.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from bench.data import DataRoot
from bench.errors import DataError, TaxbenchError

from bench.scorers import SCORERS, ToxicityScorer, build_scorer, score_texts

BINS = 10  # equal-width score bins of the expected calibration error
NOT_HELD_OUT = {("profanity_check", "davidson")}  # (scorer, dataset) pairs where the dataset was training data
DEMONSTRATIONS = "toxigen/demonstrations/"
_DEMO_FILE = re.compile(r"(hate|neutral)_(.+?)(?:_sentences)?\.txt$")


# ------------------------------------------------------------------------ measures
def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC of ``scores`` against 0/1 ``labels`` (NaN when only one class is present)."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels)
    return float(roc_auc_score(labels, scores)) if 0 < labels.sum() < len(labels) else float("nan")


def expected_calibration_error(labels: Sequence[int], scores: Sequence[float], bins: int = BINS) -> float:
    """Sum over ``bins`` equal-width bins of [0, 1] (right-closed, the first closed: the bins of
    ``sklearn.calibration.calibration_curve(strategy="uniform")``) of
    (texts in the bin / all texts) * |share of toxic texts in the bin - mean score in the bin|."""
    labels, scores = np.asarray(labels, dtype=float), np.asarray(scores, dtype=float)
    which = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], scores)
    total = 0.0
    for b in np.unique(which):
        inside = which == b
        total += inside.mean() * abs(labels[inside].mean() - scores[inside].mean())
    return float(total)


def brier(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Mean of (score - label)^2."""
    return float(np.mean((np.asarray(scores, dtype=float) - np.asarray(labels, dtype=float)) ** 2))


def measure(labels: Sequence[int], scores: Sequence[float]) -> dict[str, float]:
    return {"n": len(labels), "toxic_share": float(np.mean(labels)), "auc": roc_auc(labels, scores),
            "ece": expected_calibration_error(labels, scores), "brier": brier(labels, scores)}


# ------------------------------------------------------------------------ datasets
def davidson_heldout(data: DataRoot) -> tuple[list[str], np.ndarray]:
    """(cleaned tweets, labels) of embedding_lr's held-out split."""
    from bench.scorers.embedding_lr import DATA_FILE, HeadConfig, heldout_split, load_tweets, subsample

    cfg = HeadConfig()
    texts, labels = subsample(*load_tweets(data.path(DATA_FILE)), cfg)
    _, test = heldout_split(labels, cfg)
    return [texts[i] for i in test], labels[test]


def toxigen_demonstrations(data: DataRoot) -> list[dict[str, Any]]:
    """``{"text", "label", "group"}`` per distinct (text, label) of the demonstration files."""
    rels = sorted(r for r in data.files if r.startswith(DEMONSTRATIONS))
    if not rels:
        raise DataError(f"no {DEMONSTRATIONS}* files are declared in the data manifest")
    seen, rows = set(), []
    for rel in rels:
        match = _DEMO_FILE.search(rel.rsplit("/", 1)[-1])
        if match is None:
            raise DataError(f"{rel}: expected a name hate_<group>[_sentences].txt or neutral_<group>[_sentences].txt")
        label, group = int(match[1] == "hate"), match[2]
        for line in data.path(rel).read_text(encoding="utf-8").splitlines():
            text = line.replace("\\n", " ").strip()  # some lines end in a literal backslash-n
            if text and (text, label) not in seen:
                seen.add((text, label))
                rows.append({"text": text, "label": label, "group": group})
    return rows


# ------------------------------------------------------------------------- running
def validate(scorer: ToxicityScorer, datasets: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Measures of ``scorer`` on each dataset (``{"texts", "labels", "groups"?}``), with per-group
    AUCs where groups are given and the scoring seconds."""
    out = {}
    for name, ds in datasets.items():
        start = time.perf_counter()
        scores = score_texts(scorer, ds["texts"])
        result = {**measure(ds["labels"], scores), "seconds": round(time.perf_counter() - start, 2)}
        if "groups" in ds:
            groups = np.asarray(ds["groups"])
            result["group_auc"] = {g: roc_auc(np.asarray(ds["labels"])[groups == g], np.asarray(scores)[groups == g])
                                   for g in sorted(set(ds["groups"]))}
        out[name] = result
    return out


def load_datasets(data: DataRoot) -> dict[str, dict[str, Any]]:
    texts, labels = davidson_heldout(data)
    demos = toxigen_demonstrations(data)
    return {"davidson": {"texts": texts, "labels": labels.tolist()},
            "toxigen": {"texts": [r["text"] for r in demos], "labels": [r["label"] for r in demos],
                        "groups": [r["group"] for r in demos]}}


def best(results: dict[str, Any]) -> str:
    """The measured scorer with the highest mean ROC AUC over the datasets held out for every
    measured scorer (a dataset in some scorer's training data would favour that scorer)."""
    measured = {name: res["datasets"] for name, res in results.items() if "datasets" in res}
    if not measured:
        raise TaxbenchError("no scorer was measured")
    fair = [ds for ds in set.intersection(*(set(d) for d in measured.values()))
            if not any((name, ds) in NOT_HELD_OUT for name in measured)]
    if not fair:
        raise TaxbenchError("no dataset is held out for every measured scorer")
    return max(measured, key=lambda name: np.mean([measured[name][ds]["auc"] for ds in fair]))


def table(results: dict[str, Any]) -> str:
    """Markdown: one row per scorer x dataset."""
    lines = ["| scorer | dataset | held out | n | toxic share | ROC AUC | ECE (10 bins) | Brier | seconds |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for scorer, res in results.items():
        if "not_measured" in res:
            lines.append(f"| {scorer} | – | | | | not measured here: {res['not_measured']} | | | |")
            continue
        for ds, m in res["datasets"].items():
            held = "no (training data)" if (scorer, ds) in NOT_HELD_OUT else "yes"
            lines.append(f"| {scorer} | {ds} | {held} | {m['n']:,} | {m['toxic_share']:.3f} | {m['auc']:.3f} | "
                         f"{m['ece']:.3f} | {m['brier']:.3f} | {m['seconds']:.1f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scorers.validity", description=__doc__.split("\n")[0])
    parser.add_argument("--scorers", nargs="+", default=list(SCORERS), choices=SCORERS)
    parser.add_argument("--hf-model", default=None, help="hub id or folder of a sequence classifier for scorer hf")
    parser.add_argument("--data-root", default=None, help="data folder (default: TAXBENCH_DATA)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    data = DataRoot(args.data_root, download=False)
    try:
        datasets = load_datasets(data)
    except TaxbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    for name in args.scorers:
        try:
            scorer = build_scorer(name, data, data.cache_dir, model=args.hf_model)
        except TaxbenchError as exc:  # a scorer that cannot run here (no model, no package, no key)
            results[name] = {"not_measured": str(exc)}
            continue
        results[name] = {"key": scorer.key, "info": scorer.info, "datasets": validate(scorer, datasets)}
    print(table(results))
    if any("datasets" in res for res in results.values()):
        print(f"best-measured scorer (mean AUC on data held out for every scorer): {best(results)}")
    for name, res in results.items():
        for ds, m in res.get("datasets", {}).items():
            if "group_auc" in m:
                print(f"{name} {ds} AUC per group: " + ", ".join(f"{g} {a:.3f}" for g, a in m["group_auc"].items()))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
