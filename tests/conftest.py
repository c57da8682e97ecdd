"""Shared fixtures: the data root, a tiny random model, and (slow) the real smollm2-135m."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("TAXBENCH_DATA", str(REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root():
    from bench.data import DataRoot

    root = Path(os.environ["TAXBENCH_DATA"])
    if not root.exists():
        pytest.skip(f"data root {root} not present")
    return DataRoot(root, download=False)


@pytest.fixture(scope="session")
def tiny_loaded():
    from bench.config import load_named

    return load_named("tiny-random")


@pytest.fixture()
def tiny_lm(tiny_loaded):
    from bench.engine.hf_lm import HFScoringLM

    return HFScoringLM(tiny_loaded)


@pytest.fixture(scope="session")
def smollm2_loaded():
    from bench.config import load_named

    return load_named("smollm2-135m")
