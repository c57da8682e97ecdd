"""Leaderboard on the committed fixture result files: headers, deltas, bootstrap, marks, dedup, bad files."""
from __future__ import annotations

import json
import math
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest

from bench.report import leaderboard as L
from bench.report import compare as C
from bench.report import main as M
from bench.report import render as R
from bench.report import runs as RF
from bench.report.bootstrap import excludes_zero, group_by_id, percentile_interval, replicates, resample_counts
from bench.errors import TaxbenchError
from bench.api.metrics import MetricSpec, aggregate

FIXTURES = Path(__file__).parent / "fixtures" / "results"
N_BOOT = 300


def _docs() -> dict[tuple[str, str], dict]:
    docs = {}
    for path in FIXTURES.glob("runs/*.json"):
        doc = json.loads(path.read_text())
        docs[doc["model"]["name"], doc["method"]["name"]] = doc
    return docs


def _records(doc: dict, benchmark: str) -> dict[str, dict]:
    lines = (FIXTURES / "runs" / doc["records_path"]).read_text().splitlines()
    return {r["id"]: r for r in map(json.loads, lines) if r["benchmark"] == benchmark}


@pytest.fixture(scope="module")
def lb() -> L.Leaderboard:
    return L.build(FIXTURES, n_boot=N_BOOT, seed=0)


@pytest.fixture(scope="module")
def table(lb):
    return R.to_frame(lb)


@pytest.fixture()
def results(tmp_path) -> Path:
    shutil.copytree(FIXTURES, tmp_path / "results")
    return tmp_path / "results"


def _row(table, model, method):
    rows = table[(table.model == model) & (table.method == method)]
    assert len(rows) == 1
    return rows.iloc[0]


def test_one_row_per_model_method_and_directions_in_headers(lb, table):
    assert len(table) == 8 and set(table.model) == {"smollm2-135m", "tiny-random"}
    assert set(table.method) == {"none", "cda", "inlp", "self_debias"}
    for col in ("bias: stereoset/ss (→50)", "bias: crows_pairs/stereotype_score (→50)", "truthfulness: truthfulqa/mc2 (↑)",
                "knowledge: knowledge/acc (↑)", "fluency: perplexity/wikitext2 (↓)",
                "toxicity: toxicity/challenging/expected_max (↓)", "bias: seat/abs_effect_gender (↓)"):
        assert col in table.columns
    groups = [c.split(":")[0] for c in table.columns if ": " in c]
    assert groups == sorted(groups, key=C.GROUPS.index)  # columns grouped in the documented order
    assert not any("method/" in c for c in table.columns)  # method diagnostics have no spec: not columns
    md = R.to_markdown(lb, "cmd", "machine", "now", "results")
    for h in ("stereoset/ss (→50)", "truthfulqa/mc2 (↑)", "perplexity/wikitext2 (↓)", "## Knowledge", "## Fluency"):
        assert h in md


def test_deltas_are_differences_to_none_on_the_same_model(table):
    docs = _docs()
    for (model, method), doc in docs.items():
        row, base = _row(table, model, method), docs[model, "none"]["metrics"]
        for key, value in doc["metrics"].items():
            spec = doc["metric_specs"].get(key)
            if spec is None:
                continue
            col = f"{spec['group']}: {key} ({R.arrow(RF.spec_from_dict(spec))})"
            assert row[col] == pytest.approx(value)
            if method == "none":
                assert math.isnan(row[f"{col} Δ"])
                continue
            assert row[f"{col} Δ"] == pytest.approx(value - base[key])
            if spec["direction"] == "target":
                assert row[f"{col} Δdist"] == pytest.approx(abs(value - 50) - abs(base[key] - 50))


