"""The end-of-run summary: one table, benchmark | headline metrics | n | seconds, from a result
document (``bench.store``'s format), logged by ``bench.run`` once the result file is written.

Headline metrics are the whole-benchmark ones (``breakdowns`` names the per-subset rest), each as
``name=value (arrow)`` with 4 significant digits; arrows as in the leaderboard (↑ higher, ↓ lower,
→t closer to t is better).  Metrics whose key prefix is no benchmark of the run (the method's own,
``method/...``) get a row of their own; the last row is the job's total time.
"""
from __future__ import annotations

from typing import Any

from bench.api.metrics import MetricSpec, breakdowns, spec_from_dict


def _arrow(spec: MetricSpec) -> str:
    if spec.direction in ("higher", "lower"):
        return "↑" if spec.direction == "higher" else "↓"
    return f"→{spec.target:g}" if spec.target is not None else ""


def _cell(spec: MetricSpec, value: Any, prefix: str) -> str:
    name = spec.key[len(prefix) + 1:] if spec.key.startswith(prefix + "/") else spec.key
    shown = f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    arrow = _arrow(spec)
    return f"{name}={shown}" + (f" ({arrow})" if arrow else "")


def summary_rows(doc: dict[str, Any]) -> list[list[str]]:
    """[benchmark, headline metrics, n, seconds] per benchmark of ``doc``, then other metric
    prefixes, then ``total``."""
    specs = {k: spec_from_dict(s) for k, s in doc.get("metric_specs", {}).items() if k in doc.get("metrics", {})}
    parents = breakdowns(specs.values())
    by_prefix: dict[str, list[MetricSpec]] = {}
    for key, spec in specs.items():
        if key not in parents:
            by_prefix.setdefault(key.split("/")[0], []).append(spec)
    n, timings = doc.get("n", {}), doc.get("timings", {})
    names = list(n) + [p for p in by_prefix if p not in n]
    rows = []
    for name in names:
        cells = ", ".join(_cell(s, doc["metrics"][s.key], name) for s in by_prefix.get(name, []))
        seconds = timings.get(name)
        rows.append([name, cells or "-", str(n.get(name, "")), "" if seconds is None else f"{seconds:.1f}"])
    if "total" in timings:
        rows.append(["total", "", "", f"{timings['total']:.1f}"])
    return rows


def format_table(head: list[str], rows: list[list[str]]) -> str:
    """A plain-text table with columns padded to their widest cell."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(cells: list[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(head), "-+-".join("-" * w for w in widths), *(line(r) for r in rows)])


def summary_table(doc: dict[str, Any]) -> str:
    """The run's summary table (see module doc), headed by its run id."""
    title = f"run {doc.get('run_id')}: {doc.get('model', {}).get('name')} / {doc.get('method', {}).get('name')}"
    return title + "\n" + format_table(["benchmark", "headline metrics", "n", "seconds"], summary_rows(doc))
