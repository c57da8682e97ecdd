"""Leaderboard: result files -> one row per (model, method, bias type) with every metric,
its change against ``none`` on the same model, suite and seed (95% paired bootstrap
interval over examples), and an alignment-tax verdict.

``main`` writes ``<out>/leaderboard.md``, ``<out>/leaderboard.csv`` and ``<out>/plots/``.
When several result files share (model, method, bias type, suite, seed) the newest
(``created``) wins; unreadable files are skipped with a ``ResultFileWarning``.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import warnings
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from bench.bootstrap import Groups, excludes_zero, group_by_id, paired_replicates, percentile_interval
from bench.errors import TaxbenchError
from bench.io import atomic_write_bytes
from bench.metrics import MetricSpec, distance_to_ideal
from bench.results import load_result

GROUPS = ("bias", "toxicity", "truthfulness", "knowledge", "fluency", "diagnostic")  # column groups, in order
CAPABILITY = ("truthfulness", "knowledge", "fluency")  # groups whose loss is the alignment tax
# Left out of the default capability change (still in the table and the verdict): generation-pattern shares,
# drawn in the intelligibility figure; a relative change of a share near 0 means nothing.
NOT_IN_CAPABILITY = ("patterns/",)
BASELINE = "none"
SUMMARY_COLUMNS = ["model", "method", "bias_type", "suite", "seed", "bias_reduction", "bias_reduction_lo",
                   "bias_reduction_hi", "capability_change_pct", "capability_change_pct_lo",
                   "capability_change_pct_hi", "verdict"]


class ResultFileWarning(UserWarning):
    """A result or records file was skipped."""


def arrow(spec: MetricSpec) -> str:
    """↑ higher is better, ↓ lower is better, →50 closer to 50 is better."""
    if spec.direction == "target":
        return "→?" if spec.target is None else f"→{spec.target:g}"
    return "↑" if spec.direction == "higher" else "↓"


def header(spec: MetricSpec) -> str:
    return f"{spec.key} ({arrow(spec)})"


def breakdowns(specs: Iterable[MetricSpec]) -> dict[str, str]:
    """Subset metrics -> their whole-benchmark metric: a metric is a breakdown (e.g. SS per domain) when it
    filters records (``where``) and the same benchmark reports the same field unfiltered."""
    specs = list(specs)
    whole = {(s.key.split("/")[0], s.field, s.aggregate): s.key for s in specs if not s.where}
    return {s.key: whole[k] for s in specs if s.where and (k := (s.key.split("/")[0], s.field, s.aggregate)) in whole}


def _spec(d: dict[str, Any]) -> MetricSpec:
    names = {f.name for f in fields(MetricSpec)}
    return MetricSpec(**{k: v for k, v in d.items() if k in names})


# ---------------------------------------------------------------- result files


@dataclass
class Run:
    path: Path  # the result file
    doc: dict[str, Any]
    specs: dict[str, MetricSpec]
    _groups: dict[str, Groups | None] = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return self.doc["model"]["name"]

    @property
    def method(self) -> str:
        return self.doc["method"]["name"]

    @property
    def bias_type(self) -> str | None:
        return self.doc["method"].get("bias_type")

    @property
    def key(self) -> tuple:
        return self.model, self.method, self.bias_type, self.doc.get("suite"), self.doc.get("seed")

    @property
    def metrics(self) -> dict[str, float]:
        return self.doc.get("metrics", {})

    @cached_property
    def records(self) -> dict[str, list[dict]]:
        """Per-example records by benchmark ({} when the records file is missing or unreadable: warns)."""
        rel = self.doc.get("records_path")
        path = self.path.parent / rel if rel else None
        by_bench: dict[str, list[dict]] = {}
        try:
            if path is None or not path.exists():
                raise TaxbenchError("records file missing")
            for line in path.read_text().splitlines():
                if line.strip():
                    r = json.loads(line)
                    by_bench.setdefault(r.get("benchmark", ""), []).append(r)
        except (TaxbenchError, json.JSONDecodeError, OSError) as exc:
            warnings.warn(f"no intervals for {self.path}: records {path}: {exc}", ResultFileWarning, stacklevel=2)
            return {}
        return by_bench

    def groups(self, spec: MetricSpec) -> Groups | None:
        """Records of the benchmark that produced ``spec``, by example id (None if not found).

        The benchmark is the key's prefix, else the only benchmark whose records carry spec.field."""
        by_bench = self.records
        name = spec.key.split("/")[0]
        if name not in by_bench:
            carriers = [b for b, rs in by_bench.items() if spec.field and all(spec.field in r for r in rs)]
            name = carriers[0] if len(carriers) == 1 else None
        if name is None:
            return None
        if name not in self._groups:
            try:
                self._groups[name] = group_by_id(by_bench[name])
            except KeyError:
                warnings.warn(f"no intervals for {name} of {self.path}: a record has no id", ResultFileWarning,
                              stacklevel=2)
                self._groups[name] = None
        return self._groups[name]


