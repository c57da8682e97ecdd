"""Does a rerun reproduce a result file?  Metric by metric and record by record.

    taxbench reproduce REFERENCE RERUN [--n-boot 1000] [--seed 0]
    taxbench reproduce results/published results/runs/<run_id>.json    # finds the published run of that job

REFERENCE and RERUN are result files (``<results>/runs/<run_id>.json``) of one job: the same model weights,
method, benchmark settings, data and seed, run at other code, package versions or on another processor.
REFERENCE may be a results folder; its run of RERUN's job is then used (``find_job``).  The two
``numbers_config`` (the run id's input) must agree wherever both have a field, except ``code_version``, which a
reproduction may change; a field only one of them has (an option added later) is listed, not refused.
Otherwise the files are of different jobs and the command stops with the first differing field.

It prints, per metric, the two values, Δ = rerun − reference and its 95% paired bootstrap interval (the
leaderboard's own: ``compare.paired_replicates`` over the example ids both files scored), and a status
(also summarised for the metrics behind the leaderboard's two axes, ``leaderboard.axis_keys``):

- ``equal``: |Δ| <= ``FLOAT_NOISE`` (float32 rounding of one number);
- ``within noise``: the interval holds 0 (the rerun moved the number by no more than resampling
  examples would);
- ``differs``: the interval excludes 0 (``bootstrap.excludes_zero``).

Per benchmark, it counts the shared example ids whose records are equal in every field (numbers and texts
exactly) and those where a text (a sampled continuation) differs, and gives the largest |Δ| of a numeric field.
The exit status is 1 when some metric ``differs``, else 0.

The status says whether a move is there, not whether it matters: a retrained model (float rounding changes
the training run on another processor or at other code) moves every number a little and in one direction,
which a paired interval can resolve.  How large a move is says ``|Δ| / hw``: |Δ| in half-widths of the
reference value's own 95% interval (its examples resampled; ``relative_size``).  The report gives the largest
over all metrics, over whole-benchmark metrics (not per-subset breakdowns) and over the metrics behind the
two axes.
"""
from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.api.metrics import breakdowns
from bench.errors import TaxbenchError
from bench.report.bootstrap import FLOAT_NOISE, group_by_id, percentile_interval
from bench.report.compare import Change, compare_runs
from bench.report.leaderboard import axis_keys
from bench.report.runs import Run, read_run

MAY_DIFFER = ("code_version",)  # numbers_config fields a rerun of the same job may change


def config_differences(reference: Any, rerun: Any, path: str = "") -> tuple[list[str], list[str]]:
    """(fields whose values differ, fields only one side has), as dotted paths of two numbers configs."""
    if isinstance(reference, dict) and isinstance(rerun, dict):
        differ: list[str] = []
        one_sided = [f"{path}{k}" for k in sorted(set(reference) ^ set(rerun))]
        for k in sorted(set(reference) & set(rerun)):
            d, o = config_differences(reference[k], rerun[k], f"{path}{k}.")
            differ += d
            one_sided += o
        return differ, one_sided
    return ([] if reference == rerun else [path.rstrip(".")]), []


def job_config(run: Run) -> dict[str, Any]:
    """What makes two result files runs of one job: the numbers_config without the MAY_DIFFER fields."""
    return {k: v for k, v in run.doc.get("numbers_config", {}).items() if k not in MAY_DIFFER}


def find_job(results_dir: Path, rerun: Run) -> Run:
    """The run in ``results_dir/runs`` of the job ``rerun`` reran (same ``job_config``)."""
    paths = sorted((results_dir / "runs").glob("*.json"))
    for path in paths:
        run = read_run(path)
        if job_config(run) == job_config(rerun):
            return run
    raise TaxbenchError(f"no run of the job of {rerun.path} among the {len(paths)} result files of "
                        f"{results_dir / 'runs'}")


def metric_status(change: Change) -> str:
    """``equal``, ``within noise`` or ``differs`` (module docstring)."""
    delta = change.delta
    if abs(delta.est) <= FLOAT_NOISE:
        return "equal"
    if math.isnan(delta.lo):
        return "no interval"
    return "differs" if delta.sig else "within noise"


def relative_size(change: Change) -> float:
    """|Δ| / half the 95% percentile interval of the reference value (``change.reps[0]``: its replicates
    over the shared ids); NaN without replicates, inf for a move of a value whose interval has no width."""
    if change.reps is None:
        return math.nan
    lo, hi = percentile_interval(change.reps[0])
    size = abs(change.value - change.base)
    if not math.isfinite(hi - lo):
        return math.nan
    return size / ((hi - lo) / 2) if hi > lo else (0.0 if size <= FLOAT_NOISE else math.inf)


def _largest(sizes: dict[str, float], keys) -> str:
    finite = {k: sizes[k] for k in keys if k in sizes and not math.isnan(sizes[k])}
    if not finite:
        return "–"
    key = max(finite, key=finite.get)
    return f"{finite[key]:.3g} ({key})" if finite[key] > 0 else "0"


@dataclass(frozen=True)
class RecordAgreement:
    """How the records of one benchmark compare over the example ids both files hold."""

    benchmark: str
    shared: int  # example ids in both files
    identical: int  # ids whose records are equal in every field
    text_differs: int  # ids where some text field (e.g. a sampled continuation) differs
    max_abs_diff: float  # largest |Δ| of a numeric field over the shared ids (0.0 when all equal)


