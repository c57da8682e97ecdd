"""The figure toolkit shared by ``plots`` (leaderboard figures) and ``paper_figures`` (the seed papers'
views): one colour per method, hollow marks for degenerate runs, notes for missing data, atomic PNG
writes and label placement.  matplotlib's object API only (no pyplot state, no backend switch)."""
from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from bench.io import atomic_write_bytes
from bench.report.compare import BASELINE
from bench.report.leaderboard import Entry, Leaderboard

DPI = 130


def colors_of(lb: Leaderboard) -> dict[str, str]:
    """One colour per method label, the same in every figure; the baseline is black."""
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#7f7f7f"]
    labels = sorted({e.label for e in lb.entries if e.run.method != BASELINE})
    return {BASELINE: "black", **{lab: palette[i % len(palette)] for i, lab in enumerate(labels)}}


def face(e: Entry, color: str) -> str:
    """Marker/bar fill: the colour, or none (hollow) for a degenerate run."""
    return "none" if e.degenerate else color


def text_of(lb: Leaderboard, e: Entry) -> str:
    return lb.label(e) + (" (degenerate)" if e.degenerate else "")


def note(ax: Axes, text: str) -> None:
    ax.set_axis_off()
    ax.text(0.5, 0.5, textwrap.fill(text, 45), ha="center", va="center", transform=ax.transAxes,
            fontsize=10, color="0.35", bbox=dict(boxstyle="round", fc="0.95", ec="0.8"))


def save(fig: Figure, path: Path) -> Path:
    """Write the figure as PNG atomically (a kill mid-write leaves the previous file, never half a PNG)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return path


def panels(n: int, width: float, height: float, ncols: int | None = None) -> tuple[Figure, list[Axes]]:
    ncols = ncols or max(1, n)
    nrows = max(1, math.ceil(max(1, n) / ncols))
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[max(1, n):]:
        ax.set_axis_off()
    return fig, axes


def label_points(ax: Axes, items: Sequence[tuple[float, float, str, str]], fontsize: float = 9) -> None:
    """Annotate (x, y, text, colour) points, choosing for each label the first corner around
    its point whose box (estimated in display pixels) overlaps no label or point placed so far."""
    to_px = ax.transData.transform
    points = [to_px((x, y)) for x, y, _, _ in items]
    boxes = [(px - 5, py - 5, px + 5, py + 5) for px, py in points]
    corners = [(6, 5, "left", "bottom"), (6, -5, "left", "top"), (-6, 5, "right", "bottom"), (-6, -5, "right", "top")]
    for (x, y, text, color), (px, py) in zip(items, points):
        w, h = 0.62 * fontsize * len(text) * ax.figure.dpi / 72, 1.2 * fontsize * ax.figure.dpi / 72
        for dx, dy, ha, va in corners:
            x0 = px + dx if ha == "left" else px + dx - w
            y0 = py + dy if va == "bottom" else py + dy - h
            box = (x0, y0, x0 + w, y0 + h)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in boxes):
                break
        boxes.append(box)
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=fontsize,
                    color=color, fontweight="bold", zorder=6)
