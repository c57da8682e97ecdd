"""notebooks/paper_figures.ipynb runs top to bottom on the committed fixture result files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "notebooks" / "paper_figures.ipynb"
FIXTURES = REPO / "tests" / "fixtures" / "results"


def test_notebook_executes_on_fixture_results(tmp_path, monkeypatch):
    # a python3 kernel spec pinned to this interpreter (the installed one runs whatever `python` is on PATH)
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    out = tmp_path / "out"
    monkeypatch.setenv("TAXBENCH_RESULTS", str(FIXTURES))
    monkeypatch.setenv("TAXBENCH_OUT", str(out))
    monkeypatch.setenv("TAXBENCH_N_BOOT", "100")
    monkeypatch.setenv("MPLBACKEND", "Agg")

    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "wandb" not in "".join(c.source for c in nb.cells if c.cell_type == "code")  # result files only
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 6
    assert any("smollm2-135m" in o.get("data", {}).get("text/html", "") for o in outputs)  # the summary table
    assert (out / "leaderboard.md").read_text().startswith("# taxbench leaderboard")
    assert (out / "leaderboard.csv").exists()
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [
        "bias_domains.png", "collapse_fairness.png", "scale.png", "toxicity_capability.png",
        "toxicity_intelligibility.png", "tradeoff.png"]
    assert not list(FIXTURES.glob("*.md")) and not (FIXTURES / "plots").exists()  # fixtures untouched
