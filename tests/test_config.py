"""Every config in conf/ composes, and what it composes into validates."""
from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from bench.config import CONF_DIR
from bench.run import _instantiate, build_benchmarks, build_model_config

GROUPS = ["model", "method", "suite", "logger", "paths"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def _compose(overrides: list[str], hydra_cfg: bool = False):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra_cfg)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"]
    if (group, option) == ("model", "hf"):
        overrides += ["model.name=gpt2", "model.path=gpt2"]
    if (group, option) == ("model", "lm_eval"):
        overrides += ["model.name=gpt2", "model.args='pretrained=gpt2'"]
    cfg = _compose(overrides)
    if group == "model":
        assert build_model_config(cfg).name
    elif group == "method":
        method = _instantiate(cfg.method, "method")
        assert hasattr(method, "prepare") and method.name
    elif group == "suite":
        benches = build_benchmarks(cfg)
        assert benches and all(hasattr(b, "evaluate") for b in benches.values())
    elif group == "logger":
        assert hasattr(instantiate(cfg.logger), "log")
    else:
        assert cfg.paths.results_dir


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_experiments_compose(experiment):
    cfg = _compose([f"+experiment={experiment}"], hydra_cfg=True)
    params = cfg.hydra.sweeper.params
    for method in str(params.method).split(","):
        assert (CONF_DIR / "method" / f"{method}.yaml").exists(), method
    for model in str(params.get("model", cfg.hydra.runtime.choices.model)).split(","):
        assert (CONF_DIR / "model" / f"{model}.yaml").exists(), model


@pytest.mark.parametrize("launcher", ["joblib", "slurm", "submitit_local"])
def test_launchers_compose(launcher):
    cfg = _compose([f"hydra/launcher={launcher}"], hydra_cfg=True)
    assert "_target_" in cfg.hydra.launcher


def test_default_config_is_the_documented_default():
    cfg = _compose([], hydra_cfg=True)
    method = instantiate(cfg.method, _convert_="all")
    assert (cfg.model.name, cfg.hydra.runtime.choices.method, method.name, cfg.suite_name) == \
        ("smollm2-135m", "none", "none", "default")


@pytest.mark.parametrize("method", ["cda_nc3", "contrastive_nc3"])
def test_nc3_classes_follow_the_methods_bias_type(method):
    by_type = _compose([])["nc3_words_by_bias_type"]
    religion = ["fairness_nc_words/adept/christianity.txt", "fairness_nc_words/adept/islam.txt",
                "fairness_nc_words/adept/judaism.txt"]
    assert list(by_type["religion"]) == religion
    for overrides, expected in [(["bias_type=religion"], "religion"), (["bias_type=gender"], "gender"),
                                (["bias_type=gender", "method.bias_type=religion"], "religion")]:
        built = _instantiate(_compose([f"method={method}", *overrides]).method, "method")
        assert (built.bias_type, built.nc3_words) == (expected, list(by_type[expected])), overrides
    assert sorted(by_type) == ["gender", "race", "religion"]
