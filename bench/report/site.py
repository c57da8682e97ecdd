"""The leaderboard as one static web page, ``<out>/site/index.html``: no server, no network.

The page is a single HTML file: the leaderboard data as inline JSON, and the vendored
script and style sheet of ``bench/report/site_assets`` (plain JavaScript and CSS, no library)
inlined, so it opens from the file system.  It shows

* a table of the runs (model, method, bias type, suite, seed, bias reduction and capability
  change with their 95% intervals, verdict, the headline metrics with their Δ against
  ``none``), sortable by any column (click its header) and filterable by model and by a
  method substring; column headers carry the MetricSpec help text as a tooltip; an entry
  the leaderboard marks degenerate (``Entry.degenerate``, when set) gets a ⚠ mark;
* the alignment-tax scatter as SVG: bias reduction (x) vs capability change (y), one point
  per run with its interval bars (the baseline at the origin), a legend whose models can be
  toggled; hovering a point shows method, values and intervals; clicking it lists every
  metric of that run;
* a link from each run to its result JSON, relative to the page (``../runs/<id>.json``).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from bench.io import atomic_write_bytes
from bench.report.compare import BASELINE, Interval
from bench.report.leaderboard import Leaderboard
from bench.report.render import arrow, header

ASSETS = Path(__file__).with_name("site_assets")


def _num(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _interval(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {"est": _num(iv.est), "lo": _num(iv.lo), "hi": _num(iv.hi), "sig": iv.sig}


def site_data(lb: Leaderboard, page_dir: Path) -> dict[str, Any]:
    """Everything the page shows, JSON-ready (non-finite numbers become null)."""
    specs = [{"key": k, "group": s.group, "direction": s.direction, "arrow": arrow(s), "header": header(s),
              "help": s.help, "target": s.target, "headline": lb.headline(k)} for k, s in lb.specs.items()]
    entries = []
    for e in lb.entries:
        run = e.run
        changes = {k: {"delta": _interval(c.delta), "dist": _interval(c.dist)} for k, c in e.changes.items()}
        baseline = run.method == BASELINE
        entries.append({
            "model": run.model, "method": run.method, "bias_type": run.bias_type, "label": lb.label(e),
            "suite": run.doc.get("suite"), "seed": run.doc.get("seed"), "run_id": run.doc.get("run_id"),
            "result": Path(os.path.relpath(run.path, page_dir)).as_posix(),
            "verdict": e.verdict, "baseline": baseline, "degenerate": getattr(e, "degenerate", None) or None,
            "bias": _interval(Interval(0.0)) if baseline else _interval(e.bias),
            "capability": _interval(Interval(0.0)) if baseline else _interval(e.capability),
            "metrics": {k: _num(run.metrics.get(k)) for k in lb.specs if isinstance(run.metrics.get(k), (int, float))},
            "changes": changes})
    return {"specs": specs, "entries": entries, "models": lb.models, "bias_keys": lb.bias_keys,
            "capability_keys": lb.capability_keys, "n_boot": lb.n_boot, "seed": lb.seed, "baseline": BASELINE}


def render(data: dict[str, Any], title: str = "taxbench leaderboard", generated: str = "") -> str:
    """The page: inline data, vendored CSS and JS (``</`` escaped inside the JSON)."""
    css = (ASSETS / "site.css").read_text(encoding="utf-8")
    js = (ASSETS / "site.js").read_text(encoding="utf-8")
    payload = json.dumps(data, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
{css}
</style>
</head>
<body>
<header>
  <h1>{title}</h1>
  <p class="meta">Generated {generated}. Δ = run − <code>{data["baseline"]}</code> on the same model, suite and seed;
  [lo, hi] = 95% paired bootstrap interval ({data["n_boot"]} resamples, seed {data["seed"]}); * = the interval excludes 0.
  Hover a column header for what a metric measures.</p>
</header>
<main>
  <section id="tradeoff-section">
    <h2>Alignment tax</h2>
    <p class="meta">Bias reduction (points of distance to the ideal, &gt; 0 = less biased) vs capability change
    (%, &gt; 0 = better). Hover a point for its values; click it for all metrics of the run; toggle models in the legend.</p>
    <div id="scatter-wrap"><svg id="scatter" role="img" aria-label="bias reduction vs capability change"></svg>
    <div id="legend"></div></div>
    <div id="tooltip" class="tooltip" hidden></div>
    <div id="details" hidden></div>
  </section>
  <section id="table-section">
    <h2>Runs</h2>
    <div class="controls">
      <label>Model <select id="model-filter"><option value="">all models</option></select></label>
      <label>Method <input id="method-filter" type="search" placeholder="filter methods"></label>
      <span id="row-count"></span>
    </div>
    <div class="table-wrap"><table id="leaderboard"><thead></thead><tbody></tbody></table></div>
  </section>
</main>
<script id="leaderboard-data" type="application/json">{payload}</script>
<script>
{js}
</script>
</body>
</html>
"""


def write_site(lb: Leaderboard, out_dir: str | Path, generated: str = "") -> Path:
    """Write ``<out_dir>/site/index.html``; returns its path."""
    page = Path(out_dir) / "site" / "index.html"
    atomic_write_bytes(page, render(site_data(lb, page.parent), generated=generated).encode("utf-8"))
    return page
