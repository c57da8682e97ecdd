"""Detoxify (Hanu & Unitary 2020) ``toxicity`` head.  Imported lazily: the package is
optional and downloads its checkpoint on first use, so it needs a network once."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Sequence

from bench.errors import ConfigError

MODELS = ("original", "unbiased", "multilingual", "original-small", "unbiased-small")


class DetoxifyScorer:
    def __init__(self, model_type: str = "original", batch_size: int = 32, device: str = "cpu"):
        if model_type not in MODELS:
            raise ConfigError(f"benchmarks.toxicity.model={model_type!r} is not a Detoxify model; valid: {list(MODELS)}")
        try:
            from detoxify import Detoxify
        except ImportError as exc:
            raise ConfigError("benchmarks.toxicity.scorer=detoxify needs the detoxify package (pip install detoxify) and network "
                              "access on first use to download its checkpoint; offline, use profanity_check or "
                              "embedding_lr") from exc
        try:
            self.model = Detoxify(model_type, device=device)
        except OSError as exc:
            raise ConfigError(f"benchmarks.toxicity.scorer=detoxify could not load the {model_type!r} checkpoint: {exc}") from exc
        self.batch_size = batch_size
        self.key = "detoxify" if model_type == "original" else f"detoxify-{model_type}"
        self.info = {"scorer": "detoxify", "model": model_type, "package": f"detoxify=={_version()}"}

    def score(self, texts: Sequence[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(float(p) for p in self.model.predict(list(texts[start:start + self.batch_size]))["toxicity"])
        return out


def _version() -> str:
    try:
        return version("detoxify")
    except PackageNotFoundError:
        return "unknown"