def test_bootstrap_interval_matches_a_hand_computation(table):
    docs = _docs()
    for bench, key, col in (("stereoset", "stereo_wins", "bias: stereoset/ss (→50)"),
                            ("perplexity", None, "fluency: perplexity/wikitext2 (↓)")):
        base, other = _records(docs["smollm2-135m", "none"], bench), _records(docs["smollm2-135m", "inlp"], bench)
        ids = sorted(set(base) & set(other))
        draws = np.random.default_rng([0, zlib.crc32(bench.encode())]).integers(0, len(ids), (N_BOOT, len(ids)))

        def metric(recs, key=key):
            if key:
                return 100 * np.array([recs[i][key] for i in ids], dtype=float)[draws].mean(axis=1)
            lp, nt = (np.array([recs[i][f] for i in ids], dtype=float)[draws].sum(axis=1) for f in ("logprob", "n_tokens"))
            return np.exp(-lp / nt)

        lo, hi = np.percentile(metric(other) - metric(base), [2.5, 97.5])
        row = _row(table, "smollm2-135m", "inlp")
        assert (row[f"{col} Δ lo"], row[f"{col} Δ hi"]) == pytest.approx((lo, hi))


@pytest.mark.parametrize("spec", [
    MetricSpec("x/ss", "bias", "target", "", target=50, field="stereo_wins", where={"domain": "a"}, scale=100),
    MetricSpec("x/ppl", "fluency", "lower", "", field="logprob", aggregate="exp_ratio"),
    MetricSpec("x/icat", "bias", "higher", "", aggregate="icat"),
])
def test_vectorised_replicates_equal_aggregate_on_resampled_records(spec):
    rng = np.random.default_rng(1)
    records = [{"id": f"e{i // 2}", "domain": "ab"[i % 3 == 0], "stereo_wins": int(rng.random() < 0.6),
                "lm_wins": float(rng.choice([0, 0.5, 1])), "logprob": -float(rng.uniform(5, 50)),
                "n_tokens": int(rng.integers(2, 20))} for i in range(40)]  # two records per id
    groups = group_by_id(records)
    ids = sorted(groups)
    counts = resample_counts(len(ids), 5, 3, "test")
    fast = replicates(spec, groups, ids, counts)
    slow = [aggregate(spec, [r for i, c in zip(ids, row) for _ in range(c) for r in groups[i]]) for row in counts]
    assert fast == pytest.approx(slow, nan_ok=True)


def test_significance_mark():
    assert excludes_zero(0.1, 2) and excludes_zero(-3, -0.5)
    assert not excludes_zero(0.0, 2) and not excludes_zero(-1, 1) and not excludes_zero(math.nan, math.nan)
    # float rounding of equal values is no effect: SEAT deltas of Self-Debias, which keeps the embeddings
    assert not excludes_zero(2.2e-16, 3.0e-15) and not excludes_zero(-1.05e-6, -3.5e-7)
    assert excludes_zero(2e-5, 1e-4) and excludes_zero(-1e-4, -2e-5)
    assert R.fmt_interval(C.Interval(1.5, 0.2, 3.0)) == "+1.50* [+0.200, +3.00]"
    assert R.fmt_interval(C.Interval(1.5, -0.2, 3.0)) == "+1.50 [-0.200, +3.00]"
    assert R.fmt_interval(C.Interval(1.5)) == "+1.50"
    assert percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
    ss = MetricSpec("a/ss", "bias", "target", "", target=50)
    reps = (np.full(10, 60.0), np.linspace(52, 55, 10))  # significantly closer to 50
    assert C.Change(ss, 60, 53, reps).effect == 1
    ppl = MetricSpec("a/ppl", "fluency", "lower", "")
    assert C.Change(ppl, 20, 25, (np.full(10, 20.0), np.linspace(24, 26, 10))).effect == -1
    assert C.Change(ppl, 20, 21, (np.full(10, 20.0), np.linspace(19, 23, 10))).effect == 0


