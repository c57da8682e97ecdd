"""``taxbench leaderboard``: result files -> leaderboard.md, leaderboard.csv and plots/."""
from __future__ import annotations

import datetime as dt
import json
import warnings
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.io import atomic_write_bytes
from bench.report import plots as plotting
from bench.report.leaderboard import build
from bench.report.render import to_frame, to_markdown
from bench.report.runs import ResultFileWarning
from bench.report.site import write_site


MIN_N_BOOT = 40  # fewest bootstrap resamples with one in each 2.5% tail of a 95% percentile interval


def _meta(results_dir: Path) -> dict[str, Any]:
    path = results_dir / "leaderboard_meta.json"
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        warnings.warn(f"ignoring {path}: {exc}", ResultFileWarning, stacklevel=2)
        return {}


def _machine(doc: dict[str, Any]) -> str:
    """A result file's platform and processor (``versions.cpu``, recorded since the processor was found to
    change CPU timings), e.g. "Linux-6.18-x86_64-with-glibc2.36, AMD EPYC"."""
    found = doc.get("versions", {})
    return ", ".join(str(found[key]) for key in ("platform", "cpu") if key in found) or "unknown platform"


def main(results_dir: str | Path = "results", out_dir: str | Path | None = None, n_boot: int = 1000, seed: int = 0,
         command: str | None = None, machine: str | None = None, plots: bool = True,
         pin: str | None = None) -> dict[str, Any]:
    """Write leaderboard.md, leaderboard.csv, site/index.html and (plots=True) plots/*.png under out_dir
    (default results_dir).

    command / machine for the markdown header: arguments, else results_dir/leaderboard_meta.json
    ({"command": ..., "machine": ..., "wall_time": ...}), else the leaderboard command and the runs' platforms and
    processors; the header also sums the runs' own job times (``timings.total``).
    Returns {"markdown": path, "csv": path, "site": path, "plots": [paths], "leaderboard": Leaderboard}."""
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < MIN_N_BOOT:
        raise ConfigError(f"--n-boot must be an integer >= {MIN_N_BOOT} (a 95% interval needs a resample in each "
                          f"2.5% tail), got {n_boot!r}")
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir
    lb = build(results_dir, n_boot, seed, pin=pin)
    meta = _meta(results_dir)
    command = command or meta.get("command") or (
        f"taxbench leaderboard --results {results_dir}" + (f" --n-boot {n_boot}" if n_boot != 1000 else "")
        + (f" --seed {seed}" if seed else "") + (f" --code-version {pin}" if pin else ""))
    machine = machine or meta.get("machine") or "; ".join(sorted({_machine(e.run.doc) for e in lb.entries}))
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    md_path, csv_path = out / "leaderboard.md", out / "leaderboard.csv"
    atomic_write_bytes(md_path, to_markdown(lb, command, machine, generated, str(results_dir),
                                            wall=meta.get("wall_time")).encode())
    atomic_write_bytes(csv_path, to_frame(lb).to_csv(index=False).encode())
    site = write_site(lb, out, generated)  # site/index.html, the static web leaderboard
    paths: list[Path] = []
    if plots:
        paths = plotting.make_all(lb, out / "plots")
        plotting.log_to_wandb(paths)
    return {"markdown": md_path, "csv": csv_path, "site": site, "plots": paths, "leaderboard": lb}
