"""Hydra callback: when a multirun ends, regenerate the leaderboard and plots, print its
alignment-tax table, and log the leaderboard table and plots to one summary run of the
experiment's group (``logger=wandb``; run id ``leaderboard-<group>``, job_type ``leaderboard``)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

log = logging.getLogger("taxbench")


class LeaderboardCallback(Callback):
    def __init__(self, results_dir: str) -> None:
        self.results_dir = results_dir

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not any((Path(self.results_dir) / "runs").glob("*.json")):
            return
        from bench.report.main import main as leaderboard_main
        from bench.report.render import tax_table, to_frame
        from bench.tracking import wandb_id

        out = leaderboard_main(results_dir=self.results_dir)
        log.info("leaderboard regenerated in %s; alignment tax:\n%s", self.results_dir,
                 "\n".join(tax_table(out["leaderboard"])))
        group = config.get("experiment_name") or "adhoc"
        tracker = instantiate(config.logger)
        tracker.start(wandb_id(f"leaderboard-{group}"), {"results_dir": self.results_dir, "experiment_name": group},
                      group=group, job_type="leaderboard", name=f"{group}/leaderboard")
        try:
            tracker.log_leaderboard(to_frame(out["leaderboard"]), out["plots"])
        finally:
            tracker.finish()
