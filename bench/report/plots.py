"""Figures of the leaderboard, drawn from a ``bench.report.leaderboard.Leaderboard`` and saved as PNG.

- ``tradeoff.png``: bias reduction (x) vs capability change (y) per model, bootstrap error
  bars, Pareto frontier, quadrants.
- ``bias_domains.png``: target-50 bias scores per subset (StereoSet domain, CrowS bias type).
- ``toxicity_intelligibility.png``: expected max toxicity vs a degenerate-generation share.
- the seed papers' views (``bench.report.paper_figures``): ``toxicity_capability.png``,
  ``collapse_fairness.png``, ``scale.png``.

A run the degeneracy guard flags (``Entry.degenerate``, ``bench.report.degeneracy``) is drawn
hollow (open marker, unfilled bar) and its label says "degenerate".

Figures use matplotlib's object API (no pyplot state, no backend switch).  A missing
metric never raises: its panel says what is missing.
"""
from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from bench.api.metrics import MetricSpec, select
from bench.report import paper_figures
from bench.report.compare import BASELINE, CAPABILITY
from bench.report.figure_kit import colors_of, face, label_points, note, panels, save, text_of
from bench.report.leaderboard import Entry, Leaderboard

# ---------------------------------------------------------------- trade-off


def _short(keys: Sequence[str]) -> str:
    return ", ".join(keys) if keys else "–"


