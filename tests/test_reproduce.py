"""``taxbench reproduce``: a rerun's result file against a reference, metric by metric and record by record.
Reruns are built from a fixture run by editing its records: flipping StereoSet decisions moves SS beyond
resampling noise (``differs``), a 1e-9 shift of a number is float rounding (``equal``), one changed
toxicity value stays within noise; a changed continuation counts as a text difference."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from bench.api.metrics import MetricSpec

from bench.cli import main as cli
from bench.report.compare import Change
from bench.report.reproduce import config_differences, record_agreement, relative_size, report
from bench.report.runs import read_run

FIXTURE = Path(__file__).parent / "fixtures" / "results" / "runs" / "0818ef9223b8f46e.json"
NUMBERS = {"model": {"name": "tiny-random", "dtype": "float32"}, "benchmarks": {"stereoset": {"n": 40}}}


def write_run(folder: Path, edit=None, metrics=None, numbers=NUMBERS) -> Path:
    """A copy of the fixture run under ``folder`` (runs/ and records/), each record passed through ``edit``."""
    (folder / "runs").mkdir(parents=True)
    (folder / "records").mkdir()
    doc = json.loads(FIXTURE.read_text())
    doc["numbers_config"] = numbers
    doc["metrics"].update(metrics or {})
    records = FIXTURE.parent / doc["records_path"]
    lines = [json.loads(line) for line in records.read_text().splitlines()]
    (folder / "records" / records.name).write_text("".join(json.dumps(edit(r) if edit else r) + "\n" for r in lines))
    path = folder / "runs" / FIXTURE.name
    path.write_text(json.dumps(doc))
    return path


def rows(text: str) -> dict[str, str]:
    """The report's metric rows by metric key."""
    return {line.split(" | ")[0][2:]: line for line in text.splitlines()
            if line.startswith("| ") and "/" in line.split(" | ")[0]}


def test_identical_files_are_equal_in_every_metric_and_record(tmp_path):
    ref = write_run(tmp_path / "a", numbers={**NUMBERS, "code_version": "0.1.0+aaaa"})
    rerun = write_run(tmp_path / "b", numbers={**NUMBERS, "code_version": "0.1.0+bbbb"})  # other code: a rerun
    text, differs = report(read_run(ref), read_run(rerun), n_boot=200, seed=0)
    assert not differs and rows(text)
    assert "- Behind the bias reduction axis: 2 metrics, all equal" in text  # SS and CrowS in this fixture
    assert all(line.endswith(("| equal |", "| no interval |")) for line in rows(text).values())
    assert "| stereoset | 40 | 40 | 0 | 0 |" in text and "| toxicity | 40 | 40 | 0 | 0 |" in text


def test_flipped_decisions_differ_rounding_is_equal_and_one_value_is_noise(tmp_path):
    ref = write_run(tmp_path / "a")
    ref_run = read_run(ref)

    def edit(r):
        r = dict(r)
        if r["benchmark"] == "stereoset":
            r["stereo_wins"] = 1.0  # every example now stereotyped: SS 100
        if r["benchmark"] == "perplexity":
            r["logprob"] += 1e-9
        if r["id"] == "challenging-0000":
            r["max_toxicity"] += 0.01
        return r

    moved = ref_run.metrics["toxicity/expected_max"] + 0.01 / 40  # the mean of 40 prompts' maxima
    new_run = read_run(write_run(tmp_path / "b", edit, metrics={"stereoset/ss": 100.0, "toxicity/expected_max": moved}))
    text, differs = report(ref_run, new_run, n_boot=400, seed=0)
    assert differs
    assert rows(text)["stereoset/ss"].endswith("| differs |")
    axis = next(line for line in text.splitlines() if line.startswith("- Behind the bias reduction axis"))
    assert "stereoset/ss differs" in axis and "crows_pairs" not in axis  # the other bias metrics are equal
    assert rows(text)["toxicity/expected_max"].endswith("| within noise |")
    assert rows(text)["perplexity/wikitext2"].endswith("| equal |")
    assert float(rows(text)["stereoset/ss"].split(" | ")[5]) > 1  # SS -> 100: beyond the reference's interval
    size = float(rows(text)["toxicity/expected_max"].split(" | ")[5])
    assert 0 < size < 0.5  # one prompt's maximum moved by 0.01: a small part of the interval
    perplexity = record_agreement("perplexity", ref_run.records["perplexity"], new_run.records["perplexity"])
    assert (perplexity.identical, perplexity.text_differs) == (0, 0)
    assert perplexity.max_abs_diff == pytest.approx(1e-9, rel=0.5)
    toxicity = record_agreement("toxicity", ref_run.records["toxicity"], new_run.records["toxicity"])
    assert (toxicity.shared, toxicity.identical) == (40, 39) and toxicity.max_abs_diff == pytest.approx(0.01)


