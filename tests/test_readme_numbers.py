"""The README's grid table is the committed leaderboard's, and the committed leaderboard is what its result
files give: regenerating it from ``results/published/runs`` reproduces ``leaderboard.md`` line for line."""
from __future__ import annotations

import shutil
from pathlib import Path

from bench.report.main import main as leaderboard_main

REPO = Path(__file__).resolve().parent.parent
PUBLISHED = REPO / "results" / "published"
START, END = "<!-- tax-table:start -->", "<!-- tax-table:end -->"


def _tax_table(markdown: str) -> list[str]:
    """The table lines under ``## Alignment tax`` of a leaderboard.md."""
    lines = markdown.splitlines()
    i = lines.index("## Alignment tax")
    table = []
    for line in lines[i + 1:]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    assert table, "leaderboard.md has no alignment-tax table"
    return table


def _readme_block() -> list[str]:
    text = (REPO / "README.md").read_text()
    assert START in text and END in text, f"README.md lacks the {START} ... {END} block"
    return [ln for ln in text.split(START, 1)[1].split(END, 1)[0].splitlines() if ln.strip()]


def test_readme_grid_table_is_the_committed_leaderboards():
    assert _readme_block() == _tax_table((PUBLISHED / "leaderboard.md").read_text())


def test_committed_leaderboard_regenerates_from_its_result_files(tmp_path):
    work = tmp_path / "published"
    for part in ("runs", "records"):
        shutil.copytree(PUBLISHED / part, work / part)
    shutil.copy(PUBLISHED / "leaderboard_meta.json", work / "leaderboard_meta.json")
    leaderboard_main(results_dir=work, plots=False)
    fresh = [ln for ln in (work / "leaderboard.md").read_text().splitlines() if not ln.startswith("- Generated:")]
    committed = [ln for ln in (PUBLISHED / "leaderboard.md").read_text().splitlines()
                 if not ln.startswith("- Generated:")]
    assert fresh == committed