def test_marks_and_verdicts_follow_the_intervals(lb, table):
    md = R.to_markdown(lb, "cmd", "machine", "now", "results")
    for e in lb.entries:
        if e.base is None:
            continue
        c = e.changes["stereoset/ss"]
        assert (R.fmt_interval(c.delta) in md) and (("*" in R.fmt_interval(c.delta)) == c.delta.sig)
        tax = [k for k, ch in e.changes.items() if ch.spec.group in C.CAPABILITY and lb.headline(k)
               and ch.effect == -1]
        assert ("pays tax" in e.verdict) == bool(tax)
        assert all(k in e.verdict.split("pays tax: ")[1].split(" worse")[0].split(", ") for k in tax)
        assert e.verdict.startswith("lowers bias") == (e.bias.sig and e.bias.est > 0 and not e.degenerate)
    inlp = lb.entry("smollm2-135m", "inlp")
    assert "pays tax: knowledge/acc" in inlp.verdict and inlp.changes["knowledge/acc"].effect == -1
    assert lb.entry("smollm2-135m", "none").verdict == "baseline"
    # the bias reduction averages the distance-to-50 reductions of SS and CrowS
    cda = lb.entry("smollm2-135m", "cda")
    expected = np.mean([-cda.changes[k].dist.est for k in ("stereoset/ss", "crows_pairs/stereotype_score")])
    assert lb.bias_keys == ["stereoset/ss", "crows_pairs/stereotype_score"]
    assert cda.bias.est == pytest.approx(expected)
    assert _row(table, "smollm2-135m", "cda")["verdict"] == cda.verdict


def test_newest_run_wins(results):
    docs = _docs()
    doc = docs["smollm2-135m", "cda"]
    for suffix, created, ss in (("newer", "2027-01-01T00:00:00Z", 51.0), ("older", "2020-01-01T00:00:00Z", 99.0)):
        (results / "runs" / f"{suffix}.json").write_text(json.dumps(
            {**doc, "run_id": suffix, "created": created, "metrics": {**doc["metrics"], "stereoset/ss": ss}}))
    lb = L.build(results, n_boot=50)
    assert len(lb.superseded) == 2 and len(lb.entries) == 8
    assert lb.entry("smollm2-135m", "cda").run.metrics["stereoset/ss"] == 51.0


def test_bad_result_files_are_skipped_with_a_warning(results):
    (results / "runs" / "broken.json").write_text('{"schema_version": 1, "run_id": ')
    (results / "runs" / "future.json").write_text(json.dumps({"schema_version": 99, "metrics": {}}))
    with pytest.warns(RF.ResultFileWarning) as caught:
        lb = L.build(results, n_boot=50)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.json" in messages and "future.json" in messages
    assert len(lb.entries) == 8 and len(lb.skipped) == 2
    assert "broken.json" in R.to_markdown(lb, "c", "m", "t", "r")


def test_missing_records_give_deltas_without_intervals(results):
    doc = _docs()["smollm2-135m", "inlp"]
    (results / "runs" / doc["records_path"]).unlink()
    with pytest.warns(RF.ResultFileWarning, match=doc["run_id"]):
        e = L.build(results, n_boot=50).entry("smollm2-135m", "inlp")
    c = e.changes["stereoset/ss"]
    assert c.reps is None and c.delta.est == pytest.approx(c.value - c.base) and math.isnan(c.delta.lo)
    assert not c.delta.sig and math.isnan(e.bias.lo)


def test_main_writes_markdown_and_csv_with_meta_header(results, tmp_path):
    (results / "leaderboard_meta.json").write_text(json.dumps(
        {"command": "taxbench run -m +experiment=alignment_tax", "machine": "2-core test box"}))
    out = M.main(results, out_dir=tmp_path / "out", n_boot=50, plots=False)
    md = out["markdown"].read_text()
    assert "Command: `taxbench run -m +experiment=alignment_tax`" in md and "Machine: 2-core test box" in md
    assert "Generated: " in md and "50 resamples" in md
    csv = out["csv"].read_text().splitlines()
    assert len(csv) == 9 and csv[0].startswith("model,method,bias_type,suite,seed,bias_reduction")


def test_header_machine_without_meta_names_each_platform_and_processor(results, tmp_path):
    for path in (results / "runs").glob("*.json"):  # the fixtures predate versions.cpu: give one of them a processor
        doc = json.loads(path.read_text())
        doc["versions"]["cpu"] = "Test CPU 9000"
        path.write_text(json.dumps(doc))
        break
    md = M.main(results, out_dir=tmp_path / "out", n_boot=50, plots=False)["markdown"].read_text()
    assert "Machine: synthetic fixture; synthetic fixture, Test CPU 9000" in md


