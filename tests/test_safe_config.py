"""A config names only the project's classes (plus TAXBENCH_PLUGINS), and secrets never leave it."""
from __future__ import annotations

import re

import pytest

from bench.config import check_targets
from bench.errors import ConfigError
from bench.tracking import scrub


@pytest.mark.parametrize("target", ["bench.tracking.NullTracker", "methods.none.NoMethod"])
def test_project_targets_pass(target):
    check_targets({"method": {"_target_": target, "inner": [{"_target_": target}]}})


@pytest.mark.parametrize("target,where", [
    ("builtins.open", "method._target_"),
    ("benchmark_evil.Thing", "method._target_"),  # a prefix match must end at a module boundary
    ("os.system", "method.inner[0]._target_"),
])
def test_other_targets_are_refused_naming_the_key(target, where):
    node = {"method": {"_target_": target if where == "method._target_" else "methods.none.NoMethod",
                       "inner": [{"_target_": target}]}}
    with pytest.raises(ConfigError, match="^" + re.escape(f"{where}={target!r}")):
        check_targets(node)


def test_plugins_are_allowed_only_from_the_environment(monkeypatch):
    node = {"method": {"_target_": "mypkg.methods.Mine"}, "plugins": ["mypkg"]}
    with pytest.raises(ConfigError, match="TAXBENCH_PLUGINS"):
        check_targets(node)  # a config cannot allow itself
    monkeypatch.setenv("TAXBENCH_PLUGINS", "other, mypkg.")
    check_targets(node)


def test_scrub_drops_secret_keys_and_values_of_secret_env_vars(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-0123456789")
    monkeypatch.setenv("MY_TOKEN", "short")  # under MIN_SECRET_CHARS: not matched as a value
    cfg = {"my_api_key": "x", "note": "key=sk-0123456789", "list": ["a", "sk-0123456789"], "seed": 0,
           "nested": {"password": "p", "flag": "short"}}
    assert scrub(cfg) == {"list": ["a"], "seed": 0, "nested": {"flag": "short"}}
