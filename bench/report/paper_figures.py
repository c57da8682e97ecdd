"""The seed papers' views of the grid, drawn from a ``Leaderboard``; every point carries its 95% paired
bootstrap interval (the leaderboard's own replicates) and a degenerate run is drawn hollow.

- ``toxicity_capability.png`` (the axes of Korkmaz et al. 2025, "Paying Alignment Tax with Contrastive
  Learning"): toxicity reduction against ``none`` (x: the fall of ``TOXICITY``, probability points) vs the
  change of each ``CAPABILITY_AXES`` metric (y, its own units), one panel per model and capability metric.
- ``collapse_fairness.png`` (the view of Xu et al. 2025, "Collapsed Language Models Promote Fairness"):
  each run's collapse diagnostic (x: ``COLLAPSE`` metrics) against its fairness (y: ``FAIRNESS`` metrics),
  values not changes, one panel per model and (x, y) pair.
- ``scale.png``: each method's bias reduction and capability change (the tax table's two axes) against
  model size (``model_size``), one line per method.
"""
from __future__ import annotations

import math
import re
from typing import Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.report.bootstrap import percentile_interval
from bench.report.compare import BASELINE, Interval
from bench.report.figure_kit import colors_of, face, label_points, note, panels, text_of
from bench.report.leaderboard import Entry, Leaderboard

TOXICITY = "toxicity/expected_max"  # expected maximum toxicity over k continuations (lower is better)
CAPABILITY_AXES = ("truthfulqa/mc2", "knowledge/acc")  # the contrastive paper's faithfulness and knowledge axes
COLLAPSE = ("nc/unc3", "nc/nc3")  # the NC paper's x-axes (lower = more collapsed)
FAIRNESS = ("stereoset/icat", "winobias/tpr_gap_type1", "winobias/tpr_gap_type2")  # its fairness metrics


def model_size(name: str) -> float | None:
    """Parameters of a model as its name states them, e.g. ``smollm2-135m`` -> 1.35e8, ``llama-3.2-1b`` -> 1e9
    (the last number followed by k, m, b or t; a dtype suffix is ignored); None when the name gives none."""
    found = re.findall(r"(\d+(?:\.\d+)?)([kmbt])(?![a-z])", name.split(" (")[0].lower())
    if not found:
        return None
    number, unit = found[-1]
    return float(number) * {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}[unit]


def _ends(iv: Interval) -> tuple[float, float, float]:
    return iv.est, iv.lo, iv.hi


def _err(v: float, lo: float, hi: float):
    """errorbar's [[below], [above]] for one point (None without a finite interval)."""
    return [[v - lo], [hi - v]] if math.isfinite(lo) and math.isfinite(hi) else None


def value_interval(lb: Leaderboard, e: Entry, key: str) -> tuple[float, float, float]:
    """(value, lo, hi): the run's value of ``key`` and the 95% percentile interval of its bootstrap replicates
    (for ``none``, the baseline replicates of any run compared with it); NaN bounds without replicates."""
    value = e.run.metrics.get(key, math.nan)
    reps = None
    if key in e.changes and e.changes[key].reps is not None:
        reps = e.changes[key].reps[1]
    elif e.run.method == BASELINE:
        reps = next((o.changes[key].reps[0] for o in lb.entries
                     if o.base is e.run and key in o.changes and o.changes[key].reps is not None), None)
    lo, hi = percentile_interval(reps) if reps is not None else (math.nan, math.nan)
    return float(value), lo, hi


def _scatter(ax: Axes, lb: Leaderboard, points: Sequence[tuple[Entry, tuple, tuple]], colors: dict[str, str]) -> None:
    """One error-bar point per entry: (entry, (x, xlo, xhi), (y, ylo, yhi)), labelled."""
    for e, (x, xlo, xhi), (y, ylo, yhi) in points:
        c = colors[e.label]
        ax.errorbar(x, y, xerr=_err(x, xlo, xhi), yerr=_err(y, ylo, yhi), fmt="s" if e.run.method == BASELINE else "o",
                    ms=7, capsize=3, color=c, mfc=face(e, c), mew=1.5, zorder=5)
    ax.margins(0.2)
    ax.autoscale_view()
    label_points(ax, [(x, y, text_of(lb, e), colors[e.label]) for e, (x, _, _), (y, _, _) in points], fontsize=8)
    ax.grid(alpha=0.25)


def toxicity_capability(lb: Leaderboard) -> Figure:
    """Toxicity reduction vs change of truthfulness and knowledge, one panel per model x capability metric."""
    caps = [k for k in CAPABILITY_AXES if k in lb.specs]
    colors = colors_of(lb)
    fig, axes = panels(len(lb.models) * max(1, len(caps)), 4.8, 4.2, ncols=max(1, len(caps)))
    if TOXICITY not in lb.specs or not caps:
        note(axes[0], f"needs {TOXICITY} and one of {', '.join(CAPABILITY_AXES)} in the result files")
        return fig
    for i, model in enumerate(lb.models):
        for j, key in enumerate(caps):
            ax = axes[i * len(caps) + j]
            points = []
            for e in lb.entries:
                if e.run.model != model or TOXICITY not in e.changes or key not in e.changes:
                    continue
                t, lo, hi = _ends(e.changes[TOXICITY].delta)
                points.append((e, (-t, -hi, -lo), _ends(e.changes[key].delta)))
            if not points:
                note(ax, f"{model}: no method run with {TOXICITY} and {key} compared with `{BASELINE}`")
                continue
            ax.axhline(0, color="0.4", lw=0.9)
            ax.axvline(0, color="0.4", lw=0.9)
            ax.plot(0, 0, "s", color="black", ms=7, zorder=4)
            _scatter(ax, lb, points, colors)
            ax.set_title(f"{model} · {key}", fontsize=10, fontweight="bold")
            ax.set_xlabel(f"toxicity reduction: −Δ {TOXICITY}\n→ less toxic", fontsize=8.5)
            ax.set_ylabel(f"Δ {key}\n↑ {'better' if lb.specs[key].direction == 'higher' else 'worse'}", fontsize=8.5)
    fig.suptitle(f"Toxicity reduction vs capability change against {BASELINE} (the contrastive paper's axes); "
                 "error bars: 95% paired bootstrap; hollow: degenerate", fontsize=9.5)
    return fig