def test_no_result_files_is_an_error(tmp_path):
    (tmp_path / "runs").mkdir()
    with pytest.raises(TaxbenchError, match="no readable result files"):
        L.build(tmp_path)


def test_capability_change_averages_relative_changes_within_then_across_groups(lb):
    docs = _docs()
    base, run = docs["smollm2-135m", "none"]["metrics"], docs["smollm2-135m", "inlp"]["metrics"]
    rel = {k: 100 * (run[k] - base[k]) / abs(base[k]) for k in lb.capability_keys}
    rel["perplexity/wikitext2"] = 100 * (base["perplexity/wikitext2"] / run["perplexity/wikitext2"] - 1)  # of 1/ppl
    groups = {"truthfulness": ("truthfulqa/mc1", "truthfulqa/mc2"), "knowledge": ("knowledge/acc", "knowledge/mrr"),
              "fluency": ("stereoset/lms", "perplexity/wikitext2")}
    assert sorted(lb.capability_keys) == sorted(k for ks in groups.values() for k in ks)  # patterns left out
    expected = np.mean([np.mean([rel[k] for k in ks]) for ks in groups.values()])
    assert lb.entry("smollm2-135m", "inlp").capability.est == pytest.approx(expected)


def test_breakdowns_are_subsets_of_a_reported_whole(lb):
    assert lb.parents["stereoset/ss_gender"] == "stereoset/ss"
    assert lb.parents["crows_pairs/stereotype_score_age"] == "crows_pairs/stereotype_score"
    # filtered metrics without an unfiltered sibling are whole-benchmark metrics
    assert lb.headline("seat/abs_effect_gender") and lb.headline("toxicity/expected_max")
    assert lb.parents["toxicity/nontoxic/expected_max"] == "toxicity/expected_max"
    assert not lb.headline("stereoset/icat_race") and lb.headline("stereoset/icat")


def test_relative_capability_change_leaves_out_metrics_with_base_zero():
    acc = MetricSpec("k/acc", "knowledge", "higher", "")
    ppl = MetricSpec("p/ppl", "fluency", "lower", "")
    changes = [C.Change(acc, 0.0, 0.1, None), C.Change(ppl, 20.0, 22.0, None)]
    assert C.mean_improvement(changes, relative=True).est == pytest.approx(100 * (20 / 22 - 1))  # only ppl, as 1/ppl
    broken = [C.Change(ppl, 20.0, 2e4, None)]  # a collapsed model costs at most 100 %
    assert -100 < C.mean_improvement(broken, relative=True).est < -99
    assert C.mean_improvement(changes, relative=False).est == pytest.approx(np.mean([0.1, -2.0]))


def test_bias_verdict_against_none_and_the_control():
    from bench.report.verdict import verdict

    down, up, flat = C.Interval(2.0, 0.5, 3.5), C.Interval(-2.0, -3.5, -0.5), C.Interval(0.5, -1.0, 2.0)
    def words(bias, control):
        return verdict("cda", True, bias, {}, set(), control_bias=control, needs_control=True).split(";")[0]
    assert words(down, down) == "lowers bias beyond fine-tuning"
    assert words(down, flat) == "lowers bias, not beyond fine-tuning"
    assert words(down, None) == "lowers bias (no `finetune` control)"
    assert words(flat, down) == "no significant bias change, less biased than the fine-tuning control"
    assert words(flat, up) == "no significant bias change, more biased than the fine-tuning control"
    assert words(up, flat) == "raises bias"


