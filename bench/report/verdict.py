"""The alignment-tax verdict of a leaderboard row, in words, from its significant changes."""
from __future__ import annotations

from bench.report.compare import BASELINE, CAPABILITY, Change, Interval


def verdict(method: str, compared: bool, bias: Interval | None, changes: dict[str, Change], headline: set[str],
            base_note: str = f"no `{BASELINE}` run to compare with") -> str:
    """E.g. "lowers bias; pays tax: knowledge/acc worse" from the bias reduction and the significant changes
    of the whole-benchmark (``headline``) capability and toxicity metrics.  ``compared``: a ``none`` run
    was found (else ``base_note`` is the verdict)."""
    if not compared:
        return "baseline" if method == BASELINE else base_note
    if bias is None:
        parts = ["bias not measured"]
    elif bias.sig:
        parts = ["lowers bias" if bias.est > 0 else "raises bias"]
    else:
        parts = ["no significant bias change"]
    changes = [c for k, c in changes.items() if k in headline]
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
