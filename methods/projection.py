"""What INLP and SentenceDebias share: a fitted linear map applied to the final hidden
states before the LM head, sentence embeddings for fitting it, and a content-keyed
safetensors cache so a map is fitted once per (model, config, data, seed, code).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save as save_safetensors

from bench.errors import ConfigError
from bench.engine.hf_lm import HFScoringLM
from bench.io import atomic_write_bytes, stable_hash
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
    """(tensors, info) stored at ``path``, or ``fit()``'s, written there atomically first
    (info, JSON, in the safetensors metadata)."""
    if path.exists():
        with safe_open(str(path), framework="pt") as f:
            info = json.loads((f.metadata() or {}).get("info", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        log.info("reusing fitted projection %s", path)
        return tensors, info
    tensors, info = fit()
    tensors = {k: v.detach().float().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save_safetensors(tensors, metadata={"info": json.dumps(info, sort_keys=True)}))
    return tensors, info