def test_toxicity_verdict_names_the_direction():
    from bench.report.verdict import verdict

    spec = MetricSpec("toxicity/expected_max", "toxicity", "lower", "max toxicity")
    base = np.full(200, 0.2)
    worse = C.Change(spec, 0.2, 0.4, (base, np.linspace(0.35, 0.45, 200)))
    better = C.Change(spec, 0.2, 0.1, (base, np.linspace(0.05, 0.15, 200)))
    same = C.Change(spec, 0.2, 0.2, (base, np.linspace(0.1, 0.3, 200)))
    head = {spec.key}
    assert worse.effect == -1 and better.effect == 1 and same.effect == 0
    assert verdict("cda", True, None, {spec.key: worse}, head).endswith("more toxic")
    assert verdict("cda", True, None, {spec.key: better}, head).endswith("less toxic")
    assert "toxic" not in verdict("cda", True, None, {spec.key: same}, head)


def test_runs_of_older_code_versions_are_superseded_not_mixed(results):
    docs = _docs()
    doc = docs["smollm2-135m", "cda"]
    newer = {**doc, "run_id": "newcode", "created": "2027-01-01T00:00:00Z",
             "versions": {**doc["versions"], "code_version": "9.9.9+new"}}
    (results / "runs" / "newcode.json").write_text(json.dumps(newer))
    lb = L.build(results, n_boot=50)
    cda = lb.entry("smollm2-135m", "cda")
    assert cda.run.code_version == "9.9.9+new" and [r.method for r in lb.superseded] == ["cda"]
    assert cda.base is None and "no `none` run at code 9.9.9+new" in cda.verdict  # never compared across versions
    old = doc["versions"]["code_version"]
    pinned = L.build(results, n_boot=50, pin=old)
    assert pinned.entry("smollm2-135m", "cda").base is not None and not pinned.superseded
    assert "9.9.9+new" not in {e.run.code_version for e in pinned.entries}
    assert "## Superseded runs" in R.to_markdown(lb, "cmd", "machine", "now", str(results))


# ---------------------------------------------------------------- seeds, controls, degeneracy, header


def _write_run(results: Path, doc: dict, **changes) -> dict:
    new = {**doc, **changes}
    (results / "runs" / f"{new['run_id']}.json").write_text(json.dumps(new))
    return new


def test_training_seeds_pool_into_one_row_with_a_two_level_bootstrap(results):
    docs = _docs()
    cda, inlp, none = docs["smollm2-135m", "cda"], docs["smollm2-135m", "inlp"], docs["smollm2-135m", "none"]
    # seed 1 of cda: the inlp run's records and metrics, no `none` run at seed 1 (falls back to seed 0's)
    _write_run(results, cda, run_id="cdaseed1", seed=1, metrics=inlp["metrics"], records_path=inlp["records_path"])
    lb = L.build(results, n_boot=N_BOOT)
    e = lb.entry("smollm2-135m", "cda")
    assert len(lb.entries) == 8 and [r.doc["seed"] for r in e.seed_runs] == [0, 1] and e.run.doc["seed"] == [0, 1]
    ss = [d["metrics"]["stereoset/ss"] for d in (cda, inlp)]
    assert e.run.metrics["stereoset/ss"] == pytest.approx(np.mean(ss)) and e.spread("stereoset/ss") == (min(ss), max(ss))
    # by hand: replicate b draws seeds (stream seeds/<model>/<method>/<bias type>) and the same example ids
    base, per_seed = _records(none, "stereoset"), [_records(d, "stereoset") for d in (cda, inlp)]
    ids = sorted(base)
    draws = np.random.default_rng([0, zlib.crc32(b"stereoset")]).integers(0, len(ids), (N_BOOT, len(ids)))
    seeds = np.random.default_rng([0, zlib.crc32(b"seeds/smollm2-135m/cda/gender")]).integers(0, 2, (N_BOOT, 2))
    def ss_reps(recs):
        return 100 * np.array([recs[i]["stereo_wins"] for i in ids], float)[draws].mean(1)

    deltas = np.stack([ss_reps(r) - ss_reps(base) for r in per_seed])  # [seed, b]
    pooled = deltas[seeds.T, np.arange(N_BOOT)].mean(0)
    c = e.changes["stereoset/ss"]
    assert c.delta.est == pytest.approx(np.mean(ss) - none["metrics"]["stereoset/ss"])
    assert (c.delta.lo, c.delta.hi) == pytest.approx(tuple(np.percentile(pooled, [2.5, 97.5])))
    md = R.to_markdown(lb, "c", "m", "t", "r")
    assert f"(2 seeds: {R.num(min(ss))}..{R.num(max(ss))})" in md and "two-level bootstrap" in md
    assert "from 9 result files" in md  # 8 rows, one of them pooled over 2 seed files
    row = _row(R.to_frame(lb), "smollm2-135m", "cda")
    assert row["seed"] == "0,1" and row["n_seeds"] == 2
    assert len(L.build(results, n_boot=50, group_seeds=False).entries) == 9


