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
import os
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
    """The job's ``model`` node as a validated ``ModelConfig``; unknown and unset (``???``) keys are named."""
    missing = sorted(OmegaConf.missing_keys(cfg.model))
    if missing:
        raise ConfigError(f"model.{missing[0]} has no value (??? in the model config): set it, "
                          "e.g. model=hf model.path=<hub id or folder> model.name=<short name>")
    raw = OmegaConf.to_container(cfg.model, resolve=True)
    unknown = set(raw) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown model option(s) {sorted(unknown)}; valid: {sorted(ModelConfig.__dataclass_fields__)}")
    return ModelConfig(**raw)


PROJECT_PACKAGES = ("bench", "methods")  # whose classes a config's ``_target_`` may name
PLUGINS_ENV = "TAXBENCH_PLUGINS"  # comma-separated extra module prefixes (user plugins), e.g. mypkg,word_order


def allowed_targets() -> tuple[str, ...]:
    """Module prefixes a ``_target_`` may start with: the project's packages plus ``$TAXBENCH_PLUGINS``.

    The allow-list comes from the environment, not from the config, so a config file or an
    override cannot grant itself permission to instantiate arbitrary callables."""
    extra = [p.strip().rstrip(".") for p in os.environ.get(PLUGINS_ENV, "").split(",") if p.strip()]
    return (*PROJECT_PACKAGES, *extra)


def check_targets(node: Any, where: str = "") -> None:
    """Refuse (before anything is instantiated) a ``_target_`` anywhere under ``node`` that is not
    in ``allowed_targets()``: a config must not call ``builtins.open``, ``os.system`` and the like."""
    allowed = allowed_targets()
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not any(str(target) == p or str(target).startswith(p + ".") for p in allowed):
            raise ConfigError(f"{where}._target_={target!r} is not in the project's packages "
                              f"{[p + '.' for p in allowed]}; to use a plugin, add its module to {PLUGINS_ENV} "
                              f"(e.g. {PLUGINS_ENV}=mypkg)")
        for key, value in node.items():
            check_targets(value, f"{where}.{key}" if where else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]")


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
