"""``taxbench`` command line.

    taxbench run [hydra overrides]          one job (defaults: smollm2-135m, method none, suite default)
    taxbench run -m [overrides]             a Hydra multirun (grid) over comma-separated values
    taxbench leaderboard [--results DIR]    results/runs/*.json -> leaderboard.{md,csv} + plots
    taxbench power [--results DIR] [--run ID] [--n N]   interval half-width / MDE / n needed per metric
    taxbench reproduce REFERENCE RERUN      does a rerun's result file reproduce REFERENCE's metrics and records

Bad input (an option, a file, a name) exits with status 2 and one line ``taxbench: error: ...`` on
stderr naming it; a leaderboard input file it skips is one ``taxbench: warning: ...`` line.
HYDRA_FULL_ERROR=1 shows Hydra's own report of a composition error instead.
"""
from __future__ import annotations

import logging
import os
import sys
import warnings

from bench.errors import ConfigError, TaxbenchError

USAGE = __doc__


def _one_line(exc: BaseException) -> str:
    """Hydra's or OmegaConf's multi-line message (and its OmegaConf cause) as one line."""
    text = str(exc)
    if exc.__cause__ is not None and str(exc.__cause__) not in text:
        text += "\n" + str(exc.__cause__)
    text = text.split("Config search path:")[0]  # Hydra's internals, not the user's mistake
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()).replace(":; ", ": ")


HYDRA_PACKAGES = ("hydra", "hydra_plugins")  # Hydra's own launchers, sweepers and callbacks


def check_hydra_overrides(argv: list[str]) -> None:
    """Refuse an override that sets a ``_target_`` under ``hydra.`` (callbacks, launcher, sweeper) to
    anything outside the project's packages, Hydra's own and ``$TAXBENCH_PLUGINS``: Hydra instantiates
    those before ``bench.run`` sees the config, so ``check_targets`` there would come too late."""
    from bench.config import check_targets

    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if sep and key.startswith("hydra.") and key.split(".")[-1] == "_target_":
            check_targets({"_target_": value}, key.rsplit(".", 1)[0], extra=HYDRA_PACKAGES)


def _run(argv: list[str]) -> int:
    import hydra
    from hydra.errors import HydraException
    from omegaconf import DictConfig
    from omegaconf.errors import OmegaConfBaseException

    from bench.config import CONF_DIR
    from bench.run import run

    @hydra.main(config_path=str(CONF_DIR), config_name="config", version_base="1.3")
    def job(cfg: DictConfig) -> None:
        try:
            run(cfg)
        except TaxbenchError as exc:
            logging.getLogger("taxbench").error("%s", exc)
            print(f"taxbench: error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    check_hydra_overrides(argv)
    sys.argv = ["taxbench run", *argv]
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    # Hydra prints a composition error (unknown option, wrong type) over several lines and exits 1;
    # with HYDRA_FULL_ERROR it re-raises instead, and main() reports one line and exits 2.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        job()
    except (HydraException, OmegaConfBaseException, OSError) as exc:  # OSError: an unwritable output folder
        if user_full_error:
            raise
        raise ConfigError(_one_line(exc)) from None
    return 0


def _leaderboard(argv: list[str]) -> int:
    import argparse

    from bench.report.main import main as leaderboard_main

    parser = argparse.ArgumentParser(prog="taxbench leaderboard")
    parser.add_argument("--results", default="results", help="results folder holding runs/ and records/")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--code-version", default=None, help="use only runs of this code version (default: newest per cell)")
    args = parser.parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:  # a skipped file is one line, not a source excerpt
        try:
            leaderboard_main(results_dir=args.results, n_boot=args.n_boot, seed=args.seed, pin=args.code_version)
        finally:
            for w in caught:
                print(f"taxbench: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
    return 0


def _power(argv: list[str]) -> int:
    from bench.report.power import main as power_main

    return power_main(argv)


def _reproduce(argv: list[str]) -> int:
    from bench.report.reproduce import main as reproduce_main

    return reproduce_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"run": _run, "leaderboard": _leaderboard, "power": _power, "reproduce": _reproduce}
    if not argv or argv[0] not in commands:
        print(USAGE, file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return commands[argv[0]](argv[1:])
    except TaxbenchError as exc:
        print(f"taxbench: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
