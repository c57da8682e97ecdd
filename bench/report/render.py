"""The leaderboard as tables: a DataFrame (``leaderboard.csv``) and markdown (``leaderboard.md``)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from bench.api.metrics import MetricSpec
from bench.report.compare import BASELINE, CAPABILITY, CONTROL, GROUPS, Interval
from bench.report.leaderboard import Entry, Leaderboard

SUMMARY_COLUMNS = ["model", "method", "bias_type", "suite", "seed", "bias_reduction", "bias_reduction_lo",
                   "bias_reduction_hi", "capability_change_pct", "capability_change_pct_lo",
                   "capability_change_pct_hi", "bias_reduction_vs_finetune", "bias_reduction_vs_finetune_lo",
                   "bias_reduction_vs_finetune_hi", "degenerate", "n_seeds", "verdict"]
TOY_BUDGETS = ("cpu", "smoke")  # train_budget values far below the papers' training (a few dozen steps)


def arrow(spec: MetricSpec) -> str:
    """↑ higher is better, ↓ lower is better, →50 closer to 50 is better."""
    if spec.direction == "target":
        return "→?" if spec.target is None else f"→{spec.target:g}"
    return "↑" if spec.direction == "higher" else "↓"


def header(spec: MetricSpec) -> str:
    return f"{spec.key} ({arrow(spec)})"


def _group_header(spec: MetricSpec) -> str:
    return f"{spec.group}: {header(spec)}"


def to_frame(lb: Leaderboard) -> pd.DataFrame:
    """One row per entry: summary columns (``degenerate``: the guard's reason, empty if none; ``seed``:
    "0,1,2" for a row pooling training seeds), then per metric (grouped) its value (mean over seeds), the
    seed spread (``seed min``/``seed max``, when some row pools seeds), Δ and interval, for target metrics the
    change of the distance to the target (Δdist), and, when some row has a ``finetune`` control, the same
    against the control (``Δ vs finetune``, ``Δdist vs finetune``)."""
    rows = []
    pooled = any(e.seed_runs for e in lb.entries)
    controlled = any(e.control is not None for e in lb.entries)
    for e in lb.entries:
        r = e.run
        seed = r.doc.get("seed")
        row: dict[str, Any] = {"model": r.model, "method": r.method, "bias_type": r.bias_type,
                               "suite": r.doc.get("suite"), "seed": ",".join(map(str, seed)) if isinstance(seed, list)
                               else seed}
        for name, iv in (("bias_reduction", e.bias), ("capability_change_pct", e.capability),
                         ("bias_reduction_vs_finetune", e.control_bias)):
            row.update({name: iv.est if iv else math.nan, f"{name}_lo": iv.lo if iv else math.nan,
                        f"{name}_hi": iv.hi if iv else math.nan})
        row["degenerate"] = e.degenerate or ""
        row["n_seeds"] = len(e.seed_runs) or 1
        row["verdict"] = e.verdict
        row["run_id"] = r.doc.get("run_id")
        for key, spec in lb.specs.items():
            h = _group_header(spec)
            row[h] = r.metrics.get(key, math.nan)
            if pooled:
                row[f"{h} seed min"], row[f"{h} seed max"] = e.spread(key) or (math.nan, math.nan)
            c, cc = e.changes.get(key), e.control_changes.get(key)
            ivs = [("Δ", c.delta if c else None)]
            if spec.direction == "target":
                ivs.append(("Δdist", c.dist if c else None))
            if controlled:
                ivs.append((f"Δ vs {CONTROL}", cc.delta if cc else None))
                if spec.direction == "target":
                    ivs.append((f"Δdist vs {CONTROL}", cc.dist if cc else None))
            for name, iv in ivs:
                row.update({f"{h} {name}": iv.est if iv else math.nan, f"{h} {name} lo": iv.lo if iv else math.nan,
                            f"{h} {name} hi": iv.hi if iv else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def num(x: float, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "–"
    if 0 < abs(x) < 0.01:
        return f"{x:+.2g}" if sign else f"{x:.2g}"
    digits = 1 if abs(x) >= 10 else 2 if abs(x) >= 1 else 3
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def fmt_interval(iv: Interval | None, ci: bool = True) -> str:
    if iv is None:
        return "–"
    text = num(iv.est, sign=True) + ("*" if iv.sig else "")
    if ci and math.isfinite(iv.lo):
        text += f" [{num(iv.lo, True)}, {num(iv.hi, True)}]"
    return text


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    return ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head),
            *("| " + " | ".join(map(esc, r)) + " |" for r in rows)]


def _id_cells(lb: Leaderboard, e: Entry) -> list[str]:
    cells = [e.run.model, e.run.method + (" ⚠ degenerate" if e.degenerate else ""), e.run.bias_type or ""]
    if lb.multi_suite_seed:
        seed = e.run.doc.get("seed")
        cells += [str(e.run.doc.get("suite")), ",".join(map(str, seed)) if isinstance(seed, list) else str(seed)]
    return cells


def _id_head(lb: Leaderboard) -> list[str]:
    return ["model", "method", "bias type"] + (["suite", "seed"] if lb.multi_suite_seed else [])


def _cell(e: Entry, spec: MetricSpec) -> str:
    value = num(e.run.metrics.get(spec.key, math.nan))
    spread = e.spread(spec.key)
    if spread is not None:
        value += f" ({len(e.seed_runs)} seeds: {num(spread[0])}..{num(spread[1])})"
    c, cc = e.changes.get(spec.key), e.control_changes.get(spec.key)
    if c is None:
        return value
    text = f"{value}<br>Δ {fmt_interval(c.delta)}"
    if c.dist is not None:
        text += f"<br>Δ|·−{spec.target:g}| {fmt_interval(c.dist)}"
    if cc is not None:
        text += f"<br>vs {CONTROL}: Δ {fmt_interval(cc.delta)}"
        if cc.dist is not None:
            text += f", Δ|·−{spec.target:g}| {fmt_interval(cc.dist)}"
    return text


def achieved_half_widths(lb: Leaderboard) -> dict[str, float]:
    """Per headline metric with intervals: the median over rows of the 95% half-width of Δ against `none`."""
    out = {}
    for key in lb.specs:
        widths = [(c.delta.hi - c.delta.lo) / 2 for e in lb.entries if (c := e.changes.get(key)) is not None
                  and lb.headline(key) and math.isfinite(c.delta.lo)]
        if widths:
            out[key] = float(np.median(widths))
    return out


def _budget_line(lb: Leaderboard) -> str | None:
    """The training budgets of the fine-tuned rows, a cpu/smoke budget labelled a toy budget."""
    budgets: dict[str, set] = {}
    for e in lb.entries:
        info = e.run.doc.get("info", {}).get("method", {})
        if "method/budget" in info:
            budgets.setdefault(str(info["method/budget"]), set()).add(info.get("method/steps"))
    if not budgets:
        return None
    parts = []
    for budget, steps in sorted(budgets.items()):
        known = sorted(s for s in steps if isinstance(s, int))
        text = f"`{budget}`" + (f" ({'-'.join(map(str, sorted({known[0], known[-1]})))} optimizer steps)" if known else "")
        if budget in TOY_BUDGETS:
            text += ": a toy budget, far below the papers' training; fine-tuning effects are those of a short run"
        parts.append(text)
    return "- Training budget: " + "; ".join(parts) + "."


def _rule_text(lb: Leaderboard) -> str:
    r = lb.rule
    return (f"`{r.perplexity_key}` > {r.perplexity_ratio:g}x `{BASELINE}`'s, or `{r.lms_key}` more than "
            f"{r.lms_drop:g} points below `{BASELINE}`'s, or `{r.distinct_key}` < {r.distinct_min:g}")


def tax_table(lb: Leaderboard) -> list[str]:
    """The alignment-tax table (markdown lines): bias reduction (also against the fine-tuning control
    where one exists), capability change and verdict per entry."""
    controlled = any(e.control is not None for e in lb.entries)
    rows = [_id_cells(lb, e) + [fmt_interval(e.bias)] + ([fmt_interval(e.control_bias)] if controlled else [])
            + [fmt_interval(e.capability), e.verdict] for e in lb.entries]
    return _table(_id_head(lb) + ["bias reduction, pts (↑)"]
                  + ([f"bias reduction vs `{CONTROL}`, pts (↑)"] if controlled else [])
                  + ["capability change, % (↑)", "verdict"], rows)


def job_minutes(runs: list) -> float:
    """Sum of the runs' own wall times (``timings.total``, seconds: model load, method, benchmarks), minutes."""
    return sum(float(r.doc.get("timings", {}).get("total", 0.0)) for r in runs) / 60