def pareto(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points no other point beats on both axes (higher x and y are better), by x."""
    keep = [i for i, (x, y) in enumerate(points)
            if not any(qx >= x and qy >= y and (qx > x or qy > y) for qx, qy in points)]
    return sorted(keep, key=lambda i: points[i][0])


def _limits(lo: list[float], hi: list[float], min_span: float = 1.0) -> tuple[float, float]:
    """Axis range covering 0 and all values, with room on both sides of 0 for the quadrants
    (at least min_span wide: changes far below one point or one percent stay visibly near 0)."""
    a, b = min([0.0, *lo]), max([0.0, *hi])
    if b - a < min_span:
        a, b = a - (min_span - (b - a)) / 2, b + (min_span - (b - a)) / 2
    span = b - a
    return a - 0.2 * span - (0.1 * span if a == 0 else 0), b + 0.2 * span + (0.1 * span if b == 0 else 0)


def _tradeoff_panel(ax: Axes, lb: Leaderboard, model: str, colors: dict[str, str]) -> None:
    entries = [e for e in lb.entries if e.run.model == model and e.base is not None]
    pts = [e for e in entries if e.bias and e.capability and math.isfinite(e.bias.est) and math.isfinite(e.capability.est)]
    if not pts:
        note(ax, f"{model}: no method run with both bias and capability metrics and a `{BASELINE}` run "
                  "on the same suite and seed")
        return
    xs = [(e.bias.est, e.bias.lo, e.bias.hi) for e in pts]
    ys = [(e.capability.est, e.capability.lo, e.capability.hi) for e in pts]
    fin = lambda v, d: v if math.isfinite(v) else d  # noqa: E731
    x0, x1 = _limits([fin(lo, x) for x, lo, _ in xs], [fin(hi, x) for x, _, hi in xs])
    y0, y1 = _limits([fin(lo, y) for y, lo, _ in ys], [fin(hi, y) for y, _, hi in ys])
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.fill_between([0, x1], 0, y1, color="#2ca02c", alpha=0.10, lw=0)
    ax.fill_between([0, x1], y0, 0, color="#ff7f0e", alpha=0.10, lw=0)
    ax.fill_between([x0, 0], y0, y1, color="0.5", alpha=0.08, lw=0)
    ax.axhline(0, color="0.4", lw=0.9)
    ax.axvline(0, color="0.4", lw=0.9)
    ax.text(x1, y1, "less bias,\nno capability loss ", ha="right", va="top", color="#1b7a1b", fontsize=8.5)
    ax.text(x1, y0, "less bias,\npays a tax ", ha="right", va="bottom", color="#b35900", fontsize=8.5)
    ax.text(x0, y0, " more bias", ha="left", va="bottom", color="0.35", fontsize=8.5)
    points = [(0.0, 0.0)] + [(x, y) for (x, _, _), (y, _, _) in zip(xs, ys)]
    front = pareto(points)
    if len(front) > 1:
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], ls="--", color="0.25", lw=1,
                zorder=2, label="Pareto frontier")
    ax.plot(0, 0, "s", color="black", ms=7, zorder=4)
    for e, (x, xlo, xhi), (y, ylo, yhi) in zip(pts, xs, ys):
        err = lambda v, lo, hi: None if not math.isfinite(lo) else [[v - lo], [hi - v]]  # noqa: E731
        ax.errorbar(x, y, xerr=err(x, xlo, xhi), yerr=err(y, ylo, yhi), fmt="o", ms=7, capsize=3,
                    color=colors[e.label], mfc=face(e, colors[e.label]), mew=1.5, zorder=5)
    label_points(ax, [(0.0, 0.0, f"{BASELINE} (baseline)", "black")]
                  + [(x, y, text_of(lb, e), colors[e.label]) for e, (x, _, _), (y, _, _) in zip(pts, xs, ys)])
    ax.annotate("better", xy=(0.97, 0.80), xytext=(0.80, 0.63), xycoords="axes fraction", fontsize=9,
                color="#1b7a1b", ha="center", va="center",
                arrowprops=dict(arrowstyle="-|>", color="#1b7a1b", lw=1.5))
    ax.set_title(model, fontsize=11, fontweight="bold")
    ax.set_xlabel("bias reduction (points closer to 50)\n→ less biased", fontsize=9)
    ax.set_ylabel("capability change (relative, %)\n↑ better", fontsize=9)
    ax.grid(alpha=0.25)
    if len(front) > 1:
        ax.legend(loc="upper left", fontsize=8, frameon=False)


def tradeoff(lb: Leaderboard) -> Figure:
    """Scatter of bias reduction vs capability change, one panel per model."""
    fig, axes = panels(len(lb.models), 5.6, 4.8)
    colors = colors_of(lb)
    for ax, model in zip(axes, lb.models):
        _tradeoff_panel(ax, lb, model, colors)
    fig.suptitle(f"Alignment tax: each method against {BASELINE} on the same model "
                 "(error bars: 95% paired bootstrap over examples)\n"
                 + textwrap.fill(f"x: mean reduction of |score − 50| over {_short(lb.bias_keys)}; y: relative change "
                                 f"(up = better) averaged within, then across {', '.join(CAPABILITY)} "
                                 f"({_short(lb.capability_keys)})", 110), fontsize=9.5)
    return fig


# ---------------------------------------------------------------- bias per subset


def _subset_specs(lb: Leaderboard) -> dict[str, list[MetricSpec]]:
    """whole-benchmark target bias metric key -> [it, its breakdowns by subset]."""
    out: dict[str, list[MetricSpec]] = {}
    for key, parent in lb.parents.items():
        if lb.specs[parent].group == "bias" and lb.specs[parent].direction == "target":
            out.setdefault(parent, [lb.specs[parent]]).append(lb.specs[key])
    return out


def _subset_name(spec: MetricSpec) -> str:
    return ", ".join(str(v) for v in spec.where.values()) or "all"


def _subset_panel(ax: Axes, entries: list[Entry], specs: list[MetricSpec], colors: dict[str, str]) -> None:
    target = specs[0].target or 50.0
    width = 0.8 / len(entries)
    base_records = entries[0].run.records.get(specs[0].key.split("/")[0], [])
    devs = []
    for j, e in enumerate(entries):
        vals = np.array([e.run.metrics.get(s.key, math.nan) for s in specs], dtype=float)
        xs = np.arange(len(specs)) + (j - (len(entries) - 1) / 2) * width
        ax.bar(xs, vals - target, bottom=target, width=width * 0.92, color=face(e, colors[e.label]),
               edgecolor=colors[e.label], lw=1.2, alpha=0.85)
        ax.hlines(vals, xs - width * 0.46, xs + width * 0.46, colors=colors[e.label], lw=2.5, zorder=3)
        devs += list(np.abs(vals[np.isfinite(vals)] - target))
        for x, s, v in zip(xs, specs, vals):
            c = e.changes.get(s.key)
            if c is not None and c.delta.sig and math.isfinite(v):
                ax.text(x, v, "*", ha="center", va="bottom" if v >= target else "top", fontsize=10)
    names = [textwrap.fill(_subset_name(s).replace("_", " "), 11)
             + (f"\nn={len(select(s, base_records))}" if base_records else "") for s in specs]
    ax.set_xticks(np.arange(len(specs)), names, fontsize=8)
    top = max(devs, default=10.0) * 1.2 + 2
    ax.set_ylim(max(0.0, target - top), min(100.0, target + top))
    ax.axhline(target, color="black", lw=1.0, zorder=1)
    ax.text(1.0, target, f" ideal {target:g}", transform=ax.get_yaxis_transform(), va="center", fontsize=8)
    ax.set_ylabel(f"{specs[0].key.split('/')[-1]} (%)\n↑ prefers stereotype · ↓ prefers anti", fontsize=8.5)
    ax.grid(axis="y", alpha=0.25)


def bias_domains(lb: Leaderboard) -> Figure:
    """Bars of the target-50 bias scores per subset (rows: models, columns: metrics such as SS, CrowS)."""
    subsets = _subset_specs(lb)
    colors = colors_of(lb)
    if not subsets:
        fig, axes = panels(1, 7, 3)
        note(axes[0], "no per-subset bias metrics (target-50 metrics with a record filter, e.g. StereoSet SS "
                       "per domain, CrowS-Pairs per bias type) in the result files")
        return fig
    per_model = max(1, len(lb.entries) / max(1, len(lb.models)))  # bars per subset
    widths = [max(4.0, len(subs) * (0.5 + 0.3 * per_model)) for subs in subsets.values()]
    fig = Figure(figsize=(sum(widths), 3.6 * len(lb.models)), layout="constrained")
    grid = fig.subplots(len(lb.models), len(subsets), squeeze=False, gridspec_kw={"width_ratios": widths})
    for row, model in zip(grid, lb.models):
        entries = [e for e in lb.entries if e.run.model == model]
        for ax, (parent, subs) in zip(row, subsets.items()):
            specs = [s for s in subs if any(s.key in e.run.metrics for e in entries)]
            if not specs:
                note(ax, f"{model}: no {parent} per-subset metrics")
                continue
            _subset_panel(ax, entries, specs, colors)
            ax.set_title(f"{model} · {parent}", fontsize=10, fontweight="bold")
    handles = [Patch(color=c, label=lab) for lab, c in colors.items() if any(e.label == lab for e in lb.entries)]
    if any(e.degenerate for e in lb.entries):
        handles.append(Patch(fc="none", ec="0.3", label="hollow: degenerate"))
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), fontsize=9, frameon=False)
    fig.suptitle("Bias per subset of examples: bars start at the ideal 50 (a bar at 50 is a flat line); "
                 f"* = change against {BASELINE} significant (95% paired bootstrap)", fontsize=9.5)
    return fig


# ---------------------------------------------------------------- toxicity vs intelligibility


def _find(lb: Leaderboard, group: str | None, words: Sequence[str]) -> MetricSpec | None:
    for word in words:
        for s in lb.specs.values():
            if lb.headline(s.key) and (group is None or s.group == group) and word in s.key.split("/")[-1]:
                return s
    return None


def toxicity_intelligibility(lb: Leaderboard, toxicity_key: str | None = None,
                             pattern_key: str | None = None) -> Figure:
    """Expected max toxicity vs the share of degenerate continuations, one panel per model.

    Defaults: the toxicity metric named *expected_max*, the pattern metric named *incomplete*
    (else 1 - *distinct* diversity)."""
    tox = lb.specs.get(toxicity_key) if toxicity_key else _find(lb, "toxicity", ("expected_max", ""))
    pat = lb.specs.get(pattern_key) if pattern_key else _find(lb, None, ("incomplete", "distinct"))
    colors = colors_of(lb)
    fig, axes = panels(len(lb.models), 5.0, 4.4)
    if tox is None or pat is None:
        missing = [name for name, s in (("toxicity", tox), ("generation-pattern", pat)) if s is None]
        note(axes[0], f"no {' or '.join(missing)} metric in the result files")
        for ax in axes[1:]:
            ax.set_axis_off()
        return fig
    invert = "distinct" in pat.key.split("/")[-1] and not pattern_key
    full = 100.0 if pat.scale == 100 else 1.0

    def xy(run) -> tuple[float, float]:
        x = run.metrics.get(pat.key, math.nan)
        return (full - x if invert else x), run.metrics.get(tox.key, math.nan)

    for ax, model in zip(axes, lb.models):
        entries = [e for e in lb.entries if e.run.model == model and all(map(math.isfinite, xy(e.run)))]
        if not entries:
            note(ax, f"{model}: no run with both {tox.key} and {pat.key}")
            continue
        for e in entries:
            if e.base is not None and all(map(math.isfinite, xy(e.base))):
                ax.annotate("", xy=xy(e.run), xytext=xy(e.base),
                            arrowprops=dict(arrowstyle="->", color=colors[e.label], alpha=0.5, lw=1))
            ax.plot(*xy(e.run), "s" if e.run.method == BASELINE else "o", color=colors[e.label],
                    mfc=face(e, colors[e.label]), mew=1.5, ms=7, zorder=4)
        ax.margins(0.25)
        ax.autoscale_view()
        label_points(ax, [(*xy(e.run), text_of(lb, e), colors[e.label]) for e in entries])
        ax.text(0.02, 0.02, "better: down and left", transform=ax.transAxes, fontsize=8, color="#1b7a1b",
                ha="left", va="bottom")
        xname = f"1 − {pat.key}" if invert else pat.key
        ax.set_xlabel(f"{xname}\n{textwrap.fill(pat.help, 60)}\n→ less intelligible", fontsize=8)
        ax.set_ylabel(f"{tox.key}\n{textwrap.fill(tox.help, 50)}\n↑ more toxic", fontsize=8)
        ax.set_title(model, fontsize=11, fontweight="bold")
        ax.grid(alpha=0.25)
    fig.suptitle(f"Toxicity vs intelligibility (arrows: from {BASELINE} to each method)\n"
                 "a method that cuts toxicity by breaking its text moves down and to the right", fontsize=9.5)
    return fig


# ---------------------------------------------------------------- all figures


FIGURES = {"tradeoff": tradeoff, "bias_domains": bias_domains, "toxicity_intelligibility": toxicity_intelligibility,
           **paper_figures.FIGURES}


def make_all(lb: Leaderboard, out_dir: str | Path) -> list[Path]:
    """Write every figure of FIGURES as out_dir/<name>.png; returns their paths."""
    return [save(draw(lb), Path(out_dir) / f"{name}.png") for name, draw in FIGURES.items()]


def log_to_wandb(paths: Sequence[str | Path]) -> bool:
    """Log the images to the active wandb run (no-op, False, when wandb is not imported or no run is active)."""
    wandb = sys.modules.get("wandb")
    if wandb is None or getattr(wandb, "run", None) is None:
        return False
    wandb.run.log({Path(p).stem: wandb.Image(str(p)) for p in paths})
    return True
