"""The structure the code promises: one-way imports between layers, benchmarks that run on any
model implementing the protocols in ``bench.api``, and a training-leak guard that knows every
benchmark's evaluation files."""
from __future__ import annotations

import ast
import hashlib
import math
from pathlib import Path

import pytest
import torch

from bench.api import Benchmark, GenerationSpec, Loglikelihood, RepresentationLM, Request, ScoringLM
from bench.data import load_manifest
from bench.tasks import benchmark_classes, evaluation_files, is_evaluation_file

REPO = Path(__file__).resolve().parent.parent

# Layer of each package or module; a module may import its own layer or lower ones (plus the
# peer edges allowed below).  A new top-level module must be placed here.
LAYERS = {
    "bench": 0, "bench.errors": 0, "bench.validate": 0, "bench.io": 0, "bench.progress": 0,
    "bench.api": 1, "bench.data": 1, "methods.text": 1,
    "bench.engine": 2, "bench.tasks": 2, "bench.scorers": 2, "methods": 2, "bench.lm_eval_bridge": 2,
    "bench.evaluate_metrics": 3,
    "bench.store": 3, "bench.tracking": 3, "bench.config": 3, "bench.run": 3, "bench.perf": 3, "bench.parity": 3,
    "bench.summary": 3, "bench.dtype_agreement": 3,
    "bench.report": 4, "bench.callbacks": 4,
    "bench.cli": 5,
}
# In layers 1 and 2 the packages are peers: an edge between two of them must be listed here
# (benchmarks use scorers; methods use the engine, benchmark split rules and evaluation-file
# lists; the word lists and counterfactual swapper of methods.text, shared by CDA and the
# counterfactual benchmark, read the data root).  The api and the data package know nothing of each other.
PEER_LAYERS = (1, 2)
PEER_EDGES = {("bench.tasks", "bench.scorers"), ("methods", "bench.engine"), ("methods", "bench.tasks"),
              ("methods.text", "bench.data"), ("bench.tasks", "bench.lm_eval_bridge")}


def _package(module: str) -> str:
    """The LAYERS key a module belongs to (longest matching prefix)."""
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return ".".join(parts[:i])
    raise AssertionError(f"module {module} is in no layer of tests/test_architecture.py LAYERS: place it")


def _modules() -> dict[str, Path]:
    out = {}
    for root in ("bench", "methods"):
        for path in sorted((REPO / root).rglob("*.py")):
            rel = path.relative_to(REPO).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            out[name] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Project modules imported anywhere in the file except under ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    modules = _modules()
    return {m for m in found if m in modules and m != module}


def _graph() -> dict[str, set[str]]:
    return {m: _imports(p, m) for m, p in _modules().items()}


def test_imports_run_one_way():
    bad = []
    for module, deps in _graph().items():
        src = _package(module)
        for dep in deps:
            dst = _package(dep)
            if src == dst or dep == "bench" or (dep.startswith(src + ".") and src != "bench"):
                continue
            if LAYERS[dst] > LAYERS[src] or (LAYERS[dst] == LAYERS[src] in PEER_LAYERS and (src, dst) not in PEER_EDGES):
                bad.append(f"{module} (layer {LAYERS[src]}) imports {dep} (layer {LAYERS[dst]})")
    assert not bad, "imports against the layer order:\n" + "\n".join(sorted(bad))


