"""What INLP and SentenceDebias share: a fitted linear map applied to the final hidden
states before the LM head, sentence embeddings for fitting it, the held-out attribute probe
that reports what the map leaves readable, and a content-keyed safetensors cache so a map is
fitted once per (model, config, data, seed, code): the folder ``<kind>/<key>`` is a
``bench.io.cached_dir`` (sha256 manifest verified before reuse, refitted when it fails).

The probe (Ravfogel et al.; bias-bench's INLP dev accuracy): a linear SVM (LinearSVC, no
intercept, primal) reads the attribute class from mean-pooled final hidden states.  It is
trained on fitting-side sentences and scored on held-out sentences (``split_sentences``), once
on the plain states and once, retrained, on the projected states x P.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from bench.api.metrics import MetricSpec
from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.io import cached_dir, stable_hash
from bench.api import LoadedModel
from bench.api import MethodContext

log = logging.getLogger(__name__)
ARTIFACT = "projection.safetensors"


class Projection:
    """``x -> x P`` on the last axis, P [H, H] (symmetric for the methods here), cast once
    per dtype/device of the incoming hidden states."""

    def __init__(self, matrix: torch.Tensor):
        self.matrix = matrix.float()
        self._cast: dict[tuple, torch.Tensor] = {}

    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        key = (h.dtype, h.device)
        if key not in self._cast:
            self._cast[key] = self.matrix.to(device=h.device, dtype=h.dtype)
        return h @ self._cast[key]


def projected_lm(loaded: LoadedModel, matrix: torch.Tensor, method: str) -> HFScoringLM:
    """An LM whose final hidden states pass through ``matrix`` for scoring, generation and
    ``hidden_states``.  Registers a hook on ``loaded``'s LM head: the model belongs to it."""
    return HFScoringLM(loaded, hidden_transform=Projection(matrix), name=f"{loaded.config.name}+{method}")


def embed(lm: HFScoringLM, texts: Sequence[str]) -> torch.Tensor:
    """``lm.hidden_states`` [N, H] fp32, computed in order of token length (less padding)."""
    order = sorted(range(len(texts)), key=lambda i: len(lm.encode(texts[i])))
    states = lm.hidden_states([texts[i] for i in order])
    out = torch.empty_like(states)
    out[torch.tensor(order, dtype=torch.long)] = states
    return out


def class_features(lm: HFScoringLM, classes: dict[str, list[str]]) -> tuple[np.ndarray, np.ndarray]:
    """Features X [N, H] (float64) of every sentence of ``classes``, labels y [N] = class index."""
    texts = [s for v in classes.values() for s in v]
    y = np.concatenate([np.full(len(v), i) for i, v in enumerate(classes.values())])
    return embed(lm, texts).double().numpy(), y


def linear_probe(seed: int):
    """The attribute classifier of INLP and of the probe: LinearSVC, no intercept, primal (bias-bench)."""
    from sklearn.svm import LinearSVC

    return LinearSVC(fit_intercept=False, dual=False, random_state=seed)


def probe_accuracy(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                   seed: int = 0) -> float:
    """Accuracy (0-1) on (X_test, y_test) of a linear probe trained on (X_train, y_train)."""
    return float((linear_probe(seed).fit(X_train, y_train).predict(X_test) == y_test).mean())


def probe_report(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray, y_test: np.ndarray,
                 P: np.ndarray, seed: int) -> dict[str, float]:
    """Held-out probe accuracy before (X) and after (X P, probe retrained) the projection P [H, H],
    and the held-out majority-class rate (chance level)."""
    return {"acc_before": probe_accuracy(X_train, y_train, X_test, y_test, seed),
            "acc_after": probe_accuracy(X_train @ P, y_train, X_test @ P, y_test, seed),
            "acc_majority": float(np.bincount(y_test).max() / len(y_test))}


def probe_specs(method: str, after: str) -> list[MetricSpec]:
    """The specs of ``probe_report``'s numbers as ``method/<method>_acc_*`` info metrics; ``after``
    says what the retrained probe reads (e.g. "projected states")."""
    return [
        MetricSpec(f"method/{method}_acc_before", "method", "higher", "held-out accuracy (0-1) of a linear SVM "
                   "reading the attribute class from mean-pooled final hidden states, before the debiasing",
                   aggregate="none"),
        MetricSpec(f"method/{method}_acc_after", "method", "lower", f"the same probe's held-out accuracy (0-1), "
                   f"retrained on {after}; the majority-class rate means nothing linear is left", aggregate="none"),
        MetricSpec(f"method/{method}_acc_majority", "method", "higher", "majority-class rate (0-1) of the "
                   "held-out sentences: chance level of the probe", aggregate="none"),
    ]


def budget_size(budget: str, sizes: dict[str, int | None]) -> int | None:
    """The data size a method uses under ``train_budget`` (smoke, cpu or paper)."""
    if budget not in sizes:
        raise ConfigError(f"train_budget={budget!r} is not one of {list(sizes)}")
    return sizes[budget]


def artifact_path(ctx: MethodContext, kind: str, loaded: LoadedModel, config: dict[str, Any],
                  data_files: Sequence[str]) -> Path:
    """``cache_dir/<kind>/<key>/projection.safetensors``; key = stable_hash of the model identity,
    the method config, the data files' sha256, the seed and the code version."""
    for rel in data_files:
        ctx.data.path(rel)  # verifies the file and records its sha256
    digests = {rel: ctx.data.checksums()[rel] for rel in data_files}
    key = stable_hash({"model": loaded.identity, "config": config, "data": digests, "seed": ctx.seed,
                       "code": ctx.code_version})
    return Path(ctx.cache_dir) / kind / key / ARTIFACT


def load_or_fit(path: Path, fit: Callable[[], tuple[dict[str, torch.Tensor], dict[str, Any]]]
                ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, info) stored at ``path`` (in the verified cache folder ``path.parent``), or
    ``fit()``'s, written there first (info, JSON, in the safetensors metadata)."""

    def build(tmp: Path) -> None:
        tensors, info = fit()
        tensors = {k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, str(tmp / path.name), metadata={"info": json.dumps(info, sort_keys=True)})

    cached_dir(path.parent, build, f"fitted projection {path.parent.parent.name}")
    with safe_open(str(path), framework="pt") as f:
        info = json.loads((f.metadata() or {}).get("info", "{}"))
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, info