def read_run(path: Path) -> Run:
    doc = load_result(path)
    for part in ("model", "method"):
        if not isinstance(doc.get(part), dict) or "name" not in doc[part]:
            raise TaxbenchError(f"no {part}.name")
    return Run(Path(path), doc, {k: _spec(v) for k, v in doc.get("metric_specs", {}).items()})


def load_runs(results_dir: str | Path) -> tuple[list[Run], list[str], int]:
    """(newest run per key, skipped file messages, number of superseded runs)."""
    latest: dict[tuple, Run] = {}
    skipped, superseded = [], 0
    for path in sorted((Path(results_dir) / "runs").glob("*.json")):
        try:
            run = read_run(path)
        except (TaxbenchError, KeyError, TypeError, ValueError, AttributeError) as exc:
            msg = f"skipping result file {path}: {exc}"
            warnings.warn(msg, ResultFileWarning, stacklevel=2)
            skipped.append(msg)
            continue
        old = latest.get(run.key)
        if old is not None:
            superseded += 1
            if (run.doc.get("created", ""), run.path.name) < (old.doc.get("created", ""), old.path.name):
                continue
        latest[run.key] = run
    return list(latest.values()), skipped, superseded


# ---------------------------------------------------------------- comparisons


@dataclass(frozen=True)
class Interval:
    est: float  # point estimate
    lo: float = math.nan  # 95% bootstrap percentile interval
    hi: float = math.nan

    @property
    def sig(self) -> bool:
        return excludes_zero(self.lo, self.hi)

    @classmethod
    def of(cls, est: float, reps: np.ndarray | None) -> "Interval":
        return cls(est, *percentile_interval(reps)) if reps is not None else cls(est)


def improvement(spec: MetricSpec, base, value):
    """How much better ``value`` is than ``base`` (arrays allowed): distance-to-ideal reduction."""
    return distance_to_ideal(spec, base) - distance_to_ideal(spec, value)


@dataclass
class Change:
    """One metric of a method run against the ``none`` run."""

    spec: MetricSpec
    base: float  # value in the `none` run
    value: float  # value in this run
    reps: tuple[np.ndarray, np.ndarray] | None  # bootstrap replicates (base, this run)

    @cached_property
    def delta(self) -> Interval:
        return Interval.of(self.value - self.base, None if self.reps is None else self.reps[1] - self.reps[0])

    @cached_property
    def dist(self) -> Interval | None:
        """Change of |value - target| (target metrics; negative = closer to the target)."""
        if self.spec.direction != "target":
            return None
        t = self.spec.target
        d = None if self.reps is None else np.abs(self.reps[1] - t) - np.abs(self.reps[0] - t)
        return Interval.of(abs(self.value - t) - abs(self.base - t), d)

    @property
    def effect(self) -> int:
        """+1 significantly better, -1 significantly worse, 0 otherwise."""
        iv = self.dist or self.delta
        if not iv.sig:
            return 0
        better = iv.est < 0 if self.spec.direction in ("lower", "target") else iv.est > 0
        return 1 if better else -1


@dataclass
class Entry:
    """One leaderboard row: a run and its comparison with ``none``."""

    run: Run
    base: Run | None  # the `none` run on the same model, suite and seed
    changes: dict[str, Change] = field(default_factory=dict)
    bias: Interval | None = None  # bias reduction, points of distance to ideal (> 0 = less biased)
    capability: Interval | None = None  # mean relative capability change, % (> 0 = better)
    verdict: str = ""

    @property
    def label(self) -> str:
        return self.run.method if self.run.bias_type is None else f"{self.run.method}/{self.run.bias_type}"


def _compare(base: Run, run: Run, n_boot: int, seed: int) -> dict[str, Change]:
    changes = {}
    for key, spec in run.specs.items():
        if not all(isinstance(r.metrics.get(key), (int, float)) for r in (base, run)):
            continue
        gb, gr = base.groups(spec), run.groups(spec)
        reps = None if gb is None or gr is None else paired_replicates(
            spec, gb, gr, n_boot, seed, stream=spec.key.split("/")[0])
        changes[key] = Change(spec, float(base.metrics[key]), float(run.metrics[key]), reps)
    return changes