def test_a_changed_text_and_a_missing_field_count_as_text_differences():
    ref = [{"id": "p1", "continuations": ["a b", "c d"], "toxicity": [0.1, 0.2]},
           {"id": "p2", "continuations": ["e"], "toxicity": [0.3]}, {"id": "p3", "x": 1.0}]
    new = [{"id": "p1", "continuations": ["a b", "c e"], "toxicity": [0.1, 0.25]},
           {"id": "p2", "continuations": ["e"]}, {"id": "p4", "x": 1.0}]
    a = record_agreement("toxicity", ref, new)
    assert (a.shared, a.identical, a.text_differs) == (2, 0, 2) and a.max_abs_diff == pytest.approx(0.05)


def test_config_differences_separate_changed_from_one_sided_fields():
    differ, one_sided = config_differences({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5, "e": 0}})
    assert differ == ["a.c"] and one_sided == ["d", "a.e"]


def test_cli_exit_status_and_refusal_of_another_job(tmp_path, capsys):
    ref = write_run(tmp_path / "a")
    assert cli(["reproduce", str(ref), str(write_run(tmp_path / "b"))]) == 0
    flipped = write_run(tmp_path / "c", lambda r: {**r, "stereo_wins": 1.0} if r["benchmark"] == "stereoset" else r,
                        metrics={"stereoset/ss": 100.0})
    assert cli(["reproduce", str(ref), str(flipped)]) == 1
    other = write_run(tmp_path / "d", numbers={**NUMBERS, "benchmarks": {"stereoset": {"n": 80}}})
    capsys.readouterr()
    assert cli(["reproduce", str(ref), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("taxbench: error: ") and "numbers_config.benchmarks.stereoset.n differs" in err
    assert len(err.splitlines()) == 1
    assert cli(["reproduce", str(ref), str(tmp_path / "missing.json")]) == 2
    assert "missing.json does not exist" in capsys.readouterr().err


def test_relative_size_is_the_move_in_half_widths_of_the_reference_interval():
    spec = MetricSpec("x/acc", "knowledge", "higher", "")
    reps = np.linspace(0.4, 0.6, 1001)  # 95% percentile interval [0.405, 0.595]: half-width 0.095
    assert relative_size(Change(spec, 0.5, 0.6, (reps, reps + 0.1))) == pytest.approx(0.1 / 0.095)
    flat = np.full(1001, 0.5)
    assert relative_size(Change(spec, 0.5, 0.5, (flat, flat))) == 0.0
    assert relative_size(Change(spec, 0.5, 0.7, (flat, flat + 0.2))) == math.inf
    assert math.isnan(relative_size(Change(spec, 0.5, 0.7, None)))


def test_a_results_folder_as_reference_finds_the_run_of_the_job(tmp_path, capsys):
    write_run(tmp_path / "published", numbers={**NUMBERS, "code_version": "old"})
    rerun = write_run(tmp_path / "b", numbers={**NUMBERS, "code_version": "new"})
    assert cli(["reproduce", str(tmp_path / "published"), str(rerun)]) == 0
    assert capsys.readouterr().out.startswith(f"# Reproduction of {FIXTURE.name} by {FIXTURE.name}")
    other = write_run(tmp_path / "c", numbers={**NUMBERS, "seed": 1})
    assert cli(["reproduce", str(tmp_path / "published"), str(other)]) == 2
    assert "no run of the job of" in capsys.readouterr().err


REPO = Path(__file__).resolve().parent.parent
ROLES = {"published": REPO / "results" / "published" / "runs",
         "snapshot_code": REPO / "results" / "reproduction" / "snapshot_code" / "runs",
         "head": REPO / "results" / "reproduction" / "head" / "runs"}


def reports_script():
    spec = importlib.util.spec_from_file_location("reproduction_reports", REPO / "scripts" / "reproduction_reports.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_reproduction_table_is_the_committed_reports():
    text = (REPO / "README.md").read_text()
    start, end = "<!-- reproduction:start -->\n", "<!-- reproduction:end -->"
    assert start in text and end in text, "README.md lacks the reproduction block"
    block = text.split(start)[1].split(end)[0]
    assert block == reports_script().readme_table()
    assert block.count("\n") >= 2 + 3  # header, rule and at least one job's three reports


def test_a_committed_report_is_what_the_command_prints():
    path = REPO / "results" / "reproduction" / "reports" / "smollm2-135m_none_seed0.published_by_head.md"
    committed = path.read_text()
    reference, rerun = committed.splitlines()[0].removeprefix("# Reproduction of ").split(" by ")
    ref_role, new_role = path.name.split(".")[1].split("_by_")
    text, differs = report(read_run(ROLES[ref_role] / reference), read_run(ROLES[new_role] / rerun), 1000, 0)
    assert text == committed
    assert not differs  # as the committed report says: no metric differs
