"""Hydra callback: regenerate the leaderboard and plots when a multirun ends."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("taxbench")


class LeaderboardCallback(Callback):
    def __init__(self, results_dir: str) -> None:
        self.results_dir = results_dir

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not any((Path(self.results_dir) / "runs").glob("*.json")):
            return
        from bench.report.main import main as leaderboard_main

        leaderboard_main(results_dir=self.results_dir)
        log.info("leaderboard regenerated in %s", self.results_dir)
