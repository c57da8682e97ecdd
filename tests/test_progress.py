"""The progress helper is off without a terminal or with TAXBENCH_PROGRESS=0; the end-of-run
summary table shows each benchmark's whole-benchmark metrics, n and seconds."""
from __future__ import annotations

import io
import os
import subprocess
import sys

from bench import progress as P
from bench.api.metrics import MetricSpec
from bench.summary import summary_rows, summary_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_off_when_stderr_is_not_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    bar = P.progress(range(3), desc="scoring")
    assert bar.disable and list(bar) == [0, 1, 2]
    assert stream.getvalue() == ""


def test_bar_draws_on_a_terminal(monkeypatch):
    stream = Terminal()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(P, "ENABLED", True)
    with P.progress(total=4, desc="scoring", unit="req") as bar:
        assert not bar.disable
        bar.update(4)
        assert bar.n == 4
    assert "scoring:   0%|" in stream.getvalue() and "0/4" in stream.getvalue()  # drawn, then cleared (leave=False)


def _disabled_on_a_terminal(env: dict[str, str]) -> str:
    code = ("import io, sys\n"
            "class T(io.StringIO):\n    def isatty(self): return True\n"
            "from bench.progress import progress\n"
            "sys.stderr = T()\n"
            "print(progress(range(2)).disable)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_taxbench_progress_0_turns_bars_off_even_on_a_terminal():
    env = {k: v for k, v in os.environ.items() if k != "TAXBENCH_PROGRESS"}
    assert _disabled_on_a_terminal(env) == "False"
    assert _disabled_on_a_terminal({**env, "TAXBENCH_PROGRESS": "0"}) == "True"


def _spec(key: str, direction: str, target: float | None = None, **kw) -> dict:
    return MetricSpec(key=key, group="bias", direction=direction, help="h", target=target, **kw).to_dict()


FAKE = {
    "run_id": "abc", "model": {"name": "tiny"}, "method": {"name": "inlp"},
    "metrics": {"stereoset/ss": 61.23456, "stereoset/ss_gender": 70.0, "stereoset/lms": 90.0,
                "seat/abs_effect_gender": 0.5, "method/inlp_probe_after": 0.51},
    "metric_specs": {"stereoset/ss": _spec("stereoset/ss", "target", 50.0, field="ss"),
                     "stereoset/ss_gender": _spec("stereoset/ss_gender", "target", 50.0, field="ss",
                                                  where={"domain": "gender"}),
                     "stereoset/lms": _spec("stereoset/lms", "higher", field="lms"),
                     "seat/abs_effect_gender": _spec("seat/abs_effect_gender", "lower", field="d",
                                                     where={"bias_type": "gender"}),
                     "method/inlp_probe_after": _spec("method/inlp_probe_after", "lower", aggregate="none"),
                     "toxicity/mean": _spec("toxicity/mean", "lower")},  # not among the metrics: not shown
    "n": {"stereoset": 12, "seat": 2},
    "timings": {"load_model": 1.0, "method": 3.25, "stereoset": 4.04, "seat": 0.5, "total": 9.0},
}


def test_summary_rows_of_a_fake_result():
    # ss_gender is a breakdown of ss (same field, narrower where); SEAT's per-type metric has no wider one
    assert summary_rows(FAKE) == [
        ["stereoset", "ss=61.23 (→50), lms=90 (↑)", "12", "4.0"],
        ["seat", "abs_effect_gender=0.5 (↓)", "2", "0.5"],
        ["method", "inlp_probe_after=0.51 (↓)", "", "3.2"],
        ["total", "", "", "9.0"],
    ]


def test_summary_table_is_aligned_under_its_header():
    lines = summary_table(FAKE).splitlines()
    assert lines[0] == "run abc: tiny / inlp"
    assert lines[1].split(" | ") == ["benchmark", "headline metrics          ", "n ", "seconds"]
    assert lines[1].index("| n") == lines[3].index("| 12")
    assert len(lines) == 3 + 4
