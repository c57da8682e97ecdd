"""Write results/reproduction/reports/: each rerun of a published job against the published run and, where the
snapshot's code was rerun on the same machine too, the published run against that rerun and that rerun
against the rerun at the newer code.

    python scripts/reproduction_reports.py [--n-boot 1000]
    python scripts/reproduction_reports.py --readme      # only print the README's table of the reports

Reports are named ``<model>_<method>[_<bias type>]_seed<s>.<reference>_by_<rerun>.md`` with the roles
``published`` (results/published), ``snapshot_code`` (results/reproduction/snapshot_code: the snapshot's code
rerun here) and ``head`` (results/reproduction/head: the code that wrote those files, named in each report).
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench.report.reproduce import find_job, report
from bench.report.runs import Run, read_run

REPO = Path(__file__).resolve().parent.parent
PUBLISHED = REPO / "results" / "published"
REPRODUCTION = REPO / "results" / "reproduction"


def job_name(run: Run) -> str:
    return "_".join([run.model, run.method, *([run.bias_type] if run.bias_type else []), f"seed{run.doc.get('seed')}"])


def readme_row(report_path: Path) -> str:
    """One row of the README's reproduction table, from a report's summary lines and records table."""
    text = report_path.read_text()
    job, pair = report_path.name.removesuffix(".md").split(".")
    counts = dict((s, int(n)) for n, s in re.findall(r"(\d+) (equal|within noise|differs)", text.split("\n- Behind")[0]))
    sizes = re.search(r"of a whole-benchmark metric: (.*); behind the axes: (.*)", text)
    texts = sum(int(line.split(" | ")[3]) for line in text.splitlines() if re.match(r"\| [a-z_]+ \| \d", line))
    return (f"| {job} | {pair.replace('_by_', ' → ')} | {counts.get('equal', 0)} / {counts.get('within noise', 0)} / "
            f"{counts.get('differs', 0)} | {sizes[1]} | {sizes[2]} | {texts} |")


def readme_table() -> str:
    header = ("| job | reference → rerun | metrics equal / within noise / differ | largest \\|Δ\\| / hw, whole-benchmark "
              "metric | largest \\|Δ\\| / hw behind the axes | example ids with another sampled text |\n"
              "|---|---|---|---|---|---|\n")
    return header + "".join(readme_row(p) + "\n" for p in sorted((REPRODUCTION / "reports").glob("*.md")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per interval")
    parser.add_argument("--readme", action="store_true", help="print the README's table of the reports, write nothing")
    args = parser.parse_args()
    if args.readme:
        print(readme_table(), end="")
        return
    out = REPRODUCTION / "reports"
    out.mkdir(exist_ok=True)
    for path in sorted((REPRODUCTION / "head" / "runs").glob("*.json")):
        head = read_run(path)
        published = find_job(PUBLISHED, head)
        pairs = [("published", published, "head", head)]
        snapshot = REPRODUCTION / "snapshot_code" / "runs" / published.path.name  # same job, same code: same id
        if snapshot.exists():
            pairs += [("published", published, "snapshot_code", read_run(snapshot)),
                      ("snapshot_code", read_run(snapshot), "head", head)]
        for ref_role, ref, new_role, new in pairs:
            target = out / f"{job_name(head)}.{ref_role}_by_{new_role}.md"
            target.write_text(report(ref, new, args.n_boot, seed=0)[0])
            print(target.relative_to(REPO))


if __name__ == "__main__":
    main()