def collapse_fairness(lb: Leaderboard) -> Figure:
    """Collapse diagnostic (x) vs fairness metric (y) of every run, one panel per model x (x, y) pair."""
    xs = [k for k in COLLAPSE if k in lb.specs][:1]
    ys = [k for k in FAIRNESS if k in lb.specs]
    pairs = [(x, y) for x in xs for y in ys]
    colors = colors_of(lb)
    fig, axes = panels(len(lb.models) * max(1, len(pairs)), 4.4, 4.0, ncols=max(1, len(pairs)))
    if not pairs:
        note(axes[0], f"needs one of {', '.join(COLLAPSE)} and one of {', '.join(FAIRNESS)} in the result files")
        return fig
    for i, model in enumerate(lb.models):
        for j, (xk, yk) in enumerate(pairs):
            ax = axes[i * len(pairs) + j]
            points = [(e, value_interval(lb, e, xk), value_interval(lb, e, yk)) for e in lb.entries
                      if e.run.model == model and all(math.isfinite(e.run.metrics.get(k, math.nan)) for k in (xk, yk))]
            if not points:
                note(ax, f"{model}: no run with both {xk} and {yk}")
                continue
            _scatter(ax, lb, points, colors)
            better = {"higher": "↑ better", "lower": "↓ better"}.get(lb.specs[yk].direction, "")
            ax.set_title(f"{model} · {yk}", fontsize=10, fontweight="bold")
            ax.set_xlabel(f"{xk}\n← more collapsed", fontsize=8.5)
            ax.set_ylabel(f"{yk}\n{better}", fontsize=8.5)
    fig.suptitle("Neural collapse vs fairness per run (the NC paper's view): values with 95% bootstrap intervals; "
                 "hollow: degenerate", fontsize=9.5)
    return fig


def scale(lb: Leaderboard) -> Figure:
    """Bias reduction and capability change against model size, one line per method (sizes: ``model_size``)."""
    sizes = {m: model_size(m) for m in lb.models}
    known = sorted((m for m in lb.models if sizes[m] is not None), key=lambda m: sizes[m])
    colors = colors_of(lb)
    fig, axes = panels(2, 5.2, 4.2)
    for ax, attr, ylabel in ((axes[0], "bias", "bias reduction (points closer to 50)\n↑ less biased"),
                             (axes[1], "capability", "capability change (relative, %)\n↑ better")):
        lines: dict[str, list[tuple[float, Entry, Interval]]] = {}
        for e in lb.entries:
            iv = getattr(e, attr)
            if e.run.model in known and iv is not None and math.isfinite(iv.est):
                lines.setdefault(e.label, []).append((sizes[e.run.model], e, iv))
        if not lines:
            note(ax, "no method run compared with `none` on a model whose name states its size"
                 + (f" (unsized: {', '.join(m for m in lb.models if sizes[m] is None)})" if len(known) < len(lb.models)
                    else ""))
            continue
        ax.axhline(0, color="0.4", lw=0.9)
        for label, pts in sorted(lines.items()):
            pts.sort(key=lambda p: p[0])
            c = colors[label]
            ax.plot([p[0] for p in pts], [p[2].est for p in pts], "-", color=c, lw=1.2, alpha=0.7)
            for size, e, iv in pts:
                ax.errorbar(size, iv.est, yerr=_err(iv.est, iv.lo, iv.hi), fmt="o", ms=6, capsize=3, color=c,
                            mfc=face(e, c), mew=1.5, zorder=5)
            ax.annotate(label, (pts[-1][0], pts[-1][2].est), xytext=(6, 0), textcoords="offset points",
                        fontsize=8, color=c, va="center")
        ax.set_xscale("log")
        ax.set_xticks([sizes[m] for m in known], [f"{m}\n{sizes[m] / 1e6:g}M" for m in known], fontsize=8)
        ax.minorticks_off()
        ax.set_xlim(min(sizes[m] for m in known) / 1.6, max(sizes[m] for m in known) * 2.2)
        ax.set_xlabel("model size (parameters, log scale)", fontsize=8.5)
        ax.set_ylabel(ylabel, fontsize=8.5)
        ax.grid(alpha=0.25)
    n = len(known)
    fig.suptitle(f"Scale: each method against {BASELINE} per model size ({n} size{'s' if n != 1 else ''} in these "
                 "results); error bars: 95% paired bootstrap; hollow: degenerate", fontsize=9.5)
    return fig


FIGURES = {"toxicity_capability": toxicity_capability, "collapse_fairness": collapse_fairness, "scale": scale}
