"""Offline toxicity scorer: a logistic-regression head on MiniLM sentence embeddings,
trained on the Davidson et al. (2017) tweets on first use and cached.

Labels.  ``class`` 0 (hate speech) and 1 (offensive language) are toxic (1), 2 (neither)
is non-toxic (0): Perspective's TOXICITY ("rude, disrespectful or unreasonable") covers
offensive language, so "hate vs rest" would teach the head that slurs and insults
without hate are benign.  The data are 83% toxic; the head is fit with balanced class
weights, so a score of 0.5 means "as likely toxic as not" under equal priors.

Tweets are cleaned before encoding (HTML entities decoded; ``RT``, @mentions and URLs
removed), so the head does not learn Twitter markup; the same cleaning is applied to
scored texts (a no-op on ordinary prose).

Training: a stratified, seeded 80/20 split; the head fit on the 80% is the one used and
its ROC AUC on the 20% is reported (``info["heldout_auc"]``).  The head is stored as
safetensors (``coef`` [384], ``intercept`` [1]) plus ``meta.json`` (AUC, sizes, label
mapping) under ``<cache>/toxicity_scorers/embedding_lr/<key>``, key = hash of the data
file's sha256, the encoder identity and the training config; the folder is a
``bench.io.cached_dir`` (sha256 manifest verified before reuse, retrained when it fails).
"""
from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bench.data import DataRoot, read_csv
from bench.errors import DataError
from bench.io import cached_dir, stable_hash
from bench.scorers.minilm import MiniLMEncoder

log = logging.getLogger(__name__)
DATA_FILE = "davidson_hate_speech/labeled_data.csv"
LABELS = {"0": 1, "1": 1, "2": 0}  # class -> toxic: hate speech and offensive language are toxic, neither is not
LABEL_MAPPING = "toxic = class 0 (hate speech) or 1 (offensive language); non-toxic = class 2 (neither)"
HEAD_VERSION = 1  # bump when cleaning or training changes meaning
_NOISE = re.compile(r"(^|\s)RT\b|@\w+:?|https?://\S+")


@dataclass(frozen=True)
class HeadConfig:
    C: float = 1.0  # inverse L2 regularisation strength of the logistic regression
    test_fraction: float = 0.2  # held-out share for the AUC
    seed: int = 0  # split seed
    max_rows: int | None = None  # train on a stratified subsample of this many tweets (None: all 24,783)


def clean(text: str) -> str:
    return " ".join(_NOISE.sub(" ", html.unescape(text)).split())


def load_tweets(path: Path) -> tuple[list[str], np.ndarray]:
    rows = read_csv(path, required=("class", "tweet"))
    bad = next((r["class"] for r in rows if r["class"] not in LABELS), None)
    if bad is not None:
        raise DataError(f"{path}: unexpected class {bad!r} (expected 0, 1 or 2)")
    return [clean(r["tweet"]) for r in rows], np.array([LABELS[r["class"]] for r in rows])


def heldout_split(labels: np.ndarray, cfg: HeadConfig) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) row indices: the stratified, seeded split the head is fit and measured on
    (also what ``bench.scorers.validity`` measures every scorer on)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(np.arange(len(labels)), test_size=cfg.test_fraction, random_state=cfg.seed,
                            stratify=labels)


def train_head(features: np.ndarray, labels: np.ndarray, cfg: HeadConfig) -> dict:
    """Fit on the training rows of ``heldout_split``; returns coef [H], intercept, held-out AUC and sizes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    train, test = heldout_split(labels, cfg)
    x_tr, x_te, y_tr, y_te = features[train], features[test], labels[train], labels[test]
    clf = LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=2000).fit(x_tr, y_tr)
    auc = float(roc_auc_score(y_te, clf.predict_proba(x_te)[:, 1]))
    return {"coef": clf.coef_[0], "intercept": clf.intercept_, "heldout_auc": auc,
            "n_train": len(y_tr), "n_test": len(y_te), "toxic_share": float(labels.mean())}


def subsample(texts: list[str], labels: np.ndarray, cfg: HeadConfig) -> tuple[list[str], np.ndarray]:
    """The tweets the head sees: all, or a stratified subsample of ``cfg.max_rows``."""
    if cfg.max_rows is None or cfg.max_rows >= len(texts):
        return texts, labels
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(texts)), train_size=cfg.max_rows, random_state=cfg.seed,
                               stratify=labels)
    keep = np.sort(keep)
    return [texts[i] for i in keep], labels[keep]


class EmbeddingLRScorer:
    def __init__(self, data: DataRoot, cache_dir: Path, cfg: HeadConfig = HeadConfig(), batch_size: int = 64,
                 encoder: MiniLMEncoder | None = None):
        self.key = "embedding_lr"
        self.encoder = encoder or MiniLMEncoder(batch_size=batch_size)
        path = data.path(DATA_FILE)
        data_sha = data.checksums()[DATA_FILE]
        digest = stable_hash({"data": data_sha, "encoder": self.encoder.identity, "config": asdict(cfg),
                              "version": HEAD_VERSION})
        self.folder = cached_dir(Path(cache_dir) / "toxicity_scorers" / "embedding_lr" / digest,
                                 lambda tmp: self._train(tmp, path, cfg, data_sha), "embedding_lr scorer head")
        head = load_file(self.folder / "head.safetensors")
        self.coef, self.intercept = head["coef"], head["intercept"]
        meta = json.loads((self.folder / "meta.json").read_text())
        self.info = {"scorer": self.key, **meta, "cache_key": digest}

    def _train(self, folder: Path, path: Path, cfg: HeadConfig, data_sha: str) -> None:
        texts, labels = subsample(*load_tweets(path), cfg)
        log.info("embedding_lr: encoding %d tweets and fitting the head (once)", len(texts))
        fit = train_head(self.encoder.encode(texts).numpy(), labels, cfg)
        log.info("embedding_lr: held-out AUC %.4f on %d tweets", fit["heldout_auc"], fit["n_test"])
        meta = {"encoder": self.encoder.identity, "data": {DATA_FILE: data_sha}, "labels": LABEL_MAPPING,
                "config": asdict(cfg), "head_version": HEAD_VERSION,
                **{k: fit[k] for k in ("heldout_auc", "n_train", "n_test", "toxic_share")}}
        save_file({"coef": torch.tensor(fit["coef"], dtype=torch.float32),
                   "intercept": torch.tensor(fit["intercept"], dtype=torch.float32)}, folder / "head.safetensors")
        (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")

    def score(self, texts: Sequence[str]) -> list[float]:
        emb = self.encoder.encode([clean(t) for t in texts])
        return torch.sigmoid(emb @ self.coef + self.intercept).tolist()