def to_markdown(lb: Leaderboard, command: str, machine: str, generated: str, results_dir: str,
                wall: str | None = None) -> str:
    """The leaderboard page; ``wall``: the elapsed time of the command(s) that produced the runs, if known."""
    runs = [e.run for e in lb.entries]
    codes = sorted({r.code_version for r in runs})
    pooled = [r for e in lb.entries for r in (e.seed_runs or [e.run])]
    lines = [
        "# taxbench leaderboard", "",
        f"- Command: `{command}`",
        f"- Machine: {machine}",
        f"- Time: {len(pooled)} jobs, {job_minutes(pooled):.0f} min of job time (sum of the result files' "
        "`timings.total`)" + (f"; wall time of the command(s): {wall}" if wall else ""),
        f"- Generated: {generated} from {len({r.path for r in pooled})} result files in `{results_dir}/runs`"
        f" ({len(lb.superseded)} superseded by newer runs, {len(lb.skipped)} unreadable skipped); code {', '.join(codes)}"
        + (f" (pinned with --code-version {lb.pinned})" if lb.pinned else ""),
        f"- Δ = run − `{BASELINE}` on the same model, suite and seed. [lo, hi] = 95% paired bootstrap percentile "
        f"interval ({lb.n_boot} resamples of the example ids both runs scored, seed {lb.seed}); "
        "`*` = the interval excludes 0. Arrows: ↑ higher is better, ↓ lower is better, →50 closer to 50 is better; "
        "Δ|·−50| is the change of the distance to 50 (negative = closer).",
    ]
    widths = achieved_half_widths(lb)
    if widths:
        lines.append("- Achieved 95% half-width of Δ (median over rows): "
                     + ", ".join(f"`{k}` ±{num(v)}" for k, v in widths.items()) + ".")
    if any(e.seed_runs for e in lb.entries):
        lines.append("- Rows with several training seeds: mean over seeds; interval from a two-level bootstrap "
                     "(resample seeds, then the example ids paired with each seed's `none` run); "
                     "(k seeds: min..max) is the seed spread.")
    if any(e.control is not None for e in lb.entries):
        lines.append(f"- Fine-tuning methods are also compared with the `{CONTROL}` control (plain LM fine-tuning, "
                     "same corpus, budget, seed): \"lowers bias beyond fine-tuning\" needs the bias reduction against "
                     "it to be significant.")
    lines += [
        f"- Degeneracy guard ({_rule_text(lb)}): such a row is marked ⚠ degenerate and its bias change is never a win.",
        *([b] if (b := _budget_line(lb)) else []),
        "", "## Alignment tax", "",
        f"Bias reduction: mean decrease of the distance to the ideal over {', '.join(f'`{k}`' for k in lb.bias_keys) or '–'}"
        " (points; > 0 = less biased). Capability change: relative change (%, > 0 = better; for a ↓ metric, of its "
        "reciprocal, e.g. perplexity → per-token probability, so no term falls below -100) of "
        f"{', '.join(f'`{k}`' for k in lb.capability_keys) or '–'}, averaged within each of "
        f"{', '.join(CAPABILITY)}, then across them. Verdict: significant changes of whole-benchmark metrics.", "",
    ]
    lines += tax_table(lb)
    for group in GROUPS:
        specs = [s for s in lb.specs.values() if s.group == group and lb.headline(s.key)]
        if not specs:
            continue
        lines += ["", f"## {group.capitalize()}", ""]
        lines += _table(_id_head(lb) + [header(s) for s in specs],
                        [_id_cells(lb, e) + [_cell(e, s) for s in specs] for e in lb.entries])
        lines += ["", *(f"- `{s.key}` ({arrow(s)}): {s.help}" for s in specs)]
    breakdown = [s for s in lb.specs.values() if not lb.headline(s.key)]
    if breakdown:
        lines += ["", "## Breakdowns", "", f"Value (Δ against `{BASELINE}`, `*` = significant) per subset of examples.", ""]
        for model in lb.models:
            entries = [e for e in lb.entries if e.run.model == model]
            lines += [f"### {model}", ""]
            lines += _table(["metric", "subset"] + [e.label for e in entries], [
                [header(s), ", ".join(f"{k}={v}" for k, v in s.where.items())] + [
                    num(e.run.metrics.get(s.key, math.nan))
                    + (f" ({fmt_interval(e.changes[s.key].delta, ci=False)})"
                       if s.key in e.changes else "") for e in entries] for s in breakdown])
            lines.append("")
    if lb.superseded:
        lines += ["", "## Superseded runs", "", "Runs of the cells above replaced by a run at a newer code version or a "
                  "newer rerun (`taxbench leaderboard --code-version <v>` pins one version):", ""]
        lines += _table(["result file", "model", "method", "bias type", "code version", "created"],
                        [[r.path.name, r.model, r.method, r.bias_type or "", r.code_version, str(r.doc.get("created"))]
                         for r in sorted(lb.superseded, key=lambda r: (r.model, r.method, r.path.name))])
    if lb.skipped:
        lines += ["", "## Skipped files", "", *(f"- {m}" for m in lb.skipped)]
    return "\n".join(lines).rstrip() + "\n"