def _mean_improvement(changes: list[Change], relative: bool) -> Interval | None:
    """Distance-to-ideal reduction averaged over metrics, first within each group, then over groups
    (relative: each in % of |base|, metrics with base 0 left out; a lower-is-better metric as the
    relative change of its reciprocal, e.g. perplexity as per-token probability, so that every term
    lies in [-100, inf) and one broken model cannot swamp the average).  The interval comes from the
    same average of the replicates."""
    if relative:
        changes = [c for c in changes if c.base != 0 and math.isfinite(c.base)]
    if not changes:
        return None

    def one(c: Change, base, value):
        if not relative:
            return improvement(c.spec, base, value)
        with np.errstate(divide="ignore", invalid="ignore"):
            if c.spec.direction == "lower":
                return 100 * (base / value - 1)
            return 100 * improvement(c.spec, base, value) / np.abs(base)

    def average(values: list) -> Any:
        groups = list(dict.fromkeys(c.spec.group for c in changes))
        return np.mean([np.mean([v for c, v in zip(changes, values) if c.spec.group == g], axis=0) for g in groups],
                       axis=0)

    est = float(average([one(c, c.base, c.value) for c in changes]))
    if any(c.reps is None for c in changes):
        return Interval(est)
    return Interval.of(est, average([one(c, *c.reps) for c in changes]))


def verdict(entry: Entry, headline: set[str]) -> str:
    """E.g. "lowers bias; pays tax: knowledge/acc worse" from the bias reduction and the significant changes
    of the whole-benchmark (``headline``) capability and toxicity metrics."""
    if entry.base is None:
        return "baseline" if entry.run.method == BASELINE else f"no `{BASELINE}` run to compare with"
    if entry.bias is None:
        parts = ["bias not measured"]
    elif entry.bias.sig:
        parts = ["lowers bias" if entry.bias.est > 0 else "raises bias"]
    else:
        parts = ["no significant bias change"]
    changes = [c for k, c in entry.changes.items() if k in headline]
    capability = [c for c in changes if c.spec.group in CAPABILITY]
    worse = [c.spec.key for c in capability if c.effect == -1]
    gains = [c.spec.key for c in capability if c.effect == 1]
    toxicity = {c.effect for c in changes if c.spec.group == "toxicity"}
    if worse:
        parts.append("pays tax: " + ", ".join(worse) + " worse")
    elif capability and all(c.reps is None for c in capability):
        parts.append("capability change without intervals")
    elif capability:
        parts.append("no significant capability loss")
    if gains:
        parts.append("gains: " + ", ".join(gains) + " better")
    if toxicity & {-1, 1}:
        parts.append("more toxic" if -1 in toxicity else "less toxic")
    return "; ".join(parts)


@dataclass
class Leaderboard:
    entries: list[Entry]
    specs: dict[str, MetricSpec]  # every metric, in column order
    parents: dict[str, str]  # breakdown metric -> its whole-benchmark metric
    bias_keys: list[str]  # metrics averaged into the bias reduction
    capability_keys: list[str]  # metrics averaged into the capability change
    skipped: list[str]
    superseded: int
    n_boot: int
    seed: int

    def entry(self, model: str, method: str, bias_type: str | None = None) -> Entry:
        for e in self.entries:
            if (e.run.model, e.run.method) == (model, method) and (bias_type is None or e.run.bias_type == bias_type):
                return e
        raise KeyError(f"no entry for {model}/{method}/{bias_type}")

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(e.run.model for e in self.entries))

    def label(self, e: Entry) -> str:
        """The entry's method label, plus suite and seed when the leaderboard holds several."""
        run = e.run
        return e.label + (f" [{run.doc.get('suite')}, seed {run.doc.get('seed')}]" if _multi_suite_seed(self) else "")

    def headline(self, key: str) -> bool:
        """A whole-benchmark metric (not a per-subset breakdown)."""
        return key in self.specs and key not in self.parents


def _column_order(runs: Sequence[Run]) -> tuple[dict[str, MetricSpec], dict[str, str]]:
    specs: dict[str, MetricSpec] = {}
    for run in runs:
        for key, spec in run.specs.items():
            if key in run.metrics and spec.group in GROUPS:
                specs.setdefault(key, spec)
    parents, order = breakdowns(specs.values()), list(specs)
    specs = dict(sorted(specs.items(), key=lambda kv: (GROUPS.index(kv[1].group), kv[0] in parents,
                                                       order.index(kv[0]))))
    return specs, parents


