"""The README's "Extending" section works as written: its benchmark and method files, copied out of
the README into a scratch folder (a plugin outside the package), run with ``taxbench run``."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_files() -> dict[str, str]:
    """``# file: <path>`` -> the code block it heads, from the Extending section."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Extending"):]
    section = section[: section.index("\n## ")]
    return {m.group(2): m.group(1) + m.group(3) for m in
            re.finditer(r"```(?:python|yaml)\n(# file: (\S+)\n)(.*?)```", section, re.S)}


def test_readme_examples_run(tmp_path, data_root):
    files = _readme_files()
    assert set(files) == {"bench/tasks/word_order.py", "conf/benchmark/word_order.yaml", "methods/instruct.py",
                          "conf/method/instruct.yaml"}
    plugin = tmp_path / "plugin"
    for rel, body in files.items():  # outside the package: module names become plugin modules
        target = plugin / ("conf/" + rel.split("conf/")[1] if rel.startswith("conf/") else Path(rel).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body.replace("bench.tasks.word_order.", "word_order.").replace("methods.instruct.", "instruct."))
    env = {**os.environ, "PYTHONPATH": f"{plugin}{os.pathsep}{REPO}", "WANDB_MODE": "disabled",
           "TAXBENCH_DATA": str(data_root.root), "TAXBENCH_PLUGINS": "word_order,instruct"}  # as the README says
    results = tmp_path / "results"
    cmd = [sys.executable, "-m", "bench.cli", "run", "model=tiny-random", "suite=smoke", "method=instruct",
           "logger=none", "+benchmark@benchmarks.word_order=word_order", "only=[word_order,crows_pairs]",
           f"hydra.searchpath=[file://{plugin / 'conf'}]", f"paths.results_dir={results}"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [result] = list((results / "runs").glob("*.json"))
    doc = json.loads(result.read_text())
    assert doc["method"]["name"] == "instruct" and doc["info"]["method"]["method/instruction"].startswith("Treat")
    assert 0 <= doc["metrics"]["word_order/acc"] <= 100 and doc["n"]["word_order"] == 20
    assert "crows_pairs/stereotype_score" in doc["metrics"]
