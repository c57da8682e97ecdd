"""Configuration: where ``conf/`` is, the model configs by name, and the typed schemas of the
benchmarks that Hydra composes the YAML files onto.

Every benchmark's defaults live in one place, its dataclass: ``register_schemas`` stores a
structured config ``schema/benchmark/<name>`` (``_target_`` + the dataclass fields with their
defaults and types) for each class ``bench.tasks.benchmark_classes`` finds, and
``conf/benchmark/<name>.yaml`` starts from it (``defaults: [/schema/benchmark@_here_: <name>]``)
and overrides only what it must, so a wrong type (``benchmarks.stereoset.n=abc``) fails at compose.
"""
from __future__ import annotations

import dataclasses
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.api import LoadedModel, ModelConfig
from bench.errors import ConfigError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def model_configs(conf_dir: Path = CONF_DIR) -> dict[str, ModelConfig]:
    """Every model config in ``conf/model`` (those with concrete values), by name."""
    out = {}
    for path in sorted((conf_dir / "model").glob("*.yaml")):
        raw = OmegaConf.to_container(OmegaConf.load(path))
        if "???" not in raw.values():
            out[path.stem] = ModelConfig(**raw)
    return out


def build_model_config(cfg: DictConfig) -> ModelConfig:
    """The job's ``model`` node as a validated ``ModelConfig``; unknown keys are named."""
    raw = OmegaConf.to_container(cfg.model, resolve=True)
    unknown = set(raw) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown model option(s) {sorted(unknown)}; valid: {sorted(ModelConfig.__dataclass_fields__)}")
    return ModelConfig(**raw)


def load_named(name: str, **overrides: Any) -> LoadedModel:
    """Load a model by its config name in ``conf/model`` (tests, scripts, notebooks)."""
    from bench.engine.models import load_model

    configs = model_configs()
    if name not in configs:
        raise ConfigError(f"unknown model {name!r}; valid names: {sorted(configs)}")
    cfg = ModelConfig(**{**configs[name].__dict__, **overrides})
    return load_model(cfg, configs)


def schema(cls: type) -> type:
    """A structured-config dataclass for ``cls``: ``_target_`` plus ``cls``'s fields, types and defaults."""
    fields = [("_target_", str, dataclasses.field(default=f"{cls.__module__}.{cls.__qualname__}"))]
    for f in dataclasses.fields(cls):
        default = (dataclasses.field(default=f.default) if f.default is not dataclasses.MISSING
                   else dataclasses.field(default_factory=f.default_factory))
        fields.append((f.name, f.type, default))
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", fields)


@cache
def register_schemas() -> None:
    """Store ``schema/benchmark/<name>`` for every benchmark class (idempotent)."""
    from hydra.core.config_store import ConfigStore

    from bench.tasks import benchmark_classes

    store = ConfigStore.instance()
    for name, cls in benchmark_classes().items():
        store.store(group="schema/benchmark", name=name, node=schema(cls))


register_schemas()  # at import, as Hydra's ConfigStore expects: every compose of conf/ sees the schemas