def _walk(a: Any, b: Any) -> tuple[bool, bool, float]:
    """(equal, a text differs, max |Δ| of numbers) of two JSON values; a shape mismatch counts as a text
    difference (the records are not of one form)."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b, a != b, 0.0
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return True, False, 0.0
        diff = abs(a - b)
        return a == b, False, diff if math.isfinite(diff) else math.inf
    if isinstance(a, str) or isinstance(b, str):
        return a == b, a != b, 0.0
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return False, True, 0.0
        parts = [_walk(a[k], b[k]) for k in a]
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return False, True, 0.0
        parts = [_walk(x, y) for x, y in zip(a, b)]
    else:
        return a == b, a != b, 0.0
    return all(p[0] for p in parts), any(p[1] for p in parts), max((p[2] for p in parts), default=0.0)


def record_agreement(benchmark: str, reference: Sequence[dict], rerun: Sequence[dict]) -> RecordAgreement:
    """Compare the records of one benchmark id by id (an id's records in file order)."""
    ref, new = group_by_id(reference), group_by_id(rerun)
    ids = sorted(set(ref) & set(new))
    identical = text = 0
    worst = 0.0
    for i in ids:
        equal, text_differs, diff = _walk(ref[i], new[i])
        identical += equal
        text += text_differs
        worst = max(worst, diff)
    return RecordAgreement(benchmark, len(ids), identical, text, worst)


def provenance(run: Run) -> str:
    v = run.doc.get("versions", {})
    return (f"code {v.get('code_version')} (git {str(v.get('git_commit'))[:10]}), torch {v.get('torch')}, "
            f"transformers {v.get('transformers')}, cpu {v.get('cpu') or 'not recorded'}")


def report(reference: Run, rerun: Run, n_boot: int, seed: int) -> tuple[str, bool]:
    """The markdown report and whether some metric differs."""
    differ, one_sided = config_differences(job_config(reference), job_config(rerun))
    if differ:
        raise TaxbenchError(f"{rerun.path} is not a rerun of {reference.path}: numbers_config.{differ[0]} differs "
                            f"({len(differ)} field(s) in all)")
    lines = [f"# Reproduction of {reference.path.name} by {rerun.path.name}", "",
             f"- Reference: {provenance(reference)}", f"- Rerun: {provenance(rerun)}"]
    if one_sided:
        lines.append(f"- Fields in one numbers_config only: {', '.join(one_sided)}")
    changes = compare_runs(reference, rerun, n_boot, seed)
    statuses = {k: metric_status(c) for k, c in changes.items()}
    counts = {s: sum(v == s for v in statuses.values()) for s in ("equal", "within noise", "differs", "no interval")}
    lines.append(f"- Metrics: {len(changes)}; " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    bias, capability = axis_keys([reference])
    for axis, keys in (("bias reduction", bias), ("capability change", capability)):
        moved = [f"{k} {statuses[k]}" for k in keys if k in statuses and statuses[k] != "equal"]
        lines.append(f"- Behind the {axis} axis: {sum(k in statuses for k in keys)} metrics, "
                     + (", ".join(moved) if moved else "all equal"))
    sizes = {k: relative_size(c) for k, c in changes.items()}
    parents = breakdowns(reference.specs.values())
    lines += [f"- Largest |Δ| / hw: {_largest(sizes, sizes)}; of a whole-benchmark metric: "
              f"{_largest(sizes, [k for k in sizes if k not in parents])}; behind the axes: "
              f"{_largest(sizes, bias + capability)}",
              "", "| metric | reference | rerun | Δ | 95% interval of Δ | \\|Δ\\| / hw | status |",
              "|---|---|---|---|---|---|---|"]
    for key, c in changes.items():
        d = c.delta
        lines.append(f"| {key} | {c.base:.6g} | {c.value:.6g} | {d.est:+.3g} | [{d.lo:+.3g}, {d.hi:+.3g}] | "
                     f"{sizes[key]:.3g} | {statuses[key]} |")
    lines += ["", "| benchmark | shared ids | identical records | a text differs | max abs Δ of a number |",
              "|---|---|---|---|---|"]
    for bench in sorted(set(reference.records) & set(rerun.records)):
        a = record_agreement(bench, reference.records[bench], rerun.records[bench])
        lines.append(f"| {bench} | {a.shared} | {a.identical} | {a.text_differs} | {a.max_abs_diff:.3g} |")
    return "\n".join(lines) + "\n", counts["differs"] > 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="taxbench reproduce", description=__doc__.split("\n\n")[0])
    parser.add_argument("reference", type=Path, help="result file to reproduce (runs/<run_id>.json), or a results "
                        "folder holding a run of RERUN's job")
    parser.add_argument("rerun", type=Path, help="result file of the rerun of the same job")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    args = parser.parse_args(argv)
    for path in (args.reference, args.rerun):
        if not path.is_file() and not (path is args.reference and path.is_dir()):
            raise TaxbenchError(f"result file {path} does not exist")
    rerun = read_run(args.rerun)
    reference = find_job(args.reference, rerun) if args.reference.is_dir() else read_run(args.reference)
    text, differs = report(reference, rerun, args.n_boot, args.seed)
    print(text, end="")
    return 1 if differs else 0