def build(results_dir: str | Path = "results", n_boot: int = 1000, seed: int = 0,
          bias_keys: Sequence[str] | None = None, capability_keys: Sequence[str] | None = None) -> Leaderboard:
    """Read result files and compare every run with ``none`` (bootstrap: n_boot resamples, seed).

    bias_keys default: whole-benchmark bias metrics with a target (SS, CrowS: points from 50, one scale);
    capability_keys default: whole-benchmark truthfulness/knowledge/fluency metrics with a direction,
    except NOT_IN_CAPABILITY."""
    runs, skipped, superseded = load_runs(results_dir)
    if not runs:
        raise TaxbenchError(f"no readable result files in {Path(results_dir) / 'runs'}")
    specs, parents = _column_order(runs)
    headline = set(specs) - set(parents)
    if bias_keys is None:
        bias_keys = [k for k in headline if specs[k].group == "bias" and specs[k].direction == "target"]
    if capability_keys is None:
        capability_keys = [k for k in headline if specs[k].group in CAPABILITY and specs[k].direction != "target"
                           and not k.startswith(NOT_IN_CAPABILITY)]
    bias_keys = [k for k in specs if k in bias_keys]  # column order
    capability_keys = [k for k in specs if k in capability_keys]
    bases = {(r.model, r.doc.get("suite"), r.doc.get("seed")): r for r in runs if r.method == BASELINE}
    entries = []
    for run in sorted(runs, key=lambda r: (r.model, r.method != BASELINE, r.method, str(r.bias_type),
                                          str(r.doc.get("suite")), str(r.doc.get("seed")))):
        base = bases.get((run.model, run.doc.get("suite"), run.doc.get("seed")))
        entry = Entry(run, base if run.method != BASELINE else None)
        if entry.base is not None:
            entry.changes = _compare(entry.base, run, n_boot, seed)
            entry.bias = _mean_improvement([entry.changes[k] for k in bias_keys if k in entry.changes], False)
            entry.capability = _mean_improvement(
                [entry.changes[k] for k in capability_keys if k in entry.changes], True)
        entry.verdict = verdict(entry, headline)
        entries.append(entry)
    return Leaderboard(entries, specs, parents, bias_keys, capability_keys, skipped, superseded, n_boot, seed)


# ---------------------------------------------------------------- table


def _group_header(spec: MetricSpec) -> str:
    return f"{spec.group}: {header(spec)}"


def to_frame(lb: Leaderboard) -> pd.DataFrame:
    """One row per entry: summary columns, then per metric (grouped) its value, Δ and interval,
    and for target metrics the change of the distance to the target (Δdist)."""
    rows = []
    for e in lb.entries:
        r = e.run
        row: dict[str, Any] = {"model": r.model, "method": r.method, "bias_type": r.bias_type,
                               "suite": r.doc.get("suite"), "seed": r.doc.get("seed")}
        for name, iv in (("bias_reduction", e.bias), ("capability_change_pct", e.capability)):
            row.update({name: iv.est if iv else math.nan, f"{name}_lo": iv.lo if iv else math.nan,
                        f"{name}_hi": iv.hi if iv else math.nan})
        row["verdict"] = e.verdict
        row["run_id"] = r.doc.get("run_id")
        for key, spec in lb.specs.items():
            h = _group_header(spec)
            row[h] = r.metrics.get(key, math.nan)
            c = e.changes.get(key)
            ivs = [("Δ", c.delta if c else None)]
            if spec.direction == "target":
                ivs.append(("Δdist", c.dist if c else None))
            for name, iv in ivs:
                row.update({f"{h} {name}": iv.est if iv else math.nan, f"{h} {name} lo": iv.lo if iv else math.nan,
                            f"{h} {name} hi": iv.hi if iv else math.nan})
        rows.append(row)
    return pd.DataFrame(rows)


