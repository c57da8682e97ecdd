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


@pytest.mark.parametrize("override", ["hydra.callbacks.leaderboard._target_=builtins.print",
                                      "+hydra.callbacks.evil._target_=os.system",
                                      "++hydra.launcher._target_=subprocess.Popen"])
def test_hydra_targets_from_overrides_are_refused_before_hydra_starts(override, tmp_path, capsys):
    from bench.cli import main

    code = main(["run", "model=tiny-random", "suite=smoke", f"paths.results_dir={tmp_path}", override])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("taxbench: error: hydra.")
    assert override.lstrip("+").split("=")[1] in err[0]
    assert not any(tmp_path.iterdir())  # nothing ran


def test_hydra_own_launcher_target_passes_the_check():
    from bench.cli import check_hydra_overrides

    check_hydra_overrides(["hydra.launcher._target_=hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
                           "hydra.callbacks.leaderboard._target_=bench.callbacks.LeaderboardCallback"])