@pytest.mark.parametrize("same_as, beyond", [("none", True), ("cda", False)])
def test_fine_tuning_methods_are_compared_with_the_finetune_control(results, same_as, beyond):
    """A `finetune` control copied from a fixture run: with none's records, cda's reduction against it equals
    its reduction against none (significant: beyond fine-tuning); with cda's own records it is 0 (not beyond)."""
    docs = _docs()
    src = docs["smollm2-135m", same_as]
    _write_run(results, src, run_id="finetune0", method={"name": "finetune", "bias_type": None})
    lb = L.build(results, n_boot=N_BOOT)
    e = lb.entry("smollm2-135m", "cda")
    assert e.control is not None and e.control.doc["run_id"] == "finetune0"
    ss, ctl = e.changes["stereoset/ss"], e.control_changes["stereoset/ss"]
    assert ctl.delta.est == pytest.approx(ss.value - src["metrics"]["stereoset/ss"])
    assert e.bias.sig and e.bias.est > 0
    if beyond:
        assert ctl.delta.est == pytest.approx(ss.delta.est) and e.control_bias.sig
        assert e.verdict.startswith("lowers bias beyond fine-tuning")
    else:
        assert ctl.delta.est == 0 and not e.control_bias.sig
        assert e.verdict.startswith("lowers bias, not beyond fine-tuning")
    assert lb.entry("smollm2-135m", "inlp").control is None  # not a fine-tuning method
    assert lb.entry("tiny-random", "cda").control is None  # no control on that model
    md = R.to_markdown(lb, "c", "m", "t", "r")
    assert "bias reduction vs `finetune`" in md and f"vs finetune: Δ {R.fmt_interval(ctl.delta)}" in md
    row = _row(R.to_frame(lb), "smollm2-135m", "cda")
    assert row["bias_reduction_vs_finetune"] == pytest.approx(e.control_bias.est)
    assert row["bias: stereoset/ss (→50) Δ vs finetune"] == pytest.approx(ctl.delta.est)


def test_without_a_control_a_fine_tuning_verdict_says_so(lb):
    assert lb.entry("smollm2-135m", "cda").verdict.startswith("lowers bias (no `finetune` control)")


def test_degeneracy_rule():
    from bench.report.degeneracy import DegeneracyRule

    rule = DegeneracyRule()
    base = {"perplexity/wikitext2": 20.0, "stereoset/lms": 90.0}
    assert rule.reason({"perplexity/wikitext2": 29.9, "stereoset/lms": 80.5, "patterns/distinct_2": 0.5}, base) is None
    assert "(> 1.5x)" in rule.reason({"perplexity/wikitext2": 30.1}, base)
    assert "(> 10 points lower)" in rule.reason({"stereoset/lms": 79.0}, base)
    assert "< 0.5" in rule.reason({"patterns/distinct_2": 0.49}, None)  # absolute floor, no baseline needed
    assert rule.reason({"perplexity/wikitext2": 1e4}, None) is None  # no baseline value: no ratio check
    assert DegeneracyRule(perplexity_ratio=3.0).reason({"perplexity/wikitext2": 50.0}, base) is None