def test_no_import_cycles():
    graph = _graph()
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    # a package __init__ that re-exports its own modules is not a cycle of behaviour
    cycles = [c for c in cycles if not all(m.startswith(c[0].split(".")[0] + ".") or m == c[0] for m in c)
              or len({_package(m) for m in c}) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_the_layer_test_catches_a_back_edge(tmp_path, monkeypatch):
    """The checker itself: an api module importing the engine is reported."""
    fake = tmp_path / "bench" / "api" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from bench.engine.hf_lm import HFScoringLM\n")
    assert "bench.engine.hf_lm" in _imports(fake, "bench.api.bad")
    assert LAYERS[_package("bench.engine.hf_lm")] > LAYERS[_package("bench.api.bad")]


# ----------------------------------------------------------------------------- fake LM
class ProtocolOnlyLM:
    """A model that is nothing but the protocols of ``bench.api``: answers are deterministic
    functions of the text (sha256), so every benchmark must run on it without reaching into an engine."""

    name = "protocol-only"
    H = 8

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    @staticmethod
    def _u(text: str) -> float:
        return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8

    def loglikelihood(self, requests):
        assert all(isinstance(r, Request) for r in requests)
        return [Loglikelihood(-1.0 - 5 * self._u(r.context + "|" + r.continuation), False,
                              max(1, len(r.continuation.split()))) for r in requests]

    def loglikelihood_rolling(self, texts, max_length=None, stride=None):
        return [(-0.5 * len(t.split()) - self._u(t), max(1, len(t.split()))) for t in texts]

    def generate(self, prompts, spec: GenerationSpec):
        return [[f" sample {i} {self._u(p + str(i)):.3f} of it." for i in range(spec.num_samples)] for p in prompts]

    def encode(self, text):
        return [self.vocab.setdefault(" " + w.lower(), len(self.vocab)) for w in text.split()]

    def decode(self, ids):
        words = {i: w for w, i in self.vocab.items()}
        return "".join(words.get(int(i), "?") for i in ids)

    def _vec(self, key: str) -> torch.Tensor:
        return torch.randn(self.H, generator=torch.Generator().manual_seed(int(self._u(key) * 2**31)))

    def hidden_states(self, texts, start_token=True):
        return torch.stack([self._vec(t) for t in texts]) if texts else torch.zeros(0, self.H)

    def per_token_hidden_states(self, texts):
        out = []
        for t in texts:
            ids = torch.tensor(self.encode(t), dtype=torch.long)
            out.append((ids, torch.stack([self._vec(str(int(i))) for i in ids]) if len(ids) else torch.zeros(0, self.H)))
        return out

    def lm_head_rows(self, ids):
        return torch.stack([self._vec(f"head{int(i)}") for i in ids])


def test_protocol_only_lm_is_both_protocols():
    lm = ProtocolOnlyLM()
    assert isinstance(lm, ScoringLM) and isinstance(lm, RepresentationLM)


def _smoke_benchmarks():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from bench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["suite=smoke", "benchmarks.toxicity.scorer=profanity_check"])
    return {name: instantiate(node, _convert_="all") for name, node in cfg.benchmarks.items()}


def test_every_benchmark_runs_on_the_protocols_alone(data_root):
    benches = _smoke_benchmarks()
    assert set(benches) == set(benchmark_classes()), "the smoke suite must hold every benchmark"
    lm = ProtocolOnlyLM()
    for name, bench in benches.items():
        assert isinstance(bench, Benchmark), name
        result = bench.evaluate(lm, data_root)
        assert any(k.startswith(f"{name}/") for k in result.metrics), name
        assert {s.key for s in result.specs} >= set(result.metrics), name
        assert result.records and all("id" in r for r in result.records), name
        assert any(math.isfinite(v) for v in result.metrics.values()), name


# --------------------------------------------------------------------- leak guard
def test_every_evaluation_file_is_declared_in_the_manifest():
    manifest = load_manifest()
    for rel in evaluation_files():
        assert any(p == rel or (rel.endswith("/") and p.startswith(rel)) for p in manifest), rel


def test_training_guard_refuses_every_benchmark_file():
    from bench.errors import ConfigError
    from methods.finetune.config import check_training_files

    manifest = load_manifest()
    files = [p for p in manifest if is_evaluation_file(p)]
    assert len(files) >= len(evaluation_files())
    for rel in files:
        with pytest.raises(ConfigError, match="evaluation"):
            check_training_files([rel])
    assert not is_evaluation_file("wikitext2/tokens_v1/valid.txt")
