"""A model as the rest of the suite sees it: where it comes from (``ModelConfig``, from
``conf/model/*.yaml``) and the loaded pair of network and tokenizer (``LoadedModel``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from bench.errors import ConfigError
from bench.validate import check_fields

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
SOURCES = ("hf", "dir", "package", "random", "lm_eval")


@dataclass
class ModelConfig:
    """Where a model comes from and how to run it (``conf/model/*.yaml``)."""

    name: str  # short name used in result files and plots
    source: str  # one of: hf (hub id), dir (local folder), package (GGUF in a PyPI package), random
    path: str | None = None  # hub id (source=hf) or folder (source=dir)
    package: str | None = None  # importable package holding the GGUF (source=package)
    gguf_file: str | None = None  # GGUF file name inside the package folder (source=package)
    assemble: str | None = None  # "module:function" that writes the GGUF to a path, for chunked packages
    revision: str | None = None  # hub revision (source=hf)
    random_config: dict[str, Any] = field(default_factory=dict)  # LlamaConfig kwargs (source=random)
    tokenizer_from: str | None = None  # model config name whose tokenizer a random model borrows
    dtype: str = "float32"  # float32 (reference) or bfloat16 (2-4x faster on CPUs with avx512_bf16)
    device: str = "cpu"  # cpu, cuda or auto
    batch_size: int = 16  # sequences per forward pass when scoring
    max_length: int | None = None  # context window in tokens (None: from the model config)
    bos_token: str | None = None  # token that conditions a sentence's first token (None: bos, else eos)
    padding_side: str = "right"
    trust_remote_code: bool = False  # run code shipped with a hub model; off unless a config asks
    seed: int = 0  # init seed (source=random)
    backend: str | None = None  # lm-eval model backend (source=lm_eval): hf | vllm | local-completions | ...
    args: dict[str, Any] | str | None = None  # the backend's model_args (source=lm_eval): dict or "key=value,..."

    def __post_init__(self) -> None:
        check_fields(self, "model")
        if self.source not in SOURCES:
            raise ConfigError(f"model.source={self.source!r} is not one of {list(SOURCES)}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"model.dtype={self.dtype!r} is not one of {sorted(DTYPES)}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"model.device={self.device!r} is not one of ['cpu', 'cuda', 'auto']")
        if self.batch_size <= 0:
            raise ConfigError(f"model.batch_size must be > 0, got {self.batch_size}")
        if self.max_length is not None and self.max_length <= 0:
            raise ConfigError(f"model.max_length must be > 0, got {self.max_length}")
        if self.source in ("hf", "dir") and not self.path:
            raise ConfigError(f"model.path is required for model.source={self.source}")
        if self.source == "lm_eval" and not (self.backend and self.args):
            raise ConfigError("model.backend and model.args are required for model.source=lm_eval")
        if self.source == "package" and not (self.package and self.gguf_file):
            raise ConfigError("model.package and model.gguf_file are required for model.source=package")


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, eval mode
    tokenizer: Any  # transformers tokenizer with a pad token, right padding
    config: ModelConfig
    identity: str  # "<name>@<weights sha256[:16]>": what result keys and caches hash
    device: torch.device