def build_table(results_dir: str | Path = "results", n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The leaderboard as a DataFrame (what leaderboard.csv holds)."""
    return to_frame(build(results_dir, n_boot, seed))


# ---------------------------------------------------------------- markdown


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
    cells = [e.run.model, e.run.method, e.run.bias_type or ""]
    if _multi_suite_seed(lb):
        cells += [str(e.run.doc.get("suite")), str(e.run.doc.get("seed"))]
    return cells


def _id_head(lb: Leaderboard) -> list[str]:
    return ["model", "method", "bias type"] + (["suite", "seed"] if _multi_suite_seed(lb) else [])


def _multi_suite_seed(lb: Leaderboard) -> bool:
    return len({(e.run.doc.get("suite"), e.run.doc.get("seed")) for e in lb.entries}) > 1


def _cell(e: Entry, spec: MetricSpec) -> str:
    value = num(e.run.metrics.get(spec.key, math.nan))
    c = e.changes.get(spec.key)
    if c is None:
        return value
    text = f"{value}<br>Δ {fmt_interval(c.delta)}"
    if c.dist is not None:
        text += f"<br>Δ|·−{spec.target:g}| {fmt_interval(c.dist)}"
    return text


def to_markdown(lb: Leaderboard, command: str, machine: str, generated: str, results_dir: str) -> str:
    runs = [e.run for e in lb.entries]
    codes = sorted({str(r.doc.get("versions", {}).get("code_version") or r.doc.get("versions", {}).get("taxbench"))
                    for r in runs})
    lines = [
        "# taxbench leaderboard", "",
        f"- Command: `{command}`",
        f"- Machine: {machine}",
        f"- Generated: {generated} from {len(runs)} result files in `{results_dir}/runs`"
        f" ({lb.superseded} superseded by newer runs, {len(lb.skipped)} unreadable skipped); code {', '.join(codes)}",
        f"- Δ = run − `{BASELINE}` on the same model, suite and seed. [lo, hi] = 95% paired bootstrap percentile "
        f"interval ({lb.n_boot} resamples of the example ids both runs scored, seed {lb.seed}); "
        "`*` = the interval excludes 0. Arrows: ↑ higher is better, ↓ lower is better, →50 closer to 50 is better; "
        "Δ|·−50| is the change of the distance to 50 (negative = closer).",
        "", "## Alignment tax", "",
        f"Bias reduction: mean decrease of the distance to the ideal over {', '.join(f'`{k}`' for k in lb.bias_keys) or '–'}"
        " (points; > 0 = less biased). Capability change: relative change (%, > 0 = better; for a ↓ metric, of its "
        "reciprocal, e.g. perplexity → per-token probability, so no term falls below -100) of "
        f"{', '.join(f'`{k}`' for k in lb.capability_keys) or '–'}, averaged within each of "
        f"{', '.join(CAPABILITY)}, then across them. Verdict: significant changes of whole-benchmark metrics.", "",
    ]
    rows = [_id_cells(lb, e) + [fmt_interval(e.bias), fmt_interval(e.capability), e.verdict] for e in lb.entries]
    lines += _table(_id_head(lb) + ["bias reduction, pts (↑)", "capability change, % (↑)", "verdict"], rows)
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
    if lb.skipped:
        lines += ["", "## Skipped files", "", *(f"- {m}" for m in lb.skipped)]
    return "\n".join(lines).rstrip() + "\n"


# ---------------------------------------------------------------- entry point


def _meta(results_dir: Path) -> dict[str, Any]:
    path = results_dir / "leaderboard_meta.json"
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        warnings.warn(f"ignoring {path}: {exc}", ResultFileWarning, stacklevel=2)
        return {}


def main(results_dir: str | Path = "results", out_dir: str | Path | None = None, n_boot: int = 1000, seed: int = 0,
         command: str | None = None, machine: str | None = None, plots: bool = True) -> dict[str, Any]:
    """Write leaderboard.md, leaderboard.csv, site/index.html and (plots=True) plots/*.png under out_dir
    (default results_dir).

    command / machine for the markdown header: arguments, else results_dir/leaderboard_meta.json
    ({"command": ..., "machine": ...}), else the leaderboard command and the runs' platforms.
    Returns {"markdown": path, "csv": path, "site": path, "plots": [paths], "leaderboard": Leaderboard}."""
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir
    lb = build(results_dir, n_boot, seed)
    meta = _meta(results_dir)
    command = command or meta.get("command") or (
        f"taxbench leaderboard --results {results_dir}" + (f" --n-boot {n_boot}" if n_boot != 1000 else "")
        + (f" --seed {seed}" if seed else ""))
    machine = machine or meta.get("machine") or "; ".join(sorted(
        {str(e.run.doc.get("versions", {}).get("platform", "unknown platform")) for e in lb.entries}))
    generated = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    md_path, csv_path = out / "leaderboard.md", out / "leaderboard.csv"
    atomic_write_bytes(md_path, to_markdown(lb, command, machine, generated, str(results_dir)).encode())
    atomic_write_bytes(csv_path, to_frame(lb).to_csv(index=False).encode())
    from bench.site import write_site

    site = write_site(lb, out, generated)  # results/site/index.html, the static web leaderboard
    paths: list[Path] = []
    if plots:
        from bench import plots as plotting

        paths = plotting.make_all(lb, out / "plots")
        plotting.log_to_wandb(paths)
    return {"markdown": md_path, "csv": csv_path, "site": site, "plots": paths, "leaderboard": lb}