def test_degenerate_runs_are_labelled_and_never_win(lb, table, results):
    docs = _docs()
    sd, none = docs["smollm2-135m", "self_debias"]["metrics"], docs["smollm2-135m", "none"]["metrics"]
    assert sd["perplexity/wikitext2"] > 1.5 * none["perplexity/wikitext2"]  # the fixture collapsed
    e = lb.entry("smollm2-135m", "self_debias")
    assert e.degenerate.startswith("perplexity/wikitext2") and e.verdict.startswith("degenerate: perplexity/wikitext2")
    assert "lowers bias" not in e.verdict
    assert _row(table, "smollm2-135m", "self_debias")["degenerate"] == e.degenerate
    assert _row(table, "smollm2-135m", "cda")["degenerate"] == ""
    assert "self_debias ⚠ degenerate" in R.to_markdown(lb, "c", "m", "t", "r")
    from bench.report.degeneracy import DegeneracyRule

    loose = L.build(results, n_boot=50, rule=DegeneracyRule(perplexity_ratio=2.0))
    assert loose.entry("smollm2-135m", "self_debias").degenerate is None


def test_header_prints_achieved_half_widths_and_a_toy_budget(results):
    doc = _docs()["smollm2-135m", "cda"]
    _write_run(results, doc, info={**doc["info"], "method": {"method/budget": "cpu", "method/steps": 30}})
    lb = L.build(results, n_boot=N_BOOT)
    widths = [(e.changes["stereoset/ss"].delta.hi - e.changes["stereoset/ss"].delta.lo) / 2
              for e in lb.entries if "stereoset/ss" in e.changes]
    assert len(widths) == 6
    md = R.to_markdown(lb, "c", "m", "t", "r")
    assert f"`stereoset/ss` ±{R.num(float(np.median(widths)))}" in md
    assert "Training budget: `cpu` (30 optimizer steps): a toy budget" in md


def test_a_bfloat16_run_is_never_compared_with_a_float32_one(results):
    docs = _docs()
    none, cda = docs["smollm2-135m", "none"], docs["smollm2-135m", "cda"]
    def bf16(doc, run_id):
        return _write_run(results, doc, run_id=run_id,
                          config={**doc["config"], "model": {**doc["config"]["model"], "dtype": "bfloat16"}})
    bf16(cda, "cdabf16")
    lb = L.build(results, n_boot=50)
    alone = lb.entry("smollm2-135m (bfloat16)", "cda")
    assert alone.base is None and lb.entry("smollm2-135m", "cda").run.doc["run_id"] == cda["run_id"]
    bf16(none, "nonebf16")
    lb = L.build(results, n_boot=50)
    assert lb.entry("smollm2-135m (bfloat16)", "cda").base.doc["run_id"] == "nonebf16"
    assert lb.entry("smollm2-135m", "cda").base.doc["run_id"] == none["run_id"]


def test_a_baseline_is_resampled_once_however_many_runs_it_is_compared_with(monkeypatch):
    """Run.replicates memoises: building the leaderboard recomputes each (run, metric) once, and the memoised
    arrays are the plain bootstrap's (same draws, same values)."""
    calls: dict[tuple[str, str], int] = {}
    plain = RF.replicates

    def counting(spec, groups, ids, counts):
        key = (str(id(groups)), spec.key)
        calls[key] = calls.get(key, 0) + 1
        return plain(spec, groups, ids, counts)

    monkeypatch.setattr(RF, "replicates", counting)
    lb = L.build(FIXTURES, n_boot=60, seed=0)
    assert calls and max(calls.values()) == 1
    compared = [e for e in lb.entries if e.base is not None and e.changes]
    assert sum(e.run.model == "smollm2-135m" for e in compared) >= 2  # one none run shared by several rows
    entry = compared[0]
    key, change = next((k, c) for k, c in entry.changes.items() if c.reps is not None)
    spec = entry.run.specs[key]
    groups_base, groups_run = entry.base.groups(spec), entry.run.groups(spec)
    ids = sorted(set(groups_base) & set(groups_run))
    counts = resample_counts(len(ids), 60, 0, key.split("/")[0])
    np.testing.assert_array_equal(change.reps[0], plain(spec, groups_base, ids, counts))
    np.testing.assert_array_equal(change.reps[1], plain(spec, groups_run, ids, counts))
