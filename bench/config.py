"""Configuration: where ``conf/`` is, the model configs by name, and the typed schemas of the
benchmarks and methods that Hydra composes the YAML files onto.

Every benchmark's and method's defaults live in one place, its dataclass: ``register_schemas``
stores a structured config (``_target_`` + the dataclass fields with their defaults and types,
nested dataclasses such as a method's ``TrainConfig`` included) as ``schema/benchmark/<name>``
for each class ``bench.tasks.benchmark_classes`` finds and ``schema/method/<ClassName>`` for each
method class of the ``methods`` package.  ``conf/benchmark/<name>.yaml`` and
``conf/method/<name>.yaml`` start from it (``defaults: [/schema/method@_here_: CDA]``) and
override only what they must; every field can be overridden on the command line without ``+``,
and a wrong type (``benchmarks.stereoset.n=abc``) fails at compose.  A plugin outside the
package (README "Extending") uses a plain YAML with ``_target_``.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import pkgutil
import typing
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


def check_targets(node: Any, where: str = "", extra: tuple[str, ...] = ()) -> None:
    """Refuse (before anything is instantiated) a ``_target_`` anywhere under ``node`` that is not
    in ``allowed_targets()`` (+ ``extra`` prefixes): a config must not call ``builtins.open``,
    ``os.system`` and the like."""
    allowed = (*allowed_targets(), *extra)
    if isinstance(node, dict):
        target = node.get("_target_")
        if target is not None and not any(str(target) == p or str(target).startswith(p + ".") for p in allowed):
            raise ConfigError(f"{where}._target_={target!r} is not in the project's packages "
                              f"{[p + '.' for p in allowed]}; to use a plugin, add its module to {PLUGINS_ENV} "
                              f"(e.g. {PLUGINS_ENV}=mypkg)")
        for key, value in node.items():
            check_targets(value, f"{where}.{key}" if where else str(key), extra)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_targets(value, f"{where}[{i}]", extra)


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
    hints = typing.get_type_hints(cls)  # annotations are strings (postponed evaluation): resolve in cls's module
    fields = [("_target_", str, dataclasses.field(default=f"{cls.__module__}.{cls.__qualname__}"))]
    for f in dataclasses.fields(cls):
        default = (dataclasses.field(default=f.default) if f.default is not dataclasses.MISSING
                   else dataclasses.field(default_factory=f.default_factory))
        fields.append((f.name, hints[f.name], default))
    return dataclasses.make_dataclass(f"{cls.__name__}Schema", fields)


def method_classes() -> dict[str, type]:
    """Class name -> class, for every dataclass of the ``methods`` package with ``prepare``."""
    import methods

    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(methods.__path__, "methods."):
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and dataclasses.is_dataclass(obj) \
                    and callable(getattr(obj, "prepare", None)):
                found[obj.__name__] = obj
    return dict(sorted(found.items()))


@cache
def register_schemas() -> None:
    """Store ``schema/benchmark/<name>`` and ``schema/method/<ClassName>`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    from bench.tasks import benchmark_classes

    store = ConfigStore.instance()
    for name, cls in benchmark_classes().items():
        store.store(group="schema/benchmark", name=name, node=schema(cls))
    for name, cls in method_classes().items():
        store.store(group="schema/method", name=name, node=schema(cls))


register_schemas()  # at import, as Hydra's ConfigStore expects: every compose of conf/ sees the schemas
